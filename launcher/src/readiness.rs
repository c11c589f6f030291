//! Whether a workspace's agent is up: `up` waits (bounded) until sandbox-init has started the
//! agent and the engine reports the server healthy, and fails with the reason — the meaning of
//! sandbox-init's exit code ([`exit_codes::meaning`], the contract's table) and the container's
//! last log lines — when the container exits or restarts instead. The attach's watchdog uses
//! the same query to end an attach whose container stopped or was replaced underneath it.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::compose::SERVICE;
use crate::context::Context;
use crate::engine::{self, parse_ps, ps_cmd, ContainerInfo, Engine};
use crate::error::{Error, Result};
use crate::process::Mode;
use crate::workspace;
use jailoc_policy::exit_codes;

/// How long `up` waits for the server to become healthy. The health check's own schedule
/// (`start_period` 60 s, then 5 failures 3 s apart) marks a server that never answers
/// unhealthy within about 75 s, so this bound is only reached when the engine reports nothing.
pub const HEALTH_WAIT: Duration = Duration::from_secs(120);

/// How often the engine is asked while waiting, and while an attach is watched.
pub const POLL: Duration = Duration::from_millis(500);

/// How many of the container's last log lines a failure shows.
pub const LOG_LINES: u32 = 20;

/// What one look at the workspace's agent container says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Running and healthy (or the engine reports no health: nothing more to wait for).
    Ready,
    /// Starting: keep waiting.
    Waiting,
    /// It will not become healthy: why.
    Failed(String),
}

/// Judges the agent container among `containers` (one `ps` of the workspace).
pub fn judge(containers: &[ContainerInfo]) -> Verdict {
    let agents: Vec<&ContainerInfo> = containers.iter().filter(|c| c.service == SERVICE).collect();
    let Some(c) = agents
        .iter()
        .find(|c| c.state == "running")
        .or_else(|| agents.first())
    else {
        return Verdict::Waiting;
    };
    let code = |c: &ContainerInfo| match c.exit_code() {
        Some(n) => format!("code {n}: {}", exit_codes::meaning(n)),
        None => "an unknown code".into(),
    };
    match (c.state.as_str(), c.health.as_str()) {
        ("running", "healthy" | "") => Verdict::Ready,
        ("running", "unhealthy") => {
            Verdict::Failed("the server inside does not answer its health check (unhealthy)".into())
        }
        ("restarting", _) => Verdict::Failed(format!(
            "its container keeps restarting; it last exited with {}",
            code(c)
        )),
        ("exited" | "dead", _) => Verdict::Failed(format!("its container exited with {}", code(c))),
        _ => Verdict::Waiting,
    }
}

/// Waits until the workspace's agent is healthy, polling the engine every `poll` for at most
/// `bound`; progress dots on stderr when on a terminal. Returns the healthy container (for the
/// attach's watchdog), or an error with the reason and the container's last log lines.
pub fn wait_healthy(
    ctx: &mut Context,
    engine: &Engine,
    name: &str,
    poll: Duration,
    bound: Duration,
) -> Result<ContainerInfo> {
    let start = Instant::now();
    let cmd = ps_cmd(&engine.cli, Some(name));
    let mut announced = false;
    let mut last_dot = Instant::now();
    let outcome = loop {
        let out = ctx
            .run(&cmd, Mode::Capture)
            .map_err(|e| engine::spawn_error(&cmd, e))?;
        let containers: Vec<ContainerInfo> = parse_ps(&out.stdout)
            .into_iter()
            .filter(|c| c.workspace == name)
            .collect();
        match judge(&containers) {
            Verdict::Ready => {
                let agent = containers
                    .into_iter()
                    .find(|c| c.service == SERVICE && c.state == "running")
                    .unwrap_or_default();
                break Ok(agent);
            }
            Verdict::Failed(why) => break Err(why),
            Verdict::Waiting => {}
        }
        if start.elapsed() >= bound {
            break Err(format!(
                "it did not become healthy within {} s",
                bound.as_secs()
            ));
        }
        // Podman without systemd runs no health check by itself: run it while waiting.
        if let Some(check) = containers
            .iter()
            .find(|c| c.service == SERVICE)
            .and_then(|c| engine::health_check_cmd(&engine.cli, &c.name))
        {
            let _ = ctx.run(&check, Mode::Capture);
        }
        if ctx.interactive {
            if !announced {
                let _ = write!(
                    ctx.err,
                    "jailoc: waiting for workspace {name:?} to become healthy "
                );
                announced = true;
            }
            if last_dot.elapsed() >= Duration::from_secs(2) {
                let _ = write!(ctx.err, ".");
                last_dot = Instant::now();
            }
            let _ = ctx.err.flush();
        }
        std::thread::sleep(poll);
    };
    if announced {
        let _ = writeln!(ctx.err);
    }
    outcome.map_err(|reason| Error::NotHealthy {
        workspace: name.to_string(),
        reason,
        logs: last_logs(ctx, engine, name),
    })
}

/// The agent container's last [`LOG_LINES`] log lines, indented, or a pointer to `jailoc logs`
/// when they cannot be read.
fn last_logs(ctx: &Context, engine: &Engine, name: &str) -> String {
    let files = workspace::files(ctx, name);
    let tail = LOG_LINES.to_string();
    let cmd = engine.compose(
        &workspace::project(name),
        &files.compose_args(),
        &["logs", "--no-color", "--tail", &tail, SERVICE],
    );
    match ctx.run(&cmd, Mode::Capture) {
        Ok(out) if out.success() && !out.stdout.trim().is_empty() => {
            let lines: String = out.stdout.lines().map(|l| format!("\n  | {l}")).collect();
            format!("; its last log lines:{lines}")
        }
        _ => format!("; see `jailoc logs {name}`"),
    }
}

/// Why an attach to `expected` must end, from one `ps` of the workspace: its container stopped,
/// was replaced (recreated by an `up` or `restart`), or turned unhealthy. `None` while it runs.
pub fn attach_over(containers: &[ContainerInfo], expected: &ContainerInfo) -> Option<String> {
    let running: Vec<&ContainerInfo> = containers
        .iter()
        .filter(|c| c.service == SERVICE && c.state == "running")
        .collect();
    let Some(current) = running.first() else {
        return Some("its container stopped".into());
    };
    if !expected.id.is_empty() && !running.iter().any(|c| c.id == expected.id) {
        return Some(format!(
            "its container was replaced (now {}): attach again",
            current.name
        ));
    }
    if current.health == "unhealthy" {
        return Some("the server inside stopped answering its health check".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(id: &str, state: &str, health: &str, status: &str) -> ContainerInfo {
        ContainerInfo {
            workspace: "w".into(),
            service: SERVICE.into(),
            state: state.into(),
            health: health.into(),
            id: id.into(),
            name: format!("jailoc-w-opencode-{id}"),
            status: status.into(),
            ..ContainerInfo::default()
        }
    }

    #[test]
    fn verdicts_and_exit_meanings() {
        assert_eq!(judge(&[]), Verdict::Waiting);
        assert_eq!(
            judge(&[agent(
                "a",
                "running",
                "starting",
                "Up 1 second (health: starting)"
            )]),
            Verdict::Waiting
        );
        assert_eq!(
            judge(&[agent("a", "running", "healthy", "Up 9 seconds (healthy)")]),
            Verdict::Ready
        );
        assert_eq!(
            judge(&[agent("a", "restarting", "", "Restarting (78) 1 second ago")]),
            Verdict::Failed("its container keeps restarting; it last exited with code 78: sandbox-init refused the policy in /etc/jailoc (the log names the file, line and entry)".into())
        );
        assert_eq!(
            judge(&[agent("a", "exited", "", "Exited (71) 2 seconds ago")]),
            Verdict::Failed("its container exited with code 71: sandbox-init could not set up the firewall or drop privileges (no iptables backend, a failed restore or read-back, missing capabilities, an unreadable secret)".into())
        );
        assert_eq!(
            exit_codes::meaning(127),
            "the agent (opencode) was not found in the image"
        );
        assert_eq!(exit_codes::meaning(143), "the agent died of signal 15");
        assert_eq!(
            exit_codes::meaning(3),
            "the agent (opencode serve) exited with code 3"
        );
    }

    #[test]
    fn an_attach_ends_when_its_container_stops_or_is_replaced() {
        let first = agent("a", "running", "healthy", "Up");
        assert_eq!(attach_over(std::slice::from_ref(&first), &first), None);
        assert_eq!(
            attach_over(&[agent("a", "exited", "", "Exited (143)")], &first),
            Some("its container stopped".into())
        );
        assert_eq!(
            attach_over(&[], &first),
            Some("its container stopped".into())
        );
        assert_eq!(
            attach_over(&[agent("b", "running", "healthy", "Up")], &first),
            Some("its container was replaced (now jailoc-w-opencode-b): attach again".into())
        );
        assert_eq!(
            attach_over(&[agent("a", "running", "unhealthy", "Up")], &first),
            Some("the server inside stopped answering its health check".into())
        );
    }

    /// Podman without systemd never runs the health check on its own: while waiting, jailoc
    /// runs it (`podman healthcheck run`), and stops waiting once the engine reports healthy.
    #[test]
    fn waiting_for_health_runs_podmans_check_itself() {
        use crate::process::{Cmd, Output, Runner};
        use crate::testutil::{context, tempdir, Recorder};
        use std::cell::RefCell;
        use std::rc::Rc;

        #[derive(Debug, Default)]
        struct Podman {
            log: Rc<RefCell<Vec<String>>>,
        }
        impl Runner for Podman {
            fn run(&self, cmd: &Cmd, _: Mode) -> std::io::Result<Output> {
                let line = cmd.display();
                let checked = self.log.borrow().iter().any(|l| l.contains("healthcheck"));
                self.log.borrow_mut().push(line.clone());
                let health = if checked { "healthy" } else { "starting" };
                let stdout = if line.starts_with("podman ps") {
                    format!(
                        "[{{\"Labels\":{{\"dev.jailoc.workspace\":\"w\",\"com.docker.compose.service\":\"opencode\"}},\"Names\":[\"jailoc-w-opencode-1\"],\"State\":\"running\",\"Status\":\"Up 1 second ago ({health})\"}}]"
                    )
                } else {
                    String::new()
                };
                Ok(Output {
                    stdout,
                    ..Output::default()
                })
            }
        }
        let dir = tempdir();
        let podman = Podman::default();
        let log = podman.log.clone();
        let (mut ctx, _, _) = context(dir.path(), Recorder::default());
        ctx.runner = Box::new(podman);
        let engine = Engine {
            compose: vec!["podman".into(), "compose".into()],
            cli: "podman".into(),
        };
        let agent =
            wait_healthy(&mut ctx, &engine, "w", Duration::ZERO, HEALTH_WAIT).expect("healthy");
        assert_eq!(agent.name, "jailoc-w-opencode-1");
        assert_eq!(
            *log.borrow(),
            [
                "podman ps -a --filter label=com.docker.compose.project=jailoc-w --format '{{json .}}'",
                "podman healthcheck run jailoc-w-opencode-1",
                "podman ps -a --filter label=com.docker.compose.project=jailoc-w --format '{{json .}}'",
            ]
        );
    }
}
