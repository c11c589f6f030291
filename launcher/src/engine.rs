//! Finds the compose implementation and the container CLI, and builds their command lines.
//! Every process goes through the context's [`Runner`](crate::process::Runner).

use std::path::PathBuf;

use serde::Deserialize;

use crate::compose::{RUN_LABEL, RUN_OWNER_LABEL};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::process::{Cmd, Mode, Output};

/// Compose implementations tried in order when `JAILOC_COMPOSE` is not set: the Compose plugin
/// first, as on most users' machines, then a standalone `docker-compose` (1.29, or a v2+ binary,
/// which also drives Podman through `DOCKER_HOST`), then Podman's own `podman compose` (4.7+,
/// itself a wrapper around one of the two). `podman-compose` is not tried: 1.0.x drops
/// `pids_limit` and `memswap_limit` without a word and exits 0 when a container fails to start
/// (docs/launcher.md); `JAILOC_COMPOSE=podman-compose` still uses it when asked.
pub const CANDIDATES: &[&[&str]] = &[
    &["docker", "compose"],
    &["docker-compose"],
    &["podman", "compose"],
];

/// The compose command (e.g. `["docker", "compose"]`) and the container CLI (`docker`/`podman`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Engine {
    pub compose: Vec<String>,
    pub cli: String,
}

/// The container CLI for queries and builds: `JAILOC_DOCKER`, else `podman` when
/// `JAILOC_COMPOSE` is Podman's (`podman compose`, `podman-compose`), else `docker`, or
/// `podman` when only that is on `PATH` (a Podman machine driving a standalone Compose binary
/// through Podman's socket).
pub fn container_cli(ctx: &Context) -> String {
    if let Some(d) = ctx.var("JAILOC_DOCKER") {
        return d.to_string();
    }
    if ctx.var("JAILOC_COMPOSE").is_some_and(is_podman_compose) {
        return "podman".into();
    }
    let on_path = |name: &str| {
        ctx.var("PATH")
            .is_some_and(|p| std::env::split_paths(p).any(|d| d.join(name).is_file()))
    };
    if !on_path("docker") && on_path("podman") {
        return "podman".into();
    }
    "docker".into()
}

/// Whether a compose command line is Podman's: `podman compose ...` or `podman-compose`.
fn is_podman_compose(compose: &str) -> bool {
    let program = compose.split_whitespace().next().unwrap_or_default();
    let name = program.rsplit('/').next().unwrap_or_default();
    name == "podman" || name == "podman-compose"
}

/// Finds the compose command: `JAILOC_COMPOSE` if set, else the first candidate whose
/// `version` sub-command succeeds.
pub fn detect(ctx: &Context) -> Result<Engine> {
    if let Some(c) = ctx.var("JAILOC_COMPOSE") {
        let compose: Vec<String> = c.split_whitespace().map(str::to_string).collect();
        if compose.is_empty() {
            return Err(Error::NoEngine {
                detail: " (JAILOC_COMPOSE is blank)".into(),
            });
        }
        return Ok(Engine {
            cli: container_cli(ctx),
            compose,
        });
    }
    let mut tried = Vec::new();
    for cand in CANDIDATES {
        let cmd = Cmd::new(cand[0], cand[1..].iter().copied()).args(["version"]);
        match ctx.run(&cmd, Mode::Capture) {
            Ok(out) if out.success() => {
                let cli =
                    if is_podman_compose(&cand.join(" ")) && ctx.var("JAILOC_DOCKER").is_none() {
                        "podman".to_string()
                    } else {
                        container_cli(ctx)
                    };
                return Ok(Engine {
                    compose: cand.iter().map(|s| s.to_string()).collect(),
                    cli,
                });
            }
            Ok(out) => tried.push(format!("`{}` exited with {}", cmd.display(), out.code)),
            // Found, but where the agent could have put it: say so, do not try the next.
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return Err(spawn_error(&cmd, e))
            }
            Err(_) => tried.push(format!("`{}` is not installed", cand.join(" "))),
        }
    }
    Err(Error::NoEngine {
        detail: format!(" ({})", tried.join("; ")),
    })
}

impl Engine {
    /// `COMPOSE -p jailoc-NAME -f FILE [-f OVERRIDE] ARGS...`.
    pub fn compose(&self, project: &str, files: &[PathBuf], args: &[&str]) -> Cmd {
        let mut cmd = Cmd::new(&self.compose[0], self.compose[1..].iter().cloned());
        cmd.args.push("-p".into());
        cmd.args.push(project.into());
        for f in files {
            cmd.args.push("-f".into());
            cmd.args.push(f.to_string_lossy().into_owned());
        }
        cmd.args(args.iter().copied())
    }
}

/// Runs `cmd`, mapping "could not start" and "non-zero exit" to errors saying `what` failed.
pub fn run_checked(ctx: &Context, cmd: &Cmd, mode: Mode, what: &str) -> Result<Output> {
    let out = ctx.run(cmd, mode).map_err(|e| spawn_error(cmd, e))?;
    if !out.success() {
        let stderr = out.stderr.trim();
        return Err(Error::CommandFailed {
            what: what.to_string(),
            command: cmd.display(),
            code: out.code,
            stderr: if stderr.is_empty() {
                String::new()
            } else {
                format!(": {stderr}")
            },
        });
    }
    Ok(out)
}

/// Runs `cmd` on the user's terminal and passes its exit code through: 0 is success, any other
/// code becomes [`Error::ChildExit`] (`logs`, `shell`, `attach`).
pub fn run_passthrough(ctx: &Context, cmd: &Cmd) -> Result<()> {
    let out = ctx
        .run(cmd, Mode::Inherit)
        .map_err(|e| spawn_error(cmd, e))?;
    match out.code {
        0 => Ok(()),
        c => Err(Error::ChildExit(c)),
    }
}

/// "Not installed" becomes [`Error::NoEngine`]; anything else stays a spawn error.
pub fn spawn_error(cmd: &Cmd, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        Error::NoEngine {
            detail: format!(" (`{}` is not installed)", cmd.program),
        }
    } else {
        Error::Spawn {
            command: cmd.display(),
            source: e,
        }
    }
}

/// `podman healthcheck run CONTAINER` when `cli` is Podman, else `None`. Podman runs health
/// checks from systemd timers; where there is no systemd (inside a container, WSL, a minimal VM)
/// they never run and the state stays "starting", so whoever waits for health runs the check
/// itself (Podman records the result as a timer run would). Docker runs its own.
pub fn health_check_cmd(cli: &str, container: &str) -> Option<Cmd> {
    let name = cli.rsplit('/').next().unwrap_or_default();
    (name == "podman").then(|| Cmd::new(cli, ["healthcheck", "run", container]))
}

/// `CLI logs --follow NAME`: a container's stdout and stderr from its start, followed until it
/// stops (what `jailoc run` streams after `compose start`).
pub fn follow_logs_cmd(cli: &str, container: &str) -> Cmd {
    Cmd::new(cli, ["logs", "--follow", container])
}

/// `CLI start --attach NAME`: starts a created container and streams its stdout and stderr
/// until it exits (the Docker and Podman CLIs both pass SIGINT/SIGTERM on to the container).
pub fn start_attached_cmd(cli: &str, container: &str) -> Cmd {
    Cmd::new(cli, ["start", "--attach", container])
}

/// `CLI stop --time SECS NAME`: SIGTERM to the container's PID 1 (sandbox-init forwards it to
/// the agent), SIGKILL after `secs`.
pub fn stop_cmd(cli: &str, container: &str, secs: u32) -> Cmd {
    Cmd::new(cli, ["stop", "--time", &secs.to_string(), container])
}

/// `CLI inspect --format '{{.State.ExitCode}}' NAME`: the exit code of a stopped container.
pub fn exit_code_cmd(cli: &str, container: &str) -> Cmd {
    Cmd::new(
        cli,
        ["inspect", "--format", "{{.State.ExitCode}}", container],
    )
}

/// `CLI cp NAME:PATH DIR`: copies one file out of a container, running or stopped, into the
/// host directory `dir` (as the user running the CLI; a symlink is copied as a link).
pub fn copy_out_cmd(cli: &str, container: &str, path: &str, dir: &std::path::Path) -> Cmd {
    Cmd::new(
        cli,
        [
            "cp".to_string(),
            format!("{container}:{path}"),
            dir.to_string_lossy().into_owned(),
        ],
    )
}

/// One container as reported by `docker ps --format '{{json .}}'` (Docker's and Podman's shapes).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerInfo {
    pub workspace: String,
    pub service: String,
    pub state: String,
    pub health: String,
    pub image: String,
    pub name: String,
    /// The engine's container ID (a new one when compose recreates the container).
    pub id: String,
    /// The engine's own status text, e.g. "Up 2 minutes (healthy)" or "Exited (78) 3 seconds
    /// ago".
    pub status: String,
    /// Started by the Go jailoc: same compose project (`jailoc-NAME`), no jailoc label.
    pub go_jailoc: bool,
    /// The one-shot run (`jailoc run`) this container is the agent of: its compose project
    /// ([`RUN_LABEL`]); empty for a workspace's own container.
    pub run: String,
    /// Who owns that run ([`RUN_OWNER_LABEL`], see [`crate::runs::Owner`]).
    pub run_owner: String,
}

impl ContainerInfo {
    /// The exit code in an "Exited (N) ..." or "Restarting (N) ..." status.
    pub fn exit_code(&self) -> Option<i32> {
        let s = self.status.to_ascii_lowercase();
        let rest = s
            .strip_prefix("exited (")
            .or_else(|| s.strip_prefix("restarting ("))?;
        rest.split(')').next()?.trim().parse().ok()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PsLine {
    /// Docker's "ID", Podman's "Id".
    #[serde(default, rename = "ID", alias = "Id")]
    id: String,
    #[serde(default)]
    labels: serde_json::Value,
    #[serde(default)]
    state: serde_json::Value,
    #[serde(default)]
    status: String,
    #[serde(default)]
    image: String,
    #[serde(default)]
    names: serde_json::Value,
}

/// The label every jailoc container carries.
pub const WORKSPACE_LABEL: &str = "dev.jailoc.workspace";

/// The compose project of workspace `name` (the Go jailoc's too).
pub fn project_of(name: &str) -> String {
    format!("jailoc-{name}")
}

/// The one engine query behind `status`, `up`'s "already running" check and its wait for
/// health: the containers of one workspace's compose project, or of every compose project
/// (jailoc's are picked out by [`parse_ps`]). By project rather than by jailoc's own label, so
/// containers the Go jailoc started for a workspace (same project, no label) are seen too.
pub fn ps_cmd(cli: &str, workspace: Option<&str>) -> Cmd {
    let filter = match workspace {
        Some(w) => format!("label={PROJECT_LABEL}={}", project_of(w)),
        None => format!("label={PROJECT_LABEL}"),
    };
    Cmd::new(
        cli,
        ["ps", "-a", "--filter", &filter, "--format", "{{json .}}"],
    )
}

/// The label Compose puts on everything of a project (containers, networks, volumes).
pub const PROJECT_LABEL: &str = "com.docker.compose.project";

/// The one-shot runs' agent containers of workspace `name` (`jailoc run`: each its own
/// project, all labelled with the workspace and [`RUN_LABEL`]).
pub fn runs_ps_cmd(cli: &str, name: &str) -> Cmd {
    Cmd::new(
        cli,
        [
            "ps",
            "-a",
            "--filter",
            &format!("label={RUN_LABEL}"),
            "--filter",
            &format!("label={WORKSPACE_LABEL}={name}"),
            "--format",
            "{{json .}}",
        ],
    )
}

/// Takes down compose project `project` through the container CLI by the project's label,
/// without Compose and without its files: its containers (stopped, then removed) and networks,
/// and with `volumes` its volumes too (named and anonymous). Returns whether there was anything
/// to take down.
pub fn take_down_project(ctx: &Context, cli: &str, project: &str, volumes: bool) -> Result<bool> {
    let filter = format!("label={PROJECT_LABEL}={project}");
    let list = |what: &[&str]| -> Result<Vec<String>> {
        let cmd = Cmd::new(cli, what.iter().copied()).args(["--filter", &filter]);
        let out = run_checked(
            ctx,
            &cmd,
            Mode::Capture,
            &format!("list what project {project} holds"),
        )?;
        Ok(out.stdout.split_whitespace().map(str::to_string).collect())
    };
    let containers = list(&["ps", "-aq"])?;
    let networks = list(&["network", "ls", "-q"])?;
    let found = if volumes {
        list(&["volume", "ls", "-q"])?
    } else {
        Vec::new()
    };
    let what = format!("take down project {project}");
    let run = |args: &[&str], names: &[String]| -> Result<()> {
        if names.is_empty() {
            return Ok(());
        }
        let cmd = Cmd::new(cli, args.iter().copied()).args(names.iter().map(String::as_str));
        run_checked(ctx, &cmd, Mode::Capture, &what).map(|_| ())
    };
    run(&["stop"], &containers)?;
    run(if volumes { &["rm", "-v"] } else { &["rm"] }, &containers)?;
    run(&["network", "rm"], &networks)?;
    run(&["volume", "rm"], &found)?;
    Ok(!containers.is_empty() || !networks.is_empty() || !found.is_empty())
}

/// Lists the named volumes of compose project `project`, one name a line.
pub fn volume_ls_cmd(cli: &str, project: &str) -> Cmd {
    Cmd::new(
        cli,
        [
            "volume",
            "ls",
            "--filter",
            &format!("label={PROJECT_LABEL}={project}"),
            "--format",
            "{{.Name}}",
        ],
    )
}

/// Parses `ps --format '{{json .}}'` output: one JSON object a line (Docker, and the Docker
/// CLI in front of Podman's socket), or one JSON array (the `podman` CLI, 4.x). Containers that
/// are not ours, and lines that are not JSON, are skipped.
pub fn parse_ps(stdout: &str) -> Vec<ContainerInfo> {
    let lines: Vec<PsLine> = match serde_json::from_str::<Vec<PsLine>>(stdout.trim()) {
        Ok(array) => array,
        Err(_) => stdout
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect(),
    };
    lines.into_iter().filter_map(container_info).collect()
}

/// One `ps` entry as a [`ContainerInfo`], `None` when it is not a workspace's: neither
/// jailoc's label nor a `jailoc-NAME` compose project (the Go jailoc's containers).
fn container_info(p: PsLine) -> Option<ContainerInfo> {
    let label = |key: &str| -> String {
        match &p.labels {
            // Docker: "k=v,k=v" (a value with a comma, e.g. two config files, splits into pieces
            // without a key, which never match).
            serde_json::Value::String(s) => s
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.to_string())
                .unwrap_or_default(),
            // Podman: a map.
            serde_json::Value::Object(m) => m
                .get(key)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string(),
            _ => String::new(),
        }
    };
    let mut workspace = label(WORKSPACE_LABEL);
    let go_jailoc = workspace.is_empty();
    if go_jailoc {
        workspace = label(PROJECT_LABEL)
            .strip_prefix("jailoc-")
            .unwrap_or_default()
            .to_string();
    }
    if workspace.is_empty() {
        return None;
    }
    let status = p.status.to_ascii_lowercase();
    let state = match &p.state {
        serde_json::Value::String(s) if !s.is_empty() => s.to_ascii_lowercase(),
        _ if status.starts_with("up") => "running".into(),
        _ if status.starts_with("exited") => "exited".into(),
        _ if status.starts_with("created") => "created".into(),
        _ if status.starts_with("restarting") => "restarting".into(),
        _ => "unknown".into(),
    };
    // Docker writes "(health: starting)", Podman "(starting)"; the Docker CLI in front of
    // Podman's socket shows no health at all (empty).
    let health = [
        ("(unhealthy)", "unhealthy"),
        ("(healthy)", "healthy"),
        ("(health: starting)", "starting"),
        ("(starting)", "starting"),
    ]
    .iter()
    .find(|(marker, _)| status.contains(marker))
    .map(|(_, h)| (*h).to_string())
    .unwrap_or_default();
    let name = match &p.names {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(a) => a
            .first()
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string(),
        _ => String::new(),
    };
    Some(ContainerInfo {
        service: label("com.docker.compose.service"),
        workspace,
        state,
        health,
        image: p.image,
        name,
        id: p.id,
        status: p.status,
        go_jailoc,
        run: label(RUN_LABEL),
        run_owner: label(RUN_OWNER_LABEL),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{context, tempdir, Recorder};

    /// `docker ps -a --filter label=dev.jailoc.workspace --format '{{json .}}'` on Docker 20.10
    /// (CLI 28), one container started by Compose v5 and one by docker-compose 1.29 (trimmed to
    /// the fields jailoc reads, labels as printed). The config_files label holds a comma.
    const DOCKER_PS: &str = r#"{"ID":"df7c091d17f2","Image":"jx-probe:test","Labels":"com.docker.compose.config-hash=27b9,com.docker.compose.container-number=1,com.docker.compose.depends_on=,com.docker.compose.oneoff=False,com.docker.compose.project.config_files=/srv/h/.cache/jailoc/pc/docker-compose.yml,/srv/h/.config/jailoc/workspaces/pc/compose.override.yml,com.docker.compose.project.working_dir=/srv/h/.cache/jailoc/pc,com.docker.compose.project=jailoc-pc,com.docker.compose.service=opencode,com.docker.compose.version=5.6.1,dev.jailoc.egress=open,dev.jailoc.port=4097,dev.jailoc.workspace=pc","Names":"jailoc-pc-opencode-1","Networks":"jailoc-pc_default","State":"running","Status":"Up 8 seconds (healthy)"}
{"ID":"841e596e735a","Image":"jx-probe:test","Labels":"com.docker.compose.config-hash=6908,com.docker.compose.container-number=1,com.docker.compose.oneoff=False,com.docker.compose.project=jailoc-web,com.docker.compose.service=opencode,com.docker.compose.version=1.29.2,dev.jailoc.egress=open,dev.jailoc.port=4096,dev.jailoc.workspace=web","Names":"jailoc-web_opencode_1","Networks":"jailoc-web_default","State":"running","Status":"Up 1 second (health: starting)"}
"#;

    /// The same query with the `podman` CLI 4.3: one pretty-printed JSON array, labels a map,
    /// names a list, health as "(healthy)" / "(starting)" (trimmed to the fields jailoc reads).
    const PODMAN_PS: &str = r#"[
  {
    "Id": "9187a220a182ba2037fbe24a8c0dabc1a7ef5d78e20d595f900af70d26984625",
    "Image": "localhost/jx-probe:test",
    "Labels": {
      "com.docker.compose.project": "jailoc-pc",
      "com.docker.compose.service": "opencode",
      "com.docker.compose.version": "5.6.1",
      "dev.jailoc.workspace": "pc"
    },
    "Names": [
      "jailoc-pc-opencode-1"
    ],
    "State": "running",
    "Status": "Up 2 minutes ago (healthy)"
  },
  {
    "Image": "localhost/jx-probe:test",
    "Labels": {
      "dev.jailoc.workspace": "web",
      "com.docker.compose.service": "opencode"
    },
    "Names": [
      "jailoc-web-opencode-1"
    ],
    "State": "running",
    "Status": "Up 5 seconds ago (starting)"
  },
  {
    "Image": "other",
    "Labels": {
      "org.example": "1"
    },
    "Names": [
      "not-ours"
    ],
    "State": "running",
    "Status": "Up 1 hour ago"
  }
]
"#;

    fn summary(v: &[ContainerInfo]) -> Vec<(&str, &str, &str, &str, &str)> {
        v.iter()
            .map(|c| {
                (
                    c.workspace.as_str(),
                    c.service.as_str(),
                    c.state.as_str(),
                    c.health.as_str(),
                    c.name.as_str(),
                )
            })
            .collect()
    }

    #[test]
    fn parses_docker_ps_of_both_compose_implementations() {
        let v = parse_ps(DOCKER_PS);
        assert_eq!(
            summary(&v),
            [
                (
                    "pc",
                    "opencode",
                    "running",
                    "healthy",
                    "jailoc-pc-opencode-1"
                ),
                (
                    "web",
                    "opencode",
                    "running",
                    "starting",
                    "jailoc-web_opencode_1"
                ),
            ]
        );
        assert_eq!(v[0].image, "jx-probe:test");
        assert_eq!(v[0].id, "df7c091d17f2");
        assert!(!v[0].go_jailoc);
    }

    /// A container the Go jailoc started (project `jailoc-NAME`, no jailoc label) is that
    /// workspace's; another compose project is nobody's. Exit codes come from the status text.
    #[test]
    fn go_jailoc_containers_are_their_workspaces_and_exit_codes_are_read() {
        let ps = r#"{"ID":"aa11","Image":"jailoc-base:embedded","Labels":"com.docker.compose.project=jailoc-old,com.docker.compose.service=opencode","Names":"jailoc-old-opencode-1","State":"restarting","Status":"Restarting (78) 2 seconds ago"}
{"ID":"bb22","Image":"postgres","Labels":"com.docker.compose.project=myapp,com.docker.compose.service=db","Names":"myapp-db-1","State":"running","Status":"Up 3 hours"}
{"ID":"cc33","Image":"x","Labels":"com.docker.compose.project=jailoc-w,com.docker.compose.service=opencode,dev.jailoc.workspace=w","Names":"jailoc-w-opencode-1","State":"exited","Status":"Exited (71) 1 second ago"}
"#;
        let v = parse_ps(ps);
        assert_eq!(v.len(), 2, "{v:?}");
        assert_eq!(
            (v[0].workspace.as_str(), v[0].go_jailoc, v[0].state.as_str()),
            ("old", true, "restarting")
        );
        assert_eq!(v[0].exit_code(), Some(78));
        assert_eq!((v[1].workspace.as_str(), v[1].go_jailoc), ("w", false));
        assert_eq!(v[1].exit_code(), Some(71));
        let up = ContainerInfo {
            status: "Up 2 minutes (healthy)".into(),
            ..ContainerInfo::default()
        };
        assert_eq!(up.exit_code(), None);
        assert_eq!(
            ps_cmd("docker", Some("w")).display(),
            "docker ps -a --filter label=com.docker.compose.project=jailoc-w --format '{{json .}}'"
        );
    }

    #[test]
    fn parses_podmans_json_array() {
        assert_eq!(
            summary(&parse_ps(PODMAN_PS)),
            [
                (
                    "pc",
                    "opencode",
                    "running",
                    "healthy",
                    "jailoc-pc-opencode-1"
                ),
                (
                    "web",
                    "opencode",
                    "running",
                    "starting",
                    "jailoc-web-opencode-1"
                ),
            ]
        );
        assert!(parse_ps("[]\n").is_empty());
    }

    #[test]
    fn ps_lines_without_state_or_health_and_foreign_lines() {
        // The Docker CLI in front of Podman's socket shows no health; older engines no State.
        let text = r#"{"Image":"i","Labels":"dev.jailoc.workspace=a,com.docker.compose.service=opencode","Names":"n","State":"running","Status":"Up 2 minutes"}
not json
{"Image":"x","Labels":"other=1","Names":"y","State":"running","Status":"Up"}
{"Image":"i","Labels":{"dev.jailoc.workspace":"b"},"Names":["m"],"Status":"Exited (143) 1 second ago"}"#;
        assert_eq!(
            summary(&parse_ps(text)),
            [
                ("a", "opencode", "running", "", "n"),
                ("b", "", "exited", "", "m"),
            ]
        );
    }

    /// A context whose PATH holds exactly the given (empty, executable) programs.
    fn with_path(programs: &[&str], vars: &[(&str, &str)]) -> (tempfile::TempDir, Context) {
        let dir = tempdir();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).expect("mkdir");
        for p in programs {
            std::fs::write(bin.join(p), "").expect("write");
        }
        let (mut ctx, _, _) = context(dir.path(), Recorder::default());
        ctx.env
            .insert("PATH".into(), bin.to_string_lossy().into_owned());
        for (k, v) in vars {
            ctx.env.insert((*k).into(), (*v).into());
        }
        (dir, ctx)
    }

    /// Programs on PATH, environment, the container CLI expected.
    type CliCase<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

    #[test]
    fn container_cli_follows_the_compose_implementation() {
        let cases: &[CliCase<'_>] = &[
            (&["docker", "podman"], &[], "docker"),
            // A Podman machine with a standalone Compose binary on Podman's socket.
            (&["podman", "docker-compose"], &[], "podman"),
            (
                &["docker", "podman"],
                &[("JAILOC_COMPOSE", "podman compose")],
                "podman",
            ),
            (
                &["docker", "podman"],
                &[("JAILOC_COMPOSE", "podman-compose")],
                "podman",
            ),
            (
                &["docker", "podman"],
                &[("JAILOC_COMPOSE", "/usr/bin/podman-compose --podman-args=x")],
                "podman",
            ),
            (
                &["docker", "podman"],
                &[("JAILOC_COMPOSE", "docker-compose")],
                "docker",
            ),
            (
                &["docker", "podman"],
                &[
                    ("JAILOC_COMPOSE", "podman-compose"),
                    ("JAILOC_DOCKER", "docker"),
                ],
                "docker",
            ),
            (&[], &[], "docker"),
        ];
        for (programs, vars, want) in cases {
            let (_dir, ctx) = with_path(programs, vars);
            assert_eq!(container_cli(&ctx), *want, "{programs:?} {vars:?}");
        }
    }

    /// Answers `version` for the compose commands listed, fails every other.
    #[derive(Debug)]
    struct Versions(&'static [&'static str]);

    impl crate::process::Runner for Versions {
        fn run(&self, cmd: &Cmd, _: Mode) -> std::io::Result<Output> {
            let line = cmd.display();
            let program = line.trim_end_matches(" version");
            if self.0.contains(&program) {
                Ok(Output::default())
            } else if program.starts_with("docker ") {
                Ok(Output {
                    code: 1,
                    ..Output::default()
                })
            } else {
                Err(std::io::ErrorKind::NotFound.into())
            }
        }
    }

    #[test]
    fn detection_prefers_the_compose_plugin_and_never_picks_podman_compose() {
        let cases: &[(&'static [&'static str], &[&str], &str)] = &[
            (
                &["docker compose", "docker-compose"],
                &["docker"],
                "docker compose/docker",
            ),
            (&["docker-compose"], &["docker"], "docker-compose/docker"),
            (&["podman compose"], &["podman"], "podman compose/podman"),
            (&["docker-compose"], &["podman"], "docker-compose/podman"),
        ];
        for (answering, programs, want) in cases {
            let (_dir, mut ctx) = with_path(programs, &[]);
            ctx.runner = Box::new(Versions(answering));
            let e = detect(&ctx).expect("an engine");
            assert_eq!(format!("{}/{}", e.compose.join(" "), e.cli), *want);
        }
        let (_dir, mut ctx) = with_path(&["podman", "podman-compose"], &[]);
        ctx.runner = Box::new(Versions(&["podman-compose"]));
        assert!(matches!(detect(&ctx), Err(Error::NoEngine { .. })));
    }
}
