//! Capabilities and credentials: the five capability sets, `no_new_privs`, dumpability, the
//! supplementary groups, uid and gid, and the seccomp filter. Every call is the raw per-thread
//! syscall (glibc's setxid wrappers would broadcast to all threads) and async-signal-safe: the
//! agent's drop runs in a forked child.

use super::{check, check_int, prctl, Errno};

/// `CAP_KILL`: bypass the uid check when sending signals.
pub const CAP_KILL: u32 = 5;
/// `CAP_SETGID`: setgroups/setresgid.
pub const CAP_SETGID: u32 = 6;
/// `CAP_SETUID`: setresuid.
pub const CAP_SETUID: u32 = 7;
/// `CAP_SETPCAP`: drop capabilities from the bounding set.
pub const CAP_SETPCAP: u32 = 8;
/// `CAP_NET_ADMIN`: change the firewall (the DNS gate keeps it).
pub const CAP_NET_ADMIN: u32 = 12;
/// `CAP_NET_RAW`: raw sockets (legacy iptables opens one to reach its tables).
pub const CAP_NET_RAW: u32 = 13;

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

pub(super) fn capget() -> Result<CapSets, Errno> {
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

pub(super) fn capset(sets: CapSets) -> Result<(), Errno> {
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

pub(super) fn capbset_drop(cap: u32) -> Result<(), Errno> {
    prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap)).map(drop)
}

pub(super) fn capbset_read(cap: u32) -> Result<bool, Errno> {
    prctl(libc::PR_CAPBSET_READ, libc::c_ulong::from(cap)).map(|v| v == 1)
}

pub(super) fn clear_ambient() -> Result<(), Errno> {
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

pub(super) fn set_keep_caps(keep: bool) -> Result<(), Errno> {
    prctl(libc::PR_SET_KEEPCAPS, libc::c_ulong::from(keep)).map(drop)
}

pub(super) fn raise_ambient(cap: u32) -> Result<(), Errno> {
    // SAFETY: PR_CAP_AMBIENT takes integer arguments only; arg4/arg5 must be 0.
    check_int(unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
            libc::c_ulong::from(cap),
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    })
    .map(drop)
}

pub(super) fn ambient_read(cap: u32) -> Result<bool, Errno> {
    // SAFETY: PR_CAP_AMBIENT takes integer arguments only; arg4/arg5 must be 0.
    check_int(unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_IS_SET as libc::c_ulong,
            libc::c_ulong::from(cap),
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    })
    .map(|v| v == 1)
}

pub(super) fn set_no_new_privs() -> Result<(), Errno> {
    prctl(libc::PR_SET_NO_NEW_PRIVS, 1).map(drop)
}

pub(super) fn set_not_dumpable() -> Result<(), Errno> {
    prctl(libc::PR_SET_DUMPABLE, 0).map(drop)
}

pub(super) fn clear_groups() -> Result<(), Errno> {
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

pub(super) fn set_gid(gid: u32) -> Result<(), Errno> {
    // SAFETY: integer arguments only; raw syscall = calling thread only.
    check(unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) }).map(drop)
}

pub(super) fn set_uid(uid: u32) -> Result<(), Errno> {
    // SAFETY: integer arguments only; raw syscall = calling thread only.
    check(unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) }).map(drop)
}

pub(super) fn install_seccomp(program: &[crate::seccomp::Insn]) -> Result<(), Errno> {
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

// `seccomp::Insn` is handed to the kernel as `struct sock_filter`: same size and alignment
// (and fields: u16, u8, u8, u32, both `repr(C)`).
const _: () = assert!(
    std::mem::size_of::<crate::seccomp::Insn>() == std::mem::size_of::<libc::sock_filter>()
        && std::mem::align_of::<crate::seccomp::Insn>()
            == std::mem::align_of::<libc::sock_filter>()
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capget_reads_this_thread() {
        let caps = capget().expect("capget works for any user");
        // Effective is always a subset of permitted.
        assert_eq!(caps.effective & !caps.permitted, 0);
    }
}
