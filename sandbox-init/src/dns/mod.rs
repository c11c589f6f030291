//! The DNS gate: every DNS query of the agent is redirected here (the `nat` chain `JAILOC-DNS`);
//! names the allowlist does not cover are answered NXDOMAIN and never forwarded, the others go
//! to the resolvers of resolv.conf, and the addresses of their answers are opened in the
//! firewall (chain `JAILOC-NAMES`) before the answer is released. docs/net.md, "The DNS gate".
//!
//! | file | job |
//! |---|---|
//! | `conf.rs` | resolv.conf and the hosts file, read once at boot (no network I/O) |
//! | `wire.rs` | the DNS message parser and builder: every byte the agent sends is hostile |
//! | `allow.rs` | which allowlist entries cover a name, and which answered addresses may open |
//! | `open.rs` | the addresses open now, their expiry, and the restore payloads that change them |
//! | `gate.rs` | the gate process: its sockets, its loop, its privileges |

pub mod allow;
pub mod conf;
pub mod gate;
pub mod open;
pub mod wire;
