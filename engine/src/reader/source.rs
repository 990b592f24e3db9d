//! Bounded-memory buffering of a stream and the state the format parsers share: the port of
//! `tlspcap.capture.source` (`ByteSource`, `CaptureState`).

use super::ReadFn;
use crate::model::Anomaly;

/// Bytes asked of the underlying stream per read (`CHUNK_SIZE`).
pub const CHUNK_SIZE: usize = 1 << 20;

/// A growing window over a stream: `buf[pos..]` are the bytes not yet consumed.
///
/// Unlike Python, the buffer is one `Vec` compacted in place, but `fill` asks the read function
/// for exactly the sizes Python asks for, at the same moments, so `total_read`, `base` and the
/// behaviour on read errors are the same.
pub struct ByteSource {
    read: ReadFn,
    /// Buffered bytes; `buf[pos..]` is unread.
    pub buf: Vec<u8>,
    /// Position of the next unread byte in `buf`.
    pub pos: usize,
    /// Offset in the (decompressed) file of `buf[0]`.
    pub base: u64,
    /// The stream reported its end (or failed).
    pub eof: bool,
    /// Why reading failed, when it did (`"{ExceptionType}: {message}"`).
    pub error: Option<String>,
    /// Bytes obtained from `read` so far, plus the prefix.
    pub total_read: u64,
}

impl ByteSource {
    /// A source that first yields `prefix`, then what `read` returns.
    pub fn new(read: ReadFn, prefix: Vec<u8>) -> Self {
        let total_read = prefix.len() as u64;
        ByteSource {
            read,
            buf: prefix,
            pos: 0,
            base: 0,
            eof: false,
            error: None,
            total_read,
        }
    }

    /// Offset in the (decompressed) file of the next unread byte.
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Bytes buffered but not consumed yet.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Up to `n` unread bytes starting at `pos` (fewer at the end of the buffer).
    pub fn peek(&self, n: usize) -> &[u8] {
        let end = self.pos.saturating_add(n).min(self.buf.len());
        self.buf.get(self.pos..end).unwrap_or(&[])
    }

    /// Make `n` unread bytes available at `buf[pos..]`, reading as needed (`ByteSource.fill`).
    ///
    /// Returns `false` when the stream ends (or fails; see `error`) first; the bytes that were
    /// there stay buffered. `pos` is reset to 0 when the buffer is rebuilt.
    pub fn fill(&mut self, n: usize) -> bool {
        let mut have = self.remaining();
        if have >= n {
            return true;
        }
        self.base += self.pos as u64;
        if self.pos > 0 {
            let len = self.buf.len();
            self.buf.copy_within(self.pos.min(len).., 0);
            self.buf.truncate(have);
            self.pos = 0;
        }
        while have < n && !self.eof {
            match (self.read)(CHUNK_SIZE.max(n - have)) {
                Err(text) => {
                    self.error = Some(text);
                    self.eof = true;
                    break;
                }
                Ok(data) => {
                    if data.is_empty() {
                        self.eof = true;
                        break;
                    }
                    self.total_read += data.len() as u64;
                    have += data.len();
                    if self.buf.is_empty() {
                        self.buf = data;
                    } else {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
        have >= n
    }
}

/// What a format parser reports besides packets (`CaptureState`).
#[derive(Default)]
pub struct CaptureState {
    /// File-level anomalies, in the order they were found.
    pub anomalies: Vec<Anomaly>,
    /// pcapng Decryption Secrets Blocks as `(secrets_type, data)`, in file order.
    pub secrets: Vec<(u32, Vec<u8>)>,
    /// The file ended in the middle of a record or block (or its gzip stream was cut).
    pub truncated: bool,
}

impl CaptureState {
    /// Record why reading stopped early: a partial record/block at the end or a read error.
    pub fn note_end(&mut self, src: &ByteSource, frame: Option<u64>, what: &str) {
        let remaining = src.remaining();
        if remaining != 0 {
            self.truncated = true;
            self.anomalies.push(Anomaly::new(
                "truncated_record",
                frame,
                format!(
                    "file ends inside a {what} at byte {} ({remaining} bytes of it present); \
                     the partial record is ignored",
                    src.offset()
                ),
            ));
        }
        if let Some(error) = &src.error {
            self.truncated = self.truncated || error.starts_with("EOFError");
            self.anomalies.push(Anomaly::new(
                "read_error",
                None,
                format!("reading stopped at byte {}: {error}", src.offset()),
            ));
        }
    }

    /// Record, once per file, how many packets the capture cut shorter than the wire.
    pub fn note_snaplen(&mut self, cut: u64, first_cut: u64, snaplen: &str) {
        if cut != 0 {
            self.anomalies.push(Anomaly::new(
                "snaplen_truncated",
                Some(first_cut),
                format!(
                    "{cut} packet(s) captured shorter than on the wire (snaplen {snaplen}), \
                     first at frame {first_cut}"
                ),
            ));
        }
    }
}

/// Big- or little-endian field access that never panics (out of range reads give 0; the
/// parsers only read ranges they made sure are buffered).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Order {
    pub big: bool,
}

impl Order {
    pub const LITTLE: Order = Order { big: false };
    pub const BIG: Order = Order { big: true };

    #[inline]
    pub fn u16(self, buf: &[u8], pos: usize) -> u16 {
        match buf
            .get(pos..pos.wrapping_add(2))
            .and_then(|s| <[u8; 2]>::try_from(s).ok())
        {
            Some(b) if self.big => u16::from_be_bytes(b),
            Some(b) => u16::from_le_bytes(b),
            None => 0,
        }
    }

    #[inline]
    pub fn u32(self, buf: &[u8], pos: usize) -> u32 {
        match buf
            .get(pos..pos.wrapping_add(4))
            .and_then(|s| <[u8; 4]>::try_from(s).ok())
        {
            Some(b) if self.big => u32::from_be_bytes(b),
            Some(b) => u32::from_le_bytes(b),
            None => 0,
        }
    }

    #[inline]
    pub fn i64(self, buf: &[u8], pos: usize) -> i64 {
        match buf
            .get(pos..pos.wrapping_add(8))
            .and_then(|s| <[u8; 8]>::try_from(s).ok())
        {
            Some(b) if self.big => i64::from_be_bytes(b),
            Some(b) => i64::from_le_bytes(b),
            None => 0,
        }
    }
}
