//! Golden tests: every fixture policy in `tests/fixtures/policy/<case>/` renders to exactly its
//! `rules.v4`, `rules.v6` and `warnings` files.
//!
//! A case holds the policy inputs (`policy.toml`, `allowed-hosts`, `allowed-networks`, any
//! subset), optionally `hosts` (names the agent resolves without DNS: open from the start when
//! the allowlist covers them; every other name is the DNS gate's, at run time) and `resolv.conf`
//! (default `nameserver 127.0.0.11`, Docker's embedded DNS), and `route` / `ipv6_route` (the container's `/proc/net/route` and
//! `/proc/net/ipv6_route`: its gateways and on-link prefixes are refused too). Rendering
//! assumes a fresh namespace (no jump from OUTPUT yet).
//!
//! To regenerate after an intended change: `UPDATE_GOLDEN=1 cargo test -p sandbox-init --test
//! golden`, then review the diff.

mod common;

use common::{cases, fixtures, render_case};
use sandbox_init::policy;
use std::fs;

#[test]
fn every_fixture_policy_renders_to_its_golden_files() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let cases = cases();
    assert!(
        cases.len() >= 12,
        "expected at least 12 fixture policies, found {}",
        cases.len()
    );
    let mut failures = Vec::new();
    for dir in &cases {
        let (rules, warnings) = render_case(dir);
        for (file, got) in [
            ("rules.v4", &rules.v4),
            ("rules.v6", &rules.v6),
            ("warnings", &warnings),
        ] {
            let path = dir.join(file);
            if update {
                fs::write(&path, got).expect("write golden");
                continue;
            }
            let want = fs::read_to_string(&path).unwrap_or_else(|_| "<missing>".into());
            if &want != got {
                failures.push(format!(
                    "{} differs (UPDATE_GOLDEN=1 regenerates it)\n--- want\n{want}\n--- got\n{got}",
                    path.display()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The launcher writes policy dirs for sandbox-init; both halves must agree on the format.
#[test]
fn every_launcher_fixture_policy_parses() {
    let Ok(entries) = fs::read_dir(fixtures().join("launcher")) else {
        eprintln!("no tests/fixtures/launcher yet: nothing to cross-check");
        return;
    };
    let mut checked = 0;
    for entry in entries {
        let expected = entry.expect("entry").path().join("expected");
        if expected.join("policy.toml").is_file() {
            policy::load(&expected)
                .unwrap_or_else(|e| panic!("launcher fixture does not parse: {e}"));
            checked += 1;
        }
    }
    eprintln!("parsed {checked} launcher policy.toml fixtures");
}
