//! sandbox-init: PID 1 for an AI coding agent's container.
//!
//! `main.rs` reads the command line and runs a mode; the boot sequence (`boot::run`) loads the
//! policy, installs the IPv4/IPv6 firewall in one atomic restore per family, drops every
//! privilege, starts the agent as an unprivileged user and then supervises it as a proper init.
//! Each module is one stage of that sequence (docs/architecture.md maps them):
//!
//! | module | stage |
//! |---|---|
//! | `cli` | command line and environment |
//! | `boot` | the boot sequence, top to bottom, and its one error ([`boot::BootError`]) |
//! | `health` | `--health`: the container's health check, as the agent |
//! | `enter` | `--enter`: a command in a running container, as the agent |
//! | `verify` | `--verify`: the walls proved from inside a running container, as the agent |
//! | `policy` | the contract crate `jailoc-policy`: `policy.toml` + line files → `Policy` |
//! | `dns` | the DNS gate: every DNS query of the agent answered or forwarded, answered addresses opened |
//! | `egress` | the egress record: refused connections (NFLOG) and names, with reasons, read by the gate |
//! | `firewall` | the plan (pure), the renderer (pure), the backends, apply, read-back |
//! | `home` | ownership fixes of the agent's home dirs |
//! | `log` | the one logger (stderr, write errors ignored) |
//! | `secrets` | `/run/secrets/NAME` → environment |
//! | `privilege` | capability/uid/gid/no_new_privs drop for the agent and for PID 1 |
//! | `seccomp` | the agent's filter of socket families netfilter cannot see (pure BPF) |
//! | `supervisor` | signal forwarding, reaping, exit status |
//! | `trust` | which files root may run or read (never `PATH`, only root's) |
//! | `smaps` | which mappings PID 1 may release (pure) |
//! | `sys` | the only module allowed `unsafe` (the crate denies it): syscall wrappers by concern |
//! | `exit` | the exit-code table, and the one mapping from errors to codes |
//!
//! Modules are `pub` only where `main.rs` or a test crate needs them, so the compiler reports
//! whatever nothing uses.

#![deny(unsafe_code)]

pub mod boot;
pub mod cli;
pub mod dns;
pub mod egress;
pub mod enter;
pub mod exit;
pub mod firewall;
pub mod health;
pub(crate) mod home;
pub mod log;
pub(crate) mod privilege;
pub(crate) mod seccomp;
pub(crate) mod secrets;
pub(crate) mod smaps;
pub(crate) mod supervisor;
#[allow(unsafe_code)]
pub(crate) mod sys;
pub(crate) mod trust;
pub mod verify;

/// The policy contract, shared with the launcher: grammar, typed entries, `policy.toml`.
pub use jailoc_policy as policy;
