//! The DNS gate's wire format: the agent's queries in, the refusals and upstream queries out, the
//! upstream resolvers' answers read for their addresses. Pure: no I/O, no `unsafe`.
//!
//! Every byte of a query comes from the agent and reaches this code in a process that holds
//! `CAP_NET_ADMIN`, so the parsers never panic, never index without a bounds check, never
//! overflow, and bound every loop by the message length: a pointer chain, a lying count or a
//! length past the end is an error, never more work. A query is held to what a stub resolver
//! sends (one question, no compression, at most one EDNS record, nothing after it); a response is
//! read only as far as the gate needs (the question and the A/AAAA records of the answer).
//!
//! | file | job |
//! |---|---|
//! | `reader.rs` | the bounds-checked cursor every read goes through |
//! | `name.rs` | [`Name`]: decoding (pointer rules), comparison, the escaped text for logs |
//! | `query.rs` | [`parse_query`], and what the gate sends: [`refusal`], [`upstream_query`] |
//! | `response.rs` | [`parse_response`], [`answers`] |

mod name;
mod query;
mod reader;
mod response;
#[cfg(test)]
mod tests;

pub use name::{Labels, Name};
pub use query::{parse_query, refusal, upstream_query, Edns, Query};
pub use response::{answers, parse_response, Response};

/// The largest DNS message: what a TCP length prefix can frame (UDP messages are smaller).
pub const MAX_MESSAGE: usize = 65535;

/// The longest name on the wire, length bytes and the root's zero included (RFC 1035 2.3.4).
pub const MAX_NAME: usize = 255;

/// The longest label (RFC 1035 2.3.4); longer length bytes are other label types or pointers.
pub const MAX_LABEL: usize = 63;

/// Addresses kept from one response; the rest of a longer answer is ignored (and so stays
/// closed). Far above what a resolver returns for one name (a few dozen at most).
pub const MAX_ADDRS: usize = 256;

/// Compression pointers followed while reading one name. Each must point strictly before the
/// last, so a loop is impossible anyway; this bounds a long chain of pointers to pointers.
pub const MAX_POINTER_HOPS: usize = 32;

/// The EDNS UDP payload size the gate asks upstream for at most (the 2020 DNS flag day's value:
/// no IP fragmentation on common paths); an agent's larger offer is lowered to it.
pub const MAX_UDP_PAYLOAD: u16 = 1232;

/// Why a message or a name was refused. The texts are short and carry numbers only, never the
/// message's bytes, so the gate may log them as they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Fewer bytes than the 12-byte header.
    #[error("message of {0} bytes is shorter than a header")]
    TooShort(usize),
    /// More bytes than any DNS message may have.
    #[error("message of {0} bytes is longer than {MAX_MESSAGE}")]
    TooLong(usize),
    /// A field or record runs past the end of the message (counts that lie end here too).
    #[error("message ends inside a field")]
    Truncated,
    /// The QR bit of a query says response.
    #[error("query has the response bit set")]
    NotAQuery,
    /// The QR bit of a response says query.
    #[error("response has the response bit clear")]
    NotAResponse,
    /// An opcode other than QUERY (0).
    #[error("unsupported opcode {0}")]
    Opcode(u8),
    /// A query's section counts are not one question and at most one additional record.
    #[error("query counts qd={qd} an={an} ns={ns} ar={ar} (want qd=1 an=0 ns=0 ar<=1)")]
    QueryCounts {
        /// QDCOUNT.
        qd: u16,
        /// ANCOUNT.
        an: u16,
        /// NSCOUNT.
        ns: u16,
        /// ARCOUNT.
        ar: u16,
    },
    /// A response with more than one question.
    #[error("response has {0} questions")]
    QuestionCount(u16),
    /// A label length byte of the reserved types 0x40 or 0x80 (a label over 63 bytes).
    #[error("label length byte {0:#04x} is neither a label nor a pointer")]
    LabelType(u8),
    /// A name longer than [`MAX_NAME`] on the wire.
    #[error("name longer than {MAX_NAME} bytes")]
    NameTooLong,
    /// A compression pointer where the gate allows none (a query).
    #[error("compression pointer in a query")]
    PointerInQuery,
    /// A compression pointer that does not point strictly before the name it is part of, or
    /// into the header.
    #[error("compression pointer to offset {0} is not backwards")]
    PointerNotBackwards(u16),
    /// More than [`MAX_POINTER_HOPS`] pointers in one name.
    #[error("more than {MAX_POINTER_HOPS} compression pointers in a name")]
    TooManyPointers,
    /// An A or AAAA record of class IN whose data is not 4 or 16 bytes.
    #[error("record of type {rtype} has {len} bytes of data")]
    AddressLength {
        /// The record type (1 or 28).
        rtype: u16,
        /// Its RDLENGTH.
        len: u16,
    },
    /// A query's additional record is not an EDNS OPT record owned by the root.
    #[error("query's additional record is not EDNS")]
    NotEdns,
    /// An EDNS version this gate does not speak (only 0 exists).
    #[error("unsupported EDNS version {0}")]
    EdnsVersion(u8),
    /// Bytes after the last record a query declares.
    #[error("{0} bytes after the end of the query")]
    TrailingBytes(usize),
    /// A host name given as text (an allowlist entry) with an empty label.
    #[error("host name has an empty label")]
    EmptyLabel,
    /// A label over [`MAX_LABEL`] bytes in a host name given as text.
    #[error("host name has a label longer than {MAX_LABEL} bytes")]
    LabelTooLong,
    /// A character other than a letter, a digit, `-` or `_` in a host name given as text.
    #[error("host name has a character other than a letter, a digit, '-' or '_'")]
    HostnameCharacter,
}

/// The response codes the gate answers with itself (RFC 1035 4.1.1, RFC 6895).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rcode {
    /// 2: the gate could not get an answer (upstream failed or answered garbage).
    ServFail = 2,
    /// 3: the name does not exist — what a name outside the allowlist gets.
    NxDomain = 3,
    /// 5: the gate will not answer this (e.g. a query class or type it does not serve).
    Refused = 5,
}

impl Rcode {
    /// The 4-bit value in the header.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// Header flag bits (RFC 1035 4.1.1, RFC 4035 for AD/CD).
mod flags {
    /// Response (1) or query (0).
    pub const QR: u16 = 0x8000;
    /// Truncated: the answer did not fit.
    pub const TC: u16 = 0x0200;
    /// Recursion desired.
    pub const RD: u16 = 0x0100;
    /// Recursion available.
    pub const RA: u16 = 0x0080;

    /// The opcode field.
    pub fn opcode(flags: u16) -> u8 {
        ((flags >> 11) & 0xf) as u8
    }

    /// The (header part of the) response code.
    pub fn rcode(flags: u16) -> u8 {
        (flags & 0xf) as u8
    }
}

/// Record types and classes the gate looks at.
mod types {
    /// IPv4 address.
    pub const A: u16 = 1;
    /// IPv6 address.
    pub const AAAA: u16 = 28;
    /// EDNS pseudo-record (RFC 6891).
    pub const OPT: u16 = 41;
    /// The Internet class.
    pub const IN: u16 = 1;
}

/// The length of the fixed header.
const HEADER: usize = 12;

/// The fixed header: the ID, the flags and the four section counts.
#[derive(Debug, Clone, Copy)]
struct Header {
    id: u16,
    flags: u16,
    qd: u16,
    an: u16,
    ns: u16,
    ar: u16,
}

impl Header {
    /// Reads the header, after checking the message's overall length.
    fn read(r: &mut reader::Reader<'_>) -> Result<Header, WireError> {
        let len = r.message().len();
        if len < HEADER {
            return Err(WireError::TooShort(len));
        }
        if len > MAX_MESSAGE {
            return Err(WireError::TooLong(len));
        }
        Ok(Header {
            id: r.u16()?,
            flags: r.u16()?,
            qd: r.u16()?,
            an: r.u16()?,
            ns: r.u16()?,
            ar: r.u16()?,
        })
    }

    /// Appends the header to `out`.
    fn write(&self, out: &mut Vec<u8>) {
        for field in [self.id, self.flags, self.qd, self.an, self.ns, self.ar] {
            out.extend_from_slice(&field.to_be_bytes());
        }
    }
}
