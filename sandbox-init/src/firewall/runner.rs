//! Running the iptables programs: the [`CommandRunner`] seam and [`SystemRunner`], the real one.
//!
//! These run as root with every capability the container has, so [`SystemRunner`] runs only
//! what [`Trust`] finds in the fixed system directories (never `PATH`: an image commonly puts
//! the agent's `~/.local/bin` first), after checking that only root can have put it there. It
//! runs the resolved file with the program's name as `argv[0]`, in `/`, with an environment of
//! exactly [`SYSTEM_PATH`] (nothing of the container's, such as `XTABLES_LIBDIR`, reaches it),
//! stdin from `/dev/null` unless a payload is fed, and no descriptor but 0-2 (everything
//! sandbox-init opens is close-on-exec, and the boot marks what it inherited so first).

use crate::log::Log;
use crate::trust::{Trust, TrustError, SYSTEM_PATH};
use std::io::{self, Write as _};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

/// The seam to the outside world: run one program to completion.
pub trait CommandRunner {
    /// Runs `program` with `args`, feeding `stdin` if given, and collects its output.
    fn run(&self, program: &str, args: &[&str], stdin: Option<&str>) -> io::Result<Output>;

    /// Whether `program` is installed (without running it); an error when it is installed
    /// but must not be run as root.
    fn exists(&self, program: &str) -> Result<bool, TrustError> {
        let _ = program;
        Ok(true)
    }

    /// [`CommandRunner::exists`] for each of `programs`, in order.
    fn exist(&self, programs: &[&str]) -> Result<Vec<bool>, TrustError> {
        programs.iter().map(|p| self.exists(p)).collect()
    }

    /// Whether the rules may be written over netlink from this process instead
    /// ([`crate::firewall::nft`]): only when the programs run in this process's own network
    /// namespace. The real runner says yes; test doubles, and runners that enter another
    /// namespace, must not (the rules would land in the namespace the test runs in).
    fn netlink_here(&self) -> bool {
        false
    }

    /// Runs each sequence's commands in order, the sequences concurrently where the runner can
    /// (the default runs everything one after the other); results per sequence, in order.
    fn run_sequences(&self, seqs: &[&[Cmd<'_>]]) -> Vec<Vec<io::Result<Output>>> {
        seqs.iter()
            .map(|seq| {
                seq.iter()
                    .map(|c| self.run(c.program, c.args, c.stdin))
                    .collect()
            })
            .collect()
    }

    /// Runs several commands that do not depend on each other; results in the same order.
    /// The default runs them one after the other.
    fn run_all(&self, cmds: &[Cmd<'_>]) -> Vec<io::Result<Output>> {
        cmds.iter()
            .map(|c| self.run(c.program, c.args, c.stdin))
            .collect()
    }
}

/// What a finished command produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// One command for [`CommandRunner::run_all`].
#[derive(Debug, Clone, Copy)]
pub struct Cmd<'a> {
    pub program: &'a str,
    pub args: &'a [&'a str],
    pub stdin: Option<&'a str>,
}

/// Runs real programs, found only in the system directories and only when root's (see the
/// module comment).
#[derive(Debug, Clone)]
pub struct SystemRunner {
    trust: Trust,
    /// Logs each command and its duration (debug lines).
    log: Log,
    /// Set besides `PATH` (the DNS gate's own xtables lock file for legacy iptables).
    env: Vec<(String, String)>,
    /// Whether the rules may go over netlink ([`CommandRunner::netlink_here`]).
    netlink: bool,
}

impl SystemRunner {
    /// The real system's programs.
    pub fn new(log: Log) -> Self {
        Self::with_trust(Trust::system(), log)
    }

    /// Programs as `trust` finds them (tests stand a directory in for `/`).
    pub fn with_trust(trust: Trust, log: Log) -> Self {
        SystemRunner {
            trust,
            log,
            netlink: true,
            env: Vec::new(),
        }
    }

    /// Also sets `key` to `value` for every program run.
    /// Never writes the rules over netlink: the iptables programs install them
    /// ([`crate::policy::FIREWALL_ENV`]).
    pub fn without_netlink(mut self) -> Self {
        self.netlink = false;
        self
    }

    pub fn with_env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    fn spawn(&self, cmd: &Cmd<'_>) -> io::Result<Child> {
        let path = self
            .trust
            .find_program(cmd.program)
            .map_err(io::Error::other)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "not found"))?;
        let stdin = if cmd.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        };
        Command::new(&path)
            .arg0(cmd.program)
            .args(cmd.args)
            .env_clear()
            .env("PATH", SYSTEM_PATH)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir("/")
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
    }

    fn finish(
        &self,
        cmd: &Cmd<'_>,
        child: io::Result<Child>,
        started: Instant,
    ) -> io::Result<Output> {
        let mut child = child?;
        if let (Some(text), Some(mut pipe)) = (cmd.stdin, child.stdin.take()) {
            // Dropping the pipe afterwards closes it, so the child sees end of input.
            pipe.write_all(text.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        if self.log.debug {
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            self.log.debug(&format!(
                "ran {} {} in {ms:.1} ms",
                cmd.program,
                cmd.args.join(" ")
            ));
        }
        Ok(Output {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

impl CommandRunner for SystemRunner {
    fn exists(&self, program: &str) -> Result<bool, TrustError> {
        self.trust.find_program(program).map(|p| p.is_some())
    }

    fn exist(&self, programs: &[&str]) -> Result<Vec<bool>, TrustError> {
        self.trust
            .find_programs(programs)
            .into_iter()
            .map(|p| p.map(|p| p.is_some()))
            .collect()
    }

    fn netlink_here(&self) -> bool {
        self.netlink
    }

    fn run(&self, program: &str, args: &[&str], stdin: Option<&str>) -> io::Result<Output> {
        let cmd = Cmd {
            program,
            args,
            stdin,
        };
        let started = Instant::now();
        self.finish(&cmd, self.spawn(&cmd), started)
    }

    /// One scoped thread per sequence after the first (the caller runs the first); all are
    /// joined before this returns, so the process is single-threaded again afterwards.
    fn run_sequences(&self, seqs: &[&[Cmd<'_>]]) -> Vec<Vec<io::Result<Output>>> {
        let run_seq = |seq: &[Cmd<'_>]| -> Vec<io::Result<Output>> {
            seq.iter()
                .map(|c| self.run(c.program, c.args, c.stdin))
                .collect()
        };
        std::thread::scope(|scope| {
            let others: Vec<_> = seqs
                .iter()
                .skip(1)
                .map(|seq| scope.spawn(move || run_seq(seq)))
                .collect();
            let first = seqs.first().map(|seq| run_seq(seq));
            first
                .into_iter()
                .chain(others.into_iter().map(|h| {
                    h.join()
                        .unwrap_or_else(|_| vec![Err(io::Error::other("runner thread panicked"))])
                }))
                .collect()
        })
    }

    /// Starts every command first, then feeds and collects them in order. Safe from pipe
    /// deadlocks: a child blocked on a full stdout pipe only waits for us to reach it, and
    /// none of them waits for another.
    fn run_all(&self, cmds: &[Cmd<'_>]) -> Vec<io::Result<Output>> {
        let started = Instant::now();
        let children: Vec<io::Result<Child>> = cmds.iter().map(|c| self.spawn(c)).collect();
        cmds.iter()
            .zip(children)
            .map(|(cmd, child)| self.finish(cmd, child, started))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{symlink, PermissionsExt};
    use std::path::Path;

    #[test]
    fn system_runner_runs_sequences_side_by_side_in_order() {
        let runner = SystemRunner::new(Log::default());
        let cat = |text| Cmd {
            program: "cat",
            args: &[],
            stdin: Some(text),
        };
        let (a, b, c) = (cat("a"), cat("b"), cat("c"));
        let seqs: [&[Cmd<'_>]; 2] = [&[a, b], &[c]];
        let out: Vec<Vec<String>> = runner
            .run_sequences(&seqs)
            .into_iter()
            .map(|seq| seq.into_iter().map(|r| r.expect("cat").stdout).collect())
            .collect();
        assert_eq!(out, [vec!["a", "b"], vec!["c"]]);
    }

    #[test]
    fn system_runner_reports_missing_programs() {
        let runner = SystemRunner::new(Log::default());
        let e = runner
            .run("no-such-program-jailoc", &[], None)
            .expect_err("missing");
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(!runner.exists("no-such-program-jailoc").expect("no error"));
        let out = runner.run("cat", &[], Some("hello")).expect("cat");
        assert!(out.success);
        assert_eq!(out.stdout, "hello");
    }

    /// A stand-in `/` holding `/usr/bin/report`, a symlink to a script that prints its working
    /// directory, environment and stdin.
    fn fake_root() -> (tempfile::TempDir, SystemRunner) {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let bin = dir.path().join("usr/bin");
        fs::create_dir_all(&bin).expect("mkdir");
        fs::set_permissions(dir.path().join("usr"), fs::Permissions::from_mode(0o755))
            .expect("chmod");
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).expect("chmod");
        let script = bin.join("multi");
        fs::write(
            &script,
            "#!/bin/sh\necho \"cwd=$(pwd)\"\nenv | sort\nread -r line || line=none\necho \"stdin=$line\"\n",
        )
        .expect("write");
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod");
        symlink("multi", bin.join("report")).expect("ln");
        let me = std::os::unix::fs::MetadataExt::uid(&fs::metadata("/proc/self").expect("proc"));
        let runner = SystemRunner::with_trust(Trust::within(dir.path(), me), Log::default());
        (dir, runner)
    }

    #[test]
    fn a_program_runs_in_root_dir_with_only_the_fixed_path() {
        let (_dir, runner) = fake_root();
        // Whatever this test process has in its environment, the child sees none of it.
        let out = runner.run("report", &[], None).expect("run");
        assert!(out.success, "{}", out.stderr);
        assert_eq!(
            out.stdout,
            "cwd=/\nPATH=/usr/sbin:/usr/bin:/sbin:/bin\nPWD=/\nstdin=none\n"
        );
        let out = runner.run("report", &[], Some("payload\n")).expect("run");
        assert!(out.stdout.ends_with("stdin=payload\n"), "{}", out.stdout);
    }

    #[test]
    fn an_untrusted_program_is_not_run() {
        let (dir, runner) = fake_root();
        fs::set_permissions(
            dir.path().join("usr/bin/multi"),
            fs::Permissions::from_mode(0o777),
        )
        .expect("chmod");
        let e = runner.exists("report").expect_err("untrusted");
        assert_eq!(
            e.to_string(),
            "failed to trust /usr/bin/report: /usr/bin/multi on the way to it is writable by \
             group or others (mode 0777)"
        );
        let e = runner.run("report", &[], None).expect_err("not run");
        assert!(e.to_string().starts_with("failed to trust"), "{e}");
    }

    #[test]
    fn the_resolved_file_runs_with_the_program_name_as_argv0() {
        // Multi-call binaries (xtables-nft-multi) choose what to be by argv[0].
        let (dir, runner) = fake_root();
        let bin = dir.path().join("usr/bin");
        fs::copy(Path::new("/bin/cat"), bin.join("cat-multi")).expect("copy cat");
        symlink("cat-multi", bin.join("named")).expect("ln");
        let out = runner
            .run("named", &["/proc/self/cmdline"], None)
            .expect("run");
        assert_eq!(out.stdout, "named\0/proc/self/cmdline\0");
    }
}
