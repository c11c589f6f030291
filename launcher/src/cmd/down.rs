//! `jailoc down`: stop and remove the project's containers and network.

use crate::cli::Cli;
use crate::context::Context;
use crate::engine::{self, run_checked, Engine};
use crate::error::Result;
use crate::process::Mode;
use crate::workspace;

/// Runs `jailoc down`.
pub fn run(ctx: &mut Context, cli: &Cli) -> Result<()> {
    let (_, ws) = super::load(ctx, cli)?;
    let engine = engine::detect(ctx)?;
    stop(ctx, &ws.name, &engine, true)
}

/// Takes the project down if its compose file exists (else there is nothing to stop).
/// `volumes` also removes the project's volumes (the DinD sidecar's `/var/lib/docker`); the
/// agent's data lives in bind mounts, never in volumes.
pub fn stop(ctx: &mut Context, name: &str, engine: &Engine, volumes: bool) -> Result<()> {
    let files = workspace::files(ctx, name);
    if !files.compose_file.is_file() {
        ctx.say(&format!(
            "workspace {name:?} was never started: nothing to stop"
        ));
        return Ok(());
    }
    let mut args = vec!["down", "--remove-orphans"];
    if volumes {
        args.push("--volumes");
    }
    let cmd = engine.compose(&workspace::project(name), &files.compose_args(), &args);
    run_checked(
        ctx,
        &cmd,
        Mode::Inherit,
        &format!("stop workspace {name:?}"),
    )?;
    ctx.say(&format!("workspace {name:?} is down"));
    Ok(())
}
