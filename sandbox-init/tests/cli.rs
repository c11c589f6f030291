//! The command line as a user sees it: help, version, usage errors, policy errors and
//! `--print-plan`, run against the built binary. No root needed and nothing is changed: these
//! paths stop before the firewall step, and the policies here hold no names to resolve.

use std::fs;
use std::process::{Command, Output};

fn sandbox_init(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sandbox-init"))
        .args(args)
        .env_remove("SANDBOX_INIT_CONFIG_DIR")
        .env_remove("SANDBOX_INIT_LOG")
        .output()
        .expect("run sandbox-init")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_and_version_exit_zero() {
    let help = sandbox_init(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(text(&help.stdout)
        .contains("usage: sandbox-init [--config-dir DIR] [--print-plan] [--] COMMAND [ARGS...]"));
    let version = sandbox_init(&["--version"]);
    assert_eq!(version.status.code(), Some(0));
    assert_eq!(
        text(&version.stdout),
        format!("sandbox-init {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn a_missing_command_is_a_usage_error() {
    let out = sandbox_init(&["--print-plan"]);
    assert_eq!(out.status.code(), Some(64));
    assert_eq!(
        text(&out.stderr),
        "sandbox-init: error: missing COMMAND (usage: sandbox-init [--config-dir DIR] [--print-plan] [--] COMMAND [ARGS...])\n"
    );
    assert_eq!(sandbox_init(&["--bogus", "true"]).status.code(), Some(64));
}

#[test]
fn an_invalid_policy_exits_78_naming_file_line_and_entry() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(
        dir.path().join("allowed-networks"),
        "# nets\n10.0.0.0/8\n10.0.0.1/8\n",
    )
    .expect("write");
    let cfg = dir.path().to_str().expect("utf8");
    let out = sandbox_init(&["--config-dir", cfg, "--", "true"]);
    assert_eq!(out.status.code(), Some(78));
    assert_eq!(
        text(&out.stderr),
        format!(
            "sandbox-init: error: failed to load the policy: {cfg}/allowed-networks:3: invalid allowed-networks \
             entry \"10.0.0.1/8\": host bits are set (did you mean 10.0.0.0/8?)\n"
        )
    );
}

#[test]
fn the_config_dir_comes_from_the_environment_when_no_flag_is_given() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("policy.toml"), "egres = \"open\"\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_sandbox-init"))
        .args(["--print-plan", "true"])
        .env("SANDBOX_INIT_CONFIG_DIR", dir.path())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(78));
    assert!(text(&out.stderr)
        .contains("policy.toml:1: unknown key \"egres\" (did you mean \"egress\"?)"));
}

#[test]
fn print_plan_shows_both_families_and_the_agent_and_exits_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(
        dir.path().join("policy.toml"),
        "egress = \"allowlist\"\nallowed_hosts = [\"[2001:db8::5]:443\", \"192.0.2.9\"]\n[agent]\nuid = 1500\ngid = 1600\nhome = \"/home/a\"\n",
    )
    .expect("write");
    let out = sandbox_init(&[
        "--print-plan",
        "--config-dir",
        dir.path().to_str().expect("utf8"),
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let plan = text(&out.stdout);
    assert!(
        plan.starts_with("# agent: uid 1500 gid 1600 home /home/a\n"),
        "{plan}"
    );
    // /home/a does not exist here: all of it would be created.
    assert!(plan.contains(
        "# create /home/a owned by 1500:1600\n# create /home/a/.config owned by 1500:1600\n"
    ));
    assert!(!std::path::Path::new("/home/a").exists(), "nothing created");
    assert!(plan.contains("# ---- IPv4: iptables-restore --noflush\n"));
    assert!(plan.contains("-A JAILOC-OUTPUT -d 192.0.2.9/32 -j ACCEPT\n"));
    assert!(plan.contains("# ---- IPv6: ip6tables-restore --noflush\n"));
    assert!(
        plan.contains("-A JAILOC-OUTPUT -d 2001:db8::5/128 -p tcp -m tcp --dport 443 -j ACCEPT\n")
    );
    assert!(plan.contains("-A JAILOC-OUTPUT -j JAILOC-REJECT\n"));
    assert!(plan.contains("-A JAILOC-REJECT -j REJECT --reject-with icmp6-adm-prohibited\n"));
}

#[test]
fn health_and_enter_are_in_the_help_and_refuse_a_wrong_command_line() {
    let help = text(&sandbox_init(&["--help"]).stdout);
    assert!(help.contains("       sandbox-init [--config-dir DIR] --health [--port PORT]\n"));
    assert!(
        help.contains("       sandbox-init [--config-dir DIR] --enter [--] COMMAND [ARGS...]\n")
    );
    let out = sandbox_init(&["--health", "opencode"]);
    assert_eq!(out.status.code(), Some(64));
    assert_eq!(
        text(&out.stderr),
        "sandbox-init: error: option --health takes no COMMAND (usage: sandbox-init [--config-dir DIR] --health [--port PORT])\n"
    );
    let out = sandbox_init(&["--enter"]);
    assert_eq!(out.status.code(), Some(64));
    let out = sandbox_init(&["--config-dir", "relative", "--health"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out.stderr).contains("needs an absolute path"));
}
