//! Tunnel headers and tunnel names: the port of `tlspcap.capture.tunnels`.
//!
//! Each `parse_*` function reads one encapsulation header in `d` at `off` (`end` is where the
//! enclosing payload ends on the wire) and returns an [`Outcome`]: what follows (as an
//! EtherType, or [`IP_BY_VERSION`]) and where, or the anomaly to count, or the name of ordinary
//! traffic. [`TunnelNames`] renders a chain of [`Part`]s into the interned `tunnel` string.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use super::bytes::{u16_at, u24_at, u32_at, u8_at, Addr};
use super::tally::Qual;

/// Transparent Ethernet Bridging: "an Ethernet frame follows".
pub const ETHERNET: i32 = 0x6558;
pub const IPV4: i32 = 0x0800;
pub const IPV6: i32 = 0x86DD;
pub const MPLS_UNICAST: i32 = 0x8847;
pub const MPLS_MULTICAST: i32 = 0x8848;
pub const ERSPAN_I_II: i32 = 0x88BE;
pub const ERSPAN_III: i32 = 0x22EB;
/// Pseudo EtherType: an IP packet whose first nibble gives its version.
pub const IP_BY_VERSION: i32 = -1;

pub const VXLAN_PORTS: [u16; 2] = [4789, 8472];
pub const VXLAN_GPE_PORT: u16 = 4790;
pub const GENEVE_PORT: u16 = 6081;
pub const MPLS_UDP_PORT: u16 = 6635;
pub const GRE_UDP_PORT: u16 = 4754;

/// UDP ports of tunnels tlspcap does not decode (`UNSUPPORTED_UDP_TUNNELS`).
pub fn unsupported_udp_tunnel(port: u16) -> Option<&'static str> {
    match port {
        1701 => Some("L2TP"),
        2152 => Some("GTP-U"),
        3544 => Some("Teredo"),
        4341 => Some("LISP"),
        _ => None,
    }
}

/// Labels read from one MPLS stack before it is called malformed.
pub const MAX_MPLS_LABELS: usize = 16;

/// Distinct tunnel chains named in full; further ones are named by their kinds only.
pub const MAX_TUNNEL_NAMES: usize = 4096;

/// Which of the three VNI-carrying tunnels a [`Part::Vni`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VniKind {
    Vxlan,
    VxlanGpe,
    Geneve,
}

/// One encapsulation of a chain: the twin of the Python part tuples (equal iff they are).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    /// `("VLAN", vid)`
    Vlan(u16),
    /// `("VXLAN" | "VXLAN-GPE" | "Geneve", vni, src, dst)`
    Vni {
        kind: VniKind,
        vni: u32,
        src: Addr,
        dst: Addr,
    },
    /// `("GRE", key, src, dst)`
    Gre {
        key: Option<u32>,
        src: Addr,
        dst: Addr,
    },
    /// `("ERSPAN", type, session, src, dst)`
    Erspan {
        ty: u8,
        session: Option<u16>,
        src: Addr,
        dst: Addr,
    },
    /// `("MPLS", labels)`: the first `n` labels (the rest zero).
    Mpls {
        n: u8,
        labels: [u32; MAX_MPLS_LABELS],
    },
    /// `("PPPoE", session)`
    Pppoe(u16),
    /// `("IP", inner version, outer version, src, dst)`
    Ip {
        inner: u8,
        outer: u8,
        src: Addr,
        dst: Addr,
    },
}

impl Part {
    /// `part[0]`: the kind's name.
    pub fn kind(&self) -> &'static str {
        match self {
            Part::Vlan(_) => "VLAN",
            Part::Vni {
                kind: VniKind::Vxlan,
                ..
            } => "VXLAN",
            Part::Vni {
                kind: VniKind::VxlanGpe,
                ..
            } => "VXLAN-GPE",
            Part::Vni {
                kind: VniKind::Geneve,
                ..
            } => "Geneve",
            Part::Gre { .. } => "GRE",
            Part::Erspan { .. } => "ERSPAN",
            Part::Mpls { .. } => "MPLS",
            Part::Pppoe(_) => "PPPoE",
            Part::Ip { .. } => "IP",
        }
    }

    /// `describe_part`: e.g. `VXLAN VNI 42 (10.0.0.1 -> 10.0.0.2)`.
    pub fn describe(&self) -> String {
        match self {
            Part::Vni { vni, src, dst, .. } => {
                format!(
                    "{} VNI {} ({} -> {})",
                    self.kind(),
                    vni,
                    ip_text(src),
                    ip_text(dst)
                )
            }
            Part::Gre { key, src, dst } => {
                let key = key.map(|k| format!(" key {k}")).unwrap_or_default();
                format!("GRE{} ({} -> {})", key, ip_text(src), ip_text(dst))
            }
            Part::Erspan {
                ty,
                session,
                src,
                dst,
            } => {
                let name = match ty {
                    1 => "I",
                    2 => "II",
                    3 => "III",
                    _ => "None",
                };
                let session = session.map(|s| format!(" session {s}")).unwrap_or_default();
                format!(
                    "ERSPAN type {}{} ({} -> {})",
                    name,
                    session,
                    ip_text(src),
                    ip_text(dst)
                )
            }
            Part::Mpls { n, labels } => {
                let labels = labels.get(..*n as usize).unwrap_or(&[]);
                let word = if labels.len() == 1 { "label" } else { "labels" };
                let list: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
                format!("MPLS {} {}", word, list.join("/"))
            }
            Part::Pppoe(session) => format!("PPPoE session 0x{session:04x}"),
            Part::Ip {
                inner,
                outer,
                src,
                dst,
            } => {
                format!(
                    "IPv{}-in-IPv{} ({} -> {})",
                    inner,
                    outer,
                    ip_text(src),
                    ip_text(dst)
                )
            }
            Part::Vlan(vid) => format!("VLAN {vid}"),
        }
    }
}

/// `str(ipaddress.ip_address(addr))` as Python 3.11 renders it (`"?"` for other lengths).
pub fn ip_text(addr: &Addr) -> String {
    let b = addr.as_slice();
    match b.len() {
        4 => format!("{}.{}.{}.{}", b[0], b[1], b[2], b[3]),
        16 => {
            let hextets: Vec<String> = (0..8).map(|i| format!("{:x}", u16_at(b, 2 * i))).collect();
            compress_hextets(hextets).join(":")
        }
        _ => "?".to_string(),
    }
}

/// `ipaddress._BaseV6._compress_hextets` (Python 3.11).
fn compress_hextets(mut hextets: Vec<String>) -> Vec<String> {
    let (mut best_start, mut best_len) = (usize::MAX, 0usize);
    let (mut start, mut len) = (usize::MAX, 0usize);
    for (index, h) in hextets.iter().enumerate() {
        if h == "0" {
            len += 1;
            if start == usize::MAX {
                start = index;
            }
            if len > best_len {
                best_len = len;
                best_start = start;
            }
        } else {
            len = 0;
            start = usize::MAX;
        }
    }
    if best_len > 1 {
        let best_end = best_start + best_len;
        if best_end == hextets.len() {
            hextets.push(String::new());
        }
        hextets.splice(best_start..best_end, [String::new()]);
        if best_start == 0 {
            hextets.insert(0, String::new());
        }
    }
    hextets
}

/// What a tunnel parser found (`Decap | Problem | str` in Python).
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// What follows, where it starts and ends, and the tunnel's part of the name.
    Decap {
        ethertype: i32,
        offset: usize,
        end: usize,
        part: Part,
    },
    /// An anomaly name and its qualifier.
    Problem(&'static str, Qual),
    /// Ordinary traffic (`"MPLS OAM"`, `"PPP control"`).
    Ordinary(&'static str),
}

fn problem(name: &'static str, q: &'static str) -> Outcome {
    Outcome::Problem(name, Qual::Str(Cow::Borrowed(q)))
}

fn problem_s(name: &'static str, q: String) -> Outcome {
    Outcome::Problem(name, Qual::Str(Cow::Owned(q)))
}

/// VXLAN (RFC 7348): 8 bytes, then an Ethernet frame (whatever the flags say).
pub fn parse_vxlan(d: &[u8], off: usize, end: usize, src: Addr, dst: Addr) -> Outcome {
    if off + 8 > d.len() {
        return problem("truncated_header", "VXLAN");
    }
    vni_decap(VniKind::Vxlan, d, off, src, dst, ETHERNET, off + 8, end)
}

/// The inner packet of a VXLAN, VXLAN-GPE or Geneve header at `off` (its VNI at `off + 4`).
#[allow(clippy::too_many_arguments)]
fn vni_decap(
    kind: VniKind,
    d: &[u8],
    off: usize,
    src: Addr,
    dst: Addr,
    ethertype: i32,
    offset: usize,
    end: usize,
) -> Outcome {
    let vni = u24_at(d, off + 4);
    let part = Part::Vni {
        kind,
        vni,
        src,
        dst,
    };
    Outcome::Decap {
        ethertype,
        offset,
        end,
        part,
    }
}

/// VXLAN-GPE: a version and a next-protocol byte.
pub fn parse_vxlan_gpe(d: &[u8], off: usize, end: usize, src: Addr, dst: Addr) -> Outcome {
    if off + 8 > d.len() {
        return problem("truncated_header", "VXLAN-GPE");
    }
    let (flags, nxt) = (u8_at(d, off), u8_at(d, off + 3));
    if flags & 0x30 != 0 {
        return problem_s(
            "malformed_tunnel_header",
            format!("VXLAN-GPE version {}", (flags >> 4) & 3),
        );
    }
    let following = if flags & 0x04 != 0 {
        match nxt {
            1 => Some(IPV4),
            2 => Some(IPV6),
            3 => Some(ETHERNET),
            5 => Some(MPLS_UNICAST),
            _ => None,
        }
    } else {
        Some(ETHERNET)
    };
    let Some(following) = following else {
        return problem_s(
            "unsupported_tunnel",
            format!("VXLAN-GPE next protocol {nxt}"),
        );
    };
    vni_decap(VniKind::VxlanGpe, d, off, src, dst, following, off + 8, end)
}

/// Geneve (RFC 8926): 8 bytes plus options, then what the protocol type names.
pub fn parse_geneve(d: &[u8], off: usize, end: usize, src: Addr, dst: Addr) -> Outcome {
    if off + 8 > d.len() {
        return problem("truncated_header", "Geneve");
    }
    let version = u8_at(d, off) >> 6;
    if version != 0 {
        return problem_s(
            "malformed_tunnel_header",
            format!("Geneve version {version}"),
        );
    }
    let start = off + 8 + (((u8_at(d, off) & 0x3F) as usize) << 2);
    if start > end {
        return problem(
            "malformed_tunnel_header",
            "Geneve options longer than the packet",
        );
    }
    if start > d.len() {
        return problem("truncated_header", "Geneve options");
    }
    let proto = u16_at(d, off + 2) as i32;
    if proto != ETHERNET && proto != IPV4 && proto != IPV6 {
        return problem_s(
            "unsupported_tunnel",
            format!("Geneve protocol type 0x{proto:04x}"),
        );
    }
    vni_decap(VniKind::Geneve, d, off, src, dst, proto, start, end)
}

fn gre_protocol(proto: i32) -> bool {
    matches!(
        proto,
        ETHERNET
            | IPV4
            | IPV6
            | MPLS_UNICAST
            | MPLS_MULTICAST
            | ERSPAN_I_II
            | ERSPAN_III
            | 0x8100
            | 0x88A8
    )
}

/// GRE (RFC 2784/2890), including ERSPAN types I, II and III.
pub fn parse_gre(d: &[u8], off: usize, end: usize, src: Addr, dst: Addr) -> Outcome {
    let n = d.len();
    if off + 4 > n {
        return problem("truncated_header", "GRE");
    }
    let (flags, proto) = (u16_at(d, off), u16_at(d, off + 2) as i32);
    let version = flags & 7;
    if version == 1 {
        return problem("unsupported_tunnel", "PPTP enhanced GRE (version 1)");
    }
    if version != 0 {
        return problem_s("malformed_tunnel_header", format!("GRE version {version}"));
    }
    if flags & 0x4000 != 0 {
        return problem("unsupported_tunnel", "GRE with source routing (RFC 1701)");
    }
    let mut p = off + 4;
    if flags & 0x8000 != 0 {
        p += 4;
    }
    let mut key = None;
    if flags & 0x2000 != 0 {
        if p + 4 > n {
            return problem("truncated_header", "GRE");
        }
        key = Some(u32_at(d, p));
        p += 4;
    }
    let sequenced = flags & 0x1000 != 0;
    if sequenced {
        p += 4;
    }
    if p > n {
        return problem("truncated_header", "GRE");
    }
    if !gre_protocol(proto) {
        return problem_s(
            "unsupported_tunnel",
            format!("GRE protocol type 0x{proto:04x}"),
        );
    }
    if proto == ERSPAN_I_II && !sequenced {
        let part = Part::Erspan {
            ty: 1,
            session: None,
            src,
            dst,
        };
        return Outcome::Decap {
            ethertype: ETHERNET,
            offset: p,
            end,
            part,
        };
    }
    if proto == ERSPAN_I_II || proto == ERSPAN_III {
        return parse_erspan(d, p, end, src, dst);
    }
    Outcome::Decap {
        ethertype: proto,
        offset: p,
        end,
        part: Part::Gre { key, src, dst },
    }
}

/// The ERSPAN header; its version field (1: type II, 2: type III) decides its layout.
fn parse_erspan(d: &[u8], off: usize, end: usize, src: Addr, dst: Addr) -> Outcome {
    let n = d.len();
    if off + 8 > n {
        return problem("truncated_header", "ERSPAN");
    }
    let version = u8_at(d, off) >> 4;
    let session = u16_at(d, off + 2) & 0x3FF;
    if version == 1 {
        let part = Part::Erspan {
            ty: 2,
            session: Some(session),
            src,
            dst,
        };
        return Outcome::Decap {
            ethertype: ETHERNET,
            offset: off + 8,
            end,
            part,
        };
    }
    if version != 2 {
        return problem_s(
            "malformed_tunnel_header",
            format!("ERSPAN version {version}"),
        );
    }
    if off + 12 > n {
        return problem("truncated_header", "ERSPAN");
    }
    let word = u16_at(d, off + 10);
    let start = off + 12 + if word & 1 != 0 { 8 } else { 0 };
    if start > n {
        return problem("truncated_header", "ERSPAN");
    }
    let frame_type = (word >> 10) & 0x1F;
    let part = Part::Erspan {
        ty: 3,
        session: Some(session),
        src,
        dst,
    };
    match frame_type {
        0 => Outcome::Decap {
            ethertype: ETHERNET,
            offset: start,
            end,
            part,
        },
        2 => Outcome::Decap {
            ethertype: IP_BY_VERSION,
            offset: start,
            end,
            part,
        },
        _ => problem_s(
            "unsupported_tunnel",
            format!("ERSPAN type III frame type {frame_type}"),
        ),
    }
}

/// An MPLS label stack (RFC 3032) and what its payload is (first nibble, as Wireshark).
pub fn parse_mpls(d: &[u8], mut off: usize, end: usize) -> Outcome {
    let n = d.len();
    let mut labels = [0u32; MAX_MPLS_LABELS];
    let mut count = 0usize;
    loop {
        if off + 4 > n {
            return problem("truncated_header", "MPLS");
        }
        let entry = u32_at(d, off);
        off += 4;
        if let Some(slot) = labels.get_mut(count) {
            *slot = entry >> 12;
        }
        count += 1;
        if entry & 0x100 != 0 {
            break;
        }
        if count >= MAX_MPLS_LABELS {
            return problem_s(
                "malformed_tunnel_header",
                format!("MPLS stack deeper than {MAX_MPLS_LABELS}"),
            );
        }
    }
    if off >= n {
        return problem("truncated_header", "MPLS payload");
    }
    let part = Part::Mpls {
        n: count as u8,
        labels,
    };
    match u8_at(d, off) >> 4 {
        4 => Outcome::Decap {
            ethertype: IPV4,
            offset: off,
            end,
            part,
        },
        6 => Outcome::Decap {
            ethertype: IPV6,
            offset: off,
            end,
            part,
        },
        0 => Outcome::Decap {
            ethertype: ETHERNET,
            offset: off + 4,
            end,
            part,
        },
        1 => Outcome::Ordinary("MPLS OAM"),
        _ => Outcome::Decap {
            ethertype: ETHERNET,
            offset: off,
            end,
            part,
        },
    }
}

/// A PPPoE session frame (RFC 2516) and its PPP protocol.
pub fn parse_pppoe(d: &[u8], off: usize, end: usize) -> Outcome {
    let n = d.len();
    if off + 8 > n {
        return problem("truncated_header", "PPPoE");
    }
    let (v, c) = (u8_at(d, off), u8_at(d, off + 1));
    if v != 0x11 || c != 0 {
        return problem_s(
            "malformed_tunnel_header",
            format!("PPPoE version/type 0x{v:02x} code 0x{c:02x}"),
        );
    }
    let session = u16_at(d, off + 2);
    let stop = end.min(off + 6 + u16_at(d, off + 4) as usize);
    let mut p = off + 6;
    let proto = if u8_at(d, p) & 1 != 0 {
        p += 1;
        u8_at(d, p - 1) as u32
    } else {
        p += 2;
        u16_at(d, p - 2) as u32
    };
    let following = match proto {
        0x0021 => IPV4,
        0x0057 => IPV6,
        0x0281 => MPLS_UNICAST,
        0x0283 => MPLS_MULTICAST,
        _ => {
            if matches!(
                proto,
                0xC021 | 0x8021 | 0x8057 | 0xC023 | 0xC223 | 0xC025 | 0x80FD | 0x8281
            ) {
                return Outcome::Ordinary("PPP control");
            }
            return problem_s(
                "unsupported_tunnel",
                format!("PPP protocol 0x{proto:04x} in PPPoE"),
            );
        }
    };
    Outcome::Decap {
        ethertype: following,
        offset: p,
        end: stop,
        part: Part::Pppoe(session),
    }
}

/// Interned names of tunnel chains: one `Arc<str>` per distinct chain (`TunnelNames`).
#[derive(Debug, Default)]
pub struct TunnelNames {
    names: HashMap<Vec<Part>, Arc<str>>,
    order: Vec<Arc<str>>,
    by_kinds: HashMap<Vec<&'static str>, Arc<str>>,
}

impl TunnelNames {
    /// The name of `chain` (outermost part first), parts joined with ` / `.
    pub fn name(&mut self, chain: &[Part]) -> Arc<str> {
        if let Some(name) = self.names.get(chain) {
            return name.clone();
        }
        if self.names.len() < MAX_TUNNEL_NAMES {
            let text: Vec<String> = chain.iter().map(Part::describe).collect();
            let name: Arc<str> = Arc::from(text.join(" / "));
            self.names.insert(chain.to_vec(), name.clone());
            self.order.push(name.clone());
            return name;
        }
        let kinds: Vec<&'static str> = chain.iter().map(Part::kind).collect();
        if let Some(name) = self.by_kinds.get(&kinds) {
            return name.clone();
        }
        let name: Arc<str> = Arc::from(kinds.join(" / "));
        if self.by_kinds.len() < MAX_TUNNEL_NAMES {
            self.by_kinds.insert(kinds, name.clone());
        }
        name
    }

    /// The names given so far, in the order they were first needed.
    pub fn names(&self) -> &[Arc<str>] {
        &self.order
    }
}

#[cfg(test)]
mod tests {
    use super::super::bytes::sl;
    use super::*;

    fn v6(s: &str) -> String {
        let a: std::net::Ipv6Addr = s.parse().unwrap();
        ip_text(&Addr::from_slice(&a.octets()))
    }

    #[test]
    fn ipv6_text_as_python_311() {
        assert_eq!(v6("::"), "::");
        assert_eq!(v6("::1"), "::1");
        assert_eq!(v6("::ffff:1.2.3.4"), "::ffff:102:304");
        assert_eq!(v6("2001:db8::1:0:0:1"), "2001:db8::1:0:0:1");
        assert_eq!(v6("1:0:2:0:3:0:4:0"), "1:0:2:0:3:0:4:0");
        assert_eq!(v6("1:0:0:2:0:0:3:4"), "1::2:0:0:3:4");
        assert_eq!(v6("1:2:3:4:5:6:0:0"), "1:2:3:4:5:6::");
        assert_eq!(ip_text(&Addr::from_slice(&[192, 0, 2, 1])), "192.0.2.1");
    }

    #[test]
    fn sub_slices_never_panic() {
        let d = [0u8; 3];
        let _ = sl(&d, 5, 2);
        let _ = parse_gre(&d, 0, 3, Addr::default(), Addr::default());
    }

    #[test]
    fn names_are_interned() {
        let mut names = TunnelNames::default();
        let chain = [Part::Vlan(5), Part::Pppoe(0x12)];
        let a = names.name(&chain);
        let b = names.name(&chain);
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(&*a, "VLAN 5 / PPPoE session 0x0012");
        let mut labels = [0; MAX_MPLS_LABELS];
        labels[0] = 16;
        labels[1] = 17;
        assert_eq!(Part::Mpls { n: 2, labels }.describe(), "MPLS labels 16/17");
        assert_eq!(Part::Mpls { n: 1, labels }.describe(), "MPLS label 16");
    }
}
