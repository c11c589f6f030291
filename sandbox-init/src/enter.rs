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

use std::path::Path;

use crate::cli::EnterArgs;
use crate::exit;
use crate::log::Log;
use crate::policy;
use crate::privilege;
use crate::secrets;
use crate::supervisor::{self, Group, Prepared, SpawnError};
use crate::sys::RealSys;

/// `sandbox-init --enter -- COMMAND...`: replaces this process with COMMAND as the agent, or
/// returns the exit code saying why it could not.
pub fn main(args: &EnterArgs, log: &Log) -> i32 {
    let sys = RealSys;
    let policy = match policy::load(&args.config_dir) {
        Ok(policy) => policy,
        Err(e) => {
            log.error(&format!("failed to load the policy: {e}"));
            return exit::CONFIG;
        }
    };
    let agent = &policy.agent;
    let cap_last_cap = Path::new("/proc/sys/kernel/cap_last_cap");
    let ready = match privilege::ready_to_drop(&sys, agent.uid, agent.gid, cap_last_cap) {
        Ok(ready) => ready,
        Err(e) => {
            log.error(&e.to_string());
            return e.exit_code();
        }
    };
    // The command and its environment are prepared in full before the drop (the boot's
    // preparation): the engine's environment minus SANDBOX_INIT_*, plus who the agent is.
    let user = secrets::user_name(Path::new("/etc/passwd"), agent.uid);
    let env = secrets::agent_environment(std::env::vars_os(), &agent.home, &user, Vec::new());
    let command = match Prepared::new(&args.command, &env) {
        Ok(command) => command,
        Err(e) => {
            log.error(&e.to_string());
            return e.exit_code();
        }
    };
    let failure = supervisor::exec_as_agent(&sys, &ready.agent_drop(), &command, Group::Keep);
    let e = SpawnError::from_failure(failure, &command.program);
    log.error(&e.to_string());
    e.exit_code()
}
