//! Differential check of the decode stage against the Python reference.
//!
//! Reads a packet file written by the Python harness (records: `C` + u32 name length + name +
//! u64 max_datagrams + u64 max_bytes starts a capture, i.e. a new `PacketDecoder`; `P` + u64
//! frame + u64 ts bits + u32 linktype + u64 orig_len + u32 length + data is one packet; all
//! little-endian) and prints the canonical dump the harness prints for Python: one line per
//! decoded item, then the anomalies and the accounting line of each capture.
//!
//! usage: `dump_decode PACKETS.bin > rust.txt` (then `diff` with the Python dump).

use std::fmt::Write as _;
use std::io::{BufWriter, Write};

use tlspcap_engine::decode::PacketDecoder;
use tlspcap_engine::model::{Decoded, RawPacket};

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
        c = table[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8);
    }
    !c
}

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

fn summary(b: &[u8]) -> String {
    format!(
        "{}:{:08x}:{}",
        b.len(),
        crc32(b),
        hex(&b[..b.len().min(16)])
    )
}

fn f64hex(x: f64) -> String {
    hex(&x.to_le_bytes())
}

fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    match v {
        Some(v) => v.to_string(),
        None => "None".to_string(),
    }
}

struct Cursor<'a> {
    d: &'a [u8],
    p: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let s = &self.d[self.p..self.p + n];
        self.p += n;
        s
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take(4).try_into().unwrap())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take(8).try_into().unwrap())
    }
}

fn finish(dec: &mut PacketDecoder, out: &mut impl Write) {
    dec.finish();
    for a in dec.anomalies() {
        writeln!(out, "A|{}|{}|{}", a.name, opt(&a.frame), a.detail).unwrap();
    }
    writeln!(
        out,
        "Z|{}|{}|{}",
        dec.accounted(),
        dec.pending_fragments(),
        dec.held_fragment_bytes()
    )
    .unwrap();
}

fn main() {
    let path = std::env::args()
        .nth(1)
        .expect("usage: dump_decode PACKETS.bin");
    let data = std::fs::read(path).expect("read packet file");
    if std::env::var_os("DUMP_BENCH").is_some() {
        return bench(&data);
    }
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut cur = Cursor { d: &data, p: 0 };
    let mut dec: Option<PacketDecoder> = None;
    let mut items = Vec::new();
    let started = std::time::Instant::now();
    let mut packets = 0u64;
    while cur.p < data.len() {
        match cur.take(1)[0] {
            b'C' => {
                if let Some(mut d) = dec.take() {
                    finish(&mut d, &mut out);
                }
                let n = cur.u32() as usize;
                let name = String::from_utf8_lossy(cur.take(n)).into_owned();
                let (md, mb) = (cur.u64(), cur.u64());
                writeln!(out, "# {name}").unwrap();
                dec = Some(if md != 0 {
                    PacketDecoder::with_bounds(md as usize, mb)
                } else {
                    PacketDecoder::new()
                });
            }
            b'P' => {
                let frame = cur.u64();
                let ts = f64::from_bits(cur.u64());
                let linktype = cur.u32();
                let orig_len = cur.u64();
                let n = cur.u32() as usize;
                let bytes = cur.take(n);
                let packet = RawPacket {
                    frame,
                    ts,
                    linktype,
                    data: bytes,
                    orig_len,
                };
                let Some(d) = dec.as_mut() else {
                    panic!("packet before capture")
                };
                items.clear();
                d.decode(&packet, &mut items);
                packets += 1;
                for item in &items {
                    match item {
                        Decoded::Segment(s) => writeln!(
                            out,
                            "S|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}",
                            s.frame,
                            f64hex(s.ts),
                            hex(&s.src),
                            s.sport,
                            hex(&s.dst),
                            s.dport,
                            s.seq,
                            s.ack,
                            s.flags,
                            summary(&s.payload),
                            s.missing,
                            s.ttl,
                            s.ip_id,
                            s.window,
                            hex(&s.options),
                            opt(&s.tunnel),
                            s.fragments
                        )
                        .unwrap(),
                        Decoded::Icmp(e) => writeln!(
                            out,
                            "I|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}",
                            e.frame,
                            f64hex(e.ts),
                            e.version,
                            e.icmp_type,
                            e.code,
                            hex(&e.router),
                            e.ttl,
                            hex(&e.src),
                            e.sport,
                            hex(&e.dst),
                            e.dport,
                            e.seq,
                            opt(&e.mtu),
                            opt(&e.tunnel)
                        )
                        .unwrap(),
                    }
                }
            }
            other => panic!("bad record type {other}"),
        }
    }
    if let Some(mut d) = dec.take() {
        finish(&mut d, &mut out);
    }
    out.flush().unwrap();
    eprintln!("{packets} packets in {:?}", started.elapsed());
}

/// `DUMP_BENCH=1`: decode every packet 5 times over, printing only the throughput.
fn bench(data: &[u8]) {
    let mut packets = Vec::new();
    let mut cur = Cursor { d: data, p: 0 };
    while cur.p < data.len() {
        if cur.take(1)[0] == b'C' {
            let n = cur.u32() as usize;
            cur.take(n + 16);
            continue;
        }
        let frame = cur.u64();
        let ts = f64::from_bits(cur.u64());
        let linktype = cur.u32();
        let orig_len = cur.u64();
        let n = cur.u32() as usize;
        packets.push(RawPacket {
            frame,
            ts,
            linktype,
            data: cur.take(n),
            orig_len,
        });
    }
    let started = std::time::Instant::now();
    let mut out = Vec::new();
    let mut segments = 0usize;
    for _ in 0..5 {
        let mut dec = PacketDecoder::new();
        for p in &packets {
            out.clear();
            dec.decode(p, &mut out);
            segments += out.len();
        }
        dec.finish();
    }
    let el = started.elapsed();
    let n = 5 * packets.len();
    eprintln!(
        "{n} packets, {segments} items in {el:?}: {:.0} ns/packet",
        el.as_nanos() as f64 / n as f64
    );
}
