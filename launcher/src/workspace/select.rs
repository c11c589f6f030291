//! Which workspace a command acts on: the one named, else the one whose path holds the
//! directory, else `default`.

use std::path::Path;

use crate::config::schema::DEFAULT_WORKSPACE;
use crate::config::Config;
use crate::context::Context;

/// `-w NAME`, else the workspace with the longest path that contains the current directory
/// (by components), else `default`.
pub fn select(ctx: &Context, cfg: &Config, explicit: Option<&str>) -> String {
    select_for(cfg, explicit, &ctx.cwd)
}

/// [`select`] for directory `dir` instead of the current one (`jailoc PATH`).
pub fn select_for(cfg: &Config, explicit: Option<&str>, dir: &Path) -> String {
    if let Some(w) = explicit {
        return w.to_string();
    }
    let cwd = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut best: Option<(usize, &str)> = None;
    for (name, sec) in &cfg.workspaces {
        for p in sec.paths.iter().flatten().chain(&sec.refused_paths) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_str;
    use crate::testutil::{context, tempdir, Recorder};

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
