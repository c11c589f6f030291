//! Messages built byte by byte as resolvers and stub resolvers send them, and the attacks a
//! hostile agent or a broken upstream can make with them.

use std::net::IpAddr;

use super::*;

// ---- building messages ----------------------------------------------------------------------

/// A name on the wire from dotted text (no escapes: use [`labels`] for odd labels).
fn name(text: &str) -> Vec<u8> {
    let parts: Vec<&[u8]> = text
        .split('.')
        .filter(|l| !l.is_empty())
        .map(str::as_bytes)
        .collect();
    labels(&parts)
}

/// A name on the wire from raw labels, ended by the root.
fn labels(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for label in parts {
        out.push(label.len() as u8);
        out.extend_from_slice(label);
    }
    out.push(0);
    out
}

/// A compression pointer to `offset`.
fn pointer(offset: u16) -> Vec<u8> {
    (0xc000 | offset).to_be_bytes().to_vec()
}

fn header(id: u16, flags: u16, counts: [u16; 4]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    for c in counts {
        out.extend_from_slice(&c.to_be_bytes());
    }
    out
}

fn question(name: &[u8], qtype: u16, qclass: u16) -> Vec<u8> {
    let mut out = name.to_vec();
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&qclass.to_be_bytes());
    out
}

fn record(owner: &[u8], rtype: u16, class: u16, ttl: u32, data: &[u8]) -> Vec<u8> {
    let mut out = owner.to_vec();
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&class.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
    out
}

/// An EDNS OPT record as `dig` sends it (payload 1232, a client cookie).
fn opt_with_cookie(payload: u16, dnssec_ok: bool) -> Vec<u8> {
    let mut options = vec![0, 10, 0, 8]; // COOKIE, 8 bytes
    options.extend_from_slice(b"\x13\x37\xc0\xff\xee\x00\x11\x22");
    let ttl = if dnssec_ok { 0x8000 } else { 0 };
    record(&[0], 41, payload, ttl, &options)
}

fn concat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

const A: u16 = 1;
const AAAA: u16 = 28;
const CNAME: u16 = 5;
const IN: u16 = 1;
const RD: u16 = 0x0100;

/// `dig www.Example.COM A` as it goes out: RD and AD set, EDNS with a cookie.
fn dig_query() -> Vec<u8> {
    concat(&[
        &header(0xbeef, RD | 0x0020, [1, 0, 0, 1]),
        &question(&name("www.Example.COM"), A, IN),
        &opt_with_cookie(1232, false),
    ])
}

/// A recursive resolver's answer to [`dig_query`]: a CNAME and two A records, compressed.
fn resolver_answer() -> Vec<u8> {
    // www.example.com sits at 12; example.com at 16; the CNAME target edge.example.net follows.
    let cname_data = concat(&[&[4], b"edge", &[7], b"example", &[3], b"net", &[0]]);
    let first = concat(&[
        &header(0xbeef, 0x8180, [1, 3, 0, 0]),
        &question(&name("www.example.com"), A, IN),
    ]);
    let cname = record(&pointer(12), CNAME, IN, 300, &cname_data);
    let target_at = (first.len() + 12) as u16; // owner pointer (2) + type/class/ttl/len (10)
    concat(&[
        &first,
        &cname,
        &record(&pointer(target_at), A, IN, 60, &[192, 0, 2, 10]),
        &record(&pointer(target_at), A, IN, 0x8000_0000, &[198, 51, 100, 7]),
    ])
}

// ---- queries ------------------------------------------------------------------------------------

#[test]
fn a_query_as_dig_sends_it_parses_lowercased_with_its_edns() {
    let q = parse_query(&dig_query()).expect("valid query");
    assert_eq!(q.id, 0xbeef);
    assert_eq!(q.name.as_str(), "www.example.com");
    assert_eq!(q.qtype, A);
    assert_eq!(q.qclass, IN);
    assert!(q.recursion_desired);
    assert_eq!(
        q.edns,
        Some(Edns {
            udp_payload: 1232,
            dnssec_ok: false
        })
    );
    let labels: Vec<&[u8]> = q.name.labels().collect();
    assert_eq!(labels, [&b"www"[..], b"example", b"com"]);
}

#[test]
fn a_query_without_edns_or_rd_parses() {
    let msg = concat(&[
        &header(7, 0, [1, 0, 0, 0]),
        &question(&name("a.b"), AAAA, IN),
    ]);
    let q = parse_query(&msg).expect("valid query");
    assert_eq!((q.id, q.qtype, q.edns), (7, AAAA, None));
    assert!(!q.recursion_desired);
}

#[test]
fn a_query_for_the_root_parses_with_empty_text() {
    let msg = concat(&[&header(1, RD, [1, 0, 0, 0]), &question(&[0], 2, IN)]);
    let q = parse_query(&msg).expect("root query");
    assert!(q.name.is_root());
    assert_eq!(q.name.as_str(), "");
}

#[test]
fn queries_of_other_shapes_are_refused() {
    let q = question(&name("example.com"), A, IN);
    let cases: Vec<(Vec<u8>, WireError)> = vec![
        (
            concat(&[&header(1, 0x8000, [1, 0, 0, 0]), &q]),
            WireError::NotAQuery,
        ),
        (
            concat(&[&header(1, 1 << 11, [1, 0, 0, 0]), &q]),
            WireError::Opcode(1),
        ),
        (
            concat(&[&header(1, 5 << 11, [1, 0, 0, 0]), &q]),
            WireError::Opcode(5),
        ),
        (
            header(1, 0, [0, 0, 0, 0]),
            WireError::QueryCounts {
                qd: 0,
                an: 0,
                ns: 0,
                ar: 0,
            },
        ),
        (
            concat(&[&header(1, 0, [2, 0, 0, 0]), &q, &q]),
            WireError::QueryCounts {
                qd: 2,
                an: 0,
                ns: 0,
                ar: 0,
            },
        ),
        (
            concat(&[
                &header(1, 0, [1, 1, 0, 0]),
                &q,
                &record(&[0], A, IN, 1, &[0; 4]),
            ]),
            WireError::QueryCounts {
                qd: 1,
                an: 1,
                ns: 0,
                ar: 0,
            },
        ),
        (
            concat(&[
                &header(1, 0, [1, 0, 1, 0]),
                &q,
                &record(&[0], A, IN, 1, &[0; 4]),
            ]),
            WireError::QueryCounts {
                qd: 1,
                an: 0,
                ns: 1,
                ar: 0,
            },
        ),
        (
            concat(&[
                &header(1, 0, [1, 0, 0, 2]),
                &q,
                &opt_with_cookie(512, false),
            ]),
            WireError::QueryCounts {
                qd: 1,
                an: 0,
                ns: 0,
                ar: 2,
            },
        ),
        // The additional record is a TXT carrying data, not EDNS.
        (
            concat(&[
                &header(1, 0, [1, 0, 0, 1]),
                &q,
                &record(&[0], 16, IN, 0, b"\x05hello"),
            ]),
            WireError::NotEdns,
        ),
        // OPT owned by a name other than the root.
        (
            concat(&[
                &header(1, 0, [1, 0, 0, 1]),
                &q,
                &record(&name("x"), 41, 512, 0, &[]),
            ]),
            WireError::NotEdns,
        ),
        (
            concat(&[
                &header(1, 0, [1, 0, 0, 1]),
                &q,
                &record(&[0], 41, 512, 0x0001_0000, &[]),
            ]),
            WireError::EdnsVersion(1),
        ),
        (
            concat(&[&header(1, 0, [1, 0, 0, 0]), &q, b"exfil"]),
            WireError::TrailingBytes(5),
        ),
        (
            concat(&[
                &header(1, 0, [1, 0, 0, 1]),
                &q,
                &opt_with_cookie(512, false),
                &[0],
            ]),
            WireError::TrailingBytes(1),
        ),
        (vec![0; 11], WireError::TooShort(11)),
        (vec![], WireError::TooShort(0)),
    ];
    for (msg, want) in cases {
        assert_eq!(parse_query(&msg), Err(want.clone()), "{want}");
    }
}

#[test]
fn a_message_longer_than_tcp_can_frame_is_refused() {
    let mut msg = concat(&[&header(1, 0, [1, 0, 0, 0]), &question(&name("a"), A, IN)]);
    msg.resize(MAX_MESSAGE + 1, 0);
    assert_eq!(parse_query(&msg), Err(WireError::TooLong(MAX_MESSAGE + 1)));
    assert_eq!(
        parse_response(&msg),
        Err(WireError::TooLong(MAX_MESSAGE + 1))
    );
}

#[test]
fn a_compression_pointer_in_a_query_is_refused() {
    // "www" then a pointer back to the header: a query never needs one.
    let name = concat(&[&[3], b"www", &pointer(12)]);
    let msg = concat(&[&header(1, 0, [1, 0, 0, 0]), &question(&name, A, IN)]);
    assert_eq!(parse_query(&msg), Err(WireError::PointerInQuery));
}

#[test]
fn label_lengths_over_63_are_refused_as_reserved_label_types() {
    for len_byte in [0x40u8, 0x7f, 0x80, 0xbf] {
        let mut name = vec![len_byte];
        name.extend(std::iter::repeat_n(b'a', usize::from(len_byte & 0x3f)));
        name.push(0);
        let msg = concat(&[&header(1, 0, [1, 0, 0, 0]), &question(&name, A, IN)]);
        assert_eq!(parse_query(&msg), Err(WireError::LabelType(len_byte)));
    }
    let ok = labels(&[&[b'a'; 63], b"com"]);
    let msg = concat(&[&header(1, 0, [1, 0, 0, 0]), &question(&ok, A, IN)]);
    assert!(parse_query(&msg).is_ok(), "a 63-byte label is valid");
}

#[test]
fn names_over_255_bytes_are_refused_and_255_is_accepted() {
    // 3 labels of 63 (192 bytes) + one of 61 (62) + root = 255.
    let l63 = [b'x'; 63];
    let at_limit = labels(&[&l63, &l63, &l63, &[b'y'; 61]]);
    assert_eq!(at_limit.len(), 255);
    let over = labels(&[&l63, &l63, &l63, &[b'y'; 62]]);
    let query = |n: &[u8]| concat(&[&header(1, 0, [1, 0, 0, 0]), &question(n, A, IN)]);
    let q = parse_query(&query(&at_limit)).expect("255 bytes");
    assert_eq!(q.name.wire_len(), 255);
    assert_eq!(parse_query(&query(&over)), Err(WireError::NameTooLong));
    // The same through compression: each piece is short, the whole is not.
    let mut msg = concat(&[
        &header(1, 0x8180, [1, 1, 0, 0]),
        &question(&labels(&[&l63, &l63, &l63]), A, IN),
    ]);
    let long = concat(&[&[62], &[b'y'; 62], &pointer(12)]);
    msg.extend(record(&long, A, IN, 1, &[192, 0, 2, 1]));
    assert_eq!(parse_response(&msg), Err(WireError::NameTooLong));
}

#[test]
fn every_prefix_of_a_valid_query_is_an_error_never_a_panic() {
    for msg in [
        dig_query(),
        upstream_query(&parse_query(&dig_query()).expect("valid")),
    ] {
        for len in 0..msg.len() {
            assert!(
                parse_query(&msg[..len]).is_err(),
                "prefix of {len} bytes parsed"
            );
        }
        assert!(parse_query(&msg).is_ok());
    }
}

#[test]
fn mixed_case_is_one_name_and_the_refusal_repeats_the_agents_case() {
    let q = parse_query(&dig_query()).expect("valid");
    let lower = concat(&[
        &header(0xbeef, RD, [1, 0, 0, 0]),
        &question(&name("WWW.example.com"), A, IN),
    ]);
    assert_eq!(parse_query(&lower).expect("valid").name, q.name);
    let refused = refusal(&q, Rcode::NxDomain);
    assert!(
        refused.windows(7).any(|w| w == b"Example"),
        "the question is copied with its case"
    );
}

// ---- refusals and upstream queries --------------------------------------------------------------

#[test]
fn a_refusal_is_the_question_with_the_header_the_brief_asks_for() {
    let q = parse_query(&dig_query()).expect("valid");
    let refused = refusal(&q, Rcode::NxDomain);
    // id, QR=1 OPCODE=0 AA=0 TC=0 RD=1 | RA=1 Z/AD/CD=0 RCODE=3, qd=1 an=ns=ar=0.
    let mut want = vec![0xbe, 0xef, 0x81, 0x83, 0, 1, 0, 0, 0, 0, 0, 0];
    want.extend(question(&name("www.Example.COM"), A, IN));
    assert_eq!(refused, want);

    let r = parse_response(&refused).expect("a refusal is a response");
    assert_eq!((r.id, r.rcode, r.truncated), (0xbeef, 3, false));
    assert!(r.addrs.is_empty());
    assert!(answers(&q, &r));
    assert_eq!(parse_query(&refused), Err(WireError::NotAQuery));
}

#[test]
fn a_refusal_copies_rd_clear_and_carries_each_rcode() {
    let msg = concat(&[&header(9, 0, [1, 0, 0, 0]), &question(&name("x.y"), A, IN)]);
    let q = parse_query(&msg).expect("valid");
    for (rcode, code) in [
        (Rcode::ServFail, 2),
        (Rcode::NxDomain, 3),
        (Rcode::Refused, 5),
    ] {
        let refused = refusal(&q, rcode);
        assert_eq!(
            refused[2..4],
            [0x80, 0x80 | code],
            "RD clear, RA set, rcode {code}"
        );
        assert_eq!(parse_response(&refused).expect("response").rcode, code);
    }
}

#[test]
fn the_upstream_query_drops_the_agents_edns_options_and_caps_the_payload() {
    let msg = concat(&[
        &header(0x1234, RD | 0x0020 | 0x0010, [1, 0, 0, 1]),
        &question(&name("Pypi.org"), AAAA, IN),
        &opt_with_cookie(4096, true),
    ]);
    let q = parse_query(&msg).expect("valid");
    let up = upstream_query(&q);
    let mut want = header(0x1234, RD, [1, 0, 0, 1]);
    want.extend(question(&name("Pypi.org"), AAAA, IN));
    want.extend([0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 0]); // OPT, 1232, DO, no options
    assert_eq!(up, want);
    let again = parse_query(&up).expect("the upstream query is a valid query");
    assert_eq!(
        (again.id, &again.name, again.qtype),
        (q.id, &q.name, q.qtype)
    );
    assert!(!up
        .windows(8)
        .any(|w| w == b"\x13\x37\xc0\xff\xee\x00\x11\x22"));

    let plain = concat(&[&header(5, 0, [1, 0, 0, 0]), &question(&name("a.b"), A, IN)]);
    let q = parse_query(&plain).expect("valid");
    assert_eq!(upstream_query(&q), plain, "no EDNS in, none out");
}

// ---- responses ----------------------------------------------------------------------------------

#[test]
fn a_resolvers_answer_gives_its_addresses_and_ttls() {
    let r = parse_response(&resolver_answer()).expect("valid answer");
    assert_eq!(r.id, 0xbeef);
    assert_eq!(r.rcode, 0);
    assert!(!r.truncated);
    let (name, qtype) = r.question.clone().expect("question");
    assert_eq!((name.as_str(), qtype), ("www.example.com", A));
    let ip = |s: &str| s.parse::<IpAddr>().expect("address");
    // The second TTL has its top bit set: read as 0 (RFC 2181 8).
    assert_eq!(r.addrs, [(ip("192.0.2.10"), 60), (ip("198.51.100.7"), 0)]);
    assert!(answers(&parse_query(&dig_query()).expect("valid"), &r));
}

#[test]
fn aaaa_records_are_read_and_other_classes_and_types_skipped() {
    let v6: [u8; 16] = "2001:db8::1"
        .parse::<std::net::Ipv6Addr>()
        .expect("v6")
        .octets();
    let msg = concat(&[
        &header(2, 0x8180, [1, 4, 0, 0]),
        &question(&name("v6.example"), AAAA, IN),
        &record(&pointer(12), AAAA, IN, 30, &v6),
        &record(&pointer(12), A, 3, 30, &[1, 2, 3]), // class CH: skipped, any length
        &record(&pointer(12), 16, IN, 30, b"\x03txt"),
        &record(&pointer(12), AAAA, IN, 40, &v6),
    ]);
    let r = parse_response(&msg).expect("valid");
    assert_eq!(r.addrs.len(), 2);
    assert_eq!(r.addrs[1], ("2001:db8::1".parse().expect("v6"), 40));
}

#[test]
fn address_records_of_the_wrong_length_are_malformed() {
    for (rtype, data) in [
        (A, &[1u8, 2, 3, 4, 5][..]),
        (A, &[]),
        (AAAA, &[0; 4]),
        (AAAA, &[0; 17]),
    ] {
        let msg = concat(&[
            &header(2, 0x8180, [1, 1, 0, 0]),
            &question(&name("x.example"), rtype, IN),
            &record(&pointer(12), rtype, IN, 30, data),
        ]);
        let want = WireError::AddressLength {
            rtype,
            len: data.len() as u16,
        };
        assert_eq!(parse_response(&msg), Err(want));
    }
}

#[test]
fn an_rdlength_past_the_end_or_a_count_that_lies_is_truncated() {
    let mut past = concat(&[
        &header(2, 0x8180, [1, 1, 0, 0]),
        &question(&name("x.example"), A, IN),
        &record(&pointer(12), A, IN, 30, &[192, 0, 2, 1]),
    ]);
    let rdlength_at = past.len() - 6;
    past[rdlength_at..rdlength_at + 2].copy_from_slice(&0xffffu16.to_be_bytes());
    assert_eq!(parse_response(&past), Err(WireError::Truncated));

    let mut lying = resolver_answer();
    lying[6..8].copy_from_slice(&65535u16.to_be_bytes()); // ANCOUNT 65535, 3 present
    assert_eq!(parse_response(&lying), Err(WireError::Truncated));
    lying[4..6].copy_from_slice(&2u16.to_be_bytes()); // QDCOUNT 2
    assert_eq!(parse_response(&lying), Err(WireError::QuestionCount(2)));
}

#[test]
fn every_prefix_of_a_valid_response_is_an_error_or_the_same_parse() {
    let full = resolver_answer();
    let want = parse_response(&full).expect("valid");
    for len in 0..full.len() {
        assert!(
            parse_response(&full[..len]).is_err(),
            "prefix of {len} bytes parsed"
        );
    }
    // With a trailing additional section the gate does not read, cutting it changes nothing.
    let mut with_additional = full.clone();
    with_additional[11] = 1;
    with_additional.extend(opt_with_cookie(1232, false));
    for len in full.len()..=with_additional.len() {
        assert_eq!(parse_response(&with_additional[..len]).as_ref(), Ok(&want));
    }
}

#[test]
fn a_pointer_to_itself_or_forward_is_refused() {
    let q = question(&name("loop.example"), A, IN);
    let owner_at = (12 + q.len()) as u16;
    let record_with_owner = |owner: &[u8]| {
        concat(&[
            &header(3, 0x8180, [1, 1, 0, 0]),
            &q,
            &record(owner, A, IN, 1, &[0; 4]),
        ])
    };
    // To itself.
    let msg = record_with_owner(&pointer(owner_at));
    assert_eq!(
        parse_response(&msg),
        Err(WireError::PointerNotBackwards(owner_at))
    );
    // Forward, into its own record data.
    let msg = record_with_owner(&pointer(owner_at + 12));
    assert_eq!(
        parse_response(&msg),
        Err(WireError::PointerNotBackwards(owner_at + 12))
    );
    // Into its own labels (a label, then a pointer back to that label: a loop).
    let msg = record_with_owner(&concat(&[&[1], b"a", &pointer(owner_at)]));
    assert_eq!(
        parse_response(&msg),
        Err(WireError::PointerNotBackwards(owner_at))
    );
    // Into the header.
    let msg = record_with_owner(&pointer(4));
    assert_eq!(parse_response(&msg), Err(WireError::PointerNotBackwards(4)));
    // Past the end of the message.
    let msg = record_with_owner(&pointer(0x3fff));
    assert_eq!(
        parse_response(&msg),
        Err(WireError::PointerNotBackwards(0x3fff))
    );
}

#[test]
fn two_pointers_to_each_other_are_refused() {
    // The question is a pointer to the record owner, which points back: one of them is forward.
    let msg = concat(&[
        &header(3, 0x8180, [1, 1, 0, 0]),
        &question(&pointer(18), A, IN),
        &record(&pointer(12), A, IN, 1, &[0; 4]),
    ]);
    assert_eq!(
        parse_response(&msg),
        Err(WireError::PointerNotBackwards(18))
    );
}

#[test]
fn a_chain_of_pointers_is_bounded() {
    // A name at 12, then records whose owners each point at the previous owner: a chain as long
    // as the number of records, every hop backwards.
    let chain = |hops: usize| {
        let q = question(&name("c.example"), A, IN);
        let mut msg = header(4, 0x8180, [1, hops as u16, 0, 0]);
        msg.extend(&q);
        let mut previous = 12u16;
        for _ in 0..hops {
            let at = msg.len() as u16;
            msg.extend(record(&pointer(previous), A, IN, 1, &[192, 0, 2, 1]));
            previous = at;
        }
        msg
    };
    assert_eq!(
        parse_response(&chain(MAX_POINTER_HOPS))
            .expect("valid")
            .addrs
            .len(),
        MAX_POINTER_HOPS
    );
    assert_eq!(
        parse_response(&chain(MAX_POINTER_HOPS + 1)),
        Err(WireError::TooManyPointers)
    );
}

#[test]
fn at_most_max_addrs_addresses_are_kept() {
    let mut msg = header(5, 0x8180, [1, 300, 0, 0]);
    msg.extend(question(&name("many.example"), A, IN));
    for i in 0..300u16 {
        let [hi, lo] = i.to_be_bytes();
        msg.extend(record(&pointer(12), A, IN, 1, &[10, 0, hi, lo]));
    }
    assert_eq!(parse_response(&msg).expect("valid").addrs.len(), MAX_ADDRS);
}

#[test]
fn a_query_is_not_a_response_and_flags_are_read() {
    assert_eq!(parse_response(&dig_query()), Err(WireError::NotAResponse));
    let mut tc = resolver_answer();
    tc[2] |= 0x02; // TC
    tc[3] = (tc[3] & 0xf0) | 2; // SERVFAIL
    let r = parse_response(&tc).expect("valid");
    assert!(r.truncated);
    assert_eq!(r.rcode, 2);
    let mut notify = resolver_answer();
    notify[2] |= 4 << 3; // opcode NOTIFY
    assert_eq!(parse_response(&notify), Err(WireError::Opcode(4)));
}

#[test]
fn answers_needs_the_same_id_name_and_type() {
    let q = parse_query(&dig_query()).expect("valid");
    let r = parse_response(&resolver_answer()).expect("valid");
    assert!(answers(&q, &r));
    let other = |f: &dyn Fn(&mut Response)| {
        let mut r = r.clone();
        f(&mut r);
        answers(&q, &r)
    };
    assert!(!other(&|r| r.id ^= 1));
    assert!(!other(&|r| r.question = None));
    assert!(!other(&|r| {
        r.question = Some((Name::from_hostname("www.example.org").expect("name"), A))
    }));
    assert!(!other(&|r| {
        r.question = Some((Name::from_hostname("www.example.com").expect("name"), AAAA))
    }));
    assert!(other(&|r| {
        r.question = Some((Name::from_hostname("WWW.example.com").expect("name"), A))
    }));
}

// ---- names --------------------------------------------------------------------------------------

/// The name of a query for `wire`.
fn query_name(wire: &[u8]) -> Name {
    let msg = concat(&[&header(1, 0, [1, 0, 0, 0]), &question(wire, A, IN)]);
    parse_query(&msg).expect("valid query").name
}

#[test]
fn a_label_containing_a_dot_is_not_two_labels() {
    let dotted = query_name(&labels(&[b"allowed.example", b"attacker"]));
    let split = query_name(&name("allowed.example.attacker"));
    assert_ne!(dotted, split);
    assert_eq!(dotted.as_str(), "allowed\\046example.attacker");
    assert_eq!(dotted.labels().count(), 2);
    let zone = Name::from_hostname("example.attacker").expect("name");
    assert!(split.is_within(&zone));
    assert!(
        !dotted.is_within(&zone),
        "a dot inside a label is no label boundary"
    );
}

#[test]
fn control_bytes_spaces_and_non_ascii_are_escaped_in_the_text() {
    let n = query_name(&labels(&[
        b"a\nb\x00 \x1b[31m",
        b"\xc3\xa9",
        b"*",
        b"UP_per-1",
    ]));
    assert_eq!(
        n.as_str(),
        "a\\010b\\000\\032\\027\\09131m.\\195\\169.\\042.up_per-1"
    );
    assert!(n.as_str().bytes().all(|b| b.is_ascii_graphic()));
}

#[test]
fn from_hostname_reads_allowlist_text_and_refuses_what_is_no_host_name() {
    let n = Name::from_hostname("Registry.NPMJS.org.").expect("name");
    assert_eq!(n.as_str(), "registry.npmjs.org");
    assert_eq!(n, query_name(&name("registry.npmjs.org")));
    assert!(Name::from_hostname("").expect("root").is_root());
    assert!(Name::from_hostname(".").expect("root").is_root());
    assert_eq!(Name::from_hostname("a..b"), Err(WireError::EmptyLabel));
    assert_eq!(Name::from_hostname(".a"), Err(WireError::EmptyLabel));
    assert_eq!(
        Name::from_hostname(&"a".repeat(64)),
        Err(WireError::LabelTooLong)
    );
    assert_eq!(
        Name::from_hostname("a b"),
        Err(WireError::HostnameCharacter)
    );
    assert_eq!(
        Name::from_hostname("*.example.com"),
        Err(WireError::HostnameCharacter)
    );
    let long = ["x".repeat(63).as_str(); 4].join(".");
    assert_eq!(Name::from_hostname(&long), Err(WireError::NameTooLong));
}

#[test]
fn is_within_and_is_below_compare_whole_labels() {
    let h = |s: &str| Name::from_hostname(s).expect("name");
    let zone = h("example.com");
    assert!(h("example.com").is_within(&zone));
    assert!(!h("example.com").is_below(&zone));
    assert!(h("a.b.example.com").is_below(&zone));
    assert!(!h("badexample.com").is_within(&zone));
    assert!(!h("com").is_within(&zone));
    assert!(!h("example.com.evil").is_within(&zone));
    assert!(h("anything").is_below(&Name::root()));
}
