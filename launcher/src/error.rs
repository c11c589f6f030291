//! The launcher's error type and its exit-code table (documented in docs/launcher.md).

use std::path::PathBuf;

use crate::config::ConfigError;

/// Exit codes of `jailoc`; one table, documented in docs/launcher.md and tested in tests/cli.rs.
pub mod exit {
    /// Success.
    pub const OK: i32 = 0;
    /// An engine command (compose, build, exec) or a Dockerfile download failed; its own
    /// output says why.
    pub const ENGINE_FAILED: i32 = 1;
    /// Bad command line (clap's own code).
    pub const USAGE: i32 = 2;
    /// The workspace was never started (`shell`, `logs` need a running project), or is not
    /// running (`egress`, `verify`).
    pub const NOT_STARTED: i32 = 3;
    /// The workspace's container exited, kept restarting or did not become healthy (`up`), or
    /// stopped or was replaced during the attach.
    pub const NOT_HEALTHY: i32 = 4;
    /// `jailoc run --timeout` ended the run (as timeout(1) does).
    pub const TIMEOUT: i32 = 124;
    /// No container engine / compose implementation could be found or started.
    pub const NO_ENGINE: i32 = 69;
    /// Internal error (a bug): please report it.
    pub const SOFTWARE: i32 = 70;
    /// The companion `sandbox-init` binary was not found.
    pub const NO_SANDBOX_INIT: i32 = 72;
    /// A generated file could not be written, or another file operation failed.
    pub const IO: i32 = 74;
    /// The configuration is invalid (file, line, key and value are in the message).
    pub const CONFIG: i32 = 78;
}

/// Everything that can make a command fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config file failed to parse or validate.
    #[error("failed to load config: {0}")]
    Config(#[from] ConfigError),
    /// A workspace-level problem found at `up` time (a path that does not exist, ...).
    #[error("failed to prepare workspace {workspace:?}: {message}")]
    Workspace { workspace: String, message: String },
    /// No compose implementation answered.
    #[error(
        "failed to find a container engine: none of `docker compose`, `docker-compose`, `podman compose` works{detail}; install Docker with the Compose plugin (or docker-compose, or Podman with podman-compose), or set JAILOC_COMPOSE to the command to use"
    )]
    NoEngine { detail: String },
    /// The companion binary is missing.
    #[error(
        "failed to find sandbox-init: {detail}; install it next to jailoc (`scripts/install` does) or set JAILOC_SANDBOX_INIT=/path/to/sandbox-init"
    )]
    NoSandboxInit { detail: String },
    /// A process could not be started.
    #[error("failed to run `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    /// A process ran but failed.
    #[error("failed to {what}: `{command}` exited with code {code}{stderr}")]
    CommandFailed {
        what: String,
        command: String,
        code: i32,
        stderr: String,
    },
    /// A Dockerfile URL could not be downloaded.
    #[error("failed to download the Dockerfile {url}: {reason}")]
    Fetch { url: String, reason: String },
    /// Reading or writing a file failed.
    #[error("failed to {verb} {path}: {source}")]
    File {
        verb: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The host's interface addresses could not be read.
    #[error("failed to read the host's interface addresses (the policy walls them off): {0}")]
    HostAddrs(#[source] std::io::Error),
    /// An interactive child (shell, logs -f) ended with this code; passed through unchanged.
    #[error("child exited with code {0}")]
    ChildExit(i32),
    /// The agent's container did not come up healthy (`up`) or went away during the attach.
    #[error("failed to start workspace {workspace:?}: {reason}{logs}")]
    NotHealthy {
        workspace: String,
        reason: String,
        /// `; its last log lines:` and the lines, or a pointer to `jailoc logs`.
        logs: String,
    },
    /// The attach ended because its container stopped or was replaced underneath it.
    #[error("attach to workspace {workspace:?} ended: {reason}")]
    AttachEnded { workspace: String, reason: String },
    /// A command that needs the project was run before `jailoc up`.
    #[error("failed to {what}: workspace {workspace:?} was never started (run `jailoc up`)")]
    NotStarted { what: String, workspace: String },
    /// A command that needs the running container was run while it is stopped.
    #[error(
        "failed to {what}: workspace {workspace:?} is not running (start it with `jailoc up`)"
    )]
    NotRunning { what: String, workspace: String },
    /// A command line that names something that is not there (`jailoc PATH` with no such
    /// directory).
    #[error("{0}")]
    Usage(String),
    /// Something else; the message says what.
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// The process exit code for this error (see [`exit`]).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) | Error::Workspace { .. } => exit::CONFIG,
            Error::NoEngine { .. } => exit::NO_ENGINE,
            Error::NoSandboxInit { .. } => exit::NO_SANDBOX_INIT,
            Error::Spawn { .. } => exit::NO_ENGINE,
            Error::CommandFailed { .. } | Error::Fetch { .. } => exit::ENGINE_FAILED,
            Error::File { .. } | Error::HostAddrs(_) => exit::IO,
            Error::ChildExit(code) => *code,
            Error::NotStarted { .. } | Error::NotRunning { .. } => exit::NOT_STARTED,
            Error::Usage(_) => exit::USAGE,
            Error::NotHealthy { .. } | Error::AttachEnded { .. } => exit::NOT_HEALTHY,
            Error::Other(_) => exit::SOFTWARE,
        }
    }

    /// Shorthand for a file error.
    pub fn file(verb: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::File {
            verb,
            path: path.into(),
            source,
        }
    }
}

/// The launcher's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
