//! Throwaway network namespaces for the privileged tests. Each one is created here, has no links
//! (no traffic can leave it) and is removed by a Drop guard, also when an assertion fails.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A link-less network namespace `jailoc-net-<tag><pid>-<n>`. On drop every process left in it
/// is killed, it is deleted and its `/etc/netns/NAME` overrides are removed.
pub struct Netns {
    pub name: String,
    etc: PathBuf,
}

impl Netns {
    /// A bare namespace: loopback down, the host's `/etc` files.
    pub fn new(tag: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "jailoc-net-{tag}{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let status = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("run ip netns add");
        assert!(status.success(), "failed to create netns {name}");
        Netns {
            etc: PathBuf::from("/etc/netns").join(&name),
            name,
        }
    }

    /// A namespace with loopback up whose `/etc/resolv.conf` and `/etc/hosts` are these (`ip
    /// netns exec` bind-mounts them from `/etc/netns/NAME/`).
    pub fn with_etc(tag: &str, resolv_conf: &str, hosts: &str) -> Self {
        let ns = Netns::new(tag);
        fs::create_dir_all(&ns.etc).expect("mkdir /etc/netns/NAME");
        fs::write(ns.etc.join("resolv.conf"), resolv_conf).expect("resolv.conf");
        fs::write(ns.etc.join("hosts"), hosts).expect("hosts");
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// Runs `argv` inside the namespace; it must succeed.
    pub fn exec(&self, argv: &[&str]) -> Output {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(argv)
            .output()
            .expect("ip netns exec");
        assert!(
            out.status.success(),
            "{argv:?}: {}",
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
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = fs::remove_dir_all(&self.etc);
    }
}

/// Whether the privileged `test` can run: as root, with every `(program, version flag, reason
/// it is missing)` tool installed. Otherwise prints why and returns false, or panics when
/// `CI=true` (CI must not skip).
pub fn privileged(test: &str, tools: &[(&str, &str, &str)]) -> bool {
    let root = fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    let has = |p: &str, a: &str| {
        Command::new(p)
            .arg(a)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let reason = if !root {
        "not root"
    } else if let Some((_, _, reason)) = tools.iter().find(|(p, a, _)| !has(p, a)) {
        reason
    } else {
        return true;
    };
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("cannot run the {test}: {reason}; CI=true does not allow skipping");
    }
    eprintln!("skipping the {test}: {reason}");
    false
}
