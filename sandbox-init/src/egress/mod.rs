//! The egress record: every packet the firewall refuses and every name the DNS gate refuses,
//! with the reason in words, counted per destination, kept where the agent can read it but
//! neither write nor erase it (docs/net.md, "Egress record"). The kernel hands the refused
//! packets' headers to NFLOG group [`crate::firewall::plan::NFLOG_GROUP`] (the first rule of
//! `JAILOC-REJECT`); the DNS gate, which holds CAP_NET_ADMIN already, reads them in its loop.
//!
//! | file | job |
//! |---|---|
//! | `packet.rs` | the refused packet's headers (the agent's bytes): destination, protocol, ports; fuzzed |
//! | `nflog.rs` | the NFLOG netlink messages: the bind request, what the kernel sends back (pure) |
//! | `reason.rs` | why a destination is refused, in words |
//! | `record.rs` | the aggregation (bounded keys, one line per key per interval) and the JSON lines |
//! | `dir.rs` | the record's directory (made by PID 1) and file (written by the gate) |
//! | `recorder.rs` | the gate's side: the socket, the record, the file and the log together |

pub(crate) mod dir;
pub mod nflog;
pub mod packet;
pub(crate) mod reason;
pub(crate) mod record;
pub(crate) mod recorder;

pub use reason::Reasons;
pub use recorder::RecordConfig;
