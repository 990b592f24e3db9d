//! Counting the packets the decoder could not turn into TCP segments: the port of
//! `tlspcap.capture.tally` (same anomaly names, detail texts and order).

use std::borrow::Cow;
use std::collections::HashMap;

use crate::model::Anomaly;

/// Distinct (name, qualifier) pairs counted; further qualifiers of a name go under `other`.
pub const MAX_KINDS: usize = 256;

/// A qualifier, kept raw while counting (a Python int or str: never equal to each other).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Qual {
    Int(i64),
    Str(Cow<'static, str>),
}

impl Qual {
    /// `str(q)`
    fn text(&self) -> String {
        match self {
            Qual::Int(i) => i.to_string(),
            Qual::Str(s) => s.to_string(),
        }
    }
}

/// Names of EtherTypes that are not IP (`ETHERTYPE_NAMES`).
fn ethertype_name(v: i64) -> Option<&'static str> {
    Some(match v {
        0x0806 => "ARP",
        0x0842 => "Wake-on-LAN",
        0x22F0 => "AVTP",
        0x22F3 => "TRILL",
        0x6003 => "DECnet",
        0x8035 => "RARP",
        0x809B => "AppleTalk",
        0x80F3 => "AARP",
        0x8137 => "IPX",
        0x8808 => "Ethernet flow control",
        0x8809 => "slow protocols (LACP)",
        0x8819 => "CobraNet",
        0x8847 => "MPLS",
        0x8848 => "MPLS multicast",
        0x8863 => "PPPoE discovery",
        0x8864 => "PPPoE session",
        0x886D => "Intel ANS",
        0x887B => "HomePlug",
        0x888E => "EAPOL (802.1X)",
        0x8892 => "PROFINET",
        0x889A => "HyperSCSI",
        0x88A2 => "ATA over Ethernet",
        0x88A4 => "EtherCAT",
        0x88AB => "Ethernet Powerlink",
        0x88B8 => "GOOSE",
        0x88BA => "IEC 61850 SV",
        0x88CC => "LLDP",
        0x88CD => "SERCOS III",
        0x88E1 => "HomePlug AV",
        0x88E3 => "MRP",
        0x88E5 => "MACsec",
        0x88E7 => "PBB",
        0x88F7 => "PTP",
        0x88FB => "PRP",
        0x8902 => "CFM",
        0x8906 => "FCoE",
        0x8914 => "FCoE initialization",
        0x8915 => "RoCE",
        0x891D => "TTEthernet",
        0x893A => "IEEE 1905.1",
        0x892F => "HSR",
        0x9000 => "loopback (configuration test)",
        _ => return None,
    })
}

/// Names of IP protocol numbers (`IP_PROTOCOL_NAMES`).
fn ip_protocol_name(v: i64) -> Option<&'static str> {
    Some(match v {
        0 => "IPv6 hop-by-hop",
        2 => "IGMP",
        3 => "GGP",
        8 => "EGP",
        9 => "IGP",
        27 => "RDP",
        33 => "DCCP",
        43 => "IPv6 routing header",
        44 => "IPv6 fragment header",
        46 => "RSVP",
        47 => "GRE",
        50 => "ESP",
        51 => "AH",
        58 => "ICMPv6",
        59 => "IPv6 no next header",
        60 => "IPv6 destination options",
        88 => "EIGRP",
        89 => "OSPF",
        94 => "IPIP (KA9Q)",
        97 => "EtherIP",
        98 => "ENCAP",
        103 => "PIM",
        108 => "IPComp",
        112 => "VRRP",
        115 => "L2TPv3",
        124 => "IS-IS over IPv4",
        132 => "SCTP",
        133 => "FC",
        135 => "IPv6 mobility header",
        136 => "UDP-Lite",
        137 => "MPLS in IP",
        139 => "HIP",
        140 => "shim6",
        143 => "Ethernet (RFC 8986)",
        _ => return None,
    })
}

/// Python's `f"0x{v:0{width}x}"` for any int (negative: `0x-` then the padded magnitude).
fn hex(v: i64, width: usize) -> String {
    if v < 0 {
        format!("0x-{:0w$x}", v.unsigned_abs(), w = width.saturating_sub(1))
    } else {
        format!("0x{:0w$x}", v, w = width)
    }
}

fn render(name: &str, q: &Qual) -> String {
    match (name, q) {
        ("unknown_ethertype", Qual::Int(v)) => {
            if *v < 0x0600 {
                format!("{}, an 802.3 length field (LLC/SNAP frame)", hex(*v, 4))
            } else {
                match ethertype_name(*v) {
                    Some(n) => format!("{} ({})", hex(*v, 4), n),
                    None => hex(*v, 4),
                }
            }
        }
        ("other_ip_protocol", Qual::Int(v)) => match ip_protocol_name(*v) {
            Some(n) => format!("{v} ({n})"),
            None => v.to_string(),
        },
        _ => q.text(),
    }
}

fn detail(name: &str, n: u64, q: &str) -> String {
    match name {
        "truncated_header" => format!(
            "{n} packet(s) end inside their {q} header (cut by the snap length or damaged): not decoded"
        ),
        "malformed_header" => format!("{n} packet(s) with a malformed {q}: not decoded"),
        "malformed_tunnel_header" => {
            format!("{n} packet(s) with a malformed tunnel header ({q}): not decoded")
        }
        "unsupported_tunnel" => format!(
            "{n} packet(s) in a tunnel tlspcap does not decode ({q}): their content is not analysed"
        ),
        "unknown_ethertype" => format!("{n} frame(s) of EtherType {q}: not IP, not analysed"),
        "unknown_address_family" => {
            format!("{n} loopback frame(s) of address family {q}: not IP, not analysed")
        }
        "unsupported_erf_type" => format!("{n} ERF record(s) of type {q}: not decoded"),
        "other_ip_protocol" => {
            format!("{n} IP packet(s) of protocol {q}, neither TCP nor UDP: not analysed")
        }
        "esp_encrypted" => {
            format!("{n} IPsec ESP packet(s){q}: encrypted, their content cannot be decoded")
        }
        "tunnel_too_deep" => format!(
            "{n} packet(s) nest more than {q} encapsulations (tunnels and IP reassemblies): decoding stopped there"
        ),
        _ => format!("{n} packet(s): {q}"),
    }
}

/// Counts of undecodable packets per (anomaly name, qualifier), and of ordinary traffic.
#[derive(Debug, Default)]
pub struct Tally {
    /// Insertion order, as the Python dict: (name, qualifier, count, first frame).
    kinds: Vec<(&'static str, Qual, u64, u64)>,
    index: HashMap<(&'static str, Qual), usize>,
    ordinary: Vec<(&'static str, u64)>,
    ordinary_first: u64,
}

impl Tally {
    /// Count one packet that could not be decoded, under `name` and `qualifier`.
    pub fn note(&mut self, name: &'static str, qualifier: Qual, frame: u64) {
        let mut key = (name, qualifier);
        if let Some(&i) = self.index.get(&key) {
            if let Some(e) = self.kinds.get_mut(i) {
                e.2 += 1;
            }
            return;
        }
        if self.kinds.len() >= MAX_KINDS {
            key = (name, Qual::Str(Cow::Borrowed("other")));
            if let Some(&i) = self.index.get(&key) {
                if let Some(e) = self.kinds.get_mut(i) {
                    e.2 += 1;
                }
                return;
            }
        }
        self.index.insert(key.clone(), self.kinds.len());
        self.kinds.push((key.0, key.1, 1, frame));
    }

    /// Count one packet of ordinary non-TCP traffic.
    pub fn ordinary(&mut self, what: &'static str, frame: u64) {
        if self.ordinary.is_empty() {
            self.ordinary_first = frame;
        }
        match self.ordinary.iter_mut().find(|(w, _)| *w == what) {
            Some(e) => e.1 += 1,
            None => self.ordinary.push((what, 1)),
        }
    }

    /// Packets counted so far, every kind and the ordinary traffic together.
    pub fn total(&self) -> u64 {
        self.kinds.iter().map(|e| e.2).sum::<u64>() + self.ordinary.iter().map(|e| e.1).sum::<u64>()
    }

    /// Distinct (name, qualifier) pairs held.
    pub fn kinds(&self) -> usize {
        self.kinds.len()
    }

    /// Packets counted under `name`, all qualifiers together.
    pub fn count(&self, name: &str) -> u64 {
        self.kinds.iter().filter(|e| e.0 == name).map(|e| e.2).sum()
    }

    /// One anomaly per (name, qualifier), by first frame, then the ordinary-traffic line;
    /// `more` adds ordinary traffic counted elsewhere: `(what, count, first frame)`.
    pub fn anomalies(&self, more: &[(&'static str, u64, u64)]) -> Vec<Anomaly> {
        let mut out = Vec::new();
        let mut order: Vec<&(&'static str, Qual, u64, u64)> = self.kinds.iter().collect();
        order.sort_by_key(|e| e.3); // stable, as Python's sorted
        for (name, q, n, first) in order {
            let text = detail(name, *n, &render(name, q));
            out.push(Anomaly::new(
                name,
                Some(*first),
                format!("{text}; first at frame {first}"),
            ));
        }
        let mut counts: Vec<(&'static str, u64)> = self.ordinary.clone();
        let mut first = if counts.is_empty() {
            0
        } else {
            self.ordinary_first
        };
        for &(what, count, at) in more {
            if count != 0 {
                match counts.iter_mut().find(|(w, _)| *w == what) {
                    Some(e) => e.1 += count,
                    None => counts.push((what, count)),
                }
                first = if first == 0 { at } else { first.min(at) };
            }
        }
        if !counts.is_empty() {
            let total: u64 = counts.iter().map(|e| e.1).sum();
            counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
            let parts: Vec<String> = counts.iter().map(|(w, c)| format!("{w} {c}")).collect();
            out.push(Anomaly::new(
                "non_tcp_traffic",
                Some(first),
                format!(
                    "{total} packet(s) carry no TCP and are not analysed ({}); first at frame {first}",
                    parts.join(", ")
                ),
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_and_order() {
        let mut t = Tally::default();
        t.note("unknown_ethertype", Qual::Int(0x88cc), 5);
        t.note("unknown_ethertype", Qual::Int(0x0042), 3);
        t.note("unknown_ethertype", Qual::Int(0x88cc), 9);
        t.ordinary("ARP", 2);
        t.ordinary("ICMP", 4);
        t.ordinary("ICMP", 6);
        let a = t.anomalies(&[("UDP", 2, 1)]);
        assert_eq!(a[0].detail, "1 frame(s) of EtherType 0x0042, an 802.3 length field (LLC/SNAP frame): not IP, not analysed; first at frame 3");
        assert_eq!(
            a[1].detail,
            "2 frame(s) of EtherType 0x88cc (LLDP): not IP, not analysed; first at frame 5"
        );
        assert_eq!(a[2].detail, "5 packet(s) carry no TCP and are not analysed (ICMP 2, UDP 2, ARP 1); first at frame 1");
        assert_eq!(t.total(), 6);
    }

    #[test]
    fn kinds_are_capped() {
        let mut t = Tally::default();
        for i in 0..1000 {
            t.note("other_ip_protocol", Qual::Int(i), i as u64 + 1);
        }
        assert_eq!(t.kinds(), MAX_KINDS + 1);
        assert_eq!(t.count("other_ip_protocol"), 1000);
    }
}
