//! ICMP and ICMPv6 error messages that quote a TCP segment: the port of
//! `tlspcap.capture.icmp.parse_icmp_error`.

use super::bytes::{u16_at, u32_at, u8_at, Addr};

/// What an ICMP error says about the TCP segment it quotes (`QuotedTcp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotedTcp {
    pub icmp_type: u8,
    pub code: u8,
    pub mtu: Option<u32>,
    pub src: Addr,
    pub sport: u16,
    pub dst: Addr,
    pub dport: u16,
    pub seq: u32,
}

const MAX_EXTENSIONS: usize = 8;

fn ext8(nh: u8) -> bool {
    matches!(nh, 0 | 43 | 60 | 135 | 139 | 140)
}

/// Read the ICMP (`version` 4) or ICMPv6 (6) message at `d[off..end]`; `None` unless it is an
/// error quoting an IP header and at least 8 bytes of a TCP header.
pub fn parse_icmp_error(d: &[u8], off: usize, end: usize, version: u8) -> Option<QuotedTcp> {
    let n = d.len().min(end);
    if off + 8 > n {
        return None;
    }
    let (icmp_type, code) = (u8_at(d, off), u8_at(d, off + 1));
    let q = off + 8;
    let (mtu, src, dst, t);
    if version == 4 {
        if !matches!(icmp_type, 3 | 4 | 5 | 11 | 12) || q + 20 > n {
            return None;
        }
        mtu = if icmp_type == 3 && code == 4 {
            Some(u16_at(d, off + 6) as u32)
        } else {
            None
        };
        let vihl = u8_at(d, q);
        let ihl = ((vihl & 15) as usize) << 2;
        if vihl >> 4 != 4 || ihl < 20 || u8_at(d, q + 9) != 6 || u16_at(d, q + 6) & 0x1FFF != 0 {
            return None;
        }
        src = Addr::at(d, q + 12, 4);
        dst = Addr::at(d, q + 16, 4);
        t = q + ihl;
    } else {
        if !matches!(icmp_type, 1..=4) || q + 40 > n || u8_at(d, q) >> 4 != 6 {
            return None;
        }
        mtu = if icmp_type == 2 {
            Some(u32_at(d, off + 4))
        } else {
            None
        };
        let mut nh = u8_at(d, q + 6);
        src = Addr::at(d, q + 8, 16);
        dst = Addr::at(d, q + 24, 16);
        let mut p = q + 40;
        for _ in 0..MAX_EXTENSIONS {
            if nh == 6 || p + 8 > n {
                break;
            }
            let step = if ext8(nh) {
                ((u8_at(d, p + 1) as usize) + 1) << 3
            } else if nh == 44 && u16_at(d, p + 2) & 0xFFF8 == 0 {
                8
            } else if nh == 51 {
                ((u8_at(d, p + 1) as usize) + 2) << 2
            } else {
                return None;
            };
            nh = u8_at(d, p);
            p += step;
        }
        if nh != 6 {
            return None;
        }
        t = p;
    }
    if t + 8 > n {
        return None;
    }
    Some(QuotedTcp {
        icmp_type,
        code,
        mtu,
        src,
        sport: u16_at(d, t),
        dst,
        dport: u16_at(d, t + 2),
        seq: u32_at(d, t + 4),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frag_needed_quoting_tcp() {
        let mut m = vec![3u8, 4, 0, 0, 0, 0, 0x05, 0xdc];
        let mut ip = vec![
            0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        m.append(&mut ip);
        m.extend_from_slice(&[0x01, 0xbb, 0x30, 0x39, 0, 0, 0, 7]);
        let q = parse_icmp_error(&m, 0, m.len(), 4).unwrap();
        assert_eq!(q.mtu, Some(1500));
        assert_eq!((q.sport, q.dport, q.seq), (443, 12345, 7));
        assert!(parse_icmp_error(&m[..m.len() - 1], 0, usize::MAX, 4).is_none());
        assert!(parse_icmp_error(&m, 0, m.len(), 6).is_none());
    }
}
