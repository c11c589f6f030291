//! The one oracle of the DNS wire fuzzing: the cargo-fuzz target (`fuzz_targets/dns_wire.rs`)
//! and the stable corpus and mutation test (`sandbox-init/tests/dns_wire_corpus.rs`) both run
//! every input through [`check`], which panics on any broken promise of `dns::wire`.
//!
//! Besides "never panics" it checks what the gate relies on: a refusal parses back as a
//! response with the query's ID and RCODE that answers the query; the upstream query parses
//! back to the same question and is never longer than the agent's query (nothing added); names
//! are well-formed and their log text is plain; and hickory-proto, an independent parser, reads
//! the same question and the same addresses whenever it accepts a message too.

use hickory_proto::op::Message;
use hickory_proto::rr::{DNSClass, RData};
use sandbox_init::dns::wire::{self, Name, Query, Rcode, Response};
use std::net::IpAddr;

/// Runs `data` through every parser and checks their promises; panics on a broken one.
pub fn check(data: &[u8]) {
    if let Ok(query) = wire::parse_query(data) {
        check_query(data, &query);
    }
    if let Ok(response) = wire::parse_response(data) {
        check_response(data, &response);
    }
}

fn check_query(data: &[u8], query: &Query) {
    check_name(&query.name);
    for rcode in [Rcode::ServFail, Rcode::NxDomain, Rcode::Refused] {
        let bytes = wire::refusal(query, rcode);
        let response = wire::parse_response(&bytes).expect("a refusal parses as a response");
        assert_eq!(response.id, query.id, "refusal id");
        assert_eq!(response.rcode, rcode.code(), "refusal rcode");
        assert!(
            !response.truncated && response.addrs.is_empty(),
            "refusal has no records"
        );
        assert!(
            wire::answers(query, &response),
            "a refusal answers its query"
        );
        assert!(wire::parse_query(&bytes).is_err(), "a refusal is no query");
    }
    let upstream = wire::upstream_query(query);
    let again = wire::parse_query(&upstream).expect("the upstream query parses");
    assert_eq!(
        (again.id, &again.name, again.qtype, again.qclass),
        (query.id, &query.name, query.qtype, query.qclass),
        "the upstream query asks the same question"
    );
    assert_eq!(again.recursion_desired, query.recursion_desired);
    assert_eq!(
        again.edns.map(|e| e.dnssec_ok),
        query.edns.map(|e| e.dnssec_ok)
    );
    assert!(
        upstream.len() <= data.len(),
        "the upstream query adds nothing"
    );

    if let Ok(message) = Message::from_vec(data) {
        let theirs = message
            .queries()
            .first()
            .expect("hickory read one question");
        assert_eq!(
            u16::from(theirs.query_type()),
            query.qtype,
            "hickory's qtype"
        );
        assert_labels_eq(&query.name, theirs.name().iter());
    }
}

fn check_response(data: &[u8], response: &Response) {
    assert!(response.addrs.len() <= wire::MAX_ADDRS);
    assert!(response.rcode <= 15);
    for (_, ttl) in &response.addrs {
        assert!(
            *ttl <= i32::MAX as u32,
            "ttl with the top bit set reads as 0"
        );
    }
    if let Some((name, _)) = &response.question {
        check_name(name);
    }
    if let Ok(message) = Message::from_vec(data) {
        if let (Some((name, qtype)), Some(theirs)) = (&response.question, message.queries().first())
        {
            assert_eq!(u16::from(theirs.query_type()), *qtype, "hickory's qtype");
            assert_labels_eq(name, theirs.name().iter());
        }
        let theirs: Vec<(IpAddr, u32)> = message
            .answers()
            .iter()
            .filter(|r| r.dns_class() == DNSClass::IN)
            .filter_map(|r| {
                let ttl = if r.ttl() > i32::MAX as u32 {
                    0
                } else {
                    r.ttl()
                };
                match r.data() {
                    RData::A(a) => Some((IpAddr::V4(a.0), ttl)),
                    RData::AAAA(a) => Some((IpAddr::V6(a.0), ttl)),
                    _ => None,
                }
            })
            .take(wire::MAX_ADDRS)
            .collect();
        assert_eq!(response.addrs, theirs, "hickory reads other addresses");
    }
}

/// A name is well-formed and its text is plain: labels 1..=63 bytes, at most 255 on the wire,
/// text of `[a-z0-9-_.\\]` only, one text label per label, and back from text when plain.
fn check_name(name: &Name) {
    assert!(name.wire_len() <= wire::MAX_NAME);
    for label in name.labels() {
        assert!((1..=wire::MAX_LABEL).contains(&label.len()));
        assert!(
            !label.iter().any(u8::is_ascii_uppercase),
            "labels are lowercase"
        );
    }
    let text = name.as_str();
    assert!(
        text.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.\\".contains(&b)),
        "log text is plain"
    );
    let text_labels = if text.is_empty() {
        0
    } else {
        text.split('.').count()
    };
    assert_eq!(
        text_labels,
        name.labels().count(),
        "a dot in the text is a label boundary"
    );
    if !text.contains('\\') {
        assert_eq!(
            Name::from_hostname(text).as_ref(),
            Ok(name),
            "text round trip"
        );
    }
}

/// Our labels are hickory's, lowercased.
fn assert_labels_eq<'a>(ours: &Name, theirs: impl Iterator<Item = &'a [u8]>) {
    let theirs: Vec<Vec<u8>> = theirs.map(|l| l.to_ascii_lowercase()).collect();
    let ours: Vec<Vec<u8>> = ours.labels().map(<[u8]>::to_vec).collect();
    assert_eq!(ours, theirs, "hickory reads another name");
}
