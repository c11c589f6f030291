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
    /// Run the agent once, headless, in a one-shot container (for CI): `opencode run --format
    /// json PROMPT`, or any command after `--`. Same image, mounts, policy, secrets and guard
    /// as the workspace; no server, no port, no terminal. Exits with the command's code
    /// (OpenCode's is judged from its events), 124 on --timeout, 128+N on signal N; ends with
    /// what the walls refused on stderr
    #[command(
        after_help = "Examples:\n  jailoc run -w app --timeout 20m \"fix the failing test\"\n  jailoc run -w app -- make test"
    )]
    Run {
        /// Stop the run after this long (e.g. 90s, 20m, 1h; a bare number is seconds) and exit
        /// with 124; counted from the container's start
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        timeout: Option<std::time::Duration>,
        /// The prompt for OpenCode (its words are joined with spaces)
        #[arg(
            value_name = "PROMPT",
            required_unless_present = "command",
            conflicts_with = "command"
        )]
        prompt: Vec<String>,
        /// A command to run instead of OpenCode, after `--`
        #[arg(last = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    /// What the walls of the running workspace refused: connections (with the reason) and
    /// names, per destination, with count, first and last seen
    Egress {
        /// Workspace [default: -w, else the one of the current directory]
        name: Option<String>,
        /// Print JSON for scripts (one object per destination, the record's schema)
        #[arg(long)]
        json: bool,
    },
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
            | Command::Egress { name, .. }
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

/// Parses a `--timeout`: a number with an optional unit, `s`, `m` or `h` (`90`, `90s`, `20m`,
/// `1h`), more than zero.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    let (number, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => {
            return Err(format!(
                "{text:?}: use a number with s, m or h, e.g. 90s, 20m, 1h"
            ))
        }
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: use a number with s, m or h, e.g. 90s, 20m, 1h"))?;
    if n == 0 {
        return Err(format!("{text:?}: a timeout must be more than zero"));
    }
    n.checked_mul(factor)
        .map(std::time::Duration::from_secs)
        .ok_or_else(|| format!("{text:?}: too long"))
}

/// A duration as `--timeout` takes it, in its largest whole unit (`90s`, `20m`, `1h`).
pub fn show_duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s >= 3600 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timeouts_parse_with_units_and_show_back() {
        for (text, secs, shown) in [
            ("90", 90, "90s"),
            ("90s", 90, "90s"),
            ("20m", 1200, "20m"),
            ("1h", 3600, "1h"),
        ] {
            let d = parse_duration(text).expect(text);
            assert_eq!(d, Duration::from_secs(secs));
            assert_eq!(show_duration(d), shown);
        }
        for bad in ["", "0", "1.5m", "10d", "m", "-5"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn run_takes_a_prompt_or_a_command_after_the_dashes() {
        let parse = |args: &[&str]| Cli::try_parse_from(args).map(|c| c.command);
        match parse(&["jailoc", "run", "-w", "app", "fix", "the", "tests"]) {
            Ok(Some(Command::Run {
                prompt, command, ..
            })) => {
                assert_eq!(prompt, ["fix", "the", "tests"]);
                assert!(command.is_empty());
            }
            other => panic!("{other:?}"),
        }
        match parse(&[
            "jailoc",
            "run",
            "--timeout",
            "30s",
            "--",
            "sh",
            "-c",
            "exit 3",
        ]) {
            Ok(Some(Command::Run {
                prompt,
                command,
                timeout,
            })) => {
                assert!(prompt.is_empty());
                assert_eq!(command, ["sh", "-c", "exit 3"]);
                assert_eq!(timeout, Some(Duration::from_secs(30)));
            }
            other => panic!("{other:?}"),
        }
        assert!(parse(&["jailoc", "run"]).is_err(), "nothing to run");
        assert!(parse(&["jailoc", "run", "hi", "--", "ls"]).is_err(), "both");
    }
}
