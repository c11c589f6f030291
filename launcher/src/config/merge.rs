//! Merges `[defaults]` into one workspace, the Go jailoc's way: env is defaults → env files →
//! workspace (last wins); hosts and networks are an order-preserving union; mounts are keyed by
//! container path (an empty host side removes one); scalars inherit, then fall back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::schema::{
    AttachMode, Config, DockerfileRef, Egress, HostPath, PasswordMode, SecretDest, SecretEntry,
    SecretSource, Section, DEFAULT_WORKSPACE,
};
use super::validate;
use super::ConfigError;
use jailoc_policy::{HostEntry, NetworkEntry};

/// Fallback CPU count.
pub const DEFAULT_CPU: f64 = 2.0;
/// Fallback memory limit.
pub const DEFAULT_MEMORY: &str = "4g";

/// A bind mount into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// `None` removes a built-in mount at `container` (an entry with an empty host side).
    pub host: Option<PathBuf>,
    pub container: String,
    pub read_only: bool,
}

/// Where the image comes from (see `image.rs` for building it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseImage {
    /// A ready-made image reference.
    Ready(String),
    /// `[base] dockerfile`.
    Dockerfile(Dockerfile),
    /// The default Dockerfile embedded in the binary.
    Embedded,
}

/// Where a Dockerfile is: a local file, or a URL that `up` fetches (into the cache) first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dockerfile {
    Path(PathBuf),
    Url(String),
}

impl std::fmt::Display for Dockerfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dockerfile::Path(p) => write!(f, "{}", p.display()),
            Dockerfile::Url(u) => f.write_str(u),
        }
    }
}

/// A Dockerfile built on top of the base (`FROM ${BASE_IMAGE}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlay {
    pub dockerfile: Dockerfile,
    /// The build context; `None` for a URL Dockerfile without `build_context` (an empty
    /// directory is used).
    pub context: Option<PathBuf>,
}

/// The image cascade's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagePlan {
    pub base: BaseImage,
    pub overlay: Option<Overlay>,
}

/// One workspace with every default applied: what the renderers consume.
#[derive(Debug, Clone, PartialEq)]
pub struct Workspace {
    pub name: String,
    /// Host port (`4096 + sorted index`), published on 127.0.0.1 only.
    pub port: u16,
    pub paths: Vec<PathBuf>,
    pub mounts: Vec<Mount>,
    /// The defaults' entries, then the workspace's, each once (typed by the policy contract).
    pub allowed_hosts: Vec<HostEntry>,
    pub allowed_networks: Vec<NetworkEntry>,
    pub image: ImagePlan,
    /// Final environment (sorted by name).
    pub env: BTreeMap<String, String>,
    /// Variables whose final value came from an env file (shown by reference in `config`).
    pub env_from_file: BTreeMap<String, PathBuf>,
    /// The dotted key (`defaults.env`, `workspaces.NAME.env`) and config line of each variable
    /// whose final value came from an `env` entry (for messages about expanding it at `up`).
    pub env_lines: BTreeMap<String, (String, usize)>,
    /// Env files not read ([`Use::Inspect`] only), with why.
    pub env_files_unread: Vec<(PathBuf, String)>,
    /// What the deny-lists refused in this workspace's tables (left out of `paths` and
    /// `mounts`); `up` fails with the first, `config` lists them.
    pub refused: Vec<ConfigError>,
    /// Secrets by name (a workspace's entry replaces the defaults' of the same name), each
    /// mounted read-only at `/run/secrets/NAME`.
    pub secrets: BTreeMap<String, SecretEntry>,
    /// Where the server password comes from (top-level `password_mode`).
    pub password_mode: PasswordMode,
    /// How bare `jailoc` attaches (`None`: remote if `opencode` is on the host, else exec).
    pub mode: Option<AttachMode>,
    /// `mode` came from the workspace or `[defaults]` (keys the Go jailoc ignores), not the top
    /// level: a `remote` there that cannot work falls back to exec instead of failing.
    pub mode_per_workspace: bool,
    /// The config file (for messages about checks made at `up`).
    pub config_file: PathBuf,
    pub ssh_auth_sock: bool,
    pub git_config: bool,
    pub expose_port: bool,
    pub enable_docker: bool,
    pub cpu: f64,
    pub memory: String,
    pub egress: Egress,
    /// True when the workspace is not in the config file (only the implicit `default`).
    pub implicit: bool,
    /// Every host path some workspace's container can write (its paths and read-write
    /// mounts, of every workspace in the config): what jailoc itself reads, builds from or
    /// mounts as a secret must not lie there.
    pub writable: Vec<Writable>,
}

/// A host path a container can write, and where the config says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Writable {
    /// Resolved (`~`, `..`, symlinks).
    pub path: PathBuf,
    /// The key that makes it writable, e.g. `workspaces.web.paths`.
    pub key: String,
    pub line: usize,
}

impl std::fmt::Display for Writable {
    /// `PATH, which a container can write (KEY, line N)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}, which a container can write ({}, line {})",
            self.path.display(),
            self.key,
            self.line
        )
    }
}

/// Every workspace path and read-write mount source in `cfg` (`[defaults]` mounts included):
/// an agent in one workspace must not be able to shape another's image, secrets or
/// environment either.
pub fn writable_paths(cfg: &Config) -> Vec<Writable> {
    let mut v = Vec::new();
    let mut section = |prefix: String, s: &Section| {
        for p in s.paths.iter().flatten() {
            v.push(Writable {
                path: p.path.clone(),
                key: format!("{prefix}.paths"),
                line: p.line,
            });
        }
        for m in s.mounts.iter().flatten() {
            if let (Some(h), false) = (&m.host, m.read_only) {
                v.push(Writable {
                    path: h.clone(),
                    key: format!("{prefix}.mounts"),
                    line: m.line,
                });
            }
        }
    };
    section("defaults".into(), &cfg.defaults);
    for (name, s) in &cfg.workspaces {
        section(format!("workspaces.{name}"), s);
    }
    v
}

/// The writable path `p` lies in (or, with `or_contains`, also one that lies in `p`: a build
/// context that contains a project sends the agent's files to the build).
pub fn writable_overlap<'a>(
    writable: &'a [Writable],
    p: &Path,
    or_contains: bool,
) -> Option<&'a Writable> {
    writable
        .iter()
        .find(|w| p.starts_with(&w.path) || (or_contains && w.path.starts_with(p)))
}

/// Refuses the config file itself when it lies in a path a container can write: the agent
/// would rewrite its own configuration. Every command reads the config, so every command
/// refuses it.
fn check_config_file(cfg: &Config, writable: &[Writable]) -> Result<(), ConfigError> {
    let canonical_file = std::fs::canonicalize(&cfg.file).unwrap_or_else(|_| cfg.file.clone());
    match writable_overlap(writable, &canonical_file, false) {
        None => Ok(()),
        Some(wr) => Err(ConfigError {
            file: cfg.file.clone(),
            line: 0,
            key: String::new(),
            message: format!("the config file is inside {wr}: the agent could rewrite its own configuration; keep config.toml outside every workspace path and read-write mount"),
        }),
    }
}

/// Refuses host inputs `up` reads, builds from, mounts or copies into the container that lie
/// in a path a container can write: env files (the agent would set the next container's
/// environment, which root processes in it inherit), Dockerfiles and build contexts (it would
/// shape the next image: its `iptables-restore`, its `/etc`), secrets' `from_file` (it would
/// pick what the next `up` hands over), and mount sources nested in another writable path.
fn check_not_writable(
    cfg: &Config,
    w: &Section,
    d: &Section,
    name: &str,
    writable: &[Writable],
) -> Result<(), ConfigError> {
    let err = |line: usize, key: String, message: String| ConfigError {
        file: cfg.file.clone(),
        line,
        key,
        message,
    };
    let wkey = format!("workspaces.{name}");
    let scopes: [(&Section, &str); 2] = [(d, "defaults"), (w, &wkey)];
    // What this workspace mounts: the engine resolves each source when it creates the
    // container, following symlinks. A source inside another writable path (a nested
    // workspace, a read-only mount of a project's subdirectory) could be replaced by a symlink
    // — to ~/.ssh, to the engine's socket — before the next `up`.
    for (s, prefix) in scopes {
        let paths = s
            .paths
            .iter()
            .flatten()
            .map(|p| (p.path.clone(), p.line, "paths"));
        let mounts = s
            .mounts
            .iter()
            .flatten()
            .filter_map(|m| m.host.clone().map(|h| (h, m.line, "mounts")));
        for (src, line, key) in paths.chain(mounts) {
            if let Some(wr) = writable
                .iter()
                .find(|wr| src != wr.path && src.starts_with(&wr.path))
            {
                return Err(err(
                    line,
                    format!("{prefix}.{key}"),
                    format!(
                        "{} is inside {wr}: that container's agent could replace it with a symlink (to ~/.ssh, to the engine's socket) before the next `up`, and the engine would mount what it points to; mount {} itself, or a directory outside it",
                        src.display(),
                        wr.path.display()
                    ),
                ));
            }
        }
    }
    for (s, prefix) in scopes {
        for f in s.env_file.iter().flatten() {
            if let Some(wr) = writable_overlap(writable, &f.path, false) {
                return Err(err(
                    f.line,
                    format!("{prefix}.env_file"),
                    format!(
                        "env file {:?}{} is inside {wr}: the agent could set the next container's environment; keep env files outside every workspace path and read-write mount",
                        f.raw, resolved_note(&f.raw, &f.path)
                    ),
                ));
            }
        }
        for e in s.secrets.iter().flatten() {
            let SecretSource::HostFile(hp) = &e.source else {
                continue;
            };
            if let Some(wr) = writable_overlap(writable, &hp.path, false) {
                return Err(err(
                    hp.line,
                    format!("{}.from_file", e.key),
                    format!(
                        "from_file {:?}{} is inside {wr}: the agent could choose what the next `up` hands over as this secret (a symlink to ~/.ssh/id_ed25519, say); keep secret files outside every workspace path and read-write mount",
                        hp.raw, resolved_note(&hp.raw, &hp.path)
                    ),
                ));
            }
        }
    }
    let mut images: Vec<(String, &DockerfileRef, Option<&HostPath>)> = Vec::new();
    if let Some(df) = &cfg.base_dockerfile {
        images.push(("base".into(), df, None));
    }
    for (s, prefix) in scopes {
        if let Some(df) = &s.dockerfile {
            images.push((prefix.to_string(), df, s.build_context.as_ref()));
        }
    }
    for (prefix, df, context) in images {
        let DockerfileRef::Path(hp) = df else {
            if let Some(c) = context {
                check_context(
                    &err,
                    writable,
                    &format!("{prefix}.build_context"),
                    c,
                    "build context",
                )?;
            }
            continue;
        };
        if let Some(wr) = writable_overlap(writable, &hp.path, false) {
            return Err(err(
                hp.line,
                format!("{prefix}.dockerfile"),
                format!(
                    "Dockerfile {:?}{} is inside {wr}: the agent could shape the next image (its iptables-restore, its /etc); keep Dockerfiles outside every workspace path and read-write mount",
                    hp.raw, resolved_note(&hp.raw, &hp.path)
                ),
            ));
        }
        match context {
            Some(c) => check_context(
                &err,
                writable,
                &format!("{prefix}.build_context"),
                c,
                "build context",
            )?,
            None => {
                let dir = HostPath {
                    raw: hp.raw.clone(),
                    line: hp.line,
                    path: hp
                        .path
                        .parent()
                        .map(Path::to_path_buf)
                        .unwrap_or_else(|| PathBuf::from("/")),
                };
                check_context(
                    &err,
                    writable,
                    &format!("{prefix}.dockerfile"),
                    &dir,
                    "build context (the Dockerfile's directory)",
                )?;
            }
        }
    }
    Ok(())
}

/// A build context may neither lie in nor contain a writable path.
fn check_context(
    err: &dyn Fn(usize, String, String) -> ConfigError,
    writable: &[Writable],
    key: &str,
    c: &HostPath,
    what: &str,
) -> Result<(), ConfigError> {
    let Some(wr) = writable_overlap(writable, &c.path, true) else {
        return Ok(());
    };
    let relation = if c.path.starts_with(&wr.path) {
        "is inside"
    } else {
        "contains"
    };
    Err(err(
        c.line,
        key.to_string(),
        format!(
            "the {what} {} {relation} {wr}: the agent could shape the next image through the files the build reads; use a directory holding only the build's files (set build_context)",
            c.path.display()
        ),
    ))
}

/// ` (resolves to P)` when `raw` is not already `path`.
fn resolved_note(raw: &str, path: &Path) -> String {
    if Path::new(raw) == path {
        String::new()
    } else {
        format!(" (resolves to {})", path.display())
    }
}

/// What a command does with a workspace, which decides what resolving it checks and reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// `up` and what starts it: every input it reads, builds from or mounts is checked (see
    /// [`check_not_writable`]) and every env file is read; any problem is an error.
    Start,
    /// `down`, `status`, `config`, `logs`, `shell`: nothing is built, mounted or copied, so the
    /// input checks do not apply (an input refused for `up` must not keep you from stopping or
    /// inspecting a workspace). An env file that lies in a writable path is not opened (the
    /// agent could have made it a FIFO), and one that cannot be read is left out; both are
    /// listed in [`Workspace::env_files_unread`].
    Inspect,
}

/// Resolves workspace `name` of `cfg` for `up` ([`Use::Start`]). Reads the env files (their
/// errors name file and line).
pub fn resolve_workspace(cfg: &Config, name: &str) -> Result<Workspace, ConfigError> {
    resolve_workspace_for(cfg, name, Use::Start)
}

/// Resolves workspace `name` of `cfg` for a command that only stops or inspects it
/// ([`Use::Inspect`]).
pub fn inspect_workspace(cfg: &Config, name: &str) -> Result<Workspace, ConfigError> {
    resolve_workspace_for(cfg, name, Use::Inspect)
}

/// Resolves workspace `name` of `cfg` for `use_`.
pub fn resolve_workspace_for(
    cfg: &Config,
    name: &str,
    use_: Use,
) -> Result<Workspace, ConfigError> {
    let empty = Section::default();
    let implicit = !cfg.workspaces.contains_key(name);
    if implicit && name != DEFAULT_WORKSPACE {
        let known = cfg.workspace_names();
        let refs: Vec<&str> = known.iter().map(String::as_str).collect();
        let hint = match validate::did_you_mean(name, &refs) {
            Some(k) => format!(" (did you mean {k:?}?)"),
            None => format!(" (configured: {})", known.join(", ")),
        };
        return Err(ConfigError {
            file: cfg.file.clone(),
            line: 0,
            key: format!("workspaces.{name}"),
            message: format!("no workspace named {name:?}{hint}"),
        });
    }
    let d = &cfg.defaults;
    let w = cfg.workspaces.get(name).unwrap_or(&empty);
    let writable = writable_paths(cfg);
    let mut refused: Vec<ConfigError> = d.refused.iter().chain(&w.refused).cloned().collect();
    refused.sort_by_key(|e| e.line);
    if use_ == Use::Start {
        // What the deny-lists refused in this workspace's tables (a mount of ~/.ssh, ...).
        if let Some(e) = refused.first() {
            return Err(e.clone());
        }
    }
    check_config_file(cfg, &writable)?;
    if use_ == Use::Start {
        // Before any env file is read: one the agent can write could also be a FIFO or a
        // symlink.
        check_not_writable(cfg, w, d, name, &writable)?;
    }

    // env: defaults → env files (defaults' then the workspace's) → workspace.
    let mut env = BTreeMap::new();
    let mut env_from_file = BTreeMap::new();
    let mut env_lines = BTreeMap::new();
    let mut env_files_unread = Vec::new();
    for (k, v) in d.env.iter().flatten() {
        env.insert(k.clone(), v.value.clone());
        env_lines.insert(k.clone(), ("defaults.env".to_string(), v.line));
    }
    let wkey = format!("workspaces.{name}.env_file");
    let env_files = (d
        .env_file
        .iter()
        .flatten()
        .map(|f| (f, "defaults.env_file")))
    .chain(w.env_file.iter().flatten().map(|f| (f, wkey.as_str())));
    for (f, key) in env_files {
        let read = match (use_, writable_overlap(&writable, &f.path, false)) {
            (Use::Inspect, Some(wr)) => Err(format!("it is inside {wr}")),
            (Use::Inspect, None) => read_env_file(f, &cfg.file, key).map_err(|e| e.message),
            (Use::Start, _) => Ok(read_env_file(f, &cfg.file, key)?),
        };
        match read {
            Ok(vars) => {
                for (k, v) in vars {
                    env_from_file.insert(k.clone(), f.path.clone());
                    env_lines.remove(&k);
                    env.insert(k, v);
                }
            }
            Err(why) => env_files_unread.push((f.path.clone(), why)),
        }
    }
    for (k, v) in w.env.iter().flatten() {
        env_from_file.remove(k);
        env_lines.insert(k.clone(), (format!("workspaces.{name}.env"), v.line));
        env.insert(k.clone(), v.value.clone());
    }

    // mounts: keyed by container path, workspace entries replace or remove defaults'.
    let mut mounts: Vec<Mount> = Vec::new();
    for m in d.mounts.iter().flatten().chain(w.mounts.iter().flatten()) {
        mounts.retain(|x| x.container != m.container);
        mounts.push(Mount {
            host: m.host.clone(),
            container: m.container.clone(),
            read_only: m.read_only,
        });
    }

    // secrets: by name; the workspace's entry replaces the defaults' entirely, also across
    // destinations (the Go jailoc's rule).
    let mut secrets: BTreeMap<String, SecretEntry> = BTreeMap::new();
    for e in d.secrets.iter().flatten().chain(w.secrets.iter().flatten()) {
        secrets.insert(e.name.clone(), e.clone());
    }
    for (k, e) in &secrets {
        if e.dest == SecretDest::Env && env.contains_key(k) {
            return Err(ConfigError {
                file: cfg.file.clone(),
                line: e.line,
                key: e.key.clone(),
                message: format!("{k:?} is both a secret and an env variable: keep one"),
            });
        }
    }

    Ok(Workspace {
        name: name.to_string(),
        port: cfg.port_of(name).unwrap_or(super::schema::BASE_PORT),
        paths: w.paths.iter().flatten().map(|p| p.path.clone()).collect(),
        mounts,
        allowed_hosts: union(&d.allowed_hosts, &w.allowed_hosts),
        allowed_networks: union(&d.allowed_networks, &w.allowed_networks),
        image: image_plan(cfg, w),
        env,
        env_from_file,
        env_lines,
        env_files_unread,
        refused,
        secrets,
        ssh_auth_sock: w.ssh_auth_sock.or(d.ssh_auth_sock).unwrap_or(false),
        git_config: w.git_config.or(d.git_config).unwrap_or(true),
        expose_port: w.expose_port.or(d.expose_port).unwrap_or(true),
        enable_docker: w.enable_docker.or(d.enable_docker).unwrap_or(false),
        cpu: w.cpu.or(d.cpu).unwrap_or(DEFAULT_CPU),
        memory: w
            .memory
            .clone()
            .or_else(|| d.memory.clone())
            .unwrap_or_else(|| DEFAULT_MEMORY.to_string()),
        egress: w.egress.or(d.egress).unwrap_or_default(),
        mode: w.mode.or(d.mode).or(cfg.mode),
        mode_per_workspace: w.mode.or(d.mode).is_some(),
        password_mode: cfg.password_mode,
        config_file: cfg.file.clone(),
        implicit,
        writable,
    })
}

/// The image cascade (docs/launcher.md, "The compose project"), first that applies: workspace
/// `image` → `[defaults] image` + workspace Dockerfile → `[defaults] image` → `[base] dockerfile`
/// (+ overlay) → embedded (+ overlay).
fn image_plan(cfg: &Config, w: &Section) -> ImagePlan {
    let d = &cfg.defaults;
    if let Some(img) = &w.image {
        return ImagePlan {
            base: BaseImage::Ready(img.value.clone()),
            overlay: None,
        };
    }
    let overlay = match (&w.dockerfile, &d.dockerfile) {
        (Some(df), _) => Some(overlay_of(df, w.build_context.as_ref())),
        (None, Some(df)) => Some(overlay_of(df, d.build_context.as_ref())),
        _ => None,
    };
    let base = if let Some(img) = &d.image {
        BaseImage::Ready(img.value.clone())
    } else if let Some(df) = &cfg.base_dockerfile {
        BaseImage::Dockerfile(dockerfile_of(df))
    } else {
        BaseImage::Embedded
    };
    ImagePlan { base, overlay }
}

fn dockerfile_of(df: &DockerfileRef) -> Dockerfile {
    match df {
        DockerfileRef::Path(hp) => Dockerfile::Path(hp.path.clone()),
        DockerfileRef::Url(u) => Dockerfile::Url(u.value.clone()),
    }
}

/// The overlay build; without `build_context` the context is the Dockerfile's directory, or
/// for a URL an empty directory (chosen at `up`, so `None` here).
fn overlay_of(df: &DockerfileRef, ctx: Option<&HostPath>) -> Overlay {
    let context = match (ctx, df) {
        (Some(c), _) => Some(c.path.clone()),
        (None, DockerfileRef::Path(hp)) => Some(
            hp.path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("/")),
        ),
        (None, DockerfileRef::Url(_)) => None,
    };
    Overlay {
        dockerfile: dockerfile_of(df),
        context,
    }
}

/// Reads a Docker-style `.env` file (see [`parse_env`]) named by `key` of `config`. A file that
/// cannot be read is an error naming the config file, line and key; a bad line in it, one
/// naming the env file and its line.
pub fn read_env_file(
    f: &HostPath,
    config: &Path,
    key: &str,
) -> Result<Vec<(String, String)>, ConfigError> {
    let text = std::fs::read_to_string(&f.path).map_err(|e| ConfigError {
        file: config.to_path_buf(),
        line: f.line,
        key: key.to_string(),
        message: format!(
            "failed to read env file {:?}{}: {e}",
            f.raw,
            resolved_note(&f.raw, &f.path)
        ),
    })?;
    parse_env(&text, &f.path)
}

/// Parses env-file text the way the Go jailoc (and Docker's `.env`) does: `KEY=VALUE` lines,
/// blank lines and `#` comment lines skipped, a value in `"..."` or `'...'` taken up to its
/// closing quote, an unquoted value cut at ` #` (inline comment) and trimmed; no variable
/// expansion (`$` stays literal). Stricter than Go: a line without `=` is an error (Go skips
/// it silently), and keys are checked like `env` keys. An optional `export ` prefix is allowed.
pub fn parse_env(text: &str, file: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let err = |m: String| ConfigError {
            file: file.to_path_buf(),
            line: i + 1,
            key: "env_file".into(),
            message: m,
        };
        let Some((k, v)) = line.split_once('=') else {
            return Err(err(format!("invalid line {raw:?}: use KEY=VALUE")));
        };
        let k = k.trim();
        validate::env_name(k).map_err(err)?;
        out.push((k.to_string(), env_value(v)));
    }
    Ok(out)
}

/// One `.env` value: quotes stripped (up to the closing quote), else the inline comment cut.
fn env_value(raw: &str) -> String {
    let s = raw.trim();
    for quote in ['"', '\''] {
        if let Some(rest) = s.strip_prefix(quote) {
            return match rest.find(quote) {
                Some(end) => rest[..end].to_string(),
                None => rest.to_string(),
            };
        }
    }
    let s = match s.find(" #") {
        Some(i) => &s[..i],
        None => s,
    };
    s.trim_end_matches([' ', '\t']).to_string()
}

/// An order-preserving union of the defaults' and the workspace's entries, each once (compared
/// typed, so `PyPI.org.` and `pypi.org` are one entry).
fn union<T: Clone + PartialEq>(
    a: &Option<Vec<super::Spanned<T>>>,
    b: &Option<Vec<super::Spanned<T>>>,
) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for e in a.iter().flatten().chain(b.iter().flatten()) {
        if !out.contains(&e.value) {
            out.push(e.value.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_str;

    fn cfg(text: &str) -> Config {
        parse_str(
            text,
            Path::new("/cfg/config.toml"),
            Path::new("/nonexistent-home/u"),
        )
        .expect("config")
    }

    #[test]
    fn merge_rules() {
        let c = cfg(r#"
[defaults]
allowed_hosts = ["a.org", "b.org"]
mounts = ["/srv/x:/home/agent/x:ro", "/srv/y:/home/agent/y"]
env = { A = "d", B = "d" }
memory = "2g"
[workspaces.web]
paths = ["/srv/web"]
allowed_hosts = ["B.org.", "c.org"]
mounts = [":/home/agent/x", "/srv/z:/home/agent/y:ro"]
env = { B = "w" }
cpu = 0.5
"#);
        let w = resolve_workspace(&c, "web").expect("resolve");
        // Entries are compared as the policy contract reads them: `B.org.` is `b.org`.
        let hosts: Vec<String> = w.allowed_hosts.iter().map(ToString::to_string).collect();
        assert_eq!(hosts, ["a.org", "b.org", "c.org"]);
        assert_eq!(
            w.mounts,
            [
                Mount {
                    host: None,
                    container: "/home/agent/x".into(),
                    read_only: false
                },
                Mount {
                    host: Some("/srv/z".into()),
                    container: "/home/agent/y".into(),
                    read_only: true
                }
            ]
        );
        assert_eq!(w.env["A"], "d");
        assert_eq!(w.env["B"], "w");
        assert_eq!(w.memory, "2g");
        assert_eq!(w.cpu, 0.5);
        assert!(w.git_config && w.expose_port && !w.enable_docker && !w.ssh_auth_sock);
        assert_eq!(w.image.base, BaseImage::Embedded);
        // Ports as the Go jailoc numbers them: the configured workspaces, sorted; the implicit
        // default after them.
        assert_eq!(c.workspace_names(), ["default", "web"]);
        assert_eq!(w.port, 4096);
        let d = resolve_workspace(&c, "default").expect("default");
        assert!(d.implicit);
        assert_eq!(d.port, 4097);
        assert!(resolve_workspace(&c, "wbe")
            .expect_err("must fail")
            .to_string()
            .contains("did you mean \"web\"?"));
    }

    #[test]
    fn image_cascade() {
        let c = cfg(r#"
[base]
dockerfile = "/srv/base.Dockerfile"
[defaults]
image = "corp/agent:1"
[workspaces.a]
image = "mine:2"
[workspaces.b]
dockerfile = "/srv/b/Dockerfile"
[workspaces.c]
"#);
        let plan = |n| resolve_workspace(&c, n).expect("resolve").image;
        assert_eq!(plan("a").base, BaseImage::Ready("mine:2".into()));
        assert_eq!(plan("b").base, BaseImage::Ready("corp/agent:1".into()));
        assert_eq!(
            plan("b").overlay.expect("overlay").context,
            Some(PathBuf::from("/srv/b"))
        );
        assert_eq!(plan("c").base, BaseImage::Ready("corp/agent:1".into()));
        let c2 = cfg("[base]\ndockerfile = \"/srv/base.Dockerfile\"\n");
        assert_eq!(
            resolve_workspace(&c2, "default").expect("r").image.base,
            BaseImage::Dockerfile(Dockerfile::Path("/srv/base.Dockerfile".into()))
        );
    }

    #[test]
    fn env_files() {
        let v = parse_env(
            "# c\nexport A=1\nB=\"two words\"\n\nC='x'\nD=plain # inline comment\nE=\"q # kept\" # cut\nF=a#b\nG=$HOME/x\n  H = spaced  \nI=\nJ=\"unclosed\n",
            Path::new("/e"),
        )
        .expect("parse");
        let want: Vec<(String, String)> = [
            ("A", "1"),
            ("B", "two words"),
            ("C", "x"),
            ("D", "plain"),
            ("E", "q # kept"),
            ("F", "a#b"),
            ("G", "$HOME/x"),
            ("H", "spaced"),
            ("I", ""),
            ("J", "unclosed"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(v, want);
        let e = parse_env("A=1\nnot a line\n", Path::new("/e")).expect_err("must fail");
        assert_eq!(
            e.to_string(),
            "/e:2: env_file: invalid line \"not a line\": use KEY=VALUE"
        );
        let e = parse_env("SSH_AUTH_SOCK=/x\n", Path::new("/e")).expect_err("reserved");
        assert!(e.to_string().contains("is reserved"), "{e}");
    }

    #[test]
    fn secrets_merge_by_name_across_destinations() {
        let c = cfg(r#"
[defaults.secrets.env.GH_TOKEN]
from_env = "HOST_GH"
[defaults.secrets.file.NETRC]
from_file = "/srv/netrc"
[defaults.secrets.env.NPM_TOKEN]
from_file = "~/npm"
[workspaces.web]
paths = ["/srv/web"]
[workspaces.web.secrets.file.GH_TOKEN]
from_file = "/srv/gh"
[workspaces.web.secrets.env.NETRC]
from_env = "HOST_NETRC"
"#);
        let w = resolve_workspace(&c, "web").expect("resolve");
        let kinds: Vec<(&str, SecretDest)> = w
            .secrets
            .iter()
            .map(|(k, e)| (k.as_str(), e.dest))
            .collect();
        assert_eq!(
            kinds,
            [
                ("GH_TOKEN", SecretDest::File),
                ("NETRC", SecretDest::Env),
                ("NPM_TOKEN", SecretDest::Env)
            ]
        );
        assert_eq!(
            w.secrets["GH_TOKEN"].key,
            "workspaces.web.secrets.file.GH_TOKEN"
        );
        assert_eq!(
            w.secrets["NETRC"].source,
            crate::config::schema::SecretSource::HostEnv("HOST_NETRC".into())
        );
        match &w.secrets["NPM_TOKEN"].source {
            crate::config::schema::SecretSource::HostFile(hp) => {
                assert_eq!(hp.path, PathBuf::from("/nonexistent-home/u/npm"))
            }
            other => panic!("{other:?}"),
        }
        // The implicit default workspace inherits the defaults unchanged.
        let d = resolve_workspace(&c, "default").expect("default");
        assert_eq!(d.secrets["GH_TOKEN"].dest, SecretDest::Env);
        let e = resolve_workspace(
            &cfg("[defaults.secrets.env.A]\nfrom_env = \"X\"\n[workspaces.w]\nenv = [\"A=1\"]\n"),
            "w",
        )
        .expect_err("conflict");
        assert_eq!(
            e.to_string(),
            "/cfg/config.toml:1: defaults.secrets.env.A: \"A\" is both a secret and an env variable: keep one"
        );
    }

    #[test]
    fn go_env_array_and_mode() {
        let c = cfg(r#"
mode = "exec"
[defaults]
env = ["A=1", "B=x=y", "A=2"]
[workspaces.r]
mode = "remote"
env = ["C="]
[workspaces.auto]
"#);
        let r = resolve_workspace(&c, "r").expect("r");
        assert_eq!(r.env["A"], "2");
        assert_eq!(r.env["B"], "x=y");
        assert_eq!(r.env["C"], "");
        assert_eq!(r.mode, Some(AttachMode::Remote));
        assert_eq!(
            resolve_workspace(&c, "auto").expect("auto").mode,
            Some(AttachMode::Exec)
        );
    }

    /// Issue 10, item 7 (and the same pattern for env files and secrets): a Dockerfile, build
    /// context, env file or secret source the agent can write (a workspace path or read-write
    /// mount of any workspace) lets it shape the next image, environment or secret. Each key is
    /// refused, naming the key, the line and the writable mount.
    #[test]
    fn attack_inputs_inside_a_writable_path_are_refused() {
        let shape = "the agent could shape the next image (its iptables-restore, its /etc); keep Dockerfiles outside every workspace path and read-write mount";
        let via_files = "the agent could shape the next image through the files the build reads; use a directory holding only the build's files (set build_context)";
        let cases: Vec<(&str, &str, usize, &str, String)> = vec![
            (
                "[workspaces.web]\npaths = [\"/srv/web\"]\ndockerfile = \"/srv/web/Dockerfile\"\n",
                "web",
                3,
                "workspaces.web.dockerfile",
                format!("Dockerfile \"/srv/web/Dockerfile\" is inside /srv/web, which a container can write (workspaces.web.paths, line 2): {shape}"),
            ),
            (
                "[base]\ndockerfile = \"/srv/web/base.Dockerfile\"\n[workspaces.web]\npaths = [\"/srv/web\"]\n",
                "default",
                2,
                "base.dockerfile",
                format!("Dockerfile \"/srv/web/base.Dockerfile\" is inside /srv/web, which a container can write (workspaces.web.paths, line 4): {shape}"),
            ),
            (
                "[workspaces.web]\npaths = [\"/srv/web\"]\ndockerfile = \"/srv/df/Dockerfile\"\nbuild_context = \"/srv/web/ctx\"\n",
                "web",
                4,
                "workspaces.web.build_context",
                format!("the build context /srv/web/ctx is inside /srv/web, which a container can write (workspaces.web.paths, line 2): {via_files}"),
            ),
            (
                "[workspaces.web]\npaths = [\"/srv/web\"]\ndockerfile = \"/srv/df/Dockerfile\"\nbuild_context = \"/srv\"\n",
                "web",
                4,
                "workspaces.web.build_context",
                format!("the build context /srv contains /srv/web, which a container can write (workspaces.web.paths, line 2): {via_files}"),
            ),
            (
                "[workspaces.web]\npaths = [\"/srv/web\"]\ndockerfile = \"/srv/Dockerfile\"\n",
                "web",
                3,
                "workspaces.web.dockerfile",
                format!("the build context (the Dockerfile's directory) /srv contains /srv/web, which a container can write (workspaces.web.paths, line 2): {via_files}"),
            ),
            (
                "[defaults]\ndockerfile = \"/data/x/Dockerfile\"\nbuild_context = \"/ctx\"\n[workspaces.a]\nmounts = [\"/data:/home/agent/data\"]\n",
                "default",
                2,
                "defaults.dockerfile",
                format!("Dockerfile \"/data/x/Dockerfile\" is inside /data, which a container can write (workspaces.a.mounts, line 5): {shape}"),
            ),
            (
                "[workspaces.web]\npaths = [\"/srv/web\"]\nenv_file = \"/srv/web/.env\"\n",
                "web",
                3,
                "workspaces.web.env_file",
                "env file \"/srv/web/.env\" is inside /srv/web, which a container can write (workspaces.web.paths, line 2): the agent could set the next container's environment; keep env files outside every workspace path and read-write mount".into(),
            ),
            (
                "[defaults]\nenv_file = [\"/srv/web/x/../.env\"]\n[workspaces.web]\npaths = [\"/srv/web\"]\n",
                "default",
                2,
                "defaults.env_file",
                "env file \"/srv/web/x/../.env\" (resolves to /srv/web/.env) is inside /srv/web, which a container can write (workspaces.web.paths, line 4): the agent could set the next container's environment; keep env files outside every workspace path and read-write mount".into(),
            ),
            (
                "[workspaces.web]\npaths = [\"/srv/web\"]\n[workspaces.web.secrets.env.T]\nfrom_file = \"/srv/web/token\"\n",
                "web",
                4,
                "workspaces.web.secrets.env.T.from_file",
                "from_file \"/srv/web/token\" is inside /srv/web, which a container can write (workspaces.web.paths, line 2): the agent could choose what the next `up` hands over as this secret (a symlink to ~/.ssh/id_ed25519, say); keep secret files outside every workspace path and read-write mount".into(),
            ),
        ];
        for (text, ws, line, key, message) in cases {
            let e = resolve_workspace(&cfg(text), ws).expect_err(text);
            assert_eq!(
                e,
                ConfigError {
                    file: "/cfg/config.toml".into(),
                    line,
                    key: key.into(),
                    message
                },
                "{text}"
            );
        }
        // Read-only mounts and unrelated paths are fine.
        let ok = cfg("[workspaces.web]\npaths = [\"/srv/web\"]\nmounts = [\"/srv/ro:/home/agent/ro:ro\"]\ndockerfile = \"/srv/ro/Dockerfile\"\nenv_file = \"/srv/ro/.env\"\n");
        assert!(
            matches!(resolve_workspace(&ok, "web"), Err(e) if e.message.starts_with("failed to read env file"))
        );
    }

    /// The config file itself inside a workspace path (`--config ./jailoc.toml` in a project)
    /// would let the agent rewrite its own configuration.
    #[test]
    fn attack_config_file_inside_a_workspace_path_is_refused() {
        let c = parse_str(
            "[workspaces.web]\npaths = [\"/srv/web\"]\n",
            Path::new("/srv/web/jailoc.toml"),
            Path::new("/nonexistent-home/u"),
        )
        .expect("parses");
        assert_eq!(
            resolve_workspace(&c, "web").expect_err("refused").to_string(),
            "/srv/web/jailoc.toml: the config file is inside /srv/web, which a container can write (workspaces.web.paths, line 2): the agent could rewrite its own configuration; keep config.toml outside every workspace path and read-write mount"
        );
    }
}
