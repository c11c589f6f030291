//! The executor: pick the backend, apply each family with one `*-restore --noflush`, read the
//! result back with `*-save` and check it is exactly what was rendered.
//!
//! Process budget per boot, however many rules there are:
//!
//! - a fresh container (no `JAILOC-OUTPUT` chain yet, the common case): one restore per family
//!   in the fresh form (`-N` creates the chain and the jump) and one save per family for the
//!   read-back — four processes, in two rounds (the families run concurrently on nf_tables);
//! - the chain exists already (sandbox-init ran before in this network namespace): the fresh
//!   restore fails atomically, changing nothing; then a save per family reads the current
//!   jumps and a restore refills the chain (see `render.rs`) — eight processes.
//!
//! The backend is chosen without running anything (the first whose programs are installed);
//! whether it works shows in its first restore: if that fails and its save fails too, the next
//! backend is tried (nf_tables → legacy on kernels without nf_tables).

use super::render::{
    self, chain_rules, hook_of, our_chains, Allow, Facts, Family, Hook, RuleSets, CHAIN,
};
use super::runner::{Cmd, CommandRunner, Output};
use crate::policy::Egress;
use crate::trust::TrustError;
use ipnet::IpNet;
use std::io;
use std::net::IpAddr;

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

/// Why the firewall could not be installed (exit 71).
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    #[error("failed to find a working iptables backend (tried {tried})")]
    NoBackend { tried: String },
    #[error("failed to install the {family} rules with {program}: {cause}")]
    Restore {
        family: Family,
        program: &'static str,
        cause: String,
    },
    #[error("failed to read back the {family} rules with {program}: {cause}")]
    Save {
        family: Family,
        program: &'static str,
        cause: String,
    },
    #[error("failed to verify the {family} rules: {detail}")]
    Mismatch { family: Family, detail: String },
    #[error("failed to guard IPv6: the container has a non-loopback IPv6 address but no IPv6 rules could be installed: {cause}")]
    Ipv6Unguarded { cause: String },
    /// An iptables program is installed where anyone but root could have changed it.
    #[error(transparent)]
    Untrusted(#[from] TrustError),
}

/// The installed backends, in [`BACKENDS`] order; [`install`] uses the first that works.
#[derive(Debug, Clone)]
pub struct Probed {
    pub candidates: Vec<&'static Backend>,
}

/// What [`install`] did.
#[derive(Debug, Clone)]
pub struct Installed {
    /// The backend that worked.
    pub backend: &'static Backend,
    /// The payloads that were applied (the last one per family).
    pub rules: RuleSets,
    /// Whether the IPv6 rules are in place.
    pub v6: bool,
    /// Non-fatal problems (IPv6 unavailable on a host without IPv6).
    pub warnings: Vec<String>,
    /// How many iptables processes the install ran.
    pub processes: usize,
}

impl<'a> Cmd<'a> {
    fn save(program: &'a str) -> Self {
        Cmd {
            program,
            args: &["-t", "filter"],
            stdin: None,
        }
    }
    /// Legacy iptables takes the global xtables lock: wait for it (`-w`) instead of failing.
    fn restore(backend: &Backend, program: &'a str, payload: &'a str) -> Self {
        let args: &'static [&'static str] = if backend.parallel {
            &["--noflush"]
        } else {
            &["-w", "--noflush"]
        };
        Cmd {
            program,
            args,
            stdin: Some(payload),
        }
    }
}

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

/// One result per family (IPv4, IPv6); `None` where nothing was run.
type PerFamily<T> = [Option<T>; 2];

/// Runs the IPv4 and IPv6 command of one stage (either may be absent): concurrently where the
/// backend allows it (nf_tables), one after the other otherwise (legacy shares one xtables
/// lock). Counts the processes in `count`.
fn stage(
    runner: &dyn CommandRunner,
    backend: &Backend,
    cmds: PerFamily<Cmd<'_>>,
    count: &mut usize,
) -> PerFamily<Result<String, String>> {
    let present: Vec<Cmd<'_>> = cmds.iter().flatten().copied().collect();
    *count += present.len();
    let results = if backend.parallel {
        runner.run_all(&present)
    } else {
        present
            .iter()
            .map(|c| runner.run(c.program, c.args, c.stdin))
            .collect()
    };
    let mut results = results.into_iter().map(ok_or_cause);
    cmds.map(|c| {
        c.map(|_| {
            results
                .next()
                .unwrap_or_else(|| Err("no result".to_owned()))
        })
    })
}

/// Runs, per family, a restore of the given payload followed by a save (`-t filter`), the
/// families concurrently where the backend allows it. Returns per family the restore's and
/// the save's result.
fn restore_then_save(
    runner: &dyn CommandRunner,
    backend: &Backend,
    restores: [(&str, &str); 2],
    count: &mut usize,
) -> [(Result<String, String>, Result<String, String>); 2] {
    let [(r4, p4), (r6, p6)] = restores;
    let v4 = [Cmd::restore(backend, r4, p4), Cmd::save(backend.save4)];
    let v6 = [Cmd::restore(backend, r6, p6), Cmd::save(backend.save6)];
    *count += 4;
    let results = if backend.parallel {
        runner.run_sequences(&[&v4, &v6])
    } else {
        [&v4, &v6]
            .iter()
            .map(|seq| {
                seq.iter()
                    .map(|c| runner.run(c.program, c.args, c.stdin))
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
    let mut next = || {
        families
            .next()
            .unwrap_or_else(|| (Err("not run".to_owned()), Err("not run".to_owned())))
    };
    [next(), next()]
}

/// Step 2: the installed backends (their save and restore programs exist), without running
/// anything: whether one works shows in its first restore. Every program of every backend
/// that is installed must be root's (see `trust.rs`), or the boot stops here.
pub fn probe(runner: &dyn CommandRunner) -> Result<Probed, FirewallError> {
    let mut candidates: Vec<&'static Backend> = Vec::new();
    for backend in BACKENDS {
        let mut installed = [false; 4];
        let programs = [
            backend.restore4,
            backend.save4,
            backend.restore6,
            backend.save6,
        ];
        for (found, program) in installed.iter_mut().zip(programs) {
            *found = runner.exists(program)?;
        }
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

/// Steps 4 and 5: applies both families with the first backend that works and verifies the
/// read-back. `blocked` are the destinations refused besides the built-in ranges
/// ([`Facts::blocked`]); `ipv6_present` makes a missing IPv6 firewall fatal.
pub fn install(
    runner: &dyn CommandRunner,
    probed: &Probed,
    egress: Egress,
    allows: &[Allow],
    resolvers: &[IpAddr],
    blocked: &[IpNet],
    ipv6_present: bool,
) -> Result<Installed, FirewallError> {
    let mut tried = Vec::new();
    for backend in &probed.candidates {
        let attempt = Attempt {
            runner,
            backend,
            egress,
            allows,
            resolvers,
            blocked,
            processes: 0,
        };
        match attempt.run(ipv6_present) {
            Ok(installed) => return Ok(installed),
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

struct Attempt<'a> {
    runner: &'a dyn CommandRunner,
    backend: &'static Backend,
    egress: Egress,
    allows: &'a [Allow],
    resolvers: &'a [IpAddr],
    blocked: &'a [IpNet],
    processes: usize,
}

impl Attempt<'_> {
    /// Renders with the facts of the saves (`None`: the fresh form).
    fn render(&self, save_v4: Option<&str>, save_v6: Option<&str>) -> RuleSets {
        let facts = Facts {
            resolvers: self.resolvers.to_vec(),
            hook_v4: save_v4.map(hook_of),
            hook_v6: save_v6.map(hook_of),
            chains_v4: save_v4.map(our_chains).unwrap_or_default(),
            chains_v6: save_v6.map(our_chains).unwrap_or_default(),
            blocked: self.blocked.to_vec(),
        };
        render::render(self.egress, self.allows, &facts)
    }

    fn run(mut self, ipv6_present: bool) -> Result<Installed, Outcome> {
        let (runner, backend) = (self.runner, self.backend);

        // Step 4, the common case: create the chain and its jump in one atomic restore per
        // family. On a fresh container that is all; if the chain exists, it changes nothing.
        // Each family's save follows its own restore at once (families in parallel): after a
        // restore that worked it is step 5's read-back, after one that failed it is the facts
        // for the refill below.
        let fresh = self.render(None, None);
        let [(fresh_v4, after_v4), (fresh_v6, after_v6)] = restore_then_save(
            runner,
            backend,
            [(backend.restore4, &fresh.v4), (backend.restore6, &fresh.v6)],
            &mut self.processes,
        );
        let mut rules = fresh;
        let mut readback_v4 = fresh_v4.is_ok().then(|| after_v4.clone());
        let mut readback_v6 = fresh_v6.is_ok().then(|| after_v6.clone());

        // Where that failed: refill the existing chain using the current jumps the save read.
        let mut v6_applied: Result<(), String> = Ok(());
        if fresh_v4.is_err() || fresh_v6.is_err() {
            let save_v4 = fresh_v4.is_err().then_some(after_v4);
            let save_v6 = fresh_v6.is_err().then_some(after_v6);
            if let Some(Err(cause)) = &save_v4 {
                let restore_cause = fresh_v4.as_ref().err().map_or("", String::as_str);
                return Err(Outcome::Unusable(format!(
                    "{}: {restore_cause}; {}: {cause}",
                    backend.restore4, backend.save4
                )));
            }
            fn text(save: &Option<Result<String, String>>) -> Option<&str> {
                match save {
                    Some(Ok(text)) => Some(text.as_str()),
                    _ => None,
                }
            }
            let refill = self.render(text(&save_v4), text(&save_v6));
            let refill_v6 = matches!(save_v6, Some(Ok(_)));
            let [again_v4, again_v6] = stage(
                runner,
                backend,
                [
                    save_v4
                        .is_some()
                        .then(|| Cmd::restore(backend, backend.restore4, &refill.v4)),
                    refill_v6.then(|| Cmd::restore(backend, backend.restore6, &refill.v6)),
                ],
                &mut self.processes,
            );
            if let Some(result) = again_v4 {
                result.map_err(|cause| {
                    Outcome::Failed(FirewallError::Restore {
                        family: Family::V4,
                        program: backend.restore4,
                        cause,
                    })
                })?;
                rules.v4 = refill.v4;
            }
            match (save_v6, again_v6) {
                (None, _) => {}
                (Some(Err(cause)), _) => {
                    let restore_cause = fresh_v6.as_ref().err().map_or("", String::as_str);
                    v6_applied = Err(format!(
                        "{}: {restore_cause}; {}: {cause}",
                        backend.restore6, backend.save6
                    ));
                }
                (Some(Ok(_)), Some(Ok(_))) => rules.v6 = refill.v6,
                (Some(Ok(_)), Some(Err(cause))) => {
                    v6_applied = Err(format!("{}: {cause}", backend.restore6))
                }
                (Some(Ok(_)), None) => v6_applied = Err(format!("{}: not run", backend.restore6)),
            }
        }

        // Step 5: read back what the kernel now holds and compare it with what was rendered
        // (already done for a family whose fresh restore worked).
        let [late_v4, late_v6] = stage(
            runner,
            backend,
            [
                readback_v4.is_none().then(|| Cmd::save(backend.save4)),
                (v6_applied.is_ok() && readback_v6.is_none()).then(|| Cmd::save(backend.save6)),
            ],
            &mut self.processes,
        );
        let saved_v4 = readback_v4.take().or(late_v4);
        let saved_v6 = if v6_applied.is_ok() {
            readback_v6.take().or(late_v6)
        } else {
            None
        };
        let failed = Outcome::Failed;
        let saved_v4 = saved_v4
            .unwrap_or_else(|| Err("not run".to_owned()))
            .map_err(|cause| {
                failed(FirewallError::Save {
                    family: Family::V4,
                    program: backend.save4,
                    cause,
                })
            })?;
        verify(Family::V4, &rules.v4, &saved_v4).map_err(failed)?;

        let mut warnings = Vec::new();
        let v6 = match (v6_applied, saved_v6) {
            (Ok(()), Some(saved)) => {
                let saved = saved.map_err(|cause| {
                    failed(FirewallError::Save {
                        family: Family::V6,
                        program: backend.save6,
                        cause,
                    })
                })?;
                verify(Family::V6, &rules.v6, &saved).map_err(failed)?;
                true
            }
            (Ok(()), None) => unreachable!("the IPv6 read-back is run whenever IPv6 was applied"),
            (Err(cause), _) if ipv6_present => {
                return Err(failed(FirewallError::Ipv6Unguarded { cause }))
            }
            (Err(cause), _) => {
                warnings.push(format!(
                    "IPv6 rules not installed (the container has no IPv6 address): {cause}"
                ));
                false
            }
        };
        Ok(Installed {
            backend,
            rules,
            v6,
            warnings,
            processes: self.processes,
        })
    }
}

/// Checks that our chain holds exactly the rendered rules and `OUTPUT` jumps to it once, first.
pub fn verify(family: Family, rendered: &str, saved: &str) -> Result<(), FirewallError> {
    let want = chain_rules(rendered);
    let have = chain_rules(saved);
    let mismatch = |detail: String| FirewallError::Mismatch { family, detail };
    if !saved.lines().any(|l| l.starts_with(&format!(":{CHAIN} "))) {
        return Err(mismatch(format!("chain {CHAIN} is missing")));
    }
    if want != have {
        let at = want
            .iter()
            .zip(&have)
            .position(|(w, h)| w != h)
            .unwrap_or(want.len().min(have.len()));
        let show = |rule: Option<&render::RuleLine<'_>>| {
            rule.map_or("<end>".to_owned(), |r| r.to_string())
        };
        let (expected, found) = (show(want.get(at)), show(have.get(at)));
        // Name the chain the first difference is in, and the rule's place within it.
        let chain = want.get(at).or(have.get(at)).map_or(CHAIN, |r| r.chain);
        let nth = want[..at].iter().filter(|r| r.chain == chain).count() + 1;
        return Err(mismatch(format!(
            "rule {nth} of {chain} differs: expected {expected:?}, found {found:?} ({} rules rendered, {} installed)",
            want.len(),
            have.len()
        )));
    }
    let hook = hook_of(saved);
    if hook
        != (Hook {
            jumps: 1,
            first: true,
        })
    {
        return Err(mismatch(format!(
            "OUTPUT must jump to {CHAIN} exactly once, as its first rule (found {} jumps, first: {})",
            hook.jumps, hook.first
        )));
    }
    Ok(())
}

/// Whether `/proc/net/if_inet6` (its text) lists an address on an interface other than `lo`.
pub fn ipv6_present(if_inet6: &str) -> bool {
    if_inet6
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .any(|ifname| ifname != "lo")
}

/// A recording fake for tests: answers from a script, remembers every call.
#[cfg(test)]
pub mod fake {
    use super::{CommandRunner, Output};
    use std::cell::RefCell;
    use std::io;

    /// One recorded call: program, args, stdin.
    pub type Call = (String, Vec<String>, Option<String>);

    /// Behaves like an iptables that keeps state: restore appends the payload's chain rules
    /// to the "installed" text per family, save prints it. Programs in `missing` are not found;
    /// programs in `failing` exit with an error.
    #[derive(Debug, Default)]
    pub struct FakeIptables {
        pub calls: RefCell<Vec<Call>>,
        pub missing: Vec<&'static str>,
        pub failing: Vec<&'static str>,
        pub state_v4: RefCell<String>,
        pub state_v6: RefCell<String>,
        /// When set, save prints this instead of the state (to fake a mismatch).
        pub corrupt_save: Option<String>,
        /// Programs installed where the agent could have changed them.
        pub untrusted: Vec<&'static str>,
    }

    impl FakeIptables {
        pub fn programs(&self) -> Vec<String> {
            self.calls.borrow().iter().map(|c| c.0.clone()).collect()
        }
    }

    impl CommandRunner for FakeIptables {
        fn exists(&self, program: &str) -> Result<bool, crate::trust::TrustError> {
            if self.untrusted.contains(&program) {
                let path = std::path::Path::new("/usr/sbin").join(program);
                return Err(crate::trust::TrustError::Untrusted {
                    at: path.clone(),
                    path,
                    why: crate::trust::Why::Owner { uid: 1000, want: 0 },
                });
            }
            Ok(!self.missing.contains(&program))
        }

        fn run(&self, program: &str, args: &[&str], stdin: Option<&str>) -> io::Result<Output> {
            self.calls.borrow_mut().push((
                program.to_owned(),
                args.iter().map(|a| a.to_string()).collect(),
                stdin.map(str::to_owned),
            ));
            if self.missing.contains(&program) {
                return Err(io::Error::new(io::ErrorKind::NotFound, "not found"));
            }
            if self.failing.contains(&program) {
                return Ok(Output {
                    success: false,
                    stdout: String::new(),
                    stderr: format!("{program}: boom\n"),
                });
            }
            let state = if program.starts_with("ip6") {
                &self.state_v6
            } else {
                &self.state_v4
            };
            if program.ends_with("-restore") {
                // A faithful-enough model of --noflush: our chain is replaced, jumps edited;
                // `-N` of an existing chain fails the whole restore, changing nothing.
                let payload = stdin.unwrap_or_default();
                if payload.lines().any(|l| l == "-N JAILOC-OUTPUT")
                    && state.borrow().contains(":JAILOC-OUTPUT ")
                {
                    return Ok(Output {
                        success: false,
                        stdout: String::new(),
                        stderr: format!("{program}: line 3 failed: Chain already exists.\n"),
                    });
                }
                let mut out: Vec<String> = state
                    .borrow()
                    .lines()
                    .filter(|l| l.starts_with("-A OUTPUT"))
                    .map(str::to_owned)
                    .collect();
                for line in payload.lines() {
                    if line == "-D OUTPUT -j JAILOC-OUTPUT" {
                        if let Some(i) = out.iter().position(|l| l == "-A OUTPUT -j JAILOC-OUTPUT")
                        {
                            out.remove(i);
                        }
                    } else if line == "-I OUTPUT 1 -j JAILOC-OUTPUT" {
                        out.insert(0, "-A OUTPUT -j JAILOC-OUTPUT".to_owned());
                    }
                }
                let chain: Vec<&str> = payload
                    .lines()
                    .filter(|l| l.starts_with("-A JAILOC-"))
                    .collect();
                let mut text =
                    String::from("*filter\n:INPUT ACCEPT [0:0]\n:JAILOC-OUTPUT - [0:0]\n");
                for l in out.iter().map(String::as_str).chain(chain) {
                    text.push_str(l);
                    text.push('\n');
                }
                text.push_str("COMMIT\n");
                *state.borrow_mut() = text;
                return Ok(Output {
                    success: true,
                    ..Output::default()
                });
            }
            let stdout = self
                .corrupt_save
                .clone()
                .unwrap_or_else(|| state.borrow().clone());
            Ok(Output {
                success: true,
                stdout,
                stderr: String::new(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::FakeIptables;
    use super::*;

    fn allows() -> Vec<Allow> {
        vec![Allow {
            dest: "198.51.100.7/32".parse().expect("net"),
            port: None,
        }]
    }

    fn resolvers() -> Vec<IpAddr> {
        vec!["127.0.0.11".parse().expect("ip")]
    }

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
        let done = install(
            &fake,
            &probed,
            Egress::Open,
            &allows(),
            &resolvers(),
            &[],
            true,
        )
        .expect("legacy works");
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
        let e = install(
            &broken,
            &probed,
            Egress::Open,
            &allows(),
            &resolvers(),
            &[],
            false,
        )
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
        let first = install(
            &fake,
            &probed,
            Egress::Open,
            &allows(),
            &resolvers(),
            &[],
            true,
        )
        .expect("install");
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
        assert!(first.rules.v4.contains("\n-N JAILOC-OUTPUT\n"));
        let after_first = fake.state_v4.borrow().clone();
        assert_eq!(after_first.matches("-A OUTPUT -j JAILOC-OUTPUT").count(), 1);

        // Second boot in the same network namespace: the fresh restore fails atomically, the
        // chain is refilled from the save's facts: same rules, no second jump.
        fake.calls.borrow_mut().clear();
        let probed = probe(&fake).expect("probe");
        let second = install(
            &fake,
            &probed,
            Egress::Open,
            &allows(),
            &resolvers(),
            &[],
            true,
        )
        .expect("again");
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
        assert!(!second.rules.v4.contains("-I OUTPUT"));
        assert!(second.rules.v4.contains("\n:JAILOC-OUTPUT - [0:0]\n"));
        assert_eq!(*fake.state_v4.borrow(), after_first);
    }

    #[test]
    fn v6_failure_is_fatal_only_with_an_ipv6_address() {
        let fake = FakeIptables {
            failing: vec!["ip6tables-nft-restore"],
            ..FakeIptables::default()
        };
        let probed = probe(&fake).expect("probe");
        let ok = install(
            &fake,
            &probed,
            Egress::Open,
            &allows(),
            &resolvers(),
            &[],
            false,
        )
        .expect("no v6");
        assert!(!ok.v6);
        assert_eq!(ok.warnings, ["IPv6 rules not installed (the container has no IPv6 address): ip6tables-nft-restore: ip6tables-nft-restore: boom"]);
        let probed = probe(&fake).expect("probe");
        let e = install(
            &fake,
            &probed,
            Egress::Open,
            &allows(),
            &resolvers(),
            &[],
            true,
        )
        .expect_err("v6 present");
        assert!(matches!(e, FirewallError::Ipv6Unguarded { .. }), "{e}");
    }

    #[test]
    fn v4_restore_failure_stops_before_anything_else() {
        let fake = FakeIptables {
            failing: vec!["iptables-nft-restore"],
            ..FakeIptables::default()
        };
        let probed = probe(&fake).expect("probe");
        let e = install(
            &fake,
            &probed,
            Egress::Open,
            &allows(),
            &resolvers(),
            &[],
            false,
        )
        .expect_err("fails");
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
            corrupt_save: Some("*filter\n:JAILOC-OUTPUT - [0:0]\n-A OUTPUT -j JAILOC-OUTPUT\n-A JAILOC-OUTPUT -o lo -j ACCEPT\nCOMMIT\n".into()),
            ..FakeIptables::default()
        };
        let probed = probe(&fake).expect("probe");
        let e = install(
            &fake,
            &probed,
            Egress::Open,
            &allows(),
            &resolvers(),
            &[],
            false,
        )
        .expect_err("mismatch");
        assert_eq!(
            e.to_string(),
            "failed to verify the IPv4 rules: rule 2 of JAILOC-OUTPUT differs: expected \
             \"-A JAILOC-OUTPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\", found \"<end>\" (18 rules rendered, 1 installed)"
        );
    }

    #[test]
    fn verify_demands_one_first_jump() {
        let rendered =
            "*filter\n:JAILOC-OUTPUT - [0:0]\n-A JAILOC-OUTPUT -o lo -j ACCEPT\nCOMMIT\n";
        let saved = "*filter\n:JAILOC-OUTPUT - [0:0]\n-A OUTPUT -o eth0 -j ACCEPT\n-A OUTPUT -j JAILOC-OUTPUT\n-A JAILOC-OUTPUT -o lo -j ACCEPT\nCOMMIT\n";
        let e = verify(Family::V4, rendered, saved)
            .expect_err("not first")
            .to_string();
        assert_eq!(e, "failed to verify the IPv4 rules: OUTPUT must jump to JAILOC-OUTPUT exactly once, as its first rule (found 1 jumps, first: false)");
        assert!(verify(Family::V4, rendered, "*filter\nCOMMIT\n").is_err());
    }

    #[test]
    fn verify_reads_a_save_that_prints_rules_its_own_way_and_names_the_differing_chain() {
        let rendered = "*filter\n-N JAILOC-OUTPUT\n-N JAILOC-A6-0\n\
            -A JAILOC-OUTPUT -d 2001:db8::/32 -j JAILOC-A6-0\n\
            -A JAILOC-A6-0 -d 2001:db8::5/128 -p tcp -m tcp --dport 443 -j ACCEPT\n\
            -A JAILOC-A6-0 -d 2001:db8::6/128 -j ACCEPT\n-I OUTPUT 1 -j JAILOC-OUTPUT\nCOMMIT\n";
        // Chains in another order, an address in another spelling, a protocol number, no
        // implicit `-m tcp`, trailing blanks: the same rules.
        let saved = "*filter\n:OUTPUT ACCEPT [0:0]\n:JAILOC-A6-0 - [0:0]\n:JAILOC-OUTPUT - [0:0]\n\
            -A OUTPUT -j JAILOC-OUTPUT\n\
            -A JAILOC-A6-0 -d 2001:DB8:0::5/128 -p 6 --dport 443 -j ACCEPT  \n\
            -A JAILOC-A6-0 -d 2001:db8::6/128 -j ACCEPT\n\
            -A JAILOC-OUTPUT -d 2001:db8::/32 -j JAILOC-A6-0\nCOMMIT\n";
        verify(Family::V6, rendered, saved).expect("the same rules");
        // One address off in the sub-chain: the error points there, not at JAILOC-OUTPUT.
        let wrong = saved.replace("2001:db8::6/128", "2001:db8::7/128");
        let e = verify(Family::V6, rendered, &wrong).expect_err("differs");
        assert_eq!(
            e.to_string(),
            "failed to verify the IPv6 rules: rule 2 of JAILOC-A6-0 differs: expected \
             \"-A JAILOC-A6-0 -d 2001:db8::6/128 -j ACCEPT\", found \
             \"-A JAILOC-A6-0 -d 2001:db8::7/128 -j ACCEPT\" (3 rules rendered, 3 installed)"
        );
    }

    #[test]
    fn ipv6_presence_ignores_loopback() {
        let lo = "00000000000000000000000000000001 01 80 10 80       lo\n";
        let eth = "fe800000000000000000000000000001 02 40 20 80     eth0\n";
        assert!(!ipv6_present(""));
        assert!(!ipv6_present(lo));
        assert!(ipv6_present(&format!("{lo}{eth}")));
    }
}
