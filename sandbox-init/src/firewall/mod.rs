//! The firewall: which ranges are blocked ([`ranges`]), the container's gateways and on-link
//! prefixes refused besides them ([`link`]), the pure rule renderer ([`render`]), the thin
//! executor that probes the backend, applies both payloads and reads them back ([`apply`]),
//! and how the iptables programs are found and run as root ([`runner`]).

pub mod apply;
pub mod link;
pub mod ranges;
pub mod render;
pub mod runner;

pub use apply::{
    install, ipv6_present, probe, Backend, FirewallError, Installed, Probed, BACKENDS,
};
pub use render::{allows, extra_blocked, render, Allow, Facts, Family, Hook, RuleSets, CHAIN};
pub use runner::{Cmd, CommandRunner, Output, SystemRunner};
