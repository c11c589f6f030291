//! The test double of the iptables programs: a recording [`FakeIptables`] that keeps state
//! like the kernel does (a restore replaces our chains and edits the jumps, `-N` of an existing
//! chain fails the whole restore, a save prints what is installed). Production code never picks
//! it: tests pass it where the boot takes a [`CommandRunner`].

use super::readback::{our_chains, section};
use super::rules::Table;
use super::runner::{CommandRunner, Output};
use std::cell::RefCell;
use std::io;

/// One recorded call: program, args, stdin.
pub type Call = (String, Vec<String>, Option<String>);

/// Behaves like an iptables that keeps state: restore appends the payload's chain rules
/// to the "installed" text per family, save prints it. Programs in `missing` are not found;
/// programs in `failing` exit with an error.
#[derive(Debug, Default)]
pub struct FakeIptables {
    pub calls: RefCell<Vec<Call>>,
    pub missing: Vec<&'static str>,
    pub failing: Vec<&'static str>,
    pub state_v4: RefCell<String>,
    pub state_v6: RefCell<String>,
    /// When set, save prints this instead of the state (to fake a mismatch).
    pub corrupt_save: Option<String>,
    /// Programs installed where the agent could have changed them.
    pub untrusted: Vec<&'static str>,
}

impl FakeIptables {
    /// The programs run, in order.
    pub fn programs(&self) -> Vec<String> {
        self.calls.borrow().iter().map(|c| c.0.clone()).collect()
    }

    /// What each run of `program` was fed, in order.
    pub fn payloads(&self, program: &str) -> Vec<String> {
        let calls = self.calls.borrow();
        let fed = calls.iter().filter(|c| c.0 == program);
        fed.filter_map(|c| c.2.clone()).collect()
    }
}

impl CommandRunner for FakeIptables {
    fn exists(&self, program: &str) -> Result<bool, crate::trust::TrustError> {
        if self.untrusted.contains(&program) {
            let path = std::path::Path::new("/usr/sbin").join(program);
            return Err(crate::trust::TrustError::Untrusted {
                at: path.clone(),
                path,
                why: crate::trust::Why::Owner { uid: 1000, want: 0 },
            });
        }
        Ok(!self.missing.contains(&program))
    }

    fn run(&self, program: &str, args: &[&str], stdin: Option<&str>) -> io::Result<Output> {
        self.calls.borrow_mut().push((
            program.to_owned(),
            args.iter().map(|a| a.to_string()).collect(),
            stdin.map(str::to_owned),
        ));
        if self.missing.contains(&program) {
            return Err(io::Error::new(io::ErrorKind::NotFound, "not found"));
        }
        if self.failing.contains(&program) {
            return Ok(Output {
                success: false,
                stdout: String::new(),
                stderr: format!("{program}: boom\n"),
            });
        }
        let state = if program.starts_with("ip6") {
            &self.state_v6
        } else {
            &self.state_v4
        };
        if program.ends_with("-restore") {
            // A faithful-enough model of --noflush, per table: our chains are replaced, jumps
            // edited; `-N` of an existing chain fails the whole restore, changing nothing.
            let payload = stdin.unwrap_or_default();
            let before = state.borrow().clone();
            if payload.lines().any(|l| {
                l.strip_prefix("-N ")
                    .is_some_and(|chain| before.contains(&format!(":{chain} ")))
            }) {
                return Ok(Output {
                    success: false,
                    stdout: String::new(),
                    stderr: format!("{program}: line 3 failed: Chain already exists.\n"),
                });
            }
            let mut text = String::new();
            for table in Table::ALL {
                let ours = table.hook().to_string();
                let jump = format!("-A OUTPUT -j {ours}");
                let old = section(&before, table);
                let fed = section(payload, table);
                let mut output: Vec<String> = old
                    .lines()
                    .filter(|l| l.starts_with("-A OUTPUT"))
                    .map(str::to_owned)
                    .collect();
                for line in fed.lines() {
                    if line == format!("-D OUTPUT -j {ours}") {
                        if let Some(i) = output.iter().position(|l| *l == jump) {
                            output.remove(i);
                        }
                    } else if line == format!("-I OUTPUT 1 -j {ours}") {
                        output.insert(0, jump.clone());
                    }
                }
                // Chains that were fed replace what they held; others keep their rules.
                let fed_chains = our_chains_fed(fed);
                let mut chains: Vec<String> = our_chains(old);
                for chain in &fed_chains {
                    if !chains.contains(chain) {
                        chains.push(chain.clone());
                    }
                }
                chains.retain(|c| !fed.lines().any(|l| l == format!("-X {c}")));
                if chains.is_empty() && output.is_empty() {
                    continue;
                }
                text.push_str(&format!("*{table}\n:OUTPUT ACCEPT [0:0]\n"));
                for chain in &chains {
                    text.push_str(&format!(":{chain} - [0:0]\n"));
                }
                for line in &output {
                    text.push_str(line);
                    text.push('\n');
                }
                for chain in &chains {
                    let source = if fed_chains.contains(chain) { fed } else { old };
                    let prefix = format!("-A {chain} ");
                    for line in source.lines().filter(|l| l.starts_with(&prefix)) {
                        text.push_str(line);
                        text.push('\n');
                    }
                }
                text.push_str("COMMIT\n");
            }
            *state.borrow_mut() = text;
            return Ok(Output {
                success: true,
                ..Output::default()
            });
        }
        let stdout = self
            .corrupt_save
            .clone()
            .unwrap_or_else(|| state.borrow().clone());
        Ok(Output {
            success: true,
            stdout,
            stderr: String::new(),
        })
    }
}

/// The chains a payload section declares (`-N CHAIN` or `:CHAIN`), ours only.
fn our_chains_fed(section: &str) -> Vec<String> {
    section
        .lines()
        .filter_map(|l| l.strip_prefix("-N ").or_else(|| l.strip_prefix(':')))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| c.starts_with(super::rules::CHAIN_PREFIX))
        .map(str::to_owned)
        .collect()
}
