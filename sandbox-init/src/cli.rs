//! Command line and environment: `sandbox-init [--config-dir DIR] [--print-plan] [--] COMMAND [ARGS...]`.
//!
//! Hand-rolled rather than clap: the grammar is four options and the binary must stay small.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

/// Where the policy lives when neither `--config-dir` nor the environment says otherwise.
pub const DEFAULT_CONFIG_DIR: &str = "/etc/jailoc";
/// Environment variable that overrides the default config dir (the flag wins over it).
pub const CONFIG_DIR_ENV: &str = "SANDBOX_INIT_CONFIG_DIR";

/// The help text printed by `--help` (a contract: tests assert on it).
pub const HELP: &str = "\
sandbox-init: PID 1 for an AI coding agent's container

usage: sandbox-init [--config-dir DIR] [--print-plan] [--] COMMAND [ARGS...]

Loads the policy, installs the IPv4/IPv6 egress firewall, drops every privilege and runs
COMMAND as the unprivileged agent user, then supervises it as init.

options:
  --config-dir DIR  policy directory (default /etc/jailoc, env SANDBOX_INIT_CONFIG_DIR)
  --print-plan      print both rule sets, the agent user and what would be chowned; change nothing
  -h, --help        print this help
  -V, --version     print the version

exit codes: the agent's own, 128+N if it died of signal N, 126/127 if it could not be
executed/found, 64 usage error, 71 firewall or privilege setup failed, 78 invalid policy
";

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// Boot (or only print the plan) and run the agent command.
    Run(Args),
    /// `--help`.
    Help,
    /// `--version`.
    Version,
}

/// The options of a normal run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// The policy directory.
    pub config_dir: PathBuf,
    /// Print what would be done and exit 0 without changing anything.
    pub print_plan: bool,
    /// The agent's command line; never empty.
    pub command: Vec<OsString>,
}

/// A command line that cannot be run (exit code [`crate::exit::USAGE`]).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UsageError {
    #[error("missing COMMAND (usage: sandbox-init [--config-dir DIR] [--print-plan] [--] COMMAND [ARGS...])")]
    MissingCommand,
    #[error("option --config-dir needs a directory")]
    MissingConfigDir,
    #[error("unknown option {0:?} (see sandbox-init --help)")]
    UnknownOption(String),
}

/// Parses the arguments after the program name. `env_config_dir` is the value of
/// [`CONFIG_DIR_ENV`], passed in so tests do not depend on the process environment.
pub fn parse<I>(args: I, env_config_dir: Option<OsString>) -> Result<Invocation, UsageError>
where
    I: IntoIterator<Item = OsString>,
{
    let mut args = args.into_iter();
    let mut config_dir = env_config_dir
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from);
    let mut print_plan = false;
    let mut command = Vec::new();
    while let Some(arg) = args.next() {
        let Some(text) = arg.to_str() else {
            // Not UTF-8: cannot be one of our options, so it is the command.
            command.push(arg);
            break;
        };
        match text {
            "--" => break,
            "-h" | "--help" => return Ok(Invocation::Help),
            "-V" | "--version" => return Ok(Invocation::Version),
            "--print-plan" => print_plan = true,
            "--config-dir" => {
                let dir = args.next().filter(|d| !d.is_empty());
                config_dir = Some(PathBuf::from(dir.ok_or(UsageError::MissingConfigDir)?));
            }
            _ => {
                if let Some(dir) = text.strip_prefix("--config-dir=") {
                    if dir.is_empty() {
                        return Err(UsageError::MissingConfigDir);
                    }
                    config_dir = Some(PathBuf::from(dir));
                } else if text.starts_with('-') && text != "-" {
                    return Err(UsageError::UnknownOption(text.to_owned()));
                } else {
                    command.push(arg);
                    break;
                }
            }
        }
    }
    command.extend(args);
    if command.is_empty() || command[0].is_empty() {
        return Err(UsageError::MissingCommand);
    }
    Ok(Invocation::Run(Args {
        config_dir: config_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_DIR)),
        print_plan,
        command,
    }))
}

/// `true` when `SANDBOX_INIT_LOG=debug`.
pub fn debug_enabled(value: Option<&OsStr>) -> bool {
    value.is_some_and(|v| v == "debug")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn run(args: &[&str], env: Option<&str>) -> Result<Invocation, UsageError> {
        parse(os(args), env.map(OsString::from))
    }

    fn args(config_dir: &str, print_plan: bool, command: &[&str]) -> Invocation {
        Invocation::Run(Args {
            config_dir: PathBuf::from(config_dir),
            print_plan,
            command: os(command),
        })
    }

    #[test]
    fn defaults_to_etc_jailoc() {
        assert_eq!(
            run(&["opencode", "serve"], None),
            Ok(args("/etc/jailoc", false, &["opencode", "serve"]))
        );
    }

    #[test]
    fn flag_beats_env_and_env_beats_default() {
        assert_eq!(run(&["x"], Some("/env")), Ok(args("/env", false, &["x"])));
        assert_eq!(
            run(&["--config-dir", "/flag", "x"], Some("/env")),
            Ok(args("/flag", false, &["x"]))
        );
        assert_eq!(
            run(&["--config-dir=/eq", "x"], Some("")),
            Ok(args("/eq", false, &["x"]))
        );
        assert_eq!(
            run(&["x"], Some("")),
            Ok(args("/etc/jailoc", false, &["x"]))
        );
    }

    #[test]
    fn options_stop_at_the_command_or_double_dash() {
        assert_eq!(
            run(&["--print-plan", "--", "--print-plan", "-x"], None),
            Ok(args("/etc/jailoc", true, &["--print-plan", "-x"]))
        );
        assert_eq!(
            run(&["sh", "--config-dir", "/nope"], None),
            Ok(args("/etc/jailoc", false, &["sh", "--config-dir", "/nope"]))
        );
    }

    #[test]
    fn usage_errors_say_what_is_wrong() {
        assert_eq!(run(&[], None), Err(UsageError::MissingCommand));
        assert_eq!(
            run(&["--print-plan", "--"], None),
            Err(UsageError::MissingCommand)
        );
        assert_eq!(
            run(&["--config-dir"], None),
            Err(UsageError::MissingConfigDir)
        );
        assert_eq!(
            run(&["--config-dir="], None),
            Err(UsageError::MissingConfigDir)
        );
        assert_eq!(
            run(&["--frobnicate", "x"], None),
            Err(UsageError::UnknownOption("--frobnicate".into()))
        );
        assert_eq!(
            UsageError::MissingCommand.to_string(),
            "missing COMMAND (usage: sandbox-init [--config-dir DIR] [--print-plan] [--] COMMAND [ARGS...])"
        );
        assert_eq!(
            UsageError::UnknownOption("--x".into()).to_string(),
            "unknown option \"--x\" (see sandbox-init --help)"
        );
    }

    #[test]
    fn help_and_version_win() {
        assert_eq!(run(&["--help"], None), Ok(Invocation::Help));
        assert_eq!(run(&["-V", "x"], None), Ok(Invocation::Version));
        assert!(HELP.contains("--config-dir DIR"));
        assert!(HELP.contains("78 invalid policy"));
    }

    #[test]
    fn debug_log_switch() {
        assert!(debug_enabled(Some(OsStr::new("debug"))));
        assert!(!debug_enabled(Some(OsStr::new("info"))));
        assert!(!debug_enabled(None));
    }
}
