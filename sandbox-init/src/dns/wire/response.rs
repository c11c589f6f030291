//! An upstream resolver's response, read as far as the gate needs it: whether it answers the
//! query, and which addresses it names (the ones the gate opens before relaying it).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::name::{self, Name, Pointers};
use super::reader::Reader;
use super::{flags, types, Header, Query, WireError, MAX_ADDRS};

/// An upstream resolver's response, as far as the gate needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The ID, which must be the query's.
    pub id: u16,
    /// The RCODE of the header (0 = NOERROR, 3 = NXDOMAIN, ...).
    pub rcode: u8,
    /// The TC bit: the answer did not fit (over UDP: ask again over TCP).
    pub truncated: bool,
    /// The question it repeats, name and QTYPE, if it has one.
    pub question: Option<(Name, u16)>,
    /// Every A and AAAA record of class IN in the answer section (the first [`MAX_ADDRS`]),
    /// with its TTL in seconds (a TTL with the top bit set reads as 0, RFC 2181 8).
    pub addrs: Vec<(IpAddr, u32)>,
}

/// Parses a response: at most one question; the answer section record by record, every length
/// checked against the message; names with compression pointers only strictly backwards (see
/// the decoder in `name.rs`); an A record of class IN must have 4 bytes of data, an AAAA 16
/// (anything else is malformed, not skipped); other records are skipped by their RDLENGTH. The
/// authority and additional sections are not read.
pub fn parse_response(msg: &[u8]) -> Result<Response, WireError> {
    let mut r = Reader::new(msg);
    let header = Header::read(&mut r)?;
    if header.flags & flags::QR == 0 {
        return Err(WireError::NotAResponse);
    }
    let opcode = flags::opcode(header.flags);
    if opcode != 0 {
        return Err(WireError::Opcode(opcode));
    }
    let question = match header.qd {
        0 => None,
        1 => {
            let name = name::read(&mut r, Pointers::Backwards)?;
            let qtype = r.u16()?;
            let _qclass = r.u16()?;
            Some((name, qtype))
        }
        n => return Err(WireError::QuestionCount(n)),
    };
    let mut addrs = Vec::new();
    for _ in 0..header.an {
        if let Some(addr) = read_record(&mut r)? {
            if addrs.len() < MAX_ADDRS {
                addrs.push(addr);
            }
        }
    }
    Ok(Response {
        id: header.id,
        rcode: flags::rcode(header.flags),
        truncated: header.flags & flags::TC != 0,
        question,
        addrs,
    })
}

/// Reads one resource record; returns its address and TTL if it is an A or AAAA of class IN.
fn read_record(r: &mut Reader<'_>) -> Result<Option<(IpAddr, u32)>, WireError> {
    name::skip(r, Pointers::Backwards)?;
    let rtype = r.u16()?;
    let class = r.u16()?;
    let ttl = r.u32()?;
    let rdlength = r.u16()?;
    let data = r.take(usize::from(rdlength))?;
    if class != types::IN || (rtype != types::A && rtype != types::AAAA) {
        return Ok(None);
    }
    let addr = match (rtype, <[u8; 4]>::try_from(data), <[u8; 16]>::try_from(data)) {
        (types::A, Ok(v4), _) => IpAddr::V4(Ipv4Addr::from(v4)),
        (types::AAAA, _, Ok(v6)) => IpAddr::V6(Ipv6Addr::from(v6)),
        _ => {
            return Err(WireError::AddressLength {
                rtype,
                len: rdlength,
            })
        }
    };
    let ttl = if ttl > i32::MAX as u32 { 0 } else { ttl };
    Ok(Some((addr, ttl)))
}

/// Whether `response` answers `query`: the same ID, and the same question (name compared
/// case-insensitively, and QTYPE). A response without a question answers nothing.
pub fn answers(query: &Query, response: &Response) -> bool {
    response.id == query.id
        && response
            .question
            .as_ref()
            .is_some_and(|(name, qtype)| *name == query.name && *qtype == query.qtype)
}
