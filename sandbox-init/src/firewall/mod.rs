//! The firewall, one concern a file:
//!
//! | file | job |
//! |---|---|
//! | `ranges.rs` | the ranges always blocked, and the ones a name may never open |
//! | `link.rs` | the container's gateways and on-link prefixes (parsed from `/proc/net/*route`) |
//! | `rules.rs` | the vocabulary: [`Family`], [`PerFamily`], chains, rules as typed values |
//! | `plan.rs` | [`Plan::new`]: policy × resolved names × resolvers × link → typed chains (pure) |
//! | `render.rs` | a plan as one `iptables-restore --noflush` payload per family (pure) |
//! | `readback.rs` | reading `iptables-save`: the current hook and chains, and [`verify`] |
//! | `backend.rs` | the iptables flavours and step 2's [`probe`] |
//! | `apply.rs` | steps 4-5, the thin executor: [`install`] |
//! | `runner.rs` | running the iptables programs as root: the [`CommandRunner`] seam |
//! | `fake.rs` | the recording test double of the iptables programs (tests only) |

pub(crate) mod apply;
pub(crate) mod backend;
#[cfg(test)]
pub(crate) mod fake;
pub mod link;
pub mod nft;
pub(crate) mod plan;
pub(crate) mod ranges;
pub(crate) mod readback;
pub(crate) mod render;
pub(crate) mod rules;
pub(crate) mod runner;

/// Why an iptables program may not be run as root ([`CommandRunner::exists`]).
pub use crate::trust::{TrustError, Why};
pub use apply::{install, Installed};
pub use backend::{probe, Backend, Probed, BACKENDS};
pub use link::ipv6_present;
pub use plan::{Allow, Plan};
pub use readback::{verify, Current, Hook};
pub use rules::{
    Chain, ChainName, Family, Match, PerFamily, Proto, RejectWith, Rule, Table, Target,
};
pub use runner::{Cmd, CommandRunner, Output, SystemRunner};

/// Why the firewall could not be installed (exit 71).
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    #[error("failed to find a working iptables backend (tried {tried})")]
    NoBackend { tried: String },
    #[error("failed to install the {family} rules with {program}: {cause}")]
    Restore {
        family: Family,
        program: &'static str,
        cause: String,
    },
    #[error("failed to read back the {family} rules with {program}: {cause}")]
    Save {
        family: Family,
        program: &'static str,
        cause: String,
    },
    #[error("failed to verify the {family} rules: {detail}")]
    Mismatch { family: Family, detail: String },
    #[error("failed to verify the rules: {detail}")]
    Unhooked { detail: String },
    #[error("failed to guard IPv6: the container has a non-loopback IPv6 address but no IPv6 rules could be installed: {cause}")]
    Ipv6Unguarded { cause: String },
    /// An iptables program is installed where anyone but root could have changed it.
    #[error(transparent)]
    Untrusted(#[from] TrustError),
}
