//! One module per sub-command. Each takes the [`Context`](crate::context::Context) and the
//! parsed [`Cli`](crate::cli::Cli) and returns the launcher's `Result`.

pub mod add;
pub mod attach;
pub mod completions;
pub mod config;
pub mod down;
pub mod logs;
pub mod restart;
pub mod shell;
pub mod status;
pub mod up;

use crate::cli::Cli;
use crate::config::{resolve_workspace, Config, Workspace};
use crate::context::Context;
use crate::error::Result;
use crate::workspace;

/// Loads the config and resolves the selected workspace.
pub fn load(ctx: &mut Context, cli: &Cli) -> Result<(Config, Workspace)> {
    let cfg = workspace::load_config(ctx, cli.config.as_deref())?;
    let name = workspace::select(ctx, &cfg, cli.workspace.as_deref());
    let ws = resolve_workspace(&cfg, &name)?;
    Ok((cfg, ws))
}

/// The URL the workspace's server is published on, if it is.
pub fn url(ws: &Workspace) -> Option<String> {
    ws.expose_port
        .then(|| format!("http://127.0.0.1:{}", ws.port))
}
