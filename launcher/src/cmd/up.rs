//! `jailoc up [NAME]`: write the files, build the image if needed, start the project, and wait
//! until the agent is healthy. Idempotent. It says "is up" only once the engine reports the
//! server healthy; a container that exits or restarts instead fails `up` with the reason.

use crate::cli::Cli;
use crate::config::{Use, Workspace};
use crate::context::Context;
use crate::engine::{self, parse_ps, ps_cmd, run_checked, spawn_error, ContainerInfo, Engine};
use crate::error::Result;
use crate::gojailoc::{self, ComposeAuthor};
use crate::process::Mode;
use crate::readiness;
use crate::workspace::{self, Prepared};

/// Runs `jailoc up`.
pub fn run(ctx: &mut Context, cli: &Cli) -> Result<()> {
    let (_, ws) = super::load(ctx, cli, Use::Start)?;
    workspace::check_inputs(ctx, &ws)?;
    let engine = engine::detect(ctx)?;
    start(ctx, &ws, &engine)?;
    Ok(())
}

/// A started, healthy workspace.
#[derive(Debug, Clone)]
pub struct Started {
    pub prepared: Prepared,
    /// The agent's container as the engine reported it healthy (the attach watches it).
    pub agent: ContainerInfo,
}

/// Brings `ws` up unless it already runs with the same compose file, then waits until the
/// agent is healthy.
pub fn start(ctx: &mut Context, ws: &Workspace, engine: &Engine) -> Result<Started> {
    let files = workspace::files(ctx, &ws.name);
    // The Go jailoc writes its compose file at the same path, for the same project: once ours
    // is in place, its containers and network go (its volumes stay: they hold its sessions).
    let go_started = gojailoc::compose_author(&files.compose_file) == ComposeAuthor::GoJailoc;
    let prepared = workspace::prepare(ctx, ws, engine)?;
    if go_started {
        replace_go_project(ctx, ws, engine)?;
    }
    let where_ = super::url(ws)
        .map(|u| format!(" on {u}"))
        .unwrap_or_default();
    // What sandbox-init reads at boot changed while the compose file did not: compose sees no
    // change of its own, and the running container would keep the old rules (a removed
    // allowlist entry would stay open). A changed compose file recreates the agent anyway.
    let recreate =
        prepared.secrets_changed || (prepared.policy_changed && !prepared.compose_changed);
    let already = !prepared.compose_changed && !recreate && is_running(ctx, &engine.cli, &ws.name)?;
    if !already {
        let mut args = vec!["up", "-d", "--remove-orphans"];
        if recreate {
            // Same compose file, new secret value or policy: compose would keep the old
            // container.
            args.push("--force-recreate");
        }
        let cmd = engine.compose(
            &workspace::project(&ws.name),
            &prepared.files.compose_args(),
            &args,
        );
        run_checked(
            ctx,
            &cmd,
            Mode::Inherit,
            &format!("start workspace {:?}", ws.name),
        )?;
    }
    let agent = readiness::wait_healthy(
        ctx,
        engine,
        &ws.name,
        readiness::POLL,
        readiness::HEALTH_WAIT,
    )?;
    let state = if already {
        "is already running"
    } else {
        "is up"
    };
    ctx.say(&format!("workspace {:?} {state}{where_}", ws.name));
    Ok(Started { prepared, agent })
}

/// Takes down what the Go jailoc started for `ws` (its containers and network; its volumes
/// stay) and says where its sessions are.
fn replace_go_project(ctx: &mut Context, ws: &Workspace, engine: &Engine) -> Result<()> {
    ctx.say(&format!(
        "workspace {:?} was started by the Go jailoc: replacing its containers; its volumes are kept ({} holds its sessions: docs/launcher.md, \"Coming from the Go jailoc\", says how to bring them over)",
        ws.name,
        gojailoc::data_volume(&ws.name)
    ));
    gojailoc::take_down(ctx, &engine.cli, &workspace::project(&ws.name))?;
    Ok(())
}

/// Whether the workspace's agent container is running (one `ps` query).
pub fn is_running(ctx: &Context, cli: &str, name: &str) -> Result<bool> {
    let cmd = ps_cmd(cli, Some(name));
    let out = ctx
        .run(&cmd, Mode::Capture)
        .map_err(|e| spawn_error(&cmd, e))?;
    Ok(out.success()
        && parse_ps(&out.stdout).iter().any(|c| {
            c.workspace == name
                && c.service == crate::compose::SERVICE
                && c.state == "running"
                && !c.go_jailoc
        }))
}
