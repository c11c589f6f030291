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

/// Container paths a `mounts` entry must not cover: the guard's own files and the OS.
pub const MOUNT_TARGET_DENY: &[&str] = &[
    "/etc", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/sys",
    "/dev", "/run",
];

/// Paths under `$HOME` that hold credentials; neither they nor a parent of them may be mounted.
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
    ".config/op",
    ".local/share/keyrings",
    ".password-store",
    ".netrc",
    ".git-credentials",
    ".pypirc",
    ".npmrc",
    ".cargo/credentials.toml",
    ".vault-token",
];

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

/// Checks a workspace path, which is mounted at the same path in the container.
pub fn check_workspace_path(raw: &str, resolved: &Path, home: &Path) -> Result<(), String> {
    for dir in CONTAINER_DIRS {
        if under(resolved, Path::new(dir)) {
            return Err(format!(
                "path {raw:?} {}is inside {dir}, which the container needs for itself (workspace paths are mounted at the same path inside the container)",
                resolves_to(raw, resolved)
            ));
        }
    }
    check_host_path(raw, resolved, home)
}

/// Checks any host path that will be mounted: not the root, not `$HOME` or a parent of it, not
/// a credential store (or a parent of one), not an engine socket.
pub fn check_host_path(raw: &str, resolved: &Path, home: &Path) -> Result<(), String> {
    let expose = |what: &str| {
        Err(format!(
            "path {raw:?} {}would expose {what} to the agent",
            resolves_to(raw, resolved)
        ))
    };
    if resolved == Path::new("/") {
        return expose("the whole host file system");
    }
    let homes = homes(home);
    for h in &homes {
        if under(h, resolved) {
            return expose("your home directory");
        }
    }
    for h in &homes {
        for s in HOME_SECRETS {
            let secret = h.join(s);
            if under(resolved, &secret) || under(&secret, resolved) {
                return expose(&format!("~/{s}"));
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

/// `$HOME` as given and as resolved (they differ when it is behind a symlink, as on macOS).
fn homes(home: &Path) -> Vec<PathBuf> {
    let mut v = vec![normalize(home)];
    if let Ok(real) = std::fs::canonicalize(home) {
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

/// Checks the container side of a `mounts` entry.
pub fn check_mount_target(target: &str) -> Result<String, String> {
    if !target.starts_with('/') {
        return Err(format!(
            "container path {target:?} must be absolute (e.g. /home/agent/.gitconfig)"
        ));
    }
    let norm = normalize(Path::new(target));
    if norm == Path::new("/") {
        return Err("container path \"/\" would replace the whole container".into());
    }
    for dir in MOUNT_TARGET_DENY {
        if under(&norm, Path::new(dir)) {
            return Err(format!(
                "container path {target:?} is inside {dir}, which holds the container's system and the sandbox's own files"
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
            check_workspace_path(raw, &p, home)
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
            .contains("~/.config/jailoc"));
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
        assert!(
            check_workspace_path(&raw, &p, Path::new("/nonexistent-home"))
                .expect_err("must fail")
                .contains("is inside /etc")
        );
    }

    #[test]
    fn mount_targets() {
        assert_eq!(
            check_mount_target("/home/agent/.gitconfig"),
            Ok("/home/agent/.gitconfig".into())
        );
        assert!(check_mount_target("/etc/jailoc").is_err());
        assert!(check_mount_target("/usr/local/bin/sandbox-init").is_err());
        assert!(check_mount_target("/x/../etc").is_err());
        assert!(check_mount_target("rel").is_err());
        assert!(check_mount_target("/").is_err());
    }
}
