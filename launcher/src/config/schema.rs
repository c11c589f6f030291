//! The config schema: the Go jailoc's keys plus `egress`, each value kept with its line.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::Spanned;
use jailoc_policy::{HostEntry, NetworkEntry};

/// Keys allowed in `[defaults]` and `[workspaces.NAME]`.
pub const SECTION_KEYS: &[&str] = &[
    "paths",
    "mounts",
    "allowed_hosts",
    "allowed_networks",
    "image",
    "dockerfile",
    "build_context",
    "env",
    "env_file",
    "ssh_auth_sock",
    "git_config",
    "expose_port",
    "enable_docker",
    "cpu",
    "memory",
    "secrets",
    "egress",
    "mode",
];

/// Top-level tables.
pub const ROOT_KEYS: &[&str] = &["base", "defaults", "workspaces", "mode", "password_mode"];

/// Keys allowed in `secrets`: the destination sub-tables.
pub const SECRET_KINDS: &[&str] = &["env", "file"];

/// Keys allowed in one secret entry: its source.
pub const SECRET_SOURCES: &[&str] = &["from_env", "from_file"];

/// Keys allowed in `[base]`.
pub const BASE_KEYS: &[&str] = &["dockerfile"];

/// Egress mode handed to sandbox-init: the policy contract's own type.
pub use jailoc_policy::Egress;

/// How bare `jailoc` attaches (the Go jailoc's `mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachMode {
    /// `opencode attach` on the host, to the published port.
    Remote,
    /// `opencode attach` inside the container, as UID 1000.
    Exec,
}

impl AttachMode {
    /// The spelling used in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            AttachMode::Remote => "remote",
            AttachMode::Exec => "exec",
        }
    }
}

/// Where the OpenCode server password comes from (the Go jailoc's `password_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PasswordMode {
    /// `OPENCODE_SERVER_PASSWORD` from the host environment if set, else the stored file.
    #[default]
    Auto,
    /// Only `OPENCODE_SERVER_PASSWORD` from the host environment; an error if it is unset.
    Env,
    /// Only the stored file (generated once, 0600).
    File,
    /// The Go jailoc's OS keyring: this jailoc has none, so it behaves as [`File`](Self::File)
    /// (and `up` says so).
    Keyring,
}

impl PasswordMode {
    /// The spelling used in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            PasswordMode::Auto => "auto",
            PasswordMode::Env => "env",
            PasswordMode::File => "file",
            PasswordMode::Keyring => "keyring",
        }
    }
}

/// Where a secret ends up in the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretDest {
    /// `secrets.env.NAME`: the agent gets environment variable NAME (sandbox-init reads
    /// `/run/secrets/NAME` as root and hands it over).
    Env,
    /// `secrets.file.NAME`: only the file `/run/secrets/NAME`, never an environment variable.
    File,
}

impl SecretDest {
    /// The sub-table name.
    pub fn as_str(self) -> &'static str {
        match self {
            SecretDest::Env => "env",
            SecretDest::File => "file",
        }
    }
}

/// Where a secret's value comes from on the host.
#[derive(Debug, Clone, PartialEq)]
pub enum SecretSource {
    /// `from_env = "HOSTVAR"`: a host environment variable, read at `up`.
    HostEnv(String),
    /// `from_file = "PATH"`: a host file (absolute or `~/`), bind-mounted.
    HostFile(HostPath),
}

/// One secret: `[SCOPE.secrets.DEST.NAME]` with its source, and where it was declared.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretEntry {
    pub name: String,
    pub dest: SecretDest,
    pub source: SecretSource,
    /// The dotted key, e.g. `workspaces.web.secrets.env.GH_TOKEN`.
    pub key: String,
    pub line: usize,
}

/// A host path as written, its line, and what it resolves to (`~`, `..` and symlinks resolved).
#[derive(Debug, Clone, PartialEq)]
pub struct HostPath {
    pub raw: String,
    pub line: usize,
    pub path: PathBuf,
}

/// A `dockerfile` value: a local path (absolute, `~/` or relative to the config file), or an
/// http(s) URL fetched at `up` (the Go jailoc's forms).
#[derive(Debug, Clone, PartialEq)]
pub enum DockerfileRef {
    Path(HostPath),
    Url(Spanned<String>),
}

/// A `mounts` entry: `HOST:CONTAINER[:ro|rw]`; an empty HOST removes an inherited mount.
#[derive(Debug, Clone, PartialEq)]
pub struct MountEntry {
    pub raw: String,
    pub line: usize,
    pub host: Option<PathBuf>,
    pub container: String,
    pub read_only: bool,
}

/// `[defaults]` or one `[workspaces.NAME]`: every key optional, so merging can tell "unset".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Section {
    pub paths: Option<Vec<HostPath>>,
    pub mounts: Option<Vec<MountEntry>>,
    pub allowed_hosts: Option<Vec<Spanned<HostEntry>>>,
    pub allowed_networks: Option<Vec<Spanned<NetworkEntry>>>,
    pub image: Option<Spanned<String>>,
    pub dockerfile: Option<DockerfileRef>,
    pub build_context: Option<HostPath>,
    pub env: Option<Vec<(String, Spanned<String>)>>,
    pub env_file: Option<Vec<HostPath>>,
    pub ssh_auth_sock: Option<bool>,
    pub git_config: Option<bool>,
    pub expose_port: Option<bool>,
    pub enable_docker: Option<bool>,
    pub cpu: Option<f64>,
    pub memory: Option<String>,
    pub secrets: Option<Vec<SecretEntry>>,
    pub egress: Option<Egress>,
    pub mode: Option<AttachMode>,
    /// Host paths of this table refused by the deny-lists (a mount of `~/.ssh`, a workspace
    /// path that is `$HOME`, a secret in a credential store): security refusals of what `up`
    /// would mount or copy, raised by `up` and whatever starts the workspace, never by `down`,
    /// `status` or `config`, which mount and copy nothing.
    pub refused: Vec<super::ConfigError>,
    /// The workspace paths among those refusals: still this workspace's for choosing the
    /// workspace of the current directory (so `up` there fails, rather than picking another).
    pub refused_paths: Vec<HostPath>,
}

/// A whole, validated config file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    /// The file it was read from (for messages and relative paths).
    pub file: PathBuf,
    /// `[base] dockerfile`.
    pub base_dockerfile: Option<DockerfileRef>,
    /// Top-level `mode` (a workspace's or `[defaults]`' own `mode` wins).
    pub mode: Option<AttachMode>,
    /// Top-level `password_mode`.
    pub password_mode: PasswordMode,
    pub defaults: Section,
    /// Workspaces by name (sorted: the port is `4096 + index`).
    pub workspaces: BTreeMap<String, Section>,
}

/// The workspace used when nothing else matches; it always exists, configured or not.
pub const DEFAULT_WORKSPACE: &str = "default";

/// The first published port; workspace N in sorted order gets `BASE_PORT + N`.
pub const BASE_PORT: u16 = 4096;

impl Config {
    /// Every host variable a `from_env` secret reads, in any scope: kept out of the environment
    /// of every process jailoc runs (compose, builds), so a value never reaches the engine.
    pub fn secret_source_vars(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for s in std::iter::once(&self.defaults).chain(self.workspaces.values()) {
            for e in s.secrets.iter().flatten() {
                if let SecretSource::HostEnv(v) = &e.source {
                    if !out.contains(v) {
                        out.push(v.clone());
                    }
                }
            }
        }
        out
    }

    /// All workspace names in sorted order, including the implicit `default`.
    pub fn workspace_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.workspaces.keys().cloned().collect();
        if !self.workspaces.contains_key(DEFAULT_WORKSPACE) {
            names.push(DEFAULT_WORKSPACE.to_string());
            names.sort();
        }
        names
    }

    /// The host port of workspace `name`, as the Go jailoc numbers them: `4096 + its index
    /// among the configured workspaces, sorted`. The implicit `default` (not in the file) comes
    /// after all of them, so it never takes a configured workspace's port.
    pub fn port_of(&self, name: &str) -> Option<u16> {
        let idx = match self.workspaces.keys().position(|n| n == name) {
            Some(i) => i,
            None if name == DEFAULT_WORKSPACE => self.workspaces.len(),
            None => return None,
        };
        u16::try_from(idx)
            .ok()
            .and_then(|i| BASE_PORT.checked_add(i))
    }
}
