//! The boot as PID 1, black-box (root): the built sandbox-init runs as PID 1 of a new pid
//! namespace (`unshare --pid --fork`) inside a throwaway, link-less network namespace whose only
//! resolver never answers.
//!
//! - The boot sends no DNS: a resolver that never answers does not hold it up.
//! - What steps 1-5 allocated (policy, rule sets) is freed before PID 1 supervises: its RSS
//!   stays within the 2 MiB target (docs/lab.md, "Targets") even with a 20,000-network allowlist.
//!
//! Skips with a reason when not root or without `ip`/`unshare`/iptables; fails instead when
//! `CI` is set.

mod common;

use jailoc_tests::netns::Netns;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A namespace with loopback up and a resolver (127.0.0.53) whose packets are dropped; removed
/// on drop.
struct Lab {
    ns: Netns,
    dir: tempfile::TempDir,
}

impl Lab {
    fn new() -> Self {
        let ns = Netns::with_etc("jsi-s", "nameserver 127.0.0.53\n", "127.0.0.1 localhost\n");
        ns.blackhole("127.0.0.53/32");
        let lab = Lab {
            ns,
            dir: tempfile::tempdir().expect("tempdir"),
        };
        // The agent (uid 1000) must be able to leave its marker here.
        fs::set_permissions(lab.dir.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
        lab
    }

    /// sandbox-init as PID 1 of a new pid namespace, with `agent` as the agent.
    /// `debug`: `SANDBOX_INIT_LOG=debug` (step timings on stderr).
    fn start(&self, policy_toml: &str, agent: &[&str], debug: bool) -> Child {
        let config = self.dir.path().join("config");
        fs::create_dir_all(&config).expect("mkdir");
        let home = self.dir.path().join("home");
        fs::write(
            config.join("policy.toml"),
            format!(
                "{policy_toml}\n[agent]\nuid = 1000\ngid = 1000\nhome = \"{}\"\n",
                home.display()
            ),
        )
        .expect("policy");
        Command::new("ip")
            .args(["netns", "exec", &self.ns.name])
            .args(["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"])
            .arg(env!("CARGO_BIN_EXE_sandbox-init"))
            .arg("--config-dir")
            .arg(&config)
            .arg("--")
            .args(agent)
            .env("SANDBOX_INIT_LOG", if debug { "debug" } else { "info" })
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sandbox-init")
    }
}

fn privileged() -> bool {
    jailoc_tests::require_tools(
        "boot-signal namespace test",
        &[
            ("ip", "-V", "`ip` (iproute2) is not installed"),
            (
                "unshare",
                "--version",
                "`unshare` (util-linux) is not installed",
            ),
            ("iptables-nft", "--version", "iptables is not installed"),
        ],
    )
}

/// The pid (in our pid namespace) of `unshare --fork`'s child, i.e. the namespace's PID 1.
fn pid1_of(unshare: u32) -> u32 {
    let path = format!("/proc/{unshare}/task/{unshare}/children");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let children = fs::read_to_string(&path).unwrap_or_default();
        if let Some(pid) = children.split_whitespace().next() {
            return pid.parse().expect("pid");
        }
        assert!(Instant::now() < deadline, "unshare started no child");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits for the child with a watchdog (never for the whole resolve bound).
fn wait_with_watchdog(child: &mut Child, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return Some(status.code().unwrap_or(-1));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The boot sends no DNS: with allowlisted names and a resolver that never answers (and a
/// 30 s upstream bound) the agent starts at once; names are the DNS gate's, when asked.
#[test]
fn a_dead_resolver_does_not_hold_the_boot_names_are_the_gates() {
    if !privileged() {
        return;
    }
    let lab = Lab::new();
    let marker = lab.dir.path().join("agent-ran");
    let touch = format!("touch {}", marker.display());
    let mut child = lab.start(
        "allowed_hosts = [\"a.example\", \"b.example\"]\nresolve_timeout_ms = 30000\n",
        &["/bin/sh", "-c", &touch],
        true,
    );
    // Well below the 30 s bound the resolving boot of old would have waited.
    let code = wait_with_watchdog(&mut child, Duration::from_secs(15));
    let mut log = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut err, &mut log);
    }
    assert_eq!(code, Some(0), "{log}");
    assert!(marker.exists(), "the agent did not run:\n{log}");
    assert!(log.contains("started the DNS gate"), "{log}");
}

/// VmRSS (kB) of the process, if it still exists.
fn vm_rss(pid: u32) -> Option<u64> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Also while the agent keeps PID 1 busy: orphans reparented to PID 1 end every 30 ms, each a
/// SIGCHLD, and the memory is given back 100 ms after the agent's start all the same (a quiet
/// spell it waited for would never come).
#[test]
fn pid1_frees_the_policy_and_rules_before_supervising() {
    if !privileged() {
        return;
    }
    let lab = Lab::new();
    let networks: String = (0..20_000)
        .map(|i| {
            format!(
                "10.{}.{}.{}/32\n",
                200 + i / 62_500,
                (i / 250) % 250,
                i % 250 + 1
            )
        })
        .collect();
    fs::create_dir_all(lab.dir.path().join("config")).expect("mkdir");
    fs::write(lab.dir.path().join("config/allowed-networks"), networks).expect("networks");
    let ready = lab.dir.path().join("agent-ready");
    let agent = format!(
        "touch {}; while :; do sh -c 'sleep 0 &'; sleep 0.03; done",
        ready.display()
    );
    let mut child = lab.start(
        "egress = \"allowlist\"\n",
        &["/bin/sh", "-c", &agent],
        false,
    );
    let pid1 = pid1_of(child.id());
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready.exists() {
        assert!(Instant::now() < deadline, "the agent did not start");
        assert!(
            child.try_wait().expect("wait").is_none(),
            "sandbox-init ended"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // PID 1 trims its heap as it enters the supervision loop: take the smallest of a few
    // samples, so a sample taken a moment before that cannot fail the test.
    let mut samples = Vec::new();
    for _ in 0..20 {
        samples.extend(vm_rss(pid1));
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &pid1.to_string()])
        .status();
    let code = wait_with_watchdog(&mut child, Duration::from_secs(15));
    assert_eq!(code, Some(143), "the agent got the forwarded SIGTERM");
    let smallest = samples.iter().min().copied().unwrap_or(u64::MAX);
    assert!(
        smallest <= 2048,
        "PID 1 holds {smallest} kB while supervising (target: at most 2 MiB); samples {samples:?}"
    );
}
