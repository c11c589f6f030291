//! The policy contract between the launcher (`jailoc`, which writes it) and sandbox-init (which
//! reads it): the entry grammar ([`parse_host`], [`parse_network`], [`parse_blocked`]), the typed
//! entries, the [`Policy`] a policy directory holds, its reader ([`load`], [`parse_toml`]) and
//! writer ([`write_toml`]), the names both sides must agree on (the directory, its files,
//! `/run/secrets`, the agent's identity, sandbox-init's environment variables), and
//! sandbox-init's exit codes with what each means ([`exit_codes`]).
//!
//! Both programs link this one crate, so what the launcher accepts at `jailoc up` is exactly what
//! sandbox-init accepts at boot, and `parse_toml(write_toml(p)) == p` holds for every valid
//! policy (tested in `tests/round_trip.rs`). The format is documented in `docs/net.md` ("Policy
//! format").

mod entry;
pub mod exit_codes;
mod hosts;
mod parse;
mod suggest;
mod write;

pub use entry::{
    parse_blocked, parse_host, parse_network, EntryError, Host, HostEntry, HostEntryRef, HostRef,
    NetworkEntry,
};
pub use hosts::{HostIter, HostList};
pub use ipnet::IpNet;
pub use parse::{parse_lines, parse_toml, PolicyError};
pub use suggest::did_you_mean;
pub use write::{basic_string, write_toml};

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the launcher mounts the policy directory in the container, read-only; sandbox-init's
/// default `--config-dir`.
pub const CONFIG_DIR: &str = "/etc/jailoc";
/// The environment variable that overrides [`CONFIG_DIR`] (sandbox-init's `--config-dir` wins).
pub const CONFIG_DIR_ENV: &str = "SANDBOX_INIT_CONFIG_DIR";
/// `SANDBOX_INIT_LOG=debug` turns on sandbox-init's debug lines.
pub const LOG_ENV: &str = "SANDBOX_INIT_LOG";
/// `SANDBOX_INIT_FIREWALL=iptables` installs the rules with the iptables programs even on the
/// nf_tables backend, where sandbox-init otherwise writes them over netlink itself.
pub const FIREWALL_ENV: &str = "SANDBOX_INIT_FIREWALL";
/// Every variable whose name starts with this belongs to sandbox-init: it never reaches the
/// agent, and a config may not set one (but [`LOG_ENV`]).
pub const ENV_PREFIX: &str = "SANDBOX_INIT_";

/// The native policy file in the policy directory.
pub const POLICY_FILE: &str = "policy.toml";
/// The Go jailoc's host list, one entry a line.
pub const HOSTS_FILE: &str = "allowed-hosts";
/// The Go jailoc's network list, one entry a line.
pub const NETWORKS_FILE: &str = "allowed-networks";
/// The names of the secrets sandbox-init hands the agent as environment variables, one a line.
pub const SECRET_ENV_FILE: &str = "secret-env";
/// Where the container's secrets are, one file a name (`/run/secrets/NAME`).
pub const SECRETS_DIR: &str = "/run/secrets";

/// The agent's uid unless the policy says otherwise (the images create user `agent` as 1000).
pub const AGENT_UID: u32 = 1000;
/// The agent's gid unless the policy says otherwise.
pub const AGENT_GID: u32 = 1000;
/// The agent's home unless the policy says otherwise.
pub const AGENT_HOME: &str = "/home/agent";

/// The uid and gid of sandbox-init's DNS gate: neither root nor the agent (whose uid must differ),
/// so the agent can neither signal, trace nor read it, and the firewall tells the gate's own
/// upstream queries from the agent's by this owner.
pub const GATE_UID: u32 = 65533;
/// The port the DNS gate listens on at 127.0.0.1 and ::1; all DNS of the agent (port 53, any
/// address) is redirected there. Not 53 itself: a port below 1024 needs CAP_NET_BIND_SERVICE,
/// which jailoc's containers do not have under Podman (Docker lets anyone bind low ports).
pub const GATE_PORT: u16 = 1053;

/// The directory of the egress record: made by PID 1 at boot, owned by [`GATE_UID`], mode 0755,
/// so the agent can read the record but neither write nor erase it.
pub const EGRESS_DIR: &str = "/run/jailoc-egress";
/// The egress record (in [`EGRESS_DIR`]): what the firewall and the DNS gate refused, one JSON
/// line per key and update, append-only, written only by the gate; a reader keeps the last line
/// per key (docs/net.md, "Egress record"). The launcher reads it with `docker cp`.
pub const EGRESS_RECORD: &str = "/run/jailoc-egress/egress.jsonl";

/// Default bound on one upstream DNS exchange of the gate (per resolver tried).
pub const DEFAULT_RESOLVE_TIMEOUT: Duration = Duration::from_millis(2000);
/// `resolve_timeout_ms` must lie within this range (milliseconds).
pub const RESOLVE_TIMEOUT_MS: std::ops::RangeInclusive<u64> = 100..=30_000;

/// What leaves the container besides the allowlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Egress {
    /// Public internet allowed; the special ranges are blocked (default).
    #[default]
    Open,
    /// Only the allowlisted hosts/networks and DNS to the resolvers.
    Allowlist,
}

impl Egress {
    /// Every mode, as spelt in `config.toml` and `policy.toml`.
    pub const ALL: [Egress; 2] = [Egress::Open, Egress::Allowlist];

    /// The spelling in `config.toml` and `policy.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Egress::Open => "open",
            Egress::Allowlist => "allowlist",
        }
    }

    /// The mode spelt `text`, if any.
    pub fn parse(text: &str) -> Option<Egress> {
        Egress::ALL.into_iter().find(|e| e.as_str() == text)
    }
}

impl std::fmt::Display for Egress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The unprivileged user the agent runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    /// 1 to 4294967294: never root.
    pub uid: u32,
    /// 1 to 4294967294: never root's group.
    pub gid: u32,
    /// An absolute path.
    pub home: PathBuf,
}

impl Default for Agent {
    fn default() -> Self {
        Agent {
            uid: AGENT_UID,
            gid: AGENT_GID,
            home: PathBuf::from(AGENT_HOME),
        }
    }
}

/// A validated policy: what one policy directory says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub egress: Egress,
    /// `allowed_hosts`; after [`load`]: the TOML entries, then `allowed-hosts`, as written. A
    /// repeated entry changes nothing (the DNS gate's index and the plan's rules merge equal
    /// entries), so the boot does not spend time removing it; [`HostList::dedup`] does.
    pub hosts: HostList,
    /// `allowed_networks`; after [`load`]: the TOML entries, then `allowed-networks`, each once.
    pub networks: Vec<NetworkEntry>,
    /// `blocked_networks`: extra destinations refused like the built-in blocked ranges (after
    /// the allow rules); the launcher lists the host's own addresses here.
    pub blocked: Vec<IpNet>,
    pub agent: Agent,
    /// Bound on the resolve step (`resolve_timeout_ms`, see [`RESOLVE_TIMEOUT_MS`]).
    pub resolve_timeout: Duration,
}

impl Default for Policy {
    /// What an empty policy directory means: open egress, nothing listed, the default agent.
    fn default() -> Self {
        Policy {
            egress: Egress::default(),
            hosts: HostList::new(),
            networks: Vec::new(),
            blocked: Vec::new(),
            agent: Agent::default(),
            resolve_timeout: DEFAULT_RESOLVE_TIMEOUT,
        }
    }
}

/// Loads `policy.toml`, `allowed-hosts` and `allowed-networks` from `dir` (each optional; a
/// missing directory is the default policy). The network lists are deduplicated, first
/// occurrence kept; the hosts are kept as written (see [`Policy::hosts`]).
pub fn load(dir: &Path) -> Result<Policy, PolicyError> {
    let toml_path = dir.join(POLICY_FILE);
    let mut policy = match read_optional(&toml_path)? {
        Some(text) => parse_toml(&toml_path, &text)?,
        None => Policy::default(),
    };
    let hosts_path = dir.join(HOSTS_FILE);
    if let Some(text) = read_optional(&hosts_path)? {
        parse::each_line(&hosts_path, &text, HOSTS_FILE, |entry| {
            policy.hosts.push_parsed(entry)
        })?;
    }
    let networks_path = dir.join(NETWORKS_FILE);
    if let Some(text) = read_optional(&networks_path)? {
        let extra = parse_lines(&networks_path, &text, NETWORKS_FILE, parse_network)?;
        policy.networks.extend(extra);
    }
    policy.networks = dedup(policy.networks);
    policy.blocked = dedup(policy.blocked);
    Ok(policy)
}

fn read_optional(path: &Path) -> Result<Option<String>, PolicyError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PolicyError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Order-preserving deduplication: the first occurrence wins. Nothing is copied: the set
/// borrows the items (a 10,000-name allowlist is deduplicated at every boot).
pub fn dedup<T: Eq + Hash>(items: Vec<T>) -> Vec<T> {
    let first = first_occurrences(items.iter());
    let mut items = items;
    let mut first = first.into_iter();
    items.retain(|_| first.next().unwrap_or(true));
    items
}

/// For each item in order, whether no equal item came before it.
pub(crate) fn first_occurrences<T: Eq + Hash>(
    items: impl ExactSizeIterator<Item = T>,
) -> Vec<bool> {
    let mut seen =
        HashSet::with_capacity_and_hasher(items.len(), BuildHasherDefault::<Fx>::default());
    items.map(|item| seen.insert(item)).collect()
}

/// FxHash (the Rust compiler's): a multiply and a rotate per word, several times faster than
/// the default SipHash on short keys. Flooding resistance buys nothing here: the lists are the
/// user's own files (what the lists are deduplicated with, and what sandbox-init's DNS gate
/// indexes the allowlist with).
#[derive(Debug, Default)]
pub struct Fx(u64);

impl Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }

    fn write_u16(&mut self, i: u16) {
        self.write_u64(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Is `name` a portable environment variable name (`[A-Za-z_][A-Za-z0-9_]*`)? What a
/// `secret-env` line and an environment secret's name must be.
pub fn is_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, text) in files {
            fs::write(dir.path().join(name), text).expect("write");
        }
        dir
    }

    fn err(files: &[(&str, &str)]) -> String {
        let dir = dir_with(files);
        let e = load(dir.path()).expect_err("must fail");
        e.to_string()
            .replace(&dir.path().display().to_string(), "DIR")
    }

    #[test]
    fn empty_dir_is_the_default_policy() {
        let dir = dir_with(&[]);
        let policy = load(dir.path()).expect("load");
        assert_eq!(policy.egress, Egress::Open);
        assert!(policy.hosts.is_empty() && policy.networks.is_empty());
        assert_eq!(
            policy.agent,
            Agent {
                uid: 1000,
                gid: 1000,
                home: "/home/agent".into()
            }
        );
        assert_eq!(policy.resolve_timeout, Duration::from_millis(2000));
    }

    #[test]
    fn toml_and_line_files_merge_in_order_the_networks_without_duplicates() {
        let dir = dir_with(&[
            (
                "policy.toml",
                "egress = \"allowlist\"\nallowed_hosts = [\"pypi.org\", \"b.example:443\"]\n\
                 allowed_networks = [\"10.20.0.0/16\"]\nresolve_timeout_ms = 500\n\
                 blocked_networks = [\"203.0.113.7\", \"2001:db8::/32\", \"203.0.113.7/32\"]\n\
                 [agent]\nuid = 1001\ngid = 1002\nhome = \"/home/me\"\n",
            ),
            (
                "allowed-hosts",
                "# legacy\n\nPYPI.org.\na.example # trailing comment\nb.example:443\n",
            ),
            (
                "allowed-networks",
                "10.30.0.0/16\n10.20.0.0/16\n  fd00:1::/64:80  \n",
            ),
        ]);
        let policy = load(dir.path()).expect("load");
        assert_eq!(policy.egress, Egress::Allowlist);
        let hosts: Vec<String> = policy.hosts.iter().map(|h| h.to_string()).collect();
        assert_eq!(
            hosts,
            [
                "pypi.org",
                "b.example:443",
                "pypi.org",
                "a.example",
                "b.example:443"
            ]
        );
        let mut once = policy.hosts.clone();
        once.dedup();
        let once: Vec<String> = once.iter().map(|h| h.to_string()).collect();
        assert_eq!(once, ["pypi.org", "b.example:443", "a.example"]);
        let nets: Vec<String> = policy.networks.iter().map(ToString::to_string).collect();
        assert_eq!(nets, ["10.20.0.0/16", "10.30.0.0/16", "fd00:1::/64:80"]);
        let blocked: Vec<String> = policy.blocked.iter().map(ToString::to_string).collect();
        assert_eq!(blocked, ["203.0.113.7/32", "2001:db8::/32"]);
        assert_eq!(
            policy.agent,
            Agent {
                uid: 1001,
                gid: 1002,
                home: "/home/me".into()
            }
        );
        assert_eq!(policy.resolve_timeout, Duration::from_millis(500));
    }

    #[test]
    fn same_host_with_and_without_port_are_distinct_entries() {
        let dir = dir_with(&[("allowed-hosts", "a.example\na.example:80\na.example\n")]);
        let mut hosts = load(dir.path()).expect("load").hosts;
        hosts.dedup();
        assert_eq!(hosts.len(), 2);
    }

    #[test]
    fn errors_name_file_line_key_and_value() {
        assert_eq!(
            err(&[("policy.toml", "egress = \"open\"\negres = \"open\"\n")]),
            "DIR/policy.toml:2: unknown key \"egres\" (did you mean \"egress\"?)"
        );
        assert_eq!(
            err(&[("policy.toml", "[agent]\nuid = 1000\nshell = \"/bin/sh\"\n")]),
            "DIR/policy.toml:3: unknown key \"agent.shell\" (expected one of: uid, gid, home)"
        );
        assert_eq!(
            err(&[("policy.toml", "allowed_host = []\n")]),
            "DIR/policy.toml:1: unknown key \"allowed_host\" (did you mean \"allowed_hosts\"?)"
        );
        assert_eq!(
            err(&[("policy.toml", "egress = \"closed\"\n")]),
            "DIR/policy.toml:1: invalid value for \"egress\": expected \"open\" or \"allowlist\", found \"closed\""
        );
        assert_eq!(
            err(&[("policy.toml", "allowed_hosts = \"pypi.org\"\n")]),
            "DIR/policy.toml:1: invalid value for \"allowed_hosts\": expected an array of strings"
        );
        assert_eq!(
            err(&[(
                "policy.toml",
                "allowed_hosts = [\n  \"ok.example\",\n  \"bad host\",\n]\n"
            )]),
            "DIR/policy.toml:3: invalid allowed_hosts entry \"bad host\": contains whitespace"
        );
        assert_eq!(
            err(&[("policy.toml", "allowed_networks = [1]\n")]),
            "DIR/policy.toml:1: invalid value for \"allowed_networks\": expected an array of strings"
        );
        assert_eq!(
            err(&[("policy.toml", "[agent]\nuid = 0\n")]),
            "DIR/policy.toml:2: invalid value for \"agent.uid\": expected an integer from 1 to 4294967294 (the agent must not be root), found 0"
        );
        assert_eq!(
            err(&[("policy.toml", "[agent]\nhome = \"home/agent\"\n")]),
            "DIR/policy.toml:2: invalid value for \"agent.home\": expected an absolute path, found \"home/agent\""
        );
        assert_eq!(
            err(&[("policy.toml", "agent = 3\n")]),
            "DIR/policy.toml:1: invalid value for \"agent\": expected a table"
        );
        assert_eq!(
            err(&[("policy.toml", "resolve_timeout_ms = 5\n")]),
            "DIR/policy.toml:1: invalid value for \"resolve_timeout_ms\": expected an integer from 100 to 30000, found 5"
        );
        assert!(
            err(&[("policy.toml", "egress = \n")]).starts_with("DIR/policy.toml:1: invalid TOML: ")
        );
        assert_eq!(
            err(&[("allowed-hosts", "ok.example\n\n# c\na.*.example.com\n")]),
            "DIR/allowed-hosts:4: invalid allowed-hosts entry \"a.*.example.com\": a wildcard is only allowed as the whole first label of a host name (*.example.com)"
        );
        assert_eq!(
            err(&[("policy.toml", "blocked_networks = [\"10.0.0.0/8:22\"]\n")]),
            "DIR/policy.toml:1: invalid blocked_networks entry \"10.0.0.0/8:22\": a blocked network takes no port: the whole destination is refused"
        );
        assert_eq!(
            err(&[("policy.toml", "blocked_network = []\n")]),
            "DIR/policy.toml:1: unknown key \"blocked_network\" (did you mean \"blocked_networks\"?)"
        );
        // What `jailoc up` once wrote and the container refused: now refused at `up` already,
        // with the same words (the launcher parses with this grammar).
        assert_eq!(
            err(&[("policy.toml", "allowed_hosts = [\"example.com:000080\"]\n")]),
            "DIR/policy.toml:1: invalid allowed_hosts entry \"example.com:000080\": invalid port \"000080\": leading zeros are not allowed (write 80)"
        );
        assert_eq!(
            err(&[("allowed-networks", "10.0.0.1/8\n")]),
            "DIR/allowed-networks:1: invalid allowed-networks entry \"10.0.0.1/8\": host bits are set (did you mean 10.0.0.0/8?)"
        );
    }

    #[test]
    fn unreadable_file_is_an_error() {
        let dir = dir_with(&[]);
        fs::create_dir(dir.path().join("policy.toml")).expect("mkdir");
        assert!(load(dir.path())
            .expect_err("dir")
            .to_string()
            .starts_with("failed to read "));
    }
}
