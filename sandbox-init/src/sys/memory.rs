//! Memory: what PID 1 gives back before it settles into supervising.

use crate::smaps::clean_file_mappings;

/// Give freed heap memory back to the kernel (`malloc_trim(0)`), so PID 1's resident set while
/// it supervises holds only what it still uses.
pub fn release_free_memory() {
    // SAFETY: malloc_trim only walks glibc's own heap bookkeeping.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Drop the resident pages of clean, read-only file mappings (mostly the binary's own code and
/// read-only data touched during boot: resolver, TOML, iptables handling). They are identical
/// to the file, so the kernel re-reads any page that is used again; PID 1's resident set while
/// it supervises then holds only what the supervision loop touches. Best effort.
pub fn release_clean_file_pages() {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    for m in clean_file_mappings(&smaps) {
        // SAFETY: the range is a whole private, non-writable, file-backed mapping with no
        // anonymous or dirty page (checked above from smaps, and nothing can write to it since
        // it is not writable): MADV_DONTNEED only drops page-table entries that the next access
        // re-populates from the unchanged file, so no data is lost.
        unsafe {
            libc::madvise(m.start as *mut libc::c_void, m.len, libc::MADV_DONTNEED);
        }
    }
}
