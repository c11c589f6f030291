//! nfnetlink messages as bytes: a writer for the batch sandbox-init sends and a bounded reader
//! for what the kernel answers (errors, dumps). Pure: the socket is `sys::netlink`'s.
//!
//! Layout: `nlmsghdr` (16 bytes) + `nfgenmsg` (family, version 0, resource id) + attributes,
//! each `nla_len` (u16) + `nla_type` (u16, `NLA_F_NESTED` on nests) + data padded to 4 bytes.
//! nf_tables numbers are big-endian inside attributes, headers are host order.

/// `NFNL_SUBSYS_NFTABLES`: the high byte of every nf_tables message type.
const SUBSYS: u16 = 10 << 8;
pub const NEWTABLE: u16 = SUBSYS;
pub const GETTABLE: u16 = SUBSYS | 1;
pub const NEWCHAIN: u16 = SUBSYS | 3;
pub const GETCHAIN: u16 = SUBSYS | 4;
pub const NEWRULE: u16 = SUBSYS | 6;
pub const GETRULE: u16 = SUBSYS | 7;
pub const DELRULE: u16 = SUBSYS | 8;
const BATCH_BEGIN: u16 = 0x10;
const BATCH_END: u16 = 0x11;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;

pub const F_REQUEST: u16 = 0x1;
/// On a dump's message: the objects changed while it was taken (it may be incomplete).
pub const F_DUMP_INTR: u16 = 0x10;
pub const F_DUMP: u16 = 0x300;
pub const F_EXCL: u16 = 0x200;
pub const F_CREATE: u16 = 0x400;
pub const F_APPEND: u16 = 0x800;
const NLA_F_NESTED: u16 = 0x8000;
const TYPE_MASK: u16 = 0x3fff;

/// Writes messages and their attributes into one buffer.
#[derive(Debug, Default)]
pub struct Writer {
    pub buf: Vec<u8>,
    seq: u32,
}

impl Writer {
    /// One message of `kind` with `flags` for `family`; `body` writes its attributes.
    pub fn message(&mut self, kind: u16, flags: u16, family: u8, body: impl FnOnce(&mut Self)) {
        let start = self.buf.len();
        self.seq += 1;
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&self.seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        // nfgenmsg: the batch markers name the subsystem as their resource id.
        let res_id: u16 = if kind == BATCH_BEGIN || kind == BATCH_END {
            10
        } else {
            0
        };
        self.buf.extend_from_slice(&[family, 0]);
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        body(self);
        let len = (self.buf.len() - start) as u32;
        self.buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
    }

    /// Opens a batch (`NFNL_MSG_BATCH_BEGIN`); every message up to [`Writer::end_batch`] is
    /// one transaction: all of it is committed or none.
    pub fn begin_batch(&mut self) {
        self.message(BATCH_BEGIN, F_REQUEST, 0, |_| {});
    }

    pub fn end_batch(&mut self) {
        self.message(BATCH_END, F_REQUEST, 0, |_| {});
    }

    /// An attribute with raw `data`.
    pub fn attr(&mut self, kind: u16, data: &[u8]) {
        self.attr_of(kind, &[data]);
    }

    /// A NUL-terminated string attribute.
    pub fn str(&mut self, kind: u16, s: &str) {
        self.attr_of(kind, &[s.as_bytes(), b"\0"]);
    }

    /// An attribute whose data is `parts` one after the other (no copy into one slice first).
    fn attr_of(&mut self, kind: u16, parts: &[&[u8]]) {
        let len = 4 + parts.iter().map(|p| p.len()).sum::<usize>();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        for part in parts {
            self.buf.extend_from_slice(part);
        }
        self.pad();
    }

    /// A big-endian u32 attribute.
    pub fn be32(&mut self, kind: u16, value: u32) {
        self.attr(kind, &value.to_be_bytes());
    }

    /// A nest of `kind`: `body` writes its children.
    pub fn nest(&mut self, kind: u16, body: impl FnOnce(&mut Self)) {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        body(self);
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }

    fn pad(&mut self) {
        let padded = (self.buf.len() + 3) & !3;
        self.buf.resize(padded, 0);
    }

    /// A writer with room for `bytes` (the batch grows without copying itself over).
    pub fn with_capacity(bytes: usize) -> Self {
        Writer {
            buf: Vec::with_capacity(bytes),
            seq: 0,
        }
    }
}

/// One attribute as read: its type (flags stripped) and data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr<'a> {
    pub kind: u16,
    /// Marked `NLA_F_NESTED`: its data is attributes.
    pub nested: bool,
    pub data: &'a [u8],
}

/// The attributes in `bytes`, in order; reading stops at the first malformed one.
pub fn attrs(bytes: &[u8]) -> Attrs<'_> {
    Attrs { bytes, at: 0 }
}

/// The iterator [`attrs`] returns: it reads the attributes in place.
#[derive(Debug, Clone)]
pub struct Attrs<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Attr<'a>;

    fn next(&mut self) -> Option<Attr<'a>> {
        let at = self.at;
        let head = self.bytes.get(at..at + 4)?;
        let len = usize::from(u16::from_ne_bytes([head[0], head[1]]));
        let raw = u16::from_ne_bytes([head[2], head[3]]);
        let (kind, nested) = (raw & TYPE_MASK, raw & NLA_F_NESTED != 0);
        let Some(data) = (len >= 4)
            .then(|| self.bytes.get(at + 4..at + len))
            .flatten()
        else {
            self.at = self.bytes.len();
            return None;
        };
        self.at = at + ((len + 3) & !3);
        Some(Attr { kind, nested, data })
    }
}

/// The first attribute of `kind` in `bytes`.
pub fn find(bytes: &[u8], kind: u16) -> Option<&[u8]> {
    attrs(bytes).find(|a| a.kind == kind).map(|a| a.data)
}

/// One message as read: type, flags, the nfgenmsg family, and the attributes' bytes (for an
/// `NLMSG_ERROR`, the error number and the request's header follow the netlink header instead).
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub kind: u16,
    pub flags: u16,
    pub family: u8,
    pub body: &'a [u8],
}

impl Message<'_> {
    /// The error an `NLMSG_ERROR` carries (0 is an acknowledgement), or an `NLMSG_DONE` that
    /// ends a dump (0 when the dump is whole).
    pub fn error(&self) -> Option<i32> {
        (self.kind == NLMSG_ERROR || self.kind == NLMSG_DONE)
            .then(|| self.body.get(..4))
            .flatten()
            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// The messages of one datagram; reading stops at the first malformed one.
pub fn messages(datagram: &[u8]) -> Vec<Message<'_>> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(head) = datagram.get(at..at + 16) {
        let len = u32::from_ne_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let kind = u16::from_ne_bytes([head[4], head[5]]);
        let flags = u16::from_ne_bytes([head[6], head[7]]);
        let Some(whole) = (len >= 16).then(|| datagram.get(at..at + len)).flatten() else {
            break;
        };
        let (family, body) = if kind == NLMSG_ERROR || kind == NLMSG_DONE {
            (0, &whole[16..])
        } else {
            (
                whole.get(16).copied().unwrap_or(0),
                whole.get(20..).unwrap_or(&[]),
            )
        };
        out.push(Message {
            kind,
            flags,
            family,
            body,
        });
        at += (len + 3) & !3;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_reads_back_and_lengths_cover_the_padding() {
        let mut w = Writer::default();
        w.message(NEWRULE, F_REQUEST | F_CREATE, 2, |w| {
            w.str(1, "filter");
            w.nest(4, |w| {
                w.be32(1, 7);
                w.attr(2, &[1, 2, 3]);
            });
        });
        let msgs = messages(&w.buf);
        assert_eq!(msgs.len(), 1);
        assert_eq!((msgs[0].kind, msgs[0].family), (NEWRULE, 2));
        assert_eq!(find(msgs[0].body, 1), Some(&b"filter\0"[..]));
        let nest = find(msgs[0].body, 4).expect("nest");
        assert_eq!(find(nest, 1), Some(&[0, 0, 0, 7][..]));
        assert_eq!(find(nest, 2), Some(&[1, 2, 3][..]));
        assert!(w.buf.len().is_multiple_of(4));
    }

    #[test]
    fn truncated_or_lying_lengths_end_the_reading_without_a_panic() {
        let mut w = Writer::default();
        w.message(NEWRULE, F_REQUEST, 2, |w| w.str(1, "filter"));
        let whole = w.buf.clone();
        for cut in 0..whole.len() {
            for m in messages(&whole[..cut]) {
                assert!(attrs(m.body).count() <= 1);
            }
        }
        let mut lying = whole.clone();
        lying[20] = 0xff; // the attribute claims 255 bytes
        assert!(attrs(messages(&lying)[0].body).next().is_none());
        assert!(messages(&[0xff; 15]).is_empty());
    }

    #[test]
    fn any_bytes_read_without_a_panic_and_every_slice_stays_inside() {
        // xorshift64*: the same bytes on every run; lengths drawn small so that they often fit.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32
        };
        fn walk(bytes: &[u8], depth: usize) -> usize {
            attrs(bytes)
                .map(|a| {
                    1 + if depth < 4 {
                        walk(a.data, depth + 1)
                    } else {
                        0
                    }
                })
                .sum()
        }
        for _ in 0..20_000 {
            let len = (next() % 96) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Plausible lengths at the heads, so the reader goes deep.
            if len >= 16 {
                bytes[..4].copy_from_slice(&((next() % 112) as u32).to_ne_bytes());
                bytes[16..20.min(len)].fill(0);
            }
            for m in messages(&bytes) {
                assert!(m.body.len() <= bytes.len());
                let _ = m.error();
                let _ = walk(m.body, 0);
                let _ = find(m.body, (next() % 8) as u16);
            }
            let _ = walk(&bytes, 0);
        }
    }
}
