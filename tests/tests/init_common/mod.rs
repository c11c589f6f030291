//! Harness shared by `pid1.rs` and `privilege.rs`: sandbox-init as PID 1 of a fresh pid
//! namespace, inside a throwaway network namespace that has only `lo` (so nothing the agent does
//! can reach any real network), with a scratch dir the agent (uid 1000) can read.
//!
//! Process chain: `ip netns exec NS unshare --pid --fork --mount-proc --kill-child
//! env -i ... sh -c 'SETUP; exec "$@"' sh sandbox-init --config-dir DIR -- AGENT...`. The shell
//! is PID 1 for the setup only and then execs sandbox-init, which keeps PID 1.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use jailoc_tests::lab::{run_watchdog, Run};
use jailoc_tests::netns::Netns;
use jailoc_tests::{require_root, which, TempDir};
use serde_json::Value;

/// One sandbox: a network namespace with only `lo` and a scratch dir; deleted on drop.
pub struct Sandbox {
    /// Deleted, with anything left running in it, when the sandbox is dropped.
    pub netns: Netns,
    pub tmp: TempDir,
    pub config: PathBuf,
    pub home: PathBuf,
    pub probe: PathBuf,
    pub markers: PathBuf,
    /// Extra arguments before `unshare` (e.g. `setpriv --bounding-set=-setpcap`).
    pub wrapper: Vec<String>,
    /// Extra environment for sandbox-init (the agent inherits it minus `SANDBOX_INIT_*`).
    pub env: Vec<(String, String)>,
    /// Run as PID 1 of a new pid namespace (default) or as a plain child.
    pub pid_namespace: bool,
}

pub fn tool(name: &str) -> PathBuf {
    which(name).unwrap_or_else(|| panic!("{name} not found on PATH: install it (see scripts/test)"))
}

impl Sandbox {
    /// `None` when not root (the gate prints why, or panics in CI).
    pub fn new(tier: &str) -> Option<Self> {
        if !require_root(tier) {
            return None;
        }
        let tmp = TempDir::new("jailoc-init-");
        let netns = Netns::new("jinit");
        let sandbox = Self {
            config: tmp.subdir("config", 0o755),
            home: tmp.path().join("home"),
            markers: tmp.subdir("markers", 0o777),
            probe: tmp.path().join("probe"),
            netns,
            tmp,
            wrapper: Vec::new(),
            env: Vec::new(),
            pid_namespace: true,
        };
        std::fs::copy(jailoc_tests::probe(), &sandbox.probe).expect("failed to copy the probe");
        sandbox.ns(&["ip", "link", "set", "lo", "up"]);
        sandbox.write_config("policy.toml", &sandbox.policy(""));
        Some(sandbox)
    }

    /// An empty policy apart from the agent's home (a scratch dir, never the real /home).
    pub fn policy(&self, extra: &str) -> String {
        format!(
            "{extra}\n[agent]\nuid = 1000\ngid = 1000\nhome = \"{}\"\n",
            self.home.display()
        )
    }

    pub fn write_config(&self, name: &str, text: &str) {
        std::fs::write(self.config.join(name), text).expect("failed to write config");
    }

    /// Run a command inside the network namespace (as root, outside the sandbox).
    pub fn ns(&self, args: &[&str]) -> Output {
        self.netns.exec(args)
    }

    /// The full command: `setup` is shell run as root (as PID 1) just before sandbox-init.
    pub fn command(&self, setup: &str, agent: &[&str]) -> Command {
        let mut cmd = Command::new(tool("ip"));
        cmd.args(["netns", "exec", &self.netns.name]);
        cmd.args(&self.wrapper);
        if self.pid_namespace {
            cmd.arg(tool("unshare"))
                .args(["--pid", "--fork", "--mount-proc", "--kill-child"]);
        }
        cmd.arg(tool("env"))
            .arg("-i")
            .arg("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        for (k, v) in &self.env {
            cmd.arg(format!("{k}={v}"));
        }
        let setup = if setup.is_empty() { ":" } else { setup };
        cmd.arg("/bin/sh")
            .arg("-c")
            .arg(format!("{setup}\nexec \"$@\""))
            .arg("sh")
            .arg(jailoc_tests::sandbox_init())
            .arg("--config-dir")
            .arg(&self.config)
            .arg("--")
            .args(agent);
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Run to completion (60 s watchdog: a hang fails instead of blocking the suite).
    pub fn run(&self, setup: &str, agent: &[&str]) -> Run {
        run_watchdog(self.command(setup, agent), Duration::from_secs(60))
    }

    /// Run the probe as the agent.
    pub fn probe(&self, args: &[&str]) -> Run {
        let probe = self.probe.to_string_lossy().into_owned();
        let mut agent = vec![probe.as_str()];
        agent.extend_from_slice(args);
        self.run("", &agent)
    }

    /// Start in the background, for tests that signal PID 1 from outside.
    pub fn start(&self, setup: &str, agent: &[&str]) -> Running {
        use std::os::unix::process::CommandExt;
        let mut cmd = self.command(setup, agent);
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd.spawn().expect("failed to start sandbox-init");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        Running {
            child,
            stdout,
            started: Instant::now(),
        }
    }
}

/// A sandbox-init started in the background.
pub struct Running {
    pub child: Child,
    pub stdout: BufReader<std::process::ChildStdout>,
    started: Instant,
}

impl Running {
    /// Read stdout lines until one parses as JSON with `key == value` (60 s limit).
    pub fn wait_for_line(&mut self, key: &str, value: &str) -> Value {
        let mut line = String::new();
        loop {
            assert!(
                self.started.elapsed() < Duration::from_secs(60),
                "no line with {key}={value} within 60 s"
            );
            line.clear();
            let n = self.stdout.read_line(&mut line).expect("read stdout");
            assert!(n > 0, "sandbox-init ended before printing {key}={value}");
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                if v.get(key).and_then(Value::as_str) == Some(value) {
                    return v;
                }
            }
        }
    }

    /// The host pid of sandbox-init: the child of `unshare` (which is our child, after
    /// `ip netns exec` exec'd it).
    pub fn init_pid(&self) -> i32 {
        let unshare = self.child.id();
        let children = std::fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children"))
            .expect("read unshare's children");
        children
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .expect("unshare has a child")
    }

    /// Wait for the end (60 s limit, then kill) and return the exit code and stderr.
    pub fn finish(self) -> (Option<i32>, String) {
        let (code, _, err) = self.finish_all();
        (code, err)
    }

    /// Like [`Running::finish`], also returning the rest of stdout.
    pub fn finish_all(mut self) -> (Option<i32>, String, String) {
        use std::io::Read;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                let mut out = String::new();
                let _ = self.stdout.read_to_string(&mut out);
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                return (status.code(), out, err);
            }
            if self.started.elapsed() > Duration::from_secs(60) {
                let _ = self.child.kill();
                panic!("sandbox-init did not end within 60 s");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// A `/proc/PID/status` field.
pub fn status_field(pid: i32, key: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
}

pub fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// A useful failure message for a run.
pub fn describe(run: &Run) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        run.code, run.stdout, run.stderr
    )
}

/// Checks the probe's `status` report for what every agent start must leave: only fds 0-2
/// open and no `SANDBOX_INIT_*` variable in the environment. Returns the environment's names.
pub fn assert_clean_fds_and_env(s: &Value) -> Vec<&str> {
    let fds: Vec<i64> = s["fds"]
        .as_array()
        .expect("fds")
        .iter()
        .filter_map(|f| f["fd"].as_i64())
        .collect();
    assert_eq!(fds, [0, 1, 2], "{s}");
    let env: Vec<&str> = s["env"]
        .as_array()
        .expect("env")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        !env.iter().any(|k| k.starts_with("SANDBOX_INIT_")),
        "{env:?}"
    );
    env
}
