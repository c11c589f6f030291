//! The up-time checks of what must exist on the host before anything runs or is written: the
//! workspace's paths, its secrets' sources, `$SSH_AUTH_SOCK`, the password variable and the
//! companion sandbox-init.

use std::path::{Path, PathBuf};

use super::mounts::writable_hop;
use super::password::PASSWORD_VAR;
use super::sandbox_init::find_sandbox_init;
use super::secrets::{secret_error, unreadable_secret};
use crate::config::schema::{PasswordMode, SecretEntry, SecretSource};
use crate::config::Workspace;
use crate::context::Context;
use crate::error::{Error, Result};

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
    for secret in ws.secrets.values() {
        check_secret_source(ctx, ws, secret)?;
    }
    if let Some(sock) = ctx.var("SSH_AUTH_SOCK").filter(|_| ws.ssh_auth_sock) {
        // Mounted by path: the engine follows whatever it resolves to at `up`, through every
        // symlink on the way (one inside a writable path is the agent's to retarget).
        let real = std::fs::canonicalize(sock).unwrap_or_else(|_| PathBuf::from(sock));
        let refuse = |why: String| Error::Workspace {
            workspace: ws.name.clone(),
            message: format!("ssh_auth_sock: $SSH_AUTH_SOCK {sock}: {why}"),
        };
        if let Some(hop) = writable_hop(ws, Path::new(sock)) {
            return Err(refuse(format!(
                "{hop}, so that container's agent could replace it (with the engine's socket, say)"
            )));
        }
        crate::config::paths::check_host_path(sock, &real, &ctx.dirs()).map_err(refuse)?;
    }
    if ws.password_mode == PasswordMode::Env && ctx.var(PASSWORD_VAR).is_none() {
        return Err(Error::Workspace {
            workspace: ws.name.clone(),
            message: format!(
                "{}: password_mode: \"env\" needs {PASSWORD_VAR} set in the environment (export it, or use password_mode = \"auto\" or \"file\")",
                ws.config_file.display()
            ),
        });
    }
    // It runs as root (PID 1) in every container and goes into the built-in image.
    let sandbox_init = find_sandbox_init(ctx)?;
    ctx.check_not_writable(&sandbox_init)
        .map_err(|e| Error::Workspace {
            workspace: ws.name.clone(),
            message: e.to_string(),
        })?;
    Ok(sandbox_init)
}

/// Up-time checks of one secret's source: a `from_env` variable must be set and non-empty; a
/// `from_file` must be a regular file and not a symlink (its directory was resolved at load;
/// the file itself is never followed: a symlink there could point anywhere, `~/.ssh`
/// included). Errors name the config file, line, key and value.
fn check_secret_source(ctx: &Context, ws: &Workspace, secret: &SecretEntry) -> Result<()> {
    match &secret.source {
        SecretSource::HostEnv(var) => {
            if ctx.var(var).is_none() {
                return Err(secret_error(ws, secret, format!(
                    "from_env {var:?}: the host environment variable {var} is not set or empty (export it before `jailoc up`)"
                )));
            }
        }
        SecretSource::HostFile(hp) => {
            let meta = std::fs::symlink_metadata(&hp.path)
                .map_err(|e| unreadable_secret(ws, secret, hp, &e))?;
            if meta.file_type().is_symlink() {
                return Err(secret_error(ws, secret, format!(
                    "from_file {:?}: {} is a symbolic link: jailoc does not follow a symlink to a secret (it could point anywhere, ~/.ssh included); name the file itself",
                    hp.raw,
                    hp.path.display()
                )));
            }
            if !meta.is_file() {
                return Err(secret_error(
                    ws,
                    secret,
                    format!(
                        "from_file {:?}: {} is not a regular file",
                        hp.raw,
                        hp.path.display()
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{context, tempdir, workspace_of, Recorder};

    /// `$SSH_AUTH_SOCK` inside a workspace path: the agent could replace the socket with the
    /// engine's before the next `up`. Refused.
    #[test]
    fn attack_ssh_auth_sock_inside_a_workspace_is_refused() {
        let dir = tempdir();
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        let w = root.join("home/src/w");
        std::fs::create_dir_all(&w).expect("mkdir");
        std::fs::write(w.join("agent.sock"), "").expect("stand-in");
        let (mut c, _, _) = context(&root, Recorder::default());
        c.env.insert(
            "SSH_AUTH_SOCK".into(),
            w.join("agent.sock").to_string_lossy().into_owned(),
        );
        let ws = workspace_of(
            &root,
            "[workspaces.w]\npaths = [\"~/src/w\"]\nssh_auth_sock = true\n",
            "w",
        );
        let e = check_inputs(&c, &ws).expect_err("refused");
        let w = w.display();
        assert_eq!(
            e.to_string(),
            format!("failed to prepare workspace \"w\": ssh_auth_sock: $SSH_AUTH_SOCK {w}/agent.sock: it resolves to {w}/agent.sock, inside {w}, which a container can write (workspaces.w.paths, line 2), so that container's agent could replace it (with the engine's socket, say)")
        );
    }
}
