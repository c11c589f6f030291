//! `prepare`: everything `up` does before it starts the engine, in a fixed order — check the
//! inputs, resolve the image, then write the generated files, the compose file last.

use super::checks::check_inputs;
use super::compose_file::render_compose;
use super::data_dir::prepare_data_dir;
use super::env::expand_env;
use super::files::{files, Files};
use super::mounts::{builtin_mounts, warn_writable_host_code};
use super::password::ensure_password;
use super::policy_dir::clean_policy_dir;
use super::secrets::write_secret_files;
use crate::compose::OneShot;
use crate::config::schema::PasswordMode;
use crate::config::Workspace;
use crate::context::Context;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::{fsutil, image, policy};

/// What `prepare` produced.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub files: Files,
    pub image: String,
    /// The compose file's content changed (so a running project must be recreated).
    pub compose_changed: bool,
    /// A `from_env` secret's value changed: the container must be recreated even though the
    /// compose file is the same (`up --force-recreate`).
    pub secrets_changed: bool,
    /// What the user configured in `policy.toml` or `secret-env` changed (an allowlist entry
    /// removed): sandbox-init reads them only at boot, so the container must be recreated too.
    pub policy_changed: bool,
}

/// Checks the inputs, resolves (and if needed builds) the image, and writes the policy dir,
/// password file and compose file. The order matters: nothing is written before every check
/// passed, and the compose file (which `up` runs) comes last.
pub fn prepare(ctx: &mut Context, ws: &Workspace, engine: &Engine) -> Result<Prepared> {
    let files = files(ctx, &ws.name);
    prepare_in(ctx, ws, engine, files, None)
}

/// [`prepare`] into the given files: a one-shot run (`jailoc run`, `one_shot`) writes its own
/// compose file, policy directory and secrets' copies, so it never touches the files `up`
/// compares to decide whether the workspace's server must be recreated; the override, password
/// file and OpenCode data directory stay the workspace's.
pub fn prepare_in(
    ctx: &mut Context,
    ws: &Workspace,
    engine: &Engine,
    files: Files,
    one_shot: Option<&OneShot>,
) -> Result<Prepared> {
    // 1. Inputs that must exist on the host.
    let sandbox_init = check_inputs(ctx, ws)?;
    // 2. The image (may build, streaming the engine's output).
    let image = image::ensure(ctx, engine, ws, &sandbox_init)?;
    // 3. Generated files.
    if ws.password_mode == PasswordMode::Keyring {
        ctx.warn(&format!(
            "warning: password_mode = \"keyring\": this jailoc has no OS keyring; the server password is stored like password_mode = \"file\", in {} (0600)",
            files.password_file.display()
        ));
    }
    warn_writable_host_code(ctx, ws);
    for w in builtin_mounts(ctx, ws).1 {
        ctx.warn(&w);
    }
    // The host's own addresses are walled off like the private ranges (contract B).
    let addrs = (ctx.host_addrs)().map_err(Error::HostAddrs)?;
    let mut policy_changed = policy::write_policy_dir(
        &files.policy_dir,
        ws,
        &crate::hostaddrs::blocked_networks(addrs),
    )?;
    // The directory is jailoc's alone: what sandbox-init reads must be exactly what `jailoc
    // config` shows. A file jailoc did not write there (the Go jailoc's `allowed-hosts`, which
    // sandbox-init would merge into the allowlist) goes, and the container is recreated so
    // that the rules it runs with lose it too.
    let removed = clean_policy_dir(&files)?;
    if !removed.is_empty() {
        ctx.warn(&format!(
            "removed from {}: {} (that directory is jailoc's alone: the container enforces exactly the policy `jailoc config` shows)",
            files.policy_dir.display(),
            removed.join(", ")
        ));
        policy_changed = true;
    }
    let secrets_changed = write_secret_files(ctx, ws, &files)?;
    prepare_data_dir(ctx, ws, &files)?;
    let tui_dir = crate::tui::dir(&ctx.data_dir());
    crate::tui::write(&tui_dir).map_err(|e| Error::file("write", &tui_dir, e))?;
    let (_, password_changed) = ensure_password(ctx, ws.password_mode, &files.password_file)?;
    let expanded = expand_env(ctx, ws)?;
    let yaml = render_compose(ctx, &expanded, &files, &image, &sandbox_init, one_shot);
    let compose_changed = fsutil::write_if_changed(&files.compose_file, yaml.as_bytes(), 0o600)
        .map_err(|e| Error::file("write", &files.compose_file, e))?
        || password_changed;
    Ok(Prepared {
        files,
        image,
        compose_changed,
        secrets_changed,
        policy_changed,
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
        // The host's own addresses (the context's fixed ones) are walled off, loopback not.
        let policy =
            std::fs::read_to_string(p.files.policy_dir.join("policy.toml")).expect("policy");
        assert!(
            policy.contains("\nblocked_networks = [\"203.0.113.7/32\", \"2001:db8::7/128\"]\n"),
            "{policy}"
        );
        let again = prepare(&mut c, &ws, &engine).expect("prepare");
        assert!(!again.compose_changed, "unchanged config, unchanged file");
    }
}
