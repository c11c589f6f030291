//! The agent's seccomp filter: socket families netfilter cannot see are refused.
//!
//! The firewall filters IP packets. Some socket families reach other machines without ever
//! producing one: `AF_VSOCK` talks to the hypervisor (and the host services behind it on
//! VM-hosted engines: Docker Desktop, Podman machine, Kata, Firecracker), `AF_TIPC`, `AF_RDS`,
//! `AF_SMC` and `AF_CAN` carry their own protocols, and others are kernel attack surface the
//! agent has no use for (`AF_ALG`, `AF_BLUETOOTH`, ...). So the agent gets an allowlist:
//! `socket()`/`socketpair()` work for `AF_UNIX`, `AF_INET`, `AF_INET6` and `AF_NETLINK` and fail
//! with `EAFNOSUPPORT` (what a kernel without the family says, so programs fall back) for every
//! other family. `socket(AF_INET*, .., IPPROTO_SMC)` (SMC in an IP family's clothes, Linux
//! 6.11+) fails with `EPROTONOSUPPORT`, and io_uring, whose `IORING_OP_SOCKET` creates sockets
//! without the `socket` system call, with `ENOSYS` (programs fall back to plain system calls).
//!
//! Hand-written classic BPF, built by a pure function ([`socket_filter`]) and checked by a small
//! interpreter in the tests, instruction by instruction, against synthetic `seccomp_data`. The
//! architecture is checked first: a 64-bit process can make 32-bit system calls (`int 0x80` on
//! x86-64, AArch32 on arm64), which have their own numbers. On x86-64 the x32 ABI (numbers with
//! bit 30 set) is refused outright with `ENOSYS`, and i386's `socketcall`, whose arguments sit
//! behind a pointer seccomp cannot read, with `ENOSYS` too (glibc uses the direct calls since
//! Linux 4.3). An unknown architecture kills the process: it cannot happen on the kernels this
//! binary runs on. Installed by the agent's drop ([`crate::privilege::drop_agent`]) after
//! `no_new_privs`, right before `execve`.

/// One classic BPF instruction, laid out as the kernel's `struct sock_filter`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// Room for the longest program this module builds.
pub const MAX_INSNS: usize = 64;

/// A finished filter: fixed-size and `Copy`, so the forked child installs it without allocating.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Program {
    insns: [Insn; MAX_INSNS],
    len: usize,
}

impl Program {
    /// The instructions.
    pub fn insns(&self) -> &[Insn] {
        &self.insns[..self.len]
    }
}

// Opcodes (linux/bpf_common.h): the only ones used here.
const LD_W_ABS: u16 = 0x20; // BPF_LD (0) | BPF_W (0) | BPF_ABS (0x20)
const JEQ_K: u16 = 0x05 | 0x10; // BPF_JMP | BPF_JEQ | BPF_K
const JGE_K: u16 = 0x05 | 0x30; // BPF_JMP | BPF_JGE | BPF_K
const RET_K: u16 = 0x06; // BPF_RET | BPF_K

// Return values (linux/seccomp.h).
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_ALLOW: u32 = 0x7fff_0000;

// `struct seccomp_data` offsets: nr (int), arch (u32), instruction_pointer (u64), args[6] (u64).
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
/// The low 32 bits of `args[i]`: the kernel reads `int family`/`int protocol` from there.
const fn arg_low(i: u32) -> u32 {
    16 + 8 * i + if cfg!(target_endian = "big") { 4 } else { 0 }
}

/// Socket families the agent keeps.
pub const ALLOWED_FAMILIES: &[(u32, &str)] = &[
    (libc::AF_UNIX as u32, "AF_UNIX"),
    (libc::AF_INET as u32, "AF_INET"),
    (libc::AF_INET6 as u32, "AF_INET6"),
    (libc::AF_NETLINK as u32, "AF_NETLINK"),
];

/// `IPPROTO_SMC` (Linux 6.11): an SMC socket created as `socket(AF_INET*, SOCK_STREAM, 256)`.
pub const IPPROTO_SMC: u32 = 256;

/// One system-call ABI the kernel may be entered with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Abi {
    /// `AUDIT_ARCH_*`.
    pub arch: u32,
    pub socket: u32,
    pub socketpair: u32,
    /// i386's multiplexer; arm and the 64-bit ABIs have none.
    pub socketcall: Option<u32>,
    /// `io_uring_setup`, `_enter`, `_register` are this and the next two (the same on all four).
    pub io_uring_setup: u32,
    /// Numbers at or above this belong to another ABI on the same arch value (x32): refused.
    pub refuse_from: Option<u32>,
}

/// x86-64 (`AUDIT_ARCH_X86_64`).
pub const X86_64: Abi = Abi {
    arch: 0xc000_003e,
    socket: 41,
    socketpair: 53,
    socketcall: None,
    io_uring_setup: 425,
    refuse_from: Some(0x4000_0000), // __X32_SYSCALL_BIT
};
/// i386, also `int 0x80` from a 64-bit process (`AUDIT_ARCH_I386`).
pub const I386: Abi = Abi {
    arch: 0x4000_0003,
    socket: 359,
    socketpair: 360,
    socketcall: Some(102),
    io_uring_setup: 425,
    refuse_from: None,
};
/// arm64 (`AUDIT_ARCH_AARCH64`).
pub const AARCH64: Abi = Abi {
    arch: 0xc000_00b7,
    socket: 198,
    socketpair: 199,
    socketcall: None,
    io_uring_setup: 425,
    refuse_from: None,
};
/// 32-bit arm, also AArch32 tasks on arm64 (`AUDIT_ARCH_ARM`).
pub const ARM: Abi = Abi {
    arch: 0x4000_0028,
    socket: 281,
    socketpair: 288,
    socketcall: None,
    io_uring_setup: 425,
    refuse_from: None,
};

/// The ABIs a process of this build may enter the kernel with; `None` on an architecture this
/// module has no tables for (the agent then runs without the filter).
pub fn native_abis() -> Option<&'static [Abi]> {
    if cfg!(target_arch = "x86_64") {
        Some(&[X86_64, I386])
    } else if cfg!(target_arch = "aarch64") {
        Some(&[AARCH64, ARM])
    } else {
        None
    }
}

/// The filter for this machine (see [`native_abis`]).
pub fn for_this_machine() -> Option<Program> {
    native_abis().map(socket_filter)
}

/// Jump targets of the tiny assembler below.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Label {
    Abi(usize),
    Protocol,
    Family,
    Smc,
    Allow,
    NoSys,
}

enum Op {
    Load(u32),
    /// `if A == k goto label` (else fall through).
    JumpIfEq(u32, Label),
    /// `if A >= k goto label` (else fall through).
    JumpIfGe(u32, Label),
    Ret(u32),
    Mark(Label),
}

/// Builds the socket-family filter for `abis` (see the module docs). Pure.
pub fn socket_filter(abis: &[Abi]) -> Program {
    use Label::*;
    let errno = |e: i32| RET_ERRNO | (e as u32 & 0xffff);
    let mut ops = vec![Op::Load(OFF_ARCH)];
    for (i, abi) in abis.iter().enumerate() {
        ops.push(Op::JumpIfEq(abi.arch, Abi(i)));
    }
    ops.push(Op::Ret(RET_KILL_PROCESS));
    for (i, abi) in abis.iter().enumerate() {
        ops.push(Op::Mark(Abi(i)));
        ops.push(Op::Load(OFF_NR));
        if let Some(from) = abi.refuse_from {
            ops.push(Op::JumpIfGe(from, NoSys));
        }
        ops.push(Op::JumpIfEq(abi.socket, Protocol));
        ops.push(Op::JumpIfEq(abi.socketpair, Family));
        if let Some(nr) = abi.socketcall {
            ops.push(Op::JumpIfEq(nr, NoSys));
        }
        for nr in abi.io_uring_setup..abi.io_uring_setup + 3 {
            ops.push(Op::JumpIfEq(nr, NoSys));
        }
        ops.push(Op::Ret(RET_ALLOW));
    }
    // socket(): IPPROTO_SMC is SMC whatever the family; then the family, as for socketpair().
    ops.push(Op::Mark(Protocol));
    ops.push(Op::Load(arg_low(2)));
    ops.push(Op::JumpIfEq(IPPROTO_SMC, Smc));
    ops.push(Op::Mark(Family));
    ops.push(Op::Load(arg_low(0)));
    for (family, _) in ALLOWED_FAMILIES {
        ops.push(Op::JumpIfEq(*family, Allow));
    }
    ops.push(Op::Ret(errno(libc::EAFNOSUPPORT)));
    ops.push(Op::Mark(Smc));
    ops.push(Op::Ret(errno(libc::EPROTONOSUPPORT)));
    ops.push(Op::Mark(Allow));
    ops.push(Op::Ret(RET_ALLOW));
    ops.push(Op::Mark(NoSys));
    ops.push(Op::Ret(errno(libc::ENOSYS)));
    assemble(&ops)
}

/// Places the labels and turns every jump into the kernel's relative offset. Only forward
/// jumps exist (classic BPF has no others), each within the 8-bit range (checked).
fn assemble(ops: &[Op]) -> Program {
    let mut marks: Vec<(Label, usize)> = Vec::new();
    let mut count = 0usize;
    for op in ops {
        match op {
            Op::Mark(label) => marks.push((*label, count)),
            _ => count += 1,
        }
    }
    let target = |label: Label| {
        marks
            .iter()
            .find(|(l, _)| *l == label)
            .map_or_else(|| unreachable!("unplaced label {label:?}"), |(_, at)| *at)
    };
    let mut program = Program {
        insns: [Insn::default(); MAX_INSNS],
        len: 0,
    };
    for op in ops {
        let here = program.len;
        let jump = |label: Label| {
            let offset = target(label)
                .checked_sub(here + 1)
                .unwrap_or_else(|| unreachable!("backward jump to {label:?}"));
            u8::try_from(offset).unwrap_or_else(|_| unreachable!("jump to {label:?} too far"))
        };
        let insn = match op {
            Op::Mark(_) => continue,
            Op::Load(offset) => Insn {
                code: LD_W_ABS,
                k: *offset,
                ..Insn::default()
            },
            Op::JumpIfEq(k, label) => Insn {
                code: JEQ_K,
                jt: jump(*label),
                jf: 0,
                k: *k,
            },
            Op::JumpIfGe(k, label) => Insn {
                code: JGE_K,
                jt: jump(*label),
                jf: 0,
                k: *k,
            },
            Op::Ret(k) => Insn {
                code: RET_K,
                k: *k,
                ..Insn::default()
            },
        };
        assert!(here < MAX_INSNS, "seccomp program longer than {MAX_INSNS}");
        program.insns[here] = insn;
        program.len += 1;
    }
    program
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `struct seccomp_data`, as the kernel hands it to the filter.
    struct Data {
        nr: u32,
        arch: u32,
        args: [u64; 6],
    }

    impl Data {
        fn bytes(&self) -> [u8; 64] {
            let mut b = [0u8; 64];
            b[0..4].copy_from_slice(&self.nr.to_ne_bytes());
            b[4..8].copy_from_slice(&self.arch.to_ne_bytes());
            for (i, a) in self.args.iter().enumerate() {
                b[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
            }
            b
        }
    }

    /// Runs a program the way the kernel's classic BPF interpreter does, for the opcodes this
    /// module uses (anything else, an out-of-range jump or load, or running off the end fails
    /// the test: the kernel's checker would refuse such a program).
    fn run(program: &[Insn], data: &Data) -> u32 {
        let bytes = data.bytes();
        let mut acc: u32 = 0;
        let mut pc = 0usize;
        for _ in 0..=program.len() {
            let insn = program.get(pc).expect("ran off the end of the program");
            pc += 1;
            match insn.code {
                LD_W_ABS => {
                    let at = insn.k as usize;
                    assert!(at.is_multiple_of(4) && at + 4 <= 64, "bad load offset {at}");
                    acc = u32::from_ne_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
                }
                JEQ_K | JGE_K => {
                    let taken = if insn.code == JEQ_K {
                        acc == insn.k
                    } else {
                        acc >= insn.k
                    };
                    pc += usize::from(if taken { insn.jt } else { insn.jf });
                }
                RET_K => return insn.k,
                other => panic!("unknown opcode {other:#x}"),
            }
        }
        unreachable!("a program without loops ends within its length")
    }

    fn verdict(abi: Abi, nr: u32, args: [u64; 3]) -> String {
        verdict_on(&[X86_64, I386, AARCH64, ARM], abi.arch, nr, args)
    }

    fn verdict_on(abis: &[Abi], arch: u32, nr: u32, args: [u64; 3]) -> String {
        let program = socket_filter(abis);
        let data = Data {
            nr,
            arch,
            args: [args[0], args[1], args[2], 0, 0, 0],
        };
        match run(program.insns(), &data) {
            RET_ALLOW => "allow".to_owned(),
            RET_KILL_PROCESS => "kill".to_owned(),
            k if k & 0xffff_0000 == RET_ERRNO => match (k & 0xffff) as i32 {
                libc::EAFNOSUPPORT => "EAFNOSUPPORT".to_owned(),
                libc::EPROTONOSUPPORT => "EPROTONOSUPPORT".to_owned(),
                libc::ENOSYS => "ENOSYS".to_owned(),
                e => format!("errno {e}"),
            },
            k => format!("{k:#x}"),
        }
    }

    const AF_VSOCK: u64 = 40;
    const AF_TIPC: u64 = 30;
    const AF_ALG: u64 = 38;
    const AF_PACKET: u64 = 17;
    const STREAM: u64 = 1;

    #[test]
    fn socket_and_socketpair_keep_four_families_on_every_abi() {
        for abi in [X86_64, I386, AARCH64, ARM] {
            for (nr, what) in [(abi.socket, "socket"), (abi.socketpair, "socketpair")] {
                for family in [1u64, 2, 10, 16] {
                    assert_eq!(
                        verdict(abi, nr, [family, STREAM, 0]),
                        "allow",
                        "{what} {family} on {abi:x?}"
                    );
                }
                for family in [
                    AF_VSOCK,
                    AF_TIPC,
                    AF_ALG,
                    AF_PACKET,
                    0,
                    3,
                    21,
                    29,
                    31,
                    43,
                    44,
                    45,
                    46,
                    255,
                    0xffff_ffff,
                ] {
                    assert_eq!(
                        verdict(abi, nr, [family, STREAM, 0]),
                        "EAFNOSUPPORT",
                        "{what} {family} on {abi:x?}"
                    );
                }
            }
        }
    }

    #[test]
    fn only_the_low_32_bits_of_the_family_count_as_the_kernel_reads_an_int() {
        // The kernel truncates the register to `int family`: high bits change nothing.
        assert_eq!(
            verdict(X86_64, 41, [(1 << 32) | AF_VSOCK, STREAM, 0]),
            "EAFNOSUPPORT"
        );
        assert_eq!(verdict(X86_64, 41, [(7 << 32) | 2, STREAM, 0]), "allow");
    }

    #[test]
    fn smc_in_an_ip_family_is_refused_other_protocols_are_not() {
        assert_eq!(verdict(X86_64, 41, [2, STREAM, 256]), "EPROTONOSUPPORT");
        assert_eq!(verdict(X86_64, 41, [10, STREAM, 256]), "EPROTONOSUPPORT");
        assert_eq!(verdict(I386, 359, [2, STREAM, 256]), "EPROTONOSUPPORT");
        assert_eq!(verdict(X86_64, 41, [2, STREAM, 6]), "allow");
        assert_eq!(verdict(X86_64, 41, [10, 2, 17]), "allow");
        assert_eq!(
            verdict(X86_64, 41, [2, STREAM, 262]),
            "allow",
            "MPTCP is IP"
        );
        // SMC protocol number with a refused family: still refused, either way.
        assert_ne!(verdict(X86_64, 41, [AF_VSOCK, STREAM, 256]), "allow");
    }

    #[test]
    fn numbers_are_per_abi() {
        // 41 is socket on x86-64 but dup on i386; 359 is socket on i386 only.
        assert_eq!(verdict(I386, 41, [AF_VSOCK, 0, 0]), "allow");
        assert_eq!(verdict(X86_64, 359, [AF_VSOCK, 0, 0]), "allow");
        assert_eq!(verdict(I386, 359, [AF_VSOCK, STREAM, 0]), "EAFNOSUPPORT");
        assert_eq!(verdict(ARM, 281, [AF_VSOCK, STREAM, 0]), "EAFNOSUPPORT");
        assert_eq!(verdict(ARM, 198, [AF_VSOCK, STREAM, 0]), "allow");
    }

    #[test]
    fn x32_socketcall_and_io_uring_are_refused_with_enosys() {
        assert_eq!(
            verdict(X86_64, 0x4000_0000 + 41, [AF_VSOCK, STREAM, 0]),
            "ENOSYS"
        );
        assert_eq!(verdict(X86_64, 0x4000_0000, [0, 0, 0]), "ENOSYS");
        assert_eq!(verdict(I386, 102, [1, 0, 0]), "ENOSYS");
        assert_eq!(verdict(X86_64, 102, [0, 0, 0]), "allow", "getuid on x86-64");
        for abi in [X86_64, I386, AARCH64, ARM] {
            for nr in 425..=427 {
                assert_eq!(verdict(abi, nr, [1, 0, 0]), "ENOSYS", "{nr} on {abi:x?}");
            }
            assert_eq!(verdict(abi, 428, [0, 0, 0]), "allow");
        }
    }

    #[test]
    fn everything_else_is_allowed_and_an_unknown_arch_is_killed() {
        for nr in [0, 1, 2, 42, 59, 231, 424] {
            assert_eq!(verdict(X86_64, nr, [AF_VSOCK, 0, 0]), "allow", "{nr}");
        }
        assert_eq!(
            verdict_on(&[X86_64, I386], AARCH64.arch, 198, [2, 1, 0]),
            "kill"
        );
        assert_eq!(verdict_on(&[X86_64, I386], 0, 0, [0, 0, 0]), "kill");
    }

    #[test]
    fn the_programs_for_this_machine_fit_and_end_in_returns() {
        for abis in [&[X86_64, I386][..], &[AARCH64, ARM][..]] {
            let program = socket_filter(abis);
            let insns = program.insns();
            assert!(insns.len() < MAX_INSNS, "{} instructions", insns.len());
            assert_eq!(insns.last().map(|i| i.code), Some(RET_K));
            // Every jump lands inside the program.
            for (pc, insn) in insns.iter().enumerate() {
                if insn.code == JEQ_K || insn.code == JGE_K {
                    assert!(pc + 1 + usize::from(insn.jt.max(insn.jf)) < insns.len());
                }
            }
        }
        if cfg!(target_arch = "x86_64") {
            assert_eq!(for_this_machine(), Some(socket_filter(&[X86_64, I386])));
        }
    }

    #[test]
    fn insn_has_the_kernels_layout() {
        assert_eq!(
            std::mem::size_of::<Insn>(),
            std::mem::size_of::<libc::sock_filter>()
        );
        assert_eq!(
            std::mem::align_of::<Insn>(),
            std::mem::align_of::<libc::sock_filter>()
        );
    }
}
