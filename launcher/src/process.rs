//! The one seam through which the launcher runs other programs, so every command can be tested
//! with a recording fake instead of a real engine.

use std::io;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// A command to run: program, arguments and extra environment. Never put a secret in `args`:
/// arguments are visible to every user of the machine (`ps`), the environment is not.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cmd {
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Variables of jailoc's own environment the child must not inherit.
    pub env_remove: Vec<String>,
    pub cwd: Option<PathBuf>,
    /// The file to execute, set by [`crate::context::Context::run`] once it has found and
    /// checked the program: run by this path (with `program` as `argv[0]`), so what runs is
    /// what was checked, not whatever a second `PATH` lookup finds a moment later.
    pub exe: Option<PathBuf>,
}

impl Cmd {
    /// A command from a program and its arguments.
    pub fn new<I, S>(program: &str, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Cmd {
            program: program.to_string(),
            args: args.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            env_remove: Vec::new(),
            cwd: None,
            exe: None,
        }
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// The command line as a user would type it (for messages only).
    pub fn display(&self) -> String {
        let mut s = self.program.clone();
        for a in &self.args {
            s.push(' ');
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '\'' || c == '"') {
                s.push('\'');
                s.push_str(&a.replace('\'', "'\\''"));
                s.push('\'');
            } else {
                s.push_str(a);
            }
        }
        s
    }
}

/// How a command's output is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Capture stdout and stderr (queries).
    Capture,
    /// Inherit the terminal (builds, `up`, `logs`, `shell`): the user sees progress live.
    Inherit,
}

/// What a finished command produced. `stdout`/`stderr` are empty in [`Mode::Inherit`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Output {
    /// Exit code; 128+N when killed by signal N.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// True if the command exited with 0.
    pub fn success(&self) -> bool {
        self.code == 0
    }
}

/// Runs commands. Production uses [`SystemRunner`]; tests pass a fake.
pub trait Runner {
    /// Runs `cmd` to completion. `Err` means it could not be started (e.g. not installed).
    fn run(&self, cmd: &Cmd, mode: Mode) -> io::Result<Output>;
}

/// Runs commands as real child processes.
#[derive(Debug, Default)]
pub struct SystemRunner;

impl Runner for SystemRunner {
    fn run(&self, cmd: &Cmd, mode: Mode) -> io::Result<Output> {
        let mut c = match &cmd.exe {
            Some(exe) => {
                use std::os::unix::process::CommandExt;
                let mut c = Command::new(exe);
                c.arg0(&cmd.program);
                c
            }
            None => Command::new(&cmd.program),
        };
        c.args(&cmd.args);
        for k in &cmd.env_remove {
            c.env_remove(k);
        }
        for (k, v) in &cmd.env {
            c.env(k, v);
        }
        if let Some(dir) = &cmd.cwd {
            c.current_dir(dir);
        }
        match mode {
            Mode::Capture => {
                c.stdin(Stdio::null());
                let out = c.output()?;
                Ok(Output {
                    code: code_of(out.status),
                    stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                    stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                })
            }
            Mode::Inherit => {
                let status = c.status()?;
                Ok(Output {
                    code: code_of(status),
                    ..Output::default()
                })
            }
        }
    }
}

fn code_of(status: std::process::ExitStatus) -> i32 {
    if let Some(code) = status.code() {
        return code;
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return 128 + sig;
        }
    }
    1
}
