//! Ownership of the agent's writable home directories (`.config`, `.local`, `.cache`).
//!
//! Docker creates missing mount points and fresh volumes as root, so the agent could not write
//! its own config or cache. We fix that as root, before the drop, but cheaply and safely:
//!
//! - a directory whose owner is already right is not looked into (a 5 GB cache is not walked on
//!   every start);
//! - only when the top is wrong is the tree below fixed, walked by file descriptor (`openat`
//!   with `O_NOFOLLOW | O_DIRECTORY`, `statx`/`fstatat` and `fchownat` with
//!   `AT_SYMLINK_NOFOLLOW`), so a symlink is never followed: an agent must not be able to plant
//!   `.config -> /etc` or `.cache/x -> /etc/shadow` and have root re-own the target;
//! - the walk stops at every mount point below the top (a bind mount, a volume), also one of the
//!   same file system: its mount id (`statx` `STATX_MNT_ID`, else `/proc/self/mountinfo`) differs
//!   from the top's. What is mounted there is the user's (host files must keep their owner);
//! - a regular file with more than one hard link is left as it is: another name of it may be
//!   outside the tree;
//! - a top that is a symlink or not a directory is left alone (warning);
//! - a missing directory (or home) is created, owned by the agent;
//! - read-only file systems and entries below the top that cannot be changed are warnings: they
//!   are the user's own mounts. Anything else fails the boot (exit 71).

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::sys::{self, EntryKind, EntryStat, Errno};

/// The directories under the agent's home that must belong to the agent.
pub const WRITABLE_DIRS: [&str; 3] = [".config", ".local", ".cache"];

/// Where the mount table is read when `statx` reports no mount ids (Linux before 5.8).
const MOUNTINFO: &str = "/proc/self/mountinfo";

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

fn io_err(errno: Errno) -> io::Error {
    io::Error::from_raw_os_error(errno.0)
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
    /// Not a directory (a file, a socket): left alone.
    SkipNotADirectory,
}

/// One directory and its action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fix {
    /// The directory.
    pub path: PathBuf,
    /// The action.
    pub action: Action,
}

fn owned_by(st: &EntryStat, uid: u32, gid: u32) -> bool {
    st.uid == uid && st.gid == gid
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
    fn inspect(path: &Path) -> impl Fn(Errno) -> HomeError + '_ {
        move |errno| HomeError::Inspect {
            path: path.to_owned(),
            source: io_err(errno),
        }
    }
    // The home itself is the policy's (root's) choice: its path is followed as written.
    let home_fd = match sys::open_dir(home) {
        Ok(fd) => fd,
        Err(Errno(libc::ENOENT)) => {
            out.push(Fix {
                path: home.to_owned(),
                action: Action::Create,
            });
            if apply.is_none() {
                out.extend(WRITABLE_DIRS.iter().map(|name| Fix {
                    path: home.join(name),
                    action: Action::Create,
                }));
                return Ok(out);
            }
            create(home, uid, gid)?;
            sys::open_dir(home).map_err(inspect(home))?
        }
        Err(errno) => return Err(inspect(home)(errno)),
    };
    for name in WRITABLE_DIRS {
        let path = home.join(name);
        let name = OsStr::new(name);
        let action = match (sys::stat_at(home_fd.as_fd(), name), apply.as_deref_mut()) {
            (Err(Errno(libc::ENOENT)), apply) => {
                if apply.is_some() {
                    create_at(&home_fd, name, &path, uid, gid)?;
                }
                Action::Create
            }
            (Err(errno), _) => return Err(inspect(&path)(errno)),
            (Ok(st), warn) if st.kind == EntryKind::Symlink => {
                if let Some(warn) = warn {
                    warn(format!(
                        "not changing the owner of {}: it is a symlink",
                        path.display()
                    ));
                }
                Action::SkipSymlink
            }
            (Ok(st), warn) if st.kind != EntryKind::Dir => {
                if let Some(warn) = warn {
                    warn(format!(
                        "not changing the owner of {}: it is not a directory",
                        path.display()
                    ));
                }
                Action::SkipNotADirectory
            }
            (Ok(st), _) if owned_by(&st, uid, gid) => Action::AlreadyOwned,
            (Ok(_), None) => Action::Chown { changed: 0 },
            (Ok(_), Some(warn)) => {
                let top = sys::open_dir_at(home_fd.as_fd(), name).map_err(inspect(&path))?;
                Action::Chown {
                    changed: chown_tree(top, &path, uid, gid, warn)?,
                }
            }
        };
        out.push(Fix { path, action });
    }
    Ok(out)
}

/// Creates the home (and its parents), owned by the agent.
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

/// Creates `name` in the home, owned by the agent.
fn create_at(
    home: &OwnedFd,
    name: &OsStr,
    path: &Path,
    uid: u32,
    gid: u32,
) -> Result<(), HomeError> {
    sys::mkdir_at(home.as_fd(), name, 0o755).map_err(|errno| HomeError::Create {
        path: path.to_owned(),
        source: io_err(errno),
    })?;
    sys::chown_at(home.as_fd(), name, uid, gid).map_err(|errno| HomeError::Chown {
        path: path.to_owned(),
        uid,
        gid,
        source: io_err(errno),
    })
}

/// How the walk tells a mount point below the top: by mount id where `statx` reports one,
/// else by the mount table; a different file system is always one.
enum Mounts {
    /// The top's file system and mount id.
    ById { dev: u64, id: u64 },
    /// The top's file system, its real path and every mount point of the table.
    ByTable {
        dev: u64,
        top: PathBuf,
        shown: PathBuf,
        points: HashSet<PathBuf>,
    },
    /// Neither works: nothing below the top can be told apart, so nothing below is entered.
    Unknown,
}

impl Mounts {
    fn of(top: &OwnedFd, top_st: &EntryStat, shown: &Path) -> Self {
        if let Some(id) = top_st.mnt_id {
            return Mounts::ById {
                dev: top_st.dev,
                id,
            };
        }
        let real = fs::read_link(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(top)
        ));
        match (real, fs::read_to_string(MOUNTINFO)) {
            (Ok(real), Ok(table)) => Mounts::ByTable {
                dev: top_st.dev,
                top: real,
                shown: shown.to_owned(),
                points: mount_points(&table),
            },
            _ => Mounts::Unknown,
        }
    }

    /// Whether the entry `path` (with its stat) is another mount than the top's.
    fn crosses(&self, st: &EntryStat, path: &Path) -> bool {
        match self {
            Mounts::ById { dev, id } => st.dev != *dev || st.mnt_id != Some(*id),
            Mounts::ByTable {
                dev,
                top,
                shown,
                points,
            } => {
                st.dev != *dev
                    || path
                        .strip_prefix(shown)
                        .map_or(true, |rel| points.contains(&top.join(rel)))
            }
            Mounts::Unknown => true,
        }
    }
}

/// The mount points of a `/proc/self/mountinfo` text (field 5, octal escapes undone).
pub fn mount_points(mountinfo: &str) -> HashSet<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape_octal(field)))
        .collect()
}

/// `\040` → space, as the kernel escapes space, tab, newline and backslash in mountinfo.
fn unescape_octal(field: &str) -> OsString {
    use std::os::unix::ffi::OsStringExt;
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                let value = d.iter().fold(0u32, |v, c| v * 8 + u32::from(c - b'0'));
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    OsString::from_vec(out)
}

/// A directory still to be walked: its name in a parent that is kept open until then.
type Pending = (Rc<OwnedFd>, OsString, PathBuf);

/// Re-own `top` (open, a directory) and everything below it on the same mount, never following
/// a symlink. Returns how many entries were changed.
fn chown_tree(
    top: OwnedFd,
    path: &Path,
    uid: u32,
    gid: u32,
    warn: &mut dyn FnMut(String),
) -> Result<u64, HomeError> {
    match std::os::unix::fs::fchown(&top, Some(uid), Some(gid)) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EROFS) => {
            warn(format!(
                "not changing the owner of {}: read-only file system",
                path.display()
            ));
            return Ok(0);
        }
        Err(source) => {
            return Err(HomeError::Chown {
                path: path.to_owned(),
                uid,
                gid,
                source,
            })
        }
    }
    let top_st = sys::stat_at(top.as_fd(), OsStr::new("")).map_err(|errno| HomeError::Inspect {
        path: path.to_owned(),
        source: io_err(errno),
    })?;
    let mounts = Mounts::of(&top, &top_st, path);
    if matches!(mounts, Mounts::Unknown) {
        warn(format!(
            "not changing the owner of anything below {}: cannot tell its mount points apart \
             (no mount ids from statx, no {MOUNTINFO})",
            path.display()
        ));
        return Ok(1);
    }
    let mut walk = Walk {
        uid,
        gid,
        mounts,
        changed: 1,
        hardlinked: 0,
        pending: Vec::new(),
    };
    walk.visit(&Rc::new(top), path, warn);
    // An explicit stack (a deep cache must not overflow PID 1's stack); a directory is opened
    // only when its turn comes, so a wide tree holds one descriptor per level.
    while let Some((parent, name, dir_path)) = walk.pending.pop() {
        let dir = match sys::open_dir_at(parent.as_fd(), &name) {
            Ok(fd) => Rc::new(fd),
            Err(errno) => {
                warn(format!("failed to list {}: {errno}", dir_path.display()));
                continue;
            }
        };
        drop(parent);
        walk.visit(&dir, &dir_path, warn);
    }
    if walk.hardlinked > 0 {
        warn(format!(
            "not changing the owner of {} files with more than one hard link below {}: another \
             name of them may be outside it",
            walk.hardlinked,
            path.display()
        ));
    }
    Ok(walk.changed)
}

struct Walk {
    uid: u32,
    gid: u32,
    mounts: Mounts,
    changed: u64,
    hardlinked: u64,
    pending: Vec<Pending>,
}

impl Walk {
    /// Re-owns the entries of `dir` (at `path`) and queues its sub-directories.
    fn visit(&mut self, dir: &Rc<OwnedFd>, path: &Path, warn: &mut dyn FnMut(String)) {
        let names = match sys::list_dir(dir.as_fd()) {
            Ok(names) => names,
            Err(errno) => {
                warn(format!("failed to list {}: {errno}", path.display()));
                return;
            }
        };
        for name in names {
            let child = path.join(&name);
            // The entry itself (a symlink is a symlink), never its target.
            let Ok(st) = sys::stat_at(dir.as_fd(), &name) else {
                continue;
            };
            if self.mounts.crosses(&st, &child) {
                // A bind mount or volume below the top: the user's, left as it is.
                continue;
            }
            if !owned_by(&st, self.uid, self.gid) {
                if st.kind == EntryKind::File && st.nlink > 1 {
                    self.hardlinked += 1;
                } else {
                    match sys::chown_at(dir.as_fd(), &name, self.uid, self.gid) {
                        Ok(()) => self.changed += 1,
                        Err(errno) => warn(format!(
                            "failed to change the owner of {} to {}:{}: {errno}",
                            child.display(),
                            self.uid,
                            self.gid
                        )),
                    }
                }
            }
            if st.kind == EntryKind::Dir {
                self.pending.push((Rc::clone(dir), name, child));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, MetadataExt};

    fn me() -> (u32, u32) {
        let m = fs::metadata("/proc/self").expect("proc");
        (m.uid(), m.gid())
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
        if !jailoc_tests::require_root("this home test (chown to another uid)") {
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
        if !jailoc_tests::require_root("this home test (chown to another uid)") {
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

    #[test]
    fn a_hard_link_to_a_file_outside_keeps_its_owner() {
        if !jailoc_tests::require_root("this home test (chown to another uid)") {
            return;
        }
        let t = tempfile::tempdir().expect("tempdir");
        let home = t.path().join("home");
        fs::create_dir_all(home.join(".cache")).expect("mkdir");
        let outside = t.path().join("root-file");
        fs::write(&outside, "root's").expect("write");
        fs::hard_link(&outside, home.join(".cache/linked")).expect("link");
        fs::write(home.join(".cache/own"), "x").expect("write");
        let mut warnings = Vec::new();
        let fixes = fix(&home, 1000, 1000, &mut |w| warnings.push(w)).expect("fix");
        assert_eq!(fixes[2].action, Action::Chown { changed: 2 });
        assert_eq!(fs::metadata(&outside).expect("stat").uid(), 0);
        assert_eq!(
            fs::metadata(home.join(".cache/own")).expect("stat").uid(),
            1000
        );
        assert_eq!(
            warnings,
            [format!(
                "not changing the owner of 1 files with more than one hard link below {}: \
                 another name of them may be outside it",
                home.join(".cache").display()
            )]
        );
    }

    #[test]
    fn a_top_that_is_not_a_directory_is_left_alone() {
        let t = tempfile::tempdir().expect("tempdir");
        let home = t.path().join("home");
        fs::create_dir_all(&home).expect("mkdir");
        fs::write(home.join(".local"), "not a dir").expect("write");
        let (uid, gid) = me();
        assert_eq!(
            plan(&home, uid + 1, gid)
                .expect("plan")
                .iter()
                .map(|f| f.action.clone())
                .collect::<Vec<_>>(),
            [Action::Create, Action::SkipNotADirectory, Action::Create]
        );
    }

    #[test]
    fn mount_points_come_from_mountinfo_with_escapes_undone() {
        let table = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
35 22 8:1 /srv/x /home/agent/.local/share/x rw - ext4 /dev/sda1 rw
36 22 0:5 / /home/agent/with\\040space rw - tmpfs tmpfs rw
";
        let points = mount_points(table);
        assert!(points.contains(Path::new("/home/agent/.local/share/x")));
        assert!(points.contains(Path::new("/home/agent/with space")));
        assert!(points.contains(Path::new("/")));
        assert_eq!(points.len(), 3);
        let by_table = Mounts::ByTable {
            dev: 7,
            top: PathBuf::from("/home/agent/.local"),
            shown: PathBuf::from("/h/.local"),
            points,
        };
        let st = |dev| EntryStat {
            kind: EntryKind::Dir,
            uid: 0,
            gid: 0,
            nlink: 1,
            dev,
            mnt_id: None,
        };
        assert!(by_table.crosses(&st(7), Path::new("/h/.local/share/x")));
        assert!(!by_table.crosses(&st(7), Path::new("/h/.local/share")));
        assert!(by_table.crosses(&st(8), Path::new("/h/.local/share")));
        let by_id = Mounts::ById { dev: 7, id: 40 };
        assert!(!by_id.crosses(
            &EntryStat {
                mnt_id: Some(40),
                ..st(7)
            },
            Path::new("/a")
        ));
        assert!(by_id.crosses(
            &EntryStat {
                mnt_id: Some(41),
                ..st(7)
            },
            Path::new("/a")
        ));
    }
}
