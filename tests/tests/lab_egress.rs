//! Tier 3: the egress record in the network-namespace lab (root only; skips with a reason
//! elsewhere, fails when `CI` is set). The agent tries what the walls refuse; the record file
//! must name each with its reason and count, the agent must not be able to change it, and a loop
//! hammering one address must not flood it.
//!
//! The lab runs sandbox-init in a private mount namespace whose `/run` is the host's; each run
//! here binds a directory of its own over `/run` first, so sandbox-init makes
//! `/run/jailoc-egress` there — the production path — and the test reads the file from the host.

use jailoc_tests::lab::{addr, failing_tools, replace_sbin_script, run_watchdog, Lab, Run};
use jailoc_tests::{config_dir, require_root};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

const T: &str = "--timeout-ms 1500";

fn policy(lab: &Lab, egress: &str, hosts: &[&str]) -> PathBuf {
    let home = lab.dir.subdir("home", 0o755);
    let hosts: Vec<String> = hosts.iter().map(|h| format!("\"{h}\"")).collect();
    let toml = format!(
        "egress = \"{egress}\"\nallowed_hosts = [{}]\n[agent]\nuid = 1000\ngid = 1000\nhome = \"{}\"\n",
        hosts.join(", "),
        home.display()
    );
    config_dir(&lab.dir, "config", &[("policy.toml", &toml)])
}

/// Runs sandbox-init with `/run` bound to a fresh `run-TAG` directory of the lab (and the
/// `setup` shell before it); returns the run and that directory.
fn run_with_record(
    lab: &Lab,
    tag: &str,
    setup: &str,
    config: &Path,
    agent: &[&str],
) -> (Run, PathBuf) {
    let run_dir = lab.dir.subdir(&format!("run-{tag}"), 0o755);
    let setup = format!(
        "mount --bind {} /run || exit 99\n{setup}",
        run_dir.display()
    );
    let mut cmd = lab.agent_command_setup(&[], &[], &setup);
    cmd.arg(jailoc_tests::sandbox_init())
        .arg("--config-dir")
        .arg(config)
        .arg("--")
        .args(agent);
    (run_watchdog(cmd, Duration::from_secs(90)), run_dir)
}

/// The record as a reader keeps it: the last line per key.
fn record(run_dir: &Path) -> BTreeMap<String, Value> {
    let path = run_dir.join("jailoc-egress/egress.jsonl");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("failed to read {}: {e}", path.display()));
    let mut keys = BTreeMap::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        let key = match v["kind"].as_str() {
            Some("name") => format!("name {}", v["name"].as_str().unwrap_or("")),
            _ => format!("{} {} {}", v["proto"], v["dest"], v["port"]).replace('"', ""),
        };
        keys.insert(key, v);
    }
    keys
}

fn raw_lines(run_dir: &Path) -> Vec<String> {
    std::fs::read_to_string(run_dir.join("jailoc-egress/egress.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_refusal_is_recorded_with_its_reason_on_both_backends() {
    if !require_root("lab tier (network namespaces)") {
        return;
    }
    let lab = Lab::up();
    let config = policy(&lab, "allowlist", &["public.lab"]);
    let metadata = format!("tcp 169.254.169.254:80 {T}");
    let checks = [
        metadata.clone(),
        metadata.clone(),
        metadata.clone(),
        format!("tcp 10.0.0.1:22 {T}"),
        format!("tcp {}:22 {T}", addr::GW_V4),
        format!("tcp 203.0.113.10:443 {T}"),
        format!("tcp [fd00::1]:80 {T}"),
        format!("tcp [64:ff9b::a9fe:a9fe]:80 {T}"),
        format!("ping 10.1.2.3 {T}"),
        format!(
            "dns x.attacker.example --server {} --type A {T}",
            addr::DNS_V4
        ),
        // The control: an allowlisted name is no refusal.
        format!("dns public.lab --server {} --type A {T}", addr::DNS_V4),
    ];
    let want = [
        ("tcp 169.254.169.254 80", "cloud metadata", 3),
        ("tcp 10.0.0.1 22", "private 10.0.0.0/8", 1),
        ("tcp 172.17.0.1 22", "the Docker gateway (your host)", 1),
        ("tcp 203.0.113.10 443", "not allowlisted", 1),
        ("tcp fd00::1 80", "unique local fc00::/7", 1),
        (
            "tcp 64:ff9b::a9fe:a9fe 80",
            "cloud metadata (NAT64 form)",
            1,
        ),
        ("icmp 10.1.2.3 null", "private 10.0.0.0/8", 1),
        ("name x.attacker.example", "not allowlisted", 1),
    ];
    let dir = jailoc_tests::TempDir::new("jailoc-egress-nonft-");
    let no_nft = failing_tools(
        &dir,
        &["iptables-nft", "ip6tables-nft", "iptables", "ip6tables"],
        &["-save", "-restore"],
    );
    let probe = lab.probe.to_string_lossy().into_owned();
    let mut agent = vec![probe.as_str(), "batch"];
    agent.extend(checks.iter().map(String::as_str));
    for (fakes, backend) in [(vec![], "nft"), (no_nft, "legacy")] {
        let fakes: Vec<(&str, &Path)> = fakes
            .iter()
            .map(|(n, p)| (n.as_str(), p.as_path()))
            .collect();
        let setup = if fakes.is_empty() {
            String::new()
        } else {
            replace_sbin_script(&fakes)
        };
        let (run, run_dir) = run_with_record(&lab, backend, &setup, &config, &agent);
        assert_eq!(run.code, Some(0), "{backend}: {}", run.stderr);
        assert!(
            run.stderr.contains(&format!("{backend} backend")),
            "{}",
            run.stderr
        );
        let got = record(&run_dir);
        for (key, reason, count) in want {
            let line = got
                .get(key)
                .unwrap_or_else(|| panic!("{backend}: no {key} in {got:#?}\n{}", run.stderr));
            assert_eq!(line["reason"], reason, "{backend}: {key}");
            assert_eq!(line["count"], count, "{backend}: {key}");
            assert!(line["first"].as_str().is_some_and(|t| t.ends_with('Z')));
        }
        assert!(
            !got.contains_key("name public.lab"),
            "{backend}: an allowlisted name is no refusal: {got:#?}"
        );
        // The same lines beside the agent's output, for `jailoc logs`.
        assert!(
            run.stderr.contains(
                "sandbox-init: egress: {\"kind\":\"name\",\"name\":\"x.attacker.example\""
            ),
            "{}",
            run.stderr
        );
        // Where the record lives: the gate's, readable by all, writable by none else.
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(run_dir.join("jailoc-egress")).expect("stat");
        assert_eq!((meta.uid(), meta.mode() & 0o7777), (65533, 0o755));
        let meta = std::fs::metadata(run_dir.join("jailoc-egress/egress.jsonl")).expect("stat");
        assert_eq!((meta.uid(), meta.mode() & 0o7777), (65533, 0o644));
    }
}

#[test]
fn attack_the_agent_cannot_write_remove_or_replace_the_record() {
    if !require_root("lab tier (network namespaces)") {
        return;
    }
    let lab = Lab::up();
    let config = policy(&lab, "open", &[]);
    let probe = lab.probe.display();
    // A refusal first, so the record has a line; then every way to change it, as the agent.
    let script = format!(
        "{probe} tcp 10.0.0.1:22 {T} >/dev/null\n\
         d=/run/jailoc-egress; f=$d/egress.jsonl\n\
         i=0; while [ ! -s $f ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done\n\
         cat $f >/dev/null && echo READ\n\
         echo '{{\"kind\":\"name\",\"name\":\"forged\"}}' >> $f && echo WROTE\n\
         true > $f && echo TRUNCATED\n\
         rm -f $f && echo REMOVED\n\
         mv $f $d/moved && echo MOVED\n\
         ln -s /tmp $d/planted && echo PLANTED\n\
         chmod 666 $f && echo CHMOD\n\
         mv $d /run/elsewhere && echo MOVED_DIR\n\
         exit 0\n"
    );
    let (run, run_dir) = run_with_record(&lab, "attack", "", &config, &["/bin/sh", "-c", &script]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.stdout.trim(), "READ", "{}", run.stderr);
    let lines = raw_lines(&run_dir);
    assert!(
        lines.iter().any(|l| l.contains("\"dest\":\"10.0.0.1\"")),
        "{lines:#?}"
    );
    assert!(!lines.iter().any(|l| l.contains("forged")), "{lines:#?}");
}

#[test]
fn a_loop_hammering_one_address_writes_a_handful_of_lines() {
    if !require_root("lab tier (network namespaces)") {
        return;
    }
    let lab = Lab::up();
    let config = policy(&lab, "open", &[]);
    let probe = lab.probe.to_string_lossy().into_owned();
    let agent = [probe.as_str(), "tcp-hammer", "10.0.0.1:22", "2000"];
    let (run, run_dir) = run_with_record(&lab, "hammer", "", &config, &agent);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let hammer: Value = serde_json::from_str(run.stdout.trim()).expect("probe line");
    assert_eq!(hammer["refused"], 2000, "every connect refused: {hammer}");
    let lines = raw_lines(&run_dir);
    let elapsed = run.elapsed.as_secs();
    // The first sight, one per 10 s while it lasted, the final flush.
    assert!(
        lines.len() as u64 <= 2 + elapsed / 10,
        "{} lines in {elapsed} s: {lines:#?}",
        lines.len()
    );
    let got = record(&run_dir);
    let last = &got["tcp 10.0.0.1 22"];
    // Every refusal counted, unless the kernel dropped some of its messages to a busy gate (a
    // full socket buffer): then fewer, and the gate said so.
    let count = last["count"].as_u64().unwrap_or_default();
    let lost = run
        .stderr
        .contains("egress: refusals came faster than they could be read");
    assert!(
        count == 2000 || (lost && count > 0 && count < 2000),
        "count {count}, loss reported: {lost}\n{lines:#?}\n{}",
        run.stderr
    );
    assert_eq!(last["reason"], "private 10.0.0.0/8");
    let logged = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("sandbox-init: egress: "))
        .count();
    assert_eq!(logged, lines.len(), "the log has the file's lines, no more");
    eprintln!(
        "2000 refused connects in {} ms: {} lines",
        hammer["ms"],
        lines.len()
    );
}
