//! Shared helpers for every crate's privileged and end-to-end tests: where the built binaries
//! are, whether a tier may run here (one rule, [`in_ci`]), throwaway network namespaces
//! ([`netns`]) and directories.

pub mod docker;
pub mod lab;
pub mod netns;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// `target/<triple>/<profile>/`: the directory holding the workspace's binaries. Test
/// executables live in its `deps/` sub-directory.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("failed to locate the test executable");
    let mut dir = exe
        .parent()
        .expect("the test executable has a parent directory")
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// Path of a workspace binary built next to the tests; panics with the fix when it is missing.
pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "binary {name} not found at {}: run `cargo build --workspace` (same profile as the tests) first",
        path.display()
    );
    path
}

/// The sandbox-init binary (PID 1 of the agent's container).
pub fn sandbox_init() -> PathBuf {
    bin("sandbox-init")
}

/// The host CLI.
pub fn jailoc() -> PathBuf {
    bin("jailoc")
}

/// The in-sandbox probe.
pub fn probe() -> PathBuf {
    bin("probe")
}

/// The one CI rule of every tier in every crate: `CI` set to anything but empty or `false`
/// means a test that cannot run here fails instead of skipping (a skipped tier must not look
/// green in CI).
pub fn in_ci() -> bool {
    ci_says_no_skipping(std::env::var_os("CI").as_deref())
}

fn ci_says_no_skipping(ci: Option<&std::ffi::OsStr>) -> bool {
    ci.is_some_and(|v| !v.is_empty() && v != "false")
}

/// A tier that cannot run here, and why: prints that it skips and returns false, or panics
/// under [`in_ci`].
pub fn skip(tier: &str, why: &str) -> bool {
    if in_ci() {
        panic!("cannot run {tier}: {why} (CI is set, so no tier may skip)");
    }
    eprintln!("skipping {tier}: {why}");
    false
}

/// Gate for a privileged tier: true when running as root, else [`skip`].
pub fn require_root(tier: &str) -> bool {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    euid == 0
        || skip(
            tier,
            &format!("it needs root (euid is {euid}); run the tests with sudo"),
        )
}

/// [`require_root`], and every tool `(program, version flag, reason)` answering its version
/// flag; else [`skip`] with the first missing tool's reason (e.g. "dnsmasq is not installed
/// (apt-get install dnsmasq-base)").
pub fn require_tools(tier: &str, tools: &[(&str, &str, &str)]) -> bool {
    if !require_root(tier) {
        return false;
    }
    let answers = |program: &str, flag: &str| {
        std::process::Command::new(program)
            .arg(flag)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    match tools.iter().find(|(p, flag, _)| !answers(p, flag)) {
        Some((_, _, reason)) => skip(tier, reason),
        None => true,
    }
}

/// Finds an executable on PATH (tests pass absolute paths to `ip netns exec` and friends).
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name unique within this machine for the life of this process: `prefix` + pid + counter,
/// so tests can run in parallel (also several test binaries at once).
pub fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A directory under the system temp dir, removed on drop. Mode 0755 so an unprivileged agent
/// (UID 1000) can reach binaries and fixtures placed in it.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `$TMPDIR/<prefix><pid>x<n>` with mode 0755.
    pub fn new(prefix: &str) -> Self {
        use std::os::unix::fs::PermissionsExt;
        let path = std::env::temp_dir().join(unique_name(prefix));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("failed to create {}: {e}", path.display()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("failed to chmod {}: {e}", path.display()));
        Self { path }
    }

    /// Creates (or reuses) the directory at `path` with mode 0755.
    pub fn at(path: PathBuf) -> Self {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("failed to create {}: {e}", path.display()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("failed to chmod {}: {e}", path.display()));
        Self { path }
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A sub-directory with the given mode (0o777 for one the agent may write into).
    pub fn subdir(&self, name: &str, mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.path.join(name);
        std::fs::create_dir_all(&p)
            .unwrap_or_else(|e| panic!("failed to create {}: {e}", p.display()));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("failed to chmod {}: {e}", p.display()));
        p
    }

    /// Writes a file (creating parents) and returns its path.
    pub fn write(&self, rel: &str, contents: &str) -> PathBuf {
        let p = self.path.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("failed to create {}: {e}", parent.display()));
        }
        std::fs::write(&p, contents)
            .unwrap_or_else(|e| panic!("failed to write {}: {e}", p.display()));
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("JAILOC_KEEP_TMP").is_none() {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Writes a sandbox-init config dir: `files` are (name, contents) pairs such as
/// `("policy.toml", "egress = \"open\"")` or `("allowed-hosts", "pypi.org\n")`.
pub fn config_dir(root: &TempDir, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = root.subdir(name, 0o755);
    for (file, contents) in files {
        std::fs::write(dir.join(file), contents)
            .unwrap_or_else(|e| panic!("failed to write {}/{file}: {e}", dir.display()));
    }
    dir
}

/// Parses a probe's stdout (one JSON object per line); non-JSON lines are kept as strings.
pub fn probe_lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| serde_json::Value::String(l.into())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn ci_is_set_unless_empty_or_false() {
        for (value, strict) in [
            (None, false),
            (Some(""), false),
            (Some("false"), false),
            (Some("true"), true),
            (Some("1"), true),
            (Some("0"), true),
            (Some("yes"), true),
        ] {
            assert_eq!(
                ci_says_no_skipping(value.map(OsStr::new)),
                strict,
                "{value:?}"
            );
        }
    }
}
