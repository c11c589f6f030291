//! sandbox-init's exit codes: the numbers it exits with (its `exit.rs` maps its errors to
//! them) and what each means to the user, which the launcher prints when an agent's container
//! exits or keeps restarting. One table, so the two never disagree. Documented in the README
//! ("Exit codes of `sandbox-init`") and in docs/init.md.

/// `--help`, `--version`, `--print-plan` done; `--health`: the agent's server is healthy.
pub const SUCCESS: i32 = 0;
/// `--health`: not healthy, for whatever reason (the reason is on stderr).
pub const UNHEALTHY: i32 = 1;
/// `--verify`: a check failed, or the checks could not run (each named on the output or stderr).
pub const CHECK_FAILED: i32 = 1;
/// The command line is wrong (missing COMMAND, unknown option): `EX_USAGE` from sysexits.h.
pub const USAGE: i32 = 64;
/// Firewall or privilege setup failed: `EX_OSERR`. The agent never starts.
pub const OS_ERROR: i32 = 71;
/// The policy is invalid: `EX_CONFIG`. The agent never starts.
pub const CONFIG: i32 = 78;
/// The agent exists but could not be executed (permissions, not an executable, ...).
pub const CANNOT_EXECUTE: i32 = 126;
/// The agent's executable was not found.
pub const NOT_FOUND: i32 = 127;
/// The agent died of signal N: the exit code is `SIGNAL_BASE + N`, as in a shell.
pub const SIGNAL_BASE: i32 = 128;

/// The highest signal number (Linux's `SIGRTMAX`): above `SIGNAL_BASE + MAX_SIGNAL`, a code is
/// the agent's own.
const MAX_SIGNAL: i32 = 64;

/// What the launcher says for the codes with a meaning of their own: sandbox-init's failures,
/// the shell's 126/127, and the likeliest signal.
const MEANINGS: &[(i32, &str)] = &[
    (SUCCESS, "the agent (opencode serve) exited"),
    (USAGE, "sandbox-init was started with a bad command line"),
    (
        OS_ERROR,
        "sandbox-init could not set up the firewall or drop privileges (no iptables backend, a failed restore or read-back, missing capabilities, an unreadable secret)",
    ),
    (
        CONFIG,
        "sandbox-init refused the policy in /etc/jailoc (the log names the file, line and entry)",
    ),
    (
        CANNOT_EXECUTE,
        "the agent (opencode) could not be executed in the image",
    ),
    (NOT_FOUND, "the agent (opencode) was not found in the image"),
    (
        SIGNAL_BASE + 9,
        "the agent was killed (signal 9: out of memory? see `memory`)",
    ),
];

/// The meaning of an exit code of an agent's container, whose PID 1 is sandbox-init: its own
/// failures, else how the agent ended (a signal, or the agent's own code passed through).
pub fn meaning(code: i32) -> String {
    if let Some((_, text)) = MEANINGS.iter().find(|(known, _)| *known == code) {
        return (*text).to_string();
    }
    let signal = code - SIGNAL_BASE;
    if (1..=MAX_SIGNAL).contains(&signal) {
        format!("the agent died of signal {signal}")
    } else {
        format!("the agent (opencode serve) exited with code {code}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_codes_are_the_documented_ones() {
        assert_eq!((SUCCESS, UNHEALTHY, CHECK_FAILED), (0, 1, 1));
        assert_eq!((USAGE, OS_ERROR, CONFIG), (64, 71, 78));
        assert_eq!((CANNOT_EXECUTE, NOT_FOUND, SIGNAL_BASE), (126, 127, 128));
    }

    #[test]
    fn each_code_has_the_meaning_the_launcher_prints() {
        assert_eq!(
            meaning(78),
            "sandbox-init refused the policy in /etc/jailoc (the log names the file, line and entry)"
        );
        assert_eq!(meaning(0), "the agent (opencode serve) exited");
        assert_eq!(
            meaning(137),
            "the agent was killed (signal 9: out of memory? see `memory`)"
        );
        assert_eq!(meaning(129), "the agent died of signal 1");
        assert_eq!(meaning(192), "the agent died of signal 64");
        // Past the last signal, and 128 itself, the agent chose the code.
        for code in [1, 3, 128, 193, 255, -1] {
            assert_eq!(
                meaning(code),
                format!("the agent (opencode serve) exited with code {code}")
            );
        }
    }
}
