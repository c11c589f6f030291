//! The DNS gate: every DNS query the agent sends, answered or forwarded (issue 12).

pub mod wire;
