//! The one exit-code table (DESIGN.md "Exit codes"). Every code sandbox-init itself chooses is
//! defined here; the README documents the same table.

use crate::boot::BootError;

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

/// The exit code for "the agent died of signal `signal`".
pub fn signalled(signal: i32) -> i32 {
    SIGNAL_BASE + signal
}

/// Maps a failed boot step to the exit code the contract promises for it.
pub fn for_error(error: &BootError) -> i32 {
    match error {
        BootError::Policy(_) => CONFIG,
        BootError::Firewall(_)
        | BootError::Threads { .. }
        | BootError::PrintPlan(_)
        | BootError::Signals(_)
        | BootError::Fds(_) => OS_ERROR,
        BootError::Stopped { signal } => signalled(*signal),
        BootError::Exec { source, .. } => {
            if source.kind() == std::io::ErrorKind::NotFound {
                NOT_FOUND
            } else {
                CANNOT_EXECUTE
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::FirewallError;
    use crate::policy::PolicyError;
    use std::io;
    use std::path::PathBuf;

    #[test]
    fn the_table_matches_design_md() {
        assert_eq!((USAGE, OS_ERROR, CONFIG), (64, 71, 78));
        assert_eq!((CANNOT_EXECUTE, NOT_FOUND), (126, 127));
        assert_eq!(signalled(15), 143);
        assert_eq!(signalled(9), 137);
    }

    #[test]
    fn each_boot_error_maps_to_its_code() {
        let policy = BootError::Policy(PolicyError::Read {
            path: PathBuf::from("/etc/jailoc/policy.toml"),
            source: io::Error::from(io::ErrorKind::PermissionDenied),
        });
        assert_eq!(for_error(&policy), 78);
        let firewall = BootError::Firewall(FirewallError::NoBackend {
            tried: "iptables-nft-save, iptables-legacy-save".into(),
        });
        assert_eq!(for_error(&firewall), 71);
        assert_eq!(for_error(&BootError::Threads { count: 3 }), 71);
        let broken_pipe = io::Error::from(io::ErrorKind::BrokenPipe);
        assert_eq!(for_error(&BootError::PrintPlan(broken_pipe)), 71);
        let missing = BootError::Exec {
            program: "opencode".into(),
            source: io::Error::from(io::ErrorKind::NotFound),
        };
        assert_eq!(for_error(&missing), 127);
        let denied = BootError::Exec {
            program: "/tmp/x".into(),
            source: io::Error::from(io::ErrorKind::PermissionDenied),
        };
        assert_eq!(for_error(&denied), 126);
    }
}
