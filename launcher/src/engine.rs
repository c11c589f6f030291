//! Finds the compose implementation and the container CLI, and builds their command lines.
//! Every process goes through the context's [`Runner`](crate::process::Runner).

use std::path::PathBuf;

use serde::Deserialize;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::process::{Cmd, Mode, Output};

/// Compose implementations tried in order when `JAILOC_COMPOSE` is not set.
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
/// `JAILOC_COMPOSE` names podman, else `docker`.
pub fn container_cli(ctx: &Context) -> String {
    if let Some(d) = ctx.var("JAILOC_DOCKER") {
        return d.to_string();
    }
    match ctx.var("JAILOC_COMPOSE") {
        Some(c) if c.split_whitespace().next() == Some("podman") => "podman".into(),
        _ => "docker".into(),
    }
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
                let cli = if cand[0] == "podman" {
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

/// One container as reported by `docker ps --format '{{json .}}'` (Docker's and Podman's shapes).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerInfo {
    pub workspace: String,
    pub service: String,
    pub state: String,
    pub health: String,
    pub image: String,
    pub name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PsLine {
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

/// The one engine query behind `status` and `up`'s "already running" check.
pub fn ps_cmd(cli: &str, workspace: Option<&str>) -> Cmd {
    let filter = match workspace {
        Some(w) => format!("label={WORKSPACE_LABEL}={w}"),
        None => format!("label={WORKSPACE_LABEL}"),
    };
    Cmd::new(
        cli,
        ["ps", "-a", "--filter", &filter, "--format", "{{json .}}"],
    )
}

/// The label Compose puts on everything of a project (containers, networks, volumes).
pub const PROJECT_LABEL: &str = "com.docker.compose.project";

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

/// Parses `ps` output, one JSON object a line; lines that are not ours are skipped.
pub fn parse_ps(stdout: &str) -> Vec<ContainerInfo> {
    let mut out = Vec::new();
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(p) = serde_json::from_str::<PsLine>(line) else {
            continue;
        };
        let label = |key: &str| -> String {
            match &p.labels {
                serde_json::Value::String(s) => s
                    .split(',')
                    .filter_map(|kv| kv.split_once('='))
                    .find(|(k, _)| *k == key)
                    .map(|(_, v)| v.to_string())
                    .unwrap_or_default(),
                serde_json::Value::Object(m) => m
                    .get(key)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string(),
                _ => String::new(),
            }
        };
        let workspace = label(WORKSPACE_LABEL);
        if workspace.is_empty() {
            continue;
        }
        let status = p.status.to_ascii_lowercase();
        let state = match &p.state {
            serde_json::Value::String(s) if !s.is_empty() => s.to_ascii_lowercase(),
            _ if status.starts_with("up") => "running".into(),
            _ if status.starts_with("exited") => "exited".into(),
            _ if status.starts_with("created") => "created".into(),
            _ => "unknown".into(),
        };
        let health = ["unhealthy", "healthy", "health: starting"]
            .iter()
            .find(|h| status.contains(&format!("({h})")))
            .map(|h| h.trim_start_matches("health: ").to_string())
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
        out.push(ContainerInfo {
            workspace,
            service: label("com.docker.compose.service"),
            state,
            health,
            image: p.image,
            name,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_and_podman_ps() {
        let docker = r#"{"Image":"jailoc-base:abc","Labels":"com.docker.compose.project=jailoc-web,com.docker.compose.service=opencode,dev.jailoc.workspace=web","Names":"jailoc-web_opencode_1","State":"running","Status":"Up 2 minutes (healthy)"}
not json
{"Image":"x","Labels":"other=1","Names":"y","State":"running","Status":"Up"}"#;
        let v = parse_ps(docker);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].workspace, "web");
        assert_eq!(v[0].service, "opencode");
        assert_eq!(v[0].state, "running");
        assert_eq!(v[0].health, "healthy");
        let podman = r#"{"Image":"i","Labels":{"dev.jailoc.workspace":"a","com.docker.compose.service":"opencode"},"Names":["n"],"Status":"Exited (143) 1 second ago"}"#;
        let v = parse_ps(podman);
        assert_eq!(v[0].state, "exited");
        assert_eq!(v[0].name, "n");
    }
}
