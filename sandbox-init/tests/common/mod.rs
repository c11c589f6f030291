//! Shared by the golden and the privileged tests: how a fixture case is planned and rendered.
//! (The privileged tests' namespaces and their gate are `jailoc_tests`', shared by every crate.)

#![allow(dead_code)]

use sandbox_init::dns::conf::{HostsFile, ResolvConf};
use sandbox_init::firewall::{self, PerFamily, Plan};
use sandbox_init::policy::{self, Policy};
use std::fs;
use std::path::{Path, PathBuf};

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

/// Builds a case's plan the way the boot does: the policy, the case's `hosts` file, the
/// resolvers of its `resolv.conf`, the gateways and on-link prefixes of its `route` and
/// `ipv6_route`. No DNS: other names are the gate's, at run time.
pub fn load_case(dir: &Path) -> Case {
    let policy = policy::load(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let resolv_conf = ResolvConf::parse(
        &fs::read_to_string(dir.join("resolv.conf"))
            .unwrap_or_else(|_| "nameserver 127.0.0.11\n".into()),
    );
    let hosts = HostsFile::parse(&fs::read_to_string(dir.join("hosts")).unwrap_or_default());
    let routes = firewall::link::read(
        &fs::read_to_string(dir.join("route")).unwrap_or_default(),
        &fs::read_to_string(dir.join("ipv6_route")).unwrap_or_default(),
    );
    let plan = Plan::new(&policy, &hosts, &resolv_conf.nameservers, &routes);
    let mut warnings = String::new();
    for w in &plan.warnings {
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
