//! Waiting on and moving bytes through descriptors: poll, pipes, and the
//! raw reads and writes a forked child may make.

use super::{check_int, Errno};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

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
