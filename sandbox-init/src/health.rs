//! `--health`: the container's health check.
//!
//! The engine runs a health check as the container's user — root, with the container's
//! capabilities, in the working directory, which is the agent's project. So this mode first
//! drops to the agent exactly as the boot drops the agent ([`privilege::ready_to_drop`],
//! [`privilege::drop_agent`]; then not dumpable), and only then talks to the agent's server:
//! `GET /global/health` on `127.0.0.1:PORT`, Basic auth from `$OPENCODE_SERVER_USERNAME`
//! (default `opencode`) and `$OPENCODE_SERVER_PASSWORD`, all within [`BOUND`]. The server is the
//! agent's, so its answer is hostile: at most [`MAX_STATUS_LINE`] bytes are read, and only the
//! status line is looked at. No other program runs, no `PATH` is searched, nothing is read from
//! the working directory. Exit 0 on `HTTP/1.x 200`, else 1 with one line on stderr saying why.

use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::cli::HealthArgs;
use crate::exit;
use crate::log::Log;
use crate::policy::{self, PolicyError};
use crate::privilege::{self, DropFailure, PrivilegeError};
use crate::sys::{self, Errno, Sys};

/// The path asked.
pub(crate) const HEALTH_PATH: &str = "/global/health";
/// Everything (connect, send, answer) within this.
pub(crate) const BOUND: Duration = Duration::from_secs(2);
/// At most this much of the answer is read: a status line fits.
pub(crate) const MAX_STATUS_LINE: usize = 256;
/// The user name when `$OPENCODE_SERVER_USERNAME` is unset or empty (OpenCode's default).
pub(crate) const DEFAULT_USER: &str = "opencode";

/// Why the check says "not healthy" (exit 1).
#[derive(Debug, thiserror::Error)]
pub(crate) enum HealthError {
    #[error("failed to load the policy: {0}")]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Privilege(#[from] PrivilegeError),
    #[error("failed to {}: {}", .0.step.describe(), .0.errno)]
    Drop(DropFailure),
    #[error("failed to make the health check not dumpable: {0}")]
    Dumpable(Errno),
    #[error("failed to connect to {addr}: {cause}")]
    Connect { addr: SocketAddr, cause: Cause },
    #[error("failed to send GET {HEALTH_PATH} to {addr}: {cause}")]
    Send { addr: SocketAddr, cause: Cause },
    #[error("failed to read the answer of {addr}: {cause}")]
    Receive { addr: SocketAddr, cause: Cause },
    #[error("failed to get an answer from {addr} within {} s", BOUND.as_secs())]
    TimedOut { addr: SocketAddr },
    #[error("failed to read an HTTP status line from {addr}: got {got:?}")]
    Malformed { addr: SocketAddr, got: String },
    #[error("failed the health check: GET {HEALTH_PATH} on {addr} answered {line:?}")]
    Status { addr: SocketAddr, line: String },
}

/// An I/O error, worded like every other message (`connection refused`, no errno suffix).
#[derive(Debug)]
pub(crate) struct Cause(io::Error);

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.raw_os_error() {
            Some(errno) => write!(f, "{}", Errno(errno)),
            None => write!(f, "{}", self.0),
        }
    }
}

/// `sandbox-init --health`: returns the exit code (0 healthy, 1 not).
pub fn main(args: &HealthArgs, log: &Log) -> i32 {
    match run(
        args,
        &sys::RealSys,
        Path::new("/proc/sys/kernel/cap_last_cap"),
    ) {
        Ok(()) => exit::SUCCESS,
        Err(e) => {
            log.error(&e.to_string());
            exit::UNHEALTHY
        }
    }
}

fn run(args: &HealthArgs, sys: &impl Sys, cap_last_cap: &Path) -> Result<(), HealthError> {
    // The agent's ids come from the policy, as in the boot; read as root, before the drop.
    let policy = policy::load(&args.config_dir)?;
    let ready = privilege::ready_to_drop(sys, policy.agent.uid, policy.agent.gid, cap_last_cap)?;
    drop(policy);
    // The boot's own drop of the agent, applied to this process: from here on it is the agent
    // (uid/gid, no groups, no capability in any set, no_new_privs).
    privilege::drop_agent(sys, &ready.agent_drop()).map_err(HealthError::Drop)?;
    sys.set_not_dumpable().map_err(HealthError::Dumpable)?;
    // Only now the agent's server.
    let user = std::env::var_os("OPENCODE_SERVER_USERNAME").filter(|u| !u.is_empty());
    let password = std::env::var_os("OPENCODE_SERVER_PASSWORD").unwrap_or_default();
    let request = request(
        args.port,
        user.as_deref().unwrap_or(OsStr::new(DEFAULT_USER)),
        &password,
    );
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
    ask(addr, &request, BOUND)
}

/// The request: HTTP/1.0, so the server closes the connection after its answer.
pub(crate) fn request(port: u16, user: &OsStr, password: &OsStr) -> Vec<u8> {
    let mut credentials = user.as_bytes().to_vec();
    credentials.push(b':');
    credentials.extend_from_slice(password.as_bytes());
    format!(
        "GET {HEALTH_PATH} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Basic {}\r\n\
         Connection: close\r\n\r\n",
        base64(&credentials)
    )
    .into_bytes()
}

/// Standard base64 with padding (RFC 4648), for the Basic credentials.
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The status code of an answer's first line (`HTTP/1.x DDD ...`), from a bounded prefix of
/// the answer; `None` when it is not one.
pub(crate) fn status_code(prefix: &[u8]) -> Option<u16> {
    let line = status_line(prefix);
    let rest = line.strip_prefix(b"HTTP/1.")?;
    let (version, rest) = rest.split_first()?;
    if !version.is_ascii_digit() {
        return None;
    }
    let rest = rest.strip_prefix(b" ")?;
    let (code, after) = rest.split_at_checked(3)?;
    if !code.iter().all(u8::is_ascii_digit) || !(after.is_empty() || after[0] == b' ') {
        return None;
    }
    std::str::from_utf8(code).ok()?.parse().ok()
}

/// The first line of `prefix`, without its line end.
fn status_line(prefix: &[u8]) -> &[u8] {
    let end = prefix
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(prefix.len());
    let line = &prefix[..end];
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Connects, sends `request` and reads at most [`MAX_STATUS_LINE`] bytes of the answer, all
/// within `bound`; healthy on a 200 status line.
pub(crate) fn ask(addr: SocketAddr, request: &[u8], bound: Duration) -> Result<(), HealthError> {
    let deadline = Instant::now() + bound;
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or(HealthError::TimedOut { addr })
    };
    let timed_out = |e: &io::Error| {
        matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        )
    };
    let mut stream = TcpStream::connect_timeout(&addr, left()?).map_err(|source| {
        if timed_out(&source) {
            HealthError::TimedOut { addr }
        } else {
            HealthError::Connect {
                addr,
                cause: Cause(source),
            }
        }
    })?;
    stream
        .set_write_timeout(Some(left()?))
        .map_err(|source| HealthError::Send {
            addr,
            cause: Cause(source),
        })?;
    stream.write_all(request).map_err(|source| {
        if timed_out(&source) {
            HealthError::TimedOut { addr }
        } else {
            HealthError::Send {
                addr,
                cause: Cause(source),
            }
        }
    })?;
    let mut buf = [0u8; MAX_STATUS_LINE];
    let mut len = 0;
    while len < buf.len() && !buf[..len].contains(&b'\n') {
        stream
            .set_read_timeout(Some(left()?))
            .map_err(|source| HealthError::Receive {
                addr,
                cause: Cause(source),
            })?;
        match stream.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if timed_out(&e) => return Err(HealthError::TimedOut { addr }),
            Err(source) => {
                return Err(HealthError::Receive {
                    addr,
                    cause: Cause(source),
                })
            }
        }
    }
    let got = &buf[..len];
    let shown = || String::from_utf8_lossy(status_line(got)).into_owned();
    match status_code(got) {
        Some(200) => Ok(()),
        Some(_) => Err(HealthError::Status {
            addr,
            line: shown(),
        }),
        None => Err(HealthError::Malformed { addr, got: shown() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::privilege::double::RecordingSys;
    use std::net::TcpListener;

    #[test]
    fn base64_matches_rfc_4648() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            ("opencode:s3cr3t", "b3BlbmNvZGU6czNjcjN0"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain}");
        }
    }

    #[test]
    fn the_request_carries_basic_auth() {
        let req = request(4096, OsStr::new("opencode"), OsStr::new("s3cr3t"));
        assert_eq!(
            String::from_utf8(req).expect("ascii"),
            "GET /global/health HTTP/1.0\r\nHost: 127.0.0.1:4096\r\n\
             Authorization: Basic b3BlbmNvZGU6czNjcjN0\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn only_a_well_formed_status_line_counts() {
        assert_eq!(
            status_code(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"),
            Some(200)
        );
        assert_eq!(status_code(b"HTTP/1.0 200\r\n"), Some(200));
        assert_eq!(status_code(b"HTTP/1.1 200"), Some(200));
        assert_eq!(
            status_code(b"HTTP/1.1 500 Internal Server Error\r\n"),
            Some(500)
        );
        assert_eq!(status_code(b"HTTP/1.1 401 Unauthorized\n"), Some(401));
        for bad in [
            &b""[..],
            b"HTTP/1.1",
            b"HTTP/1.1 20",
            b"HTTP/1.1 2000 OK\r\n",
            b"HTTP/2 200\r\n",
            b"HTTP/1.x 200\r\n",
            b"SSH-2.0-OpenSSH\r\n",
            b"\r\nHTTP/1.1 200 OK\r\n",
            b"HTTP/1.1  200 OK\r\n",
            b"HTTP/1.1 +200 OK\r\n",
        ] {
            assert_eq!(status_code(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    /// A one-shot server on the test's loopback (no other address: the request never leaves
    /// the machine) that answers `answer` after reading the request.
    fn serve(answer: &'static [u8]) -> (SocketAddr, std::thread::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let addr = listener.local_addr().expect("addr");
        let handle = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().expect("accept");
            let mut req = vec![0u8; 1024];
            let n = conn.read(&mut req).unwrap_or(0);
            req.truncate(n);
            let _ = conn.write_all(answer);
            req
        });
        (addr, handle)
    }

    #[test]
    fn a_200_is_healthy_and_anything_else_says_why() {
        let req = request(1, OsStr::new("u"), OsStr::new("p"));
        let (addr, server) = serve(b"HTTP/1.1 200 OK\r\n\r\n{\"healthy\":true}");
        ask(addr, &req, BOUND).expect("healthy");
        assert!(server
            .join()
            .expect("server")
            .starts_with(b"GET /global/health HTTP/1.0\r\n"));

        let (addr, server) = serve(b"HTTP/1.1 500 Internal Server Error\r\n\r\n");
        let e = ask(addr, &req, BOUND).expect_err("500");
        let _ = server.join();
        assert_eq!(
            e.to_string(),
            format!(
                "failed the health check: GET /global/health on {addr} answered \
                 \"HTTP/1.1 500 Internal Server Error\""
            )
        );
    }

    #[test]
    fn a_hostile_server_gets_a_bounded_read_and_the_bound() {
        let req = request(1, OsStr::new("u"), OsStr::new("p"));
        // Megabytes without a line end: only MAX_STATUS_LINE bytes are read.
        static FLOOD: [u8; 1 << 20] = [b'A'; 1 << 20];
        let (addr, server) = serve(&FLOOD);
        let e = ask(addr, &req, BOUND).expect_err("no status line");
        let _ = server.join();
        assert!(
            matches!(&e, HealthError::Malformed { got, .. } if got.len() == MAX_STATUS_LINE),
            "{e}"
        );
        // A server that accepts and never answers: the bound ends it.
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let addr = listener.local_addr().expect("addr");
        let e = ask(addr, &req, Duration::from_millis(200)).expect_err("silent");
        assert!(matches!(e, HealthError::TimedOut { .. }), "{e}");
        drop(listener);
    }

    #[test]
    fn nothing_is_asked_before_the_drop_succeeded() {
        // A container without CAP_SETUID: the drop cannot happen, so no connection is made
        // (the port has no listener either way; the error says which step stopped it).
        let dir = tempfile::tempdir().expect("tempdir");
        let last = dir.path().join("cap_last_cap");
        std::fs::write(&last, "40\n").expect("write");
        let sys =
            RecordingSys::with_caps(crate::privilege::double::ALL & !sys::cap_bit(sys::CAP_SETUID));
        let args = HealthArgs {
            config_dir: dir.path().join("no-config"),
            port: 1,
        };
        let e = run(&args, &sys, &last).expect_err("no drop");
        assert!(
            e.to_string().contains("the container lacks CAP_SETUID"),
            "{e}"
        );
    }
}
