//! The only module with `unsafe` (the crate denies it everywhere else): thin, typed wrappers
//! around the Linux syscalls sandbox-init needs to drop privileges and to be PID 1, one concern a
//! file — capabilities and credentials (`caps`), signals, processes, descriptors (`io`), memory,
//! files by descriptor (`fs`), the netfilter netlink socket the egress record is read from
//! (`netlink`). Every `unsafe` block carries a `// SAFETY:` comment (clippy's
//! `undocumented_unsafe_blocks` is denied).
//!
//! The privilege calls sit behind the [`Sys`] trait so the order of the drop is unit-tested with a
//! recording double (see `privilege.rs`); [`RealSys`] is the kernel. The process calls (fork,
//! exec, signals, wait) are free functions used by the supervisor.
//!
//! Everything a forked child calls before `execve` is async-signal-safe: no allocation, no locks,
//! raw syscalls where glibc would do more than the syscall (setgroups/setresgid/setresuid run
//! glibc's "setxid" broadcast to all threads; in the child we want the plain per-thread call).

mod caps;
mod fs;
mod io;
mod memory;
mod netlink;
mod process;
mod signals;

pub use caps::{
    cap_bit, CapSets, CAP_KILL, CAP_NET_ADMIN, CAP_NET_RAW, CAP_SETGID, CAP_SETPCAP, CAP_SETUID,
};
pub use fs::{
    chown_at, list_dir, mkdir_at, open_dir, open_dir_at, open_file_at, stat_at, EntryKind,
    EntryStat,
};
pub use io::{pipe_cloexec, poll_readable, read_full, write_all_raw};
pub use memory::{release_clean_file_pages, release_free_memory};
pub use netlink::Netlink;
pub use process::{
    execve, exit_immediately, fork, getpid, max_fd, set_child_subreaper, wait_blocking,
    wait_nohang, CStrArray, Fork, WaitStatus,
};
pub use signals::{block_signals, kill, read_signal, signalfd, signalfd_nonblocking, SigSet};

use std::fmt;
use std::os::fd::RawFd;

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
    /// `prctl(PR_SET_KEEPCAPS, keep)`: whether leaving uid 0 keeps the permitted set.
    fn set_keep_caps(&self, keep: bool) -> Result<(), Errno>;
    /// `prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)`: `cap` survives `execve` (it must be
    /// permitted and inheritable).
    fn raise_ambient(&self, cap: u32) -> Result<(), Errno>;
    /// `prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap)`.
    fn ambient_read(&self, cap: u32) -> Result<bool, Errno>;
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

impl Sys for RealSys {
    fn capget(&self) -> Result<CapSets, Errno> {
        caps::capget()
    }

    fn capset(&self, sets: CapSets) -> Result<(), Errno> {
        caps::capset(sets)
    }

    fn capbset_drop(&self, cap: u32) -> Result<(), Errno> {
        caps::capbset_drop(cap)
    }

    fn capbset_read(&self, cap: u32) -> Result<bool, Errno> {
        caps::capbset_read(cap)
    }

    fn clear_ambient(&self) -> Result<(), Errno> {
        caps::clear_ambient()
    }

    fn set_keep_caps(&self, keep: bool) -> Result<(), Errno> {
        caps::set_keep_caps(keep)
    }

    fn raise_ambient(&self, cap: u32) -> Result<(), Errno> {
        caps::raise_ambient(cap)
    }

    fn ambient_read(&self, cap: u32) -> Result<bool, Errno> {
        caps::ambient_read(cap)
    }

    fn set_no_new_privs(&self) -> Result<(), Errno> {
        caps::set_no_new_privs()
    }

    fn set_not_dumpable(&self) -> Result<(), Errno> {
        caps::set_not_dumpable()
    }

    fn clear_groups(&self) -> Result<(), Errno> {
        caps::clear_groups()
    }

    fn set_gid(&self, gid: u32) -> Result<(), Errno> {
        caps::set_gid(gid)
    }

    fn set_uid(&self, uid: u32) -> Result<(), Errno> {
        caps::set_uid(uid)
    }

    fn cloexec_fds_from(&self, first: RawFd, max_fd: RawFd) -> Result<(), Errno> {
        process::cloexec_fds_from(first, max_fd)
    }

    fn reset_signals(&self) -> Result<(), Errno> {
        signals::reset_signals()
    }

    fn own_process_group(&self) -> Result<(), Errno> {
        process::own_process_group()
    }

    fn install_seccomp(&self, program: &[crate::seccomp::Insn]) -> Result<(), Errno> {
        caps::install_seccomp(program)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_text_is_lowercase_without_suffix() {
        assert_eq!(Errno(libc::ENOENT).to_string(), "no such file or directory");
        assert_eq!(Errno(libc::EPERM).to_string(), "operation not permitted");
    }
}
