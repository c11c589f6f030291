//! Workspace plumbing shared by the commands: loading (and first-use creation of) the config,
//! picking the workspace, where its files live, the password, and writing the generated files.

use std::path::{Path, PathBuf};

use crate::compose::{self, ComposeInput};
use crate::config::schema::{
    HostPath, PasswordMode, SecretDest, SecretEntry, SecretSource, DEFAULT_WORKSPACE,
};
use crate::config::{self, Config, Workspace};
use crate::context::Context;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::{fsutil, image, policy};

/// The config file: `--config`, else `$XDG_CONFIG_HOME/jailoc/config.toml`.
pub fn config_path(ctx: &Context, explicit: Option<&Path>) -> PathBuf {
    match explicit {
        Some(p) if p.is_absolute() => p.to_path_buf(),
        Some(p) => ctx.cwd.join(p),
        None => ctx.config_dir().join("config.toml"),
    }
}

/// Loads the config, creating it with commented defaults on first use (only at the default
/// location: a missing `--config` file is an error, not something to create).
pub fn load_config(ctx: &mut Context, explicit: Option<&Path>) -> Result<Config> {
    let path = config_path(ctx, explicit);
    if explicit.is_none() && !path.exists() {
        fsutil::write_atomic(&path, config::defaults::DEFAULT_CONFIG.as_bytes(), 0o600)
            .map_err(|e| Error::file("create", &path, e))?;
        ctx.warn(&format!(
            "created {} with commented defaults",
            path.display()
        ));
    }
    let cfg = config::load_file(&path, &ctx.dirs())?;
    // No process jailoc starts (compose, builds, attach) inherits a `from_env` secret's host
    // variable: its value reaches the container only as a file under /run/secrets.
    ctx.hidden_env = cfg.secret_source_vars();
    // The password reaches the container through its 0600 env file only.
    ctx.hidden_env.push(PASSWORD_VAR.to_string());
    // No program jailoc starts may come from a directory a container can write.
    ctx.writable = config::merge::writable_paths(&cfg);
    Ok(cfg)
}

/// `-w NAME`, else the workspace with the longest path that contains the current directory
/// (by components), else `default`.
pub fn select(ctx: &Context, cfg: &Config, explicit: Option<&str>) -> String {
    select_for(cfg, explicit, &ctx.cwd)
}

/// [`select`] for directory `dir` instead of the current one (`jailoc PATH`).
pub fn select_for(cfg: &Config, explicit: Option<&str>, dir: &Path) -> String {
    if let Some(w) = explicit {
        return w.to_string();
    }
    let cwd = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut best: Option<(usize, &str)> = None;
    for (name, sec) in &cfg.workspaces {
        for p in sec.paths.iter().flatten().chain(&sec.refused_paths) {
            if cwd.starts_with(&p.path) {
                let depth = p.path.components().count();
                if best.is_none_or(|(d, _)| depth > d) {
                    best = Some((depth, name));
                }
            }
        }
    }
    best.map(|(_, n)| n.to_string())
        .unwrap_or_else(|| DEFAULT_WORKSPACE.to_string())
}

/// Where a workspace's files live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Files {
    /// `$XDG_CONFIG_HOME/jailoc/workspaces/NAME/`, mounted read-only at `/etc/jailoc`.
    pub policy_dir: PathBuf,
    /// `$XDG_CACHE_HOME/jailoc/NAME/docker-compose.yml` (0600).
    pub compose_file: PathBuf,
    /// The user's optional `compose.override.yml` in the policy dir (a second `-f`).
    pub override_file: PathBuf,
    /// `$XDG_CONFIG_HOME/jailoc/passwords/NAME.env` (0600), an env file for compose.
    pub password_file: PathBuf,
    /// `$XDG_CACHE_HOME/jailoc/NAME/secrets/` (0700): every secret's value (copied at `up`), one
    /// file each, written at `up` and removed at `down`.
    pub secrets_dir: PathBuf,
    /// `$XDG_DATA_HOME/jailoc/NAME/opencode` (0700): the workspace's own OpenCode data
    /// directory (sessions, snapshots, a copy of the host's logins), which no host program
    /// reads. Never the host's `~/.local/share/opencode`.
    pub data_dir: PathBuf,
}

/// The files of workspace `name`.
pub fn files(ctx: &Context, name: &str) -> Files {
    let policy_dir = ctx.config_dir().join("workspaces").join(name);
    Files {
        override_file: policy_dir.join("compose.override.yml"),
        policy_dir,
        compose_file: ctx.cache_dir().join(name).join("docker-compose.yml"),
        secrets_dir: ctx.cache_dir().join(name).join("secrets"),
        data_dir: ctx.data_dir().join(name).join("opencode"),
        password_file: ctx
            .config_dir()
            .join("passwords")
            .join(format!("{name}.env")),
    }
}

impl Files {
    /// The `-f` arguments: the generated file, plus the override when it exists.
    pub fn compose_args(&self) -> Vec<PathBuf> {
        let mut v = vec![self.compose_file.clone()];
        if self.override_file.is_file() {
            v.push(self.override_file.clone());
        }
        v
    }
}

/// The compose project name.
pub fn project(name: &str) -> String {
    format!("jailoc-{name}")
}

/// The companion `sandbox-init`: `JAILOC_SANDBOX_INIT`, else next to the `jailoc` executable,
/// else on `PATH`.
pub fn find_sandbox_init(ctx: &Context) -> Result<PathBuf> {
    if let Some(p) = ctx.var("JAILOC_SANDBOX_INIT") {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(std::fs::canonicalize(&p).unwrap_or(p));
        }
        return Err(Error::NoSandboxInit {
            detail: format!("JAILOC_SANDBOX_INIT={} is not a file", p.display()),
        });
    }
    if let Some(dir) = &ctx.exe_dir {
        let p = dir.join("sandbox-init");
        if p.is_file() {
            return Ok(p);
        }
    }
    if let Some(path) = ctx.var("PATH") {
        for dir in std::env::split_paths(path) {
            let p = dir.join("sandbox-init");
            if p.is_file() {
                return Ok(std::fs::canonicalize(&p).unwrap_or(p));
            }
        }
    }
    let beside = ctx
        .exe_dir
        .as_ref()
        .map(|d| format!(" ({})", d.display()))
        .unwrap_or_default();
    Err(Error::NoSandboxInit {
        detail: format!(
            "it is not next to the jailoc executable{beside} nor on PATH, and JAILOC_SANDBOX_INIT is not set"
        ),
    })
}

/// The variable OpenCode reads its server password from (and `password_mode` "env"/"auto"
/// take it from on the host).
pub const PASSWORD_VAR: &str = "OPENCODE_SERVER_PASSWORD";

/// The OpenCode server password per `password_mode`, kept in the 0600 env file compose reads
/// (so it is never on a command line or in the compose file). `file`: generated once (32
/// random bytes) and reused. `env`: `$OPENCODE_SERVER_PASSWORD`, copied into the file. `auto`:
/// the variable if set, else the file. Returns the password and whether the file changed (a
/// running container must then be recreated).
pub fn ensure_password(ctx: &Context, mode: PasswordMode, path: &Path) -> Result<(String, bool)> {
    const KEY: &str = "OPENCODE_SERVER_PASSWORD=";
    let from_env = match mode {
        PasswordMode::File | PasswordMode::Keyring => None,
        PasswordMode::Env | PasswordMode::Auto => ctx.var(PASSWORD_VAR),
    };
    if let Some(pw) = from_env {
        if pw.contains(['\n', '\r', '\0']) {
            return Err(Error::Other(format!(
                "failed to use {PASSWORD_VAR} from the environment: it contains a line break or NUL"
            )));
        }
        let changed = fsutil::write_if_changed(path, format!("{KEY}{pw}\n").as_bytes(), 0o600)
            .map_err(|e| Error::file("write", path, e))?;
        return Ok((pw.to_string(), changed));
    }
    if mode == PasswordMode::Env {
        return Err(password_env_missing());
    }
    if let Ok(text) = std::fs::read_to_string(path) {
        if let Some(pw) = text
            .lines()
            .find_map(|l| l.strip_prefix(KEY))
            .filter(|p| !p.is_empty())
        {
            let mut changed = false;
            if fsutil::mode_of(path).is_some_and(|m| m != 0o600) {
                fsutil::write_atomic(path, text.as_bytes(), 0o600)
                    .map_err(|e| Error::file("write", path, e))?;
                changed = true;
            }
            return Ok((pw.to_string(), changed));
        }
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::Other(format!("failed to generate a password: {e}")))?;
    let pw: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    fsutil::write_atomic(path, format!("{KEY}{pw}\n").as_bytes(), 0o600)
        .map_err(|e| Error::file("write", path, e))?;
    Ok((pw, true))
}

fn password_env_missing() -> Error {
    Error::Other(format!(
        "failed to read the server password: password_mode = \"env\" but {PASSWORD_VAR} is not set or empty (export it, or use password_mode = \"auto\" or \"file\")"
    ))
}

/// What `prepare` produced.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub files: Files,
    pub image: String,
    /// The compose file's content changed (so a running project must be recreated).
    pub compose_changed: bool,
    /// A `from_env` secret's value changed: the container must be recreated even though the
    /// compose file is the same (`up --force-recreate`).
    pub secrets_changed: bool,
    /// What the user configured in `policy.toml` or `secret-env` changed (an allowlist entry
    /// removed): sandbox-init reads them only at boot, so the container must be recreated too.
    pub policy_changed: bool,
}

/// Checks what must exist on the host before anything runs: the workspace's paths (a missing
/// bind source would be created by the engine, as root), its secret files and the companion
/// sandbox-init. Returns sandbox-init's path.
pub fn check_inputs(ctx: &Context, ws: &Workspace) -> Result<PathBuf> {
    for p in &ws.paths {
        if !p.is_dir() {
            return Err(Error::Workspace {
                workspace: ws.name.clone(),
                message: format!("path {} does not exist or is not a directory", p.display()),
            });
        }
    }
    for secret in ws.secrets.values() {
        check_secret_source(ctx, ws, secret)?;
    }
    if let Some(sock) = ctx.var("SSH_AUTH_SOCK").filter(|_| ws.ssh_auth_sock) {
        // Mounted by path: the engine follows whatever it resolves to at `up`, through every
        // symlink on the way (one inside a writable path is the agent's to retarget).
        let real = std::fs::canonicalize(sock).unwrap_or_else(|_| PathBuf::from(sock));
        let refuse = |why: String| Error::Workspace {
            workspace: ws.name.clone(),
            message: format!("ssh_auth_sock: $SSH_AUTH_SOCK {sock}: {why}"),
        };
        let hops = crate::fsutil::resolution(Path::new(sock));
        let last = hops.len().saturating_sub(1);
        for (i, hop) in hops.iter().enumerate() {
            if let Some(w) = ws
                .writable
                .iter()
                .find(|w| *hop != w.path && hop.starts_with(&w.path))
            {
                return Err(refuse(format!(
                    "it resolves {} {}, inside {w}, so that container's agent could replace it (with the engine's socket, say)",
                    if i == last { "to" } else { "through" },
                    hop.display()
                )));
            }
        }
        crate::config::paths::check_host_path(sock, &real, &ctx.dirs()).map_err(refuse)?;
    }
    if ws.password_mode == PasswordMode::Env && ctx.var(PASSWORD_VAR).is_none() {
        return Err(Error::Workspace {
            workspace: ws.name.clone(),
            message: format!(
                "{}: password_mode: \"env\" needs {PASSWORD_VAR} set in the environment (export it, or use password_mode = \"auto\" or \"file\")",
                ws.config_file.display()
            ),
        });
    }
    // It runs as root (PID 1) in every container and goes into the built-in image.
    let sandbox_init = find_sandbox_init(ctx)?;
    ctx.check_not_writable(&sandbox_init)
        .map_err(|e| Error::Workspace {
            workspace: ws.name.clone(),
            message: e.to_string(),
        })?;
    Ok(sandbox_init)
}

/// Up-time checks of one secret's source: a `from_env` variable must be set and non-empty; a
/// `from_file` must be a regular file and not a symlink (its directory was resolved at load;
/// the file itself is never followed: a symlink there could point anywhere, `~/.ssh`
/// included). Errors name the config file, line, key and value.
fn check_secret_source(ctx: &Context, ws: &Workspace, secret: &SecretEntry) -> Result<()> {
    match &secret.source {
        SecretSource::HostEnv(var) => {
            if ctx.var(var).is_none() {
                return Err(secret_error(ws, secret, format!(
                    "from_env {var:?}: the host environment variable {var} is not set or empty (export it before `jailoc up`)"
                )));
            }
        }
        SecretSource::HostFile(hp) => {
            let meta = std::fs::symlink_metadata(&hp.path)
                .map_err(|e| unreadable_secret(ws, secret, hp, &e))?;
            if meta.file_type().is_symlink() {
                return Err(secret_error(ws, secret, format!(
                    "from_file {:?}: {} is a symbolic link: jailoc does not follow a symlink to a secret (it could point anywhere, ~/.ssh included); name the file itself",
                    hp.raw,
                    hp.path.display()
                )));
            }
            if !meta.is_file() {
                return Err(secret_error(
                    ws,
                    secret,
                    format!(
                        "from_file {:?}: {} is not a regular file",
                        hp.raw,
                        hp.path.display()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// An up-time error about `secret`, naming the config file, line and key.
/// A `from_file` source that could not be read, as the error naming file, line and key.
fn unreadable_secret(
    ws: &Workspace,
    secret: &SecretEntry,
    hp: &HostPath,
    e: &std::io::Error,
) -> Error {
    secret_error(
        ws,
        secret,
        format!(
            "from_file {:?}: failed to read {}: {e}",
            hp.raw,
            hp.path.display()
        ),
    )
}

fn secret_error(ws: &Workspace, secret: &SecretEntry, what: String) -> Error {
    Error::Workspace {
        workspace: ws.name.clone(),
        message: format!(
            "{}:{}: {}: {what}",
            ws.config_file.display(),
            secret.line,
            secret.key
        ),
    }
}

/// Copies each secret's value into its own file in `files.secrets_dir` (atomically; 0600 for
/// an environment secret, which sandbox-init reads as root; 0444 for a file secret, which the
/// agent reads itself) and removes files of secrets no longer configured, so the container
/// never mounts a user's path as a secret. A `from_file` source is read without following a
/// symlink at its last component and without blocking on a FIFO (it is checked before, but
/// could be swapped in between). Returns whether anything changed: a bind-mounted file is
/// pinned by inode, so a running container must then be recreated to see the new value.
pub fn write_secret_files(ctx: &Context, ws: &Workspace, files: &Files) -> Result<bool> {
    let dir = &files.secrets_dir;
    let mut keep = Vec::new();
    let mut changed = false;
    for secret in ws.secrets.values() {
        let value = match &secret.source {
            SecretSource::HostEnv(var) => ctx.var(var).unwrap_or_default().as_bytes().to_vec(),
            SecretSource::HostFile(hp) => fsutil::read_regular_nofollow(&hp.path)
                .map_err(|e| unreadable_secret(ws, secret, hp, &e))?,
        };
        let mode = match secret.dest {
            SecretDest::Env => 0o600,
            SecretDest::File => 0o444,
        };
        let path = dir.join(&secret.name);
        changed |= fsutil::write_if_changed(&path, &value, mode)
            .map_err(|e| Error::file("write", &path, e))?;
        keep.push(secret.name.clone());
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !keep.contains(&name) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    Ok(changed)
}

/// Removes the secrets' copies (at `down`: the values do not outlive the container).
pub fn remove_secret_files(files: &Files) -> Result<()> {
    match std::fs::remove_dir_all(&files.secrets_dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::file("remove", &files.secrets_dir, e))
        }
        _ => Ok(()),
    }
}

/// Warns when a `mounts` entry makes OpenCode's host config or `~/.opencode` writable (the Go
/// jailoc's default, and the line in its config template): the agent could then plant code
/// the host's OpenCode runs.
fn warn_writable_host_code(ctx: &mut Context, ws: &Workspace) {
    let dirs = compose::host_code_dirs(&ctx.home(), &ctx.opencode_config_dir());
    for m in &ws.mounts {
        let Some(host) = &m.host else { continue };
        if m.read_only {
            continue;
        }
        if let Some(d) = dirs
            .iter()
            .find(|d| host.starts_with(d) || d.starts_with(host))
        {
            ctx.warn(&format!(
                "warning: {} is mounted read-write at {}: the agent can change what your host's OpenCode loads from {} (add :ro to the mount to prevent it)",
                host.display(),
                m.container,
                d.display()
            ));
        }
    }
}

/// The names in a workspace's policy directory that are jailoc's: the two files it writes for
/// sandbox-init, and the user's optional `compose.override.yml`.
pub fn policy_dir_names(files: &Files) -> [String; 3] {
    let own = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    [
        jailoc_policy::POLICY_FILE.to_string(),
        jailoc_policy::SECRET_ENV_FILE.to_string(),
        own(&files.override_file),
    ]
}

/// Removes everything in the policy directory that is not in [`policy_dir_names`] (a symlink
/// as a link, a directory with its contents); returns the names removed, sorted.
pub fn clean_policy_dir(files: &Files) -> Result<Vec<String>> {
    let dir = &files.policy_dir;
    let keep = policy_dir_names(files);
    let mut removed = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::file("read", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::file("read", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if keep.contains(&name) {
            continue;
        }
        let path = entry.path();
        let is_dir = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
        let gone = if is_dir {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        gone.map_err(|e| Error::file("remove", &path, e))?;
        removed.push(name);
    }
    removed.sort();
    Ok(removed)
}

/// The file in OpenCode's data directory that holds the provider logins.
pub const AUTH_FILE: &str = "auth.json";

/// Creates the workspace's own OpenCode data directory (0700) and copies the host OpenCode's
/// logins (`$XDG_DATA_HOME/opencode/auth.json`) into it (0600), unless the user's `mounts`
/// replace or remove that mount. The host's file is read without following a symlink and
/// refused unless it is a regular file (an agent under an older jailoc, which mounted the
/// host's directory, could have planted one); the copy goes through a fresh temp file renamed
/// over the agent's `auth.json`, so a symlink or FIFO the agent put there is replaced, never
/// written through or opened.
pub fn prepare_data_dir(ctx: &Context, ws: &Workspace, files: &Files) -> Result<()> {
    if ws
        .mounts
        .iter()
        .any(|m| m.container == compose::DATA_TARGET)
    {
        return Ok(());
    }
    let dir = &files.data_dir;
    fsutil::create_dir_private(dir).map_err(|e| Error::file("create", dir, e))?;
    let meta = std::fs::symlink_metadata(dir).map_err(|e| Error::file("read", dir, e))?;
    if !meta.is_dir() {
        return Err(Error::Workspace {
            workspace: ws.name.clone(),
            message: format!(
                "{} is not a directory: jailoc keeps the workspace's OpenCode data there (remove what is there)",
                dir.display()
            ),
        });
    }
    // Root's jailoc (`sudo jailoc`, a CI runner) makes a root-owned directory the agent (uid
    // 1000) could not write: hand it to the agent. `lchown`: never through a symlink.
    if std::os::unix::fs::MetadataExt::uid(&meta) == 0 {
        std::os::unix::fs::lchown(dir, Some(policy::AGENT_UID), Some(policy::AGENT_GID))
            .map_err(|e| Error::file("chown", dir, e))?;
    }
    if fsutil::mode_of(dir) != Some(0o700) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::file("restrict", dir, e))?;
    }
    let host_auth = ctx.opencode_data_dir().join(AUTH_FILE);
    let meta = match std::fs::symlink_metadata(&host_auth) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::file("read", &host_auth, e)),
        Ok(m) => m,
    };
    let refuse = |what: &str| {
        Error::Workspace {
        workspace: ws.name.clone(),
        message: format!(
            "failed to copy OpenCode's logins from {}: {what}; jailoc copies only a regular file there (an agent under an older jailoc, which mounted that directory, could have planted it): check it, and replace it with a regular file or remove it",
            host_auth.display()
        ),
    }
    };
    if meta.file_type().is_symlink() {
        return Err(refuse("it is a symbolic link"));
    }
    if !meta.is_file() {
        return Err(refuse("it is not a regular file"));
    }
    let data = fsutil::read_regular_nofollow(&host_auth).map_err(|e| refuse(&e.to_string()))?;
    fsutil::replace_in_dir(dir, AUTH_FILE, &data, 0o600)
        .map_err(|e| Error::file("write", dir.join(AUTH_FILE), e))
}

/// Checks the inputs, resolves (and if needed builds) the image, and writes the policy dir,
/// password file and compose file. The order matters: nothing is written before every check
/// passed, and the compose file (which `up` runs) comes last.
pub fn prepare(ctx: &mut Context, ws: &Workspace, engine: &Engine) -> Result<Prepared> {
    // 1. Inputs that must exist on the host.
    let sandbox_init = check_inputs(ctx, ws)?;
    // 2. The image (may build, streaming the engine's output).
    let image = image::ensure(ctx, engine, ws, &sandbox_init)?;
    // 3. Generated files.
    if ws.password_mode == PasswordMode::Keyring {
        ctx.warn(&format!(
            "warning: password_mode = \"keyring\": this jailoc has no OS keyring; the server password is stored like password_mode = \"file\", in {} (0600)",
            files(ctx, &ws.name).password_file.display()
        ));
    }
    warn_writable_host_code(ctx, ws);
    for w in builtin_mounts(ctx, ws).1 {
        ctx.warn(&w);
    }
    let files = files(ctx, &ws.name);
    // The host's own addresses are walled off like the private ranges (contract B).
    let addrs = (ctx.host_addrs)().map_err(Error::HostAddrs)?;
    let mut policy_changed = policy::write_policy_dir(
        &files.policy_dir,
        ws,
        &crate::hostaddrs::blocked_networks(addrs),
    )?;
    // The directory is jailoc's alone: what sandbox-init reads must be exactly what `jailoc
    // config` shows. A file jailoc did not write there (the Go jailoc's `allowed-hosts`, which
    // sandbox-init would merge into the allowlist) goes, and the container is recreated so
    // that the rules it runs with lose it too.
    let removed = clean_policy_dir(&files)?;
    if !removed.is_empty() {
        ctx.warn(&format!(
            "removed from {}: {} (that directory is jailoc's alone: the container enforces exactly the policy `jailoc config` shows)",
            files.policy_dir.display(),
            removed.join(", ")
        ));
        policy_changed = true;
    }
    let secrets_changed = write_secret_files(ctx, ws, &files)?;
    prepare_data_dir(ctx, ws, &files)?;
    let tui_dir = crate::tui::dir(&ctx.data_dir());
    crate::tui::write(&tui_dir).map_err(|e| Error::file("write", &tui_dir, e))?;
    let (_, password_changed) = ensure_password(ctx, ws.password_mode, &files.password_file)?;
    let expanded = expand_env(ctx, ws)?;
    let yaml = render_compose(ctx, &expanded, &files, &image, &sandbox_init);
    let compose_changed = fsutil::write_if_changed(&files.compose_file, yaml.as_bytes(), 0o600)
        .map_err(|e| Error::file("write", &files.compose_file, e))?
        || password_changed;
    Ok(Prepared {
        files,
        image,
        compose_changed,
        secrets_changed,
        policy_changed,
    })
}

/// `ws` with its `env` and env-file values expanded from the host's environment
/// ([`interpolate`](crate::interpolate)), as the Go jailoc's compose does at `up`; a warning for
/// each variable that is not set (it expands to nothing). Errors name the config file, line and
/// key (or the env file) and the value.
pub fn expand_env(ctx: &mut Context, ws: &Workspace) -> Result<Workspace> {
    let mut out = ws.clone();
    let lookup = |name: &str| ctx.env.get(name).cloned();
    let mut warnings = Vec::new();
    for (k, v) in out.env.iter_mut() {
        let place = match (ws.env_from_file.get(k), ws.env_lines.get(k)) {
            (Some(file), _) => (file.clone(), 0, format!("env_file: {k}")),
            (None, Some((key, line))) => (ws.config_file.clone(), *line, format!("{key}.{k}")),
            (None, None) => (ws.config_file.clone(), 0, format!("env.{k}")),
        };
        let e = crate::interpolate::expand(v, &lookup).map_err(|m| {
            Error::Config(crate::config::ConfigError {
                file: place.0.clone(),
                line: place.1,
                key: place.2.clone(),
                message: format!("failed to expand {v:?}: {m}"),
            })
        })?;
        for name in &e.unset {
            warnings.push(format!(
                "warning: {}: ${name} is not set in your environment: it is empty in the container (write $$ for a literal $)",
                place.2
            ));
        }
        *v = e.value;
    }
    for w in warnings {
        ctx.warn(&w);
    }
    Ok(out)
}

/// The built-in mounts that exist on this host, less those whose source resolves into a path a
/// container can write (a `~/.gitconfig` symlinked into a dotfiles repo that is a workspace
/// path): that agent could point it at anything before the next `up`. Returns the mounts and a
/// warning for each one left out.
pub fn builtin_mounts(
    ctx: &Context,
    ws: &Workspace,
) -> (Vec<crate::config::merge::Mount>, Vec<String>) {
    let all = compose::builtin_mounts(&compose::builtin_candidates(
        &ctx.home(),
        &ctx.opencode_config_dir(),
        ws.git_config,
        ws.ssh_auth_sock,
    ));
    let mut warnings = Vec::new();
    let kept = all
        .into_iter()
        .filter(|m| {
            let Some(host) = &m.host else { return true };
            if ws.mounts.iter().any(|u| u.container == m.container) {
                return true; // replaced or removed by the user's `mounts`
            }
            // Where it ends, and every symlink on the way: one inside a writable path is the
            // agent's to point anywhere (`~/.ssh` included) before the next `up`. Strictly
            // inside: the writable path itself cannot be swapped by its agent.
            let hops = crate::fsutil::resolution(host);
            let last = hops.len().saturating_sub(1);
            let found = hops.iter().enumerate().find_map(|(i, hop)| {
                ws.writable
                    .iter()
                    .find(|w| *hop != w.path && hop.starts_with(&w.path))
                    .map(|w| (i == last, hop, w))
            });
            match found {
                None => true,
                Some((end, hop, w)) => {
                    warnings.push(format!(
                        "warning: not mounting {} at {}: it resolves {} {}, inside {w}, so that container's agent could point it anywhere",
                        host.display(),
                        m.container,
                        if end { "to" } else { "through" },
                        hop.display()
                    ));
                    false
                }
            }
        })
        .collect();
    (kept, warnings)
}

/// Renders the compose file for `ws`, deciding the host-dependent optional mounts.
pub fn render_compose(
    ctx: &Context,
    ws: &Workspace,
    files: &Files,
    image: &str,
    sandbox_init: &Path,
) -> String {
    let (builtin, _) = builtin_mounts(ctx, ws);
    let ssh = ctx.var("SSH_AUTH_SOCK").map(PathBuf::from);
    let dind = ctx
        .var("JAILOC_DIND_IMAGE")
        .unwrap_or(compose::DEFAULT_DIND_IMAGE)
        .to_string();
    compose::render(&ComposeInput {
        ws,
        image,
        sandbox_init,
        policy_dir: &files.policy_dir,
        password_file: &files.password_file,
        secrets_dir: &files.secrets_dir,
        data_dir: &files.data_dir,
        tui_dir: &crate::tui::dir(&ctx.data_dir()),
        builtin: &builtin,
        // A socket that is gone would make the engine fail (or create a directory there).
        ssh_auth_sock: ssh.as_deref().filter(|p| ws.ssh_auth_sock && p.exists()),
        dind_image: &dind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_str;
    use crate::testutil::{context, tempdir, Recorder};

    #[test]
    fn nothing_runs_or_is_written_when_a_path_is_missing() {
        let dir = tempdir();
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        let rec = Recorder::default();
        let log = rec.0.clone();
        let (mut c, _, _) = context(&root, rec);
        let home = root.join("home");
        let cfg = parse_str(
            "[workspaces.app]\npaths = [\"~/src/missing\"]\n",
            &root.join("config.toml"),
            &home,
        )
        .expect("config");
        let ws = crate::config::resolve_workspace(&cfg, "app").expect("ws");
        let engine = Engine {
            compose: vec!["docker".into(), "compose".into()],
            cli: "docker".into(),
        };
        let err = prepare(&mut c, &ws, &engine).expect_err("missing path");
        assert_eq!(
            err.to_string(),
            format!(
                "failed to prepare workspace \"app\": path {}/src/missing does not exist or is not a directory",
                home.display()
            )
        );
        assert!(
            log.borrow().is_empty(),
            "nothing spawned: {:?}",
            log.borrow()
        );
        assert!(!home.join(".config/jailoc/workspaces/app").exists());
        assert!(!home.join(".cache/jailoc/app").exists());

        // With the path present: image inspect (the tag exists), then the files.
        std::fs::create_dir_all(home.join("src/missing")).expect("mkdir");
        let p = prepare(&mut c, &ws, &engine).expect("prepare");
        assert!(p.compose_changed);
        assert_eq!(log.borrow().len(), 1);
        assert!(log.borrow()[0].starts_with("docker image inspect --format {{.Id}} jailoc-base:"));
        assert!(p.files.compose_file.is_file());
        // The host's own addresses (the context's fixed ones) are walled off, loopback not.
        let policy =
            std::fs::read_to_string(p.files.policy_dir.join("policy.toml")).expect("policy");
        assert!(
            policy.contains("\nblocked_networks = [\"203.0.113.7/32\", \"2001:db8::7/128\"]\n"),
            "{policy}"
        );
        let again = prepare(&mut c, &ws, &engine).expect("prepare");
        assert!(!again.compose_changed, "unchanged config, unchanged file");
    }

    #[test]
    fn selection_prefers_the_deepest_path() {
        let dir = tempdir();
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        std::fs::create_dir_all(root.join("home/src/app/sub")).expect("mkdir");
        std::fs::create_dir_all(root.join("home/src/application")).expect("mkdir");
        let (mut c, _, _) = context(&root, Recorder::default());
        let cfg = parse_str(
            "[workspaces.outer]\npaths = [\"~/src\"]\n[workspaces.app]\npaths = [\"~/src/app\"]\n",
            &root.join("config.toml"),
            &root.join("home"),
        )
        .expect("config");
        c.cwd = root.join("home/src/app/sub");
        assert_eq!(select(&c, &cfg, None), "app");
        // By components, not by string prefix: ~/src/application is not inside ~/src/app.
        c.cwd = root.join("home/src/application");
        assert_eq!(select(&c, &cfg, None), "outer");
        c.cwd = root.clone();
        assert_eq!(select(&c, &cfg, None), "default");
        assert_eq!(select(&c, &cfg, Some("x")), "x");
    }

    fn ws_of(root: &Path, text: &str, name: &str) -> Workspace {
        let cfg = parse_str(text, &root.join("config.toml"), &root.join("home")).expect("config");
        crate::config::resolve_workspace(&cfg, name).expect("ws")
    }

    /// Issue 10, item 1: the host's OpenCode data directory (whose snapshot repositories'
    /// git config the host's OpenCode runs) is never mounted, wherever XDG_DATA_HOME puts it;
    /// the workspace gets jailoc's own directory there instead.
    #[test]
    fn attack_host_opencode_data_dir_is_never_a_mount_source() {
        let dir = tempdir();
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        std::fs::create_dir_all(root.join("home/src/w")).expect("mkdir");
        let (mut c, _, _) = context(&root, Recorder::default());
        for data_home in [None, Some(root.join("xdg-data"))] {
            if let Some(d) = &data_home {
                c.env
                    .insert("XDG_DATA_HOME".into(), d.to_string_lossy().into_owned());
            }
            let host_data = c.opencode_data_dir();
            std::fs::create_dir_all(host_data.join("snapshot/p/0123")).expect("mkdir");
            let ws = ws_of(&root, "[workspaces.w]\npaths = [\"~/src/w\"]\n", "w");
            let f = files(&c, "w");
            let yaml = render_compose(&c, &ws, &f, "img", Path::new("/bin/true"));
            let sources: Vec<&str> = yaml
                .lines()
                .filter_map(|l| l.trim().strip_prefix("source: \""))
                .map(|l| l.trim_end_matches('"'))
                .collect();
            assert!(!sources.is_empty(), "{yaml}");
            for src in &sources {
                assert!(
                    !Path::new(src).starts_with(&host_data),
                    "{src} is the host's OpenCode data:\n{yaml}"
                );
            }
            assert_eq!(f.data_dir, c.data_dir().join("w/opencode"));
            assert!(yaml.contains(&format!(
                "        source: \"{}\"\n        target: \"/home/agent/.local/share/opencode\"\n        read_only: false\n",
                f.data_dir.display()
            )), "{yaml}");
        }
    }

    #[test]
    fn two_workspaces_get_different_data_dirs() {
        let dir = tempdir();
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        let (c, _, _) = context(&root, Recorder::default());
        let (a, b) = (files(&c, "a"), files(&c, "b"));
        assert_ne!(a.data_dir, b.data_dir);
        assert!(!a.data_dir.starts_with(&b.data_dir) && !b.data_dir.starts_with(&a.data_dir));
        assert_eq!(a.data_dir, root.join("home/.local/share/jailoc/a/opencode"));
    }

    /// A context whose host OpenCode has logins, and a workspace `w`.
    fn auth_setup(root: &Path) -> (Context, Workspace, Files) {
        let (c, _, _) = context(root, Recorder::default());
        std::fs::create_dir_all(c.opencode_data_dir()).expect("mkdir");
        std::fs::write(c.opencode_data_dir().join(AUTH_FILE), "LOGINS").expect("write");
        let ws = ws_of(root, "[workspaces.w]\n", "w");
        let f = files(&c, "w");
        std::fs::create_dir_all(&f.data_dir).expect("mkdir");
        (c, ws, f)
    }

    /// The agent replaced auth.json in its data dir with a symlink to a host file: the copy at
    /// `up` replaces the symlink and never writes through it.
    #[test]
    fn attack_symlinked_auth_json_is_replaced_not_written_through() {
        let dir = tempdir();
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        let (c, ws, f) = auth_setup(&root);
        let victim = root.join("home/.bashrc");
        std::fs::write(&victim, "ORIGINAL").expect("write");
        std::os::unix::fs::symlink(&victim, f.data_dir.join(AUTH_FILE)).expect("symlink");
        prepare_data_dir(&c, &ws, &f).expect("copy");
        assert_eq!(std::fs::read_to_string(&victim).expect("read"), "ORIGINAL");
        let copy = f.data_dir.join(AUTH_FILE);
        let meta = std::fs::symlink_metadata(&copy).expect("stat");
        assert!(meta.is_file(), "a regular file now");
        assert_eq!(std::fs::read_to_string(&copy).expect("read"), "LOGINS");
        assert_eq!(fsutil::mode_of(&copy), Some(0o600));
        assert_eq!(fsutil::mode_of(&f.data_dir), Some(0o700));
        let names: Vec<String> = std::fs::read_dir(&f.data_dir)
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [AUTH_FILE], "no temp file left behind");
    }

    /// Root's jailoc (`sudo jailoc`, a CI runner) must leave a data directory and logins the
    /// agent (uid 1000) can use: OpenCode exits at start when it cannot write there. As
    /// another user the owner stays that user's (the test then checks nothing changes hands).
    #[test]
    fn data_dir_and_logins_belong_to_the_agent_when_root_makes_them() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempdir();
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        let (c, ws, f) = auth_setup(&root);
        let me = std::fs::metadata(&root).expect("stat").uid();
        prepare_data_dir(&c, &ws, &f).expect("prepare");
        let want = if me == 0 { policy::AGENT_UID } else { me };
        let data = std::fs::metadata(&f.data_dir).expect("stat");
        let auth = std::fs::metadata(f.data_dir.join(AUTH_FILE)).expect("stat");
        assert_eq!((data.uid(), auth.uid()), (want, want));
        if me == 0 {
            assert_eq!(
                (data.gid(), auth.gid()),
                (policy::AGENT_GID, policy::AGENT_GID)
            );
        }
    }

    fn mkfifo(p: &Path) {
        let st = std::process::Command::new("mkfifo")
            .arg(p)
            .status()
            .expect("mkfifo");
        assert!(st.success());
    }

    /// Runs `f` on a thread; a watchdog (not a timing assertion: a hang is the failure)
    /// turns a blocked open into a test failure instead of a stuck suite.
    fn without_hanging<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(std::time::Duration::from_secs(60))
            .expect("blocked on a FIFO")
    }

    /// The agent replaced auth.json with a FIFO: the copy does not open it, so `up` does not
    /// block, and the FIFO is replaced.
    #[test]
    fn attack_fifo_as_auth_json_does_not_block_the_copy() {
        let dir = tempdir();
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        let (_, _, f) = auth_setup(&root);
        mkfifo(&f.data_dir.join(AUTH_FILE));
        let r = root.clone();
        let copied = without_hanging(move || {
            let (c, ws, f) = auth_setup(&r);
            prepare_data_dir(&c, &ws, &f).map_err(|e| e.to_string())
        });
        assert_eq!(copied, Ok(()));
        let copy = f.data_dir.join(AUTH_FILE);
        assert_eq!(std::fs::read_to_string(&copy).expect("read"), "LOGINS");
    }

    /// The host's own auth.json is a symlink (planted under an older jailoc, which mounted the
    /// host's data dir) or a FIFO: refused, with what to do, and nothing is copied.
    #[test]
    fn attack_planted_host_auth_json_symlink_or_fifo_is_refused() {
        let dir = tempdir();
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        let (c, ws, f) = auth_setup(&root);
        let host_auth = c.opencode_data_dir().join(AUTH_FILE);
        let key = root.join("home/id_ed25519");
        std::fs::write(&key, "PRIVATE KEY").expect("write");
        std::fs::remove_file(&host_auth).expect("rm");
        std::os::unix::fs::symlink(&key, &host_auth).expect("symlink");
        let e = prepare_data_dir(&c, &ws, &f).expect_err("symlink");
        assert_eq!(
            e.to_string(),
            format!(
                "failed to prepare workspace \"w\": failed to copy OpenCode's logins from {}: it is a symbolic link; jailoc copies only a regular file there (an agent under an older jailoc, which mounted that directory, could have planted it): check it, and replace it with a regular file or remove it",
                host_auth.display()
            )
        );
        assert!(!f.data_dir.join(AUTH_FILE).exists());
        std::fs::remove_file(&host_auth).expect("rm");
        mkfifo(&host_auth);
        let r = root.clone();
        let e = without_hanging(move || {
            let (c, _, _) = context(&r, Recorder::default());
            let ws = ws_of(&r, "[workspaces.w]\n", "w");
            prepare_data_dir(&c, &ws, &files(&c, "w")).map_err(|e| e.to_string())
        });
        assert!(
            e.expect_err("fifo")
                .contains(": it is not a regular file; "),
            "refused"
        );
        assert!(!f.data_dir.join(AUTH_FILE).exists());
    }

    /// A built-in mount whose source resolves into a workspace path (a `~/.gitconfig`
    /// symlinked into a dotfiles repo the agent can write): the agent could point it at the
    /// engine's socket before the next `up`, which would mount that. It is left out, with a
    /// warning.
    #[test]
    fn attack_builtin_source_symlinked_into_a_workspace_is_not_mounted() {
        let dir = tempdir();
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        let h = root.join("home");
        std::fs::create_dir_all(h.join("dotfiles")).expect("mkdir");
        std::fs::write(h.join("dotfiles/gitconfig"), "[user]\n").expect("write");
        std::os::unix::fs::symlink(h.join("dotfiles/gitconfig"), h.join(".gitconfig"))
            .expect("symlink");
        std::fs::create_dir_all(h.join(".agents")).expect("mkdir");
        let (c, _, _) = context(&root, Recorder::default());
        let ws = ws_of(&root, "[workspaces.w]\npaths = [\"~/dotfiles\"]\n", "w");
        let (mounts, warnings) = builtin_mounts(&c, &ws);
        let targets: Vec<&str> = mounts.iter().map(|m| m.container.as_str()).collect();
        assert_eq!(targets, ["/home/agent/.agents"]);
        let h = h.display();
        assert_eq!(
            warnings,
            [format!("warning: not mounting {h}/.gitconfig at /home/agent/.gitconfig: it resolves to {h}/dotfiles/gitconfig, inside {h}/dotfiles, which a container can write (workspaces.w.paths, line 2), so that container's agent could point it anywhere")]
        );
    }

    /// The same dotfiles workspace, one `up` later: the agent has replaced its `gitconfig` (the
    /// file `~/.gitconfig` points to) with a symlink to `~/.ssh/id_ed25519`. `~/.gitconfig` now
    /// resolves outside every workspace, but through the agent's symlink: it must still be left
    /// out, or the engine mounts the private key at `/home/agent/.gitconfig`. The same for a
    /// directory mount (`~/.config/opencode` kept in the dotfiles repo, swapped for `~/.ssh`).
    #[test]
    fn attack_builtin_source_resolving_through_the_agents_symlink_is_not_mounted() {
        let dir = tempdir();
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        let h = root.join("home");
        for d in ["dotfiles", ".ssh", ".config", ".agents"] {
            std::fs::create_dir_all(h.join(d)).expect("mkdir");
        }
        std::fs::write(h.join(".ssh/id_ed25519"), "PRIVATE KEY\n").expect("write");
        std::os::unix::fs::symlink(h.join("dotfiles/gitconfig"), h.join(".gitconfig"))
            .expect("symlink");
        std::os::unix::fs::symlink(h.join("dotfiles/opencode"), h.join(".config/opencode"))
            .expect("symlink");
        // What the agent leaves in its workspace for the next `up`.
        std::os::unix::fs::symlink(h.join(".ssh/id_ed25519"), h.join("dotfiles/gitconfig"))
            .expect("plant");
        std::os::unix::fs::symlink(h.join(".ssh"), h.join("dotfiles/opencode")).expect("plant");
        let (c, _, _) = context(&root, Recorder::default());
        let ws = ws_of(&root, "[workspaces.w]\npaths = [\"~/dotfiles\"]\n", "w");
        let (mounts, warnings) = builtin_mounts(&c, &ws);
        let targets: Vec<&str> = mounts.iter().map(|m| m.container.as_str()).collect();
        assert_eq!(targets, ["/home/agent/.agents"], "{warnings:?}");
        let h = h.display();
        assert_eq!(
            warnings,
            [
                format!("warning: not mounting {h}/.config/opencode at /home/agent/.config/opencode: it resolves through {h}/dotfiles/opencode, inside {h}/dotfiles, which a container can write (workspaces.w.paths, line 2), so that container's agent could point it anywhere"),
                format!("warning: not mounting {h}/.gitconfig at /home/agent/.gitconfig: it resolves through {h}/dotfiles/gitconfig, inside {h}/dotfiles, which a container can write (workspaces.w.paths, line 2), so that container's agent could point it anywhere"),
            ]
        );
    }

    /// `$SSH_AUTH_SOCK` inside a workspace path: the agent could replace the socket with the
    /// engine's before the next `up`. Refused.
    #[test]
    fn attack_ssh_auth_sock_inside_a_workspace_is_refused() {
        let dir = tempdir();
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        let w = root.join("home/src/w");
        std::fs::create_dir_all(&w).expect("mkdir");
        std::fs::write(w.join("agent.sock"), "").expect("stand-in");
        let (mut c, _, _) = context(&root, Recorder::default());
        c.env.insert(
            "SSH_AUTH_SOCK".into(),
            w.join("agent.sock").to_string_lossy().into_owned(),
        );
        let ws = ws_of(
            &root,
            "[workspaces.w]\npaths = [\"~/src/w\"]\nssh_auth_sock = true\n",
            "w",
        );
        let e = check_inputs(&c, &ws).expect_err("refused");
        let w = w.display();
        assert_eq!(
            e.to_string(),
            format!("failed to prepare workspace \"w\": ssh_auth_sock: $SSH_AUTH_SOCK {w}/agent.sock: it resolves to {w}/agent.sock, inside {w}, which a container can write (workspaces.w.paths, line 2), so that container's agent could replace it (with the engine's socket, say)")
        );
    }
}
