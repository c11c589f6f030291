//! Where the record lives: the directory PID 1 makes at boot (root's to make, the gate's to
//! write, everyone's to read) and the file the gate appends to. The agent can read the record
//! but neither write nor erase it: it owns neither the directory nor the file.

use crate::log::Log;
use crate::sys;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The record's file name in its directory.
pub const FILE_NAME: &str = "egress.jsonl";

/// Why the directory could not be prepared (a warning: the lines still go to stderr).
#[derive(Debug, thiserror::Error)]
#[error("failed to prepare {}: {cause}", .dir.display())]
pub struct DirError {
    pub dir: PathBuf,
    pub cause: String,
}

/// Makes `dir` (if missing) as root, refusing a symlink, and hands it to the gate: owner
/// `uid`:`gid`, mode 0755. Returns the record file's path in it. Done by PID 1 before the gate
/// starts, through descriptors, so nothing is re-resolved between the checks and the changes.
pub fn prepare(dir: &Path, uid: u32, gid: u32, log: &Log) -> Result<PathBuf, DirError> {
    let fail = |cause: String| DirError {
        dir: dir.to_owned(),
        cause,
    };
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
        return Err(fail("not a directory path".to_owned()));
    };
    let above = sys::open_dir(parent).map_err(|e| fail(format!("{}: {e}", parent.display())))?;
    match sys::mkdir_at(above.as_fd(), name, 0o755) {
        Ok(()) => {}
        Err(sys::Errno(libc::EEXIST)) => {}
        Err(e) => return Err(fail(format!("mkdir: {e}"))),
    }
    // A symlink planted in its place is refused, not followed: said plainly here, and
    // enforced by the open (O_NOFOLLOW | O_DIRECTORY) whatever happens in between.
    match sys::stat_at(above.as_fd(), name) {
        Ok(st) if st.kind == sys::EntryKind::Symlink => {
            return Err(fail("it is a symlink".to_owned()))
        }
        Ok(st) if st.kind != sys::EntryKind::Dir => {
            return Err(fail("it is not a directory".to_owned()))
        }
        _ => {}
    }
    let fd = sys::open_dir_at(above.as_fd(), name).map_err(|e| fail(format!("open: {e}")))?;
    let dir_file = File::from(fd);
    std::os::unix::fs::fchown(&dir_file, Some(uid), Some(gid))
        .map_err(|e| fail(format!("chown: {e}")))?;
    dir_file
        .set_permissions(std::fs::Permissions::from_mode(0o755))
        .map_err(|e| fail(format!("chmod: {e}")))?;
    // Whoever may write the directory above could move the record away and put another in
    // its place: say so (an image's business; `/run` is root's in every common image).
    if let Ok(meta) = File::from(above).metadata() {
        let sticky = meta.mode() & 0o1000 != 0;
        if meta.uid() != 0 || (meta.mode() & 0o022 != 0 && !sticky) {
            log.warn(&format!(
                "egress: {} is writable by others than root: the egress record in it could be replaced",
                parent.display()
            ));
        }
    }
    Ok(dir.join(FILE_NAME))
}

/// Opens the record for appending, as the gate (after its drop): created 0644 if missing; a
/// symlink is refused, and so is a file that is not the gate's own plain file.
pub fn open_record(path: &Path) -> io::Result<File> {
    let file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        // Non-blocking: a FIFO in its place fails to open instead of hanging the gate.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() || meta.nlink() != 1 {
        return Err(io::Error::other("not a plain file"));
    }
    // The file must be the directory's owner's (the gate's): a file someone else left there is
    // not ours to vouch for.
    if let Ok(dir) = std::fs::metadata(path.parent().unwrap_or(Path::new("/"))) {
        if dir.uid() != meta.uid() {
            return Err(io::Error::other(format!(
                "owned by uid {}, not by the gate",
                meta.uid()
            )));
        }
    }
    // The mode whatever the umask was: the agent reads it.
    file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> (u32, u32) {
        let meta = std::fs::metadata("/proc/self").expect("stat");
        (meta.uid(), meta.gid())
    }

    #[test]
    fn the_directory_is_made_with_its_owner_and_mode_and_a_symlink_is_refused() {
        let tmp = tempfile::tempdir().expect("tmp");
        let (uid, gid) = me();
        let dir = tmp.path().join("jailoc-egress");
        let log = Log::default();
        let file = prepare(&dir, uid, gid, &log).expect("prepare");
        assert_eq!(file, dir.join("egress.jsonl"));
        let meta = std::fs::symlink_metadata(&dir).expect("stat");
        assert!(meta.is_dir());
        assert_eq!(meta.mode() & 0o7777, 0o755);
        // Again: an existing directory is kept (a restart).
        prepare(&dir, uid, gid, &log).expect("again");

        let elsewhere = tmp.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).expect("mkdir");
        let link = tmp.path().join("planted");
        std::os::unix::fs::symlink(&elsewhere, &link).expect("symlink");
        let e = prepare(&link, uid, gid, &log).expect_err("a symlink");
        assert_eq!(
            e.to_string(),
            format!("failed to prepare {}: it is a symlink", link.display())
        );
    }

    #[test]
    fn a_missing_or_read_only_parent_is_an_error_not_a_panic() {
        let tmp = tempfile::tempdir().expect("tmp");
        let (uid, gid) = me();
        let dir = tmp.path().join("no-run/jailoc-egress");
        let e = prepare(&dir, uid, gid, &Log::default()).expect_err("no parent");
        assert!(
            e.to_string().starts_with(&format!(
                "failed to prepare {}: {}",
                dir.display(),
                tmp.path().join("no-run").display()
            )),
            "{e}"
        );
        let e = prepare(Path::new("/proc/jailoc-egress"), uid, gid, &Log::default())
            .expect_err("a file system nobody may write");
        assert!(e.to_string().contains("mkdir"), "{e}");
    }

    #[test]
    fn the_record_is_a_plain_file_of_ours_never_a_symlink() {
        let tmp = tempfile::tempdir().expect("tmp");
        let path = tmp.path().join(FILE_NAME);
        let file = open_record(&path).expect("open");
        let meta = file.metadata().expect("stat");
        assert_eq!(meta.mode() & 0o7777, 0o644);
        drop(file);
        std::fs::remove_file(&path).expect("rm");
        std::os::unix::fs::symlink("/etc/passwd", &path).expect("symlink");
        assert!(open_record(&path).is_err(), "a symlink is not followed");
        std::fs::remove_file(&path).expect("rm");
        std::fs::write(tmp.path().join("other"), "").expect("write");
        std::fs::hard_link(tmp.path().join("other"), &path).expect("link");
        assert!(open_record(&path).is_err(), "a hard link is refused");
    }
}
