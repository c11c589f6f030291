//! Reading `iptables-save`: how our chains stand now ([`Current`], the facts a refill is
//! rendered with) and whether what the kernel holds is exactly what was rendered ([`verify`]).
//!
//! Comparing is by rule, not by text: each iptables version prints a rule its own way (chains
//! in another order, `-p 6` for `-p tcp`, implicit `-m tcp` matches left out, addresses in
//! another spelling), so a rule that differs in text is normalised ([`SavedRule`]) before it
//! is called different.

use super::rules::{ChainName, Family, Table, CHAIN_PREFIX};
use super::FirewallError;
use ipnet::IpNet;
use std::net::IpAddr;

/// How `OUTPUT` jumps to our chain right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Hook {
    /// Number of `-j JAILOC-OUTPUT` rules in `OUTPUT`.
    pub jumps: usize,
    /// Whether the first rule of `OUTPUT` is that jump.
    pub first: bool,
}

impl Hook {
    /// The one hook we want: a single jump, first in `OUTPUT`.
    pub const WANTED: Hook = Hook {
        jumps: 1,
        first: true,
    };
}

/// Our chains of one table as `iptables-save` shows them: what a refill must keep in mind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableState {
    /// How the table's `OUTPUT` jumps to our chain.
    pub hook: Hook,
    /// Our chains that exist (`JAILOC-...`): sub-chains a smaller allowlist no longer needs
    /// are emptied and deleted by the refill.
    pub chains: Vec<String>,
}

/// Our chains as one family's `iptables-save` shows them, per table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Current {
    pub filter: TableState,
    pub nat: TableState,
}

impl Current {
    /// Reads `iptables-save` output (all tables).
    pub fn from_save(save: &str) -> Self {
        let state = |table: Table| {
            let section = section(save, table);
            TableState {
                hook: hook_of(section, table.hook()),
                chains: our_chains(section),
            }
        };
        Current {
            filter: state(Table::Filter),
            nat: state(Table::Nat),
        }
    }

    /// The state of `table`.
    pub fn table(&self, table: Table) -> &TableState {
        match table {
            Table::Filter => &self.filter,
            Table::Nat => &self.nat,
        }
    }
}

/// The lines of `table` in `iptables-save` output or a payload: from `*TABLE` to its `COMMIT`
/// (empty when the table is absent).
pub fn section(save: &str, table: Table) -> &str {
    let marker = format!("*{table}\n");
    let start = if save.starts_with(&marker) {
        Some(0)
    } else {
        save.find(&format!("\n{marker}")).map(|i| i + 1)
    };
    let Some(start) = start else {
        return "";
    };
    let body = &save[start..];
    match body.find("\nCOMMIT") {
        Some(end) => &body[..end + 1],
        None => body,
    }
}

/// The names of our chains (`JAILOC-...`) declared in `iptables-save` output (or a payload).
pub fn our_chains(save: &str) -> Vec<String> {
    save.lines()
        .filter_map(|l| l.strip_prefix(':'))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| name.starts_with(CHAIN_PREFIX))
        .map(str::to_owned)
        .collect()
}

/// How `OUTPUT` of one table's section jumps to `ours`.
pub fn hook_of(section: &str, ours: ChainName) -> Hook {
    let jump = format!("-A OUTPUT -j {ours}");
    let output: Vec<&str> = section
        .lines()
        .map(str::trim_end)
        .filter(|l| l.starts_with("-A OUTPUT "))
        .collect();
    Hook {
        jumps: output.iter().filter(|l| **l == jump).count(),
        first: output.first().is_some_and(|l| *l == jump),
    }
}

/// Checks that our chains hold exactly the rendered rules and `OUTPUT` jumps to ours once,
/// first.
pub fn verify(family: Family, rendered: &str, saved: &str) -> Result<(), FirewallError> {
    let chain = ChainName::Output.to_string();
    let want = chain_rules(rendered);
    let have = chain_rules(saved);
    let mismatch = |detail: String| FirewallError::Mismatch { family, detail };
    for table in Table::ALL {
        let ours = table.hook().to_string();
        if !section(saved, table)
            .lines()
            .any(|l| l.starts_with(&format!(":{ours} ")))
        {
            return Err(mismatch(format!("chain {ours} ({table}) is missing")));
        }
    }
    if want != have {
        let at = want
            .iter()
            .zip(&have)
            .position(|(w, h)| w != h)
            .unwrap_or(want.len().min(have.len()));
        let show = |rule: Option<&RuleLine<'_>>| rule.map_or("<end>".to_owned(), |r| r.to_string());
        let (expected, found) = (show(want.get(at)), show(have.get(at)));
        // Name the chain the first difference is in, and the rule's place within it.
        let differs = want
            .get(at)
            .or(have.get(at))
            .map_or(chain.as_str(), |r| r.chain);
        let nth = want[..at].iter().filter(|r| r.chain == differs).count() + 1;
        return Err(mismatch(format!(
            "rule {nth} of {differs} differs: expected {expected:?}, found {found:?} ({} rules rendered, {} installed)",
            want.len(),
            have.len()
        )));
    }
    for table in Table::ALL {
        let ours = table.hook();
        let hook = hook_of(section(saved, table), ours);
        if hook != Hook::WANTED {
            return Err(mismatch(format!(
                "OUTPUT ({table}) must jump to {ours} exactly once, as its first rule (found {} jumps, first: {})",
                hook.jumps, hook.first
            )));
        }
    }
    Ok(())
}

/// The rules of all our chains (`-A JAILOC-...`, but the gate's `JAILOC-NAMES`) in a payload or
/// in `iptables-save` output,
/// grouped by chain name (in order within a chain), so the two can be compared whatever order a
/// save lists chains in.
pub fn chain_rules(text: &str) -> Vec<RuleLine<'_>> {
    let prefix = format!("-A {CHAIN_PREFIX}");
    // `JAILOC-NAMES` is the gate's to fill and empty: its rules are not part of the plan.
    let names = format!("-A {} ", ChainName::Names);
    let mut rules: Vec<RuleLine<'_>> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with(&prefix) && !l.starts_with(&names))
        .map(|text| RuleLine {
            chain: text.split_whitespace().nth(1).unwrap_or_default(),
            text,
        })
        .collect();
    // Stable: rules keep their order within a chain.
    rules.sort_by(|a, b| a.chain.cmp(b.chain));
    rules
}

/// One of our rule lines as text. Two are equal when their text is, or else when they
/// normalise to the same [`SavedRule`]: what an iptables version saves is nearly always our
/// text to the letter, so a read-back of thousands of rules parses only the few that differ.
#[derive(Debug, Clone, Copy)]
pub struct RuleLine<'a> {
    /// The chain the rule is appended to (`-A CHAIN`).
    pub chain: &'a str,
    text: &'a str,
}

impl PartialEq for RuleLine<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text || SavedRule::parse(self.text) == SavedRule::parse(other.text)
    }
}

impl std::fmt::Display for RuleLine<'_> {
    /// The normalised form (what a mismatch report shows).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        SavedRule::parse(self.text).fmt(f)
    }
}

/// One rule line, canonicalised so that what we render and what any iptables version saves
/// compare equal: addresses compared as networks (not as text), protocol numbers as names, and
/// the implicit protocol matches (`-m tcp` after `-p tcp`) dropped, since versions differ in
/// printing them. Borrowed from the text, so normalising a large read-back costs no copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedRule<'a> {
    tokens: Vec<Token<'a>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    Word(&'a str),
    Net(IpNet),
}

impl<'a> SavedRule<'a> {
    /// Normalises one `-A ...` line.
    pub fn parse(line: &'a str) -> Self {
        let words: Vec<&str> = line.split_whitespace().collect();
        let mut tokens: Vec<Token<'a>> = Vec::with_capacity(words.len());
        let mut i = 0;
        while i < words.len() {
            let word = words[i];
            let next = words.get(i + 1).copied();
            if word == "-m" && matches!(next, Some("tcp" | "udp" | "icmp" | "icmp6")) {
                i += 2;
                continue;
            }
            let token = if tokens.last() == Some(&Token::Word("-p")) {
                Token::Word(match word {
                    "1" => "icmp",
                    "6" => "tcp",
                    "17" => "udp",
                    "58" | "icmpv6" => "ipv6-icmp",
                    other => other,
                })
            } else {
                parse_net(word).map_or(Token::Word(word), Token::Net)
            };
            tokens.push(token);
            i += 1;
        }
        SavedRule { tokens }
    }
}

impl std::fmt::Display for SavedRule<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, token) in self.tokens.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            match token {
                Token::Word(word) => f.write_str(word)?,
                Token::Net(net) => write!(f, "{net}")?,
            }
        }
        Ok(())
    }
}

/// `ADDR` or `ADDR/LEN` as a network (an address alone is a host network), or `None` for
/// anything else. Cheap on the keywords that make up most of a read-back's tokens.
fn parse_net(word: &str) -> Option<IpNet> {
    let first = *word.as_bytes().first()?;
    if !(first.is_ascii_hexdigit() || first == b':') || !word.contains(['.', ':']) {
        return None;
    }
    let (addr, len) = match word.split_once('/') {
        Some((addr, len)) => (addr.parse::<IpAddr>().ok()?, Some(len.parse::<u8>().ok()?)),
        None => (word.parse::<IpAddr>().ok()?, None),
    };
    match len {
        Some(len) => IpNet::new(addr, len).ok(),
        None => Some(IpNet::from(addr)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalise(line: &str) -> String {
        SavedRule::parse(line).to_string()
    }

    #[test]
    fn hook_of_reads_iptables_save() {
        let save = "*filter\n:OUTPUT ACCEPT [0:0]\n:JAILOC-OUTPUT - [0:0]\n-A OUTPUT -j JAILOC-OUTPUT\n-A OUTPUT -d 1.2.3.4/32 -j ACCEPT\nCOMMIT\n\
            *nat\n:OUTPUT ACCEPT [0:0]\n:DOCKER_OUTPUT - [0:0]\n:JAILOC-DNS - [0:0]\n-A OUTPUT -d 127.0.0.11/32 -j DOCKER_OUTPUT\n-A OUTPUT -j JAILOC-DNS\nCOMMIT\n";
        let output = ChainName::Output;
        assert_eq!(hook_of(section(save, Table::Filter), output), Hook::WANTED);
        assert_eq!(
            hook_of(
                "*filter\n-A OUTPUT -o lo -j ACCEPT\n-A OUTPUT -j JAILOC-OUTPUT\n",
                output
            ),
            Hook {
                jumps: 1,
                first: false
            }
        );
        assert_eq!(hook_of("", output), Hook::default());
        // Docker's jump for its embedded DNS comes first in nat: ours is not first (yet).
        assert_eq!(
            Current::from_save(save),
            Current {
                filter: TableState {
                    hook: Hook::WANTED,
                    chains: vec!["JAILOC-OUTPUT".into()]
                },
                nat: TableState {
                    hook: Hook {
                        jumps: 1,
                        first: false
                    },
                    chains: vec!["JAILOC-DNS".into()]
                },
            }
        );
    }

    #[test]
    fn saved_rules_normalise_the_way_iptables_versions_differ() {
        assert_eq!(
            normalise("-A JAILOC-OUTPUT  -d 10.0.0.1 -j ACCEPT"),
            "-A JAILOC-OUTPUT -d 10.0.0.1/32 -j ACCEPT"
        );
        assert_eq!(
            normalise("-A X -d FD00:0::5/128 -j ACCEPT"),
            "-A X -d fd00::5/128 -j ACCEPT"
        );
        // Versions differ in printing implicit matches and protocol names: both forms agree.
        assert_eq!(
            normalise("-A X -d 10.0.0.2/32 -p udp -m udp --dport 53 -j ACCEPT"),
            normalise("-A X -d 10.0.0.2/32 -p 17 --dport 53 -j ACCEPT")
        );
        assert_eq!(
            normalise("-A X -p ipv6-icmp -m icmp6 --icmpv6-type 135 -j ACCEPT"),
            normalise("-A X -p icmpv6 --icmpv6-type 135 -j ACCEPT")
        );
        // But a different port, protocol or target still differs.
        assert_ne!(
            normalise("-A X -p tcp -m tcp --dport 53 -j ACCEPT"),
            normalise("-A X -p udp -m udp --dport 53 -j ACCEPT")
        );
        assert_ne!(
            normalise("-A X -d 10.0.0.0/8 -j ACCEPT"),
            normalise("-A X -d 10.0.0.0/8 -j REJECT")
        );
        // Addresses that start with a colon are addresses too.
        assert_eq!(
            normalise("-A X -d ::ffff:0:0/96 -j JAILOC-REJECT"),
            normalise("-A X -d ::ffff:0.0.0.0/96 -j JAILOC-REJECT")
        );
    }

    #[test]
    fn verify_demands_one_first_jump() {
        let rendered =
            "*filter\n:JAILOC-OUTPUT - [0:0]\n-A JAILOC-OUTPUT -o lo -j ACCEPT\nCOMMIT\n*nat\n:JAILOC-DNS - [0:0]\nCOMMIT\n";
        let nat = "*nat\n:JAILOC-DNS - [0:0]\n-A OUTPUT -j JAILOC-DNS\nCOMMIT\n";
        let saved = format!("*filter\n:JAILOC-OUTPUT - [0:0]\n-A OUTPUT -o eth0 -j ACCEPT\n-A OUTPUT -j JAILOC-OUTPUT\n-A JAILOC-OUTPUT -o lo -j ACCEPT\nCOMMIT\n{nat}");
        let e = verify(Family::V4, rendered, &saved)
            .expect_err("not first")
            .to_string();
        assert_eq!(e, "failed to verify the IPv4 rules: OUTPUT (filter) must jump to JAILOC-OUTPUT exactly once, as its first rule (found 1 jumps, first: false)");
        assert!(verify(Family::V4, rendered, "*filter\nCOMMIT\n").is_err());
        // The nat jump is checked the same way.
        let good = saved.replace("-A OUTPUT -o eth0 -j ACCEPT\n", "");
        verify(Family::V4, rendered, &good).expect("both hooks first");
        let e = verify(
            Family::V4,
            rendered,
            &good.replace("-A OUTPUT -j JAILOC-DNS\n", ""),
        )
        .expect_err("no nat jump")
        .to_string();
        assert!(e.contains("OUTPUT (nat) must jump to JAILOC-DNS"), "{e}");
    }

    #[test]
    fn verify_reads_a_save_that_prints_rules_its_own_way_and_names_the_differing_chain() {
        let rendered = "*filter\n-N JAILOC-OUTPUT\n-N JAILOC-A6-0\n\
            -A JAILOC-OUTPUT -d 2001:db8::/32 -j JAILOC-A6-0\n\
            -A JAILOC-A6-0 -d 2001:db8::5/128 -p tcp -m tcp --dport 443 -j ACCEPT\n\
            -A JAILOC-A6-0 -d 2001:db8::6/128 -j ACCEPT\n-I OUTPUT 1 -j JAILOC-OUTPUT\nCOMMIT\n\
            *nat\n-N JAILOC-DNS\n-I OUTPUT 1 -j JAILOC-DNS\nCOMMIT\n";
        // Chains in another order, an address in another spelling, a protocol number, no
        // implicit `-m tcp`, trailing blanks: the same rules.
        let saved = "*filter\n:OUTPUT ACCEPT [0:0]\n:JAILOC-A6-0 - [0:0]\n:JAILOC-OUTPUT - [0:0]\n\
            -A OUTPUT -j JAILOC-OUTPUT\n\
            -A JAILOC-A6-0 -d 2001:DB8:0::5/128 -p 6 --dport 443 -j ACCEPT  \n\
            -A JAILOC-A6-0 -d 2001:db8::6/128 -j ACCEPT\n\
            -A JAILOC-OUTPUT -d 2001:db8::/32 -j JAILOC-A6-0\nCOMMIT\n\
            *nat\n:OUTPUT ACCEPT [0:0]\n:JAILOC-DNS - [0:0]\n-A OUTPUT -j JAILOC-DNS\nCOMMIT\n";
        verify(Family::V6, rendered, saved).expect("the same rules");
        // One address off in the sub-chain: the error points there, not at JAILOC-OUTPUT.
        let wrong = saved.replace("2001:db8::6/128", "2001:db8::7/128");
        let e = verify(Family::V6, rendered, &wrong).expect_err("differs");
        assert_eq!(
            e.to_string(),
            "failed to verify the IPv6 rules: rule 2 of JAILOC-A6-0 differs: expected \
             \"-A JAILOC-A6-0 -d 2001:db8::6/128 -j ACCEPT\", found \
             \"-A JAILOC-A6-0 -d 2001:db8::7/128 -j ACCEPT\" (3 rules rendered, 3 installed)"
        );
    }
}
