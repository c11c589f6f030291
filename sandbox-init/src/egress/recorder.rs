//! The record as the DNS gate keeps it: the NFLOG socket it reads refused packets from, the
//! reasons, the aggregation, and where each line goes (the file and the log). The gate calls
//! it from its one `poll` loop: [`Recorder::fd`] is polled, [`Recorder::read`] when readable,
//! [`Recorder::tick`] at [`Recorder::next_due`], [`Recorder::stop`] when told to stop.

use super::dir;
use super::nflog::{self, Message};
use super::packet::{self, Proto};
use super::reason::{Reasons, NOT_ALLOWLISTED};
use super::record::{Key, Record};
use crate::firewall::plan::{NFLOG_GROUP, NFLOG_SIZE};
use crate::log::Log;
use crate::sys::{Errno, Netlink};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Datagrams read per turn at most, so a flood of refusals cannot starve DNS; the rest wait
/// in the socket (and what overflows it is lost, and said so).
const BATCH: usize = 64;
/// Datagrams read at most when the gate stops: whatever the socket still holds (its buffer
/// holds a few thousand), bounded so that nothing can keep the gate from ending.
const DRAIN: usize = 1 << 16;
/// The NFLOG socket's receive buffer: each waiting packet takes about 1 KiB of it.
const RECV_BUFFER: libc::c_int = 4 << 20;
/// One datagram: a few packet messages of [`NFLOG_SIZE`] bytes each.
const DATAGRAM: usize = 8192;

/// What the recorder needs from the boot.
#[derive(Debug, Clone)]
pub struct RecordConfig {
    /// The record file (`None`: the directory could not be made; the lines go to stderr only).
    pub file: Option<PathBuf>,
    pub reasons: Reasons,
}

/// The gate's record.
#[derive(Debug)]
pub struct Recorder {
    socket: Option<Netlink>,
    reasons: Reasons,
    record: Record,
    file: Option<File>,
    log: Log,
    /// Datagrams the kernel dropped (a full socket buffer) were reported once already.
    lost_reported: bool,
}

impl Recorder {
    /// Opens the record file, as the gate (after its drop: the file is the gate's), and reads
    /// refused packets from `socket` ([`bind`], done by PID 1 before the agent exists). What
    /// fails is a warning: the gate still answers DNS, and what is refused is still refused.
    pub fn open(config: RecordConfig, socket: Option<Netlink>, log: Log) -> Self {
        let file = config.file.and_then(|path| match dir::open_record(&path) {
            Ok(file) => Some(file),
            Err(e) => {
                log.warn(&format!(
                    "egress: failed to open {}: {e}: the record goes to the log only",
                    path.display()
                ));
                None
            }
        });
        Recorder {
            socket,
            reasons: config.reasons,
            record: Record::default(),
            file,
            log,
            lost_reported: false,
        }
    }

    /// The socket to poll, if the group is bound.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.socket.as_ref().map(AsFd::as_fd)
    }

    /// Reads what the kernel sent (a bounded batch) into the record.
    pub fn read(&mut self, now: Instant) {
        self.read_at_most(BATCH, now);
    }

    fn read_at_most(&mut self, datagrams: usize, now: Instant) {
        let mut buf = vec![0u8; DATAGRAM];
        for _ in 0..datagrams {
            let Some(socket) = &self.socket else { return };
            let len = match socket.recv(&mut buf) {
                Ok(len) => len,
                Err(Errno(libc::EAGAIN)) => return,
                Err(Errno(libc::EINTR)) => continue,
                Err(Errno(libc::ENOBUFS)) => {
                    if !self.lost_reported {
                        self.lost_reported = true;
                        self.log.warn(
                            "egress: refusals came faster than they could be read: some are not counted",
                        );
                    }
                    continue;
                }
                Err(e) => {
                    self.log.warn(&format!(
                        "egress: failed to read refused connections: {e}: no longer recording them"
                    ));
                    self.socket = None;
                    return;
                }
            };
            let datagram = buf.get(..len).unwrap_or_default();
            let packets: Vec<packet::Packet> = nflog::parse(datagram)
                .into_iter()
                .filter_map(|m| match m {
                    Message::Packet { payload, .. } => packet::parse(payload),
                    _ => None,
                })
                .filter(|p| !p.membership)
                .collect();
            for p in packets {
                let key = Key::Connection {
                    proto: p.proto,
                    dest: p.dest.to_string(),
                    port: match p.proto {
                        Proto::Tcp | Proto::Udp => p.dest_port,
                        _ => None,
                    },
                };
                let reason = self.reasons.of(&p);
                self.note(key, &reason, now);
            }
        }
    }

    /// A name the gate refused.
    pub fn name_refused(&mut self, name: &str, now: Instant) {
        self.note(Key::Name(name.to_owned()), NOT_ALLOWLISTED, now);
    }

    /// When [`Recorder::tick`] has a held-back line to write.
    pub fn next_due(&self) -> Option<Instant> {
        self.record.next_due()
    }

    /// Writes the held-back lines that are due.
    pub fn tick(&mut self, now: Instant) {
        for line in self.record.due(now) {
            self.write(&line);
        }
    }

    /// The gate is stopping: what the kernel still holds, then every held-back line.
    pub fn stop(&mut self) {
        let now = Instant::now();
        self.read_at_most(DRAIN, now);
        for line in self.record.flush(now) {
            self.write(&line);
        }
    }

    fn note(&mut self, key: Key, reason: &str, now: Instant) {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if let Some(line) = self.record.note(key, reason, unix, now) {
            self.write(&line);
        }
    }

    /// One line to the file (one `write`, appended) and to the log.
    fn write(&mut self, line: &str) {
        self.log.egress(line);
        let Some(file) = &mut self.file else { return };
        if let Err(e) = file.write_all(format!("{line}\n").as_bytes()) {
            self.log.warn(&format!(
                "egress: failed to write the record: {e}: it goes to the log only from now on"
            ));
            self.file = None;
        }
    }
}

/// The NFLOG socket bound to [`NFLOG_GROUP`], copying [`NFLOG_SIZE`] bytes of each packet;
/// the kernel's acknowledgements checked. Made by PID 1 (binding needs CAP_NET_ADMIN) before
/// the agent is started, so its very first refused packet is recorded, and handed to the gate
/// like the gate's DNS sockets. `None`, with a warning, when the kernel refuses.
pub fn bind(log: &Log) -> Option<Netlink> {
    match bind_group() {
        Ok(socket) => Some(socket),
        Err(e) => {
            log.warn(&format!(
                "egress: failed to read refused connections (NFLOG group {NFLOG_GROUP}): {e}: \
                 they are refused but not recorded"
            ));
            None
        }
    }
}

fn bind_group() -> Result<Netlink, String> {
    let socket = Netlink::netfilter().map_err(|e| format!("socket: {e}"))?;
    // Room for a burst while the gate is busy (a few thousand refused packets); memory is
    // only taken while packets wait. Too small a buffer only loses counts, so no error.
    let _ = socket.set_recv_buffer(RECV_BUFFER);
    for message in nflog::bind_messages(NFLOG_GROUP, NFLOG_SIZE) {
        socket.send(&message).map_err(|e| format!("send: {e}"))?;
    }
    // The kernel handles a netlink request as it is sent: its acknowledgements are queued.
    let mut buf = vec![0u8; DATAGRAM];
    let mut acks = 0;
    while acks < 2 {
        let len = match socket.recv(&mut buf) {
            Ok(len) => len,
            Err(Errno(libc::EINTR)) => continue,
            Err(Errno(libc::EAGAIN)) => break,
            Err(e) => return Err(format!("receive: {e}")),
        };
        for message in nflog::parse(buf.get(..len).unwrap_or_default()) {
            if let Message::Ack { errno, .. } = message {
                acks += 1;
                if errno != 0 {
                    return Err(Errno(errno).to_string());
                }
            }
        }
    }
    Ok(socket)
}
