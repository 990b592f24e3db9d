//! The pcapng format (port of `tlspcap.capture.pcapng`): sections (SHB of either byte order),
//! interfaces (IDB with `if_tsresol`, `if_tsoffset`), EPB, SPB, obsolete PB and Decryption
//! Secrets Blocks; other blocks are skipped. Frame numbers follow Wireshark (every EPB, SPB,
//! PB and [`numbered`] block takes one). Blocks over [`MAX_BLOCK_LEN`] or badly framed end
//! reading with `bad_block`; blocks with an inconsistent body are skipped with `bad_block`.

use std::collections::HashSet;

use super::source::{ByteSource, CaptureState, Order};
use super::ts::{div_ticks, Units};
use super::{OpenError, Record};
use crate::linktypes::{supported, unsupported_message};
use crate::model::Anomaly;

/// Largest block accepted (16 MiB).
pub const MAX_BLOCK_LEN: u32 = 16 << 20;
pub const SHB_MAGIC: &[u8; 4] = b"\x0a\x0d\x0d\x0a";
const SHB: u32 = 0x0A0D0D0A;
const IDB: u32 = 1;
const PB: u32 = 2;
const SPB: u32 = 3;
const EPB: u32 = 6;
const DSB: u32 = 0x0A;
const OPT_IF_TSRESOL: u16 = 9;
const OPT_IF_TSOFFSET: u16 = 14;
const MIN_SHB_LEN: u32 = 28;
/// EPB/PB: block header (8) + 20 bytes of fields before the data.
const PACKET_HEADER_LEN: u32 = 28;

/// `NUMBERED_BLOCKS`: blocks Wireshark (4.0) shows as frames.
fn numbered(btype: u32) -> bool {
    matches!(
        btype,
        PB | SPB | EPB | 0x09 | 0x0BAD | 0x40000BAD | 0x204 | 0x216 | 0x221
    )
}

/// `_check_length`: error text when a block's total length is impossible or over the bound.
fn check_length(blen: u32) -> Option<String> {
    if blen < 12 || blen & 3 != 0 {
        return Some(format!("impossible block length {blen}"));
    }
    if blen > MAX_BLOCK_LEN {
        return Some(format!(
            "block length {blen} over the {MAX_BLOCK_LEN}-byte limit"
        ));
    }
    None
}

/// What reading a packet needs from its Interface Description Block.
#[derive(Clone, Copy, Debug)]
struct Interface {
    /// -1 for a malformed IDB.
    linktype: i64,
    units: Units,
    /// if_tsoffset, seconds.
    offset: i64,
    snaplen: u32,
    /// Packets are not yielded (unsupported link type or malformed IDB).
    skip: bool,
}

/// `unsupported_message` for the link types an IDB can give (0..=65535, or -1).
fn unsupported_text(linktype: i64) -> String {
    match u32::try_from(linktype) {
        Ok(lt) => unsupported_message(lt),
        Err(_) => format!("unsupported link type {linktype} (UNKNOWN)"),
    }
}

/// Reads the blocks of a pcapng stream (`PcapngParser` and its `packets` generator).
pub struct PcapngParser {
    order: Order,
    interfaces: Vec<Interface>,
    /// (section, interface) already reported as unsupported.
    reported: HashSet<(u64, u64)>,
    section: u64,
    frame: u64,
    cut: u64,
    first_cut: u64,
    snaplen: String,
    /// The last EPB/PB timestamp (an SPB takes it).
    ts: f64,
}

impl PcapngParser {
    /// Read the first Section Header Block; `Err` when it is unreadable.
    pub fn new(src: &mut ByteSource) -> Result<Self, OpenError> {
        let mut p = PcapngParser {
            order: Order::LITTLE,
            interfaces: Vec::new(),
            reported: HashSet::new(),
            section: 1,
            frame: 0,
            cut: 0,
            first_cut: 0,
            snaplen: String::new(),
            ts: 0.0,
        };
        let fail = |reason: String| OpenError::Capture {
            reason,
            offset: Some(0),
        };
        if !src.fill(12) {
            return Err(fail("truncated pcapng section header block".to_string()));
        }
        let mut error = p.set_order_from(&src.buf, src.pos);
        let blen = p.order.u32(&src.buf, src.pos + 4);
        if error.is_none() {
            error = check_length(blen);
        }
        if error.is_none() && !src.fill(blen as usize) {
            error = Some(format!(
                "truncated pcapng section header block ({} of {blen} bytes)",
                src.remaining()
            ));
        }
        if error.is_none() {
            error = p.check_section(&src.buf, src.pos, blen);
        }
        if let Some(reason) = error {
            return Err(fail(reason));
        }
        src.pos += blen as usize;
        Ok(p)
    }

    /// Take the byte order of the SHB at `pos` (12 bytes present); error text if bad.
    fn set_order_from(&mut self, buf: &[u8], pos: usize) -> Option<String> {
        let bom = buf.get(pos + 8..pos + 12).unwrap_or(&[]);
        match bom {
            b"\x4d\x3c\x2b\x1a" => self.order = Order::LITTLE,
            b"\x1a\x2b\x3c\x4d" => self.order = Order::BIG,
            _ => {
                return Some(format!(
                    "pcapng section header has bad byte-order magic 0x{}",
                    hex(bom)
                ))
            }
        }
        None
    }

    /// Validate a whole SHB (`blen` bytes present) and start its section.
    fn check_section(&mut self, buf: &[u8], pos: usize, blen: u32) -> Option<String> {
        if blen < MIN_SHB_LEN {
            return Some(format!(
                "pcapng section header block too short ({blen} bytes)"
            ));
        }
        let trailer = self.order.u32(buf, pos + blen as usize - 4);
        if trailer != blen {
            return Some(format!(
                "pcapng block length {blen} disagrees with its trailer {trailer}"
            ));
        }
        let major = self.order.u16(buf, pos + 12);
        if major != 1 {
            return Some(format!("unsupported pcapng version {major}"));
        }
        self.interfaces.clear();
        None
    }

    /// The next packet; `None` at the end (after the anomalies and the snaplen summary).
    pub fn next(&mut self, src: &mut ByteSource, state: &mut CaptureState) -> Option<Record> {
        let rec = self.step(src, state);
        if rec.is_none() {
            state.note_snaplen(self.cut, self.first_cut, &self.snaplen);
        }
        rec
    }

    /// One iteration of the `packets` loop up to the next yielded packet.
    fn step(&mut self, src: &mut ByteSource, state: &mut CaptureState) -> Option<Record> {
        loop {
            if src.remaining() < 12 && !src.fill(12) {
                let frame = self.partial_frame(src);
                state.note_end(src, frame, "pcapng block");
                return None;
            }
            let pos = src.pos;
            let mut btype = self.order.u32(&src.buf, pos);
            let mut blen = self.order.u32(&src.buf, pos + 4);
            if btype == SHB {
                let error = self.set_order_from(&src.buf, pos);
                btype = self.order.u32(&src.buf, pos);
                blen = self.order.u32(&src.buf, pos + 4);
                if let Some(error) = error {
                    bad_block(
                        state,
                        src.base + pos as u64,
                        None,
                        format!("{error}; reading stopped"),
                    );
                    return None;
                }
            }
            if let Some(error) = check_length(blen) {
                bad_block(
                    state,
                    src.base + pos as u64,
                    None,
                    format!("{error}; reading stopped"),
                );
                return None;
            }
            let blen_u = blen as usize;
            if src.remaining() < blen_u && !src.fill(blen_u) {
                let frame = self.partial_frame(src);
                state.note_end(src, frame, "pcapng block");
                return None;
            }
            let block_pos = src.pos;
            let where_ = src.base + block_pos as u64;
            src.pos = block_pos + blen_u;
            let buf = &src.buf;
            if self.order.u32(buf, block_pos + blen_u - 4) != blen {
                let detail = format!("length {blen} disagrees with its trailer; reading stopped");
                bad_block(state, where_, None, detail);
                return None;
            }
            let o = self.order;
            let (linktype, iface_snaplen, wirelen, caplen, start);
            if btype == EPB || btype == PB {
                self.frame += 1;
                if blen < PACKET_HEADER_LEN + 4 {
                    let detail = format!("packet block of {blen} bytes");
                    bad_block(state, where_, Some(self.frame), detail);
                    continue;
                }
                let (iid, ts_high, ts_low, cap, wire) = if btype == EPB {
                    let f = |i: usize| o.u32(buf, block_pos + 8 + 4 * i);
                    (f(0), f(1), f(2), f(3), f(4))
                } else {
                    let iid = u32::from(o.u16(buf, block_pos + 8));
                    let f = |i: usize| o.u32(buf, block_pos + 12 + 4 * i);
                    (iid, f(0), f(1), f(2), f(3))
                };
                if cap > blen - PACKET_HEADER_LEN - 4 {
                    bad_block(
                        state,
                        where_,
                        Some(self.frame),
                        format!("captured length {cap}"),
                    );
                    continue;
                }
                let iface = match self.interfaces.get(iid as usize) {
                    Some(iface) if !iface.skip => *iface,
                    _ => {
                        self.skip_packet(state, u64::from(iid), self.frame);
                        continue;
                    }
                };
                linktype = iface.linktype;
                iface_snaplen = iface.snaplen;
                let ticks = (u64::from(ts_high) << 32) | u64::from(ts_low);
                self.ts = div_ticks(ticks, iface.units) + iface.offset as f64;
                start = block_pos + PACKET_HEADER_LEN as usize;
                wirelen = wire;
                caplen = i64::from(cap);
            } else if btype == SPB {
                self.frame += 1;
                let iface = match self.interfaces.first() {
                    Some(iface) if !iface.skip => *iface,
                    _ => {
                        self.skip_packet(state, 0, self.frame);
                        continue;
                    }
                };
                linktype = iface.linktype;
                iface_snaplen = iface.snaplen;
                wirelen = o.u32(buf, block_pos + 8);
                let mut cap = i64::from(wirelen).min(i64::from(blen) - 16);
                if iface_snaplen != 0 {
                    cap = cap.min(i64::from(iface_snaplen));
                }
                caplen = cap;
                start = block_pos + 12;
            } else {
                if numbered(btype) {
                    self.frame += 1;
                } else if btype == IDB {
                    self.add_interface(state, buf, block_pos, blen, where_);
                } else if btype == DSB {
                    self.add_secrets(state, buf, block_pos, blen, where_);
                } else if btype == SHB {
                    if let Some(error) = self.check_section(buf, block_pos, blen) {
                        bad_block(state, where_, None, format!("{error}; reading stopped"));
                        return None;
                    }
                    self.section += 1;
                }
                continue;
            }
            if caplen < i64::from(wirelen) {
                self.cut += 1;
                if self.cut == 1 {
                    self.first_cut = self.frame;
                    self.snaplen = if 0 < iface_snaplen && i64::from(iface_snaplen) <= caplen {
                        iface_snaplen.to_string()
                    } else {
                        format!("{caplen} bytes kept")
                    };
                }
            }
            return Some(Record {
                frame: self.frame,
                ts: self.ts,
                linktype: u32::try_from(linktype).unwrap_or(0),
                start,
                len: usize::try_from(caplen).unwrap_or(0),
                orig_len: u64::from(wirelen),
            });
        }
    }

    /// Frame number of the partial block at the end, if it is a numbered block.
    fn partial_frame(&self, src: &ByteSource) -> Option<u64> {
        if src.remaining() >= 4 && numbered(self.order.u32(&src.buf, src.pos)) {
            Some(self.frame + 1)
        } else {
            None
        }
    }

    /// Account for a packet of an undefined or unsupported interface, which is skipped.
    fn skip_packet(&mut self, state: &mut CaptureState, iid: u64, frame: u64) {
        let count = self.interfaces.len();
        let Some(iface) = usize::try_from(iid)
            .ok()
            .and_then(|i| self.interfaces.get(i))
        else {
            state.anomalies.push(Anomaly::new(
                "bad_interface",
                Some(frame),
                format!(
                    "packet refers to interface {iid}, section {} has {count}; packet skipped",
                    self.section
                ),
            ));
            return;
        };
        let linktype = iface.linktype;
        let is_supported = u32::try_from(linktype).map(supported).unwrap_or(false);
        if !is_supported && self.reported.insert((self.section, iid)) {
            state.anomalies.push(Anomaly::new(
                "unsupported_linktype",
                Some(frame),
                format!(
                    "interface {iid} of section {}: {}; its packets are skipped",
                    self.section,
                    unsupported_text(linktype)
                ),
            ));
        }
    }

    /// Parse an Interface Description Block and append its interface.
    fn add_interface(
        &mut self,
        state: &mut CaptureState,
        buf: &[u8],
        pos: usize,
        blen: u32,
        where_: u64,
    ) {
        if blen < 20 {
            let detail = "interface description too short; its packets skipped";
            bad_block(state, where_, None, detail.to_string());
            let bad = Interface {
                linktype: -1,
                units: Units::Pow10(0),
                offset: 0,
                snaplen: 0,
                skip: true,
            };
            self.interfaces.push(bad);
            return;
        }
        let o = self.order;
        let linktype = o.u16(buf, pos + 8);
        let snaplen = o.u32(buf, pos + 12);
        let mut units = Units::Pow10(6);
        let mut offset = 0i64;
        let mut p = pos + 16;
        let end = pos + blen as usize - 4;
        while p + 4 <= end {
            let code = o.u16(buf, p);
            let length = usize::from(o.u16(buf, p + 2));
            if code == 0 {
                break;
            }
            if p + 4 + length > end {
                let detail = "interface option overruns the block; ignored";
                bad_block(state, where_, None, detail.to_string());
                break;
            }
            if code == OPT_IF_TSRESOL && length >= 1 {
                let res = u32::from(buf.get(p + 4).copied().unwrap_or(0));
                units = if res & 0x80 != 0 {
                    Units::Pow2(res & 0x7F)
                } else {
                    Units::Pow10(res)
                };
            } else if code == OPT_IF_TSOFFSET && length >= 8 {
                offset = o.i64(buf, p + 4);
            }
            p += 4 + ((length + 3) & !3);
        }
        let skip = !supported(u32::from(linktype));
        self.interfaces.push(Interface {
            linktype: i64::from(linktype),
            units,
            offset,
            snaplen,
            skip,
        });
    }

    /// Collect a Decryption Secrets Block.
    fn add_secrets(
        &mut self,
        state: &mut CaptureState,
        buf: &[u8],
        pos: usize,
        blen: u32,
        where_: u64,
    ) {
        if blen >= 20 {
            let secrets_type = self.order.u32(buf, pos + 8);
            let length = self.order.u32(buf, pos + 12);
            if length <= blen - 20 {
                let data = buf.get(pos + 16..pos + 16 + length as usize).unwrap_or(&[]);
                state.secrets.push((secrets_type, data.to_vec()));
                return;
            }
        }
        bad_block(
            state,
            where_,
            None,
            "decryption secrets overrun the block".to_string(),
        );
    }
}

/// Record a malformed block (`_bad_block`).
fn bad_block(state: &mut CaptureState, offset: u64, frame: Option<u64>, detail: String) {
    state.anomalies.push(Anomaly::new(
        "bad_block",
        frame,
        format!("block at byte {offset}: {detail}"),
    ));
}

/// Lower-case hex, as `bytes.hex()`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
