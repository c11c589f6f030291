//! The DNS gate's wire parser against its fuzz corpus, on the stable toolchain: every corpus
//! file, then a bounded, reproducible mutation run from them, through the same oracle as the
//! cargo-fuzz target (`sandbox-init/fuzz/oracle.rs`). So CI exercises the corpus and fuzzes a
//! little on every run without cargo-fuzz; the long runs are cargo-fuzz's (docs/init.md).
//!
//! A failing mutant is printed as hex: save it as a corpus file and add a unit test.

mod corpus;

#[path = "../fuzz/oracle.rs"]
mod oracle;

use corpus::{corpus, Rng};
use sandbox_init::dns::wire;
use std::panic::{self, AssertUnwindSafe};

/// Mutants per run: about 4 s in a debug build on a 2-core machine.
const MUTANTS: usize = 200_000;

#[test]
fn every_corpus_file_goes_through_the_parsers_and_the_oracle() {
    let files = corpus("dns_wire");
    assert!(files.len() >= 40, "corpus has only {} files", files.len());
    let (mut queries, mut responses, mut with_addrs) = (0, 0, 0);
    for (path, bytes) in &files {
        let caught = panic::catch_unwind(|| oracle::check(bytes));
        assert!(caught.is_ok(), "{path} broke the oracle");
        queries += usize::from(wire::parse_query(bytes).is_ok());
        if let Ok(r) = wire::parse_response(bytes) {
            responses += 1;
            with_addrs += usize::from(!r.addrs.is_empty());
        }
    }
    // The corpus is real-shaped, not noise: most of it parses (the attack seeds do not).
    assert!(
        queries >= 20,
        "only {queries} corpus files parse as queries"
    );
    assert!(
        responses >= 20,
        "only {responses} corpus files parse as responses"
    );
    assert!(
        with_addrs >= 10,
        "only {with_addrs} responses carry addresses"
    );
}

/// Length bytes, pointer tags and counts where the parser's decisions are.
const INTERESTING: [u8; 10] = [0, 1, 2, 0x3f, 0x40, 0x7f, 0x80, 0xbf, 0xc0, 0xff];

/// One mutation of `msg`, the kinds a DNS parser's bugs hide behind: bits, length and pointer
/// bytes, lying counts and lengths, cut, inserted, deleted and spliced bytes.
fn mutate(rng: &mut Rng, msg: &mut Vec<u8>, other: &[u8]) {
    let pos = |rng: &mut Rng, len: usize| rng.below(len.max(1));
    match rng.below(10) {
        0 if !msg.is_empty() => {
            let i = pos(rng, msg.len());
            msg[i] ^= 1 << rng.below(8);
        }
        1 if !msg.is_empty() => {
            let i = pos(rng, msg.len());
            msg[i] = INTERESTING[rng.below(INTERESTING.len())];
        }
        2 if msg.len() >= 2 => {
            let i = pos(rng, msg.len() - 1);
            let target = rng.below(msg.len() + 16) as u16;
            msg[i..i + 2].copy_from_slice(&(0xc000 | (target & 0x3fff)).to_be_bytes());
        }
        3 if msg.len() >= 12 => {
            let field = 4 + 2 * rng.below(4);
            let value = [0u16, 1, 2, 255, 65535][rng.below(5)];
            msg[field..field + 2].copy_from_slice(&value.to_be_bytes());
        }
        4 => msg.truncate(rng.below(msg.len() + 1)),
        5 => {
            let i = rng.below(msg.len() + 1);
            let n = 1 + rng.below(8);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            msg.splice(i..i, bytes);
        }
        6 if !msg.is_empty() => {
            let i = pos(rng, msg.len());
            let end = (i + 1 + rng.below(16)).min(msg.len());
            msg.drain(i..end);
        }
        7 if !other.is_empty() => {
            let i = rng.below(other.len());
            let end = (i + 1 + rng.below(64)).min(other.len());
            let at = rng.below(msg.len() + 1);
            msg.splice(at..at, other[i..end].iter().copied());
        }
        8 if msg.len() >= 2 => {
            let i = pos(rng, msg.len() - 1);
            let value = rng.next() as u16;
            msg[i..i + 2].copy_from_slice(&value.to_be_bytes());
        }
        _ => {
            let i = rng.below(msg.len() + 1);
            msg.insert(i, INTERESTING[rng.below(INTERESTING.len())]);
        }
    }
}

#[test]
fn a_bounded_mutation_run_from_the_corpus_breaks_no_promise() {
    let files = corpus("dns_wire");
    let mut rng = Rng(0x6a61_696c_6f63_0012);
    let (mut queries, mut responses) = (0, 0);
    for _ in 0..MUTANTS {
        let (_, seed) = &files[rng.below(files.len())];
        let (_, other) = &files[rng.below(files.len())];
        let mut msg = seed.clone();
        for _ in 0..=rng.below(4) {
            mutate(&mut rng, &mut msg, other);
        }
        if panic::catch_unwind(AssertUnwindSafe(|| oracle::check(&msg))).is_err() {
            let hex: String = msg.iter().map(|b| format!("{b:02x}")).collect();
            panic!("mutant broke the oracle: {hex}");
        }
        queries += usize::from(wire::parse_query(&msg).is_ok());
        responses += usize::from(wire::parse_response(&msg).is_ok());
    }
    // Mutants still reach the deep paths: a fair share stays valid.
    assert!(
        queries > MUTANTS / 100,
        "only {queries} mutants parse as queries"
    );
    assert!(
        responses > MUTANTS / 100,
        "only {responses} mutants parse as responses"
    );
    eprintln!("{MUTANTS} mutants: {queries} parse as queries, {responses} as responses");
}
