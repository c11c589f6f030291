//! The command line (clap derive; the doc comments are the help text). It accepts what the Go
//! jailoc's users type — `jailoc up NAME`, `jailoc PATH`, `--exec`/`--remote`, `-s`/`-c`,
//! `--no-color`, `completion SHELL`, `-v` — with the Go jailoc's meaning, beside jailoc's own
//! forms (`-w NAME`, `completions`).

use std::path::PathBuf;

use clap::{ArgAction, Parser, Subcommand};

/// Run AI coding agents (OpenCode) in walled-off containers, one Docker Compose project per
/// workspace.
///
/// Without a command: start the workspace of PATH (default: the current directory) if needed
/// and attach to it.
#[derive(Debug, Parser)]
#[command(
    name = "jailoc",
    version,
    max_term_width = 100,
    disable_version_flag = true
)]
pub struct Cli {
    /// Config file [default: $XDG_CONFIG_HOME/jailoc/config.toml]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Workspace to act on [default: the one whose path contains the current directory, else
    /// "default"]
    #[arg(short = 'w', long, global = true, value_name = "NAME")]
    pub workspace: Option<String>,

    /// Attach inside the container (`opencode attach` as the agent)
    #[arg(long, global = true, conflicts_with = "remote")]
    pub exec: bool,

    /// Attach with the host's `opencode attach` to the published port
    #[arg(long, global = true)]
    pub remote: bool,

    /// Continue the session with this ID (passed to `opencode attach --session`)
    #[arg(
        short = 's',
        long,
        value_name = "ID",
        conflicts_with = "continue_session"
    )]
    pub session: Option<String>,

    /// Continue the last session (passed to `opencode attach --continue`)
    #[arg(short = 'c', long = "continue")]
    pub continue_session: bool,

    /// Disable coloured output (jailoc prints none; accepted for the Go jailoc's scripts)
    #[arg(long, global = true)]
    pub no_color: bool,

    /// Print the version
    #[arg(short = 'v', short_alias = 'V', long, action = ArgAction::Version)]
    version: Option<bool>,

    /// The directory to open: selects its workspace and is where OpenCode starts
    /// [default: the current directory]
    #[arg(value_name = "PATH")]
    pub path: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The sub-commands; one module each under `cmd/`. Those that act on one workspace take its
/// name as an optional argument, as the Go jailoc's do (`jailoc up NAME` = `jailoc -w NAME up`).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the workspace's container and wait until it is healthy (idempotent: says
    /// "already running")
    Up {
        /// Workspace [default: -w, else the one of the current directory]
        name: Option<String>,
    },
    /// Stop and remove the workspace's containers and network (volumes are kept)
    Down {
        /// Workspace [default: -w, else the one of the current directory]
        name: Option<String>,
        /// Also delete the workspace's named volumes (they are listed first)
        #[arg(long)]
        volumes: bool,
    },
    /// Stop, regenerate the files and start again
    Restart {
        /// Workspace [default: -w, else the one of the current directory]
        name: Option<String>,
    },
    /// Every workspace: state, port, egress mode, image; with NAME (or -w) one workspace in
    /// detail
    Status {
        /// Show this workspace in detail: health, port, password source, CPU, memory, PIDs,
        /// network and block I/O, uptime
        name: Option<String>,
        /// Print JSON for scripts
        #[arg(long)]
        json: bool,
    },
    /// Show the container's logs
    Logs {
        /// Workspace [default: -w, else the one of the current directory]
        name: Option<String>,
        /// Keep following new output
        #[arg(short, long)]
        follow: bool,
    },
    /// Print the resolved configuration of the workspace (secrets by reference only)
    Config,
    /// Add a directory (default: the current one) to a workspace, keeping config.toml's comments
    Add {
        /// Directory to add
        path: Option<PathBuf>,
    },
    /// Open a shell in the container as the agent (UID 1000, never root)
    Shell,
    /// Prove the walls from inside the running workspace, as the agent: the rules in place,
    /// its uid, capabilities and no_new_privs, and that metadata, the host and every blocked
    /// range are refused (exit 0: every check passed, 1: one failed)
    Verify {
        /// Workspace [default: -w, else the one of the current directory]
        name: Option<String>,
        /// Print JSON for scripts
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script
    #[command(visible_alias = "completion")]
    Completions {
        /// Shell to generate completions for
        shell: clap_complete::Shell,
    },
}

impl Command {
    /// The workspace named as the sub-command's own argument (`jailoc up NAME`).
    pub fn workspace_arg(&self) -> Option<&str> {
        match self {
            Command::Up { name }
            | Command::Down { name, .. }
            | Command::Restart { name }
            | Command::Status { name, .. }
            | Command::Logs { name, .. }
            | Command::Verify { name, .. } => name.as_deref(),
            _ => None,
        }
    }
}

impl Cli {
    /// Folds a sub-command's workspace argument into [`workspace`](Self::workspace) and refuses
    /// what does not fit together: two different names, and the attach flags (`PATH`, `-s`,
    /// `-c`) with a sub-command (they belong to bare `jailoc`, as in the Go jailoc).
    pub fn normalize(mut self) -> Result<Self, String> {
        let Some(cmd) = &self.command else {
            return Ok(self);
        };
        if self.session.is_some() || self.continue_session {
            return Err(
                "--session and --continue belong to bare `jailoc` (the attach), not to a sub-command"
                    .into(),
            );
        }
        if let Some(name) = cmd.workspace_arg() {
            match &self.workspace {
                Some(w) if w != name => {
                    return Err(format!(
                        "the workspace is named twice, {w:?} (-w) and {name:?}: give one"
                    ))
                }
                _ => self.workspace = Some(name.to_string()),
            }
        }
        Ok(self)
    }
}
