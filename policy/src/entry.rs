//! The entry grammar of `allowed_hosts`, `allowed_networks` and `blocked_networks` (docs/net.md,
//! "Policy format"): the one parser the launcher validates `config.toml` with and sandbox-init
//! reads the policy with.
//!
//! host    = NAME | NAME:PORT | *.NAME | *.NAME:PORT | IPv4 | IPv4:PORT | IPv6 | [IPv6]:PORT
//! network = CIDR | CIDR:PORT
//! blocked = CIDR | IPv4 | IPv6            (`blocked_networks`: a bare address is /32 or /128)
//!
//! `*.NAME` (a wildcard) covers every name below NAME, not NAME itself; `*` as the whole first
//! label is its only place, and NAME needs two labels at least (`*.com` would open a whole
//! top-level domain). Names are normalised (lowercase, one trailing dot stripped). A CIDR with host bits set
//! (`10.0.0.1/8`) is rejected rather than silently widened: a typo must not open more than meant.
//! Ports and prefix lengths are plain decimal numbers: a leading zero (`:080`, `/08`) is refused
//! with the number to write instead, as Rust's address parser refuses `010.0.0.1`.

use ipnet::IpNet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What an allowlisted host entry names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A DNS name, normalised: lowercase, no trailing dot.
    Name(String),
    /// `*.SUFFIX`: every name below SUFFIX (normalised like a name), not SUFFIX itself.
    Wildcard(String),
    /// A literal address (never resolved, never refused).
    Addr(IpAddr),
}

/// One `allowed_hosts` entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostEntry {
    pub host: Host,
    /// Limits the rule to this TCP/UDP port.
    pub port: Option<u16>,
}

/// One `allowed_networks` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NetworkEntry {
    pub net: IpNet,
    /// Limits the rule to this TCP/UDP port.
    pub port: Option<u16>,
}

/// Why an entry was rejected. The texts are part of the user-facing contract.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("empty entry")]
    Empty,
    #[error("contains a control character")]
    Control,
    #[error("contains whitespace")]
    Whitespace,
    #[error("a wildcard is only allowed as the whole first label of a host name (*.example.com)")]
    Wildcard,
    #[error("a wildcard needs a domain of two labels or more below it (*.example.com, not *.com)")]
    WildcardTooWide,
    #[error("invalid port {0:?} (expected 1-65535)")]
    Port(String),
    #[error("invalid port {0:?}: leading zeros are not allowed (write {1})")]
    PortLeadingZeros(String, u16),
    #[error("a network is not a host: put CIDRs in allowed_networks")]
    NetworkInHosts,
    #[error("invalid IPv6 address (write [ADDRESS]:PORT to add a port)")]
    Ipv6,
    #[error("invalid bracketed address (expected [IPv6]:PORT)")]
    Bracket,
    #[error("invalid IPv4 address")]
    Ipv4,
    #[error("invalid host name (letters, digits, '-', '_' and dots; labels of 1-63 characters)")]
    Name,
    #[error("missing prefix length (write {0}/{1}, or put a single address in allowed_hosts)")]
    MissingPrefix(IpAddr, u8),
    #[error("invalid CIDR (expected ADDRESS/PREFIX, e.g. 10.20.0.0/16 or fd00:1::/64)")]
    Cidr,
    #[error("invalid prefix length {0:?}: leading zeros are not allowed (write /{1})")]
    PrefixLeadingZeros(String, u8),
    #[error("host bits are set (did you mean {0}?)")]
    HostBits(IpNet),
    #[error("a blocked network takes no port: the whole destination is refused")]
    PortInBlocked,
}

/// A [`Host`] that borrows its name: what a [`crate::HostList`] hands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HostRef<'a> {
    Name(&'a str),
    Wildcard(&'a str),
    Addr(IpAddr),
}

/// A [`HostEntry`] that borrows its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HostEntryRef<'a> {
    pub host: HostRef<'a>,
    pub port: Option<u16>,
}

impl HostRef<'_> {
    /// The owned form.
    pub fn to_host(self) -> Host {
        match self {
            HostRef::Name(name) => Host::Name(name.to_owned()),
            HostRef::Wildcard(suffix) => Host::Wildcard(suffix.to_owned()),
            HostRef::Addr(addr) => Host::Addr(addr),
        }
    }

    /// Whether a DNS query for `name` (normalised: lowercase, no trailing dot) is covered by this
    /// entry: the name itself, or for a wildcard any name strictly below its suffix. Addresses
    /// cover no name.
    pub fn covers(self, name: &str) -> bool {
        match self {
            HostRef::Name(own) => own == name,
            HostRef::Wildcard(suffix) => name
                .strip_suffix(suffix)
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            HostRef::Addr(_) => false,
        }
    }
}

impl HostEntryRef<'_> {
    /// The owned form.
    pub fn to_entry(self) -> HostEntry {
        HostEntry {
            host: self.host.to_host(),
            port: self.port,
        }
    }
}

impl Host {
    /// The borrowed form of this host.
    pub fn as_ref(&self) -> HostRef<'_> {
        match self {
            Host::Name(name) => HostRef::Name(name),
            Host::Wildcard(suffix) => HostRef::Wildcard(suffix),
            Host::Addr(addr) => HostRef::Addr(*addr),
        }
    }
}

impl HostEntry {
    /// The borrowed form of this entry.
    pub fn as_ref(&self) -> HostEntryRef<'_> {
        HostEntryRef {
            host: self.host.as_ref(),
            port: self.port,
        }
    }
}

impl fmt::Display for HostRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostRef::Name(name) => f.write_str(name),
            HostRef::Wildcard(suffix) => write!(f, "*.{suffix}"),
            HostRef::Addr(addr) => write!(f, "{addr}"),
        }
    }
}

impl fmt::Display for HostEntryRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.host, self.port) {
            (HostRef::Addr(IpAddr::V6(addr)), Some(port)) => write!(f, "[{addr}]:{port}"),
            (host, Some(port)) => write!(f, "{host}:{port}"),
            (host, None) => write!(f, "{host}"),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_ref().fmt(f)
    }
}

impl fmt::Display for HostEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_ref().fmt(f)
    }
}

impl fmt::Display for NetworkEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}:{port}", self.net),
            None => write!(f, "{}", self.net),
        }
    }
}

/// Rejects what no entry of either kind may contain.
fn check_characters(entry: &str) -> Result<(), EntryError> {
    if entry.is_empty() {
        return Err(EntryError::Empty);
    }
    // The common case in one pass: printable ASCII holds neither a control character nor
    // whitespace.
    if entry.bytes().all(|b| b.is_ascii_graphic()) {
        return Ok(());
    }
    if entry.chars().any(char::is_control) {
        return Err(EntryError::Control);
    }
    if entry.chars().any(char::is_whitespace) {
        return Err(EntryError::Whitespace);
    }
    Ok(())
}

impl Host {
    /// Whether a DNS query for `name` is covered by this entry ([`HostRef::covers`]).
    pub fn covers(&self, name: &str) -> bool {
        self.as_ref().covers(name)
    }
}

/// A wildcard host (`*.NAME`), or the name/IPv4 grammar; `*` anywhere else is an error.
fn parse_host_part(text: &str) -> Result<Host, EntryError> {
    let Some(suffix) = text.strip_prefix("*.") else {
        if text.contains('*') {
            return Err(EntryError::Wildcard);
        }
        return parse_name_or_ipv4(text);
    };
    if suffix.contains('*') {
        return Err(EntryError::Wildcard);
    }
    match parse_name_or_ipv4(suffix)? {
        Host::Name(name) if name.contains('.') => Ok(Host::Wildcard(name)),
        Host::Name(_) => Err(EntryError::WildcardTooWide),
        _ => Err(EntryError::Wildcard),
    }
}

/// A decimal number without sign or leading zeros: `Some((value, had_leading_zeros))`, `None`
/// when `text` is not all digits or the value exceeds `max`.
fn decimal(text: &str, max: u32) -> Option<(u32, bool)> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let significant = text.trim_start_matches('0');
    if significant.len() > 10 {
        return None;
    }
    let value = if significant.is_empty() {
        0
    } else {
        significant.parse::<u64>().ok()?
    };
    let value = u32::try_from(value).ok().filter(|v| *v <= max)?;
    Some((value, text.len() > 1 && text.starts_with('0')))
}

fn parse_port(text: &str) -> Result<u16, EntryError> {
    let bad = || EntryError::Port(text.to_owned());
    let (port, zeros) = decimal(text, 65535).ok_or_else(bad)?;
    let port = u16::try_from(port)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(bad)?;
    if zeros {
        return Err(EntryError::PortLeadingZeros(text.to_owned(), port));
    }
    Ok(port)
}

/// Parses and normalises a DNS name (or a dotted IPv4 literal written where a name may be).
fn parse_name_or_ipv4(text: &str) -> Result<Host, EntryError> {
    if let Ok(v4) = text.parse::<Ipv4Addr>() {
        return Ok(Host::Addr(IpAddr::V4(v4)));
    }
    let name = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
    if name.is_empty() || name.len() > 253 {
        return Err(EntryError::Name);
    }
    let mut last = "";
    for label in name.split('.') {
        let ok_chars = label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if label.is_empty() || label.len() > 63 || !ok_chars {
            return Err(EntryError::Name);
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(EntryError::Name);
        }
        last = label;
    }
    // "10.1.2" or "300.1.1.1" is a mistyped address, not a name (no TLD is all digits).
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return Err(EntryError::Ipv4);
    }
    Ok(Host::Name(name))
}

/// What a byte is in a host name in its normal form ([`is_plain_name`]): nothing (0), or one of
/// these.
const LETTER: u8 = 1; // a-z and _
const DIGIT: u8 = 2;
const HYPHEN: u8 = 3;
const DOT: u8 = 4;
const CLASS: [u8; 256] = {
    let mut class = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        class[b] = match b as u8 {
            b'a'..=b'z' | b'_' => LETTER,
            b'0'..=b'9' => DIGIT,
            b'-' => HYPHEN,
            b'.' => DOT,
            _ => 0,
        };
        b += 1;
    }
    class
};

/// Whether `entry` is a host name already in its normal form that [`parse_name_or_ipv4`] takes as
/// it is: lowercase letters, digits, `-` and `_` in dot-separated labels of 1 to 63 characters
/// that neither start nor end with `-`, at most 253 characters, and a last label that is not all
/// digits (which would be a mistyped address). One table lookup a byte; a label's length is
/// checked where it ends.
pub(crate) fn is_plain_name(entry: &str) -> bool {
    let bytes = entry.as_bytes();
    if bytes.is_empty() || bytes.len() > 253 {
        return false;
    }
    let (mut label, mut digits_only, mut prev) = (0usize, true, DOT);
    for &b in bytes {
        let class = CLASS[usize::from(b)];
        if class == DOT {
            if label == 0 || label > 63 || prev == HYPHEN {
                return false;
            }
            label = 0;
            digits_only = true;
        } else {
            if class == 0 || (class == HYPHEN && label == 0) {
                return false;
            }
            label += 1;
            digits_only &= class == DIGIT;
        }
        prev = class;
    }
    label > 0 && label <= 63 && prev != HYPHEN && !digits_only
}

/// Parses one `allowed_hosts` entry.
pub fn parse_host(entry: &str) -> Result<HostEntry, EntryError> {
    // Most entries are plain lowercase names: taken in one pass. Anything else (uppercase, a
    // port, a wildcard, an address, a trailing dot, an error) goes the whole way below, which a
    // test holds this shortcut to.
    if is_plain_name(entry) {
        return Ok(HostEntry {
            host: Host::Name(entry.to_owned()),
            port: None,
        });
    }
    parse_host_whole(entry)
}

/// [`parse_host`] without the shortcut: the whole grammar.
pub(crate) fn parse_host_whole(entry: &str) -> Result<HostEntry, EntryError> {
    check_characters(entry)?;
    if entry.contains('/') {
        return Err(EntryError::NetworkInHosts);
    }
    if let Some(rest) = entry.strip_prefix('[') {
        let (addr, after) = rest.split_once(']').ok_or(EntryError::Bracket)?;
        let addr: Ipv6Addr = addr.parse().map_err(|_| EntryError::Bracket)?;
        let port = match after {
            "" => None,
            _ => Some(parse_port(
                after.strip_prefix(':').ok_or(EntryError::Bracket)?,
            )?),
        };
        return Ok(HostEntry {
            host: Host::Addr(IpAddr::V6(addr)),
            port,
        });
    }
    if let Ok(addr) = entry.parse::<IpAddr>() {
        return Ok(HostEntry {
            host: Host::Addr(addr),
            port: None,
        });
    }
    match entry.matches(':').count() {
        0 => Ok(HostEntry {
            host: parse_host_part(entry)?,
            port: None,
        }),
        1 => {
            let (host, port) = entry.split_once(':').ok_or(EntryError::Name)?;
            let port = parse_port(port)?;
            Ok(HostEntry {
                host: parse_host_part(host)?,
                port: Some(port),
            })
        }
        _ => Err(EntryError::Ipv6),
    }
}

/// Parses one `allowed_networks` entry.
pub fn parse_network(entry: &str) -> Result<NetworkEntry, EntryError> {
    check_characters(entry)?;
    if entry.contains('*') {
        return Err(EntryError::Wildcard);
    }
    let Some((addr, rest)) = entry.split_once('/') else {
        return Err(match entry.parse::<IpAddr>() {
            Ok(addr @ IpAddr::V4(_)) => EntryError::MissingPrefix(addr, 32),
            Ok(addr @ IpAddr::V6(_)) => EntryError::MissingPrefix(addr, 128),
            Err(_) => EntryError::Cidr,
        });
    };
    let (len, port) = match rest.split_once(':') {
        Some((len, port)) => (len, Some(parse_port(port)?)),
        None => (rest, None),
    };
    let (prefix, zeros) = decimal(len, 128).ok_or(EntryError::Cidr)?;
    let prefix = u8::try_from(prefix).map_err(|_| EntryError::Cidr)?;
    let addr: IpAddr = addr.parse().map_err(|_| EntryError::Cidr)?;
    let net = IpNet::new(addr, prefix).map_err(|_| EntryError::Cidr)?;
    if zeros {
        return Err(EntryError::PrefixLeadingZeros(len.to_owned(), prefix));
    }
    if net.trunc() != net {
        return Err(EntryError::HostBits(net.trunc()));
    }
    Ok(NetworkEntry { net, port })
}

/// Parses one `blocked_networks` entry: the network grammar without a port, where a bare
/// address means that one host (/32 or /128). The launcher writes the host's own addresses here.
pub fn parse_blocked(entry: &str) -> Result<IpNet, EntryError> {
    check_characters(entry)?;
    if !entry.contains('/') {
        return entry
            .parse::<IpAddr>()
            .map(IpNet::from)
            .map_err(|_| EntryError::Cidr);
    }
    match parse_network(entry)? {
        NetworkEntry { net, port: None } => Ok(net),
        NetworkEntry { port: Some(_), .. } => Err(EntryError::PortInBlocked),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shortcut of [`parse_host`] agrees with the whole grammar on every entry it takes, and
    /// takes the plain names (generated and mutated entries, fixed seed).
    #[test]
    fn plain_names_are_read_as_the_whole_grammar_reads_them() {
        let whole = |entry: &str| parse_host_whole(entry).ok().map(|e| (e.host, e.port));
        let seeds = [
            "a.example.com",
            "pypi.org",
            "x-1.y_2.z",
            "n123.bench.lab",
            "a",
            "com",
            "1.2.3.4",
            "a.1",
            "a.b-",
            "-a.b",
            "a..b",
            "a.b.",
            "A.b",
            "a.b:80",
            "*.a.b",
            "fe80::1",
            "10.1.2",
            "a-.b",
            "a.-b",
            "0x1.a",
            "1a.2b.3c",
        ];
        let alphabet = b"ab09-_.:*A/ \t";
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let mut taken = 0;
        for round in 0..200_000 {
            let mut entry = seeds[round % seeds.len()].as_bytes().to_vec();
            for _ in 0..next(4) {
                let at = next(entry.len() + 1);
                match next(3) {
                    0 => entry.insert(at, alphabet[next(alphabet.len())]),
                    1 if at < entry.len() => {
                        entry.remove(at);
                    }
                    _ if at < entry.len() => entry[at] = alphabet[next(alphabet.len())],
                    _ => {}
                }
            }
            let entry = String::from_utf8(entry).expect("ascii");
            if is_plain_name(&entry) {
                taken += 1;
                assert_eq!(
                    whole(&entry),
                    Some((Host::Name(entry.clone()), None)),
                    "{entry:?}"
                );
            }
        }
        assert!(taken > 20_000, "only {taken} plain names");
        let long = format!("{}.com", "a".repeat(63));
        assert!(is_plain_name(&long) && !is_plain_name(&format!("{}.com", "a".repeat(64))));
    }

    fn host(entry: &str) -> String {
        match parse_host(entry) {
            Ok(h) => format!("ok {h}"),
            Err(e) => format!("err {e}"),
        }
    }

    fn network(entry: &str) -> String {
        match parse_network(entry) {
            Ok(n) => format!("ok {n}"),
            Err(e) => format!("err {e}"),
        }
    }

    #[test]
    fn host_grammar_table() {
        let table = [
            ("pypi.org", "ok pypi.org"),
            ("PyPI.Org.", "ok pypi.org"),
            ("db.corp.example:5432", "ok db.corp.example:5432"),
            ("host.docker.internal:11434", "ok host.docker.internal:11434"),
            ("localhost", "ok localhost"),
            ("_srv.example.com", "ok _srv.example.com"),
            ("10.1.2.3", "ok 10.1.2.3"),
            ("10.1.2.3:80", "ok 10.1.2.3:80"),
            ("fd00::5", "ok fd00::5"),
            ("[fd00::5]:8080", "ok [fd00::5]:8080"),
            ("[FD00::5]", "ok fd00::5"),
            ("2001:db8::1", "ok 2001:db8::1"),
            ("", "err empty entry"),
            ("a\u{7}b", "err contains a control character"),
            ("a b", "err contains whitespace"),
            ("a\tb", "err contains a control character"),
            ("*.example.com", "ok *.example.com"),
            ("*.Example.COM.:443", "ok *.example.com:443"),
            ("*.githubusercontent.com", "ok *.githubusercontent.com"),
            ("*.com", "err a wildcard needs a domain of two labels or more below it (*.example.com, not *.com)"),
            ("*", "err a wildcard is only allowed as the whole first label of a host name (*.example.com)"),
            ("*example.com", "err a wildcard is only allowed as the whole first label of a host name (*.example.com)"),
            ("a.*.example.com", "err a wildcard is only allowed as the whole first label of a host name (*.example.com)"),
            ("*.*.example.com", "err a wildcard is only allowed as the whole first label of a host name (*.example.com)"),
            ("foo*.example.com", "err a wildcard is only allowed as the whole first label of a host name (*.example.com)"),
            ("*.10.0.0.1", "err a wildcard is only allowed as the whole first label of a host name (*.example.com)"),
            ("[*::1]:80", "err invalid bracketed address (expected [IPv6]:PORT)"),
            ("example.com:0", "err invalid port \"0\" (expected 1-65535)"),
            ("example.com:65536", "err invalid port \"65536\" (expected 1-65535)"),
            ("example.com:", "err invalid port \"\" (expected 1-65535)"),
            ("example.com:http", "err invalid port \"http\" (expected 1-65535)"),
            ("example.com:+80", "err invalid port \"+80\" (expected 1-65535)"),
            // The launcher and sandbox-init once disagreed here (`jailoc up` took it, the
            // container exited 78); now both refuse it, saying what to write.
            ("example.com:000080", "err invalid port \"000080\": leading zeros are not allowed (write 80)"),
            ("example.com:080", "err invalid port \"080\": leading zeros are not allowed (write 80)"),
            ("[fd00::5]:0443", "err invalid port \"0443\": leading zeros are not allowed (write 443)"),
            ("example.com:000", "err invalid port \"000\" (expected 1-65535)"),
            ("example.com:0065536", "err invalid port \"0065536\" (expected 1-65535)"),
            ("example.com:99999999999999999999", "err invalid port \"99999999999999999999\" (expected 1-65535)"),
            ("10.0.0.0/8", "err a network is not a host: put CIDRs in allowed_networks"),
            ("fd00::5:8080:zz", "err invalid IPv6 address (write [ADDRESS]:PORT to add a port)"),
            ("[fd00::5]8080", "err invalid bracketed address (expected [IPv6]:PORT)"),
            ("[10.0.0.1]:80", "err invalid bracketed address (expected [IPv6]:PORT)"),
            ("[fd00::5", "err invalid bracketed address (expected [IPv6]:PORT)"),
            ("[fd00::5]:0", "err invalid port \"0\" (expected 1-65535)"),
            ("300.1.1.1", "err invalid IPv4 address"),
            ("10.1.2", "err invalid IPv4 address"),
            ("-bad.example", "err invalid host name (letters, digits, '-', '_' and dots; labels of 1-63 characters)"),
            ("a..b", "err invalid host name (letters, digits, '-', '_' and dots; labels of 1-63 characters)"),
            (".", "err invalid host name (letters, digits, '-', '_' and dots; labels of 1-63 characters)"),
            ("exa!mple.com", "err invalid host name (letters, digits, '-', '_' and dots; labels of 1-63 characters)"),
            ("ex\u{e4}mple.com", "err invalid host name (letters, digits, '-', '_' and dots; labels of 1-63 characters)"),
            (":80", "err invalid host name (letters, digits, '-', '_' and dots; labels of 1-63 characters)"),
        ];
        for (entry, want) in table {
            assert_eq!(host(entry), want, "entry {entry:?}");
        }
        let long_label = format!("{}.com", "a".repeat(64));
        assert!(host(&long_label).starts_with("err invalid host name"));
    }

    #[test]
    fn a_wildcard_covers_the_names_below_its_domain_and_nothing_else() {
        let wild = parse_host("*.example.com").expect("wildcard").host;
        for (name, covered) in [
            ("a.example.com", true),
            ("x.y.example.com", true),
            ("example.com", false),
            ("badexample.com", false),
            (".example.com", false),
            ("example.com.evil", false),
            ("a.example.co", false),
        ] {
            assert_eq!(wild.covers(name), covered, "{name}");
        }
        let exact = parse_host("api.example.com:443").expect("name").host;
        assert!(exact.covers("api.example.com"));
        assert!(!exact.covers("x.api.example.com"));
        assert!(!parse_host("10.0.0.1")
            .expect("addr")
            .host
            .covers("10.0.0.1"));
    }

    #[test]
    fn blocked_grammar_table() {
        let blocked = |entry: &str| match parse_blocked(entry) {
            Ok(n) => format!("ok {n}"),
            Err(e) => format!("err {e}"),
        };
        let table = [
            ("198.51.100.7/32", "ok 198.51.100.7/32"),
            ("198.51.100.7", "ok 198.51.100.7/32"),
            ("2001:db8::7", "ok 2001:db8::7/128"),
            ("2001:DB8::7/128", "ok 2001:db8::7/128"),
            ("203.0.113.0/24", "ok 203.0.113.0/24"),
            (
                "203.0.113.7/032",
                "err invalid prefix length \"032\": leading zeros are not allowed (write /32)",
            ),
            (
                "203.0.113.1/24",
                "err host bits are set (did you mean 203.0.113.0/24?)",
            ),
            (
                "203.0.113.0/24:80",
                "err a blocked network takes no port: the whole destination is refused",
            ),
            (
                "[2001:db8::7]:80",
                "err invalid CIDR (expected ADDRESS/PREFIX, e.g. 10.20.0.0/16 or fd00:1::/64)",
            ),
            (
                "198.51.100.7:80",
                "err invalid CIDR (expected ADDRESS/PREFIX, e.g. 10.20.0.0/16 or fd00:1::/64)",
            ),
            (
                "host.example",
                "err invalid CIDR (expected ADDRESS/PREFIX, e.g. 10.20.0.0/16 or fd00:1::/64)",
            ),
            ("", "err empty entry"),
            ("10.0.0.0/8 ", "err contains whitespace"),
        ];
        for (entry, want) in table {
            assert_eq!(blocked(entry), want, "entry {entry:?}");
        }
    }

    #[test]
    fn network_grammar_table() {
        let table = [
            ("10.20.0.0/16", "ok 10.20.0.0/16"),
            ("192.168.5.0/24:5432", "ok 192.168.5.0/24:5432"),
            ("fd00:1::/64", "ok fd00:1::/64"),
            ("FD00:1::/64:443", "ok fd00:1::/64:443"),
            ("169.254.169.254/32", "ok 169.254.169.254/32"),
            ("0.0.0.0/0", "ok 0.0.0.0/0"),
            ("10.0.0.1/8", "err host bits are set (did you mean 10.0.0.0/8?)"),
            ("fd00::1/64", "err host bits are set (did you mean fd00::/64?)"),
            ("10.0.0.0/33", "err invalid CIDR (expected ADDRESS/PREFIX, e.g. 10.20.0.0/16 or fd00:1::/64)"),
            ("fd00::/129", "err invalid CIDR (expected ADDRESS/PREFIX, e.g. 10.20.0.0/16 or fd00:1::/64)"),
            ("10.0.0.0/", "err invalid CIDR (expected ADDRESS/PREFIX, e.g. 10.20.0.0/16 or fd00:1::/64)"),
            ("10.0.0/8", "err invalid CIDR (expected ADDRESS/PREFIX, e.g. 10.20.0.0/16 or fd00:1::/64)"),
            ("example.com/24", "err invalid CIDR (expected ADDRESS/PREFIX, e.g. 10.20.0.0/16 or fd00:1::/64)"),
            ("10.0.0.0/8/8", "err invalid CIDR (expected ADDRESS/PREFIX, e.g. 10.20.0.0/16 or fd00:1::/64)"),
            ("example.com", "err invalid CIDR (expected ADDRESS/PREFIX, e.g. 10.20.0.0/16 or fd00:1::/64)"),
            ("10.1.2.3", "err missing prefix length (write 10.1.2.3/32, or put a single address in allowed_hosts)"),
            ("fd00::5", "err missing prefix length (write fd00::5/128, or put a single address in allowed_hosts)"),
            ("10.0.0.0/8:0", "err invalid port \"0\" (expected 1-65535)"),
            ("10.0.0.0/8:99999", "err invalid port \"99999\" (expected 1-65535)"),
            ("10.0.0.0/0008", "err invalid prefix length \"0008\": leading zeros are not allowed (write /8)"),
            ("10.0.0.0/08:5432", "err invalid prefix length \"08\": leading zeros are not allowed (write /8)"),
            ("0.0.0.0/00", "err invalid prefix length \"00\": leading zeros are not allowed (write /0)"),
            ("fd00::/064", "err invalid prefix length \"064\": leading zeros are not allowed (write /64)"),
            ("10.0.0.0/8:080", "err invalid port \"080\": leading zeros are not allowed (write 80)"),
            ("10.0.0.0/0033", "err invalid CIDR (expected ADDRESS/PREFIX, e.g. 10.20.0.0/16 or fd00:1::/64)"),
            ("10.0.0.0/+8", "err invalid CIDR (expected ADDRESS/PREFIX, e.g. 10.20.0.0/16 or fd00:1::/64)"),
            ("10.0.0.0/8 ", "err contains whitespace"),
            ("10.0.0.0/8\u{0}", "err contains a control character"),
            ("10.*.0.0/16", "err a wildcard is only allowed as the whole first label of a host name (*.example.com)"),
            ("", "err empty entry"),
        ];
        for (entry, want) in table {
            assert_eq!(network(entry), want, "entry {entry:?}");
        }
    }
}
