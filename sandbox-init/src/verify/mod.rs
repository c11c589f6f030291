//! `--verify`: proves the walls from inside a running container, as the agent.
//!
//! Started by the engine as root (`exec --user 0:0 ... sandbox-init --verify`, what `jailoc
//! verify` runs), it first checks as root that the rules are in place ([`rules`]), then drops
//! to the agent with the boot's own drop (uid/gid, no groups, no capability in any set,
//! `no_new_privs`, the seccomp filter: [`privilege::drop_agent`], as `--enter` and `--health`
//! do) and, as the agent, reads back who it is ([`identity`]) and probes what the walls must
//! refuse ([`checks`], [`probe`]), each within [`probe::BOUND`], several at a time. Prints a
//! table or JSON ([`report`]); exits 0 when every check passed, else 1.
//!
//! | file | job |
//! |---|---|
//! | `checks.rs` | what is probed, from the policy, the plan and the container's link (pure) |
//! | `probe.rs` | running one probe, and what its result means (`classify`, pure) |
//! | `rules.rs` | the rules in place: the boot's plan against `iptables-save` (as root) |
//! | `identity.rs` | who the probes ran as, from `/proc/self/status` (pure) |
//! | `addrs.rs` | the container's own addresses and its IPv6 scope (pure parsers) |
//! | `report.rs` | the table and the JSON (pure) |

mod addrs;
mod checks;
mod identity;
mod probe;
mod report;
mod rules;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::boot::{self, Paths};
use crate::cli::VerifyArgs;
use crate::dns::allow::Allowlist;
use crate::dns::conf::{HostsFile, ResolvConf};
use crate::exit;
use crate::firewall::{self, CommandRunner, Plan, SystemRunner};
use crate::log::{self, Log};
use crate::policy::{self, PolicyError};
use crate::privilege::{self, DropFailure, PrivilegeError};
use crate::sys::{self, Errno, Sys};
use checks::{Check, Inputs, Probe};
pub(crate) use report::Row;

/// Probes run at most this many at a time.
const WORKERS: usize = 16;

/// Why verify could not run its checks (exit 1, like a failed check).
#[derive(Debug, thiserror::Error)]
pub(crate) enum VerifyError {
    #[error("failed to load the policy: {0}")]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Privilege(#[from] PrivilegeError),
    #[error("failed to {}: {}", .0.step.describe(), .0.errno)]
    Drop(DropFailure),
    #[error("failed to make verify not dumpable: {0}")]
    Dumpable(Errno),
}

/// Files verify reads, as parameters so tests can point them elsewhere.
#[derive(Debug, Clone)]
pub(crate) struct VerifyPaths {
    /// The boot's own files (resolv.conf, hosts, routes, `if_inet6`).
    pub boot: Paths,
    /// `/proc/net/fib_trie`: the container's own IPv4 addresses.
    pub fib_trie: PathBuf,
    /// `/proc/sys/kernel/cap_last_cap`.
    pub cap_last_cap: PathBuf,
    /// `/proc/self/status`, read after the drop.
    pub status: PathBuf,
}

impl VerifyPaths {
    fn system() -> Self {
        VerifyPaths {
            boot: Paths::system(),
            fib_trie: "/proc/net/fib_trie".into(),
            cap_last_cap: "/proc/sys/kernel/cap_last_cap".into(),
            status: "/proc/self/status".into(),
        }
    }
}

/// `sandbox-init --verify [--json]`: prints the result and returns the exit code (0 when every
/// check passed, else 1).
pub fn main(args: &VerifyArgs, log: &Log) -> i32 {
    let runner = SystemRunner::new(*log);
    match run(args, &sys::RealSys, &runner, &VerifyPaths::system()) {
        Ok(rows) => {
            let text = if args.json {
                report::json(&rows)
            } else {
                report::table(&rows)
            };
            // Output that was asked for; a reader that went away changes nothing.
            let _ = log::stdout(&text);
            if rows.iter().all(|r| r.pass) {
                exit::SUCCESS
            } else {
                exit::CHECK_FAILED
            }
        }
        Err(e) => {
            log.error(&e.to_string());
            exit::CHECK_FAILED
        }
    }
}

/// The sequence, top to bottom; the rows in the order printed.
fn run(
    args: &VerifyArgs,
    sys: &impl Sys,
    runner: &dyn CommandRunner,
    paths: &VerifyPaths,
) -> Result<Vec<Row>, VerifyError> {
    // 1. The policy, as the boot reads it: the agent's ids and what the plan is made of.
    let policy = policy::load(&args.config_dir)?;
    // 2. The drop must be possible before anything runs as root: a container where verify could
    //    not become the agent runs no iptables and probes nothing.
    let agent = (policy.agent.uid, policy.agent.gid);
    let ready = privilege::ready_to_drop(sys, agent.0, agent.1, &paths.cap_last_cap)?;
    // 3. The plan the boot would install now, from the same files, joined the same way.
    let read = |path: &Path| boot::read_or_empty(path);
    let hosts = HostsFile::parse(&read(&paths.boot.hosts));
    let resolv_conf = ResolvConf::parse(&read(&paths.boot.resolv_conf));
    let plan = Plan::new(
        &policy,
        &hosts,
        &resolv_conf.nameservers,
        &boot::read_routes(&paths.boot),
    );
    let if_inet6 = read(&paths.boot.if_inet6);
    let ipv6 = firewall::ipv6_present(&if_inet6);
    // 4. As root: the rules in place (and what the gate has opened).
    let rules = rules::check(runner, &plan, ipv6);
    // 5. What to probe, decided while the files are still readable as root.
    let mut open = plan.allows.clone();
    open.extend(rules.opened.iter().copied());
    let local = addrs::local(&read(&paths.fib_trie), &if_inet6);
    let names = Allowlist::new(policy.hosts.clone());
    let checks = checks::checks(&Inputs {
        egress: policy.egress,
        open: &open,
        extras: &plan.extras,
        names: &names,
        resolver: resolv_conf.nameservers.first().copied(),
        local: &local,
        ipv6,
        scope: addrs::scope(&if_inet6),
    });
    // 6. The agent's drop, applied to this process (still one thread: capabilities and
    //    no_new_privs are per thread, and the probes' threads inherit what it ends with).
    let drop = ready.agent_drop();
    privilege::drop_agent(sys, &drop).map_err(VerifyError::Drop)?;
    sys.set_not_dumpable().map_err(VerifyError::Dumpable)?;
    // 7. As the agent: who this is, as the kernel says, then the probes.
    let mut rows = rules.rows;
    rows.extend(identity::rows(
        &read(&paths.status),
        agent.0,
        agent.1,
        drop.filter.is_some(),
    ));
    rows.extend(run_probes(&checks, probe::BOUND));
    Ok(rows)
}

/// Runs every check, [`WORKERS`] at a time (this thread among them); rows in `checks` order.
fn run_probes(checks: &[Check], bound: Duration) -> Vec<Row> {
    let next = AtomicUsize::new(0);
    let rows: Vec<Mutex<Option<Row>>> = checks.iter().map(|_| Mutex::new(None)).collect();
    let work = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(check) = checks.get(i) else {
            break;
        };
        let row = probe_row(check, bound);
        if let Ok(mut slot) = rows[i].lock() {
            *slot = Some(row);
        }
    };
    std::thread::scope(|scope| {
        for _ in 1..WORKERS.min(checks.len()) {
            // A thread that cannot be started leaves its share to the others.
            let _ = std::thread::Builder::new().spawn_scoped(scope, work);
        }
        work();
    });
    rows.into_iter()
        .zip(checks)
        .map(|(slot, check)| {
            slot.into_inner().ok().flatten().unwrap_or_else(|| Row {
                check: check.name.clone(),
                target: check.probe.target(),
                expected: check.expected().to_owned(),
                got: "not run".to_owned(),
                ms: None,
                pass: false,
            })
        })
        .collect()
}

/// One check, run and classified.
fn probe_row(check: &Check, bound: Duration) -> Row {
    let mut row = Row {
        check: check.name.clone(),
        target: check.probe.target(),
        expected: check.expected().to_owned(),
        got: String::new(),
        ms: None,
        pass: true,
    };
    if let Probe::Skip(why) = &check.probe {
        row.got = format!("skipped: {why}");
        return row;
    }
    let started = Instant::now();
    let attempt = probe::attempt(&check.probe, bound);
    (row.pass, row.got) = probe::classify(&check.probe, &attempt);
    row.ms = Some(report::elapsed_ms(started));
    row
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::fake::FakeIptables;
    use crate::privilege::double::{RecordingSys, ALL};

    #[test]
    fn nothing_runs_as_root_when_the_drop_cannot_happen() {
        // A container without CAP_SETUID: verify could never become the agent, so it runs no
        // iptables program and probes nothing.
        let dir = tempfile::tempdir().expect("tempdir");
        let last = dir.path().join("cap_last_cap");
        std::fs::write(&last, "40\n").expect("write");
        let sys = RecordingSys::with_caps(ALL & !sys::cap_bit(sys::CAP_SETUID));
        let runner = FakeIptables::default();
        let mut paths = VerifyPaths::system();
        paths.cap_last_cap = last;
        let args = VerifyArgs {
            config_dir: dir.path().join("no-config"),
            json: false,
        };
        let e = run(&args, &sys, &runner, &paths).expect_err("no drop");
        assert!(
            e.to_string().contains("the container lacks CAP_SETUID"),
            "{e}"
        );
        assert!(runner.calls.borrow().is_empty());
    }
}
