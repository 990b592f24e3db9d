//! Fuzz smoke run of the whole packet stage: the reader and the decoder on hostile bytes.
//!
//! `cargo fuzz` needs a nightly toolchain; this machine kind has only stable Rust, so the
//! fuzzing is done by proptest: mutations of the shipped fixtures (byte flips, cuts, splices)
//! and arbitrary bytes behind every capture magic. A panic, a hang or an unbounded output fails
//! the run. `PROPTEST_CASES` sets the number of cases (`make engine-test` runs 200,000).

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use tlspcap_engine::decode::PacketDecoder;
use tlspcap_engine::model::Decoded;
use tlspcap_engine::reader::{CaptureReader, ReadFn};

/// The most packet records a fuzz input of this size could hold (a pcap record header is 16
/// bytes, a pcapng EPB 32): reading must end within it.
fn record_bound(len: usize) -> u64 {
    (len / 12 + 2) as u64
}

fn read_fn(data: Vec<u8>, chunk: usize) -> ReadFn {
    let mut pos = 0usize;
    Box::new(move |n: usize| {
        let end = data.len().min(pos + n.min(chunk.max(1)));
        let out = data[pos..end].to_vec();
        pos = end;
        Ok(out)
    })
}

/// Read and decode `data` whole; returns (packets, items).
fn run(data: &[u8], chunk: usize) -> (u64, usize) {
    let prefix = data[..data.len().min(4)].to_vec();
    let rest = data[prefix.len()..].to_vec();
    let Ok(mut reader) = CaptureReader::open(read_fn(rest, chunk), prefix, "") else {
        return (0, 0);
    };
    let mut decoder = PacketDecoder::new();
    let mut out: Vec<Decoded> = Vec::new();
    let mut packets = 0u64;
    let mut items = 0usize;
    while let Some(packet) = reader.next_packet() {
        packets += 1;
        assert!(
            packets <= record_bound(data.len()),
            "more records than the bytes allow"
        );
        out.clear();
        decoder.decode(&packet, &mut out);
        assert!(out.len() <= 16, "one packet gave {} items", out.len());
        items += out.len();
    }
    decoder.finish();
    let anomalies = decoder.anomalies();
    assert!(anomalies.len() < 200, "{} anomalies", anomalies.len());
    assert!(reader.anomalies().len() < 200);
    (packets, items)
}

/// The fixtures the mutations start from (read once).
fn seeds() -> &'static [Vec<u8>] {
    static SEEDS: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    SEEDS.get_or_init(read_seeds)
}

fn read_seeds() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in ["real", "crafted"] {
        if let Ok(entries) = std::fs::read_dir(root.join(dir)) {
            files.extend(entries.flatten().map(|e| e.path()));
        }
    }
    files.sort();
    let mut out: Vec<Vec<u8>> = files
        .iter()
        .filter(|p| {
            let name = p.to_string_lossy();
            (name.ends_with(".pcap") || name.ends_with(".pcapng"))
                && std::fs::metadata(p)
                    .map(|m| m.len() < 64_000)
                    .unwrap_or(false)
        })
        .filter_map(|p| std::fs::read(p).ok())
        .collect();
    if out.is_empty() {
        out.push(b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00".to_vec());
    }
    out
}

const MAGICS: &[&[u8]] = &[
    b"\xd4\xc3\xb2\xa1",
    b"\xa1\xb2\xc3\xd4",
    b"\x4d\x3c\xb2\xa1",
    b"\xa1\xb2\x3c\x4d",
    b"\x0a\x0d\x0d\x0a",
    b"snoop\x00\x00\x00",
];

#[test]
fn every_seed_reads_whole() {
    for seed in seeds() {
        let (packets, _) = run(seed, 1 << 20);
        assert!(packets > 0);
        // reading in tiny chunks gives the same packets (buffer refills at every boundary)
        assert_eq!(run(seed, 7), run(seed, 1 << 20));
    }
}

proptest! {
    #[test]
    fn mutated_fixtures(
        pick in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..16),
        cut in prop::option::of(any::<prop::sample::Index>()),
        chunk in 1usize..70_000,
    ) {
        let seeds = seeds();
        let mut data = seeds[pick.index(seeds.len())].clone();
        for (at, value) in edits {
            let i = at.index(data.len());
            data[i] = value;
        }
        if let Some(cut) = cut {
            data.truncate(cut.index(data.len() + 1));
        }
        run(&data, chunk);
    }

    #[test]
    fn arbitrary_bytes_behind_each_magic(
        magic in prop::sample::select(MAGICS),
        rest in prop::collection::vec(any::<u8>(), 0..2048),
    ) {
        let mut data = magic.to_vec();
        data.extend_from_slice(&rest);
        run(&data, 1 << 20);
    }
}
