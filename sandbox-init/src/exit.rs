//! The one mapping from errors to exit codes: [`for_error`] is the only place an error becomes
//! one. The codes themselves, and what each means, are the contract's table
//! ([`jailoc_policy::exit_codes`], documented in the README, "Exit codes of `sandbox-init`", and
//! in docs/init.md), so the launcher explains exactly the codes sandbox-init exits with.

use crate::boot::BootError;
use crate::privilege::{DropFailure, DropStep};
use crate::secrets::SecretsError;
use crate::supervisor::SpawnError;
use crate::sys::{Errno, WaitStatus};

// The numbers and their meanings are the contract's: the launcher explains the same codes.
pub use jailoc_policy::exit_codes::{
    CANNOT_EXECUTE, CHECK_FAILED, CONFIG, NOT_FOUND, OS_ERROR, SIGNAL_BASE, SUCCESS, UNHEALTHY,
    USAGE,
};

/// The exit code for "the agent died of signal `signal`".
pub(crate) fn signalled(signal: i32) -> i32 {
    SIGNAL_BASE + signal
}

/// How the agent ended, as sandbox-init's own exit code: its code, or 128+N for signal N.
pub(crate) fn for_status(status: WaitStatus) -> i32 {
    match status {
        WaitStatus::Exited(code) => code,
        WaitStatus::Signaled(sig) => signalled(sig),
    }
}

/// Maps a failed step of the boot, `--enter` or the start of the agent to the code the contract
/// promises for it.
pub(crate) fn for_error(error: &BootError) -> i32 {
    match error {
        BootError::Usage(_) => USAGE,
        BootError::Policy(_) => CONFIG,
        BootError::Stopped { signal } => signalled(*signal),
        BootError::GateUid(_) => CONFIG,
        BootError::Firewall(_)
        | BootError::Gate(_)
        | BootError::PrintPlan(_)
        | BootError::Signals(_)
        | BootError::Fds(_)
        | BootError::Home(_)
        | BootError::OwnPath(_) => OS_ERROR,
        // A root agent is a policy error; a capability the container lacks is an OS one.
        BootError::Privilege(e) if e.is_root_agent() => CONFIG,
        BootError::Privilege(_) => OS_ERROR,
        // The launcher listed a secret the container was not given (or an invalid one): the
        // configurations disagree. A secret that is there but unreadable is an OS failure.
        BootError::Secrets(
            SecretsError::InvalidName { .. }
            | SecretsError::Missing { .. }
            | SecretsError::Nul { .. },
        ) => CONFIG,
        BootError::Secrets(_) => OS_ERROR,
        BootError::Spawn(SpawnError::Exec { errno, .. }) => for_exec(*errno),
        BootError::Spawn(SpawnError::Nul { .. } | SpawnError::NoCommand) => USAGE,
        BootError::Spawn(
            SpawnError::Drop { .. } | SpawnError::Setup { .. } | SpawnError::Privilege(_),
        ) => OS_ERROR,
    }
}

/// The code of a failed step of the agent's start, in the forked child: no allocation, the
/// same table as [`for_error`] (the parent reports the failure itself; this code only shows if
/// that report cannot be sent).
pub(crate) fn for_drop_failure(failure: DropFailure) -> i32 {
    match failure.step {
        DropStep::Exec => for_exec(failure.errno),
        _ => OS_ERROR,
    }
}

/// `execve` failed: not found (127), else not executable (126), as a shell says.
fn for_exec(errno: Errno) -> i32 {
    match errno.0 {
        libc::ENOENT | libc::ENOTDIR => NOT_FOUND,
        _ => CANNOT_EXECUTE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::UsageError;
    use crate::firewall::FirewallError;
    use crate::policy::PolicyError;
    use crate::privilege::PrivilegeError;
    use std::io;
    use std::path::PathBuf;

    /// The numbers themselves are the contract's (its `exit_codes` tests); a signal adds 128.
    #[test]
    fn the_table_matches_the_readme() {
        assert_eq!(signalled(15), 143);
        assert_eq!(signalled(9), 137);
    }

    #[test]
    fn the_agents_status_passes_through_and_signals_add_128() {
        for code in [0, 1, 2, 42, 126, 127, 255] {
            assert_eq!(for_status(WaitStatus::Exited(code)), code);
        }
        for sig in 1..=31 {
            assert_eq!(for_status(WaitStatus::Signaled(sig)), 128 + sig);
        }
        assert_eq!(for_status(WaitStatus::Signaled(libc::SIGTERM)), 143);
        assert_eq!(for_status(WaitStatus::Signaled(libc::SIGINT)), 130);
    }

    #[test]
    fn each_boot_error_maps_to_its_code() {
        let code = |e: BootError| for_error(&e);
        assert_eq!(code(UsageError::MissingCommand.into()), 64);
        let policy = PolicyError::Read {
            path: PathBuf::from("/etc/jailoc/policy.toml"),
            source: io::Error::from(io::ErrorKind::PermissionDenied),
        };
        assert_eq!(code(policy.into()), 78);
        let firewall = FirewallError::NoBackend {
            tried: "iptables-nft-save, iptables-legacy-save".into(),
        };
        assert_eq!(code(firewall.into()), 71);
        assert_eq!(code(BootError::GateUid(65533)), 78);
        let broken_pipe = io::Error::from(io::ErrorKind::BrokenPipe);
        assert_eq!(code(BootError::PrintPlan(broken_pipe)), 71);
        assert_eq!(code(BootError::Stopped { signal: 15 }), 143);
        assert_eq!(code(PrivilegeError::RootAgent { what: "uid" }.into()), 78);
        let missing = PrivilegeError::MissingCapabilities {
            missing: vec!["CAP_SETPCAP"],
        };
        assert_eq!(code(missing.into()), 71);
    }

    #[test]
    fn a_failed_start_maps_like_a_shell() {
        let exec = |errno| {
            BootError::from(SpawnError::Exec {
                program: "/x".into(),
                errno: Errno(errno),
            })
        };
        assert_eq!(for_error(&exec(libc::ENOENT)), 127);
        assert_eq!(for_error(&exec(libc::ENOTDIR)), 127);
        assert_eq!(for_error(&exec(libc::EACCES)), 126);
        assert_eq!(for_error(&exec(libc::ENOEXEC)), 126);
        let drop = SpawnError::Drop {
            step: DropStep::Uid,
            errno: Errno(libc::EPERM),
        };
        assert_eq!(for_error(&drop.into()), 71);
        assert_eq!(for_error(&SpawnError::NoCommand.into()), 64);
        // The child's allocation-free code agrees with the parent's.
        for (step, errno, want) in [
            (DropStep::Exec, libc::ENOENT, 127),
            (DropStep::Exec, libc::EACCES, 126),
            (DropStep::Uid, libc::EPERM, 71),
        ] {
            let failure = DropFailure {
                step,
                errno: Errno(errno),
            };
            assert_eq!(for_drop_failure(failure), want);
        }
    }
}
