//! The secrets' copies: each value written at `up` into its own file the container mounts,
//! removed at `down`; and the error naming the config line of a secret whose source failed.

use crate::config::schema::{HostPath, SecretDest, SecretEntry, SecretSource};
use crate::config::Workspace;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::fsutil;

use super::files::Files;

/// Copies each secret's value into its own file in `files.secrets_dir` (atomically; 0600 for
/// an environment secret, which sandbox-init reads as root; 0444 for a file secret, which the
/// agent reads itself) and removes files of secrets no longer configured, so the container
/// never mounts a user's path as a secret. A `from_file` source is read without following a
/// symlink at its last component and without blocking on a FIFO (it is checked before, but
/// could be swapped in between). Returns whether anything changed: a bind-mounted file is
/// pinned by inode, so a running container must then be recreated to see the new value.
pub(super) fn write_secret_files(ctx: &Context, ws: &Workspace, files: &Files) -> Result<bool> {
    let dir = &files.secrets_dir;
    let mut keep = Vec::new();
    let mut changed = false;
    for secret in ws.secrets.values() {
        let value = match &secret.source {
            SecretSource::HostEnv(var) => ctx.var(var).unwrap_or_default().as_bytes().to_vec(),
            SecretSource::HostFile(hp) => fsutil::read_regular_nofollow(&hp.path)
                .map_err(|e| unreadable_secret(ws, secret, hp, &e))?,
        };
        let mode = match secret.dest {
            SecretDest::Env => 0o600,
            SecretDest::File => 0o444,
        };
        let path = dir.join(&secret.name);
        changed |= fsutil::write_if_changed(&path, &value, mode)
            .map_err(|e| Error::file("write", &path, e))?;
        keep.push(secret.name.clone());
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !keep.contains(&name) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    Ok(changed)
}

/// Removes the secrets' copies (at `down`: the values do not outlive the container).
pub fn remove_secret_files(files: &Files) -> Result<()> {
    match std::fs::remove_dir_all(&files.secrets_dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::file("remove", &files.secrets_dir, e))
        }
        _ => Ok(()),
    }
}

/// A `from_file` source that could not be read, as the error naming file, line and key.
pub(super) fn unreadable_secret(
    ws: &Workspace,
    secret: &SecretEntry,
    hp: &HostPath,
    e: &std::io::Error,
) -> Error {
    secret_error(
        ws,
        secret,
        format!(
            "from_file {:?}: failed to read {}: {e}",
            hp.raw,
            hp.path.display()
        ),
    )
}

/// An up-time error about `secret`, naming the config file, line and key.
pub(super) fn secret_error(ws: &Workspace, secret: &SecretEntry, what: String) -> Error {
    Error::Workspace {
        workspace: ws.name.clone(),
        message: format!(
            "{}:{}: {}: {what}",
            ws.config_file.display(),
            secret.line,
            secret.key
        ),
    }
}
