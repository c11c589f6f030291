//! The nfnetlink_log protocol (NFLOG), pure: the configuration messages that make the kernel
//! copy packets of one group to our socket, and the parser of what it sends back. The socket
//! itself is `sys::netlink`. Layouts: linux/netlink.h, linux/netfilter/nfnetlink.h,
//! linux/netfilter/nfnetlink_log.h. The messages come from the kernel; the packets they carry
//! are the agent's and go to `packet.rs`.

/// `NFNL_SUBSYS_ULOG`: the subsystem of nfnetlink_log.
const SUBSYS_ULOG: u16 = 4;
/// `NFULNL_MSG_PACKET`, `NFULNL_MSG_CONFIG`.
const MSG_PACKET: u16 = 0;
const MSG_CONFIG: u16 = 1;
/// `NLMSG_ERROR` (also the acknowledgement, with error 0), `NLMSG_DONE`.
const NLMSG_ERROR: u16 = 2;
/// `NLM_F_REQUEST | NLM_F_ACK`.
const REQUEST_ACK: u16 = 0x1 | 0x4;
/// Configuration attributes: `NFULA_CFG_CMD`, `NFULA_CFG_MODE`, `NFULA_CFG_NLBUFSIZ`,
/// `NFULA_CFG_QTHRESH`.
const CFG_CMD: u16 = 1;
const CFG_MODE: u16 = 2;
const CFG_NLBUFSIZ: u16 = 3;
const CFG_QTHRESH: u16 = 5;
/// The kernel's buffer per message batch: one packet of ours (128 bytes and the attributes)
/// fits, and a waiting message takes ~1 KiB of our receive buffer instead of a page.
const NLBUFSIZ: u32 = 512;
/// `NFULNL_CFG_CMD_BIND`.
const CMD_BIND: u8 = 1;
/// `NFULNL_COPY_PACKET`.
const COPY_PACKET: u8 = 2;
/// `NFULA_PAYLOAD`: the packet, from its network header on.
const ATTR_PAYLOAD: u16 = 9;
/// The attribute type without `NLA_F_NESTED` and `NLA_F_NET_BYTEORDER`.
const ATTR_TYPE_MASK: u16 = 0x3fff;

const NLMSG_HDRLEN: usize = 16;
const NFGENMSG_LEN: usize = 4;

/// One message the kernel sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// A logged packet: its address family (`AF_INET`, `AF_INET6`) and its bytes as copied.
    Packet { family: u8, payload: &'a [u8] },
    /// The answer to configuration message `seq`: 0 for success, else a positive errno.
    Ack { seq: u32, errno: i32 },
    /// Anything else (skipped).
    Other,
}

fn align4(len: usize) -> usize {
    len.div_ceil(4) * 4
}

/// One configuration message for `group`: a netlink header, the nfgenmsg, the attributes.
fn config(seq: u32, group: u16, attrs: &[(u16, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    // nfgenmsg: family AF_UNSPEC (a group serves both families), version 0, the group.
    body.extend_from_slice(&[0, 0]);
    body.extend_from_slice(&group.to_be_bytes());
    for (kind, value) in attrs {
        let len = 4 + value.len();
        body.extend_from_slice(&(len as u16).to_ne_bytes());
        body.extend_from_slice(&kind.to_ne_bytes());
        body.extend_from_slice(value);
        body.resize(align4(body.len()), 0);
    }
    let mut msg = Vec::with_capacity(NLMSG_HDRLEN + body.len());
    msg.extend_from_slice(&((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
    msg.extend_from_slice(&(SUBSYS_ULOG << 8 | MSG_CONFIG).to_ne_bytes());
    msg.extend_from_slice(&REQUEST_ACK.to_ne_bytes());
    msg.extend_from_slice(&seq.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&body);
    msg
}

/// The messages that make the kernel send group `group`'s packets to our socket, each asking
/// for an acknowledgement (sequence numbers 1 and 2): bind the group (one reader per group;
/// `EBUSY` if another has it); then copy `size` bytes of each packet and send every packet at
/// once (queue threshold 1: the record sees a refusal right away, and nothing waits in the
/// kernel when the gate is stopped), in a small buffer ([`NLBUFSIZ`]).
pub fn bind_messages(group: u16, size: u16) -> Vec<Vec<u8>> {
    let mut mode = Vec::new();
    mode.extend_from_slice(&u32::from(size).to_be_bytes());
    mode.extend_from_slice(&[COPY_PACKET, 0]);
    vec![
        config(1, group, &[(CFG_CMD, &[CMD_BIND])]),
        config(
            2,
            group,
            &[
                (CFG_MODE, &mode),
                (CFG_NLBUFSIZ, &NLBUFSIZ.to_be_bytes()),
                (CFG_QTHRESH, &1u32.to_be_bytes()),
            ],
        ),
    ]
}

/// The messages in one datagram from the kernel, bounded by its length: a malformed one ends
/// the walk (the rest of that datagram is skipped).
pub fn parse(datagram: &[u8]) -> Vec<Message<'_>> {
    let mut messages = Vec::new();
    let mut rest = datagram;
    while let Some(header) = rest.first_chunk::<NLMSG_HDRLEN>() {
        let len = u32::from_ne_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let Some(msg) = rest.get(..len).filter(|_| len >= NLMSG_HDRLEN) else {
            break;
        };
        let kind = u16::from_ne_bytes([header[4], header[5]]);
        let seq = u32::from_ne_bytes([header[8], header[9], header[10], header[11]]);
        let body = &msg[NLMSG_HDRLEN..];
        messages.push(match kind {
            NLMSG_ERROR => match body.first_chunk::<4>() {
                Some(e) => Message::Ack {
                    seq,
                    errno: i32::from_ne_bytes(*e).saturating_neg(),
                },
                None => Message::Other,
            },
            k if k == SUBSYS_ULOG << 8 | MSG_PACKET => packet(body),
            _ => Message::Other,
        });
        rest = rest.get(align4(len)..).unwrap_or_default();
    }
    messages
}

/// A `NFULNL_MSG_PACKET` body: the family, then the payload attribute among the others.
fn packet(body: &[u8]) -> Message<'_> {
    let Some(&family) = body.first() else {
        return Message::Other;
    };
    let mut attrs = body.get(NFGENMSG_LEN..).unwrap_or_default();
    while let Some(head) = attrs.first_chunk::<4>() {
        let len = usize::from(u16::from_ne_bytes([head[0], head[1]]));
        let kind = u16::from_ne_bytes([head[2], head[3]]) & ATTR_TYPE_MASK;
        let Some(attr) = attrs.get(..len).filter(|_| len >= 4) else {
            break;
        };
        if kind == ATTR_PAYLOAD {
            return Message::Packet {
                family,
                payload: &attr[4..],
            };
        }
        attrs = attrs.get(align4(len)..).unwrap_or_default();
    }
    Message::Other
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A packet message as the kernel sends it: a prefix-like attribute first, then the payload.
    fn packet_message(family: u8, payload: &[u8]) -> Vec<u8> {
        let mut body = vec![family, 0, 0, 14];
        body.extend_from_slice(&8u16.to_ne_bytes());
        body.extend_from_slice(&1u16.to_ne_bytes()); // NFULA_PACKET_HDR, 4 bytes of value
        body.extend_from_slice(&[0x08, 0x00, 3, 0]);
        body.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
        body.extend_from_slice(&ATTR_PAYLOAD.to_ne_bytes());
        body.extend_from_slice(payload);
        body.resize(align4(body.len()), 0);
        let mut msg = ((16 + body.len()) as u32).to_ne_bytes().to_vec();
        msg.extend_from_slice(&(SUBSYS_ULOG << 8).to_ne_bytes());
        msg.extend_from_slice(&[0; 10]);
        msg.extend_from_slice(&body);
        msg
    }

    #[test]
    fn the_bind_messages_have_the_kernels_layout() {
        let [bind, mode] = &bind_messages(14, 128)[..] else {
            panic!("two messages");
        };
        // Header: length 28, type 0x0401, flags REQUEST|ACK, seq 1; nfgenmsg for group 14;
        // one attribute (length 5, type 1) holding CMD_BIND, padded.
        let mut want = 28u32.to_ne_bytes().to_vec();
        want.extend_from_slice(&0x0401u16.to_ne_bytes());
        want.extend_from_slice(&5u16.to_ne_bytes());
        want.extend_from_slice(&1u32.to_ne_bytes());
        want.extend_from_slice(&0u32.to_ne_bytes());
        want.extend_from_slice(&[0, 0, 0, 14]);
        want.extend_from_slice(&5u16.to_ne_bytes());
        want.extend_from_slice(&1u16.to_ne_bytes());
        want.extend_from_slice(&[1, 0, 0, 0]);
        assert_eq!(bind, &want);
        // The mode: copy_range 128 (big-endian), COPY_PACKET; the buffer 512; the queue
        // threshold 1.
        assert_eq!(mode.len(), 16 + 4 + 12 + 8 + 8);
        assert_eq!(&mode[24..30], &[0, 0, 0, 128, 2, 0]);
        assert_eq!(&mode[34..36], &CFG_NLBUFSIZ.to_ne_bytes());
        assert_eq!(&mode[36..40], &[0, 0, 2, 0]);
        assert_eq!(&mode[44..48], &[0, 0, 0, 1]);
    }

    #[test]
    fn packets_and_acks_are_read_from_one_datagram() {
        let mut datagram = packet_message(2, &[0x45, 1, 2]);
        datagram.extend(packet_message(10, &[0x60; 40]));
        let mut ack = 36u32.to_ne_bytes().to_vec();
        ack.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        ack.extend_from_slice(&[0, 0]);
        ack.extend_from_slice(&7u32.to_ne_bytes());
        ack.extend_from_slice(&[0; 4]);
        ack.extend_from_slice(&(-16i32).to_ne_bytes()); // -EBUSY
        ack.extend_from_slice(&[0; 16]);
        datagram.extend(&ack);
        assert_eq!(
            parse(&datagram),
            [
                Message::Packet {
                    family: 2,
                    payload: &[0x45, 1, 2]
                },
                Message::Packet {
                    family: 10,
                    payload: &[0x60; 40]
                },
                Message::Ack { seq: 7, errno: 16 },
            ]
        );
    }

    #[test]
    fn truncated_and_lying_lengths_end_the_walk_without_panic() {
        let whole = packet_message(2, &[0x45; 30]);
        for len in 0..whole.len() {
            let messages = parse(&whole[..len]);
            assert!(messages.len() <= 1, "length {len}");
        }
        let mut lying = whole.clone();
        lying[..4].copy_from_slice(&4000u32.to_ne_bytes());
        assert!(parse(&lying).is_empty());
        let mut tiny = whole;
        tiny[..4].copy_from_slice(&3u32.to_ne_bytes());
        assert!(parse(&tiny).is_empty(), "a length below the header");
        for byte in 0..=255u8 {
            let _ = parse(&[byte; 64]);
        }
    }
}
