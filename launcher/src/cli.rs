//! The command line (clap derive; the doc comments are the help text).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Run AI coding agents (OpenCode) in walled-off containers, one Docker Compose project per
/// workspace.
///
/// Without a command: start the current workspace if needed and attach to it.
#[derive(Debug, Parser)]
#[command(name = "jailoc", version, max_term_width = 100)]
pub struct Cli {
    /// Config file [default: $XDG_CONFIG_HOME/jailoc/config.toml]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Workspace to act on [default: the one whose path contains the current directory, else
    /// "default"]
    #[arg(short = 'w', long, global = true, value_name = "NAME")]
    pub workspace: Option<String>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The sub-commands; one module each under `cmd/`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the workspace's container (idempotent: says "already running")
    Up,
    /// Stop and remove the workspace's containers and network
    Down,
    /// Stop, regenerate the files and start again
    Restart,
    /// Show every workspace: state, port, egress mode, image
    Status {
        /// Print JSON (one array of objects) for scripts
        #[arg(long)]
        json: bool,
    },
    /// Show the container's logs
    Logs {
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
    /// Print a shell completion script
    Completions {
        /// Shell to generate completions for
        shell: clap_complete::Shell,
    },
}
