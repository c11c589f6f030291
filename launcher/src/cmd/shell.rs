//! `jailoc shell`: a shell in the agent's container as the agent. Every command jailoc runs in
//! a container enters through `sandbox-init --enter`, which drops to the agent exactly as at
//! boot; a root `exec` would keep the container's capabilities (NET_ADMIN among them) and could
//! undo the firewall, and a plain `exec --user 1000` keeps them in its bounding set.

use crate::cli::Cli;
use crate::compose::{ENTER, SERVICE};
use crate::context::Context;
use crate::engine::{self, Engine};
use crate::error::{Error, Result};
use crate::process::Cmd;
use crate::workspace;

/// Runs `jailoc shell`.
pub fn run(ctx: &mut Context, cli: &Cli) -> Result<()> {
    let (_, ws) = super::load(ctx, cli, crate::config::Use::Inspect)?;
    let engine = engine::detect(ctx)?;
    let shell = [
        "sh",
        "-c",
        "if command -v bash >/dev/null 2>&1; then exec bash -l; else exec sh -l; fi",
    ];
    exec_as_agent(ctx, &engine, &ws.name, &shell)
}

/// `compose exec --user 0:0 opencode sandbox-init --enter -- ARGV`: `argv` runs as the agent
/// with no capabilities; the exit code passes through.
pub fn exec_as_agent(ctx: &mut Context, engine: &Engine, name: &str, argv: &[&str]) -> Result<()> {
    let cmd = exec_cmd(ctx, engine, name, argv)?;
    engine::run_passthrough(ctx, &cmd)
}

/// The exec command line (exposed for tests).
pub fn exec_cmd(ctx: &Context, engine: &Engine, name: &str, argv: &[&str]) -> Result<Cmd> {
    let files = workspace::files(ctx, name);
    if !files.compose_file.is_file() {
        return Err(Error::NotStarted {
            what: "open a shell".into(),
            workspace: name.into(),
        });
    }
    // Root only for the moment sandbox-init needs to drop everything (contract A).
    let mut args = vec!["exec", "--user", "0:0"];
    if !ctx.interactive {
        args.push("-T");
    }
    args.push(SERVICE);
    args.extend_from_slice(ENTER);
    args.extend_from_slice(argv);
    Ok(engine.compose(&workspace::project(name), &files.compose_args(), &args))
}
