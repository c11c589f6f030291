//! Files by descriptor: the home fix-up and the secrets walk directories with `openat`, never
//! following a symlink and never re-resolving a path the agent could change.

use super::{check_int, Errno};
use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// What an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A symbolic link (never followed).
    Symlink,
    /// A regular file.
    File,
    /// Anything else (socket, fifo, device).
    Other,
}

/// One entry, as `statx`/`fstatat` see it without following a symlink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryStat {
    /// Its type.
    pub kind: EntryKind,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Hard links to it.
    pub nlink: u64,
    /// The file system (major << 32 | minor).
    pub dev: u64,
    /// The mount it belongs to (`STATX_MNT_ID`), where the kernel reports one (Linux 5.8+).
    pub mnt_id: Option<u64>,
}

fn kind_of(mode: u32) -> EntryKind {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => EntryKind::Dir,
        libc::S_IFLNK => EntryKind::Symlink,
        libc::S_IFREG => EntryKind::File,
        _ => EntryKind::Other,
    }
}

fn c_name(name: &std::ffi::OsStr) -> Result<CString, Errno> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(name.as_bytes()).map_err(|_| Errno(libc::EINVAL))
}

/// `statx(dir, name, AT_SYMLINK_NOFOLLOW)` (an empty `name`: `dir` itself), falling back to
/// `fstatat` where `statx` is missing or filtered (then without a mount id).
pub fn stat_at(dir: BorrowedFd<'_>, name: &std::ffi::OsStr) -> Result<EntryStat, Errno> {
    let cname = c_name(name)?;
    let mut flags = libc::AT_SYMLINK_NOFOLLOW | libc::AT_NO_AUTOMOUNT;
    if name.is_empty() {
        flags |= libc::AT_EMPTY_PATH;
    }
    // SAFETY: all-zero is a valid `statx` for the kernel to overwrite.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    let mask = libc::STATX_TYPE
        | libc::STATX_MODE
        | libc::STATX_UID
        | libc::STATX_GID
        | libc::STATX_NLINK
        | libc::STATX_MNT_ID;
    // SAFETY: `cname` is NUL-terminated, `stx` a live, writable statx buffer, `dir` open.
    let ret = unsafe { libc::statx(dir.as_raw_fd(), cname.as_ptr(), flags, mask, &mut stx) };
    if ret == 0 {
        return Ok(EntryStat {
            kind: kind_of(u32::from(stx.stx_mode)),
            uid: stx.stx_uid,
            gid: stx.stx_gid,
            nlink: u64::from(stx.stx_nlink),
            dev: (u64::from(stx.stx_dev_major) << 32) | u64::from(stx.stx_dev_minor),
            mnt_id: (stx.stx_mask & libc::STATX_MNT_ID != 0).then_some(stx.stx_mnt_id),
        });
    }
    let err = Errno::last();
    if !matches!(err.0, libc::ENOSYS | libc::EPERM) {
        return Err(err);
    }
    // SAFETY: all-zero is a valid `stat` for the kernel to overwrite.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above, with a live `stat` buffer.
    check_int(unsafe { libc::fstatat(dir.as_raw_fd(), cname.as_ptr(), &mut st, flags) })?;
    Ok(EntryStat {
        kind: kind_of(st.st_mode),
        uid: st.st_uid,
        gid: st.st_gid,
        nlink: st.st_nlink,
        dev: (u64::from(libc::major(st.st_dev)) << 32) | u64::from(libc::minor(st.st_dev)),
        mnt_id: None,
    })
}

fn open_raw(dir: libc::c_int, name: &CStr, flags: libc::c_int) -> Result<OwnedFd, Errno> {
    // SAFETY: `name` is NUL-terminated; `dir` is an open descriptor or AT_FDCWD.
    let fd = check_int(unsafe { libc::openat(dir, name.as_ptr(), flags | libc::O_CLOEXEC) })?;
    // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens the directory `path` (symlinks in it followed: for paths root chose, like the
/// policy's home).
pub fn open_dir(path: &std::path::Path) -> Result<OwnedFd, Errno> {
    let cpath = c_name(path.as_os_str())?;
    open_raw(libc::AT_FDCWD, &cpath, libc::O_RDONLY | libc::O_DIRECTORY)
}

/// Opens the directory `name` in `dir`, refusing a symlink (`ELOOP`) or anything else
/// (`ENOTDIR`).
pub fn open_dir_at(dir: BorrowedFd<'_>, name: &std::ffi::OsStr) -> Result<OwnedFd, Errno> {
    let cname = c_name(name)?;
    open_raw(
        dir.as_raw_fd(),
        &cname,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
    )
}

/// Opens the file `name` in `dir` for reading, refusing a symlink (`ELOOP`).
pub fn open_file_at(dir: BorrowedFd<'_>, name: &std::ffi::OsStr) -> Result<OwnedFd, Errno> {
    let cname = c_name(name)?;
    open_raw(
        dir.as_raw_fd(),
        &cname,
        libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NOCTTY,
    )
}

/// `fchownat(dir, name, uid, gid, AT_SYMLINK_NOFOLLOW)`: a symlink itself is re-owned, never
/// its target.
pub fn chown_at(
    dir: BorrowedFd<'_>,
    name: &std::ffi::OsStr,
    uid: u32,
    gid: u32,
) -> Result<(), Errno> {
    let cname = c_name(name)?;
    // SAFETY: `cname` is NUL-terminated; `dir` is open; integer arguments otherwise.
    check_int(unsafe {
        libc::fchownat(
            dir.as_raw_fd(),
            cname.as_ptr(),
            uid,
            gid,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
    .map(drop)
}

/// `mkdirat(dir, name, mode)`.
pub fn mkdir_at(dir: BorrowedFd<'_>, name: &std::ffi::OsStr, mode: u32) -> Result<(), Errno> {
    let cname = c_name(name)?;
    // SAFETY: `cname` is NUL-terminated; `dir` is open.
    check_int(unsafe { libc::mkdirat(dir.as_raw_fd(), cname.as_ptr(), mode) }).map(drop)
}

/// The names in the directory `dir` (without `.` and `..`), read through a duplicate of the
/// descriptor, so `dir` stays usable and is not moved.
pub fn list_dir(dir: BorrowedFd<'_>) -> Result<Vec<std::ffi::OsString>, Errno> {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: F_DUPFD_CLOEXEC on an open descriptor returns a new one we own.
    let dup = check_int(unsafe { libc::fcntl(dir.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) })?;
    // SAFETY: `dup` is a fresh descriptor of a directory; on success the DIR stream owns it.
    let stream = unsafe { libc::fdopendir(dup) };
    if stream.is_null() {
        let err = Errno::last();
        // SAFETY: fdopendir failed, so `dup` is still ours to close.
        unsafe { libc::close(dup) };
        return Err(err);
    }
    // The stream's position is shared with `dir`'s: start at the beginning.
    // SAFETY: `stream` is a valid DIR stream.
    unsafe { libc::rewinddir(stream) };
    let mut names = Vec::new();
    let result = loop {
        // readdir reports an error only through errno: clear it first.
        // SAFETY: __errno_location returns the calling thread's errno slot.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: `stream` is a valid DIR stream; the entry it returns stays valid until the
        // next readdir/closedir on it, and is copied out before then.
        let entry = unsafe { libc::readdir(stream) };
        if entry.is_null() {
            let errno = Errno::last();
            break if errno.0 == 0 { Ok(()) } else { Err(errno) };
        }
        // SAFETY: `d_name` of a returned entry is a NUL-terminated name.
        let name = unsafe { CStr::from_ptr((*entry).d_name.as_ptr()) };
        let bytes = name.to_bytes();
        if bytes != b"." && bytes != b".." {
            names.push(std::ffi::OsStr::from_bytes(bytes).to_owned());
        }
    };
    // SAFETY: `stream` is valid and closed exactly once (closing `dup` with it).
    unsafe { libc::closedir(stream) };
    result.map(|()| names)
}
