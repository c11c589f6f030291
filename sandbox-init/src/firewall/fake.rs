//! The test double of the iptables programs: a recording [`FakeIptables`] that keeps state
//! like the kernel does (a restore replaces our chains and edits the jumps, `-N` of an existing
//! chain fails the whole restore, a save prints what is installed). Production code never picks
//! it: tests pass it where the boot takes a [`CommandRunner`].

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
            // A faithful-enough model of --noflush: our chain is replaced, jumps edited;
            // `-N` of an existing chain fails the whole restore, changing nothing.
            let payload = stdin.unwrap_or_default();
            if payload.lines().any(|l| l == "-N JAILOC-OUTPUT")
                && state.borrow().contains(":JAILOC-OUTPUT ")
            {
                return Ok(Output {
                    success: false,
                    stdout: String::new(),
                    stderr: format!("{program}: line 3 failed: Chain already exists.\n"),
                });
            }
            let mut out: Vec<String> = state
                .borrow()
                .lines()
                .filter(|l| l.starts_with("-A OUTPUT"))
                .map(str::to_owned)
                .collect();
            for line in payload.lines() {
                if line == "-D OUTPUT -j JAILOC-OUTPUT" {
                    if let Some(i) = out.iter().position(|l| l == "-A OUTPUT -j JAILOC-OUTPUT") {
                        out.remove(i);
                    }
                } else if line == "-I OUTPUT 1 -j JAILOC-OUTPUT" {
                    out.insert(0, "-A OUTPUT -j JAILOC-OUTPUT".to_owned());
                }
            }
            let chain: Vec<&str> = payload
                .lines()
                .filter(|l| l.starts_with("-A JAILOC-"))
                .collect();
            let mut text = String::from("*filter\n:INPUT ACCEPT [0:0]\n:JAILOC-OUTPUT - [0:0]\n");
            for l in out.iter().map(String::as_str).chain(chain) {
                text.push_str(l);
                text.push('\n');
            }
            text.push_str("COMMIT\n");
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
