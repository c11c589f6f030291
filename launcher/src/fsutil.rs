//! Atomic file writes: a reader (or a crash) never sees a half-written generated file.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Writes `data` to `path` via a temp file in the same directory and a rename, with `mode`
/// applied before any byte is written (so a 0600 file is never briefly world-readable).
/// Creates missing parent directories with mode 0700.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no parent"))?;
    create_dir_private(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = open_new(&tmp, mode)?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Like [`write_atomic`], but leaves the file alone when it already holds exactly `data` and
/// has `mode`. Returns true if the file changed.
pub fn write_if_changed(path: &Path, data: &[u8], mode: u32) -> io::Result<bool> {
    if let Ok(old) = fs::read(path) {
        if old == data && mode_of(path) == Some(mode) {
            return Ok(false);
        }
    }
    write_atomic(path, data, mode)?;
    Ok(true)
}

/// Creates `dir` and its parents; new directories get mode 0700.
pub fn create_dir_private(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

#[cfg(unix)]
fn open_new(path: &Path, mode: u32) -> io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = fs::remove_file(path);
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .and_then(|f| {
            // The umask may have cleared bits we asked for (e.g. 0644 under umask 077 is fine,
            // but be exact either way).
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(fs::Permissions::from_mode(mode))?;
            Ok(f)
        })
}

#[cfg(not(unix))]
fn open_new(path: &Path, _mode: u32) -> io::Result<fs::File> {
    fs::File::create(path)
}

/// Reads the regular file at `path` without following a symlink at its last component
/// (`O_NOFOLLOW`) and without blocking on a FIFO or device (`O_NONBLOCK`, then `fstat` must say
/// regular file): for files whose last component someone else may have replaced.
pub fn read_regular_nofollow(path: &Path) -> io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                io::Error::new(io::ErrorKind::InvalidInput, "it is a symbolic link")
            } else {
                e
            }
        })?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "it is not a regular file",
        ));
    }
    let mut data = Vec::new();
    f.read_to_end(&mut data)?;
    Ok(data)
}

/// Puts `data` at `dir/name` (mode `mode`) in a directory someone else can write (the agent's
/// data directory): a temp file with a fresh random name is created `O_EXCL` in `dir` (so it
/// is a new inode, never a planted symlink or FIFO), written, and renamed over `name`. What is
/// at `dir/name` before is never opened, read or followed; a rename replaces a symlink itself.
/// The file gets `dir`'s owner (root's jailoc writing into the agent's directory: the agent must
/// be able to read it), set on the open file, never through the name.
pub fn replace_in_dir(dir: &Path, name: &str, data: &[u8], mode: u32) -> io::Result<()> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let target = dir.join(name);
    let owner = fs::symlink_metadata(dir)?;
    for _ in 0..16 {
        let mut r = [0u8; 8];
        getrandom::fill(&mut r).map_err(|e| io::Error::other(e.to_string()))?;
        let suffix: String = r.iter().map(|b| format!("{b:02x}")).collect();
        let tmp = dir.join(format!(".{name}.jailoc-{suffix}"));
        let mut f = match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        };
        let result = (|| {
            use std::os::unix::fs::PermissionsExt;
            if f.metadata()?.uid() != owner.uid() {
                std::os::unix::fs::fchown(&f, Some(owner.uid()), Some(owner.gid()))?;
            }
            f.set_permissions(fs::Permissions::from_mode(mode))?;
            f.write_all(data)?;
            f.sync_all()?;
            fs::rename(&tmp, &target)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        return result;
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "failed to create a temporary file: every name tried exists",
    ))
}

/// The places the kernel passes through when it resolves `path` (absolute): the location of
/// every symlink it follows, in order, then where it ends (as far as the path exists). Whoever
/// can write any of them decides what `path` names the next time: canonicalising only shows
/// where it leads now, not through whose symlink. At most 40 symlinks are followed (the
/// kernel's limit); a relative `path` is returned as is.
pub fn resolution(path: &Path) -> Vec<PathBuf> {
    use std::path::Component;
    fn parts(p: &Path) -> Vec<std::ffi::OsString> {
        p.components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.to_owned()),
                Component::ParentDir => Some("..".into()),
                _ => None,
            })
            .rev()
            .collect()
    }
    if !path.is_absolute() {
        return vec![path.to_path_buf()];
    }
    let mut hops = Vec::new();
    let mut at = PathBuf::from("/");
    let mut todo = parts(path);
    let mut links = 0;
    while let Some(name) = todo.pop() {
        if name == ".." {
            at.pop();
            continue;
        }
        let next = at.join(&name);
        match fs::symlink_metadata(&next) {
            Ok(m) if m.file_type().is_symlink() && links < 40 => {
                links += 1;
                let target = fs::read_link(&next).unwrap_or_default();
                hops.push(next);
                if target.is_absolute() {
                    at = PathBuf::from("/");
                }
                todo.extend(parts(&target));
            }
            _ => at = next,
        }
    }
    hops.push(at);
    hops
}

/// The permission bits of `path`, if it exists.
pub fn mode_of(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path)
            .ok()
            .map(|m| m.permissions().mode() & 0o7777)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_with_mode_and_replaces_atomically() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("sub/dir/file.yml");
        write_atomic(&p, b"one", 0o600).expect("write");
        assert_eq!(fs::read(&p).expect("read"), b"one");
        assert_eq!(mode_of(&p), Some(0o600));
        assert_eq!(mode_of(p.parent().expect("parent")), Some(0o700));
        assert!(write_if_changed(&p, b"two", 0o600).expect("write"));
        assert!(!write_if_changed(&p, b"two", 0o600).expect("write"));
        assert_eq!(fs::read(&p).expect("read"), b"two");
        let leftovers: Vec<_> = fs::read_dir(p.parent().expect("parent"))
            .expect("readdir")
            .collect();
        assert_eq!(leftovers.len(), 1, "no temp file left behind");
    }
}
