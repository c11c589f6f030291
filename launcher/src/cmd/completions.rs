//! `jailoc completions SHELL`: print a completion script.

use clap::CommandFactory;

use crate::cli::Cli;
use crate::context::Context;

/// Runs `jailoc completions`.
pub fn run(ctx: &mut Context, shell: clap_complete::Shell) {
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "jailoc", &mut ctx.out);
}
