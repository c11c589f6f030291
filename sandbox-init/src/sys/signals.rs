//! Signals: sets, the mask, signalfds, sending, and the reset to default dispositions the agent
//! starts with.

use super::{check, check_int, Errno};
use std::fmt;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

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

/// `kill(pid, sig)`.
pub fn kill(pid: i32, sig: i32) -> Result<(), Errno> {
    // SAFETY: integer arguments only.
    check_int(unsafe { libc::kill(pid, sig) }).map(drop)
}

/// The kernel's `struct sigaction` for `rt_sigaction` (x86-64 / generic layout).
#[repr(C)]
struct KernelSigaction {
    handler: libc::sighandler_t,
    flags: libc::c_ulong,
    restorer: usize,
    mask: u64,
}

/// Every signal disposition back to `SIG_DFL` and an empty signal mask (async-signal-safe).
pub(super) fn reset_signals() -> Result<(), Errno> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
