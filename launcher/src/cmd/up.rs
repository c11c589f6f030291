//! `jailoc up`: write the files, build the image if needed, start the project. Idempotent.

use crate::cli::Cli;
use crate::config::Workspace;
use crate::context::Context;
use crate::engine::{self, parse_ps, ps_cmd, run_checked, spawn_error, Engine};
use crate::error::Result;
use crate::process::Mode;
use crate::workspace::{self, Prepared};

/// Runs `jailoc up`.
pub fn run(ctx: &mut Context, cli: &Cli) -> Result<()> {
    let (_, ws) = super::load(ctx, cli)?;
    workspace::check_inputs(ctx, &ws)?;
    let engine = engine::detect(ctx)?;
    start(ctx, &ws, &engine)?;
    Ok(())
}

/// Brings `ws` up unless it already runs with the same compose file. Returns what was prepared.
pub fn start(ctx: &mut Context, ws: &Workspace, engine: &Engine) -> Result<Prepared> {
    let prepared = workspace::prepare(ctx, ws, engine)?;
    let where_ = super::url(ws)
        .map(|u| format!(" on {u}"))
        .unwrap_or_default();
    // What sandbox-init reads at boot changed while the compose file did not: compose sees no
    // change of its own, and the running container would keep the old rules (a removed
    // allowlist entry would stay open). A changed compose file recreates the agent anyway.
    let recreate =
        prepared.secrets_changed || (prepared.policy_changed && !prepared.compose_changed);
    if !prepared.compose_changed && !recreate && is_running(ctx, &engine.cli, &ws.name)? {
        ctx.say(&format!(
            "workspace {:?} is already running{where_}",
            ws.name
        ));
        return Ok(prepared);
    }
    let mut args = vec!["up", "-d", "--remove-orphans"];
    if recreate {
        // Same compose file, new secret value or policy: compose would keep the old container.
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
    ctx.say(&format!("workspace {:?} is up{where_}", ws.name));
    Ok(prepared)
}

/// Whether the workspace's agent container is running (one `ps` query).
pub fn is_running(ctx: &Context, cli: &str, name: &str) -> Result<bool> {
    let cmd = ps_cmd(cli, Some(name));
    let out = ctx
        .run(&cmd, Mode::Capture)
        .map_err(|e| spawn_error(&cmd, e))?;
    Ok(out.success()
        && parse_ps(&out.stdout).iter().any(|c| {
            c.workspace == name && c.service == crate::compose::SERVICE && c.state == "running"
        }))
}
