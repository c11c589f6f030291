//! The workspace's policy directory is jailoc's alone: the names it may hold, and the clean-up
//! of anything else (the Go jailoc's `allowed-hosts`, which sandbox-init would read too).

use std::path::Path;

use super::files::Files;
use crate::error::{Error, Result};

/// The names in a workspace's policy directory that are jailoc's: the two files it writes for
/// sandbox-init, and the user's optional `compose.override.yml`.
fn policy_dir_names(files: &Files) -> [String; 3] {
    let own = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    [
        jailoc_policy::POLICY_FILE.to_string(),
        jailoc_policy::SECRET_ENV_FILE.to_string(),
        own(&files.override_file),
    ]
}

/// Removes everything in the policy directory that is not in [`policy_dir_names`] (a symlink
/// as a link, a directory with its contents); returns the names removed, sorted.
pub(super) fn clean_policy_dir(files: &Files) -> Result<Vec<String>> {
    let dir = &files.policy_dir;
    let keep = policy_dir_names(files);
    let mut removed = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::file("read", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::file("read", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if keep.contains(&name) {
            continue;
        }
        let path = entry.path();
        let is_dir = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
        let gone = if is_dir {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        gone.map_err(|e| Error::file("remove", &path, e))?;
        removed.push(name);
    }
    removed.sort();
    Ok(removed)
}
