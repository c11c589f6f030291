//! The real resolver, black-box (root): the built `sandbox-init --print-plan` runs inside a
//! throwaway, link-less network namespace whose `/etc/resolv.conf` and `/etc/hosts` are
//! replaced by `ip netns exec` (from `/etc/netns/NAME/`), with dnsmasq answering on the
//! namespace's own loopback. Nothing leaves the namespace.
//!
//! Skips with a reason when not root or without `ip`/`dnsmasq`/iptables; fails instead when
//! `CI` is set.

mod common;

use jailoc_tests::netns::Netns;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A namespace with loopback up, its `/etc/netns/NAME` overrides and (optionally) dnsmasq;
/// everything is removed on drop.
struct Lab {
    ns: Netns,
    config: tempfile::TempDir,
    dnsmasq: Option<Child>,
}

impl Lab {
    fn new(resolv_conf: &str, hosts: &str) -> Self {
        Lab {
            ns: Netns::with_etc("jsi-r", resolv_conf, hosts),
            config: tempfile::tempdir().expect("tempdir"),
            dnsmasq: None,
        }
    }

    /// dnsmasq on 127.0.0.1:53 inside the namespace, answering only from `records`.
    fn start_dnsmasq(&mut self, records: &[&str]) {
        self.start_dnsmasq_with(records, &[]);
    }

    /// The same, with more dnsmasq options (more listen addresses, query logging).
    fn start_dnsmasq_with(&mut self, records: &[&str], extra: &[&str]) {
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            &self.ns.name,
            "dnsmasq",
            "--keep-in-foreground",
            "--conf-file=/dev/null",
        ]);
        cmd.args([
            "--no-resolv",
            "--no-hosts",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
        ]);
        cmd.args(["--user=root", "--pid-file="]);
        cmd.args(extra);
        for r in records {
            cmd.arg(format!("--host-record={r}"));
        }
        self.dnsmasq = Some(
            cmd.stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("dnsmasq"),
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let ss = self.ns.exec(&["ss", "-lun"]);
            if String::from_utf8_lossy(&ss.stdout).contains("127.0.0.1:53 ") {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("dnsmasq did not start listening");
    }

    fn plan(&self, policy_toml: &str) -> (bool, String, String) {
        fs::write(self.config.path().join("policy.toml"), policy_toml).expect("policy");
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns.name,
                env!("CARGO_BIN_EXE_sandbox-init"),
                "--print-plan",
                "--config-dir",
            ])
            .arg(self.config.path())
            .args(["--", "true"])
            .output()
            .expect("sandbox-init");
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    }
}

impl Lab {
    /// dnsmasq answering `records` and logging every query it gets (with more options in
    /// `extra`); returns the log's path.
    fn start_logged_dnsmasq(&mut self, records: &[String], extra: &[&str]) -> PathBuf {
        let log = self.config.path().join("queries.log");
        let log_arg = format!("--log-facility={}", log.display());
        let records: Vec<&str> = records.iter().map(String::as_str).collect();
        let mut options = vec!["--log-queries", log_arg.as_str()];
        options.extend(extra);
        self.start_dnsmasq_with(&records, &options);
        log
    }
}

/// `allowed_hosts = [...]` for a policy.toml.
fn allowed_hosts(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    format!("allowed_hosts = [{}]\n", quoted.join(", "))
}

/// The query log once it shows an A and an AAAA query for every name (dnsmasq writes it from
/// its event loop, a little after answering), or after 5 s.
fn logged_queries(log: &Path, names: &[String]) -> String {
    let text = || fs::read_to_string(log).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = text();
        let complete = names
            .iter()
            .all(|n| asked(&now, "A", n) > 0 && asked(&now, "AAAA", n) > 0);
        if complete || Instant::now() >= deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// How often the log shows a `kind` (A, AAAA) query for `name`.
fn asked(log: &str, kind: &str, name: &str) -> usize {
    log.matches(&format!("query[{kind}] {name} from ")).count()
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut child) = self.dnsmasq.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Then `ns` deletes the namespace.
    }
}

fn privileged() -> bool {
    jailoc_tests::require_tools(
        "resolver namespace test",
        &[
            ("ip", "-V", "`ip` (iproute2) is not installed"),
            (
                "dnsmasq",
                "--version",
                "dnsmasq is not installed (apt-get install dnsmasq-base)",
            ),
            ("iptables-nft", "--version", "iptables is not installed"),
        ],
    )
}

#[test]
fn names_resolve_from_hosts_then_dns_and_unknown_names_only_warn() {
    if !privileged() {
        return;
    }
    let mut lab = Lab::new(
        "nameserver 127.0.0.1\n",
        "127.0.0.1 localhost\n172.17.0.1 host.docker.internal\n",
    );
    lab.start_dnsmasq(&[
        "dual.lab.example,203.0.113.8,2001:db8::8",
        "v4.lab.example,198.51.100.7",
    ]);
    let (ok, plan, stderr) = lab.plan(
        "egress = \"allowlist\"\nallowed_hosts = [\"dual.lab.example\", \"V4.lab.example.:443\", \
         \"host.docker.internal:11434\", \"missing.lab.example\"]\n",
    );
    assert!(ok, "{stderr}");
    assert!(
        plan.contains("# resolved dual.lab.example: 203.0.113.8 2001:db8::8\n"),
        "{plan}"
    );
    assert!(
        plan.contains("# resolved v4.lab.example: 198.51.100.7\n"),
        "{plan}"
    );
    assert!(
        plan.contains("# resolved host.docker.internal: 172.17.0.1\n"),
        "{plan}"
    );
    assert!(plan.contains("-A JAILOC-OUTPUT -d 2001:db8::8/128 -j ACCEPT\n"));
    assert!(
        plan.contains("-A JAILOC-OUTPUT -d 198.51.100.7/32 -p tcp -m tcp --dport 443 -j ACCEPT\n")
    );
    assert!(
        plan.contains("-A JAILOC-OUTPUT -d 172.17.0.1/32 -p tcp -m tcp --dport 11434 -j ACCEPT\n")
    );
    assert!(plan.contains("-A JAILOC-OUTPUT -d 127.0.0.1/32 -p udp -m udp --dport 53 -j ACCEPT\n"));
    assert!(
        stderr.contains("sandbox-init: warning: failed to resolve missing.lab.example: "),
        "{stderr}"
    );
}

#[test]
fn a_dead_resolver_costs_the_bound_and_is_only_a_warning() {
    if !privileged() {
        return;
    }
    // 127.0.0.53 answers nothing: its packets are dropped inside the namespace, so every query
    // can only time out (a refused port would fail fast and prove nothing).
    let lab = Lab::new("nameserver 127.0.0.53\n", "127.0.0.1 localhost\n");
    lab.ns.blackhole("127.0.0.53/32");
    let (ok, plan, stderr) =
        lab.plan("allowed_hosts = [\"a.example\", \"b.example\"]\nresolve_timeout_ms = 300\n");
    assert!(ok, "{stderr}");
    assert!(stderr.contains("sandbox-init: warning: failed to resolve a.example: timed out after 300 ms; it stays blocked"), "{stderr}");
    assert!(
        stderr.contains("failed to resolve b.example: timed out after 300 ms"),
        "{stderr}"
    );
    assert!(plan.contains("-A JAILOC-OUTPUT -d 127.0.0.53/32 -p udp -m udp --dport 53 -j ACCEPT\n"));
}

#[test]
fn a_dead_first_resolver_does_not_hide_a_live_second_one() {
    if !privileged() {
        return;
    }
    let mut lab = Lab::new(
        "nameserver 127.0.0.53\nnameserver 127.0.0.1\n",
        "127.0.0.1 localhost\n",
    );
    lab.ns.blackhole("127.0.0.53/32");
    lab.start_dnsmasq(&["v4.lab.example,198.51.100.7"]);
    let (ok, plan, stderr) =
        lab.plan("allowed_hosts = [\"v4.lab.example\"]\nresolve_timeout_ms = 1000\n");
    assert!(ok, "{stderr}");
    assert!(
        plan.contains("# resolved v4.lab.example: 198.51.100.7\n"),
        "{plan}\n{stderr}"
    );
    assert!(!stderr.contains("failed to resolve"), "{stderr}");
}

#[test]
fn with_two_live_resolvers_each_name_is_asked_of_one_of_them() {
    if !privileged() {
        return;
    }
    // One dnsmasq on both loopback addresses: two resolvers for sandbox-init, one query log.
    let mut lab = Lab::new(
        "nameserver 127.0.0.1\nnameserver ::1\n",
        "127.0.0.1 localhost\n",
    );
    let names: Vec<String> = (0..40).map(|i| format!("n{i}.lab.example")).collect();
    let records: Vec<String> = (0..40)
        .map(|i| format!("n{i}.lab.example,198.51.100.{}", i + 1))
        .collect();
    let log = lab.start_logged_dnsmasq(&records, &["--listen-address=::1"]);
    let (ok, plan, stderr) = lab.plan(&allowed_hosts(&names));
    assert!(ok, "{stderr}");
    for (i, name) in names.iter().enumerate() {
        assert!(
            plan.contains(&format!("# resolved {name}: 198.51.100.{}\n", i + 1)),
            "{plan}\n{stderr}"
        );
    }
    let log = logged_queries(&log, &names);
    let asked_a = |name: &str| asked(&log, "A", name);
    // The first name finds out which resolver answers (both are asked once); every other name
    // goes to that one only. hickory's default asks two servers per query: twice the load on
    // the user's resolvers for every allowlisted name.
    assert!(asked_a(&names[0]) <= 2, "{}", asked_a(&names[0]));
    for name in &names[1..] {
        assert_eq!(asked_a(name), 1, "{name}");
    }
}

#[test]
fn many_names_are_each_asked_once_and_all_resolve() {
    if !privileged() {
        return;
    }
    // More queries (2 × 300) than the batch keeps in flight, so its window refills many times.
    let mut lab = Lab::new("nameserver 127.0.0.1\n", "127.0.0.1 localhost\n");
    let names: Vec<String> = (0..300).map(|i| format!("m{i}.lab.example")).collect();
    let records: Vec<String> = (0..300)
        .map(|i| {
            format!(
                "m{i}.lab.example,198.51.{}.{},2001:db8::{:x}",
                i / 250,
                i % 250 + 1,
                i + 1
            )
        })
        .collect();
    let log = lab.start_logged_dnsmasq(&records, &[]);
    let (ok, plan, stderr) = lab.plan(&allowed_hosts(&names));
    assert!(ok, "{stderr}");
    assert!(!stderr.contains("failed to resolve"), "{stderr}");
    for i in 0..300 {
        let line = format!(
            "# resolved m{i}.lab.example: 198.51.{}.{} 2001:db8::{:x}\n",
            i / 250,
            i % 250 + 1,
            i + 1
        );
        assert!(plan.contains(&line), "missing {line}");
    }
    let log = logged_queries(&log, &names);
    for name in &names {
        for kind in ["A", "AAAA"] {
            let asked = asked(&log, kind, name);
            assert_eq!(asked, 1, "{kind} {name} asked {asked} times");
        }
    }
}

#[test]
fn cnames_search_lists_and_truncated_answers_resolve_like_a_full_resolver() {
    if !privileged() {
        return;
    }
    // ndots:2 puts one-dot names through the search list; "big" has more addresses than fit a
    // UDP reply (truncated: only TCP gets them all).
    let mut lab = Lab::new(
        "search lab.example\noptions ndots:2\nnameserver 127.0.0.1\n",
        "127.0.0.1 localhost\n",
    );
    let mut records = vec![
        "edge.cdn.lab.example,203.0.113.80,2001:db8::80".to_owned(),
        "db.lab.example,198.51.100.5".to_owned(),
        "api.svc.lab.example,198.51.100.6".to_owned(),
    ];
    let big: Vec<String> = (1..=120).map(|i| format!("203.0.113.{i}")).collect();
    records.extend(big.iter().map(|a| format!("big.lab.example,{a}")));
    let records: Vec<&str> = records.iter().map(String::as_str).collect();
    lab.start_dnsmasq_with(&records, &["--cname=www.lab.example,edge.cdn.lab.example"]);
    let (ok, plan, stderr) = lab.plan(
        "allowed_hosts = [\"www.lab.example\", \"db\", \"api.svc\", \"big.lab.example\", \
         \"nope.lab.example\"]\n",
    );
    assert!(ok, "{stderr}");
    assert!(
        plan.contains("# resolved www.lab.example: 203.0.113.80 2001:db8::80\n"),
        "{plan}\n{stderr}"
    );
    assert!(plan.contains("# resolved db: 198.51.100.5\n"), "{plan}");
    assert!(
        plan.contains("# resolved api.svc: 198.51.100.6\n"),
        "{plan}"
    );
    let line = plan
        .lines()
        .find(|l| l.starts_with("# resolved big.lab.example: "))
        .unwrap_or_else(|| panic!("big.lab.example unresolved: {stderr}"));
    assert_eq!(line.split(' ').count() - 3, 120, "{line}");
    assert!(
        stderr.contains("failed to resolve nope.lab.example: "),
        "{stderr}"
    );
}

#[test]
fn lost_replies_are_asked_again_and_every_name_resolves() {
    if !privileged() {
        return;
    }
    // One dnsmasq on both loopback addresses (two resolvers for sandbox-init, one query log),
    // and a fifth of its replies dropped on the way back.
    let mut lab = Lab::new(
        "nameserver 127.0.0.1\nnameserver ::1\n",
        "127.0.0.1 localhost\n",
    );
    for iptables in ["iptables", "ip6tables"] {
        let out = lab.ns.exec(&[
            iptables,
            "-A",
            "INPUT",
            "-p",
            "udp",
            "--sport",
            "53",
            "-m",
            "statistic",
            "--mode",
            "random",
            "--probability",
            "0.2",
            "-j",
            "DROP",
        ]);
        assert!(out.status.success(), "{iptables}: {out:?}");
    }
    let names: Vec<String> = (0..50).map(|i| format!("l{i}.lab.example")).collect();
    let records: Vec<String> = (0..50)
        .map(|i| format!("l{i}.lab.example,198.51.100.{}", i + 1))
        .collect();
    let log = lab.start_logged_dnsmasq(&records, &["--listen-address=::1"]);
    let (ok, plan, stderr) = lab.plan(&format!(
        "{}resolve_timeout_ms = 6000\n",
        allowed_hosts(&names)
    ));
    assert!(ok, "{stderr}");
    // Every name resolved: a lost reply costs a retry, not the name.
    for (i, name) in names.iter().enumerate() {
        assert!(
            plan.contains(&format!("# resolved {name}: 198.51.100.{}\n", i + 1)),
            "{name} unresolved:\n{stderr}"
        );
    }
    // The losses were made up for by asking again (100 queries, a fifth of the replies lost):
    // some name's A or AAAA query reached dnsmasq more than once.
    let log = logged_queries(&log, &names);
    assert!(
        names
            .iter()
            .any(|n| asked(&log, "A", n) + asked(&log, "AAAA", n) > 2),
        "no query was asked again:\n{log}"
    );
}
