//! Atomic file writes: a reader (or a crash) never sees a half-written generated file.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

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
