//! The one oracle of the egress record's packet fuzzing: the cargo-fuzz target
//! (`fuzz_targets/egress_packet.rs`) and the stable corpus and mutation test
//! (`sandbox-init/tests/egress_packet_corpus.rs`) run every input through [`check`], which
//! panics on any broken promise of `egress::packet` and `egress::nflog`.
//!
//! Each input is read two ways: as the IP packet NFLOG copies (the agent's bytes) and as a whole
//! netlink datagram (the kernel's framing around them). Besides "never panics": the destination
//! is the header's own field, ports only for TCP/UDP and only where the header had them, a
//! routing header only in IPv6; every payload the datagram parser hands out lies inside the
//! datagram.

use sandbox_init::egress::nflog::{self, Message};
use sandbox_init::egress::packet::{self, Proto};
use std::net::IpAddr;

/// Runs `data` through both parsers and checks their promises; panics on a broken one.
pub fn check(data: &[u8]) {
    check_packet(data);
    let range = data.as_ptr_range();
    for message in nflog::parse(data) {
        if let Message::Packet { payload, .. } = message {
            let inner = payload.as_ptr_range();
            assert!(
                range.start <= inner.start && inner.end <= range.end,
                "payload outside the datagram"
            );
            check_packet(payload);
        }
    }
}

fn check_packet(data: &[u8]) {
    let Some(p) = packet::parse(data) else {
        return;
    };
    match p.dest {
        IpAddr::V4(v4) => {
            assert_eq!(data[0] >> 4, 4, "an IPv4 answer from a non-IPv4 header");
            assert_eq!(
                &v4.octets()[..],
                &data[16..20],
                "the IPv4 destination field"
            );
            assert!(!p.routing_header, "a routing header in IPv4");
            assert!(!matches!(p.proto, Proto::Icmpv6), "ICMPv6 in IPv4");
            if p.dest_port.is_some() {
                let header = usize::from(data[0] & 0x0f) * 4;
                assert!(header + 4 <= data.len(), "ports read past the bytes");
            }
        }
        IpAddr::V6(v6) => {
            assert_eq!(data[0] >> 4, 6, "an IPv6 answer from a non-IPv6 header");
            assert_eq!(
                &v6.octets()[..],
                &data[24..40],
                "the IPv6 destination field"
            );
            assert!(!matches!(p.proto, Proto::Icmp), "ICMP (v4) in IPv6");
            if p.dest_port.is_some() {
                assert!(44 <= data.len(), "ports read past the bytes");
            }
        }
    }
    assert_eq!(
        p.src_port.is_some(),
        p.dest_port.is_some(),
        "both ports or neither"
    );
    if p.dest_port.is_some() {
        assert!(
            matches!(p.proto, Proto::Tcp | Proto::Udp),
            "ports for {:?}",
            p.proto
        );
    }
}
