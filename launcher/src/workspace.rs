//! Workspace plumbing shared by the commands: loading (and first-use creation of) the config,
//! picking the workspace, where its files live, the password, and writing the generated files.

use std::path::{Path, PathBuf};

use crate::compose::{self, ComposeInput};
use crate::config::{self, schema::DEFAULT_WORKSPACE, Config, Workspace};
use crate::context::Context;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::{fsutil, image, policy};

/// The config file: `--config`, else `$XDG_CONFIG_HOME/jailoc/config.toml`.
pub fn config_path(ctx: &Context, explicit: Option<&Path>) -> PathBuf {
    match explicit {
        Some(p) if p.is_absolute() => p.to_path_buf(),
        Some(p) => ctx.cwd.join(p),
        None => ctx.config_dir().join("config.toml"),
    }
}

/// Loads the config, creating it with commented defaults on first use (only at the default
/// location: a missing `--config` file is an error, not something to create).
pub fn load_config(ctx: &mut Context, explicit: Option<&Path>) -> Result<Config> {
    let path = config_path(ctx, explicit);
    if explicit.is_none() && !path.exists() {
        fsutil::write_atomic(&path, config::defaults::DEFAULT_CONFIG.as_bytes(), 0o600)
            .map_err(|e| Error::file("create", &path, e))?;
        ctx.warn(&format!(
            "created {} with commented defaults",
            path.display()
        ));
    }
    Ok(config::load_file(&path, &ctx.home())?)
}

/// `-w NAME`, else the workspace with the longest path that contains the current directory
/// (by components), else `default`.
pub fn select(ctx: &Context, cfg: &Config, explicit: Option<&str>) -> String {
    if let Some(w) = explicit {
        return w.to_string();
    }
    let cwd = std::fs::canonicalize(&ctx.cwd).unwrap_or_else(|_| ctx.cwd.clone());
    let mut best: Option<(usize, &str)> = None;
    for (name, sec) in &cfg.workspaces {
        for p in sec.paths.iter().flatten() {
            if cwd.starts_with(&p.path) {
                let depth = p.path.components().count();
                if best.is_none_or(|(d, _)| depth > d) {
                    best = Some((depth, name));
                }
            }
        }
    }
    best.map(|(_, n)| n.to_string())
        .unwrap_or_else(|| DEFAULT_WORKSPACE.to_string())
}

/// Where a workspace's files live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Files {
    /// `$XDG_CONFIG_HOME/jailoc/workspaces/NAME/`, mounted read-only at `/etc/jailoc`.
    pub policy_dir: PathBuf,
    /// `$XDG_CACHE_HOME/jailoc/NAME/docker-compose.yml` (0600).
    pub compose_file: PathBuf,
    /// The user's optional `compose.override.yml` in the policy dir (a second `-f`).
    pub override_file: PathBuf,
    /// `$XDG_CONFIG_HOME/jailoc/passwords/NAME.env` (0600), an env file for compose.
    pub password_file: PathBuf,
}

/// The files of workspace `name`.
pub fn files(ctx: &Context, name: &str) -> Files {
    let policy_dir = ctx.config_dir().join("workspaces").join(name);
    Files {
        override_file: policy_dir.join("compose.override.yml"),
        policy_dir,
        compose_file: ctx.cache_dir().join(name).join("docker-compose.yml"),
        password_file: ctx
            .config_dir()
            .join("passwords")
            .join(format!("{name}.env")),
    }
}

impl Files {
    /// The `-f` arguments: the generated file, plus the override when it exists.
    pub fn compose_args(&self) -> Vec<PathBuf> {
        let mut v = vec![self.compose_file.clone()];
        if self.override_file.is_file() {
            v.push(self.override_file.clone());
        }
        v
    }
}

/// The compose project name.
pub fn project(name: &str) -> String {
    format!("jailoc-{name}")
}

/// The companion `sandbox-init`: `JAILOC_SANDBOX_INIT`, else next to the `jailoc` executable,
/// else on `PATH`.
pub fn find_sandbox_init(ctx: &Context) -> Result<PathBuf> {
    if let Some(p) = ctx.var("JAILOC_SANDBOX_INIT") {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(std::fs::canonicalize(&p).unwrap_or(p));
        }
        return Err(Error::NoSandboxInit {
            detail: format!("JAILOC_SANDBOX_INIT={} is not a file", p.display()),
        });
    }
    if let Some(dir) = &ctx.exe_dir {
        let p = dir.join("sandbox-init");
        if p.is_file() {
            return Ok(p);
        }
    }
    if let Some(path) = ctx.var("PATH") {
        for dir in std::env::split_paths(path) {
            let p = dir.join("sandbox-init");
            if p.is_file() {
                return Ok(std::fs::canonicalize(&p).unwrap_or(p));
            }
        }
    }
    let beside = ctx
        .exe_dir
        .as_ref()
        .map(|d| format!(" ({})", d.display()))
        .unwrap_or_default();
    Err(Error::NoSandboxInit {
        detail: format!(
            "it is not next to the jailoc executable{beside} nor on PATH, and JAILOC_SANDBOX_INIT is not set"
        ),
    })
}

/// The OpenCode server password: generated once (32 random bytes), kept in a 0600 env file.
/// Returns it; it is never put on a command line.
pub fn ensure_password(path: &Path) -> Result<String> {
    const KEY: &str = "OPENCODE_SERVER_PASSWORD=";
    if let Ok(text) = std::fs::read_to_string(path) {
        if let Some(pw) = text
            .lines()
            .find_map(|l| l.strip_prefix(KEY))
            .filter(|p| !p.is_empty())
        {
            if fsutil::mode_of(path).is_some_and(|m| m != 0o600) {
                fsutil::write_atomic(path, text.as_bytes(), 0o600)
                    .map_err(|e| Error::file("write", path, e))?;
            }
            return Ok(pw.to_string());
        }
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::Other(format!("failed to generate a password: {e}")))?;
    let pw: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    fsutil::write_atomic(path, format!("{KEY}{pw}\n").as_bytes(), 0o600)
        .map_err(|e| Error::file("write", path, e))?;
    Ok(pw)
}

/// What `prepare` produced.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub files: Files,
    pub image: String,
    /// The compose file's content changed (so a running project must be recreated).
    pub compose_changed: bool,
}

/// Checks what must exist on the host before anything runs: the workspace's paths (a missing
/// bind source would be created by the engine, as root), its secret files and the companion
/// sandbox-init. Returns sandbox-init's path.
pub fn check_inputs(ctx: &Context, ws: &Workspace) -> Result<PathBuf> {
    for p in &ws.paths {
        if !p.is_dir() {
            return Err(Error::Workspace {
                workspace: ws.name.clone(),
                message: format!("path {} does not exist or is not a directory", p.display()),
            });
        }
    }
    for (name, file) in &ws.secrets {
        if !file.is_file() {
            return Err(Error::Workspace {
                workspace: ws.name.clone(),
                message: format!("secret {name}: file {} does not exist", file.display()),
            });
        }
    }
    find_sandbox_init(ctx)
}

/// Checks the inputs, resolves (and if needed builds) the image, and writes the policy dir,
/// password file and compose file. The order matters: nothing is written before every check
/// passed, and the compose file (which `up` runs) comes last.
pub fn prepare(ctx: &mut Context, ws: &Workspace, engine: &Engine) -> Result<Prepared> {
    // 1. Inputs that must exist on the host.
    let sandbox_init = check_inputs(ctx, ws)?;
    // 2. The image (may build, streaming the engine's output).
    let image = image::ensure(ctx, engine, ws, &sandbox_init)?;
    // 3. Generated files.
    let files = files(ctx, &ws.name);
    policy::write_policy_dir(&files.policy_dir, ws)?;
    ensure_password(&files.password_file)?;
    let yaml = render_compose(ctx, ws, &files, &image, &sandbox_init);
    let compose_changed = fsutil::write_if_changed(&files.compose_file, yaml.as_bytes(), 0o600)
        .map_err(|e| Error::file("write", &files.compose_file, e))?;
    Ok(Prepared {
        files,
        image,
        compose_changed,
    })
}

/// Renders the compose file for `ws`, deciding the host-dependent optional mounts.
pub fn render_compose(
    ctx: &Context,
    ws: &Workspace,
    files: &Files,
    image: &str,
    sandbox_init: &Path,
) -> String {
    let oc_config = ctx.opencode_config_dir();
    let oc_data = ctx.opencode_data_dir();
    let gitconfig = ctx.home().join(".gitconfig");
    let ssh = ctx.var("SSH_AUTH_SOCK").map(PathBuf::from);
    let dind = ctx
        .var("JAILOC_DIND_IMAGE")
        .unwrap_or(compose::DEFAULT_DIND_IMAGE)
        .to_string();
    compose::render(&ComposeInput {
        ws,
        image,
        sandbox_init,
        policy_dir: &files.policy_dir,
        password_file: &files.password_file,
        opencode_config: oc_config.is_dir().then_some(oc_config.as_path()),
        opencode_data: oc_data.is_dir().then_some(oc_data.as_path()),
        gitconfig: (ws.git_config && gitconfig.is_file()).then_some(gitconfig.as_path()),
        // A socket that is gone would make the engine fail (or create a directory there).
        ssh_auth_sock: ssh.as_deref().filter(|p| ws.ssh_auth_sock && p.exists()),
        dind_image: &dind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_str;
    use crate::testutil::{context, tempdir, Recorder};

    #[test]
    fn nothing_runs_or_is_written_when_a_path_is_missing() {
        let dir = tempdir();
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        let rec = Recorder::default();
        let log = rec.0.clone();
        let (mut c, _, _) = context(&root, rec);
        let home = root.join("home");
        let cfg = parse_str(
            "[workspaces.app]\npaths = [\"~/src/missing\"]\n",
            &root.join("config.toml"),
            &home,
        )
        .expect("config");
        let ws = crate::config::resolve_workspace(&cfg, "app").expect("ws");
        let engine = Engine {
            compose: vec!["docker".into(), "compose".into()],
            cli: "docker".into(),
        };
        let err = prepare(&mut c, &ws, &engine).expect_err("missing path");
        assert_eq!(
            err.to_string(),
            format!(
                "failed to prepare workspace \"app\": path {}/src/missing does not exist or is not a directory",
                home.display()
            )
        );
        assert!(
            log.borrow().is_empty(),
            "nothing spawned: {:?}",
            log.borrow()
        );
        assert!(!home.join(".config/jailoc/workspaces/app").exists());
        assert!(!home.join(".cache/jailoc/app").exists());

        // With the path present: image inspect (the tag exists), then the files.
        std::fs::create_dir_all(home.join("src/missing")).expect("mkdir");
        let p = prepare(&mut c, &ws, &engine).expect("prepare");
        assert!(p.compose_changed);
        assert_eq!(log.borrow().len(), 1);
        assert!(log.borrow()[0].starts_with("docker image inspect --format {{.Id}} jailoc-base:"));
        assert!(p.files.compose_file.is_file());
        assert!(p.files.policy_dir.join("policy.toml").is_file());
        let again = prepare(&mut c, &ws, &engine).expect("prepare");
        assert!(!again.compose_changed, "unchanged config, unchanged file");
    }

    #[test]
    fn selection_prefers_the_deepest_path() {
        let dir = tempdir();
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        std::fs::create_dir_all(root.join("home/src/app/sub")).expect("mkdir");
        std::fs::create_dir_all(root.join("home/src/application")).expect("mkdir");
        let (mut c, _, _) = context(&root, Recorder::default());
        let cfg = parse_str(
            "[workspaces.outer]\npaths = [\"~/src\"]\n[workspaces.app]\npaths = [\"~/src/app\"]\n",
            &root.join("config.toml"),
            &root.join("home"),
        )
        .expect("config");
        c.cwd = root.join("home/src/app/sub");
        assert_eq!(select(&c, &cfg, None), "app");
        // By components, not by string prefix: ~/src/application is not inside ~/src/app.
        c.cwd = root.join("home/src/application");
        assert_eq!(select(&c, &cfg, None), "outer");
        c.cwd = root.clone();
        assert_eq!(select(&c, &cfg, None), "default");
        assert_eq!(select(&c, &cfg, Some("x")), "x");
    }
}
