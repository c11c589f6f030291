//! The firewall's vocabulary as types: a family, a value per family, our chains, and a rule as
//! a match and a target. Their `Display` is exactly the `iptables-restore` syntax, so the
//! renderer only arranges them ([`super::render`]) and the golden files pin the spelling.

use ipnet::IpNet;
use std::fmt;

/// IPv4 or IPv6: one `iptables-restore` payload each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// Whether `net` is of this family.
    pub fn holds(self, net: &IpNet) -> bool {
        matches!(
            (self, net),
            (Family::V4, IpNet::V4(_)) | (Family::V6, IpNet::V6(_))
        )
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// One value per family: the chains, the payloads, the commands of a stage and their results.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PerFamily<T> {
    pub v4: T,
    pub v6: T,
}

impl<T> PerFamily<T> {
    /// The value of each family, from `f`.
    pub fn new(mut f: impl FnMut(Family) -> T) -> Self {
        PerFamily {
            v4: f(Family::V4),
            v6: f(Family::V6),
        }
    }

    /// The value of `family`.
    pub fn get(&self, family: Family) -> &T {
        match family {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        }
    }

    /// The value of `family`, to change.
    pub fn get_mut(&mut self, family: Family) -> &mut T {
        match family {
            Family::V4 => &mut self.v4,
            Family::V6 => &mut self.v6,
        }
    }

    /// Each value through `f`, with its family.
    pub fn map<U>(self, mut f: impl FnMut(Family, T) -> U) -> PerFamily<U> {
        PerFamily {
            v4: f(Family::V4, self.v4),
            v6: f(Family::V6, self.v6),
        }
    }

    /// Borrows each value.
    pub fn as_ref(&self) -> PerFamily<&T> {
        PerFamily {
            v4: &self.v4,
            v6: &self.v6,
        }
    }
}

/// Prefix of every chain of ours (the main chain, the reject chain, the allowlist sub-chains).
pub const CHAIN_PREFIX: &str = "JAILOC-";

/// A chain of ours in the `filter` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChainName {
    /// `JAILOC-OUTPUT`: entered by the one jump that is the first rule of `OUTPUT`.
    Output,
    /// `JAILOC-REJECT`: where every blocked destination jumps; refuses fast.
    Reject,
    /// `JAILOC-A4-N` / `JAILOC-A6-N`: a sub-chain of a large allowlist (see `plan.rs`).
    Allow { family: Family, index: usize },
    /// `JAILOC-NAMES`: the addresses the DNS gate opened for allowlisted names; empty at boot,
    /// changed only by the gate (`dns/open.rs`).
    Names,
    /// `JAILOC-DNS` in the `nat` table: sends every DNS packet of the agent to the gate.
    Dns,
}

impl ChainName {
    /// The table the chain lives in.
    pub fn table(self) -> Table {
        match self {
            ChainName::Dns => Table::Nat,
            _ => Table::Filter,
        }
    }
}

/// The iptables tables we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    /// `filter`: what may leave.
    Filter,
    /// `nat`: where DNS goes (the gate).
    Nat,
}

impl Table {
    /// Both, in the order a payload holds them.
    pub const ALL: [Table; 2] = [Table::Filter, Table::Nat];

    /// The chain of ours the built-in `OUTPUT` of this table jumps to.
    pub fn hook(self) -> ChainName {
        match self {
            Table::Filter => ChainName::Output,
            Table::Nat => ChainName::Dns,
        }
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Table::Filter => "filter",
            Table::Nat => "nat",
        })
    }
}

impl fmt::Display for ChainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainName::Output => write!(f, "{CHAIN_PREFIX}OUTPUT"),
            ChainName::Reject => write!(f, "{CHAIN_PREFIX}REJECT"),
            ChainName::Allow { family, index } => {
                let tag = match family {
                    Family::V4 => "A4",
                    Family::V6 => "A6",
                };
                write!(f, "{CHAIN_PREFIX}{tag}-{index}")
            }
            ChainName::Names => write!(f, "{CHAIN_PREFIX}NAMES"),
            ChainName::Dns => write!(f, "{CHAIN_PREFIX}DNS"),
        }
    }
}

/// A transport protocol a rule can be limited to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// Which packets a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Match {
    /// Every packet.
    Any,
    /// An IPv6 packet carrying a routing header (`-m rt`).
    RoutingHeader,
    /// Leaving through loopback (`-o lo`).
    Loopback,
    /// Part of a connection that was already let through, or related to one.
    Established,
    /// ICMPv6 of this type (neighbour discovery).
    Icmpv6(u8),
    /// This protocol, any destination.
    Proto(Proto),
    /// To `net`; with `port`, only that protocol and destination port.
    Dest {
        net: IpNet,
        port: Option<(Proto, u16)>,
    },
    /// This protocol and destination port, any destination.
    Port(Proto, u16),
    /// Sent by a process of this uid (`-m owner`), any destination.
    Owner(u32),
    /// Sent by a process of this uid from this protocol's source port (the agent posing as a
    /// resolver: see `plan.rs`).
    OwnerSourcePort { uid: u32, port: (Proto, u16) },
    /// Sent by a process of this uid to this protocol and destination port, anywhere (root's
    /// DNS: Docker's embedded DNS forwarding from inside the container).
    OwnerPort { uid: u32, port: (Proto, u16) },
    /// Sent by a process of this uid to `net`, any protocol and port (the agent to a resolver
    /// on loopback at its real port, past the redirect).
    OwnerTo { uid: u32, net: IpNet },
    /// Sent by a process of this uid to this protocol and port anywhere but `except` (the
    /// agent's DNS that the redirect did not send to the gate: see `plan.rs`).
    OwnerPortNotTo {
        uid: u32,
        except: IpNet,
        port: (Proto, u16),
    },
    /// Sent by a process of this uid to `net`, this protocol and port (the gate's upstream DNS).
    OwnerDest {
        uid: u32,
        net: IpNet,
        port: (Proto, u16),
    },
}

/// What happens to a matching packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    Accept,
    /// Continue in that chain (and come back if nothing there decides).
    Jump(ChainName),
    /// Refuse with this answer.
    Reject(RejectWith),
    /// Back to the calling chain.
    Return,
    /// `nat`: to this port of the loopback address (127.0.0.1 or ::1).
    Redirect(u16),
    /// Hand a copy of the packet's first `size` bytes to netlink group `group` and continue
    /// (the DNS gate reads them into the egress record).
    Nflog {
        group: u16,
        size: u16,
    },
}

/// The answer to a refused packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectWith {
    /// A TCP reset: the connect fails at once.
    TcpReset,
    /// ICMP administratively prohibited.
    Icmp,
    /// ICMPv6 administratively prohibited.
    Icmp6,
}

/// One rule of a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rule {
    pub when: Match,
    pub then: Target,
}

impl Rule {
    /// `when` → `then`.
    pub fn new(when: Match, then: Target) -> Self {
        Rule { when, then }
    }
}

impl fmt::Display for Rule {
    /// The rule's body as `iptables-restore` reads it after `-A CHAIN `.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.when {
            Match::Any => {}
            Match::RoutingHeader => f.write_str("-m rt ")?,
            Match::Loopback => f.write_str("-o lo ")?,
            Match::Established => f.write_str("-m conntrack --ctstate RELATED,ESTABLISHED ")?,
            Match::Icmpv6(t) => write!(f, "-p ipv6-icmp -m icmp6 --icmpv6-type {t} ")?,
            Match::Proto(p) => write!(f, "-p {p} ")?,
            Match::Dest { net, port: None } => write!(f, "-d {net} ")?,
            Match::Dest {
                net,
                port: Some((p, port)),
            } => write!(f, "-d {net} -p {p} -m {p} --dport {port} ")?,
            Match::Port(p, port) => write!(f, "-p {p} -m {p} --dport {port} ")?,
            Match::Owner(uid) => write!(f, "-m owner --uid-owner {uid} ")?,
            Match::OwnerSourcePort {
                uid,
                port: (p, port),
            } => write!(
                f,
                "-p {p} -m owner --uid-owner {uid} -m {p} --sport {port} "
            )?,
            Match::OwnerPort {
                uid,
                port: (p, port),
            } => write!(
                f,
                "-p {p} -m owner --uid-owner {uid} -m {p} --dport {port} "
            )?,
            Match::OwnerTo { uid, net } => write!(f, "-d {net} -m owner --uid-owner {uid} ")?,
            Match::OwnerPortNotTo {
                uid,
                except,
                port: (p, port),
            } => write!(
                f,
                "! -d {except} -p {p} -m owner --uid-owner {uid} -m {p} --dport {port} "
            )?,
            Match::OwnerDest {
                uid,
                net,
                port: (p, port),
            } => write!(
                f,
                "-d {net} -p {p} -m owner --uid-owner {uid} -m {p} --dport {port} "
            )?,
        }
        match self.then {
            Target::Accept => f.write_str("-j ACCEPT"),
            Target::Jump(chain) => write!(f, "-j {chain}"),
            Target::Return => f.write_str("-j RETURN"),
            Target::Redirect(port) => write!(f, "-j REDIRECT --to-ports {port}"),
            Target::Nflog { group, size } => {
                write!(f, "-j NFLOG --nflog-group {group} --nflog-size {size}")
            }
            Target::Reject(with) => f.write_str(match with {
                RejectWith::TcpReset => "-j REJECT --reject-with tcp-reset",
                RejectWith::Icmp => "-j REJECT --reject-with icmp-admin-prohibited",
                RejectWith::Icmp6 => "-j REJECT --reject-with icmp6-adm-prohibited",
            }),
        }
    }
}

/// A chain of ours and its rules, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub name: ChainName,
    pub rules: Vec<Rule>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_prints_as_iptables_restore_reads_it() {
        let net = |s: &str| s.parse::<IpNet>().expect("net");
        let reject = Target::Jump(ChainName::Reject);
        let table = [
            (
                Rule::new(Match::RoutingHeader, reject),
                "-m rt -j JAILOC-REJECT",
            ),
            (
                Rule::new(Match::Loopback, Target::Accept),
                "-o lo -j ACCEPT",
            ),
            (
                Rule::new(Match::Established, Target::Accept),
                "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            ),
            (
                Rule::new(Match::Icmpv6(135), Target::Accept),
                "-p ipv6-icmp -m icmp6 --icmpv6-type 135 -j ACCEPT",
            ),
            (
                Rule::new(
                    Match::Dest {
                        net: net("10.0.0.2/32"),
                        port: Some((Proto::Udp, 53)),
                    },
                    Target::Accept,
                ),
                "-d 10.0.0.2/32 -p udp -m udp --dport 53 -j ACCEPT",
            ),
            (
                Rule::new(
                    Match::Dest {
                        net: net("fd00::/8"),
                        port: None,
                    },
                    Target::Jump(ChainName::Allow {
                        family: Family::V6,
                        index: 3,
                    }),
                ),
                "-d fd00::/8 -j JAILOC-A6-3",
            ),
            (Rule::new(Match::Any, reject), "-j JAILOC-REJECT"),
            (
                Rule::new(Match::Owner(65533), Target::Return),
                "-m owner --uid-owner 65533 -j RETURN",
            ),
            (
                Rule::new(Match::Port(Proto::Udp, 53), Target::Redirect(53)),
                "-p udp -m udp --dport 53 -j REDIRECT --to-ports 53",
            ),
            (
                Rule::new(
                    Match::OwnerDest {
                        uid: 65533,
                        net: net("10.0.0.2/32"),
                        port: (Proto::Tcp, 53),
                    },
                    Target::Accept,
                ),
                "-d 10.0.0.2/32 -p tcp -m owner --uid-owner 65533 -m tcp --dport 53 -j ACCEPT",
            ),
            (
                Rule::new(Match::Any, Target::Jump(ChainName::Names)),
                "-j JAILOC-NAMES",
            ),
            (
                Rule::new(
                    Match::OwnerPort {
                        uid: 0,
                        port: (Proto::Udp, 53),
                    },
                    Target::Accept,
                ),
                "-p udp -m owner --uid-owner 0 -m udp --dport 53 -j ACCEPT",
            ),
            (
                Rule::new(
                    Match::OwnerTo {
                        uid: 1000,
                        net: net("127.0.0.11/32"),
                    },
                    reject,
                ),
                "-d 127.0.0.11/32 -m owner --uid-owner 1000 -j JAILOC-REJECT",
            ),
            (
                Rule::new(
                    Match::OwnerSourcePort {
                        uid: 1000,
                        port: (Proto::Udp, 53),
                    },
                    reject,
                ),
                "-p udp -m owner --uid-owner 1000 -m udp --sport 53 -j JAILOC-REJECT",
            ),
            (
                Rule::new(
                    Match::OwnerPortNotTo {
                        uid: 1000,
                        except: net("127.0.0.1/32"),
                        port: (Proto::Tcp, 53),
                    },
                    reject,
                ),
                "! -d 127.0.0.1/32 -p tcp -m owner --uid-owner 1000 -m tcp --dport 53 -j JAILOC-REJECT",
            ),
            (
                Rule::new(
                    Match::Proto(Proto::Tcp),
                    Target::Reject(RejectWith::TcpReset),
                ),
                "-p tcp -j REJECT --reject-with tcp-reset",
            ),
            (
                Rule::new(Match::Any, Target::Reject(RejectWith::Icmp6)),
                "-j REJECT --reject-with icmp6-adm-prohibited",
            ),
            (
                Rule::new(
                    Match::Any,
                    Target::Nflog {
                        group: 14,
                        size: 128,
                    },
                ),
                "-j NFLOG --nflog-group 14 --nflog-size 128",
            ),
        ];
        for (rule, text) in table {
            assert_eq!(rule.to_string(), text);
        }
    }
}
