//! Where a workspace's files live on the host (policy directory, compose file, password,
//! secrets, OpenCode data) and its compose project name. Paths only: nothing here writes them.

use std::path::PathBuf;

use crate::context::Context;

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
    /// `$XDG_CACHE_HOME/jailoc/NAME/secrets/` (0700): every secret's value (copied at `up`), one
    /// file each, written at `up` and removed at `down`.
    pub secrets_dir: PathBuf,
    /// `$XDG_DATA_HOME/jailoc/NAME/opencode` (0700): the workspace's own OpenCode data
    /// directory (sessions, snapshots, a copy of the host's logins), which no host program
    /// reads. Never the host's `~/.local/share/opencode`.
    pub data_dir: PathBuf,
}

/// The files of workspace `name`.
pub fn files(ctx: &Context, name: &str) -> Files {
    let policy_dir = ctx.config_dir().join("workspaces").join(name);
    Files {
        override_file: policy_dir.join("compose.override.yml"),
        policy_dir,
        compose_file: ctx.cache_dir().join(name).join("docker-compose.yml"),
        secrets_dir: ctx.cache_dir().join(name).join("secrets"),
        data_dir: ctx.data_dir().join(name).join("opencode"),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{context, tempdir, Recorder};

    #[test]
    fn two_workspaces_get_different_data_dirs() {
        let dir = tempdir();
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        let (c, _, _) = context(&root, Recorder::default());
        let (a, b) = (files(&c, "a"), files(&c, "b"));
        assert_ne!(a.data_dir, b.data_dir);
        assert!(!a.data_dir.starts_with(&b.data_dir) && !b.data_dir.starts_with(&a.data_dir));
        assert_eq!(a.data_dir, root.join("home/.local/share/jailoc/a/opencode"));
    }
}
