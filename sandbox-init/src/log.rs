//! The one logger: one line per event on stderr, `sandbox-init: [error: |warning: |debug: ]...`.
//!
//! Every runtime message of sandbox-init goes through [`Log`]; the only other writer is the
//! output `--print-plan`, `--help` and `--version` ask for ([`stdout`]). A failed write is
//! ignored, never fatal: after the spawn, PID 1 must outlive a log reader that went away (a
//! closed pipe would make `eprintln!` panic, and a panic would end PID 1 and with it the agent).

use std::io::{self, Write};

/// The logger. `Copy`, so every stage can hold its own.
#[derive(Debug, Clone, Copy, Default)]
pub struct Log {
    /// Also write debug lines (`SANDBOX_INIT_LOG=debug`).
    pub debug: bool,
}

impl Log {
    /// Writes one whole line with a single `write` where it fits (stderr is unbuffered:
    /// `eprintln!` could interleave with the agent's output in a container log), and ignores
    /// every error.
    fn line(level: &str, msg: &str) {
        let line = format!("sandbox-init: {level}{msg}\n");
        let _ = io::stderr().write_all(line.as_bytes());
    }

    /// A normal event.
    pub fn info(&self, msg: &str) {
        Self::line("", msg);
    }

    /// A problem sandbox-init tolerates.
    pub fn warn(&self, msg: &str) {
        Self::line("warning: ", msg);
    }

    /// A failure.
    pub fn error(&self, msg: &str) {
        Self::line("error: ", msg);
    }

    /// One line of the egress record (JSON), beside the agent's output in `jailoc logs`:
    /// `sandbox-init: egress: {...}`.
    pub fn egress(&self, json: &str) {
        Self::line("egress: ", json);
    }

    /// Details, only with `SANDBOX_INIT_LOG=debug`.
    pub fn debug(&self, msg: &str) {
        if self.debug {
            Self::line("debug: ", msg);
        }
    }
}

/// Writes `text` to stdout (the plan, help and version: output that was asked for). Returns
/// the error so `--print-plan` can fail on it; `--help` and `--version` ignore it.
pub fn stdout(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}
