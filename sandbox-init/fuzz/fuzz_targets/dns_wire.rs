//! cargo-fuzz target: every input through `dns::wire`'s parsers and the oracle's checks.
//! Run (stable toolchain): see docs/init.md, "DNS gate: the wire parser".

#![no_main]

#[path = "../oracle.rs"]
mod oracle;

libfuzzer_sys::fuzz_target!(|data: &[u8]| oracle::check(data));
