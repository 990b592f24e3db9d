//! The layers under the link: VLAN tags, tunnels, IPv4/IPv6 (with reassembly), TCP, UDP, ICMP;
//! the port of `tlspcap.capture.layers.LayerDecoder`.
//!
//! Every method takes the packet's bytes `d`, an offset and `end`, where the enclosing payload
//! ends on the wire (beyond `d.len()` when the capture cut the frame), and returns the TCP
//! segment or `None` after counting why there is none. Positions are `usize`: they only grow
//! by header lengths from offsets inside `d`, and `end` is only compared and `min`-ed, so no
//! sum can overflow.

use std::borrow::Cow;

use super::bytes::{sl, u16_at, u32_at, u8_at, Addr};
use super::fragments::{
    FragKey, FragmentReassembler, FRAGMENT_TIMEOUT_V4, FRAGMENT_TIMEOUT_V6, MAX_PENDING_BYTES,
    MAX_PENDING_DATAGRAMS,
};
use super::icmp::parse_icmp_error;
use super::tally::{Qual, Tally};
use super::tunnels::{self as tun, Outcome, Part, TunnelNames};
use crate::model::{IcmpError, TcpSegment};

/// Encapsulations (tunnels, VLAN tags inside tunnels, IP reassemblies) decoded in one packet.
pub const MAX_DEPTH: u32 = 8;

pub const ETHERTYPE_IPV4: i32 = 0x0800;
pub const ETHERTYPE_IPV6: i32 = 0x86DD;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;

fn vlan_tpid(et: i32) -> bool {
    matches!(et, 0x8100 | 0x88A8 | 0x9100)
}

fn ipv6_ext8(nh: i32) -> bool {
    matches!(nh, 0 | 43 | 60 | 135 | 139 | 140)
}

fn s(q: &'static str) -> Qual {
    Qual::Str(Cow::Borrowed(q))
}

/// The state of one capture's decoding (per capture and per packet).
#[derive(Debug)]
pub struct Layers {
    pub tally: Tally,
    pub names: TunnelNames,
    pub frags4: FragmentReassembler,
    pub frags6: FragmentReassembler,
    // the packet being decoded
    pub frame: u64,
    pub ts: f64,
    pub orig_len: u64,
    tun: Vec<Part>,
    depth: u32,
    nfrag: u32,
    pub tunnelled: u64,
    pub tunnelled_first: u64,
    /// Ordinary UDP counted by the Ethernet fast path (merged into the tally at the end).
    pub udp_seen: u64,
    pub udp_seen_first: u64,
    /// The ICMP error heard while decoding the current packet (Python's `on_icmp` call).
    pub icmp: Option<IcmpError>,
}

impl Default for Layers {
    fn default() -> Self {
        Self::new()
    }
}

impl Layers {
    pub fn new() -> Self {
        Self::with_bounds(MAX_PENDING_DATAGRAMS, MAX_PENDING_BYTES)
    }

    /// `max_datagrams` and `max_bytes` bound the pending IP fragments per IP version.
    pub fn with_bounds(max_datagrams: usize, max_bytes: u64) -> Self {
        Layers {
            tally: Tally::default(),
            names: TunnelNames::default(),
            frags4: FragmentReassembler::new(4, FRAGMENT_TIMEOUT_V4, max_datagrams, max_bytes),
            frags6: FragmentReassembler::new(6, FRAGMENT_TIMEOUT_V6, max_datagrams, max_bytes),
            frame: 0,
            ts: 0.0,
            orig_len: 0,
            tun: Vec::new(),
            depth: 0,
            nfrag: 0,
            tunnelled: 0,
            tunnelled_first: 0,
            udp_seen: 0,
            udp_seen_first: 0,
            icmp: None,
        }
    }

    /// Start a packet: forget the tunnels and reassembly of the previous one.
    pub fn start(&mut self, frame: u64, ts: f64, orig_len: u64) {
        self.frame = frame;
        self.ts = ts;
        self.orig_len = orig_len;
        self.tun.clear();
        self.depth = 0;
        self.nfrag = 0;
    }

    pub fn note(&mut self, name: &'static str, q: Qual) {
        self.tally.note(name, q, self.frame);
    }

    // ---- layer 2 and tunnels ------------------------------------------------------------

    /// Decode the payload of EtherType `et` at `d[off]`, unwrapping VLAN tags.
    pub fn ethertype(
        &mut self,
        d: &[u8],
        mut et: i32,
        mut off: usize,
        end: usize,
    ) -> Option<TcpSegment> {
        loop {
            if et == ETHERTYPE_IPV4 {
                return self.ipv4(d, off, end);
            }
            if et == ETHERTYPE_IPV6 {
                return self.ipv6(d, off, end);
            }
            while vlan_tpid(et) {
                if d.len() < off + 4 {
                    self.note("truncated_header", s("VLAN tag"));
                    return None;
                }
                if !self.tun.is_empty() && !self.enter(Part::Vlan(u16_at(d, off) & 0xFFF)) {
                    return None;
                }
                et = u16_at(d, off + 2) as i32;
                off += 4;
            }
            if et == ETHERTYPE_IPV4 {
                return self.ipv4(d, off, end);
            }
            if et == ETHERTYPE_IPV6 {
                return self.ipv6(d, off, end);
            }
            if et == tun::IP_BY_VERSION {
                return self.ip_by_version(d, off, end);
            }
            if et == tun::ETHERNET {
                if d.len() < off + 14 {
                    self.note("truncated_header", s("inner Ethernet"));
                    return None;
                }
                // Python recurses into `_ethertype`; a loop is the same walk.
                et = u16_at(d, off + 12) as i32;
                off += 14;
                continue;
            }
            if et == tun::MPLS_UNICAST || et == tun::MPLS_MULTICAST {
                return self.decap(tun::parse_mpls(d, off, end), d);
            }
            if et == 0x8864 {
                return self.decap(tun::parse_pppoe(d, off, end), d);
            }
            let ordinary = match et {
                0x0806 => Some("ARP"),
                0x8035 => Some("RARP"),
                0x8863 => Some("PPPoE discovery"),
                _ => None,
            };
            match ordinary {
                Some(what) => self.tally.ordinary(what, self.frame),
                None => self.note("unknown_ethertype", Qual::Int(et as i64)),
            }
            return None;
        }
    }

    /// Go one encapsulation deeper; false (and counted) past [`MAX_DEPTH`].
    fn enter(&mut self, part: Part) -> bool {
        if self.depth >= MAX_DEPTH {
            self.note("tunnel_too_deep", Qual::Int(MAX_DEPTH as i64));
            return false;
        }
        self.depth += 1;
        self.tun.push(part);
        true
    }

    /// Continue after an encapsulation header, or count why not.
    fn decap(&mut self, r: Outcome, d: &[u8]) -> Option<TcpSegment> {
        match r {
            Outcome::Decap {
                ethertype,
                offset,
                end,
                part,
            } => {
                if !self.enter(part) {
                    return None;
                }
                self.ethertype(d, ethertype, offset, end)
            }
            Outcome::Problem(name, q) => {
                self.note(name, q);
                None
            }
            Outcome::Ordinary(what) => {
                self.tally.ordinary(what, self.frame);
                None
            }
        }
    }

    // ---- IP -------------------------------------------------------------------------------

    /// Decode an IP packet whose version nibble tells IPv4 from IPv6.
    pub fn ip_by_version(&mut self, d: &[u8], off: usize, end: usize) -> Option<TcpSegment> {
        if d.len() <= off {
            self.note("truncated_header", s("IP"));
            return None;
        }
        let version = u8_at(d, off) >> 4;
        match version {
            4 => self.ipv4(d, off, end),
            6 => self.ipv6(d, off, end),
            _ => {
                self.note(
                    "malformed_header",
                    Qual::Str(format!("IP header (version field {version})").into()),
                );
                None
            }
        }
    }

    /// Decode an IPv4 packet at `d[off]`; `end` bounds it.
    pub fn ipv4(&mut self, d: &[u8], off: usize, end: usize) -> Option<TcpSegment> {
        if d.len() < off + 20 {
            self.note("truncated_header", s("IPv4"));
            return None;
        }
        let vihl = u8_at(d, off);
        let total = u16_at(d, off + 2) as usize;
        let ident = u16_at(d, off + 4);
        let frag = u16_at(d, off + 6);
        let ttl = u8_at(d, off + 8);
        let proto = u8_at(d, off + 9);
        let src = Addr::at(d, off + 12, 4);
        let dst = Addr::at(d, off + 16, 4);
        let ihl = ((vihl & 15) as usize) << 2;
        if vihl >> 4 != 4 || ihl < 20 {
            let what = if vihl >> 4 != 4 {
                format!("version field {}", vihl >> 4)
            } else {
                format!("header length {ihl}")
            };
            self.note(
                "malformed_header",
                Qual::Str(format!("IPv4 header ({what})").into()),
            );
            return None;
        }
        let stop = if total == 0 {
            end // TCP segmentation offload: length left unset
        } else if total < ihl {
            self.note(
                "malformed_header",
                s("IPv4 header (total length below header length)"),
            );
            return None;
        } else {
            (off + total).min(end)
        };
        let (ttl, ident) = (ttl as i32, ident as i64);
        if frag & 0x3FFF != 0 {
            let header = FragmentHeader {
                version: 4,
                src,
                dst,
                key_proto: proto as i32,
                ident: ident as u32,
                offset: ((frag & 0x1FFF) as u64) << 3,
                more: frag & 0x2000 != 0,
                next: -1,
                hops: ttl,
            };
            return self.fragment(d, off + ihl, stop, header);
        }
        if proto == PROTO_TCP {
            return self.tcp(d, off + ihl, stop, src, dst, ttl, ident);
        }
        self.transport(d, off + ihl, stop, src, dst, proto as i32, ttl, ident, 4)
    }

    /// Decode an IPv6 packet at `d[off]`, skipping extension headers.
    pub fn ipv6(&mut self, d: &[u8], off: usize, end: usize) -> Option<TcpSegment> {
        if d.len() < off + 40 {
            self.note("truncated_header", s("IPv6"));
            return None;
        }
        let vtcfl = u32_at(d, off);
        let plen = u16_at(d, off + 4) as usize;
        let nh = u8_at(d, off + 6);
        let hlim = u8_at(d, off + 7) as i32;
        let src = Addr::at(d, off + 8, 16);
        let dst = Addr::at(d, off + 24, 16);
        if vtcfl >> 28 != 6 {
            self.note(
                "malformed_header",
                Qual::Str(format!("IPv6 header (version field {})", vtcfl >> 28).into()),
            );
            return None;
        }
        let p = off + 40;
        let stop = if plen != 0 && p + plen < end {
            p + plen
        } else {
            end
        };
        if nh == PROTO_TCP {
            return self.tcp(d, p, stop, src, dst, hlim, -1);
        }
        self.ipv6_chain(d, p, stop, nh as i32, src, dst, hlim, -1)
    }

    /// Walk IPv6 extension headers from `d[p]` (next header `nh`) to the payload.
    #[allow(clippy::too_many_arguments)]
    fn ipv6_chain(
        &mut self,
        d: &[u8],
        mut p: usize,
        end: usize,
        mut nh: i32,
        src: Addr,
        dst: Addr,
        hlim: i32,
        ident: i64,
    ) -> Option<TcpSegment> {
        let n = d.len();
        while nh != PROTO_TCP as i32 {
            let step = if ipv6_ext8(nh) {
                if p + 8 > n {
                    self.note("truncated_header", s("IPv6 extension"));
                    return None;
                }
                ((u8_at(d, p + 1) as usize) + 1) << 3
            } else if nh == 44 {
                if p + 8 > n {
                    self.note("truncated_header", s("IPv6 fragment"));
                    return None;
                }
                let word = u16_at(d, p + 2);
                if word & 0xFFF9 != 0 {
                    let header = FragmentHeader {
                        version: 6,
                        src,
                        dst,
                        key_proto: -1,
                        ident: u32_at(d, p + 4),
                        offset: (word & 0xFFF8) as u64,
                        more: word & 1 != 0,
                        next: u8_at(d, p) as i32,
                        hops: hlim,
                    };
                    return self.fragment(d, p + 8, end, header);
                }
                8
            } else if nh == 51 {
                if p + 8 > n {
                    self.note("truncated_header", s("IPv6 AH"));
                    return None;
                }
                ((u8_at(d, p + 1) as usize) + 2) << 2
            } else {
                return self.transport(d, p, end, src, dst, nh, hlim, ident, 6);
            };
            nh = u8_at(d, p) as i32;
            p += step;
        }
        self.tcp(d, p, end, src, dst, hlim, ident)
    }

    /// Dispatch the payload of an IP packet on its protocol number.
    #[allow(clippy::too_many_arguments)]
    fn transport(
        &mut self,
        d: &[u8],
        mut p: usize,
        end: usize,
        src: Addr,
        dst: Addr,
        mut proto: i32,
        ttl: i32,
        ident: i64,
        version: u8,
    ) -> Option<TcpSegment> {
        loop {
            match proto {
                6 => return self.tcp(d, p, end, src, dst, ttl, ident),
                17 => return self.udp(d, p, end, src, dst),
                47 => return self.decap(tun::parse_gre(d, p, end, src, dst), d),
                4 | 41 => {
                    let inner = if proto == 4 { 4 } else { 6 };
                    if !self.enter(Part::Ip {
                        inner,
                        outer: version,
                        src,
                        dst,
                    }) {
                        return None;
                    }
                    return if inner == 4 {
                        self.ipv4(d, p, end)
                    } else {
                        self.ipv6(d, p, end)
                    };
                }
                1 if version == 4 => {
                    self.icmp(d, p, end, src, ttl, version);
                    return None;
                }
                58 if version == 6 => {
                    self.icmp(d, p, end, src, ttl, version);
                    return None;
                }
                50 => {
                    self.note("esp_encrypted", s(""));
                    return None;
                }
                51 if version == 4 => {
                    // IPv4 AH: skip it (Python recurses; a loop is the same walk)
                    if p + 8 > d.len() {
                        self.note("truncated_header", s("AH"));
                        return None;
                    }
                    let step = ((u8_at(d, p + 1) as usize) + 2) << 2;
                    proto = u8_at(d, p) as i32;
                    p += step;
                }
                2 if version == 4 => {
                    self.tally.ordinary("IGMP", self.frame);
                    return None;
                }
                _ => {
                    self.note("other_ip_protocol", Qual::Int(proto as i64));
                    return None;
                }
            }
        }
    }

    /// Hand an IPv4 or IPv6 fragment (its payload `d[p..end]`) to that version's
    /// reassembler; decode the datagram it completes.
    fn fragment(
        &mut self,
        d: &[u8],
        p: usize,
        end: usize,
        f: FragmentHeader,
    ) -> Option<TcpSegment> {
        let table = if f.version == 4 {
            &mut self.frags4
        } else {
            &mut self.frags6
        };
        if end > d.len() {
            table.note_truncated(self.frame);
            return None;
        }
        let key = FragKey {
            tun: self.tun.clone(),
            src: f.src,
            dst: f.dst,
            proto: f.key_proto,
            ident: f.ident,
        };
        let (frame, ts) = (self.frame, self.ts);
        let (payload, count, first_nh) =
            table.add(key, f.offset, sl(d, p, end), f.more, frame, ts, f.next)?;
        if !self.enter_reassembly(count) {
            return None;
        }
        let (len, ip_id) = (payload.len(), f.ident as i64);
        if f.version == 4 {
            self.transport(
                &payload,
                0,
                len,
                f.src,
                f.dst,
                f.key_proto,
                f.hops,
                ip_id,
                4,
            )
        } else {
            self.ipv6_chain(&payload, 0, len, first_nh, f.src, f.dst, f.hops, ip_id)
        }
    }

    /// A reassembly counts as one level of depth.
    fn enter_reassembly(&mut self, fragments: u64) -> bool {
        if self.depth >= MAX_DEPTH {
            self.note("tunnel_too_deep", Qual::Int(MAX_DEPTH as i64));
            return false;
        }
        self.depth += 1;
        self.nfrag = fragments.min(u32::MAX as u64) as u32;
        true
    }

    // ---- transport ------------------------------------------------------------------------

    /// The segment, with its vectors (the only allocations of the common case).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn segment(
        &self,
        d: &[u8],
        t: usize,
        start: usize,
        stop: usize,
        src: &[u8],
        dst: &[u8],
        ttl: i32,
        ident: i64,
    ) -> TcpSegment {
        TcpSegment {
            frame: self.frame,
            ts: self.ts,
            src: src.to_vec(),
            sport: u16_at(d, t),
            dst: dst.to_vec(),
            dport: u16_at(d, t + 2),
            seq: u32_at(d, t + 4),
            ack: u32_at(d, t + 8),
            flags: u8_at(d, t + 13),
            payload: sl(d, start, stop).to_vec(),
            missing: 0,
            ttl,
            ip_id: ident,
            window: u16_at(d, t + 14),
            options: sl(d, t + 20, start).to_vec(),
            tunnel: None,
            fragments: 0,
        }
    }

    /// Decode the TCP header at `d[t..]`; `end` is where the segment ends on the wire.
    #[allow(clippy::too_many_arguments)]
    fn tcp(
        &mut self,
        d: &[u8],
        t: usize,
        end: usize,
        src: Addr,
        dst: Addr,
        ttl: i32,
        ident: i64,
    ) -> Option<TcpSegment> {
        if end <= d.len() && t + 20 <= end && self.depth == 0 {
            // Common case: the whole segment was captured, no tunnel, no reassembly.
            let start = t + (((u8_at(d, t + 12) >> 4) as usize) << 2);
            if t + 20 <= start && start <= end {
                return Some(self.segment(
                    d,
                    t,
                    start,
                    end,
                    src.as_slice(),
                    dst.as_slice(),
                    ttl,
                    ident,
                ));
            }
        }
        self.tcp_general(d, t, end, src, dst, ttl, ident)
    }

    /// `tcp` for a segment cut by the capture, malformed, or inside a tunnel.
    #[allow(clippy::too_many_arguments)]
    fn tcp_general(
        &mut self,
        d: &[u8],
        t: usize,
        end: usize,
        src: Addr,
        dst: Addr,
        ttl: i32,
        ident: i64,
    ) -> Option<TcpSegment> {
        let n = d.len();
        let (wire_end, cap_end) = if end > n {
            // cut by the snap length: count what the wire carried (frame length at most)
            ((end as u64).min(self.orig_len), n)
        } else {
            (end as u64, end)
        };
        if t + 20 > cap_end {
            if t + 20 > end {
                self.note(
                    "malformed_header",
                    s("TCP header (segment shorter than 20 bytes)"),
                );
            } else {
                self.note("truncated_header", s("TCP"));
            }
            return None;
        }
        let start = t + (((u8_at(d, t + 12) >> 4) as usize) << 2);
        if start < t + 20 || start > end {
            self.note(
                "malformed_header",
                s("TCP header (data offset outside the segment)"),
            );
            return None;
        }
        let missing = wire_end.saturating_sub(cap_end.max(start) as u64);
        let mut seg = self.segment(
            d,
            t,
            start,
            cap_end,
            src.as_slice(),
            dst.as_slice(),
            ttl,
            ident,
        );
        seg.missing = missing;
        if !self.tun.is_empty() {
            seg.tunnel = Some(self.names.name(&self.tun));
            if self.tunnelled == 0 {
                self.tunnelled_first = self.frame;
            }
            self.tunnelled += 1;
        }
        seg.fragments = self.nfrag;
        Some(seg)
    }

    /// A UDP datagram: a tunnel by its port, or ordinary traffic.
    fn udp(&mut self, d: &[u8], p: usize, end: usize, src: Addr, dst: Addr) -> Option<TcpSegment> {
        if p + 8 > d.len() {
            self.note("truncated_header", s("UDP"));
            return None;
        }
        let (sport, dport) = (u16_at(d, p), u16_at(d, p + 2));
        let length = u16_at(d, p + 4) as usize;
        let stop = if length >= 8 && p + length < end {
            p + length
        } else {
            end
        };
        let q = p + 8;
        for port in [dport, sport] {
            if tun::VXLAN_PORTS.contains(&port) {
                return self.decap(tun::parse_vxlan(d, q, stop, src, dst), d);
            }
            if port == tun::GENEVE_PORT {
                return self.decap(tun::parse_geneve(d, q, stop, src, dst), d);
            }
            if port == tun::VXLAN_GPE_PORT {
                return self.decap(tun::parse_vxlan_gpe(d, q, stop, src, dst), d);
            }
            if port == tun::MPLS_UDP_PORT {
                return self.decap(tun::parse_mpls(d, q, stop), d);
            }
            if port == tun::GRE_UDP_PORT {
                return self.decap(tun::parse_gre(d, q, stop, src, dst), d);
            }
        }
        for port in [dport, sport] {
            if let Some(name) = tun::unsupported_udp_tunnel(port) {
                self.note(
                    "unsupported_tunnel",
                    Qual::Str(format!("{name}, UDP port {port}").into()),
                );
                return None;
            }
            if port == 4500 && stop > q + 4 && sl(d, q, q + 4) != [0u8; 4] {
                self.note("esp_encrypted", s(" (in UDP 4500, NAT traversal)"));
                return None;
            }
        }
        let quic = dport == 443 || sport == 443;
        self.tally
            .ordinary(if quic { "UDP 443 (QUIC)" } else { "UDP" }, self.frame);
        None
    }

    /// Count an ICMP message; keep an error quoting TCP for the caller (`on_icmp`).
    fn icmp(&mut self, d: &[u8], p: usize, end: usize, router: Addr, ttl: i32, version: u8) {
        self.tally
            .ordinary(if version == 4 { "ICMP" } else { "ICMPv6" }, self.frame);
        let Some(q) = parse_icmp_error(d, p, end, version) else {
            return;
        };
        let tunnel = if self.tun.is_empty() {
            None
        } else {
            Some(self.names.name(&self.tun))
        };
        self.icmp = Some(IcmpError {
            frame: self.frame,
            ts: self.ts,
            version,
            icmp_type: q.icmp_type,
            code: q.code,
            router: router.as_slice().to_vec(),
            ttl,
            src: q.src.as_slice().to_vec(),
            sport: q.sport,
            dst: q.dst.as_slice().to_vec(),
            dport: q.dport,
            seq: q.seq,
            mtu: q.mtu,
            tunnel,
        });
    }
}

/// What an IPv4 header or an IPv6 Fragment header says about a fragment.
struct FragmentHeader {
    version: u8,
    src: Addr,
    dst: Addr,
    /// The reassembly key's protocol: IPv4's; -1 for IPv6 (its key has none).
    key_proto: i32,
    ident: u32,
    /// Byte offset of the fragment in its datagram.
    offset: u64,
    /// More fragments follow.
    more: bool,
    /// IPv6: the next header after the Fragment header (-1 for IPv4).
    next: i32,
    /// TTL or hop limit of the packet.
    hops: i32,
}
