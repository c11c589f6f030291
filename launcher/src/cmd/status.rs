//! `jailoc status [NAME] [--json]`: every workspace's state, port, egress and image from one
//! engine query; with NAME (or `-w`), one workspace in detail, as the Go jailoc shows it — state
//! and health, port, password source, CPU, memory, PIDs, network and block I/O, uptime — plus
//! its egress mode and who started it. Containers the Go jailoc started for a workspace count;
//! one-shot runs' (`jailoc run`) never stand for their workspace: they are listed apart, each
//! saying whether it is in progress or was left behind ([`crate::runs`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::cli::Cli;
use crate::compose::SERVICE;
use crate::config::schema::PasswordMode;
use crate::config::{inspect_workspace, Workspace};
use crate::context::Context;
use crate::engine::{container_cli, parse_ps, ps_cmd, run_checked, runs_ps_cmd, ContainerInfo};
use crate::error::{Error, Result};
use crate::image;
use crate::process::{Cmd, Mode};
use crate::runs::{runs_of, Run};
use crate::workspace;

/// One row of `status`.
#[derive(Debug, Serialize, PartialEq)]
pub struct Row {
    /// The workspace's name.
    pub name: String,
    /// `running`, `exited`, `restarting`, ... or `stopped` when no container exists.
    pub state: String,
    /// `healthy`, `unhealthy`, `starting` or empty.
    pub health: String,
    /// The published port, if `expose_port`.
    pub port: Option<u16>,
    pub url: Option<String>,
    pub egress: String,
    pub image: String,
    pub paths: Vec<String>,
    /// The running container was started by the Go jailoc (jailoc's next `up` replaces it).
    pub go_jailoc: bool,
    /// The workspace's one-shot runs that exist (running or left behind); absent when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<Run>,
}

/// `status NAME`: a [`Row`] and the Go jailoc's detail fields.
#[derive(Debug, Serialize, PartialEq)]
pub struct Detail {
    #[serde(flatten)]
    pub row: Row,
    /// The exit code, when the container exited or is restarting.
    pub exit_code: Option<i32>,
    /// Where the server password comes from, e.g. `file (/home/u/.config/jailoc/passwords/w.env)`.
    pub password: String,
    /// How long the container has been up, as the engine says it ("2 minutes").
    pub uptime: Option<String>,
    /// The engine's usage figures, when the container runs.
    pub stats: Option<Stats>,
}

/// `docker stats --no-stream` of the agent's container, as the engine formats the figures.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Stats {
    #[serde(rename(deserialize = "CPUPerc"), alias = "cpu_percent", default)]
    pub cpu: String,
    #[serde(rename(deserialize = "MemUsage"), alias = "mem_usage", default)]
    pub memory: String,
    #[serde(rename(deserialize = "MemPerc"), alias = "mem_percent", default)]
    pub memory_percent: String,
    #[serde(rename(deserialize = "PIDs"), alias = "pids", default)]
    pub pids: String,
    #[serde(rename(deserialize = "NetIO"), alias = "net_io", default)]
    pub net_io: String,
    #[serde(rename(deserialize = "BlockIO"), alias = "block_io", default)]
    pub block_io: String,
}

/// Parses `stats --no-stream --format '{{json .}}'`: one object (Docker), or an array
/// (Podman); the first container's figures.
pub fn parse_stats(stdout: &str) -> Option<Stats> {
    let text = stdout.trim();
    serde_json::from_str::<Vec<Stats>>(text)
        .ok()
        .and_then(|v| v.into_iter().next())
        .or_else(|| {
            text.lines()
                .find_map(|l| serde_json::from_str::<Stats>(l).ok())
        })
}

/// The uptime in an engine status ("Up 2 minutes (healthy)", Podman's "Up 2 minutes ago").
pub fn uptime(status: &str) -> Option<String> {
    let rest = status.strip_prefix("Up ")?;
    let rest = rest.split(" (").next().unwrap_or(rest);
    Some(rest.trim_end_matches(" ago").trim().to_string())
}

/// Where the server password comes from, without generating or reading it.
pub fn password_source(ctx: &Context, ws: &Workspace) -> String {
    let file = workspace::files(ctx, &ws.name).password_file;
    let var = workspace::PASSWORD_VAR;
    let set = ctx.var(var).is_some();
    let stored = || {
        if file.is_file() {
            format!("file ({})", file.display())
        } else {
            format!("file ({}, written at the next up)", file.display())
        }
    };
    match ws.password_mode {
        PasswordMode::Env if set => format!("env ({var})"),
        PasswordMode::Env => format!("env ({var} is not set: up will fail)"),
        PasswordMode::Auto if set => format!("env ({var})"),
        PasswordMode::Auto | PasswordMode::File => stored(),
        PasswordMode::Keyring => format!("{}; no OS keyring here", stored()),
    }
}

/// The agent container of each workspace: jailoc's own before the Go jailoc's, a running one
/// before others; never a one-shot run's.
fn agents(containers: Vec<ContainerInfo>) -> BTreeMap<String, ContainerInfo> {
    let mut by: BTreeMap<String, ContainerInfo> = BTreeMap::new();
    for c in containers
        .into_iter()
        .filter(|c| c.service == SERVICE && c.run.is_empty())
    {
        let rank = |c: &ContainerInfo| (c.state == "running", !c.go_jailoc);
        match by.get(&c.workspace) {
            Some(old) if rank(old) >= rank(&c) => {}
            _ => {
                by.insert(c.workspace.clone(), c);
            }
        }
    }
    by
}

fn row(name: &str, ws: &Workspace, c: Option<&ContainerInfo>, runs: Vec<Run>) -> Row {
    Row {
        name: name.to_string(),
        state: c
            .map(|c| c.state.clone())
            .unwrap_or_else(|| "stopped".into()),
        health: c.map(|c| c.health.clone()).unwrap_or_default(),
        port: ws.expose_port.then_some(ws.port),
        url: super::url(ws),
        egress: ws.egress.as_str().into(),
        image: c
            .map(|c| c.image.clone())
            .filter(|i| !i.is_empty())
            .unwrap_or_else(|| image::describe(&ws.image)),
        paths: ws
            .paths
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect(),
        go_jailoc: c.is_some_and(|c| c.go_jailoc),
        runs,
    }
}

/// Runs `jailoc status`.
pub fn run(ctx: &mut Context, cli: &Cli, json: bool) -> Result<()> {
    let cfg = workspace::load_config(ctx, cli.config.as_deref())?;
    let cli_name = container_cli(ctx);
    if let Some(name) = cli.workspace.as_deref() {
        let ws = inspect_workspace(&cfg, name)?;
        let cmd = ps_cmd(&cli_name, Some(name));
        let out = run_checked(ctx, &cmd, Mode::Capture, "query the container engine")?;
        let containers = agents(parse_ps(&out.stdout));
        let c = containers.get(name);
        let cmd = runs_ps_cmd(&cli_name, name);
        let out = run_checked(ctx, &cmd, Mode::Capture, "query the container engine")?;
        let mut runs = runs_of(&parse_ps(&out.stdout), &ctx.proc_dir);
        runs.retain(|r| r.workspace == name);
        let stats = match c.filter(|c| c.state == "running" && !c.name.is_empty()) {
            Some(c) => {
                let cmd = Cmd::new(
                    &cli_name,
                    ["stats", "--no-stream", "--format", "{{json .}}", &c.name],
                );
                ctx.run(&cmd, Mode::Capture)
                    .ok()
                    .filter(|o| o.success())
                    .and_then(|o| parse_stats(&o.stdout))
            }
            None => None,
        };
        let detail = Detail {
            row: row(name, &ws, c, runs),
            exit_code: c.and_then(ContainerInfo::exit_code),
            password: password_source(ctx, &ws),
            uptime: c
                .filter(|c| c.state == "running")
                .and_then(|c| uptime(&c.status)),
            stats,
        };
        let text = if json {
            serde_json::to_string_pretty(&detail)
                .map_err(|e| Error::Other(format!("failed to encode JSON: {e}")))?
        } else {
            render_detail(&detail)
        };
        ctx.say(text.trim_end());
        return Ok(());
    }
    let cmd = ps_cmd(&cli_name, None);
    let out = run_checked(ctx, &cmd, Mode::Capture, "query the container engine")?;
    let all = parse_ps(&out.stdout);
    let mut runs = runs_of(&all, &ctx.proc_dir);
    let containers = agents(all);
    let mut rows = Vec::new();
    for name in cfg.workspace_names() {
        let ws = inspect_workspace(&cfg, &name)?;
        let (mine, others) = runs.into_iter().partition(|r: &Run| r.workspace == name);
        runs = others;
        rows.push(row(&name, &ws, containers.get(&name), mine));
    }
    if json {
        let text = serde_json::to_string_pretty(&rows)
            .map_err(|e| Error::Other(format!("failed to encode JSON: {e}")))?;
        ctx.say(&text);
        return Ok(());
    }
    let table = render_table(&rows);
    ctx.say(table.trim_end());
    Ok(())
}

/// `status NAME` for people: one field a line, the Go jailoc's labels.
pub fn render_detail(d: &Detail) -> String {
    let r = &d.row;
    let mut lines: Vec<(&str, String)> = vec![("Workspace", r.name.clone())];
    let mut state = r.state.clone();
    if let Some(code) = d.exit_code {
        state = format!(
            "{state} (code {code}: {})",
            jailoc_policy::exit_codes::meaning(code)
        );
    } else if !r.health.is_empty() {
        state = format!("{state} ({})", r.health);
    }
    if r.go_jailoc {
        state.push_str(", started by the Go jailoc (`jailoc up` replaces it, keeping its volumes)");
    }
    lines.push(("Status", state));
    lines.push((
        "Port",
        match (&r.port, &r.url) {
            (Some(p), Some(u)) => format!("{p} ({u})"),
            _ => "not published (exec only)".into(),
        },
    ));
    lines.push(("Password", d.password.clone()));
    lines.push(("Egress", r.egress.clone()));
    lines.push(("Image", r.image.clone()));
    if let Some(s) = &d.stats {
        lines.push(("CPU", s.cpu.clone()));
        lines.push(("Memory", format!("{} ({})", s.memory, s.memory_percent)));
        lines.push(("PIDs", s.pids.clone()));
        lines.push(("Net I/O", s.net_io.clone()));
        lines.push(("Block I/O", s.block_io.clone()));
    }
    if let Some(u) = &d.uptime {
        lines.push(("Uptime", u.clone()));
    }
    for run in &r.runs {
        lines.push((
            "Run",
            format!("{} ({}, {})", run.project, run.state, run.note(&r.name)),
        ));
    }
    let mut s = String::new();
    for (k, v) in lines {
        s.push_str(&format!("{:<11}{v}\n", format!("{k}:")));
    }
    if r.state != "running" || r.health == "unhealthy" {
        s.push_str(&format!(
            "\nRun `jailoc logs {}` to see the container's output.\n",
            r.name
        ));
    }
    s
}

/// The human table (aligned columns).
pub fn render_table(rows: &[Row]) -> String {
    let mut cells = vec![[
        "WORKSPACE".to_string(),
        "STATE".into(),
        "PORT".into(),
        "EGRESS".into(),
        "IMAGE".into(),
    ]];
    for r in rows {
        let mut state = if r.health.is_empty() {
            r.state.clone()
        } else {
            format!("{} ({})", r.state, r.health)
        };
        if r.go_jailoc {
            state.push_str(" [Go jailoc]");
        }
        cells.push([
            r.name.clone(),
            state,
            r.port.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            r.egress.clone(),
            r.image.clone(),
        ]);
    }
    let mut widths = [0usize; 5];
    for row in &cells {
        for (i, c) in row.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut s = String::new();
    for row in &cells {
        let mut line = String::new();
        for (i, c) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        s.push_str(line.trim_end());
        s.push('\n');
    }
    let runs: Vec<String> = rows
        .iter()
        .flat_map(|r| r.runs.iter().map(move |run| (r, run)))
        .map(|(r, run)| {
            format!(
                "run {} ({}): {}, {}\n",
                run.project,
                r.name,
                run.state,
                run.note(&r.name)
            )
        })
        .collect();
    if !runs.is_empty() {
        s.push('\n');
        s.push_str(&runs.concat());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_and_podman_stats_and_uptime() {
        let docker = r#"{"BlockIO":"4.1MB / 0B","CPUPerc":"0.52%","Container":"c","ID":"c","MemPerc":"3.21%","MemUsage":"131.5MiB / 4GiB","Name":"jailoc-w-opencode-1","NetIO":"1.2kB / 648B","PIDs":"17"}"#;
        let s = parse_stats(docker).expect("docker");
        assert_eq!(
            (
                s.cpu.as_str(),
                s.memory.as_str(),
                s.pids.as_str(),
                s.net_io.as_str(),
                s.block_io.as_str()
            ),
            (
                "0.52%",
                "131.5MiB / 4GiB",
                "17",
                "1.2kB / 648B",
                "4.1MB / 0B"
            )
        );
        let podman = r#"[{"cpu_percent":"1.00%","mem_usage":"10MB / 4GB","mem_percent":"0.25%","pids":"3","net_io":"0B / 0B","block_io":"0B / 0B"}]"#;
        assert_eq!(parse_stats(podman).expect("podman").pids, "3");
        assert_eq!(parse_stats("not json"), None);
        assert_eq!(uptime("Up 2 minutes (healthy)"), Some("2 minutes".into()));
        assert_eq!(
            uptime("Up 5 seconds ago (starting)"),
            Some("5 seconds".into())
        );
        assert_eq!(uptime("Exited (0) 1 hour ago"), None);
    }

    #[test]
    fn jailocs_own_running_container_wins() {
        let c = |id: &str, state: &str, go: bool| ContainerInfo {
            workspace: "w".into(),
            service: SERVICE.into(),
            state: state.into(),
            id: id.into(),
            go_jailoc: go,
            ..ContainerInfo::default()
        };
        let by = agents(vec![
            c("go", "running", true),
            c("old", "exited", false),
            c("new", "running", false),
        ]);
        assert_eq!(by["w"].id, "new");
        let by = agents(vec![c("old", "exited", false), c("go", "running", true)]);
        assert_eq!(by["w"].id, "go");
    }

    use crate::runs::tests::{fake_proc, owner_label, run_container};
    use crate::testutil::{context, Buf, Recorder, Scripted};
    use clap::Parser as _;

    /// `jailoc ARGS` with workspace `app` stopped and two runs of it, one left behind (its
    /// `jailoc run` is gone) and one in progress: stdout and the commands run.
    fn status_with_runs(args: &[&str]) -> (Buf, Vec<String>) {
        let (_dir, root) = crate::testutil::app_home();
        let (mut ctx, out, _) = context(&root, Recorder::default());
        ctx.proc_dir = fake_proc(&root, 4242, 9001);
        let runs = [
            run_container("0a1b2c", "exited", &owner_label(4343, 9001)),
            run_container("3d4e5f", "running", &owner_label(4242, 9001)),
        ]
        .concat();
        let engine = Scripted {
            answers: vec![
                (
                    "docker ps -a --filter label=com.docker.compose.project --".into(),
                    runs.clone(),
                ),
                ("docker ps -a --filter label=dev.jailoc.run ".into(), runs),
            ],
            ..Scripted::default()
        };
        let log = engine.log.clone();
        ctx.runner = Box::new(engine);
        ctx.env.insert("JAILOC_DOCKER".into(), "docker".into());
        let mut full = vec!["jailoc"];
        full.extend_from_slice(args);
        let cli = Cli::try_parse_from(full)
            .expect("args")
            .normalize()
            .expect("normal");
        let Some(crate::cli::Command::Status { json, .. }) = &cli.command else {
            panic!("not status");
        };
        run(&mut ctx, &cli, *json).expect("status");
        let log = log.borrow().clone();
        (out, log)
    }

    /// A run's container never stands for its workspace: `app` is stopped though its run's
    /// container runs, and both runs are listed after the table, each saying what it is.
    #[test]
    fn runs_are_shown_apart_and_never_as_the_workspace() {
        let (out, log) = status_with_runs(&["status"]);
        assert_eq!(log.len(), 1, "{log:?}");
        assert_eq!(
            out.text(),
            "WORKSPACE  STATE    PORT  EGRESS  IMAGE\n\
             app        stopped  4096  open    built-in OpenCode image\n\
             default    stopped  4097  open    built-in OpenCode image\n\
             \n\
             run jailoc-app-run-0a1b2c (app): exited, left behind by a killed `jailoc run`: `jailoc down app` removes it\n\
             run jailoc-app-run-3d4e5f (app): running, in progress (`jailoc run`, pid 4242)\n"
        );

        let (out, _) = status_with_runs(&["status", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out.text()).expect("json");
        assert_eq!(v[0]["state"], "stopped");
        assert_eq!(
            v[0]["runs"],
            serde_json::json!([
                {"project": "jailoc-app-run-0a1b2c", "state": "exited", "left_behind": true},
                {"project": "jailoc-app-run-3d4e5f", "state": "running", "left_behind": false},
            ])
        );

        let (out, log) = status_with_runs(&["status", "app"]);
        assert_eq!(
            log[1],
            "docker ps -a --filter label=dev.jailoc.run --filter label=dev.jailoc.workspace=app --format '{{json .}}'"
        );
        let text = out.text();
        assert!(
            text.starts_with("Workspace: app\nStatus:    stopped\n"),
            "{text}"
        );
        assert!(
            text.contains("\nRun:       jailoc-app-run-0a1b2c (exited, left behind by a killed `jailoc run`: `jailoc down app` removes it)\nRun:       jailoc-app-run-3d4e5f (running, in progress (`jailoc run`, pid 4242))\n"),
            "{text}"
        );
    }
}
