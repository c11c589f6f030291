//! The compose file of a workspace: the pure renderer ([`compose::render`]) fed with what only
//! this host knows (the built-in mounts that exist, `$SSH_AUTH_SOCK`, the DinD image).

use std::path::{Path, PathBuf};

use super::files::Files;
use super::mounts::builtin_mounts;
use crate::compose::{self, ComposeInput, OneShot};
use crate::config::Workspace;
use crate::context::Context;

/// Renders the compose file for `ws` (its server, or the one-shot run `one_shot`), deciding
/// the host-dependent optional mounts.
pub fn render_compose(
    ctx: &Context,
    ws: &Workspace,
    files: &Files,
    image: &str,
    sandbox_init: &Path,
    one_shot: Option<&OneShot>,
) -> String {
    let (builtin, _) = builtin_mounts(ctx, ws);
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
        secrets_dir: &files.secrets_dir,
        data_dir: &files.data_dir,
        tui_dir: &crate::tui::dir(&ctx.data_dir()),
        builtin: &builtin,
        // A socket that is gone would make the engine fail (or create a directory there).
        ssh_auth_sock: ssh.as_deref().filter(|p| ws.ssh_auth_sock && p.exists()),
        dind_image: &dind,
        one_shot,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{context, tempdir, workspace_of, Recorder};
    use crate::workspace::files;

    /// Issue 10, item 1: the host's OpenCode data directory (whose snapshot repositories'
    /// git config the host's OpenCode runs) is never mounted, wherever XDG_DATA_HOME puts it;
    /// the workspace gets jailoc's own directory there instead.
    #[test]
    fn attack_host_opencode_data_dir_is_never_a_mount_source() {
        let dir = tempdir();
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        std::fs::create_dir_all(root.join("home/src/w")).expect("mkdir");
        let (mut c, _, _) = context(&root, Recorder::default());
        for data_home in [None, Some(root.join("xdg-data"))] {
            if let Some(d) = &data_home {
                c.env
                    .insert("XDG_DATA_HOME".into(), d.to_string_lossy().into_owned());
            }
            let host_data = c.opencode_data_dir();
            std::fs::create_dir_all(host_data.join("snapshot/p/0123")).expect("mkdir");
            let ws = workspace_of(&root, "[workspaces.w]\npaths = [\"~/src/w\"]\n", "w");
            let f = files(&c, "w");
            let yaml = render_compose(&c, &ws, &f, "img", Path::new("/bin/true"), None);
            let sources: Vec<&str> = yaml
                .lines()
                .filter_map(|l| l.trim().strip_prefix("source: \""))
                .map(|l| l.trim_end_matches('"'))
                .collect();
            assert!(!sources.is_empty(), "{yaml}");
            for src in &sources {
                assert!(
                    !Path::new(src).starts_with(&host_data),
                    "{src} is the host's OpenCode data:\n{yaml}"
                );
            }
            assert_eq!(f.data_dir, c.data_dir().join("w/opencode"));
            assert!(yaml.contains(&format!(
                "        source: \"{}\"\n        target: \"/home/agent/.local/share/opencode\"\n        read_only: false\n",
                f.data_dir.display()
            )), "{yaml}");
        }
    }
}
