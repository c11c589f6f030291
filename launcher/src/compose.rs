//! Renders a workspace's Docker Compose file: a pure function from the resolved workspace to a
//! deterministic YAML string. The Compose Specification with no `version:` key (Compose v2+
//! warns that the key is obsolete; docker-compose 1.27+ reads a file without it as the
//! specification) and long-form volumes, which both accept with `cap_add`, `pids_limit`,
//! `mem_limit`, `memswap_limit`, `cpus` and `healthcheck` (+`start_period`); the project name
//! is passed with `-p`, never as a top-level `name:` (1.29 rejects it).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::config::merge::Mount;
use crate::config::schema::SecretEntry;
use crate::config::Workspace;
use crate::policy::AGENT_HOME;

/// Where the companion binary is mounted (and run from) inside the container.
pub const SANDBOX_INIT_TARGET: &str = "/usr/local/bin/sandbox-init";
/// Where secrets are mounted (`/run/secrets/NAME`), as sandbox-init expects.
pub const SECRETS_TARGET: &str = jailoc_policy::SECRETS_DIR;
/// Where the workspace's own OpenCode data directory is mounted (OpenCode's data dir).
pub const DATA_TARGET: &str = "/home/agent/.local/share/opencode";
/// Where the policy directory is mounted.
pub const POLICY_TARGET: &str = jailoc_policy::CONFIG_DIR;
/// The port OpenCode listens on inside the container.
pub const CONTAINER_PORT: u16 = 4096;
/// The agent's service name.
pub const SERVICE: &str = "opencode";
/// The Docker-in-Docker sidecar's service name.
pub const DIND_SERVICE: &str = "docker";
/// The named volume shared by the agent and the sidecar that holds the daemon's socket.
pub const DIND_VOLUME: &str = "jailoc-docker";
/// The named volume that holds the sidecar daemon's `/var/lib/docker` (its images and
/// containers). Named, not anonymous: `jailoc down` keeps volumes, and an anonymous one would be
/// left behind where no `down --volumes` could find it.
pub const DIND_DATA_VOLUME: &str = "jailoc-docker-data";
/// Where [`DIND_VOLUME`] is mounted in both services.
pub const DIND_SOCKET_DIR: &str = "/run/jailoc-docker";
/// Where the agent finds its private Docker daemon: a unix socket on [`DIND_VOLUME`], owned by
/// the agent's group (the sidecar has no network, so there is no TCP to listen on).
pub const DIND_HOST: &str = "unix:///run/jailoc-docker/docker.sock";
/// The group that may use the daemon's socket: the agent's (sandbox-init's default gid).
pub const DIND_SOCKET_GID: u32 = 1000;
/// Default sidecar image (override with `JAILOC_DIND_IMAGE`).
pub const DEFAULT_DIND_IMAGE: &str = "docker:27-dind";
/// Process limit for each container.
pub const PIDS_LIMIT: u32 = 4096;
/// Exactly what sandbox-init needs before it drops everything (docs/init.md, "Capabilities a
/// container must grant").
pub const CAPABILITIES: &[&str] = &[
    "NET_ADMIN",
    "SETPCAP",
    "SETUID",
    "SETGID",
    "CHOWN",
    "FOWNER",
    "DAC_OVERRIDE",
    "KILL",
];

/// The health check, in Docker's exec (`CMD`) form: one program by absolute path, the
/// bind-mounted sandbox-init, which drops to the agent (no capabilities) before it connects to
/// OpenCode's `/global/health`. The engine runs it as root with the container's capabilities
/// every few seconds, so it must not be a shell that resolves programs through a `PATH` the
/// agent can write (a planted `head` in `~/.local/bin` once ran as root with NET_ADMIN).
pub const HEALTHCHECK: &[&str] = &[
    "CMD",
    SANDBOX_INIT_TARGET,
    "--config-dir",
    POLICY_TARGET,
    "--health",
    "--port",
    "4096",
];

/// How every command jailoc runs in a running container starts (`compose exec --user 0:0`
/// then this, then the command): sandbox-init drops to the agent exactly as at boot (no
/// capabilities in any set, bounding included, `no_new_privs`) before it runs the command. A
/// plain `exec --user 1000` keeps the container's bounding set and skips the rest.
pub const ENTER: &[&str] = &[
    SANDBOX_INIT_TARGET,
    "--config-dir",
    POLICY_TARGET,
    "--enter",
    "--",
];

/// Everything the renderer needs besides the workspace; host-dependent facts (which optional
/// files exist, where things live) are decided by the caller so rendering stays pure.
#[derive(Debug, Clone)]
pub struct ComposeInput<'a> {
    pub ws: &'a Workspace,
    /// The image reference to run (already resolved/built).
    pub image: &'a str,
    pub sandbox_init: &'a Path,
    pub policy_dir: &'a Path,
    /// Env file holding `OPENCODE_SERVER_PASSWORD=...` (0600).
    pub password_file: &'a Path,
    /// Where every secret's value is copied (one file per secret name) at `up`.
    pub secrets_dir: &'a Path,
    /// The workspace's own OpenCode data directory (`$XDG_DATA_HOME/jailoc/NAME/opencode`),
    /// mounted read-write at [`DATA_TARGET`]; no host program reads it.
    pub data_dir: &'a Path,
    /// The built-in convenience mounts that exist on this host (see [`builtin_mounts`]); the
    /// user's `mounts` may replace or remove each by container path.
    pub builtin: &'a [Mount],
    /// jailoc's OpenCode TUI plugin directory ([`crate::tui`]), mounted read-only at
    /// [`crate::tui::CONTAINER_DIR`] for the attach inside the container.
    pub tui_dir: &'a Path,
    /// `$SSH_AUTH_SOCK`, if `ssh_auth_sock` and it is set.
    pub ssh_auth_sock: Option<&'a Path>,
    pub dind_image: &'a str,
    /// `Some` for a one-shot run (`jailoc run`) instead of the workspace's server.
    pub one_shot: Option<&'a OneShot>,
}

/// A one-shot run of the agent's service (`jailoc run`): the same image, mounts, policy,
/// secrets, limits and sandbox-init as PID 1, but this command instead of `opencode serve`, a
/// fixed container name (so the launcher can attach to it, copy the egress record out of it and
/// read its exit code with the container CLI), no published port, no health check (there is no
/// server to check) and no restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneShot {
    pub container_name: String,
    pub command: Vec<String>,
    /// The jailoc process running it, as [`RUN_OWNER_LABEL`] records it
    /// ([`crate::runs::Owner::label`]).
    pub owner: String,
}

/// The label that marks a one-shot run's container (value: its container name).
pub const RUN_LABEL: &str = "dev.jailoc.run";

/// The label naming the `jailoc run` process that owns a one-shot run's container, so `jailoc
/// down` can tell a run left behind from one still going ([`crate::runs`]).
pub const RUN_OWNER_LABEL: &str = "dev.jailoc.run.owner";

/// Renders the compose file.
pub fn render(inp: &ComposeInput<'_>) -> String {
    let ws = inp.ws;
    let mut y = String::new();
    let _ = writeln!(
        y,
        "{}{}. Do not edit: `jailoc up` rewrites it.",
        crate::gojailoc::JAILOC_HEADER,
        q(&ws.name)
    );
    let _ = writeln!(
        y,
        "# Customise with compose.override.yml in the workspace's policy directory instead."
    );
    y.push_str("services:\n");
    let _ = writeln!(y, "  {SERVICE}:");
    let _ = writeln!(y, "    image: {}", q(inp.image));
    if let Some(run) = inp.one_shot {
        let _ = writeln!(y, "    container_name: {}", q(&run.container_name));
    }
    let _ = writeln!(
        y,
        "    entrypoint: [{}, \"--config-dir\", {}, \"--\"]",
        q(SANDBOX_INIT_TARGET),
        q(POLICY_TARGET)
    );
    match inp.one_shot {
        Some(run) => {
            let argv: Vec<String> = run.command.iter().map(|a| q(a)).collect();
            let _ = writeln!(y, "    command: [{}]", argv.join(", "));
            y.push_str("    init: false\n    restart: \"no\"\n");
        }
        None => {
            let _ = writeln!(
                y,
                "    command: [\"opencode\", \"serve\", \"--hostname\", \"0.0.0.0\", \"--port\", \"{CONTAINER_PORT}\"]"
            );
            y.push_str("    init: false\n    restart: \"unless-stopped\"\n");
        }
    }
    let workdir = ws
        .paths
        .first()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| AGENT_HOME.to_string());
    let _ = writeln!(y, "    working_dir: {}", q(&workdir));
    y.push_str("    env_file:\n");
    let _ = writeln!(y, "      - {}", q(&path_str(inp.password_file)));

    let mut env: Vec<(String, String)> =
        ws.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    // As the Go jailoc: tools and OpenCode plugins can tell they run inside jailoc.
    env.push(("JAILOC".into(), "1".into()));
    env.push(("JAILOC_WORKSPACE".into(), ws.name.clone()));
    if ws.enable_docker {
        env.push(("DOCKER_HOST".into(), DIND_HOST.into()));
    }
    if inp.ssh_auth_sock.is_some() {
        env.push(("SSH_AUTH_SOCK".into(), "/run/ssh-agent.sock".into()));
    }
    env.sort();
    if !env.is_empty() {
        y.push_str("    environment:\n");
        for (k, v) in &env {
            let _ = writeln!(y, "      {k}: {}", q(v));
        }
    }
    // So `allowed_hosts = ["host.docker.internal:PORT"]` works on Linux too (Docker Desktop
    // defines the name itself). The gateway stays blocked unless allowlisted.
    y.push_str("    extra_hosts:\n      - \"host.docker.internal:host-gateway\"\n");
    limits(&mut y, ws, true);
    if ws.expose_port && inp.one_shot.is_none() {
        y.push_str("    ports:\n");
        let _ = writeln!(
            y,
            "      - {}",
            q(&format!("127.0.0.1:{}:{CONTAINER_PORT}", ws.port))
        );
    }
    y.push_str("    volumes:\n");
    for m in mounts(inp) {
        let Some(host) = &m.host else { continue };
        let _ = writeln!(y, "      - type: \"bind\"");
        let _ = writeln!(y, "        source: {}", q(&path_str(host)));
        let _ = writeln!(y, "        target: {}", q(&m.container));
        let _ = writeln!(y, "        read_only: {}", m.read_only);
    }
    if ws.enable_docker {
        // Read-only: the agent connects to the socket but cannot replace it.
        dind_socket_volume(&mut y, true);
    }
    y.push_str("    labels:\n");
    let _ = writeln!(y, "      dev.jailoc.workspace: {}", q(&ws.name));
    let _ = writeln!(y, "      dev.jailoc.port: {}", q(&ws.port.to_string()));
    let _ = writeln!(y, "      dev.jailoc.egress: {}", q(ws.egress.as_str()));
    if let Some(run) = inp.one_shot {
        let _ = writeln!(y, "      {RUN_LABEL}: {}", q(&run.container_name));
        let _ = writeln!(y, "      {RUN_OWNER_LABEL}: {}", q(&run.owner));
    } else {
        y.push_str("    healthcheck:\n");
        let test: Vec<String> = HEALTHCHECK.iter().map(|a| q(a)).collect();
        let _ = writeln!(y, "      test: [{}]", test.join(", "));
        y.push_str(
            "      interval: \"3s\"\n      timeout: \"3s\"\n      retries: 5\n      start_period: \"60s\"\n",
        );
    }

    if ws.enable_docker {
        // The sidecar has no network at all (`network_mode: none`): not the agent's namespace,
        // where a nested `--network host --cap-add NET_ADMIN` container could flush
        // sandbox-init's rules, and not a bridge, which would bypass them. Nested containers
        // therefore have no network either (`--network host` is the sidecar's empty namespace)
        // and images come in with `docker load` or are built from local context. The agent
        // talks to the daemon over a unix socket on a volume both mount, usable by its group.
        // The sidecar mounts nothing of the host: no workspace, policy, secrets or socket.
        let _ = writeln!(y, "  {DIND_SERVICE}:");
        let _ = writeln!(y, "    image: {}", q(inp.dind_image));
        y.push_str(
            "    privileged: true
    network_mode: \"none\"\n",
        );
        let _ = writeln!(
            y,
            "    command: [\"dockerd\", \"--host={DIND_HOST}\", \"--group={DIND_SOCKET_GID}\", \"--bridge=none\", \"--iptables=false\", \"--ip6tables=false\"]"
        );
        // The docker:dind entrypoint would otherwise generate TLS certificates for a TCP port.
        y.push_str("    environment:\n      DOCKER_TLS_CERTDIR: \"\"\n");
        y.push_str("    restart: \"unless-stopped\"\n");
        limits(&mut y, ws, false);
        y.push_str("    volumes:\n");
        let _ = writeln!(
            y,
            "      - type: \"volume\"\n        source: {}\n        target: \"/var/lib/docker\"\n        read_only: false",
            q(DIND_DATA_VOLUME)
        );
        dind_socket_volume(&mut y, false);
        y.push_str("    labels:\n");
        let _ = writeln!(y, "      dev.jailoc.workspace: {}", q(&ws.name));
        let _ = writeln!(
            y,
            "volumes:\n  {DIND_VOLUME}: {{}}\n  {DIND_DATA_VOLUME}: {{}}"
        );
    }
    y
}

/// The long-form mount of the daemon's socket volume (inside a `volumes:` list).
fn dind_socket_volume(y: &mut String, read_only: bool) {
    y.push_str("      - type: \"volume\"\n");
    let _ = writeln!(y, "        source: {}", q(DIND_VOLUME));
    let _ = writeln!(y, "        target: {}", q(DIND_SOCKET_DIR));
    let _ = writeln!(y, "        read_only: {read_only}");
}

fn limits(y: &mut String, ws: &Workspace, caps: bool) {
    if caps {
        y.push_str("    cap_drop:\n      - \"ALL\"\n    cap_add:\n");
        for c in CAPABILITIES {
            let _ = writeln!(y, "      - {}", q(c));
        }
    }
    y.push_str("    security_opt:\n      - \"no-new-privileges:true\"\n");
    let _ = writeln!(y, "    pids_limit: {PIDS_LIMIT}");
    let _ = writeln!(y, "    mem_limit: {}", q(&ws.memory));
    // Same as mem_limit: no swap on top of the memory limit.
    let _ = writeln!(y, "    memswap_limit: {}", q(&ws.memory));
    let _ = writeln!(y, "    cpus: {:?}", ws.cpu);
}

/// All bind mounts in order: the guard's own files, secrets, workspace paths, then the
/// built-in conveniences, which the user's `mounts` may replace or remove by container path.
pub fn mounts(inp: &ComposeInput<'_>) -> Vec<Mount> {
    let ws = inp.ws;
    let bind = |host: &Path, container: &str, ro: bool| Mount {
        host: Some(host.to_path_buf()),
        container: container.to_string(),
        read_only: ro,
    };
    let mut fixed = vec![
        bind(inp.sandbox_init, SANDBOX_INIT_TARGET, true),
        bind(inp.policy_dir, POLICY_TARGET, true),
        bind(inp.tui_dir, crate::tui::CONTAINER_DIR, true),
    ];
    for (name, secret) in &ws.secrets {
        fixed.push(bind(
            &secret_source(secret, inp.secrets_dir),
            &format!("{SECRETS_TARGET}/{name}"),
            true,
        ));
    }
    for p in &ws.paths {
        fixed.push(bind(p, &path_str(p), false));
    }
    if let Some(s) = inp.ssh_auth_sock {
        fixed.push(bind(s, "/run/ssh-agent.sock", false));
    }
    // The workspace's own data directory comes first among the replaceable mounts: a user
    // may remove it (`":/home/agent/.local/share/opencode"`) or replace it.
    let mut custom: Vec<Mount> = vec![bind(inp.data_dir, DATA_TARGET, false)];
    custom.extend(inp.builtin.iter().cloned());
    for m in &ws.mounts {
        custom.retain(|c| c.container != m.container);
        if m.host.is_some() {
            custom.push(m.clone());
        }
    }
    // A user mount may not shadow the guard's own files or a workspace path.
    custom.retain(|c| !fixed.iter().any(|f| f.container == c.container));
    fixed.extend(custom);
    fixed
}

/// A built-in mount candidate: host path, path under the agent's home, read-only, and whether
/// the host path must be a directory (else a regular file).
#[derive(Debug, Clone)]
pub struct Builtin {
    pub host: PathBuf,
    pub under_home: &'static str,
    pub read_only: bool,
    pub dir: bool,
}

/// The built-in mounts, each only if it exists, all read-only: OpenCode's config
/// (`~/.config/opencode`) and `~/.opencode` (its binary, plugins) — unlike the Go jailoc, which
/// mounts them read-write — because the host's OpenCode loads and runs what is in them, so a
/// writable mount would let the agent plant code on the host; `~/.agents` (as in Go); the git
/// config; with `ssh_auth_sock`, `~/.ssh/known_hosts`. Not mounted, unlike the Go jailoc:
/// `~/.claude/transcripts` (read-write there: a host program loads those transcripts later, and
/// every workspace would read and write the same ones) and the host's OpenCode data directory
/// (each workspace gets its own, [`ComposeInput::data_dir`]).
pub fn builtin_candidates(
    home: &Path,
    opencode_config: &Path,
    git_config: bool,
    ssh_auth_sock: bool,
) -> Vec<Builtin> {
    let b = |host: PathBuf, under_home: &'static str, read_only: bool, dir: bool| Builtin {
        host,
        under_home,
        read_only,
        dir,
    };
    let mut v = vec![
        b(
            opencode_config.to_path_buf(),
            ".config/opencode",
            true,
            true,
        ),
        b(home.join(".opencode"), ".opencode", true, true),
        b(home.join(".agents"), ".agents", true, true),
    ];
    if git_config {
        v.push(b(home.join(".gitconfig"), ".gitconfig", true, false));
        v.push(b(
            home.join(".config/git/config"),
            ".config/git/config",
            true,
            false,
        ));
    }
    if ssh_auth_sock {
        // As the Go jailoc: with the agent forwarded, ssh should know the user's hosts.
        v.push(b(
            home.join(".ssh/known_hosts"),
            ".ssh/known_hosts",
            true,
            false,
        ));
    }
    v
}

/// Host paths the host's OpenCode loads code from: mounting one read-write lets the agent
/// plant code that runs on the host (worth a warning even when the user asked for it).
pub fn host_code_dirs(home: &Path, opencode_config: &Path) -> Vec<PathBuf> {
    vec![opencode_config.to_path_buf(), home.join(".opencode")]
}

/// The candidates that exist on the host (a missing bind source would be created by the
/// engine, as root), as mounts into the agent's home.
pub fn builtin_mounts(candidates: &[Builtin]) -> Vec<Mount> {
    let home = PathBuf::from(AGENT_HOME);
    candidates
        .iter()
        .filter(|c| {
            if c.dir {
                c.host.is_dir()
            } else {
                c.host.is_file()
            }
        })
        .map(|c| Mount {
            host: Some(c.host.clone()),
            container: path_str(&home.join(c.under_home)),
            read_only: c.read_only,
        })
        .collect()
}

/// The host file mounted for `secret`: always jailoc's own copy of its value (written at
/// `up`), never the user's file; the value itself never appears in the compose file.
pub fn secret_source(secret: &SecretEntry, secrets_dir: &Path) -> PathBuf {
    secrets_dir.join(&secret.name)
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// A YAML double-quoted scalar that Compose will not interpolate (`$` doubled).
pub fn q(s: &str) -> String {
    crate::quote::double_quoted(s, "$$")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rendered compose file of a one-workspace config (`extra` appended to its table).
    fn render_config(extra: &str) -> String {
        render_config_for(extra, None)
    }

    /// [`render_config`] for a one-shot run when `one_shot` is given.
    fn render_config_for(extra: &str, one_shot: Option<&OneShot>) -> String {
        let cfg = crate::config::parse_str(
            &format!("[workspaces.w]\npaths = [\"/home/u/src/w\"]\n{extra}"),
            Path::new("/home/u/.config/jailoc/config.toml"),
            Path::new("/home/u"),
        )
        .expect("config");
        let ws = crate::config::resolve_workspace(&cfg, "w").expect("workspace");
        render(&ComposeInput {
            ws: &ws,
            image: "img",
            sandbox_init: Path::new("/opt/jailoc/sandbox-init"),
            policy_dir: Path::new("/home/u/.config/jailoc/workspaces/w"),
            password_file: Path::new("/home/u/.config/jailoc/passwords/w.env"),
            secrets_dir: Path::new("/home/u/.cache/jailoc/w/secrets"),
            data_dir: Path::new("/home/u/.local/share/jailoc/w/opencode"),
            tui_dir: Path::new("/home/u/.local/share/jailoc/.tui"),
            builtin: &[],
            ssh_auth_sock: None,
            dind_image: DEFAULT_DIND_IMAGE,
            one_shot,
        })
    }

    /// `jailoc run`'s container: the same guard (sandbox-init as PID 1 with the policy, the
    /// same capabilities and mounts) running the given command, with no published port, no
    /// health check and no restart, under the name the launcher then attaches to.
    #[test]
    fn a_one_shot_run_keeps_the_guard_and_drops_the_server() {
        let run = OneShot {
            container_name: "jailoc-w-run-0a1b2c".into(),
            command: vec!["sh".into(), "-c".into(), "echo $HOME".into()],
            owner: "host=h pidns=pid:[4026531836] pid=42 start=9001".into(),
        };
        let server = render_config("expose_port = true\n");
        let y = render_config_for("expose_port = true\n", Some(&run));
        assert!(server.contains("    ports:\n") && server.contains("    healthcheck:\n"));
        assert!(
            !y.contains("    ports:\n") && !y.contains("healthcheck"),
            "{y}"
        );
        assert!(
            y.contains("    container_name: \"jailoc-w-run-0a1b2c\"\n"),
            "{y}"
        );
        assert!(
            y.contains("    command: [\"sh\", \"-c\", \"echo $$HOME\"]\n    init: false\n    restart: \"no\"\n"),
            "{y}"
        );
        assert!(
            y.contains("      dev.jailoc.run: \"jailoc-w-run-0a1b2c\"\n      dev.jailoc.run.owner: \"host=h pidns=pid:[4026531836] pid=42 start=9001\"\n"),
            "{y}"
        );
        // Everything else is the server's: entrypoint, capabilities, limits, mounts, labels.
        let strip = |t: &str| -> Vec<String> {
            t.lines()
                .filter(|l| !l.contains("command:") && !l.contains("restart:"))
                .map(str::to_string)
                .collect()
        };
        let guarded: Vec<String> = strip(&server)
            .into_iter()
            .take_while(|l| !l.starts_with("    ports:"))
            .collect();
        assert!(!guarded.is_empty());
        let run_lines = strip(&y);
        let without_name: Vec<&String> = run_lines
            .iter()
            .filter(|l| !l.contains("container_name"))
            .collect();
        for (a, b) in guarded.iter().zip(&without_name) {
            assert_eq!(a, *b, "{y}");
        }
    }

    /// The DinD sidecar must not share the agent's network namespace (a nested `--network
    /// host --cap-add NET_ADMIN` container could flush sandbox-init's rules there), must have
    /// no network of its own, and must mount nothing from the host: only its data and the
    /// socket volume. The agent reaches it over that socket, never over TCP.
    #[test]
    fn dind_sidecar_has_no_network_and_no_host_mounts() {
        let y = render_config("enable_docker = true\n");
        let (agent, sidecar) = y
            .split_once(&format!("\n  {DIND_SERVICE}:\n"))
            .expect("a sidecar service");
        assert!(!y.contains("service:opencode"), "{y}");
        assert!(
            sidecar.contains("    network_mode: \"none\"\n"),
            "{sidecar}"
        );
        assert!(
            !sidecar.contains("ports:") && !sidecar.contains("tcp://"),
            "{sidecar}"
        );
        assert!(sidecar.contains(
            "\"--host=unix:///run/jailoc-docker/docker.sock\", \"--group=1000\", \"--bridge=none\", \"--iptables=false\", \"--ip6tables=false\""
        ), "{sidecar}");
        // Its only mounts: its named data volume and the socket volume, no bind mount.
        assert!(!sidecar.contains("type: \"bind\""), "{sidecar}");
        assert!(!sidecar.contains("/home/u"), "{sidecar}");
        assert!(!sidecar.contains("docker.sock\"\n"), "{sidecar}");
        let sidecar_volumes = "    volumes:\n      - type: \"volume\"\n        source: \"jailoc-docker-data\"\n        target: \"/var/lib/docker\"\n        read_only: false\n      - type: \"volume\"\n        source: \"jailoc-docker\"\n        target: \"/run/jailoc-docker\"\n        read_only: false\n    labels:";
        assert!(sidecar.contains(sidecar_volumes), "{sidecar}");
        assert!(
            sidecar.ends_with("volumes:\n  jailoc-docker: {}\n  jailoc-docker-data: {}\n"),
            "{sidecar}"
        );
        // The agent: the socket volume read-only, DOCKER_HOST on it, no engine socket.
        assert!(agent.contains(
            "      - type: \"volume\"\n        source: \"jailoc-docker\"\n        target: \"/run/jailoc-docker\"\n        read_only: true\n"
        ), "{agent}");
        assert!(
            agent.contains(&format!("      DOCKER_HOST: {}\n", q(DIND_HOST))),
            "{agent}"
        );
        assert!(!agent.contains("/var/run/docker.sock"), "{agent}");
    }

    #[test]
    fn without_enable_docker_there_is_no_sidecar_or_socket_volume() {
        let y = render_config("");
        assert!(
            !y.contains("jailoc-docker") && !y.contains("DOCKER_HOST"),
            "{y}"
        );
        assert!(!y.contains(&format!("\n  {DIND_SERVICE}:\n")), "{y}");
    }

    /// Issue 10, item 4: the engine runs the health check as root with the container's
    /// capabilities, every few seconds. It is one program by absolute path (exec form, no
    /// shell), so nothing is looked up on a PATH the agent can write (a planted
    /// `~/.local/bin/head` ran as uid 0 under the earlier `bash -c` check).
    #[test]
    fn attack_planted_program_in_agent_path_is_not_run_by_the_healthcheck() {
        let y = render_config("");
        let test = y
            .lines()
            .find_map(|l| l.strip_prefix("      test: "))
            .expect("a healthcheck");
        assert_eq!(
            test,
            "[\"CMD\", \"/usr/local/bin/sandbox-init\", \"--config-dir\", \"/etc/jailoc\", \"--health\", \"--port\", \"4096\"]"
        );
        assert!(!y.contains("bash") && !y.contains("CMD-SHELL"), "{y}");
    }

    #[test]
    fn quoting_blocks_interpolation_and_injection() {
        assert_eq!(q("a$HOME\"\n"), "\"a$$HOME\\\"\\n\"");
        assert_eq!(q("x\\y"), "\"x\\\\y\"");
    }
}
