//! The headers of a refused packet, as the kernel copies them to the gate (NFLOG): the
//! destination, the protocol and the ports. Every byte was written by the agent, so the parser
//! is bounded and total: any input, of any length, gives an answer or `None`, never a panic, and
//! never reads past the bytes it was given (`sandbox-init/fuzz`, `tests/egress_packet_corpus.rs`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The protocol of a refused packet, as the record names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    Tcp,
    Udp,
    Icmp,
    Icmpv6,
    /// Anything else, or a transport header that could not be seen (a later fragment, too many
    /// or truncated IPv6 extension headers).
    Other,
}

impl Proto {
    /// The record's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
            Proto::Icmpv6 => "icmpv6",
            Proto::Other => "other",
        }
    }
}

/// What the record needs of one refused packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    /// The destination address field (with a routing header: its next hop only).
    pub dest: IpAddr,
    pub proto: Proto,
    /// TCP/UDP ports, when the transport header was there to read.
    pub src_port: Option<u16>,
    pub dest_port: Option<u16>,
    /// An IPv6 routing header was among the extension headers.
    pub routing_header: bool,
    /// An IGMP or MLD multicast membership message: the kernel's own for an interface (the
    /// agent, without raw sockets, cannot send one); refused like all multicast, not recorded.
    pub membership: bool,
}

/// IPv6 extension headers walked at most: more than any real packet carries, few enough that
/// a chain of tiny headers costs nothing.
pub const MAX_EXTENSION_HEADERS: usize = 8;

/// The packet in `bytes` (an IPv4 or IPv6 header first, as NFLOG copies it), or `None` when
/// not even the destination is there.
pub fn parse(bytes: &[u8]) -> Option<Packet> {
    match bytes.first()? >> 4 {
        4 => parse_v4(bytes),
        6 => parse_v6(bytes),
        _ => None,
    }
}

fn parse_v4(bytes: &[u8]) -> Option<Packet> {
    let header: &[u8; 20] = bytes.first_chunk::<20>()?;
    let dest = IpAddr::V4(Ipv4Addr::new(
        header[16], header[17], header[18], header[19],
    ));
    let header_len = usize::from(header[0] & 0x0f) * 4;
    if header_len < 20 {
        return None;
    }
    let later_fragment = u16::from_be_bytes([header[6], header[7]]) & 0x1fff != 0;
    let proto = match header[9] {
        6 => Proto::Tcp,
        17 => Proto::Udp,
        1 => Proto::Icmp,
        _ => Proto::Other,
    };
    let transport = if later_fragment {
        None
    } else {
        bytes.get(header_len..)
    };
    let mut packet = with_ports(dest, proto, transport, false);
    packet.membership = header[9] == IGMP;
    Some(packet)
}

fn parse_v6(bytes: &[u8]) -> Option<Packet> {
    let header: &[u8; 40] = bytes.first_chunk::<40>()?;
    let mut dest = [0u8; 16];
    dest.copy_from_slice(&header[24..40]);
    let dest = IpAddr::V6(Ipv6Addr::from(dest));
    let mut walk = Walk {
        next: header[6],
        at: 40,
        routing_header: false,
    };
    // A truncated or endless chain of extension headers still names the destination.
    let (proto, transport) = walk.transport(bytes).unwrap_or((Proto::Other, None));
    let mut packet = with_ports(dest, proto, transport, walk.routing_header);
    packet.membership = proto == Proto::Icmpv6
        && transport
            .and_then(<[u8]>::first)
            .is_some_and(|t| MLD_TYPES.contains(t));
    Some(packet)
}

/// The walk along an IPv6 packet's extension headers.
struct Walk {
    /// The next header's protocol number.
    next: u8,
    /// Where it starts.
    at: usize,
    routing_header: bool,
}

impl Walk {
    /// The transport protocol and its header's bytes (`None` for a later fragment), or `None`
    /// when the chain is cut short or longer than [`MAX_EXTENSION_HEADERS`].
    fn transport<'a>(&mut self, bytes: &'a [u8]) -> Option<(Proto, Option<&'a [u8]>)> {
        for _ in 0..MAX_EXTENSION_HEADERS {
            let at = self.at;
            // Seen even when the header itself is cut short.
            self.routing_header |= self.next == 43;
            let len = match self.next {
                // Hop-by-hop, routing, destination options: 8-byte units after the first 8.
                0 | 43 | 60 => usize::from(*bytes.get(at + 1)?) * 8 + 8,
                // Fragment: fixed 8 bytes; only the first fragment carries the ports.
                44 => {
                    let offset = bytes.get(at + 2..at + 4)?;
                    if u16::from_be_bytes([offset[0], offset[1]]) >> 3 != 0 {
                        return Some((transport_proto(*bytes.get(at)?), None));
                    }
                    8
                }
                // Authentication header: 4-byte units after the first 8.
                51 => usize::from(*bytes.get(at + 1)?) * 4 + 8,
                next => return Some((transport_proto(next), bytes.get(at..))),
            };
            self.next = *bytes.get(at)?;
            self.at = at.checked_add(len)?;
        }
        None
    }
}

/// IGMP's protocol number.
const IGMP: u8 = 2;
/// ICMPv6 types of MLD: listener query, report, done; MLDv2 report.
const MLD_TYPES: [u8; 4] = [130, 131, 132, 143];

fn transport_proto(next: u8) -> Proto {
    match next {
        6 => Proto::Tcp,
        17 => Proto::Udp,
        58 => Proto::Icmpv6,
        _ => Proto::Other,
    }
}

/// The packet with its TCP/UDP ports read from `transport` when it holds them.
fn with_ports(dest: IpAddr, proto: Proto, transport: Option<&[u8]>, rh: bool) -> Packet {
    let ports = match proto {
        Proto::Tcp | Proto::Udp => transport.and_then(|t| t.first_chunk::<4>()),
        _ => None,
    };
    Packet {
        dest,
        proto,
        src_port: ports.map(|p| u16::from_be_bytes([p[0], p[1]])),
        dest_port: ports.map(|p| u16::from_be_bytes([p[2], p[3]])),
        routing_header: rh,
        membership: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4 header (20 bytes) to `dest` with protocol `proto`, then `rest`.
    pub(crate) fn v4(dest: [u8; 4], proto: u8, rest: &[u8]) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0, 172, 17, 0, 2];
        p.extend_from_slice(&dest);
        p.extend_from_slice(rest);
        p
    }

    /// An IPv6 header to `dest` with next header `next`, then `rest`.
    pub(crate) fn v6(dest: &str, next: u8, rest: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, 20, next, 64];
        p.extend_from_slice(&"fd17::2".parse::<Ipv6Addr>().expect("addr").octets());
        p.extend_from_slice(&dest.parse::<Ipv6Addr>().expect("addr").octets());
        p.extend_from_slice(rest);
        p
    }

    const PORTS: &[u8] = &[0xc3, 0x50, 0, 80, 0, 0, 0, 0];

    #[test]
    fn tcp_over_ipv4_gives_destination_and_ports() {
        let p = parse(&v4([169, 254, 169, 254], 6, PORTS)).expect("packet");
        assert_eq!(p.dest.to_string(), "169.254.169.254");
        assert_eq!(p.proto, Proto::Tcp);
        assert_eq!((p.src_port, p.dest_port), (Some(50000), Some(80)));
        assert!(!p.routing_header);
    }

    #[test]
    fn ipv4_options_move_the_ports() {
        let mut p = v4([10, 0, 0, 5], 17, &[1, 1, 1, 1]);
        p[0] = 0x46; // 24-byte header: one word of options
        p.extend_from_slice(&[0x30, 0x39, 0, 22]);
        let p = parse(&p).expect("packet");
        assert_eq!((p.proto, p.dest_port), (Proto::Udp, Some(22)));
    }

    #[test]
    fn a_later_ipv4_fragment_has_no_ports() {
        let mut p = v4([10, 0, 0, 5], 17, PORTS);
        p[7] = 1; // offset 8 bytes
        let p = parse(&p).expect("packet");
        assert_eq!((p.proto, p.dest_port), (Proto::Udp, None));
    }

    #[test]
    fn icmp_has_no_port() {
        let p = parse(&v4([10, 1, 2, 3], 1, &[8, 0, 0, 0])).expect("packet");
        assert_eq!((p.proto, p.dest_port), (Proto::Icmp, None));
        let p = parse(&v6("fd00::1", 58, &[128, 0, 0, 0])).expect("packet");
        assert_eq!((p.proto, p.dest_port), (Proto::Icmpv6, None));
    }

    #[test]
    fn the_kernels_membership_reports_are_told_apart() {
        let mld = parse(&v6("ff02::16", 58, &[143, 0, 0, 0])).expect("packet");
        assert!(mld.membership);
        let echo = parse(&v6("ff02::1", 58, &[128, 0, 0, 0])).expect("packet");
        assert!(!echo.membership);
        let igmp = parse(&v4([224, 0, 0, 22], 2, &[0x22, 0, 0, 0])).expect("packet");
        assert!(igmp.membership);
        assert!(
            !parse(&v4([224, 0, 0, 22], 17, PORTS))
                .expect("udp")
                .membership
        );
    }

    #[test]
    fn ipv6_extension_headers_are_walked_to_the_ports() {
        // Hop-by-hop (8 bytes) → destination options (16 bytes) → TCP.
        let mut rest = vec![60, 0, 0, 0, 0, 0, 0, 0, 6, 1];
        rest.extend_from_slice(&[0; 14]);
        rest.extend_from_slice(PORTS);
        let p = parse(&v6("2001:db8::10", 0, &rest)).expect("packet");
        assert_eq!((p.proto, p.dest_port), (Proto::Tcp, Some(80)));
        assert!(!p.routing_header);
    }

    #[test]
    fn an_ipv6_routing_header_is_seen() {
        // Segment routing header with one 16-byte segment (length 2 units), then UDP.
        let mut rest = vec![17, 2, 4, 0, 0, 0, 0, 0];
        rest.extend_from_slice(&[0; 16]);
        rest.extend_from_slice(PORTS);
        let p = parse(&v6("2001:db8::10", 43, &rest)).expect("packet");
        assert!(p.routing_header);
        assert_eq!((p.proto, p.dest_port), (Proto::Udp, Some(80)));
    }

    #[test]
    fn a_later_ipv6_fragment_has_no_ports() {
        let rest = [6, 0, 0, 0x08, 0, 0, 0, 1];
        let p = parse(&v6("2001:db8::10", 44, &rest)).expect("packet");
        assert_eq!((p.proto, p.dest_port), (Proto::Tcp, None));
        let first = [&[6, 0, 0, 0, 0, 0, 0, 1][..], PORTS].concat();
        let p = parse(&v6("2001:db8::10", 44, &first)).expect("packet");
        assert_eq!((p.proto, p.dest_port), (Proto::Tcp, Some(80)));
    }

    #[test]
    fn too_many_extension_headers_end_as_other() {
        let mut rest = Vec::new();
        for _ in 0..=MAX_EXTENSION_HEADERS {
            rest.extend_from_slice(&[60, 0, 0, 0, 0, 0, 0, 0]);
        }
        let p = parse(&v6("2001:db8::10", 60, &rest)).expect("packet");
        assert_eq!((p.proto, p.dest_port), (Proto::Other, None));
    }

    #[test]
    fn every_truncation_and_garbage_is_answered_without_panic() {
        let mut rh = vec![17, 2, 4, 0, 0, 0, 0, 0];
        rh.extend_from_slice(&[0; 16]);
        rh.extend_from_slice(PORTS);
        let samples = [
            v4([169, 254, 169, 254], 6, PORTS),
            v6("2001:db8::10", 43, &rh),
            v6("2001:db8::10", 44, &[6, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 80]),
            v6(
                "2001:db8::10",
                51,
                &[6, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            ),
        ];
        for sample in &samples {
            let whole = parse(sample).expect("the whole sample parses");
            for len in 0..sample.len() {
                let cut = parse(&sample[..len]);
                let header = if sample[0] >> 4 == 4 { 20 } else { 40 };
                // The destination is there exactly when the fixed header is.
                assert_eq!(cut.is_some(), len >= header, "length {len}");
                if let Some(cut) = cut {
                    assert_eq!(cut.dest, whole.dest);
                }
            }
        }
        // Every byte value in every position of a short buffer: an answer, never a panic.
        for len in 0..48 {
            for byte in 0..=255u8 {
                let mut buf = vec![byte; len];
                if let Some(b) = buf.first_mut() {
                    *b = 0x40 | (byte & 0x0f);
                }
                let _ = parse(&buf);
                if let Some(b) = buf.first_mut() {
                    *b = 0x60;
                }
                let _ = parse(&buf);
            }
        }
        assert_eq!(parse(&[0x45; 19]), None);
        assert_eq!(parse(&[0x44; 20]), None, "a header length below 20");
        assert_eq!(parse(&[0x75; 60]), None, "not IP");
    }
}
