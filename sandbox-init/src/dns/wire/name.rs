//! [`Name`]: a domain name as the gate compares and logs it, and the one decoder of names on the
//! wire, with the pointer rules that keep a hostile message from making it loop.

use std::fmt;

use super::reader::Reader;
use super::{WireError, HEADER, MAX_LABEL, MAX_NAME, MAX_POINTER_HOPS};

/// A domain name: its labels, ASCII letters lowercased (DNS compares names case-insensitively,
/// and clients mix the case of queries on purpose, RFC 5452 "0x20"), and its text for logs.
///
/// Labels are kept as labels: a label `a.b` is not the two labels `a`, `b` (its text spells the
/// dot `\046`). Bytes other than `[a-z0-9-_]` are written `\DDD` in the text (RFC 1035 master
/// files), so a log line never carries a control character, a space or a dot from inside a label.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Name {
    /// The labels as on the wire, each after its length byte, without the root's zero byte
    /// (empty for the root). Lowercase.
    wire: Vec<u8>,
    /// The escaped text, labels joined by `.`; empty for the root.
    text: String,
}

/// Whether a name being read may contain compression pointers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pointers {
    /// None: a query's names (stub resolvers do not compress queries).
    Refuse,
    /// Only strictly backwards, at most [`MAX_POINTER_HOPS`]: a response's names.
    Backwards,
}

impl Name {
    /// The root (`.`), whose text is empty.
    pub fn root() -> Name {
        Name {
            wire: Vec::new(),
            text: String::new(),
        }
    }

    /// A host name written as text (an allowlist entry, `/etc/hosts`): labels of letters, digits,
    /// `-` and `_` separated by dots, an optional trailing dot; `""` and `"."` are the root.
    pub fn from_hostname(text: &str) -> Result<Name, WireError> {
        let text = text.strip_suffix('.').unwrap_or(text);
        let mut wire = Vec::with_capacity(text.len() + 1);
        if !text.is_empty() {
            for label in text.split('.') {
                if label.is_empty() {
                    return Err(WireError::EmptyLabel);
                }
                if label.len() > MAX_LABEL {
                    return Err(WireError::LabelTooLong);
                }
                if !label.bytes().all(|b| is_plain(b.to_ascii_lowercase())) {
                    return Err(WireError::HostnameCharacter);
                }
                wire.push(label.len() as u8);
                wire.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
            }
        }
        if wire.len() + 1 > MAX_NAME {
            return Err(WireError::NameTooLong);
        }
        Ok(Name::from_wire(wire))
    }

    /// The name from its lowercase labels (as [`decode`] collects them).
    fn from_wire(wire: Vec<u8>) -> Name {
        let mut text = String::with_capacity(wire.len());
        for (i, label) in Labels(&wire).enumerate() {
            if i > 0 {
                text.push('.');
            }
            for &b in label {
                if is_plain(b) {
                    text.push(char::from(b));
                } else {
                    text.push_str(&format!("\\{b:03}"));
                }
            }
        }
        Name { wire, text }
    }

    /// The text: lowercase, labels joined by `.`, every byte outside `[a-z0-9-_]` as `\DDD`;
    /// `""` for the root. Safe to put in a log line as it is.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The labels, from the leftmost (`www` of `www.example.com`) to the top-level one; none for
    /// the root. Lowercase, unescaped.
    pub fn labels(&self) -> Labels<'_> {
        Labels(&self.wire)
    }

    /// Whether this is the root.
    pub fn is_root(&self) -> bool {
        self.wire.is_empty()
    }

    /// The length on the wire, the root's zero byte included (at most [`MAX_NAME`]).
    pub fn wire_len(&self) -> usize {
        self.wire.len() + 1
    }

    /// Whether this name is `zone` or below it, label by label: `a.example.com` and
    /// `example.com` are within `example.com`; `badexample.com` and `com` are not.
    pub fn is_within(&self, zone: &Name) -> bool {
        let mut rest: &[u8] = &self.wire;
        loop {
            if rest == zone.wire.as_slice() {
                return true;
            }
            match rest.split_first() {
                Some((&len, tail)) => match tail.get(usize::from(len)..) {
                    Some(next) => rest = next,
                    None => return false,
                },
                None => return false,
            }
        }
    }

    /// Whether this name is below `zone`, not `zone` itself: what a wildcard `*.zone` covers.
    pub fn is_below(&self, zone: &Name) -> bool {
        self.wire.len() > zone.wire.len() && self.is_within(zone)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({:?})", self.text)
    }
}

/// The labels of a [`Name`], leftmost first ([`Name::labels`]).
#[derive(Debug, Clone)]
pub struct Labels<'a>(&'a [u8]);

impl<'a> Iterator for Labels<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let (&len, tail) = self.0.split_first()?;
        let len = usize::from(len);
        let label = tail.get(..len)?;
        self.0 = tail.get(len..).unwrap_or_default();
        Some(label)
    }
}

/// Bytes a name's text shows as they are: lowercase letters, digits, `-` and `_`.
fn is_plain(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
}

/// Reads the name at the cursor and leaves the cursor after it (after its first pointer).
pub(super) fn read(r: &mut Reader<'_>, pointers: Pointers) -> Result<Name, WireError> {
    let mut wire = Vec::new();
    decode(r, pointers, Some(&mut wire))?;
    Ok(Name::from_wire(wire))
}

/// Checks the name at the cursor like [`read`], without keeping it (a record's owner).
pub(super) fn skip(r: &mut Reader<'_>, pointers: Pointers) -> Result<(), WireError> {
    decode(r, pointers, None)
}

/// The one name decoder. Labels are 1..=63 bytes, the whole name at most [`MAX_NAME`] on the
/// wire; length bytes 0x40-0xBF (reserved label types) are refused. A pointer must point into
/// the message after the header and strictly before the start of the name, or of the labels it
/// was reached from: each hop goes strictly backwards, so no chain can loop, and the hop limit
/// bounds how long one can be. Collects the lowercase labels into `out` if given.
fn decode(
    r: &mut Reader<'_>,
    pointers: Pointers,
    mut out: Option<&mut Vec<u8>>,
) -> Result<(), WireError> {
    let msg = r.message();
    let mut pos = r.pos();
    // A pointer must point strictly before this offset.
    let mut limit = pos;
    // Where the cursor goes afterwards: after the first pointer, if there is one.
    let mut resume = None;
    let mut wire_len = 1; // the root's zero byte
    let mut hops = 0;
    loop {
        let len = *msg.get(pos).ok_or(WireError::Truncated)?;
        match len & 0xc0 {
            0x00 if len == 0 => {
                r.seek(resume.unwrap_or(pos + 1));
                return Ok(());
            }
            0x00 => {
                let len = usize::from(len);
                wire_len += 1 + len;
                if wire_len > MAX_NAME {
                    return Err(WireError::NameTooLong);
                }
                let label = msg
                    .get(pos + 1..pos + 1 + len)
                    .ok_or(WireError::Truncated)?;
                if let Some(out) = out.as_deref_mut() {
                    out.push(len as u8);
                    out.extend(label.iter().map(u8::to_ascii_lowercase));
                }
                pos += 1 + len;
            }
            0xc0 => {
                if pointers == Pointers::Refuse {
                    return Err(WireError::PointerInQuery);
                }
                let low = *msg.get(pos + 1).ok_or(WireError::Truncated)?;
                let target = u16::from_be_bytes([len & 0x3f, low]);
                if usize::from(target) >= limit || usize::from(target) < HEADER {
                    return Err(WireError::PointerNotBackwards(target));
                }
                hops += 1;
                if hops > MAX_POINTER_HOPS {
                    return Err(WireError::TooManyPointers);
                }
                resume.get_or_insert(pos + 2);
                limit = usize::from(target);
                pos = limit;
            }
            _ => return Err(WireError::LabelType(len)),
        }
    }
}
