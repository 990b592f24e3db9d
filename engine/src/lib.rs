//! tlspcap's compiled packet stage.
//!
//! [`reader`] reads pcap, pcapng and snoop files into raw packet records, [`decode`] turns them
//! into TCP segments and ICMP errors (link layers, tunnels, IP fragments, snap length). Both are
//! line-by-line ports of `tlspcap.capture`: the pure-Python path is the reference, and the
//! differential tests (`tests/test_engine.py`) hold the engine to byte-identical results.
//! With the `python` feature, `py` exposes them as the extension module `tlspcap_engine`.

pub mod decode;
pub mod lane;
pub mod linktypes;
pub mod model;
pub mod reader;

#[cfg(feature = "python")]
mod py;

use std::io::Read;

/// Read and decode a plain (uncompressed) capture file without Python: the benchmark's floor
/// and a smoke check. Returns `(packets, segments, payload_bytes)`, or why it could not run.
pub fn scan_file(path: &std::path::Path) -> Result<(u64, u64, u64), String> {
    let mut file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut prefix = [0u8; 4];
    let got = file.read(&mut prefix).map_err(|e| e.to_string())?;
    let read: reader::ReadFn = Box::new(move |n| {
        let mut buf = vec![0u8; n];
        let got = file.read(&mut buf).map_err(|e| format!("OSError: {e}"))?;
        buf.truncate(got);
        Ok(buf)
    });
    let mut capture = reader::CaptureReader::open(read, prefix[..got].to_vec(), "")
        .map_err(|e| format!("{e:?}"))?;
    let mut decoder = decode::PacketDecoder::new();
    let mut out = Vec::new();
    let (mut packets, mut segments, mut bytes) = (0u64, 0u64, 0u64);
    while let Some(packet) = capture.next_packet() {
        packets += 1;
        out.clear();
        decoder.decode(&packet, &mut out);
        for item in &out {
            if let model::Decoded::Segment(s) = item {
                segments += 1;
                bytes += s.payload.len() as u64;
            }
        }
    }
    decoder.finish();
    Ok((packets, segments, bytes))
}
