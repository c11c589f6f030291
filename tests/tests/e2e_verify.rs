//! Docker end-to-end for `jailoc verify`: a healthy workspace passes in both egress modes (and
//! its `--json` parses), the same workspace fails, naming the check, once a rule is removed
//! inside its container, and a stopped workspace is named as such.
//!
//! Network safety: each workspace's own network is `internal: true` on a documentation range
//! the test chooses (203.0.113.224/28 and 203.0.113.240/28): an on-link prefix outside every
//! built-in range gets a rule of its own (`-d 203.0.113.240/28 -j JAILOC-REJECT`), so removing
//! it opens that link only — where the test's own listener stands at the address verify
//! samples (the link's last host). The gateway keeps its own rule; nothing else is opened, and
//! nothing the probes send leaves the test's networks.
//!
//! Skips (with the reason) when no engine answers; fails under `CI=true`. Needs the static
//! `sandbox-init` and `jailoc` built first: `cargo build -p sandbox-init -p jailoc`.

use std::path::PathBuf;
use std::process::Output;

use jailoc_tests::docker::{self, docker, Cleanup};
use serde_json::Value;

/// A throwaway user environment for the jailoc CLI (HOME, XDG dirs, one project per workspace).
struct UserEnv {
    home: PathBuf,
    config: PathBuf,
    cache: PathBuf,
}

impl UserEnv {
    fn new(cleanup: &mut Cleanup) -> UserEnv {
        let root = docker::workspace_scratch_dir().join(docker::unique("jailoc-e2e-verify"));
        cleanup.dir(&root);
        let env = UserEnv {
            home: root.join("home"),
            config: root.join("home/.config"),
            cache: root.join("home/.cache"),
        };
        for d in [&env.home, &env.config, &env.cache] {
            std::fs::create_dir_all(d).expect("user env dir");
        }
        env
    }

    /// `jailoc ARGS...` with this environment, stdin closed.
    fn jailoc(&self, args: &[&str]) -> Output {
        let bin = docker::jailoc_binary();
        assert!(
            bin.is_file(),
            "failed to find jailoc at {}: build it first (cargo build -p jailoc) or set JAILOC_BIN",
            bin.display()
        );
        std::process::Command::new(&bin)
            .args(args)
            .current_dir(&self.home)
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", &self.config)
            .env("XDG_CACHE_HOME", &self.cache)
            .env("JAILOC_SANDBOX_INIT", docker::sandbox_init_binary())
            .envs(docker::jailoc_env())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("failed to run {}: {e}", bin.display()))
    }

    /// A workspace on `image` with `egress`, its project directory, and the compose override
    /// that makes its network internal on `subnet`.
    fn workspace(&self, name: &str, image: &str, egress: &str, subnet: &str) -> String {
        let project = self.home.join("src").join(name);
        std::fs::create_dir_all(&project).expect("project dir");
        let cfg_dir = self.config.join("jailoc");
        let ws_dir = cfg_dir.join("workspaces").join(name);
        std::fs::create_dir_all(&ws_dir).expect("config dir");
        let config = cfg_dir.join("config.toml");
        let mut text = std::fs::read_to_string(&config).unwrap_or_default();
        text.push_str(&format!(
            "[workspaces.{name}]\npaths = [\"{}\"]\nimage = \"{image}\"\negress = \"{egress}\"\n\
             allowed_hosts = [\"db.verify.example:5432\"]\n",
            project.display()
        ));
        std::fs::write(&config, text).expect("config.toml");
        std::fs::write(
            ws_dir.join("compose.override.yml"),
            format!(
                "networks:\n  default:\n    internal: true\n    ipam:\n      config:\n        - subnet: {subnet}\n"
            ),
        )
        .expect("compose override");
        format!("jailoc-{name}")
    }
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `jailoc verify NAME --json`, parsed; returns the exit code and the document.
fn verify_json(user: &UserEnv, name: &str) -> (Option<i32>, Value) {
    let out = user.jailoc(&["verify", name, "--json"]);
    let (stdout, stderr) = text(&out);
    let doc: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("verify --json is not JSON ({e}):\n{stdout}\n{stderr}"));
    (out.status.code(), doc)
}

/// The checks named `name` in a `--json` document.
fn checks<'a>(doc: &'a Value, name: &str) -> Vec<&'a Value> {
    doc["checks"]
        .as_array()
        .map(|all| all.iter().filter(|c| c["check"] == name).collect())
        .unwrap_or_default()
}

fn up(user: &UserEnv, name: &str, project: &str) -> String {
    let out = user.jailoc(&["up", name]);
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "jailoc up {name} failed ({}):\n{stdout}{stderr}",
        out.status
    );
    let ids = docker([
        "ps",
        "-q",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
        "--filter",
        "label=com.docker.compose.service=opencode",
    ])
    .expect("docker ps");
    ids.lines()
        .next()
        .expect("the agent's container")
        .to_owned()
}

#[test]
fn e2e_verify_passes_on_healthy_workspaces_and_names_a_removed_rule() {
    let Some(_engine) =
        docker::require_engine("e2e_verify_passes_on_healthy_workspaces_and_names_a_removed_rule")
    else {
        return;
    };
    let mut cleanup = Cleanup::new();
    let image = docker::build_probe_image(&mut cleanup).expect("build probe image");
    let user = UserEnv::new(&mut cleanup);

    // Allowlist egress: every wall passes, including a public address and a name that are not
    // allowlisted (the gate answers NXDOMAIN itself).
    let strict = docker::unique("e2e-verify-a");
    let strict_project = user.workspace(&strict, &image, "allowlist", "203.0.113.224/28");
    cleanup.compose_project(&strict_project);
    up(&user, &strict, &strict_project);
    let (code, doc) = verify_json(&user, &strict);
    assert_eq!(code, Some(0), "{doc:#}");
    assert_eq!(doc["passed"], true, "{doc:#}");
    for name in [
        "rules IPv4",
        "agent uid",
        "capabilities CapBnd",
        "no_new_privs",
        "metadata",
        "public, not allowlisted",
    ] {
        assert!(!checks(&doc, name).is_empty(), "no {name} check: {doc:#}");
    }
    let dns = checks(&doc, "name, not allowlisted");
    assert_eq!(dns.len(), 1, "{doc:#}");
    assert_eq!(dns[0]["got"], "NXDOMAIN from the gate", "{doc:#}");
    let out = user.jailoc(&["down", &strict]);
    assert!(out.status.success(), "down: {:?}", text(&out));
    // A stopped workspace has nothing to verify, and says so.
    let out = user.jailoc(&["verify", &strict]);
    assert_eq!(out.status.code(), Some(3), "{:?}", text(&out));
    assert!(
        text(&out).1.contains(&format!(
            "failed to verify: workspace \"{strict}\" is not running (start it with `jailoc up`)"
        )),
        "{:?}",
        text(&out)
    );

    // Open egress: the table passes, exit 0.
    let open = docker::unique("e2e-verify-o");
    let open_project = user.workspace(&open, &image, "open", "203.0.113.240/28");
    cleanup.compose_project(&open_project);
    let id = up(&user, &open, &open_project);
    let out = user.jailoc(&["verify", &open]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.lines().next().is_some_and(|l| l.contains("CHECK")
            && l.contains("TARGET")
            && l.contains("EXPECTED")
            && l.contains("GOT")
            && l.contains("MS")),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.split_whitespace().next() == Some("ok")
                && l.contains(" link 203.0.113.240/28 (eth0) ")
                && l.contains("tcp 203.0.113.254:443")
                && l.contains("refused")),
        "{stdout}"
    );
    assert!(stdout.contains("\nverify: all "), "{stdout}");
    assert!(!stdout.contains("not allowlisted"), "{stdout}");

    // The test's own listener at the link address verify samples.
    let listener = docker::unique("jailoc-e2e-verify-listener");
    let mut args = cleanup.container_args(
        &["run", "-d"],
        &listener,
        &format!("{open_project}_default"),
    );
    args.extend([
        "--ip".into(),
        "203.0.113.254".into(),
        image.clone(),
        "probe".into(),
        "listen".into(),
        "tcp:0.0.0.0:443".into(),
    ]);
    docker(&args).expect("start the listener");
    assert!(
        docker::wait_for(std::time::Duration::from_secs(10), || {
            docker(["logs", &listener])
                .ok()
                .filter(|l| l.contains("listening"))
        })
        .is_some(),
        "the listener did not start"
    );
    // Still refused while the rule stands.
    let (code, doc) = verify_json(&user, &open);
    assert_eq!(code, Some(0), "{doc:#}");

    // The attack: the link's rule removed inside the container (root, NET_ADMIN).
    let removed = docker([
        "exec",
        "--user",
        "0",
        &id,
        "iptables",
        "-D",
        "JAILOC-OUTPUT",
        "-d",
        "203.0.113.240/28",
        "-j",
        "JAILOC-REJECT",
    ]);
    assert!(removed.is_ok(), "iptables -D: {removed:?}");
    let out = user.jailoc(&["verify", &open]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout
            .lines()
            .any(|l| l.split_whitespace().next() == Some("FAIL")
                && l.contains(" link 203.0.113.240/28 (eth0) ")
                && l.contains("tcp 203.0.113.254:443")
                && l.contains("connected")),
        "{stdout}"
    );
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("verify: 2 of ")
            && last.contains("rules IPv4 iptables-save (failed to verify the IPv4 rules: ")
            && last.contains("link 203.0.113.240/28 (eth0) tcp 203.0.113.254:443 (connected)"),
        "{last}"
    );
    // The probe did reach the listener: the failure is real, not a guess.
    let logs = docker(["logs", &listener]).expect("listener logs");
    assert!(logs.contains("\"event\":\"tcp\""), "{logs}");
    let (code, doc) = verify_json(&user, &open);
    assert_eq!(code, Some(1));
    assert_eq!(doc["passed"], false);
    let link = checks(&doc, "link 203.0.113.240/28 (eth0)");
    assert_eq!(link.len(), 1, "{doc:#}");
    assert_eq!(link[0]["got"], "connected");
    assert_eq!(link[0]["pass"], false);
}
