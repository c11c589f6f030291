//! The fast path of step 3: every name's A and AAAA query over one connected UDP socket per
//! nameserver, up to [`WINDOW`] queries in flight, in a plain `poll` loop — no runtime, no
//! threads, no socket per query. Queries are built by hand, byte for byte what hickory-proto
//! would encode (a unit test holds them to it); hickory-proto parses the replies.
//!
//! A resolver that opens a socket per query spends most of a large boot in `socket`, `bind`,
//! `epoll_ctl` and `close` (measured: 14,000 syscalls and ~72 ms for 1,000 names against the
//! lab's dnsmasq); here a query costs one `send` and one `recv` (~22 ms).
//!
//! It settles only the plain case: a name asked as-is (the search list does not apply to it)
//! whose server answers `NOERROR` with addresses, or `NXDOMAIN`/no data. Everything else — a
//! truncated answer, `SERVFAIL`, `REFUSED`, a malformed or mismatched reply, no reply in time —
//! is left unsettled, for the full hickory-resolver lookup (`mod.rs`) to retry with its own
//! rules (TCP, other servers, the search list).
//!
//! Safety of the answers: each socket is connected to its server, so the kernel delivers only
//! that server's datagrams; a reply must carry the ID of a query in flight on that socket (IDs
//! are random) and repeat its question (name, type, class; letters in any case), or it is
//! dropped. The source
//! port is random (chosen by the kernel) but shared by a burst's queries, where a resolver that
//! opens a socket per query would vary it: ID, port and question are what an off-path spoofer
//! would have to guess, during the few milliseconds before the agent even exists.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use hickory_resolver::proto::op::{Message, MessageType, ResponseCode};
use hickory_resolver::proto::rr::{DNSClass, Name, RData, RecordType};

/// Queries in flight at once: enough to keep a local resolver busy, few enough that its
/// socket buffer never overflows (a dropped query only comes back as a retry).
pub const WINDOW: usize = 128;

/// First retry of an unanswered query (then doubled per attempt, to the deadline). A local
/// resolver answers in well under a millisecond; a recursive one may need a few hundred for an
/// uncached name, so a retry goes to the next server rather than repeating to the same.
const FIRST_RETRY: Duration = Duration::from_millis(250);

/// Answers longer than this come back truncated and are left to the TCP-capable resolver.
const EDNS_PAYLOAD: u16 = 1232;

/// How one query ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// `NOERROR` with at least one address of the asked type (following CNAMEs).
    Addresses(Vec<IpAddr>),
    /// `NXDOMAIN`.
    NoSuchName,
    /// `NOERROR` without an address of the asked type.
    NoData,
}

/// The result of a batch.
#[derive(Debug, Default)]
pub struct Batch {
    /// Per name (in input order), its A and its AAAA outcome; `None` where the query did not
    /// settle (see the module text).
    pub answers: Vec<[Option<Settled>; 2]>,
    /// Whether any query went out.
    pub asked: bool,
    /// Whether any server sent a valid reply: when queries went out and none did, the servers
    /// are down or unreachable and asking them again through the slow path cannot help.
    pub heard_from_a_server: bool,
    /// The interrupt fd became readable: the batch stopped early.
    pub interrupted: bool,
}

/// One query of the batch.
#[derive(Clone)]
struct Pending {
    name: usize,
    /// 0: A, 1: AAAA.
    family: usize,
    qname: Name,
    rtype: RecordType,
    /// The query on the wire, encoded once; each attempt only writes its ID into it.
    wire: Vec<u8>,
    /// The server and ID of the attempt in flight.
    server: usize,
    id: u16,
    /// When the attempt in flight went out.
    sent_at: Instant,
    retry_after: Duration,
}

/// Asks `servers` for A and AAAA of every name until all are settled, `interrupt` becomes
/// readable, or time is up: at `handoff` when some server has replied (what is left goes to the
/// slow path, which needs time of its own), at `deadline` when none has (a slow first reply is
/// waited for as long as the bound allows). `names` are absolute names to ask as they are.
///
/// With several servers the first name is asked of all of them, and the first to reply takes
/// the whole batch (as glibc and hickory prefer a server that answers): a dead first server
/// then costs nothing, and a healthy one is not asked everything twice.
pub fn run(
    servers: &[SocketAddr],
    names: &[Name],
    handoff: Instant,
    deadline: Instant,
    interrupt: Option<BorrowedFd<'_>>,
) -> Batch {
    let mut batch = Batch {
        answers: vec![[None, None]; names.len()],
        ..Batch::default()
    };
    let sockets: Vec<Option<UdpSocket>> = servers.iter().map(|s| connect(*s).ok()).collect();
    let usable: Vec<usize> = (0..servers.len())
        .filter(|&i| sockets[i].is_some())
        .collect();
    if usable.is_empty() || names.is_empty() {
        return batch;
    }
    let Some(mut ids) = Ids::new() else {
        return batch;
    };
    batch.asked = true;
    let mut queue: Vec<Pending> = names
        .iter()
        .enumerate()
        .flat_map(|(i, name)| {
            [(0, RecordType::A), (1, RecordType::AAAA)].map(|(family, rtype)| Pending {
                name: i,
                family,
                qname: name.clone(),
                rtype,
                wire: encode_query(name, rtype),
                server: 0,
                id: 0,
                sent_at: deadline,
                retry_after: FIRST_RETRY,
            })
        })
        .collect();
    // Popped from the back: input order.
    queue.reverse();

    // At most WINDOW entries (plus one probe per server): a linear scan beats hashing here.
    let mut in_flight: Vec<Pending> = Vec::with_capacity(WINDOW + usable.len());
    // Until a server has replied, only the first query is out, to every server.
    let mut chosen: Option<usize> = (usable.len() == 1).then(|| usable[0]);
    let mut buf = vec![0u8; 65_536];

    loop {
        let now = Instant::now();
        match chosen {
            Some(server) => {
                while in_flight.len() < WINDOW {
                    let Some(mut query) = queue.pop() else { break };
                    let Some(id) = ids.take() else { return batch };
                    send(&sockets, server, &mut query, id, now);
                    in_flight.push(query);
                }
            }
            None if in_flight.is_empty() => {
                if let Some(first) = queue.pop() {
                    for &server in &usable {
                        let mut probe = first.clone();
                        let Some(id) = ids.take() else { return batch };
                        send(&sockets, server, &mut probe, id, now);
                        in_flight.push(probe);
                    }
                }
            }
            None => {}
        }
        if in_flight.is_empty() && queue.is_empty() {
            return batch;
        }
        let time_up = if batch.heard_from_a_server {
            handoff
        } else {
            deadline
        };
        if now >= time_up {
            return batch;
        }

        // Sleep until a reply, the next retry, the time limit or the interrupt.
        let next_retry = in_flight
            .iter()
            .map(|q| q.sent_at + q.retry_after)
            .min()
            .unwrap_or(time_up)
            .min(time_up);
        let mut fds: Vec<BorrowedFd<'_>> = usable
            .iter()
            .filter_map(|&i| sockets[i].as_ref().map(AsFd::as_fd))
            .collect();
        if let Some(fd) = interrupt {
            fds.push(fd);
        }
        let ready = match crate::sys::poll_readable(&fds, next_retry.saturating_duration_since(now))
        {
            Ok(ready) => ready,
            Err(_) => return batch,
        };
        if interrupt.is_some() && ready.last() == Some(&true) {
            batch.interrupted = true;
            return batch;
        }

        for (slot, &server) in usable.iter().enumerate() {
            if !ready[slot] {
                continue;
            }
            let Some(socket) = sockets[server].as_ref() else {
                continue;
            };
            // Drain the socket: a burst of replies costs one poll.
            while let Ok(len) = socket.recv(&mut buf) {
                let Some((at, settled)) = check_reply(&buf[..len], &in_flight, server) else {
                    continue;
                };
                batch.heard_from_a_server = true;
                let query = in_flight.swap_remove(at);
                ids.release(query.id);
                if chosen.is_none() {
                    // The first server to reply takes the batch; the other probes are dropped.
                    chosen = Some(server);
                    for probe in in_flight.drain(..) {
                        ids.release(probe.id);
                    }
                }
                batch.answers[query.name][query.family] = settled;
            }
        }

        // Retry what is overdue, on the next server (while probing: the same one, since every
        // server already has the question).
        let now = Instant::now();
        for query in in_flight
            .iter_mut()
            .filter(|q| now >= q.sent_at + q.retry_after)
        {
            ids.release(query.id);
            let server = match chosen {
                Some(_) => next_server(&usable, query.server),
                None => query.server,
            };
            query.retry_after *= 2;
            let Some(id) = ids.take() else { return batch };
            send(&sockets, server, query, id, now);
        }
    }
}

/// The wire form of a recursive query for `name`/`rtype` (class IN) with an EDNS OPT record
/// announcing [`EDNS_PAYLOAD`]; its ID (the first two bytes) is set per attempt. Built by hand
/// because it is built for every name: the same bytes hickory's encoder produces (a unit test
/// checks that), at a fraction of the cost.
fn encode_query(name: &Name, rtype: RecordType) -> Vec<u8> {
    // ID 0, flags: RD; one question, no answers or authority, one additional (the OPT).
    let mut wire = vec![0, 0, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
    for label in name.iter() {
        wire.push(label.len() as u8); // labels are at most 63 bytes: checked by `Name`
        wire.extend_from_slice(label);
    }
    wire.push(0);
    wire.extend_from_slice(&u16::from(rtype).to_be_bytes());
    wire.extend_from_slice(&u16::from(DNSClass::IN).to_be_bytes());
    // OPT: root owner, type 41, class = UDP payload size, TTL 0 (no flags), no options.
    wire.extend_from_slice(&[0, 0, 41]);
    wire.extend_from_slice(&EDNS_PAYLOAD.to_be_bytes());
    wire.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    wire
}

/// The length of the OPT record that ends every query of ours.
const OPT_RR_LEN: usize = 11;

/// A non-blocking UDP socket on a kernel-chosen port, connected to `server`.
fn connect(server: SocketAddr) -> std::io::Result<UdpSocket> {
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local)?;
    socket.connect(server)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

fn next_server(usable: &[usize], current: usize) -> usize {
    let at = usable.iter().position(|&s| s == current).unwrap_or(0);
    usable[(at + 1) % usable.len()]
}

/// Sends `query` to `server` with ID `id` and notes the attempt. A send that fails (a full
/// socket buffer, an unreachable server) counts as a lost datagram: the attempt is recorded
/// all the same and retried on the next server when it is overdue.
fn send(sockets: &[Option<UdpSocket>], server: usize, query: &mut Pending, id: u16, now: Instant) {
    query.wire[..2].copy_from_slice(&id.to_be_bytes());
    if let Some(socket) = sockets[server].as_ref() {
        let _ = socket.send(&query.wire);
    }
    query.server = server;
    query.id = id;
    query.sent_at = now;
}

/// Validates one datagram from `server` against the queries in flight: the ID of one of them,
/// a response, the same single question. Returns that query's index in `in_flight` and the
/// outcome (`None`: leave the query to the slow path), or `None` overall for a datagram to
/// ignore.
fn check_reply(
    bytes: &[u8],
    in_flight: &[Pending],
    server: usize,
) -> Option<(usize, Option<Settled>)> {
    // The ID first: anything that matches no query in flight is not worth parsing.
    let id = u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]);
    let at = in_flight
        .iter()
        .position(|q| q.id == id && q.server == server)?;
    let query = &in_flight[at];
    // Then the question, as bytes: one entry (QDCOUNT 1), right after the 12-byte header,
    // uncompressed, exactly what we sent but for the case of letters (resolvers may echo a
    // name's case as they got it or not). Cheaper than comparing parsed names, and a
    // mismatched datagram is dropped before hickory parses it.
    let question = &query.wire[12..query.wire.len() - OPT_RR_LEN];
    let echoed = bytes.get(12..12 + question.len())?;
    if bytes.get(4..6)? != [0, 1] || !echoed.eq_ignore_ascii_case(question) {
        return None;
    }
    let message = Message::from_vec(bytes).ok()?;
    if message.message_type() != MessageType::Response {
        return None;
    }
    if message.truncated() {
        return Some((at, None));
    }
    let settled = match message.response_code() {
        ResponseCode::NXDomain => Some(Settled::NoSuchName),
        ResponseCode::NoError => {
            let addrs = addresses(&message, &query.qname, query.rtype);
            Some(if addrs.is_empty() {
                Settled::NoData
            } else {
                Settled::Addresses(addrs)
            })
        }
        _ => None,
    };
    Some((at, settled))
}

/// The addresses of type `rtype` for `qname` in `message`'s answer section, following a CNAME
/// chain within it (as a recursive resolver returns it); records for other owners are ignored.
fn addresses(message: &Message, qname: &Name, rtype: RecordType) -> Vec<IpAddr> {
    /// Longer chains are left unresolved (the answer counts as no data).
    const MAX_CNAMES: usize = 8;
    let mut owner = qname.clone();
    for _ in 0..=MAX_CNAMES {
        let mut found = Vec::new();
        let mut alias = None;
        for record in message.answers().iter().filter(|r| r.name() == &owner) {
            match (record.data(), rtype) {
                (RData::A(a), RecordType::A) => found.push(IpAddr::V4(a.0)),
                (RData::AAAA(a), RecordType::AAAA) => found.push(IpAddr::V6(a.0)),
                (RData::CNAME(target), _) => alias = Some(target.0.clone()),
                _ => {}
            }
        }
        match (found.is_empty(), alias) {
            (false, _) => return found,
            (true, Some(next)) => owner = next,
            (true, None) => break,
        }
    }
    Vec::new()
}

/// Random query IDs from the kernel's generator, each in use at most once at a time.
struct Ids {
    pool: Vec<u16>,
    /// One bit per ID.
    in_use: Vec<u64>,
}

impl Ids {
    /// `None` when the kernel has no `getrandom` (Linux < 3.17): predictable IDs would make
    /// spoofing easy, so the batch is skipped and the slow path resolves everything.
    fn new() -> Option<Self> {
        let mut ids = Self {
            pool: Vec::new(),
            in_use: vec![0; 1 << 10],
        };
        ids.refill().then_some(ids)
    }

    fn refill(&mut self) -> bool {
        let mut bytes = [0u8; 512];
        if getrandom::fill(&mut bytes).is_err() {
            return false;
        }
        self.pool = bytes
            .chunks_exact(2)
            .map(|c| u16::from_ne_bytes([c[0], c[1]]))
            .collect();
        true
    }

    fn bit(id: u16) -> (usize, u64) {
        (usize::from(id >> 6), 1 << (id & 63))
    }

    fn is_used(&self, id: u16) -> bool {
        let (word, bit) = Self::bit(id);
        self.in_use[word] & bit != 0
    }

    /// A fresh ID; `None` only if the kernel's generator stopped working mid-batch.
    fn take(&mut self) -> Option<u16> {
        loop {
            if self.pool.is_empty() && !self.refill() {
                return None;
            }
            let id = self.pool.pop()?;
            if !self.is_used(id) {
                let (word, bit) = Self::bit(id);
                self.in_use[word] |= bit;
                return Some(id);
            }
        }
    }

    fn release(&mut self, id: u16) {
        let (word, bit) = Self::bit(id);
        self.in_use[word] &= !bit;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_resolver::proto::op::Query;
    use hickory_resolver::proto::rr::rdata::{A, AAAA, CNAME};
    use hickory_resolver::proto::rr::Record;

    fn name(text: &str) -> Name {
        Name::from_ascii(text).expect("name")
    }

    /// One query in flight on server 0 with ID 7.
    fn in_flight(qname: &str, rtype: RecordType) -> Vec<Pending> {
        vec![Pending {
            name: 0,
            family: usize::from(rtype == RecordType::AAAA),
            qname: name(qname),
            rtype,
            wire: encode_query(&name(qname), rtype),
            server: 0,
            id: 7,
            sent_at: Instant::now(),
            retry_after: FIRST_RETRY,
        }]
    }

    /// A reply with `id`, the question `(qname, rtype)` and `answers`.
    fn reply(id: u16, qname: &str, rtype: RecordType, answers: Vec<Record>) -> Message {
        let mut m = Message::new();
        m.set_id(id)
            .set_message_type(MessageType::Response)
            .add_query(Query::query(name(qname), rtype));
        for a in answers {
            m.add_answer(a);
        }
        m
    }

    fn a(owner: &str, addr: &str) -> Record {
        Record::from_rdata(name(owner), 60, RData::A(A(addr.parse().expect("v4"))))
    }

    fn aaaa(owner: &str, addr: &str) -> Record {
        Record::from_rdata(
            name(owner),
            60,
            RData::AAAA(AAAA(addr.parse().expect("v6"))),
        )
    }

    fn cname(owner: &str, target: &str) -> Record {
        Record::from_rdata(name(owner), 60, RData::CNAME(CNAME(name(target))))
    }

    fn check(m: &Message, flight: &[Pending]) -> Option<(usize, Option<Settled>)> {
        check_reply(&m.to_vec().expect("encode"), flight, 0)
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn a_matching_reply_settles_with_its_addresses_only() {
        let flight = in_flight("api.example.", RecordType::A);
        let m = reply(
            7,
            "API.Example.",
            RecordType::A,
            vec![
                a("api.example.", "203.0.113.5"),
                a("api.example.", "203.0.113.6"),
                // Another owner's record in the same reply opens nothing.
                a("evil.example.", "198.51.100.66"),
            ],
        );
        assert_eq!(
            check(&m, &flight),
            Some((
                0,
                Some(Settled::Addresses(vec![
                    ip("203.0.113.5"),
                    ip("203.0.113.6")
                ]))
            ))
        );
    }

    #[test]
    fn a_cname_chain_is_followed_within_the_answer() {
        let flight = in_flight("www.example.", RecordType::AAAA);
        let m = reply(
            7,
            "www.example.",
            RecordType::AAAA,
            vec![
                cname("www.example.", "edge.cdn.example."),
                cname("edge.cdn.example.", "pop1.cdn.example."),
                aaaa("pop1.cdn.example.", "2001:db8::80"),
            ],
        );
        assert_eq!(
            check(&m, &flight),
            Some((0, Some(Settled::Addresses(vec![ip("2001:db8::80")]))))
        );
        // A chain that loops or ends without an address is "no data", not an error.
        let looped = reply(
            7,
            "www.example.",
            RecordType::AAAA,
            vec![
                cname("www.example.", "b.example."),
                cname("b.example.", "www.example."),
            ],
        );
        assert_eq!(check(&looped, &flight), Some((0, Some(Settled::NoData))));
    }

    #[test]
    fn replies_that_do_not_match_the_query_are_dropped() {
        let flight = in_flight("api.example.", RecordType::A);
        let good = || vec![a("api.example.", "203.0.113.5")];
        // Unknown ID, other name, other type, a query instead of a response.
        assert_eq!(
            check(&reply(8, "api.example.", RecordType::A, good()), &flight),
            None
        );
        assert_eq!(
            check(&reply(7, "other.example.", RecordType::A, good()), &flight),
            None
        );
        assert_eq!(
            check(&reply(7, "api.example.", RecordType::AAAA, good()), &flight),
            None
        );
        let mut query = reply(7, "api.example.", RecordType::A, good());
        query.set_message_type(MessageType::Query);
        assert_eq!(check(&query, &flight), None);
        // The right reply from another server's socket.
        let bytes = reply(7, "api.example.", RecordType::A, good())
            .to_vec()
            .expect("encode");
        assert_eq!(check_reply(&bytes, &flight, 1), None);
        // Garbage.
        assert_eq!(check_reply(&[0, 7, 0x81], &flight, 0), None);
    }

    #[test]
    fn negative_and_failed_answers() {
        let flight = in_flight("gone.example.", RecordType::A);
        let mut nx = reply(7, "gone.example.", RecordType::A, vec![]);
        nx.set_response_code(ResponseCode::NXDomain);
        assert_eq!(check(&nx, &flight), Some((0, Some(Settled::NoSuchName))));
        let empty = reply(7, "gone.example.", RecordType::A, vec![]);
        assert_eq!(check(&empty, &flight), Some((0, Some(Settled::NoData))));
        // Server failure, refusal and truncation are left for the full resolver.
        for code in [ResponseCode::ServFail, ResponseCode::Refused] {
            let mut m = reply(7, "gone.example.", RecordType::A, vec![]);
            m.set_response_code(code);
            assert_eq!(check(&m, &flight), Some((0, None)), "{code:?}");
        }
        let mut truncated = reply(
            7,
            "gone.example.",
            RecordType::A,
            vec![a("gone.example.", "203.0.113.1")],
        );
        truncated.set_truncated(true);
        assert_eq!(check(&truncated, &flight), Some((0, None)));
    }

    #[test]
    fn ids_are_unique_while_in_use() {
        let mut ids = Ids::new().expect("getrandom");
        let taken: std::collections::HashSet<u16> =
            (0..5000).map(|_| ids.take().expect("id")).collect();
        assert_eq!(taken.len(), 5000);
        let first = *taken.iter().next().expect("one");
        ids.release(first);
        assert!(!ids.is_used(first));
    }

    #[test]
    fn the_hand_encoded_query_is_what_hickory_encodes() {
        use hickory_resolver::proto::op::Edns;
        for (qname, rtype) in [
            ("api.github.com.", RecordType::A),
            ("n7.bench.lab.", RecordType::AAAA),
            ("xn--bcher-kva.example.", RecordType::A),
        ] {
            let mut message = Message::new();
            message
                .set_id(0x1234)
                .set_message_type(MessageType::Query)
                .set_recursion_desired(true)
                .add_query(Query::query(name(qname), rtype));
            let mut edns = Edns::new();
            edns.set_max_payload(EDNS_PAYLOAD);
            message.set_edns(edns);
            let mut ours = encode_query(&name(qname), rtype);
            ours[..2].copy_from_slice(&0x1234u16.to_be_bytes());
            assert_eq!(ours, message.to_vec().expect("encode"), "{qname} {rtype}");
        }
    }
}
