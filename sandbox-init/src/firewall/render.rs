//! The renderer: a [`Plan`]'s chains as one `iptables-restore --noflush` payload per family.
//! Pure: the same plan and facts always give the same bytes.
//!
//! Everything lives in chains of our own, hooked from each table's `OUTPUT` by one jump
//! (`JAILOC-OUTPUT` in `filter`, `JAILOC-DNS` in `nat`). Two forms:
//!
//! - *fresh* (no facts about the current rules: the common case, a new container): `-N` creates
//!   the chain and `-I OUTPUT 1` adds the jump. If the chain already exists, `-N` fails and the
//!   whole restore with it, atomically, changing nothing — the executor then falls back to
//! - *refill* (a [`Current`] from `iptables-save`): declaring the chain (`:CHAIN - [0:0]`) makes
//!   `--noflush` restore empty and refill it, and the jump is added only when the facts say it
//!   is missing (or not first).
//!
//! Either way applying twice leaves the same rules with one jump.
//! Built-in chains' policies and Docker's `nat` rules (its embedded DNS) are never touched.

use super::plan::Plan;
use super::readback::{Current, Hook, TableState};
use super::rules::{Chain, Family, PerFamily, Table};
use std::fmt::Write as _;

impl Plan {
    /// The payload of `family`: the fresh form without `current`, else the refill form for the
    /// chains as `current` says they stand. Two tables, `filter` then `nat`, in one restore.
    pub fn payload(&self, family: Family, current: Option<&Current>) -> String {
        let mut doc = format!(
            "# jailoc sandbox-init: {family} rules, {} egress\n",
            self.egress
        );
        for table in Table::ALL {
            let chains = match table {
                Table::Filter => self.chains.get(family),
                Table::Nat => self.nat.get(family),
            };
            let state = current.map(|c| c.table(table));
            render_table(&mut doc, table, chains, state);
        }
        doc
    }

    /// Both payloads in the fresh form: what a new container gets, what `--print-plan` shows
    /// and what the golden files hold.
    pub fn fresh_payloads(&self) -> PerFamily<String> {
        PerFamily::new(|family| self.payload(family, None))
    }
}

/// One table's section: our chains declared (`-N` fresh, `:CHAIN` refill), stale chains of ours
/// emptied and deleted, the rules, and the one jump from `OUTPUT` where it is missing.
fn render_table(doc: &mut String, table: Table, chains: &[Chain], state: Option<&TableState>) {
    let _ = writeln!(doc, "*{table}");
    for chain in chains {
        let _ = match state {
            None => writeln!(doc, "-N {}", chain.name),
            Some(_) => writeln!(doc, ":{} - [0:0]", chain.name),
        };
    }
    // Our chains that exist but are no longer part of the plan (sub-chains of a larger
    // allowlist): declared, so the restore empties them, and deleted at the end.
    let ours: Vec<String> = chains.iter().map(|c| c.name.to_string()).collect();
    let stale: Vec<&String> = state
        .map(|s| s.chains.iter().filter(|c| !ours.contains(c)).collect())
        .unwrap_or_default();
    for chain in &stale {
        let _ = writeln!(doc, ":{chain} - [0:0]");
    }
    for chain in chains {
        for rule in &chain.rules {
            let _ = writeln!(doc, "-A {} {rule}", chain.name);
        }
    }
    for chain in &stale {
        let _ = writeln!(doc, "-X {chain}");
    }
    let hook = state.map(|s| s.hook).unwrap_or_default();
    if hook != Hook::WANTED {
        let ours = table.hook();
        for _ in 0..hook.jumps {
            let _ = writeln!(doc, "-D OUTPUT -j {ours}");
        }
        let _ = writeln!(doc, "-I OUTPUT 1 -j {ours}");
    }
    doc.push_str("COMMIT\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::conf::HostsFile;
    use crate::firewall::link::{Extra, Origin};
    use crate::firewall::plan::{allow_rules, allows, Allow, TREE_ABOVE};
    use crate::firewall::ranges;
    use crate::firewall::readback::chain_rules;
    use crate::policy::{parse_host, parse_network, Egress, Policy};
    use ipnet::IpNet;
    use std::net::IpAddr;

    const CHAIN: &str = "JAILOC-OUTPUT";

    type RuleSets = PerFamily<String>;

    /// What a plan is rendered with besides its own data: the resolvers and extra blocked
    /// destinations it was built with, and per family the chains as `iptables-save` shows them.
    #[derive(Default)]
    struct Facts {
        resolvers: Vec<IpAddr>,
        hook_v4: Option<Hook>,
        hook_v6: Option<Hook>,
        chains_v4: Vec<String>,
        chains_v6: Vec<String>,
        blocked: Vec<IpNet>,
    }

    fn render(egress: Egress, allows: &[Allow], facts: &Facts) -> RuleSets {
        let extras = facts
            .blocked
            .iter()
            .map(|dest| Extra {
                dest: *dest,
                origin: Origin::Policy,
            })
            .collect();
        let plan = Plan::build(
            egress,
            allows.to_vec(),
            facts.resolvers.clone(),
            extras,
            vec![],
        );
        let current = |hook: Option<Hook>, chains: &[String]| {
            hook.map(|hook| Current {
                filter: TableState {
                    hook,
                    chains: chains.to_vec(),
                },
                nat: TableState {
                    hook,
                    chains: vec!["JAILOC-DNS".into()],
                },
            })
        };
        PerFamily {
            v4: plan.payload(
                Family::V4,
                current(facts.hook_v4, &facts.chains_v4).as_ref(),
            ),
            v6: plan.payload(
                Family::V6,
                current(facts.hook_v6, &facts.chains_v6).as_ref(),
            ),
        }
    }

    fn policy(egress: Egress, hosts: &[&str], networks: &[&str]) -> Policy {
        Policy {
            egress,
            hosts: hosts.iter().map(|h| parse_host(h).expect("host")).collect(),
            networks: networks
                .iter()
                .map(|n| parse_network(n).expect("net"))
                .collect(),
            ..Policy::default()
        }
    }

    fn resolution(pairs: &[(&str, &[&str])]) -> HostsFile {
        HostsFile {
            names: pairs
                .iter()
                .map(|(n, a)| {
                    (
                        n.to_string(),
                        a.iter().map(|a| a.parse().expect("ip")).collect(),
                    )
                })
                .collect(),
        }
    }

    fn facts(resolvers: &[&str]) -> Facts {
        Facts {
            resolvers: resolvers.iter().map(|r| r.parse().expect("ip")).collect(),
            ..Facts::default()
        }
    }

    fn position(rules: &str, needle: &str) -> usize {
        rules
            .lines()
            .position(|l| l == needle)
            .unwrap_or_else(|| panic!("missing {needle:?} in\n{rules}"))
    }

    #[test]
    fn only_the_gates_dns_reaches_a_blocked_resolver_and_before_the_block() {
        let r = render(Egress::Open, &[], &facts(&["10.0.0.2", "fd00::53"]));
        let dns = position(
            &r.v4,
            "-A JAILOC-OUTPUT -d 10.0.0.2/32 -p udp -m owner --uid-owner 65533 -m udp --dport 53 -j ACCEPT",
        );
        let block = position(&r.v4, "-A JAILOC-OUTPUT -d 10.0.0.0/8 -j JAILOC-REJECT");
        assert!(dns < block);
        assert!(
            position(
                &r.v6,
                "-A JAILOC-OUTPUT -d fd00::53/128 -p tcp -m owner --uid-owner 65533 -m tcp --dport 53 -j ACCEPT"
            ) < position(&r.v6, "-A JAILOC-OUTPUT -d fc00::/7 -j JAILOC-REJECT")
        );
        // Only port 53 of the resolver, only for the gate: the agent's DNS is redirected to
        // the gate, and nothing opens the resolver to anyone else.
        assert!(!r.v4.contains("-d 10.0.0.2/32 -j ACCEPT"));
        assert!(!r
            .v4
            .contains("-d 10.0.0.2/32 -p udp -m udp --dport 53 -j ACCEPT"));
        assert_eq!(
            evaluate(&r.v4, "10.0.0.2".parse().expect("ip"), "udp", 53).0,
            "REJECT"
        );
        for (payload, gate) in [(&r.v4, "127.0.0.1/32"), (&r.v6, "::1/128")] {
            for proto in ["udp", "tcp"] {
                assert!(payload.contains(&format!(
                    "-A JAILOC-OUTPUT -d {gate} -p {proto} -m {proto} --dport 1053 -j ACCEPT\n"
                )));
            }
            assert!(payload.contains(
                "*nat\n-N JAILOC-DNS\n-A JAILOC-DNS -m owner --uid-owner 65533 -j RETURN\n\
                 -A JAILOC-DNS -m owner --uid-owner 0 -j RETURN\n\
                 -A JAILOC-DNS -p udp -m udp --dport 53 -j REDIRECT --to-ports 1053\n\
                 -A JAILOC-DNS -p tcp -m tcp --dport 53 -j REDIRECT --to-ports 1053\n\
                 -I OUTPUT 1 -j JAILOC-DNS\nCOMMIT\n"
            ));
        }
    }

    #[test]
    fn order_is_loopback_established_nd_dns_allow_block() {
        let p = policy(Egress::Allowlist, &["pypi.org"], &[]);
        let (a, _) = allows(
            &p,
            &resolution(&[("pypi.org", &["151.101.0.223", "2a04:4e42::223"])]),
        );
        let r = render(p.egress, &a, &facts(&["127.0.0.11"]));
        let v6 = [
            "-A JAILOC-OUTPUT -o lo -j ACCEPT",
            "-A JAILOC-OUTPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            "-A JAILOC-OUTPUT -p ipv6-icmp -m icmp6 --icmpv6-type 135 -j ACCEPT",
            "-A JAILOC-OUTPUT -d 2a04:4e42::223/128 -j ACCEPT",
            "-A JAILOC-OUTPUT -j JAILOC-NAMES",
            "-A JAILOC-OUTPUT -d fe80::/10 -j JAILOC-REJECT",
            "-A JAILOC-OUTPUT -j JAILOC-REJECT",
        ];
        let positions: Vec<usize> = v6.iter().map(|l| position(&r.v6, l)).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
        assert!(r.v4.lines().last() == Some("COMMIT"));
        assert!(!r.v4.contains("icmp6") && !r.v4.contains("2a04"));
        assert!(!r.v6.contains("151.101"));
    }

    #[test]
    fn ipv6_packets_with_a_routing_header_are_refused_before_anything_is_accepted() {
        // A segment routing header hides the real destination behind an allowed first segment,
        // also on an established connection or via loopback: the rule comes first of all.
        let p = policy(Egress::Open, &["2001:db8::10"], &[]);
        let (a, _) = allows(&p, &HostsFile::default());
        for egress in [Egress::Open, Egress::Allowlist] {
            let r = render(egress, &a, &facts(&["fd00::53"]));
            let rules = chain_rules(&r.v6);
            let first = rules.iter().find(|l| l.chain == CHAIN).expect("rules");
            assert_eq!(first.to_string(), "-A JAILOC-OUTPUT -m rt -j JAILOC-REJECT");
            assert_eq!(r.v6.matches("-m rt").count(), 1);
            assert!(!r.v4.contains("-m rt"), "IPv4 has no routing header");
        }
    }

    fn with_blocked(
        egress: Egress,
        hosts: &[&str],
        resolvers: &[&str],
        blocked: &[&str],
    ) -> RuleSets {
        let p = policy(egress, hosts, &[]);
        let (a, _) = allows(&p, &HostsFile::default());
        let facts = Facts {
            blocked: blocked.iter().map(|b| b.parse().expect("net")).collect(),
            ..facts(resolvers)
        };
        render(egress, &a, &facts)
    }

    #[test]
    fn extra_blocked_destinations_come_after_the_allows_and_dns_in_both_modes() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        for egress in [Egress::Open, Egress::Allowlist] {
            let r = with_blocked(
                egress,
                &["203.0.113.7:443", "[2001:db8:17::1]:22"],
                &["203.0.113.53", "2001:db8:17::53"],
                &["203.0.113.0/24", "2001:db8:17::/64", "2001:db8:17::1/128"],
            );
            let last_builtin = position(
                &r.v4,
                "-A JAILOC-OUTPUT -d 168.63.129.16/32 -j JAILOC-REJECT",
            );
            let extra = position(&r.v4, "-A JAILOC-OUTPUT -d 203.0.113.0/24 -j JAILOC-REJECT");
            assert!(last_builtin < extra);
            assert!(
                position(
                    &r.v4,
                    "-A JAILOC-OUTPUT -d 203.0.113.7/32 -p tcp -m tcp --dport 443 -j ACCEPT"
                ) < extra
            );
            // What the chain does with new connections: refused in both modes, except the
            // allowlisted port. The resolvers' port 53 is the gate's alone (the agent's DNS
            // is redirected to the gate before it gets here).
            for (payload, dest, proto, port, want) in [
                (&r.v4, "203.0.113.9", "tcp", 80, "REJECT"),
                (&r.v4, "203.0.113.7", "tcp", 80, "REJECT"),
                (&r.v4, "203.0.113.7", "tcp", 443, "ACCEPT"),
                (&r.v4, "203.0.113.53", "udp", 53, "REJECT"),
                (&r.v4, "203.0.113.53", "tcp", 80, "REJECT"),
                (&r.v6, "2001:db8:17::2", "tcp", 22, "REJECT"),
                (&r.v6, "2001:db8:17::1", "tcp", 22, "ACCEPT"),
                (&r.v6, "2001:db8:17::1", "tcp", 2222, "REJECT"),
                (&r.v6, "2001:db8:17::53", "tcp", 53, "REJECT"),
            ] {
                assert_eq!(
                    evaluate(payload, ip(dest), proto, port).0,
                    want,
                    "{egress} {dest} {proto}/{port}"
                );
            }
            // A public host elsewhere stays open in open egress.
            let open = if egress == Egress::Open { "" } else { "REJECT" };
            assert_eq!(evaluate(&r.v4, ip("198.51.100.10"), "tcp", 80).0, open);
        }
    }

    #[test]
    fn extra_ipv4_destinations_are_blocked_in_their_nat64_and_6to4_forms_too() {
        let r = with_blocked(Egress::Open, &[], &[], &["203.0.113.7/32"]);
        assert!(r
            .v4
            .contains("-A JAILOC-OUTPUT -d 203.0.113.7/32 -j JAILOC-REJECT\n"));
        assert!(r
            .v6
            .contains("-A JAILOC-OUTPUT -d 64:ff9b::cb00:7107/128 -j JAILOC-REJECT\n"));
        assert!(r
            .v6
            .contains("-A JAILOC-OUTPUT -d 2002:cb00:7107::/48 -j JAILOC-REJECT\n"));
        assert!(!r.v6.contains("203.0.113.7/32"));
    }

    #[test]
    fn extras_a_built_in_range_holds_already_get_no_rule_and_duplicates_one() {
        // Docker's usual facts: the bridge, its gateway, link-local: nothing new to render.
        let plain = render(Egress::Open, &[], &facts(&[]));
        let docker = with_blocked(
            Egress::Open,
            &[],
            &[],
            &[
                "172.17.0.0/16",
                "172.17.0.1/32",
                "fe80::/64",
                "fd17::1/128",
                "fd17::/64",
            ],
        );
        assert_eq!(docker, plain);
        let twice = with_blocked(
            Egress::Open,
            &[],
            &[],
            &["2001:db8:17::/64", "2001:db8:17::/64"],
        );
        assert_eq!(twice.v6.matches("-d 2001:db8:17::/64 ").count(), 1);
    }

    #[test]
    fn open_egress_has_no_catch_all_and_allowlist_has_one() {
        let open = render(Egress::Open, &[], &facts(&[]));
        let closed = render(Egress::Allowlist, &[], &facts(&[]));
        for rules in [&open.v4, &open.v6] {
            assert!(!rules.contains("-A JAILOC-OUTPUT -j JAILOC-REJECT"));
        }
        for rules in [&closed.v4, &closed.v6] {
            let last = rules
                .lines()
                .rfind(|l| l.starts_with("-A JAILOC-OUTPUT "))
                .expect("rules");
            assert_eq!(last, "-A JAILOC-OUTPUT -j JAILOC-REJECT");
        }
    }

    #[test]
    fn ports_give_tcp_and_udp_rules_only_for_that_port() {
        let p = policy(
            Egress::Open,
            &["[fd00::5]:8080", "10.1.2.3"],
            &["192.168.5.0/24:5432"],
        );
        let (a, _) = allows(&p, &HostsFile::default());
        let r = render(p.egress, &a, &facts(&[]));
        assert!(r.v6.contains("-A JAILOC-OUTPUT -d fd00::5/128 -p tcp -m tcp --dport 8080 -j ACCEPT\n-A JAILOC-OUTPUT -d fd00::5/128 -p udp -m udp --dport 8080 -j ACCEPT\n"));
        assert!(r
            .v4
            .contains("-A JAILOC-OUTPUT -d 192.168.5.0/24 -p tcp -m tcp --dport 5432 -j ACCEPT\n"));
        assert!(r.v4.contains("-A JAILOC-OUTPUT -d 10.1.2.3/32 -j ACCEPT\n"));
        assert!(!r.v6.contains("-d fd00::5/128 -j ACCEPT"));
    }

    #[test]
    fn every_blocked_range_gets_a_tcp_reset_and_an_icmp_reject() {
        let r = render(Egress::Open, &[], &facts(&[]));
        for net in ranges::blocked_v4() {
            assert!(r
                .v4
                .contains(&format!("-A JAILOC-OUTPUT -d {net} -j JAILOC-REJECT\n")));
        }
        for net in ranges::blocked_v6() {
            assert!(r
                .v6
                .contains(&format!("-A JAILOC-OUTPUT -d {net} -j JAILOC-REJECT\n")));
        }
        // The one place that refuses: the headers to the gate's record first, then a TCP reset,
        // ICMP(v6) admin-prohibited for the rest.
        let refuse = |rules: &str| -> Vec<String> {
            rules
                .lines()
                .filter(|l| l.starts_with("-A JAILOC-REJECT "))
                .map(String::from)
                .collect()
        };
        assert_eq!(
            refuse(&r.v4),
            [
                "-A JAILOC-REJECT -j NFLOG --nflog-group 14 --nflog-size 128",
                "-A JAILOC-REJECT -p tcp -j REJECT --reject-with tcp-reset",
                "-A JAILOC-REJECT -j REJECT --reject-with icmp-admin-prohibited"
            ]
        );
        assert_eq!(
            refuse(&r.v6),
            [
                "-A JAILOC-REJECT -j NFLOG --nflog-group 14 --nflog-size 128",
                "-A JAILOC-REJECT -p tcp -j REJECT --reject-with tcp-reset",
                "-A JAILOC-REJECT -j REJECT --reject-with icmp6-adm-prohibited"
            ]
        );
        assert!(!r.v4.contains("DROP") && !r.v6.contains("DROP"));
    }

    #[test]
    fn never_touches_builtin_policies_or_nat() {
        let r = render(Egress::Allowlist, &[], &facts(&["127.0.0.11"]));
        for rules in [&r.v4, &r.v6] {
            // In nat only our chain and its jump: Docker's DNS rules stay as they are.
            let nat = crate::firewall::readback::section(rules, crate::firewall::Table::Nat);
            assert!(
                nat.lines().skip(1).all(|l| l.contains("JAILOC-DNS")),
                "{nat}"
            );
            assert!(
                !rules.contains(":OUTPUT")
                    && !rules.contains(":INPUT")
                    && !rules.contains(":FORWARD")
            );
            assert!(!rules.contains("-F") && !rules.contains("-P "));
        }
    }

    #[test]
    fn the_jump_is_added_only_when_missing_or_not_first() {
        let jump = "-I OUTPUT 1 -j JAILOC-OUTPUT";
        let with = |hook: Hook| {
            render(
                Egress::Open,
                &[],
                &Facts {
                    hook_v4: Some(hook),
                    ..Facts::default()
                },
            )
            .v4
        };
        assert!(with(Hook {
            jumps: 0,
            first: false
        })
        .contains(jump));
        assert!(!with(Hook {
            jumps: 1,
            first: true
        })
        .contains(jump));
        let moved = with(Hook {
            jumps: 1,
            first: false,
        });
        assert!(moved.contains("-D OUTPUT -j JAILOC-OUTPUT\n-I OUTPUT 1 -j JAILOC-OUTPUT\n"));
        let doubled = with(Hook {
            jumps: 2,
            first: true,
        });
        assert_eq!(doubled.matches("-D OUTPUT -j JAILOC-OUTPUT").count(), 2);
    }

    #[test]
    fn without_facts_the_chain_is_created_with_n_and_hooked_first() {
        let fresh = render(Egress::Open, &[], &Facts::default());
        for (doc, first) in [
            (
                &fresh.v4,
                "-p udp -m owner --uid-owner 1000 -m udp --sport 53 -j JAILOC-REJECT",
            ),
            (&fresh.v6, "-m rt -j JAILOC-REJECT"),
        ] {
            assert!(doc.contains(&format!(
                "\n*filter\n-N JAILOC-OUTPUT\n-N JAILOC-REJECT\n-N JAILOC-NAMES\n-A JAILOC-OUTPUT {first}\n"
            )));
            assert!(!doc.contains(":JAILOC-OUTPUT"));
            assert!(doc.contains("\n-I OUTPUT 1 -j JAILOC-OUTPUT\nCOMMIT\n*nat\n-N JAILOC-DNS\n"));
            assert!(doc.ends_with("\n-I OUTPUT 1 -j JAILOC-DNS\nCOMMIT\n"));
            assert!(!doc.contains("-D OUTPUT"));
        }
        let refill = render(
            Egress::Open,
            &[],
            &Facts {
                hook_v4: Some(Hook::default()),
                ..Facts::default()
            },
        );
        assert!(refill.v4.contains("\n*filter\n:JAILOC-OUTPUT - [0:0]\n"));
        assert!(!refill.v4.contains("-N JAILOC-OUTPUT"));
        let shrunk = render(
            Egress::Open,
            &[],
            &Facts {
                hook_v4: Some(Hook {
                    jumps: 1,
                    first: true,
                }),
                chains_v4: vec!["JAILOC-OUTPUT".into(), "JAILOC-A4-3".into()],
                ..Facts::default()
            },
        );
        assert!(shrunk.v4.contains(
            "*filter\n:JAILOC-OUTPUT - [0:0]\n:JAILOC-REJECT - [0:0]\n:JAILOC-NAMES - [0:0]\n:JAILOC-A4-3 - [0:0]\n"
        ));
        assert!(shrunk.v4.contains("\n-X JAILOC-A4-3\nCOMMIT\n*nat\n"));
        assert_eq!(
            crate::firewall::readback::our_chains(&shrunk.v4),
            [
                "JAILOC-OUTPUT",
                "JAILOC-REJECT",
                "JAILOC-NAMES",
                "JAILOC-A4-3",
                "JAILOC-DNS"
            ]
        );
    }

    #[test]
    fn names_resolving_into_metadata_space_are_refused_unless_that_range_is_allowed() {
        let res = resolution(&[("evil.example", &["169.254.169.254", "93.184.216.34"])]);
        let p = policy(Egress::Open, &["evil.example"], &[]);
        let (a, w) = allows(&p, &res);
        assert_eq!(
            a,
            vec![Allow {
                dest: "93.184.216.34/32".parse().expect("net"),
                port: None
            }]
        );
        assert_eq!(w, ["refusing 169.254.169.254 for evil.example: it is in 169.254.0.0/16 (link-local/metadata); add 169.254.0.0/16 to allowed_networks to allow it"]);

        let p = policy(Egress::Open, &["evil.example"], &["169.254.169.254/32"]);
        let (a, w) = allows(&p, &res);
        assert!(w.is_empty());
        assert!(a.iter().any(|x| x.dest.to_string() == "169.254.169.254/32"));

        // A wider allowed network (0.0.0.0/0) is not "that range".
        let p = policy(Egress::Open, &["evil.example"], &["0.0.0.0/0"]);
        assert_eq!(allows(&p, &res).1.len(), 1);

        // Private space is what allowlisting an internal host is for.
        let res = resolution(&[("db.corp", &["10.1.2.3"])]);
        let (a, w) = allows(&policy(Egress::Open, &["db.corp:5432"], &[]), &res);
        assert!(w.is_empty());
        assert_eq!(a[0].port, Some(5432));
    }

    #[test]
    fn every_rule_of_ours_is_read_back_per_chain() {
        let r = render(Egress::Open, &[], &facts(&[]));
        // The four against DNS past the gate, lo, established, root's DNS (two), the two to
        // the gate, the jump to the names, one jump per blocked range, the record and the two
        // refusals, and the four of the redirect (nat).
        assert_eq!(
            chain_rules(&r.v4).len(),
            4 + 2 + 2 + 2 + 1 + ranges::BLOCKED_V4.len() + 3 + 4
        );
    }

    #[test]
    fn rendering_is_deterministic() {
        let p = policy(
            Egress::Allowlist,
            &["a.example", "10.0.0.5:22"],
            &["fd00:1::/64"],
        );
        let res = resolution(&[("a.example", &["198.51.100.7", "2001:db8::7"])]);
        let (a1, _) = allows(&p, &res);
        let (a2, _) = allows(&p, &res);
        assert_eq!(
            render(p.egress, &a1, &facts(&["127.0.0.11"])),
            render(p.egress, &a2, &facts(&["127.0.0.11"]))
        );
    }

    /// A tiny iptables evaluator for a new TCP/UDP connection: follows jumps, returns the
    /// verdict ("ACCEPT", "REJECT", or "" when the chain falls through) and how many rules the
    /// packet was compared with.
    fn evaluate(payload: &str, dest: IpAddr, proto: &str, port: u16) -> (String, usize) {
        let mut chains: std::collections::HashMap<String, Vec<Vec<String>>> = Default::default();
        for line in payload.lines().filter(|l| l.starts_with("-A ")) {
            let tokens: Vec<String> = line.split_whitespace().map(String::from).collect();
            chains
                .entry(tokens[1].clone())
                .or_default()
                .push(tokens[2..].to_vec());
        }
        fn walk(
            chains: &std::collections::HashMap<String, Vec<Vec<String>>>,
            chain: &str,
            pkt: (IpAddr, &str, u16),
            seen: &mut usize,
        ) -> Option<String> {
            for rule in chains.get(chain).map(Vec::as_slice).unwrap_or_default() {
                *seen += 1;
                let arg = |flag: &str| {
                    rule.iter()
                        .position(|t| t == flag)
                        .map(|i| rule[i + 1].clone())
                };
                // The packets evaluated carry no routing header and are new, not on loopback.
                // Nor are they the gate's (its uid is not the agent's).
                let matches = rule
                    .iter()
                    .all(|t| t != "-o" && t != "conntrack" && t != "rt" && t != "owner")
                    && arg("-d").is_none_or(|d| d.parse::<IpNet>().expect("net").contains(&pkt.0))
                    && arg("-p").is_none_or(|p| p == pkt.1)
                    && arg("--dport").is_none_or(|p| p == pkt.2.to_string());
                if !matches {
                    continue;
                }
                match arg("-j").as_deref() {
                    Some(t @ ("ACCEPT" | "REJECT")) => return Some(t.to_owned()),
                    Some(sub) => {
                        if let Some(v) = walk(chains, sub, pkt, seen) {
                            return Some(v);
                        }
                    }
                    None => {}
                }
            }
            None
        }
        let mut seen = 0;
        let verdict = walk(&chains, CHAIN, (dest, proto, port), &mut seen).unwrap_or_default();
        (verdict, seen)
    }

    #[test]
    fn many_allows_become_a_tree_that_accepts_exactly_what_the_list_does() {
        let mut networks: Vec<String> = (0..5000)
            .map(|i| {
                format!(
                    "10.{}.{}.{}/32",
                    200 + i / 62500,
                    (i / 250) % 250,
                    i % 250 + 1
                )
            })
            .collect();
        networks.push("172.20.0.0/16:5432".to_owned());
        networks.push("fd00:5::/64".to_owned());
        let networks: Vec<&str> = networks.iter().map(String::as_str).collect();
        let p = policy(Egress::Allowlist, &["192.0.2.10"], &networks);
        let (allows, _) = allows(&p, &HostsFile::default());
        let tree = render(Egress::Allowlist, &allows, &facts(&["127.0.0.11"]));
        assert!(tree.v4.contains("-j JAILOC-A4-"), "a tree for v4");
        assert!(
            !tree.v6.contains("-j JAILOC-A6-"),
            "v6 has few allows: a plain list"
        );
        // The same destinations, rendered as one plain list, as the reference.
        let plain = |a: &Allow| {
            allow_rules(a)
                .into_iter()
                .map(|r| format!("-A {CHAIN} {r}\n"))
        };
        let list: String = allows
            .iter()
            .filter(|a| a.dest.addr().is_ipv4())
            .flat_map(plain)
            .collect();
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        for (dest, proto, port) in [
            ("10.200.0.1", "tcp", 443),
            ("10.200.19.250", "udp", 53),
            ("10.200.120.7", "tcp", 80),
            ("10.200.119.250", "tcp", 80),
            ("10.200.0.0", "tcp", 80),
            ("10.201.0.1", "tcp", 80),
            ("172.20.3.4", "tcp", 5432),
            ("172.20.3.4", "tcp", 5433),
            ("192.0.2.10", "udp", 9),
            ("192.0.2.11", "tcp", 80),
            ("198.51.100.10", "tcp", 80),
        ] {
            let (want, _) = evaluate(&list, ip(dest), proto, port);
            let want = if want.is_empty() {
                "REJECT"
            } else {
                want.as_str()
            };
            let (got, _) = evaluate(&tree.v4, ip(dest), proto, port);
            assert_eq!(got, want, "{dest} {proto}/{port}");
        }
        // What a user notices: a new connection no longer walks 5,000 rules.
        for dest in ["198.51.100.10", "10.200.13.77", "10.200.19.250"] {
            let (_, walked) = evaluate(&tree.v4, ip(dest), "tcp", 80);
            let (_, linear) = evaluate(&list, ip(dest), "tcp", 80);
            assert!(linear >= 4900 || dest != "198.51.100.10");
            assert!(walked < 400, "{dest}: {walked} rules walked");
        }
    }

    #[test]
    fn up_to_tree_above_allows_stay_a_plain_list() {
        let networks: Vec<String> = (0..TREE_ABOVE).map(|i| format!("10.9.{i}.0/24")).collect();
        let networks: Vec<&str> = networks.iter().map(String::as_str).collect();
        let p = policy(Egress::Open, &[], &networks);
        let (allows, _) = allows(&p, &HostsFile::default());
        let r = render(Egress::Open, &allows, &facts(&[]));
        assert!(!r.v4.contains("JAILOC-A4"));
        // Plus lo, established, root's DNS (two) and the two to the gate.
        assert_eq!(r.v4.matches(" -j ACCEPT\n").count(), TREE_ABOVE + 6);
    }
}
