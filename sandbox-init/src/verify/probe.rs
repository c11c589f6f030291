//! Running one probe as the agent, within [`BOUND`], and what its result means ([`classify`],
//! pure). A fast refusal passes: the TCP reset of `JAILOC-REJECT` (`ECONNREFUSED`), the
//! ICMP(v6) administratively-prohibited or the rule's verdict on a send (`EPERM`, `EACCES`,
//! `EHOSTUNREACH`); so does a destination the kernel has no route to (`ENETUNREACH`: nothing
//! left). A connection that succeeds, a datagram that left, a timeout (a tool would hang) or any
//! other error fails, named.

use super::checks::Probe;
use crate::dns::wire;
use std::io;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

/// Every probe ends within this.
pub(crate) const BOUND: Duration = Duration::from_millis(1000);

/// What a probe saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// The TCP handshake completed.
    Connected,
    /// The datagram was sent: it left the container.
    Sent,
    /// The DNS query got an answer.
    Answer(Answer),
    /// Nothing within the bound.
    TimedOut,
    /// The kernel said no: this errno.
    Failed(i32),
}

/// What a DNS answer said, as far as the check needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Answer {
    pub rcode: u8,
    /// Answer records.
    pub answers: u16,
    /// Authority records: an upstream NXDOMAIN carries the zone's SOA, the gate's none.
    pub authority: u16,
}

/// The DNS response code for "no such name".
const NXDOMAIN: u8 = 3;

/// Runs `probe` (not a skip) and reports what it saw.
pub(crate) fn attempt(probe: &Probe, bound: Duration) -> Attempt {
    let result = match probe {
        Probe::Tcp(addr) => tcp(*addr, bound),
        Probe::Udp(addr) => udp(*addr),
        Probe::Dns { server, name } => dns(*server, name, bound),
        Probe::Skip(_) => return Attempt::Failed(libc::EINVAL),
    };
    result.unwrap_or_else(|e| {
        if is_timeout(&e) {
            Attempt::TimedOut
        } else {
            Attempt::Failed(e.raw_os_error().unwrap_or(libc::EIO))
        }
    })
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

fn tcp(addr: SocketAddr, bound: Duration) -> io::Result<Attempt> {
    TcpStream::connect_timeout(&addr, bound).map(|_| Attempt::Connected)
}

/// A refused datagram fails at the send (the rule's verdict); one that is sent has left.
fn udp(addr: SocketAddr) -> io::Result<Attempt> {
    let socket = UdpSocket::bind(unspecified(addr))?;
    socket.connect(addr)?;
    socket.send(b"jailoc verify")?;
    Ok(Attempt::Sent)
}

/// An A query for `name`; the answer is read only as far as its header and question.
fn dns(server: SocketAddr, name: &str, bound: Duration) -> io::Result<Attempt> {
    let deadline = Instant::now() + bound;
    let id = query_id();
    let query = query(id, name);
    let socket = UdpSocket::bind(unspecified(server))?;
    socket.connect(server)?;
    socket.send(&query)?;
    let mut buf = [0u8; 512];
    loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| io::Error::from(io::ErrorKind::TimedOut))?;
        socket.set_read_timeout(Some(left))?;
        let n = socket.recv(&mut buf)?;
        let msg = &buf[..n];
        // Only the answer to this query counts (same ID, same question, QR set).
        let Ok(response) = wire::parse_response(msg) else {
            continue;
        };
        if response.id != id
            || response
                .question
                .as_ref()
                .is_none_or(|(q, _)| q.as_str() != name)
        {
            continue;
        }
        let count = |at: usize| u16::from_be_bytes([msg[at], msg[at + 1]]);
        return Ok(Attempt::Answer(Answer {
            rcode: response.rcode,
            answers: count(6),
            authority: count(8),
        }));
    }
}

/// A fresh query ID (a stale answer must not count).
fn query_id() -> u16 {
    let mut bytes = [0u8; 2];
    // A fixed ID is still correct, only less robust against a stale answer.
    let _ = getrandom::fill(&mut bytes);
    u16::from_be_bytes(bytes)
}

/// An A/IN query for `name` with RD set, as a stub resolver sends it.
pub(crate) fn query(id: u16, name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + name.len() + 6);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        let len = u8::try_from(label.len().min(63)).unwrap_or(63);
        out.push(len);
        out.extend_from_slice(&label.as_bytes()[..usize::from(len)]);
    }
    out.push(0);
    out.extend_from_slice(&[0, 1, 0, 1]);
    out
}

fn unspecified(peer: SocketAddr) -> SocketAddr {
    match peer {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    }
}

/// Whether `attempt` passes for `probe`, and what the table says it got.
pub(crate) fn classify(probe: &Probe, attempt: &Attempt) -> (bool, String) {
    let dns = matches!(probe, Probe::Dns { .. });
    match attempt {
        Attempt::Connected => (false, "connected".to_owned()),
        Attempt::Sent => (false, "sent: the datagram left".to_owned()),
        Attempt::TimedOut => (false, format!("no answer within {} ms", BOUND.as_millis())),
        Attempt::Answer(a) if a.rcode == NXDOMAIN && a.answers == 0 && a.authority == 0 => {
            (true, "NXDOMAIN from the gate".to_owned())
        }
        Attempt::Answer(a) if a.rcode == NXDOMAIN => (
            false,
            "NXDOMAIN with an authority section: answered upstream".to_owned(),
        ),
        Attempt::Answer(a) => (
            false,
            format!(
                "{} with {} answers: the name went upstream",
                rcode_name(a.rcode),
                a.answers
            ),
        ),
        Attempt::Failed(errno) if dns => (
            false,
            format!("{}: the gate did not answer", errno_name(*errno)),
        ),
        Attempt::Failed(errno) => match *errno {
            libc::ECONNREFUSED | libc::EPERM | libc::EACCES | libc::EHOSTUNREACH => {
                (true, format!("refused ({})", errno_name(*errno)))
            }
            libc::ENETUNREACH => (true, "no route (ENETUNREACH)".to_owned()),
            other => (false, format!("error ({})", errno_name(other))),
        },
    }
}

fn rcode_name(rcode: u8) -> String {
    match rcode {
        0 => "NOERROR".to_owned(),
        2 => "SERVFAIL".to_owned(),
        3 => "NXDOMAIN".to_owned(),
        5 => "REFUSED".to_owned(),
        other => format!("RCODE {other}"),
    }
}

/// The errno's symbolic name where a probe may meet it, else its number.
pub(crate) fn errno_name(errno: i32) -> String {
    let name = match errno {
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::EPERM => "EPERM",
        libc::EACCES => "EACCES",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::EINVAL => "EINVAL",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::ECONNRESET => "ECONNRESET",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::EIO => "EIO",
        other => return format!("errno {other}"),
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, TcpListener};

    fn tcp() -> Probe {
        Probe::Tcp("192.0.2.1:443".parse().expect("addr"))
    }

    fn dns() -> Probe {
        Probe::Dns {
            server: "127.0.0.11:53".parse().expect("addr"),
            name: "example.com".into(),
        }
    }

    #[test]
    fn a_fast_refusal_passes_and_anything_that_got_through_fails() {
        for (errno, got) in [
            (libc::ECONNREFUSED, "refused (ECONNREFUSED)"),
            (libc::EPERM, "refused (EPERM)"),
            (libc::EACCES, "refused (EACCES)"),
            (libc::EHOSTUNREACH, "refused (EHOSTUNREACH)"),
            (libc::ENETUNREACH, "no route (ENETUNREACH)"),
        ] {
            assert_eq!(
                classify(&tcp(), &Attempt::Failed(errno)),
                (true, got.into())
            );
        }
        for (attempt, got) in [
            (Attempt::Connected, "connected"),
            (Attempt::Sent, "sent: the datagram left"),
            (Attempt::TimedOut, "no answer within 1000 ms"),
            (Attempt::Failed(libc::EINVAL), "error (EINVAL)"),
            (Attempt::Failed(libc::ECONNRESET), "error (ECONNRESET)"),
        ] {
            assert_eq!(classify(&tcp(), &attempt), (false, got.into()));
        }
    }

    #[test]
    fn only_the_gates_own_nxdomain_passes_the_name_check() {
        let answer = |rcode, answers, authority| {
            Attempt::Answer(Answer {
                rcode,
                answers,
                authority,
            })
        };
        assert_eq!(
            classify(&dns(), &answer(3, 0, 0)),
            (true, "NXDOMAIN from the gate".into())
        );
        assert_eq!(
            classify(&dns(), &answer(3, 0, 1)),
            (
                false,
                "NXDOMAIN with an authority section: answered upstream".into()
            )
        );
        assert_eq!(
            classify(&dns(), &answer(0, 1, 0)),
            (
                false,
                "NOERROR with 1 answers: the name went upstream".into()
            )
        );
        assert!(
            !classify(&dns(), &answer(2, 0, 0)).0,
            "SERVFAIL: the gate asked upstream"
        );
        // A refused query means the redirect to the gate is gone.
        assert_eq!(
            classify(&dns(), &Attempt::Failed(libc::ECONNREFUSED)),
            (false, "ECONNREFUSED: the gate did not answer".into())
        );
    }

    #[test]
    fn the_query_is_what_a_stub_resolver_sends() {
        let q = query(0x1234, "example.com");
        let parsed = wire::parse_query(&q).expect("a query the gate accepts");
        assert_eq!(parsed.id, 0x1234);
        assert_eq!(parsed.name.as_str(), "example.com");
        assert_eq!((parsed.qtype, parsed.qclass), (1, 1));
        assert!(parsed.recursion_desired);
    }

    #[test]
    fn probes_see_a_listener_a_closed_port_and_the_bound() {
        // Loopback only: nothing leaves the machine.
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let open = Probe::Tcp(listener.local_addr().expect("addr"));
        assert_eq!(attempt(&open, BOUND), Attempt::Connected);
        drop(listener);
        assert_eq!(attempt(&open, BOUND), Attempt::Failed(libc::ECONNREFUSED));
        // A DNS server that never answers: the bound ends the wait.
        let silent = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let probe = Probe::Dns {
            server: silent.local_addr().expect("addr"),
            name: "example.com".into(),
        };
        let started = Instant::now();
        assert_eq!(
            attempt(&probe, Duration::from_millis(200)),
            Attempt::TimedOut
        );
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn a_dns_answer_is_read_from_the_server_that_was_asked() {
        let server = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let addr = server.local_addr().expect("addr");
        let answering = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            let (n, peer) = server.recv_from(&mut buf).expect("query");
            let q = wire::parse_query(&buf[..n]).expect("query");
            // The gate's refusal, built by the gate's own code.
            let nx = wire::refusal(&q, crate::dns::wire::Rcode::NxDomain);
            server.send_to(&nx, peer).expect("answer");
        });
        let probe = Probe::Dns {
            server: addr,
            name: "example.com".into(),
        };
        let got = attempt(&probe, BOUND);
        answering.join().expect("server");
        assert_eq!(
            got,
            Attempt::Answer(Answer {
                rcode: 3,
                answers: 0,
                authority: 0
            })
        );
    }
}
