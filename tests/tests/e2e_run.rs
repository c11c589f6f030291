//! Docker end-to-end of `jailoc run` and `jailoc egress`: one-shot runs in a workspace's guard
//! on a real engine, run the way CI runs them (`CI=true`, stdin closed, no terminal).
//!
//! - a command's exit code is the run's; `--timeout` ends a hung run with 124; SIGINT to jailoc
//!   stops the container (130); after each, nothing of the run is left (container, network,
//!   volume, files);
//! - a run that tries the metadata address and looks up a name that is not allowlisted ends
//!   with both in its summary, and `jailoc egress --json` of a running workspace lists both;
//! - the real OpenCode (the vendored 1.18.33) runs `opencode run --format json` against a small
//!   OpenAI-compatible model server (`probe openai-stub`) that the test starts on an internal
//!   network of its own, reached by name through the DNS gate: an answer → 0 with its text; a
//!   server that fails → non-zero (OpenCode retries for about 70 s first); a server that never
//!   answers → the timeout's 124.
//!
//! Every network is `internal: true` with its own subnet, created and removed by the test.
//! Skips (with the reason) when no engine answers; fails under `CI=true`. Needs `cargo build
//! --workspace --bins` and the static sandbox-init (`cargo build --release -p sandbox-init`).

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use jailoc_tests::docker::{self, docker, Cleanup};
use serde_json::Value;

/// A throwaway user of jailoc: HOME and XDG dirs and a project, under the scratch dir jailoc
/// accepts workspace paths in.
struct User {
    home: PathBuf,
    project: PathBuf,
}

impl User {
    fn new(cleanup: &mut Cleanup) -> User {
        let root = docker::workspace_scratch_dir().join(docker::unique("jailoc-e2e-run"));
        cleanup.dir(&root);
        let user = User {
            home: root.join("home"),
            project: root.join("project"),
        };
        for d in [&user.home, &user.project] {
            std::fs::create_dir_all(d).expect("user dir");
        }
        user
    }

    /// `jailoc ARGS...` as CI runs it: `CI=true`, stdin closed, output captured.
    fn command(&self, args: &[&str]) -> Command {
        let bin = docker::jailoc_binary();
        assert!(
            bin.is_file(),
            "failed to find jailoc at {}: build it first (cargo build -p jailoc)",
            bin.display()
        );
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .current_dir(&self.project)
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("XDG_CACHE_HOME", self.home.join(".cache"))
            .env("XDG_DATA_HOME", self.home.join(".local/share"))
            .env("JAILOC_SANDBOX_INIT", docker::sandbox_init_binary())
            .env("CI", "true")
            .envs(docker::jailoc_env())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    fn jailoc(&self, args: &[&str]) -> Output {
        self.command(args)
            .output()
            .unwrap_or_else(|e| panic!("failed to run jailoc {args:?}: {e}"))
    }

    /// `jailoc ARGS...` with `input` on stdin (not a terminal).
    fn jailoc_with_input(&self, args: &[&str], input: &str) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .spawn()
            .expect("spawn jailoc");
        let mut stdin = child.stdin.take().expect("stdin");
        std::io::Write::write_all(&mut stdin, input.as_bytes()).expect("write stdin");
        drop(stdin);
        child.wait_with_output().expect("wait for jailoc")
    }

    /// Writes config.toml with workspace `ws` (the project, `image`, `extra` keys) and its
    /// compose override: the default network internal on `subnet`, plus the external
    /// `networks` (name) the agent joins.
    fn workspace(&self, ws: &str, image: &str, extra: &str, subnet: &str, networks: &[&str]) {
        let cfg = self.home.join(".config/jailoc");
        let ws_dir = cfg.join("workspaces").join(ws);
        std::fs::create_dir_all(&ws_dir).expect("config dir");
        std::fs::write(
            cfg.join("config.toml"),
            format!(
                "[workspaces.{ws}]\npaths = [\"{}\"]\nimage = \"{image}\"\n{extra}",
                self.project.display()
            ),
        )
        .expect("config.toml");
        let mut joins = String::new();
        let mut defs = String::new();
        for (i, n) in networks.iter().enumerate() {
            joins.push_str(&format!("      net{i}: {{}}\n"));
            defs.push_str(&format!("  net{i}:\n    name: {n}\n    external: true\n"));
        }
        std::fs::write(
            ws_dir.join("compose.override.yml"),
            format!(
                "services:\n  opencode:\n    networks:\n      default: {{}}\n{joins}\
                 networks:\n  default:\n    internal: true\n    ipam:\n      config:\n        - subnet: {subnet}\n{defs}"
            ),
        )
        .expect("compose override");
    }

    /// What is left of `ws`'s runs: containers, networks and volumes of any `jailoc-WS-run-*`
    /// project, and files under the workspace's `runs` directory.
    fn leftovers(&self, ws: &str) -> Vec<String> {
        let prefix = format!("jailoc-{ws}-run-");
        let label = "label=com.docker.compose.project";
        let mut left: Vec<String> = [
            vec!["ps", "-a", "--filter", label, "--format", "{{.Names}}"],
            vec!["network", "ls", "--filter", label, "--format", "{{.Name}}"],
            vec!["volume", "ls", "--filter", label, "--format", "{{.Name}}"],
        ]
        .iter()
        .flat_map(|args| {
            docker(args)
                .unwrap_or_default()
                .lines()
                .filter(|l| l.starts_with(&prefix))
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect();
        let runs = self.home.join(".cache/jailoc").join(ws).join("runs");
        if let Ok(entries) = std::fs::read_dir(&runs) {
            left.extend(entries.flatten().map(|e| e.path().display().to_string()));
        }
        left
    }
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The run's code, or 128+signal.
fn code(out: &Output) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    out.status
        .code()
        .unwrap_or_else(|| 128 + out.status.signal().unwrap_or(0))
}

#[test]
fn e2e_run_passes_the_exit_code_times_out_stops_on_sigint_and_leaves_nothing() {
    let Some(_engine) = docker::require_engine("e2e_run_exit_code_timeout") else {
        return;
    };
    let mut cleanup = Cleanup::new();
    let image = docker::build_probe_image(&mut cleanup).expect("probe image");
    let user = User::new(&mut cleanup);
    let ws = docker::unique("e2e-run");
    user.workspace(&ws, &image, "", "10.231.30.0/24", &[]);

    // The command's own code, and its output on the right streams.
    let out = user.jailoc(&[
        "run",
        "-w",
        &ws,
        "--",
        "sh",
        "-c",
        "echo to-stdout; echo to-stderr >&2; exit 3",
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(code(&out), 3, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("to-stdout\n"), "{stdout}");
    assert!(stderr.contains("to-stderr\n"), "{stderr}");
    assert_eq!(user.leftovers(&ws), Vec::<String>::new(), "after exit 3");

    // A hung command: --timeout's 124, soon after the limit.
    let started = Instant::now();
    let out = user.jailoc(&["run", "-w", &ws, "--timeout", "3s", "--", "sleep", "600"]);
    let took = started.elapsed();
    let (stdout, stderr) = text(&out);
    assert_eq!(code(&out), 124, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stderr.contains("jailoc: run timed out after 3s: stopped its container\n"),
        "{stderr}"
    );
    assert!(took < Duration::from_secs(60), "the timeout took {took:?}");
    assert_eq!(
        user.leftovers(&ws),
        Vec::<String>::new(),
        "after the timeout"
    );

    // Ctrl-C (SIGINT to jailoc alone, as a CI runner's cancel sends SIGTERM): the container
    // stops and goes, and jailoc reports 130.
    let child = user
        .command(&["run", "-w", &ws, "--", "sleep", "600"])
        .spawn()
        .expect("spawn jailoc run");
    let running = docker::wait_for(Duration::from_secs(60), || {
        let names = docker([
            "ps",
            "--filter",
            &format!("label=dev.jailoc.workspace={ws}"),
            "--format",
            "{{.Names}}",
        ])
        .ok()?;
        (!names.trim().is_empty()).then_some(names)
    });
    assert!(running.is_some(), "the run's container never ran");
    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: kill(2) on the jailoc process this test started and has not yet waited for.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let out = child.wait_with_output().expect("wait for jailoc");
    let (stdout, stderr) = text(&out);
    assert_eq!(code(&out), 130, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stderr.contains("jailoc: run stopped by SIGINT: stopped its container\n"),
        "{stderr}"
    );
    assert_eq!(user.leftovers(&ws), Vec::<String>::new(), "after SIGINT");
}

/// The metadata address and a name outside the allowlist, tried by the agent.
const TRESPASS: &str = "probe tcp 169.254.169.254:80; getent hosts x.attacker.example; echo tried";

#[test]
fn e2e_run_and_egress_name_what_the_walls_refused() {
    let Some(_engine) = docker::require_engine("e2e_run_and_egress") else {
        return;
    };
    let mut cleanup = Cleanup::new();
    let image = docker::build_probe_image(&mut cleanup).expect("probe image");
    // A route to the metadata address (the agent's own network is internal: without a route
    // the kernel refuses the connection before the firewall sees it).
    let meta = docker::unique("jailoc-e2e-run-meta");
    docker::create_network(&mut cleanup, &meta, "169.254.169.0/24").expect("metadata network");
    let user = User::new(&mut cleanup);
    let ws = docker::unique("e2e-egress");
    cleanup.compose_project(&format!("jailoc-{ws}"));
    user.workspace(
        &ws,
        &image,
        "egress = \"allowlist\"\n",
        "10.231.31.0/24",
        &[&meta],
    );

    // A run: its summary is the last line on stderr.
    let out = user.jailoc(&["run", "-w", &ws, "--", "sh", "-c", TRESPASS]);
    let (stdout, stderr) = text(&out);
    assert_eq!(code(&out), 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("tried"), "{stdout}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("jailoc: blocked ")
            && last.contains("169.254.169.254:80 (cloud metadata)")
            && last.contains("refused 1 name: x.attacker.example (not allowlisted)"),
        "the summary is not the last line:\n{stderr}"
    );
    assert_eq!(user.leftovers(&ws), Vec::<String>::new(), "after the run");

    // The running workspace's record.
    let up = user.jailoc(&["up", "-w", &ws]);
    assert!(up.status.success(), "jailoc up: {:?}", text(&up));
    let egress = user.jailoc(&["egress", &ws]);
    let (stdout, _) = text(&egress);
    assert!(
        egress.status.success() && stdout.contains("nothing refused so far"),
        "{:?}",
        text(&egress)
    );
    let shell = user.jailoc_with_input(&["shell", "-w", &ws], &format!("{TRESPASS}\nexit 0\n"));
    assert!(shell.status.success(), "jailoc shell: {:?}", text(&shell));
    let egress = user.jailoc(&["egress", &ws, "--json"]);
    let (stdout, stderr) = text(&egress);
    assert!(egress.status.success(), "{stdout}{stderr}");
    let entries: Vec<Value> = serde_json::from_str(&stdout).expect("egress --json is JSON");
    let has = |want: &dyn Fn(&Value) -> bool| entries.iter().any(want);
    assert!(
        has(&|e| e["kind"] == "connection"
            && e["proto"] == "tcp"
            && e["dest"] == "169.254.169.254"
            && e["port"] == 80
            && e["reason"] == "cloud metadata"
            && e["count"].as_u64() >= Some(1)),
        "{stdout}"
    );
    assert!(
        has(&|e| e["kind"] == "name"
            && e["name"] == "x.attacker.example"
            && e["reason"] == "not allowlisted"),
        "{stdout}"
    );
    let table = user.jailoc(&["egress", "-w", &ws]);
    let (stdout, _) = text(&table);
    assert!(
        stdout.starts_with("KIND ") && stdout.contains("169.254.169.254:80  cloud metadata"),
        "{stdout}"
    );
    let down = user.jailoc(&["down", "--volumes", "-w", &ws]);
    assert!(down.status.success(), "jailoc down: {:?}", text(&down));
    let not_running = user.jailoc(&["egress", &ws]);
    let (_, stderr) = text(&not_running);
    assert_eq!(code(&not_running), 3, "{stderr}");
    assert!(
        stderr.contains(&format!("workspace \"{ws}\" is not running")),
        "{stderr}"
    );
}

/// The OpenCode config of a run against the stub at `host`: its one provider (bundled
/// `@ai-sdk/openai-compatible`) is the stub, no models.dev, no sharing, no autoupdate.
fn opencode_config(host: &str) -> String {
    serde_json::json!({
        "model": "stub/stub-model",
        "small_model": "stub/stub-model",
        "autoupdate": false,
        "share": "disabled",
        "provider": {"stub": {
            "npm": "@ai-sdk/openai-compatible",
            "name": "Stub",
            "options": {"baseURL": format!("http://{host}:8080/v1"), "apiKey": "stub"},
            "models": {"stub-model": {"name": "Stub model"}}
        }}
    })
    .to_string()
}

#[test]
fn e2e_run_drives_the_real_opencode_against_a_stub_model() {
    let Some(_engine) = docker::require_engine("e2e_run_real_opencode") else {
        return;
    };
    if !docker::vendored_opencode_tgz().is_file() {
        let why = format!(
            "the vendored OpenCode is not at {}",
            docker::vendored_opencode_tgz().display()
        );
        assert!(!jailoc_tests::in_ci(), "{why}");
        eprintln!("skipping e2e_run_real_opencode: {why}");
        return;
    }
    let mut cleanup = Cleanup::new();
    let probe = docker::build_probe_image(&mut cleanup).expect("probe image");
    let image = docker::build_opencode_image(&mut cleanup).expect("opencode image");
    let net = docker::unique("jailoc-e2e-run-model");
    docker::create_network(&mut cleanup, &net, "10.231.32.0/24").expect("model network");
    let stub = |mode: &str, cleanup: &mut Cleanup| -> String {
        let name = docker::unique(&format!("jailoc-e2e-stub-{mode}"));
        let mut args = cleanup.container_args(&["run", "-d"], &name, &net);
        args.extend([probe.clone(), "probe".into(), "openai-stub".into()]);
        args.extend(["8080".into(), mode.into()]);
        docker(&args).expect("start the model stub");
        name
    };
    let stubs = [
        stub("ok", &mut cleanup),
        stub("500", &mut cleanup),
        stub("hang", &mut cleanup),
    ];
    let user = User::new(&mut cleanup);
    let ws = docker::unique("e2e-oc-run");
    let workspace = |host: &str| {
        let allowed: Vec<String> = stubs.iter().map(|s| format!("\"{s}:8080\"")).collect();
        user.workspace(
            &ws,
            &image,
            &format!(
                "egress = \"allowlist\"\nallowed_hosts = [{}]\nenv = {{ OPENCODE_DISABLE_MODELS_FETCH = \"1\", OPENCODE_CONFIG_CONTENT = '{}' }}\n",
                allowed.join(", "),
                opencode_config(host)
            ),
            "10.231.33.0/24",
            &[&net],
        );
    };

    // A model that answers: 0, with its text in the events.
    workspace(&stubs[0]);
    let out = user.jailoc(&["run", "-w", &ws, "--timeout", "120s", "say", "hi"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(code(&out), 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("STUB-ANSWER"), "{stdout}");
    assert!(
        stdout.contains("\"type\":\"step_finish\"") && stdout.contains("\"reason\":\"stop\""),
        "{stdout}"
    );
    assert_eq!(
        user.leftovers(&ws),
        Vec::<String>::new(),
        "after the answer"
    );

    // A model that never answers: the timeout's 124.
    workspace(&stubs[2]);
    let out = user.jailoc(&["run", "-w", &ws, "--timeout", "25s", "say", "hi"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(code(&out), 124, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(user.leftovers(&ws), Vec::<String>::new(), "after the hang");

    // A model that fails: OpenCode retries (~70 s), then an `error` event: non-zero, and why.
    workspace(&stubs[1]);
    let out = user.jailoc(&["run", "-w", &ws, "--timeout", "150s", "say", "hi"]);
    let (stdout, stderr) = text(&out);
    let c = code(&out);
    assert!(
        c != 0 && c != 124,
        "code {c}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stderr.contains("jailoc: run failed: OpenCode reported an error"),
        "{stderr}"
    );
    assert_eq!(
        user.leftovers(&ws),
        Vec::<String>::new(),
        "after the failure"
    );
}
