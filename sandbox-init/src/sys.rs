//! The only module with `unsafe`: thin, typed wrappers around the Linux syscalls sandbox-init
//! needs to drop privileges and to be PID 1.
//!
//! The privilege calls sit behind the [`Sys`] trait so the order of the drop is unit-tested with a
//! recording double (see `privilege.rs`); [`RealSys`] is the kernel. The process calls (fork,
//! exec, signals, wait) are free functions used by the supervisor.
//!
//! Everything a forked child calls before `execve` is async-signal-safe: no allocation, no locks,
//! raw syscalls where glibc would do more than the syscall (setgroups/setresgid/setresuid run
//! glibc's "setxid" broadcast to all threads; in the child we want the plain per-thread call).

use std::ffi::{c_char, CStr, CString};
use std::fmt;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// An `errno` value. Copy and allocation-free, so a forked child can carry it around.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    /// The calling thread's current `errno`.
    pub fn last() -> Self {
        Self(
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO),
        )
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // std's text without the " (os error N)" suffix, lowercased like our own messages.
        let text = std::io::Error::from_raw_os_error(self.0).to_string();
        let text = text.split(" (os error").next().unwrap_or(&text);
        let mut chars = text.chars();
        match chars.next() {
            Some(first) => write!(f, "{}{}", first.to_lowercase(), chars.as_str()),
            None => write!(f, "errno {}", self.0),
        }
    }
}

impl std::error::Error for Errno {}

/// `CAP_KILL`: bypass the uid check when sending signals.
pub const CAP_KILL: u32 = 5;
/// `CAP_SETGID`: setgroups/setresgid.
pub const CAP_SETGID: u32 = 6;
/// `CAP_SETUID`: setresuid.
pub const CAP_SETUID: u32 = 7;
/// `CAP_SETPCAP`: drop capabilities from the bounding set.
pub const CAP_SETPCAP: u32 = 8;

/// The bit of capability `cap` in a 64-bit set.
pub const fn cap_bit(cap: u32) -> u64 {
    1u64 << cap
}

/// The three per-thread capability sets `capget`/`capset` see (v3: 64 bits each).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CapSets {
    /// What the thread can use now.
    pub effective: u64,
    /// What the thread may raise into `effective`.
    pub permitted: u64,
    /// What survives `execve` (together with file capabilities).
    pub inheritable: u64,
}

impl CapSets {
    /// All three sets empty.
    pub const EMPTY: CapSets = CapSets {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    };
}

/// The privileged calls of the drop, one method per syscall, so a recording double can check
/// their order. Every method must be async-signal-safe in [`RealSys`]: the agent's drop runs in a
/// forked child.
pub trait Sys {
    /// `capget` (v3) for the calling thread.
    fn capget(&self) -> Result<CapSets, Errno>;
    /// `capset` (v3) for the calling thread.
    fn capset(&self, sets: CapSets) -> Result<(), Errno>;
    /// `prctl(PR_CAPBSET_DROP, cap)`.
    fn capbset_drop(&self, cap: u32) -> Result<(), Errno>;
    /// `prctl(PR_CAPBSET_READ, cap)`: is `cap` still in the bounding set?
    fn capbset_read(&self, cap: u32) -> Result<bool, Errno>;
    /// `prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)`.
    fn clear_ambient(&self) -> Result<(), Errno>;
    /// `prctl(PR_SET_NO_NEW_PRIVS, 1)`: setuid bits and file capabilities grant nothing on exec.
    fn set_no_new_privs(&self) -> Result<(), Errno>;
    /// `prctl(PR_SET_DUMPABLE, 0)`: no ptrace, no `/proc/PID/environ|mem` for same-uid peers.
    fn set_not_dumpable(&self) -> Result<(), Errno>;
    /// `setgroups(0, NULL)`.
    fn clear_groups(&self) -> Result<(), Errno>;
    /// `setresgid(gid, gid, gid)`.
    fn set_gid(&self, gid: u32) -> Result<(), Errno>;
    /// `setresuid(uid, uid, uid)`.
    fn set_uid(&self, uid: u32) -> Result<(), Errno>;
    /// Mark every fd from `first` upwards close-on-exec (`close_range(.., CLOSE_RANGE_CLOEXEC)`,
    /// falling back to `fcntl` up to `max_fd` where `close_range` is missing or filtered).
    fn cloexec_fds_from(&self, first: RawFd, max_fd: RawFd) -> Result<(), Errno>;
    /// Every signal disposition back to `SIG_DFL` and an empty signal mask.
    fn reset_signals(&self) -> Result<(), Errno>;
    /// `setpgid(0, 0)`, then, if stdin is a terminal, make our group its foreground group
    /// (`tcsetpgrp`; SIGTTOU must be blocked). Without a terminal only the first part applies.
    fn own_process_group(&self) -> Result<(), Errno>;
    /// `prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, program)` for the calling thread (needs
    /// `no_new_privs` or CAP_SYS_ADMIN); it holds for the thread and everything it execs.
    fn install_seccomp(&self, program: &[crate::seccomp::Insn]) -> Result<(), Errno>;
}

/// The kernel.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealSys;

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn check(ret: libc::c_long) -> Result<libc::c_long, Errno> {
    if ret == -1 {
        Err(Errno::last())
    } else {
        Ok(ret)
    }
}

fn check_int(ret: libc::c_int) -> Result<libc::c_int, Errno> {
    if ret == -1 {
        Err(Errno::last())
    } else {
        Ok(ret)
    }
}

fn prctl(option: libc::c_int, arg2: libc::c_ulong) -> Result<libc::c_int, Errno> {
    // SAFETY: every option used here takes integer arguments only (no pointers), so no memory is
    // read or written by the kernel on our behalf; unused arguments are passed as 0 as required.
    check_int(unsafe { libc::prctl(option, arg2, 0 as libc::c_ulong, 0 as libc::c_ulong, 0) })
}

impl Sys for RealSys {
    fn capget(&self) -> Result<CapSets, Errno> {
        let mut header = CapHeader {
            version: LINUX_CAPABILITY_VERSION_3,
            pid: 0,
        };
        let mut data = [CapData::default(); 2];
        // SAFETY: v3 capget writes exactly two `CapData` structs; `header` and `data` are live,
        // properly aligned `#[repr(C)]` values of the layout the kernel expects.
        check(unsafe {
            libc::syscall(
                libc::SYS_capget,
                &mut header as *mut CapHeader,
                data.as_mut_ptr(),
            )
        })?;
        let join = |lo: u32, hi: u32| u64::from(lo) | (u64::from(hi) << 32);
        Ok(CapSets {
            effective: join(data[0].effective, data[1].effective),
            permitted: join(data[0].permitted, data[1].permitted),
            inheritable: join(data[0].inheritable, data[1].inheritable),
        })
    }

    fn capset(&self, sets: CapSets) -> Result<(), Errno> {
        let mut header = CapHeader {
            version: LINUX_CAPABILITY_VERSION_3,
            pid: 0,
        };
        let split = |v: u64| (v as u32, (v >> 32) as u32);
        let (e0, e1) = split(sets.effective);
        let (p0, p1) = split(sets.permitted);
        let (i0, i1) = split(sets.inheritable);
        let data = [
            CapData {
                effective: e0,
                permitted: p0,
                inheritable: i0,
            },
            CapData {
                effective: e1,
                permitted: p1,
                inheritable: i1,
            },
        ];
        // SAFETY: v3 capset reads exactly two `CapData` structs from `data`, which is live and of
        // the kernel's layout; `header` is a valid v3 header for the calling thread (pid 0).
        check(unsafe {
            libc::syscall(
                libc::SYS_capset,
                &mut header as *mut CapHeader,
                data.as_ptr(),
            )
        })?;
        Ok(())
    }

    fn capbset_drop(&self, cap: u32) -> Result<(), Errno> {
        prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap)).map(drop)
    }

    fn capbset_read(&self, cap: u32) -> Result<bool, Errno> {
        prctl(libc::PR_CAPBSET_READ, libc::c_ulong::from(cap)).map(|v| v == 1)
    }

    fn clear_ambient(&self) -> Result<(), Errno> {
        // SAFETY: PR_CAP_AMBIENT takes integer arguments only; arg4/arg5 must be 0.
        check_int(unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
            )
        })
        .map(drop)
    }

    fn set_no_new_privs(&self) -> Result<(), Errno> {
        prctl(libc::PR_SET_NO_NEW_PRIVS, 1).map(drop)
    }

    fn set_not_dumpable(&self) -> Result<(), Errno> {
        prctl(libc::PR_SET_DUMPABLE, 0).map(drop)
    }

    fn clear_groups(&self) -> Result<(), Errno> {
        // SAFETY: size 0 with a null list is the documented way to clear the groups; the raw
        // syscall changes only the calling thread (what a forked child wants).
        check(unsafe {
            libc::syscall(
                libc::SYS_setgroups,
                0 as libc::size_t,
                std::ptr::null::<libc::gid_t>(),
            )
        })
        .map(drop)
    }

    fn set_gid(&self, gid: u32) -> Result<(), Errno> {
        // SAFETY: integer arguments only; raw syscall = calling thread only.
        check(unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) }).map(drop)
    }

    fn set_uid(&self, uid: u32) -> Result<(), Errno> {
        // SAFETY: integer arguments only; raw syscall = calling thread only.
        check(unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) }).map(drop)
    }

    fn cloexec_fds_from(&self, first: RawFd, max_fd: RawFd) -> Result<(), Errno> {
        let first_u = libc::c_uint::try_from(first).map_err(|_| Errno(libc::EINVAL))?;
        // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets a flag on open descriptors; it
        // touches no memory of ours.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_close_range,
                first_u,
                libc::c_uint::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            )
        };
        if ret == 0 {
            return Ok(());
        }
        let err = Errno::last();
        if !matches!(err.0, libc::ENOSYS | libc::EINVAL | libc::EPERM) {
            return Err(err);
        }
        // Kernels before 5.11 (ENOSYS/EINVAL) or a seccomp profile that does not know the
        // syscall (EPERM): walk the descriptor table up to the fd found before the fork.
        for fd in first..=max_fd {
            // SAFETY: F_GETFD/F_SETFD on an arbitrary integer either act on an open descriptor's
            // flags or fail with EBADF; no memory is involved.
            unsafe {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags >= 0 && libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) == -1 {
                    return Err(Errno::last());
                }
            }
        }
        Ok(())
    }

    fn reset_signals(&self) -> Result<(), Errno> {
        // The raw syscall, not glibc's sigaction: glibc refuses signals 32 and 33 (its own), but
        // an ignored disposition of those survives exec too and must not reach the agent.
        let action = KernelSigaction {
            handler: libc::SIG_DFL,
            flags: 0,
            restorer: 0,
            mask: 0,
        };
        for sig in 1..=libc::SIGRTMAX() {
            if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                continue;
            }
            // SAFETY: `action` is a live kernel `struct sigaction` (SIG_DFL needs no restorer);
            // the old action is not requested; 8 is the kernel's sigset size.
            check(unsafe {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    &action as *const KernelSigaction,
                    std::ptr::null_mut::<KernelSigaction>(),
                    8usize,
                )
            })?;
        }
        let empty = SigSet::empty();
        // SAFETY: `empty.0` is an initialised sigset; the old mask is not requested.
        check_int(unsafe { libc::sigprocmask(libc::SIG_SETMASK, &empty.0, std::ptr::null_mut()) })
            .map(drop)
    }

    fn own_process_group(&self) -> Result<(), Errno> {
        // SAFETY: integer arguments only.
        check_int(unsafe { libc::setpgid(0, 0) })?;
        // SAFETY: integer arguments only; fails harmlessly (ENOTTY) when stdin is no terminal.
        let ret = unsafe { libc::tcsetpgrp(libc::STDIN_FILENO, libc::getpgrp()) };
        match check_int(ret) {
            Err(Errno(libc::ENOTTY | libc::ENXIO | libc::EBADF)) | Ok(_) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn install_seccomp(&self, program: &[crate::seccomp::Insn]) -> Result<(), Errno> {
        let len = libc::c_ushort::try_from(program.len()).map_err(|_| Errno(libc::EINVAL))?;
        let fprog = libc::sock_fprog {
            len,
            filter: program.as_ptr().cast_mut().cast::<libc::sock_filter>(),
        };
        // SAFETY: `fprog` points at `len` live instructions laid out as `struct sock_filter`
        // (asserted above); the kernel only reads them, copying the program before returning.
        check_int(unsafe {
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER as libc::c_ulong,
                &fprog as *const libc::sock_fprog,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
            )
        })
        .map(drop)
    }
}

// `seccomp::Insn` is handed to the kernel as `struct sock_filter`: same size and alignment
// (and fields: u16, u8, u8, u32, both `repr(C)`).
const _: () = assert!(
    std::mem::size_of::<crate::seccomp::Insn>() == std::mem::size_of::<libc::sock_filter>()
        && std::mem::align_of::<crate::seccomp::Insn>()
            == std::mem::align_of::<libc::sock_filter>()
);

/// The kernel's `struct sigaction` for `rt_sigaction` (x86-64 / generic layout).
#[repr(C)]
struct KernelSigaction {
    handler: libc::sighandler_t,
    flags: libc::c_ulong,
    restorer: usize,
    mask: u64,
}

/// A signal set.
#[derive(Clone, Copy)]
pub struct SigSet(libc::sigset_t);

impl fmt::Debug for SigSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let members: Vec<i32> = (1..=libc::SIGRTMAX())
            .filter(|&s| self.contains(s))
            .collect();
        f.debug_tuple("SigSet").field(&members).finish()
    }
}

impl SigSet {
    /// No signal.
    pub fn empty() -> Self {
        // SAFETY: sigemptyset initialises the zeroed set it is given.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            Self(set)
        }
    }

    /// Every signal.
    pub fn full() -> Self {
        // SAFETY: sigfillset initialises the zeroed set it is given.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut set);
            Self(set)
        }
    }

    /// Add `sig` (invalid numbers are ignored).
    pub fn add(&mut self, sig: i32) {
        // SAFETY: `self.0` is an initialised set; an invalid number only returns EINVAL.
        unsafe {
            libc::sigaddset(&mut self.0, sig);
        }
    }

    /// Remove `sig` (invalid numbers are ignored).
    pub fn remove(&mut self, sig: i32) {
        // SAFETY: `self.0` is an initialised set; an invalid number only returns EINVAL.
        unsafe {
            libc::sigdelset(&mut self.0, sig);
        }
    }

    /// Is `sig` in the set?
    pub fn contains(&self, sig: i32) -> bool {
        // SAFETY: `self.0` is an initialised set; an invalid number returns -1 (not a member).
        unsafe { libc::sigismember(&self.0, sig) == 1 }
    }
}

/// Block `set` for the calling thread (`sigprocmask(SIG_BLOCK)`); returns the previous mask.
pub fn block_signals(set: &SigSet) -> Result<SigSet, Errno> {
    let mut old = SigSet::empty();
    // SAFETY: both sets are initialised and live for the call.
    check_int(unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set.0, &mut old.0) })?;
    Ok(old)
}

/// Set the calling thread's signal mask to `set`.
pub fn set_signal_mask(set: &SigSet) -> Result<(), Errno> {
    // SAFETY: `set.0` is initialised; the old mask is not requested.
    check_int(unsafe { libc::sigprocmask(libc::SIG_SETMASK, &set.0, std::ptr::null_mut()) })
        .map(drop)
}

/// A close-on-exec signalfd reading the (blocked) signals in `set`.
pub fn signalfd(set: &SigSet) -> Result<OwnedFd, Errno> {
    // SAFETY: -1 asks for a new descriptor; `set.0` is initialised.
    let fd = check_int(unsafe { libc::signalfd(-1, &set.0, libc::SFD_CLOEXEC) })?;
    // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A close-on-exec, non-blocking signalfd for `set`: reading it when none of the signals is
/// pending fails with `EAGAIN` instead of waiting.
pub fn signalfd_nonblocking(set: &SigSet) -> Result<OwnedFd, Errno> {
    // SAFETY: -1 asks for a new descriptor; `set.0` is initialised.
    let fd =
        check_int(unsafe { libc::signalfd(-1, &set.0, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) })?;
    // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Registers `fd` with the current tokio runtime to wait until it is readable.
pub fn watch_readable(
    fd: std::os::fd::BorrowedFd<'_>,
) -> std::io::Result<tokio::io::unix::AsyncFd<std::os::fd::BorrowedFd<'_>>> {
    // SAFETY: a `BorrowedFd<'a>` is open and refers to the same file description for all of
    // 'a, and the returned `AsyncFd<BorrowedFd<'a>>` cannot outlive 'a.
    unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
            .map_err(std::io::Error::from)
    }
}

/// Waits until at least one of `fds` is readable, or `timeout` passes (rounded up to whole
/// milliseconds, so a short wait never spins). Returns, per fd, whether it is readable now (or
/// in an error or hang-up state a read will report); all `false` on timeout or `EINTR`.
pub fn poll_readable(
    fds: &[std::os::fd::BorrowedFd<'_>],
    timeout: std::time::Duration,
) -> Result<Vec<bool>, Errno> {
    let mut polls: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let millis = timeout.as_nanos().div_ceil(1_000_000);
    let millis = libc::c_int::try_from(millis).unwrap_or(libc::c_int::MAX);
    // SAFETY: `polls` is a live, writable array of exactly `polls.len()` pollfd structs, each
    // naming an fd borrowed (so open) for the duration of the call.
    let ret = unsafe { libc::poll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, millis) };
    if ret == -1 {
        let errno = Errno::last();
        return if errno.0 == libc::EINTR {
            Ok(vec![false; fds.len()])
        } else {
            Err(errno)
        };
    }
    Ok(polls.iter().map(|p| p.revents != 0).collect())
}

/// Block until one signal is read from a signalfd; returns its number and the sender's pid.
pub fn read_signal(fd: &OwnedFd) -> Result<(i32, i32), Errno> {
    // SAFETY: signalfd_siginfo is plain old data; all-zero is a valid value.
    let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: `info` is a live, writable buffer of exactly `size` bytes.
    let n = unsafe {
        libc::read(
            fd.as_raw_fd(),
            (&mut info as *mut libc::signalfd_siginfo).cast(),
            size,
        )
    };
    if n < 0 {
        return Err(Errno::last());
    }
    if n as usize != size {
        return Err(Errno(libc::EIO));
    }
    Ok((info.ssi_signo as i32, info.ssi_pid as i32))
}

/// How a child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitStatus {
    /// Normal exit with this code.
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
}

/// `waitpid(pid, WNOHANG)`: `Ok(None)` when children exist but none has ended;
/// `Err(ECHILD)` when there is no child left.
pub fn wait_nohang(pid: i32) -> Result<Option<(i32, WaitStatus)>, Errno> {
    wait(pid, libc::WNOHANG)
}

/// `waitpid(pid, 0)`: block until a child ends (`Err(ECHILD)` when there is none).
pub fn wait_blocking(pid: i32) -> Result<Option<(i32, WaitStatus)>, Errno> {
    wait(pid, 0)
}

fn wait(pid: i32, flags: libc::c_int) -> Result<Option<(i32, WaitStatus)>, Errno> {
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: `status` is a live int the kernel writes the status into.
        let ret = unsafe { libc::waitpid(pid, &mut status, flags) };
        if ret == -1 {
            let err = Errno::last();
            if err.0 == libc::EINTR {
                continue;
            }
            return Err(err);
        }
        if ret == 0 {
            return Ok(None);
        }
        let how = if libc::WIFSIGNALED(status) {
            WaitStatus::Signaled(libc::WTERMSIG(status))
        } else {
            WaitStatus::Exited(libc::WEXITSTATUS(status))
        };
        return Ok(Some((ret, how)));
    }
}

/// `kill(pid, sig)`.
pub fn kill(pid: i32, sig: i32) -> Result<(), Errno> {
    // SAFETY: integer arguments only.
    check_int(unsafe { libc::kill(pid, sig) }).map(drop)
}

/// The calling process's pid.
pub fn getpid() -> i32 {
    // SAFETY: getpid cannot fail and touches no memory.
    unsafe { libc::getpid() }
}

/// `prctl(PR_SET_CHILD_SUBREAPER, 1)`: orphans below us are reparented to us, not to the real
/// PID 1, so we can reap them (for when sandbox-init is not PID 1).
pub fn set_child_subreaper() -> Result<(), Errno> {
    prctl(libc::PR_SET_CHILD_SUBREAPER, 1).map(drop)
}

/// The highest fd number that needs the close-on-exec fallback: the highest fd open now (from
/// `/proc/self/fd`; fds opened later by us are close-on-exec anyway), else the soft
/// `RLIMIT_NOFILE` minus one.
pub fn max_fd() -> RawFd {
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        let highest = dir
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<RawFd>().ok())
            .max();
        if let Some(fd) = highest {
            return fd;
        }
    }
    // SAFETY: all-zero is a valid rlimit value for getrlimit to overwrite.
    let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: `limit` is a live rlimit struct.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    if !ok || limit.rlim_cur == libc::RLIM_INFINITY {
        return 1 << 20;
    }
    RawFd::try_from(limit.rlim_cur.saturating_sub(1)).unwrap_or(1 << 20)
}

/// Give freed heap memory back to the kernel (`malloc_trim(0)`), so PID 1's resident set while
/// it supervises holds only what it still uses.
pub fn release_free_memory() {
    // SAFETY: malloc_trim only walks glibc's own heap bookkeeping.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// A mapping from `/proc/self/smaps` whose resident pages are all copies of the file's pages:
/// file-backed, private, not writable, and without anonymous (copied-on-write) pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CleanMapping {
    /// Start address.
    pub start: usize,
    /// Length in bytes.
    pub len: usize,
}

/// Parse `/proc/self/smaps` text into the mappings [`release_clean_file_pages`] may drop.
pub fn clean_file_mappings(smaps: &str) -> Vec<CleanMapping> {
    struct Block {
        start: usize,
        len: usize,
        eligible: bool,
        dirty_or_anon: bool,
    }
    let mut out = Vec::new();
    let mut cur: Option<Block> = None;
    let flush = |b: Option<Block>, out: &mut Vec<CleanMapping>| {
        if let Some(b) = b {
            if b.eligible && !b.dirty_or_anon {
                out.push(CleanMapping {
                    start: b.start,
                    len: b.len,
                });
            }
        }
    };
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-') {
            if let (Ok(start), Ok(end)) =
                (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
            {
                flush(cur.take(), &mut out);
                let perms = fields.next().unwrap_or("");
                let _offset = fields.next();
                let _dev = fields.next();
                let inode = fields.next().unwrap_or("0");
                let path = fields.next().unwrap_or("");
                cur = Some(Block {
                    start,
                    len: end.saturating_sub(start),
                    eligible: inode != "0"
                        && path.starts_with('/')
                        && perms.starts_with('r')
                        && !perms.contains('w')
                        && perms.ends_with('p'),
                    dirty_or_anon: false,
                });
                continue;
            }
        }
        if let Some(b) = cur.as_mut() {
            let kb = |v: Option<&str>| v.and_then(|v| v.parse::<u64>().ok()).unwrap_or(1);
            match first {
                // Anonymous = copied-on-write pages: those differ from the file. (Dirty file
                // pages are the page cache's state, e.g. a freshly written binary: unmapping
                // them loses nothing.)
                "Anonymous:" | "Swap:" if kb(fields.next()) != 0 => b.dirty_or_anon = true,
                _ => {}
            }
        }
    }
    flush(cur.take(), &mut out);
    out
}

/// Drop the resident pages of clean, read-only file mappings (mostly the binary's own code and
/// read-only data touched during boot: resolver, TOML, iptables handling). They are identical
/// to the file, so the kernel re-reads any page that is used again; PID 1's resident set while
/// it supervises then holds only what the supervision loop touches. Best effort.
pub fn release_clean_file_pages() {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    for m in clean_file_mappings(&smaps) {
        // SAFETY: the range is a whole private, non-writable, file-backed mapping with no
        // anonymous or dirty page (checked above from smaps, and nothing can write to it since
        // it is not writable): MADV_DONTNEED only drops page-table entries that the next access
        // re-populates from the unchanged file, so no data is lost.
        unsafe {
            libc::madvise(m.start as *mut libc::c_void, m.len, libc::MADV_DONTNEED);
        }
    }
}

/// A close-on-exec pipe: (read end, write end).
pub fn pipe_cloexec() -> Result<(OwnedFd, OwnedFd), Errno> {
    let mut fds: [libc::c_int; 2] = [-1, -1];
    // SAFETY: `fds` is a live array of two ints for the kernel to fill.
    check_int(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Read until `buf` is full or end of file; returns how many bytes were read.
pub fn read_full(fd: &OwnedFd, buf: &mut [u8]) -> Result<usize, Errno> {
    let mut done = 0;
    while done < buf.len() {
        let rest = &mut buf[done..];
        // SAFETY: `rest` is a live, writable slice of `rest.len()` bytes.
        let n = unsafe { libc::read(fd.as_raw_fd(), rest.as_mut_ptr().cast(), rest.len()) };
        if n < 0 {
            let err = Errno::last();
            if err.0 == libc::EINTR {
                continue;
            }
            return Err(err);
        }
        if n == 0 {
            break;
        }
        done += n as usize;
    }
    Ok(done)
}

/// Write all of `buf` to a raw fd, ignoring errors (async-signal-safe; used by a forked child to
/// report why it could not exec).
pub fn write_all_raw(fd: RawFd, buf: &[u8]) {
    let mut done = 0;
    while done < buf.len() {
        let rest = &buf[done..];
        // SAFETY: `rest` is a live slice of `rest.len()` bytes.
        let n = unsafe { libc::write(fd, rest.as_ptr().cast(), rest.len()) };
        if n < 0 && Errno::last().0 == libc::EINTR {
            continue;
        }
        if n <= 0 {
            return;
        }
        done += n as usize;
    }
}

/// A NULL-terminated array of C strings for `execve`, built before the fork.
#[derive(Debug)]
pub struct CStrArray {
    owned: Vec<CString>,
    ptrs: Vec<*const c_char>,
}

impl CStrArray {
    /// Wrap `strings`, keeping them alive as long as the pointer array.
    pub fn new(owned: Vec<CString>) -> Self {
        let mut ptrs: Vec<*const c_char> = owned.iter().map(|s| s.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        Self { owned, ptrs }
    }

    /// The strings.
    pub fn strings(&self) -> &[CString] {
        &self.owned
    }

    fn as_ptr(&self) -> *const *const c_char {
        self.ptrs.as_ptr()
    }
}

/// The result of [`fork`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fork {
    /// We are the parent; this is the child's pid.
    Parent(i32),
    /// We are the child.
    Child,
}

/// `fork()`.
///
/// The child of a possibly multi-threaded process may only make async-signal-safe calls until it
/// execs: no allocation, no locks. Callers keep to the allocation-free functions of this module.
pub fn fork() -> Result<Fork, Errno> {
    // SAFETY: fork itself is safe to call; the obligations on the child are documented above and
    // kept by the only caller (supervisor::spawn).
    match unsafe { libc::fork() } {
        -1 => Err(Errno::last()),
        0 => Ok(Fork::Child),
        pid => Ok(Fork::Parent(pid)),
    }
}

/// `execve(path, argv, envp)`; returns only on failure, with the error.
pub fn execve(path: &CStr, argv: &CStrArray, envp: &CStrArray) -> Errno {
    // SAFETY: `path` is NUL-terminated; `argv` and `envp` are NULL-terminated arrays of pointers
    // into NUL-terminated strings that `CStrArray` keeps alive.
    unsafe {
        libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
    }
    Errno::last()
}

/// `_exit(code)`: leave at once, without running destructors or atexit handlers (the only sound
/// way for a forked child to end).
pub fn exit_immediately(code: i32) -> ! {
    // SAFETY: _exit is async-signal-safe and never returns.
    unsafe { libc::_exit(code) }
}

// ---- Files by descriptor: the home fix-up and the secrets walk directories with `openat`,
// never following a symlink and never re-resolving a path the agent could change.

/// What an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A symbolic link (never followed).
    Symlink,
    /// A regular file.
    File,
    /// Anything else (socket, fifo, device).
    Other,
}

/// One entry, as `statx`/`fstatat` see it without following a symlink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryStat {
    /// Its type.
    pub kind: EntryKind,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Hard links to it.
    pub nlink: u64,
    /// The file system (major << 32 | minor).
    pub dev: u64,
    /// The mount it belongs to (`STATX_MNT_ID`), where the kernel reports one (Linux 5.8+).
    pub mnt_id: Option<u64>,
}

fn kind_of(mode: u32) -> EntryKind {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => EntryKind::Dir,
        libc::S_IFLNK => EntryKind::Symlink,
        libc::S_IFREG => EntryKind::File,
        _ => EntryKind::Other,
    }
}

fn c_name(name: &std::ffi::OsStr) -> Result<CString, Errno> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(name.as_bytes()).map_err(|_| Errno(libc::EINVAL))
}

/// `statx(dir, name, AT_SYMLINK_NOFOLLOW)` (an empty `name`: `dir` itself), falling back to
/// `fstatat` where `statx` is missing or filtered (then without a mount id).
pub fn stat_at(dir: BorrowedFd<'_>, name: &std::ffi::OsStr) -> Result<EntryStat, Errno> {
    let cname = c_name(name)?;
    let mut flags = libc::AT_SYMLINK_NOFOLLOW | libc::AT_NO_AUTOMOUNT;
    if name.is_empty() {
        flags |= libc::AT_EMPTY_PATH;
    }
    // SAFETY: all-zero is a valid `statx` for the kernel to overwrite.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    let mask = libc::STATX_TYPE
        | libc::STATX_MODE
        | libc::STATX_UID
        | libc::STATX_GID
        | libc::STATX_NLINK
        | libc::STATX_MNT_ID;
    // SAFETY: `cname` is NUL-terminated, `stx` a live, writable statx buffer, `dir` open.
    let ret = unsafe { libc::statx(dir.as_raw_fd(), cname.as_ptr(), flags, mask, &mut stx) };
    if ret == 0 {
        return Ok(EntryStat {
            kind: kind_of(u32::from(stx.stx_mode)),
            uid: stx.stx_uid,
            gid: stx.stx_gid,
            nlink: u64::from(stx.stx_nlink),
            dev: (u64::from(stx.stx_dev_major) << 32) | u64::from(stx.stx_dev_minor),
            mnt_id: (stx.stx_mask & libc::STATX_MNT_ID != 0).then_some(stx.stx_mnt_id),
        });
    }
    let err = Errno::last();
    if !matches!(err.0, libc::ENOSYS | libc::EPERM) {
        return Err(err);
    }
    // SAFETY: all-zero is a valid `stat` for the kernel to overwrite.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above, with a live `stat` buffer.
    check_int(unsafe { libc::fstatat(dir.as_raw_fd(), cname.as_ptr(), &mut st, flags) })?;
    Ok(EntryStat {
        kind: kind_of(st.st_mode),
        uid: st.st_uid,
        gid: st.st_gid,
        nlink: st.st_nlink,
        dev: (u64::from(libc::major(st.st_dev)) << 32) | u64::from(libc::minor(st.st_dev)),
        mnt_id: None,
    })
}

fn open_raw(dir: libc::c_int, name: &CStr, flags: libc::c_int) -> Result<OwnedFd, Errno> {
    // SAFETY: `name` is NUL-terminated; `dir` is an open descriptor or AT_FDCWD.
    let fd = check_int(unsafe { libc::openat(dir, name.as_ptr(), flags | libc::O_CLOEXEC) })?;
    // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens the directory `path` (symlinks in it followed: for paths root chose, like the
/// policy's home).
pub fn open_dir(path: &std::path::Path) -> Result<OwnedFd, Errno> {
    let cpath = c_name(path.as_os_str())?;
    open_raw(libc::AT_FDCWD, &cpath, libc::O_RDONLY | libc::O_DIRECTORY)
}

/// Opens the directory `name` in `dir`, refusing a symlink (`ELOOP`) or anything else
/// (`ENOTDIR`).
pub fn open_dir_at(dir: BorrowedFd<'_>, name: &std::ffi::OsStr) -> Result<OwnedFd, Errno> {
    let cname = c_name(name)?;
    open_raw(
        dir.as_raw_fd(),
        &cname,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
    )
}

/// Opens the file `name` in `dir` for reading, refusing a symlink (`ELOOP`).
pub fn open_file_at(dir: BorrowedFd<'_>, name: &std::ffi::OsStr) -> Result<OwnedFd, Errno> {
    let cname = c_name(name)?;
    open_raw(
        dir.as_raw_fd(),
        &cname,
        libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NOCTTY,
    )
}

/// `fchownat(dir, name, uid, gid, AT_SYMLINK_NOFOLLOW)`: a symlink itself is re-owned, never
/// its target.
pub fn chown_at(
    dir: BorrowedFd<'_>,
    name: &std::ffi::OsStr,
    uid: u32,
    gid: u32,
) -> Result<(), Errno> {
    let cname = c_name(name)?;
    // SAFETY: `cname` is NUL-terminated; `dir` is open; integer arguments otherwise.
    check_int(unsafe {
        libc::fchownat(
            dir.as_raw_fd(),
            cname.as_ptr(),
            uid,
            gid,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
    .map(drop)
}

/// `mkdirat(dir, name, mode)`.
pub fn mkdir_at(dir: BorrowedFd<'_>, name: &std::ffi::OsStr, mode: u32) -> Result<(), Errno> {
    let cname = c_name(name)?;
    // SAFETY: `cname` is NUL-terminated; `dir` is open.
    check_int(unsafe { libc::mkdirat(dir.as_raw_fd(), cname.as_ptr(), mode) }).map(drop)
}

/// The names in the directory `dir` (without `.` and `..`), read through a duplicate of the
/// descriptor, so `dir` stays usable and is not moved.
pub fn list_dir(dir: BorrowedFd<'_>) -> Result<Vec<std::ffi::OsString>, Errno> {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: F_DUPFD_CLOEXEC on an open descriptor returns a new one we own.
    let dup = check_int(unsafe { libc::fcntl(dir.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) })?;
    // SAFETY: `dup` is a fresh descriptor of a directory; on success the DIR stream owns it.
    let stream = unsafe { libc::fdopendir(dup) };
    if stream.is_null() {
        let err = Errno::last();
        // SAFETY: fdopendir failed, so `dup` is still ours to close.
        unsafe { libc::close(dup) };
        return Err(err);
    }
    // The stream's position is shared with `dir`'s: start at the beginning.
    // SAFETY: `stream` is a valid DIR stream.
    unsafe { libc::rewinddir(stream) };
    let mut names = Vec::new();
    let result = loop {
        // readdir reports an error only through errno: clear it first.
        // SAFETY: __errno_location returns the calling thread's errno slot.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: `stream` is a valid DIR stream; the entry it returns stays valid until the
        // next readdir/closedir on it, and is copied out before then.
        let entry = unsafe { libc::readdir(stream) };
        if entry.is_null() {
            let errno = Errno::last();
            break if errno.0 == 0 { Ok(()) } else { Err(errno) };
        }
        // SAFETY: `d_name` of a returned entry is a NUL-terminated name.
        let name = unsafe { CStr::from_ptr((*entry).d_name.as_ptr()) };
        let bytes = name.to_bytes();
        if bytes != b"." && bytes != b".." {
            names.push(std::ffi::OsStr::from_bytes(bytes).to_owned());
        }
    };
    // SAFETY: `stream` is valid and closed exactly once (closing `dup` with it).
    unsafe { libc::closedir(stream) };
    result.map(|()| names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_text_is_lowercase_without_suffix() {
        assert_eq!(Errno(libc::ENOENT).to_string(), "no such file or directory");
        assert_eq!(Errno(libc::EPERM).to_string(), "operation not permitted");
    }

    #[test]
    fn capget_reads_this_thread() {
        let caps = RealSys.capget().expect("capget works for any user");
        // Effective is always a subset of permitted.
        assert_eq!(caps.effective & !caps.permitted, 0);
    }

    #[test]
    fn sigset_membership() {
        let mut set = SigSet::empty();
        assert!(!set.contains(libc::SIGTERM));
        set.add(libc::SIGTERM);
        assert!(set.contains(libc::SIGTERM));
        set.remove(libc::SIGTERM);
        assert!(!set.contains(libc::SIGTERM));
        assert!(SigSet::full().contains(libc::SIGUSR2));
    }

    #[test]
    fn only_clean_read_only_file_mappings_are_released() {
        let smaps = "\
55d0-55e0 r--p 00000000 fe:00 42 /usr/bin/x
Rss: 8 kB
Private_Dirty: 8 kB
Anonymous: 0 kB
55e0-55f0 r-xp 00010000 fe:00 42 /usr/bin/x
Private_Dirty: 0 kB
Anonymous: 0 kB
55f0-5600 r--p 00020000 fe:00 42 /usr/bin/x
Private_Dirty: 8 kB
Anonymous: 8 kB
5600-5610 rw-p 00030000 fe:00 42 /usr/bin/x
Private_Dirty: 0 kB
Anonymous: 0 kB
5610-5620 rw-p 00000000 00:00 0 [heap]
Anonymous: 4 kB
7ff0-7ff2 r-xp 00000000 00:00 0 [vdso]
Anonymous: 0 kB
";
        assert_eq!(
            clean_file_mappings(smaps),
            [
                CleanMapping {
                    start: 0x55d0,
                    len: 0x10
                },
                CleanMapping {
                    start: 0x55e0,
                    len: 0x10
                }
            ]
        );
    }

    #[test]
    fn max_fd_sees_an_open_descriptor() {
        let file = std::fs::File::open("/proc/self/status").expect("open");
        assert!(max_fd() >= file.as_raw_fd());
    }

    #[test]
    fn cstr_array_is_null_terminated() {
        let arr = CStrArray::new(vec![c"a".to_owned(), c"b".to_owned()]);
        assert_eq!(arr.ptrs.len(), 3);
        assert!(arr.ptrs[2].is_null());
        assert_eq!(arr.strings().len(), 2);
    }
}
