//! Tests of the capture reader through its public API: expected values come from the Python
//! reference (`tlspcap.capture.reader.CaptureReader` on the same bytes), and property tests
//! check that no input panics, reading terminates and results do not depend on read sizes.

use std::cell::RefCell;
use std::rc::Rc;

use proptest::prelude::*;
use tlspcap_engine::reader::{CaptureReader, OpenError, ReadFn};

/// A read function over `data` from `start` that returns at most `max` bytes per call
/// (`usize::MAX`: what was asked, like a plain file), failing with `fail` at `fail_at`.
fn read_fn(data: Vec<u8>, start: usize, max: usize, fail: Option<(usize, &'static str)>) -> ReadFn {
    let mut pos = start;
    Box::new(move |n: usize| {
        let mut end = pos.saturating_add(n.min(max)).min(data.len());
        if let Some((at, text)) = fail {
            if pos >= at {
                return Err(text.to_string());
            }
            end = end.min(at);
        }
        let out = data[pos..end].to_vec();
        pos = end;
        Ok(out)
    })
}

/// Open `data` as the Python wrapper does for a plain file: 4 sniffed bytes as the prefix.
fn open(data: &[u8]) -> Result<CaptureReader, OpenError> {
    let k = data.len().min(4);
    CaptureReader::open(
        read_fn(data.to_vec(), k, usize::MAX, None),
        data[..k].to_vec(),
        "",
    )
}

type Packet = (u64, u64, u32, Vec<u8>, u64);
type Anom = (String, Option<u64>, String);

#[derive(Debug, PartialEq)]
struct Dump {
    packets: Vec<Packet>,
    anomalies: Vec<Anom>,
    truncated: bool,
    secrets: Vec<(u32, Vec<u8>)>,
}

fn dump(mut r: CaptureReader) -> (Dump, u64) {
    let mut packets = Vec::new();
    while let Some(p) = r.next_packet() {
        packets.push((
            p.frame,
            p.ts.to_bits(),
            p.linktype,
            p.data.to_vec(),
            p.orig_len,
        ));
    }
    assert!(r.next_packet().is_none(), "stays exhausted");
    let anomalies = r
        .anomalies()
        .iter()
        .map(|a| (a.name.clone(), a.frame, a.detail.clone()))
        .collect();
    let d = Dump {
        packets,
        anomalies,
        truncated: r.truncated(),
        secrets: r.secrets().to_vec(),
    };
    (d, r.total_read())
}

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn a(name: &str, frame: Option<u64>, detail: &str) -> Anom {
    (name.to_string(), frame, detail.to_string())
}

fn capture_err(reason: &str, offset: u64) -> OpenError {
    OpenError::Capture {
        reason: reason.to_string(),
        offset: Some(offset),
    }
}

const PCAP_TRUNC: &str = "d4c3b2a102000400000000000000000060000000010000\
    0000f1536540e2010004000000040000006162636401f153653f420f00030000003c00000078797a02f1536501\
    0000000a0000000a0000003132333435";
const PCAPNS_BAD: &str = "a1b23c4d0002000400000000000000000000ffff000000\
    65000000053b9ac9ff0000000200000002686900000006000000000004000100040001";
const PCAPNG_MIX: &str = "0a0d0d0a0000001c1a2b3c4d00010000ffffffffffffff\
    ff0000001c000000010000002c00010000000000320009000109000000000e0008fffffffffffffff600000000\
    0000002c00000006000000280000000017979cfe3d85cd15000000050000004668656c6c6f0000000000002800\
    0000030000004c0000005073737373737373737373737373737373737373737373737373737373737373737373\
    73737373737373737373737373737373737373737373737373730000004c0000000a0000001c544c534b000000\
    05434c49454e5400000000001c0000000600000020000000030000000000000000000000000000000000000020\
    000000010000001400690000000000000000001400000006000000240000000100000000000000000000000100\
    000001770000000000002400000006000000240000000100000000000000000000000100000001770000000000\
    002400000bad000000106375737400000010000000060000002400000000000000000000000000000001000000\
    017a00000000";
const SNOOP_BAD: &str = "736e6f6f700000000000000200000004000000400000000\
    30000001c00000000000003e80007a12061626300000000030000000300001388000000000000000000000000";

#[test]
fn pcap_snaplen_and_truncated_record() {
    let r = open(&hex(PCAP_TRUNC)).unwrap();
    assert_eq!(r.format(), "pcap");
    let (d, total) = dump(r);
    assert_eq!(
        d.packets,
        vec![
            (1, 0x41d954fc4007e6b4, 1, b"abcd".to_vec(), 4),
            (2, 0x41d954fc407ffffc, 1, b"xyz".to_vec(), 60),
        ]
    );
    assert_eq!(
        d.anomalies,
        vec![
            a(
                "truncated_record",
                Some(3),
                "file ends inside a packet record at byte 63 (21 bytes of it present); \
                 the partial record is ignored"
            ),
            a(
                "snaplen_truncated",
                Some(2),
                "1 packet(s) captured shorter than on the wire (snaplen 96), first at frame 2"
            ),
        ]
    );
    assert!(d.truncated);
    assert_eq!(total, 84);
}

#[test]
fn pcap_ns_big_endian_bad_record() {
    let r = open(&hex(PCAPNS_BAD)).unwrap();
    assert_eq!(r.format(), "pcap-ns");
    let (d, total) = dump(r);
    assert_eq!(
        d.packets,
        vec![(1, 0x4017ffffffeed1f4, 101, b"hi".to_vec(), 2)]
    );
    assert_eq!(
        d.anomalies,
        vec![a(
            "bad_record",
            Some(2),
            "record at byte 42 claims 262145 captured bytes (limit 262144); reading stopped"
        )]
    );
    assert!(!d.truncated);
    assert_eq!(total, 58);
}

#[test]
fn pcapng_interfaces_spb_secrets() {
    let r = open(&hex(PCAPNG_MIX)).unwrap();
    assert_eq!(r.format(), "pcapng");
    let (d, total) = dump(r);
    // if_tsresol 9 and if_tsoffset -10; the SPB takes the previous timestamp.
    assert_eq!(
        d.packets,
        vec![
            (1, 0x41d954fc3d87e6b7, 1, b"hello".to_vec(), 70),
            (2, 0x41d954fc3d87e6b7, 1, vec![b's'; 50], 80),
        ]
    );
    assert_eq!(
        d.anomalies,
        vec![
            a(
                "bad_interface",
                Some(3),
                "packet refers to interface 3, section 1 has 1; packet skipped"
            ),
            a(
                "unsupported_linktype",
                Some(4),
                "interface 1 of section 1: unsupported link type 105 (IEEE802_11); \
                 its packets are skipped"
            ),
            a(
                "truncated_record",
                Some(7),
                "file ends inside a pcapng block at byte 356 (33 bytes of it present); \
                 the partial record is ignored"
            ),
            a(
                "snaplen_truncated",
                Some(1),
                "2 packet(s) captured shorter than on the wire (snaplen 5 bytes kept), \
                 first at frame 1"
            ),
        ]
    );
    assert!(d.truncated);
    assert_eq!(d.secrets, vec![(0x544C534B, b"CLIEN".to_vec())]);
    assert_eq!(total, 389);
}

#[test]
fn snoop_bad_record() {
    let r = open(&hex(SNOOP_BAD)).unwrap();
    assert_eq!(r.format(), "snoop");
    let (d, total) = dump(r);
    assert_eq!(
        d.packets,
        vec![(1, 0x408f440000000000, 1, b"abc".to_vec(), 64)]
    );
    assert_eq!(
        d.anomalies,
        vec![
            a(
                "bad_record",
                Some(2),
                "snoop record at byte 44 claims 3 captured bytes in a 5000-byte record \
                 (limits: 262144 bytes, 4096 of padding); reading stopped"
            ),
            a(
                "snaplen_truncated",
                Some(1),
                "1 packet(s) captured shorter than on the wire (snaplen unknown), first at frame 1"
            ),
        ]
    );
    assert_eq!(total, 68);
}

#[test]
fn open_errors_as_in_python() {
    let err = |d: &[u8]| open(d).err().unwrap();
    assert_eq!(err(b""), capture_err("empty file", 0));
    assert_eq!(
        err(&hex("d4c3")),
        OpenError::Unrecognised {
            head: hex("d4c3"),
            inside: String::new(),
            reason: "not a pcap/pcapng file (2 bytes)".into()
        }
    );
    assert_eq!(
        err(b"ABCDEFGH"),
        OpenError::Unrecognised {
            head: b"ABCDEFGH".to_vec(),
            inside: String::new(),
            reason: "not a pcap/pcapng file (magic 0x41424344)".into()
        }
    );
    assert_eq!(
        err(&hex("d4c3b2a100000000000000000000")),
        capture_err("truncated pcap file header (14 of 24 bytes)", 0)
    );
    assert_eq!(
        err(&hex("d4c3b2a10200040000000000000000000000000069000000")),
        capture_err("unsupported link type 105 (IEEE802_11)", 20)
    );
    assert_eq!(
        err(&hex("0a0d0d0a1c0000004d3c2b1b")),
        capture_err(
            "pcapng section header has bad byte-order magic 0x4d3c2b1b",
            0
        )
    );
    assert_eq!(
        err(&hex("736e6f6f700000000000000100000004")),
        OpenError::ForeignSnoop {
            inside: String::new()
        }
    );
}

#[test]
fn unrecognised_head_is_8192_bytes() {
    let data = vec![0x42u8; 20000];
    match open(&data) {
        Err(OpenError::Unrecognised { head, .. }) => assert_eq!(head.len(), 8192),
        other => panic!("{:?}", other.err()),
    }
}

#[test]
fn gzip_inside_suffix_and_errors() {
    let data = hex(PCAP_TRUNC);
    let r = CaptureReader::open(read_fn(data, 0, 7, None), Vec::new(), " inside gzip").unwrap();
    assert_eq!(r.format(), "pcap+gzip");
    let e = CaptureReader::open(read_fn(Vec::new(), 0, 7, None), Vec::new(), " inside gzip");
    assert_eq!(e.err().unwrap(), capture_err("empty file inside gzip", 0));
    let bad = read_fn(
        vec![1, 2, 3],
        0,
        7,
        Some((0, "BadGzipFile: Not a gzipped file (b'ab')")),
    );
    let e = CaptureReader::open(bad, Vec::new(), " inside gzip")
        .err()
        .unwrap();
    assert_eq!(
        e,
        capture_err(
            "unreadable gzip data (BadGzipFile: Not a gzipped file (b'ab'))",
            0
        )
    );
}

#[test]
fn read_errors_end_reading() {
    let data = hex(PCAP_TRUNC);
    // EOFError (a cut gzip stream) marks the capture truncated; OSError alone does not.
    for (text, truncated) in [("EOFError: cut", true), ("OSError: boom", false)] {
        let read = read_fn(data.clone(), 4, usize::MAX, Some((44, text)));
        let r = CaptureReader::open(read, data[..4].to_vec(), "").unwrap();
        let (d, total) = dump(r);
        assert_eq!(d.packets.len(), 1);
        let expected = vec![a(
            "read_error",
            None,
            &format!("reading stopped at byte 44: {text}"),
        )];
        assert_eq!(d.anomalies, expected);
        assert_eq!(d.truncated, truncated);
        assert_eq!(total, 44);
    }
    // A failure inside a record: the partial record, then the error.
    let read = read_fn(data.clone(), 4, usize::MAX, Some((50, "OSError: boom")));
    let (d, _) = dump(CaptureReader::open(read, data[..4].to_vec(), "").unwrap());
    assert_eq!(
        d.anomalies,
        vec![
            a(
                "truncated_record",
                Some(2),
                "file ends inside a packet record header at byte 44 (6 bytes of it present); \
                 the partial record is ignored"
            ),
            a(
                "read_error",
                None,
                "reading stopped at byte 44: OSError: boom"
            ),
        ]
    );
    assert!(d.truncated);
}

#[test]
fn asks_for_one_mib_chunks() {
    let sizes = Rc::new(RefCell::new(Vec::new()));
    let seen = Rc::clone(&sizes);
    let data = hex(PCAPNS_BAD);
    let mut inner = read_fn(data.clone(), 4, usize::MAX, None);
    let read: ReadFn = Box::new(move |n| {
        seen.borrow_mut().push(n);
        inner(n)
    });
    let (_, total) = dump(CaptureReader::open(read, data[..4].to_vec(), "").unwrap());
    assert_eq!(total, data.len() as u64);
    assert!(
        sizes.borrow().iter().all(|&n| n == 1 << 20),
        "{:?}",
        sizes.borrow()
    );
}

fn with_magic() -> impl Strategy<Value = Vec<u8>> {
    let magics: Vec<Vec<u8>> = vec![
        vec![],
        hex("d4c3b2a1"),
        hex("a1b2c3d4"),
        hex("4d3cb2a1"),
        hex("a1b23c4d"),
        hex("d4c3b2a1020004000000000000000000ffff000001000000"),
        hex("0a0d0d0a1c0000004d3c2b1a01000000ffffffffffffffff1c000000"),
        hex("0a0d0d0a0000001c1a2b3c4d00010000ffffffffffffffff0000001c"),
        b"snoop\0\0\0\0\0\0\x02\0\0\0\x04".to_vec(),
        b"snoop\0\0\0".to_vec(),
    ];
    (
        proptest::sample::select(magics),
        proptest::collection::vec(any::<u8>(), 0..2000),
    )
        .prop_map(|(mut m, body)| {
            m.extend_from_slice(&body);
            m
        })
}

/// pcapng blocks built from arbitrary fields, so that the parser gets past framing checks.
fn pcapng_blocks() -> impl Strategy<Value = Vec<u8>> {
    let block = (
        proptest::sample::select(vec![1u32, 2, 3, 6, 6, 6, 9, 10, 0x0A0D0D0A, 0x0BAD, 77]),
        proptest::collection::vec(any::<u8>(), 0..80),
        any::<bool>(),
    );
    proptest::collection::vec(block, 0..30).prop_map(|blocks| {
        let mut out = hex("0a0d0d0a1c0000004d3c2b1a01000000ffffffffffffffff1c000000");
        for (btype, mut body, ethernet) in blocks {
            if btype == 1 && ethernet && body.len() >= 8 {
                body[0] = 1;
                body[1] = 0;
            }
            body.resize(body.len().div_ceil(4) * 4, 0);
            let len = (12 + body.len()) as u32;
            out.extend_from_slice(&btype.to_le_bytes());
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&body);
            out.extend_from_slice(&len.to_le_bytes());
        }
        out
    })
}

fn read_all(data: &[u8], chunk: usize) -> Result<(Dump, u64), OpenError> {
    let k = data.len().min(4);
    let r = CaptureReader::open(
        read_fn(data.to_vec(), k, chunk, None),
        data[..k].to_vec(),
        "",
    )?;
    Ok(dump(r))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any bytes: no panic, reading ends, packets are few and in order, and the result does not
    /// depend on how many bytes each read returns.
    #[test]
    fn arbitrary_bytes(data in with_magic(), chunk in 1usize..64) {
        let whole = read_all(&data, usize::MAX);
        let chunked = read_all(&data, chunk);
        // total_read depends on the read sizes (as in Python); nothing else may.
        prop_assert_eq!(whole.as_ref().map(|x| &x.0), chunked.as_ref().map(|x| &x.0));
        if let Ok((d, total)) = whole {
            prop_assert_eq!(total, data.len() as u64);
            prop_assert!(d.packets.len() <= data.len() / 12 + 1);
            prop_assert!(d.packets.windows(2).all(|w| w[0].0 < w[1].0));
        }
    }

    /// Well-framed pcapng blocks of arbitrary content, cut anywhere.
    #[test]
    fn arbitrary_pcapng_blocks(data in pcapng_blocks(), cut in any::<prop::sample::Index>()) {
        let cut = cut.index(data.len() + 1);
        let data = &data[..cut];
        let whole = read_all(data, usize::MAX);
        let chunked = read_all(data, 5);
        prop_assert_eq!(whole.as_ref().map(|x| &x.0), chunked.as_ref().map(|x| &x.0));
    }

    /// A failing stream stops reading with a `read_error` anomaly.
    #[test]
    fn read_errors(data in with_magic(), at in 4usize..2100) {
        let k = data.len().min(4);
        let read = read_fn(data.clone(), k, usize::MAX, Some((at, "OSError: x")));
        if let Ok(r) = CaptureReader::open(read, data[..k].to_vec(), "") {
            let (d, total) = dump(r);
            prop_assert!(total <= at.max(k) as u64);
            if at < data.len() {
                prop_assert!(d.anomalies.iter().any(|x| x.0 == "read_error") ||
                             d.anomalies.iter().any(|x| x.0.starts_with("bad_")));
            }
        }
    }
}
