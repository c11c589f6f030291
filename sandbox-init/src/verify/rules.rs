//! That the rules are in place (as root, before the drop): the plan the boot would install now
//! ([`crate::firewall::Plan`], rebuilt from the same files) against what `iptables-save` shows,
//! through the trusted runner and compared by [`firewall::verify`] — the boot's own read-back
//! check, so `JAILOC-NAMES` (the gate's) is not compared. The save also says what the gate has
//! opened, which the probes must then not take for a hole.

use super::Row;
use crate::firewall::{self, Allow, CommandRunner, Family, PerFamily, Plan};
use ipnet::IpNet;
use std::time::Instant;

/// What the rules check found.
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    /// One row per family.
    pub rows: Vec<Row>,
    /// What `JAILOC-NAMES` opens now (both families).
    pub opened: Vec<Allow>,
}

/// Our chain's declaration in `iptables-save` output: the backend that shows it is the one the
/// boot installed with.
const OUR_CHAIN: &str = ":JAILOC-OUTPUT ";

/// Reads both families' rules with the first installed backend that holds ours and compares
/// them with `plan`. `ipv6_present`: the container has IPv6, so missing IPv6 rules fail.
pub(crate) fn check(runner: &dyn CommandRunner, plan: &Plan, ipv6_present: bool) -> Rules {
    let started = Instant::now();
    let saves = match saves(runner) {
        Ok(saves) => saves,
        Err(cause) => {
            let row = |family: Family| Row::rules(rules_name(family), false, &cause, started);
            return Rules {
                rows: vec![row(Family::V4), row(Family::V6)],
                opened: Vec::new(),
            };
        }
    };
    let payloads = plan.fresh_payloads();
    let mut rows = Vec::new();
    let mut opened = Vec::new();
    for family in [Family::V4, Family::V6] {
        let save = saves.get(family);
        let (pass, got) = match save {
            Some(save) if save.contains(OUR_CHAIN) => {
                opened.extend(opened_names(save));
                match firewall::verify(family, payloads.get(family), save) {
                    Ok(()) => (true, "in place".to_owned()),
                    Err(e) => (false, e.to_string()),
                }
            }
            _ if family == Family::V6 && !ipv6_present => (
                true,
                "absent (the container has no IPv6 address)".to_owned(),
            ),
            Some(_) => (false, "missing: no JAILOC-OUTPUT chain".to_owned()),
            None => (false, "could not be read".to_owned()),
        };
        rows.push(Row::rules(rules_name(family), pass, &got, started));
    }
    Rules { rows, opened }
}

fn rules_name(family: Family) -> &'static str {
    match family {
        Family::V4 => "rules IPv4",
        Family::V6 => "rules IPv6",
    }
}

/// Both families' `*-save` output from the first installed backend whose IPv4 save shows our
/// chain (else the first whose save works); `None` for a family whose save failed.
fn saves(runner: &dyn CommandRunner) -> Result<PerFamily<Option<String>>, String> {
    let probed = firewall::probe(runner).map_err(|e| e.to_string())?;
    let save = |backend: &firewall::Backend, family: Family| {
        let cmd = backend.save(family);
        runner
            .run(cmd.program, cmd.args, cmd.stdin)
            .ok()
            .filter(|out| out.success)
            .map(|out| out.stdout)
    };
    let mut fallback = None;
    for backend in &probed.candidates {
        let Some(v4) = save(backend, Family::V4) else {
            continue;
        };
        if v4.contains(OUR_CHAIN) || fallback.is_none() {
            let both = PerFamily {
                v4: Some(v4.clone()),
                v6: save(backend, Family::V6),
            };
            if v4.contains(OUR_CHAIN) {
                return Ok(both);
            }
            fallback = Some(both);
        }
    }
    fallback.ok_or_else(|| "no iptables backend could read the rules".to_owned())
}

/// The destinations `JAILOC-NAMES` accepts (`-A JAILOC-NAMES -d NET [... --dport N] -j ACCEPT`).
pub(crate) fn opened_names(save: &str) -> Vec<Allow> {
    save.lines()
        .filter_map(|line| line.strip_prefix("-A JAILOC-NAMES "))
        .filter_map(|rule| {
            let words: Vec<&str> = rule.split_whitespace().collect();
            let after = |flag: &str| {
                words
                    .iter()
                    .position(|w| *w == flag)
                    .and_then(|i| words.get(i + 1))
            };
            let dest = after("-d")?;
            let dest: IpNet = dest
                .parse()
                .or_else(|_| dest.parse::<std::net::IpAddr>().map(IpNet::from))
                .ok()?;
            let port = after("--dport").and_then(|p| p.parse().ok());
            Some(Allow { dest, port })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::conf::HostsFile;
    use crate::firewall::fake::FakeIptables;
    use crate::firewall::link::Routes;
    use crate::policy::Policy;

    fn plan() -> Plan {
        let policy = Policy::default();
        Plan::new(&policy, &HostsFile::default(), &[], &Routes::default())
    }

    /// Installs `plan` into the fake as the boot would (fresh payloads, both families).
    fn installed(runner: &FakeIptables, plan: &Plan) {
        let probed = firewall::probe(runner).expect("probe");
        firewall::install(runner, &probed, plan, true).expect("install");
    }

    #[test]
    fn rules_as_installed_pass_and_a_removed_rule_fails_naming_it() {
        let runner = FakeIptables::default();
        let plan = plan();
        installed(&runner, &plan);
        let rules = check(&runner, &plan, true);
        assert!(rules.rows.iter().all(|r| r.pass), "{:#?}", rules.rows);
        // The attack: a rule deleted inside the container.
        let rule = "-A JAILOC-OUTPUT -d 169.254.0.0/16 -j JAILOC-REJECT\n";
        let before = runner.state_v4.borrow().clone();
        assert!(before.contains(rule));
        *runner.state_v4.borrow_mut() = before.replace(rule, "");
        let rules = check(&runner, &plan, true);
        assert!(!rules.rows[0].pass);
        assert!(
            rules.rows[0]
                .got
                .starts_with("failed to verify the IPv4 rules: "),
            "{}",
            rules.rows[0].got
        );
        assert!(rules.rows[1].pass, "IPv6 untouched");
    }

    #[test]
    fn missing_ipv6_rules_fail_only_where_the_container_has_ipv6() {
        let runner = FakeIptables::default();
        let plan = plan();
        installed(&runner, &plan);
        runner.state_v6.borrow_mut().clear();
        assert!(!check(&runner, &plan, true).rows[1].pass);
        let rules = check(&runner, &plan, false);
        assert!(rules.rows[1].pass);
        assert_eq!(
            rules.rows[1].got,
            "absent (the container has no IPv6 address)"
        );
    }

    #[test]
    fn what_the_gate_opened_is_read_from_jailoc_names() {
        let save = "*filter\n:JAILOC-NAMES - [0:0]\n\
            -A JAILOC-NAMES -d 198.51.100.7/32 -p tcp -m tcp --dport 443 -j ACCEPT\n\
            -A JAILOC-NAMES -d 2001:db8::7/128 -j ACCEPT\n\
            -A JAILOC-OUTPUT -d 10.0.0.0/8 -j JAILOC-REJECT\nCOMMIT\n";
        assert_eq!(
            opened_names(save),
            [
                Allow {
                    dest: "198.51.100.7/32".parse().expect("net"),
                    port: Some(443)
                },
                Allow {
                    dest: "2001:db8::7/128".parse().expect("net"),
                    port: None
                },
            ]
        );
    }
}
