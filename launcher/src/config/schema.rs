//! The config schema: the Go jailoc's keys plus `egress`, each value kept with its line.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::Spanned;

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
];

/// Top-level tables.
pub const ROOT_KEYS: &[&str] = &["base", "defaults", "workspaces"];

/// Keys allowed in `[base]`.
pub const BASE_KEYS: &[&str] = &["dockerfile"];

/// Egress mode handed to sandbox-init.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Egress {
    /// Public internet allowed, private/special ranges blocked.
    #[default]
    Open,
    /// Only allowlisted hosts and networks (plus DNS).
    Allowlist,
}

impl Egress {
    /// The spelling used in config and policy files.
    pub fn as_str(self) -> &'static str {
        match self {
            Egress::Open => "open",
            Egress::Allowlist => "allowlist",
        }
    }
}

/// A host path as written, its line, and what it resolves to (`~`, `..` and symlinks resolved).
#[derive(Debug, Clone, PartialEq)]
pub struct HostPath {
    pub raw: String,
    pub line: usize,
    pub path: PathBuf,
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
    pub allowed_hosts: Option<Vec<Spanned<String>>>,
    pub allowed_networks: Option<Vec<Spanned<String>>>,
    pub image: Option<Spanned<String>>,
    pub dockerfile: Option<HostPath>,
    pub build_context: Option<HostPath>,
    pub env: Option<Vec<(String, Spanned<String>)>>,
    pub env_file: Option<Vec<HostPath>>,
    pub ssh_auth_sock: Option<bool>,
    pub git_config: Option<bool>,
    pub expose_port: Option<bool>,
    pub enable_docker: Option<bool>,
    pub cpu: Option<f64>,
    pub memory: Option<String>,
    pub secrets: Option<Vec<(String, HostPath)>>,
    pub egress: Option<Egress>,
}

/// A whole, validated config file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    /// The file it was read from (for messages and relative paths).
    pub file: PathBuf,
    /// `[base] dockerfile`.
    pub base_dockerfile: Option<HostPath>,
    pub defaults: Section,
    /// Workspaces by name (sorted: the port is `4096 + index`).
    pub workspaces: BTreeMap<String, Section>,
}

/// The workspace used when nothing else matches; it always exists, configured or not.
pub const DEFAULT_WORKSPACE: &str = "default";

/// The first published port; workspace N in sorted order gets `BASE_PORT + N`.
pub const BASE_PORT: u16 = 4096;

impl Config {
    /// All workspace names in sorted order, including the implicit `default`.
    pub fn workspace_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.workspaces.keys().cloned().collect();
        if !self.workspaces.contains_key(DEFAULT_WORKSPACE) {
            names.push(DEFAULT_WORKSPACE.to_string());
            names.sort();
        }
        names
    }

    /// The host port of workspace `name`: `4096 + its index in the sorted list`.
    pub fn port_of(&self, name: &str) -> Option<u16> {
        let names = self.workspace_names();
        let idx = names.iter().position(|n| n == name)?;
        u16::try_from(idx)
            .ok()
            .and_then(|i| BASE_PORT.checked_add(i))
    }
}
