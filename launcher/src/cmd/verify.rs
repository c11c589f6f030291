//! `jailoc verify [NAME] [--json]`: proves the walls of a running workspace from the inside.
//! It runs `sandbox-init --verify` in the agent's container (`compose exec --user 0:0`, as every
//! command jailoc runs there): sandbox-init checks the rules as root, drops to the agent exactly
//! as at boot and probes as the agent (docs/init.md, "--verify"). Its table or JSON streams to
//! the terminal and its exit code passes through: 0 when every check passed, 1 when one failed.

use crate::cli::Cli;
use crate::compose::{POLICY_TARGET, SANDBOX_INIT_TARGET, SERVICE};
use crate::context::Context;
use crate::engine::{self, Engine};
use crate::error::{Error, Result};
use crate::process::Cmd;
use crate::workspace;

/// Runs `jailoc verify`.
pub fn run(ctx: &mut Context, cli: &Cli, json: bool) -> Result<()> {
    let (_, ws) = super::load(ctx, cli, crate::config::Use::Inspect)?;
    let engine = engine::detect(ctx)?;
    let cmd = verify_cmd(ctx, &engine, &ws.name, json)?;
    // A stopped workspace has no walls to prove: say so, rather than the engine's error.
    if !super::up::is_running(ctx, &engine.cli, &ws.name)? {
        return Err(Error::NotRunning {
            what: "verify".into(),
            workspace: ws.name.clone(),
        });
    }
    engine::run_passthrough(ctx, &cmd)
}

/// `compose exec --user 0:0 -T opencode sandbox-init --config-dir /etc/jailoc --verify
/// [--json]`: root only until sandbox-init has checked the rules and dropped to the agent; no
/// terminal (the output is a table or JSON, also in CI).
pub fn verify_cmd(ctx: &Context, engine: &Engine, name: &str, json: bool) -> Result<Cmd> {
    let files = workspace::files(ctx, name);
    if !files.compose_file.is_file() {
        return Err(Error::NotStarted {
            what: "verify".into(),
            workspace: name.into(),
        });
    }
    let mut args = vec![
        "exec",
        "--user",
        "0:0",
        "-T",
        SERVICE,
        SANDBOX_INIT_TARGET,
        "--config-dir",
        POLICY_TARGET,
        "--verify",
    ];
    if json {
        args.push("--json");
    }
    Ok(engine.compose(&workspace::project(name), &files.compose_args(), &args))
}

#[cfg(test)]
mod tests {
    use crate::testutil::{context, tempdir, Recorder};

    /// A config with workspace `w` whose project directory exists.
    fn setup() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempdir();
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        let project = root.join("home/src/proj");
        std::fs::create_dir_all(&project).expect("mkdir");
        let cfg = root.join("home/.config/jailoc");
        std::fs::create_dir_all(&cfg).expect("mkdir");
        std::fs::write(
            cfg.join("config.toml"),
            format!("[workspaces.w]\npaths = [\"{}\"]\n", project.display()),
        )
        .expect("config");
        (dir, root)
    }

    #[test]
    fn verify_runs_sandbox_init_verify_in_the_running_container() {
        let (_dir, root) = setup();
        let compose = root.join("home/.cache/jailoc/w/docker-compose.yml");
        std::fs::create_dir_all(compose.parent().expect("parent")).expect("mkdir");
        std::fs::write(&compose, "services: {}\n").expect("compose");
        let rec = Recorder::default();
        let log = rec.0.clone();
        let (mut ctx, _, err) = context(&root, rec);
        ctx.env
            .insert("JAILOC_COMPOSE".into(), "docker compose".into());
        let code = crate::run(["jailoc", "verify", "w", "--json"], ctx);
        assert_eq!(code, 0, "stderr: {}", err.text());
        let log = log.borrow();
        let last = log.last().expect("calls");
        assert!(
            last.ends_with(
                " exec --user 0:0 -T opencode /usr/local/bin/sandbox-init --config-dir /etc/jailoc --verify --json"
            ),
            "{last}"
        );
        assert!(last.contains(" -p jailoc-w "), "{last}");
    }

    #[test]
    fn a_workspace_never_started_is_named() {
        let (_dir, root) = setup();
        let (mut ctx, _, err) = context(&root, Recorder::default());
        ctx.env
            .insert("JAILOC_COMPOSE".into(), "docker compose".into());
        let code = crate::run(["jailoc", "verify", "w"], ctx);
        assert_eq!(code, 3);
        assert!(
            err.text()
                .contains("failed to verify: workspace \"w\" was never started (run `jailoc up`)"),
            "{}",
            err.text()
        );
    }
}
