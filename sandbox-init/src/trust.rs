//! Which files root may run or read: only ones that nobody but root can have put there.
//!
//! sandbox-init runs as root with every capability the container has, in a container whose
//! agent can write its home, the project and every writable mount, and keeps what it wrote
//! across restarts. So root never looks for a program on `PATH` (an image commonly puts
//! `~/.local/bin` first), only in the fixed [`SYSTEM_DIRS`], and runs or reads a file only
//! after [`Trust`] has resolved its path, hop by hop, and found the file and every directory
//! on the way — also the directories every symlink on the way lives in and points into —
//! owned by root and not writable by group or others. What such a path leads to only root
//! can change, so the check cannot be raced; the caller then uses the resolved path.

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// Where sandbox-init looks for the programs it runs as root, in this order. Never `PATH`.
pub const SYSTEM_DIRS: [&str; 4] = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/// The `PATH` the programs sandbox-init runs get (their whole environment).
pub const SYSTEM_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// Symlinks followed in one path before giving up (the kernel's limit).
const MAX_LINKS: usize = 40;

/// Why a file or directory on the way is not trusted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Why {
    /// Owned by someone else than the trusted owner.
    Owner {
        /// Its owner.
        uid: u32,
        /// Who it should belong to (0 outside tests).
        want: u32,
    },
    /// Group or others may write it (mode bits).
    Writable {
        /// Its permission bits.
        mode: u32,
    },
    /// Not a regular file (a program or secret must be one).
    NotAFile,
    /// Not a directory (where one is needed).
    NotADirectory,
    /// More than 40 symlinks.
    TooManyLinks,
    /// Not an absolute path.
    Relative,
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Why::Owner { uid, want: 0 } => write!(f, "is owned by uid {uid}, not by root"),
            Why::Owner { uid, want } => write!(f, "is owned by uid {uid}, not by uid {want}"),
            Why::Writable { mode } => {
                write!(f, "is writable by group or others (mode {mode:04o})")
            }
            Why::NotAFile => write!(f, "is not a regular file"),
            Why::NotADirectory => write!(f, "is not a directory"),
            Why::TooManyLinks => write!(f, "has too many levels of symbolic links"),
            Why::Relative => write!(f, "is not an absolute path"),
        }
    }
}

/// A path root must not use.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The path, or something on the way to it, fails the check.
    #[error("failed to trust {}: {}", .path.display(), describe(.path, .at, .why))]
    Untrusted {
        /// What was asked for.
        path: PathBuf,
        /// The file or directory that failed (the path itself, or a hop on the way).
        at: PathBuf,
        /// Why.
        why: Why,
    },
    /// Nothing there (also: a dangling symlink on the way).
    #[error("failed to find {}: no such file or directory", .path.display())]
    Missing {
        /// What was asked for.
        path: PathBuf,
    },
    /// A hop could not be inspected.
    #[error("failed to inspect {}: {source}", .at.display())]
    Inspect {
        /// The hop.
        at: PathBuf,
        /// Why.
        source: io::Error,
    },
}

fn describe(path: &Path, at: &Path, why: &Why) -> String {
    if at == path {
        format!("it {why}")
    } else {
        format!("{} on the way to it {why}", at.display())
    }
}

/// The check. [`Trust::system`] is the real one; tests stand a directory in for `/` and their
/// own uid in for root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trust {
    root: PathBuf,
    owner: u32,
}

/// What a resolved path must end in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
}

impl Trust {
    /// `/`, owned by root.
    pub fn system() -> Self {
        Self {
            root: PathBuf::from("/"),
            owner: 0,
        }
    }

    /// `root` stands in for `/` (absolute paths and symlink targets resolve inside it, like a
    /// chroot) and `owner` for root. For tests.
    #[cfg(test)]
    pub fn within(root: &Path, owner: u32) -> Self {
        Self {
            root: root.to_owned(),
            owner,
        }
    }

    /// Resolves `path` (absolute) to the regular file it names, checking it and every
    /// directory on the way; returns the resolved path, which only the owner can change.
    pub fn file(&self, path: &Path) -> Result<PathBuf, TrustError> {
        self.resolve(path, Kind::File, &mut Vec::new())
    }

    /// Like [`Trust::file`], for a directory.
    pub fn dir(&self, path: &Path) -> Result<PathBuf, TrustError> {
        self.resolve(path, Kind::Dir, &mut Vec::new())
    }

    /// Finds the program `name` in the first of the [`SYSTEM_DIRS`] that has an entry of that
    /// name, and checks it: `Ok(None)` when none has it, an error when the one found must not
    /// be run (never a fall-through to the next directory). Returns the resolved file; run it
    /// with `name` as `argv[0]` (multi-call binaries such as `xtables-nft-multi` dispatch on it).
    pub fn find_program(&self, name: &str) -> Result<Option<PathBuf>, TrustError> {
        self.find_in(name, &mut Vec::new())
    }

    /// [`Trust::find_program`] for each of `names`, in one walk: a directory found trusted on
    /// the way to one is not inspected again on the way to the next (the boot's probe looks for
    /// twelve programs, most of them links into the same two directories).
    pub fn find_programs(&self, names: &[&str]) -> Vec<Result<Option<PathBuf>, TrustError>> {
        let mut trusted = Vec::new();
        names
            .iter()
            .map(|name| self.find_in(name, &mut trusted))
            .collect()
    }

    /// `trusted`: directories already found trusted in this walk (only the owner can change
    /// them, as between the hops of one path).
    fn find_in(
        &self,
        name: &str,
        trusted: &mut Vec<PathBuf>,
    ) -> Result<Option<PathBuf>, TrustError> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Ok(None);
        }
        for dir in SYSTEM_DIRS {
            match self.resolve(&Path::new(dir).join(name), Kind::File, trusted) {
                Ok(real) => return Ok(Some(real)),
                Err(TrustError::Missing { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// The walk: one component at a time from the root, each directory entered checked, each
    /// symlink's target spliced in front of what is left (an absolute one restarting at the
    /// root), the final file or directory checked last. A directory in `trusted` passed the
    /// check earlier in the same walk and is entered without a look; each one that passes now
    /// joins it.
    fn resolve(
        &self,
        path: &Path,
        kind: Kind,
        trusted: &mut Vec<PathBuf>,
    ) -> Result<PathBuf, TrustError> {
        let untrusted = |at: &Path, why: Why| TrustError::Untrusted {
            path: path.to_owned(),
            at: at.to_owned(),
            why,
        };
        if !path.is_absolute() {
            return Err(untrusted(path, Why::Relative));
        }
        let inspect = |real: &Path, shown: &Path| -> Result<fs::Metadata, TrustError> {
            fs::symlink_metadata(real).map_err(|source| match source.kind() {
                io::ErrorKind::NotFound => TrustError::Missing {
                    path: path.to_owned(),
                },
                _ => TrustError::Inspect {
                    at: shown.to_owned(),
                    source,
                },
            })
        };
        let check = |meta: &fs::Metadata, shown: &Path| -> Result<(), TrustError> {
            if meta.uid() != self.owner {
                return Err(untrusted(
                    shown,
                    Why::Owner {
                        uid: meta.uid(),
                        want: self.owner,
                    },
                ));
            }
            if meta.mode() & 0o022 != 0 {
                return Err(untrusted(
                    shown,
                    Why::Writable {
                        mode: meta.mode() & 0o7777,
                    },
                ));
            }
            Ok(())
        };

        if !trusted.contains(&self.root) {
            let root_meta = inspect(&self.root, Path::new("/"))?;
            check(&root_meta, Path::new("/"))?;
            trusted.push(self.root.clone());
        }
        // `real` is where we are on disk; `shown` the same place as seen from the root.
        let mut real = self.root.clone();
        let mut shown = PathBuf::from("/");
        let mut todo: Vec<OsString> = components(path);
        todo.reverse();
        let mut links = 0;
        while let Some(name) = todo.pop() {
            if name == ".." {
                if shown.pop() {
                    real.pop();
                }
                continue;
            }
            let next_real = real.join(&name);
            let next_shown = shown.join(&name);
            if trusted.contains(&next_real) {
                real = next_real;
                shown = next_shown;
                continue;
            }
            let meta = inspect(&next_real, &next_shown)?;
            if meta.file_type().is_symlink() {
                links += 1;
                if links > MAX_LINKS {
                    return Err(untrusted(&next_shown, Why::TooManyLinks));
                }
                let target = fs::read_link(&next_real).map_err(|source| TrustError::Inspect {
                    at: next_shown.clone(),
                    source,
                })?;
                if target.is_absolute() {
                    real = self.root.clone();
                    shown = PathBuf::from("/");
                }
                todo.extend(components(&target).into_iter().rev());
                continue;
            }
            if meta.is_dir() {
                check(&meta, &next_shown)?;
                trusted.push(next_real.clone());
            } else if !todo.is_empty() {
                return Err(untrusted(&next_shown, Why::NotADirectory));
            }
            real = next_real;
            shown = next_shown;
        }
        // What the path ends in (also after a trailing `..`).
        let meta = inspect(&real, &shown)?;
        match kind {
            Kind::File if !meta.is_file() => return Err(untrusted(&shown, Why::NotAFile)),
            Kind::Dir if !meta.is_dir() => return Err(untrusted(&shown, Why::NotADirectory)),
            _ => {}
        }
        check(&meta, &shown)?;
        Ok(real)
    }
}

/// The normal components of `path` (`..` kept, `.` and the root dropped).
fn components(path: &Path) -> Vec<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_owned()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{chown, symlink, PermissionsExt};

    /// A throwaway directory standing in for `/`, owned by whoever runs the test.
    struct Root {
        dir: tempfile::TempDir,
        trust: Trust,
    }

    fn me() -> u32 {
        fs::metadata("/proc/self").expect("proc").uid()
    }

    impl Root {
        fn new() -> Self {
            let dir = tempfile::tempdir().expect("tempdir");
            fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
            let trust = Trust::within(dir.path(), me());
            Root { dir, trust }
        }

        fn path(&self, rel: &str) -> PathBuf {
            self.dir.path().join(rel)
        }

        fn mkdir(&self, rel: &str, mode: u32) -> PathBuf {
            let p = self.path(rel);
            fs::create_dir_all(&p).expect("mkdir");
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).expect("chmod");
            p
        }

        fn file(&self, rel: &str, mode: u32) -> PathBuf {
            let p = self.path(rel);
            fs::write(&p, "#!/bin/sh\n").expect("write");
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).expect("chmod");
            p
        }

        /// A small system: /usr/sbin/xtables-nft-multi, iptables-nft-restore -> it,
        /// /sbin -> usr/sbin, and /usr/sbin/iptables-restore -> /etc/alternatives/... -> it.
        fn system() -> Self {
            let r = Root::new();
            r.mkdir("usr/sbin", 0o755);
            r.mkdir("usr/bin", 0o755);
            r.mkdir("etc/alternatives", 0o755);
            r.file("usr/sbin/xtables-nft-multi", 0o755);
            symlink("xtables-nft-multi", r.path("usr/sbin/iptables-nft-restore")).expect("ln");
            symlink("usr/sbin", r.path("sbin")).expect("ln");
            symlink(
                "/usr/sbin/iptables-nft-restore",
                r.path("etc/alternatives/iptables-restore"),
            )
            .expect("ln");
            symlink(
                "/etc/alternatives/iptables-restore",
                r.path("usr/sbin/iptables-restore"),
            )
            .expect("ln");
            r
        }
    }

    #[test]
    fn a_program_is_resolved_through_every_symlink_hop_to_the_real_file() {
        let r = Root::system();
        let real = r.path("usr/sbin/xtables-nft-multi");
        for name in [
            "iptables-nft-restore",
            "iptables-restore",
            "xtables-nft-multi",
        ] {
            assert_eq!(
                r.trust.find_program(name).expect("trusted"),
                Some(real.clone()),
                "{name}"
            );
        }
        assert_eq!(
            r.trust
                .file(Path::new("/sbin/iptables-restore"))
                .expect("via /sbin"),
            real
        );
        assert_eq!(
            r.trust.find_program("iptables-legacy-restore").expect("ok"),
            None
        );
        assert_eq!(r.trust.find_program("../usr/sbin/x").expect("ok"), None);
    }

    /// One walk for many programs answers as a walk each: a trusted directory shared by the
    /// first programs does not let a later one through an untrusted directory of its own, and
    /// a refusal stays a refusal.
    #[test]
    fn a_walk_for_many_programs_answers_as_a_walk_each() {
        let r = Root::system();
        // A writable directory a link of /usr/sbin points into, and a planted program in it.
        r.mkdir("tmp/drop", 0o777);
        r.file("tmp/drop/evil", 0o755);
        symlink("/tmp/drop/evil", r.path("usr/sbin/iptables-legacy-restore")).expect("ln");
        // A writable /bin, where /sbin and /usr/sbin have no such program.
        r.mkdir("bin", 0o777);
        r.file("bin/ip6tables-nft-save", 0o755);
        let names = [
            "iptables-nft-restore",
            "iptables-legacy-restore",
            "iptables-restore",
            "ip6tables-nft-save",
            "xtables-nft-multi",
            "nothing-here",
        ];
        let one_by_one: Vec<String> = names
            .iter()
            .map(|n| format!("{:?}", r.trust.find_program(n)))
            .collect();
        let together: Vec<String> = r
            .trust
            .find_programs(&names)
            .iter()
            .map(|found| format!("{found:?}"))
            .collect();
        assert_eq!(together, one_by_one);
        assert!(together[1].contains("Writable"), "{}", together[1]);
        assert!(together[3].contains("Writable"), "{}", together[3]);
        assert!(together[4].contains("xtables-nft-multi"), "{}", together[4]);
    }

    #[test]
    fn the_real_system_programs_pass() {
        // The machine running the tests is a real system: /bin/sh is root's, reached through
        // root's directories (reading their owners needs no privilege).
        let sh = Trust::system().find_program("sh").expect("sh is trusted");
        assert!(sh.is_some_and(|p| p.is_file()));
    }

    #[test]
    fn a_group_or_world_writable_directory_on_the_way_is_refused() {
        let r = Root::system();
        for mode in [0o775, 0o757, 0o1777] {
            fs::set_permissions(r.path("usr/sbin"), fs::Permissions::from_mode(mode))
                .expect("chmod");
            let e = r
                .trust
                .find_program("iptables-nft-restore")
                .expect_err("writable dir");
            assert_eq!(
                e.to_string(),
                format!(
                    "failed to trust /usr/sbin/iptables-nft-restore: /usr/sbin on the way to it \
                     is writable by group or others (mode {mode:04o})"
                )
            );
        }
    }

    #[test]
    fn a_writable_program_is_refused() {
        let r = Root::system();
        fs::set_permissions(
            r.path("usr/sbin/xtables-nft-multi"),
            fs::Permissions::from_mode(0o777),
        )
        .expect("chmod");
        let e = r
            .trust
            .find_program("iptables-nft-restore")
            .expect_err("0777");
        assert_eq!(
            e.to_string(),
            "failed to trust /usr/sbin/iptables-nft-restore: /usr/sbin/xtables-nft-multi on the \
             way to it is writable by group or others (mode 0777)"
        );
    }

    #[test]
    fn a_symlink_hop_through_a_writable_directory_is_refused() {
        // /usr/sbin/iptables-restore -> /etc/alternatives/iptables-restore, and the agent can
        // write /etc/alternatives: it could point the link anywhere.
        let r = Root::system();
        fs::set_permissions(
            r.path("etc/alternatives"),
            fs::Permissions::from_mode(0o777),
        )
        .expect("chmod");
        let e = r.trust.find_program("iptables-restore").expect_err("hop");
        assert_eq!(
            e.to_string(),
            "failed to trust /usr/sbin/iptables-restore: /etc/alternatives on the way to it is \
             writable by group or others (mode 0777)"
        );
        // A link pointing into a writable directory is refused the same way.
        let agent = r.mkdir("home/agent/.local/bin", 0o777);
        fs::write(agent.join("planted"), "x").expect("write");
        symlink(
            "/home/agent/.local/bin/planted",
            r.path("usr/sbin/iptables-legacy-restore"),
        )
        .expect("ln");
        let e = r
            .trust
            .find_program("iptables-legacy-restore")
            .expect_err("into writable");
        assert!(
            e.to_string()
                .contains("/home/agent/.local/bin on the way to it is writable"),
            "{e}"
        );
    }

    #[test]
    fn a_file_or_directory_owned_by_another_uid_is_refused() {
        if !jailoc_tests::require_root("this trust test (a file given to another uid)") {
            return;
        }
        let r = Root::system();
        chown(r.path("usr/sbin/xtables-nft-multi"), Some(1000), Some(1000)).expect("chown");
        let e = r
            .trust
            .find_program("iptables-nft-restore")
            .expect_err("owner");
        assert_eq!(
            e.to_string(),
            "failed to trust /usr/sbin/iptables-nft-restore: /usr/sbin/xtables-nft-multi on the \
             way to it is owned by uid 1000, not by root"
        );
        let r = Root::system();
        chown(r.path("usr/sbin"), Some(1000), Some(1000)).expect("chown");
        let e = r.trust.dir(Path::new("/usr/sbin")).expect_err("dir owner");
        assert_eq!(
            e.to_string(),
            "failed to trust /usr/sbin: it is owned by uid 1000, not by root"
        );
    }

    #[test]
    fn the_first_directory_holding_the_name_decides() {
        // A refused program in /usr/sbin is an error, not a reason to try /usr/bin: otherwise
        // whoever can break the first could choose which one runs.
        let r = Root::system();
        r.file("usr/bin/iptables-nft-restore", 0o755);
        fs::set_permissions(
            r.path("usr/sbin/xtables-nft-multi"),
            fs::Permissions::from_mode(0o775),
        )
        .expect("chmod");
        assert!(r.trust.find_program("iptables-nft-restore").is_err());
        // A dangling symlink is "not here": the next directory is asked.
        let r = Root::system();
        symlink("/nowhere", r.path("usr/sbin/cat")).expect("ln");
        let cat = r.file("usr/bin/cat", 0o755);
        assert_eq!(r.trust.find_program("cat").expect("found"), Some(cat));
    }

    #[test]
    fn loops_dots_and_non_files_are_handled() {
        let r = Root::system();
        symlink("loop-b", r.path("usr/sbin/loop-a")).expect("ln");
        symlink("loop-a", r.path("usr/sbin/loop-b")).expect("ln");
        let e = r.trust.find_program("loop-a").expect_err("loop");
        assert!(
            e.to_string().contains("too many levels of symbolic links"),
            "{e}"
        );
        symlink(
            "../sbin/../sbin/./xtables-nft-multi",
            r.path("usr/sbin/dotted"),
        )
        .expect("ln");
        assert_eq!(
            r.trust.find_program("dotted").expect("dots"),
            Some(r.path("usr/sbin/xtables-nft-multi"))
        );
        r.mkdir("usr/sbin/a-dir", 0o755);
        let e = r.trust.find_program("a-dir").expect_err("dir");
        assert!(e.to_string().ends_with("it is not a regular file"), "{e}");
        // `..` never climbs above the root.
        assert_eq!(
            r.trust.dir(Path::new("/../../usr")).expect("root stays"),
            r.path("usr")
        );
        let e = r.trust.file(Path::new("usr/sbin/x")).expect_err("relative");
        assert_eq!(
            e.to_string(),
            "failed to trust usr/sbin/x: it is not an absolute path"
        );
    }
}
