//! The netlink path's read-back judge, without a kernel: a dump that is exactly what was sent
//! passes, and every way a namespace can differ from the plan is caught — a rule missing, one
//! byte of a rule changed, a rule of someone else's in our chain, a chain of ours the plan does
//! not have, the jump not first or twice in `OUTPUT`. Counters (which count) and attributes
//! the kernel adds of its own are not differences.

mod common;

use common::{cases, load_case};
use sandbox_init::firewall::nft::encode::{self, nfproto, Sent};
use sandbox_init::firewall::nft::{check, msg, Dumped};
use sandbox_init::firewall::{Family, Plan, Table};

/// The plan of a fixture with networks and names, and what the kernel would dump for it.
fn fixture() -> (Plan, Vec<Sent>, Vec<Dumped>) {
    let dir = cases()
        .into_iter()
        .find(|d| d.ends_with("mixed"))
        .expect("the mixed fixture");
    let plan = load_case(&dir).plan;
    let (_, sent) = encode::fresh(&plan);
    let dumped = sent.iter().map(dumped).collect();
    (plan, sent, dumped)
}

fn dumped(s: &Sent) -> Dumped {
    Dumped {
        family: nfproto(s.family),
        table: s.table.to_string(),
        chain: s.chain.clone(),
        exprs: s.exprs.clone(),
    }
}

fn at(dumped: &[Dumped], chain: &str, family: Family) -> usize {
    dumped
        .iter()
        .position(|d| d.chain == chain && d.family == nfproto(family))
        .expect("a rule of that chain")
}

#[test]
fn exactly_what_was_sent_passes() {
    let (plan, sent, dumped) = fixture();
    assert!(sent.len() > 40);
    check(&plan, &sent, &dumped).expect("identical");
}

#[test]
fn a_missing_rule_is_caught() {
    let (plan, sent, mut dumped) = fixture();
    let i = at(&dumped, "JAILOC-REJECT", Family::V6);
    dumped.remove(i);
    let e = check(&plan, &sent, &dumped).expect_err("missing");
    assert!(
        e.starts_with("IPv6 filter JAILOC-REJECT: 3 rules sent, 2 in the kernel"),
        "{e}"
    );
}

/// Also the jumps from `OUTPUT`, each held to the one jump the plan sends (the red team found
/// them left out of this test).
#[test]
fn one_changed_byte_in_any_rule_of_ours_or_a_jump_to_it_is_caught() {
    let (plan, sent, dumped) = fixture();
    let (mut caught, mut in_output) = (0, 0);
    for (i, d) in dumped.iter().enumerate() {
        // Every byte of every value attribute (lengths and types stay: those would be another
        // expression, caught by the count), except a counter's: counters count.
        for pos in value_bytes(&d.exprs) {
            let mut tampered = dumped.clone();
            tampered[i].exprs[pos] ^= 0x01;
            if check(&plan, &sent, &tampered).is_err() {
                caught += 1;
                in_output += usize::from(d.chain == "OUTPUT");
            } else {
                panic!("byte {pos} of rule {i} ({}) changed unnoticed", d.chain);
            }
        }
    }
    assert!(caught > 1000, "only {caught} bytes tried");
    // Both tables of both families, each jump naming its chain.
    assert!(
        in_output >= 4 * 20,
        "only {in_output} bytes of the OUTPUT jumps tried"
    );
}

/// Offsets of the bytes inside value attributes of an expression list, counters left out.
fn value_bytes(exprs: &[u8]) -> Vec<usize> {
    fn walk(base: usize, bytes: &[u8], out: &mut Vec<usize>) {
        let mut at = 0;
        while at + 4 <= bytes.len() {
            let len = usize::from(u16::from_ne_bytes([bytes[at], bytes[at + 1]]));
            let nested = bytes[at + 3] & 0x80 != 0;
            if len < 4 || at + len > bytes.len() {
                return;
            }
            let data = &bytes[at + 4..at + len];
            if data.starts_with(b"counter\0") {
                return; // the name, then the counter's data: a counter's values change
            }
            if nested {
                walk(base + at + 4, data, out);
            } else {
                out.extend((0..data.len()).map(|i| base + at + 4 + i));
            }
            at += (len + 3) & !3;
        }
    }
    let mut out = Vec::new();
    for elem in msg::attrs(exprs) {
        let start = elem.data.as_ptr() as usize - exprs.as_ptr() as usize;
        if msg::find(elem.data, 1) == Some(&b"counter\0"[..]) {
            continue;
        }
        walk(start, elem.data, &mut out);
    }
    out
}

#[test]
fn counters_and_attributes_the_kernel_adds_are_not_differences() {
    let (plan, sent, mut dumped) = fixture();
    // Every counter has counted something.
    for d in &mut dumped {
        let exprs = d.exprs.clone();
        for elem in msg::attrs(&exprs) {
            if msg::find(elem.data, 1) == Some(&b"counter\0"[..]) {
                let data = msg::find(elem.data, 2).expect("counter data");
                let off = data.as_ptr() as usize - exprs.as_ptr() as usize;
                d.exprs[off + 4 + 7] = 9; // the low byte of the byte count
            }
        }
    }
    check(&plan, &sent, &dumped).expect("counters count");
}

#[test]
fn someone_elses_rule_our_extra_chain_or_a_second_jump_is_caught() {
    let (plan, sent, dumped) = fixture();
    let accept = encode::rule_exprs(
        Family::V4,
        &sandbox_init::firewall::Rule::new(
            sandbox_init::firewall::Match::Any,
            sandbox_init::firewall::Target::Accept,
        ),
    );
    // An accept slipped in at the head of our chain.
    let mut slipped = dumped.clone();
    let i = at(&slipped, "JAILOC-OUTPUT", Family::V4);
    let mut rule = slipped[i].clone();
    rule.exprs = accept.clone();
    slipped.insert(i, rule);
    let e = check(&plan, &sent, &slipped).expect_err("slipped");
    assert!(e.contains("IPv4 filter JAILOC-OUTPUT"), "{e}");

    // A chain of ours the plan does not have.
    let mut extra = dumped.clone();
    extra.push(Dumped {
        family: nfproto(Family::V4),
        table: Table::Filter.to_string(),
        chain: "JAILOC-A4-9".into(),
        exprs: accept.clone(),
    });
    let e = check(&plan, &sent, &extra).expect_err("extra chain");
    assert!(e.contains("JAILOC-A4-9 is not in the plan"), "{e}");

    // Something before our jump in OUTPUT, and a second jump.
    let mut before = dumped.clone();
    let i = at(&before, "OUTPUT", Family::V6);
    let mut first = before[i].clone();
    first.exprs = accept;
    before.insert(i, first);
    let e = check(&plan, &sent, &before).expect_err("not first");
    assert!(e.contains("first rule of OUTPUT"), "{e}");
    let mut twice = dumped.clone();
    let i = at(&twice, "OUTPUT", Family::V4);
    let again = twice[i].clone();
    twice.insert(i + 1, again);
    let e = check(&plan, &sent, &twice).expect_err("twice");
    assert!(e.contains("2 jumps from OUTPUT to JAILOC-OUTPUT"), "{e}");
}
