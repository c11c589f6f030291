//! Steps 4 and 5, the thin executor: install a [`Plan`] and check that the kernel holds exactly
//! what was rendered.
//!
//! On the nf_tables backend (the first candidate, and a runner in this process's namespace) the
//! plan is written and read back over netlink, both families in one transaction, no process at
//! all ([`super::nft`]). Where that does not apply or fails (another plan stands: the refill; a
//! kernel that refuses a message), the iptables programs do the work as below, with one
//! `*-restore --noflush` per family and a read-back with `*-save`.
//!
//! Process budget per boot, however many rules there are:
//!
//! - a fresh container (no `JAILOC-OUTPUT` chain yet, the common case): one restore per family
//!   in the fresh form (`-N` creates the chain and the jump) and one save per family for the
//!   read-back — four processes, in two rounds (the families run concurrently on nf_tables);
//! - the chain exists already (sandbox-init ran before in this network namespace): the fresh
//!   restore fails atomically, changing nothing, and the save right after it shows what stands.
//!   If that is exactly the plan (a restart with the same policy), it is kept — four processes,
//!   as a fresh container; otherwise a restore per family refills the chains from the save's
//!   facts (see `render.rs`) and a save reads them back — eight processes.
//!
//! The backend is chosen without running anything (the first whose programs are installed,
//! `backend.rs`); whether it works shows in its first restore: if that fails and its save fails
//! too, the next backend is tried (nf_tables → legacy on kernels without nf_tables).

use super::backend::{Backend, Probed};
use super::plan::Plan;
use super::readback::{verify, Current};
use super::rules::{Family, PerFamily};
use super::runner::{Cmd, CommandRunner, Output};
use super::FirewallError;
use std::io;

/// What [`install`] did.
#[derive(Debug, Clone)]
pub struct Installed {
    /// The backend that worked.
    pub backend: &'static Backend,
    /// Whether the IPv6 rules are in place.
    pub v6: bool,
    /// Non-fatal problems (IPv6 unavailable on a host without IPv6).
    pub warnings: Vec<String>,
    /// How many iptables processes the install ran.
    pub processes: usize,
    /// The plan stood already (a restart with the same policy) and was kept: `JAILOC-NAMES` may
    /// hold what the previous gate opened.
    pub kept: bool,
    /// Why the netlink path was not taken on the nf_tables backend (for the debug log).
    pub fallback: Option<String>,
    /// The rules went over netlink: the DNS gate changes `JAILOC-NAMES` the same way.
    pub netlink: bool,
}

/// Steps 4 and 5: installs `plan` with the first backend that works and verifies the
/// read-back. `ipv6_present` (the container has a non-loopback IPv6 address) makes a missing
/// IPv6 firewall fatal.
pub fn install(
    runner: &dyn CommandRunner,
    probed: &Probed,
    plan: &Plan,
    ipv6_present: bool,
) -> Result<Installed, FirewallError> {
    let mut fallback = None;
    if let Some(backend) = probed.candidates.first().filter(|b| b.name == "nft") {
        if runner.netlink_here() {
            match super::nft::install(plan) {
                Ok(outcome) => {
                    return Ok(Installed {
                        backend,
                        v6: true,
                        warnings: Vec::new(),
                        processes: 0,
                        kept: outcome == super::nft::Outcome::Kept,
                        fallback: None,
                        netlink: true,
                    })
                }
                // No fallback can tell this state from the plan (iptables-nft-save prints it
                // the same): the boot stops.
                Err(super::nft::NativeError::Unhooked(detail)) => {
                    return Err(FirewallError::Unhooked { detail })
                }
                Err(e) => fallback = Some(e.to_string()),
            }
        }
    }
    let mut tried = Vec::new();
    for backend in &probed.candidates {
        let attempt = Attempt {
            runner,
            backend,
            plan,
            processes: 0,
        };
        match attempt.run(ipv6_present) {
            Ok(installed) => {
                return Ok(Installed {
                    fallback,
                    ..installed
                })
            }
            Err(Outcome::Unusable(cause)) => tried.push(cause),
            Err(Outcome::Failed(e)) => return Err(e),
        }
    }
    Err(FirewallError::NoBackend {
        tried: tried.join(", "),
    })
}

/// Why one backend's attempt ended without rules.
enum Outcome {
    /// Neither its restore nor its save works (e.g. nf_tables missing): try the next one.
    Unusable(String),
    /// It works, but installing or verifying failed: fatal.
    Failed(FirewallError),
}

/// One family's rules, installed with `payload`; `readback` is the save that ran right after
/// the restore, if one did.
struct Applied {
    payload: String,
    readback: Option<Result<String, String>>,
}

/// What one family's fresh restore and the save right after it said.
enum First {
    Applied(Applied),
    /// The restore failed and the save says our chains stand like this: refill them.
    Refill(Current),
    /// Both failed: this backend does not work for the family (why, for the message).
    Unusable(String),
}

/// Why one family has no rules after the refill.
enum Missing {
    /// The refill restore failed: its error.
    Refill(String),
    /// The family's programs do not work at all (see [`First::Unusable`]).
    Unusable(String),
}

/// A command's output, or its failure as one line for a message.
fn ok_or_cause(result: io::Result<Output>) -> Result<String, String> {
    match result {
        Ok(out) if out.success => Ok(out.stdout),
        Ok(out) => {
            let stderr = out.stderr.trim();
            Err(if stderr.is_empty() {
                "exited with an error".to_owned()
            } else {
                stderr.replace('\n', "; ")
            })
        }
        Err(e) => Err(e.to_string()),
    }
}

/// One backend's try at installing the plan.
struct Attempt<'a> {
    runner: &'a dyn CommandRunner,
    backend: &'static Backend,
    plan: &'a Plan,
    processes: usize,
}

impl Attempt<'_> {
    fn run(mut self, ipv6_present: bool) -> Result<Installed, Outcome> {
        let backend = self.backend;

        // Step 4, the common case: create the chains and the jump in one atomic restore per
        // family. On a fresh container that is all; if the chains exist, it changes nothing.
        // Each family's save follows its own restore at once: after a restore that worked it
        // is step 5's read-back, after one that failed it is the facts for the refill.
        let fresh = self.plan.fresh_payloads();
        let mut kept = false;
        let first = self
            .restore_then_save(&fresh)
            .map(|family, (restore, save)| match (restore, save) {
                (Ok(_), save) => First::Applied(Applied {
                    payload: fresh.get(family).clone(),
                    readback: Some(save),
                }),
                // Our chains exist (sandbox-init ran before in this network namespace). Holding
                // exactly this plan already (a restart with the same policy), they are kept as
                // they are: a refill would delete every rule, and each deletion waits for the
                // kernel (nf_tables: ~13 ms a restore here). `JAILOC-NAMES` is not compared:
                // the new gate empties it when it starts.
                (Err(_), Ok(save)) if verify(family, fresh.get(family), &save).is_ok() => {
                    kept = true;
                    First::Applied(Applied {
                        payload: fresh.get(family).clone(),
                        readback: Some(Ok(save)),
                    })
                }
                (Err(_), Ok(save)) => First::Refill(Current::from_save(&save)),
                (Err(restore), Err(save)) => First::Unusable(format!(
                    "{}: {restore}; {}: {save}",
                    backend.restore_program(family),
                    backend.save_program(family)
                )),
            });
        if let First::Unusable(cause) = &first.v4 {
            // Neither program works (a kernel without nf_tables): the next backend's turn.
            return Err(Outcome::Unusable(cause.clone()));
        }

        // Where the fresh restore failed: refill the existing chains.
        let applied = self.refill(first);
        let v4 = applied.v4.map_err(|missing| {
            let cause = match missing {
                Missing::Refill(cause) | Missing::Unusable(cause) => cause,
            };
            Outcome::Failed(FirewallError::Restore {
                family: Family::V4,
                program: backend.restore4,
                cause,
            })
        })?;
        let v6 = applied.v6.map_err(|missing| match missing {
            Missing::Refill(cause) => format!("{}: {cause}", backend.restore6),
            Missing::Unusable(cause) => cause,
        });

        // Step 5: read back what the kernel now holds where the save did not already follow
        // the restore, and compare it with what was rendered.
        let unread = |family, applied: Option<&Applied>| {
            applied
                .filter(|a| a.readback.is_none())
                .map(|_| backend.save(family))
        };
        let late = self.stage(PerFamily {
            v4: unread(Family::V4, Some(&v4)),
            v6: unread(Family::V6, v6.as_ref().ok()),
        });
        self.verified(Family::V4, v4, late.v4)?;
        let mut warnings = Vec::new();
        let v6 = match v6 {
            Ok(applied) => {
                self.verified(Family::V6, applied, late.v6)?;
                true
            }
            Err(cause) if ipv6_present => {
                return Err(Outcome::Failed(FirewallError::Ipv6Unguarded { cause }));
            }
            Err(cause) => {
                warnings.push(format!(
                    "IPv6 rules not installed (the container has no IPv6 address): {cause}"
                ));
                false
            }
        };
        Ok(Installed {
            backend,
            v6,
            warnings,
            processes: self.processes,
            kept,
            fallback: None,
            netlink: false,
        })
    }

    /// Refills, in one stage, every family whose fresh restore failed while its save worked;
    /// returns each family's installed payload, or why it has none.
    fn refill(&mut self, first: PerFamily<First>) -> PerFamily<Result<Applied, Missing>> {
        let payloads = first.as_ref().map(|family, first| match first {
            First::Refill(current) => Some(self.plan.payload(family, Some(current))),
            _ => None,
        });
        let backend = self.backend;
        let cmds = payloads
            .as_ref()
            .map(|family, p| p.as_deref().map(|p| backend.restore(family, p)));
        let mut results = self.stage(cmds);
        let mut payloads = payloads;
        first.map(|family, first| match first {
            First::Applied(applied) => Ok(applied),
            First::Unusable(cause) => Err(Missing::Unusable(cause)),
            First::Refill(_) => {
                let result = results.get_mut(family).take();
                match (result, payloads.get_mut(family).take()) {
                    (Some(Ok(_)), Some(payload)) => Ok(Applied {
                        payload,
                        readback: None,
                    }),
                    (Some(Err(cause)), _) => Err(Missing::Refill(cause)),
                    _ => Err(Missing::Refill("not run".to_owned())),
                }
            }
        })
    }

    /// Checks one family's read-back (taken right after its restore, else `late`) against
    /// its payload.
    fn verified(
        &self,
        family: Family,
        applied: Applied,
        late: Option<Result<String, String>>,
    ) -> Result<(), Outcome> {
        let saved = applied
            .readback
            .or(late)
            .unwrap_or_else(|| Err("not run".to_owned()))
            .map_err(|cause| {
                Outcome::Failed(FirewallError::Save {
                    family,
                    program: self.backend.save_program(family),
                    cause,
                })
            })?;
        verify(family, &applied.payload, &saved).map_err(Outcome::Failed)
    }

    /// Runs the IPv4 and IPv6 command of one stage (either may be absent): concurrently where
    /// the backend allows it (nf_tables), one after the other otherwise (legacy shares one
    /// xtables lock). Counts the processes.
    fn stage(
        &mut self,
        cmds: PerFamily<Option<Cmd<'_>>>,
    ) -> PerFamily<Option<Result<String, String>>> {
        let present: Vec<Cmd<'_>> = [cmds.v4, cmds.v6].into_iter().flatten().collect();
        self.processes += present.len();
        let results = if self.backend.parallel {
            self.runner.run_all(&present)
        } else {
            present
                .iter()
                .map(|c| self.runner.run(c.program, c.args, c.stdin))
                .collect()
        };
        let mut results = results.into_iter().map(ok_or_cause);
        let mut next = |cmd: Option<Cmd<'_>>| {
            cmd.map(|_| {
                results
                    .next()
                    .unwrap_or_else(|| Err("no result".to_owned()))
            })
        };
        let v4 = next(cmds.v4);
        PerFamily {
            v4,
            v6: next(cmds.v6),
        }
    }

    /// Runs, per family, a restore of its payload followed by a save (`-t filter`), the
    /// families concurrently where the backend allows it. Returns per family the restore's
    /// and the save's result.
    fn restore_then_save(
        &mut self,
        payloads: &PerFamily<String>,
    ) -> PerFamily<(Result<String, String>, Result<String, String>)> {
        let backend = self.backend;
        let seqs = PerFamily::new(|family| {
            [
                backend.restore(family, payloads.get(family)),
                backend.save(family),
            ]
        });
        self.processes += 4;
        let results = if backend.parallel {
            self.runner.run_sequences(&[&seqs.v4, &seqs.v6])
        } else {
            [&seqs.v4, &seqs.v6]
                .iter()
                .map(|seq| {
                    seq.iter()
                        .map(|c| self.runner.run(c.program, c.args, c.stdin))
                        .collect()
                })
                .collect()
        };
        let mut families = results.into_iter().map(|seq| {
            let mut seq = seq.into_iter().map(ok_or_cause);
            let mut next = || seq.next().unwrap_or_else(|| Err("not run".to_owned()));
            let restore = next();
            (restore, next())
        });
        PerFamily::new(|_| {
            families
                .next()
                .unwrap_or_else(|| (Err("not run".to_owned()), Err("not run".to_owned())))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::backend::probe;
    use crate::firewall::fake::FakeIptables;
    use crate::firewall::plan::Allow;
    use crate::policy::Egress;

    /// One allowlisted address and Docker's embedded DNS.
    fn plan() -> Plan {
        let allow = Allow {
            dest: "198.51.100.7/32".parse().expect("net"),
            port: None,
        };
        let resolvers = vec!["127.0.0.11".parse().expect("ip")];
        Plan::build(Egress::Open, vec![allow], resolvers, vec![], vec![])
    }

    #[test]
    fn a_backend_whose_restore_and_save_fail_gives_way_to_the_next() {
        // A kernel without nf_tables: the nft programs are installed but do not work.
        let fake = FakeIptables {
            failing: vec![
                "iptables-nft-restore",
                "iptables-nft-save",
                "ip6tables-nft-restore",
                "ip6tables-nft-save",
            ],
            ..FakeIptables::default()
        };
        let probed = probe(&fake).expect("probe");
        let done = install(&fake, &probed, &plan(), true).expect("legacy works");
        assert_eq!(done.backend.name, "legacy");
        assert!(done.v6);

        let broken = FakeIptables {
            failing: vec![
                "iptables-nft-restore",
                "iptables-nft-save",
                "iptables-legacy-restore",
                "iptables-legacy-save",
                "iptables-restore",
                "iptables-save",
            ],
            ..FakeIptables::default()
        };
        let probed = probe(&broken).expect("probe");
        let e = install(&broken, &probed, &plan(), false)
            .expect_err("nothing works")
            .to_string();
        assert!(
            e.starts_with("failed to find a working iptables backend (tried iptables-nft-restore: iptables-nft-restore: boom; iptables-nft-save: iptables-nft-save: boom, "),
            "{e}"
        );
    }

    #[test]
    fn a_fresh_container_costs_four_processes_and_a_rerun_is_idempotent() {
        let fake = FakeIptables::default();
        let probed = probe(&fake).expect("probe");
        let first = install(&fake, &probed, &plan(), true).expect("install");
        assert!(first.v6 && first.warnings.is_empty());
        // Each family: its restore, then at once its read-back (the families run side by side
        // with the real runner; the fake runs them in turn).
        assert_eq!(
            fake.programs(),
            [
                "iptables-nft-restore",
                "iptables-nft-save",
                "ip6tables-nft-restore",
                "ip6tables-nft-save"
            ]
        );
        assert_eq!(first.processes, 4);
        assert!(fake.payloads("iptables-nft-restore")[0].contains("\n-N JAILOC-OUTPUT\n"));
        let after_first = fake.state_v4.borrow().clone();
        assert_eq!(after_first.matches("-A OUTPUT -j JAILOC-OUTPUT").count(), 1);

        // Second boot in the same network namespace with the same plan: the fresh restore fails
        // atomically and the save shows the plan in place: kept, four processes, no deletion.
        fake.calls.borrow_mut().clear();
        let probed = probe(&fake).expect("probe");
        let same = install(&fake, &probed, &plan(), true).expect("again");
        assert_eq!(same.processes, 4);
        assert!(same.kept && !first.kept);
        assert_eq!(*fake.state_v4.borrow(), after_first);

        // A boot with another plan: the chain is refilled from the save's facts: the new rules,
        // no second jump.
        fake.calls.borrow_mut().clear();
        let other = Plan::build(Egress::Allowlist, vec![], vec![], vec![], vec![]);
        let probed = probe(&fake).expect("probe");
        let second = install(&fake, &probed, &other, true).expect("refill");
        assert_eq!(
            fake.programs(),
            [
                "iptables-nft-restore",
                "iptables-nft-save",
                "ip6tables-nft-restore",
                "ip6tables-nft-save",
                "iptables-nft-restore",
                "ip6tables-nft-restore",
                "iptables-nft-save",
                "ip6tables-nft-save"
            ]
        );
        assert_eq!(second.processes, 8);
        let refill = &fake.payloads("iptables-nft-restore")[1];
        assert!(!refill.contains("-I OUTPUT"));
        assert!(refill.contains("\n:JAILOC-OUTPUT - [0:0]\n"));
        let after_refill = fake.state_v4.borrow().clone();
        assert_eq!(
            after_refill.matches("-A OUTPUT -j JAILOC-OUTPUT").count(),
            1
        );
        assert!(
            after_refill.contains("-A JAILOC-OUTPUT -j JAILOC-REJECT\n"),
            "{after_refill}"
        );
    }

    #[test]
    fn v6_failure_is_fatal_only_with_an_ipv6_address() {
        let fake = FakeIptables {
            failing: vec!["ip6tables-nft-restore"],
            ..FakeIptables::default()
        };
        let probed = probe(&fake).expect("probe");
        let ok = install(&fake, &probed, &plan(), false).expect("no v6");
        assert!(!ok.v6);
        assert_eq!(ok.warnings, ["IPv6 rules not installed (the container has no IPv6 address): ip6tables-nft-restore: ip6tables-nft-restore: boom"]);
        let probed = probe(&fake).expect("probe");
        let e = install(&fake, &probed, &plan(), true).expect_err("v6 present");
        assert!(matches!(e, FirewallError::Ipv6Unguarded { .. }), "{e}");
    }

    #[test]
    fn v4_restore_failure_stops_before_anything_else() {
        let fake = FakeIptables {
            failing: vec!["iptables-nft-restore"],
            ..FakeIptables::default()
        };
        let probed = probe(&fake).expect("probe");
        let e = install(&fake, &probed, &plan(), false).expect_err("fails");
        assert_eq!(e.to_string(), "failed to install the IPv4 rules with iptables-nft-restore: iptables-nft-restore: boom");
        // The fresh restores, each followed by its save (the facts), then the refill fails:
        // no read-back after a failed restore, the boot stops right there.
        assert_eq!(
            fake.programs(),
            [
                "iptables-nft-restore",
                "iptables-nft-save",
                "ip6tables-nft-restore",
                "ip6tables-nft-save",
                "iptables-nft-restore"
            ]
        );
    }

    #[test]
    fn read_back_mismatch_is_an_error() {
        let fake = FakeIptables {
            corrupt_save: Some("*filter\n:JAILOC-OUTPUT - [0:0]\n-A OUTPUT -j JAILOC-OUTPUT\n-A JAILOC-OUTPUT -o lo -j ACCEPT\nCOMMIT\n*nat\n:JAILOC-DNS - [0:0]\n-A OUTPUT -j JAILOC-DNS\nCOMMIT\n".into()),
            ..FakeIptables::default()
        };
        let probed = probe(&fake).expect("probe");
        let e = install(&fake, &probed, &plan(), false).expect_err("mismatch");
        assert_eq!(
            e.to_string(),
            "failed to verify the IPv4 rules: rule 1 of JAILOC-DNS differs: expected \
             \"-A JAILOC-DNS -m owner --uid-owner 65533 -j RETURN\", found \"-A JAILOC-OUTPUT -o lo -j ACCEPT\" (33 rules rendered, 1 installed)"
        );
    }
}
