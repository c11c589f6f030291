//! The boot sequence, top to bottom. Each step fails closed: the agent never starts after an error.

use crate::cli::{Args, UsageError};
use crate::dns::conf::{HostsFile, ResolvConf};
use crate::dns::gate::{self, GateConfig};
use crate::egress::{self, Reasons, RecordConfig};
use crate::exit;
use crate::firewall::link::Routes;
use crate::firewall::{self, CommandRunner, FirewallError, Plan, SystemRunner};
use crate::policy::{self, Policy, PolicyError};
use std::ffi::OsString;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::home::{self, HomeError};
use crate::log::Log;
use crate::privilege::{self, PrivilegeError};
use crate::secrets::{self, SecretsError};
use crate::supervisor::{self, EarlySignals, Prepared, SpawnError, Supervisor};
use crate::sys;
use crate::trust::Trust;

/// A step of the boot (or of `--enter`) that failed: the one error at sandbox-init's edge.
/// [`exit::for_error`] maps it to the exit code; its text is the one line logged.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error(transparent)]
    Usage(#[from] UsageError),
    #[error("failed to load the policy: {0}")]
    Policy(#[from] PolicyError),
    #[error("failed to set up the firewall: {0}")]
    Firewall(#[from] FirewallError),
    #[error(transparent)]
    Gate(#[from] gate::StartError),
    #[error("failed to accept agent uid {0}: it is the DNS gate's; choose another [agent] uid")]
    GateUid(u32),
    #[error("failed to print the plan: {0}")]
    PrintPlan(io::Error),
    #[error("failed to block signals at start: {0}")]
    Signals(sys::Errno),
    #[error("failed to mark inherited file descriptors close-on-exec: {0}")]
    Fds(sys::Errno),
    #[error("not starting the agent: received {} before it was started", supervisor::signal_name(*.signal))]
    Stopped { signal: i32 },
    #[error(transparent)]
    Privilege(#[from] PrivilegeError),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error(transparent)]
    Home(#[from] HomeError),
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    #[error(transparent)]
    OwnPath(#[from] OwnPathError),
}

/// Host paths the boot reads, as parameters so tests can point them elsewhere.
#[derive(Debug, Clone)]
pub(crate) struct Paths {
    pub resolv_conf: PathBuf,
    pub hosts: PathBuf,
    /// `/proc/net/if_inet6`: decides whether a missing IPv6 firewall is fatal.
    pub if_inet6: PathBuf,
    /// `/proc/net/route` and `/proc/net/ipv6_route`: the container's gateways and on-link
    /// prefixes, refused like the blocked ranges.
    pub route: PathBuf,
    pub ipv6_route: PathBuf,
}

impl Paths {
    /// The real machine's paths.
    pub(crate) fn system() -> Self {
        Paths {
            resolv_conf: "/etc/resolv.conf".into(),
            hosts: "/etc/hosts".into(),
            if_inet6: "/proc/net/if_inet6".into(),
            route: "/proc/net/route".into(),
            ipv6_route: "/proc/net/ipv6_route".into(),
        }
    }
}

/// Steps 6-8: receive what they need, owned (everything else of steps 1-5 has been dropped by
/// then), and return the exit code sandbox-init ends with.
pub(crate) type Handoff<'a> = &'a dyn Fn(AgentStart, &Log) -> i32;

/// A stop signal (SIGTERM, SIGINT, ...) received since the last call, if any.
pub(crate) type StopCheck<'a> = &'a dyn Fn() -> Option<i32>;

/// Everything the boot touches the world through.
pub(crate) struct Seams<'a> {
    pub runner: &'a dyn CommandRunner,
    pub paths: Paths,
    pub log: Log,
    /// Where `--print-plan` writes.
    pub out: &'a mut dyn Write,
    /// Asked between steps: a stop signal means the agent is never started (exit 128+N).
    pub stop: StopCheck<'a>,
    /// Steps 6-8.
    pub handoff: Handoff<'a>,
}

impl std::fmt::Debug for Seams<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seams")
            .field("paths", &self.paths)
            .field("log", &self.log)
            .finish()
    }
}

/// The boot on the real machine (`sandbox-init [--print-plan] [--] COMMAND`): the system's
/// seams, and the process's exit code as the result.
pub fn main(args: &Args, log: Log) -> i32 {
    match boot(args, log) {
        Ok(code) => code,
        Err(e) => fail(&log, &e),
    }
}

/// Logs `error`, its one line, and returns the exit code [`exit::for_error`] maps it to.
pub fn fail(log: &Log, error: &BootError) -> i32 {
    log.error(&error.to_string());
    exit::for_error(error)
}

fn boot(args: &Args, log: Log) -> Result<i32, BootError> {
    // First thing of the boot, before the policy is even read: block the signals PID 1
    // supervises. Until then the kernel drops `docker stop`'s SIGTERM to a pid namespace's init
    // (default disposition), and Docker would wait 10 s and SIGKILL. Blocked, they stay
    // pending: a stop signal ends the boot between steps (and cuts DNS short), the rest reach
    // the agent.
    let early = EarlySignals::block().map_err(BootError::Signals)?;
    // Nothing sandbox-init inherited may reach a program it starts (iptables as root, the
    // agent): every descriptor above 2 becomes close-on-exec (what it opens itself already is).
    sys::Sys::cloexec_fds_from(&sys::RealSys, 3, sys::max_fd()).map_err(BootError::Fds)?;
    let runner = match std::env::var_os(policy::FIREWALL_ENV) {
        Some(v) if v == "iptables" => SystemRunner::new(log).without_netlink(),
        Some(v) if v != "netlink" => {
            log.warn(&format!(
                "{}={}: unknown (iptables or netlink): writing the rules over netlink where possible",
                policy::FIREWALL_ENV,
                v.to_string_lossy()
            ));
            SystemRunner::new(log)
        }
        _ => SystemRunner::new(log),
    };
    let mut stdout = io::stdout();
    let init = |start: AgentStart, log: &Log| start_agent(start, &InitPaths::default(), log);
    let stop = || early.take_stop();
    let mut seams = Seams {
        runner: &runner,
        paths: Paths::system(),
        log,
        out: &mut stdout,
        stop: &stop,
        handoff: &init,
    };
    run(args, &mut seams)
}

/// The boot sequence. Returns the exit code: the agent's, or 0 after `--print-plan`.
pub(crate) fn run(args: &Args, seams: &mut Seams<'_>) -> Result<i32, BootError> {
    // Steps 1-5 in their own function, so that everything they allocated (policy, resolved
    // addresses, rule sets, iptables output) is freed before PID 1 settles into supervising.
    match prepare(args, seams)? {
        Some(start) => Ok((seams.handoff)(start, &seams.log)),
        None => Ok(0),
    }
}

/// A stop signal that arrived during the boot ends it: the agent is never started.
fn check_stop(seams: &Seams<'_>) -> Result<(), BootError> {
    match (seams.stop)() {
        Some(signal) => Err(BootError::Stopped { signal }),
        None => Ok(()),
    }
}

/// Steps 1-5; `None` when `--print-plan` has printed the plan instead.
fn prepare(args: &Args, seams: &mut Seams<'_>) -> Result<Option<AgentStart>, BootError> {
    let log = seams.log;
    let started = Instant::now();

    // Step 1 — load and validate the policy. First, because nothing may change on the machine
    // on the strength of a policy that turns out to be invalid (exit 78 touches nothing).
    let policy = policy::load(&args.config_dir)?;
    if !args.config_dir.is_dir() {
        log.warn(&format!(
            "config dir {} does not exist: using the default policy (open egress)",
            args.config_dir.display()
        ));
    }
    log.debug(&format!(
        "policy loaded from {}: {} egress, {} hosts, {} networks, in {:.1} ms",
        args.config_dir.display(),
        policy.egress,
        policy.hosts.len(),
        policy.networks.len(),
        started.elapsed().as_secs_f64() * 1000.0
    ));

    check_stop(seams)?;

    if args.print_plan {
        return print_plan(&policy, seams).map(|()| None);
    }

    // Step 2 — probe the firewall backend: a container that cannot be firewalled fails at
    // once (71).
    let probed = firewall::probe(seams.runner)?;
    log.debug(&format!(
        "firewall backends installed: {} ({:?})",
        probed
            .candidates
            .iter()
            .map(|b| b.name)
            .collect::<Vec<_>>()
            .join(", "),
        started.elapsed()
    ));
    check_stop(seams)?;

    // Step 3 — read resolv.conf (where the gate's queries go) and the hosts file (names the
    // agent resolves without DNS). No DNS at boot: names are the gate's, as they are asked.
    let (hosts, resolv_conf) = read_name_files(seams);

    // Steps 4 and 5 — plan both rule sets (pure), apply each family with one restore, and
    // read them back. Before anything of the agent exists, so its first packet is filtered.
    // Besides the built-in ranges they refuse the policy's `blocked_networks` and the
    // container's gateways and on-link prefixes, read now (the routes are the container's).
    let plan = Plan::new(
        &policy,
        &hosts,
        &resolv_conf.nameservers,
        &read_routes(&seams.paths),
    );
    for warning in &plan.warnings {
        log.warn(warning);
    }
    let ipv6_present = firewall::ipv6_present(&read_or_empty(&seams.paths.if_inet6));
    let installed = firewall::install(seams.runner, &probed, &plan, ipv6_present)?;
    for warning in &installed.warnings {
        log.warn(warning);
    }
    if let Some(why) = &installed.fallback {
        log.debug(&format!(
            "nf_tables over netlink: {why}: iptables takes over"
        ));
    }
    let how = if installed.netlink {
        "over netlink".to_owned()
    } else {
        format!("{} iptables processes", installed.processes)
    };
    log.info(&format!(
        "firewall {} ({} backend, {} egress, {} allowlisted destinations, IPv6 {}, {how}) in {:.1} ms",
        if installed.kept { "kept" } else { "installed" },
        installed.backend.name,
        policy.egress,
        plan.allows.len(),
        if installed.v6 { "guarded" } else { "absent" },
        started.elapsed().as_secs_f64() * 1000.0
    ));

    // Last look before the agent exists. A stop signal after this point stays pending and is
    // forwarded to the agent right after the spawn, like any signal during supervision.
    check_stop(seams)?;

    // Steps 6-8 (home ownership, secrets, privilege drop, spawn, supervise) take over through
    // the handoff, with only what they need.
    Ok(Some(AgentStart {
        config_dir: args.config_dir.clone(),
        uid: policy.agent.uid,
        gid: policy.agent.gid,
        home: policy.agent.home.clone(),
        command: args.command.clone(),
        gate: Some(gate_config(policy, resolv_conf, &installed, &plan)),
    }))
}

/// What the DNS gate runs with: the allowlist (moved, not indexed: the gate indexes it after the
/// fork), the networks (for metadata answers), the resolvers, the upstream bound, the backend
/// the rules went in with, and the egress record's reasons (the plan's extra destinations:
/// gateways, on-link prefixes, `blocked_networks`); the record's file is added by step 6, which
/// makes its directory.
fn gate_config(
    policy: Policy,
    resolv_conf: ResolvConf,
    installed: &firewall::Installed,
    plan: &Plan,
) -> GateConfig {
    GateConfig {
        egress: policy.egress,
        hosts: policy.hosts,
        networks: policy.networks,
        resolvers: resolv_conf.nameservers,
        timeout: policy.resolve_timeout,
        backend: installed.backend,
        v6: installed.v6,
        stale_names: installed.kept,
        netlink: installed.netlink,
        record: RecordConfig {
            file: None,
            reasons: Reasons::new(policy.egress, &plan.extras),
        },
    }
}

/// Step 3: resolv.conf and the hosts file, read once, with no network I/O.
fn read_name_files(seams: &Seams<'_>) -> (HostsFile, ResolvConf) {
    let resolv_conf = ResolvConf::parse(&read_or_empty(&seams.paths.resolv_conf));
    if resolv_conf.nameservers.is_empty() {
        seams.log.warn(&format!(
            "no nameserver in {}: the DNS gate answers every name SERVFAIL",
            seams.paths.resolv_conf.display()
        ));
    }
    let hosts = HostsFile::parse(&read_or_empty(&seams.paths.hosts));
    (hosts, resolv_conf)
}

pub(crate) fn read_or_empty(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Reads at most this much of a routing file (a container's are a few hundred bytes).
const ROUTES_READ_LIMIT: u64 = 1 << 20;

/// The container's routing tables (its gateways and on-link prefixes, refused besides the
/// built-in ranges). A file that cannot be read (no IPv6 in the kernel) contributes nothing.
pub(crate) fn read_routes(paths: &Paths) -> Routes {
    let read = |path: &Path| {
        use std::io::Read;
        let mut text = String::new();
        if let Ok(file) = std::fs::File::open(path) {
            let _ = file.take(ROUTES_READ_LIMIT).read_to_string(&mut text);
        }
        text
    };
    firewall::link::read(&read(&paths.route), &read(&paths.ipv6_route))
}

/// `--print-plan`: everything the boot would do, changing nothing (no iptables is run, no DNS
/// is sent). The plan is the boot's own ([`Plan::new`]), in the fresh-container form.
fn print_plan(policy: &Policy, seams: &mut Seams<'_>) -> Result<(), BootError> {
    let (hosts, resolv_conf) = read_name_files(seams);
    let plan = Plan::new(
        policy,
        &hosts,
        &resolv_conf.nameservers,
        &read_routes(&seams.paths),
    );
    let agent = &policy.agent;
    let mut text = format!(
        "# agent: uid {} gid {} home {}\n",
        agent.uid,
        agent.gid,
        agent.home.display()
    );
    text.push_str(&home_plan(&agent.home, agent.uid, agent.gid));
    text.push_str(&gate_plan(policy, &resolv_conf));
    for warning in &plan.warnings {
        text.push_str(&format!("# warning: {warning}\n"));
    }
    text.push_str(&blocked_plan(&plan.extras, &seams.paths));
    let payloads = plan.fresh_payloads();
    text.push_str("# ---- IPv4: iptables-restore --noflush\n");
    text.push_str(&payloads.v4);
    text.push_str("# ---- IPv6: ip6tables-restore --noflush\n");
    text.push_str(&payloads.v6);
    seams
        .out
        .write_all(text.as_bytes())
        .map_err(BootError::PrintPlan)
}

/// The DNS gate as `--print-plan` shows it: who it runs as, where it listens and asks, and what
/// it does with a name.
fn gate_plan(policy: &Policy, resolv_conf: &ResolvConf) -> String {
    use crate::policy::{HostRef, GATE_PORT, GATE_UID};
    let upstream: Vec<String> = resolv_conf
        .nameservers
        .iter()
        .map(ToString::to_string)
        .collect();
    let mut hosts = policy.hosts.clone();
    hosts.dedup();
    let names: Vec<String> = hosts
        .iter()
        .filter(|h| !matches!(h.host, HostRef::Addr(_)))
        .map(|h| h.to_string())
        .collect();
    let mut text = format!(
        "# dns gate: uid {GATE_UID}, CAP_NET_ADMIN only; all DNS (53/udp+tcp, any address) goes to 127.0.0.1:{GATE_PORT} and [::1]:{GATE_PORT}\n\
         # dns gate: asks {} (timeout {} ms)\n",
        if upstream.is_empty() {
            "nobody (no nameserver in resolv.conf: every name gets SERVFAIL)".to_owned()
        } else {
            upstream.join(" ")
        },
        policy.resolve_timeout.as_millis()
    );
    text.push_str(&match policy.egress {
        crate::policy::Egress::Allowlist => {
            format!(
            "# dns gate: answers NXDOMAIN itself, never asking upstream, for every name but {}\n",
            if names.is_empty() { "none".to_owned() } else { names.join(" ") }
        )
        }
        crate::policy::Egress::Open => "# dns gate: forwards every name\n".to_owned(),
    });
    if !names.is_empty() {
        text.push_str(&format!(
            "# dns gate: opens the answered addresses of {} for their TTL + {} s\n",
            names.join(" "),
            crate::dns::open::GRACE.as_secs()
        ));
    }
    text
}

/// The extra blocked destinations as `--print-plan` shows them: each with where it came from,
/// and whether a built-in range holds it already (then it needs no rule of its own).
fn blocked_plan(extras: &[firewall::link::Extra], paths: &Paths) -> String {
    use firewall::link::Origin;
    let mut text = String::new();
    for extra in extras {
        let from = match (&extra.origin, extra.dest) {
            (Origin::Policy, _) => "policy.toml".to_owned(),
            (_, ipnet::IpNet::V4(_)) => paths.route.display().to_string(),
            (_, ipnet::IpNet::V6(_)) => paths.ipv6_route.display().to_string(),
        };
        let covered = match firewall::ranges::covering(extra.dest) {
            Some(range) => format!(": already blocked as part of {range}"),
            None => String::new(),
        };
        text.push_str(&format!(
            "# blocked {} ({}, from {from}){covered}\n",
            extra.dest, extra.origin
        ));
    }
    text
}

/// Step 6 as `--print-plan` shows it: only the dirs that would really be created or re-owned
/// (read-only: [`home::plan`] only looks).
fn home_plan(home: &Path, uid: u32, gid: u32) -> String {
    let fixes = match home::plan(home, uid, gid) {
        Ok(fixes) => fixes,
        Err(e) => return format!("# warning: {e}\n"),
    };
    let mut text = String::new();
    for fix in fixes {
        let path = fix.path.display();
        match fix.action {
            home::Action::Create => {
                text.push_str(&format!("# create {path} owned by {uid}:{gid}\n"))
            }
            home::Action::Chown { .. } => text.push_str(&format!(
                "# chown {path} and everything below it to {uid}:{gid} (its owner is wrong)\n"
            )),
            home::Action::SkipSymlink => text.push_str(&format!(
                "# warning: {path} is a symlink: it is left alone\n"
            )),
            home::Action::SkipNotADirectory => text.push_str(&format!(
                "# warning: {path} is not a directory: it is left alone\n"
            )),
            home::Action::AlreadyOwned => {}
        }
    }
    if text.is_empty() {
        text = format!(
            "# home dirs under {}: nothing to create or chown\n",
            home.display()
        );
    }
    text
}

// ---- Steps 6-8: home ownership, secrets, privilege drop, spawn, supervise.

/// What steps 6–8 need from steps 1–5. Owned, so everything else (policy, resolver, rule sets)
/// can be dropped before PID 1 settles into supervising (memory target: ≤ 2 MiB RSS).
#[derive(Debug, Clone)]
pub(crate) struct AgentStart {
    /// The policy dir (for `secret-env`).
    pub config_dir: PathBuf,
    /// The agent's uid (policy `[agent] uid`, default 1000).
    pub uid: u32,
    /// The agent's gid (policy `[agent] gid`, default 1000).
    pub gid: u32,
    /// The agent's home (policy `[agent] home`, default `/home/agent`).
    pub home: PathBuf,
    /// The agent's command line.
    pub command: Vec<OsString>,
    /// The DNS gate to start before the agent (`None` in tests that stand in for the boot).
    pub gate: Option<GateConfig>,
}

/// Host paths steps 6–8 read (parameters so tests can point them elsewhere).
#[derive(Debug, Clone)]
pub(crate) struct InitPaths {
    /// Where secrets are mounted (`/run/secrets`).
    pub secrets_dir: PathBuf,
    /// What root may read (`/` and root's own files; tests stand in a directory and their uid).
    pub trust: Trust,
    /// The user database (`/etc/passwd`), for the agent's `USER`.
    pub passwd: PathBuf,
    /// The kernel's highest capability (`/proc/sys/kernel/cap_last_cap`).
    pub cap_last_cap: PathBuf,
    /// Where this sandbox-init runs from (`/proc/self/exe`), checked by [`check_own_path`];
    /// `None` skips the check (tests).
    pub exe: Option<PathBuf>,
    /// The egress record's directory (`/run/jailoc-egress`), made for the gate before it starts.
    pub egress_dir: PathBuf,
}

impl Default for InitPaths {
    fn default() -> Self {
        Self {
            secrets_dir: PathBuf::from(crate::policy::SECRETS_DIR),
            trust: Trust::system(),
            passwd: PathBuf::from("/etc/passwd"),
            cap_last_cap: PathBuf::from("/proc/sys/kernel/cap_last_cap"),
            exe: std::env::current_exe().ok(),
            egress_dir: PathBuf::from(crate::policy::EGRESS_DIR),
        }
    }
}

/// The path sandbox-init runs from can be swapped by someone other than root.
#[derive(Debug, thiserror::Error)]
#[error(
    "failed to run from {}: {source}; the engine runs this path as root with the container's \
     capabilities (the health check, every `jailoc shell`), and whoever can rename a directory \
     above it chooses what runs there: make the image's directories root's, not writable by \
     group or others",
    .exe.display()
)]
pub struct OwnPathError {
    /// The mounted sandbox-init.
    pub exe: PathBuf,
    /// What is wrong with a directory above it.
    pub source: crate::trust::TrustError,
}

/// The engine starts sandbox-init by path as root — jailoc's compose bind-mounts it at
/// `/usr/local/bin/sandbox-init` and names that path in the health check (every few seconds)
/// and in every `exec` (`--enter`). The mount point itself cannot be renamed or removed from
/// inside the container, but a directory above it can be, by whoever may write the directory
/// holding it: an image that gives the agent `/usr/local` lets it move `/usr/local/bin` aside,
/// put its own `sandbox-init` in a new one, and have the next health check run that as root
/// with NET_ADMIN. So when sandbox-init runs from a mount point (or where that cannot be told),
/// every directory from `/` down to the one holding its own directory must be root's alone
/// ([`Trust::dir`]); its own directory may be anyone's (the mount point in it stays put). A
/// sandbox-init that is not mounted (a program of the image) is left to the image.
pub(crate) fn check_own_path(exe: &Path, trust: &Trust) -> Result<(), OwnPathError> {
    let Some(dir) = exe.parent() else {
        return Ok(());
    };
    if !mounted_here(exe) {
        return Ok(());
    }
    let Some(above) = dir.parent() else {
        return Ok(());
    };
    trust.dir(above).map(drop).map_err(|source| OwnPathError {
        exe: exe.to_owned(),
        source,
    })
}

/// Whether `path` is a mount point: another file system or mount than its directory's; true
/// when it cannot be told (no mount ids, same file system), so the check above then runs.
fn mounted_here(path: &Path) -> bool {
    use std::os::fd::AsFd;
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return true;
    };
    let Ok(fd) = sys::open_dir(dir) else {
        return true;
    };
    match (
        sys::stat_at(fd.as_fd(), name),
        sys::stat_at(fd.as_fd(), std::ffi::OsStr::new("")),
    ) {
        (Ok(file), Ok(dir)) => match (file.mnt_id, dir.mnt_id) {
            (Some(a), Some(b)) => a != b || file.dev != dir.dev,
            _ => true,
        },
        _ => true,
    }
}

/// Steps 6–8: fix the home dirs, start the agent without any privilege, supervise it. Returns
/// sandbox-init's exit code: the agent's, or 71/78/126/127 if it could not be started.
pub(crate) fn start_agent(start: AgentStart, paths: &InitPaths, log: &Log) -> i32 {
    match spawn_agent(start, paths, log) {
        // Step 8: be init until the agent is gone; from here on errors are logged, never fatal.
        Ok(supervisor) => supervisor.run(),
        Err(e) => fail(log, &e),
    }
}

/// Steps 6 and 7, each refusing before anything is changed or spawned.
fn spawn_agent(
    mut start: AgentStart,
    paths: &InitPaths,
    log: &Log,
) -> Result<Supervisor, BootError> {
    let sys = sys::RealSys;

    // The path the engine runs as root (health check, `--enter`) must be root's to change.
    if let Some(exe) = &paths.exe {
        check_own_path(exe, &paths.trust)?;
    }

    // Before anything changes: can we drop everything? Without CAP_SETPCAP/SETUID/SETGID the
    // drop would be partial, so refuse here (71) while nothing has been touched yet.
    let ready = privilege::ready_to_drop(&sys, start.uid, start.gid, &paths.cap_last_cap)?;

    // Secrets next, still read-only: a missing or invalid one must stop the boot before
    // anything is changed. Read as root (they are root-only files), before the drop.
    let secret_env = secrets::load(&start.config_dir, &paths.secrets_dir, &paths.trust)?;

    // Step 6: home dirs, as root and before the agent exists (nobody can race the walk).
    let mut warn = |w: String| log.warn(&w);
    for f in home::fix(&start.home, start.uid, start.gid, &mut warn)? {
        log.debug(&format!("home: {} {:?}", f.path.display(), f.action));
    }

    // The DNS gate, before the agent: its own process, its own uid, NET_ADMIN alone. Forked
    // while PID 1 still holds the capabilities it hands on.
    // The gate's config outlives the spawn of the agent: freeing it now would copy every page
    // of a long allowlist PID 1 shares with the freshly forked gate, on the agent's time.
    let mut gate_config = start.gate.take();
    let gate = match &mut gate_config {
        Some(config) => {
            if start.uid == crate::policy::GATE_UID {
                return Err(BootError::GateUid(start.uid));
            }
            // The egress record's directory, as root and before the gate: the gate's to write,
            // the agent's to read only. Without it (no /run, read-only) the record still goes
            // to the log.
            let id = crate::policy::GATE_UID;
            config.record.file = match egress::dir::prepare(&paths.egress_dir, id, id, log) {
                Ok(file) => Some(file),
                Err(e) => {
                    log.warn(&format!("egress: {e}: the record goes to the log only"));
                    None
                }
            };
            Some(gate::start(config, ready.agent_drop().last_cap, *log)?)
        }
        None => None,
    };

    // Step 7: the environment and the exec are prepared in full, then the child drops
    // everything and execs.
    let user = secrets::user_name(&paths.passwd, start.uid);
    let env = secrets::agent_environment(std::env::vars_os(), &start.home, &user, secret_env);
    let prepared = Prepared::new(&start.command, &env)?;
    drop(env);
    let supervisor = match supervisor::spawn(&ready, prepared, *log, gate) {
        Ok(supervisor) => supervisor,
        Err(e) => {
            if let Some(pid) = gate {
                let _ = sys::kill(pid, libc::SIGKILL);
                let _ = sys::wait_blocking(pid);
            }
            return Err(e.into());
        }
    };
    drop(gate_config);
    drop(start);
    Ok(supervisor)
}

/// Steps 6-8 refuse before changing anything or spawning (the spawning paths themselves are
/// covered by the privileged tests in `tests/tests/pid1.rs` and `privilege.rs`).
#[cfg(test)]
mod init_steps_tests {
    use super::*;
    use crate::sys::Sys;

    struct Tmp(PathBuf);
    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn setup(tag: &str) -> (Tmp, AgentStart, InitPaths) {
        let dir =
            std::env::temp_dir().join(format!("sandbox-init-boot-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("config")).expect("mkdir");
        std::fs::create_dir_all(dir.join("secrets")).expect("mkdir");
        std::fs::write(dir.join("cap_last_cap"), "40\n").expect("write");
        let marker = dir.join("ran");
        let start = AgentStart {
            config_dir: dir.join("config"),
            uid: 1000,
            gid: 1000,
            home: dir.join("home"),
            command: vec!["/bin/touch".into(), marker.into()],
            gate: None,
        };
        let paths = InitPaths {
            secrets_dir: dir.join("secrets"),
            trust: crate::trust::Trust::system(),
            passwd: dir.join("passwd"),
            cap_last_cap: dir.join("cap_last_cap"),
            exe: None,
            egress_dir: dir.join("egress"),
        };
        (Tmp(dir), start, paths)
    }

    fn can_drop() -> bool {
        sys::RealSys
            .capget()
            .is_ok_and(|c| c.effective & sys::cap_bit(sys::CAP_SETPCAP) != 0)
    }

    #[test]
    fn a_root_agent_is_refused_with_78_before_anything() {
        let (tmp, start, paths) = setup("root");
        let start = AgentStart { uid: 0, ..start };
        assert_eq!(start_agent(start, &paths, &Log { debug: false }), 78);
        assert!(!tmp.0.join("home").exists(), "nothing may be created");
        assert!(!tmp.0.join("ran").exists(), "nothing may be spawned");
    }

    #[test]
    fn an_invalid_secret_list_stops_before_home_and_spawn() {
        let (tmp, start, paths) = setup("secret");
        std::fs::write(tmp.0.join("config/secret-env"), "NOT-A-NAME\n").expect("write");
        let code = start_agent(start, &paths, &Log { debug: false });
        // Without the capabilities the check before it refuses first (71); as root the
        // secret list is what stops it (78). Either way nothing changed and nothing ran.
        assert_eq!(code, if can_drop() { 78 } else { 71 });
        assert!(!tmp.0.join("home").exists(), "nothing may be created");
        assert!(!tmp.0.join("ran").exists(), "nothing may be spawned");
    }

    #[test]
    fn a_sandbox_init_that_is_not_mounted_is_left_to_its_image() {
        // This test binary is no mount point (nor is a lab's sandbox-init in a target dir):
        // the check of the directories above a mounted sandbox-init does not apply.
        let me = std::env::current_exe().expect("exe");
        assert!(check_own_path(&me, &Trust::system()).is_ok());
    }

    #[test]
    fn an_unreadable_cap_last_cap_is_71() {
        let (tmp, start, paths) = setup("caplast");
        std::fs::remove_file(&paths.cap_last_cap).expect("rm");
        assert_eq!(start_agent(start, &paths, &Log { debug: false }), 71);
        assert!(!tmp.0.join("home").exists());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::fake::FakeIptables;
    use std::cell::{Cell, RefCell};
    use std::fs;

    struct World {
        dir: tempfile::TempDir,
        handed_off: Cell<usize>,
        /// The DNS gate each handoff was given.
        gates: RefCell<Vec<Option<GateConfig>>>,
        out: Vec<u8>,
        /// A stop signal "arrives" at the n-th stop check (1-based), if set.
        stop_at: Option<(usize, i32)>,
        stop_checks: Cell<usize>,
    }

    impl World {
        fn new(policy_toml: &str) -> Self {
            let dir = tempfile::tempdir().expect("tempdir");
            let cfg = dir.path().join("cfg");
            fs::create_dir_all(&cfg).expect("mkdir");
            fs::write(cfg.join("policy.toml"), policy_toml).expect("write");
            fs::write(dir.path().join("resolv.conf"), "nameserver 10.0.0.2\n").expect("write");
            fs::write(
                dir.path().join("hosts"),
                "127.0.0.1 localhost\n172.17.0.1 host.docker.internal\n",
            )
            .expect("write");
            World {
                dir,
                handed_off: Cell::new(0),
                gates: RefCell::new(vec![]),
                out: vec![],
                stop_at: None,
                stop_checks: Cell::new(0),
            }
        }

        fn args(&self, print_plan: bool) -> Args {
            Args {
                config_dir: self.dir.path().join("cfg"),
                print_plan,
                command: vec!["agent".into()],
            }
        }

        fn boot(&mut self, runner: &FakeIptables, print_plan: bool) -> Result<i32, BootError> {
            let args = self.args(print_plan);
            let handed_off = &self.handed_off;
            let gates = &self.gates;
            let handoff = |start: AgentStart, _: &Log| {
                assert_eq!(start.command, ["agent"]);
                handed_off.set(handed_off.get() + 1);
                gates.borrow_mut().push(start.gate);
                0
            };
            let (checks, stop_at) = (&self.stop_checks, self.stop_at);
            let stop = || {
                checks.set(checks.get() + 1);
                stop_at
                    .filter(|(n, _)| *n == checks.get())
                    .map(|(_, sig)| sig)
            };
            let p = self.dir.path();
            let mut seams = Seams {
                runner,
                paths: Paths {
                    resolv_conf: p.join("resolv.conf"),
                    hosts: p.join("hosts"),
                    if_inet6: p.join("if_inet6"),
                    route: p.join("route"),
                    ipv6_route: p.join("ipv6_route"),
                },
                log: Log { debug: false },
                out: &mut self.out,
                stop: &stop,
                handoff: &handoff,
            };
            run(&args, &mut seams)
        }
    }

    #[test]
    fn a_bad_policy_runs_nothing_and_starts_nothing() {
        let mut world = World::new("egress = \"sometimes\"\n");
        let runner = FakeIptables::default();
        let e = world.boot(&runner, false).expect_err("bad policy");
        assert_eq!(exit::for_error(&e), 78);
        assert!(runner.calls.borrow().is_empty());
        assert_eq!(world.handed_off.get(), 0);
    }

    #[test]
    fn no_backend_means_no_rules_no_gate_no_agent() {
        let mut world = World::new("allowed_hosts = [\"a.example\"]\n");
        let runner = FakeIptables {
            missing: vec!["iptables-nft-save", "iptables-legacy-save", "iptables-save"],
            ..FakeIptables::default()
        };
        let e = world.boot(&runner, false).expect_err("no backend");
        assert_eq!(exit::for_error(&e), 71);
        assert_eq!(world.handed_off.get(), 0);
    }

    #[test]
    fn a_failing_restore_starts_no_agent() {
        let mut world = World::new("allowed_hosts = [\"a.example\"]\n");
        let runner = FakeIptables {
            failing: vec!["iptables-nft-restore"],
            ..FakeIptables::default()
        };
        let e = world.boot(&runner, false).expect_err("restore fails");
        assert_eq!(exit::for_error(&e), 71);
        assert_eq!(world.handed_off.get(), 0);
    }

    #[test]
    fn ipv6_present_but_unguarded_starts_no_agent() {
        let mut world = World::new("");
        fs::write(
            world.dir.path().join("if_inet6"),
            "fd000000000000000000000000000002 02 40 00 80 eth0\n",
        )
        .expect("write");
        let runner = FakeIptables {
            missing: vec!["ip6tables-nft-save"],
            ..FakeIptables::default()
        };
        let e = world.boot(&runner, false).expect_err("v6 unguarded");
        assert_eq!(exit::for_error(&e), 71);
        assert_eq!(world.handed_off.get(), 0);
    }

    #[test]
    fn a_good_boot_installs_both_families_then_hands_off_once_with_the_gate() {
        let mut world = World::new(
            "egress = \"allowlist\"\nallowed_hosts = [\"a.example:443\", \"*.docker.internal:11434\"]\n",
        );
        let runner = FakeIptables::default();
        assert_eq!(world.boot(&runner, false).expect("boot"), 0);
        assert_eq!(world.handed_off.get(), 1);
        // A fresh container: one restore and one read-back per family, nothing else (no DNS:
        // names are the gate's).
        assert_eq!(runner.calls.borrow().len(), 4);
        let v4 = runner.state_v4.borrow();
        // Only the gate's own queries reach the resolver; the agent's go to the gate.
        assert!(v4.contains(
            "-A JAILOC-OUTPUT -d 10.0.0.2/32 -p udp -m owner --uid-owner 65533 -m udp --dport 53 -j ACCEPT"
        ));
        assert!(v4.contains("-A JAILOC-DNS -p udp -m udp --dport 53 -j REDIRECT --to-ports 1053"));
        assert!(v4.contains(
            "*nat\n:OUTPUT ACCEPT [0:0]\n:JAILOC-DNS - [0:0]\n-A OUTPUT -j JAILOC-DNS\n"
        ));
        // A name of the hosts file the allowlist covers is open from the start (the agent's C
        // library never asks the gate for it); a name the gate must answer is not.
        assert!(
            v4.contains("-A JAILOC-OUTPUT -d 172.17.0.1/32 -p tcp -m tcp --dport 11434 -j ACCEPT")
        );
        assert!(!v4.contains("198.51.100.7"));
        let gates = world.gates.borrow();
        let gate = gates[0].as_ref().expect("a gate");
        assert_eq!(
            gate.resolvers,
            ["10.0.0.2".parse::<std::net::IpAddr>().expect("ip")]
        );
        let allowlist = crate::dns::allow::Allowlist::new(gate.hosts.clone());
        assert_eq!(allowlist.ports("a.example"), [Some(443)]);
        assert_eq!(allowlist.ports("b.example"), Vec::new());
    }

    #[test]
    fn print_plan_changes_nothing_and_shows_both_families_and_the_user() {
        let mut world = World::new("allowed_hosts = [\"a.example\"]\n[agent]\nuid = 1234\n");
        let runner = FakeIptables::default();
        assert_eq!(world.boot(&runner, true).expect("plan"), 0);
        assert!(runner.calls.borrow().is_empty());
        assert_eq!(world.handed_off.get(), 0);
        let out = String::from_utf8(world.out.clone()).expect("utf8");
        assert!(
            out.starts_with("# agent: uid 1234 gid 1000 home /home/agent\n"),
            "{out}"
        );
        for line in [
            "# dns gate: uid 65533, CAP_NET_ADMIN only; all DNS (53/udp+tcp, any address) goes to 127.0.0.1:1053 and [::1]:1053",
            "# dns gate: asks 10.0.0.2 (timeout 2000 ms)",
            "# dns gate: forwards every name",
            "# dns gate: opens the answered addresses of a.example for their TTL + 600 s",
        ] {
            assert!(out.contains(&format!("\n{line}\n")), "missing {line:?} in\n{out}");
        }
        assert!(out.contains("# ---- IPv4: iptables-restore --noflush\n# jailoc sandbox-init: IPv4 rules, open egress\n*filter\n"));
        assert!(out.contains("-A JAILOC-OUTPUT -j JAILOC-NAMES\n"));
        assert!(out.contains("# ---- IPv6: ip6tables-restore --noflush\n"));
        assert!(out.contains("-A JAILOC-OUTPUT -d fc00::/7 -j JAILOC-REJECT\n"));
        assert!(out.contains("-A JAILOC-REJECT -j REJECT --reject-with icmp6-adm-prohibited\n"));
    }

    /// A container on a network with a global IPv6 prefix (what `/proc/net/*route` say).
    fn write_routes(world: &World) {
        let p = world.dir.path();
        fs::write(
            p.join("route"),
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
             eth0\t00000000\t010011AC\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
             eth0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n",
        )
        .expect("write");
        fs::write(
            p.join("ipv6_route"),
            "20010db8001700000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0\n\
             00000000000000000000000000000000 00 00000000000000000000000000000000 00 20010db8001700000000000000000001 00000400 00000001 00000000 00000003     eth0\n",
        )
        .expect("write");
    }

    #[test]
    fn the_hosts_other_addresses_are_refused_after_the_allows() {
        let mut world = World::new(
            "blocked_networks = [\"203.0.113.7\"]\nallowed_hosts = [\"[2001:db8:17::1]:11434\"]\n",
        );
        write_routes(&world);
        let runner = FakeIptables::default();
        assert_eq!(world.boot(&runner, false).expect("boot"), 0);
        let v4 = runner.state_v4.borrow().clone();
        let v6 = runner.state_v6.borrow().clone();
        assert!(
            v4.contains("-A JAILOC-OUTPUT -d 203.0.113.7/32 -j JAILOC-REJECT\n"),
            "{v4}"
        );
        assert!(v6.contains("-A JAILOC-OUTPUT -d 2001:db8:17::/64 -j JAILOC-REJECT\n-A JAILOC-OUTPUT -d 2001:db8:17::1/128 -j JAILOC-REJECT\n"), "{v6}");
        let allow = v6
            .find("-d 2001:db8:17::1/128 -p tcp -m tcp --dport 11434 -j ACCEPT")
            .expect("allow");
        assert!(
            allow
                < v6.find("-d 2001:db8:17::/64 -j JAILOC-REJECT")
                    .expect("block")
        );
    }

    #[test]
    fn print_plan_shows_each_extra_blocked_destination_and_where_it_came_from() {
        let mut world = World::new("blocked_networks = [\"203.0.113.7\"]\n");
        write_routes(&world);
        let runner = FakeIptables::default();
        assert_eq!(world.boot(&runner, true).expect("plan"), 0);
        assert!(runner.calls.borrow().is_empty());
        let out = String::from_utf8(world.out.clone()).expect("utf8");
        let p = world.dir.path().display();
        for line in [
            "# blocked 203.0.113.7/32 (blocked_networks, from policy.toml)".to_owned(),
            format!("# blocked 172.17.0.1/32 (gateway on eth0, from {p}/route): already blocked as part of 172.16.0.0/12"),
            format!("# blocked 172.17.0.0/16 (on-link prefix of eth0, from {p}/route): already blocked as part of 172.16.0.0/12"),
            format!("# blocked 2001:db8:17::/64 (on-link prefix of eth0, from {p}/ipv6_route)"),
            format!("# blocked 2001:db8:17::1/128 (gateway on eth0, from {p}/ipv6_route)"),
        ] {
            assert!(out.contains(&format!("{line}\n")), "missing {line:?} in\n{out}");
        }
        assert!(out.contains("-A JAILOC-OUTPUT -d 2001:db8:17::1/128 -j JAILOC-REJECT\n"));
        assert!(out.contains("-A JAILOC-OUTPUT -d 64:ff9b::cb00:7107/128 -j JAILOC-REJECT\n"));
    }

    #[test]
    fn print_plan_lists_only_the_home_dirs_that_would_change_and_changes_nothing() {
        let mut world = World::new("");
        let home = world.dir.path().join("home");
        fs::create_dir_all(home.join(".config")).expect("mkdir");
        let me = std::os::unix::fs::MetadataExt::uid(&fs::metadata(&home).expect("stat"));
        let my_gid = std::os::unix::fs::MetadataExt::gid(&fs::metadata(&home).expect("stat"));
        fs::write(
            world.dir.path().join("cfg/policy.toml"),
            format!(
                "[agent]\nuid = {uid}\ngid = {gid}\nhome = \"{}\"\n",
                home.display(),
                uid = if me == 0 { 1000 } else { me },
                gid = if me == 0 { 1000 } else { my_gid },
            ),
        )
        .expect("write");
        let runner = FakeIptables::default();
        assert_eq!(world.boot(&runner, true).expect("plan"), 0);
        assert!(runner.calls.borrow().is_empty(), "no iptables at all");
        assert_eq!(world.handed_off.get(), 0);
        let out = String::from_utf8(world.out.clone()).expect("utf8");
        let h = home.display();
        if me == 0 {
            // .config exists but belongs to root, not to the agent (1000).
            assert!(out.contains(&format!("# chown {h}/.config and everything below it to 1000:1000 (its owner is wrong)\n")), "{out}");
        } else {
            assert!(!out.contains(".config"), "already owned: not listed\n{out}");
        }
        assert!(
            out.contains(&format!("# create {h}/.local owned by ")),
            "{out}"
        );
        assert!(
            out.contains(&format!("# create {h}/.cache owned by ")),
            "{out}"
        );
        assert!(!home.join(".local").exists(), "the plan created nothing");
        assert!(!home.join(".cache").exists(), "the plan created nothing");
    }

    #[test]
    fn print_plan_says_when_nothing_would_change() {
        assert_eq!(
            home_plan(
                Path::new("/proc/self/fdinfo/../nonexistent-jailoc"),
                1000,
                1000
            )
            .lines()
            .count(),
            4,
            "home and its three dirs would be created"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        for d in [".config", ".local", ".cache"] {
            fs::create_dir(dir.path().join(d)).expect("mkdir");
        }
        let meta = fs::metadata(dir.path()).expect("stat");
        let (uid, gid) = (
            std::os::unix::fs::MetadataExt::uid(&meta),
            std::os::unix::fs::MetadataExt::gid(&meta),
        );
        assert_eq!(
            home_plan(dir.path(), uid, gid),
            format!(
                "# home dirs under {}: nothing to create or chown\n",
                dir.path().display()
            )
        );
    }

    #[test]
    fn a_stop_signal_during_boot_starts_nothing_and_exits_128_plus_n() {
        // At each of the checks (after the policy, the backend, the firewall): the boot ends
        // with 128+N and the agent is never started.
        for (at, calls) in [(1, 0), (2, 0), (3, 4)] {
            let mut world = World::new("allowed_hosts = [\"a.example\"]\n");
            world.stop_at = Some((at, libc::SIGTERM));
            let runner = FakeIptables::default();
            let e = world.boot(&runner, false).expect_err("stopped");
            assert_eq!(exit::for_error(&e), 143, "check {at}");
            assert_eq!(
                e.to_string(),
                "not starting the agent: received SIGTERM before it was started"
            );
            assert_eq!(world.handed_off.get(), 0, "check {at}");
            assert_eq!(runner.calls.borrow().len(), calls, "check {at}");
        }
        let mut world = World::new("");
        world.stop_at = Some((1, libc::SIGINT));
        let e = world
            .boot(&FakeIptables::default(), false)
            .expect_err("stopped");
        assert_eq!(exit::for_error(&e), 130);
    }
}
