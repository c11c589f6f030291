//! `jailoc down [NAME] [--volumes]`: stop and remove the project's containers and network.
//! Volumes are kept unless `--volumes` asks for them, and then they are named first: a
//! workspace the Go jailoc started keeps its sessions in one (`opencode-data-NAME`).
//!
//! First it removes the workspace's one-shot runs that were left behind (their `jailoc run` was
//! killed), volumes and all as a run removes itself; a run whose `jailoc run` still runs, or
//! that cannot be told from here, is left alone ([`crate::runs`]).

use crate::cli::Cli;
use crate::config::Use;
use crate::context::Context;
use crate::engine::{self, run_checked, Engine};
use crate::error::Result;
use crate::gojailoc::{self, ComposeAuthor};
use crate::process::Mode;
use crate::runs::{self, Liveness};
use crate::workspace;

/// Runs `jailoc down`.
pub fn run(ctx: &mut Context, cli: &Cli, volumes: bool) -> Result<()> {
    let (_, ws) = super::load(ctx, cli, Use::Inspect)?;
    let engine = engine::detect(ctx)?;
    remove_left_runs(ctx, &ws.name, &engine)?;
    let kept = stop(ctx, &ws.name, &engine, volumes)?;
    if !kept.is_empty() {
        ctx.say(&format!(
            "kept {} volume{}: {} (`jailoc down --volumes {}` deletes them)",
            kept.len(),
            if kept.len() == 1 { "" } else { "s" },
            kept.join(", "),
            ws.name
        ));
    }
    Ok(())
}

/// Takes the project down if its compose file exists (else there is nothing to stop), whoever
/// wrote that file (this jailoc or the Go jailoc). `volumes` also deletes the project's named
/// volumes, each named on stderr first; without it they are kept, and returned. A Go-written
/// compose file is taken down with its own file, so its containers and network go and its
/// volumes stay.
pub fn stop(ctx: &mut Context, name: &str, engine: &Engine, volumes: bool) -> Result<Vec<String>> {
    let files = workspace::files(ctx, name);
    if !files.compose_file.is_file() {
        ctx.say(&format!(
            "workspace {name:?} was never started: nothing to stop"
        ));
        return Ok(Vec::new());
    }
    let project = workspace::project(name);
    let found = list_volumes(ctx, &engine.cli, &project);
    if gojailoc::compose_author(&files.compose_file) == ComposeAuthor::GoJailoc {
        // Its containers and networks go; its volumes (its sessions) stay, also with
        // --volumes: they are the Go jailoc's, and jailoc never wrote them.
        ctx.say(&format!(
            "workspace {name:?} was started by the Go jailoc ({}): stopping its containers, keeping its volumes",
            files.compose_file.display()
        ));
        gojailoc::take_down(ctx, &engine.cli, &project)?;
        workspace::remove_secret_files(&files)?;
        ctx.say(&format!("workspace {name:?} is down"));
        if !found.is_empty() {
            ctx.say(&format!(
                "kept the Go jailoc's volumes: {} (its sessions; `{} volume rm` deletes one you no longer need)",
                found.join(", "),
                engine.cli
            ));
        }
        return Ok(Vec::new());
    }
    let mut args = vec!["down", "--remove-orphans"];
    if volumes {
        args.push("--volumes");
        if !found.is_empty() {
            ctx.warn(&format!("deleting volumes: {}", found.join(", ")));
        }
    }
    let cmd = engine.compose(&project, &files.compose_args(), &args);
    run_checked(
        ctx,
        &cmd,
        Mode::Inherit,
        &format!("stop workspace {name:?}"),
    )?;
    workspace::remove_secret_files(&files)?;
    ctx.say(&format!("workspace {name:?} is down"));
    Ok(if volumes { Vec::new() } else { found })
}

/// Removes workspace `name`'s one-shot runs whose `jailoc run` is gone (a `kill -9`, a crash)
/// as the run would have: containers, networks and volumes, by their project's label (the
/// run's compose file may be gone), then the run's files. Says what it removed, and which runs
/// it left alone and why.
fn remove_left_runs(ctx: &mut Context, name: &str, engine: &Engine) -> Result<()> {
    let cmd = engine::runs_ps_cmd(&engine.cli, name);
    let out = run_checked(ctx, &cmd, Mode::Capture, "query the container engine")?;
    let found = runs::runs_of(&engine::parse_ps(&out.stdout), &ctx.proc_dir);
    // Each filter alone would do on Docker; some engines join two `label` filters with "or".
    for run in found.into_iter().filter(|r| r.workspace == name) {
        let project = &run.project;
        match &run.owner {
            Liveness::Running(pid) => {
                ctx.say(&format!(
                    "left run {project} alone: its `jailoc run` (pid {pid}) is still running"
                ));
                continue;
            }
            Liveness::Unknown(why) => {
                let by_hand = engine.compose(project, &[], &["down", "--volumes"]);
                ctx.say(&format!(
                    "left run {project} alone: {why} (`{}` removes it)",
                    by_hand.display()
                ));
                continue;
            }
            Liveness::Gone => {}
        }
        engine::take_down_project(ctx, &engine.cli, project, true)?;
        // Its files, where the run wrote them (`cmd::run`): only for a plain run id.
        let id = project
            .strip_prefix(&format!("{}-run-", workspace::project(name)))
            .filter(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric()));
        if let Some(id) = id {
            let dir = ctx.cache_dir().join(name).join("runs").join(id);
            match std::fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    ctx.warn(&format!("warning: failed to remove {}: {e}", dir.display()));
                }
                _ => {}
            }
        }
        ctx.say(&format!(
            "removed run {project}, left behind by a killed `jailoc run` (its containers, network and volumes)"
        ));
    }
    Ok(())
}

/// The project's named volumes (one engine query); none if the query fails (the engine's own
/// `down` will say what is wrong).
fn list_volumes(ctx: &Context, cli: &str, project: &str) -> Vec<String> {
    let cmd = engine::volume_ls_cmd(cli, project);
    match ctx.run(&cmd, Mode::Capture) {
        Ok(out) if out.success() => out
            .stdout
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::tests::{fake_proc, owner_label, run_container};
    use crate::testutil::{context, Recorder, Scripted};
    use clap::Parser as _;

    /// `jailoc down app` over three runs of `app`: one whose `jailoc run` was killed (its pid
    /// is gone) is removed with its network, volumes and files; one whose `jailoc run` still
    /// runs, and one started on another host, are left alone, each saying why.
    #[test]
    fn down_removes_the_runs_left_behind_and_only_those() {
        let (_dir, root) = crate::testutil::app_home();
        let runs_dir = root.join("home/.cache/jailoc/app/runs");
        for id in ["0a1b2c", "3d4e5f"] {
            std::fs::create_dir_all(runs_dir.join(id)).expect("mkdir");
            std::fs::write(runs_dir.join(id).join("docker-compose.yml"), "x").expect("write");
        }
        let (mut ctx, out, _) = context(&root, Recorder::default());
        ctx.proc_dir = fake_proc(&root, 4242, 9001);
        let ps = [
            run_container("0a1b2c", "running", &owner_label(4343, 9001)),
            run_container("3d4e5f", "running", &owner_label(4242, 9001)),
            run_container(
                "6a7b8c",
                "exited",
                "host=elsewhere pidns=pid:[7] pid=1 start=1",
            ),
        ]
        .concat();
        let filter = "--filter label=com.docker.compose.project=jailoc-app-run-0a1b2c";
        let engine = Scripted {
            answers: vec![
                ("docker ps -a --filter label=dev.jailoc.run ".into(), ps),
                (format!("docker ps -aq {filter}"), "c0a1b2c\n".into()),
                (format!("docker network ls -q {filter}"), "n1\n".into()),
                (
                    format!("docker volume ls -q {filter}"),
                    "jailoc-app-run-0a1b2c_jailoc-docker\n".into(),
                ),
            ],
            ..Scripted::default()
        };
        let log = engine.log.clone();
        ctx.runner = Box::new(engine);
        ctx.env
            .insert("JAILOC_COMPOSE".into(), "docker compose".into());
        let cli = crate::cli::Cli::try_parse_from(["jailoc", "down", "app"])
            .expect("args")
            .normalize()
            .expect("normal");
        run(&mut ctx, &cli, false).expect("down");
        assert_eq!(
            *log.borrow(),
            [
                "docker ps -a --filter label=dev.jailoc.run --filter label=dev.jailoc.workspace=app --format '{{json .}}'".to_string(),
                format!("docker ps -aq {filter}"),
                format!("docker network ls -q {filter}"),
                format!("docker volume ls -q {filter}"),
                "docker stop c0a1b2c".into(),
                "docker rm -v c0a1b2c".into(),
                "docker network rm n1".into(),
                "docker volume rm jailoc-app-run-0a1b2c_jailoc-docker".into(),
            ]
        );
        assert_eq!(
            out.text(),
            "removed run jailoc-app-run-0a1b2c, left behind by a killed `jailoc run` (its containers, network and volumes)\n\
             left run jailoc-app-run-3d4e5f alone: its `jailoc run` (pid 4242) is still running\n\
             left run jailoc-app-run-6a7b8c alone: it was started on host elsewhere (`docker compose -p jailoc-app-run-6a7b8c down --volumes` removes it)\n\
             workspace \"app\" was never started: nothing to stop\n"
        );
        assert!(!runs_dir.join("0a1b2c").exists());
        assert!(runs_dir.join("3d4e5f").exists());
    }
}
