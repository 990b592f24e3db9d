//! Canonical dump of what `CaptureReader` reads from a plain (not gzip) capture file, for the
//! differential check against the Python reader.
//!
//! `dump_reader PATH [FAIL_AFTER KIND]`: with `FAIL_AFTER`, the stream fails (`KIND` is the
//! exception type, e.g. `OSError`) once that many bytes of the file have been delivered, the way
//! the Python test stream does. Output lines: `format=...` or `error=...`, `P frame ts-hex
//! linktype orig_len crc32 len` per packet, `A name|frame|detail`, `truncated=`, `S type len
//! crc32`, `total_read=`. With `DUMP_COUNT_ONLY` set, only counts packets and times reading.

use std::fs::File;
use std::io::Read;

use tlspcap_engine::reader::{CaptureReader, OpenError};

/// CRC-32 (IEEE, as `zlib.crc32`).
fn crc32(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, slot) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *slot = c;
        }
        t
    });
    let mut c = !0u32;
    for &b in data {
        c = table[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8);
    }
    !c
}

/// A file read like Python's buffered `read(n)` (exactly `n` bytes unless at the end), that
/// fails once `fail_after` bytes have been delivered.
struct Stream {
    file: File,
    pos: u64,
    fail: Option<(u64, String)>,
    /// At most this many bytes per read (`DUMP_MAX_READ`), like a gzip stream's `read1`.
    max_read: u64,
}

impl Stream {
    fn read(&mut self, n: usize) -> Result<Vec<u8>, String> {
        let mut want = (n as u64).min(self.max_read);
        if let Some((limit, kind)) = &self.fail {
            if self.pos >= *limit {
                return Err(format!("{kind}: injected failure"));
            }
            want = want.min(limit - self.pos);
        }
        let mut out = Vec::new();
        (&mut self.file)
            .take(want)
            .read_to_end(&mut out)
            .map_err(|e| format!("OSError: {e}"))?;
        self.pos += out.len() as u64;
        Ok(out)
    }
}

fn frame(f: Option<u64>) -> String {
    f.map_or_else(|| "None".to_string(), |f| f.to_string())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .expect("usage: dump_reader PATH [FAIL_AFTER KIND]");
    let fail = match (args.get(2), args.get(3)) {
        (Some(n), Some(kind)) => Some((n.parse::<u64>().expect("FAIL_AFTER"), kind.clone())),
        _ => None,
    };
    let file = File::open(path).expect("open");
    let max_read = std::env::var("DUMP_MAX_READ")
        .ok()
        .and_then(|v| v.parse().ok());
    let mut stream = Stream {
        file,
        pos: 0,
        fail,
        max_read: max_read.unwrap_or(u64::MAX),
    };
    // `_read_exactly(stream, 4)`, as the Python wrapper does before opening the engine.
    let mut prefix = Vec::new();
    while prefix.len() < 4 {
        match stream.read(4 - prefix.len()) {
            Ok(data) if data.is_empty() => break,
            Ok(data) => prefix.extend_from_slice(&data),
            Err(e) => {
                let msg = e.split_once(": ").map_or(e.as_str(), |x| x.1);
                println!("error=Capture|0|cannot read the stream: {msg}");
                return;
            }
        }
    }
    // DUMP_INSIDE_GZIP: the file holds the decompressed bytes of a gzip capture; open it the
    // way the Python wrapper opens a gzip stream (no prefix, `inside = " inside gzip"`).
    let inside = if std::env::var_os("DUMP_INSIDE_GZIP").is_some() {
        " inside gzip"
    } else {
        ""
    };
    if !inside.is_empty() {
        stream.file = File::open(path).expect("open");
        stream.pos = 0;
        prefix.clear();
    } else if prefix.starts_with(b"\x1f\x8b") {
        println!("skip=gzip");
        return;
    }
    let read = Box::new(move |n: usize| stream.read(n));
    let mut reader = match CaptureReader::open(read, prefix, inside) {
        Ok(r) => r,
        Err(OpenError::Capture { reason, offset }) => {
            println!("error=Capture|{}|{reason}", frame(offset));
            return;
        }
        Err(OpenError::ForeignSnoop { inside }) => {
            println!("error=ForeignSnoop|{inside}");
            return;
        }
        Err(OpenError::Unrecognised {
            head,
            inside,
            reason,
        }) => {
            println!(
                "error=Unrecognised|{:08x}|{}|{inside}|{reason}",
                crc32(&head),
                head.len()
            );
            return;
        }
    };
    println!("format={}", reader.format());
    if std::env::var_os("DUMP_COUNT_ONLY").is_some() {
        // Throughput check: no hashing or printing per packet.
        let (mut n, mut bytes, mut ts) = (0u64, 0u64, 0f64);
        let start = std::time::Instant::now();
        while let Some(p) = reader.next_packet() {
            n += 1;
            bytes += p.data.len() as u64;
            ts += p.ts;
        }
        let secs = start.elapsed().as_secs_f64();
        println!("packets={n} bytes={bytes} ts_sum={ts} seconds={secs:.3}");
        println!("total_read={}", reader.total_read());
        return;
    }
    println!("total_read_open={}", reader.total_read());
    let mut out = String::new();
    while let Some(p) = reader.next_packet() {
        use std::fmt::Write;
        let ts: String =
            p.ts.to_bits()
                .to_le_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
        let _ = writeln!(
            out,
            "P {} {ts} {} {} {:08x} {}",
            p.frame,
            p.linktype,
            p.orig_len,
            crc32(p.data),
            p.data.len()
        );
    }
    print!("{out}");
    for a in reader.anomalies() {
        println!("A {}|{}|{}", a.name, frame(a.frame), a.detail);
    }
    println!(
        "truncated={}",
        if reader.truncated() { "True" } else { "False" }
    );
    for (t, data) in reader.secrets() {
        println!("S {t} {} {:08x}", data.len(), crc32(data));
    }
    println!("total_read={}", reader.total_read());
    // Exhausted: further calls return nothing.
    assert!(reader.next_packet().is_none());
}
