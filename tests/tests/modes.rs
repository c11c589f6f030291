//! `sandbox-init --health` and `--enter`, run the way the engine runs them: as root with every
//! capability, in the agent's working directory, with a `PATH` whose first entry the agent
//! owns. Both must drop to the agent with the boot's own code before they do anything else;
//! these tests watch that from the outside (the health check's credentials while it talks to
//! the server, an entered command's `/proc/self/status`).
//!
//! The health server runs on the loopback of a throwaway network namespace with only `lo`
//! (`init_common::Sandbox`): nothing reaches any real interface. Root only; skips with a reason
//! otherwise, fails when `CI` is set.

mod init_common;

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use init_common::{assert_clean_fds_and_env, describe, path_str, tool, Sandbox};
use jailoc_tests::lab::{run_watchdog, Run};
use serde_json::Value;

const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const ZERO: &str = "0000000000000000";

/// The agent's own directory, first on `PATH` and the working directory, holding every tool the
/// old shell health check used (and a few more), each leaving a marker if anyone runs it.
fn planted_bin(sb: &Sandbox) -> PathBuf {
    let bin = sb.tmp.subdir("agent-bin", 0o755);
    chown(&bin, Some(1000), Some(1000)).expect("chown");
    for name in [
        "head", "base64", "tr", "grep", "bash", "sh", "curl", "wget", "nc", "cat", "printf",
    ] {
        let p = bin.join(name);
        fs::write(
            &p,
            format!("#!/bin/sh\ntouch {}/planted-{name}\n", sb.markers.display()),
        )
        .expect("write");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("chmod");
        chown(&p, Some(1000), Some(1000)).expect("chown");
    }
    bin
}

fn planted_markers(sb: &Sandbox) -> Vec<String> {
    fs::read_dir(&sb.markers)
        .expect("markers")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("planted-"))
        .collect()
}

/// `sandbox-init --config-dir C ARGS...` in the sandbox's network namespace, as root with every
/// capability (what `ip netns exec` keeps), in `cwd`, with only `env` as environment.
fn sandbox_init(sb: &Sandbox, args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(tool("ip"));
    cmd.args(["netns", "exec", &sb.netns.name])
        .arg(tool("env"))
        .arg("-i");
    for (k, v) in env {
        cmd.arg(format!("{k}={v}"));
    }
    cmd.arg(jailoc_tests::sandbox_init())
        .arg("--config-dir")
        .arg(&sb.config)
        .args(args)
        .current_dir(cwd);
    run_watchdog(cmd, Duration::from_secs(30))
}

/// `/proc/PID/status` as a map.
fn status(pid: u32) -> BTreeMap<String, String> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect()
}

/// The process that owns the client end of `conn` (a connection accepted on this thread's
/// network namespace's loopback): the peer's port → its socket's inode in this thread's
/// `/proc/thread-self/net/tcp` → the pid with `socket:[inode]` among its fds.
fn peer_process(conn: &TcpStream) -> Option<u32> {
    let peer = conn.peer_addr().ok()?;
    let local = conn.local_addr().ok()?;
    let hex =
        |ip: Ipv4Addr, port: u16| format!("{:08X}:{port:04X}", u32::from_le_bytes(ip.octets()));
    let (std::net::IpAddr::V4(peer_ip), std::net::IpAddr::V4(local_ip)) = (peer.ip(), local.ip())
    else {
        return None;
    };
    let want = (hex(peer_ip, peer.port()), hex(local_ip, local.port()));
    let table = fs::read_to_string("/proc/thread-self/net/tcp").ok()?;
    let inode = table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.len() > 9 && f[1] == want.0 && f[2] == want.1).then(|| f[9].to_owned())
    })?;
    let target = format!("socket:[{inode}]");
    for proc_entry in fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = proc_entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(fds) = fs::read_dir(proc_entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy() == target) {
                return Some(pid);
            }
        }
    }
    None
}

/// What the server saw of one connection.
#[derive(Debug)]
struct Seen {
    request: String,
    status: BTreeMap<String, String>,
}

/// An HTTP server on 127.0.0.1:4096 inside the sandbox's network namespace (a thread that
/// joined it with `setns`), answering each connection with the next of `answers` and
/// reporting what it saw (before it answers); it stops after the last answer.
fn serve(sb: &Sandbox, answers: Vec<&'static str>) -> mpsc::Receiver<Seen> {
    let ns = fs::File::open(format!("/run/netns/{}", sb.netns.name)).expect("open the netns");
    let (ready_tx, ready_rx) = mpsc::channel();
    let (seen_tx, seen_rx) = mpsc::channel();
    std::thread::spawn(move || {
        // SAFETY: setns(2) with an open netns descriptor; it changes only this thread.
        let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 4096)).expect("bind");
        ready_tx.send(()).expect("ready");
        for answer in answers {
            let (mut conn, _) = listener.accept().expect("accept");
            // While the client waits for the answer: who is it?
            let status = peer_process(&conn).map(status).unwrap_or_default();
            let mut buf = [0u8; 4096];
            let n = conn.read(&mut buf).unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]).into_owned();
            // Reported before the answer, so it is there once the client has ended.
            let _ = seen_tx.send(Seen { request, status });
            let _ = conn.write_all(answer.as_bytes());
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the server did not start");
    seen_rx
}

fn assert_agent(status: &BTreeMap<String, String>, what: &str) {
    assert_eq!(
        status.get("Uid").map(String::as_str),
        Some("1000\t1000\t1000\t1000"),
        "{what}: {status:?}"
    );
    assert_eq!(
        status.get("Gid").map(String::as_str),
        Some("1000\t1000\t1000\t1000"),
        "{what}: {status:?}"
    );
    assert_eq!(
        status.get("Groups").map(String::as_str),
        Some(""),
        "{what}: {status:?}"
    );
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(
            status.get(set).map(String::as_str),
            Some(ZERO),
            "{what}: {set}: {status:?}"
        );
    }
    assert_eq!(
        status.get("NoNewPrivs").map(String::as_str),
        Some("1"),
        "{what}: {status:?}"
    );
}

#[test]
fn attack_health_check_runs_as_the_agent_and_never_runs_planted_tools() {
    let Some(sb) = Sandbox::new("health check") else {
        return;
    };
    let bin = planted_bin(&sb);
    let path = format!("{}:{SYSTEM_PATH}", bin.display());
    let env = [
        ("PATH", path.as_str()),
        ("OPENCODE_SERVER_PASSWORD", "s3cr3t"),
    ];
    let seen = serve(
        &sb,
        vec![
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"healthy\":true}",
            "HTTP/1.1 500 Internal Server Error\r\n\r\n",
        ],
    );

    let healthy = sandbox_init(&sb, &["--health"], &bin, &env);
    let first = seen
        .recv_timeout(Duration::from_secs(10))
        .expect("no request");
    assert_eq!(healthy.code, Some(0), "{}", describe(&healthy));
    assert!(
        first.request.starts_with("GET /global/health HTTP/1.0\r\n")
            && first
                .request
                .contains("\r\nAuthorization: Basic b3BlbmNvZGU6czNjcjN0\r\n"),
        "{first:?}"
    );
    // The process that connected was already the agent: no root, no capability anywhere.
    assert_agent(&first.status, "the health check while it connected");

    let sick = sandbox_init(&sb, &["--health"], &bin, &env);
    let second = seen
        .recv_timeout(Duration::from_secs(10))
        .expect("no request");
    assert_eq!(sick.code, Some(1), "{}", describe(&sick));
    assert_agent(&second.status, "the health check while it connected");
    assert_eq!(
        sick.stderr,
        "sandbox-init: error: failed the health check: GET /global/health on 127.0.0.1:4096 \
         answered \"HTTP/1.1 500 Internal Server Error\"\n"
    );

    // The server is gone (it answered twice): nothing listens.
    let down = sandbox_init(&sb, &["--health", "--port", "4096"], &bin, &env);
    assert_eq!(down.code, Some(1), "{}", describe(&down));
    assert!(
        down.stderr
            .contains("failed to connect to 127.0.0.1:4096: connection refused"),
        "{}",
        describe(&down)
    );

    assert_eq!(
        planted_markers(&sb),
        Vec::<String>::new(),
        "planted tools ran"
    );
}

#[test]
fn health_check_with_a_container_that_cannot_drop_is_unhealthy_and_asks_nothing() {
    let Some(sb) = Sandbox::new("health check without SETUID") else {
        return;
    };
    let seen = serve(&sb, vec!["HTTP/1.1 200 OK\r\n\r\n"]);
    let mut cmd = Command::new(tool("ip"));
    cmd.args(["netns", "exec", &sb.netns.name])
        .arg(tool("setpriv"))
        .args(["--bounding-set=-setuid", "--"])
        .arg(jailoc_tests::sandbox_init())
        .arg("--config-dir")
        .arg(&sb.config)
        .arg("--health");
    let run = run_watchdog(cmd, Duration::from_secs(30));
    assert_eq!(run.code, Some(1), "{}", describe(&run));
    assert!(
        run.stderr.contains("the container lacks CAP_SETUID"),
        "{}",
        describe(&run)
    );
    assert!(
        seen.try_recv().is_err(),
        "the health check talked to the server without having dropped"
    );
}

#[test]
fn enter_runs_the_command_as_the_agent_with_the_policy_home() {
    let Some(sb) = Sandbox::new("enter") else {
        return;
    };
    let bin = planted_bin(&sb);
    let path = format!("{}:{SYSTEM_PATH}", bin.display());
    // fd 7 open in the caller: the command must not get it.
    let mut cmd = Command::new(tool("sh"));
    cmd.args(["-c", "exec 7</etc/hostname; exec \"$@\"", "sh"])
        .arg(tool("env"))
        .arg("-i")
        .arg(format!("PATH={path}"))
        .arg("HOME=/root")
        .arg("SANDBOX_INIT_LOG=debug")
        .arg(jailoc_tests::sandbox_init())
        .arg("--config-dir")
        .arg(&sb.config)
        .args(["--enter", "--"])
        .arg(&sb.probe)
        .arg("status")
        .current_dir(&bin);
    let run = run_watchdog(cmd, Duration::from_secs(30));
    assert_eq!(run.code, Some(0), "{}", describe(&run));
    let s = run
        .lines
        .iter()
        .find(|l| l.get("cmd").and_then(Value::as_str) == Some("status"))
        .unwrap_or_else(|| panic!("no status: {}", describe(&run)));
    assert_eq!(
        s["uids"],
        serde_json::json!([1000, 1000, 1000, 1000]),
        "{s}"
    );
    assert_eq!(
        s["gids"],
        serde_json::json!([1000, 1000, 1000, 1000]),
        "{s}"
    );
    assert_eq!(s["groups"], serde_json::json!([]), "{s}");
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(s[set], ZERO, "{set}: {s}");
    }
    assert_eq!(s["NoNewPrivs"], "1", "{s}");
    assert_eq!(s["SigBlk"], ZERO, "{s}");
    assert_eq!(s["home"], path_str(&sb.home), "{s}");
    assert_eq!(s["cwd"], path_str(&bin), "{s}");
    let env = assert_clean_fds_and_env(s);
    for k in ["HOME", "USER", "LOGNAME", "PATH"] {
        assert!(env.contains(&k), "{k} missing from {env:?}");
    }
    assert_eq!(
        planted_markers(&sb),
        Vec::<String>::new(),
        "planted tools ran"
    );
}

#[test]
fn enter_exits_127_for_a_missing_command_and_71_when_it_cannot_drop() {
    let Some(sb) = Sandbox::new("enter failures") else {
        return;
    };
    let missing = sandbox_init(
        &sb,
        &["--enter", "--", "no-such-command-jailoc"],
        sb.tmp.path(),
        &[("PATH", SYSTEM_PATH)],
    );
    assert_eq!(missing.code, Some(127), "{}", describe(&missing));
    assert_eq!(
        missing.stderr,
        "sandbox-init: error: failed to execute the agent no-such-command-jailoc: no such file \
         or directory\n"
    );

    let marker = sb.markers.join("entered");
    let mut cmd = Command::new(tool("setpriv"));
    cmd.args(["--bounding-set=-setpcap", "--"])
        .arg(jailoc_tests::sandbox_init())
        .arg("--config-dir")
        .arg(&sb.config)
        .args(["--enter", "--"])
        .arg(&sb.probe)
        .arg("touch")
        .arg(&marker);
    let run = run_watchdog(cmd, Duration::from_secs(30));
    assert_eq!(run.code, Some(71), "{}", describe(&run));
    assert!(
        run.stderr.contains("the container lacks CAP_SETPCAP"),
        "{}",
        describe(&run)
    );
    assert!(!marker.exists(), "the command ran without the drop");
}
