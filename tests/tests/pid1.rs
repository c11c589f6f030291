//! sandbox-init as PID 1, modelled on tini's test suite: exit codes pass through, signals sent to
//! PID 1 from outside reach the agent, orphans are reaped, exec failures map to 126/127, and a
//! container that cannot drop every privilege never starts the agent (71).
//!
//! Root only (a network namespace with only `lo` and a pid namespace per test); skips with a
//! reason otherwise, fails when `CI` is set.

mod init_common;

use init_common::{describe, path_str, status_field, Sandbox};
use serde_json::Value;

#[test]
fn exit_codes_pass_through() {
    let Some(sb) = Sandbox::new("pid1 exit codes") else {
        return;
    };
    for code in [0, 1, 2, 3, 126, 127, 128, 254, 255] {
        let run = sb.probe(&["exit", &code.to_string()]);
        assert_eq!(run.code, Some(code), "{}", describe(&run));
    }
}

#[test]
fn signals_sent_to_pid1_end_the_agent_with_128_plus_n() {
    let Some(sb) = Sandbox::new("pid1 signals") else {
        return;
    };
    for (sig, name, code) in [
        (libc::SIGTERM, "TERM", 143),
        (libc::SIGINT, "INT", 130),
        (libc::SIGUSR1, "USR1", 138),
        (libc::SIGUSR2, "USR2", 140),
        (libc::SIGHUP, "HUP", 129),
    ] {
        let mut running = sb.start("", &[&path_str(&sb.probe), "sleep", "30"]);
        // The probe prints its line once it runs, i.e. after the exec: PID 1 is supervising.
        running.wait_for_line("cmd", "sleep");
        let init = running.init_pid();
        // SAFETY: kill(2) with a pid we just read and a valid signal number.
        let rc = unsafe { libc::kill(init, sig) };
        assert_eq!(rc, 0, "failed to signal sandbox-init ({init})");
        let (exit, stderr) = running.finish();
        assert_eq!(exit, Some(code), "SIG{name}: stderr:\n{stderr}");
    }
}

#[test]
fn signals_reach_the_agents_own_handlers() {
    let Some(sb) = Sandbox::new("pid1 forwarding") else {
        return;
    };
    // Signals whose default action does not end the agent (WINCH, CONT) or that it handles:
    // the trap's exit code proves this exact signal arrived.
    for (sig, name) in [
        (libc::SIGWINCH, "WINCH"),
        (libc::SIGCONT, "CONT"),
        (libc::SIGQUIT, "QUIT"),
        (libc::SIGHUP, "HUP"),
        (libc::SIGTERM, "TERM"),
    ] {
        let script = format!(
            "trap 'exit 42' {name}\necho '{{\"cmd\":\"ready\"}}'\n\
             while :; do sleep 0.02; done"
        );
        let mut running = sb.start("", &["/bin/sh", "-c", &script]);
        running.wait_for_line("cmd", "ready");
        let init = running.init_pid();
        // SAFETY: kill(2) with a pid we just read and a valid signal number.
        assert_eq!(unsafe { libc::kill(init, sig) }, 0);
        let (exit, stderr) = running.finish();
        assert_eq!(exit, Some(42), "SIG{name} did not reach the trap: {stderr}");
    }
}

#[test]
fn a_hundred_orphans_are_reaped() {
    let Some(sb) = Sandbox::new("pid1 reaping") else {
        return;
    };
    // The probe forks 100 children that each leave an orphaned grandchild, then polls /proc
    // until they are gone (5 s limit): only an init that reaps makes it report "reaped".
    let run = sb.probe(&["orphans", "100"]);
    let line = run
        .lines
        .iter()
        .find(|l| l.get("cmd").and_then(Value::as_str) == Some("orphans"))
        .unwrap_or_else(|| panic!("no orphans line: {}", describe(&run)));
    assert_eq!(line["created"], 100, "{line}");
    assert_eq!(line["zombies"], 0, "{line}");
    assert_eq!(line["result"], "reaped", "{line}");
    assert_eq!(run.code, Some(0), "{}", describe(&run));
}

#[test]
fn not_pid1_becomes_a_subreaper_and_reaps() {
    let Some(mut sb) = Sandbox::new("subreaper") else {
        return;
    };
    sb.pid_namespace = false;
    let run = sb.probe(&["orphans", "20"]);
    let line = run
        .lines
        .iter()
        .find(|l| l.get("cmd").and_then(Value::as_str) == Some("orphans"))
        .unwrap_or_else(|| panic!("no orphans line: {}", describe(&run)));
    assert_eq!(line["result"], "reaped", "{}", describe(&run));
    assert_eq!(run.code, Some(0), "{}", describe(&run));
}

#[test]
fn missing_privilege_capabilities_exit_71_before_the_agent_starts() {
    let Some(mut sb) = Sandbox::new("pid1 fail closed") else {
        return;
    };
    for (cap, name) in [
        ("setpcap", "CAP_SETPCAP"),
        ("setuid", "CAP_SETUID"),
        ("setgid", "CAP_SETGID"),
    ] {
        // Removing it from the bounding set before exec'ing as root removes it from the
        // permitted and effective sets of everything below, sandbox-init included.
        sb.wrapper = vec![
            path_str(&init_common::tool("setpriv")),
            format!("--bounding-set=-{cap}"),
            "--".into(),
        ];
        let marker = sb.markers.join(format!("ran-without-{cap}"));
        let run = sb.probe(&["touch", &path_str(&marker)]);
        assert_eq!(run.code, Some(71), "{}", describe(&run));
        assert!(run.stderr.contains(name), "{}", describe(&run));
        assert!(
            !marker.exists(),
            "the agent ran although {name} was missing"
        );
    }
}

#[test]
fn exec_failures_are_126_and_127_with_the_path() {
    let Some(sb) = Sandbox::new("pid1 exec failures") else {
        return;
    };
    let missing = sb.tmp.path().join("no-such-agent");
    let run = sb.run("", &[&path_str(&missing)]);
    assert_eq!(run.code, Some(127), "{}", describe(&run));
    assert!(
        run.stderr.contains(&format!(
            "sandbox-init: error: failed to execute the agent {}: no such file or directory",
            missing.display()
        )),
        "{}",
        describe(&run)
    );

    let run = sb.run("", &["no-such-agent-in-path"]);
    assert_eq!(run.code, Some(127), "{}", describe(&run));
    assert!(
        run.stderr.contains("no-such-agent-in-path"),
        "{}",
        describe(&run)
    );

    let not_exec = sb.tmp.write("not-executable", "#!/bin/sh\nexit 0\n");
    let run = sb.run("", &[&path_str(&not_exec)]);
    assert_eq!(run.code, Some(126), "{}", describe(&run));
    assert!(
        run.stderr.contains(&format!(
            "sandbox-init: error: failed to execute the agent {}: permission denied",
            not_exec.display()
        )),
        "{}",
        describe(&run)
    );
}

#[test]
fn pid1_keeps_only_cap_kill_while_supervising() {
    let Some(sb) = Sandbox::new("pid1 privileges") else {
        return;
    };
    let mut running = sb.start("", &[&path_str(&sb.probe), "sleep", "30"]);
    running.wait_for_line("cmd", "sleep");
    let init = running.init_pid();
    assert_eq!(status_field(init, "Uid"), "0\t0\t0\t0");
    assert_eq!(status_field(init, "CapEff"), "0000000000000020");
    assert_eq!(status_field(init, "CapPrm"), "0000000000000020");
    assert_eq!(status_field(init, "CapInh"), "0000000000000000");
    assert_eq!(status_field(init, "CapBnd"), "0000000000000000");
    assert_eq!(status_field(init, "CapAmb"), "0000000000000000");
    assert_eq!(status_field(init, "NoNewPrivs"), "1");
    // SAFETY: kill(2) with a pid we just read.
    unsafe { libc::kill(init, libc::SIGTERM) };
    let (exit, stderr) = running.finish();
    assert_eq!(exit, Some(143), "{stderr}");
}

/// The agent's own pid, process group and its terminal's foreground group, from its stat.
const PGRP_SCRIPT: &str = "set -- $(cat /proc/$$/stat); echo \"pid=$1 pgrp=$5 tpgid=$8\"";

fn pgrp_fields(stdout: &str) -> (String, String, String) {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("pid="))
        .unwrap_or_else(|| panic!("no pid line in {stdout:?}"));
    let get = |k: &str| {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(&format!("{k}=")))
            .map(|v| v.trim_end_matches('\r').to_owned())
            .unwrap_or_default()
    };
    (get("pid"), get("pgrp"), get("tpgid"))
}

fn shell_quote(arg: &std::ffi::OsStr) -> String {
    format!("'{}'", arg.to_string_lossy().replace('\'', "'\\''"))
}

#[test]
fn the_agent_gets_its_own_process_group_and_the_terminal() {
    let Some(sb) = Sandbox::new("pid1 process group") else {
        return;
    };
    // Without a terminal: its own group.
    let run = sb.run("", &["/bin/sh", "-c", PGRP_SCRIPT]);
    assert_eq!(run.code, Some(0), "{}", describe(&run));
    let (pid, pgrp, _) = pgrp_fields(&run.stdout);
    assert_eq!(pgrp, pid, "{}", describe(&run));

    // With a terminal (script(1) runs the chain on a new pty, as `docker run -t` does): the
    // agent's group is the foreground group, so Ctrl-C goes to the agent, not to PID 1.
    let cmd = sb.command("", &["/bin/sh", "-c", PGRP_SCRIPT]);
    let line: Vec<String> = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(shell_quote)
        .collect();
    let out = std::process::Command::new(init_common::tool("script"))
        .args(["-qec", &line.join(" "), "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script (package bsdutils)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let (pid, pgrp, tpgid) = pgrp_fields(&stdout);
    assert_eq!(
        (pgrp.as_str(), tpgid.as_str()),
        (pid.as_str(), pid.as_str()),
        "{stdout}"
    );
}

#[test]
fn a_closed_stderr_does_not_end_pid1_or_the_agent() {
    let Some(mut sb) = Sandbox::new("pid1 broken stderr") else {
        return;
    };
    // Debug logging: every forwarded signal is a log line.
    sb.env = vec![("SANDBOX_INIT_LOG".into(), "debug".into())];
    let go = sb.markers.join("go");
    let script = format!(
        "trap 'echo {{\\\"cmd\\\":\\\"got\\\"}}' USR1 WINCH HUP\n\
         echo '{{\"cmd\":\"ready\"}}'\n\
         while [ ! -e {} ]; do sleep 0.02; done\nexit 42",
        go.display()
    );
    let mut running = sb.start("", &["/bin/sh", "-c", &script]);
    running.wait_for_line("cmd", "ready");
    // Whoever read the container's log went away: every log line now fails with EPIPE.
    drop(running.child.stderr.take());
    let init = running.init_pid();
    for sig in [libc::SIGUSR1, libc::SIGWINCH, libc::SIGHUP, libc::SIGUSR1] {
        // SAFETY: kill(2) with a pid we just read and a valid signal number.
        assert_eq!(unsafe { libc::kill(init, sig) }, 0, "signal {sig}");
        // The agent's trap proves this signal was forwarded (and logged) by a living PID 1.
        running.wait_for_line("cmd", "got");
    }
    std::fs::write(&go, "").expect("write go marker");
    let (exit, _) = running.finish();
    assert_eq!(exit, Some(42), "sandbox-init did not pass the agent's code");
}
