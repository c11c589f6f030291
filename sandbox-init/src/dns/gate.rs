//! The gate process: started by the boot after the firewall is in place and before the agent,
//! it answers every DNS query of the agent (the `nat` redirect sends them to its sockets on
//! 127.0.0.1 and ::1, port [`GATE_PORT`]).
//!
//! For each query: a malformed one is dropped (UDP) or ends the connection (TCP); a name the
//! allowlist does not cover is answered NXDOMAIN in `allowlist` egress and **never forwarded**;
//! anything else goes to the resolvers of resolv.conf (UDP, one socket per query, so the kernel
//! picks a fresh source port; TCP when the answer was truncated and the agent asked over TCP).
//! The A/AAAA addresses of an answer for an allowlisted name are opened in `JAILOC-NAMES`
//! (one `iptables-restore` per family and answer that brings new ones) **before** the answer
//! is released; if that fails the agent gets SERVFAIL, so nothing it was told is unreachable.
//!
//! One thread, one `poll`: at most [`MAX_PENDING`] queries upstream and [`MAX_TCP`] agent TCP
//! connections at a time, every one with a deadline; the bytes the agent sends are parsed only
//! by `wire.rs`, with bounds. The process itself: [`crate::privilege::drop_gate`].
//!
//! The gate also keeps the egress record ([`crate::egress`]): the names it refuses, and the
//! packets the firewall refuses (NFLOG, read in the same loop). SIGTERM (PID 1 stopping it
//! after the agent ended) is read from a signalfd in the loop: the record is flushed, the gate
//! exits 0.

use super::allow::{self, Allowlist, Ports};
use super::open::{Change, OpenSet};
use super::wire::{self, Query, Rcode};
use crate::egress::recorder::Recorder;
use crate::egress::RecordConfig;
use crate::firewall::nft::names::Names;
use crate::firewall::{Allow, Backend, CommandRunner, Family};
use crate::log::Log;
use crate::policy::{Egress, HostList, NetworkEntry, GATE_PORT};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

/// Queries waiting for an upstream answer at most; more are answered SERVFAIL at once.
pub const MAX_PENDING: usize = 256;
/// Agent TCP connections open at most; more are closed at once.
pub const MAX_TCP: usize = 16;
/// How long an agent TCP connection may take to send a whole query.
const TCP_IDLE: Duration = Duration::from_secs(5);
/// The largest UDP message read or relayed (EDNS answers are rarely above 1232 bytes).
const UDP_MAX: usize = 4096;
/// How often expired destinations are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(30);
/// Refusals logged per [`LOG_WINDOW`] at most; the rest are counted and summed up.
const LOG_BURST: u32 = 10;
const LOG_WINDOW: Duration = Duration::from_secs(10);

/// What the gate needs from the boot, owned: it runs in its own process.
#[derive(Debug, Clone)]
pub struct GateConfig {
    pub egress: Egress,
    /// `allowed_hosts` as the policy lists them. The gate indexes them ([`Allowlist`]) itself,
    /// after the fork: a long allowlist costs the gate's start, not the agent's.
    pub hosts: HostList,
    /// `allowed_networks`: whether an answer in metadata space may be opened.
    pub networks: Vec<NetworkEntry>,
    /// Where queries go, in order.
    pub resolvers: Vec<IpAddr>,
    /// How long one resolver gets to answer.
    pub timeout: Duration,
    /// The iptables flavour the boot installed the rules with.
    pub backend: &'static Backend,
    /// Whether IPv6 rules are installed (IPv6 addresses are opened only then).
    pub v6: bool,
    /// The boot kept the rules of a previous run (same policy): `JAILOC-NAMES` holds what the
    /// previous gate opened, and this one empties it first.
    pub stale_names: bool,
    /// The boot wrote the rules over netlink (nf_tables): the gate opens and closes over
    /// netlink too, without an `iptables-restore` process per change.
    pub netlink: bool,
    /// The egress record: where it goes and the reasons for what is refused.
    pub record: RecordConfig,
}

/// The gate's sockets, bound by the boot as root (port 53 may be privileged; binding an NFLOG
/// group needs CAP_NET_ADMIN) before the agent exists, and inherited by the gate.
#[derive(Debug)]
pub struct Sockets {
    udp: Vec<UdpSocket>,
    tcp: Vec<TcpListener>,
    /// The egress record's NFLOG socket (`None` when the kernel refused it: a warning).
    nflog: Option<crate::sys::Netlink>,
}

impl Sockets {
    /// 127.0.0.1 and, with `v6`, ::1, UDP and TCP, port [`GATE_PORT`], non-blocking. A
    /// container whose loopback has no ::1 (Docker without IPv6 disables it even where the
    /// IPv6 rules install) gets the IPv4 listeners only: its IPv6 DNS, redirected to ::1, then
    /// goes nowhere, and fails closed. Returns the sockets and why ::1 was left out, if it was.
    pub fn bind(v6: bool) -> io::Result<(Self, Option<String>)> {
        let mut sockets = Sockets {
            udp: Vec::new(),
            tcp: Vec::new(),
            nflog: None,
        };
        sockets.listen(IpAddr::V4(Ipv4Addr::LOCALHOST))?;
        let mut skipped = None;
        if v6 {
            if let Err(e) = sockets.listen(IpAddr::V6(Ipv6Addr::LOCALHOST)) {
                skipped = Some(e.to_string());
            }
        }
        Ok((sockets, skipped))
    }

    /// One UDP and one TCP listener on `addr`, or neither.
    fn listen(&mut self, addr: IpAddr) -> io::Result<()> {
        let at = SocketAddr::new(addr, GATE_PORT);
        let udp = UdpSocket::bind(at).map_err(|e| with_addr(e, "UDP", at))?;
        udp.set_nonblocking(true)?;
        let tcp = TcpListener::bind(at).map_err(|e| with_addr(e, "TCP", at))?;
        tcp.set_nonblocking(true)?;
        self.udp.push(udp);
        self.tcp.push(tcp);
        Ok(())
    }
}

fn with_addr(e: io::Error, proto: &str, at: SocketAddr) -> io::Error {
    io::Error::new(e.kind(), format!("failed to listen on {proto} {at}: {e}"))
}

/// Who is waiting for an answer.
#[derive(Debug)]
enum Client {
    /// A UDP query: answered from listener `socket` to `peer`.
    Udp { socket: usize, peer: SocketAddr },
    /// A TCP connection (its index in the connection table).
    Tcp { conn: usize },
}

/// A query forwarded upstream.
#[derive(Debug)]
struct Pending {
    client: Client,
    query: Query,
    /// The query sent upstream ([`wire::upstream_query`]) under its own random ID: the agent
    /// chose the query's ID, so an answer carrying that one proves nothing.
    message: Vec<u8>,
    /// The ID of `message`.
    upstream_id: u16,
    /// The ports the answer's addresses open with (empty: the name is not allowlisted).
    ports: Ports,
    socket: UdpSocket,
    /// Which resolver is being asked.
    server: usize,
    deadline: Instant,
}

impl Pending {
    /// Whether `response` answers what was sent upstream: the gate's ID, the agent's question.
    fn answered_by(&self, response: &wire::Response) -> bool {
        wire::answers(&self.query.with_id(self.upstream_id), response)
    }
}

/// A fresh random query ID (the kernel's generator; a fixed one only if that fails, and then
/// the firewall's refusal of forged answers still holds).
fn random_id() -> u16 {
    let mut id = [0u8; 2];
    let _ = getrandom::fill(&mut id);
    u16::from_be_bytes(id)
}

/// An agent TCP connection: what it sent so far.
#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    deadline: Instant,
    /// A query of this connection is upstream: read no further until it is answered.
    busy: bool,
}

/// Logs refusals, at most [`LOG_BURST`] per [`LOG_WINDOW`]: a loop cannot flood the log.
#[derive(Debug)]
struct Throttle {
    window: Instant,
    logged: u32,
    held_back: u64,
}

impl Throttle {
    fn new() -> Self {
        Throttle {
            window: Instant::now(),
            logged: 0,
            held_back: 0,
        }
    }

    fn warn(&mut self, log: &Log, now: Instant, line: &str) {
        for line in self.admit(now, line) {
            log.warn(&line);
        }
    }

    /// The lines to write for one refusal at `now`: the refusal itself while the window has
    /// room, preceded by how many the last window held back when a new window opens.
    fn admit(&mut self, now: Instant, line: &str) -> Vec<String> {
        let mut out = Vec::new();
        if now.duration_since(self.window) >= LOG_WINDOW {
            if self.held_back > 0 {
                out.push(format!(
                    "dns: {} more refusals in the last {} s not logged",
                    self.held_back,
                    LOG_WINDOW.as_secs()
                ));
            }
            self.window = now;
            self.logged = 0;
            self.held_back = 0;
        }
        if self.logged < LOG_BURST {
            self.logged += 1;
            out.push(line.to_owned());
        } else {
            self.held_back += 1;
        }
        out
    }
}

#[cfg(test)]
mod throttle_tests {
    use super::*;

    #[test]
    fn a_refusal_loop_logs_ten_lines_a_window_then_one_count() {
        let mut throttle = Throttle::new();
        let t0 = throttle.window;
        let first: usize = (0..1000)
            .map(|i| {
                throttle
                    .admit(t0 + Duration::from_millis(i), "refused")
                    .len()
            })
            .sum();
        assert_eq!(first, LOG_BURST as usize);
        let next = throttle.admit(t0 + LOG_WINDOW, "refused");
        assert_eq!(
            next,
            [
                format!(
                    "dns: {} more refusals in the last 10 s not logged",
                    1000 - LOG_BURST
                ),
                "refused".to_owned()
            ]
        );
    }
}

/// The gate's state.
pub struct Gate<'a> {
    config: GateConfig,
    /// The config's `hosts`, indexed.
    allowlist: Allowlist,
    /// Where `JAILOC-NAMES` is changed over netlink (`config.netlink`); `None`: with
    /// `iptables-restore`.
    names: Option<Names>,
    sockets: Sockets,
    runner: &'a dyn CommandRunner,
    log: Log,
    open: OpenSet,
    pending: Vec<Pending>,
    conns: Vec<Option<Conn>>,
    throttle: Throttle,
    next_sweep: Instant,
    recorder: Recorder,
    /// SIGTERM, when the gate was started with a stop signal to watch.
    stop: Option<OwnedFd>,
}

impl std::fmt::Debug for Gate<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("pending", &self.pending.len())
            .field("open", &self.open.len())
            .finish()
    }
}

/// What ended the gate (it runs until it fails).
#[derive(Debug, thiserror::Error)]
#[error("the DNS gate failed: {0}")]
pub struct GateError(String);

/// How the gate's loop ended.
#[derive(Debug)]
pub enum Ended {
    /// Told to stop (SIGTERM): the record is flushed.
    Stopped,
    Failed(GateError),
}

/// Which poll slot is which.
enum Slot {
    Udp(usize),
    Listener(usize),
    Upstream(usize),
    Conn(usize),
    Nflog,
    Stop,
}

impl<'a> Gate<'a> {
    /// A gate that answers on `sockets`, opens addresses through `runner` and stops when
    /// `stop` (a signalfd) is readable. Opens the egress record (see [`Recorder::open`]).
    pub fn new(
        mut config: GateConfig,
        mut sockets: Sockets,
        runner: &'a dyn CommandRunner,
        log: Log,
        stop: Option<OwnedFd>,
    ) -> Self {
        let nflog = sockets.nflog.take();
        let recorder = Recorder::open(config.record.clone(), nflog, log);
        let allowlist = Allowlist::new(std::mem::take(&mut config.hosts));
        let names = config.netlink.then(Names::open).and_then(|opened| {
            opened
                .map_err(|e| {
                    log.warn(&format!(
                        "dns: {e}: opening addresses with iptables-restore instead"
                    ))
                })
                .ok()
        });
        Gate {
            config,
            allowlist,
            names,
            sockets,
            runner,
            log,
            open: OpenSet::default(),
            pending: Vec::new(),
            conns: Vec::new(),
            throttle: Throttle::new(),
            next_sweep: Instant::now() + SWEEP_EVERY,
            recorder,
            stop,
        }
    }

    /// Serves until told to stop, or until a socket fails (never, in practice).
    pub fn run(mut self) -> Ended {
        if self.config.stale_names {
            self.empty_names();
        }
        loop {
            match self.turn() {
                Ok(true) => {}
                Ok(false) => {
                    self.recorder.stop();
                    return Ended::Stopped;
                }
                Err(e) => {
                    self.recorder.stop();
                    return Ended::Failed(e);
                }
            }
        }
    }

    /// One `poll` and everything that became ready or due; `false` when told to stop.
    pub fn turn(&mut self) -> Result<bool, GateError> {
        let now = Instant::now();
        let mut slots = Vec::new();
        let mut fds: Vec<BorrowedFd<'_>> = Vec::new();
        for (i, s) in self.sockets.udp.iter().enumerate() {
            slots.push(Slot::Udp(i));
            fds.push(s.as_fd());
        }
        for (i, s) in self.sockets.tcp.iter().enumerate() {
            slots.push(Slot::Listener(i));
            fds.push(s.as_fd());
        }
        for (i, p) in self.pending.iter().enumerate() {
            slots.push(Slot::Upstream(i));
            fds.push(p.socket.as_fd());
        }
        for (i, c) in self.conns.iter().enumerate() {
            if let Some(c) = c.as_ref().filter(|c| !c.busy) {
                slots.push(Slot::Conn(i));
                fds.push(c.stream.as_fd());
            }
        }
        if let Some(fd) = self.recorder.fd() {
            slots.push(Slot::Nflog);
            fds.push(fd);
        }
        if let Some(fd) = &self.stop {
            slots.push(Slot::Stop);
            fds.push(fd.as_fd());
        }
        let deadline = self
            .pending
            .iter()
            .map(|p| p.deadline)
            .chain(self.conns.iter().flatten().map(|c| c.deadline))
            .chain(self.recorder.next_due())
            .fold(self.next_sweep, Instant::min);
        let ready = crate::sys::poll_readable(&fds, deadline.saturating_duration_since(now))
            .map_err(|e| GateError(format!("poll: {e}")))?;
        drop(fds);
        // Upstream answers first, newest slot first, so removing a pending entry does not
        // shift the ones still to be handled.
        let mut upstream: Vec<usize> = Vec::new();
        let mut stop = false;
        for (slot, ready) in slots.iter().zip(&ready) {
            if !ready {
                continue;
            }
            match slot {
                Slot::Udp(i) => self.read_udp(*i)?,
                Slot::Listener(i) => self.accept(*i),
                Slot::Upstream(i) => upstream.push(*i),
                Slot::Conn(i) => self.read_conn(*i),
                Slot::Nflog => self.recorder.read(now),
                Slot::Stop => stop = true,
            }
        }
        if stop {
            return Ok(false);
        }
        for i in upstream.into_iter().rev() {
            self.read_upstream(i);
        }
        let now = Instant::now();
        self.expire(now);
        self.recorder.tick(now);
        Ok(true)
    }

    fn read_udp(&mut self, socket: usize) -> Result<(), GateError> {
        let mut buf = [0u8; UDP_MAX];
        // A bounded batch per turn, so one flooding sender cannot starve the rest.
        for _ in 0..64 {
            let (len, peer) = match self.sockets.udp[socket].recv_from(&mut buf) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // ICMP errors of earlier replies surface here: not the socket's failure.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                Err(e) => return Err(GateError(format!("UDP receive: {e}"))),
            };
            let message = buf.get(..len).unwrap_or_default().to_vec();
            self.query(message, Client::Udp { socket, peer });
        }
        Ok(())
    }

    fn accept(&mut self, listener: usize) {
        for _ in 0..MAX_TCP {
            let stream = match self.sockets.tcp[listener].accept() {
                Ok((stream, _)) => stream,
                Err(_) => return,
            };
            let free = self.conns.iter().position(Option::is_none);
            let live = self.conns.iter().flatten().count();
            if live >= MAX_TCP || stream.set_nonblocking(true).is_err() {
                continue; // dropped: closed
            }
            let conn = Conn {
                stream,
                buf: Vec::new(),
                deadline: Instant::now() + TCP_IDLE,
                busy: false,
            };
            match free {
                Some(i) => self.conns[i] = Some(conn),
                None => self.conns.push(Some(conn)),
            }
        }
    }

    fn read_conn(&mut self, i: usize) {
        let Some(conn) = self.conns.get_mut(i).and_then(Option::as_mut) else {
            return;
        };
        let mut chunk = [0u8; 4096];
        loop {
            match conn.stream.read(&mut chunk) {
                Ok(0) => {
                    self.conns[i] = None;
                    return;
                }
                Ok(n) => {
                    conn.buf
                        .extend_from_slice(chunk.get(..n).unwrap_or_default());
                    if conn.buf.len() > 2 + wire::MAX_MESSAGE {
                        self.conns[i] = None;
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.conns[i] = None;
                    return;
                }
            }
        }
        self.next_tcp_query(i);
    }

    /// Takes the next whole length-framed query off connection `i`, if one is there.
    fn next_tcp_query(&mut self, i: usize) {
        let Some(conn) = self.conns.get_mut(i).and_then(Option::as_mut) else {
            return;
        };
        if conn.busy || conn.buf.len() < 2 {
            return;
        }
        let len = usize::from(u16::from_be_bytes([conn.buf[0], conn.buf[1]]));
        if conn.buf.len() < 2 + len {
            return;
        }
        let message: Vec<u8> = conn.buf.drain(..2 + len).skip(2).collect();
        conn.busy = true;
        conn.deadline = Instant::now() + TCP_IDLE + self.config.timeout * 2;
        self.query(message, Client::Tcp { conn: i });
    }

    /// Decides a query: refuse it here, or forward it.
    fn query(&mut self, message: Vec<u8>, client: Client) {
        let now = Instant::now();
        let query = match wire::parse_query(&message) {
            Ok(query) => query,
            Err(e) => {
                self.log
                    .debug(&format!("dns: dropped a malformed query: {e}"));
                self.close(&client);
                return;
            }
        };
        let name = query.name.as_str().to_owned();
        let ports = self.allowlist.ports(&name);
        if ports.is_empty() && self.config.egress == Egress::Allowlist {
            self.throttle.warn(
                &self.log,
                now,
                &format!("dns: refused {name} (not allowlisted)"),
            );
            self.recorder.name_refused(&name, now);
            let answer = wire::refusal(&query, Rcode::NxDomain);
            self.reply(&client, &answer);
            return;
        }
        if self.pending.len() >= MAX_PENDING || self.config.resolvers.is_empty() {
            let answer = wire::refusal(&query, Rcode::ServFail);
            self.reply(&client, &answer);
            return;
        }
        // Built afresh: only the question and RD of what the agent sent leave, under an ID of
        // the gate's own.
        let upstream_id = random_id();
        let message = wire::upstream_query(&query.with_id(upstream_id));
        match self.ask(0, &message) {
            Some((socket, server)) => self.pending.push(Pending {
                client,
                query,
                message,
                upstream_id,
                ports,
                socket,
                server,
                deadline: now + self.config.timeout,
            }),
            None => {
                let answer = wire::refusal(&query, Rcode::ServFail);
                self.reply(&client, &answer);
            }
        }
    }

    /// Sends `message` to the first resolver from `from` on that takes it: a new socket each
    /// time, connected, so only that resolver's answers are read and the port is fresh.
    fn ask(&self, from: usize, message: &[u8]) -> Option<(UdpSocket, usize)> {
        for (server, addr) in self.config.resolvers.iter().enumerate().skip(from) {
            let local: SocketAddr = match addr {
                IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
                IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
            };
            let sent = UdpSocket::bind(local).and_then(|s| {
                s.connect((*addr, 53))?;
                s.set_nonblocking(true)?;
                s.send(message)?;
                Ok(s)
            });
            match sent {
                Ok(socket) => return Some((socket, server)),
                Err(e) => self.log.debug(&format!("dns: failed to ask {addr}: {e}")),
            }
        }
        None
    }

    fn read_upstream(&mut self, i: usize) {
        let mut buf = [0u8; UDP_MAX];
        let Some(pending) = self.pending.get(i) else {
            return;
        };
        let len = match pending.socket.recv(&mut buf) {
            Ok(len) => len,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            // Refused (ICMP) or worse: the next resolver's turn at once.
            Err(_) => {
                let pending = self.pending.swap_remove(i);
                self.retry(pending);
                return;
            }
        };
        let answer = buf.get(..len).unwrap_or_default();
        let Ok(response) = wire::parse_response(answer) else {
            return; // not an answer: keep waiting for one
        };
        if !self.pending[i].answered_by(&response) {
            return;
        }
        let pending = self.pending.swap_remove(i);
        let mut answer = answer.to_vec();
        let mut response = response;
        if response.truncated && matches!(pending.client, Client::Tcp { .. }) {
            let server = self.config.resolvers[pending.server];
            match tcp_exchange(server, &pending.message, self.config.timeout) {
                Ok(full) => match wire::parse_response(&full) {
                    Ok(r) if pending.answered_by(&r) => {
                        response = r;
                        answer = full;
                    }
                    _ => {}
                },
                Err(e) => self.log.debug(&format!("dns: TCP to {server} failed: {e}")),
            }
        }
        // The agent gets the answer under the ID it asked with.
        if let Some(id) = answer.get_mut(..2) {
            id.copy_from_slice(&pending.query.id.to_be_bytes());
        }
        self.release(pending, &response, &answer);
    }

    /// Opens what the answer names (for an allowlisted name), then hands it to the agent.
    fn release(&mut self, pending: Pending, response: &wire::Response, answer: &[u8]) {
        let now = Instant::now();
        let name = pending.query.name.as_str().to_owned();
        let mut change = Change::default();
        if !pending.ports.is_empty() {
            for (addr, ttl) in &response.addrs {
                if !self.config.v6 && addr.is_ipv6() {
                    continue;
                }
                match allow::admit(&self.config.networks, *addr) {
                    Ok(()) => {
                        let allows: Vec<Allow> = allow::allows_for(*addr, &pending.ports).collect();
                        let ttl = Duration::from_secs(u64::from(*ttl));
                        let more = self.open.answer(&allows, ttl, now);
                        change.add.extend(more.add);
                        change.remove.extend(more.remove);
                    }
                    Err(range) => self.throttle.warn(
                        &self.log,
                        now,
                        &format!(
                            "dns: refusing {addr} for {name}: it is in {range} (link-local/metadata); \
                             add {range} to allowed_networks to allow it"
                        ),
                    ),
                }
            }
        }
        if let Err(cause) = self.apply(&change) {
            self.open.forget(&change.add);
            self.log.error(&format!(
                "dns: failed to open the addresses of {name}: {cause}; answering SERVFAIL"
            ));
            let refusal = wire::refusal(&pending.query, Rcode::ServFail);
            self.reply(&pending.client, &refusal);
            return;
        }
        for allow in &change.add {
            self.log.debug(&format!(
                "dns: opened {}{} for {name}",
                allow.dest.addr(),
                allow.port.map(|p| format!(" port {p}")).unwrap_or_default()
            ));
        }
        self.reply(&pending.client, answer);
    }

    /// Empties `JAILOC-NAMES` of what a previous gate opened (a restart that kept the rules):
    /// the first thing this gate does, before it answers.
    fn empty_names(&self) {
        let families = self.families();
        if let Some(names) = &self.names {
            if let Err(e) = names.empty(families) {
                self.log.warn(&format!(
                    "dns: failed to close what the previous run opened: {e}"
                ));
            }
            return;
        }
        for family in families {
            let payload = format!(
                "*filter\n:{} - [0:0]\nCOMMIT\n",
                crate::firewall::ChainName::Names
            );
            let cmd = self.config.backend.restore(*family, &payload);
            match self.runner.run(cmd.program, cmd.args, cmd.stdin) {
                Ok(out) if out.success => {}
                Ok(out) => self.log.warn(&format!(
                    "dns: failed to close what the previous run opened: {}",
                    out.stderr.trim()
                )),
                Err(e) => self.log.warn(&format!(
                    "dns: failed to close what the previous run opened: {e}"
                )),
            }
        }
    }

    /// The families whose rules are installed.
    fn families(&self) -> &'static [Family] {
        if self.config.v6 {
            &[Family::V4, Family::V6]
        } else {
            &[Family::V4]
        }
    }

    /// Makes `change` in one netlink transaction, or with one restore per family that has
    /// something to change.
    fn apply(&self, change: &Change) -> Result<(), String> {
        if let Some(names) = &self.names {
            let rules: Vec<_> = self
                .families()
                .iter()
                .map(|&family| {
                    let (add, remove) = change.rules(family);
                    (family, add, remove)
                })
                .collect();
            return names.apply(&rules);
        }
        for family in [Family::V4, Family::V6] {
            let Some(payload) = change.payload(family) else {
                continue;
            };
            let cmd = self.config.backend.restore(family, &payload);
            match self.runner.run(cmd.program, cmd.args, cmd.stdin) {
                Ok(out) if out.success => {}
                Ok(out) => return Err(format!("{}: {}", cmd.program, out.stderr.trim())),
                Err(e) => return Err(format!("{}: {e}", cmd.program)),
            }
        }
        Ok(())
    }

    /// The next resolver, or SERVFAIL when none is left.
    fn retry(&mut self, pending: Pending) {
        match self.ask(pending.server + 1, &pending.message) {
            Some((socket, server)) => self.pending.push(Pending {
                socket,
                server,
                deadline: Instant::now() + self.config.timeout,
                ..pending
            }),
            None => {
                let answer = wire::refusal(&pending.query, Rcode::ServFail);
                self.reply(&pending.client, &answer);
            }
        }
    }

    /// Deadlines: queries whose resolver did not answer, idle connections, expired addresses.
    fn expire(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.pending.len() {
            if self.pending[i].deadline <= now {
                let pending = self.pending.swap_remove(i);
                self.retry(pending);
            } else {
                i += 1;
            }
        }
        for slot in &mut self.conns {
            if slot.as_ref().is_some_and(|c| !c.busy && c.deadline <= now) {
                *slot = None;
            }
        }
        if now >= self.next_sweep {
            self.next_sweep = now + SWEEP_EVERY;
            // What serving allocated (process spawns, answers) goes back to the kernel: PID 1
            // and the gate stay within their memory target while supervising.
            crate::sys::release_free_memory();
            let gone = self.open.expire(now);
            if !gone.is_empty() {
                let change = Change {
                    add: Vec::new(),
                    remove: gone,
                };
                if let Err(cause) = self.apply(&change) {
                    self.log
                        .warn(&format!("dns: failed to close expired addresses: {cause}"));
                }
            }
        }
    }

    fn reply(&mut self, client: &Client, answer: &[u8]) {
        match client {
            Client::Udp { socket, peer } => {
                let _ = self.sockets.udp[*socket].send_to(answer, peer);
            }
            Client::Tcp { conn } => {
                let Some(c) = self.conns.get_mut(*conn).and_then(Option::as_mut) else {
                    return;
                };
                let Ok(len) = u16::try_from(answer.len()) else {
                    self.conns[*conn] = None;
                    return;
                };
                let mut framed = len.to_be_bytes().to_vec();
                framed.extend_from_slice(answer);
                let sent = c
                    .stream
                    .set_nonblocking(false)
                    .and_then(|()| c.stream.set_write_timeout(Some(Duration::from_secs(1))))
                    .and_then(|()| c.stream.write_all(&framed))
                    .and_then(|()| c.stream.set_nonblocking(true));
                if sent.is_err() {
                    self.conns[*conn] = None;
                    return;
                }
                c.busy = false;
                c.deadline = Instant::now() + TCP_IDLE;
                self.next_tcp_query(*conn);
            }
        }
    }

    fn close(&mut self, client: &Client) {
        if let Client::Tcp { conn } = client {
            if let Some(slot) = self.conns.get_mut(*conn) {
                *slot = None;
            }
        }
    }
}

/// One query over TCP to `server`, bounded by `timeout` per step.
fn tcp_exchange(server: IpAddr, message: &[u8], timeout: Duration) -> io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect_timeout(&SocketAddr::new(server, 53), timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let len = u16::try_from(message.len()).map_err(|_| io::ErrorKind::InvalidInput)?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(message);
    stream.write_all(&framed)?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len)?;
    let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut answer)?;
    Ok(answer)
}

/// Where the gate's legacy iptables takes its lock: its own file, since the gate (not root)
/// cannot open root's `/run/xtables.lock`. Only the gate changes the rules after the boot.
pub const LEGACY_LOCK: &str = "/run/jailoc-gate.xtables.lock";

/// Why the gate could not be started (exit 71).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("failed to start the DNS gate: {0}")]
    Sockets(io::Error),
    #[error("failed to start the DNS gate: fork: {0}")]
    Fork(crate::sys::Errno),
}

/// Binds the gate's sockets (as root), forks the gate and returns its pid. The gate drops to
/// [`crate::policy::GATE_UID`] with only the capabilities it needs
/// ([`crate::privilege::drop_gate`]) and serves until it fails; a gate that cannot drop or
/// serve exits 71, and the supervisor ends the container when it sees the gate gone.
pub fn start(config: &GateConfig, last_cap: u32, log: Log) -> Result<i32, StartError> {
    use crate::sys::{self, Fork, Sys};
    let (mut sockets, no_v6) = Sockets::bind(config.v6).map_err(StartError::Sockets)?;
    if let Some(why) = no_v6 {
        log.debug(&format!(
            "dns gate: IPv4 only ({why}): the container's loopback has no ::1"
        ));
    }
    sockets.nflog = crate::egress::recorder::bind(&log);
    let legacy = !config.backend.parallel;
    let lock = if legacy {
        legacy_lock(std::path::Path::new(LEGACY_LOCK), &log)
    } else {
        None
    };
    match sys::fork().map_err(StartError::Fork)? {
        Fork::Parent(pid) => {
            drop(sockets);
            log.debug(&format!("started the DNS gate as pid {pid}"));
            Ok(pid)
        }
        Fork::Child => {
            // The boot was single-threaded at the fork, so this copy may allocate and run
            // like any program. Signals as a fresh process has them (PID 1 blocked its own).
            let real = sys::RealSys;
            let ready = real
                .reset_signals()
                .map_err(|e| e.to_string())
                .and_then(|()| {
                    crate::privilege::drop_gate(
                        &real,
                        crate::policy::GATE_UID,
                        crate::policy::GATE_UID,
                        crate::privilege::gate_caps(legacy),
                        last_cap,
                    )
                    .map_err(|e| e.to_string())
                });
            if let Err(cause) = ready {
                log.error(&format!("dns gate: {cause}"));
                sys::exit_immediately(crate::exit::OS_ERROR);
            }
            let mut runner = crate::firewall::SystemRunner::new(log);
            if let Some(path) = &lock {
                runner = runner.with_env("XTABLES_LOCKFILE", path);
            }
            let stop = stop_signal(&log);
            // The gate's own copy: the parent's stays untouched, shared with this process until
            // either writes to it (PID 1 frees its copy only once the agent runs).
            let gate = Gate::new(config.clone(), sockets, &runner, log, stop);
            // What this copy of PID 1 inherited and does not use (the boot's freed heap: the
            // policy's reading, the netlink buffers) goes back to the kernel: resident, it would
            // count in the gate's memory for as long as the container runs.
            sys::release_free_memory();
            match gate.run() {
                Ended::Stopped => sys::exit_immediately(0),
                Ended::Failed(error) => {
                    log.error(&error.to_string());
                    sys::exit_immediately(crate::exit::OS_ERROR)
                }
            }
        }
    }
}

/// SIGTERM as a descriptor for the gate's loop (blocked, read from a signalfd): how PID 1 tells
/// the gate to flush the record and end. Without it (a warning) SIGTERM ends the gate at once
/// and the held-back counts are lost; PID 1's SIGKILL after its short wait ends it either way.
fn stop_signal(log: &Log) -> Option<OwnedFd> {
    use crate::sys;
    let mut set = sys::SigSet::empty();
    set.add(libc::SIGTERM);
    match sys::block_signals(&set).and_then(|_| sys::signalfd_nonblocking(&set)) {
        Ok(fd) => Some(fd),
        Err(e) => {
            log.warn(&format!("dns gate: failed to watch SIGTERM: {e}"));
            None
        }
    }
}

/// Creates the gate's lock file for legacy iptables (`path`, [`LEGACY_LOCK`]) as root and hands
/// it to the gate's uid. Not followed if it is a symlink, and refused unless it is one plain
/// file with one name: `fchown` as root must never reach a file someone linked there. `None`
/// (with a warning) when it cannot be made, and the gate's changes then fail visibly (SERVFAIL)
/// instead of racing without a lock.
fn legacy_lock(path: &std::path::Path, log: &Log) -> Option<String> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let made = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .and_then(|file| {
            let meta = file.metadata()?;
            if !meta.is_file() || meta.nlink() != 1 {
                return Err(io::Error::other("not a plain file"));
            }
            let id = crate::policy::GATE_UID;
            std::os::unix::fs::fchown(&file, Some(id), Some(id))
        });
    match made {
        Ok(()) => Some(path.display().to_string()),
        Err(e) => {
            log.warn(&format!(
                "dns gate: failed to prepare {}: {e}: legacy iptables will refuse the gate's changes",
                path.display()
            ));
            None
        }
    }
}

#[cfg(test)]
mod lock_tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// What a writable `/run` would let someone plant at the lock's path: a symlink or a hard
    /// link to a file root owns. Root's `fchown` to the gate's uid must reach neither.
    #[test]
    fn a_link_planted_at_the_lock_path_is_refused_and_its_target_keeps_its_owner() {
        // Only root can give a file away: as anyone else the links would keep their owner
        // with or without the refusal, and the test would prove nothing.
        if !jailoc_tests::require_root("the lock file's attack test") {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("precious");
        std::fs::write(&target, "root's").expect("write");
        let owner = || std::fs::metadata(&target).expect("target").uid();
        let before = owner();

        let symlink = dir.path().join("lock-symlink");
        std::os::unix::fs::symlink(&target, &symlink).expect("symlink");
        assert_eq!(legacy_lock(&symlink, &Log::default()), None);
        let hard = dir.path().join("lock-hardlink");
        std::fs::hard_link(&target, &hard).expect("hard link");
        assert_eq!(legacy_lock(&hard, &Log::default()), None);
        assert_eq!(owner(), before, "the linked file changed hands");

        // The lock itself, where nothing was planted: made, and handed to the gate.
        let lock = dir.path().join("lock");
        assert_eq!(
            legacy_lock(&lock, &Log::default()),
            Some(lock.display().to_string())
        );
        let meta = std::fs::metadata(&lock).expect("lock");
        assert_eq!(meta.uid(), crate::policy::GATE_UID);
    }
}
