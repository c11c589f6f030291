//! The firewall: which ranges are blocked ([`ranges`]), the container's gateways and on-link
//! prefixes refused besides them ([`link`]), the pure rule renderer ([`render`]) and
//! the thin executor that probes the backend, applies both payloads and reads them back
//! ([`apply`]).

pub mod apply;
pub mod link;
pub mod ranges;
pub mod render;

pub use apply::{
    install, ipv6_present, probe, Backend, CommandRunner, FirewallError, Installed, Output, Probed,
    SystemRunner, BACKENDS,
};
pub use render::{allows, extra_blocked, render, Allow, Facts, Family, Hook, RuleSets, CHAIN};
