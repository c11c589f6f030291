//! sandbox-init: PID 1 for an AI coding agent's container.
//!
//! The boot sequence (see [`boot::run`]) loads the policy, installs the IPv4/IPv6 firewall in one
//! atomic restore per family, drops every privilege, starts the agent as an unprivileged user and
//! then supervises it as a proper init. Each module is one stage of that sequence:
//!
//! | module | stage |
//! |---|---|
//! | [`cli`] | command line and environment |
//! | [`health`] | `--health`: the container's health check, as the agent |
//! | [`enter`] | `--enter`: a command in a running container, as the agent |
//! | [`policy`] | the contract crate `jailoc-policy`: `policy.toml` + legacy line files → [`policy::Policy`] |
//! | [`resolve`] | allowlisted names → addresses (hickory, bounded time) |
//! | [`firewall`] | pure rule rendering, backend probe, apply, read-back |
//! | [`home`] | ownership fixes of the agent's home dirs |
//! | [`log`] | the one logger (stderr, write errors ignored) |
//! | [`secrets`] | `/run/secrets/NAME` → environment |
//! | [`privilege`] | capability/uid/gid/no_new_privs drop for the agent and for PID 1 |
//! | [`seccomp`] | the agent's filter of socket families netfilter cannot see (pure BPF) |
//! | [`supervisor`] | signal forwarding, reaping, exit status |
//! | [`trust`] | which files root may run or read (never `PATH`, only root's) |
//! | [`sys`] | the only module with `unsafe`: thin syscall wrappers |
//! | [`exit`] | the exit-code table |

pub mod boot;
pub mod cli;
pub mod enter;
pub mod exit;
pub mod firewall;
pub mod health;
pub mod home;
pub mod log;
pub mod privilege;
pub mod resolve;
pub mod seccomp;
pub mod secrets;
pub mod supervisor;
pub mod sys;
pub mod trust;

/// The policy contract, shared with the launcher: grammar, typed entries, `policy.toml`.
pub use jailoc_policy as policy;
