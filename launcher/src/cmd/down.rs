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
    stop(ctx, &ws.name, &engine)
}

/// Takes the project down if its compose file exists (else there is nothing to stop).
pub fn stop(ctx: &mut Context, name: &str, engine: &Engine) -> Result<()> {
    let files = workspace::files(ctx, name);
    if !files.compose_file.is_file() {
        ctx.say(&format!(
            "workspace {name:?} was never started: nothing to stop"
        ));
        return Ok(());
    }
    let cmd = engine.compose(
        &workspace::project(name),
        &files.compose_args(),
        &["down", "--remove-orphans"],
    );
    run_checked(
        ctx,
        &cmd,
        Mode::Inherit,
        &format!("stop workspace {name:?}"),
    )?;
    ctx.say(&format!("workspace {name:?} is down"));
    Ok(())
}
