//! IP fragment reassembly (IPv4 and IPv6) in bounded memory, with capture-time timeouts: the
//! port of `tlspcap.capture.fragments` (first-received bytes win on overlaps; same bounds,
//! eviction order, counters and anomaly texts).

use std::collections::{BTreeMap, HashMap};

use super::bytes::Addr;
use super::tunnels::Part;
use crate::model::Anomaly;

/// Incomplete datagrams held at once, per IP version.
pub const MAX_PENDING_DATAGRAMS: usize = 1024;
/// Bytes held in incomplete datagrams at once, per IP version.
pub const MAX_PENDING_BYTES: u64 = 4 << 20;
/// Bytes charged per fragment held, besides its data.
pub const FRAGMENT_OVERHEAD: u64 = 64;
pub const FRAGMENT_TIMEOUT_V4: f64 = 30.0;
pub const FRAGMENT_TIMEOUT_V6: f64 = 60.0;
/// Largest reassembled payload accepted.
pub const MAX_DATAGRAM: u64 = 65535;

/// A datagram's key: the tunnel chain, addresses, protocol (IPv4; -1 for IPv6) and
/// identification, as the Python key tuples.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FragKey {
    pub tun: Vec<Part>,
    pub src: Addr,
    pub dst: Addr,
    pub proto: i32,
    pub ident: u32,
}

/// One incomplete datagram: sorted, non-overlapping runs.
#[derive(Debug)]
struct Pending {
    starts: Vec<u64>,
    ends: Vec<u64>,
    datas: Vec<Vec<u8>>,
    have: u64,
    total: i64,
    count: u64,
    charge: u64,
    first: i32,
    first_frame: u64,
    deadline: f64,
}

/// How many datagrams and fragments met one fate, and the first frame it happened at.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counter {
    pub datagrams: u64,
    pub fragments: u64,
    pub first: u64,
}

impl Counter {
    fn add(&mut self, datagrams: u64, fragments: u64, frame: u64) {
        if self.datagrams == 0 && self.fragments == 0 {
            self.first = frame;
        }
        self.datagrams += datagrams;
        self.fragments += fragments;
    }
}

/// A completed datagram: payload, fragment count, `first_info` of its offset-0 fragment.
pub type Completed = (Vec<u8>, u64, i32);

/// Reassembles the fragmented datagrams of one IP version.
#[derive(Debug)]
pub struct FragmentReassembler {
    version: u8,
    timeout: f64,
    max_datagrams: usize,
    max_bytes: u64,
    /// Key to insertion sequence; `order` holds the datagrams oldest first.
    index: HashMap<FragKey, u64>,
    order: BTreeMap<u64, (FragKey, Pending)>,
    next_seq: u64,
    pub held_bytes: u64,
    pub received: u64,
    pub reassembled: Counter,
    pub overlaps: Counter,
    pub invalid: Counter,
    pub truncated: Counter,
    pub timed_out: Counter,
    pub dropped: Counter,
    pub incomplete: Counter,
}

/// `bisect_right(a, x)`
fn bisect_right(a: &[u64], x: u64) -> usize {
    a.partition_point(|&v| v <= x)
}

impl FragmentReassembler {
    pub fn new(version: u8, timeout: f64, max_datagrams: usize, max_bytes: u64) -> Self {
        FragmentReassembler {
            version,
            timeout,
            max_datagrams,
            max_bytes,
            index: HashMap::new(),
            order: BTreeMap::new(),
            next_seq: 0,
            held_bytes: 0,
            received: 0,
            reassembled: Counter::default(),
            overlaps: Counter::default(),
            invalid: Counter::default(),
            truncated: Counter::default(),
            timed_out: Counter::default(),
            dropped: Counter::default(),
            incomplete: Counter::default(),
        }
    }

    /// Incomplete datagrams held.
    pub fn pending(&self) -> usize {
        self.order.len()
    }

    fn remove(&mut self, key: &FragKey) -> Option<Pending> {
        let seq = self.index.remove(key)?;
        self.order.remove(&seq).map(|(_, p)| p)
    }

    /// Add one fragment; the datagram when it completes.
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        key: FragKey,
        offset: u64,
        data: &[u8],
        more: bool,
        frame: u64,
        ts: f64,
        first_info: i32,
    ) -> Option<Completed> {
        self.received += 1;
        if !self.order.is_empty() {
            self.expire(ts);
        }
        let end = offset + data.len() as u64;
        if end > MAX_DATAGRAM {
            self.invalid.add(0, 1, frame);
            return None;
        }
        let seq = match self.index.get(&key) {
            Some(&s) => s,
            None => {
                let s = self.next_seq;
                self.next_seq += 1;
                let p = Pending {
                    starts: Vec::new(),
                    ends: Vec::new(),
                    datas: Vec::new(),
                    have: 0,
                    total: -1,
                    count: 0,
                    charge: 0,
                    first: -1,
                    first_frame: frame,
                    deadline: ts + self.timeout,
                };
                self.index.insert(key.clone(), s);
                self.order.insert(s, (key.clone(), p));
                s
            }
        };
        let (_, p) = self.order.get_mut(&seq)?;
        p.count += 1;
        let end_i = end as i64;
        let invalid = if !more {
            if (p.total >= 0 && p.total != end_i) || p.ends.last().is_some_and(|&e| e > end) {
                true
            } else {
                p.total = end_i;
                false
            }
        } else {
            p.total >= 0 && end_i > p.total
        };
        if invalid {
            if let Some(p) = self.remove(&key) {
                self.held_bytes = self.held_bytes.saturating_sub(p.charge);
                self.invalid.add(1, p.count, frame);
            }
            return None;
        }
        if offset == 0 {
            p.first = first_info;
        }
        if !data.is_empty() {
            let (charge, overlap) = insert(p, offset, end, data);
            self.held_bytes += charge;
            if let Some(conflict) = overlap {
                self.overlaps.add(conflict as u64, 1, frame);
            }
        }
        if p.total >= 0 && p.have as i64 == p.total {
            let p = self.remove(&key)?;
            self.held_bytes = self.held_bytes.saturating_sub(p.charge);
            self.reassembled.add(1, p.count, frame);
            let mut datas = p.datas;
            let payload = if datas.len() == 1 {
                datas.pop().unwrap_or_default()
            } else {
                datas.concat()
            };
            return Some((payload, p.count, p.first));
        }
        if self.order.len() > self.max_datagrams || self.held_bytes > self.max_bytes {
            self.evict();
        }
        None
    }

    /// Count a fragment the capture cut short (snap length): it cannot be used.
    pub fn note_truncated(&mut self, frame: u64) {
        self.received += 1;
        self.truncated.add(0, 1, frame);
    }

    /// Count what is still pending at the end of the capture and let it go.
    pub fn finish(&mut self) {
        for (_, p) in self.order.values() {
            self.incomplete.add(1, p.count, p.first_frame);
        }
        self.order.clear();
        self.index.clear();
        self.held_bytes = 0;
    }

    /// Drop the datagrams whose time ran out, oldest first.
    fn expire(&mut self, now: f64) {
        while let Some(entry) = self.order.first_entry() {
            if entry.get().1.deadline > now {
                return;
            }
            let (key, p) = entry.remove();
            self.index.remove(&key);
            self.held_bytes = self.held_bytes.saturating_sub(p.charge);
            self.timed_out.add(1, p.count, p.first_frame);
        }
    }

    /// Drop the oldest datagrams until both bounds hold again.
    fn evict(&mut self) {
        while self.order.len() > self.max_datagrams || self.held_bytes > self.max_bytes {
            let Some((_, (key, p))) = self.order.pop_first() else {
                return;
            };
            self.index.remove(&key);
            self.held_bytes = self.held_bytes.saturating_sub(p.charge);
            self.dropped.add(1, p.count, p.first_frame);
        }
    }

    /// File anomalies: what was reassembled, and every fragment that could not be used.
    pub fn anomalies(&self) -> Vec<Anomaly> {
        let v = format!("IPv{}", self.version);
        let mut out = Vec::new();
        let c = self.reassembled;
        if c.datagrams != 0 {
            out.push(Anomaly::new(
                "ip_fragments_reassembled",
                Some(c.first),
                format!(
                    "{} {v} datagram(s) reassembled from {} fragments; first completed at frame {}",
                    c.datagrams, c.fragments, c.first
                ),
            ));
        }
        let c = self.overlaps;
        if c.fragments != 0 {
            let conflict = if c.datagrams != 0 {
                format!(", {} of them with different bytes", c.datagrams)
            } else {
                ", same bytes".to_string()
            };
            out.push(Anomaly::new(
                "fragment_overlap",
                Some(c.first),
                format!(
                    "{} {v} fragment(s) overlapped bytes already received{conflict} (the bytes \
                     received first were kept; Linux and RFC 5722 receivers drop such datagrams); \
                     first at frame {}",
                    c.fragments, c.first
                ),
            ));
        }
        let fates = [
            (
                "fragment_invalid",
                self.invalid,
                "inconsistent (past 65,535 bytes, or ends that disagree): dropped".to_string(),
            ),
            (
                "fragment_truncated",
                self.truncated,
                "cut by the snap length: not reassembled".to_string(),
            ),
            (
                "fragments_timed_out",
                self.timed_out,
                format!(
                    "still incomplete {} s of capture time after their first fragment: dropped",
                    self.timeout
                ),
            ),
            (
                "fragments_dropped",
                self.dropped,
                format!(
                    "dropped incomplete to stay within {} pending datagrams and {} bytes",
                    self.max_datagrams, self.max_bytes
                ),
            ),
            (
                "fragments_incomplete",
                self.incomplete,
                "still incomplete at the end of the capture: their data is missing".to_string(),
            ),
        ];
        for (name, c, what) in fates {
            if c.fragments == 0 {
                continue;
            }
            let lead = if c.datagrams == 0 {
                format!("{} {v} fragment(s)", c.fragments)
            } else {
                format!(
                    "{} {v} datagram(s) ({} fragments)",
                    c.datagrams, c.fragments
                )
            };
            out.push(Anomaly::new(
                name,
                Some(c.first),
                format!("{lead} {what}; first at frame {}", c.first),
            ));
        }
        out
    }
}

/// `_insert`: add the parts of `data` that fall into holes; returns the bytes charged and,
/// when it overlapped runs already held, whether the overlapping bytes differed.
fn insert(p: &mut Pending, offset: u64, end: u64, data: &[u8]) -> (u64, Option<bool>) {
    let j = bisect_right(&p.ends, offset);
    if p.starts.get(j).is_none_or(|&s| s >= end) {
        p.starts.insert(j, offset);
        p.ends.insert(j, end);
        p.datas.insert(j, data.to_vec());
        p.have += end - offset;
        let charge = end - offset + FRAGMENT_OVERHEAD;
        p.charge += charge;
        return (charge, None);
    }
    let mut j = j;
    let mut pos = offset;
    let mut conflict = false;
    let mut holes: Vec<(u64, u64)> = Vec::new();
    while let (Some(&s), Some(&e)) = (p.starts.get(j), p.ends.get(j)) {
        if s >= end {
            break;
        }
        if s > pos {
            holes.push((pos, s));
        }
        let (a, b) = (pos.max(s), end.min(e));
        if a < b {
            let new = data.get((a - offset) as usize..(b - offset) as usize);
            let old = p
                .datas
                .get(j)
                .and_then(|r| r.get((a - s) as usize..(b - s) as usize));
            if new != old {
                conflict = true;
            }
        }
        pos = pos.max(e);
        j += 1;
    }
    if pos < end {
        holes.push((pos, end));
    }
    let mut charged = 0;
    for (s, e) in holes {
        let k = bisect_right(&p.starts, s);
        p.starts.insert(k, s);
        p.ends.insert(k, e);
        p.datas.insert(
            k,
            data.get((s - offset) as usize..(e - offset) as usize)
                .unwrap_or(&[])
                .to_vec(),
        );
        p.have += e - s;
        let charge = e - s + FRAGMENT_OVERHEAD;
        p.charge += charge;
        charged += charge;
    }
    (charged, Some(conflict))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ident: u32) -> FragKey {
        FragKey {
            tun: Vec::new(),
            src: Addr::default(),
            dst: Addr::default(),
            proto: 6,
            ident,
        }
    }

    #[test]
    fn reassembles_out_of_order_with_overlap() {
        let mut r = FragmentReassembler::new(4, 30.0, 8, 1 << 20);
        assert!(r.add(key(1), 8, b"BBBBBBBB", false, 1, 0.0, -1).is_none());
        assert!(r.add(key(1), 4, b"xxxxBBBB", true, 2, 0.0, -1).is_none());
        let (payload, count, first) = r.add(key(1), 0, b"AAAAAAAA", true, 3, 0.0, 7).unwrap();
        assert_eq!(payload, b"AAAAxxxxBBBBBBBB"); // first received wins
        assert_eq!((count, first), (3, 7));
        assert_eq!(r.pending(), 0);
        assert_eq!(r.held_bytes, 0);
        let a = r.anomalies();
        assert_eq!(a[0].name, "ip_fragments_reassembled");
        assert_eq!(a[1].name, "fragment_overlap");
        assert!(a[1].detail.contains("1 of them with different bytes"));
    }

    #[test]
    fn bounds_hold() {
        let mut r = FragmentReassembler::new(6, 60.0, 4, 1000);
        for i in 0..100 {
            r.add(key(i), 0, &[0u8; 100], true, i as u64 + 1, 0.0, 6);
            assert!(r.pending() <= 4 && r.held_bytes <= 1000);
        }
        r.finish();
        let a = r.anomalies();
        assert_eq!(a[0].name, "fragments_dropped");
        assert_eq!(a[1].name, "fragments_incomplete");
    }

    #[test]
    fn timeout_text() {
        let mut r = FragmentReassembler::new(4, 30.0, 8, 1 << 20);
        r.add(key(1), 0, b"A", true, 1, 0.0, -1);
        r.add(key(2), 0, b"A", true, 2, 31.0, -1);
        let a = r.anomalies();
        assert_eq!(a[0].detail, "1 IPv4 datagram(s) (1 fragments) still incomplete 30 s of capture time after their first fragment: dropped; first at frame 1");
    }
}
