//! `--enter`: a command in a running container, as the agent.
//!
//! Everything jailoc runs in a running container (`jailoc shell`, the exec-mode attach) is
//! started by the engine as root (`exec --user 0:0`) through this mode, which drops to the
//! agent with the boot's own code ([`privilege::ready_to_drop`], then
//! [`supervisor::exec_as_agent`]: the agent's drop, the signal reset, `execve`) — so whatever
//! the boot's agent ends with, an entered command ends with too. HOME, USER and LOGNAME come from
//! the policy; the command is found on `PATH` as the agent. No firewall, no supervision, no home
//! fix-up, no secrets. A drop that fails exits 71 and the command never runs; a command that is
//! not found or cannot run exits 127 or 126.

use std::convert::Infallible;
use std::path::Path;

use crate::boot::{self, BootError};
use crate::cli::EnterArgs;
use crate::log::Log;
use crate::policy;
use crate::privilege;
use crate::secrets;
use crate::supervisor::{self, Group, Prepared, SpawnError};
use crate::sys::RealSys;

/// `sandbox-init --enter -- COMMAND...`: replaces this process with COMMAND as the agent, or
/// returns the exit code saying why it could not.
pub fn main(args: &EnterArgs, log: &Log) -> i32 {
    let Err(e) = enter(args);
    boot::fail(log, &e)
}

/// Returns only when COMMAND could not be run as the agent.
fn enter(args: &EnterArgs) -> Result<Infallible, BootError> {
    let sys = RealSys;
    let policy = policy::load(&args.config_dir)?;
    let agent = &policy.agent;
    let cap_last_cap = Path::new("/proc/sys/kernel/cap_last_cap");
    let ready = privilege::ready_to_drop(&sys, agent.uid, agent.gid, cap_last_cap)?;
    // The command and its environment are prepared in full before the drop (the boot's
    // preparation): the engine's environment minus SANDBOX_INIT_*, plus who the agent is.
    let user = secrets::user_name(Path::new("/etc/passwd"), agent.uid);
    let env = secrets::agent_environment(std::env::vars_os(), &agent.home, &user, Vec::new());
    let command = Prepared::new(&args.command, &env)?;
    let failure = supervisor::exec_as_agent(&sys, &ready.agent_drop(), &command, Group::Keep);
    Err(SpawnError::from_failure(failure, &command.program).into())
}
