//! Docker end-to-end tests of issue 13, switching from the Go jailoc:
//!
//! - a workspace the Go jailoc started — its compose file at jailoc's path, its named volumes
//!   (the sessions in `opencode-data-NAME`), its `allowed-hosts` / `allowed-networks` in the
//!   policy directory — goes through jailoc's `status`, `down` and `up`: nothing is deleted, and
//!   the stale allowlist opens nothing (sandbox-init would merge those files);
//! - the Go jailoc's overlay configs build their overlay (`ARG BASE` / `FROM ${BASE}`) with
//!   jailoc's build arguments against the offline base image.
//!
//! Networks are `internal: true` with subnets of their own (10.236.K.0/24), created and removed
//! by the test. The Go jailoc's project is started with `docker compose` (the Go jailoc drives
//! Compose's library), so these tests run on Docker only.

use std::path::{Path, PathBuf};
use std::process::Output;

use jailoc_tests::docker::{self, docker, Cleanup};

const GO_ONLY: &str = "the Go jailoc's project is started with `docker compose`, as the Go \
                       jailoc (which drives Compose's library) starts it";

/// A throwaway user: HOME (XDG defaults under it) and one project directory.
struct User {
    home: PathBuf,
    project: PathBuf,
    extra_env: Vec<(String, String)>,
}

impl User {
    fn new(cleanup: &mut Cleanup) -> User {
        let root = docker::workspace_scratch_dir().join(docker::unique("jailoc-e2e-go"));
        cleanup.dir(&root);
        let user = User {
            home: root.join("home"),
            project: root.join("project"),
            extra_env: Vec::new(),
        };
        for d in [&user.home, &user.project] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        user
    }

    fn jailoc(&self, args: &[&str]) -> Output {
        let bin = docker::jailoc_binary();
        assert!(bin.is_file(), "build jailoc first: {}", bin.display());
        std::process::Command::new(&bin)
            .args(args)
            .current_dir(&self.project)
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_CACHE_HOME")
            .env_remove("XDG_DATA_HOME")
            .env_remove("XDG_RUNTIME_DIR")
            .env("HOME", &self.home)
            .env("JAILOC_SANDBOX_INIT", docker::sandbox_init_binary())
            .envs(self.extra_env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("failed to run {}: {e}", bin.display()))
    }

    fn jailoc_ok(&self, args: &[&str]) -> (String, String) {
        let o = self.jailoc(args);
        let (out, err) = (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        );
        assert!(
            o.status.success(),
            "jailoc {args:?} failed ({}):\n{out}{err}",
            o.status
        );
        (out, err)
    }
}

/// The running container of `service` in compose project `project`, if any.
fn service_container(project: &str, service: &str) -> Option<String> {
    let ids = docker([
        "ps",
        "-q",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
        "--filter",
        &format!("label=com.docker.compose.service={service}"),
    ])
    .expect("docker ps");
    ids.lines().next().map(str::to_owned)
}

/// The file of `path` read from volume `volume` (a throwaway container with no network).
fn read_from_volume(image: &str, volume: &str, path: &str) -> String {
    docker([
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "cat",
        "-v",
        &format!("{volume}:/v:ro"),
        image,
        &format!("/v/{path}"),
    ])
    .unwrap_or_else(|e| panic!("failed to read {path} from volume {volume}: {e}"))
}

/// `probe tcp ADDR` in a fresh unguarded container on `network`: the control.
fn control_connects(image: &str, network: &str, addr: &str) -> String {
    docker([
        "run",
        "--rm",
        "--network",
        network,
        image,
        "probe",
        "tcp",
        addr,
    ])
    .unwrap_or_else(|e| panic!("control: {e}"))
}

#[test]
fn e2e_go_switch_over_keeps_its_volumes_and_no_stale_allowlist_survives() {
    let Some(_engine) = docker::require_docker(
        "e2e_go_switch_over_keeps_its_volumes_and_no_stale_allowlist_survives",
        GO_ONLY,
    ) else {
        return;
    };
    let mut cleanup = Cleanup::new();
    let probe = docker::build_probe_image(&mut cleanup).expect("probe image");

    // A service the Go jailoc's allowlist names, on an internal network of its own.
    let target_net = docker::unique("jailoc-e2e-go-svc");
    docker::create_network(&mut cleanup, &target_net, "10.236.1.0/24").expect("network");
    let target = "10.236.1.10:80";
    let svc = docker::unique("jailoc-e2e-go-svc");
    let mut args = cleanup.container_args(&["run", "-d"], &svc, &target_net);
    args.extend(
        [
            "--ip",
            "10.236.1.10",
            &probe,
            "probe",
            "listen",
            "tcp:[::]:80",
        ]
        .map(String::from),
    );
    docker(&args).expect("start the service");
    let v = control_connects(&probe, &target_net, target);
    assert!(
        v.contains("\"result\":\"connected\""),
        "an unguarded container reaches {target}: {v}"
    );

    let mut user = User::new(&mut cleanup);
    user.extra_env
        .push(("OPENCODE_SERVER_PASSWORD".into(), "go-password".into()));
    let workspace = docker::unique("go");
    let project = format!("jailoc-{workspace}");
    cleanup.compose_project(&project);
    let cache = user.home.join(".cache/jailoc").join(&workspace);
    let policy = user.home.join(".config/jailoc/workspaces").join(&workspace);
    std::fs::create_dir_all(&cache).expect("mkdir");
    std::fs::create_dir_all(&policy).expect("mkdir");

    // What the Go jailoc leaves: its compose file at jailoc's path (its shape: `name:`, named
    // volumes for OpenCode's data and cache, its entrypoint script from the cache dir, its own
    // network), and its allowlist files, naming the service.
    std::fs::write(
        cache.join("entrypoint.sh"),
        "#!/bin/sh\necho go-session > /home/agent/.local/share/opencode/session.marker\nexec sleep 3600\n",
    )
    .expect("entrypoint");
    let mut perms = std::fs::metadata(cache.join("entrypoint.sh"))
        .expect("stat")
        .permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(cache.join("entrypoint.sh"), perms).expect("chmod");
    let go_compose = format!(
        "# Generated by jailoc — do not edit manually\n\
         name: {project}\n\n\
         services:\n  opencode:\n    image: {probe}\n    volumes:\n      - {p}:{p}\n      \
         - opencode-data-{workspace}:/home/agent/.local/share/opencode\n      \
         - opencode-cache-{workspace}:/home/agent/.cache\n      \
         - ${{HOME}}/.config/jailoc/workspaces/{workspace}:/etc/jailoc:ro\n      \
         - ${{HOME}}/.cache/jailoc/{workspace}/entrypoint.sh:/usr/local/bin/entrypoint.sh:ro\n    \
         environment:\n      - OPENCODE_SERVER_PASSWORD=${{OPENCODE_SERVER_PASSWORD}}\n      \
         - JAILOC=1\n      - JAILOC_WORKSPACE={workspace}\n    \
         networks:\n      - jailoc\n    entrypoint: [\"/usr/local/bin/entrypoint.sh\"]\n\n\
         volumes:\n  opencode-data-{workspace}:\n  opencode-cache-{workspace}:\n\n\
         networks:\n  jailoc:\n    internal: true\n    ipam:\n      config:\n        - subnet: 10.236.3.0/24\n",
        p = user.project.display()
    );
    let go_file = cache.join("docker-compose.yml");
    std::fs::write(&go_file, &go_compose).expect("go compose file");
    std::fs::write(policy.join("allowed-hosts"), format!("{target}\n")).expect("allowed-hosts");
    std::fs::write(policy.join("allowed-networks"), "10.236.1.0/24\n").expect("allowed-networks");
    let go_up = || {
        let o = std::process::Command::new("docker")
            .args(["compose", "-f"])
            .arg(&go_file)
            .args(["up", "-d"])
            .current_dir(&cache)
            .env("HOME", &user.home)
            .env("OPENCODE_SERVER_PASSWORD", "go-password")
            .output()
            .expect("docker compose");
        assert!(
            o.status.success(),
            "the Go jailoc's project did not start: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        docker::wait_for(std::time::Duration::from_secs(30), || {
            service_container(&project, "opencode")
        })
        .expect("the Go jailoc's container runs")
    };
    let go_container = go_up();
    let data_volume = format!("{project}_opencode-data-{workspace}");
    let cache_volume = format!("{project}_opencode-cache-{workspace}");
    let marker = docker::wait_for(std::time::Duration::from_secs(30), || {
        read_from_volume(&probe, &data_volume, "session.marker")
            .contains("go-session")
            .then_some(())
    });
    assert!(marker.is_some(), "the Go session marker is in its volume");

    // jailoc's config for the same workspace: allowlist egress with nothing allowed, the probe
    // as the agent, its own internal network plus the service's (so only the firewall decides).
    std::fs::write(
        user.home.join(".config/jailoc/config.toml"),
        format!(
            "[workspaces.{workspace}]\npaths = [\"{}\"]\nimage = \"{probe}\"\negress = \"allowlist\"\n",
            user.project.display()
        ),
    )
    .expect("config");
    std::fs::write(
        policy.join("compose.override.yml"),
        format!(
            "services:\n  opencode:\n    command: [\"probe\", \"serve\", \"4096\"]\n    networks:\n      default: {{}}\n      svc: {{}}\n\
             networks:\n  default:\n    internal: true\n    ipam:\n      config:\n        - subnet: 10.236.2.0/24\n\
             \x20 svc:\n    name: {target_net}\n    external: true\n"
        ),
    )
    .expect("override");

    // status: the Go jailoc's container counts as the workspace's, running.
    let (out, _) = user.jailoc_ok(&["status", "--json"]);
    let rows: serde_json::Value = serde_json::from_str(&out).expect("status json");
    let row = rows
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["name"] == workspace.as_str())
        .unwrap_or_else(|| panic!("{workspace} in {out}"))
        .clone();
    assert_eq!(row["state"], "running", "{row}");
    assert_eq!(row["go_jailoc"], true, "{row}");

    // down: its containers and network go, every volume stays (with its data), also with
    // --volumes (they are the Go jailoc's).
    let (out, _) = user.jailoc_ok(&["down", "--volumes", &workspace]);
    assert!(out.contains(&data_volume), "{out}");
    assert_eq!(service_container(&project, "opencode"), None);
    let left = docker(["ps", "-aq", "--filter", &format!("id={go_container}")]).expect("ps");
    assert_eq!(left.trim(), "", "the Go container is removed");
    for v in [&data_volume, &cache_volume] {
        assert!(docker(["volume", "inspect", v]).is_ok(), "{v} was deleted");
    }
    assert!(read_from_volume(&probe, &data_volume, "session.marker").contains("go-session"));

    // up over a running Go workspace: replaced, volumes kept, stale allowlist removed.
    go_up();
    let (out, err) = user.jailoc_ok(&["up", &workspace]);
    assert!(
        out.contains(
            "was started by the Go jailoc: replacing its containers; its volumes are kept"
        ),
        "{out}"
    );
    assert!(
        err.contains("allowed-hosts, allowed-networks"),
        "up says what it removed: {err}"
    );
    assert!(
        out.contains(&format!("workspace \"{workspace}\" is up")),
        "{out}"
    );
    for f in ["allowed-hosts", "allowed-networks"] {
        assert!(!policy.join(f).exists(), "{f} survived");
    }
    for v in [&data_volume, &cache_volume] {
        assert!(docker(["volume", "inspect", v]).is_ok(), "{v} was deleted");
    }
    let agent = service_container(&project, "opencode").expect("jailoc's agent runs");
    let labels = docker::inspect(&agent, "{{index .Config.Labels \"dev.jailoc.workspace\"}}")
        .expect("labels");
    assert_eq!(labels.trim(), workspace, "the agent is jailoc's now");
    // What the container reads as its policy is exactly jailoc's, and the stale entry opens
    // nothing: the service the Go allowlist named is refused from the agent.
    let listing = docker(["exec", &agent, "ls", "-A", "/etc/jailoc"]).expect("ls");
    let mut listing: Vec<&str> = listing.split_whitespace().collect();
    listing.sort();
    assert_eq!(
        listing,
        ["compose.override.yml", "policy.toml", "secret-env"]
    );
    let ip = docker::container_ip(&agent, &format!("{project}_default")).expect("agent ip");
    let (code, body) = docker::http_get(
        std::net::SocketAddr::from((ip, 4096)),
        &format!(
            "/probe?args={}",
            docker::url_encode(&format!("tcp {target}"))
        ),
        None,
    )
    .expect("probe");
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("\"result\":\"refused\"") || body.contains("\"result\":\"blocked\""),
        "the stale Go allowlist opened {target}: {body}"
    );

    // jailoc's own down keeps every volume; --volumes deletes jailoc's project's.
    let (out, _) = user.jailoc_ok(&["down", &workspace]);
    assert!(out.contains("kept"), "{out}");
    for v in [&data_volume, &cache_volume] {
        assert!(docker(["volume", "inspect", v]).is_ok(), "{v} was deleted");
    }
}

/// The corpus's overlay configs whose Dockerfile jailoc builds (a URL; the ones inside the
/// project are refused on purpose, see launcher/tests/go_corpus.rs).
const OVERLAY_CONFIGS: &[&str] = &[
    "doc_AGENTS_01_L109.toml",
    "doc_docs_development_01_L100.toml",
    "doc_docs_how-to_custom-images_07_L119.toml",
    "doc_docs_how-to_workspace-configuration_07_L127.toml",
];

/// A stand-in `curl` that serves a Go-style overlay (`ARG BASE` / `FROM ${BASE}`) for any URL,
/// so nothing leaves the machine.
const FAKE_CURL: &str =
    "#!/bin/sh\nout=\"\"\nwhile [ $# -gt 0 ]; do [ \"$1\" = -o ] && out=\"$2\"; shift; done\n\
printf 'ARG BASE\\nFROM ${BASE}\\nRUN echo go-overlay > /go-overlay\\n' > \"$out\"\n";

#[test]
fn e2e_go_overlays_build_with_base_against_the_offline_image() {
    let Some(_engine) =
        docker::require_engine("e2e_go_overlays_build_with_base_against_the_offline_image")
    else {
        return;
    };
    let base = docker::ensure_base_image(false).expect("offline base image");
    let mut cleanup = Cleanup::new();
    let corpus = docker::repo_root().join("tests/fixtures/go-jailoc-configs");
    for file in OVERLAY_CONFIGS {
        let user = User::new(&mut cleanup);
        let bin = user.home.join("bin");
        std::fs::create_dir_all(&bin).expect("mkdir");
        let curl = bin.join("curl");
        std::fs::write(&curl, FAKE_CURL).expect("fake curl");
        let mut perms = std::fs::metadata(&curl).expect("stat").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&curl, perms).expect("chmod");
        let text = std::fs::read_to_string(corpus.join(file)).expect("corpus file");
        let text = relocate_paths(&text, &user.project);
        let cfg_file = user.home.join(".config/jailoc/config.toml");
        std::fs::create_dir_all(cfg_file.parent().expect("dir")).expect("mkdir");
        std::fs::write(&cfg_file, &text).expect("config");
        let dirs = jailoc::config::HostDirs::from_home(&user.home);
        let cfg = jailoc::config::load_file(&cfg_file, &dirs).expect("loads");
        let name = cfg.workspaces.keys().next().expect("a workspace").clone();
        let mut ws = jailoc::config::resolve_workspace(&cfg, &name).expect("resolves");
        // The offline base image instead of the built-in one (which needs the network).
        ws.image.base = jailoc::config::merge::BaseImage::Ready(base.to_string());
        let mut ctx = context(&user, &bin);
        let engine = jailoc::engine::Engine {
            compose: vec!["docker".into(), "compose".into()],
            cli: docker::engine().cli().into(),
        };
        let image = jailoc::image::ensure(&mut ctx, &engine, &ws, &docker::sandbox_init_binary())
            .unwrap_or_else(|e| panic!("{file}: the overlay did not build: {e}"));
        cleanup.image(&image);
        let built = docker([
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            "cat",
            &image,
            "/go-overlay",
        ])
        .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(
            built.trim(),
            "go-overlay",
            "{file}: FROM ${{BASE}} was the base"
        );
    }
}

/// Moves the corpus's example paths into `project` (they only need to exist).
fn relocate_paths(text: &str, project: &Path) -> String {
    text.lines()
        .map(|l| {
            if l.trim_start().starts_with("paths") {
                format!("paths = [\"{}\"]", project.display())
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A context for the launcher's library: this user's HOME, `bin` (the fake curl) then the
/// system's PATH, real processes.
fn context(user: &User, bin: &Path) -> jailoc::context::Context {
    let mut env = std::collections::BTreeMap::new();
    env.insert("HOME".to_string(), user.home.to_string_lossy().into_owned());
    let path = std::env::var("PATH").unwrap_or_default();
    env.insert("PATH".into(), format!("{}:{path}", bin.display()));
    jailoc::context::Context {
        env,
        cwd: user.project.clone(),
        exe_dir: None,
        runner: Box::new(jailoc::process::SystemRunner),
        out: Box::new(std::io::stdout()),
        err: Box::new(std::io::stderr()),
        input: Box::new(std::io::BufReader::new(std::io::empty())),
        interactive: false,
        hidden_env: Vec::new(),
        writable: Vec::new(),
        host_addrs: || Ok(Vec::new()),
        proc_dir: "/proc".into(),
    }
}
