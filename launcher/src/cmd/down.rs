//! `jailoc down [NAME] [--volumes]`: stop and remove the project's containers and network.
//! Volumes are kept unless `--volumes` asks for them, and then they are named first: a
//! workspace the Go jailoc started keeps its sessions in one (`opencode-data-NAME`).

use crate::cli::Cli;
use crate::config::Use;
use crate::context::Context;
use crate::engine::{self, run_checked, Engine};
use crate::error::Result;
use crate::gojailoc::{self, ComposeAuthor};
use crate::process::Mode;
use crate::workspace;

/// Runs `jailoc down`.
pub fn run(ctx: &mut Context, cli: &Cli, volumes: bool) -> Result<()> {
    let (_, ws) = super::load(ctx, cli, Use::Inspect)?;
    let engine = engine::detect(ctx)?;
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
