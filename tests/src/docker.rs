//! Docker end-to-end helpers: engine gating, offline image builds, test networks and a guard
//! that removes everything a test created (containers, networks, images, compose projects), also
//! when the test panics.
//!
//! One place decides what the tier runs on: [`engine`] (Docker, or rootful Podman with
//! `JAILOC_E2E_ENGINE=podman`) and [`compose_under_test`] (`JAILOC_COMPOSE`, which jailoc itself
//! honours, else what jailoc's auto-detection tries first: `docker compose`). `scripts/test` runs
//! the tier once per setting. Under Podman, jailoc's Compose drives Podman through its Docker API
//! socket ([`jailoc_env`]) and the tests use the `podman` CLI.
//!
//! No registry is reachable on the test machines, so every image derives from the debootstrapped
//! base (`scripts/build-base-image`) or `FROM scratch`. Every network a test creates is
//! `internal: true` with its own subnet: nothing can leave the machine even if a rule were wrong.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// Label put on every container, network and image the e2e tests create, with the test
/// process id as value, so a later run can remove leftovers of a run that was killed.
pub const LABEL: &str = "org.jailoc.e2e";

/// The offline base image `scripts/build-base-image` builds.
pub const BASE_IMAGE: &str = "jailoc-test-base:bookworm";
/// The offline base plus Debian's docker.io (`scripts/build-base-image --dind`).
pub const DIND_BASE_IMAGE: &str = "jailoc-test-dind:bookworm";

/// Error of one docker operation; the message carries the command and its stderr.
#[derive(Debug)]
pub struct DockerError(pub String);

impl std::fmt::Display for DockerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DockerError {}

/// Result of a docker helper.
pub type Result<T> = std::result::Result<T, DockerError>;

/// Runs a command, returning its output whatever the exit status.
pub fn run_output<I, S>(program: &str, args: I) -> Result<Output>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    Command::new(program)
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| DockerError(format!("failed to run {program} {args:?}: {e}")))
}

/// Runs a command and returns its trimmed stdout; a non-zero exit is an error with stderr.
pub fn run<I, S>(program: &str, args: I) -> Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let out = run_output(program, &args)?;
    if !out.status.success() {
        return Err(DockerError(format!(
            "failed to run {program} {}: {}: {}",
            args.iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The container engine the tier drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Docker (the default).
    Docker,
    /// Rootful Podman with netavark (`JAILOC_E2E_ENGINE=podman`).
    Podman,
}

impl Engine {
    /// The engine's CLI.
    pub fn cli(self) -> &'static str {
        match self {
            Engine::Docker => "docker",
            Engine::Podman => "podman",
        }
    }
}

/// The engine of this test process: `JAILOC_E2E_ENGINE` = `docker` (default) or `podman`.
pub fn engine() -> Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    *ENGINE.get_or_init(|| {
        match std::env::var("JAILOC_E2E_ENGINE")
            .unwrap_or_default()
            .as_str()
        {
            "" | "docker" => Engine::Docker,
            "podman" => Engine::Podman,
            other => panic!("JAILOC_E2E_ENGINE={other:?}: use \"docker\" or \"podman\""),
        }
    })
}

/// `docker ARGS...` (`podman ARGS...` under Podman: the engine's own CLI), trimmed stdout.
pub fn docker<I, S>(args: I) -> Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run(engine().cli(), args)
}

/// Removes a container and its anonymous volumes at once (`rm -f -v`): Docker kills it,
/// Podman first stops it with its stop timeout unless told `-t 0` (the tests' services ignore
/// SIGTERM as PID 1, so every removal would wait 10 s).
pub fn remove_container(id: &str) -> Result<String> {
    match engine() {
        Engine::Docker => docker(["rm", "-f", "-v", id]),
        Engine::Podman => docker(["rm", "-f", "-v", "-t", "0", id]),
    }
}

/// Whether the engine answers (`docker version` reaches the server; `podman info` works).
pub fn engine_answers() -> std::result::Result<(), String> {
    let out = match engine() {
        Engine::Docker => run_output("docker", ["version", "--format", "{{.Server.Version}}"]),
        Engine::Podman => run_output("podman", ["info", "--format", "{{.Host.NetworkBackend}}"]),
    };
    match out {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(String::from_utf8_lossy(&o.stderr).trim().to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

/// Skip/fail gating for e2e tests: `Some(lock)` when the engine answers (the lock serialises
/// the e2e tests of this process: they share fixed subnets and the machine has few cores);
/// `None` after printing why the test is skipped; panics instead of skipping under `CI=true`.
/// Under Podman it also starts the API socket jailoc's Compose talks to.
#[must_use]
pub fn require_engine(test: &str) -> Option<MutexGuard<'static, ()>> {
    if let Err(why) = engine_answers() {
        let msg = format!("{test}: no {:?} engine answers ({why})", engine());
        if crate::in_ci() {
            panic!("{msg}; CI=true requires the end-to-end tier to run");
        }
        eprintln!("skipping {msg}");
        return None;
    }
    static LOCK: Mutex<()> = Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    host_lock();
    remove_stale_resources();
    if engine() == Engine::Podman {
        if let Err(e) = podman_socket() {
            panic!("{test}: {e}");
        }
    }
    Some(guard)
}

/// Serialises e2e test processes on this machine (two `cargo test` runs, or the tier's passes
/// started side by side): they create networks with the same fixed subnets, which the engine
/// refuses to overlap. Taken once, held until the process exits (the kernel releases it).
fn host_lock() {
    static HOST_LOCK: OnceLock<std::fs::File> = OnceLock::new();
    HOST_LOCK.get_or_init(|| {
        let path = std::env::temp_dir().join("jailoc-e2e.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("failed to open {}: {e}", path.display()));
        if file.try_lock().is_err() {
            eprintln!(
                "waiting for another end-to-end test process to finish ({})",
                path.display()
            );
            file.lock()
                .unwrap_or_else(|e| panic!("failed to lock {}: {e}", path.display()));
        }
        file
    });
}

/// [`require_engine`] for a test that runs on Docker only (Docker-in-Docker): `None`, with the
/// reason printed, under Podman (`scripts/test` does not select these tests there).
#[must_use]
pub fn require_docker(test: &str, why: &str) -> Option<MutexGuard<'static, ()>> {
    if engine() == Engine::Podman {
        eprintln!("skipping {test} under Podman: {why}");
        return None;
    }
    require_engine(test)
}

/// The compose implementation jailoc is expected to drive in this process, and its version
/// (`VERSION --short`), which Compose writes into every container's
/// `com.docker.compose.version` label: the tests check it, so a run cannot silently use
/// another implementation than the one it claims to test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposeUnderTest {
    /// The command line: `JAILOC_COMPOSE`, else `docker compose`.
    pub command: String,
    /// Its version; `None` when it does not answer outside CI (then nothing is checked).
    pub version: Option<String>,
}

/// `JAILOC_COMPOSE` if set (jailoc uses it as given), else `docker compose`, which jailoc's
/// auto-detection tries first, as on a user's machine. Under `CI=true` it must answer.
pub fn compose_under_test() -> &'static ComposeUnderTest {
    static COMPOSE: OnceLock<ComposeUnderTest> = OnceLock::new();
    COMPOSE.get_or_init(|| {
        let command = std::env::var("JAILOC_COMPOSE")
            .ok()
            .filter(|c| !c.trim().is_empty())
            .unwrap_or_else(|| "docker compose".into());
        let words: Vec<&str> = command.split_whitespace().collect();
        let out = run_output(words[0], words[1..].iter().chain(&["version", "--short"]));
        let version = match out {
            Ok(o) if o.status.success() => Some(
                String::from_utf8_lossy(&o.stdout)
                    .trim()
                    .trim_start_matches('v')
                    .to_owned(),
            ),
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_owned(),
                    Err(e) => e.to_string(),
                };
                let msg =
                    format!("the tier is to run under `{command}`, which does not answer ({why})");
                assert!(
                    !crate::in_ci(),
                    "{msg}; scripts/lib/system-deps.sh installs Compose v5 as the `docker compose` \
                     plugin and docker-compose 1.29"
                );
                eprintln!("note: {msg}; not checking which implementation jailoc picks");
                None
            }
        };
        ComposeUnderTest { command, version }
    })
}

/// Environment for the `jailoc` processes a test runs: under Podman, Compose and the Docker CLI
/// talk to Podman's API socket (`DOCKER_HOST`) and jailoc's own queries and builds use the
/// `podman` CLI (`JAILOC_DOCKER`); under Docker nothing.
pub fn jailoc_env() -> Vec<(String, String)> {
    match engine() {
        Engine::Docker => Vec::new(),
        Engine::Podman => vec![
            (
                "DOCKER_HOST".into(),
                format!(
                    "unix://{}",
                    podman_socket().unwrap_or_else(|e| panic!("{e}")).display()
                ),
            ),
            ("JAILOC_DOCKER".into(), "podman".into()),
        ],
    }
}

/// The socket of this test process's own `podman system service`: Podman's Docker-compatible
/// API, which Compose drives as it drives Docker's. Started once, in a thread that lives as long
/// as the process, with `PR_SET_PDEATHSIG`, so the service ends with the test process.
fn podman_socket() -> std::result::Result<&'static Path, String> {
    static SOCKET: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    SOCKET
        .get_or_init(start_podman_service)
        .as_deref()
        .map_err(Clone::clone)
}

fn start_podman_service() -> std::result::Result<PathBuf, String> {
    use std::os::unix::process::CommandExt;
    let socket =
        std::env::temp_dir().join(format!("jailoc-e2e-podman-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&socket);
    let url = format!("unix://{}", socket.display());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut cmd = Command::new("podman");
        cmd.args(["system", "service", "--time=0", &url])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: prctl(2) is async-signal-safe and touches only the calling (child) process.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let _ = tx.send(cmd.spawn().map(|c| c.id()));
        // The death signal fires when this thread ends: keep it for the life of the process.
        loop {
            std::thread::park();
        }
    });
    rx.recv()
        .map_err(|e| format!("failed to start podman system service: {e}"))?
        .map_err(|e| format!("failed to start podman system service: {e}"))?;
    wait_for(Duration::from_secs(20), || {
        std::os::unix::net::UnixStream::connect(&socket).ok()
    })
    .ok_or_else(|| format!("failed to reach podman's API at {}", socket.display()))?;
    Ok(socket)
}

/// Runs the container's health check once when the engine does not run it by itself: Podman
/// runs checks from systemd timers, and without systemd (this test machine) never does.
pub fn run_health_check(container: &str) {
    if engine() == Engine::Podman {
        let _ = docker(["healthcheck", "run", container]);
    }
}

/// The repository root (the parent of the `tests` package).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The Cargo profile directory the running test executable was built into
/// (`target/<triple>/<profile>`, the parent of `deps/`).
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("test exe has a parent");
    if deps.file_name() == Some(OsStr::new("deps")) {
        deps.parent().expect("deps has a parent").to_path_buf()
    } else {
        deps.to_path_buf()
    }
}

/// A directory for the throwaway projects and homes the `jailoc` tests create, where jailoc
/// accepts workspace paths: the target dir, else `/srv/jailoc-tests` when the target dir lies
/// where jailoc refuses them (a checkout under /tmp), so the tier passes wherever the checkout
/// lives. The lists are jailoc's own.
pub fn workspace_scratch_dir() -> PathBuf {
    let target = profile_dir()
        .parent()
        .expect("the profile dir has a parent")
        .to_path_buf();
    let mut refused = Vec::new();
    for base in [target, PathBuf::from("/srv/jailoc-tests")] {
        use jailoc::config::paths::{CONTAINER_DIRS, HOST_SYSTEM_DENY};
        if let Some(dir) = CONTAINER_DIRS
            .iter()
            .chain(HOST_SYSTEM_DENY)
            .find(|d| base.starts_with(d))
        {
            refused.push(format!("{} is inside {dir}", base.display()));
            continue;
        }
        match std::fs::create_dir_all(&base) {
            Ok(()) => return base,
            Err(e) => refused.push(format!("{}: {e}", base.display())),
        }
    }
    panic!(
        "no directory for test workspaces ({}): set CARGO_TARGET_DIR outside /tmp",
        refused.join("; ")
    );
}

/// Finds a workspace binary: `$env_var` if set, else in the release or the tests' own profile
/// directory, `prefer_release` deciding which is tried first.
pub fn find_binary(name: &str, env_var: &str, prefer_release: bool) -> PathBuf {
    if let Some(p) = std::env::var_os(env_var) {
        return PathBuf::from(p);
    }
    let own = profile_dir().join(name);
    let release = profile_dir()
        .parent()
        .map(|t| t.join("release").join(name))
        .unwrap_or_else(|| own.clone());
    let order = if prefer_release {
        [release, own]
    } else {
        [own, release]
    };
    order
        .iter()
        .find(|p| p.is_file())
        .unwrap_or(&order[0])
        .clone()
}

/// The probe binary (built with the tests: it is a bin of this package).
pub fn probe_binary() -> PathBuf {
    std::env::var_os("JAILOC_PROBE")
        .map(PathBuf::from)
        .unwrap_or_else(|| profile_dir().join("probe"))
}

/// The sandbox-init binary the e2e tests put into images (`JAILOC_SANDBOX_INIT` overrides):
/// the static, size-optimised release build users ship (`cargo build --release -p
/// sandbox-init`), else the tests' profile.
pub fn sandbox_init_binary() -> PathBuf {
    find_binary("sandbox-init", "JAILOC_SANDBOX_INIT", true)
}

/// The jailoc CLI binary (`JAILOC_BIN` overrides): the tests' own profile first (`cargo build
/// --workspace --bins` builds it), so a stale release build is not picked up.
pub fn jailoc_binary() -> PathBuf {
    find_binary("jailoc", "JAILOC_BIN", false)
}

/// A fresh token unique to this process and call, usable in docker names (`[a-z0-9-]`).
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Whether `pid` (a label value) is this process or one still running.
fn pid_alive(pid: &str) -> bool {
    pid.parse::<u32>()
        .is_ok_and(|p| p == std::process::id() || Path::new(&format!("/proc/{p}")).exists())
}

/// Removes containers, networks, images and firewall rules labelled by an earlier e2e process
/// that no longer runs (a run killed before its guards could clean up).
pub fn remove_stale_resources() {
    let filter = format!("label={LABEL}");
    let label_of = |verb: &[&str], id: &str, labels: &str| {
        let mut args = verb.to_vec();
        let format = format!("{{{{index {labels} \"{LABEL}\"}}}}");
        args.extend(["-f", &format, id]);
        docker(args).unwrap_or_default()
    };
    let ids = |args: &[&str]| -> Vec<String> {
        docker(args)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    };
    for id in ids(&["ps", "-aq", "--filter", &filter]) {
        if !pid_alive(&label_of(&["inspect"], &id, ".Config.Labels")) {
            let _ = remove_container(&id);
        }
    }
    for id in ids(&["network", "ls", "-q", "--filter", &filter]) {
        if !pid_alive(&label_of(&["network", "inspect"], &id, ".Labels")) {
            let _ = docker(["network", "rm", &id]);
        }
    }
    let images = &[
        "images",
        "--filter",
        &filter,
        "--format",
        "{{.Repository}}:{{.Tag}}",
    ];
    for image in ids(images) {
        if !pid_alive(&label_of(&["image", "inspect"], &image, ".Config.Labels")) {
            let _ = docker(["rmi", "-f", &image]);
        }
    }
    for rule in forward_rules() {
        if !pid_alive(&rule.pid) {
            let _ = delete_forward_rule(&rule.spec);
        }
    }
}

/// An `iptables` FORWARD rule a test added ([`Cleanup::accept_within_bridge`]).
struct ForwardRule {
    /// The rule as `iptables -S` prints it, without `-A FORWARD`.
    spec: Vec<String>,
    /// The pid in its `org.jailoc.e2e=<pid>` comment.
    pid: String,
}

/// The FORWARD rules e2e tests added (identified by their comment).
fn forward_rules() -> Vec<ForwardRule> {
    let Ok(out) = run("iptables", ["-S", "FORWARD"]) else {
        return Vec::new();
    };
    out.lines()
        .filter_map(|l| {
            let spec = l.strip_prefix("-A FORWARD ")?;
            let words: Vec<String> = spec.split_whitespace().map(str::to_owned).collect();
            let pid = words
                .iter()
                .find_map(|w| w.strip_prefix(&format!("{LABEL}=")))?
                .to_owned();
            Some(ForwardRule { spec: words, pid })
        })
        .collect()
}

fn delete_forward_rule(spec: &[String]) -> Result<String> {
    let mut args = vec!["-D".to_string(), "FORWARD".to_string()];
    args.extend(spec.iter().cloned());
    run("iptables", args)
}

/// Everything a test created, removed on drop (also on panic), newest first.
#[derive(Debug, Default)]
pub struct Cleanup {
    containers: Vec<String>,
    forward_rules: Vec<Vec<String>>,
    networks: Vec<String>,
    images: Vec<String>,
    compose_projects: Vec<String>,
    dirs: Vec<PathBuf>,
}

impl Cleanup {
    /// An empty guard.
    pub fn new() -> Self {
        Self::default()
    }

    /// Removes this container (and its anonymous volumes) on drop.
    pub fn container(&mut self, name: &str) {
        self.containers.push(name.to_owned());
    }

    /// Removes this network on drop (after the containers).
    pub fn network(&mut self, name: &str) {
        self.networks.push(name.to_owned());
    }

    /// Under Podman: accepts forwarded traffic within `network`'s bridge (IPv4), removed on
    /// drop. Docker sets the host's IPv4 FORWARD policy to DROP and, with `br_netfilter`, bridged
    /// traffic passes through it; Docker accepts traffic within each of its own bridges, netavark
    /// only for networks with outside access, so on a host that also runs Docker containers on
    /// one internal Podman network cannot reach each other. The rule matches in and out on that
    /// one bridge: nothing leaves it. A fact of this test machine, not something jailoc needs.
    pub fn accept_within_bridge(&mut self, network: &str) -> Result<()> {
        if engine() != Engine::Podman {
            return Ok(());
        }
        let bridge = docker(["network", "inspect", "-f", "{{.NetworkInterface}}", network])?;
        let comment = format!("{LABEL}={}", std::process::id());
        let spec: Vec<String> = [
            "-i",
            &bridge,
            "-o",
            &bridge,
            "-m",
            "comment",
            "--comment",
            &comment,
            "-j",
            "ACCEPT",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut args = vec!["-I".to_string(), "FORWARD".to_string()];
        args.extend(spec.iter().cloned());
        run("iptables", &args)?;
        self.forward_rules.push(spec);
        Ok(())
    }

    /// Removes this image tag on drop (after containers and networks).
    pub fn image(&mut self, tag: &str) {
        self.images.push(tag.to_owned());
    }

    /// Removes every container and network of this compose project on drop.
    pub fn compose_project(&mut self, project: &str) {
        self.compose_projects.push(project.to_owned());
    }

    /// Deletes this directory tree on drop.
    pub fn dir(&mut self, dir: &Path) {
        self.dirs.push(dir.to_owned());
    }

    /// A fresh directory `<temp>/<prefix>-…`, deleted on drop.
    pub fn temp_dir(&mut self, prefix: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(unique(prefix));
        std::fs::create_dir_all(&dir).expect("temp dir");
        self.dir(&dir);
        dir
    }

    /// `docker VERB... --name NAME --label LABEL=<pid> --network NETWORK`: the start of a
    /// command line creating container `name`, which is removed on drop.
    pub fn container_args(&mut self, verb: &[&str], name: &str, network: &str) -> Vec<String> {
        self.container(name);
        let mut args: Vec<String> = verb.iter().map(|s| s.to_string()).collect();
        args.extend([
            "--name".into(),
            name.into(),
            "--label".into(),
            format!("{LABEL}={}", std::process::id()),
            "--network".into(),
            network.into(),
        ]);
        args
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        // The test's own containers first: one attached to a compose project's network (a
        // listener on a workspace's link) would keep that network from being removed.
        for c in self.containers.iter().rev() {
            let _ = remove_container(c);
        }
        for project in self.compose_projects.iter().rev() {
            let filter = format!("label=com.docker.compose.project={project}");
            if let Ok(ids) = docker(["ps", "-aq", "--filter", &filter]) {
                for id in ids.lines() {
                    // Compose's anonymous volumes survive `rm -v`: remove them by name.
                    let volumes = docker([
                        "inspect",
                        "-f",
                        "{{range .Mounts}}{{if eq .Type \"volume\"}}{{.Name}} {{end}}{{end}}",
                        id,
                    ])
                    .unwrap_or_default();
                    let _ = remove_container(id);
                    for v in volumes.split_whitespace() {
                        let _ = docker(["volume", "rm", "-f", v]);
                    }
                }
            }
            if let Ok(ids) = docker(["network", "ls", "-q", "--filter", &filter]) {
                for id in ids.lines() {
                    let _ = docker(["network", "rm", id]);
                }
            }
            if let Ok(ids) = docker(["volume", "ls", "-q", "--filter", &filter]) {
                for id in ids.lines() {
                    let _ = docker(["volume", "rm", "-f", id]);
                }
            }
        }
        for rule in self.forward_rules.iter().rev() {
            let _ = delete_forward_rule(rule);
        }
        for n in self.networks.iter().rev() {
            let _ = docker(["network", "rm", n]);
        }
        for i in self.images.iter().rev() {
            let _ = docker(["rmi", "-f", i]);
        }
        for d in &self.dirs {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// Builds (or reuses) the offline base image with `scripts/build-base-image [--dind]`.
pub fn ensure_base_image(dind: bool) -> Result<&'static str> {
    let script = repo_root().join("scripts/build-base-image");
    let mut cmd = Command::new(&script);
    if dind {
        cmd.arg("--dind");
    }
    let status = cmd
        .stdin(Stdio::null())
        .status()
        .map_err(|e| DockerError(format!("failed to run {}: {e}", script.display())))?;
    if !status.success() {
        return Err(DockerError(format!(
            "failed to build the offline base image: {} exited with {status}",
            script.display()
        )));
    }
    let image = if dind { DIND_BASE_IMAGE } else { BASE_IMAGE };
    if engine() == Engine::Podman {
        copy_to_podman(image)?;
    }
    Ok(image)
}

/// Copies a Docker image into Podman's storage (`docker save | podman load`) unless Podman has
/// it already: the offline base is built with Docker, and no registry connects the two.
fn copy_to_podman(image: &str) -> Result<()> {
    if run_output("podman", ["image", "exists", image]).is_ok_and(|o| o.status.success()) {
        return Ok(());
    }
    let mut save = Command::new("docker")
        .args(["save", image])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| DockerError(format!("failed to run docker save {image}: {e}")))?;
    let stdout = save.stdout.take().expect("piped stdout");
    let load = Command::new("podman")
        .args(["load", "--quiet"])
        .stdin(stdout)
        .output()
        .map_err(|e| DockerError(format!("failed to run podman load: {e}")))?;
    let saved = save
        .wait()
        .map_err(|e| DockerError(format!("failed to wait for docker save: {e}")))?;
    if !saved.success() || !load.status.success() {
        return Err(DockerError(format!(
            "failed to copy {image} into Podman (docker save: {saved}; podman load: {}): {}",
            load.status,
            String::from_utf8_lossy(&load.stderr).trim()
        )));
    }
    Ok(())
}

/// `docker build` (or `podman build`) with the given Dockerfile and context into a fresh
/// `<name>-…:test` tag (the one returned), labelled for cleanup, tag registered with the guard.
/// Every `FROM` names a local image (the offline base, an earlier test image, `scratch`), which
/// both builders use without asking a registry.
pub fn build_image(
    cleanup: &mut Cleanup,
    name: &str,
    dockerfile: &Path,
    context: &Path,
    build_args: &[(&str, &str)],
) -> Result<String> {
    let tag = format!("{}:test", unique(name));
    let mut args: Vec<String> = vec![
        "build".into(),
        "--quiet".into(),
        "--label".into(),
        format!("{LABEL}={}", std::process::id()),
        "-t".into(),
        tag.clone(),
        "-f".into(),
        dockerfile.display().to_string(),
    ];
    for (k, v) in build_args {
        args.push("--build-arg".into());
        args.push(format!("{k}={v}"));
    }
    args.push(context.display().to_string());
    cleanup.image(&tag);
    docker(&args).map(|_| tag)
}

/// A temporary build context: a copy of `tests/images/<name>/` plus extra files.
pub fn image_context(cleanup: &mut Cleanup, name: &str, extra: &[(&str, &Path)]) -> PathBuf {
    let dir = std::env::temp_dir().join(unique(&format!("jailoc-e2e-ctx-{name}")));
    std::fs::create_dir_all(&dir).expect("create build context");
    cleanup.dir(&dir);
    let src = repo_root().join("tests/images").join(name);
    if src.is_dir() {
        for entry in std::fs::read_dir(&src).expect("read tests/images dir") {
            let entry = entry.expect("dir entry");
            std::fs::copy(entry.path(), dir.join(entry.file_name())).expect("copy image file");
        }
    }
    for (file, from) in extra {
        std::fs::copy(from, dir.join(file))
            .unwrap_or_else(|e| panic!("failed to copy {} into context: {e}", from.display()));
    }
    dir
}

/// Builds the `FROM scratch` image holding only sandbox-init (`dockerfiles/sandbox-init.Dockerfile`).
pub fn build_sandbox_init_image(cleanup: &mut Cleanup) -> Result<String> {
    let bin = sandbox_init_binary();
    if !bin.is_file() {
        return Err(DockerError(format!(
            "failed to find sandbox-init at {}: build it first (cargo build --release -p sandbox-init) \
             or set JAILOC_SANDBOX_INIT",
            bin.display()
        )));
    }
    let ctx = image_context(cleanup, "sandbox-init", &[("sandbox-init", &bin)]);
    build_image(
        cleanup,
        "jailoc-e2e-sandbox-init",
        &repo_root().join("dockerfiles/sandbox-init.Dockerfile"),
        &ctx,
        &[],
    )
}

/// Builds the offline base + probe as stand-in `opencode` (`tests/images/probe`).
pub fn build_probe_image(cleanup: &mut Cleanup) -> Result<String> {
    build_probe_image_on(cleanup, false)
}

/// [`build_probe_image`] on the plain base, or on the Docker-in-Docker base (which adds the
/// `docker` CLI and daemon) when `dind`.
pub fn build_probe_image_on(cleanup: &mut Cleanup, dind: bool) -> Result<String> {
    let base = ensure_base_image(dind)?;
    let ctx = image_context(cleanup, "probe", &[("probe", &probe_binary())]);
    build_image(
        cleanup,
        "jailoc-e2e-probe",
        &ctx.join("Dockerfile"),
        &ctx,
        &[("BASE", base)],
    )
}

/// The vendored OpenCode npm tarball's file name.
pub const OPENCODE_TGZ: &str = "opencode-linux-x64-1.18.33.tgz";

/// Where the test machines keep vendored third-party artefacts (read-only, never committed).
pub const MACHINE_VENDOR_DIR: &str = "/work/shared/vendor";

/// The vendored OpenCode npm tarball: `JAILOC_OPENCODE_TGZ`, else `shared/vendor/` beside the
/// checkout or beside any of its parents (a worktree), else [`MACHINE_VENDOR_DIR`], so a clone
/// anywhere (also under /tmp) finds it. The first candidate when none exists, for the message.
pub fn vendored_opencode_tgz() -> PathBuf {
    if let Some(p) = std::env::var_os("JAILOC_OPENCODE_TGZ") {
        return PathBuf::from(p);
    }
    let root = repo_root();
    let candidates: Vec<PathBuf> = root
        .ancestors()
        .skip(1)
        .map(|dir| dir.join("shared/vendor").join(OPENCODE_TGZ))
        .chain([Path::new(MACHINE_VENDOR_DIR).join(OPENCODE_TGZ)])
        .collect();
    candidates
        .iter()
        .find(|p| p.is_file())
        .unwrap_or(&candidates[0])
        .clone()
}

/// Builds the offline base + the real OpenCode binary from the vendored tarball
/// (`tests/images/opencode`).
pub fn build_opencode_image(cleanup: &mut Cleanup) -> Result<String> {
    let base = ensure_base_image(false)?;
    let ctx = image_context(cleanup, "opencode", &[]);
    let tgz = vendored_opencode_tgz();
    run(
        "tar",
        [
            OsStr::new("-xzf"),
            tgz.as_os_str(),
            OsStr::new("-C"),
            ctx.as_os_str(),
            OsStr::new("package/bin/opencode"),
        ],
    )?;
    std::fs::rename(ctx.join("package/bin/opencode"), ctx.join("opencode"))
        .map_err(|e| DockerError(format!("failed to move the opencode binary: {e}")))?;
    let _ = std::fs::remove_dir_all(ctx.join("package"));
    build_image(
        cleanup,
        "jailoc-e2e-opencode",
        &ctx.join("Dockerfile"),
        &ctx,
        &[("BASE", base)],
    )
}

/// Builds `tests/images/baked`: `app` with sandbox-init copied from `sandbox_init_image` and set
/// as ENTRYPOINT (what another agent's image does to adopt sandbox-init).
pub fn build_baked_image(
    cleanup: &mut Cleanup,
    sandbox_init_image: &str,
    app: &str,
) -> Result<String> {
    let ctx = image_context(cleanup, "baked", &[]);
    build_image(
        cleanup,
        "jailoc-e2e-baked",
        &ctx.join("Dockerfile"),
        &ctx,
        &[
            ("SANDBOX_INIT_IMAGE", sandbox_init_image),
            ("APP_IMAGE", app),
        ],
    )
}

/// Creates an `internal` bridge network with the given IPv4 subnet.
pub fn create_network(cleanup: &mut Cleanup, name: &str, subnet: &str) -> Result<()> {
    create_network_dual(cleanup, name, subnet, None)
}

/// Creates an `internal` bridge network with an IPv4 subnet and, if given, an IPv6 one.
pub fn create_network_dual(
    cleanup: &mut Cleanup,
    name: &str,
    subnet: &str,
    subnet6: Option<&str>,
) -> Result<()> {
    let label = format!("{LABEL}={}", std::process::id());
    let mut args = vec![
        "network",
        "create",
        "--internal",
        "--driver",
        "bridge",
        "--subnet",
        subnet,
        "--label",
        &label,
    ];
    if let Some(s6) = subnet6 {
        args.extend(["--ipv6", "--subnet", s6]);
    }
    args.push(name);
    docker(args)?;
    cleanup.network(name);
    cleanup.accept_within_bridge(name)
}

/// The IPv4 address of `container` on `network`.
pub fn container_ip(container: &str, network: &str) -> Result<Ipv4Addr> {
    let ip = docker([
        "inspect",
        "-f",
        &format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}"),
        container,
    ])?;
    ip.parse()
        .map_err(|e| DockerError(format!("failed to parse ip {ip:?} of {container}: {e}")))
}

/// The gateway (the host's address) of `network` as `container` sees it.
pub fn container_gateway(container: &str, network: &str) -> Result<Ipv4Addr> {
    let gw = docker([
        "inspect",
        "-f",
        &format!("{{{{(index .NetworkSettings.Networks \"{network}\").Gateway}}}}"),
        container,
    ])?;
    gw.parse().map_err(|e| {
        DockerError(format!(
            "failed to parse gateway {gw:?} of {network} seen by {container}: {e}"
        ))
    })
}

/// `docker inspect -f FORMAT container`.
pub fn inspect(container: &str, format: &str) -> Result<String> {
    docker(["inspect", "-f", format, container])
}

/// Polls `f` every 100 ms until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One plain HTTP/1.0 GET; returns (status code, body). Only ever sent to a container address
/// on a network the test created.
pub fn http_get(
    addr: SocketAddr,
    path: &str,
    basic_auth: Option<(&str, &str)>,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut req = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some((user, pass)) = basic_auth {
        req.push_str(&format!(
            "Authorization: Basic {}\r\n",
            base64(format!("{user}:{pass}").as_bytes())
        ));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad HTTP response: {head:?}")))?;
    Ok((code, body.to_owned()))
}

/// Standard base64 (RFC 4648, padded), for Basic auth.
pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Percent-encodes a query value.
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One instruction of a Dockerfile: keyword (upper case), its arguments (continuations joined)
/// and the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// `FROM`, `RUN`, `COPY`...
    pub keyword: String,
    /// Everything after the keyword, continuation lines joined with a space.
    pub args: String,
    /// 1-based line number of the keyword.
    pub line: usize,
}

/// Splits a Dockerfile into instructions: comments and blank lines dropped, `\` continuations
/// joined (comment lines inside a continuation are skipped, as Docker does).
pub fn parse_dockerfile(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_none()) {
            continue;
        }
        let (body, continues) = match trimmed.strip_suffix('\\') {
            Some(b) => (b.trim_end(), true),
            None => (trimmed, false),
        };
        let (line, mut acc) = current.take().unwrap_or((i + 1, String::new()));
        if !acc.is_empty() && !body.is_empty() {
            acc.push(' ');
        }
        acc.push_str(body);
        if continues {
            current = Some((line, acc));
        } else if !acc.is_empty() {
            let (kw, args) = acc.split_once(char::is_whitespace).unwrap_or((&acc, ""));
            out.push(Instruction {
                keyword: kw.to_ascii_uppercase(),
                args: args.trim().to_owned(),
                line,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_dockerfile_joins_continuations_and_skips_comments() {
        let text =
            "# c\nARG X=1\nFROM a AS b\nRUN one \\\n  # inner\n  && two\n\nentrypoint [\"/x\"]\n";
        let ins = parse_dockerfile(text);
        let got: Vec<_> = ins
            .iter()
            .map(|i| (i.keyword.as_str(), i.args.as_str(), i.line))
            .collect();
        assert_eq!(
            got,
            vec![
                ("ARG", "X=1", 2),
                ("FROM", "a AS b", 3),
                ("RUN", "one && two", 4),
                ("ENTRYPOINT", "[\"/x\"]", 8),
            ]
        );
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("opencode:pw", "b3BlbmNvZGU6cHc="),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn url_encode_escapes_spaces_and_colons() {
        assert_eq!(url_encode("tcp 10.0.0.1:80"), "tcp%2010.0.0.1%3A80");
    }
}
