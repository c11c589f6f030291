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
    let after = format!("tcp 198.51.100.10:80 --timeout-ms 1499");
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
    assert_eq!(result(run.check(&before)), "refused", "no lookup, no address");
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
