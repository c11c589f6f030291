//! The privilege model: what the agent ends with, and what PID 1 keeps.
//!
//! **The agent** (a forked child, between `fork` and `execve`) ends with nothing: uid/gid from
//! the policy (default 1000:1000), no supplementary groups, all five capability sets empty
//! (bounding up to `/proc/sys/kernel/cap_last_cap`, so also capabilities newer than this code),
//! `no_new_privs` (setuid binaries and file capabilities grant nothing), no inherited fd above 2,
//! and a seccomp filter that refuses socket families netfilter cannot see ([`crate::seccomp`]).
//! [`drop_agent`] runs after `fork`, so it never allocates: everything it needs is computed
//! before and passed in by value.
//!
//! **PID 1** stays uid 0 but keeps only `CAP_KILL` (permitted + effective), with empty
//! bounding, inheritable and ambient sets, `no_new_privs`, and not dumpable. Why uid 0 + CAP_KILL
//! and not the agent's uid: a process may signal another only with the same (real/effective ->
//! real/saved) uid or with CAP_KILL. Had PID 1 switched to uid 1000, the agent could signal it,
//! and PID 1's signalfd would forward those signals right back (the kernel lets a namespace's
//! init receive blocked signals from inside); the agent could also read `/proc/1/environ` or
//! ptrace PID 1 if it ever became dumpable again. Staying uid 0 makes the kernel's uid check
//! refuse all of that (`EPERM`/`EACCES`) to a uid-1000 process without capabilities; CAP_KILL is
//! the one capability forwarding needs. "Not dumpable" additionally makes `/proc/1/*` root-owned
//! and refuses ptrace attaches lacking CAP_SYS_PTRACE.
//!
//! Fail closed: without CAP_SETPCAP, CAP_SETUID and CAP_SETGID in the effective set the drop
//! cannot be complete, so [`check_can_drop`] refuses before anything is spawned (exit 71) — never
//! a silent partial drop. The child also re-reads its capability sets after the drop and refuses
//! to exec if anything is left.

use std::path::{Path, PathBuf};

use crate::sys::{self, cap_bit, CapSets, Errno, Sys};

/// Errors of the privilege checks and of PID 1's own drop (the agent's drop reports
/// [`DropFailure`], which is allocation-free).
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// The container lacks a capability the drop needs.
    #[error(
        "failed to drop privileges: the container lacks {}: start it with --cap-add for each \
         (see the capabilities sandbox-init needs in the README)",
        .missing.join(", ")
    )]
    MissingCapabilities {
        /// Names like `CAP_SETPCAP`.
        missing: Vec<&'static str>,
    },
    /// `cap_last_cap` could not be read or parsed.
    #[error("failed to read {}: {reason}", .path.display())]
    CapLastCap {
        /// The file (normally `/proc/sys/kernel/cap_last_cap`).
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The policy asks for the agent to run as root.
    #[error("failed to accept agent {what} 0: the agent must not run as root (set [agent] uid and gid to a non-zero id)")]
    RootAgent {
        /// `uid` or `gid`.
        what: &'static str,
    },
    /// A syscall of PID 1's own hardening failed.
    #[error("failed to {what}: {errno}")]
    Syscall {
        /// The operation, e.g. "read capabilities".
        what: &'static str,
        /// The error.
        errno: Errno,
    },
}

impl PrivilegeError {
    /// Whether the policy asked for a root agent (a policy error, not the container's).
    pub fn is_root_agent(&self) -> bool {
        matches!(self, PrivilegeError::RootAgent { .. })
    }
}

/// The agent's identity after the drop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AgentCreds {
    uid: u32,
    gid: u32,
}

impl AgentCreds {
    /// The agent's uid and gid; root is refused.
    pub fn new(uid: u32, gid: u32) -> Result<Self, PrivilegeError> {
        if uid == 0 {
            return Err(PrivilegeError::RootAgent { what: "uid" });
        }
        if gid == 0 {
            return Err(PrivilegeError::RootAgent { what: "gid" });
        }
        Ok(Self { uid, gid })
    }
}

/// Everything the child's drop needs, computed before the fork.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AgentDrop {
    /// Target identity.
    pub creds: AgentCreds,
    /// Highest capability number the kernel knows (`cap_last_cap`).
    pub last_cap: u32,
    /// Highest fd number to mark close-on-exec when `close_range` is missing.
    pub max_fd: i32,
    /// The socket-family filter, built before the fork (`None` on an architecture without
    /// tables: see [`crate::seccomp::native_abis`]).
    pub filter: Option<crate::seccomp::Program>,
}

/// Proof that [`check_can_drop`] passed; [`crate::supervisor::spawn`] requires it, so nothing
/// can be spawned without the check.
#[derive(Debug)]
pub struct DropReady {
    drop: AgentDrop,
    has_kill: bool,
}

impl DropReady {
    /// The prepared drop.
    pub fn agent_drop(&self) -> AgentDrop {
        self.drop
    }

    /// Whether PID 1 can keep CAP_KILL (and therefore forward signals).
    pub fn has_kill(&self) -> bool {
        self.has_kill
    }
}

/// One step of the agent's drop, in the order they run. The number is what the child writes to
/// its parent when the step fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum DropStep {
    /// Mark fds above 2 close-on-exec.
    Fds = 1,
    /// Clear the ambient set.
    Ambient = 2,
    /// Empty the bounding set (needs CAP_SETPCAP, so before the uid change).
    Bounding = 3,
    /// `setgroups([])`.
    Groups = 4,
    /// `setresgid`.
    Gid = 5,
    /// `setresuid`.
    Uid = 6,
    /// Empty inheritable/permitted/effective.
    Caps = 7,
    /// `no_new_privs`.
    NoNewPrivs = 8,
    /// Re-read the sets: anything left is an error.
    Verify = 9,
    /// Install the socket-family filter (seccomp).
    Seccomp = 10,
    /// Default dispositions, empty mask.
    Signals = 11,
    /// `execve`.
    Exec = 12,
}

impl DropStep {
    /// Decode a step number from the child.
    pub fn from_u32(n: u32) -> Option<Self> {
        use DropStep::*;
        [
            Fds, Ambient, Bounding, Groups, Gid, Uid, Caps, NoNewPrivs, Verify, Seccomp, Signals,
            Exec,
        ]
        .into_iter()
        .find(|s| *s as u32 == n)
    }

    /// What the step does, for messages ("failed to <this>: ...").
    pub fn describe(self) -> &'static str {
        match self {
            DropStep::Fds => "close inherited file descriptors",
            DropStep::Ambient => "clear the ambient capability set",
            DropStep::Bounding => "empty the capability bounding set",
            DropStep::Groups => "clear supplementary groups",
            DropStep::Gid => "set the agent's gid",
            DropStep::Uid => "set the agent's uid",
            DropStep::Caps => "empty the inheritable, permitted and effective capability sets",
            DropStep::NoNewPrivs => "set no_new_privs",
            DropStep::Verify => "verify that no capability is left",
            DropStep::Seccomp => "install the socket-family filter (seccomp)",
            DropStep::Signals => "reset the signal mask and dispositions",
            DropStep::Exec => "execute the agent",
        }
    }
}

/// A failed step of the agent's drop (Copy, allocation-free: built in the forked child).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DropFailure {
    /// Which step.
    pub step: DropStep,
    /// The error.
    pub errno: Errno,
}

fn at(step: DropStep) -> impl Fn(Errno) -> DropFailure {
    move |errno| DropFailure { step, errno }
}

/// Read `cap_last_cap` (path as a parameter, normally `/proc/sys/kernel/cap_last_cap`).
pub fn read_cap_last_cap(path: &Path) -> Result<u32, PrivilegeError> {
    let fail = |reason: String| PrivilegeError::CapLastCap {
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let n: u32 = text
        .trim()
        .parse()
        .map_err(|_| fail(format!("not a number: {:?}", text.trim())))?;
    if n > 63 {
        return Err(fail(format!("{n} is above 63")));
    }
    Ok(n)
}

const NEEDED: [(u32, &str); 3] = [
    (sys::CAP_SETPCAP, "CAP_SETPCAP"),
    (sys::CAP_SETUID, "CAP_SETUID"),
    (sys::CAP_SETGID, "CAP_SETGID"),
];

/// Refuse unless the effective set holds everything the complete drop needs. Reads only: on
/// failure nothing has been changed.
pub fn check_can_drop(
    sys: &impl Sys,
    creds: AgentCreds,
    last_cap: u32,
    max_fd: i32,
) -> Result<DropReady, PrivilegeError> {
    let caps = sys.capget().map_err(|errno| PrivilegeError::Syscall {
        what: "read capabilities",
        errno,
    })?;
    let missing: Vec<&'static str> = NEEDED
        .iter()
        .filter(|(cap, _)| caps.effective & cap_bit(*cap) == 0)
        .map(|(_, name)| *name)
        .collect();
    if !missing.is_empty() {
        return Err(PrivilegeError::MissingCapabilities { missing });
    }
    Ok(DropReady {
        drop: AgentDrop {
            creds,
            last_cap,
            max_fd,
            filter: crate::seccomp::for_this_machine(),
        },
        has_kill: caps.permitted & cap_bit(sys::CAP_KILL) != 0,
    })
}

/// The checks before any drop, the same for the boot, `--health` and `--enter`: the agent's
/// ids (root refused), the kernel's highest capability (from `cap_last_cap`, normally
/// `/proc/sys/kernel/cap_last_cap`), and an effective set that can drop everything. Reads only.
pub fn ready_to_drop(
    sys: &impl Sys,
    uid: u32,
    gid: u32,
    cap_last_cap: &Path,
) -> Result<DropReady, PrivilegeError> {
    let creds = AgentCreds::new(uid, gid)?;
    let last_cap = read_cap_last_cap(cap_last_cap)?;
    check_can_drop(sys, creds, last_cap, sys::max_fd())
}

/// The agent's drop, in the forked child before `execve` (or, for `--health` and `--enter`, in
/// sandbox-init's own single-threaded process). Async-signal-safe (no allocation).
///
/// Order, and why:
/// 1. fds above 2 close-on-exec (not closed: the exec-error pipe must stay usable until exec);
/// 2. ambient cleared;
/// 3. bounding set emptied, 0..=cap_last_cap — needs CAP_SETPCAP, so before the uid change;
/// 4. supplementary groups cleared, then 5. gid, then 6. uid (gid first: after setuid we could
///    no longer change it); setresuid away from 0 also clears permitted/effective/ambient;
/// 7. inheritable/permitted/effective emptied explicitly (setuid leaves inheritable, and securebits
///    could have kept the rest);
/// 8. `no_new_privs`;
/// 9. re-read everything: any capability left is a failure, not a warning;
/// 10. the socket-family filter (seccomp): last, because it needs `no_new_privs` and must not
///     stand in the way of the steps before it; it then holds for the agent and its children.
///
/// The signal reset and exec follow in the supervisor.
pub fn drop_agent(sys: &impl Sys, plan: &AgentDrop) -> Result<(), DropFailure> {
    sys.cloexec_fds_from(3, plan.max_fd)
        .map_err(at(DropStep::Fds))?;
    sys.clear_ambient().map_err(at(DropStep::Ambient))?;
    for cap in 0..=plan.last_cap {
        sys.capbset_drop(cap).map_err(at(DropStep::Bounding))?;
    }
    sys.clear_groups().map_err(at(DropStep::Groups))?;
    sys.set_gid(plan.creds.gid).map_err(at(DropStep::Gid))?;
    sys.set_uid(plan.creds.uid).map_err(at(DropStep::Uid))?;
    sys.capset(CapSets::EMPTY).map_err(at(DropStep::Caps))?;
    sys.set_no_new_privs().map_err(at(DropStep::NoNewPrivs))?;
    verify_empty(sys, plan.last_cap)?;
    if let Some(filter) = &plan.filter {
        sys.install_seccomp(filter.insns())
            .map_err(at(DropStep::Seccomp))?;
    }
    Ok(())
}

fn verify_empty(sys: &impl Sys, last_cap: u32) -> Result<(), DropFailure> {
    let left = Err(DropFailure {
        step: DropStep::Verify,
        errno: Errno(libc::EPERM),
    });
    if sys.capget().map_err(at(DropStep::Verify))? != CapSets::EMPTY {
        return left;
    }
    for cap in 0..=last_cap {
        if sys.capbset_read(cap).map_err(at(DropStep::Verify))? {
            return left;
        }
    }
    Ok(())
}

/// PID 1's hardening before the fork (the child inherits it, which is fine: it drops further):
/// not dumpable, ambient cleared, bounding set emptied, inheritable emptied, `no_new_privs`.
/// Effective/permitted stay until [`keep_only_kill`]: the child still needs them for its drop.
pub fn harden_supervisor(sys: &impl Sys, ready: &DropReady) -> Result<(), PrivilegeError> {
    let fail = |what: &'static str| move |errno| PrivilegeError::Syscall { what, errno };
    sys.set_not_dumpable()
        .map_err(fail("make sandbox-init not dumpable"))?;
    sys.clear_ambient()
        .map_err(fail("clear sandbox-init's ambient capabilities"))?;
    for cap in 0..=ready.drop.last_cap {
        sys.capbset_drop(cap)
            .map_err(fail("empty sandbox-init's capability bounding set"))?;
    }
    let caps = sys
        .capget()
        .map_err(fail("read sandbox-init's capabilities"))?;
    sys.capset(CapSets {
        inheritable: 0,
        ..caps
    })
    .map_err(fail("clear sandbox-init's inheritable capabilities"))?;
    sys.set_no_new_privs()
        .map_err(fail("set no_new_privs for sandbox-init"))
}

/// PID 1's last drop, right after the fork: permitted and effective shrink to CAP_KILL (if the
/// container granted it), the one capability forwarding signals to the uid-1000 agent needs.
pub fn keep_only_kill(sys: &impl Sys, ready: &DropReady) -> Result<(), PrivilegeError> {
    let kill = if ready.has_kill {
        cap_bit(sys::CAP_KILL)
    } else {
        0
    };
    sys.capset(CapSets {
        effective: kill,
        permitted: kill,
        inheritable: 0,
    })
    .map_err(|errno| PrivilegeError::Syscall {
        what: "drop sandbox-init's capabilities to CAP_KILL",
        errno,
    })?;
    // Dumpable again? Changing credentials can reset it; set it once more, cheaply.
    sys.set_not_dumpable()
        .map_err(|errno| PrivilegeError::Syscall {
            what: "make sandbox-init not dumpable",
            errno,
        })
}

/// The DNS gate's capabilities: `CAP_NET_ADMIN` to change `JAILOC-NAMES`, and with legacy
/// iptables `CAP_NET_RAW` too (it reaches its tables through a raw socket: without it
/// `iptables-legacy-restore` fails with "unable to initialize table 'filter'").
pub fn gate_caps(legacy: bool) -> u64 {
    let raw = if legacy { cap_bit(sys::CAP_NET_RAW) } else { 0 };
    cap_bit(sys::CAP_NET_ADMIN) | raw
}

/// The DNS gate's drop, in its own process right after the fork (PID 1 still holds the
/// container's capabilities then): the gate ends as `uid`/`gid` (neither root nor the agent),
/// no supplementary groups, exactly `keep` in the bounding, permitted, effective, inheritable and
/// ambient sets (ambient, so the iptables programs it runs hold them too: they are not setuid
/// and have no file capabilities), `no_new_privs`, not dumpable. The agent can then neither
/// signal it, trace it nor read its memory (another uid, no CAP_KILL or CAP_SYS_PTRACE), and
/// reaches it only through DNS packets.
///
/// Order: bounding set first (needs CAP_SETPCAP); groups and gid (need CAP_SETGID); keep-caps
/// so leaving uid 0 keeps the permitted set; uid; the three sets down to `keep`; ambient
/// raised; `no_new_privs`; not dumpable (changing uid may reset it); then every set is read back
/// and anything but `keep` is a failure.
pub fn drop_gate(
    sys: &impl Sys,
    uid: u32,
    gid: u32,
    keep: u64,
    last_cap: u32,
) -> Result<(), PrivilegeError> {
    let fail = |what: &'static str| move |errno| PrivilegeError::Syscall { what, errno };
    if uid == 0 || gid == 0 {
        return Err(PrivilegeError::Syscall {
            what: "run the DNS gate as root",
            errno: Errno(libc::EINVAL),
        });
    }
    sys.clear_ambient()
        .map_err(fail("clear the gate's ambient capabilities"))?;
    for cap in (0..=last_cap).filter(|c| keep & cap_bit(*c) == 0) {
        sys.capbset_drop(cap)
            .map_err(fail("shrink the gate's bounding set"))?;
    }
    sys.clear_groups()
        .map_err(fail("clear the gate's supplementary groups"))?;
    sys.set_gid(gid).map_err(fail("set the gate's gid"))?;
    sys.set_keep_caps(true)
        .map_err(fail("keep the gate's capabilities across the uid change"))?;
    sys.set_uid(uid).map_err(fail("set the gate's uid"))?;
    sys.capset(CapSets {
        effective: keep,
        permitted: keep,
        inheritable: keep,
    })
    .map_err(fail("set the gate's capabilities"))?;
    sys.set_keep_caps(false)
        .map_err(fail("end keep-caps for the gate"))?;
    for cap in (0..=last_cap).filter(|c| keep & cap_bit(*c) != 0) {
        sys.raise_ambient(cap)
            .map_err(fail("raise the gate's ambient capabilities"))?;
    }
    sys.set_no_new_privs()
        .map_err(fail("set no_new_privs for the gate"))?;
    sys.set_not_dumpable()
        .map_err(fail("make the gate not dumpable"))?;
    let left = |errno| PrivilegeError::Syscall {
        what: "verify the gate's capabilities",
        errno,
    };
    let sets = sys.capget().map_err(left)?;
    let all_keep = CapSets {
        effective: keep,
        permitted: keep,
        inheritable: keep,
    };
    if sets != all_keep {
        return Err(left(Errno(libc::EPERM)));
    }
    for cap in 0..=last_cap {
        let want = keep & cap_bit(cap) != 0;
        if sys.capbset_read(cap).map_err(left)? != want
            || sys.ambient_read(cap).map_err(left)? != want
        {
            return Err(left(Errno(libc::EPERM)));
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod double {
    //! A recording `Sys` that also models the kernel rules the drop order depends on, so a wrong
    //! order fails here the way it would fail on a real kernel.

    use std::cell::RefCell;

    use super::*;

    /// One recorded call.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub enum Call {
        Capget,
        Capset(CapSets),
        CapbsetDrop(u32),
        CapbsetRead(u32),
        ClearAmbient,
        NoNewPrivs,
        NotDumpable,
        ClearGroups,
        SetGid(u32),
        SetUid(u32),
        Cloexec(i32),
        ResetSignals,
        ProcessGroup,
        /// A filter of this many instructions.
        Seccomp(usize),
        KeepCaps(bool),
        RaiseAmbient(u32),
        AmbientRead(u32),
    }

    #[derive(Debug)]
    pub struct State {
        pub uid: u32,
        pub gid: u32,
        pub groups: bool,
        pub caps: CapSets,
        pub bounding: u64,
        pub ambient: u64,
        pub nnp: bool,
        pub dumpable: bool,
        pub last_cap: u32,
        pub seccomp: bool,
        pub keep_caps: bool,
    }

    #[derive(Debug)]
    pub struct RecordingSys {
        pub calls: RefCell<Vec<Call>>,
        pub state: RefCell<State>,
        /// Make the first call whose `Call` matches this predicate fail with EPERM.
        pub fail: Option<fn(&Call) -> bool>,
    }

    pub const ALL: u64 = (1u64 << 41) - 1;

    impl RecordingSys {
        /// A root process with every capability (as `docker run --privileged` or `unshare`).
        pub fn root() -> Self {
            Self::with_caps(ALL)
        }

        pub fn with_caps(caps: u64) -> Self {
            Self {
                calls: RefCell::new(Vec::new()),
                state: RefCell::new(State {
                    uid: 0,
                    gid: 0,
                    groups: true,
                    caps: CapSets {
                        effective: caps,
                        permitted: caps,
                        inheritable: caps,
                    },
                    bounding: caps,
                    ambient: 0,
                    nnp: false,
                    dumpable: true,
                    last_cap: 40,
                    seccomp: false,
                    keep_caps: false,
                }),
                fail: None,
            }
        }

        pub fn calls(&self) -> Vec<Call> {
            self.calls.borrow().clone()
        }

        fn record(&self, call: Call) -> Result<(), Errno> {
            let failing = self.fail.is_some_and(|f| f(&call));
            self.calls.borrow_mut().push(call);
            if failing {
                Err(Errno(libc::EPERM))
            } else {
                Ok(())
            }
        }

        fn has(&self, cap: u32) -> Result<(), Errno> {
            if self.state.borrow().caps.effective & cap_bit(cap) != 0 {
                Ok(())
            } else {
                Err(Errno(libc::EPERM))
            }
        }
    }

    impl Sys for RecordingSys {
        fn capget(&self) -> Result<CapSets, Errno> {
            self.record(Call::Capget)?;
            Ok(self.state.borrow().caps)
        }

        fn capset(&self, sets: CapSets) -> Result<(), Errno> {
            self.record(Call::Capset(sets))?;
            let mut st = self.state.borrow_mut();
            let may_raise_inh = st.caps.effective & cap_bit(sys::CAP_SETPCAP) != 0;
            let inh_limit = st.caps.inheritable
                | if may_raise_inh {
                    st.caps.permitted & st.bounding
                } else {
                    0
                };
            if sets.permitted & !st.caps.permitted != 0
                || sets.effective & !sets.permitted != 0
                || sets.inheritable & !inh_limit != 0
            {
                return Err(Errno(libc::EPERM));
            }
            st.caps = sets;
            Ok(())
        }

        fn capbset_drop(&self, cap: u32) -> Result<(), Errno> {
            self.record(Call::CapbsetDrop(cap))?;
            if cap > self.state.borrow().last_cap {
                return Err(Errno(libc::EINVAL));
            }
            self.has(sys::CAP_SETPCAP)?;
            self.state.borrow_mut().bounding &= !cap_bit(cap);
            Ok(())
        }

        fn capbset_read(&self, cap: u32) -> Result<bool, Errno> {
            self.record(Call::CapbsetRead(cap))?;
            Ok(self.state.borrow().bounding & cap_bit(cap) != 0)
        }

        fn clear_ambient(&self) -> Result<(), Errno> {
            self.record(Call::ClearAmbient)?;
            self.state.borrow_mut().ambient = 0;
            Ok(())
        }

        fn set_keep_caps(&self, keep: bool) -> Result<(), Errno> {
            self.record(Call::KeepCaps(keep))?;
            self.state.borrow_mut().keep_caps = keep;
            Ok(())
        }

        fn raise_ambient(&self, cap: u32) -> Result<(), Errno> {
            self.record(Call::RaiseAmbient(cap))?;
            let mut st = self.state.borrow_mut();
            let bit = cap_bit(cap);
            if st.caps.permitted & bit == 0 || st.caps.inheritable & bit == 0 {
                return Err(Errno(libc::EPERM));
            }
            st.ambient |= bit;
            Ok(())
        }

        fn ambient_read(&self, cap: u32) -> Result<bool, Errno> {
            self.record(Call::AmbientRead(cap))?;
            Ok(self.state.borrow().ambient & cap_bit(cap) != 0)
        }

        fn set_no_new_privs(&self) -> Result<(), Errno> {
            self.record(Call::NoNewPrivs)?;
            self.state.borrow_mut().nnp = true;
            Ok(())
        }

        fn set_not_dumpable(&self) -> Result<(), Errno> {
            self.record(Call::NotDumpable)?;
            self.state.borrow_mut().dumpable = false;
            Ok(())
        }

        fn clear_groups(&self) -> Result<(), Errno> {
            self.record(Call::ClearGroups)?;
            self.has(sys::CAP_SETGID)?;
            self.state.borrow_mut().groups = false;
            Ok(())
        }

        fn set_gid(&self, gid: u32) -> Result<(), Errno> {
            self.record(Call::SetGid(gid))?;
            self.has(sys::CAP_SETGID)?;
            self.state.borrow_mut().gid = gid;
            Ok(())
        }

        fn set_uid(&self, uid: u32) -> Result<(), Errno> {
            self.record(Call::SetUid(uid))?;
            self.has(sys::CAP_SETUID)?;
            let mut st = self.state.borrow_mut();
            if st.uid == 0 && uid != 0 {
                // Without keep-caps the kernel clears permitted on leaving uid 0; effective
                // and ambient are cleared either way.
                if !st.keep_caps {
                    st.caps.permitted = 0;
                }
                st.caps.effective = 0;
                st.ambient = 0;
            }
            st.uid = uid;
            Ok(())
        }

        fn cloexec_fds_from(&self, first: i32, _max_fd: i32) -> Result<(), Errno> {
            self.record(Call::Cloexec(first))
        }

        fn reset_signals(&self) -> Result<(), Errno> {
            self.record(Call::ResetSignals)
        }

        fn own_process_group(&self) -> Result<(), Errno> {
            self.record(Call::ProcessGroup)
        }

        fn install_seccomp(&self, program: &[crate::seccomp::Insn]) -> Result<(), Errno> {
            self.record(Call::Seccomp(program.len()))?;
            // The kernel refuses a filter to an unprivileged thread without no_new_privs.
            let st = self.state.borrow();
            if !st.nnp && st.caps.effective & cap_bit(21) == 0 {
                return Err(Errno(libc::EACCES));
            }
            drop(st);
            self.state.borrow_mut().seccomp = true;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::double::{Call, RecordingSys, ALL};
    use super::*;

    fn creds() -> AgentCreds {
        AgentCreds::new(1000, 1000).expect("non-root ids")
    }

    fn filter() -> crate::seccomp::Program {
        crate::seccomp::socket_filter(&[crate::seccomp::X86_64, crate::seccomp::I386])
    }

    fn plan() -> AgentDrop {
        AgentDrop {
            creds: creds(),
            last_cap: 40,
            max_fd: 1023,
            filter: Some(filter()),
        }
    }

    #[test]
    fn agent_drop_runs_in_order_and_leaves_nothing() {
        let sys = RecordingSys::root();
        drop_agent(&sys, &plan()).expect("root with all caps can drop");

        let mut expected = vec![Call::Cloexec(3), Call::ClearAmbient];
        expected.extend((0..=40).map(Call::CapbsetDrop));
        expected.extend([
            Call::ClearGroups,
            Call::SetGid(1000),
            Call::SetUid(1000),
            Call::Capset(CapSets::EMPTY),
            Call::NoNewPrivs,
            Call::Capget,
        ]);
        expected.extend((0..=40).map(Call::CapbsetRead));
        expected.push(Call::Seccomp(filter().insns().len()));
        assert_eq!(sys.calls(), expected);

        let st = sys.state.borrow();
        assert!(st.seccomp);
        assert_eq!((st.uid, st.gid, st.groups), (1000, 1000, false));
        assert_eq!(st.caps, CapSets::EMPTY);
        assert_eq!(st.bounding, 0);
        assert_eq!(st.ambient, 0);
        assert!(st.nnp);
    }

    #[test]
    fn bounding_drop_follows_the_kernels_cap_last_cap() {
        let sys = RecordingSys::root();
        sys.state.borrow_mut().last_cap = 45;
        sys.state.borrow_mut().bounding = (1u64 << 46) - 1;
        let plan = AgentDrop {
            last_cap: 45,
            ..plan()
        };
        drop_agent(&sys, &plan).expect("drop");
        assert!(sys.calls().contains(&Call::CapbsetDrop(45)));
        assert_eq!(sys.state.borrow().bounding, 0);
    }

    #[test]
    fn the_double_refuses_a_wrong_order() {
        // Guards the test above: dropping the bounding set after setuid fails like the kernel.
        let sys = RecordingSys::root();
        sys.set_uid(1000).expect("setuid");
        assert_eq!(sys.capbset_drop(0), Err(Errno(libc::EPERM)));
    }

    #[test]
    fn a_failing_step_stops_the_drop() {
        type Fail = fn(&Call) -> bool;
        let cases: [(Fail, DropStep); 9] = [
            (|c| matches!(c, Call::Cloexec(_)), DropStep::Fds),
            (|c| *c == Call::ClearAmbient, DropStep::Ambient),
            (|c| *c == Call::CapbsetDrop(37), DropStep::Bounding),
            (|c| *c == Call::ClearGroups, DropStep::Groups),
            (|c| matches!(c, Call::SetGid(_)), DropStep::Gid),
            (|c| matches!(c, Call::SetUid(_)), DropStep::Uid),
            (|c| matches!(c, Call::Capset(_)), DropStep::Caps),
            (|c| *c == Call::NoNewPrivs, DropStep::NoNewPrivs),
            (|c| matches!(c, Call::Seccomp(_)), DropStep::Seccomp),
        ];
        for (fail, step) in cases {
            let sys = RecordingSys {
                fail: Some(fail),
                ..RecordingSys::root()
            };
            let err = drop_agent(&sys, &plan()).expect_err("injected failure");
            assert_eq!(err.step, step);
            assert_eq!(err.errno, Errno(libc::EPERM));
            // Nothing after the failing call ran.
            let calls = sys.calls();
            assert!(fail(calls.last().expect("at least one call")), "{step:?}");
        }
    }

    #[test]
    fn leftover_capabilities_fail_verification() {
        // A kernel that silently kept a capability must not let the agent start.
        let sys = RecordingSys::root();
        drop_agent(&sys, &plan()).expect("drop");
        sys.state.borrow_mut().bounding |= cap_bit(3);
        let left = Err(DropFailure {
            step: DropStep::Verify,
            errno: Errno(libc::EPERM),
        });
        assert_eq!(verify_empty(&sys, 40), left);
        sys.state.borrow_mut().bounding = 0;
        sys.state.borrow_mut().caps.inheritable = cap_bit(12);
        assert_eq!(verify_empty(&sys, 40), left);
    }

    #[test]
    fn missing_capabilities_refuse_before_any_change() {
        for (cap, name) in NEEDED {
            let sys = RecordingSys::with_caps(ALL & !cap_bit(cap));
            let err = check_can_drop(&sys, creds(), 40, 1023).expect_err("must refuse");
            assert_eq!(
                err.to_string(),
                format!(
                    "failed to drop privileges: the container lacks {name}: start it with \
                     --cap-add for each (see the capabilities sandbox-init needs in the README)"
                )
            );
            // Only read: nothing was changed and no DropReady exists, so nothing can be spawned.
            assert_eq!(sys.calls(), vec![Call::Capget]);
        }
        let none = RecordingSys::with_caps(0);
        let err = check_can_drop(&none, creds(), 40, 1023).expect_err("must refuse");
        assert!(err
            .to_string()
            .contains("CAP_SETPCAP, CAP_SETUID, CAP_SETGID"));
    }

    #[test]
    fn supervisor_keeps_only_cap_kill() {
        let sys = RecordingSys::root();
        let ready = check_can_drop(&sys, creds(), 40, 1023).expect("check");
        assert!(ready.has_kill());
        harden_supervisor(&sys, &ready).expect("harden");
        // The child still needs its effective set after the hardening.
        assert_eq!(sys.state.borrow().caps.effective, ALL);
        keep_only_kill(&sys, &ready).expect("keep kill");
        let st = sys.state.borrow();
        assert_eq!(st.uid, 0);
        assert_eq!(
            st.caps,
            CapSets {
                effective: cap_bit(sys::CAP_KILL),
                permitted: cap_bit(sys::CAP_KILL),
                inheritable: 0
            }
        );
        assert_eq!(st.bounding, 0);
        assert_eq!(st.ambient, 0);
        assert!(st.nnp);
        assert!(!st.dumpable);
    }

    #[test]
    fn supervisor_without_cap_kill_keeps_nothing() {
        let sys = RecordingSys::with_caps(ALL & !cap_bit(sys::CAP_KILL));
        let ready = check_can_drop(&sys, creds(), 40, 1023).expect("check");
        assert!(!ready.has_kill());
        harden_supervisor(&sys, &ready).expect("harden");
        keep_only_kill(&sys, &ready).expect("drop");
        assert_eq!(sys.state.borrow().caps, CapSets::EMPTY);
    }

    #[test]
    fn root_agent_is_refused() {
        assert_eq!(
            AgentCreds::new(0, 1000).expect_err("uid 0").to_string(),
            "failed to accept agent uid 0: the agent must not run as root (set [agent] uid and gid to a non-zero id)"
        );
        assert!(AgentCreds::new(1000, 0).is_err());
    }

    #[test]
    fn cap_last_cap_is_read_from_the_given_path() {
        let dir = std::env::temp_dir().join(format!("sandbox-init-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp");
        let file = dir.join("cap_last_cap");
        std::fs::write(&file, "40\n").expect("write");
        assert_eq!(read_cap_last_cap(&file).expect("parse"), 40);
        std::fs::write(&file, "forty\n").expect("write");
        assert_eq!(
            read_cap_last_cap(&file).expect_err("bad").to_string(),
            format!("failed to read {}: not a number: \"forty\"", file.display())
        );
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn step_numbers_round_trip() {
        for n in 1..=12 {
            let step = DropStep::from_u32(n).expect("known step");
            assert_eq!(step as u32, n);
        }
        assert_eq!(DropStep::from_u32(0), None);
        assert_eq!(DropStep::from_u32(13), None);
    }

    #[test]
    fn the_filter_is_installed_after_no_new_privs_and_the_check_builds_it() {
        // Unprivileged seccomp needs no_new_privs: the double refuses it before, like the kernel.
        let early = RecordingSys::with_caps(0);
        assert_eq!(
            early.install_seccomp(filter().insns()),
            Err(Errno(libc::EACCES))
        );
        let sys = RecordingSys::root();
        let ready = check_can_drop(&sys, creds(), 40, 1023).expect("check");
        assert_eq!(
            ready.agent_drop().filter,
            crate::seccomp::for_this_machine()
        );
        let calls = {
            drop_agent(&sys, &plan()).expect("drop");
            sys.calls()
        };
        let nnp = calls.iter().position(|c| *c == Call::NoNewPrivs);
        let filter_at = calls.iter().position(|c| matches!(c, Call::Seccomp(_)));
        assert!(
            nnp < filter_at && filter_at == Some(calls.len() - 1),
            "{calls:?}"
        );
    }

    #[test]
    fn the_gate_ends_with_net_admin_alone_in_every_set_as_its_own_uid() {
        let sys = RecordingSys::root();
        drop_gate(&sys, 65533, 65533, gate_caps(false), 40).expect("drop");
        let st = sys.state.borrow();
        let admin = cap_bit(sys::CAP_NET_ADMIN);
        assert_eq!((st.uid, st.gid, st.groups), (65533, 65533, false));
        assert_eq!(
            st.caps,
            CapSets {
                effective: admin,
                permitted: admin,
                inheritable: admin
            }
        );
        assert_eq!((st.bounding, st.ambient), (admin, admin));
        assert!(st.nnp && !st.dumpable && !st.keep_caps);
    }

    #[test]
    fn the_gate_keeps_net_raw_only_for_legacy_iptables() {
        let sys = RecordingSys::root();
        drop_gate(&sys, 65533, 65533, gate_caps(true), 40).expect("drop");
        let both = cap_bit(sys::CAP_NET_ADMIN) | cap_bit(sys::CAP_NET_RAW);
        assert_eq!(sys.state.borrow().bounding, both);
        assert_eq!(sys.state.borrow().ambient, both);
    }

    #[test]
    fn a_gate_drop_without_keep_caps_would_lose_net_admin_and_fails_verification() {
        // The double models the kernel: setting the sets after a plain setuid must fail.
        let sys = RecordingSys::root();
        sys.state.borrow_mut().keep_caps = false;
        let mut failing = RecordingSys::root();
        failing.fail = Some(|c| matches!(c, Call::KeepCaps(true)));
        assert!(drop_gate(&failing, 65533, 65533, gate_caps(false), 40).is_err());
        assert!(
            drop_gate(&sys, 0, 65533, gate_caps(false), 40).is_err(),
            "never root"
        );
    }
}
