//! Throwaway network namespaces: the one way every privileged test makes one (the lab's three,
//! the PID-1 sandbox's, sandbox-init's own namespace tests). Each is created here, starts with
//! no link but `lo` (down) — so nothing in it can reach the root namespace or a real address —
//! and is removed on drop, also when an assertion fails: every process left in it is killed,
//! the namespace deleted and its `/etc/netns/NAME` overrides removed.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// `ip`, by absolute path (it runs as root; the tests' PATH is not consulted twice).
pub fn ip() -> PathBuf {
    crate::which("ip").expect("iproute2 (`ip`) not found: apt-get install iproute2")
}

/// A network namespace of this process; deleted on drop.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// A fresh namespace `<prefix><pid>x<n>`, unique on this machine while this process lives.
    pub fn new(prefix: &str) -> Self {
        Self::named(crate::unique_name(prefix))
    }

    /// A fresh namespace called `name` (the caller keeps it unique).
    pub fn named(name: String) -> Self {
        let out = Command::new(ip())
            .args(["netns", "add", &name])
            .output()
            .unwrap_or_else(|e| panic!("failed to run ip netns add {name}: {e}"));
        assert!(
            out.status.success(),
            "failed to create netns {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Netns { name }
    }

    /// A namespace with `lo` up whose `/etc/resolv.conf` and `/etc/hosts` are these (`ip netns
    /// exec` bind-mounts them from `/etc/netns/NAME/`).
    pub fn with_etc(prefix: &str, resolv_conf: &str, hosts: &str) -> Self {
        let ns = Netns::new(prefix);
        let etc = ns.etc();
        std::fs::create_dir_all(&etc).expect("failed to create /etc/netns/NAME");
        std::fs::write(etc.join("resolv.conf"), resolv_conf).expect("failed to write resolv.conf");
        std::fs::write(etc.join("hosts"), hosts).expect("failed to write hosts");
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// `/etc/netns/NAME`: files `ip netns exec` mounts over the namespace's `/etc`.
    pub fn etc(&self) -> PathBuf {
        PathBuf::from("/etc/netns").join(&self.name)
    }

    /// Runs `argv` inside the namespace; it must succeed.
    pub fn exec(&self, argv: &[&str]) -> Output {
        let out = Command::new(ip())
            .args(["netns", "exec", &self.name])
            .args(argv)
            .output()
            .unwrap_or_else(|e| panic!("failed to run {argv:?} in {}: {e}", self.name));
        assert!(
            out.status.success(),
            "{argv:?} failed in {}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Drops every packet to `addr` (e.g. `127.0.0.53/32`) inside the namespace: a resolver
    /// there never answers, so a query can only time out (a refused port would fail fast).
    pub fn blackhole(&self, addr: &str) {
        self.exec(&["iptables-nft", "-A", "INPUT", "-d", addr, "-j", "DROP"]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        remove(&self.name);
    }
}

/// Kills every process in the namespace `name`, deletes it and its `/etc/netns/NAME`. Safe to
/// call for one that is not (or no longer) there.
pub fn remove(name: &str) {
    if let Ok(out) = Command::new(ip()).args(["netns", "pids", name]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            if let Ok(pid) = pid.parse::<i32>() {
                // SAFETY: kill(2) with a pid `ip netns pids` listed in this test's namespace.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
    let _ = Command::new(ip())
        .args(["netns", "del", name])
        .stderr(Stdio::null())
        .status();
    let _ = std::fs::remove_dir_all(PathBuf::from("/etc/netns").join(name));
}
