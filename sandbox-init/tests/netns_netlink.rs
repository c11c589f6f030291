//! The nf_tables fast path for real (root): for every golden fixture policy, the rules
//! sandbox-init writes over netlink are the rules `iptables-nft-restore` writes for the same
//! plan — the kernel's dump of both namespaces is byte-identical, rule for rule, and
//! `iptables-nft-save` prints both the same. A restart keeps them without writing; a rule
//! slipped into one of our chains is noticed and the plan is not taken as standing.
//!
//! The netlink writes happen on a thread that entered the test's namespace (`setns`), checked
//! by inode before any socket is opened: nothing is ever written to the namespace the tests run
//! in. Each namespace has no link at all and is removed by a Drop guard.
//!
//! Skips with a printed reason when not root or without `ip`/iptables-nft; fails instead when
//! `CI` is set.

mod common;

use common::{cases, load_case};
use jailoc_tests::netns::Netns;
use sandbox_init::firewall::nft::{self, Dumped, NativeError, Outcome};
use sandbox_init::firewall::{self, FirewallError, Plan, SystemRunner};
use sandbox_init::log::Log;
use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

fn privileged() -> bool {
    jailoc_tests::require_tools(
        "real-netlink test",
        &[
            ("ip", "-V", "`ip` (iproute2) is not installed"),
            (
                "iptables-nft-restore",
                "--version",
                "iptables-nft-restore is not installed (apt-get install iptables)",
            ),
            (
                "nft",
                "--version",
                "nft is not installed (apt-get install nftables)",
            ),
        ],
    )
}

/// Runs `f` on a thread inside `ns` (and only there: the thread's namespace is checked to be
/// `ns`'s before `f` runs).
#[allow(unsafe_code)]
fn inside<T: Send>(ns: &Netns, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            let path = format!("/run/netns/{}", ns.name);
            let target = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            // SAFETY: setns on this thread only, with an fd that stays open for the call.
            let rc = unsafe { libc::setns(target.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(
                rc,
                0,
                "setns into {}: {}",
                ns.name,
                std::io::Error::last_os_error()
            );
            let here = fs::metadata("/proc/thread-self/ns/net")
                .expect("own netns")
                .ino();
            let want = fs::metadata(&path).expect("target netns").ino();
            // /proc/self is the process (its main thread, which stays where the tests run).
            let root = fs::metadata("/proc/self/ns/net")
                .expect("the tests netns")
                .ino();
            assert!(here == want && here != root, "not inside {}", ns.name);
            f()
        })
        .join()
        .expect("the namespace thread panicked")
    })
}

fn save(ns: &Netns) -> String {
    let mut text = String::new();
    for prog in ["iptables-nft-save", "ip6tables-nft-save"] {
        let out = ns.exec(&[prog]);
        text.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn dump(ns: &Netns) -> Vec<Dumped> {
    inside(ns, nft::dump).expect("dump")
}

/// A fresh namespace holding the fixture `dir`'s golden payloads, loaded by iptables-nft: what
/// the netlink path must equal.
fn restored(dir: &Path) -> Netns {
    let ns = Netns::new("jsi-ipt");
    for (prog, file) in [
        ("iptables-nft-restore", "rules.v4"),
        ("ip6tables-nft-restore", "rules.v6"),
    ] {
        let payload = dir.join(file);
        ns.exec(&[
            "sh",
            "-c",
            &format!("{prog} --noflush < '{}'", payload.display()),
        ]);
    }
    ns
}

/// The fixture with names, and its plan installed over netlink in a fresh namespace.
fn installed() -> (PathBuf, Plan, Netns) {
    let dir = cases()
        .into_iter()
        .find(|d| d.ends_with("allowlist-names"))
        .expect("case");
    let plan = load_case(&dir).plan;
    let ns = Netns::new("jsi-nl");
    assert_eq!(
        inside(&ns, || nft::install(&plan)).ok(),
        Some(Outcome::Fresh)
    );
    (dir, plan, ns)
}

#[test]
fn every_golden_plan_over_netlink_is_what_iptables_nft_writes() {
    if !privileged() {
        return;
    }
    let cases = cases();
    assert!(cases.len() >= 12, "too few fixture policies");
    for dir in cases {
        let name = dir
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let case = load_case(&dir);

        let ours = Netns::new("jsi-nl");
        let outcome = inside(&ours, || nft::install(&case.plan));
        assert_eq!(outcome.ok(), Some(Outcome::Fresh), "{name}");

        let theirs = restored(&dir);

        let (a, b) = (dump(&ours), dump(&theirs));
        assert!(a.len() > 20, "{name}: only {} rules dumped", a.len());
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert_eq!(
                x, y,
                "{name}: rule {i} differs between netlink and iptables-nft"
            );
        }
        assert_eq!(a.len(), b.len(), "{name}: rule counts differ");
        assert_eq!(
            save(&ours),
            save(&theirs),
            "{name}: iptables-nft-save differs"
        );

        // A restart with the same plan finds it standing and writes nothing.
        let again = inside(&ours, || nft::install(&case.plan));
        assert_eq!(again.ok(), Some(Outcome::Kept), "{name}");
        assert_eq!(dump(&ours), a, "{name}: the restart changed the rules");
    }
}

#[test]
fn a_rule_slipped_into_our_chain_is_not_taken_for_the_plan() {
    if !privileged() {
        return;
    }
    let (_, plan, ns) = installed();
    // What an attacker with a moment of root would add: an accept before the refusals.
    ns.exec(&[
        "iptables-nft",
        "-I",
        "JAILOC-OUTPUT",
        "1",
        "-d",
        "203.0.113.9",
        "-j",
        "ACCEPT",
    ]);
    match inside(&ns, || nft::install(&plan)) {
        Err(NativeError::AnotherPlan(why)) => {
            assert!(why.contains("JAILOC-OUTPUT"), "{why}");
        }
        other => panic!("the tampered chain was taken as standing: {other:?}"),
    }
    // A second jump in OUTPUT (rules run twice, or an earlier exit) is noticed too.
    let (_, plan, clean) = installed();
    clean.exec(&["iptables-nft", "-A", "OUTPUT", "-j", "JAILOC-OUTPUT"]);
    match inside(&clean, || nft::install(&plan)) {
        Err(NativeError::AnotherPlan(why)) => assert!(why.contains("2 jumps"), "{why}"),
        other => panic!("a second jump went unnoticed: {other:?}"),
    }
}

#[test]
fn a_dormant_table_is_not_taken_for_the_plan() {
    if !privileged() {
        return;
    }
    // A restart: every rule stands, but the table is switched off (its hooks unregistered),
    // so not one packet meets them.
    let (_, plan, ns) = installed();
    ns.exec(&["nft", "add", "table", "ip", "filter", "{ flags dormant; }"]);
    let again = inside(&ns, || nft::install(&plan));
    // Fatal, not a fallback: iptables-nft-save prints a dormant table as the plan. The boot's
    // own install (the real runner, whose programs run in this thread's namespace) refuses it.
    assert!(
        matches!(again, Err(NativeError::Unhooked(_))),
        "a dormant filter table was taken as {again:?}"
    );
    let boot = inside(&ns, || {
        let runner = SystemRunner::new(Log::default());
        let probed = firewall::probe(&runner).expect("probe");
        firewall::install(&runner, &probed, &plan, true)
    });
    assert!(
        matches!(boot, Err(FirewallError::Unhooked { .. })),
        "the boot fell back or went on: {boot:?}"
    );
    // A fresh install into a table left dormant: the rules are written and must filter.
    let fresh = Netns::new("jsi-nl");
    fresh.exec(&["nft", "add", "table", "ip6", "filter", "{ flags dormant; }"]);
    let outcome = inside(&fresh, || nft::install(&plan));
    let listed = fresh.exec(&["nft", "list", "table", "ip6", "filter"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        matches!(outcome, Err(NativeError::Unhooked(_))) || !listed.contains("dormant"),
        "installed as {outcome:?} into a dormant table:\n{listed}"
    );
}

#[test]
fn an_output_chain_off_the_hook_is_not_taken_for_the_plan() {
    if !privileged() {
        return;
    }
    // A restart: OUTPUT holds the jump, but is a chain no hook calls. (The kernel refuses the
    // jump from a chain on another hook: the owner match is the output path's.)
    let (_, plan, ns) = installed();
    let script = "flush chain ip filter OUTPUT\n\
                  delete chain ip filter OUTPUT\n\
                  add chain ip filter OUTPUT\n\
                  add rule ip filter OUTPUT counter jump JAILOC-OUTPUT\n";
    ns.exec(&["sh", "-c", &format!("printf '{script}' | nft -f -")]);
    let again = inside(&ns, || nft::install(&plan));
    assert!(
        matches!(again, Err(NativeError::Unhooked(_))),
        "an OUTPUT chain without a hook was taken as {again:?}"
    );
}

/// The gate's opens and closes over netlink are what its `iptables-restore` payloads do: after
/// the same destinations are opened in two namespaces, one each way, then one is closed, then
/// the chain is emptied, the kernel's dumps are byte-identical at every step.
#[test]
fn the_gates_changes_over_netlink_are_what_its_restore_payloads_make() {
    use sandbox_init::dns::open::Change;
    use sandbox_init::firewall::nft::names::Names;
    use sandbox_init::firewall::{Allow, Family};
    if !privileged() {
        return;
    }
    let (dir, _, ours) = installed();
    let theirs = restored(&dir);
    let allow = |dest: &str, port| Allow {
        dest: dest.parse().expect("net"),
        port,
    };
    let opened = vec![
        allow("198.51.100.7/32", None),
        allow("203.0.113.9/32", Some(443)),
        allow("2001:db8::7/128", None),
        allow("2001:db8::9/128", Some(8443)),
    ];
    let steps = [
        Change {
            add: opened.clone(),
            remove: vec![],
        },
        Change {
            add: vec![allow("198.51.100.8/32", Some(80))],
            remove: vec![opened[1], opened[2]],
        },
    ];
    for (i, change) in steps.iter().enumerate() {
        let rules: Vec<_> = [Family::V4, Family::V6]
            .into_iter()
            .map(|family| {
                let (add, remove) = change.rules(family);
                (family, add, remove)
            })
            .collect();
        inside(&ours, || Names::open().expect("socket").apply(&rules)).expect("netlink change");
        for (family, prog) in [
            (Family::V4, "iptables-nft-restore"),
            (Family::V6, "ip6tables-nft-restore"),
        ] {
            if let Some(payload) = change.payload(family) {
                theirs.exec(&[
                    "sh",
                    "-c",
                    &format!("printf '%s' '{payload}' | {prog} --noflush"),
                ]);
            }
        }
        let (a, b) = (dump(&ours), dump(&theirs));
        assert_eq!(a, b, "step {i}: the kernels differ");
        let names = a.iter().filter(|d| d.chain == "JAILOC-NAMES").count();
        assert_eq!(names, [6, 5][i], "step {i}: rules in JAILOC-NAMES");
        assert_eq!(
            save(&ours),
            save(&theirs),
            "step {i}: iptables-nft-save differs"
        );
    }
    // A restart's new gate empties the chain.
    inside(&ours, || {
        Names::open()
            .expect("socket")
            .empty(&[Family::V4, Family::V6])
    })
    .expect("empty");
    for prog in ["iptables-nft-restore", "ip6tables-nft-restore"] {
        theirs.exec(&[
            "sh",
            "-c",
            &format!("printf '*filter\\n:JAILOC-NAMES - [0:0]\\nCOMMIT\\n' | {prog} --noflush"),
        ]);
    }
    let emptied = dump(&ours);
    assert_eq!(emptied, dump(&theirs));
    assert!(!emptied.iter().any(|d| d.chain == "JAILOC-NAMES"));
}
