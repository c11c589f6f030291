//! The iptables flavours sandbox-init can drive, and step 2's probe: which of them are
//! installed (as root's own programs), found without running anything.

use super::rules::Family;
use super::runner::{Cmd, CommandRunner};
use super::FirewallError;

/// One iptables flavour: the four programs it needs.
#[derive(Debug, PartialEq, Eq)]
pub struct Backend {
    pub name: &'static str,
    pub save4: &'static str,
    pub restore4: &'static str,
    pub save6: &'static str,
    pub restore6: &'static str,
    /// Whether IPv4 and IPv6 commands may run at the same time (legacy iptables shares one
    /// xtables lock between the families and fails instead of waiting).
    pub parallel: bool,
}

/// Probe order: nf_tables first, then legacy (kernels without nf_tables), then whatever the
/// image calls plain `iptables-save` (e.g. Alpine).
pub const BACKENDS: &[Backend] = &[
    Backend {
        name: "nft",
        save4: "iptables-nft-save",
        restore4: "iptables-nft-restore",
        save6: "ip6tables-nft-save",
        restore6: "ip6tables-nft-restore",
        parallel: true,
    },
    Backend {
        name: "legacy",
        save4: "iptables-legacy-save",
        restore4: "iptables-legacy-restore",
        save6: "ip6tables-legacy-save",
        restore6: "ip6tables-legacy-restore",
        parallel: false,
    },
    Backend {
        name: "default",
        save4: "iptables-save",
        restore4: "iptables-restore",
        save6: "ip6tables-save",
        restore6: "ip6tables-restore",
        parallel: false,
    },
];

impl Backend {
    /// The save program of `family`.
    pub fn save_program(&self, family: Family) -> &'static str {
        match family {
            Family::V4 => self.save4,
            Family::V6 => self.save6,
        }
    }

    /// The restore program of `family`.
    pub fn restore_program(&self, family: Family) -> &'static str {
        match family {
            Family::V4 => self.restore4,
            Family::V6 => self.restore6,
        }
    }

    /// `*-save` of `family`, every table (ours are `filter` and `nat`).
    pub fn save(&self, family: Family) -> Cmd<'static> {
        Cmd {
            program: self.save_program(family),
            args: &[],
            stdin: None,
        }
    }

    /// `*-restore --noflush` of `family`, fed `payload`. Legacy iptables takes the global
    /// xtables lock: wait for it (`-w`) instead of failing.
    pub fn restore<'a>(&self, family: Family, payload: &'a str) -> Cmd<'a> {
        let args: &'static [&'static str] = if self.parallel {
            &["--noflush"]
        } else {
            &["-w", "--noflush"]
        };
        Cmd {
            program: self.restore_program(family),
            args,
            stdin: Some(payload),
        }
    }
}

/// The installed backends, in [`BACKENDS`] order; [`super::install`] uses the first that works.
#[derive(Debug, Clone)]
pub struct Probed {
    pub candidates: Vec<&'static Backend>,
}

/// Step 2: the installed backends (their save and restore programs exist), without running
/// anything: whether one works shows in its first restore. Every program of every backend
/// that is installed must be root's (see `trust.rs`), or the boot stops here.
pub fn probe(runner: &dyn CommandRunner) -> Result<Probed, FirewallError> {
    let mut candidates: Vec<&'static Backend> = Vec::new();
    // Every backend's four programs in one look: the walks share their directories.
    let programs: Vec<&str> = BACKENDS
        .iter()
        .flat_map(|b| [b.restore4, b.save4, b.restore6, b.save6])
        .collect();
    let installed = runner.exist(&programs)?;
    for (backend, installed) in BACKENDS.iter().zip(installed.chunks(4)) {
        if installed[0] && installed[1] {
            candidates.push(backend);
        }
    }
    if candidates.is_empty() {
        let tried: Vec<String> = BACKENDS
            .iter()
            .map(|b| format!("{}: not found", b.restore4))
            .collect();
        return Err(FirewallError::NoBackend {
            tried: tried.join(", "),
        });
    }
    Ok(Probed { candidates })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::fake::FakeIptables;

    #[test]
    fn probe_runs_nothing_and_lists_the_installed_backends() {
        let fake = FakeIptables {
            missing: vec!["iptables-nft-restore"],
            ..FakeIptables::default()
        };
        let names: Vec<&str> = probe(&fake)
            .expect("legacy")
            .candidates
            .iter()
            .map(|b| b.name)
            .collect();
        assert_eq!(names, ["legacy", "default"]);
        assert!(fake.calls.borrow().is_empty(), "the probe runs no process");

        let none = FakeIptables {
            missing: vec![
                "iptables-nft-restore",
                "iptables-legacy-save",
                "iptables-restore",
            ],
            ..FakeIptables::default()
        };
        let e = probe(&none).expect_err("no backend").to_string();
        assert_eq!(
            e,
            "failed to find a working iptables backend (tried iptables-nft-restore: not found, \
             iptables-legacy-restore: not found, iptables-restore: not found)"
        );
    }

    #[test]
    fn an_untrusted_program_of_any_backend_stops_the_probe() {
        // Also one the boot would not need (the legacy IPv6 save): what the agent can change,
        // root does not run, and a boot that finds one says so instead of working around it.
        let fake = FakeIptables {
            untrusted: vec!["ip6tables-legacy-save"],
            ..FakeIptables::default()
        };
        let e = probe(&fake).expect_err("untrusted");
        assert_eq!(
            e.to_string(),
            "failed to trust /usr/sbin/ip6tables-legacy-save: it is owned by uid 1000, not by root"
        );
        assert!(fake.calls.borrow().is_empty(), "nothing was run");
    }
}
