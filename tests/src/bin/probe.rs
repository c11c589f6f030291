//! The probe: a small static binary that runs as "the agent" inside the lab or a container and
//! reports what it can and cannot do, one JSON object per line on stdout.
//!
//! It has no dependencies beyond std, libc and serde_json so it can be copied into any image.
//! Network checks never hang: each has a short timeout, and the result names what happened
//! (`connected`, `refused`, `blocked`, `timeout`, `reply`, `error`) with the errno and the time
//! taken. Run `probe --help` for the sub-commands.

use serde_json::{json, Map, Value};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, TcpListener, TcpStream, UdpSocket,
};
use std::os::fd::FromRawFd;
use std::time::{Duration, Instant};

const HELP: &str = "\
probe: reports from inside the sandbox, one JSON object per line on stdout

USAGE: probe <COMMAND> [ARGS...]

Network checks (each prints cmd, target, result, errno, error, ms):
  tcp ADDR:PORT [--timeout-ms N]     TCP connect (default timeout 2000 ms)
  udp ADDR:PORT [--timeout-ms N]     send one datagram on a connected UDP socket, wait for an
                                     echo or an ICMP error (default 1000 ms)
  ping ADDR [--timeout-ms N]         ICMP/ICMPv6 echo via an unprivileged ping socket
                                     (needs net.ipv4.ping_group_range to include our gid)
  dns NAME --server IP [--type A|AAAA] [--port N] [--transport udp|tcp] [--timeout-ms N]
                                     one raw DNS query over UDP; prints the answers
  http ADDR:PORT [PATH] [--timeout-ms N]
                                     HTTP/1.1 GET; prints the status code and body
  srh-udp [ADDR]:PORT --via FIRST [--timeout-ms N]
                                     like udp, with an IPv6 segment routing header (type 4,
                                     IPV6_RTHDR) whose first segment is FIRST: the packet is
                                     addressed to FIRST and names ADDR as its final segment
  ADDR is an IPv4 or IPv6 address; IPv6 with a port is written [ADDR]:PORT, a link-local
  one may carry a scope: [fe80::1%eth0]:80.
  result: connected | refused (TCP reset / port unreachable) | blocked (EPERM, EACCES,
          EHOSTUNREACH, ENETUNREACH: a firewall reject) | timeout (silence) | reply | error

  batch CHECK...                     run several checks, one per argument, e.g.
                                     batch 'tcp 10.0.0.1:80' 'ping ::1'; each line gets
                                     \"check\": the argument

  tcp-bench ADDR:PORT N               N sequential TCP connects; prints median/p90/mean in
                                     microseconds (benchmarks: per-connection rule cost)
  tcp-hammer ADDR:PORT N              N sequential TCP connects whatever each gives; prints how
                                     many were refused (a loop hammering a blocked address)

Socket families (one line per attempt: call, family, result opened|error, errno):
  sockets                            socket()/socketpair() for the families the agent keeps
                                     (unix, inet, inet6, netlink) and refused ones (vsock, tipc,
                                     alg, packet, SMC as IPPROTO_SMC), the same through i386's
                                     int 0x80 (socket, socketcall) and through io_uring's
                                     IORING_OP_SOCKET

Process checks:
  status                             uid, gid, groups, the five capability sets, NoNewPrivs,
                                     SigBlk, SigIgn, open fds, environment variable names
  exit N                             exit with status N
  clock                              print CLOCK_MONOTONIC in nanoseconds (a bare number)
  exec-timed COMMAND [ARGS...]       print CLOCK_MONOTONIC like `clock`, then exec COMMAND: with
                                     an agent of `clock`, the two numbers bracket a boot
  kill-self SIG                      restore SIG's default action and send it to ourselves
  sleep SECS                         sleep (default signal dispositions), then exit 0
  orphans N                          create N orphaned grandchildren that exit, then wait
                                     until init has reaped them (reports reaped/zombies)
  touch PATH                         create PATH (a marker that proves the agent ran)

Servers (for the lab and end-to-end tests):
  serve PORT                         HTTP/1.1 on [::]:PORT: GET /global/health answers
                                     {\"healthy\":true}; GET /probe?args=tcp+10.0.0.1:80 runs one
                                     network/status/touch check and answers its JSON
  listen SPEC...                     SPEC = tcp:ADDR:PORT or udp:ADDR:PORT; logs every
                                     connection/datagram as JSON (UDP is echoed back); prints
                                     {\"event\":\"listening\"} once every socket is bound
  openai-stub PORT MODE              a tiny OpenAI-compatible model server on [::]:PORT:
                                     POST /v1/chat/completions answers per MODE: ok (one
                                     assistant message \"STUB-ANSWER\", streamed as SSE when
                                     asked), 500 (an error every time), hang (reads the request,
                                     never answers); logs every request as JSON
";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help" {
        print!("{HELP}");
        return;
    }
    let code = match args[0].as_str() {
        "exit" => cmd_exit(&args[1..]),
        "clock" => cmd_clock(),
        "exec-timed" => cmd_exec_timed(&args[1..]),
        "kill-self" => cmd_kill_self(&args[1..]),
        "sleep" => cmd_sleep(&args[1..]),
        "orphans" => cmd_orphans(&args[1..]),
        "serve" => cmd_serve(&args[1..]),
        "listen" => cmd_listen(&args[1..]),
        "openai-stub" => cmd_openai_stub(&args[1..]),
        "batch" => cmd_batch(&args[1..]),
        "tcp-bench" => cmd_tcp_bench(&args[1..]),
        "tcp-hammer" => cmd_tcp_hammer(&args[1..]),
        "sockets" => cmd_sockets(),
        _ => match run_check(&args) {
            Ok(v) => {
                emit(&v);
                0
            }
            Err(e) => usage_error(&e),
        },
    };
    std::process::exit(code);
}

fn emit(v: &Value) {
    let mut out = io::stdout().lock();
    // A closed stdout is not worth a panic in a probe.
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

fn usage_error(msg: &str) -> i32 {
    eprintln!("probe: {msg}");
    emit(&json!({"cmd": "usage", "result": "error", "error": msg}));
    2
}

/// Runs one check that returns a JSON report (also used by `serve`).
fn run_check(args: &[String]) -> Result<Value, String> {
    let (cmd, rest) = args.split_first().ok_or("missing command")?;
    let opts = Opts::parse(rest)?;
    match cmd.as_str() {
        "tcp" => Ok(check_tcp(opts.positional(0)?, opts.timeout(2000)?)),
        "udp" => Ok(check_udp(opts.positional(0)?, opts.timeout(1000)?)),
        "ping" => Ok(check_ping(opts.positional(0)?, opts.timeout(1000)?)),
        "dns" => {
            let server = opts.flag("--server").ok_or("dns needs --server IP")?;
            let port: u16 = match opts.flag("--port") {
                Some(p) => p.parse().map_err(|_| format!("invalid port: {p}"))?,
                None => 53,
            };
            let qtype = match opts.flag("--type").unwrap_or("A") {
                "A" | "a" => 1,
                "AAAA" | "aaaa" => 28,
                other => return Err(format!("unsupported --type {other} (A or AAAA)")),
            };
            Ok(check_dns(
                opts.positional(0)?,
                server,
                port,
                qtype,
                opts.flag("--transport") == Some("tcp"),
                opts.timeout(2000)?,
            ))
        }
        "http" => Ok(check_http(
            opts.positional(0)?,
            opts.positionals.get(1).copied().unwrap_or("/"),
            opts.timeout(2000)?,
        )),
        "srh-udp" => {
            let via = opts.flag("--via").ok_or("srh-udp needs --via FIRST")?;
            Ok(check_srh_udp(opts.positional(0)?, via, opts.timeout(1000)?))
        }
        "status" => Ok(status()),
        "touch" => Ok(touch(opts.positional(0)?)),
        other => Err(format!("unknown command: {other} (see probe --help)")),
    }
}

/// Command-line options: positionals plus `--flag VALUE` pairs.
struct Opts<'a> {
    positionals: Vec<&'a str>,
    flags: Vec<(&'a str, &'a str)>,
}

impl<'a> Opts<'a> {
    fn parse(args: &'a [String]) -> Result<Self, String> {
        let mut positionals = Vec::new();
        let mut flags = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            if a.starts_with("--") {
                let v = it.next().ok_or_else(|| format!("{a} needs a value"))?;
                flags.push((a.as_str(), v.as_str()));
            } else {
                positionals.push(a.as_str());
            }
        }
        Ok(Self { positionals, flags })
    }

    fn positional(&self, i: usize) -> Result<&'a str, String> {
        self.positionals
            .get(i)
            .copied()
            .ok_or_else(|| "missing argument".to_string())
    }

    fn flag(&self, name: &str) -> Option<&'a str> {
        self.flags.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    fn timeout(&self, default_ms: u64) -> Result<Duration, String> {
        let ms = match self.flag("--timeout-ms") {
            Some(v) => v
                .parse()
                .map_err(|_| format!("invalid --timeout-ms: {v}"))?,
            None => default_ms,
        };
        Ok(Duration::from_millis(ms.max(1)))
    }
}

// ---------------------------------------------------------------------------------------------
// Addresses

/// Parses `IP`, `fe80::1%eth0` (scope by name or number).
fn parse_ip(s: &str) -> Result<(IpAddr, u32), String> {
    let s = s.trim_start_matches('[').trim_end_matches(']');
    let (ip, scope) = match s.split_once('%') {
        Some((ip, scope)) => (ip, Some(scope)),
        None => (s, None),
    };
    let ip: IpAddr = ip.parse().map_err(|_| format!("invalid address: {s}"))?;
    let scope_id = match scope {
        None => 0,
        Some(sc) => match sc.parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                let c = std::ffi::CString::new(sc).map_err(|_| format!("invalid scope: {sc}"))?;
                // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
                let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
                if idx == 0 {
                    return Err(format!("unknown interface: {sc}"));
                }
                idx
            }
        },
    };
    Ok((ip, scope_id))
}

/// Parses `1.2.3.4:80`, `[2001:db8::1]:80`, `[fe80::1%eth0]:80`.
fn parse_sockaddr(s: &str) -> Result<SocketAddr, String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("expected ADDR:PORT, got {s}"))?;
    if host.contains(':') && !host.starts_with('[') {
        return Err(format!("IPv6 with a port is written [ADDR]:PORT, got {s}"));
    }
    let port: u16 = port.parse().map_err(|_| format!("invalid port in {s}"))?;
    Ok(with_port(parse_ip(host)?, port))
}

fn with_port((ip, scope): (IpAddr, u32), port: u16) -> SocketAddr {
    match ip {
        IpAddr::V4(v4) => SocketAddr::new(IpAddr::V4(v4), port),
        IpAddr::V6(v6) => SocketAddr::V6(SocketAddrV6::new(v6, port, 0, scope)),
    }
}

fn errno_name(e: i32) -> &'static str {
    match e {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EINTR => "EINTR",
        libc::EACCES => "EACCES",
        libc::EAGAIN => "EAGAIN",
        libc::EINVAL => "EINVAL",
        libc::EMSGSIZE => "EMSGSIZE",
        libc::EPROTONOSUPPORT => "EPROTONOSUPPORT",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::ENETDOWN => "ENETDOWN",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::ECONNRESET => "ECONNRESET",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::EHOSTDOWN => "EHOSTDOWN",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::ENOSYS => "ENOSYS",
        libc::EFAULT => "EFAULT",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ESOCKTNOSUPPORT => "ESOCKTNOSUPPORT",
        _ => "E?",
    }
}

/// Maps a socket error to the probe's result vocabulary.
fn classify(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::ECONNREFUSED) => "refused",
        Some(libc::EPERM | libc::EACCES | libc::EHOSTUNREACH | libc::ENETUNREACH) => "blocked",
        Some(libc::ETIMEDOUT | libc::EAGAIN) => "timeout",
        None if e.kind() == io::ErrorKind::TimedOut || e.kind() == io::ErrorKind::WouldBlock => {
            "timeout"
        }
        _ => "error",
    }
}

fn report(cmd: &str, target: &str, started: Instant, outcome: Result<&str, io::Error>) -> Value {
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let ms = (ms * 100.0).round() / 100.0;
    match outcome {
        Ok(result) => {
            json!({"cmd": cmd, "target": target, "result": result, "errno": 0, "ms": ms})
        }
        Err(e) => {
            let errno = e.raw_os_error().unwrap_or(0);
            let name = if errno == 0 {
                "timeout".to_string()
            } else {
                errno_name(errno).to_string()
            };
            json!({"cmd": cmd, "target": target, "result": classify(&e), "errno": errno,
                   "error": name, "ms": ms})
        }
    }
}

fn bad_target(cmd: &str, target: &str, e: String) -> Value {
    json!({"cmd": cmd, "target": target, "result": "error", "errno": 0, "error": e, "ms": 0.0})
}

// ---------------------------------------------------------------------------------------------
// Network checks

fn check_tcp(target: &str, timeout: Duration) -> Value {
    let addr = match parse_sockaddr(target) {
        Ok(a) => a,
        Err(e) => return bad_target("tcp", target, e),
    };
    let started = Instant::now();
    let outcome = TcpStream::connect_timeout(&addr, timeout).map(|_| "connected");
    report("tcp", target, started, outcome)
}

fn check_http(target: &str, path: &str, timeout: Duration) -> Value {
    let addr = match parse_sockaddr(target) {
        Ok(a) => a,
        Err(e) => return bad_target("http", target, e),
    };
    let started = Instant::now();
    let mut response = String::new();
    let outcome = (|| {
        let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n"
        )?;
        stream.read_to_string(&mut response)?;
        Ok("reply")
    })();
    let mut v = report("http", target, started, outcome);
    if let Some((head, body)) = response.split_once("\r\n\r\n") {
        let code = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse::<u16>().ok());
        v["status"] = json!(code);
        v["body"] = json!(body.trim_end());
    }
    v
}

/// A connected UDP socket of the right family, with a receive timeout.
fn connected_udp(addr: SocketAddr, timeout: Duration) -> io::Result<UdpSocket> {
    let local: SocketAddr = match addr {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let sock = UdpSocket::bind(local)?;
    sock.connect(addr)?;
    sock.set_read_timeout(Some(timeout))?;
    Ok(sock)
}

/// Sends `msg` and waits for a datagram `accept` likes; re-sends every 250 ms (a datagram lost
/// while a neighbour is resolved must not read as "silence") until `timeout`. Errors (EPERM from
/// a local reject, ICMP errors on the connected socket) end the wait at once.
fn send_and_wait(
    sock: &UdpSocket,
    msg: &[u8],
    timeout: Duration,
    accept: impl Fn(&[u8]) -> bool,
    buf: &mut [u8],
) -> io::Result<usize> {
    let deadline = Instant::now() + timeout;
    loop {
        sock.send(msg)?;
        let resend = Instant::now() + Duration::from_millis(250);
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(io::Error::from(io::ErrorKind::TimedOut));
            }
            let wait = resend.min(deadline).saturating_duration_since(now);
            if wait.is_zero() {
                break;
            }
            sock.set_read_timeout(Some(wait))?;
            match sock.recv(buf) {
                Ok(n) if accept(&buf[..n]) => return Ok(n),
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

fn check_udp(target: &str, timeout: Duration) -> Value {
    let addr = match parse_sockaddr(target) {
        Ok(a) => a,
        Err(e) => return bad_target("udp", target, e),
    };
    let started = Instant::now();
    let outcome = (|| {
        let sock = connected_udp(addr, timeout)?;
        let mut buf = [0u8; 512];
        send_and_wait(&sock, b"probe udp\n", timeout, |_| true, &mut buf).map(|_| "reply")
    })();
    report("udp", target, started, outcome)
}

/// The attack of a segment routing header: the packet's destination (what `ip6tables -d` sees)
/// is `via`, an allowed host; its final segment is `target`. A node with seg6 enabled at `via`
/// forwards it there. The socket is connected to `target`, so its echo counts as a reply.
fn check_srh_udp(target: &str, via: &str, timeout: Duration) -> Value {
    let (addr, first) = match (parse_sockaddr(target), parse_ip(via)) {
        (Ok(a @ SocketAddr::V6(_)), Ok((IpAddr::V6(first), _))) => (a, first),
        (Err(e), _) | (_, Err(e)) => return bad_target("srh-udp", target, e),
        _ => return bad_target("srh-udp", target, "srh-udp is IPv6 only".into()),
    };
    let started = Instant::now();
    let outcome = (|| {
        let sock = UdpSocket::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)))?;
        // struct ipv6_sr_hdr: nexthdr (the kernel fills it), hdrlen (8-byte units after the
        // first 8), type 4, segments_left 1, last_entry 1, flags, tag; then the segments in
        // reverse order: [0] is the final one (the kernel puts the socket's destination
        // there), [1] the first, which becomes the packet's destination.
        let mut srh = vec![0u8, 4, 4, 1, 1, 0, 0, 0];
        srh.extend_from_slice(&Ipv6Addr::UNSPECIFIED.octets());
        srh.extend_from_slice(&first.octets());
        set_ipv6_rthdr(&sock, &srh)?;
        sock.connect(addr)?;
        let mut buf = [0u8; 512];
        send_and_wait(&sock, b"probe srh\n", timeout, |_| true, &mut buf).map(|_| "reply")
    })();
    let mut v = report("srh-udp", target, started, outcome);
    v["via"] = json!(via);
    v
}

fn set_ipv6_rthdr(sock: &UdpSocket, header: &[u8]) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: `header` is a live buffer of the given length; the kernel copies it.
    let ret = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IPV6,
            libc::IPV6_RTHDR,
            header.as_ptr().cast(),
            header.len() as libc::socklen_t,
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn check_ping(target: &str, timeout: Duration) -> Value {
    let (ip, scope) = match parse_ip(target) {
        Ok(a) => a,
        Err(e) => return bad_target("ping", target, e),
    };
    let started = Instant::now();
    let outcome = (|| {
        let (domain, proto, echo_request, echo_reply) = match ip {
            IpAddr::V4(_) => (libc::AF_INET, libc::IPPROTO_ICMP, 8u8, 0u8),
            IpAddr::V6(_) => (libc::AF_INET6, libc::IPPROTO_ICMPV6, 128u8, 129u8),
        };
        // SAFETY: plain socket(2) call; the result is checked before use.
        let fd = unsafe { libc::socket(domain, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, proto) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh socket we own; UdpSocket takes sole ownership and closes it.
        // A ping socket speaks the same connect/send/recv calls as a UDP socket.
        let sock = unsafe { UdpSocket::from_raw_fd(fd) };
        sock.connect(with_port((ip, scope), 0))?;
        sock.set_read_timeout(Some(timeout))?;
        // type, code, checksum (kernel fills), identifier (kernel fills), sequence, payload
        let packet = [
            echo_request,
            0,
            0,
            0,
            0,
            0,
            0,
            1,
            b'p',
            b'r',
            b'o',
            b'b',
            b'e',
        ];
        sock.send(&packet)?;
        let mut buf = [0u8; 512];
        loop {
            let n = sock.recv(&mut buf)?;
            if n >= 8 && buf[0] == echo_reply {
                return Ok("reply");
            }
        }
    })();
    report("ping", target, started, outcome)
}

fn dns_query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = Vec::with_capacity(64);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD; one question
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        q.push(label.len().min(63) as u8);
        q.extend_from_slice(&label.as_bytes()[..label.len().min(63)]);
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes()); // class IN
    q
}

/// Skips a (possibly compressed) domain name; returns the offset after it.
fn skip_name(msg: &[u8], mut i: usize) -> Option<usize> {
    loop {
        let len = *msg.get(i)? as usize;
        if len == 0 {
            return Some(i + 1);
        }
        if len & 0xc0 == 0xc0 {
            return Some(i + 2);
        }
        i += 1 + len;
    }
}

/// Returns (rcode, addresses in A/AAAA answers).
fn dns_parse(msg: &[u8], id: u16) -> Option<(u8, Vec<String>)> {
    if msg.len() < 12 || u16::from_be_bytes([msg[0], msg[1]]) != id {
        return None;
    }
    let rcode = msg[3] & 0x0f;
    let qd = u16::from_be_bytes([msg[4], msg[5]]);
    let an = u16::from_be_bytes([msg[6], msg[7]]);
    let mut i = 12;
    for _ in 0..qd {
        i = skip_name(msg, i)? + 4;
    }
    let mut answers = Vec::new();
    for _ in 0..an {
        i = skip_name(msg, i)?;
        let rtype = u16::from_be_bytes([*msg.get(i)?, *msg.get(i + 1)?]);
        let rdlen = u16::from_be_bytes([*msg.get(i + 8)?, *msg.get(i + 9)?]) as usize;
        let rdata = msg.get(i + 10..i + 10 + rdlen)?;
        match (rtype, rdlen) {
            (1, 4) => {
                answers.push(Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3]).to_string())
            }
            (28, 16) => {
                let mut b = [0u8; 16];
                b.copy_from_slice(rdata);
                answers.push(Ipv6Addr::from(b).to_string());
            }
            _ => {}
        }
        i += 10 + rdlen;
    }
    Some((rcode, answers))
}

fn check_dns(
    name: &str,
    server: &str,
    port: u16,
    qtype: u16,
    tcp: bool,
    timeout: Duration,
) -> Value {
    let target = match parse_ip(server) {
        Ok(ip) => with_port(ip, port),
        Err(e) => return bad_target("dns", server, e),
    };
    let target_s = target.to_string();
    let started = Instant::now();
    let id = (std::process::id() as u16) ^ 0x5a5a;
    let mut answer = None;
    let outcome = (|| {
        let query = dns_query(id, name, qtype);
        if tcp {
            let reply = dns_over_tcp(target, &query, timeout)?;
            answer = dns_parse(&reply, id);
            return Ok("reply");
        }
        let sock = connected_udp(target, timeout)?;
        let mut buf = [0u8; 1500];
        let n = send_and_wait(
            &sock,
            &query,
            timeout,
            |m| dns_parse(m, id).is_some(),
            &mut buf,
        )?;
        answer = dns_parse(&buf[..n], id);
        Ok("reply")
    })();
    let mut v = report("dns", &target_s, started, outcome);
    v["name"] = json!(name);
    v["type"] = json!(if qtype == 1 { "A" } else { "AAAA" });
    v["transport"] = json!(if tcp { "tcp" } else { "udp" });
    if let Some((rcode, answers)) = answer {
        v["rcode"] = json!(rcode);
        v["answers"] = json!(answers);
    }
    v
}

/// One length-framed query over TCP (RFC 1035 4.2.2), the answer's message.
fn dns_over_tcp(
    target: std::net::SocketAddr,
    query: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, std::io::Error> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&target, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut framed = (query.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    stream.write_all(&framed)?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len)?;
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut reply)?;
    Ok(reply)
}

// ---------------------------------------------------------------------------------------------
// Process checks

fn status() -> Value {
    let mut v = Map::new();
    v.insert("cmd".into(), json!("status"));
    v.insert("pid".into(), json!(std::process::id()));
    // SAFETY: getppid(2) has no preconditions.
    v.insert("ppid".into(), json!(unsafe { libc::getppid() }));
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    for line in text.lines() {
        let Some((key, val)) = line.split_once(':') else {
            continue;
        };
        let val = val.trim();
        let nums = |s: &str| -> Vec<u64> {
            s.split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect()
        };
        match key {
            "Uid" => {
                let ids = nums(val);
                v.insert("uid".into(), json!(ids.first()));
                v.insert("uids".into(), json!(ids));
            }
            "Gid" => {
                let ids = nums(val);
                v.insert("gid".into(), json!(ids.first()));
                v.insert("gids".into(), json!(ids));
            }
            "Groups" => {
                v.insert("groups".into(), json!(nums(val)));
            }
            "CapInh" | "CapPrm" | "CapEff" | "CapBnd" | "CapAmb" | "SigBlk" | "SigIgn"
            | "SigCgt" | "NoNewPrivs" | "Seccomp" => {
                v.insert(key.into(), json!(val));
            }
            _ => {}
        }
    }
    // SAFETY: prctl(PR_GET_DUMPABLE) takes no pointers.
    let dumpable = unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) };
    v.insert("dumpable".into(), json!(dumpable));
    let mut fds: Vec<Value> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        for entry in dir.flatten() {
            let fd = entry.file_name().to_string_lossy().to_string();
            let link = std::fs::read_link(entry.path())
                .map(|p| p.to_string_lossy().to_string())
                .unwrap_or_default();
            // Skip the directory handle read_dir itself holds.
            if link.is_empty() || link == format!("/proc/{}/fd", std::process::id()) {
                continue;
            }
            fds.push(json!({"fd": fd.parse::<i64>().unwrap_or(-1), "target": link}));
        }
    }
    v.insert("fds".into(), json!(fds));
    let mut env: Vec<String> = std::env::vars_os()
        .map(|(k, _)| k.to_string_lossy().to_string())
        .collect();
    env.sort();
    v.insert("env".into(), json!(env));
    v.insert(
        "home".into(),
        json!(std::env::var("HOME").unwrap_or_default()),
    );
    v.insert(
        "cwd".into(),
        json!(std::env::current_dir()
            .map(|p| p.to_string_lossy().to_string())
            .unwrap_or_default()),
    );
    Value::Object(v)
}

fn touch(path: &str) -> Value {
    match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        Ok(_) => json!({"cmd": "touch", "path": path, "result": "ok", "errno": 0}),
        Err(e) => {
            let errno = e.raw_os_error().unwrap_or(0);
            json!({"cmd": "touch", "path": path, "result": "error", "errno": errno,
                   "error": e.to_string()})
        }
    }
}

fn cmd_batch(checks: &[String]) -> i32 {
    // Checks run concurrently (each has its own socket), so a few silent timeouts do not add
    // up; a `then` argument ends a group: the next group starts when every check before it is
    // done (a lookup through the DNS gate before the connection it opens). Results are printed
    // in argument order.
    for group in checks.split(|c| c == "then") {
        batch_group(group);
    }
    0
}

fn batch_group(checks: &[String]) {
    let results: Vec<Value> = std::thread::scope(|scope| {
        let handles: Vec<_> = checks
            .iter()
            .map(|check| {
                scope.spawn(move || {
                    let args: Vec<String> = check.split_whitespace().map(String::from).collect();
                    let mut v = match args.first().map(String::as_str) {
                        Some(
                            "tcp" | "udp" | "srh-udp" | "ping" | "dns" | "http" | "status"
                            | "touch",
                        ) => {
                            run_check(&args)
                                .unwrap_or_else(|e| json!({"result": "error", "error": e}))
                        }
                        _ => json!({"result": "error",
                                    "error": "batch runs tcp, udp, ping, dns, http, status, touch"}),
                    };
                    v["check"] = json!(check);
                    v
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| json!({"result": "error", "error": "panic"}))
            })
            .collect()
    });
    for v in &results {
        emit(v);
    }
}

fn cmd_tcp_bench(args: &[String]) -> i32 {
    let (Some(target), Some(Ok(n))) = (args.first(), args.get(1).map(|n| n.parse::<usize>()))
    else {
        return usage_error("tcp-bench needs ADDR:PORT and a count");
    };
    let addr = match parse_sockaddr(target) {
        Ok(a) => a,
        Err(e) => return usage_error(&e),
    };
    let mut us: Vec<f64> = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        let started = Instant::now();
        match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(s) => {
                us.push(started.elapsed().as_secs_f64() * 1e6);
                drop(s);
            }
            Err(e) => {
                emit(&report("tcp-bench", target, started, Err(e)));
                return 1;
            }
        }
    }
    us.sort_by(f64::total_cmp);
    let pick = |q: f64| us[((us.len() - 1) as f64 * q).round() as usize];
    let mean = us.iter().sum::<f64>() / us.len() as f64;
    emit(
        &json!({"cmd": "tcp-bench", "target": target, "count": us.len(),
                  "median_us": pick(0.5), "p90_us": pick(0.9), "mean_us": mean,
                  "result": "connected"}),
    );
    0
}

/// `tcp-hammer ADDR:PORT N`: N connects one after the other, whatever each gives (a loop
/// hammering a refused address); reports how many were refused.
fn cmd_tcp_hammer(args: &[String]) -> i32 {
    let (Some(target), Some(Ok(n))) = (args.first(), args.get(1).map(|n| n.parse::<usize>()))
    else {
        return usage_error("tcp-hammer needs ADDR:PORT and a count");
    };
    let addr = match parse_sockaddr(target) {
        Ok(a) => a,
        Err(e) => return usage_error(&e),
    };
    let started = Instant::now();
    let mut refused = 0;
    for _ in 0..n {
        let outcome = TcpStream::connect_timeout(&addr, Duration::from_secs(2));
        refused +=
            usize::from(outcome.is_err_and(|e| e.kind() == io::ErrorKind::ConnectionRefused));
    }
    emit(
        &json!({"cmd": "tcp-hammer", "target": target, "count": n, "refused": refused,
                 "ms": started.elapsed().as_millis() as u64}),
    );
    0
}

/// CLOCK_MONOTONIC in nanoseconds: the same clock in every process and namespace.
fn monotonic_ns() -> u128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which `ts` is.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128
}

fn cmd_clock() -> i32 {
    println!("{}", monotonic_ns());
    0
}

fn cmd_exec_timed(args: &[String]) -> i32 {
    use std::os::unix::process::CommandExt;
    let Some((program, rest)) = args.split_first() else {
        return usage_error("exec-timed needs a command");
    };
    println!("{}", monotonic_ns());
    let _ = io::stdout().flush();
    let e = std::process::Command::new(program).args(rest).exec();
    eprintln!("probe: exec {program}: {e}");
    127
}

fn cmd_exit(args: &[String]) -> i32 {
    let Some(Ok(code)) = args.first().map(|a| a.parse::<i32>()) else {
        return usage_error("exit needs a number");
    };
    emit(&json!({"cmd": "exit", "code": code}));
    code
}

fn signal_number(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse() {
        return Some(n);
    }
    let name = s.trim_start_matches("SIG").to_ascii_uppercase();
    Some(match name.as_str() {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ABRT" => libc::SIGABRT,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        _ => return None,
    })
}

fn cmd_kill_self(args: &[String]) -> i32 {
    let Some(sig) = args.first().and_then(|a| signal_number(a)) else {
        return usage_error("kill-self needs a signal (number or name like TERM)");
    };
    emit(&json!({"cmd": "kill-self", "signal": sig}));
    // SAFETY: resetting a disposition to SIG_DFL and unblocking it touch no Rust state; the
    // sigset is initialised by sigemptyset before use.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::kill(libc::getpid(), sig);
    }
    std::thread::sleep(Duration::from_secs(5));
    emit(&json!({"cmd": "kill-self", "signal": sig, "result": "survived"}));
    1
}

fn cmd_sleep(args: &[String]) -> i32 {
    let Some(Ok(secs)) = args.first().map(|a| a.parse::<f64>()) else {
        return usage_error("sleep needs a number of seconds");
    };
    emit(&json!({"cmd": "sleep", "secs": secs, "pid": std::process::id()}));
    std::thread::sleep(Duration::from_secs_f64(secs.max(0.0)));
    emit(&json!({"cmd": "sleep", "result": "done"}));
    0
}

/// Forks N children that each fork a grandchild and exit at once; the grandchildren become
/// orphans (re-parented to init or the nearest subreaper) and exit shortly after. We then watch
/// /proc until init has reaped them all, or 5 s pass.
fn cmd_orphans(args: &[String]) -> i32 {
    let Some(Ok(n)) = args.first().map(|a| a.parse::<usize>()) else {
        return usage_error("orphans needs a count");
    };
    let mut fds = [0i32; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe(2) to fill.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return usage_error(&format!(
            "failed to create pipe: {}",
            io::Error::last_os_error()
        ));
    }
    let (rd, wr) = (fds[0], fds[1]);
    for _ in 0..n {
        // SAFETY: the probe is single-threaded here; the children only call async-signal-safe
        // functions (fork, getpid, write, usleep, _exit) before exiting.
        unsafe {
            let child = libc::fork();
            if child == 0 {
                let grandchild = libc::fork();
                if grandchild == 0 {
                    let pid = libc::getpid().to_ne_bytes();
                    libc::write(wr, pid.as_ptr().cast(), pid.len());
                    libc::usleep(200_000);
                    libc::_exit(0);
                }
                libc::_exit(0);
            } else if child > 0 {
                let mut st = 0;
                libc::waitpid(child, &mut st, 0);
            }
        }
    }
    // SAFETY: closing our copy of the write end; `rd` is turned into an owned File below.
    unsafe { libc::close(wr) };
    // SAFETY: `rd` is the pipe's read end, owned by nobody else.
    let mut reader = unsafe { std::fs::File::from_raw_fd(rd) };
    let mut bytes = Vec::new();
    let _ = reader.read_to_end(&mut bytes);
    let pids: Vec<i32> = bytes
        .chunks_exact(4)
        .map(|c| i32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    let state = |pid: i32| -> Option<char> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(')')?.1.trim_start().chars().next()
    };
    loop {
        let alive: Vec<(i32, char)> = pids
            .iter()
            .filter_map(|&p| state(p).map(|s| (p, s)))
            .collect();
        if alive.is_empty() || Instant::now() >= deadline {
            let zombies = alive.iter().filter(|(_, s)| *s == 'Z').count();
            emit(&json!({"cmd": "orphans", "created": pids.len(),
                          "reaped": pids.len() - alive.len(), "zombies": zombies,
                          "result": if alive.is_empty() { "reaped" } else { "timeout" }}));
            return if alive.is_empty() { 0 } else { 1 };
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------------
// Servers

fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => match s.get(i + 1..i + 3).map(|h| u8::from_str_radix(h, 16)) {
                Some(Ok(c)) => {
                    out.push(c);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn http_answer(stream: &mut TcpStream) -> io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" || header == "\n" {
            break;
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let (code, body) = match (method, path) {
        ("GET", "/global/health") => (200, json!({"healthy": true, "version": "probe"})),
        ("GET", "/probe") => {
            let args = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("args="))
                .map(url_decode)
                .unwrap_or_default();
            let args: Vec<String> = args.split_whitespace().map(String::from).collect();
            match args.first().map(String::as_str) {
                Some("tcp" | "udp" | "ping" | "dns" | "http" | "status" | "touch") => {
                    match run_check(&args) {
                        Ok(v) => (200, v),
                        Err(e) => (400, json!({"result": "error", "error": e})),
                    }
                }
                _ => (
                    400,
                    json!({"result": "error",
                           "error": "args must be one of tcp, udp, ping, dns, http, status, touch"}),
                ),
            }
        }
        _ => (404, json!({"error": "not found"})),
    };
    let body = format!("{body}\n");
    let reason = match code {
        200 => "OK",
        400 => "Bad Request",
        _ => "Not Found",
    };
    write!(
        stream,
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

fn cmd_serve(args: &[String]) -> i32 {
    let Some(Ok(port)) = args.first().map(|a| a.parse::<u16>()) else {
        return usage_error("serve needs a port");
    };
    // [::] accepts IPv4 too (unless the host forces v6only); fall back to 0.0.0.0.
    let listener = TcpListener::bind((Ipv6Addr::UNSPECIFIED, port))
        .or_else(|_| TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)));
    let listener = match listener {
        Ok(l) => l,
        Err(e) => return usage_error(&format!("failed to bind port {port}: {e}")),
    };
    emit(&json!({"cmd": "serve", "port": port, "event": "listening"}));
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let _ = http_answer(&mut stream);
    }
    0
}

/// The text the stub's model answers with (the tests look for it in OpenCode's output).
const STUB_ANSWER: &str = "STUB-ANSWER";

fn cmd_openai_stub(args: &[String]) -> i32 {
    let (Some(Ok(port)), Some(mode)) = (args.first().map(|a| a.parse::<u16>()), args.get(1)) else {
        return usage_error("openai-stub needs a port and a mode (ok, 500 or hang)");
    };
    if !["ok", "500", "hang"].contains(&mode.as_str()) {
        return usage_error(&format!(
            "unknown openai-stub mode {mode} (ok, 500 or hang)"
        ));
    }
    let listener = TcpListener::bind((Ipv6Addr::UNSPECIFIED, port))
        .or_else(|_| TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)));
    let listener = match listener {
        Ok(l) => l,
        Err(e) => return usage_error(&format!("failed to bind port {port}: {e}")),
    };
    emit(&json!({"cmd": "openai-stub", "port": port, "mode": mode, "event": "listening"}));
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let mode = mode.clone();
        std::thread::spawn(move || {
            let mut stream = stream;
            let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
            let _ = stub_answer(&mut stream, &mode);
        });
    }
    0
}

/// One request to the stub: the request line, headers and body (by Content-Length), then the
/// answer `mode` asks for.
fn stub_answer(stream: &mut TcpStream, mode: &str) -> io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" || header == "\n" {
            break;
        }
        if let Some((k, v)) = header.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; length.min(1 << 22)];
    reader.read_exact(&mut body)?;
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let stream_wanted = request.get("stream").and_then(Value::as_bool) == Some(true);
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_string();
    emit(
        &json!({"event": "request", "line": request_line.trim(), "mode": mode,
                 "stream": stream_wanted}),
    );
    let send = |stream: &mut TcpStream, status: &str, kind: &str, body: &str| {
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes())?;
        stream.write_all(body.as_bytes())
    };
    if path.ends_with("/models") {
        let list = json!({"object": "list", "data": [{"id": "stub-model", "object": "model"}]});
        return send(stream, "200 OK", "application/json", &list.to_string());
    }
    match mode {
        "hang" => loop {
            std::thread::sleep(Duration::from_secs(3600));
        },
        "500" => {
            let err =
                json!({"error": {"message": "the stub fails on purpose", "type": "server_error"}});
            send(
                stream,
                "500 Internal Server Error",
                "application/json",
                &err.to_string(),
            )
        }
        _ if stream_wanted => {
            let chunk = |delta: Value, finish: Value| {
                json!({"id": "chatcmpl-stub", "object": "chat.completion.chunk", "created": 0,
                       "model": "stub-model",
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
            };
            let mut events = String::new();
            for v in [
                chunk(
                    json!({"role": "assistant", "content": STUB_ANSWER}),
                    Value::Null,
                ),
                {
                    let mut last = chunk(json!({}), json!("stop"));
                    last["usage"] = json!({"prompt_tokens": 1, "completion_tokens": 1,
                                           "total_tokens": 2});
                    last
                },
            ] {
                events.push_str(&format!("data: {v}\n\n"));
            }
            events.push_str("data: [DONE]\n\n");
            send(stream, "200 OK", "text/event-stream", &events)
        }
        _ => {
            let answer = json!({"id": "chatcmpl-stub", "object": "chat.completion", "created": 0,
                "model": "stub-model",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": STUB_ANSWER}}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}});
            send(stream, "200 OK", "application/json", &answer.to_string())
        }
    }
}

fn cmd_listen(args: &[String]) -> i32 {
    let mut handles = Vec::new();
    for spec in args {
        let Some((proto, addr)) = spec.split_once(':') else {
            return usage_error(&format!(
                "expected tcp:ADDR:PORT or udp:ADDR:PORT, got {spec}"
            ));
        };
        let addr = match parse_sockaddr(addr) {
            Ok(a) => a,
            Err(e) => return usage_error(&e),
        };
        match proto {
            "tcp" => match TcpListener::bind(addr) {
                Ok(l) => handles.push(std::thread::spawn(move || {
                    for stream in l.incoming().flatten() {
                        let peer = stream
                            .peer_addr()
                            .map(|a| a.to_string())
                            .unwrap_or_default();
                        // `to`: the address it arrived at (differs from `local` on a wildcard).
                        let to = stream
                            .local_addr()
                            .map(|a| a.to_string())
                            .unwrap_or_default();
                        emit(&json!({"event": "tcp", "local": addr.to_string(), "to": to,
                                      "peer": peer}));
                        let mut s = stream;
                        let _ = s.write_all(b"hello from the lab\n");
                    }
                })),
                Err(e) => return usage_error(&format!("failed to bind tcp {addr}: {e}")),
            },
            "udp" => match UdpSocket::bind(addr) {
                Ok(sock) => handles.push(std::thread::spawn(move || {
                    let mut buf = [0u8; 2048];
                    while let Ok((n, peer)) = sock.recv_from(&mut buf) {
                        emit(&json!({"event": "udp", "local": addr.to_string(),
                                      "peer": peer.to_string(), "len": n}));
                        let _ = sock.send_to(&buf[..n], peer);
                    }
                })),
                Err(e) => return usage_error(&format!("failed to bind udp {addr}: {e}")),
            },
            _ => return usage_error(&format!("unknown protocol in {spec} (tcp or udp)")),
        }
    }
    emit(&json!({"event": "listening", "sockets": args.len()}));
    for h in handles {
        let _ = h.join();
    }
    0
}

// ---------------------------------------------------------------------------------------------
// Socket families

/// One attempt's report: `opened` (the fd is closed again) or `error` with the errno.
fn socket_report(call: &str, family: &str, ret: i64) -> Value {
    if ret >= 0 {
        // SAFETY: a descriptor the call just created; nothing else owns it.
        unsafe { libc::close(ret as i32) };
        json!({"cmd": "socket", "call": call, "family": family, "result": "opened", "errno": 0})
    } else {
        let errno = (-ret) as i32;
        json!({"cmd": "socket", "call": call, "family": family, "result": "error",
               "errno": errno, "error": errno_name(errno)})
    }
}

/// `-errno` on failure, like the raw system call.
fn last_error_as_ret(ret: i64) -> i64 {
    if ret < 0 {
        -i64::from(
            io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO),
        )
    } else {
        ret
    }
}

fn cmd_sockets() -> i32 {
    const FAMILIES: &[(&str, i32, i32, i32)] = &[
        ("unix", libc::AF_UNIX, libc::SOCK_STREAM, 0),
        ("inet", libc::AF_INET, libc::SOCK_STREAM, 0),
        ("inet6", libc::AF_INET6, libc::SOCK_STREAM, 0),
        (
            "netlink",
            libc::AF_NETLINK,
            libc::SOCK_RAW,
            libc::NETLINK_ROUTE,
        ),
        ("vsock", libc::AF_VSOCK, libc::SOCK_STREAM, 0),
        ("tipc", libc::AF_TIPC, libc::SOCK_RDM, 0),
        ("alg", libc::AF_ALG, libc::SOCK_SEQPACKET, 0),
        ("packet", libc::AF_PACKET, libc::SOCK_RAW, 0x0300), // htons(ETH_P_ALL)
        ("smc-inet", libc::AF_INET, libc::SOCK_STREAM, 256), // IPPROTO_SMC
    ];
    for (name, family, kind, proto) in FAMILIES {
        // SAFETY: plain socket(2); the result is only reported and closed.
        let ret = unsafe { libc::socket(*family, kind | libc::SOCK_CLOEXEC, *proto) };
        emit(&socket_report(
            "socket",
            name,
            last_error_as_ret(i64::from(ret)),
        ));
    }
    for (name, family) in [("unix", libc::AF_UNIX), ("vsock", libc::AF_VSOCK)] {
        let mut fds = [-1i32; 2];
        // SAFETY: `fds` is a live array of two ints for the kernel to fill.
        let ret = unsafe { libc::socketpair(family, libc::SOCK_STREAM, 0, fds.as_mut_ptr()) };
        let ret = last_error_as_ret(i64::from(ret));
        if ret == 0 {
            // SAFETY: both descriptors were just created and are ours.
            unsafe { libc::close(fds[1]) };
        }
        let v = socket_report(
            "socketpair",
            name,
            if ret == 0 { i64::from(fds[0]) } else { ret },
        );
        emit(&v);
    }
    i386_sockets();
    emit(&socket_report(
        "io_uring",
        "vsock",
        io_uring_socket(libc::AF_VSOCK),
    ));
    0
}

/// The 32-bit entry from a 64-bit process (`int 0x80`): i386's own numbers, which a filter
/// that checks only x86-64's would miss. Needs IA32 emulation in the kernel.
#[cfg(target_arch = "x86_64")]
fn i386_sockets() {
    fn int80(nr: i64, a: u64, b: u64, c: u64) -> i64 {
        let ret: i64;
        // SAFETY: an i386 system call with integer arguments only (socketcall gets a null
        // pointer, which the kernel refuses with EFAULT); rbx, which LLVM reserves, is swapped
        // in and out around the call. `int 0x80` clobbers nothing else of ours (r8-r11 are
        // preserved by the 32-bit entry).
        unsafe {
            std::arch::asm!(
                "xchg {a}, rbx",
                "int 0x80",
                "xchg {a}, rbx",
                a = inout(reg) a => _,
                inlateout("rax") nr => ret,
                in("rcx") b,
                in("rdx") c,
            );
        }
        ret
    }
    const SOCKET: i64 = 359;
    const SOCKETCALL: i64 = 102;
    let stream = libc::SOCK_STREAM as u64;
    for (name, family) in [("inet", libc::AF_INET), ("vsock", libc::AF_VSOCK)] {
        let ret = int80(SOCKET, family as u64, stream, 0);
        emit(&socket_report("i386-socket", name, ret));
    }
    // socketcall(SYS_SOCKET, NULL): EFAULT from the kernel, ENOSYS from the filter.
    emit(&socket_report(
        "i386-socketcall",
        "any",
        int80(SOCKETCALL, 1, 0, 0),
    ));
}

#[cfg(not(target_arch = "x86_64"))]
fn i386_sockets() {}

/// io_uring's IORING_OP_SOCKET (Linux 5.19): a socket without the `socket` system call.
/// Returns the new fd or -errno (of io_uring_setup, or of the operation).
fn io_uring_socket(family: i32) -> i64 {
    #[repr(C)]
    #[derive(Default)]
    struct Offsets {
        head: u32,
        tail: u32,
        ring_mask: u32,
        ring_entries: u32,
        flags_or_overflow: u32,
        dropped_or_cqes: u32,
        array_or_flags: u32,
        resv1: u32,
        user_addr: u64,
    }
    #[repr(C)]
    #[derive(Default)]
    struct Params {
        sq_entries: u32,
        cq_entries: u32,
        flags: u32,
        sq_thread_cpu: u32,
        sq_thread_idle: u32,
        features: u32,
        wq_fd: u32,
        resv: [u32; 3],
        sq_off: Offsets,
        cq_off: Offsets,
    }
    const SETUP: libc::c_long = 425;
    const ENTER: libc::c_long = 426;
    const OFF_SQ_RING: i64 = 0;
    const OFF_CQ_RING: i64 = 0x800_0000;
    const OFF_SQES: i64 = 0x1000_0000;
    const OP_SOCKET: u8 = 45;
    const ENTER_GETEVENTS: u32 = 1;

    let mut p = Params::default();
    // SAFETY: `p` is a live io_uring_params the kernel fills in.
    let fd = unsafe { libc::syscall(SETUP, 1u32, &mut p as *mut Params) };
    if fd < 0 {
        return last_error_as_ret(-1);
    }
    let fd = fd as i32;
    let map = |len: usize, offset: i64| -> Option<*mut u8> {
        // SAFETY: a fresh shared mapping of the ring fd at one of io_uring's fixed offsets.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                offset,
            )
        };
        (ptr != libc::MAP_FAILED).then_some(ptr.cast::<u8>())
    };
    let sq_len = p.sq_off.array_or_flags as usize + p.sq_entries as usize * 4;
    let cq_len = p.cq_off.dropped_or_cqes as usize + p.cq_entries as usize * 16;
    let (Some(sq), Some(cq), Some(sqes)) = (
        map(sq_len, OFF_SQ_RING),
        map(cq_len, OFF_CQ_RING),
        map(p.sq_entries as usize * 64, OFF_SQES),
    ) else {
        // SAFETY: our ring fd.
        unsafe { libc::close(fd) };
        return -i64::from(libc::ENOMEM);
    };
    // SAFETY: every offset below comes from the kernel's io_uring_params for these mappings
    // (ring heads, tails, masks, the index array, the entries), which are at least that long;
    // the tail is published with a release store and the completion read after enter returns.
    let res = unsafe {
        use std::sync::atomic::{AtomicU32, Ordering};
        let sqe = sqes;
        std::ptr::write_bytes(sqe, 0, 64);
        *sqe = OP_SOCKET; // opcode
        sqe.add(4).cast::<i32>().write(family); // fd = domain
        sqe.add(8).cast::<u64>().write(libc::SOCK_STREAM as u64); // off = type
        sqe.add(24).cast::<u32>().write(0); // len = protocol
        let mask = *sq.add(p.sq_off.ring_mask as usize).cast::<u32>();
        let tail = &*sq.add(p.sq_off.tail as usize).cast::<AtomicU32>();
        let t = tail.load(Ordering::Acquire);
        sq.add(p.sq_off.array_or_flags as usize)
            .cast::<u32>()
            .add((t & mask) as usize)
            .write(0);
        tail.store(t.wrapping_add(1), Ordering::Release);
        let entered = libc::syscall(ENTER, fd, 1u32, 1u32, ENTER_GETEVENTS, 0usize, 0usize);
        if entered < 0 {
            last_error_as_ret(-1)
        } else {
            let head =
                (*cq.add(p.cq_off.head as usize).cast::<AtomicU32>()).load(Ordering::Acquire);
            let cmask = *cq.add(p.cq_off.ring_mask as usize).cast::<u32>();
            let cqe = cq
                .add(p.cq_off.dropped_or_cqes as usize)
                .add((head & cmask) as usize * 16);
            i64::from(cqe.add(8).cast::<i32>().read())
        }
    };
    // SAFETY: the mappings made above, and our ring fd; nothing refers to them any more.
    unsafe {
        libc::munmap(sq.cast(), sq_len);
        libc::munmap(cq.cast(), cq_len);
        libc::munmap(sqes.cast(), p.sq_entries as usize * 64);
        libc::close(fd);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_with_ports_and_scopes_parse() {
        assert_eq!(
            parse_sockaddr("10.0.0.1:80").ok(),
            Some("10.0.0.1:80".parse().unwrap_or_else(|_| unreachable!()))
        );
        assert_eq!(
            parse_sockaddr("[2001:db8::1]:443").map(|a| a.to_string()),
            Ok("[2001:db8::1]:443".to_string())
        );
        assert_eq!(
            parse_sockaddr("[fe80::1%7]:80").map(|a| a.to_string()),
            Ok("[fe80::1%7]:80".to_string())
        );
        assert!(
            parse_sockaddr("2001:db8::1:80").is_err(),
            "IPv6 needs brackets"
        );
        assert!(parse_sockaddr("10.0.0.1").is_err());
        assert!(parse_sockaddr("[fe80::1%nosuchif0]:80").is_err());
    }

    #[test]
    fn socket_errors_map_to_results() {
        let e = |n| io::Error::from_raw_os_error(n);
        assert_eq!(classify(&e(libc::ECONNREFUSED)), "refused");
        for n in [
            libc::EPERM,
            libc::EACCES,
            libc::EHOSTUNREACH,
            libc::ENETUNREACH,
        ] {
            assert_eq!(classify(&e(n)), "blocked");
        }
        assert_eq!(
            classify(&io::Error::from(io::ErrorKind::TimedOut)),
            "timeout"
        );
        assert_eq!(classify(&e(libc::EINVAL)), "error");
    }

    #[test]
    fn dns_answers_are_parsed_from_a_compressed_response() {
        let mut msg = dns_query(0x1234, "public.lab.", 1);
        msg[2] = 0x81; // response
        msg[7] = 2; // two answers
        for ip in [[198, 51, 100, 10], [198, 51, 100, 11]] {
            msg.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
            msg.extend_from_slice(&ip);
        }
        let (rcode, answers) = dns_parse(&msg, 0x1234).unwrap_or_default();
        assert_eq!(rcode, 0);
        assert_eq!(answers, ["198.51.100.10", "198.51.100.11"]);
        assert!(
            dns_parse(&msg, 0x4321).is_none(),
            "another query's answer is ignored"
        );
    }

    #[test]
    fn probe_args_in_urls_are_decoded() {
        assert_eq!(url_decode("tcp+10.0.0.1:80"), "tcp 10.0.0.1:80");
        assert_eq!(url_decode("tcp%20%5Bfd00::1%5D:80"), "tcp [fd00::1]:80");
        assert_eq!(url_decode("100%"), "100%");
    }
}
