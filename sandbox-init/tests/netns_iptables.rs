//! Real iptables (root): every golden payload loads into a fresh, link-less network namespace,
//! and re-applying through the production code path (probe → render with facts → one restore
//! per family → read-back) leaves `iptables-save` byte-identical, with exactly one jump from
//! OUTPUT and a Docker-style DNAT rule in `nat` untouched.
//!
//! Skips with a printed reason when not root or without `ip`/iptables; fails instead when
//! `CI` is set. Each namespace is created here, has no links at all (no traffic can leave it) and
//! is removed by a Drop guard, also when an assertion fails.

mod common;

use common::{cases, load_case, Case};
use jailoc_tests::netns::Netns;
use sandbox_init::firewall::{
    self, Backend, CommandRunner, Family, FirewallError, Installed, Output, SystemRunner,
    TrustError,
};
use sandbox_init::log::Log;
use std::fs;
use std::io;
use std::path::Path;

/// Runs every command inside the namespace; `hidden` programs pretend not to exist (to force
/// the legacy fallback for real).
struct NetnsRunner<'a> {
    ns: Netns,
    hidden: &'a [&'a str],
    inner: SystemRunner,
}

impl<'a> NetnsRunner<'a> {
    /// A fresh namespace of its own.
    fn new(hidden: &'a [&'a str]) -> Self {
        NetnsRunner {
            ns: Netns::new("jsi-t"),
            hidden,
            inner: SystemRunner::new(Log::default()),
        }
    }
}

impl CommandRunner for NetnsRunner<'_> {
    fn exists(&self, program: &str) -> Result<bool, TrustError> {
        Ok(!self.hidden.contains(&program) && self.inner.exists(program)?)
    }

    fn run(&self, program: &str, args: &[&str], stdin: Option<&str>) -> io::Result<Output> {
        if self.hidden.contains(&program) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "hidden by the test",
            ));
        }
        let mut full = vec!["netns", "exec", self.ns.name.as_str(), program];
        full.extend_from_slice(args);
        self.inner.run("ip", &full, stdin)
    }
}

impl NetnsRunner<'_> {
    fn ok(&self, program: &str, args: &[&str], stdin: Option<&str>) -> String {
        let out = self
            .run(program, args, stdin)
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        assert!(out.success, "{program} {args:?} failed: {}", out.stderr);
        out.stdout
    }

    /// Probes the backends and installs `case`'s rules through the production path (as the
    /// boot does, with a read-back).
    fn install(&self, case: &Case) -> Result<Installed, FirewallError> {
        let probed = firewall::probe(self)?;
        firewall::install(self, &probed, &case.plan, true)
    }

    /// Full `iptables-save` + `ip6tables-save` (all tables), comment lines dropped (they
    /// carry timestamps).
    fn snapshot(&self, save4: &str, save6: &str) -> String {
        let mut text = self.ok(save4, &[], None);
        text.push_str(&self.ok(save6, &[], None));
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect()
    }
}

fn privileged(tool: &str) -> bool {
    let missing = format!("{tool} is not installed (apt-get install iptables)");
    jailoc_tests::require_tools(
        "real-iptables test",
        &[
            ("ip", "-V", "`ip` (iproute2) is not installed"),
            (tool, "--version", &missing),
        ],
    )
}

const DNAT: &str =
    "-A OUTPUT -d 127.0.0.11/32 -p udp -m udp --dport 53 -j DNAT --to-destination 127.0.0.11:53053";

/// The nft tools, hidden to force the legacy fallback.
const HIDE_NFT: &[&str] = &[
    "iptables-nft-save",
    "ip6tables-nft-save",
    "iptables-nft-restore",
    "ip6tables-nft-restore",
];

/// The backend named `backend` and a runner in a fresh namespace holding Docker's embedded-DNS
/// rule ([`DNAT`]) in nat, which must survive everything the tests do.
fn docker_like<'a>(backend: &str, hidden: &'a [&'a str]) -> (&'static Backend, NetnsRunner<'a>) {
    let be = firewall::BACKENDS
        .iter()
        .find(|b| b.name == backend)
        .expect("backend");
    let runner = NetnsRunner::new(hidden);
    let iptables = if backend == "nft" {
        "iptables-nft"
    } else {
        "iptables-legacy"
    };
    let dnat: Vec<&str> = DNAT.split(' ').collect();
    runner.ok(iptables, &[&["-t", "nat"], &dnat[..]].concat(), None);
    (be, runner)
}

fn check_case(dir: &Path, backend: &str, hidden: &[&str]) {
    let case_name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Docker's embedded DNS lives in nat: it must survive everything below.
    let (be, runner) = docker_like(backend, hidden);

    // 1. The golden payloads themselves load as they are.
    let golden4 = fs::read_to_string(dir.join("rules.v4")).expect("rules.v4");
    let golden6 = fs::read_to_string(dir.join("rules.v6")).expect("rules.v6");
    runner.ok(be.restore4, &["--noflush"], Some(&golden4));
    runner.ok(be.restore6, &["--noflush"], Some(&golden6));
    let first = runner.snapshot(be.save4, be.save6);
    firewall::verify(Family::V4, &golden4, &runner.ok(be.save4, &[], None))
        .unwrap_or_else(|e| panic!("{case_name} ({backend}): {e}"));
    firewall::verify(Family::V6, &golden6, &runner.ok(be.save6, &[], None))
        .unwrap_or_else(|e| panic!("{case_name} ({backend}): {e}"));

    // 2. Applying again through the production path changes nothing, twice over.
    let case = load_case(dir);
    for round in 2..=3 {
        let installed = runner
            .install(&case)
            .unwrap_or_else(|e| panic!("{case_name} ({backend}) round {round}: {e}"));
        assert_eq!(
            installed.backend.name, backend,
            "{case_name}: the wrong backend was used"
        );
        assert!(installed.v6);
        // The chain exists and holds this very plan: the fresh restores fail atomically, the
        // saves show the plan, and it is kept (no rule deleted, as many processes as fresh).
        assert_eq!(installed.processes, 4, "{case_name} round {round}");
        assert!(installed.kept, "{case_name} round {round}");
        let again = runner.snapshot(be.save4, be.save6);
        assert_eq!(
            first, again,
            "{case_name} ({backend}): round {round} changed the rules"
        );
    }
    assert_eq!(
        first.matches("-A OUTPUT -j JAILOC-OUTPUT\n").count(),
        2,
        "{case_name}: one jump per family"
    );
    assert!(
        first.contains(&format!("{DNAT}\n")),
        "{case_name}: the nat DNAT rule is gone"
    );
}

#[test]
fn golden_payloads_apply_idempotently_with_iptables_nft() {
    if !privileged("iptables-nft-restore") {
        return;
    }
    for dir in cases() {
        check_case(&dir, "nft", &[]);
    }
}

#[test]
fn golden_payloads_apply_idempotently_with_iptables_legacy_fallback() {
    if !privileged("iptables-legacy-restore") {
        return;
    }
    for dir in cases() {
        check_case(&dir, "legacy", HIDE_NFT);
    }
}

/// The common path for real: a namespace without our chain gets both families from one restore
/// each (plus the read-back), and the nat table and a second run are as on the golden path.
fn check_fresh(backend: &str, hidden: &[&str]) {
    let (be, runner) = docker_like(backend, hidden);
    let case = load_case(&cases()[0]);
    let install = || {
        runner
            .install(&case)
            .unwrap_or_else(|e| panic!("{backend}: {e}"))
    };
    let first = install();
    assert_eq!(first.backend.name, backend);
    assert!(first.v6);
    // Hidden programs count as not installed, so every process here ran for real.
    assert_eq!(first.processes, 4, "{backend}: a fresh namespace");
    let after_first = runner.snapshot(be.save4, be.save6);
    assert_eq!(
        after_first.matches("-A OUTPUT -j JAILOC-OUTPUT\n").count(),
        2
    );
    assert!(after_first.contains(&format!("{DNAT}\n")));
    let second = install();
    assert_eq!(second.processes, 4);
    assert!(second.kept);
    assert_eq!(runner.snapshot(be.save4, be.save6), after_first);
}

#[test]
fn a_fresh_namespace_takes_one_restore_and_one_save_per_family_with_iptables_nft() {
    if !privileged("iptables-nft-restore") {
        return;
    }
    check_fresh("nft", &[]);
}

#[test]
fn a_fresh_namespace_takes_one_restore_and_one_save_per_family_with_iptables_legacy() {
    if !privileged("iptables-legacy-restore") {
        return;
    }
    check_fresh("legacy", HIDE_NFT);
}

/// A restart with a smaller allowlist in the same namespace: the allowlist sub-chains it no
/// longer needs are deleted (a leftover would fail the read-back), and the rules are those of
/// a fresh install of the smaller policy.
#[test]
fn a_smaller_allowlist_removes_the_sub_chains_it_no_longer_needs() {
    if !privileged("iptables-nft-restore") {
        return;
    }
    let big = load_case(&common::fixtures().join("policy/many-networks"));
    let small = load_case(&common::fixtures().join("policy/mixed"));
    let install = |runner: &NetnsRunner<'_>, case: &Case| {
        runner.install(case).unwrap_or_else(|e| panic!("{e}"))
    };
    let (runner, fresh_runner) = (NetnsRunner::new(&[]), NetnsRunner::new(&[]));
    install(&runner, &big);
    let grown = runner.snapshot("iptables-nft-save", "ip6tables-nft-save");
    assert!(grown.contains(":JAILOC-A4-0 - [0:0]\n") && grown.contains(":JAILOC-A6-0 - [0:0]\n"));
    install(&runner, &small);
    install(&fresh_runner, &small);
    let shrunk = runner.snapshot("iptables-nft-save", "ip6tables-nft-save");
    assert!(!shrunk.contains("JAILOC-A"), "{shrunk}");
    assert_eq!(
        shrunk,
        fresh_runner.snapshot("iptables-nft-save", "ip6tables-nft-save")
    );
}
