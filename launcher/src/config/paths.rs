//! Host path resolution (`~`, `..`, symlinks) and the two deny-lists: directories the container
//! needs for itself, and host paths that would hand the agent the user's secrets.

use std::path::{Component, Path, PathBuf};

/// Container directories a workspace path (mounted at its own path) must not shadow.
pub const CONTAINER_DIRS: &[&str] = &[
    "/home/agent",
    "/usr",
    "/etc",
    "/var",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/opt",
    "/root",
    "/proc",
    "/sys",
    "/dev",
    "/run",
    "/tmp",
];

/// Container paths a `mounts` entry must not cover (the Go jailoc's list, plus `/lib32` and
/// `/libx32`): the OS, the guard's own files (`/etc/jailoc`, `/run/secrets`, sandbox-init) and
/// the DinD sidecar's certificates (`/certs`). `/` itself is refused too.
pub const MOUNT_TARGET_DENY: &[&str] = &[
    "/usr", "/etc", "/var", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/opt",
    "/root", "/proc", "/sys", "/dev", "/run", "/tmp", "/certs",
];

/// Host system directories no mounted host path may be or lie in (the Go jailoc's list;
/// `/private` is where macOS keeps `/etc`, `/var` and `/tmp`).
pub const HOST_SYSTEM_DENY: &[&str] = &[
    "/boot", "/dev", "/etc", "/private", "/proc", "/sys", "/run", "/var",
];

/// Paths under `$HOME` that hold credentials; neither they nor a parent of them may be mounted.
/// Entries under `.config/` and `.local/share/` are also checked under `$XDG_CONFIG_HOME` and
/// `$XDG_DATA_HOME` when those point elsewhere.
pub const HOME_SECRETS: &[&str] = &[
    ".ssh",
    ".gnupg",
    ".aws",
    ".azure",
    ".docker",
    ".kube",
    ".config/jailoc",
    ".config/gcloud",
    ".config/gh",
    ".config/hub",
    ".config/op",
    ".config/containers",
    ".local/share/keyrings",
    ".local/share/jailoc",
    ".local/share/opencode",
    ".password-store",
    ".netrc",
    ".git-credentials",
    ".pypirc",
    ".npmrc",
    ".cargo/credentials",
    ".cargo/credentials.toml",
    ".terraform.d",
    ".vault-token",
];

/// The name of the private, empty directory host programs run in ([`HostDirs::private_cwd`]).
pub const PRIVATE_CWD: &str = ".empty-cwd";

/// The host directories the deny-lists and jailoc's own files are placed by: `$HOME` and the
/// XDG base directories (a relative or empty XDG variable is ignored, as the spec says).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostDirs {
    pub home: PathBuf,
    /// `$XDG_CONFIG_HOME`, default `~/.config`.
    pub config_home: PathBuf,
    /// `$XDG_DATA_HOME`, default `~/.local/share`.
    pub data_home: PathBuf,
    /// `$XDG_CACHE_HOME`, default `~/.cache`.
    pub cache_home: PathBuf,
    /// `$XDG_RUNTIME_DIR`, if set.
    pub runtime_dir: Option<PathBuf>,
}

impl HostDirs {
    /// The directories for `home` and an environment lookup (`var` returns a variable's value).
    pub fn new(home: &Path, var: impl Fn(&str) -> Option<String>) -> Self {
        let xdg = |name: &str, fallback: &str| match var(name) {
            Some(v) if Path::new(&v).is_absolute() => PathBuf::from(v),
            _ => home.join(fallback),
        };
        HostDirs {
            home: home.to_path_buf(),
            config_home: xdg("XDG_CONFIG_HOME", ".config"),
            data_home: xdg("XDG_DATA_HOME", ".local/share"),
            cache_home: xdg("XDG_CACHE_HOME", ".cache"),
            runtime_dir: var("XDG_RUNTIME_DIR")
                .filter(|v| Path::new(v).is_absolute())
                .map(PathBuf::from),
        }
    }

    /// The XDG defaults under `home` (no XDG variable set).
    pub fn from_home(home: &Path) -> Self {
        Self::new(home, |_| None)
    }

    /// `$XDG_CONFIG_HOME/jailoc`: config.toml, policies, passwords.
    pub fn jailoc_config(&self) -> PathBuf {
        self.config_home.join("jailoc")
    }

    /// `$XDG_CACHE_HOME/jailoc`: compose files, the secrets' copies, build contexts.
    pub fn jailoc_cache(&self) -> PathBuf {
        self.cache_home.join("jailoc")
    }

    /// `$XDG_DATA_HOME/jailoc`: each workspace's own OpenCode data directory.
    pub fn jailoc_data(&self) -> PathBuf {
        self.data_home.join("jailoc")
    }

    /// The host's OpenCode config directory (`$XDG_CONFIG_HOME/opencode`).
    pub fn opencode_config(&self) -> PathBuf {
        self.config_home.join("opencode")
    }

    /// The host's OpenCode data directory (`$XDG_DATA_HOME/opencode`: logins, sessions, and
    /// the snapshot git repositories the host's OpenCode runs git on).
    pub fn opencode_data(&self) -> PathBuf {
        self.data_home.join("opencode")
    }

    /// The private, empty directory host programs (the host's `opencode attach`, compose,
    /// builds) run in, so none of them reads a file from a project: `$XDG_RUNTIME_DIR/jailoc/
    /// .empty-cwd`, else `$XDG_CACHE_HOME/jailoc/.empty-cwd` (a name no workspace can have).
    /// It is on the deny-list with its parents, so no workspace path can contain it.
    pub fn private_cwd(&self) -> PathBuf {
        match &self.runtime_dir {
            Some(r) => r.join("jailoc").join(PRIVATE_CWD),
            None => self.jailoc_cache().join(PRIVATE_CWD),
        }
    }

    /// Host paths no mount may be, contain or lie in, beyond the fixed lists: jailoc's own
    /// directories (they hold every workspace's secrets, passwords and data) and the host
    /// OpenCode's data directory (its snapshot repositories' git config runs on the host), with
    /// what each would expose.
    pub fn denied(&self) -> Vec<(PathBuf, String)> {
        let mut v = vec![
            (
                self.jailoc_config(),
                "jailoc's own configuration (policies, passwords)".to_string(),
            ),
            (
                self.jailoc_cache(),
                "jailoc's own cache (every workspace's secrets)".to_string(),
            ),
            (
                self.jailoc_data(),
                "jailoc's own data (every workspace's OpenCode data)".to_string(),
            ),
            (
                self.opencode_data(),
                "your host OpenCode's data directory (logins, sessions, snapshot repositories your host runs git on)"
                    .to_string(),
            ),
            (
                self.private_cwd(),
                "the directory jailoc runs host programs in".to_string(),
            ),
        ];
        for s in HOME_SECRETS {
            let what = format!("~/{s}");
            v.push((self.home.join(s), what.clone()));
            if let Some(rest) = s.strip_prefix(".config/") {
                v.push((self.config_home.join(rest), what.clone()));
            }
            if let Some(rest) = s.strip_prefix(".local/share/") {
                v.push((self.data_home.join(rest), what));
            }
        }
        v
    }
}

/// Engine sockets: mounting one hands the agent root on the host.
pub const ENGINE_SOCKETS: &[&str] = &[
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/podman/podman.sock",
    "/run/containerd/containerd.sock",
];

/// Expands `~` and makes `raw` absolute (relative paths are taken from `base`, if allowed),
/// then resolves `..` and symlinks: fully when the path exists, else up to its longest
/// existing ancestor.
pub fn resolve(raw: &str, home: &Path, base: Option<&Path>) -> Result<PathBuf, String> {
    if raw.is_empty() {
        return Err("empty path".into());
    }
    if raw.contains('\0') || raw.contains('\n') {
        return Err(format!("path {raw:?} contains a control character"));
    }
    let expanded = if raw == "~" {
        home.to_path_buf()
    } else if let Some(rest) = raw.strip_prefix("~/") {
        home.join(rest)
    } else if raw.starts_with('~') {
        return Err(format!(
            "path {raw:?}: only ~ and ~/ are supported, not ~user"
        ));
    } else if Path::new(raw).is_absolute() {
        PathBuf::from(raw)
    } else if let Some(b) = base {
        b.join(raw)
    } else {
        return Err(format!("path {raw:?} must be absolute or start with ~/"));
    };
    if let Ok(real) = std::fs::canonicalize(&expanded) {
        return Ok(real);
    }
    let lexical = normalize(&expanded);
    // Resolve the longest existing ancestor, then append the rest.
    let mut existing = lexical.clone();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name.to_os_string());
                existing = parent.to_path_buf();
            }
            _ => break,
        }
    }
    let mut out = std::fs::canonicalize(&existing).unwrap_or(existing);
    for part in rest.iter().rev() {
        out.push(part);
    }
    Ok(out)
}

/// Like [`resolve`] (absolute or `~/` only), but the last component is kept as written, not
/// followed: the parent directory is resolved (`..`, symlinks), so a symlinked ancestor is
/// seen through, while a symlink *at* the path stays one for the caller to refuse.
pub fn resolve_parent(raw: &str, home: &Path) -> Result<PathBuf, String> {
    // The same grammar (and messages) as every other host path.
    resolve(raw, home, None)?;
    let trimmed = raw.trim_end_matches('/');
    let (parent, name) = match trimmed.rsplit_once('/') {
        Some((p, n)) => (if p.is_empty() { "/" } else { p }, n),
        None => (trimmed, ""),
    };
    if matches!(name, "" | "." | ".." | "~") {
        return Err(format!("path {raw:?} must name a file"));
    }
    let dir = resolve(parent, home, None)?;
    Ok(dir.join(name))
}

/// Removes `.` and resolves `..` lexically (`/a/../..` stays at `/`).
pub fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
                if out.as_os_str().is_empty() {
                    out.push("/");
                }
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

fn under(p: &Path, dir: &Path) -> bool {
    p.starts_with(dir)
}

/// Checks a workspace path, which is mounted at the same path in the container: not a
/// directory the container needs ([`check_not_container_dir`]), and not a denied host path
/// ([`check_host_path`]).
pub fn check_workspace_path(raw: &str, resolved: &Path, dirs: &HostDirs) -> Result<(), String> {
    check_not_container_dir(raw, resolved)?;
    check_host_path(raw, resolved, dirs)
}

/// A workspace path may not lie in a directory the container needs for itself ([`CONTAINER_DIRS`]:
/// it is mounted at the same path and would shadow it).
pub fn check_not_container_dir(raw: &str, resolved: &Path) -> Result<(), String> {
    for dir in CONTAINER_DIRS {
        if under(resolved, Path::new(dir)) {
            return Err(format!(
                "path {raw:?} {}is inside {dir}, which the container needs for itself (workspace paths are mounted at the same path inside the container)",
                resolves_to(raw, resolved)
            ));
        }
    }
    Ok(())
}

/// Checks any host path that will be mounted (or copied into the container, like a secret's
/// source): not the root, not `$HOME` or a parent of it, not a credential store, jailoc's own
/// directories or the host OpenCode's data (nor inside or a parent of one), not an engine
/// socket. `resolved` has `~`, `..` and symlinks resolved already; each denied path is compared
/// both as written and resolved.
pub fn check_host_path(raw: &str, resolved: &Path, dirs: &HostDirs) -> Result<(), String> {
    check_host_path_except(raw, resolved, dirs, &[])
}

/// System configuration a secret's `from_file` may name: a copied, root-owned file the agent
/// cannot swap (the Go jailoc's own tests hand over `/etc/ssl/global.pem`). Mounting these
/// directories stays refused; the runtime ones (`/run`, `/var`, `/proc`, `/sys`, `/dev`) hold
/// sockets and kernel interfaces and stay refused for secrets too.
pub const SECRET_SYSTEM_ALLOW: &[&str] = &["/etc", "/private/etc"];

/// [`check_host_path`] for a secret's `from_file`, which is copied at `up`, never mounted:
/// system configuration under [`SECRET_SYSTEM_ALLOW`] may be named; everything else (`$HOME`,
/// credential stores, jailoc's own and OpenCode's directories, engine sockets) is refused
/// as for a mount.
pub fn check_secret_source(raw: &str, resolved: &Path, dirs: &HostDirs) -> Result<(), String> {
    check_host_path_except(raw, resolved, dirs, SECRET_SYSTEM_ALLOW)
}

fn check_host_path_except(
    raw: &str,
    resolved: &Path,
    dirs: &HostDirs,
    allowed_system: &[&str],
) -> Result<(), String> {
    let expose = |what: &str| {
        Err(format!(
            "path {raw:?} {}would expose {what} to the agent",
            resolves_to(raw, resolved)
        ))
    };
    if resolved == Path::new("/") {
        return expose("the whole host file system");
    }
    let allowed = |p: &Path| allowed_system.iter().any(|a| under(p, Path::new(a)));
    for dir in HOST_SYSTEM_DENY {
        if under(resolved, Path::new(dir)) && !allowed(resolved) {
            return expose(&format!("the host's system directory {dir}"));
        }
    }
    for h in variants(&dirs.home) {
        if under(&h, resolved) {
            return expose("your home directory");
        }
    }
    for (denied, what) in dirs.denied() {
        for d in variants(&denied) {
            if under(resolved, &d) || under(&d, resolved) {
                return expose(&what);
            }
        }
    }
    for sock in ENGINE_SOCKETS {
        if under(resolved, Path::new(sock)) || under(Path::new(sock), resolved) {
            return expose("the container engine's socket (root on the host)");
        }
    }
    let name = resolved
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    if matches!(name.as_deref(), Some("docker.sock" | "podman.sock")) {
        return expose("a container engine's socket (root on the host)");
    }
    Ok(())
}

/// `p` as written (normalised) and resolved through symlinks as far as it exists (they differ
/// when, e.g., `$HOME` or `~/.config` is a symlink, as on macOS or with dotfile managers).
fn variants(p: &Path) -> Vec<PathBuf> {
    let mut v = vec![normalize(p)];
    if let Ok(real) = resolve(&p.to_string_lossy(), p, None) {
        if real != v[0] {
            v.push(real);
        }
    }
    v
}

fn resolves_to(raw: &str, resolved: &Path) -> String {
    if Path::new(raw) == resolved {
        String::new()
    } else {
        format!("(resolves to {}) ", resolved.display())
    }
}

/// Checks the container side of a `mounts` entry. A leading `~` is expanded to the *host's*
/// home, as the Go jailoc does (the mount then appears at that same path in the container).
pub fn check_mount_target(target: &str, home: &Path) -> Result<String, String> {
    let expanded = if target == "~" {
        home.to_path_buf()
    } else if let Some(rest) = target.strip_prefix("~/") {
        home.join(rest)
    } else {
        PathBuf::from(target)
    };
    if !expanded.is_absolute() {
        return Err(format!(
            "container path {target:?} must be absolute (e.g. /home/agent/.gitconfig)"
        ));
    }
    let norm = normalize(&expanded);
    if norm == Path::new("/") {
        return Err("container path \"/\" would replace the whole container".into());
    }
    for dir in MOUNT_TARGET_DENY {
        if under(&norm, Path::new(dir)) {
            return Err(format!(
                "container path {target:?} is inside {dir}, which the container needs for itself (its system, the sandbox's own files)"
            ));
        }
    }
    Ok(norm.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_dotdot() {
        assert_eq!(
            normalize(Path::new("/a/b/../../../etc")),
            PathBuf::from("/etc")
        );
        assert_eq!(normalize(Path::new("/a/./b/")), PathBuf::from("/a/b"));
    }

    #[test]
    fn denies_secrets_and_system_dirs() {
        let home = Path::new("/nonexistent-home/u");
        let check = |raw: &str| {
            let p = resolve(raw, home, None).expect("resolve");
            check_workspace_path(raw, &p, &HostDirs::from_home(home))
        };
        assert!(check("/etc")
            .expect_err("must fail")
            .contains("inside /etc"));
        assert!(check("/srv/x/../../etc/ssh")
            .expect_err("must fail")
            .contains("(resolves to /etc/ssh) is inside /etc"));
        assert!(check("~")
            .expect_err("must fail")
            .contains("your home directory"));
        assert!(check("/").expect_err("must fail").contains("whole host"));
        assert!(check("~/.ssh").expect_err("must fail").contains("~/.ssh"));
        assert!(check("~/.config")
            .expect_err("must fail")
            .contains("would expose jailoc's own configuration (policies, passwords)"));
        assert!(check("~/src/app").is_ok());
        assert!(check("/srv/app").is_ok());
        assert!(resolve("rel/x", home, None).is_err());
        assert!(resolve("~bob/x", home, None).is_err());
    }

    #[test]
    fn follows_symlinks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("/etc", &link).expect("symlink");
        let raw = link.join("ssh").to_string_lossy().into_owned();
        let p = resolve(&raw, Path::new("/nonexistent-home"), None).expect("resolve");
        assert!(check_workspace_path(
            &raw,
            &p,
            &HostDirs::from_home(Path::new("/nonexistent-home"))
        )
        .expect_err("must fail")
        .contains("is inside /etc"));
    }

    #[test]
    fn mount_targets() {
        let home = Path::new("/home/me");
        assert_eq!(
            check_mount_target("/home/agent/.gitconfig", home),
            Ok("/home/agent/.gitconfig".into())
        );
        assert_eq!(
            check_mount_target("~/.cache/x", home),
            Ok("/home/me/.cache/x".into()),
            "~ is the host's home, as in Go"
        );
        for bad in [
            "/etc/jailoc",
            "/usr/local/bin/sandbox-init",
            "/x/../etc",
            "/var/lib/x",
            "/opt/tool",
            "/root",
            "/tmp/x",
            "/certs",
            "/run/secrets/x",
            "/lib64",
        ] {
            assert!(
                check_mount_target(bad, home)
                    .expect_err(bad)
                    .contains("which the container needs for itself"),
                "{bad}"
            );
        }
        assert!(check_mount_target("rel", home).is_err());
        assert!(check_mount_target("/", home).is_err());
        assert!(check_mount_target("~", Path::new("/root")).is_err());
    }

    #[test]
    fn host_system_dirs_are_denied() {
        let home = Path::new("/nonexistent-home/u");
        for (raw, dir) in [
            ("/boot", "/boot"),
            ("/dev/sda", "/dev"),
            ("/etc", "/etc"),
            ("/private/etc", "/private"),
            ("/proc/1", "/proc"),
            ("/sys", "/sys"),
            ("/run/user/1000", "/run"),
            ("/var/lib/docker", "/var"),
        ] {
            let p = resolve(raw, home, None).expect("resolve");
            let e = check_host_path(raw, &p, &HostDirs::from_home(home)).expect_err(raw);
            assert!(
                e.ends_with(&format!(
                    "would expose the host's system directory {dir} to the agent"
                )),
                "{raw}: {e}"
            );
        }
        for (raw, what) in [
            ("~/.ssh/id_ed25519", "~/.ssh"),
            ("~/.gnupg", "~/.gnupg"),
            ("~/.aws/credentials", "~/.aws"),
            ("~/.docker", "~/.docker"),
            ("~/.config/jailoc", "jailoc's own configuration"),
            ("~/", "your home directory"),
            ("/nonexistent-home", "your home directory"),
        ] {
            let p = resolve(raw, home, None).expect("resolve");
            assert!(
                check_host_path(raw, &p, &HostDirs::from_home(home))
                    .expect_err(raw)
                    .contains(&format!("would expose {what}")),
                "{raw}"
            );
        }
        for ok in ["/srv/data", "/opt/tools", "/usr/share/dict", "~/notes"] {
            let p = resolve(ok, home, None).expect("resolve");
            assert_eq!(
                check_host_path(ok, &p, &HostDirs::from_home(home)),
                Ok(()),
                "{ok}"
            );
        }
    }

    /// A secret's source is copied, never mounted: a system configuration file (the Go
    /// jailoc's own test hands over /etc/ssl/global.pem) may be named, while runtime
    /// directories, credential stores and engine sockets stay refused.
    #[test]
    fn secret_sources_may_be_system_configuration_only() {
        let home = Path::new("/nonexistent-home/u");
        let dirs = HostDirs::from_home(home);
        let check = |raw: &str| {
            let p = resolve(raw, home, None).expect("resolve");
            check_secret_source(raw, &p, &dirs)
        };
        assert_eq!(check("/etc/ssl/global.pem"), Ok(()));
        assert_eq!(check("/private/etc/ssl/cert.pem"), Ok(()));
        for (raw, what) in [
            ("/run/secrets/x", "the host's system directory /run"),
            ("/var/lib/x", "the host's system directory /var"),
            ("/proc/self/environ", "the host's system directory /proc"),
            ("/private/var/x", "the host's system directory /private"),
            ("~/.ssh/id_ed25519", "~/.ssh"),
            ("/srv/docker.sock", "a container engine's socket"),
        ] {
            let e = check(raw).expect_err(raw);
            assert!(e.contains(&format!("would expose {what}")), "{raw}: {e}");
        }
        // As a mount, /etc stays refused.
        let p = resolve("/etc/ssl", home, None).expect("resolve");
        assert!(check_host_path("/etc/ssl", &p, &dirs).is_err());
    }

    #[test]
    fn host_deny_list_sees_through_symlinks_and_dotdot() {
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).expect("tempdir");
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join(".ssh")).expect("mkdir");
        std::fs::create_dir_all(dir.path().join("data")).expect("mkdir");
        let link = dir.path().join("data/keys");
        std::os::unix::fs::symlink(home.join(".ssh"), &link).expect("symlink");
        let raw = link.to_string_lossy().into_owned();
        let p = resolve(&raw, &home, None).expect("resolve");
        assert!(check_host_path(&raw, &p, &HostDirs::from_home(&home))
            .expect_err("symlink into ~/.ssh")
            .contains("would expose ~/.ssh"));
        let raw = format!("{}/data/../home/.ssh", dir.path().display());
        let p = resolve(&raw, &home, None).expect("resolve");
        assert!(check_host_path(&raw, &p, &HostDirs::from_home(&home))
            .expect_err("dotdot into ~/.ssh")
            .contains("would expose ~/.ssh"));
        let etc_link = dir.path().join("data/etc");
        std::os::unix::fs::symlink("/etc", &etc_link).expect("symlink");
        let raw = etc_link.to_string_lossy().into_owned();
        let p = resolve(&raw, &home, None).expect("resolve");
        assert!(check_host_path(&raw, &p, &HostDirs::from_home(&home))
            .expect_err("symlink to /etc")
            .contains("(resolves to /etc) would expose the host's system directory /etc"));
    }

    /// Item 9 of issue 10: jailoc's own directories, the host OpenCode's data and the
    /// credential stores are refused as mounts, also where an XDG variable moves them, and so is
    /// every parent of one (mounting `~/.config` would expose `~/.config/jailoc`).
    #[test]
    fn deny_list_covers_jailoc_dirs_opencode_data_credentials_and_their_parents() {
        let home = Path::new("/nonexistent-home/u");
        let dirs = HostDirs::new(home, |k| {
            Some(
                match k {
                    "XDG_CONFIG_HOME" => "/srv/xdg/config",
                    "XDG_DATA_HOME" => "/srv/xdg/data",
                    "XDG_CACHE_HOME" => "/srv/xdg/cache",
                    "XDG_RUNTIME_DIR" => "/srv/xdg/run",
                    _ => return None,
                }
                .to_string(),
            )
        });
        let own_config = "jailoc's own configuration (policies, passwords)";
        let own_cache = "jailoc's own cache (every workspace's secrets)";
        let own_data = "jailoc's own data (every workspace's OpenCode data)";
        let oc_data = "your host OpenCode's data directory (logins, sessions, snapshot repositories your host runs git on)";
        for (raw, what) in [
            ("/srv/xdg/config/jailoc/passwords", own_config),
            ("/srv/xdg/config", own_config),
            ("/srv/xdg/cache/jailoc/w/secrets/T", own_cache),
            ("/srv/xdg/cache", own_cache),
            ("/srv/xdg/data/jailoc/w/opencode", own_data),
            ("/srv/xdg/data", own_data),
            ("/srv/xdg", own_config),
            ("/srv/xdg/data/opencode", oc_data),
            ("/srv/xdg/data/opencode/snapshot/p/0123/config", oc_data),
            (
                "/srv/xdg/run/jailoc",
                "the directory jailoc runs host programs in",
            ),
            ("~/.kube/config", "~/.kube"),
            ("~/.netrc", "~/.netrc"),
            ("~/.git-credentials", "~/.git-credentials"),
            ("~/.config/gh", "~/.config/gh"),
            ("/srv/xdg/config/gh/hosts.yml", "~/.config/gh"),
            ("/srv/xdg/config/gcloud", "~/.config/gcloud"),
            ("/srv/xdg/config/op", "~/.config/op"),
            ("~/.azure", "~/.azure"),
            ("~/.aws/credentials", "~/.aws"),
            ("~/.docker/config.json", "~/.docker"),
            ("~/.ssh/id_ed25519", "~/.ssh"),
            ("~/.gnupg", "~/.gnupg"),
            ("~/.password-store", "~/.password-store"),
            ("~/.terraform.d/credentials.tfrc.json", "~/.terraform.d"),
            ("~/.npmrc", "~/.npmrc"),
            ("~/.pypirc", "~/.pypirc"),
            ("~/.cargo/credentials", "~/.cargo/credentials"),
            ("~/.cargo/credentials.toml", "~/.cargo/credentials.toml"),
            ("~/.cargo", "~/.cargo/credentials"),
            ("/srv/xdg/data/keyrings", "~/.local/share/keyrings"),
            ("~/.local/share/keyrings", "~/.local/share/keyrings"),
            ("~/.local", "~/.local/share/keyrings"),
        ] {
            let p = resolve(raw, home, None).expect("resolve");
            assert_eq!(
                check_host_path(raw, &p, &dirs),
                Err(format!(
                    "path {raw:?} {}would expose {what} to the agent",
                    resolves_to(raw, &p)
                )),
                "{raw}"
            );
        }
        for ok in [
            "~/.cargo/registry",
            "/srv/xdg/config-other",
            "/srv/xdg/data/other-app",
            "~/.local/share/other",
            "~/src/app",
        ] {
            let p = resolve(ok, home, None).expect("resolve");
            assert_eq!(check_host_path(ok, &p, &dirs), Ok(()), "{ok}");
        }
        // Without XDG variables the defaults under $HOME are what is denied.
        let plain = HostDirs::from_home(home);
        for (raw, what) in [
            ("~/.local/share", own_data),
            ("~/.local/share/opencode", oc_data),
            ("~/.cache", own_cache),
            ("~/.cache/jailoc/.empty-cwd", own_cache),
        ] {
            let p = resolve(raw, home, None).expect("resolve");
            let e = check_host_path(raw, &p, &plain).expect_err(raw);
            assert!(
                e.ends_with(&format!("would expose {what} to the agent")),
                "{e}"
            );
        }
    }

    /// A denied directory behind a symlink (a dotfile manager's `~/.config`) is compared
    /// resolved too.
    #[test]
    fn denied_dirs_behind_a_symlink_are_resolved() {
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).expect("tempdir");
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        let home = root.join("home");
        std::fs::create_dir_all(root.join("dotfiles/config/jailoc")).expect("mkdir");
        std::fs::create_dir_all(&home).expect("mkdir");
        std::os::unix::fs::symlink(root.join("dotfiles/config"), home.join(".config"))
            .expect("symlink");
        let raw = root.join("dotfiles").to_string_lossy().into_owned();
        let p = resolve(&raw, &home, None).expect("resolve");
        assert_eq!(
            check_host_path(&raw, &p, &HostDirs::from_home(&home)),
            Err(format!(
                "path {raw:?} would expose jailoc's own configuration (policies, passwords) to the agent"
            ))
        );
    }

    #[test]
    fn resolve_parent_keeps_the_last_component() {
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).expect("tempdir");
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        std::fs::create_dir_all(root.join("real")).expect("mkdir");
        std::os::unix::fs::symlink(root.join("real"), root.join("dir")).expect("symlink");
        std::os::unix::fs::symlink("/etc/passwd", root.join("real/link")).expect("symlink");
        let raw = format!("{}/dir/link", root.display());
        assert_eq!(
            resolve_parent(&raw, Path::new("/h")),
            Ok(root.join("real/link"))
        );
        assert_eq!(
            resolve_parent("~/x", Path::new("/h")),
            Ok(PathBuf::from("/h/x"))
        );
        assert!(resolve_parent("rel/x", Path::new("/h"))
            .expect_err("relative")
            .contains("must be absolute"));
        assert!(resolve_parent("/a/..", Path::new("/h")).is_err());
    }
}
