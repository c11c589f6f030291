//! Bare `jailoc [PATH]`: resolve the workspace of PATH (default: the current directory),
//! offering to add it, bring the workspace up (which waits until it is healthy), and attach:
//! `opencode attach` on the host when it is installed and the port is published, else the same
//! inside the container as the agent. `--exec`/`--remote` choose, `-s ID`/`-c` continue a
//! session, and OpenCode opens PATH when it lies in the workspace (`--dir`). A watchdog ends
//! the attach, with a message, when the container stops or is replaced underneath it.

use std::path::{Path, PathBuf};

use crate::cli::Cli;
use crate::compose::{CONTAINER_PORT, ENTER, SERVICE};
use crate::config::merge::writable_overlap;
use crate::config::resolve_workspace;
use crate::config::schema::AttachMode;
use crate::config::Workspace;
use crate::context::Context;
use crate::engine::{self, parse_ps, ps_cmd, ContainerInfo, Engine};
use crate::error::{Error, Result};
use crate::process::{Cmd, Mode, Watched};
use crate::readiness;
use crate::workspace;

/// What the attach opens and continues (the Go jailoc's `--dir`, `--session`, `--continue`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttachOptions {
    /// The directory OpenCode opens: the target, when it lies in one of the workspace's paths
    /// (those exist at the same path in the container).
    pub dir: Option<PathBuf>,
    pub session: Option<String>,
    pub continue_session: bool,
}

impl AttachOptions {
    /// `opencode attach` arguments after the URL; `dir` is the form of the directory to pass.
    fn args(&self, dir: Option<String>) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(d) = dir {
            v.push("--dir".to_string());
            v.push(d);
        }
        if let Some(s) = &self.session {
            v.push("--session".into());
            v.push(s.clone());
        }
        if self.continue_session {
            v.push("--continue".into());
        }
        v
    }
}

/// Runs bare `jailoc`.
pub fn run(ctx: &mut Context, cli: &Cli) -> Result<()> {
    let target = target_dir(ctx, cli.path.as_deref())?;
    let mut cfg = workspace::load_config(ctx, cli.config.as_deref())?;
    let mut name = workspace::select_for(&cfg, cli.workspace.as_deref(), &target);
    let known = cfg
        .workspaces
        .values()
        .flat_map(|s| s.paths.iter().flatten().chain(&s.refused_paths))
        .any(|p| target.starts_with(&p.path));
    if cli.workspace.is_none() && !known && ctx.interactive {
        let dir = target.to_string_lossy().into_owned();
        let q = format!("{dir} is in no workspace; add it to workspace {name:?}?");
        if ctx.confirm(&q) {
            let file = cfg.file.clone();
            super::add::add(ctx, &file, &name, &dir)?;
            cfg = workspace::load_config(ctx, cli.config.as_deref())?;
            name = workspace::select_for(&cfg, None, &target);
        }
    }
    let ws = resolve_workspace(&cfg, &name)?;
    workspace::check_inputs(ctx, &ws)?;
    // Decide how to attach before starting anything, so a mode that cannot work fails early.
    let remote = remote_program(ctx, cli, &ws)?;
    let engine = engine::detect(ctx)?;
    let started = super::up::start(ctx, &ws, &engine)?;
    let opts = AttachOptions {
        dir: ws
            .paths
            .iter()
            .any(|p| target.starts_with(p))
            .then(|| target.clone()),
        session: cli.session.clone(),
        continue_session: cli.continue_session,
    };
    let cmd = match remote {
        Some(program) => {
            let (password, _) = workspace::ensure_password(
                ctx,
                ws.password_mode,
                &started.prepared.files.password_file,
            )?;
            remote_attach_cmd(ctx, &program, &ws, password, &opts)?
        }
        None => exec_attach_cmd(ctx, &engine, &ws, &opts)?,
    };
    watched(ctx, &engine, &ws.name, &started.agent, &cmd)
}

/// The directory bare `jailoc` opens: PATH (`~` expanded, relative to the current directory),
/// which must be an existing directory, else the current directory.
fn target_dir(ctx: &Context, path: Option<&Path>) -> Result<PathBuf> {
    let Some(p) = path else {
        return Ok(std::fs::canonicalize(&ctx.cwd).unwrap_or_else(|_| ctx.cwd.clone()));
    };
    let raw = p.to_string_lossy();
    let expanded = match raw.strip_prefix('~') {
        Some("") => ctx.home(),
        Some(rest) if rest.starts_with('/') => ctx.home().join(rest.trim_start_matches('/')),
        _ => ctx.cwd.join(p),
    };
    match std::fs::canonicalize(&expanded) {
        Ok(dir) if dir.is_dir() => Ok(dir),
        Ok(_) => Err(Error::Usage(format!("{raw:?} is not a directory"))),
        Err(_) => Err(Error::Usage(format!(
            "{raw:?} is neither a directory nor a command (see `jailoc --help`)"
        ))),
    }
}

/// The host's OpenCode client to attach with, or `None` to attach inside the container: the
/// `--exec`/`--remote` flags, else the configured `mode`, else remote when a host client exists
/// and the port is published. A remote attach that cannot work (no client, no published port,
/// the client's own configuration within an agent's reach) is an error when asked for with
/// `--remote` or the top-level `mode` (as in the Go jailoc, which ignores a workspace's
/// `mode`); a workspace's or `[defaults]`' `mode = "remote"` falls back to exec with a warning.
fn remote_program(ctx: &mut Context, cli: &Cli, ws: &Workspace) -> Result<Option<String>> {
    let requested = if cli.exec {
        Some(AttachMode::Exec)
    } else if cli.remote {
        Some(AttachMode::Remote)
    } else {
        ws.mode
    };
    let asked = match requested {
        Some(AttachMode::Exec) => return Ok(None),
        Some(AttachMode::Remote) => true,
        None => false,
    };
    let strict = cli.remote || (asked && !ws.mode_per_workspace);
    let how = if cli.remote {
        "--remote"
    } else {
        "mode = \"remote\""
    };
    let refuse = |message: String| Error::Workspace {
        workspace: ws.name.clone(),
        message,
    };
    let fallback = |ctx: &mut Context, why: String| {
        if asked {
            ctx.warn(&format!("warning: attaching inside the container: {why}"));
        }
        Ok(None)
    };
    if !ws.expose_port {
        let why = format!("{how} attaches to the published port, but expose_port = false");
        if cli.remote {
            return Err(refuse(format!(
                "{why}: attach with --exec or expose the port"
            )));
        }
        return fallback(ctx, why);
    }
    let Some(program) = host_opencode(ctx) else {
        let why = format!("{how} needs opencode (or opencode-cli) on the host's PATH");
        if strict {
            return Err(refuse(format!(
                "{why}: install it, or set mode = \"exec\" to attach inside the container"
            )));
        }
        return fallback(ctx, why);
    };
    // The host's OpenCode loads plugins from its own configuration (`tui.json`, plugin
    // directories) whatever its working directory: if a container can write any of it, an
    // attach from the host would run the agent's code there. Attach inside the container then.
    if let Some(why) = host_config_in_reach(ctx) {
        if strict {
            return Err(refuse(format!(
                "{how} would start your OpenCode on the host, which loads plugins from {why}: the agent could plant one; move that configuration out of the workspace, or set mode = \"exec\""
            )));
        }
        ctx.warn(&format!(
            "warning: attaching inside the container, not with your host's OpenCode: it loads plugins from {why}, where the agent could plant one"
        ));
        return Ok(None);
    }
    if let Some(p) = ctx.find_program(&program, None) {
        // The host runs it with the user's rights: not from a directory the agent writes.
        ctx.check_not_writable(&p)
            .map_err(|e| refuse(e.to_string()))?;
    }
    Ok(Some(program))
}

/// Runs the attach with the watchdog: every [`readiness::POLL`] the engine is asked about the
/// workspace's agent, and the attach ends when `agent` stopped or was replaced. An attach that
/// ends by itself passes its exit code through, unless its container is gone (an exec session
/// ends with its container): then the same message.
fn watched(
    ctx: &mut Context,
    engine: &Engine,
    name: &str,
    agent: &ContainerInfo,
    cmd: &Cmd,
) -> Result<()> {
    let ps = ps_cmd(&engine.cli, Some(name));
    let check = |ctx: &Context| -> Option<String> {
        let out = ctx.run(&ps, Mode::Capture).ok().filter(|o| o.success())?;
        let containers: Vec<ContainerInfo> = parse_ps(&out.stdout)
            .into_iter()
            .filter(|c| c.workspace == name)
            .collect();
        readiness::attach_over(&containers, agent)
    };
    let outcome = {
        let shared: &Context = ctx;
        shared
            .run_watched(cmd, readiness::POLL * 2, &mut || check(shared))
            .map_err(|e| engine::spawn_error(cmd, e))?
    };
    let reason = match outcome {
        Watched::Stopped(reason) => reason,
        Watched::Exited(out) if out.code == 0 => return Ok(()),
        Watched::Exited(out) => match check(ctx) {
            Some(reason) => reason,
            None => return Err(Error::ChildExit(out.code)),
        },
    };
    Err(Error::AttachEnded {
        workspace: name.to_string(),
        reason: format!("{reason} (see `jailoc status {name}` and `jailoc logs {name}`)"),
    })
}

/// Tells OpenCode to load no project configuration (`opencode.json`, `tui.json`, `.opencode/`)
/// from its directory or above; OpenCode 1.18.33 knows it.
pub const DISABLE_PROJECT_CONFIG: &str = "OPENCODE_DISABLE_PROJECT_CONFIG";

/// Names an extra TUI config file; OpenCode 1.18.33 merges it over the user's own `tui.json`
/// (jailoc's sidebar plugin, [`crate::tui`]).
pub const TUI_CONFIG: &str = "OPENCODE_TUI_CONFIG";

/// The host's `opencode attach`. It runs on the host, with the user's rights, and its TUI
/// loads `tui.json` / `.opencode/tui.json` plugins from its directory upward: started in the
/// project (which the agent writes), an agent-planted plugin ran on the host. So it runs in
/// jailoc's private empty directory with [`DISABLE_PROJECT_CONFIG`] set, and `--dir` never
/// names a directory that exists on the host (see [`host_dir_arg`]). jailoc's sidebar plugin
/// comes from jailoc's own data directory ([`TUI_CONFIG`]). The password travels in the
/// environment, never on the command line.
pub fn remote_attach_cmd(
    ctx: &Context,
    program: &str,
    ws: &Workspace,
    password: String,
    opts: &AttachOptions,
) -> Result<Cmd> {
    let cwd = ctx
        .private_cwd()
        .map_err(|e| Error::file("create", ctx.dirs().private_cwd(), e))?;
    let mut args = vec![
        "attach".to_string(),
        format!("http://127.0.0.1:{}", ws.port),
    ];
    args.extend(opts.args(opts.dir.as_deref().map(|d| host_dir_arg(&cwd, d))));
    let mut cmd = Cmd::new(program, args);
    cmd.cwd = Some(cwd);
    cmd.env.push((DISABLE_PROJECT_CONFIG.into(), "1".into()));
    cmd.env.push((workspace::PASSWORD_VAR.into(), password));
    let tui = crate::tui::dir(&ctx.data_dir()).join(crate::tui::HOST_CONFIG);
    cmd.env
        .push((TUI_CONFIG.into(), tui.to_string_lossy().into_owned()));
    cmd.env.push(("JAILOC".into(), "1".into()));
    cmd.env.push(("JAILOC_WORKSPACE".into(), ws.name.clone()));
    cmd.env
        .push(("JAILOC_EGRESS".into(), ws.egress.as_str().into()));
    Ok(cmd)
}

/// The `--dir` argument of the host's attach for directory `dir`: a path that does not exist on
/// the host but means `dir` once normalised — `EMPTY/absent/../../..(to /)` + `dir`, where EMPTY
/// is jailoc's private empty directory (checked empty before every run; 0700, on the deny-list,
/// so no agent can create `absent` in it). OpenCode 1.18.33's attach does `chdir(--dir)` on the
/// host and, when that fails, hands the path to the server as it is; the server normalises it to
/// `dir`, which exists in the container. A plain `--dir PROJECT` would make the host's TUI load
/// `PROJECT/tui.json` again (measured with the vendored 1.18.33, docs/launcher.md).
pub fn host_dir_arg(empty: &Path, dir: &Path) -> String {
    let up = empty.components().count();
    let mut s = empty.join("absent").to_string_lossy().into_owned();
    for _ in 0..up {
        s.push_str("/..");
    }
    s.push_str(&dir.to_string_lossy());
    s
}

/// The terminal settings an exec attach needs, as the Go jailoc passes them: `TERM`,
/// `COLORTERM` and `LANG` from the user's environment, with its defaults (`truecolor`,
/// `C.UTF-8`) when unset.
fn terminal_env(ctx: &Context) -> Vec<(String, String)> {
    let mut v = Vec::new();
    for (key, default) in [
        ("TERM", None),
        ("COLORTERM", Some("truecolor")),
        ("LANG", Some("C.UTF-8")),
    ] {
        if let Some(value) = ctx.var(key).or(default) {
            v.push((key.to_string(), value.to_string()));
        }
    }
    v
}

/// The exec attach: `compose exec --user 0:0 [-e K=V]... opencode sandbox-init --enter --
/// opencode attach http://127.0.0.1:4096 [--dir DIR] [--session ID | --continue]`. It runs
/// inside the container as the agent, so `--dir` is the directory itself (it exists there at
/// the same path); the sidebar plugin comes from jailoc's read-only mount.
pub fn exec_attach_cmd(
    ctx: &Context,
    engine: &Engine,
    ws: &Workspace,
    opts: &AttachOptions,
) -> Result<Cmd> {
    let files = workspace::files(ctx, &ws.name);
    if !files.compose_file.is_file() {
        return Err(Error::NotStarted {
            what: "attach".into(),
            workspace: ws.name.clone(),
        });
    }
    let mut env = terminal_env(ctx);
    env.push((
        TUI_CONFIG.into(),
        format!(
            "{}/{}",
            crate::tui::CONTAINER_DIR,
            crate::tui::CONTAINER_CONFIG
        ),
    ));
    env.push(("JAILOC_EGRESS".into(), ws.egress.as_str().into()));
    let mut args: Vec<String> = vec!["exec".into(), "--user".into(), "0:0".into()];
    if !ctx.interactive {
        args.push("-T".into());
    }
    for (k, v) in env {
        args.push("-e".into());
        args.push(format!("{k}={v}"));
    }
    args.push(SERVICE.into());
    args.extend(ENTER.iter().map(|s| s.to_string()));
    args.extend([
        "opencode".to_string(),
        "attach".into(),
        format!("http://127.0.0.1:{CONTAINER_PORT}"),
    ]);
    args.extend(
        opts.args(
            opts.dir
                .as_deref()
                .map(|d| d.to_string_lossy().into_owned()),
        ),
    );
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    Ok(engine.compose(&workspace::project(&ws.name), &files.compose_args(), &refs))
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
        // Inside the container, as the agent, with the terminal's settings, jailoc's sidebar
        // plugin from its read-only mount, and OpenCode opening the directory jailoc ran in.
        let last = log.last().expect("calls");
        assert!(
            last.ends_with(&format!(" exec --user 0:0 -e COLORTERM=truecolor -e LANG=C.UTF-8 -e OPENCODE_TUI_CONFIG=/usr/local/share/jailoc-tui/container.json -e JAILOC_EGRESS=open opencode /usr/local/bin/sandbox-init --config-dir /etc/jailoc --enter -- opencode attach http://127.0.0.1:4096 --dir {}", project.display())),
            "{last}"
        );
    }
}

#[cfg(test)]
mod dir_tests {
    use std::path::Path;

    /// The host attach's `--dir` does not exist on the host (the kernel stops at `absent`, in
    /// jailoc's private empty directory), yet normalises to the project: the server, which
    /// normalises it, opens the project, and the host's TUI never changes into it.
    #[test]
    fn attack_host_attach_dir_never_exists_on_the_host() {
        let tmp = crate::testutil::tempdir();
        let empty = tmp.path().join("empty");
        let project = tmp.path().join("proj");
        std::fs::create_dir_all(&empty).expect("mkdir");
        std::fs::create_dir_all(&project).expect("mkdir");
        let arg = super::host_dir_arg(&empty, &project);
        assert!(
            arg.starts_with(&format!("{}/absent/..", empty.display())),
            "{arg}"
        );
        // The same walk chdir(2) does, without changing this process's directory.
        assert!(std::fs::metadata(&arg).is_err(), "{arg} exists on the host");
        assert_eq!(
            crate::config::paths::normalize(Path::new(&arg)),
            project,
            "the server's normalisation gives the project"
        );
    }
}
