//! cargo-fuzz target: every input through `egress::packet` and `egress::nflog` and the
//! oracle's checks. Run (stable toolchain): see docs/init.md, "DNS gate: the wire parser" (the
//! same commands with this target's name).

#![no_main]

#[path = "../egress_oracle.rs"]
mod egress_oracle;

libfuzzer_sys::fuzz_target!(|data: &[u8]| egress_oracle::check(data));
