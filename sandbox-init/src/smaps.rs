//! Reading `/proc/self/smaps`: which mappings hold nothing but copies of a file's pages, so PID 1
//! may drop their resident pages (`sys::memory`). Pure, so it lives outside the unsafe module.

/// A mapping from `/proc/self/smaps` whose resident pages are all copies of the file's pages:
/// file-backed, private, not writable, and without anonymous (copied-on-write) pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CleanMapping {
    /// Start address.
    pub start: usize,
    /// Length in bytes.
    pub len: usize,
}

/// Parse `/proc/self/smaps` text into the mappings [`release_clean_file_pages`] may drop.
pub fn clean_file_mappings(smaps: &str) -> Vec<CleanMapping> {
    struct Block {
        start: usize,
        len: usize,
        eligible: bool,
        dirty_or_anon: bool,
    }
    let mut out = Vec::new();
    let mut cur: Option<Block> = None;
    let flush = |b: Option<Block>, out: &mut Vec<CleanMapping>| {
        if let Some(b) = b {
            if b.eligible && !b.dirty_or_anon {
                out.push(CleanMapping {
                    start: b.start,
                    len: b.len,
                });
            }
        }
    };
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-') {
            if let (Ok(start), Ok(end)) =
                (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
            {
                flush(cur.take(), &mut out);
                let perms = fields.next().unwrap_or("");
                let _offset = fields.next();
                let _dev = fields.next();
                let inode = fields.next().unwrap_or("0");
                let path = fields.next().unwrap_or("");
                cur = Some(Block {
                    start,
                    len: end.saturating_sub(start),
                    eligible: inode != "0"
                        && path.starts_with('/')
                        && perms.starts_with('r')
                        && !perms.contains('w')
                        && perms.ends_with('p'),
                    dirty_or_anon: false,
                });
                continue;
            }
        }
        if let Some(b) = cur.as_mut() {
            let kb = |v: Option<&str>| v.and_then(|v| v.parse::<u64>().ok()).unwrap_or(1);
            match first {
                // Anonymous = copied-on-write pages: those differ from the file. (Dirty file
                // pages are the page cache's state, e.g. a freshly written binary: unmapping
                // them loses nothing.)
                "Anonymous:" | "Swap:" if kb(fields.next()) != 0 => b.dirty_or_anon = true,
                _ => {}
            }
        }
    }
    flush(cur.take(), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_clean_read_only_file_mappings_are_released() {
        let smaps = "\
55d0-55e0 r--p 00000000 fe:00 42 /usr/bin/x
Rss: 8 kB
Private_Dirty: 8 kB
Anonymous: 0 kB
55e0-55f0 r-xp 00010000 fe:00 42 /usr/bin/x
Private_Dirty: 0 kB
Anonymous: 0 kB
55f0-5600 r--p 00020000 fe:00 42 /usr/bin/x
Private_Dirty: 8 kB
Anonymous: 8 kB
5600-5610 rw-p 00030000 fe:00 42 /usr/bin/x
Private_Dirty: 0 kB
Anonymous: 0 kB
5610-5620 rw-p 00000000 00:00 0 [heap]
Anonymous: 4 kB
7ff0-7ff2 r-xp 00000000 00:00 0 [vdso]
Anonymous: 0 kB
";
        assert_eq!(
            clean_file_mappings(smaps),
            [
                CleanMapping {
                    start: 0x55d0,
                    len: 0x10
                },
                CleanMapping {
                    start: 0x55e0,
                    len: 0x10
                }
            ]
        );
    }
}
