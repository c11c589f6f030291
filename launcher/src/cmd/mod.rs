//! One module per sub-command. Each takes the [`Context`](crate::context::Context) and the
//! parsed [`Cli`](crate::cli::Cli) and returns the launcher's `Result`.

pub mod add;
pub mod attach;
pub mod completions;
pub mod config;
pub mod down;
pub mod egress;
pub mod logs;
pub mod restart;
pub mod run;
pub mod shell;
pub mod status;
pub mod up;
pub mod verify;

use crate::cli::Cli;
use crate::config::merge::resolve_workspace_for;
use crate::config::{Config, Use, Workspace};
use crate::context::Context;
use crate::error::Result;
use crate::workspace;

/// Loads the config and resolves the selected workspace for `use_`: [`Use::Start`] for what
/// starts it, [`Use::Inspect`] for what only stops or looks at it (see [`Use`]).
pub fn load(ctx: &mut Context, cli: &Cli, use_: Use) -> Result<(Config, Workspace)> {
    let cfg = workspace::load_config(ctx, cli.config.as_deref())?;
    let name = workspace::select(ctx, &cfg, cli.workspace.as_deref());
    let ws = resolve_workspace_for(&cfg, &name, use_)?;
    Ok((cfg, ws))
}

/// The URL the workspace's server is published on, if it is.
pub fn url(ws: &Workspace) -> Option<String> {
    ws.expose_port
        .then(|| format!("http://127.0.0.1:{}", ws.port))
}
