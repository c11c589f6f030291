//! Shared by the golden and the privileged tests: how a fixture case is planned and rendered.
//! (The privileged tests' namespaces and their gate are `jailoc_tests`', shared by every crate.)

#![allow(dead_code)]

use sandbox_init::firewall::{self, PerFamily, Plan};
use sandbox_init::policy::{self, Policy};
use sandbox_init::resolve::{self, Answer, Lookup, ResolvConf};
use std::collections::HashMap;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// DNS answers read from a case's `resolved` file.
pub struct FakeDns(HashMap<String, Vec<IpAddr>>);

impl FakeDns {
    pub fn load(path: &Path) -> Self {
        let text = fs::read_to_string(path).unwrap_or_default();
        let mut map = HashMap::new();
        for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
            let mut fields = line.split_whitespace();
            let Some(name) = fields.next() else { continue };
            let addrs = fields
                .map(|a| a.parse().expect("address in resolved"))
                .collect();
            map.insert(name.to_owned(), addrs);
        }
        FakeDns(map)
    }
}

impl Lookup for FakeDns {
    fn lookup(&self, _conf: &ResolvConf, names: &[String], _bound: Duration) -> Vec<Answer> {
        names
            .iter()
            .map(|n| self.0.get(n).cloned().ok_or_else(|| "NXDOMAIN".to_owned()))
            .collect()
    }
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

pub fn cases() -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = fs::read_dir(fixtures().join("policy"))
        .expect("tests/fixtures/policy")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    cases
}

/// One case as the boot sees it: its policy and the plan built from it, with every warning.
pub struct Case {
    pub policy: Policy,
    pub plan: Plan,
    pub warnings: String,
}

/// Builds a case's plan the way the boot does: the policy, the names resolved through the
/// case's `hosts` and fake DNS, the resolvers of its `resolv.conf` (parsed once, as the boot
/// does), the gateways and on-link prefixes of its `route` and `ipv6_route`.
pub fn load_case(dir: &Path) -> Case {
    let policy = policy::load(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let resolv_conf = ResolvConf::parse(
        &fs::read_to_string(dir.join("resolv.conf"))
            .unwrap_or_else(|_| "nameserver 127.0.0.11\n".into()),
    );
    let hosts = fs::read_to_string(dir.join("hosts")).unwrap_or_default();
    let dns = FakeDns::load(&dir.join("resolved"));
    let resolution = resolve::resolve(
        &policy.names(),
        &hosts,
        &resolv_conf,
        &dns,
        policy.resolve_timeout,
    );
    let routes = firewall::link::read(
        &fs::read_to_string(dir.join("route")).unwrap_or_default(),
        &fs::read_to_string(dir.join("ipv6_route")).unwrap_or_default(),
    );
    let plan = Plan::new(&policy, &resolution, &resolv_conf.nameservers, &routes);
    let mut warnings = String::new();
    for w in resolution.warnings.iter().chain(&plan.warnings) {
        warnings.push_str(w);
        warnings.push('\n');
    }
    Case {
        policy,
        plan,
        warnings,
    }
}

/// Renders one case for a fresh namespace (no jump from OUTPUT yet).
pub fn render_case(dir: &Path) -> (PerFamily<String>, String) {
    let case = load_case(dir);
    (case.plan.fresh_payloads(), case.warnings)
}
