//! Capture file reading: the port of `tlspcap.capture.reader`, `source`, `pcap`, `pcapng` and
//! `snoop`. OWNER: helper "reader" fills this in; the public API below is fixed (the bindings
//! in `py.rs` and the decode stage use it).
//!
//! gzip is not handled here: the Python wrapper sniffs the gzip magic and hands the engine
//! Python's own decompressing stream (`GzipFile.read1`), so that a corrupt or cut gzip stream
//! reads exactly as on the pure path (same `read_error` texts). Memory bounds are those of the
//! Python reader (1 MiB chunks, 256 KiB pcap records, 16 MiB pcapng blocks).

use crate::model::{Anomaly, RawPacket};

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
    /// `formats.HEAD_SIZE` = 64 bytes, fewer when the file is shorter): a foreign format gives
    /// `ForeignFormatError(fmt, inside)`, otherwise `CaptureError(reason, offset=0)`.
    Unrecognised { head: Vec<u8>, inside: String, reason: String },
}

/// A capture being read; the Rust twin of `CaptureReader`.
pub struct CaptureReader {
    _private: (),
}

impl CaptureReader {
    /// Sniff the format and read the file header. `prefix` holds bytes already read from the
    /// stream (the 4 sniffed bytes, as in Python); `inside` is `" inside gzip"` or `""`, and the
    /// format name gets `"+gzip"` when it is not empty.
    pub fn open(_read: ReadFn, _prefix: Vec<u8>, _inside: &str) -> Result<Self, OpenError> {
        todo!("reader helper")
    }

    /// `pcap`, `pcap-ns`, `pcapng` or `snoop`, with `+gzip` when compressed.
    pub fn format(&self) -> &str {
        todo!()
    }

    /// The next packet record of a decodable link type, or `None` at the end (malformed input
    /// ends reading and leaves an anomaly). Never panics on any input.
    pub fn next_packet(&mut self) -> Option<RawPacket<'_>> {
        todo!()
    }

    /// File-level anomalies so far (complete at the end), in Python's order.
    pub fn anomalies(&self) -> &[Anomaly] {
        todo!()
    }

    /// pcapng Decryption Secrets Blocks `(secrets_type, data)` read so far, in file order.
    pub fn secrets(&self) -> &[(u32, Vec<u8>)] {
        todo!()
    }

    /// The file ended inside a record or block (or the stream was cut).
    pub fn truncated(&self) -> bool {
        todo!()
    }

    /// Bytes obtained from the read function so far, plus the prefix (`ByteSource.total_read`).
    pub fn total_read(&self) -> u64 {
        todo!()
    }
}
