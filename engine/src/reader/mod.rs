//! Capture file reading: the port of `tlspcap.capture.reader`, `source`, `pcap`, `pcapng` and
//! `snoop`. OWNER: helper "reader" fills this in; the public API below is fixed (the bindings
//! in `py.rs` and the decode stage use it).
//!
//! gzip is not handled here: the Python wrapper sniffs the gzip magic and hands the engine
//! Python's own decompressing stream (`GzipFile.read1`), so that a corrupt or cut gzip stream
//! reads exactly as on the pure path (same `read_error` texts). Memory bounds are those of the
//! Python reader (1 MiB chunks, 256 KiB pcap records, 16 MiB pcapng blocks).
//!
//! The parsers are hand-written line-by-line ports, not a crate such as `pcap-parser`: the
//! anomaly texts, offsets, bounds and float arithmetic must be exactly those of the Python
//! reference.

mod pcap;
mod pcapng;
mod snoop;
mod source;
mod ts;

use crate::linktypes::{supported, unsupported_message};
use crate::model::{Anomaly, RawPacket};
use source::ByteSource;
use source::CaptureState;

/// `formats.HEAD_SIZE`: bytes of the file `formats.identify` looks at.
pub const HEAD_SIZE: usize = 8192;

/// A packet record found by a parser: its data is `buf[start..start + len]` of the source.
#[derive(Clone, Copy, Debug)]
struct Record {
    frame: u64,
    ts: f64,
    linktype: u32,
    start: usize,
    len: usize,
    orig_len: u64,
}

/// The packet generator of the format being read.
enum Parser {
    Pcap(pcap::PcapParser),
    Pcapng(Box<pcapng::PcapngParser>),
    Snoop(snoop::SnoopParser),
}

/// Reads up to `n` bytes (an empty vector at the end of the stream); `Err` carries the text the
/// Python `ByteSource` would record, `"{ExceptionType}: {message}"`.
pub type ReadFn = Box<dyn FnMut(usize) -> Result<Vec<u8>, String>>;

/// Why a stream cannot be read as a capture at all (the constructor's errors in Python).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// `CaptureError(reason, offset)`.
    Capture { reason: String, offset: Option<u64> },
    /// A snoop file of another version or datalink: `ForeignFormatError(formats.SNOOP, inside)`.
    ForeignSnoop { inside: String },
    /// Unknown magic. Python runs `formats.identify(head)` (head = the first
    /// `formats.HEAD_SIZE` = 8192 bytes, fewer when the file is shorter): a foreign format gives
    /// `ForeignFormatError(fmt, inside)`, otherwise `CaptureError(reason, offset=0)`.
    Unrecognised {
        head: Vec<u8>,
        inside: String,
        reason: String,
    },
}

/// A capture being read; the Rust twin of `CaptureReader`.
pub struct CaptureReader {
    src: ByteSource,
    state: CaptureState,
    parser: Parser,
    format: String,
    /// The generator is exhausted (its `finally` has run).
    done: bool,
}

impl CaptureReader {
    /// Sniff the format and read the file header. `prefix` holds bytes already read from the
    /// stream (the 4 sniffed bytes, as in Python); `inside` is `" inside gzip"` or `""`, and the
    /// format name gets `"+gzip"` when it is not empty.
    pub fn open(read: ReadFn, prefix: Vec<u8>, inside: &str) -> Result<Self, OpenError> {
        let mut src = ByteSource::new(read, prefix);
        let suffix = if inside.is_empty() { "" } else { "+gzip" };
        src.fill(4);
        if let Some(error) = &src.error {
            return Err(OpenError::Capture {
                reason: format!("unreadable gzip data ({error})"),
                offset: Some(0),
            });
        }
        let magic = src.peek(4).to_vec();
        if magic.is_empty() {
            return Err(OpenError::Capture {
                reason: format!("empty file{inside}"),
                offset: Some(0),
            });
        }
        let (parser, format) = if pcap::magic(&magic).is_some() {
            let header = pcap::read_header(&mut src)?;
            if !supported(header.linktype) {
                return Err(OpenError::Capture {
                    reason: unsupported_message(header.linktype),
                    offset: Some(20),
                });
            }
            let name = if header.nanoseconds {
                "pcap-ns"
            } else {
                "pcap"
            };
            (Parser::Pcap(pcap::PcapParser::new(header)), name)
        } else if magic == pcapng::SHB_MAGIC {
            (
                Parser::Pcapng(Box::new(pcapng::PcapngParser::new(&mut src)?)),
                "pcapng",
            )
        } else if src.fill(8) && src.peek(8) == snoop::MAGIC {
            snoop::read_header(&mut src, inside)?;
            (Parser::Snoop(snoop::SnoopParser::default()), "snoop")
        } else {
            src.fill(HEAD_SIZE);
            let head = src.peek(HEAD_SIZE).to_vec();
            let reason = if magic.len() < 4 {
                format!("not a pcap/pcapng file{inside} ({} bytes)", magic.len())
            } else {
                format!(
                    "not a pcap/pcapng file{inside} (magic 0x{})",
                    pcapng::hex(&magic)
                )
            };
            return Err(OpenError::Unrecognised {
                head,
                inside: inside.to_string(),
                reason,
            });
        };
        Ok(CaptureReader {
            src,
            state: CaptureState::default(),
            parser,
            format: format!("{format}{suffix}"),
            done: false,
        })
    }

    /// `pcap`, `pcap-ns`, `pcapng` or `snoop`, with `+gzip` when compressed.
    pub fn format(&self) -> &str {
        &self.format
    }

    /// The next packet record of a decodable link type, or `None` at the end (malformed input
    /// ends reading and leaves an anomaly). Never panics on any input.
    pub fn next_packet(&mut self) -> Option<RawPacket<'_>> {
        if self.done {
            return None;
        }
        let (src, state) = (&mut self.src, &mut self.state);
        let rec = match &mut self.parser {
            Parser::Pcap(p) => p.next(src, state),
            Parser::Pcapng(p) => p.next(src, state),
            Parser::Snoop(p) => p.next(src, state),
        };
        let Some(rec) = rec else {
            self.done = true;
            return None;
        };
        let end = rec.start.saturating_add(rec.len);
        Some(RawPacket {
            frame: rec.frame,
            ts: rec.ts,
            linktype: rec.linktype,
            data: self.src.buf.get(rec.start..end).unwrap_or(&[]),
            orig_len: rec.orig_len,
        })
    }

    /// File-level anomalies so far (complete at the end), in Python's order.
    pub fn anomalies(&self) -> &[Anomaly] {
        &self.state.anomalies
    }

    /// pcapng Decryption Secrets Blocks `(secrets_type, data)` read so far, in file order.
    pub fn secrets(&self) -> &[(u32, Vec<u8>)] {
        &self.state.secrets
    }

    /// The file ended inside a record or block (or the stream was cut).
    pub fn truncated(&self) -> bool {
        self.state.truncated
    }

    /// Bytes obtained from the read function so far, plus the prefix (`ByteSource.total_read`).
    pub fn total_read(&self) -> u64 {
        self.src.total_read
    }
}
