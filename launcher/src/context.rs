//! The context every command runs in: environment, working directory, output streams and the
//! process runner. Commands touch the machine only through it, so tests can fake all of it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::merge::{writable_overlap, Writable};
use crate::config::HostDirs;

use crate::process::{Cmd, Mode, Output, Runner, Watched};

/// Everything a command may read from or do to the outside world.
pub struct Context {
    /// A snapshot of the environment (never read `std::env` elsewhere).
    pub env: BTreeMap<String, String>,
    /// The current directory.
    pub cwd: PathBuf,
    /// Where the `jailoc` executable lives (to find the companion `sandbox-init`).
    pub exe_dir: Option<PathBuf>,
    /// Runs other programs.
    pub runner: Box<dyn Runner>,
    /// Standard output.
    pub out: Box<dyn Write>,
    /// Standard error.
    pub err: Box<dyn Write>,
    /// Standard input (for the one yes/no prompt).
    pub input: Box<dyn std::io::BufRead>,
    /// Whether stdin and stdout are a terminal (prompts and TTY attach only then).
    pub interactive: bool,
    /// Host variables no child process may inherit (the `from_env` secrets' sources).
    pub hidden_env: Vec<String>,
    /// Paths a container can write (from the config): jailoc runs no program found there.
    pub writable: Vec<Writable>,
    /// Reads the host's interface addresses and prefixes (walled off in the policy); tests pass
    /// fixed ones.
    pub host_addrs: fn() -> std::io::Result<Vec<crate::hostaddrs::HostAddr>>,
    /// The host's process information (`/proc`): who owns a one-shot run ([`crate::runs`]);
    /// tests pass a directory of their own.
    pub proc_dir: PathBuf,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("cwd", &self.cwd)
            .field("exe_dir", &self.exe_dir)
            .field("interactive", &self.interactive)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// An environment variable, treating empty as unset.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.env
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The user's home directory (`$HOME`).
    pub fn home(&self) -> PathBuf {
        self.var("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/"))
    }

    /// `$HOME` and the XDG base directories, from [`env`](Self::env).
    pub fn dirs(&self) -> HostDirs {
        HostDirs::new(&self.home(), |k| self.var(k).map(str::to_string))
    }

    /// `$XDG_CONFIG_HOME/jailoc`, default `~/.config/jailoc`.
    pub fn config_dir(&self) -> PathBuf {
        self.dirs().jailoc_config()
    }

    /// `$XDG_CACHE_HOME/jailoc`, default `~/.cache/jailoc`.
    pub fn cache_dir(&self) -> PathBuf {
        self.dirs().jailoc_cache()
    }

    /// `$XDG_DATA_HOME/jailoc`, default `~/.local/share/jailoc`.
    pub fn data_dir(&self) -> PathBuf {
        self.dirs().jailoc_data()
    }

    /// The host's OpenCode config directory (`$XDG_CONFIG_HOME/opencode`).
    pub fn opencode_config_dir(&self) -> PathBuf {
        self.dirs().opencode_config()
    }

    /// The host's OpenCode data directory (`$XDG_DATA_HOME/opencode`: auth, sessions).
    pub fn opencode_data_dir(&self) -> PathBuf {
        self.dirs().opencode_data()
    }

    /// The private, empty directory (0700) every host process jailoc starts runs in
    /// ([`HostDirs::private_cwd`]): created if missing, refused if it is not an empty directory
    /// of its own. A program started in the user's current directory — a project the agent
    /// writes — could load configuration or plugins from it (OpenCode's TUI loads `tui.json`
    /// plugins upward from its cwd; compose implementations read `.env`).
    pub fn private_cwd(&self) -> std::io::Result<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        let dir = self.dirs().private_cwd();
        crate::fsutil::create_dir_private(&dir)?;
        let meta = std::fs::symlink_metadata(&dir)?;
        let bad = |why: &str| {
            std::io::Error::other(format!(
                "failed to use {} as the directory host programs run in: {why}",
                dir.display()
            ))
        };
        if !meta.is_dir() {
            return Err(bad("it is not a directory"));
        }
        if meta.permissions().mode() & 0o777 != 0o700 {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        }
        if std::fs::read_dir(&dir)?.next().is_some() {
            return Err(bad("it is not empty (remove what is in it)"));
        }
        Ok(dir)
    }

    /// Runs `cmd` through the runner with the [`hidden_env`](Self::hidden_env) variables
    /// removed from its environment, in [`private_cwd`](Self::private_cwd) unless `cmd` names
    /// its own directory, with the [`child_path`](Self::child_path) as its `PATH`. Every child
    /// process goes through here.
    pub fn run(&self, cmd: &Cmd, mode: Mode) -> std::io::Result<Output> {
        let cmd = self.prepare(cmd)?;
        self.runner.run(&cmd, mode)
    }

    /// [`run`](Self::run) on the terminal with a watch ([`Runner::run_watched`]): `watch` is
    /// called every `every` while `cmd` runs and ends it by returning a reason.
    pub fn run_watched(
        &self,
        cmd: &Cmd,
        every: std::time::Duration,
        watch: &mut dyn FnMut() -> Option<String>,
    ) -> std::io::Result<Watched> {
        let cmd = self.prepare(cmd)?;
        self.runner.run_watched(&cmd, every, watch)
    }

    /// [`run`](Self::run) with stdout read line by line ([`Runner::run_streamed`]): each line
    /// is written to [`out`](Self::out) at once and handed to `line` (to judge it); `watch`
    /// as in [`run_watched`](Self::run_watched).
    pub fn run_streamed(
        &mut self,
        cmd: &Cmd,
        every: std::time::Duration,
        line: &mut dyn FnMut(&str),
        watch: &mut dyn FnMut() -> Option<String>,
    ) -> std::io::Result<Watched> {
        let cmd = self.prepare(cmd)?;
        let out = &mut self.out;
        let mut show = |l: &str| {
            let _ = writeln!(out, "{l}");
            let _ = out.flush();
            line(l);
        };
        self.runner.run_streamed(&cmd, every, &mut show, watch)
    }

    /// What [`run`](Self::run) does to `cmd` before it starts.
    fn prepare(&self, cmd: &Cmd) -> std::io::Result<Cmd> {
        let mut cmd = cmd.clone();
        if cmd.cwd.is_none() {
            cmd.cwd = Some(self.private_cwd()?);
        }
        if let Some(found) = self.find_program(&cmd.program, cmd.cwd.as_deref()) {
            // Run the file that was checked, by its resolved path: a second lookup by name (or
            // through a symlinked directory the agent can flip) could find another one.
            cmd.exe = Some(self.check_not_writable(&found)?);
        }
        if let Some(path) = self.child_path() {
            if !cmd.env.iter().any(|(k, _)| k == "PATH") {
                cmd.env.push(("PATH".into(), path));
            }
        }
        for k in &self.hidden_env {
            if !cmd.env_remove.contains(k) {
                cmd.env_remove.push(k.clone());
            }
        }
        Ok(cmd)
    }

    /// The user's `PATH` without the entries a container can write (inside a workspace path or
    /// read-write mount, after symlinks) and without relative ones (they name a directory
    /// relative to wherever the child happens to be). The programs jailoc starts look up their
    /// own helpers on `PATH` — docker its `docker-credential-*`, the host's OpenCode TUI
    /// `wl-copy`/`xclip`/`osascript` for the clipboard — so an activated `.venv/bin` of a
    /// project would let the agent plant one that runs on the host. `None` without a `PATH`.
    pub fn child_path(&self) -> Option<String> {
        let path = self.env.get("PATH")?;
        let kept: Vec<PathBuf> = std::env::split_paths(path)
            .filter(|dir| {
                if !dir.is_absolute() {
                    return false;
                }
                // Resolved as far as it exists: a missing `bin/` under a symlink to a project
                // is one the agent can create.
                let real =
                    crate::config::paths::resolve(&dir.to_string_lossy(), &self.home(), None)
                        .unwrap_or_else(|_| dir.clone());
                writable_overlap(&self.writable, &real, false).is_none()
                    && writable_overlap(&self.writable, dir, false).is_none()
            })
            .collect();
        std::env::join_paths(kept)
            .ok()
            .map(|p| p.to_string_lossy().into_owned())
    }

    /// Where `program` is found as the child would find it (`execvp`: a name with a slash as
    /// is, else the first executable file in `$PATH`; relative entries from `cwd`).
    pub fn find_program(&self, program: &str, cwd: Option<&Path>) -> Option<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        let base = cwd
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.cwd.clone());
        let exec = |p: &Path| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        };
        if program.contains('/') {
            return Some(base.join(program));
        }
        let path = self.env.get("PATH")?;
        std::env::split_paths(path)
            .map(|d| base.join(d).join(program))
            .find(|p| exec(p))
    }

    /// Refuses a program (or any host file jailoc hands to the engine to run, like
    /// sandbox-init) that lies in a path a container can write: the agent could replace it
    /// (a project's `.venv/bin` or `node_modules/.bin` on `$PATH` is common). Returns the
    /// program's resolved path (no symlink left in it), the one that was checked.
    pub fn check_not_writable(&self, program: &Path) -> std::io::Result<PathBuf> {
        let real = std::fs::canonicalize(program).unwrap_or_else(|_| program.to_path_buf());
        match writable_overlap(&self.writable, &real, false) {
            None => Ok(real),
            Some(w) => Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "refusing to run {}: it is inside {w}, so the agent could replace it; take that directory off PATH (or install the program elsewhere)",
                    real.display()
                ),
            )),
        }
    }

    /// Writes a line to stdout, ignoring a closed pipe.
    pub fn say(&mut self, line: &str) {
        let _ = writeln!(self.out, "{line}");
    }

    /// Asks a yes/no question on stderr; only "y"/"yes" is yes.
    pub fn confirm(&mut self, question: &str) -> bool {
        let _ = write!(self.err, "jailoc: {question} [y/N] ");
        let _ = self.err.flush();
        let mut line = String::new();
        if self.input.read_line(&mut line).is_err() {
            return false;
        }
        matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes")
    }

    /// Writes a line to stderr prefixed with `jailoc: `.
    pub fn warn(&mut self, line: &str) {
        let _ = writeln!(self.err, "jailoc: {line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::SystemRunner;
    use crate::testutil::{context, tempdir, Recorder};
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn script(path: &Path, text: &str) {
        std::fs::write(path, text).expect("write");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    /// Plays the agent winning the race between jailoc's check and the exec: on the first
    /// run it turns `link` (its symlink to the real directory) into a directory of its own,
    /// holding its `tool`, then really runs the command.
    struct Flip {
        link: PathBuf,
        planted: PathBuf,
    }

    impl Runner for Flip {
        fn run(&self, cmd: &Cmd, mode: Mode) -> std::io::Result<Output> {
            std::fs::remove_file(&self.link).expect("remove the symlink");
            std::fs::rename(&self.planted, &self.link).expect("swap in the agent's dir");
            SystemRunner.run(cmd, mode)
        }
    }

    /// A program reached through a directory the agent can flip (a `PATH` entry holding a
    /// symlink into a project whose `bin` is itself a symlink): jailoc checks where it leads
    /// at that moment, and then runs exactly that file, not whatever a second lookup by name
    /// finds after the agent has swapped the directory.
    #[test]
    fn attack_program_swapped_between_the_check_and_the_exec_is_not_run() {
        let dir = tempdir();
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        let (mut ctx, _, _) = context(&root, Recorder::default());
        let real = root.join("opt/tool-1.0");
        let project = root.join("home/src/app");
        let sys_bin = root.join("usr/local/bin");
        for d in [&real, &project, &sys_bin, &project.join("planted")] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        script(&real.join("tool"), "#!/bin/sh\necho real\n");
        script(&project.join("planted/tool"), "#!/bin/sh\necho planted\n");
        symlink(&real, project.join("bin")).expect("symlink");
        symlink(project.join("bin/tool"), sys_bin.join("tool")).expect("symlink");
        ctx.env
            .insert("PATH".into(), sys_bin.to_string_lossy().into_owned());
        ctx.writable = vec![Writable {
            path: project.clone(),
            key: "workspaces.app.paths".into(),
            line: 2,
        }];
        ctx.runner = Box::new(Flip {
            link: project.join("bin"),
            planted: project.join("planted"),
        });
        let out = ctx
            .run(&Cmd::new("tool", Vec::<String>::new()), Mode::Capture)
            .expect("run");
        assert_eq!(out.stdout, "real\n", "stderr: {}", out.stderr);
    }
}
