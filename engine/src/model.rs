//! Values shared by the engine's stages: the Rust twins of `tlspcap.capture.model` and
//! `tlspcap.anomaly.Anomaly`. Every field mirrors the Python one of the same name, so the
//! bindings can hand Python values equal to what the pure-Python path makes.

use std::sync::Arc;

/// TCP flag bits as in the TCP header's flags byte.
pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;

/// A named oddity of the capture (`tlspcap.anomaly.Anomaly`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anomaly {
    pub name: String,
    /// 1-based frame number, when there is one.
    pub frame: Option<u64>,
    pub detail: String,
}

impl Anomaly {
    pub fn new(name: &str, frame: Option<u64>, detail: impl Into<String>) -> Self {
        Anomaly {
            name: name.to_string(),
            frame,
            detail: detail.into(),
        }
    }
}

/// One packet record of a capture file before decoding (`tlspcap.capture.model.Packet`).
/// `data` borrows the reader's buffer: it is valid until the next read.
#[derive(Debug, Clone, Copy)]
pub struct RawPacket<'a> {
    pub frame: u64,
    /// Seconds since the epoch, computed exactly as the Python reader computes it.
    pub ts: f64,
    pub linktype: u32,
    pub data: &'a [u8],
    pub orig_len: u64,
}

/// A decoded TCP segment (`tlspcap.capture.model.TcpSegment`).
#[derive(Debug, Clone, PartialEq)]
pub struct TcpSegment {
    pub frame: u64,
    pub ts: f64,
    /// Packed address: 4 bytes (IPv4) or 16 (IPv6).
    pub src: Vec<u8>,
    pub sport: u16,
    pub dst: Vec<u8>,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub payload: Vec<u8>,
    pub missing: u64,
    /// -1 when unknown.
    pub ttl: i32,
    /// -1 when there is none.
    pub ip_id: i64,
    pub window: u16,
    pub options: Vec<u8>,
    /// The encapsulation, outermost first; one shared `Arc` per distinct tunnel string.
    pub tunnel: Option<Arc<str>>,
    pub fragments: u32,
}

/// An ICMP/ICMPv6 error quoting a TCP header (`tlspcap.capture.model.IcmpError`).
#[derive(Debug, Clone, PartialEq)]
pub struct IcmpError {
    pub frame: u64,
    pub ts: f64,
    pub version: u8,
    pub icmp_type: u8,
    pub code: u8,
    pub router: Vec<u8>,
    pub ttl: i32,
    pub src: Vec<u8>,
    pub sport: u16,
    pub dst: Vec<u8>,
    pub dport: u16,
    pub seq: u32,
    pub mtu: Option<u32>,
    pub tunnel: Option<Arc<str>>,
}

/// What decoding one packet produced, in the order the Python decoder produces it (an ICMP
/// error is reported through `on_icmp` while the packet is decoded, before any segment).
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    Segment(TcpSegment),
    Icmp(IcmpError),
}
