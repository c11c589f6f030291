//! Bare `jailoc`: resolve the workspace (offering to add the current directory), bring it up,
//! wait until it is healthy, and attach: `opencode attach` on the host when it is installed and
//! the port is published, else the same inside the container as UID 1000.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cli::Cli;
use crate::compose::{CONTAINER_PORT, SERVICE};
use crate::config::merge::writable_overlap;
use crate::config::resolve_workspace;
use crate::config::schema::AttachMode;
use crate::context::Context;
use crate::engine::{self, parse_ps, ps_cmd};
use crate::error::{Error, Result};
use crate::process::{Cmd, Mode};
use crate::workspace;

/// How long to wait for the server to turn healthy before attaching anyway.
const HEALTH_WAIT: Duration = Duration::from_secs(90);

/// Runs bare `jailoc`.
pub fn run(ctx: &mut Context, cli: &Cli) -> Result<()> {
    let mut cfg = workspace::load_config(ctx, cli.config.as_deref())?;
    let mut name = workspace::select(ctx, &cfg, cli.workspace.as_deref());
    let cwd_known = cfg
        .workspaces
        .values()
        .flat_map(|s| s.paths.iter().flatten())
        .any(|p| ctx.cwd.starts_with(&p.path));
    if cli.workspace.is_none() && !cwd_known && ctx.interactive {
        let cwd = ctx.cwd.to_string_lossy().into_owned();
        let q = format!("{cwd} is in no workspace; add it to workspace {name:?}?");
        if ctx.confirm(&q) {
            let file = cfg.file.clone();
            super::add::add(ctx, &file, &name, &cwd)?;
            cfg = workspace::load_config(ctx, cli.config.as_deref())?;
            name = workspace::select(ctx, &cfg, None);
        }
    }
    let ws = resolve_workspace(&cfg, &name)?;
    workspace::check_inputs(ctx, &ws)?;
    // Decide how to attach before starting anything, so a mode that cannot work fails early.
    let host_opencode = host_opencode(ctx);
    let remote = match ws.mode {
        Some(AttachMode::Exec) => None,
        Some(AttachMode::Remote) => {
            if !ws.expose_port {
                return Err(Error::Workspace {
                    workspace: ws.name.clone(),
                    message: "mode = \"remote\" attaches to the published port, but expose_port = false: set mode = \"exec\" or expose the port".into(),
                });
            }
            Some(host_opencode.ok_or_else(|| Error::Workspace {
                workspace: ws.name.clone(),
                message: "mode = \"remote\" needs opencode (or opencode-cli) on the host's PATH: install it, or set mode = \"exec\" to attach inside the container".into(),
            })?)
        }
        None => host_opencode.filter(|_| ws.expose_port),
    };
    // The host's OpenCode loads plugins from its own configuration (`tui.json`, plugin
    // directories) whatever its working directory: if a container can write any of it, an
    // attach from the host would run the agent's code there. Attach inside the container then.
    let remote = match remote.map(|p| (p, host_config_in_reach(ctx))) {
        Some((_, Some(why))) if ws.mode == Some(AttachMode::Remote) => {
            return Err(Error::Workspace {
                workspace: ws.name.clone(),
                message: format!(
                    "mode = \"remote\" would start your OpenCode on the host, which loads plugins from {why}: the agent could plant one; move that configuration out of the workspace, or set mode = \"exec\""
                ),
            });
        }
        Some((_, Some(why))) => {
            ctx.warn(&format!(
                "warning: attaching inside the container, not with your host's OpenCode: it loads plugins from {why}, where the agent could plant one"
            ));
            None
        }
        Some((program, None)) => Some(program),
        None => None,
    };
    if let Some(p) = remote.as_deref().and_then(|p| ctx.find_program(p, None)) {
        // The host runs it with the user's rights: not from a directory the agent writes.
        ctx.check_not_writable(&p).map_err(|e| Error::Workspace {
            workspace: ws.name.clone(),
            message: e.to_string(),
        })?;
    }
    let engine = engine::detect(ctx)?;
    let prepared = super::up::start(ctx, &ws, &engine)?;
    wait_healthy(ctx, &engine.cli, &ws.name);
    if let Some(program) = remote {
        let (password, _) =
            workspace::ensure_password(ctx, ws.password_mode, &prepared.files.password_file)?;
        let cmd = remote_attach_cmd(ctx, &program, ws.port, password)?;
        return engine::run_passthrough(ctx, &cmd);
    }
    let url = format!("http://127.0.0.1:{CONTAINER_PORT}");
    super::shell::exec_as_agent(ctx, &engine, &ws.name, &["opencode", "attach", &url])
}

/// Tells OpenCode to load no project configuration (`opencode.json`, `tui.json`, `.opencode/`)
/// from its directory or above; OpenCode 1.18.33 knows it.
pub const DISABLE_PROJECT_CONFIG: &str = "OPENCODE_DISABLE_PROJECT_CONFIG";

/// The host's `opencode attach`. It runs on the host, with the user's rights, and its TUI
/// loads `tui.json` / `.opencode/tui.json` plugins from its directory upward: started in the
/// project (which the agent writes), an agent-planted plugin ran on the host. So it runs in
/// jailoc's private empty directory with [`DISABLE_PROJECT_CONFIG`] set, and gets no `--dir`:
/// OpenCode 1.18.33's `attach --dir D` does `chdir(D)` on the host when D exists there, and
/// workspace paths do exist on the host, at the same absolute path, so it would read the
/// project again. The session then runs in the server's own directory, the workspace's first
/// path (as before). The password travels in the environment, never on the command line.
pub fn remote_attach_cmd(ctx: &Context, program: &str, port: u16, password: String) -> Result<Cmd> {
    let mut cmd = Cmd::new(
        program,
        ["attach".to_string(), format!("http://127.0.0.1:{port}")],
    );
    cmd.cwd = Some(
        ctx.private_cwd()
            .map_err(|e| Error::file("create", ctx.dirs().private_cwd(), e))?,
    );
    cmd.env.push((DISABLE_PROJECT_CONFIG.into(), "1".into()));
    cmd.env.push((workspace::PASSWORD_VAR.into(), password));
    Ok(cmd)
}

/// Where the host's OpenCode reads configuration that can name plugins (its config directory,
/// `~/.opencode`, `$OPENCODE_CONFIG`, `$OPENCODE_CONFIG_DIR`, `$OPENCODE_TUI_CONFIG`, and each
/// entry directly in those directories), when one of them is in a path a container can write
/// or resolves through a symlink there (a `~/.config/opencode` kept in a dotfiles workspace):
/// a description of the first such place.
fn host_config_in_reach(ctx: &Context) -> Option<String> {
    let mut sources = vec![
        (
            "OpenCode's config directory".to_string(),
            ctx.opencode_config_dir(),
        ),
        ("~/.opencode".to_string(), ctx.home().join(".opencode")),
    ];
    for var in [
        "OPENCODE_CONFIG",
        "OPENCODE_CONFIG_DIR",
        "OPENCODE_TUI_CONFIG",
    ] {
        if let Some(v) = ctx.var(var).filter(|v| Path::new(v).is_absolute()) {
            sources.push((format!("${var}"), PathBuf::from(v)));
        }
    }
    for (what, source) in sources {
        let mut paths = vec![source.clone()];
        if let Ok(entries) = std::fs::read_dir(&source) {
            paths.extend(entries.flatten().map(|e| source.join(e.file_name())));
        }
        for path in paths {
            let hops = crate::fsutil::resolution(&path);
            let last = hops.len().saturating_sub(1);
            for (i, hop) in hops.iter().enumerate() {
                if let Some(w) = writable_overlap(&ctx.writable, hop, false) {
                    let how = if i == last { "to" } else { "through" };
                    return Some(format!(
                        "{} ({what}), which resolves {how} {}, inside {w}",
                        path.display(),
                        hop.display()
                    ));
                }
            }
        }
    }
    None
}

/// The host's OpenCode client, as the Go jailoc looks for it: `opencode`, else `opencode-cli`
/// on `PATH`.
fn host_opencode(ctx: &Context) -> Option<String> {
    let path = ctx.var("PATH")?;
    ["opencode", "opencode-cli"]
        .into_iter()
        .find(|name| std::env::split_paths(path).any(|d| d.join(name).is_file()))
        .map(str::to_string)
}

/// Polls the engine until the agent's health check passes (or gives up quietly). On Podman it
/// runs the check itself while it waits ([`engine::health_check_cmd`]).
fn wait_healthy(ctx: &mut Context, cli: &str, name: &str) {
    let start = Instant::now();
    let cmd = ps_cmd(cli, Some(name));
    while start.elapsed() < HEALTH_WAIT {
        let Ok(out) = ctx.run(&cmd, Mode::Capture) else {
            return;
        };
        let agent = parse_ps(&out.stdout)
            .into_iter()
            .find(|c| c.service == SERVICE);
        match agent.as_ref().map(|c| c.health.as_str()) {
            Some("healthy") | None | Some("") => return,
            Some("unhealthy") => {
                ctx.warn(&format!(
                    "workspace {name:?} is unhealthy; see `jailoc logs`"
                ));
                return;
            }
            _ => {
                if let Some(check) = agent
                    .as_ref()
                    .and_then(|c| engine::health_check_cmd(cli, &c.name))
                {
                    let _ = ctx.run(&check, Mode::Capture);
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::{context, tempdir, Recorder};

    #[test]
    fn offers_to_add_the_current_directory_then_starts_and_attaches() {
        let dir = tempdir();
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        let project = root.join("home/src/proj");
        std::fs::create_dir_all(&project).expect("mkdir");
        let rec = Recorder::default();
        let log = rec.0.clone();
        let (mut ctx, out, err) = context(&root, rec);
        ctx.cwd = project.clone();
        ctx.interactive = true;
        ctx.input = Box::new(std::io::Cursor::new(b"y\n".to_vec()));
        ctx.env
            .insert("JAILOC_COMPOSE".into(), "docker compose".into());
        let code = crate::run(["jailoc"], ctx);
        assert_eq!(code, 0, "stderr: {}", err.text());
        assert!(err.text().contains(&format!(
            "jailoc: {} is in no workspace; add it to workspace \"default\"? [y/N] ",
            project.display()
        )));
        let cfg =
            std::fs::read_to_string(root.join("home/.config/jailoc/config.toml")).expect("config");
        assert!(cfg.ends_with(&format!(
            "[workspaces.default]\npaths = [\"{}\"]\n",
            project.display()
        )));
        assert!(out
            .text()
            .contains("workspace \"default\" is up on http://127.0.0.1:4096"));
        let log = log.borrow();
        assert!(log.iter().any(|l| l.ends_with(" up -d --remove-orphans")));
        let last = log.last().expect("calls");
        assert!(
            last.contains(" exec --user 0:0 opencode /usr/local/bin/sandbox-init --config-dir /etc/jailoc --enter -- opencode attach http://127.0.0.1:4096"),
            "{last}"
        );
    }

    /// Podman without systemd never runs the health check on its own: while waiting, jailoc
    /// runs it (`podman healthcheck run`), and stops waiting once the engine reports healthy.
    #[test]
    fn waiting_for_health_runs_podmans_check_itself() {
        use crate::process::{Cmd, Mode, Output, Runner};
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
        super::wait_healthy(&mut ctx, "podman", "w");
        assert_eq!(
            *log.borrow(),
            [
                "podman ps -a --filter label=dev.jailoc.workspace=w --format '{{json .}}'",
                "podman healthcheck run jailoc-w-opencode-1",
                "podman ps -a --filter label=dev.jailoc.workspace=w --format '{{json .}}'",
            ]
        );
    }
}
