//! Sun snoop version 2, Ethernet (port of `tlspcap.capture.snoop`): a 16-byte file header,
//! then big-endian 24-byte record headers and data padded to the record length. Other snoop
//! files are foreign (converted by `editcap`); records are bounded like pcap records.

use super::pcap::MAX_RECORD_CAPLEN;
use super::source::{ByteSource, CaptureState, Order};
use super::ts::sec_frac;
use super::{OpenError, Record};
use crate::linktypes::ETHERNET;
use crate::model::Anomaly;

pub const MAGIC: &[u8; 8] = b"snoop\0\0\0";
const HEADER_LEN: usize = 16;
const RECORD_HEADER_LEN: usize = 24;
/// Padding accepted after a record's data.
const MAX_PADDING: i64 = 4096;
const DATALINK_ETHERNET: u32 = 4;

/// Consume the file header of a snoop file read natively (`read_header`); any other snoop
/// file is foreign.
pub fn read_header(src: &mut ByteSource, inside: &str) -> Result<(), OpenError> {
    let foreign = || OpenError::ForeignSnoop {
        inside: inside.to_string(),
    };
    if !src.fill(HEADER_LEN) {
        return Err(foreign());
    }
    let version = Order::BIG.u32(&src.buf, src.pos + 8);
    let datalink = Order::BIG.u32(&src.buf, src.pos + 12);
    if version != 2 || datalink != DATALINK_ETHERNET {
        return Err(foreign());
    }
    src.pos += HEADER_LEN;
    Ok(())
}

/// The record loop of `iter_packets`, one record per call.
#[derive(Default)]
pub struct SnoopParser {
    frame: u64,
    cut: u64,
    first_cut: u64,
}

impl SnoopParser {
    /// The next record; `None` at the end (after the anomalies and the snaplen summary).
    pub fn next(&mut self, src: &mut ByteSource, state: &mut CaptureState) -> Option<Record> {
        let rec = self.step(src, state);
        if rec.is_none() {
            state.note_snaplen(self.cut, self.first_cut, "unknown");
        }
        rec
    }

    fn step(&mut self, src: &mut ByteSource, state: &mut CaptureState) -> Option<Record> {
        if !src.fill(RECORD_HEADER_LEN) {
            state.note_end(src, Some(self.frame + 1), "snoop record header");
            return None;
        }
        let be = Order::BIG;
        let pos = src.pos;
        let wire = be.u32(&src.buf, pos);
        let caplen = be.u32(&src.buf, pos + 4);
        let reclen = be.u32(&src.buf, pos + 8);
        let sec = be.u32(&src.buf, pos + 16);
        let usec = be.u32(&src.buf, pos + 20);
        let padding = i64::from(reclen) - RECORD_HEADER_LEN as i64 - i64::from(caplen);
        if caplen > MAX_RECORD_CAPLEN || !(0..=MAX_PADDING).contains(&padding) {
            state.anomalies.push(Anomaly::new(
                "bad_record",
                Some(self.frame + 1),
                format!(
                    "snoop record at byte {} claims {caplen} captured bytes in a \
                     {reclen}-byte record (limits: {MAX_RECORD_CAPLEN} bytes, \
                     {MAX_PADDING} of padding); reading stopped",
                    src.offset()
                ),
            ));
            return None;
        }
        if !src.fill(reclen as usize) {
            state.note_end(src, Some(self.frame + 1), "snoop record");
            return None;
        }
        let start = src.pos + RECORD_HEADER_LEN;
        src.pos += reclen as usize;
        self.frame += 1;
        if caplen < wire {
            self.cut += 1;
            if self.cut == 1 {
                self.first_cut = self.frame;
            }
        }
        Some(Record {
            frame: self.frame,
            ts: sec_frac(sec, usec, 1_000_000),
            linktype: ETHERNET,
            start,
            len: caplen as usize,
            orig_len: u64::from(wire),
        })
    }
}
