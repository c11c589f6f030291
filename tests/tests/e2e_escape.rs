//! Docker end-to-end tests of issue 10's launcher side: each replays, against a real engine and
//! the compose file `jailoc up` writes, an attack from the agent on the host or on root:
//!
//! - a program planted on the agent's `PATH` is not run by the health check (it ran as root
//!   under the earlier `bash -c` check);
//! - git config planted in OpenCode's data directory lands in the workspace's own directory,
//!   never the host's, and a symlinked `auth.json` is replaced, never written through;
//! - `jailoc shell` enters with no capability in any set, the bounding set included.
//!
//! The agent's own writes are simulated with `docker exec --user 1000` (what the agent can do
//! anyway); what is checked is what root, the host or jailoc does next. Networks are
//! `internal: true` with their own subnet (the compose override), nothing leaves the machine.
//! The first and the last test need sandbox-init's `--health` / `--enter` modes (contract A).

use std::path::PathBuf;
use std::time::Duration;

use jailoc_tests::docker::{self, docker, Cleanup};
use serde_json::Value;

/// A throwaway user for the jailoc CLI: HOME (XDG defaults under it), a project, one workspace
/// running the probe image on an internal network.
struct User {
    home: PathBuf,
    project: PathBuf,
    workspace: String,
    project_name: String,
}

impl User {
    /// Writes config.toml (the workspace, the probe image, `extra` appended) and the compose
    /// override that puts the project's network on `subnet`, internal.
    fn new(cleanup: &mut Cleanup, image: &str, subnet: &str, extra: &str) -> User {
        let root = docker::profile_dir()
            .parent()
            .expect("target dir")
            .join(docker::unique("jailoc-e2e-escape"));
        cleanup.dir(&root);
        let workspace = docker::unique("esc");
        let user = User {
            home: root.join("home"),
            project: root.join("project"),
            project_name: format!("jailoc-{workspace}"),
            workspace,
        };
        cleanup.compose_project(&user.project_name);
        let ws_dir = user
            .home
            .join(".config/jailoc/workspaces")
            .join(&user.workspace);
        for d in [&user.project, &ws_dir] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        std::fs::write(
            user.home.join(".config/jailoc/config.toml"),
            format!(
                "[workspaces.{}]\npaths = [\"{}\"]\nimage = \"{image}\"\n{extra}",
                user.workspace,
                user.project.display()
            ),
        )
        .expect("config.toml");
        std::fs::write(
            ws_dir.join("compose.override.yml"),
            format!(
                "version: \"2.4\"\nnetworks:\n  default:\n    internal: true\n    ipam:\n      config:\n        - subnet: {subnet}\n"
            ),
        )
        .expect("override");
        user
    }

    /// `jailoc ARGS...` in the project with this HOME; `input` on stdin.
    fn jailoc(&self, args: &[&str], input: &str) -> std::process::Output {
        let bin = docker::jailoc_binary();
        assert!(bin.is_file(), "build jailoc first: {}", bin.display());
        let mut child = std::process::Command::new(&bin)
            .args(args)
            .current_dir(&self.project)
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_CACHE_HOME")
            .env_remove("XDG_DATA_HOME")
            .env_remove("XDG_RUNTIME_DIR")
            .env("HOME", &self.home)
            .env("JAILOC_SANDBOX_INIT", docker::sandbox_init_binary())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("failed to run {}: {e}", bin.display()));
        let mut stdin = child.stdin.take().expect("stdin");
        std::io::Write::write_all(&mut stdin, input.as_bytes()).expect("write stdin");
        drop(stdin);
        child.wait_with_output().expect("jailoc output")
    }

    fn jailoc_ok(&self, args: &[&str]) -> String {
        let o = self.jailoc(args, "");
        assert!(
            o.status.success(),
            "jailoc {args:?} failed ({}):\n{}{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// The agent's container.
    fn container(&self) -> String {
        let filter = format!("label=com.docker.compose.project={}", self.project_name);
        let ids = docker([
            "ps",
            "-q",
            "--filter",
            &filter,
            "--filter",
            "label=com.docker.compose.service=opencode",
        ])
        .expect("docker ps");
        let ids: Vec<&str> = ids.lines().collect();
        assert_eq!(ids.len(), 1, "one agent container: {ids:?}");
        ids[0].to_owned()
    }

    /// The workspace's own OpenCode data directory on the host.
    fn data_dir(&self) -> PathBuf {
        self.home
            .join(".local/share/jailoc")
            .join(&self.workspace)
            .join("opencode")
    }
}

/// Runs `script` with `sh -c` as the agent (UID 1000: what the agent itself can do).
fn as_agent(container: &str, script: &str) -> String {
    let o = docker::run_output(
        "docker",
        ["exec", "--user", "1000:1000", container, "sh", "-c", script],
    )
    .expect("docker exec");
    assert!(
        o.status.success(),
        "agent script failed: {script}\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The start times of the health checks the engine has logged for `container`.
fn health_starts(container: &str) -> Vec<String> {
    let json = docker::inspect(container, "{{json .State.Health}}").unwrap_or_default();
    let v: Value = serde_json::from_str(&json).unwrap_or(Value::Null);
    v["Log"]
        .as_array()
        .map(|log| {
            log.iter()
                .filter_map(|e| e["Start"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Issue 10, item 4. The engine runs the health check as root with the container's
/// capabilities. The agent plants `head`, `base64`, `tr` and `grep` in `~/.local/bin` (on
/// `PATH`, as users commonly set it): the earlier `bash -c` check found them there and ran
/// them as uid 0 with CapEff 11eb. After three health checks, none has run, and the
/// container is healthy (sandbox-init `--health` answers).
#[test]
fn e2e_attack_program_planted_on_path_is_not_run_by_the_healthcheck() {
    let Some(_engine) =
        docker::require_engine("e2e_attack_program_planted_on_path_is_not_run_by_the_healthcheck")
    else {
        return;
    };
    let mut cleanup = Cleanup::new();
    let image = docker::build_probe_image(&mut cleanup).expect("probe image");
    let user = User::new(
        &mut cleanup,
        &image,
        "10.233.1.0/24",
        "env = { PATH = \"/home/agent/.local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\" }\n",
    );
    user.jailoc_ok(&["up", "-w", &user.workspace]);
    let id = user.container();
    let marks = user.project.join(".pwned");
    let mut script = String::from("mkdir -p /home/agent/.local/bin");
    for tool in ["head", "base64", "tr", "grep"] {
        script.push_str(&format!(
            " && printf '#!/bin/sh\\nmkdir -p {m} && {{ id -u; grep CapEff /proc/self/status; }} > {m}/{tool}\\nexec /usr/bin/{tool} \"$@\"\\n' > /home/agent/.local/bin/{tool} && chmod 755 /home/agent/.local/bin/{tool}",
            m = marks.display()
        ));
    }
    as_agent(&id, &script);
    let before = health_starts(&id);
    // Three health checks that started after the plant (Docker logs the last five).
    let ran = docker::wait_for(Duration::from_secs(90), || {
        let now = health_starts(&id);
        (now.iter().filter(|s| !before.contains(s)).count() >= 3).then_some(())
    });
    assert!(
        ran.is_some(),
        "the engine ran no health check: {}",
        docker::inspect(&id, "{{json .State.Health}}").unwrap_or_default()
    );
    let planted_ran: Vec<String> = std::fs::read_dir(&marks)
        .into_iter()
        .flatten()
        .map(|e| {
            let p = e.expect("entry").path();
            format!(
                "{}: {}",
                p.display(),
                std::fs::read_to_string(&p).unwrap_or_default()
            )
        })
        .collect();
    assert!(
        planted_ran.is_empty(),
        "the health check ran the agent's programs: {planted_ran:?}"
    );
    let health = docker::wait_for(Duration::from_secs(60), || {
        let s = docker::inspect(&id, "{{.State.Health.Status}}").ok()?;
        (s == "healthy").then_some(s)
    });
    assert!(
        health.is_some(),
        "sandbox-init --health never reported healthy: {}",
        docker::inspect(&id, "{{json .State.Health}}").unwrap_or_default()
    );
    user.jailoc_ok(&["down", "-w", &user.workspace]);
}

/// Issue 10, item 1. OpenCode runs git on the snapshot repositories in its data directory;
/// the agent appends `core.fsmonitor` to one's config. It lands in the workspace's own
/// directory (which no host program reads), never in the host's `~/.local/share/opencode`,
/// whose snapshots the agent cannot even see. The host's logins arrive as a copy; the agent
/// replaces that copy with a symlink to a host file, and the next `up` replaces the symlink
/// without writing through it.
#[test]
fn e2e_attack_git_config_planted_in_opencode_data_never_reaches_the_host() {
    let Some(_engine) = docker::require_engine(
        "e2e_attack_git_config_planted_in_opencode_data_never_reaches_the_host",
    ) else {
        return;
    };
    let mut cleanup = Cleanup::new();
    let image = docker::build_probe_image(&mut cleanup).expect("probe image");
    let user = User::new(&mut cleanup, &image, "10.233.2.0/24", "");
    let host_data = user.home.join(".local/share/opencode");
    let host_repo = host_data.join("snapshot/proj/0123");
    std::fs::create_dir_all(&host_repo).expect("mkdir");
    let repo_config = "[core]\n\tbare = true\n";
    std::fs::write(host_repo.join("config"), repo_config).expect("write");
    std::fs::write(host_data.join("auth.json"), "{\"p\":\"LOGINS\"}").expect("write");
    let bashrc = user.home.join(".bashrc");
    std::fs::write(&bashrc, "ORIGINAL\n").expect("write");
    // These tests run jailoc as root: `up` hands the data directory it creates to the agent.

    user.jailoc_ok(&["up", "-w", &user.workspace]);
    let id = user.container();
    let data = "/home/agent/.local/share/opencode";
    let copied = docker(["exec", &id, "cat", &format!("{data}/auth.json")]).expect("cat");
    assert_eq!(
        copied, "{\"p\":\"LOGINS\"}",
        "the host's logins arrive as a copy"
    );
    assert_eq!(
        as_agent(&id, &format!("ls -A {data}")),
        "auth.json\n",
        "nothing of the host's data directory is visible"
    );
    as_agent(
        &id,
        &format!(
            "mkdir -p {data}/snapshot/proj/0123 && printf '[core]\\n\\tfsmonitor = touch /tmp/pwned\\n' >> {data}/snapshot/proj/0123/config \
             && ln -sf {} {data}/auth.json",
            bashrc.display()
        ),
    );
    assert_eq!(
        std::fs::read_to_string(host_repo.join("config")).expect("read"),
        repo_config,
        "the host's snapshot repository is untouched"
    );
    let planted = user.data_dir().join("snapshot/proj/0123/config");
    assert!(
        std::fs::read_to_string(&planted)
            .expect("the agent's write landed in the workspace's own dir")
            .contains("fsmonitor"),
        "{}",
        planted.display()
    );

    // The next `up` renews the copy: the symlink is replaced, ~/.bashrc is not written.
    user.jailoc_ok(&["up", "-w", &user.workspace]);
    assert_eq!(
        std::fs::read_to_string(&bashrc).expect("read"),
        "ORIGINAL\n"
    );
    let copy = user.data_dir().join("auth.json");
    assert!(std::fs::symlink_metadata(&copy).expect("stat").is_file());
    assert_eq!(
        std::fs::read_to_string(&copy).expect("read"),
        "{\"p\":\"LOGINS\"}"
    );
    user.jailoc_ok(&["down", "-w", &user.workspace]);
}

/// Issue 10, item 4. A `docker exec --user 1000` keeps the container's capabilities in its
/// bounding set (CapBnd 11eb on Docker 20.10); `jailoc shell` enters through
/// `sandbox-init --enter`, so the agent's shell has nothing in any set, and `no_new_privs`.
#[test]
fn e2e_jailoc_shell_has_no_capability_in_any_set() {
    let Some(_engine) = docker::require_engine("e2e_jailoc_shell_has_no_capability_in_any_set")
    else {
        return;
    };
    let mut cleanup = Cleanup::new();
    let image = docker::build_probe_image(&mut cleanup).expect("probe image");
    let user = User::new(&mut cleanup, &image, "10.233.3.0/24", "");
    user.jailoc_ok(&["up", "-w", &user.workspace]);
    let o = user.jailoc(
        &["shell", "-w", &user.workspace],
        "id -u\ngrep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs)' /proc/self/status\nexit\n",
    );
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "jailoc shell failed: {text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for line in [
        "1000",
        "CapInh:\t0000000000000000",
        "CapPrm:\t0000000000000000",
        "CapEff:\t0000000000000000",
        "CapBnd:\t0000000000000000",
        "CapAmb:\t0000000000000000",
        "NoNewPrivs:\t1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line:?} missing from jailoc shell's view:\n{text}"
        );
    }
    user.jailoc_ok(&["down", "-w", &user.workspace]);
}
