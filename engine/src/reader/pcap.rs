//! The classic libpcap format (port of `tlspcap.capture.pcap`): 24-byte file header, then
//! 16-byte record headers and data; both byte orders, micro- and nanosecond timestamps.
//! A record claiming more than [`MAX_RECORD_CAPLEN`] captured bytes ends reading (`bad_record`).

use super::source::{ByteSource, CaptureState, Order};
use super::ts::sec_frac;
use super::{OpenError, Record};
use crate::model::Anomaly;

/// Largest captured length accepted in one record (libpcap's and Wireshark's 256 KiB).
pub const MAX_RECORD_CAPLEN: u32 = 262144;
const FILE_HEADER_LEN: usize = 24;
const RECORD_HEADER_LEN: usize = 16;

/// `MAGICS`: file magic as stored -> (byte order, nanosecond timestamps).
pub fn magic(m: &[u8]) -> Option<(Order, bool)> {
    match m {
        b"\xd4\xc3\xb2\xa1" => Some((Order::LITTLE, false)),
        b"\xa1\xb2\xc3\xd4" => Some((Order::BIG, false)),
        b"\x4d\x3c\xb2\xa1" => Some((Order::LITTLE, true)),
        b"\xa1\xb2\x3c\x4d" => Some((Order::BIG, true)),
        _ => None,
    }
}

/// The fields of a pcap file header that reading needs.
#[derive(Clone, Copy, Debug)]
pub struct PcapHeader {
    pub order: Order,
    pub nanoseconds: bool,
    pub snaplen: u32,
    /// Lower 16 bits of the header's link type field.
    pub linktype: u32,
}

/// Consume and parse the file header (`read_header`); the magic is known to be a pcap one.
pub fn read_header(src: &mut ByteSource) -> Result<PcapHeader, OpenError> {
    if !src.fill(FILE_HEADER_LEN) {
        return Err(OpenError::Capture {
            reason: format!(
                "truncated pcap file header ({} of {FILE_HEADER_LEN} bytes)",
                src.remaining()
            ),
            offset: Some(0),
        });
    }
    let (order, nanoseconds) = magic(src.peek(4)).unwrap_or((Order::LITTLE, false));
    let snaplen = order.u32(&src.buf, src.pos + 16);
    let network = order.u32(&src.buf, src.pos + 20);
    src.pos += FILE_HEADER_LEN;
    Ok(PcapHeader {
        order,
        nanoseconds,
        snaplen,
        linktype: network & 0xFFFF,
    })
}

/// The record loop of `iter_packets`, one record per call.
pub struct PcapParser {
    header: PcapHeader,
    units: u32,
    frame: u64,
    cut: u64,
    first_cut: u64,
}

impl PcapParser {
    pub fn new(header: PcapHeader) -> Self {
        let units = if header.nanoseconds {
            1_000_000_000
        } else {
            1_000_000
        };
        PcapParser {
            header,
            units,
            frame: 0,
            cut: 0,
            first_cut: 0,
        }
    }

    /// The next record; `None` at the end (after the anomalies and the snaplen summary).
    pub fn next(&mut self, src: &mut ByteSource, state: &mut CaptureState) -> Option<Record> {
        let rec = self.step(src, state);
        if rec.is_none() {
            state.note_snaplen(self.cut, self.first_cut, &self.header.snaplen.to_string());
        }
        rec
    }

    #[inline]
    fn step(&mut self, src: &mut ByteSource, state: &mut CaptureState) -> Option<Record> {
        let order = self.header.order;
        if src.remaining() < RECORD_HEADER_LEN && !src.fill(RECORD_HEADER_LEN) {
            state.note_end(src, Some(self.frame + 1), "packet record header");
            return None;
        }
        let pos = src.pos;
        let sec = order.u32(&src.buf, pos);
        let frac = order.u32(&src.buf, pos + 4);
        let caplen = order.u32(&src.buf, pos + 8);
        let wirelen = order.u32(&src.buf, pos + 12);
        if caplen > MAX_RECORD_CAPLEN {
            state.anomalies.push(Anomaly::new(
                "bad_record",
                Some(self.frame + 1),
                format!(
                    "record at byte {} claims {caplen} captured bytes \
                     (limit {MAX_RECORD_CAPLEN}); reading stopped",
                    src.offset()
                ),
            ));
            return None;
        }
        let need = RECORD_HEADER_LEN + caplen as usize;
        if src.remaining() < need && !src.fill(need) {
            state.note_end(src, Some(self.frame + 1), "packet record");
            return None;
        }
        self.frame += 1;
        if caplen < wirelen {
            self.cut += 1;
            if self.cut == 1 {
                self.first_cut = self.frame;
            }
        }
        let start = src.pos + RECORD_HEADER_LEN;
        src.pos = start + caplen as usize;
        Some(Record {
            frame: self.frame,
            ts: sec_frac(sec, frac, self.units),
            linktype: self.header.linktype,
            start,
            len: caplen as usize,
            orig_len: u64::from(wirelen),
        })
    }
}
