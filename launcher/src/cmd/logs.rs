//! `jailoc logs [-f]`: the project's logs, straight from the engine.

use crate::cli::Cli;
use crate::context::Context;
use crate::engine;
use crate::error::{Error, Result};
use crate::workspace;

/// Runs `jailoc logs`.
pub fn run(ctx: &mut Context, cli: &Cli, follow: bool) -> Result<()> {
    let (_, ws) = super::load(ctx, cli, crate::config::Use::Inspect)?;
    let engine = engine::detect(ctx)?;
    let files = workspace::files(ctx, &ws.name);
    if !files.compose_file.is_file() {
        return Err(Error::NotStarted {
            what: "show logs".into(),
            workspace: ws.name.clone(),
        });
    }
    let mut args = vec!["logs"];
    if follow {
        args.push("-f");
    }
    let cmd = engine.compose(&workspace::project(&ws.name), &files.compose_args(), &args);
    engine::run_passthrough(ctx, &cmd)
}
