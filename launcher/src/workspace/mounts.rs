//! The host side of the mounts decided at `up`: the built-in mounts that may be used, the
//! warning about a mount that lets the agent change the host's OpenCode, and the one check that
//! a host path does not resolve through a path a container can write.

use std::path::{Path, PathBuf};

use crate::compose;
use crate::config::merge::{Mount, Writable};
use crate::config::Workspace;
use crate::context::Context;

/// The built-in mounts that exist on this host, less those whose source resolves into a path a
/// container can write (a `~/.gitconfig` symlinked into a dotfiles repo that is a workspace
/// path): that agent could point it at anything before the next `up`. Returns the mounts and a
/// warning for each one left out.
pub(super) fn builtin_mounts(ctx: &Context, ws: &Workspace) -> (Vec<Mount>, Vec<String>) {
    let all = compose::builtin_mounts(&compose::builtin_candidates(
        &ctx.home(),
        &ctx.opencode_config_dir(),
        ws.git_config,
        ws.ssh_auth_sock,
    ));
    let mut warnings = Vec::new();
    let kept = all
        .into_iter()
        .filter(|m| {
            let Some(host) = &m.host else { return true };
            if ws.mounts.iter().any(|u| u.container == m.container) {
                return true; // replaced or removed by the user's `mounts`
            }
            match writable_hop(ws, host) {
                None => true,
                Some(hop) => {
                    warnings.push(format!(
                        "warning: not mounting {} at {}: {hop}, so that container's agent could point it anywhere",
                        host.display(),
                        m.container,
                    ));
                    false
                }
            }
        })
        .collect();
    (kept, warnings)
}

/// Where the resolution of a host path enters a path a container can write: that agent can
/// point whatever is there anywhere (`~/.ssh`, the engine's socket) before the next `up`.
#[derive(Debug)]
pub(super) struct WritableHop<'a> {
    /// The first path on the way (a symlink followed, or where it ends) inside `writable`.
    hop: PathBuf,
    /// Whether `hop` is where the path ends rather than a symlink on the way.
    is_end: bool,
    writable: &'a Writable,
}

impl std::fmt::Display for WritableHop<'_> {
    /// `it resolves to|through HOP, inside WRITABLE`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "it resolves {} {}, inside {}",
            if self.is_end { "to" } else { "through" },
            self.hop.display(),
            self.writable
        )
    }
}

/// The first place `path` resolves to or through (every symlink on the way, and where it ends)
/// that lies strictly inside one of the workspace's writable paths (the writable path itself
/// cannot be swapped by its agent), if any.
pub(super) fn writable_hop<'a>(ws: &'a Workspace, path: &Path) -> Option<WritableHop<'a>> {
    let hops = crate::fsutil::resolution(path);
    let last = hops.len().saturating_sub(1);
    hops.into_iter().enumerate().find_map(|(i, hop)| {
        let writable = ws
            .writable
            .iter()
            .find(|w| hop != w.path && hop.starts_with(&w.path))?;
        Some(WritableHop {
            hop,
            is_end: i == last,
            writable,
        })
    })
}

/// Warns when a `mounts` entry makes OpenCode's host config or `~/.opencode` writable (the Go
/// jailoc's default, and the line in its config template): the agent could then plant code
/// the host's OpenCode runs.
pub(super) fn warn_writable_host_code(ctx: &mut Context, ws: &Workspace) {
    let dirs = compose::host_code_dirs(&ctx.home(), &ctx.opencode_config_dir());
    for m in &ws.mounts {
        let Some(host) = &m.host else { continue };
        if m.read_only {
            continue;
        }
        if let Some(d) = dirs
            .iter()
            .find(|d| host.starts_with(d) || d.starts_with(host))
        {
            ctx.warn(&format!(
                "warning: {} is mounted read-write at {}: the agent can change what your host's OpenCode loads from {} (add :ro to the mount to prevent it)",
                host.display(),
                m.container,
                d.display()
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{context, tempdir, workspace_of, Recorder};

    /// A built-in mount whose source resolves into a workspace path (a `~/.gitconfig`
    /// symlinked into a dotfiles repo the agent can write): the agent could point it at the
    /// engine's socket before the next `up`, which would mount that. It is left out, with a
    /// warning.
    #[test]
    fn attack_builtin_source_symlinked_into_a_workspace_is_not_mounted() {
        let dir = tempdir();
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        let h = root.join("home");
        std::fs::create_dir_all(h.join("dotfiles")).expect("mkdir");
        std::fs::write(h.join("dotfiles/gitconfig"), "[user]\n").expect("write");
        std::os::unix::fs::symlink(h.join("dotfiles/gitconfig"), h.join(".gitconfig"))
            .expect("symlink");
        std::fs::create_dir_all(h.join(".agents")).expect("mkdir");
        let (c, _, _) = context(&root, Recorder::default());
        let ws = workspace_of(&root, "[workspaces.w]\npaths = [\"~/dotfiles\"]\n", "w");
        let (mounts, warnings) = builtin_mounts(&c, &ws);
        let targets: Vec<&str> = mounts.iter().map(|m| m.container.as_str()).collect();
        assert_eq!(targets, ["/home/agent/.agents"]);
        let h = h.display();
        assert_eq!(
            warnings,
            [format!("warning: not mounting {h}/.gitconfig at /home/agent/.gitconfig: it resolves to {h}/dotfiles/gitconfig, inside {h}/dotfiles, which a container can write (workspaces.w.paths, line 2), so that container's agent could point it anywhere")]
        );
    }

    /// The same dotfiles workspace, one `up` later: the agent has replaced its `gitconfig` (the
    /// file `~/.gitconfig` points to) with a symlink to `~/.ssh/id_ed25519`. `~/.gitconfig` now
    /// resolves outside every workspace, but through the agent's symlink: it must still be left
    /// out, or the engine mounts the private key at `/home/agent/.gitconfig`. The same for a
    /// directory mount (`~/.config/opencode` kept in the dotfiles repo, swapped for `~/.ssh`).
    #[test]
    fn attack_builtin_source_resolving_through_the_agents_symlink_is_not_mounted() {
        let dir = tempdir();
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        let h = root.join("home");
        for d in ["dotfiles", ".ssh", ".config", ".agents"] {
            std::fs::create_dir_all(h.join(d)).expect("mkdir");
        }
        std::fs::write(h.join(".ssh/id_ed25519"), "PRIVATE KEY\n").expect("write");
        std::os::unix::fs::symlink(h.join("dotfiles/gitconfig"), h.join(".gitconfig"))
            .expect("symlink");
        std::os::unix::fs::symlink(h.join("dotfiles/opencode"), h.join(".config/opencode"))
            .expect("symlink");
        // What the agent leaves in its workspace for the next `up`.
        std::os::unix::fs::symlink(h.join(".ssh/id_ed25519"), h.join("dotfiles/gitconfig"))
            .expect("plant");
        std::os::unix::fs::symlink(h.join(".ssh"), h.join("dotfiles/opencode")).expect("plant");
        let (c, _, _) = context(&root, Recorder::default());
        let ws = workspace_of(&root, "[workspaces.w]\npaths = [\"~/dotfiles\"]\n", "w");
        let (mounts, warnings) = builtin_mounts(&c, &ws);
        let targets: Vec<&str> = mounts.iter().map(|m| m.container.as_str()).collect();
        assert_eq!(targets, ["/home/agent/.agents"], "{warnings:?}");
        let h = h.display();
        assert_eq!(
            warnings,
            [
                format!("warning: not mounting {h}/.config/opencode at /home/agent/.config/opencode: it resolves through {h}/dotfiles/opencode, inside {h}/dotfiles, which a container can write (workspaces.w.paths, line 2), so that container's agent could point it anywhere"),
                format!("warning: not mounting {h}/.gitconfig at /home/agent/.gitconfig: it resolves through {h}/dotfiles/gitconfig, inside {h}/dotfiles, which a container can write (workspaces.w.paths, line 2), so that container's agent could point it anywhere"),
            ]
        );
    }
}
