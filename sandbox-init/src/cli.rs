//! Command line and environment:
//!
//! - `sandbox-init [--config-dir DIR] [--print-plan] [--] COMMAND [ARGS...]`: the boot (PID 1);
//! - `sandbox-init [--config-dir DIR] --health [--port PORT]`: the container's health check;
//! - `sandbox-init [--config-dir DIR] --enter [--] COMMAND [ARGS...]`: a command in a running
//!   container, as the agent;
//! - `sandbox-init [--config-dir DIR] --verify [--json]`: the walls proved from inside a running
//!   container, as the agent.
//!
//! Hand-rolled rather than clap: the grammar is a handful of options and the binary must stay
//! small.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

/// Where the policy lives when neither `--config-dir` nor the environment
/// ([`crate::policy::CONFIG_DIR_ENV`]) says otherwise.
use crate::policy::CONFIG_DIR as DEFAULT_CONFIG_DIR;
/// The port `--health` asks when `--port` is not given (OpenCode's server in the container).
pub(crate) const DEFAULT_HEALTH_PORT: u16 = 4096;

/// The help text printed by `--help` (a contract: tests assert on it).
pub const HELP: &str = "\
sandbox-init: PID 1 for an AI coding agent's container

usage: sandbox-init [--config-dir DIR] [--print-plan] [--] COMMAND [ARGS...]
       sandbox-init [--config-dir DIR] --health [--port PORT]
       sandbox-init [--config-dir DIR] --enter [--] COMMAND [ARGS...]
       sandbox-init [--config-dir DIR] --verify [--json]

Loads the policy, installs the IPv4/IPv6 egress firewall, drops every privilege and runs
COMMAND as the unprivileged agent user, then supervises it as init.

--health is the container's health check: it drops to the agent user exactly as the boot
does, then sends GET /global/health to 127.0.0.1:PORT with Basic auth (user
$OPENCODE_SERVER_USERNAME or opencode, password $OPENCODE_SERVER_PASSWORD), 2 s in all, and
exits 0 on an HTTP 200 status line, else 1. It runs no other program.

--enter runs COMMAND in a running container: it drops to the agent user exactly as the boot
does (HOME, USER and LOGNAME from the policy) and executes COMMAND, found on PATH as the
agent. No firewall, no supervision, no home fix-up, no secrets.

--verify proves the walls in a running container: as root it compares the rules with the
plan the boot would install now (iptables-save), then drops to the agent user exactly as the
boot does and, as the agent, checks its uid, capability sets, no_new_privs and seccomp and
probes what must be refused (metadata, gateways, the host's addresses, every blocked range in
both families; in allowlist egress a public address and a name), each within 1 s. A fast
refusal passes; a connection, a datagram that left or a timeout fails. Prints a table, or
JSON with --json.

options:
  --config-dir DIR  policy directory, an absolute path (default /etc/jailoc, env
                    SANDBOX_INIT_CONFIG_DIR)
  --print-plan      print both rule sets, the agent user and what would be chowned; change nothing
  --health          the health check (see above)
  --port PORT       the port --health asks (default 4096)
  --enter           run COMMAND as the agent in a running container (see above)
  --verify          prove the walls in a running container (see above)
  --json            --verify prints JSON
  -h, --help        print this help
  -V, --version     print the version

exit codes: the agent's own, 128+N if it died of signal N, 126/127 if it could not be
executed/found, 64 usage error, 71 firewall or privilege setup failed, 78 invalid policy;
--health: 0 healthy, 1 not; --verify: 0 every check passed, 1 not
";

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// Boot (or only print the plan) and run the agent command.
    Run(Args),
    /// `--health`.
    Health(HealthArgs),
    /// `--enter`.
    Enter(EnterArgs),
    /// `--verify`.
    Verify(VerifyArgs),
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

/// The options of `--health`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthArgs {
    /// The policy directory (for the agent's uid and gid).
    pub config_dir: PathBuf,
    /// The port on 127.0.0.1 to ask.
    pub port: u16,
}

/// The options of `--enter`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnterArgs {
    /// The policy directory (for the agent's uid, gid and home).
    pub config_dir: PathBuf,
    /// The command line to run as the agent; never empty.
    pub command: Vec<OsString>,
}

/// The options of `--verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyArgs {
    /// The policy directory (the agent's ids, the plan's inputs).
    pub config_dir: PathBuf,
    /// Print JSON instead of the table.
    pub json: bool,
}

/// A command line that cannot be run (exit code [`crate::exit::USAGE`]).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UsageError {
    #[error("missing COMMAND (usage: sandbox-init [--config-dir DIR] [--print-plan] [--] COMMAND [ARGS...])")]
    MissingCommand,
    #[error(
        "missing COMMAND (usage: sandbox-init [--config-dir DIR] --enter [--] COMMAND [ARGS...])"
    )]
    MissingEnterCommand,
    #[error("option --health takes no COMMAND (usage: sandbox-init [--config-dir DIR] --health [--port PORT])")]
    HealthWithCommand,
    #[error("option --config-dir needs a directory")]
    MissingConfigDir,
    #[error("option --config-dir needs an absolute path, not {0:?} (the working directory may be the agent's)")]
    RelativeConfigDir(String),
    #[error("option --port needs a port number from 1 to 65535, not {0:?}")]
    InvalidPort(String),
    #[error("option --port goes only with --health")]
    PortWithoutHealth,
    #[error("option --verify takes no COMMAND (usage: sandbox-init [--config-dir DIR] --verify [--json])")]
    VerifyWithCommand,
    #[error("option --json goes only with --verify")]
    JsonWithoutVerify,
    #[error("options {0} and {1} cannot be combined")]
    Conflict(&'static str, &'static str),
    #[error("unknown option {0:?} (see sandbox-init --help)")]
    UnknownOption(String),
}

/// Parses the arguments after the program name. `env_config_dir` is the value of
/// [`crate::policy::CONFIG_DIR_ENV`], passed in so tests do not depend on the process environment.
pub fn parse<I>(args: I, env_config_dir: Option<OsString>) -> Result<Invocation, UsageError>
where
    I: IntoIterator<Item = OsString>,
{
    let mut args = args.into_iter();
    let mut config_dir = env_config_dir
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from);
    let mut print_plan = false;
    let mut health = false;
    let mut enter = false;
    let mut verify = false;
    let mut json = false;
    let mut port: Option<u16> = None;
    let mut command = Vec::new();
    let port_number = |text: &str| {
        text.parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| UsageError::InvalidPort(text.to_owned()))
    };
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
            "--health" => health = true,
            "--enter" => enter = true,
            "--verify" => verify = true,
            "--json" => json = true,
            "--config-dir" => {
                let dir = args.next().filter(|d| !d.is_empty());
                config_dir = Some(PathBuf::from(dir.ok_or(UsageError::MissingConfigDir)?));
            }
            "--port" => {
                let value = args.next().unwrap_or_default();
                port = Some(port_number(&value.to_string_lossy())?);
            }
            _ => {
                if let Some(dir) = text.strip_prefix("--config-dir=") {
                    if dir.is_empty() {
                        return Err(UsageError::MissingConfigDir);
                    }
                    config_dir = Some(PathBuf::from(dir));
                } else if let Some(value) = text.strip_prefix("--port=") {
                    port = Some(port_number(value)?);
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
    let config_dir = config_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_DIR));
    if !config_dir.is_absolute() {
        return Err(UsageError::RelativeConfigDir(
            config_dir.to_string_lossy().into_owned(),
        ));
    }
    for (on, name) in [(print_plan, "--print-plan"), (enter, "--enter")] {
        if health && on {
            return Err(UsageError::Conflict("--health", name));
        }
    }
    if enter && print_plan {
        return Err(UsageError::Conflict("--enter", "--print-plan"));
    }
    for (on, name) in [
        (health, "--health"),
        (enter, "--enter"),
        (print_plan, "--print-plan"),
    ] {
        if verify && on {
            return Err(UsageError::Conflict("--verify", name));
        }
    }
    if json && !verify {
        return Err(UsageError::JsonWithoutVerify);
    }
    if port.is_some() && !health {
        return Err(UsageError::PortWithoutHealth);
    }
    let has_command = !command.is_empty() && !command[0].is_empty();
    if verify {
        if !command.is_empty() {
            return Err(UsageError::VerifyWithCommand);
        }
        return Ok(Invocation::Verify(VerifyArgs { config_dir, json }));
    }
    if health {
        if !command.is_empty() {
            return Err(UsageError::HealthWithCommand);
        }
        return Ok(Invocation::Health(HealthArgs {
            config_dir,
            port: port.unwrap_or(DEFAULT_HEALTH_PORT),
        }));
    }
    if enter {
        if !has_command {
            return Err(UsageError::MissingEnterCommand);
        }
        return Ok(Invocation::Enter(EnterArgs {
            config_dir,
            command,
        }));
    }
    if !has_command {
        return Err(UsageError::MissingCommand);
    }
    Ok(Invocation::Run(Args {
        config_dir,
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

    fn health(config_dir: &str, port: u16) -> Invocation {
        Invocation::Health(HealthArgs {
            config_dir: PathBuf::from(config_dir),
            port,
        })
    }

    fn enter(config_dir: &str, command: &[&str]) -> Invocation {
        Invocation::Enter(EnterArgs {
            config_dir: PathBuf::from(config_dir),
            command: os(command),
        })
    }

    #[test]
    fn health_takes_a_port_and_no_command() {
        assert_eq!(run(&["--health"], None), Ok(health("/etc/jailoc", 4096)));
        assert_eq!(
            run(
                &["--config-dir", "/c", "--health", "--port", "8080"],
                Some("/env")
            ),
            Ok(health("/c", 8080))
        );
        assert_eq!(
            run(&["--port=1", "--health", "--"], None),
            Ok(health("/etc/jailoc", 1))
        );
        assert_eq!(
            run(&["--health", "opencode"], None),
            Err(UsageError::HealthWithCommand)
        );
        assert_eq!(
            run(&["--health", "--", "x"], None),
            Err(UsageError::HealthWithCommand)
        );
        for bad in ["0", "65536", "http", "-1", ""] {
            assert_eq!(
                run(&["--health", "--port", bad], None),
                Err(UsageError::InvalidPort(bad.into())),
                "{bad}"
            );
        }
        assert_eq!(
            run(&["--port", "4096", "x"], None),
            Err(UsageError::PortWithoutHealth)
        );
        assert_eq!(
            UsageError::InvalidPort("0".into()).to_string(),
            "option --port needs a port number from 1 to 65535, not \"0\""
        );
    }

    #[test]
    fn enter_takes_a_command_like_the_boot() {
        assert_eq!(
            run(&["--enter", "--", "bash", "-l"], None),
            Ok(enter("/etc/jailoc", &["bash", "-l"]))
        );
        assert_eq!(
            run(
                &["--config-dir=/c", "--enter", "opencode", "--print-plan"],
                None
            ),
            Ok(enter("/c", &["opencode", "--print-plan"]))
        );
        assert_eq!(
            run(&["--enter"], None),
            Err(UsageError::MissingEnterCommand)
        );
        assert_eq!(
            UsageError::MissingEnterCommand.to_string(),
            "missing COMMAND (usage: sandbox-init [--config-dir DIR] --enter [--] COMMAND [ARGS...])"
        );
    }

    #[test]
    fn modes_do_not_combine() {
        assert_eq!(
            run(&["--health", "--enter", "x"], None),
            Err(UsageError::Conflict("--health", "--enter"))
        );
        assert_eq!(
            run(&["--print-plan", "--health"], None),
            Err(UsageError::Conflict("--health", "--print-plan"))
        );
        assert_eq!(
            run(&["--enter", "--print-plan", "x"], None),
            Err(UsageError::Conflict("--enter", "--print-plan"))
        );
        assert_eq!(
            UsageError::Conflict("--health", "--enter").to_string(),
            "options --health and --enter cannot be combined"
        );
    }

    #[test]
    fn a_relative_config_dir_is_refused_in_every_mode() {
        // PID 1's and the health check's working directory is the agent's project.
        for args in [
            &["--config-dir", "etc", "x"][..],
            &["--config-dir=./etc", "--health"][..],
            &["--config-dir", "etc", "--enter", "x"][..],
        ] {
            assert_eq!(
                run(args, None),
                Err(UsageError::RelativeConfigDir(
                    args[0]
                        .strip_prefix("--config-dir=")
                        .unwrap_or(args[1])
                        .into()
                )),
                "{args:?}"
            );
        }
        assert_eq!(
            run(&["--health"], Some("jailoc")),
            Err(UsageError::RelativeConfigDir("jailoc".into()))
        );
        assert_eq!(
            UsageError::RelativeConfigDir("etc".into()).to_string(),
            "option --config-dir needs an absolute path, not \"etc\" (the working directory may \
             be the agent's)"
        );
    }

    #[test]
    fn the_help_names_every_mode() {
        for line in [
            "usage: sandbox-init [--config-dir DIR] [--print-plan] [--] COMMAND [ARGS...]\n",
            "       sandbox-init [--config-dir DIR] --health [--port PORT]\n",
            "       sandbox-init [--config-dir DIR] --enter [--] COMMAND [ARGS...]\n",
            "       sandbox-init [--config-dir DIR] --verify [--json]\n",
            "  --port PORT       the port --health asks (default 4096)\n",
            "--health: 0 healthy, 1 not; --verify: 0 every check passed, 1 not\n",
        ] {
            assert!(HELP.contains(line), "{line}");
        }
    }

    fn verify(config_dir: &str, json: bool) -> Invocation {
        Invocation::Verify(VerifyArgs {
            config_dir: PathBuf::from(config_dir),
            json,
        })
    }

    #[test]
    fn verify_takes_json_and_nothing_else() {
        assert_eq!(run(&["--verify"], None), Ok(verify("/etc/jailoc", false)));
        assert_eq!(
            run(&["--config-dir", "/c", "--verify", "--json"], Some("/env")),
            Ok(verify("/c", true))
        );
        assert_eq!(
            run(&["--json", "--verify", "--"], None),
            Ok(verify("/etc/jailoc", true))
        );
        assert_eq!(
            run(&["--verify", "sh"], None),
            Err(UsageError::VerifyWithCommand)
        );
        assert_eq!(
            run(&["--json", "sh"], None),
            Err(UsageError::JsonWithoutVerify)
        );
        for (other, args) in [
            ("--health", &["--verify", "--health"][..]),
            ("--enter", &["--enter", "--verify", "sh"][..]),
            ("--print-plan", &["--verify", "--print-plan"][..]),
        ] {
            assert_eq!(
                run(args, None),
                Err(UsageError::Conflict("--verify", other)),
                "{args:?}"
            );
        }
        assert_eq!(
            UsageError::VerifyWithCommand.to_string(),
            "option --verify takes no COMMAND (usage: sandbox-init [--config-dir DIR] --verify [--json])"
        );
    }
}
