//! Starting the agent and being its init (the tini/catatonit contract).
//!
//! Before the fork: block every signal except the synchronous ones and open a `signalfd` for
//! them (so no signal is lost between fork and the supervision loop), become a child subreaper
//! when not PID 1, harden PID 1 (see `privilege.rs`) and prepare the whole `execve` (argv, envp,
//! `PATH` candidates) — the child does not allocate.
//!
//! In the child: the privilege drop, default signal dispositions and an empty mask, `execve`.
//! If any of that fails, the child writes `(step, errno)` into a close-on-exec pipe and exits;
//! the parent reads the pipe until EOF (EOF with no data = exec succeeded) and turns a failure
//! into 127 (not found), 126 (not executable) or 71 (the drop failed).
//!
//! After the spawn: read signals from the signalfd; forward every one but SIGCHLD to the agent;
//! on SIGCHLD reap with `waitpid(-1, WNOHANG)` until nothing is left; when the agent has been
//! reaped, return its exit code or 128+N. Errors here are logged, never fatal.

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use crate::exit;
use crate::log::Log;
use crate::privilege::{self, AgentDrop, DropFailure, DropReady, DropStep, PrivilegeError};
use crate::sys::{self, CStrArray, Errno, Fork, RealSys, SigSet, Sys, WaitStatus};

/// Signals the kernel raises for a fault of the thread itself; blocking them would not stop
/// the kernel and forwarding them makes no sense (tini keeps them too).
pub const SYNCHRONOUS: [i32; 7] = [
    libc::SIGFPE,
    libc::SIGILL,
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGABRT,
    libc::SIGTRAP,
    libc::SIGSYS,
];

/// `PATH` used to find the agent when its environment has none (Debian's default for root-less
/// shells, plus /usr/local).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Errors of starting the agent. After a successful start nothing is fatal.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// `execve` failed: not found, not executable, ...
    #[error("failed to execute the agent {program}: {errno}")]
    Exec {
        /// The command as given (for a name looked up in `PATH`: the name).
        program: String,
        /// Why (for a `PATH` lookup: EACCES if any candidate was not executable, else ENOENT).
        errno: Errno,
    },
    /// A step of the agent's privilege drop failed in the child.
    #[error("failed to {}: {errno}", .step.describe())]
    Drop {
        /// The step.
        step: DropStep,
        /// Why.
        errno: Errno,
    },
    /// An argument or environment entry holds a NUL byte and cannot be passed to `execve`.
    #[error("failed to prepare the agent's {what}: {value:?} contains a NUL byte")]
    Nul {
        /// "argument" or "environment variable".
        what: &'static str,
        /// The offending text (lossy).
        value: String,
    },
    /// The command is empty.
    #[error("failed to start the agent: no command given")]
    NoCommand,
    /// Setting up signals, the pipe or the fork failed.
    #[error("failed to {what}: {errno}")]
    Setup {
        /// The operation.
        what: &'static str,
        /// Why.
        errno: Errno,
    },
    /// PID 1's own hardening failed.
    #[error(transparent)]
    Privilege(#[from] PrivilegeError),
}

impl SpawnError {
    /// The error for a failed step of [`exec_as_agent`].
    pub fn from_failure(failure: DropFailure, program: &str) -> Self {
        match failure.step {
            DropStep::Exec => SpawnError::Exec {
                program: program.to_owned(),
                errno: failure.errno,
            },
            step => SpawnError::Drop {
                step,
                errno: failure.errno,
            },
        }
    }
}

/// The agent's command line and environment, fully prepared for `execve` before the fork.
#[derive(Debug)]
pub struct Prepared {
    /// The command as given (for messages).
    pub program: String,
    candidates: Vec<CString>,
    argv: CStrArray,
    envp: CStrArray,
}

impl Prepared {
    /// Convert `command` (program + arguments) and `env` into C strings and resolve `PATH`
    /// candidates (a program with a `/` is used as is, like `execvp`).
    pub fn new(command: &[OsString], env: &[(OsString, OsString)]) -> Result<Self, SpawnError> {
        let program = command.first().ok_or(SpawnError::NoCommand)?;
        let cstr = |what: &'static str, bytes: Vec<u8>| {
            CString::new(bytes).map_err(|e| SpawnError::Nul {
                what,
                value: String::from_utf8_lossy(&e.into_vec()).into_owned(),
            })
        };
        let argv = command
            .iter()
            .map(|a| cstr("argument", a.as_bytes().to_vec()))
            .collect::<Result<Vec<_>, _>>()?;
        let envp = env
            .iter()
            .map(|(k, v)| {
                let mut kv = k.as_bytes().to_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                cstr("environment variable", kv)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let path = env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_os_str())
            .unwrap_or(OsStr::new(DEFAULT_PATH));
        let candidates = candidates(program.as_os_str(), path)
            .into_iter()
            .map(|c| cstr("argument", c.into_vec()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            program: program.to_string_lossy().into_owned(),
            candidates,
            argv: CStrArray::new(argv),
            envp: CStrArray::new(envp),
        })
    }
}

/// Where `execvp` would look for `program`: itself if it contains a `/`, else each `PATH`
/// entry (an empty entry means the current directory).
pub fn candidates(program: &OsStr, path: &OsStr) -> Vec<OsString> {
    if program.is_empty() {
        return Vec::new();
    }
    if program.as_bytes().contains(&b'/') {
        return vec![program.to_owned()];
    }
    path.as_bytes()
        .split(|&b| b == b':')
        .map(|dir| {
            let mut full = if dir.is_empty() {
                b".".to_vec()
            } else {
                dir.to_vec()
            };
            full.push(b'/');
            full.extend_from_slice(program.as_bytes());
            OsString::from_vec(full)
        })
        .collect()
}

/// The signals PID 1 blocks and reads from its signalfd: all but the synchronous ones.
pub fn supervised_signals() -> SigSet {
    let mut set = SigSet::full();
    for sig in SYNCHRONOUS {
        set.remove(sig);
    }
    set
}

/// Signals that, arriving before the agent has been started, mean "do not start it": what
/// `docker stop` (SIGTERM), Ctrl-C (SIGINT), a closed terminal (SIGHUP) and Ctrl-\ (SIGQUIT)
/// send. sandbox-init then exits with 128+N without spawning anything (fail closed: nobody
/// asked for an agent that is about to be told to stop).
pub const STOP_BEFORE_START: [i32; 4] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT];

/// The supervised signals, blocked from the first instruction of the boot on.
///
/// The kernel discards a default-disposition signal sent to a pid namespace's init, so until
/// PID 1 blocks a signal, `docker stop`'s SIGTERM is simply lost and Docker falls back to
/// SIGKILL after its timeout. Blocked, every signal stays pending: the [`STOP_BEFORE_START`]
/// ones are read from [`EarlySignals::take_stop`] between boot steps; all others stay pending
/// until [`spawn`] opens the supervisor's signalfd and are then forwarded to the agent. The
/// mask is inherited by every thread created afterwards (the DNS runtime's), so no thread can
/// take a signal away; the agent still starts with an empty mask (the child resets it).
#[derive(Debug)]
pub struct EarlySignals {
    stop: OwnedFd,
}

impl EarlySignals {
    /// Blocks [`supervised_signals`] for the process and opens a non-blocking signalfd over
    /// [`STOP_BEFORE_START`]. Call first thing, before any thread exists.
    pub fn block() -> Result<Self, Errno> {
        sys::block_signals(&supervised_signals())?;
        let mut stop = SigSet::empty();
        for sig in STOP_BEFORE_START {
            stop.add(sig);
        }
        Ok(Self {
            stop: sys::signalfd_nonblocking(&stop)?,
        })
    }

    /// A stop signal that has arrived since the last call (consuming it), if any.
    pub fn take_stop(&self) -> Option<i32> {
        sys::read_signal(&self.stop).ok().map(|(sig, _)| sig)
    }
}

/// How long the gate gets to flush the egress record after SIGTERM before it is killed: a
/// container's stop waits for it, so it is short (the flush is a few writes).
pub const GATE_STOP_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

/// How long after the agent's start PID 1 gives back the memory only the boot used: the
/// agent's first moments are its own.
pub const SETTLE: std::time::Duration = std::time::Duration::from_millis(100);

/// The running agent and PID 1's signalfd.
#[derive(Debug)]
pub struct Supervisor {
    agent: i32,
    /// The DNS gate: if it ends, DNS fails closed and so does the container (exit 71).
    gate: Option<i32>,
    signals: OwnedFd,
    log: Log,
}

/// Start the agent. `ready` proves the capability check passed (see
/// [`privilege::check_can_drop`]); without it there is no way to call this.
pub fn spawn(
    ready: &DropReady,
    command: Prepared,
    log: Log,
    gate: Option<i32>,
) -> Result<Supervisor, SpawnError> {
    let sys = RealSys;
    let setup = |what: &'static str| move |errno| SpawnError::Setup { what, errno };

    // Signals first: from here on nothing sent to us is lost, it waits in the signalfd.
    let set = supervised_signals();
    sys::block_signals(&set).map_err(setup("block signals"))?;
    let signals = sys::signalfd(&set).map_err(setup("create a signalfd"))?;
    if sys::getpid() != 1 {
        sys::set_child_subreaper().map_err(setup("become a child subreaper"))?;
    }
    // Before the fork, so the agent never runs next to a PID 1 with a full bounding set.
    privilege::harden_supervisor(&sys, ready)?;
    if !ready.has_kill() {
        log.warn("CAP_KILL is missing: signals cannot be forwarded to the agent");
    }

    let plan = ready.agent_drop();
    let (report_r, report_w) = sys::pipe_cloexec().map_err(setup("create a pipe"))?;
    let pid = match sys::fork().map_err(setup("fork"))? {
        Fork::Child => child(&sys, &plan, &command, report_w.as_raw_fd()),
        Fork::Parent(pid) => pid,
    };
    drop(report_w);

    // The child no longer needs anything from us: shrink to CAP_KILL at once. If even that
    // fails, fail closed rather than supervise with more than we promised.
    if let Err(e) = privilege::keep_only_kill(&sys, ready) {
        let _ = sys::kill(pid, libc::SIGKILL);
        let _ = sys::wait_blocking(pid);
        return Err(e.into());
    }

    let mut report = [0u8; 8];
    let n =
        sys::read_full(&report_r, &mut report).map_err(setup("read the agent's start report"))?;
    if n == report.len() {
        let _ = sys::wait_blocking(pid);
        let (step, errno) = decode_report(report);
        return Err(SpawnError::from_failure(
            DropFailure { step, errno },
            &command.program,
        ));
    }
    log.debug(&format!(
        "started the agent {} as pid {pid}",
        command.program
    ));
    Ok(Supervisor {
        agent: pid,
        gate,
        signals,
        log,
    })
}

fn encode_report(failure: DropFailure) -> [u8; 8] {
    let mut buf = [0u8; 8];
    let (step, errno) = buf.split_at_mut(4);
    step.copy_from_slice(&(failure.step as u32).to_ne_bytes());
    errno.copy_from_slice(&failure.errno.0.to_ne_bytes());
    buf
}

fn decode_report(buf: [u8; 8]) -> (DropStep, Errno) {
    let [s0, s1, s2, s3, e0, e1, e2, e3] = buf;
    let step = DropStep::from_u32(u32::from_ne_bytes([s0, s1, s2, s3])).unwrap_or(DropStep::Exec);
    (step, Errno(i32::from_ne_bytes([e0, e1, e2, e3])))
}

/// The forked child. Async-signal-safe only: no allocation, no locks, never returns.
fn child(sys: &RealSys, plan: &AgentDrop, command: &Prepared, report: i32) -> ! {
    let failure = exec_as_agent(sys, plan, command, Group::Own);
    sys::write_all_raw(report, &encode_report(failure));
    sys::exit_immediately(exit::for_drop_failure(failure))
}

/// Whether the agent gets a process group of its own (the boot's child) or stays in the one it
/// was started in (`--enter`: the caller's shell or `docker exec` owns the job control).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// `setpgid(0, 0)` and, with a terminal, its foreground.
    Own,
    /// Left as it is.
    Keep,
}

/// The end of step 7, one function for the boot's forked child and for `--enter`: the agent's
/// drop ([`privilege::drop_agent`]: fds, ambient, bounding, groups, gid, uid, the other sets,
/// `no_new_privs`, verified), optionally its own process group, default signal dispositions and
/// an empty mask, then `execve` of the first candidate that runs. Returns only on failure, with
/// the step that failed. Async-signal-safe: no allocation (the command is prepared before).
///
/// Anything that must be in place right before the agent's program runs (a seccomp filter)
/// belongs here, after the signal reset and before [`exec_first`].
pub fn exec_as_agent(
    sys: &RealSys,
    plan: &AgentDrop,
    command: &Prepared,
    group: Group,
) -> DropFailure {
    if let Err(failure) = privilege::drop_agent(sys, plan) {
        return failure;
    }
    if group == Group::Own {
        // Like tini: the agent gets its own process group and, with a terminal, the
        // foreground, so Ctrl-C reaches the agent once (not PID 1 and then again forwarded)
        // and job control works. Best effort: no security property depends on it.
        let _ = sys.own_process_group();
    }
    if let Err(errno) = sys.reset_signals() {
        return DropFailure {
            step: DropStep::Signals,
            errno,
        };
    }
    DropFailure {
        step: DropStep::Exec,
        errno: exec_first(command),
    }
}

/// Try each candidate like `execvp`: skip the not-found ones; report EACCES if any candidate
/// was there but not executable; stop at any other error.
fn exec_first(command: &Prepared) -> Errno {
    let mut result = Errno(libc::ENOENT);
    let mut denied = false;
    for path in &command.candidates {
        let errno = sys::execve(path, &command.argv, &command.envp);
        match errno.0 {
            libc::ENOENT | libc::ENOTDIR => {}
            libc::EACCES => denied = true,
            _ => return errno,
        }
        result = errno;
    }
    if denied {
        Errno(libc::EACCES)
    } else {
        result
    }
}

impl Supervisor {
    /// Supervise until the agent has ended; returns the exit code for sandbox-init.
    pub fn run(self) -> i32 {
        let me = sys::getpid();
        let release_at = std::time::Instant::now() + SETTLE;
        let mut released = false;
        loop {
            // SETTLE after the agent started (signals meanwhile are handled as they come, and
            // do not put it off): whatever boot allocated is gone by now; hand the freed heap
            // back, and drop the clean pages of code and read-only data that only boot used
            // (they re-fault if needed). Not at once: that is a walk of PID 1's page tables
            // (~0.3 ms), and on a small machine it would take a core from the agent while it
            // starts.
            if !released {
                let left = release_at.saturating_duration_since(std::time::Instant::now());
                let due = left.is_zero()
                    || sys::poll_readable(&[self.signals.as_fd()], left)
                        .is_ok_and(|ready| ready == [false]);
                if due {
                    released = true;
                    sys::release_free_memory();
                    sys::release_clean_file_pages();
                    if self.log.debug {
                        self.log.debug(&format!("supervising: {}", vm_rss()));
                    }
                    continue;
                }
            }
            match sys::read_signal(&self.signals) {
                Ok((libc::SIGCHLD, _)) => {}
                // Raised by the kernel for our own write: SIGPIPE when a log line meets a pipe
                // nobody reads any more (blocked signals are queued even when ignored). Not the
                // agent's business, and not logged: that write would raise the next one.
                Ok((_, sender)) if sender == me => {}
                Ok((sig, sender)) => self.forward(sig, sender),
                Err(Errno(libc::EINTR)) | Err(Errno(libc::EAGAIN)) => {}
                Err(errno) => {
                    self.log.error(&format!(
                        "failed to read signals: {errno}: no longer forwarding signals, still reaping"
                    ));
                    return self.reap_blocking();
                }
            }
            if let Some(code) = self.reap() {
                self.stop_gate();
                return code;
            }
        }
    }

    /// The agent is gone: so is the gate (PID 1's exit would end it too; a sandbox-init that is
    /// not PID 1 must not leave it behind). SIGTERM first, so the gate writes the egress
    /// record's last counts; SIGKILL if it has not ended within [`GATE_STOP_WAIT`].
    fn stop_gate(&self) {
        let Some(gate) = self.gate else { return };
        if sys::kill(gate, libc::SIGTERM).is_ok() {
            let deadline = std::time::Instant::now() + GATE_STOP_WAIT;
            while std::time::Instant::now() < deadline {
                match sys::wait_nohang(gate) {
                    Ok(None) => std::thread::sleep(std::time::Duration::from_millis(5)),
                    // Ended (reaped now), or already reaped by `reap`.
                    Ok(Some(_)) | Err(_) => return,
                }
            }
        }
        let _ = sys::kill(gate, libc::SIGKILL);
        let _ = sys::wait_blocking(gate);
    }

    fn forward(&self, sig: i32, sender: i32) {
        self.log.debug(&format!(
            "forwarding {} (from pid {sender}) to the agent",
            signal_name(sig)
        ));
        match sys::kill(self.agent, sig) {
            Ok(()) => {}
            // The agent is gone but not reaped yet: the SIGCHLD is on its way.
            Err(Errno(libc::ESRCH)) => {}
            Err(errno) => self.log.error(&format!(
                "failed to forward {} to the agent: {errno}",
                signal_name(sig)
            )),
        }
    }

    /// Reap every child that has ended; the agent's exit code once it is among them.
    fn reap(&self) -> Option<i32> {
        let mut agent_code = None;
        loop {
            match sys::wait_nohang(-1) {
                Ok(Some((pid, status))) => {
                    if pid == self.agent {
                        agent_code = Some(exit::for_status(status));
                    } else if Some(pid) == self.gate && agent_code.is_none() {
                        // Fail closed: no DNS gate, no agent.
                        self.log.error(&format!(
                            "the DNS gate (pid {pid}) ended ({}): no name can be resolved or \
                             opened any more; ending the container",
                            describe(status)
                        ));
                        let _ = sys::kill(-self.agent, libc::SIGKILL);
                        let _ = sys::kill(self.agent, libc::SIGKILL);
                        return Some(exit::OS_ERROR);
                    } else {
                        self.log.debug(&format!("reaped orphan {pid}"));
                    }
                }
                Ok(None) | Err(Errno(libc::ECHILD)) => return agent_code,
                Err(errno) => {
                    self.log.error(&format!("failed to reap children: {errno}"));
                    return agent_code;
                }
            }
        }
    }

    /// Fallback when the signalfd fails: block in waitpid until the agent is reaped.
    fn reap_blocking(&self) -> i32 {
        loop {
            match sys::wait_blocking(-1) {
                Ok(Some((pid, status))) if pid == self.agent => return exit::for_status(status),
                Ok(_) => {}
                Err(errno) => {
                    // No child left (cannot happen before the agent is reaped) or worse: give up
                    // the only way that still tells the truth about the agent.
                    self.log
                        .error(&format!("failed to wait for the agent: {errno}"));
                    return exit::OS_ERROR;
                }
            }
        }
    }
}

/// How a child ended, in words.
fn describe(status: WaitStatus) -> String {
    match status {
        WaitStatus::Exited(code) => format!("exit {code}"),
        WaitStatus::Signaled(sig) => format!("killed by {}", signal_name(sig)),
    }
}

/// `VmRSS` of this process, for the debug log and the memory benchmark.
pub fn vm_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        })
        .map(|v| format!("VmRSS {v}"))
        .unwrap_or_else(|| "VmRSS unknown".to_owned())
}

/// A signal's name for log lines (`SIGTERM`, `SIGRTMIN+3`, ...).
pub fn signal_name(sig: i32) -> String {
    let name = match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGSTKFLT => "SIGSTKFLT",
        libc::SIGCHLD => "SIGCHLD",
        libc::SIGCONT => "SIGCONT",
        libc::SIGSTOP => "SIGSTOP",
        libc::SIGTSTP => "SIGTSTP",
        libc::SIGTTIN => "SIGTTIN",
        libc::SIGTTOU => "SIGTTOU",
        libc::SIGURG => "SIGURG",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGVTALRM => "SIGVTALRM",
        libc::SIGPROF => "SIGPROF",
        libc::SIGWINCH => "SIGWINCH",
        libc::SIGIO => "SIGIO",
        libc::SIGPWR => "SIGPWR",
        libc::SIGSYS => "SIGSYS",
        _ if sig >= libc::SIGRTMIN() && sig <= libc::SIGRTMAX() => {
            return format!("SIGRTMIN+{}", sig - libc::SIGRTMIN())
        }
        _ => return format!("signal {sig}"),
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawn_errors_map_to_the_table() {
        let exec = |errno| SpawnError::Exec {
            program: "/x".into(),
            errno: Errno(errno),
        };
        let drop = SpawnError::Drop {
            step: DropStep::Bounding,
            errno: Errno(libc::EPERM),
        };
        assert_eq!(
            drop.to_string(),
            "failed to empty the capability bounding set: operation not permitted"
        );
        assert_eq!(
            exec(libc::ENOENT).to_string(),
            "failed to execute the agent /x: no such file or directory"
        );
        assert_eq!(
            exec(libc::EACCES).to_string(),
            "failed to execute the agent /x: permission denied"
        );
    }

    #[test]
    fn child_report_round_trips() {
        let failure = DropFailure {
            step: DropStep::Uid,
            errno: Errno(libc::EPERM),
        };
        assert_eq!(
            decode_report(encode_report(failure)),
            (DropStep::Uid, Errno(libc::EPERM))
        );
    }

    #[test]
    fn path_lookup_is_like_execvp() {
        let c = |p: &str, path: &str| -> Vec<String> {
            candidates(OsStr::new(p), OsStr::new(path))
                .into_iter()
                .map(|s| s.to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(c("/bin/true", "/x"), ["/bin/true"]);
        assert_eq!(c("./run", "/x"), ["./run"]);
        assert_eq!(c("opencode", "/a:/b"), ["/a/opencode", "/b/opencode"]);
        assert_eq!(c("x", "/a::/b"), ["/a/x", "./x", "/b/x"]);
        assert!(c("", "/a").is_empty());
    }

    #[test]
    fn prepared_uses_the_agents_path_or_the_default() {
        let cmd = [OsString::from("opencode"), OsString::from("serve")];
        let env = [(OsString::from("PATH"), OsString::from("/opt/bin"))];
        let p = Prepared::new(&cmd, &env).expect("prepare");
        assert_eq!(p.candidates, vec![c"/opt/bin/opencode".to_owned()]);
        assert_eq!(p.envp.strings(), [c"PATH=/opt/bin".to_owned()]);
        assert_eq!(
            p.argv.strings(),
            [c"opencode".to_owned(), c"serve".to_owned()]
        );
        let p = Prepared::new(&cmd, &[]).expect("prepare");
        assert_eq!(p.candidates.len(), DEFAULT_PATH.split(':').count());
    }

    #[test]
    fn nul_bytes_and_empty_commands_are_refused() {
        let err = Prepared::new(&[OsString::from("a\0b")], &[]).expect_err("nul");
        assert!(matches!(err, SpawnError::Nul { .. }), "{err}");
        assert!(matches!(
            Prepared::new(&[], &[]).expect_err("empty"),
            SpawnError::NoCommand
        ));
    }

    #[test]
    fn synchronous_signals_are_not_supervised() {
        let set = supervised_signals();
        for sig in SYNCHRONOUS {
            assert!(!set.contains(sig), "{}", signal_name(sig));
        }
        for sig in [
            libc::SIGTERM,
            libc::SIGINT,
            libc::SIGHUP,
            libc::SIGQUIT,
            libc::SIGUSR1,
            libc::SIGUSR2,
            libc::SIGWINCH,
            libc::SIGCONT,
            libc::SIGCHLD,
        ] {
            assert!(set.contains(sig), "{}", signal_name(sig));
        }
    }

    #[test]
    fn signal_names() {
        assert_eq!(signal_name(libc::SIGTERM), "SIGTERM");
        assert_eq!(signal_name(libc::SIGRTMIN() + 2), "SIGRTMIN+2");
    }
}
