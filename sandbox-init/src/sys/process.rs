//! Processes: fork, exec, exit, wait, the process group, being a subreaper, and the
//! descriptors a child may inherit.

use super::{check_int, prctl, Errno};
use std::ffi::{c_char, CStr, CString};
use std::os::fd::RawFd;

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

/// The highest fd number that needs the close-on-exec fallback of [`cloexec_fds_from`]. Where
/// `close_range` works (Linux 5.11 on, no seccomp profile refusing it) the fallback does not
/// run, and the soft `RLIMIT_NOFILE` minus one bounds it without reading a directory; elsewhere
/// the highest fd open now (from `/proc/self/fd`; fds opened later by us are close-on-exec
/// anyway), else that limit.
pub fn max_fd() -> RawFd {
    // SAFETY: a range beyond every descriptor: the kernel checks the call and changes nothing.
    let close_range = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            libc::c_uint::MAX,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    } == 0;
    if !close_range {
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            let highest = dir
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<RawFd>().ok())
                .max();
            if let Some(fd) = highest {
                return fd;
            }
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

/// A NULL-terminated array of C strings for `execve`, built before the fork.
#[derive(Debug)]
pub struct CStrArray {
    /// Owns the strings `ptrs` points into; read only by tests.
    _owned: Vec<CString>,
    ptrs: Vec<*const c_char>,
}

impl CStrArray {
    /// Wrap `strings`, keeping them alive as long as the pointer array.
    pub fn new(owned: Vec<CString>) -> Self {
        let mut ptrs: Vec<*const c_char> = owned.iter().map(|s| s.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        Self {
            _owned: owned,
            ptrs,
        }
    }

    /// The strings.
    #[cfg(test)]
    pub fn strings(&self) -> &[CString] {
        &self._owned
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

/// `setpgid(0, 0)`, then, with a terminal on stdin, its foreground group.
pub(super) fn own_process_group() -> Result<(), Errno> {
    // SAFETY: integer arguments only.
    check_int(unsafe { libc::setpgid(0, 0) })?;
    // SAFETY: integer arguments only; fails harmlessly (ENOTTY) when stdin is no terminal.
    let ret = unsafe { libc::tcsetpgrp(libc::STDIN_FILENO, libc::getpgrp()) };
    match check_int(ret) {
        Err(Errno(libc::ENOTTY | libc::ENXIO | libc::EBADF)) | Ok(_) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Every fd from `first` upwards close-on-exec (see [`super::Sys::cloexec_fds_from`]).
pub(super) fn cloexec_fds_from(first: RawFd, max_fd: RawFd) -> Result<(), Errno> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

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
