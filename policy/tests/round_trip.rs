//! The contract's round trip: for any valid policy `p`, `parse_toml(write_toml(p)) == p`. What
//! the launcher writes is exactly what sandbox-init reads back, entry for entry.
//!
//! The policies come from a small generator driven by a fixed-seed RNG (splitmix64), so a
//! failure reproduces on every run and prints the case; every corner of the grammar is reached
//! (names with `_` and `-`, IPv4/IPv6 literals with and without ports, v4-mapped addresses,
//! prefixes 0 to 128, homes with quotes, backslashes, control characters and non-ASCII text).

use jailoc_policy::{
    parse_toml, write_toml, Agent, Egress, Host, HostEntry, IpNet, NetworkEntry, Policy,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// splitmix64: tiny, good enough to spread the cases, and the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

fn label(rng: &mut Rng) -> String {
    const EDGE: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789_";
    const INNER: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789_-";
    let len = if rng.chance(20) {
        63
    } else {
        1 + rng.below(12)
    } as usize;
    (0..len)
        .map(|i| {
            let set = if i == 0 || i == len - 1 { EDGE } else { INNER };
            char::from(*rng.pick(set))
        })
        .collect()
}

/// A canonical host name: lowercase, no trailing dot, and a last label that is not all digits
/// (that would be a mistyped IPv4 address).
fn name(rng: &mut Rng) -> String {
    let mut labels: Vec<String> = (0..1 + rng.below(4)).map(|_| label(rng)).collect();
    if let Some(last) = labels.last_mut() {
        if last.bytes().all(|b| b.is_ascii_digit()) {
            last.push('x');
        }
    }
    labels.join(".")
}

fn ipv4(rng: &mut Rng) -> Ipv4Addr {
    Ipv4Addr::from(rng.next() as u32)
}

fn ipv6(rng: &mut Rng) -> Ipv6Addr {
    match rng.below(4) {
        // v4-mapped, written with a dotted tail
        0 => ipv4(rng).to_ipv6_mapped(),
        // runs of zeros, written with `::`
        1 => Ipv6Addr::from(u128::from(rng.next() as u16) << (16 * rng.below(8))),
        _ => Ipv6Addr::from((u128::from(rng.next()) << 64) | u128::from(rng.next())),
    }
}

fn addr(rng: &mut Rng) -> IpAddr {
    if rng.chance(2) {
        IpAddr::V4(ipv4(rng))
    } else {
        IpAddr::V6(ipv6(rng))
    }
}

fn port(rng: &mut Rng) -> Option<u16> {
    match rng.below(3) {
        0 => None,
        1 => Some(*rng.pick(&[1, 22, 53, 80, 443, 5432, 65535])),
        _ => Some(1 + rng.below(65535) as u16),
    }
}

fn net(rng: &mut Rng) -> IpNet {
    let addr = addr(rng);
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let any = rng.below(u64::from(max) + 1) as u8;
    let prefix = *rng.pick(&[0, max, any]);
    IpNet::new(addr, prefix)
        .expect("prefix within range")
        .trunc()
}

fn home(rng: &mut Rng) -> PathBuf {
    const PIECES: &[&str] = &[
        "home",
        "agent",
        "a b",
        "quote\"d",
        "back\\slash",
        "tab\there",
        "new\nline",
        "\u{1}ctl",
        "\u{7f}",
        "dollar$",
        "é",
        "日本",
        "-",
        ".",
        "..",
    ];
    let mut path = String::new();
    for _ in 0..1 + rng.below(4) {
        path.push('/');
        let piece: &&str = rng.pick(PIECES);
        path.push_str(piece);
    }
    PathBuf::from(path)
}

fn policy(rng: &mut Rng) -> Policy {
    let hosts = (0..rng.below(6))
        .map(|_| HostEntry {
            host: if rng.chance(2) {
                Host::Name(name(rng))
            } else {
                Host::Addr(addr(rng))
            },
            port: port(rng),
        })
        .collect();
    let networks = (0..rng.below(6))
        .map(|_| NetworkEntry {
            net: net(rng),
            port: port(rng),
        })
        .collect();
    let blocked = (0..rng.below(4)).map(|_| net(rng)).collect();
    let id = |rng: &mut Rng| {
        let any = 1 + rng.below(u64::from(u32::MAX - 1)) as u32;
        *rng.pick(&[1, 1000, u32::MAX - 1, any])
    };
    Policy {
        egress: *rng.pick(&Egress::ALL),
        hosts,
        networks,
        blocked,
        agent: Agent {
            uid: id(rng),
            gid: id(rng),
            home: home(rng),
        },
        resolve_timeout: if rng.chance(2) {
            jailoc_policy::DEFAULT_RESOLVE_TIMEOUT
        } else {
            Duration::from_millis(100 + rng.below(29_901))
        },
    }
}

#[test]
fn every_written_policy_parses_back_to_itself() {
    let mut rng = Rng(0x6a61_696c_6f63);
    let path = Path::new("/etc/jailoc/policy.toml");
    for case in 0..3000 {
        let p = policy(&mut rng);
        let text = write_toml(&p);
        let back = parse_toml(path, &text)
            .unwrap_or_else(|e| panic!("case {case}: {e}\n--- policy\n{p:#?}\n--- text\n{text}"));
        assert_eq!(back, p, "case {case}\n--- text\n{text}");
    }
}

#[test]
fn the_default_policy_round_trips_and_an_empty_file_is_it() {
    let path = Path::new("policy.toml");
    let default = Policy::default();
    assert_eq!(
        parse_toml(path, &write_toml(&default)).expect("parse"),
        default
    );
    assert_eq!(parse_toml(path, "").expect("parse"), default);
}
