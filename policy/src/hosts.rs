//! `allowed_hosts` as a [`Policy`](crate::Policy) holds it: every entry validated, in order, in
//! two allocations however long the list is. Names and wildcard suffixes lie back to back in one
//! buffer and each entry is a few bytes pointing into it, so sandbox-init reads a 10,000-name
//! allowlist at boot without an allocation per name, and its DNS gate gets a copy of it in two
//! `memcpy`s. Entries are read back as [`HostEntryRef`]s, which borrow the buffer.

use crate::entry::{self, HostEntry, HostEntryRef, HostRef};
use crate::EntryError;
use std::fmt;
use std::net::IpAddr;

/// The validated `allowed_hosts` entries, in order (see the module comment).
#[derive(Clone, Default)]
pub struct HostList {
    /// Every name and wildcard suffix, normalised, back to back.
    text: String,
    /// The literal addresses, in order.
    addrs: Vec<IpAddr>,
    /// Entries a slot cannot point at, kept whole: a name longer than a slot's length (the
    /// grammar allows 253 bytes; a [`crate::Host`] built by hand may hold more) or past 4 GiB of text.
    whole: Vec<HostEntry>,
    entries: Vec<Slot>,
}

/// One entry: what it names (a range of `text`, or an index into `addrs` or `whole`) and its
/// port.
#[derive(Debug, Clone, Copy)]
struct Slot {
    kind: Kind,
    /// Into `text` for a name or wildcard, into `addrs` for an address, into `whole`.
    start: u32,
    /// Of the name or suffix in `text`.
    len: u16,
    port: Option<u16>,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Name,
    Wildcard,
    Addr,
    Whole,
}

impl HostList {
    pub fn new() -> Self {
        HostList::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries, in order.
    pub fn iter(&self) -> HostIter<'_> {
        HostIter {
            list: self,
            slots: self.entries.iter(),
        }
    }

    /// The entry at `index` (in order from 0).
    pub fn get(&self, index: usize) -> Option<HostEntryRef<'_>> {
        self.entries.get(index).map(|slot| self.entry(*slot))
    }

    fn entry(&self, slot: Slot) -> HostEntryRef<'_> {
        let start = slot.start as usize;
        // `push` put a whole name there: the range is one.
        let name = || &self.text[start..start + usize::from(slot.len)];
        let host = match slot.kind {
            Kind::Name => HostRef::Name(name()),
            Kind::Wildcard => HostRef::Wildcard(name()),
            Kind::Addr => HostRef::Addr(self.addrs[start]),
            Kind::Whole => return self.whole[start].as_ref(),
        };
        HostEntryRef {
            host,
            port: slot.port,
        }
    }

    /// Room for `entries` more entries with `text` more bytes of names.
    pub fn reserve(&mut self, entries: usize, text: usize) {
        self.entries.reserve(entries);
        self.text.reserve(text);
    }

    /// Appends `entry` (a copy of its name).
    pub fn push(&mut self, entry: HostEntryRef<'_>) {
        let (kind, name) = match entry.host {
            HostRef::Name(name) => (Kind::Name, name),
            HostRef::Wildcard(suffix) => (Kind::Wildcard, suffix),
            HostRef::Addr(addr) => {
                self.addrs.push(addr);
                return self.push_slot(Kind::Addr, self.addrs.len() - 1, 0, entry.port);
            }
        };
        let start = self.text.len();
        match (u32::try_from(start + name.len()), u16::try_from(name.len())) {
            (Ok(_), Ok(len)) => {
                self.text.push_str(name);
                self.push_slot(kind, start, len, entry.port);
            }
            _ => {
                self.whole.push(entry.to_entry());
                self.push_slot(Kind::Whole, self.whole.len() - 1, 0, entry.port);
            }
        }
    }

    fn push_slot(&mut self, kind: Kind, start: usize, len: u16, port: Option<u16>) {
        // Past 4 GiB of names `push` keeps entries whole; 2^32 addresses or whole entries
        // would take 64 GiB and more.
        let Ok(start) = u32::try_from(start) else {
            panic!("a host list of over 2^32 entries");
        };
        self.entries.push(Slot {
            kind,
            start,
            len,
            port,
        });
    }

    /// Parses `text` as an `allowed_hosts` entry ([`crate::parse_host`]'s grammar, its
    /// shortcut included) and appends it. A plain name (the common case) is validated and
    /// copied in one pass, with no `String` of its own.
    pub(crate) fn push_parsed(&mut self, text: &str) -> Result<(), EntryError> {
        if entry::is_plain_name(text) {
            self.push(HostEntryRef {
                host: HostRef::Name(text),
                port: None,
            });
        } else {
            self.push(entry::parse_host_whole(text)?.as_ref());
        }
        Ok(())
    }

    /// Keeps the first of equal entries, in order.
    pub fn dedup(&mut self) {
        let first = crate::first_occurrences(self.iter());
        let mut first = first.into_iter();
        self.entries.retain(|_| first.next().unwrap_or(true));
    }
}

impl PartialEq for HostList {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for HostList {}

impl fmt::Debug for HostList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The entries of a [`HostList`], in order.
#[derive(Debug, Clone)]
pub struct HostIter<'a> {
    list: &'a HostList,
    slots: std::slice::Iter<'a, Slot>,
}

impl<'a> Iterator for HostIter<'a> {
    type Item = HostEntryRef<'a>;

    fn next(&mut self) -> Option<HostEntryRef<'a>> {
        self.slots.next().map(|slot| self.list.entry(*slot))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.slots.size_hint()
    }
}

impl ExactSizeIterator for HostIter<'_> {}

impl<'a> IntoIterator for &'a HostList {
    type Item = HostEntryRef<'a>;
    type IntoIter = HostIter<'a>;

    fn into_iter(self) -> HostIter<'a> {
        self.iter()
    }
}

impl<'a> FromIterator<HostEntryRef<'a>> for HostList {
    fn from_iter<I: IntoIterator<Item = HostEntryRef<'a>>>(iter: I) -> Self {
        let mut list = HostList::new();
        list.extend(iter);
        list
    }
}

impl<'a> Extend<HostEntryRef<'a>> for HostList {
    fn extend<I: IntoIterator<Item = HostEntryRef<'a>>>(&mut self, iter: I) {
        for entry in iter {
            self.push(entry);
        }
    }
}

impl FromIterator<HostEntry> for HostList {
    fn from_iter<I: IntoIterator<Item = HostEntry>>(iter: I) -> Self {
        let mut list = HostList::new();
        for entry in iter {
            list.push(entry.as_ref());
        }
        list
    }
}

impl<'a> FromIterator<&'a HostEntry> for HostList {
    fn from_iter<I: IntoIterator<Item = &'a HostEntry>>(iter: I) -> Self {
        iter.into_iter().map(HostEntry::as_ref).collect()
    }
}

impl From<Vec<HostEntry>> for HostList {
    fn from(entries: Vec<HostEntry>) -> Self {
        entries.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse_host, Host};

    fn list(entries: &[&str]) -> HostList {
        let mut list = HostList::new();
        for e in entries {
            list.push_parsed(e).expect("valid entry");
        }
        list
    }

    fn texts(list: &HostList) -> Vec<String> {
        list.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn entries_read_back_in_order_as_the_grammar_parsed_them() {
        let written = [
            "pypi.org",
            "PyPI.org.",
            "*.example.com:443",
            "10.0.0.1",
            "[fd00::5]:8080",
            "b.example:80",
            "1.2.3.4:22",
        ];
        let list = list(&written);
        assert_eq!(list.len(), written.len());
        let parsed: Vec<HostEntry> = written
            .iter()
            .map(|e| parse_host(e).expect("entry"))
            .collect();
        let back: Vec<HostEntry> = list.iter().map(|e| e.to_entry()).collect();
        assert_eq!(back, parsed);
        assert_eq!(
            texts(&list),
            [
                "pypi.org",
                "pypi.org",
                "*.example.com:443",
                "10.0.0.1",
                "[fd00::5]:8080",
                "b.example:80",
                "1.2.3.4:22"
            ]
        );
        assert_eq!(HostList::from(parsed), list);
    }

    #[test]
    fn an_invalid_entry_is_refused_and_leaves_the_list_as_it_was() {
        let mut l = list(&["a.example"]);
        for bad in [
            "*.com",
            "a b",
            "10.0.0.0/8",
            "x.example:0",
            "",
            "a*.example",
        ] {
            assert_eq!(
                l.push_parsed(bad),
                parse_host(bad).map(|_| ()),
                "{bad:?} must fail as parse_host fails"
            );
        }
        assert_eq!(texts(&l), ["a.example"]);
    }

    /// Found by the red team: a slot's 16-bit length cut a longer name (inside a character, it
    /// read back as ""). Such names never come from the grammar; built by hand, they are kept
    /// whole.
    #[test]
    fn a_name_longer_than_a_slot_reads_back_whole() {
        let long = [
            Host::Name("a".repeat(70_000)),
            Host::Wildcard(format!("{}\u{e9}", "b".repeat(65_534))),
        ];
        let entries: Vec<HostEntry> = long
            .into_iter()
            .map(|host| HostEntry {
                host,
                port: Some(8),
            })
            .chain([parse_host("c.example").expect("entry")])
            .collect();
        let list = HostList::from(entries.clone());
        let back: Vec<HostEntry> = list.iter().map(|e| e.to_entry()).collect();
        assert_eq!(back, entries);
    }

    #[test]
    fn dedup_keeps_the_first_of_equal_entries_and_tells_ports_and_kinds_apart() {
        let mut l = list(&[
            "a.example",
            "a.example:80",
            "A.example.",
            "*.a.example",
            "a.example:80",
            "10.0.0.1",
            "10.0.0.1:80",
            "10.0.0.1",
        ]);
        l.dedup();
        assert_eq!(
            texts(&l),
            [
                "a.example",
                "a.example:80",
                "*.a.example",
                "10.0.0.1",
                "10.0.0.1:80"
            ]
        );
    }

    #[test]
    fn lists_are_equal_when_their_entries_are_whatever_their_buffers_hold() {
        let mut with_dups = list(&["x.example", "y.example", "x.example"]);
        with_dups.dedup();
        assert_eq!(with_dups, list(&["x.example", "y.example"]));
        assert_ne!(list(&["x.example"]), list(&["x.example:1"]));
        assert_ne!(list(&["x.example"]), list(&["x.example", "x.example"]));
        assert_eq!(
            format!("{:?}", list(&["x.example:1"])),
            format!("{:?}", [parse_host("x.example:1").expect("entry").as_ref()])
        );
    }
}
