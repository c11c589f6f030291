//! Docker end-to-end helpers: engine gating, offline image builds, test networks and a guard
//! that removes everything a test created (containers, networks, images, compose projects), also
//! when the test panics.
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
use std::sync::{Mutex, MutexGuard};
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

/// `docker ARGS...`, trimmed stdout.
pub fn docker<I, S>(args: I) -> Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run("docker", args)
}

/// Whether a Docker engine answers (`docker version` reaches the server).
pub fn engine_answers() -> std::result::Result<(), String> {
    match run_output("docker", ["version", "--format", "{{.Server.Version}}"]) {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(String::from_utf8_lossy(&o.stderr).trim().to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

/// Skip/fail gating for Docker tests: `Some(lock)` when an engine answers (the lock serialises
/// the e2e tests of this process: they share fixed subnets and the machine has few cores);
/// `None` after printing why the test is skipped; panics instead of skipping under `CI=true`.
#[must_use]
pub fn require_engine(test: &str) -> Option<MutexGuard<'static, ()>> {
    if let Err(why) = engine_answers() {
        let msg = format!("{test}: no Docker engine answers ({why})");
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{msg}; CI=true requires the Docker end-to-end tier to run");
        }
        eprintln!("skipping {msg}");
        return None;
    }
    static LOCK: Mutex<()> = Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    remove_stale_resources();
    Some(guard)
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

/// Removes containers, networks and images labelled by an earlier e2e process that no longer
/// runs (a run killed before its guards could clean up).
pub fn remove_stale_resources() {
    let alive = |pid: &str| {
        pid.parse::<u32>()
            .is_ok_and(|p| p == std::process::id() || Path::new(&format!("/proc/{p}")).exists())
    };
    let list = |args: &[&str]| -> Vec<(String, String)> {
        docker(args)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (id, pid) = l.split_once(' ')?;
                Some((id.to_owned(), pid.to_owned()))
            })
            .collect()
    };
    let fmt = format!("{{{{.ID}}}} {{{{.Label \"{LABEL}\"}}}}");
    let filter = format!("label={LABEL}");
    for (id, pid) in list(&["ps", "-a", "--filter", &filter, "--format", &fmt]) {
        if !alive(&pid) {
            let _ = docker(["rm", "-f", "-v", &id]);
        }
    }
    for (id, pid) in list(&["network", "ls", "--filter", &filter, "--format", &fmt]) {
        if !alive(&pid) {
            let _ = docker(["network", "rm", &id]);
        }
    }
    if let Ok(out) = docker([
        "images",
        "--filter",
        &filter,
        "--format",
        "{{.Repository}}:{{.Tag}}",
    ]) {
        for image in out.lines() {
            let pid = docker([
                "image",
                "inspect",
                "-f",
                &format!("{{{{index .Config.Labels \"{LABEL}\"}}}}"),
                image,
            ])
            .unwrap_or_default();
            if !alive(&pid) {
                let _ = docker(["rmi", "-f", image]);
            }
        }
    }
}

/// Everything a test created, removed on drop (also on panic), newest first.
#[derive(Debug, Default)]
pub struct Cleanup {
    containers: Vec<String>,
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
                    let _ = docker(["rm", "-f", "-v", id]);
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
        for c in self.containers.iter().rev() {
            let _ = docker(["rm", "-f", "-v", c]);
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
    Ok(if dind { DIND_BASE_IMAGE } else { BASE_IMAGE })
}

/// `docker build` with the given Dockerfile and context into a fresh `<name>-…:test` tag (the
/// one returned), labelled for cleanup, tag registered with the guard. The legacy builder is used (docker 20.10 default); `--pull=false` because no
/// registry is reachable.
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

/// The vendored OpenCode npm tarball (`../shared/vendor/`), `JAILOC_OPENCODE_TGZ` overrides.
pub fn vendored_opencode_tgz() -> PathBuf {
    if let Some(p) = std::env::var_os("JAILOC_OPENCODE_TGZ") {
        return PathBuf::from(p);
    }
    repo_root().join("../shared/vendor/opencode-linux-x64-1.18.33.tgz")
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
    Ok(())
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
