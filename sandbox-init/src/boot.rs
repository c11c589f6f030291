//! The boot sequence, top to bottom. Each step fails closed: the agent never starts after an error.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::privilege::{self, AgentCreds};
use crate::supervisor::{self, Prepared};
use crate::{exit, home, secrets, sys};

/// Entry point of the binary; returns the process exit code.
pub fn main() -> i32 {
    // ---- steps 1–5 (owned by net) -------------------------------------------------------------
    // PLACEHOLDER on branch `init` until net's boot is merged: parse only what steps 6–8 need.
    let mut args = std::env::args_os().skip(1).peekable();
    let mut config_dir = std::env::var_os("SANDBOX_INIT_CONFIG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/jailoc"));
    while let Some(arg) = args.peek() {
        if arg == "--config-dir" {
            args.next();
            match args.next() {
                Some(dir) => config_dir = PathBuf::from(dir),
                None => return exit::USAGE,
            }
        } else if arg == "--" {
            args.next();
            break;
        } else {
            break;
        }
    }
    let command: Vec<OsString> = args.collect();
    let agent = std::fs::read_to_string(config_dir.join("policy.toml"))
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok())
        .and_then(|t| t.get("agent").and_then(|a| a.as_table()).cloned())
        .unwrap_or_default();
    let id = |k: &str| {
        agent
            .get(k)
            .and_then(|v| v.as_integer())
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(1000)
    };
    let start = AgentStart {
        uid: id("uid"),
        gid: id("gid"),
        home: agent
            .get("home")
            .and_then(|v| v.as_str())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/home/agent")),
        config_dir,
        command,
        debug: std::env::var_os("SANDBOX_INIT_LOG").is_some_and(|v| v == "debug"),
    };
    // ---- steps 6–8 (owned by init) ------------------------------------------------------------
    start_agent(start, &InitPaths::default())
}

/// What steps 6–8 need from steps 1–5. Owned, so everything else (policy, resolver, rule sets)
/// can be dropped before PID 1 settles into supervising (memory target: ≤ 2 MiB RSS).
#[derive(Debug, Clone)]
pub struct AgentStart {
    /// The policy dir (for `secret-env`).
    pub config_dir: PathBuf,
    /// The agent's uid (policy `[agent] uid`, default 1000).
    pub uid: u32,
    /// The agent's gid (policy `[agent] gid`, default 1000).
    pub gid: u32,
    /// The agent's home (policy `[agent] home`, default `/home/agent`).
    pub home: PathBuf,
    /// The agent's command line.
    pub command: Vec<OsString>,
    /// `SANDBOX_INIT_LOG=debug`.
    pub debug: bool,
}

/// Host paths steps 6–8 read (parameters so tests can point them elsewhere).
#[derive(Debug, Clone)]
pub struct InitPaths {
    /// Where secrets are mounted (`/run/secrets`).
    pub secrets_dir: PathBuf,
    /// The user database (`/etc/passwd`), for the agent's `USER`.
    pub passwd: PathBuf,
    /// The kernel's highest capability (`/proc/sys/kernel/cap_last_cap`).
    pub cap_last_cap: PathBuf,
}

impl Default for InitPaths {
    fn default() -> Self {
        Self {
            secrets_dir: PathBuf::from("/run/secrets"),
            passwd: PathBuf::from("/etc/passwd"),
            cap_last_cap: PathBuf::from("/proc/sys/kernel/cap_last_cap"),
        }
    }
}

fn fail(code: i32, err: &dyn std::error::Error) -> i32 {
    eprintln!("sandbox-init: {err}");
    code
}

/// Steps 6–8: fix the home dirs, start the agent without any privilege, supervise it. Returns
/// sandbox-init's exit code: the agent's, or 71/78/126/127 if it could not be started.
pub fn start_agent(start: AgentStart, paths: &InitPaths) -> i32 {
    let sys = sys::RealSys;

    // Before anything changes: can we drop everything? Without CAP_SETPCAP/SETUID/SETGID the
    // drop would be partial, so refuse here (71) while nothing has been touched yet.
    let creds = match AgentCreds::new(start.uid, start.gid) {
        Ok(creds) => creds,
        Err(e) => return fail(exit::CONFIG, &e),
    };
    let last_cap = match privilege::read_cap_last_cap(&paths.cap_last_cap) {
        Ok(n) => n,
        Err(e) => return fail(exit::OS_ERROR, &e),
    };
    let ready = match privilege::check_can_drop(&sys, creds, last_cap, sys::max_fd()) {
        Ok(ready) => ready,
        Err(e) => return fail(exit::OS_ERROR, &e),
    };

    // Step 6: home dirs, as root and before the agent exists (nobody can race the walk).
    let mut warn = |w: String| eprintln!("sandbox-init: warning: {w}");
    match home::fix(&start.home, start.uid, start.gid, &mut warn) {
        Ok(fixes) if start.debug => {
            for f in fixes {
                eprintln!("sandbox-init: home: {} {:?}", f.path.display(), f.action);
            }
        }
        Ok(_) => {}
        Err(e) => return fail(exit::OS_ERROR, &e),
    }

    // Step 7: secrets are read as root (they are root-only files), the environment and the
    // exec are prepared in full, then the child drops everything and execs.
    let secret_env = match secrets::load(&start.config_dir, &paths.secrets_dir) {
        Ok(s) => s,
        Err(e) => return fail(e.exit_code(), &e),
    };
    let user = secrets::user_name(&paths.passwd, start.uid);
    let env = secrets::agent_environment(std::env::vars_os(), &start.home, &user, secret_env);
    let prepared = match Prepared::new(&start.command, &env) {
        Ok(p) => p,
        Err(e) => return fail(e.exit_code(), &e),
    };
    drop(env);
    let supervisor = match supervisor::spawn(&ready, prepared, start.debug) {
        Ok(s) => s,
        Err(e) => return fail(e.exit_code(), &e),
    };
    drop(start);

    // Step 8: be init until the agent is gone; from here on errors are logged, never fatal.
    supervisor.run()
}
