//! A netfilter netlink socket (`AF_NETLINK`, `NETLINK_NETFILTER`): what the DNS gate reads the
//! refused packets from (NFLOG). The messages are built and parsed by `egress::nflog` (pure);
//! here only the socket, sending to the kernel and receiving.

use super::{check_int, Errno};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// A non-blocking, close-on-exec netlink socket of the netfilter family, bound to the kernel
/// (no multicast groups: NFLOG sends to the socket that bound its group).
#[derive(Debug)]
pub struct Netlink(OwnedFd);

impl AsFd for Netlink {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

fn kernel() -> libc::sockaddr_nl {
    // SAFETY: sockaddr_nl is plain old data; all-zero is valid (pid 0 = the kernel, no groups).
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    addr
}

const ADDR_LEN: libc::socklen_t = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;

impl Netlink {
    /// The socket, bound (the kernel picks our port id).
    pub fn netfilter() -> Result<Self, Errno> {
        // SAFETY: integer arguments only.
        let fd = check_int(unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                libc::NETLINK_NETFILTER,
            )
        })?;
        // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
        let socket = Netlink(unsafe { OwnedFd::from_raw_fd(fd) });
        let addr = kernel();
        // SAFETY: `addr` is a live sockaddr_nl of `ADDR_LEN` bytes; the socket is open.
        check_int(unsafe {
            libc::bind(
                socket.0.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                ADDR_LEN,
            )
        })?;
        Ok(socket)
    }

    /// Asks for a receive buffer of `bytes` (`SO_RCVBUFFORCE`, which needs CAP_NET_ADMIN and
    /// passes `rmem_max`; plain `SO_RCVBUF`, capped by `rmem_max`, where that is refused).
    pub fn set_recv_buffer(&self, bytes: libc::c_int) -> Result<(), Errno> {
        self.set_buffer(libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, bytes)
    }

    /// Asks for a send buffer of `bytes`, the largest datagram the socket sends
    /// (`SO_SNDBUFFORCE`, else `SO_SNDBUF`): an nf_tables transaction is one datagram.
    pub fn set_send_buffer(&self, bytes: libc::c_int) -> Result<(), Errno> {
        self.set_buffer(libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, bytes)
    }

    fn set_buffer(
        &self,
        force: libc::c_int,
        plain: libc::c_int,
        bytes: libc::c_int,
    ) -> Result<(), Errno> {
        let set = |option| {
            // SAFETY: `bytes` is a live c_int and its exact size is passed; the socket is open.
            check_int(unsafe {
                libc::setsockopt(
                    self.0.as_raw_fd(),
                    libc::SOL_SOCKET,
                    option,
                    (&bytes as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            })
        };
        set(force).or_else(|_| set(plain)).map(drop)
    }

    /// Sends one message to the kernel.
    pub fn send(&self, message: &[u8]) -> Result<(), Errno> {
        let addr = kernel();
        // SAFETY: `message` is a live slice of `message.len()` bytes and `addr` a live
        // sockaddr_nl of `ADDR_LEN` bytes, both only read by the kernel.
        let sent = unsafe {
            libc::sendto(
                self.0.as_raw_fd(),
                message.as_ptr().cast(),
                message.len(),
                0,
                (&addr as *const libc::sockaddr_nl).cast(),
                ADDR_LEN,
            )
        };
        if sent < 0 {
            return Err(Errno::last());
        }
        Ok(())
    }

    /// Receives one datagram into `buf`; `EAGAIN` when none is waiting, `ENOBUFS` when the
    /// kernel dropped messages because the socket's buffer was full (the socket stays usable).
    pub fn recv(&self, buf: &mut [u8]) -> Result<usize, Errno> {
        // SAFETY: `buf` is a live, writable slice of `buf.len()` bytes.
        let n = unsafe { libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(Errno::last());
        }
        Ok(n as usize)
    }
}
