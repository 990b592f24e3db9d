//! The fast lane: the steady state of established TLS connections, kept in the engine.
//!
//! Most segments of a capture are the bulk of connections past their handshake: in-order
//! encrypted application data that nobody can read, and the ACKs that answer it. For those the
//! Python tracker, reassembler, record reader and session only count. When the Python side sees
//! a connection in that state (its record readers skimming, nothing buffered out of order) it
//! *offers* the connection here with the state the engine needs to continue exactly as Python
//! would: the next expected sequence number of each direction, the record being skimmed, the
//! packet-log rows still to fill, the records its session must still see one by one. The engine
//! then *absorbs* the connection's segments that need nothing more than that, and hands back
//! one [`Summary`] (what Python would have counted) when the connection is *released*:
//!
//! - at the first segment it cannot absorb (SYN, FIN or RST, snap length, data out of order or
//!   overlapping, a record that is not complete application data, a partial record header),
//!   before that segment is handed over;
//! - before any segment at which the Python tracker sweeps its table (every `sweep_seconds` of
//!   capture time: the sweep reads every connection's last packet time), and then all are;
//! - when Python asks (its table is close to evicting), at the end of the capture, and when a
//!   summary grows past [`MAX_EVENTS`] or all summaries past [`MAX_HELD_EVENTS`].
//!
//! This module is pure Rust (the rules); `py` carries offers in and summaries out. The Python
//! side is `tlspcap.tcp.lane`; the differential tests hold both paths to identical output.

use std::collections::HashMap;

use crate::model::{TcpSegment, ACK, FIN, RST, SYN};

/// Events a summary holds before its connection is released (bounds memory per connection).
pub const MAX_EVENTS: usize = 256;

/// Events all summaries hold at most (about 5 MB): past it, the connection that adds one is
/// released. Log rows need no such bound: they are rows Python would otherwise hold itself.
pub const MAX_HELD_EVENTS: usize = 1 << 17;

/// TLS content type of application data: the only records absorbed.
const CT_APPLICATION_DATA: u8 = 23;

/// A connection's endpoints as its packets carry them: (source, port, destination, port).
pub type FlowKey = (Vec<u8>, u16, Vec<u8>, u16);

/// A packed address: its length, then its bytes (4 for IPv4, 16 for IPv6).
type Addr = [u8; 17];

/// [`FlowKey`] without allocation, for the lookup every segment makes.
type Packed = (Addr, u16, Addr, u16);

fn addr(a: &[u8]) -> Addr {
    let mut out = [0u8; 17];
    let n = a.len().min(16);
    out[0] = n as u8;
    out[1..=n].copy_from_slice(&a[..n]);
    out
}

/// What the engine needs of one direction to go on as Python would.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DirOffer {
    /// Segments of this direction may be absorbed (it has sent at least one packet).
    pub absorb: bool,
    /// Packet-log rows still to fill (the first packets of a direction are logged).
    pub log_room: u32,
    /// In-order payload may be absorbed: the record reader skims at a record boundary or
    /// inside a skimmed application-data record, and the stream has started.
    pub data: bool,
    /// Sequence number of the next byte the reassembler expects.
    pub expected: u32,
    /// Body bytes of the record being skimmed still to stream past (0: at a boundary).
    pub skip: u32,
    /// Version and length of that record.
    pub skip_version: u16,
    pub skip_length: u16,
    /// Records of this direction the session must still be given one by one.
    pub explicit: u32,
}

/// A connection offered by Python.
#[derive(Debug, Clone, PartialEq)]
pub struct Offer {
    /// The Python tracker's index of the connection.
    pub index: u64,
    /// Endpoints as direction 0's packets carry them.
    pub key: FlowKey,
    pub dirs: [DirOffer; 2],
    /// Encrypted-record log entries the session still keeps.
    pub room: u32,
}

/// One row of a direction's packet log (`tlspcap.tcp.tracker.PacketRow`).
#[derive(Debug, Clone, PartialEq)]
pub struct LogRow {
    pub frame: u64,
    pub ts: f64,
    pub flags: u8,
    pub seq: u32,
    pub ack: u32,
    pub length: u64,
    pub ttl: i32,
    pub ip_id: i64,
    pub window: u16,
    pub options: Vec<u8>,
}

/// What an absorbed direction added.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DirSummary {
    pub packets: u64,
    pub last_frame: Option<u64>,
    pub last_ack: Option<u32>,
    /// Stream bytes delivered in order.
    pub bytes: u64,
    /// Segments that carried only bytes already delivered.
    pub retransmitted: u64,
    /// The record reader's skim state at the end (set at release, from the offer's).
    pub skip: u32,
    pub skip_version: u16,
    pub skip_length: u16,
    pub log: Vec<LogRow>,
}

/// Application-data records as the session must see them, in stream order over both
/// directions.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// One record, for the session to take as any other.
    Record {
        dir: u8,
        version: u16,
        length: u16,
        frame: u64,
        ts: f64,
    },
    /// Consecutive records of one direction that the session only counts.
    Run {
        dir: u8,
        count: u64,
        bytes: u64,
        last_frame: u64,
        last_ts: f64,
    },
}

/// What the engine absorbed of one connection, handed back when it is released.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub index: u64,
    pub dirs: [DirSummary; 2],
    /// Frame and time of the last absorbed segment.
    pub last: Option<(u64, f64)>,
    pub events: Vec<Event>,
}

#[derive(Debug)]
struct Held {
    offer: Offer,
    summary: Summary,
}

/// The offloaded connections and the tracker's sweep schedule (see the module documentation).
#[derive(Debug)]
pub struct Lane {
    keys: HashMap<Packed, (u64, u8)>,
    held: HashMap<u64, Held>,
    next_sweep: f64,
    sweep_seconds: f64,
    max_record: u32,
    /// Events held in all summaries.
    events: usize,
}

impl Default for Lane {
    fn default() -> Self {
        Lane {
            keys: HashMap::new(),
            held: HashMap::new(),
            next_sweep: f64::NEG_INFINITY,
            sweep_seconds: 5.0,
            max_record: (1 << 14) + 2048,
            events: 0,
        }
    }
}

impl Lane {
    /// No connection is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// The tracker's sweep schedule and record-size limit, as Python has them now.
    pub fn configure(&mut self, next_sweep: f64, sweep_seconds: f64, max_record: u32) {
        self.next_sweep = next_sweep;
        self.sweep_seconds = sweep_seconds;
        self.max_record = max_record;
    }

    /// Hold a connection (ignored when its index or endpoints are held already).
    pub fn offer(&mut self, offer: Offer) {
        let (a, ap, b, bp) = &offer.key;
        let forward = (addr(a), *ap, addr(b), *bp);
        let reverse = (forward.2, forward.3, forward.0, forward.1);
        if self.held.contains_key(&offer.index)
            || self.keys.contains_key(&forward)
            || self.keys.contains_key(&reverse)
        {
            return;
        }
        self.keys.insert(forward, (offer.index, 0));
        self.keys.insert(reverse, (offer.index, 1));
        let summary = Summary {
            index: offer.index,
            dirs: Default::default(),
            last: None,
            events: Vec::new(),
        };
        self.held.insert(offer.index, Held { offer, summary });
    }

    /// Release every connection, in index order.
    pub fn release_all(&mut self, out: &mut Vec<Summary>) {
        let mut indexes: Vec<u64> = self.held.keys().copied().collect();
        indexes.sort_unstable();
        for index in indexes {
            self.release(index, out);
        }
    }

    fn release(&mut self, index: u64, out: &mut Vec<Summary>) {
        if let Some(held) = self.held.remove(&index) {
            let (a, ap, b, bp) = &held.offer.key;
            self.keys.remove(&(addr(b), *bp, addr(a), *ap));
            self.keys.remove(&(addr(a), *ap, addr(b), *bp));
            self.events -= held.summary.events.len();
            let mut summary = held.summary;
            for (d, offer) in summary.dirs.iter_mut().zip(&held.offer.dirs) {
                (d.skip, d.skip_version, d.skip_length) =
                    (offer.skip, offer.skip_version, offer.skip_length);
            }
            out.push(summary);
        }
    }

    /// Take one TCP segment: true when it was absorbed; otherwise it goes on to Python, after
    /// the summaries pushed to `out`.
    pub fn segment(&mut self, s: &TcpSegment, out: &mut Vec<Summary>) -> bool {
        if s.ts >= self.next_sweep {
            // Python's tracker sweeps at this segment: everything it reads must be up to date.
            self.release_all(out);
            self.next_sweep = s.ts + self.sweep_seconds;
            return false;
        }
        if self.held.is_empty() {
            return false;
        }
        let key = (addr(&s.src), s.sport, addr(&s.dst), s.dport);
        let Some(&(index, dir)) = self.keys.get(&key) else {
            return false;
        };
        let max_record = self.max_record;
        let held = self.held.get_mut(&index).expect("held with its keys");
        let before = held.summary.events.len();
        if absorb(held, dir as usize, s, max_record) {
            let after = held.summary.events.len();
            self.events += after - before;
            if after > MAX_EVENTS || self.events > MAX_HELD_EVENTS {
                self.release(index, out);
            }
            true
        } else {
            self.release(index, out);
            false
        }
    }
}

/// Absorb `s` into `held` (direction `dir`) when Python would only have counted it.
fn absorb(held: &mut Held, dir: usize, s: &TcpSegment, max_record: u32) -> bool {
    if s.flags & (SYN | FIN | RST) != 0 || s.missing != 0 || !held.offer.dirs[dir].absorb {
        return false;
    }
    if !s.payload.is_empty() {
        let offer = &held.offer.dirs[dir];
        if !offer.data {
            return false;
        }
        let len = s.payload.len() as i64;
        let delta = s.seq.wrapping_sub(offer.expected) as i32 as i64;
        if delta == 0 {
            if !frame_records(held, dir, s, max_record) {
                return false;
            }
            let offer = &mut held.offer.dirs[dir];
            offer.expected = offer.expected.wrapping_add(s.payload.len() as u32);
            held.summary.dirs[dir].bytes += s.payload.len() as u64;
        } else if delta + len <= 0 {
            held.summary.dirs[dir].retransmitted += 1;
        } else {
            return false;
        }
    }
    let offer = &mut held.offer.dirs[dir];
    let summary = &mut held.summary.dirs[dir];
    if offer.log_room > 0 {
        offer.log_room -= 1;
        summary.log.push(LogRow {
            frame: s.frame,
            ts: s.ts,
            flags: s.flags,
            seq: s.seq,
            ack: s.ack,
            length: s.payload.len() as u64 + s.missing,
            ttl: s.ttl,
            ip_id: s.ip_id,
            window: s.window,
            options: s.options.clone(),
        });
    }
    summary.packets += 1;
    summary.last_frame = Some(s.frame);
    if s.flags & ACK != 0 {
        summary.last_ack = Some(s.ack);
    }
    held.summary.last = Some((s.frame, s.ts));
    true
}

/// Cut the records of an in-order payload as the skimming record reader would; false (and
/// nothing changed) unless every record it starts or ends is application data whose header is
/// whole in the payload.
fn frame_records(held: &mut Held, dir: usize, s: &TcpSegment, max_record: u32) -> bool {
    let p = &s.payload;
    let n = p.len();
    let offer = &held.offer.dirs[dir];
    let mut skip = offer.skip as usize;
    let (mut skip_version, mut skip_length) = (offer.skip_version, offer.skip_length);
    let mut done: Vec<(u16, u16)> = Vec::new();
    let mut pos = 0usize;
    if skip > 0 {
        if n < skip {
            skip -= n;
            pos = n;
        } else {
            pos = skip;
            skip = 0;
            done.push((skip_version, skip_length));
        }
    }
    while pos < n {
        if n - pos < 5 {
            return false; // a header split across segments: the reader buffers it
        }
        let (b0, major, minor) = (p[pos], p[pos + 1], p[pos + 2]);
        if b0 != CT_APPLICATION_DATA || major != 3 || minor > 4 {
            return false;
        }
        let length = u16::from_be_bytes([p[pos + 3], p[pos + 4]]);
        if length == 0 || u32::from(length) > max_record {
            return false;
        }
        let version = u16::from_be_bytes([major, minor]);
        let end = pos + 5 + length as usize;
        if end > n {
            skip = end - n;
            skip_version = version;
            skip_length = length;
            pos = n;
        } else {
            done.push((version, length));
            pos = end;
        }
    }
    let offer = &mut held.offer.dirs[dir];
    offer.skip = skip as u32;
    offer.skip_version = skip_version;
    offer.skip_length = skip_length;
    for (version, length) in done {
        record(held, dir, version, length, s);
    }
    true
}

/// One complete application-data record for the session.
fn record(held: &mut Held, dir: usize, version: u16, length: u16, s: &TcpSegment) {
    let offer = &mut held.offer;
    let events = &mut held.summary.events;
    if offer.room > 0 || offer.dirs[dir].explicit > 0 {
        offer.room = offer.room.saturating_sub(1);
        let explicit = &mut offer.dirs[dir].explicit;
        *explicit = explicit.saturating_sub(1);
        events.push(Event::Record {
            dir: dir as u8,
            version,
            length,
            frame: s.frame,
            ts: s.ts,
        });
        return;
    }
    if let Some(Event::Run {
        dir: d,
        count,
        bytes,
        last_frame,
        last_ts,
    }) = events.last_mut()
    {
        if *d as usize == dir {
            *count += 1;
            *bytes += u64::from(length);
            *last_frame = s.frame;
            *last_ts = s.ts;
            return;
        }
    }
    events.push(Event::Run {
        dir: dir as u8,
        count: 1,
        bytes: u64::from(length),
        last_frame: s.frame,
        last_ts: s.ts,
    });
}
