//! The one exit-code table (DESIGN.md "Exit codes").
//!
//! PLACEHOLDER on branch `init` (owned by *net*): the same constants as net's exit.rs, so the
//! init modules compile before `git merge net`. On merge, take net's version.

/// The command line is wrong: `EX_USAGE`.
pub const USAGE: i32 = 64;
/// Firewall or privilege setup failed: `EX_OSERR`. The agent never starts.
pub const OS_ERROR: i32 = 71;
/// The policy is invalid: `EX_CONFIG`. The agent never starts.
pub const CONFIG: i32 = 78;
/// The agent exists but could not be executed.
pub const CANNOT_EXECUTE: i32 = 126;
/// The agent's executable was not found.
pub const NOT_FOUND: i32 = 127;
/// The agent died of signal N: the exit code is `SIGNAL_BASE + N`.
pub const SIGNAL_BASE: i32 = 128;

/// The exit code for "the agent died of signal `signal`".
pub fn signalled(signal: i32) -> i32 {
    SIGNAL_BASE + signal
}
