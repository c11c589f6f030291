//! The agent's query, and the two messages the gate builds from it: the refusal it answers
//! itself and the query it sends upstream. Both copy the question as the agent wrote it (its
//! letter case included: a client that mixes case checks that the answer repeats it).

use super::name::{self, Name, Pointers};
use super::reader::Reader;
use super::{flags, types, Header, Rcode, WireError, MAX_UDP_PAYLOAD};

/// A query from the agent, accepted only in the shape a stub resolver sends: QR=0, OPCODE=0
/// (QUERY), one question, no answer or authority records, at most one additional record and
/// that one EDNS (OPT, owned by the root, version 0); the question's name without compression
/// pointers; nothing after the last record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The ID the answer must carry.
    pub id: u16,
    /// The name asked for, lowercase.
    pub name: Name,
    /// QTYPE (1 = A, 28 = AAAA, ...).
    pub qtype: u16,
    /// QCLASS (1 = IN).
    pub qclass: u16,
    /// The RD bit, copied into the answer.
    pub recursion_desired: bool,
    /// The query's EDNS record, if it had one.
    pub edns: Option<Edns>,
    /// The question section as the agent wrote it (at most 259 bytes: name, type, class),
    /// copied into every message built from this query.
    question: Vec<u8>,
}

impl Query {
    /// The same query under another ID (the gate asks upstream under one of its own).
    pub fn with_id(&self, id: u16) -> Query {
        Query { id, ..self.clone() }
    }
}

/// What the gate keeps of a query's EDNS record (RFC 6891); its options are dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edns {
    /// The UDP payload size the client can receive (values below 512 read as 512).
    pub udp_payload: u16,
    /// The DO bit: the client wants DNSSEC records.
    pub dnssec_ok: bool,
}

/// Parses a query from the agent (one UDP datagram, or one TCP message without its length
/// prefix). See [`Query`] for what is accepted.
pub fn parse_query(msg: &[u8]) -> Result<Query, WireError> {
    let mut r = Reader::new(msg);
    let header = Header::read(&mut r)?;
    if header.flags & flags::QR != 0 {
        return Err(WireError::NotAQuery);
    }
    let opcode = flags::opcode(header.flags);
    if opcode != 0 {
        return Err(WireError::Opcode(opcode));
    }
    if header.qd != 1 || header.an != 0 || header.ns != 0 || header.ar > 1 {
        return Err(WireError::QueryCounts {
            qd: header.qd,
            an: header.an,
            ns: header.ns,
            ar: header.ar,
        });
    }
    let start = r.pos();
    let name = name::read(&mut r, Pointers::Refuse)?;
    let qtype = r.u16()?;
    let qclass = r.u16()?;
    let question = msg
        .get(start..r.pos())
        .ok_or(WireError::Truncated)?
        .to_vec();
    let edns = if header.ar == 1 {
        Some(read_edns(&mut r)?)
    } else {
        None
    };
    if r.remaining() > 0 {
        return Err(WireError::TrailingBytes(r.remaining()));
    }
    Ok(Query {
        id: header.id,
        name,
        qtype,
        qclass,
        recursion_desired: header.flags & flags::RD != 0,
        edns,
        question,
    })
}

/// Reads a query's one additional record, which must be EDNS: the root as owner, type OPT,
/// version 0, its options within the message (and otherwise ignored).
fn read_edns(r: &mut Reader<'_>) -> Result<Edns, WireError> {
    let owner = r.u8()?;
    let rtype = r.u16()?;
    if owner != 0 || rtype != types::OPT {
        return Err(WireError::NotEdns);
    }
    let udp_payload = r.u16()?.max(512);
    let [_extended_rcode, version, do_and_z, _z] = r.array()?;
    if version != 0 {
        return Err(WireError::EdnsVersion(version));
    }
    let rdlength = r.u16()?;
    r.take(usize::from(rdlength))?;
    Ok(Edns {
        udp_payload,
        dnssec_ok: do_and_z & 0x80 != 0,
    })
}

/// The answer the gate gives itself, without asking upstream (a name outside the allowlist
/// gets [`Rcode::NxDomain`]): the query's ID, QR=1, OPCODE=0, AA=0, TC=0, RD copied, RA=1, the
/// given RCODE, the question copied verbatim, no records.
pub fn refusal(query: &Query, rcode: Rcode) -> Vec<u8> {
    let mut flags = flags::QR | flags::RA | u16::from(rcode.code());
    if query.recursion_desired {
        flags |= flags::RD;
    }
    let header = Header {
        id: query.id,
        flags,
        qd: 1,
        an: 0,
        ns: 0,
        ar: 0,
    };
    let mut out = Vec::with_capacity(super::HEADER + query.question.len());
    header.write(&mut out);
    out.extend_from_slice(&query.question);
    out
}

/// The query the gate sends upstream for an allowlisted name, built afresh so that nothing the
/// agent chose but the ID, the question and RD leaves the sandbox (no EDNS options, no other
/// flags): the question verbatim and, if the agent's query had EDNS, an OPT record with its
/// payload size (at most [`MAX_UDP_PAYLOAD`]) and DO bit. Its answer can be relayed as it is.
pub fn upstream_query(query: &Query) -> Vec<u8> {
    let header = Header {
        id: query.id,
        flags: if query.recursion_desired {
            flags::RD
        } else {
            0
        },
        qd: 1,
        an: 0,
        ns: 0,
        ar: u16::from(query.edns.is_some()),
    };
    let mut out = Vec::with_capacity(super::HEADER + query.question.len() + 11);
    header.write(&mut out);
    out.extend_from_slice(&query.question);
    if let Some(edns) = query.edns {
        out.push(0); // owner: the root
        out.extend_from_slice(&types::OPT.to_be_bytes());
        out.extend_from_slice(&edns.udp_payload.min(MAX_UDP_PAYLOAD).to_be_bytes());
        let do_bit: u8 = if edns.dnssec_ok { 0x80 } else { 0 };
        out.extend_from_slice(&[0, 0, do_bit, 0]); // extended rcode, version 0, DO, Z
        out.extend_from_slice(&0u16.to_be_bytes()); // no options
    }
    out
}
