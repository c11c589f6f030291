//! What the agent ends with, asserted from the agent's side: no uid 0, no group, no capability
//! in any of the five sets, no_new_privs, no blocked signal, no inherited fd; setuid binaries and
//! file capabilities grant nothing; raw sockets and network changes are refused; PID 1 cannot be
//! signalled, read or traced; secrets arrive and sandbox-init's own variables do not.
//!
//! Root only; skips with a reason otherwise, fails when `CI` is set.

mod init_common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

use init_common::{assert_clean_fds_and_env, describe, path_str, tool, Sandbox};
use serde_json::Value;

const ZERO: &str = "0000000000000000";

fn status_line(lines: &[Value]) -> Vec<&Value> {
    lines
        .iter()
        .filter(|l| l.get("cmd").and_then(Value::as_str) == Some("status"))
        .collect()
}

fn assert_unprivileged(s: &Value) {
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
}

#[test]
fn the_agent_ends_with_nothing() {
    let Some(mut sb) = Sandbox::new("privilege drop") else {
        return;
    };
    sb.env = vec![
        ("SANDBOX_INIT_LOG".into(), "info".into()),
        ("SANDBOX_INIT_SOMETHING".into(), "x".into()),
        ("KEEP_ME".into(), "1".into()),
    ];
    // fd 7 is open without close-on-exec in sandbox-init: the agent must not get it.
    // The signal state is read by a C program (grep) the agent's shell starts: the probe is a
    // Rust program, whose runtime ignores SIGPIPE itself before it could report.
    let script = format!(
        "grep -E '^Sig(Blk|Ign):' /proc/self/status | tr -d '\\t' | tr ':' '='\n\
         exec {} status",
        sb.probe.display()
    );
    let run = sb.run("exec 7</etc/hostname", &["/bin/sh", "-c", &script]);
    assert_eq!(run.code, Some(0), "{}", describe(&run));
    assert_eq!(
        kv(&run.stdout, "SigBlk").as_deref(),
        Some(ZERO),
        "{}",
        describe(&run)
    );
    assert_eq!(
        kv(&run.stdout, "SigIgn").as_deref(),
        Some(ZERO),
        "{}",
        describe(&run)
    );
    let lines = status_line(&run.lines);
    let s = lines
        .first()
        .unwrap_or_else(|| panic!("no status: {}", describe(&run)));
    assert_unprivileged(s);
    assert_eq!(s["SigBlk"], ZERO, "{s}");
    let env = assert_clean_fds_and_env(s);
    for k in ["KEEP_ME", "HOME", "USER", "LOGNAME", "PATH"] {
        assert!(env.contains(&k), "{k} missing from {env:?}");
    }
    assert_eq!(s["home"], path_str(&sb.home), "{s}");
}

#[test]
fn setuid_and_file_capabilities_grant_nothing() {
    let Some(sb) = Sandbox::new("setuid/file caps") else {
        return;
    };
    let suid = sb.tmp.path().join("probe-suid");
    let fcaps_p = sb.tmp.path().join("probe-fcaps-p");
    let fcaps_ep = sb.tmp.path().join("probe-fcaps-ep");
    for copy in [&suid, &fcaps_p, &fcaps_ep] {
        std::fs::copy(&sb.probe, copy).expect("copy");
    }
    std::os::unix::fs::chown(&suid, Some(0), Some(0)).expect("chown");
    std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755)).expect("chmod");
    assert_eq!(
        std::fs::metadata(&suid).expect("stat").mode() & 0o4000,
        0o4000
    );
    for (file, caps) in [
        (
            &fcaps_p,
            "cap_net_raw,cap_net_admin,cap_setuid,cap_dac_override+p",
        ),
        (
            &fcaps_ep,
            "cap_net_raw,cap_net_admin,cap_setuid,cap_dac_override+ep",
        ),
    ] {
        let out = Command::new(tool("setcap"))
            .arg(caps)
            .arg(file)
            .output()
            .expect("setcap (package libcap2-bin)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // Control: outside the sandbox, as plain uid 1000 without no_new_privs, every copy does
    // grant privileges, so the assertions below can fail.
    let control = |bin: &std::path::Path| {
        let out = Command::new(tool("setpriv"))
            .args(["--reuid=1000", "--regid=1000", "--clear-groups", "--"])
            .arg(bin)
            .arg("status")
            .output()
            .expect("setpriv");
        serde_json::from_slice::<Value>(&out.stdout).expect("status json")
    };
    assert_eq!(
        control(&suid)["uids"][1],
        0,
        "control: the setuid copy in {} does not work outside the sandbox (is the temp dir \
         mounted nosuid? point TMPDIR at a file system without nosuid)",
        sb.tmp.path().display()
    );
    assert_ne!(
        control(&fcaps_p)["CapPrm"],
        ZERO,
        "+p copy must work as a control"
    );
    assert_ne!(
        control(&fcaps_ep)["CapEff"],
        ZERO,
        "+ep copy must work as a control"
    );

    let script = format!(
        "{} status; echo suid=$?; {} status; echo p=$?; {} status 2>/dev/null; echo ep=$?",
        suid.display(),
        fcaps_p.display(),
        fcaps_ep.display()
    );
    let run = sb.run("", &["/bin/sh", "-c", &script]);
    assert_eq!(run.code, Some(0), "{}", describe(&run));
    // setuid and +p binaries run, without privilege; a +ep ("legacy") binary whose file
    // capabilities cannot be granted is refused by the kernel (EPERM, sh says 126) — also
    // nothing gained. Either way no status line may show a privilege.
    assert_eq!(
        kv(&run.stdout, "suid").as_deref(),
        Some("0"),
        "{}",
        describe(&run)
    );
    assert_eq!(
        kv(&run.stdout, "p").as_deref(),
        Some("0"),
        "{}",
        describe(&run)
    );
    let ep = kv(&run.stdout, "ep").unwrap_or_default();
    assert!(ep == "0" || ep == "126", "{}", describe(&run));
    let lines = status_line(&run.lines);
    assert!(lines.len() >= 2, "{}", describe(&run));
    for s in lines {
        assert_unprivileged(s);
    }
}

/// Perl one-liner: try an AF_PACKET and a raw IPv4 socket, print the errno (0 = opened).
const RAW_SOCKETS: &str = "perl -e 'for ([packet => 17, 3, 0], [raw => 2, 3, 1]) { my ($n, @a) \
     = @$_; my $ok = socket(my $s, $a[0], $a[1], $a[2]); print \"$n=\", ($ok ? 0 : $!+0), \"\\n\" }'";

fn kv(stdout: &str, key: &str) -> Option<String> {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::to_owned)
}

#[test]
fn raw_sockets_and_network_changes_are_refused() {
    let Some(sb) = Sandbox::new("network privileges") else {
        return;
    };
    // A marker rule and route of our own, so "unchanged" is checked against something.
    sb.ns(&[
        "iptables",
        "-A",
        "OUTPUT",
        "-d",
        "192.0.2.99/32",
        "-j",
        "REJECT",
    ]);
    sb.ns(&["ip", "route", "add", "198.51.100.0/24", "dev", "lo"]);
    let rules = || {
        let out = sb.ns(&["iptables-save"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let routes = || {
        String::from_utf8_lossy(&sb.ns(&["ip", "route", "show", "table", "all"]).stdout)
            .into_owned()
    };
    // Control: root in the same namespace can open both sockets.
    let control = sb.ns(&["sh", "-c", RAW_SOCKETS]);
    let control = String::from_utf8_lossy(&control.stdout);
    assert_eq!(kv(&control, "packet").as_deref(), Some("0"), "{control}");
    assert_eq!(kv(&control, "raw").as_deref(), Some("0"), "{control}");

    // The agent says it is ready, waits for the go file, then tries everything. "Before" is
    // read while it waits: sandbox-init's own firewall is in place by then.
    let go = sb.markers.join("go");
    let script = format!(
        "echo '{{\"cmd\":\"ready\"}}'\n\
         while [ ! -e {go} ]; do sleep 0.02; done\n\
         {RAW_SOCKETS}\n\
         iptables -F >/dev/null 2>&1; echo flush=$?\n\
         iptables -t filter -D OUTPUT 1 >/dev/null 2>&1; echo delete=$?\n\
         ip route add 203.0.113.0/24 dev lo >/dev/null 2>&1; echo route=$?\n\
         ip route del 198.51.100.0/24 >/dev/null 2>&1; echo route_del=$?\n\
         ip link set lo down >/dev/null 2>&1; echo link=$?\n",
        go = go.display()
    );
    let mut running = sb.start("", &["/bin/sh", "-c", &script]);
    running.wait_for_line("cmd", "ready");
    let (rules_before, routes_before) = (rules(), routes());
    assert!(rules_before.contains("192.0.2.99"), "{rules_before}");
    std::fs::write(&go, "").expect("write go marker");
    let (code, stdout, stderr) = running.finish_all();
    let what = format!("exit {code:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}");
    assert_eq!(code, Some(0), "{what}");
    // AF_PACKET never reaches the capability check: the socket-family filter refuses the
    // family first (EAFNOSUPPORT). A raw IPv4 socket is refused by the kernel (no CAP_NET_RAW).
    assert_eq!(
        kv(&stdout, "packet"),
        Some(libc::EAFNOSUPPORT.to_string()),
        "{what}"
    );
    assert_eq!(kv(&stdout, "raw"), Some(libc::EPERM.to_string()), "{what}");
    for key in ["flush", "delete", "route", "route_del", "link"] {
        let rc = kv(&stdout, key).unwrap_or_else(|| panic!("{key}: {what}"));
        assert_ne!(rc, "0", "{key} succeeded as the agent: {what}");
    }
    assert_eq!(rules(), rules_before, "the agent changed the rules");
    assert_eq!(routes(), routes_before, "the agent changed the routes");
}

/// The `probe sockets` line for `call` and `family`: (result, errno name).
fn socket_attempt(lines: &[Value], call: &str, family: &str) -> (String, String) {
    let line = lines
        .iter()
        .find(|l| l["cmd"] == "socket" && l["call"] == call && l["family"] == family)
        .unwrap_or_else(|| panic!("no {call} {family} line in {lines:?}"));
    let text = |k: &str| line[k].as_str().unwrap_or_default().to_owned();
    (text("result"), text("error"))
}

#[test]
fn attack_vsock_and_other_socket_families_netfilter_cannot_see_are_refused() {
    let Some(sb) = Sandbox::new("socket families") else {
        return;
    };
    let probe = path_str(&sb.probe);
    // Control: without sandbox-init (root in the same namespace, no filter) this kernel opens
    // an AF_VSOCK socket (to the hypervisor) the firewall cannot see, also through i386's
    // int 0x80 and through io_uring: what the agent could do before the filter.
    let control = jailoc_tests::probe_lines(&String::from_utf8_lossy(
        &sb.ns(&[&probe, "sockets"]).stdout,
    ));
    for (call, family) in [
        ("socket", "vsock"),
        ("i386-socket", "vsock"),
        ("io_uring", "vsock"),
    ] {
        assert_eq!(
            socket_attempt(&control, call, family).0,
            "opened",
            "control: {call}(AF_VSOCK) must work without the filter on this kernel              (CONFIG_VSOCKETS, IA32 emulation, io_uring enabled): {control:?}"
        );
    }

    let run = sb.run("", &[&probe, "sockets"]);
    assert_eq!(run.code, Some(0), "{}", describe(&run));
    let got = |call: &str, family: &str| socket_attempt(&run.lines, call, family);
    let opened = ("opened".to_owned(), String::new());
    let refused = |errno: &str| ("error".to_owned(), errno.to_owned());
    // Kept: what programs need.
    for family in ["unix", "inet", "inet6", "netlink"] {
        assert_eq!(
            got("socket", family),
            opened,
            "{family}: {}",
            describe(&run)
        );
    }
    assert_eq!(got("socketpair", "unix"), opened, "{}", describe(&run));
    assert_eq!(got("i386-socket", "inet"), opened, "{}", describe(&run));
    // Refused, with the errno of a kernel without the family, so programs fall back.
    for family in ["vsock", "tipc", "alg", "packet"] {
        assert_eq!(
            got("socket", family),
            refused("EAFNOSUPPORT"),
            "{family}: {}",
            describe(&run)
        );
    }
    assert_eq!(got("socketpair", "vsock"), refused("EAFNOSUPPORT"));
    assert_eq!(got("socket", "smc-inet"), refused("EPROTONOSUPPORT"));
    // The 32-bit entry and io_uring do not get around it.
    assert_eq!(got("i386-socket", "vsock"), refused("EAFNOSUPPORT"));
    assert_eq!(got("i386-socketcall", "any"), refused("ENOSYS"));
    assert_eq!(got("io_uring", "vsock"), refused("ENOSYS"));
}

#[test]
fn the_agent_cannot_signal_read_or_trace_pid1() {
    let Some(sb) = Sandbox::new("pid1 isolation") else {
        return;
    };
    // ptrace(PTRACE_ATTACH=16, 1) via perl's syscall (x86-64: ptrace is 101).
    let script = "kill -TERM 1 2>/dev/null; echo kill=$?\n\
                  kill -KILL 1 2>/dev/null; echo kill9=$?\n\
                  cat /proc/1/environ >/dev/null 2>&1; echo environ=$?\n\
                  perl -e '$r = syscall(101, 16, 1, 0, 0); print \"ptrace=\", ($r == -1 ? $!+0 : 0), \"\\n\"'\n\
                  grep -E '^(Uid|CapEff|CapBnd|NoNewPrivs):' /proc/1/status | tr -d '\\t' | tr ':' '='\n";
    let run = sb.run("", &["/bin/sh", "-c", script]);
    // Had the TERM reached PID 1 it would have been forwarded to us: we would end with 143.
    assert_eq!(run.code, Some(0), "{}", describe(&run));
    assert_eq!(
        kv(&run.stdout, "kill").as_deref(),
        Some("1"),
        "{}",
        describe(&run)
    );
    assert_eq!(
        kv(&run.stdout, "kill9").as_deref(),
        Some("1"),
        "{}",
        describe(&run)
    );
    assert_eq!(
        kv(&run.stdout, "environ").as_deref(),
        Some("1"),
        "{}",
        describe(&run)
    );
    assert_eq!(
        kv(&run.stdout, "ptrace"),
        Some(libc::EPERM.to_string()),
        "{}",
        describe(&run)
    );
    assert_eq!(
        kv(&run.stdout, "Uid").as_deref(),
        Some("0000"),
        "{}",
        describe(&run)
    );
    assert_eq!(
        kv(&run.stdout, "CapEff").as_deref(),
        Some("0000000000000020")
    );
    assert_eq!(kv(&run.stdout, "CapBnd").as_deref(), Some(ZERO));
    assert_eq!(kv(&run.stdout, "NoNewPrivs").as_deref(), Some("1"));
}

/// Setup (as root, PID 1, private mount namespace): a tmpfs over /run holding root-only secrets.
const SECRETS_SETUP: &str = "mount -t tmpfs -o mode=755 tmpfs /run && \
     mkdir -m 700 /run/secrets && printf 's3cr3t value\\n' > /run/secrets/API_KEY && \
     chmod 400 /run/secrets/API_KEY";

#[test]
fn secrets_arrive_as_environment_variables() {
    let Some(sb) = Sandbox::new("secrets") else {
        return;
    };
    sb.write_config("secret-env", "# from /run/secrets\nAPI_KEY\n");
    let script =
        "echo \"API_KEY=$API_KEY\"; cat /run/secrets/API_KEY >/dev/null 2>&1; echo direct=$?";
    let run = sb.run(SECRETS_SETUP, &["/bin/sh", "-c", script]);
    assert_eq!(run.code, Some(0), "{}", describe(&run));
    assert_eq!(kv(&run.stdout, "API_KEY").as_deref(), Some("s3cr3t value"));
    // The file itself stays root-only: the agent has the value, not the mount.
    assert_eq!(
        kv(&run.stdout, "direct").as_deref(),
        Some("1"),
        "{}",
        describe(&run)
    );
    assert!(
        !run.stderr.contains("s3cr3t"),
        "a secret leaked into the log"
    );
}

#[test]
fn a_missing_secret_stops_the_boot() {
    let Some(sb) = Sandbox::new("missing secret") else {
        return;
    };
    sb.write_config("secret-env", "API_KEY\nNOT_MOUNTED\n");
    let marker = sb.markers.join("ran");
    let run = sb.run(
        SECRETS_SETUP,
        &[&path_str(&sb.probe), "touch", &path_str(&marker)],
    );
    assert_eq!(run.code, Some(78), "{}", describe(&run));
    assert!(run.stderr.contains("NOT_MOUNTED"), "{}", describe(&run));
    assert!(!marker.exists(), "the agent started without its secret");
}

#[test]
fn home_dirs_are_given_to_the_agent_without_following_symlinks() {
    let Some(sb) = Sandbox::new("home ownership") else {
        return;
    };
    // As Docker leaves them: root-owned .cache with content, .config a symlink to a root dir.
    let outside = sb.tmp.subdir("outside", 0o755);
    std::fs::create_dir_all(sb.home.join(".cache/pip/wheels")).expect("mkdir");
    std::fs::write(sb.home.join(".cache/pip/wheels/x.whl"), "x").expect("write");
    std::os::unix::fs::symlink(&outside, sb.home.join(".config")).expect("symlink");
    let script = format!(
        "touch {h}/.cache/pip/wheels/new && touch {h}/.local/x && echo ok",
        h = sb.home.display()
    );
    let run = sb.run("", &["/bin/sh", "-c", &script]);
    assert_eq!(run.code, Some(0), "{}", describe(&run));
    assert!(run.stdout.contains("ok"), "{}", describe(&run));
    for p in [".cache", ".cache/pip/wheels/x.whl", ".local"] {
        let m = std::fs::symlink_metadata(sb.home.join(p)).expect("stat");
        assert_eq!((m.uid(), m.gid()), (1000, 1000), "{p}");
    }
    assert_eq!(std::fs::metadata(&outside).expect("stat").uid(), 0);
    assert!(run.stderr.contains("it is a symlink"), "{}", describe(&run));
}
