#![forbid(unsafe_code)]
//! `jailoc`, the host CLI: reads `config.toml`, writes one Docker Compose project per
//! workspace (plus the policy sandbox-init enforces inside it) and drives the engine.
//!
//! Layout: [`cli`] (arguments) → [`cmd`] (one module per sub-command) over pure parts
//! ([`config`], [`compose`], [`policy`], [`image`]'s planning) and thin effectful ones
//! ([`engine`] and [`process`] for every child process, [`fsutil`] for atomic writes), all
//! reached through a [`context::Context`] so tests can fake the machine.

pub mod cli;
pub mod cmd;
pub mod compose;
pub mod config;
pub mod context;
pub mod egress;
pub mod engine;
pub mod error;
pub mod fsutil;
pub mod gojailoc;
pub mod hostaddrs;
pub mod image;
pub mod interpolate;
pub mod interrupt;
pub mod opencode_events;
pub mod policy;
pub mod process;
pub mod quote;
pub mod readiness;
pub mod runs;
pub mod tui;
pub mod workspace;

#[cfg(test)]
mod testutil;

use std::io::IsTerminal;

use clap::Parser;

use cli::{Cli, Command};
use context::Context;
use error::{exit, Result};

/// Entry point for the real binary: builds the context from the real process.
pub fn main_with_system() -> i32 {
    let ctx = Context {
        env: std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect(),
        cwd: std::env::current_dir().unwrap_or_else(|_| "/".into()),
        exe_dir: std::env::current_exe()
            .ok()
            .and_then(|p| std::fs::canonicalize(p).ok())
            .and_then(|p| p.parent().map(std::path::Path::to_path_buf)),
        runner: Box::new(process::SystemRunner),
        out: Box::new(std::io::stdout()),
        err: Box::new(std::io::stderr()),
        input: Box::new(std::io::BufReader::new(std::io::stdin())),
        interactive: std::io::stdin().is_terminal() && std::io::stdout().is_terminal(),
        hidden_env: Vec::new(),
        writable: Vec::new(),
        host_addrs: hostaddrs::system,
        proc_dir: "/proc".into(),
    };
    run(std::env::args_os(), ctx)
}

/// Parses `args` and runs the command in `ctx`; returns the exit code (see [`error::exit`]).
pub fn run<I, T>(args: I, mut ctx: Context) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let parsed = Cli::try_parse_from(args).map(Cli::normalize);
    let cli = match parsed {
        Ok(Ok(c)) => c,
        Ok(Err(message)) => {
            ctx.warn(&format!("error: {message}"));
            return exit::USAGE;
        }
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let text = e.render().to_string();
            if e.use_stderr() {
                let _ = std::io::Write::write_all(&mut ctx.err, text.as_bytes());
            } else {
                let _ = std::io::Write::write_all(&mut ctx.out, text.as_bytes());
            }
            return code;
        }
    };
    match dispatch(&mut ctx, &cli) {
        Ok(()) => exit::OK,
        Err(error::Error::ChildExit(code)) => code,
        Err(e) => {
            ctx.warn(&e.to_string());
            e.exit_code()
        }
    }
}

fn dispatch(ctx: &mut Context, cli: &Cli) -> Result<()> {
    match &cli.command {
        None => cmd::attach::run(ctx, cli),
        Some(Command::Up { .. }) => cmd::up::run(ctx, cli),
        Some(Command::Down { volumes, .. }) => cmd::down::run(ctx, cli, *volumes),
        Some(Command::Restart { .. }) => cmd::restart::run(ctx, cli),
        Some(Command::Status { json, .. }) => cmd::status::run(ctx, cli, *json),
        Some(Command::Logs { follow, .. }) => cmd::logs::run(ctx, cli, *follow),
        Some(Command::Config) => cmd::config::run(ctx, cli),
        Some(Command::Add { path }) => cmd::add::run(ctx, cli, path.as_deref()),
        Some(Command::Shell) => cmd::shell::run(ctx, cli),
        Some(Command::Run {
            timeout,
            prompt,
            command,
        }) => cmd::run::run(ctx, cli, &cmd::run::Job::of(prompt, command), *timeout),
        Some(Command::Egress { json, .. }) => cmd::egress::run(ctx, cli, *json),
        Some(Command::Verify { json, .. }) => cmd::verify::run(ctx, cli, *json),
        Some(Command::Completions { shell }) => {
            cmd::completions::run(ctx, *shell);
            Ok(())
        }
    }
}
