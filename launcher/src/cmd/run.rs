//! `jailoc run [-w NAME] [--timeout DURATION] PROMPT...` and `jailoc run -- COMMAND...`: the
//! agent once, headless, in a one-shot container — the workspace's image, mounts, policy and
//! secrets, sandbox-init as PID 1 — with no server, no published port and no terminal, for CI.
//!
//! The container is its own compose project (`jailoc-NAME-run-ID`), rendered from the
//! workspace like `up`'s but into files of its own ([`workspace::prepare_in`]), so a run never
//! changes what `up` compares. The steps, in order:
//! 1. prepare the run's files (the image is built here if needed);
//! 2. `compose up --no-start` creates the network, volumes and container (the Docker-in-Docker
//!    sidecar, if any, is started);
//! 3. `compose start` runs it (docker-compose 1.29 connects a service's further networks, a
//!    compose override's, only here, not at `up --no-start`) and `CLI logs --follow` streams its
//!    output as it comes, from its first line, until it stops; `--timeout` and
//!    SIGINT/SIGTERM/SIGHUP stop the container instead;
//! 4. the exit code is the container's ([`opencode_events`] decides for OpenCode, whose own
//!    is 0 after many failures);
//! 5. the egress record is copied out of the stopped container;
//! 6. `compose down --volumes` and the run's files go, whatever happened before;
//! 7. the summary of the record is the last line on stderr.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cli::Cli;
use crate::compose::{OneShot, DIND_SERVICE, SERVICE};
use crate::config::{Use, Workspace};
use crate::context::Context;
use crate::engine::{self, run_checked, spawn_error, Engine};
use crate::error::{exit, Error, Result};
use crate::interrupt::{self, Interrupt};
use crate::opencode_events::Judge;
use crate::process::{Mode, Watched};
use crate::workspace::{self, Files};

/// How often a running run checks its timeout and the signals.
const WATCH_EVERY: Duration = Duration::from_millis(200);
/// How long the agent gets to end after SIGTERM when the run is stopped.
const STOP_GRACE_SECS: u32 = 5;

/// What runs in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    /// `opencode run --format json PROMPT`, judged by its events.
    OpenCode { prompt: String },
    /// Any command, whose exit code is the run's.
    Command(Vec<String>),
}

impl Job {
    /// The job of the command line: the words after `--`, else the prompt's words joined.
    pub fn of(prompt: &[String], command: &[String]) -> Job {
        if command.is_empty() {
            Job::OpenCode {
                prompt: prompt.join(" "),
            }
        } else {
            Job::Command(command.to_vec())
        }
    }

    /// The container's command (after sandbox-init's `--`).
    pub fn argv(&self) -> Vec<String> {
        match self {
            Job::OpenCode { prompt } => ["opencode", "run", "--format", "json", prompt]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            Job::Command(argv) => argv.clone(),
        }
    }
}

/// Runs `jailoc run`: notes stopping signals for the rest of the process, then [`run_with`].
pub fn run(ctx: &mut Context, cli: &Cli, job: &Job, timeout: Option<Duration>) -> Result<()> {
    let stop = Interrupt::install()
        .map_err(|e| Error::Other(format!("failed to catch Ctrl-C for the run: {e}")))?;
    run_with(ctx, cli, job, timeout, &stop)
}

/// [`run`] with the given signal flag (tests raise it themselves).
pub fn run_with(
    ctx: &mut Context,
    cli: &Cli,
    job: &Job,
    timeout: Option<Duration>,
    stop: &Interrupt,
) -> Result<()> {
    let (_, ws) = super::load(ctx, cli, Use::Start)?;
    let engine = engine::detect(ctx)?;
    let id = run_id()?;
    let run = OneShot {
        container_name: format!("{}-run-{id}", workspace::project(&ws.name)),
        command: job.argv(),
        owner: crate::runs::Owner::of_self(&ctx.proc_dir).label(),
    };
    let dir = ctx.cache_dir().join(&ws.name).join("runs").join(&id);
    let files = run_files(ctx, &ws.name, &dir);
    // 1. The run's files, the image.
    let prepared = workspace::prepare_in(ctx, &ws, &engine, files, Some(&run));
    let prepared = match prepared {
        Ok(p) => p,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
    };
    let project = run.container_name.clone();
    let compose_files = prepared.files.compose_args();
    // 2–5, then 6 whatever they did.
    let ended = started(
        ctx,
        &ws,
        &engine,
        &run,
        &compose_files,
        job,
        timeout,
        stop,
        &dir,
    );
    let down = engine.compose(
        &project,
        &compose_files,
        &["down", "--volumes", "--remove-orphans"],
    );
    if let Err(e) = run_checked(ctx, &down, Mode::Capture, "remove the run's container") {
        ctx.warn(&format!("warning: {e}"));
    }
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        ctx.warn(&format!("warning: failed to remove {}: {e}", dir.display()));
    }
    let (code, record) = ended?;
    // 7. The summary, last.
    if let Some(line) = record.and_then(|r| r.summary()) {
        ctx.warn(&line);
    }
    match code {
        0 => Ok(()),
        c => Err(Error::ChildExit(c)),
    }
}

/// Steps 2–5 of a run whose files are written: the exit code and the egress record (`None`
/// when there is none, or it could not be read: said on stderr).
#[allow(clippy::too_many_arguments)]
fn started(
    ctx: &mut Context,
    ws: &Workspace,
    engine: &Engine,
    run: &OneShot,
    compose_files: &[PathBuf],
    job: &Job,
    timeout: Option<Duration>,
    stop: &Interrupt,
    dir: &Path,
) -> Result<(i32, Option<crate::egress::Record>)> {
    let project = &run.container_name;
    let container = &run.container_name;
    // 2. Create; the sidecar runs before the agent looks for its daemon.
    let create = engine.compose(project, compose_files, &["up", "--no-start"]);
    run_checked(ctx, &create, Mode::Capture, "create the run's container")?;
    if ws.enable_docker {
        let sidecar = engine.compose(project, compose_files, &["start", DIND_SERVICE]);
        run_checked(
            ctx,
            &sidecar,
            Mode::Capture,
            "start the Docker-in-Docker sidecar",
        )?;
    }
    // 3. Run, watched.
    let start = engine.compose(project, compose_files, &["start", SERVICE]);
    run_checked(ctx, &start, Mode::Capture, "start the run's container")?;
    let started_at = Instant::now();
    let mut watch = || -> Option<String> {
        if let Some(sig) = stop.signal() {
            return Some(format!("stopped by {}", interrupt::name(sig)));
        }
        let limit = timeout?;
        (started_at.elapsed() >= limit)
            .then(|| format!("timed out after {}", crate::cli::show_duration(limit)))
    };
    let attach = engine::follow_logs_cmd(&engine.cli, container);
    let mut judge = Judge::default();
    let watched = match job {
        Job::OpenCode { .. } => {
            ctx.run_streamed(&attach, WATCH_EVERY, &mut |l| judge.line(l), &mut watch)
        }
        Job::Command(_) => ctx.run_watched(&attach, WATCH_EVERY, &mut watch),
    }
    .map_err(|e| spawn_error(&attach, e))?;
    // 4. The exit code.
    let code = match watched {
        Watched::Stopped(reason) => {
            let stop_cmd = engine::stop_cmd(&engine.cli, container, STOP_GRACE_SECS);
            let _ = ctx.run(&stop_cmd, Mode::Capture);
            ctx.warn(&format!("run {reason}: stopped its container"));
            match stop.signal() {
                Some(sig) => 128 + sig,
                None => exit::TIMEOUT,
            }
        }
        Watched::Exited(out) => {
            let code = container_exit_code(ctx, &engine.cli, container).unwrap_or(out.code);
            match (job, judge.verdict()) {
                (Job::OpenCode { .. }, Err(failure)) => {
                    ctx.warn(&format!("run failed: {failure}"));
                    if code == 0 {
                        1
                    } else {
                        code
                    }
                }
                _ => code,
            }
        }
    };
    // 5. The record, from the stopped container.
    let record = match super::egress::copy_record(ctx, &engine.cli, container, &dir.join("egress"))
    {
        Ok(r) => r,
        Err(e) => {
            ctx.warn(&format!("warning: {e}"));
            None
        }
    };
    Ok((code, record))
}

/// The exit code the engine recorded for the stopped `container`.
fn container_exit_code(ctx: &Context, cli: &str, container: &str) -> Option<i32> {
    let out = ctx
        .run(&engine::exit_code_cmd(cli, container), Mode::Capture)
        .ok()?;
    out.success()
        .then(|| out.stdout.trim().parse().ok())
        .flatten()
}

/// The run's own files in `dir`: compose file, policy directory and secrets' copies; the
/// workspace's override, password file and OpenCode data directory.
fn run_files(ctx: &Context, name: &str, dir: &Path) -> Files {
    let ws = workspace::files(ctx, name);
    Files {
        policy_dir: dir.join("policy"),
        compose_file: dir.join("docker-compose.yml"),
        override_file: ws.override_file,
        password_file: ws.password_file,
        secrets_dir: dir.join("secrets"),
        data_dir: ws.data_dir,
    }
}

/// Six random hex digits: the run's part of its project and container name.
fn run_id() -> Result<String> {
    let mut bytes = [0u8; 3];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::Other(format!("failed to draw a run id: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::{Cmd, Output, Runner};
    use crate::testutil::{context, Buf};
    use std::cell::RefCell;
    use std::rc::Rc;

    /// Plays the engine for one run: `logs --follow` prints `stdout` (or, under a watch that
    /// says stop, is stopped), `inspect` reports `code`, `cp` writes `record`; every command
    /// line is logged, and the compose file `up` creates the run from is kept.
    #[derive(Debug, Clone, Default)]
    struct Engine {
        log: Rc<RefCell<Vec<String>>>,
        compose_file: Rc<RefCell<String>>,
        stdout: &'static str,
        code: i32,
        record: Option<&'static str>,
    }

    impl Runner for Engine {
        fn run(&self, cmd: &Cmd, _: Mode) -> std::io::Result<Output> {
            let line = cmd.display();
            self.log.borrow_mut().push(line.clone());
            let mut out = Output::default();
            if cmd.args.iter().any(|a| a == "up") {
                let file = cmd.args.iter().skip_while(|a| *a != "-f").nth(1);
                *self.compose_file.borrow_mut() =
                    std::fs::read_to_string(file.expect("-f")).expect("compose file");
            }
            match cmd.args.first().map(String::as_str) {
                Some("logs") => out.stdout = self.stdout.into(),
                Some("inspect") => out.stdout = format!("{}\n", self.code),
                Some("cp") => match self.record {
                    Some(text) => {
                        let dir = Path::new(cmd.args.last().expect("dir"));
                        std::fs::write(dir.join("egress.jsonl"), text)?;
                    }
                    None => {
                        out.code = 1;
                        out.stderr = "Error response from daemon: Could not find the file".into();
                    }
                },
                _ => {}
            }
            Ok(out)
        }

        fn run_watched(
            &self,
            cmd: &Cmd,
            _: Duration,
            watch: &mut dyn FnMut() -> Option<String>,
        ) -> std::io::Result<Watched> {
            self.log.borrow_mut().push(cmd.display());
            Ok(match watch() {
                Some(reason) => Watched::Stopped(reason),
                None => Watched::Exited(Output::default()),
            })
        }
    }

    /// Runs `jailoc ARGS` for workspace `app` against `engine` with the signal flag `stop`;
    /// returns the result, stderr and the commands run, and checks nothing is left of the run's
    /// files.
    fn run_app(args: &[&str], engine: Engine, stop: &Interrupt) -> (Result<()>, Buf, Vec<String>) {
        let (_dir, root) = crate::testutil::app_home();
        let log = engine.log.clone();
        let (mut ctx, _, err) = context(&root, crate::testutil::Recorder::default());
        ctx.runner = Box::new(engine);
        ctx.proc_dir = "/proc".into();
        ctx.env
            .insert("JAILOC_COMPOSE".into(), "docker compose".into());
        let mut full = vec!["jailoc"];
        full.extend_from_slice(args);
        let cli = crate::cli::Cli::try_parse_from(full)
            .expect("args")
            .normalize()
            .expect("normal");
        let Some(crate::cli::Command::Run {
            timeout,
            prompt,
            command,
        }) = &cli.command
        else {
            panic!("not a run");
        };
        let result = run_with(&mut ctx, &cli, &Job::of(prompt, command), *timeout, stop);
        let runs = root.join("home/.cache/jailoc/app/runs");
        let left: Vec<_> = std::fs::read_dir(&runs)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "the run's files stayed: {left:?}");
        let log = log.borrow().clone();
        (result, err, log)
    }

    use clap::Parser as _;

    const ANSWERED: &str = "{\"type\":\"step_start\"}\n{\"type\":\"text\",\"part\":{\"text\":\"hi\"}}\n{\"type\":\"step_finish\",\"part\":{\"reason\":\"stop\"}}\n";
    const RECORD: &str = "{\"kind\":\"connection\",\"proto\":\"tcp\",\"dest\":\"169.254.169.254\",\"port\":80,\"reason\":\"cloud metadata\",\"count\":2,\"first\":\"a\",\"last\":\"b\"}\n";

    /// The steps in their order: create, run attached, exit code, record, down with volumes;
    /// the summary is the last line on stderr.
    #[test]
    fn a_run_creates_attaches_reads_the_record_and_removes_everything() {
        let engine = Engine {
            stdout: ANSWERED,
            record: Some(RECORD),
            ..Engine::default()
        };
        let (result, err, log) = run_app(
            &["run", "-w", "app", "say", "hi"],
            engine,
            &Interrupt::default(),
        );
        result.expect("success");
        let name = log[3].rsplit(' ').next().expect("container").to_string();
        assert!(
            name.starts_with("jailoc-app-run-") && name.len() == 21,
            "{name}"
        );
        let run_dir = log[1]
            .split(" -f ")
            .nth(1)
            .and_then(|f| f.strip_suffix("/docker-compose.yml up --no-start"))
            .expect("the run's compose file")
            .to_string();
        assert!(run_dir.ends_with(&format!("/.cache/jailoc/app/runs/{}", &name[15..])));
        let steps: Vec<String> = log[1..]
            .iter()
            .map(|l| l.replace(&run_dir, "RUN"))
            .collect();
        assert_eq!(
            steps,
            [
                format!("docker compose -p {name} -f RUN/docker-compose.yml up --no-start"),
                format!("docker compose -p {name} -f RUN/docker-compose.yml start opencode"),
                format!("docker logs --follow {name}"),
                format!("docker inspect --format {{{{.State.ExitCode}}}} {name}"),
                format!("docker cp {name}:/run/jailoc-egress/egress.jsonl RUN/egress"),
                format!("docker compose -p {name} -f RUN/docker-compose.yml down --volumes --remove-orphans"),
            ],
            "{log:#?}"
        );
        assert_eq!(
            err.text().lines().last(),
            Some("jailoc: blocked 1 connection: 169.254.169.254:80 (cloud metadata)")
        );
    }

    /// The run's container names this `jailoc run` as its owner, which reads as running while
    /// it runs: `jailoc down` leaves the run alone meanwhile.
    #[test]
    fn a_runs_container_names_its_live_owner() {
        let engine = Engine::default();
        let compose_file = engine.compose_file.clone();
        let (result, _, _) = run_app(
            &["run", "-w", "app", "--", "true"],
            engine,
            &Interrupt::default(),
        );
        result.expect("success");
        let text = compose_file.borrow().clone();
        let label = text
            .lines()
            .find_map(|l| l.strip_prefix("      dev.jailoc.run.owner: "))
            .and_then(|v| v.strip_prefix('"')?.strip_suffix('"'))
            .expect("an owner label")
            .to_string();
        assert_eq!(
            crate::runs::Owner::parse(&label).map(|o| o.pid),
            Some(std::process::id()),
            "{label}"
        );
        assert_eq!(
            crate::runs::liveness(&label, Path::new("/proc")),
            crate::runs::Liveness::Running(std::process::id())
        );
    }

    /// OpenCode exited 0 but never answered: the run fails, and says why.
    #[test]
    fn opencode_without_a_final_answer_fails_though_it_exited_0() {
        let engine = Engine {
            stdout: "{\"type\":\"step_start\"}\n",
            ..Engine::default()
        };
        let (result, err, _) = run_app(&["run", "-w", "app", "hi"], engine, &Interrupt::default());
        assert!(matches!(result, Err(Error::ChildExit(1))), "{result:?}");
        assert_eq!(
            err.text(),
            "jailoc: run failed: the session ended without a final answer (no step finished)\n"
        );
    }

    /// A command's own code passes through; Ctrl-C stops the container and is reported as
    /// 130, with the project still taken down.
    #[test]
    fn a_commands_code_passes_and_a_signal_stops_the_container() {
        let engine = Engine {
            code: 3,
            ..Engine::default()
        };
        let (result, _, _) = run_app(
            &["run", "-w", "app", "--", "sh", "-c", "exit 3"],
            engine,
            &Interrupt::default(),
        );
        assert!(matches!(result, Err(Error::ChildExit(3))), "{result:?}");

        let stop = Interrupt::default();
        stop.raise(libc::SIGINT);
        let (result, err, log) = run_app(
            &["run", "-w", "app", "--", "sleep", "600"],
            Engine::default(),
            &stop,
        );
        assert!(matches!(result, Err(Error::ChildExit(130))), "{result:?}");
        assert!(
            err.text()
                .starts_with("jailoc: run stopped by SIGINT: stopped its container\n"),
            "{}",
            err.text()
        );
        assert!(log
            .iter()
            .any(|l| l.starts_with("docker stop --time 5 jailoc-app-run-")));
        assert!(log
            .last()
            .expect("calls")
            .ends_with(" down --volumes --remove-orphans"));
    }
}
