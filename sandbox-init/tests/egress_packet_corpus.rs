//! The egress record's packet and NFLOG parsers against their fuzz corpus, on the stable
//! toolchain: every corpus file, then a bounded, reproducible mutation run from them, through
//! the same oracle as the cargo-fuzz target (`sandbox-init/fuzz/egress_oracle.rs`). The bytes
//! are the agent's (the refused packet) inside the kernel's framing; the long runs are
//! cargo-fuzz's (`cargo fuzz run egress_packet`, docs/init.md).
//!
//! A failing mutant is printed as hex: save it as a corpus file and add a unit test.

mod corpus;

#[path = "../fuzz/egress_oracle.rs"]
mod egress_oracle;

use corpus::{corpus, Rng};
use sandbox_init::egress::{nflog, packet};
use std::panic::{self, AssertUnwindSafe};

/// Mutants per run: about a second in a debug build.
const MUTANTS: usize = 200_000;

#[test]
fn every_corpus_file_goes_through_the_parsers_and_the_oracle() {
    let files = corpus("egress_packet");
    assert!(files.len() >= 20, "corpus has only {} files", files.len());
    let (mut packets, mut with_ports, mut datagrams) = (0, 0, 0);
    for (path, bytes) in &files {
        let caught = panic::catch_unwind(|| egress_oracle::check(bytes));
        assert!(caught.is_ok(), "{path} broke the oracle");
        if let Some(p) = packet::parse(bytes) {
            packets += 1;
            with_ports += usize::from(p.dest_port.is_some());
        }
        datagrams += usize::from(!nflog::parse(bytes).is_empty());
    }
    // Real-shaped, not noise.
    assert!(
        packets >= 15,
        "only {packets} corpus files parse as packets"
    );
    assert!(with_ports >= 8, "only {with_ports} packets have ports");
    assert!(
        datagrams >= 2,
        "only {datagrams} corpus files are datagrams"
    );
}

/// Header-length nibbles, next-header numbers and extension lengths where decisions are.
const INTERESTING: [u8; 14] = [0, 1, 2, 4, 6, 17, 43, 44, 51, 58, 60, 0x45, 0x60, 0xff];

fn mutate(rng: &mut Rng, msg: &mut Vec<u8>, other: &[u8]) {
    match rng.below(6) {
        0 if !msg.is_empty() => {
            let i = rng.below(msg.len());
            msg[i] ^= 1 << rng.below(8);
        }
        1 if !msg.is_empty() => {
            let i = rng.below(msg.len());
            msg[i] = INTERESTING[rng.below(INTERESTING.len())];
        }
        2 => msg.truncate(rng.below(msg.len() + 1)),
        3 => {
            let i = rng.below(msg.len() + 1);
            let n = 1 + rng.below(8);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            msg.splice(i..i, bytes);
        }
        4 if !other.is_empty() => {
            let i = rng.below(other.len());
            let end = (i + 1 + rng.below(64)).min(other.len());
            let at = rng.below(msg.len() + 1);
            msg.splice(at..at, other[i..end].iter().copied());
        }
        _ if !msg.is_empty() => {
            let i = rng.below(msg.len());
            let end = (i + 1 + rng.below(16)).min(msg.len());
            msg.drain(i..end);
        }
        _ => msg.push(INTERESTING[rng.below(INTERESTING.len())]),
    }
}

#[test]
fn a_bounded_mutation_run_from_the_corpus_breaks_no_promise() {
    let files = corpus("egress_packet");
    let mut rng = Rng(0x6a61_696c_6f63_0014);
    let mut packets = 0;
    for _ in 0..MUTANTS {
        let (_, seed) = &files[rng.below(files.len())];
        let (_, other) = &files[rng.below(files.len())];
        let mut msg = seed.clone();
        for _ in 0..=rng.below(4) {
            mutate(&mut rng, &mut msg, other);
        }
        if panic::catch_unwind(AssertUnwindSafe(|| egress_oracle::check(&msg))).is_err() {
            let hex: String = msg.iter().map(|b| format!("{b:02x}")).collect();
            panic!("mutant broke the oracle: {hex}");
        }
        packets += usize::from(packet::parse(&msg).is_some());
    }
    assert!(
        packets > MUTANTS / 10,
        "only {packets} mutants parse as packets"
    );
    eprintln!("{MUTANTS} mutants: {packets} parse as packets");
}
