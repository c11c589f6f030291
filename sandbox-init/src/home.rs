//! Ownership of the agent's writable home directories (`.config`, `.local`, `.cache`).
//!
//! Docker creates missing mount points and fresh volumes as root, so the agent could not write
//! its own config or cache. We fix that as root, before the drop, but cheaply and safely:
//!
//! - a directory whose owner is already right is not looked into (a 5 GB cache is not walked on
//!   every start);
//! - only when the top is wrong is the tree below fixed, with `lchown` (symlinks are never
//!   followed: an agent must not be able to plant `.config -> /etc` and have root chown `/etc`),
//!   without descending into other filesystems (bind mounts such as a read-only OpenCode config);
//! - a top that is a symlink is left alone (warning);
//! - a missing directory (or home) is created, owned by the agent;
//! - read-only file systems and entries below the top that cannot be changed are warnings: they
//!   are the user's own mounts. Anything else fails the boot (exit 71).

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

/// The directories under the agent's home that must belong to the agent.
pub const WRITABLE_DIRS: [&str; 3] = [".config", ".local", ".cache"];

/// Errors of the home fix (exit 71).
#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    /// A directory could not be created.
    #[error("failed to create {}: {source}", .path.display())]
    Create {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A directory's owner could not be changed.
    #[error("failed to change the owner of {} to {uid}:{gid}: {source}", .path.display())]
    Chown {
        /// The path.
        path: PathBuf,
        /// Target uid.
        uid: u32,
        /// Target gid.
        gid: u32,
        /// Why.
        source: io::Error,
    },
    /// A path could not be inspected.
    #[error("failed to inspect {}: {source}", .path.display())]
    Inspect {
        /// The path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// What was (or, for `--print-plan`, would be) done to one directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Owner already right: untouched.
    AlreadyOwned,
    /// Created, owned by the agent.
    Create,
    /// Owner was wrong: the tree was re-owned (this many entries changed).
    Chown {
        /// Entries changed (the top included); 0 in a plan.
        changed: u64,
    },
    /// A symlink: left alone.
    SkipSymlink,
}

/// One directory and its action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fix {
    /// The directory.
    pub path: PathBuf,
    /// The action.
    pub action: Action,
}

fn owned_by(meta: &fs::Metadata, uid: u32, gid: u32) -> bool {
    meta.uid() == uid && meta.gid() == gid
}

fn inspect(path: &Path) -> Result<Option<fs::Metadata>, HomeError> {
    match fs::symlink_metadata(path) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(HomeError::Inspect {
            path: path.to_owned(),
            source,
        }),
    }
}

/// What [`fix`] would do, without changing anything (for `--print-plan`).
pub fn plan(home: &Path, uid: u32, gid: u32) -> Result<Vec<Fix>, HomeError> {
    walk(home, uid, gid, None)
}

/// Create/re-own the agent's writable home directories (see the module comment). `warn`
/// receives one line per tolerated problem.
pub fn fix(
    home: &Path,
    uid: u32,
    gid: u32,
    warn: &mut dyn FnMut(String),
) -> Result<Vec<Fix>, HomeError> {
    walk(home, uid, gid, Some(warn))
}

/// The one decision behind [`plan`] and [`fix`], so the plan cannot drift from what the boot
/// does: with `apply` (the warning sink) each action is also carried out.
fn walk(
    home: &Path,
    uid: u32,
    gid: u32,
    mut apply: Option<&mut dyn FnMut(String)>,
) -> Result<Vec<Fix>, HomeError> {
    let mut out = Vec::new();
    if inspect(home)?.is_none() {
        if apply.is_some() {
            create(home, uid, gid)?;
        }
        out.push(Fix {
            path: home.to_owned(),
            action: Action::Create,
        });
    }
    for name in WRITABLE_DIRS {
        let path = home.join(name);
        let action = match (inspect(&path)?, apply.as_deref_mut()) {
            (None, apply) => {
                if apply.is_some() {
                    create(&path, uid, gid)?;
                }
                Action::Create
            }
            (Some(m), warn) if m.file_type().is_symlink() => {
                if let Some(warn) = warn {
                    warn(format!(
                        "not changing the owner of {}: it is a symlink",
                        path.display()
                    ));
                }
                Action::SkipSymlink
            }
            (Some(m), _) if owned_by(&m, uid, gid) => Action::AlreadyOwned,
            (Some(_), None) => Action::Chown { changed: 0 },
            (Some(m), Some(warn)) => Action::Chown {
                changed: chown_tree(&path, &m, uid, gid, warn)?,
            },
        };
        out.push(Fix { path, action });
    }
    Ok(out)
}

fn create(path: &Path, uid: u32, gid: u32) -> Result<(), HomeError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(path)
        .map_err(|source| HomeError::Create {
            path: path.to_owned(),
            source,
        })?;
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).map_err(|source| HomeError::Chown {
        path: path.to_owned(),
        uid,
        gid,
        source,
    })
}

/// Re-own `top` and everything below it on the same filesystem, never following symlinks.
/// Returns how many entries were changed.
fn chown_tree(
    top: &Path,
    top_meta: &fs::Metadata,
    uid: u32,
    gid: u32,
    warn: &mut dyn FnMut(String),
) -> Result<u64, HomeError> {
    let chown = |path: &Path| std::os::unix::fs::lchown(path, Some(uid), Some(gid));
    match chown(top) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EROFS) => {
            warn(format!(
                "not changing the owner of {}: read-only file system",
                top.display()
            ));
            return Ok(0);
        }
        Err(source) => {
            return Err(HomeError::Chown {
                path: top.to_owned(),
                uid,
                gid,
                source,
            })
        }
    }
    let device = top_meta.dev();
    let mut changed = 1;
    // An explicit stack: a deep cache must not overflow PID 1's stack.
    let mut dirs = vec![top.to_owned()];
    while let Some(dir) = dirs.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) => {
                warn(format!("failed to list {}: {e}", dir.display()));
                continue;
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            // symlink_metadata: the link itself, never its target.
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.dev() != device {
                // Another filesystem (a bind mount, a volume): the user's business.
                continue;
            }
            if !owned_by(&meta, uid, gid) {
                match chown(&path) {
                    Ok(()) => changed += 1,
                    Err(e) => warn(format!(
                        "failed to change the owner of {} to {uid}:{gid}: {e}",
                        path.display()
                    )),
                }
            }
            if meta.file_type().is_dir() {
                dirs.push(path);
            }
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn me() -> (u32, u32) {
        let m = fs::metadata("/proc/self").expect("proc");
        (m.uid(), m.gid())
    }

    fn is_root() -> bool {
        me().0 == 0
    }

    #[test]
    fn plan_reports_without_changing() {
        let t = tempfile::tempdir().expect("tempdir");
        let home = t.path().join("home");
        let (uid, gid) = me();
        let p = plan(&home, uid, gid).expect("plan");
        assert_eq!(p[0].action, Action::Create);
        assert_eq!(p.len(), 4);
        assert!(!home.exists(), "a plan must not create anything");
    }

    #[test]
    fn missing_dirs_are_created_and_owned_dirs_untouched() {
        let t = tempfile::tempdir().expect("tempdir");
        let home = t.path().join("home");
        fs::create_dir_all(home.join(".cache/big")).expect("mkdir");
        let (uid, gid) = me();
        let mut warnings = Vec::new();
        let fixes = fix(&home, uid, gid, &mut |w| warnings.push(w)).expect("fix");
        let actions: Vec<_> = fixes.iter().map(|f| f.action.clone()).collect();
        assert_eq!(
            actions,
            [Action::Create, Action::Create, Action::AlreadyOwned]
        );
        assert!(home.join(".config").is_dir() && home.join(".local").is_dir());
        assert!(warnings.is_empty());
    }

    #[test]
    fn wrong_owner_is_fixed_recursively_without_following_symlinks() {
        if !is_root() {
            eprintln!("skipping: chown to another uid needs root");
            return;
        }
        let t = tempfile::tempdir().expect("tempdir");
        let home = t.path().join("home");
        let outside = t.path().join("outside");
        fs::create_dir_all(home.join(".cache/a/b")).expect("mkdir");
        fs::create_dir_all(&outside).expect("mkdir");
        fs::write(home.join(".cache/a/b/file"), "x").expect("write");
        symlink(&outside, home.join(".cache/a/link")).expect("symlink");
        // .config is a symlink to a root-owned directory: must be left alone.
        symlink(&outside, home.join(".config")).expect("symlink");
        fs::create_dir_all(home.join(".local")).expect("mkdir");
        std::os::unix::fs::chown(home.join(".local"), Some(1000), Some(1000)).expect("chown");

        let mut warnings = Vec::new();
        let fixes = fix(&home, 1000, 1000, &mut |w| warnings.push(w)).expect("fix");
        assert_eq!(fixes[0].action, Action::SkipSymlink);
        assert_eq!(fixes[1].action, Action::AlreadyOwned);
        // .cache, a, b, file, link
        assert_eq!(fixes[2].action, Action::Chown { changed: 5 });
        for p in [".cache", ".cache/a", ".cache/a/b", ".cache/a/b/file"] {
            let m = fs::symlink_metadata(home.join(p)).expect("stat");
            assert_eq!((m.uid(), m.gid()), (1000, 1000), "{p}");
        }
        let link = fs::symlink_metadata(home.join(".cache/a/link")).expect("stat");
        assert_eq!(link.uid(), 1000, "the link itself is re-owned");
        let target = fs::metadata(&outside).expect("stat");
        assert_eq!(target.uid(), 0, "the symlink target must not be touched");
        assert_eq!(
            warnings,
            [format!(
                "not changing the owner of {}: it is a symlink",
                home.join(".config").display()
            )]
        );
    }

    #[test]
    fn a_correct_top_is_not_walked() {
        if !is_root() {
            eprintln!("skipping: chown to another uid needs root");
            return;
        }
        let t = tempfile::tempdir().expect("tempdir");
        let home = t.path().join("home");
        fs::create_dir_all(home.join(".cache/deep")).expect("mkdir");
        std::os::unix::fs::chown(home.join(".cache"), Some(1000), Some(1000)).expect("chown");
        fix(&home, 1000, 1000, &mut |_| {}).expect("fix");
        // The root-owned entry below a correct top stays as it was: we did not walk.
        let deep = fs::metadata(home.join(".cache/deep")).expect("stat");
        assert_eq!(deep.uid(), 0);
    }
}
