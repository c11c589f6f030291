//! `sandbox-init`: reads the command line and the environment, then runs the mode asked for —
//! the boot (`boot.rs`, PID 1 of the agent's container), `--health`, `--enter` or `--verify` — and exits
//! with its code (the table is `exit.rs`).

#![forbid(unsafe_code)]

use sandbox_init::cli::{self, Invocation};
use sandbox_init::log::{self, Log};
use sandbox_init::{boot, enter, exit, health, policy, verify};

fn main() {
    let log = Log {
        debug: cli::debug_enabled(std::env::var_os(policy::LOG_ENV).as_deref()),
    };
    let invocation = cli::parse(
        std::env::args_os().skip(1),
        std::env::var_os(policy::CONFIG_DIR_ENV),
    );
    let code = match invocation {
        Ok(Invocation::Run(args)) => boot::main(&args, log),
        Ok(Invocation::Health(args)) => health::main(&args, &log),
        Ok(Invocation::Enter(args)) => enter::main(&args, &log),
        Ok(Invocation::Verify(args)) => verify::main(&args, &log),
        // Output that was asked for; a reader that went away changes nothing.
        Ok(Invocation::Help) => {
            let _ = log::stdout(cli::HELP);
            exit::SUCCESS
        }
        Ok(Invocation::Version) => {
            let _ = log::stdout(&format!("sandbox-init {}\n", env!("CARGO_PKG_VERSION")));
            exit::SUCCESS
        }
        Err(e) => boot::fail(&log, &e.into()),
    };
    std::process::exit(code);
}
