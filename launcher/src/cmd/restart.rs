//! `jailoc restart`: down, regenerate the files, up.

use crate::cli::Cli;
use crate::context::Context;
use crate::engine;
use crate::error::Result;

/// Runs `jailoc restart`.
pub fn run(ctx: &mut Context, cli: &Cli) -> Result<()> {
    let (_, ws) = super::load(ctx, cli, crate::config::Use::Start)?;
    crate::workspace::check_inputs(ctx, &ws)?;
    let engine = engine::detect(ctx)?;
    // Keep volumes: a restart should not throw away the DinD sidecar's images.
    super::down::stop(ctx, &ws.name, &engine, false)?;
    super::up::start(ctx, &ws, &engine)?;
    Ok(())
}
