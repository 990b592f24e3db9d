"""Reading capture files: tlspcap.capture.reader (pcap, pcapng, gzip, damaged input)."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import struct
import subprocess
from collections.abc import Iterable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tlspcap.capture.decode import segment_decoder
from tlspcap.capture.model import Packet
from tlspcap.capture.pcap import MAX_RECORD_CAPLEN
from tlspcap.capture.pcapng import MAX_BLOCK_LEN
from tlspcap.capture.reader import CaptureReader
from tlspcap.errors import CaptureError

Record = tuple[int, int, bytes, int]  # seconds, fraction, data, original length


def frame(i: int, size: int = 60) -> bytes:
    """Opaque frame bytes, different for each ``i``."""
    return bytes((i + k) & 0xFF for k in range(size))


def pcap_file(
    records: Iterable[Record],
    *,
    order: str = "<",
    ns: bool = False,
    network: int = 1,
    snaplen: int = 65535,
) -> bytes:
    """A pcap file with the given records."""
    magic = 0xA1B23C4D if ns else 0xA1B2C3D4
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, network)]
    for sec, frac, data, orig in records:
        out.append(struct.pack(order + "IIII", sec, frac, len(data), orig) + data)
    return b"".join(out)


def pad4(data: bytes) -> bytes:
    """Pad to a multiple of 4 bytes."""
    return data + bytes(-len(data) % 4)


def block(order: str, btype: int, body: bytes) -> bytes:
    """A pcapng block with its two length fields."""
    body = pad4(body)
    total = 12 + len(body)
    return struct.pack(order + "II", btype, total) + body + struct.pack(order + "I", total)


def option(order: str, code: int, value: bytes) -> bytes:
    """One pcapng option."""
    return struct.pack(order + "HH", code, len(value)) + pad4(value)


def shb(order: str, major: int = 1) -> bytes:
    """A Section Header Block with an shb_userappl option."""
    body = struct.pack(order + "IHHq", 0x1A2B3C4D, major, 0, -1) + option(order, 4, b"tests")
    return block(order, 0x0A0D0D0A, body + option(order, 0, b""))


def idb(order: str, linktype: int, snaplen: int = 0, *options: bytes) -> bytes:
    """An Interface Description Block."""
    end = option(order, 0, b"") if options else b""
    return block(
        order, 1, struct.pack(order + "HHI", linktype, 0, snaplen) + b"".join(options) + end
    )


def epb(order: str, iid: int, units: int, data: bytes, orig: int | None = None) -> bytes:
    """An Enhanced Packet Block; ``units`` is the timestamp in the interface's resolution."""
    head = struct.pack(
        order + "IIIII",
        iid,
        units >> 32,
        units & 0xFFFFFFFF,
        len(data),
        len(data) if orig is None else orig,
    )
    return block(order, 6, head + pad4(data) + option(order, 1, b"comment") + option(order, 0, b""))


def spb(order: str, data: bytes, orig: int) -> bytes:
    """A Simple Packet Block."""
    return block(order, 3, struct.pack(order + "I", orig) + data)


def obsolete_pb(order: str, iid: int, units: int, data: bytes) -> bytes:
    """An obsolete Packet Block (type 2)."""
    head = struct.pack(
        order + "HHIIII", iid, 0, units >> 32, units & 0xFFFFFFFF, len(data), len(data)
    )
    return block(order, 2, head + data)


def dsb(order: str, secrets_type: int, data: bytes) -> bytes:
    """A Decryption Secrets Block."""
    return block(order, 0x0A, struct.pack(order + "II", secrets_type, len(data)) + data)


def read(blob: bytes) -> tuple[CaptureReader, list[Packet]]:
    """Open ``blob`` and read all its packets."""
    reader = CaptureReader(io.BytesIO(blob))
    return reader, list(reader.packets())


def names(reader: CaptureReader) -> list[str]:
    """Names of the reader's anomalies."""
    return [a.name for a in reader.anomalies]


RECORDS: list[Record] = [(1700000000 + i, 1000 * i + 1, frame(i, 40 + i), 40 + i) for i in range(5)]


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("ns", [False, True])
def test_pcap_byte_orders_and_resolutions(order: str, ns: bool) -> None:
    reader, packets = read(pcap_file(RECORDS, order=order, ns=ns))
    assert reader.format == ("pcap-ns" if ns else "pcap")
    assert [p.frame for p in packets] == [1, 2, 3, 4, 5]
    assert [p.data for p in packets] == [r[2] for r in RECORDS]
    scale = 1e-9 if ns else 1e-6
    for p, (sec, frac, _, orig) in zip(packets, RECORDS, strict=True):
        assert p.ts == pytest.approx(sec + frac * scale, abs=1e-7)
        assert (p.linktype, p.orig_len) == (1, orig)
    assert not reader.truncated and reader.anomalies == [] and reader.secrets == []


def test_pcap_nanosecond_fraction_is_kept() -> None:
    _, packets = read(pcap_file([(10, 123456789, b"x", 1)], ns=True))
    assert packets[0].ts == 10.123456789


def test_pcap_link_type_field_fcs_bits_are_masked() -> None:
    _, packets = read(pcap_file(RECORDS[:1], network=0x14000000 | 113))
    assert packets[0].linktype == 113


def test_pcap_unsupported_link_type_is_capture_error() -> None:
    with pytest.raises(CaptureError, match=r"unsupported link type 105 \(IEEE802_11\)"):
        CaptureReader(io.BytesIO(pcap_file(RECORDS, network=105)))


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"", r"^empty file at byte 0$"),
        (b"GET / HTTP/1.1\r\n", r"not a pcap/pcapng file \(magic 0x47455420\)"),
        (b"\xd4\xc3", r"not a pcap/pcapng file \(2 bytes\)"),
        (b"\xd4\xc3\xb2\xa1\x02\x00", r"truncated pcap file header \(6 of 24 bytes\)"),
        (b"\x34\xcd\xb2\xa1" + bytes(20), r"^modified pcap .* editcap -F pcapng IN OUT.pcapng$"),
        (gzip.compress(b""), r"empty file inside gzip"),
        (gzip.compress(b"hello world"), r"not a pcap/pcapng file inside gzip \(magic 0x68656c6c\)"),
        (b"\x1f\x8b\x08\x00garbage-not-deflate", r"unreadable gzip data"),
        (shb("<")[:10], r"truncated pcapng section header"),
        (shb("<")[:8] + b"\x00\x11\x22\x33" + shb("<")[12:], r"bad byte-order magic 0x00112233"),
        (shb("<", major=2), r"unsupported pcapng version 2"),
        (shb("<")[:-4] + b"\x00\x00\x00\x00", r"disagrees with its trailer"),
        (b"\x0a\x0d\x0d\x0a\xfc\xff\xff\x7f\x4d\x3c\x2b\x1a", r"over the 16777216-byte limit"),
    ],
)
def test_not_a_capture_raises(blob: bytes, message: str) -> None:
    with pytest.raises(CaptureError, match=message) as info:
        CaptureReader(io.BytesIO(blob))
    assert info.value.offset == 0


@pytest.mark.parametrize("cut", [1, 15, 16, 30])
def test_pcap_truncated_last_record(cut: int) -> None:
    blob = pcap_file(RECORDS)
    last_start = len(blob) - 16 - len(RECORDS[-1][2])
    reader, packets = read(blob[: last_start + cut])
    assert len(packets) == 4
    assert reader.truncated
    [anomaly] = reader.anomalies
    assert anomaly.name == "truncated_record" and anomaly.frame == 5
    assert f"at byte {last_start}" in anomaly.detail


def test_pcap_absurd_length_stops_with_anomaly() -> None:
    blob = pcap_file(RECORDS[:2]) + struct.pack("<IIII", 1, 2, 0xFFFFFFF0, 60) + bytes(100)
    reader, packets = read(blob + pcap_file(RECORDS)[24:])
    assert [p.frame for p in packets] == [1, 2]
    assert names(reader) == ["bad_record"] and reader.anomalies[0].frame == 3
    assert not reader.truncated


def test_pcap_record_length_bound() -> None:
    big = bytes(MAX_RECORD_CAPLEN)
    reader, packets = read(pcap_file([(1, 0, big, len(big))]))
    assert len(packets) == 1 and reader.anomalies == []
    reader, packets = read(pcap_file([(1, 0, big + b"x", len(big) + 1)]))
    assert packets == [] and names(reader) == ["bad_record"]


class Endless(io.RawIOBase):
    """A stream that never ends, counting what it hands out."""

    def __init__(self, head: bytes) -> None:
        self.head = head
        self.given = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        n = len(buffer)
        chunk = (self.head[self.given :] + bytes(n))[:n]
        buffer[:n] = chunk
        self.given += n
        return n


def test_absurd_lengths_do_not_allocate() -> None:
    head = pcap_file([]) + struct.pack("<IIII", 1, 2, 0x7FFFFFFF, 60)
    reader = CaptureReader(Endless(head))  # type: ignore[arg-type]
    assert list(reader.packets()) == [] and names(reader) == ["bad_record"]
    assert reader.bytes_read <= 2 << 20
    head = shb("<") + struct.pack("<II", 6, 0x7FFFFFF0)
    reader = CaptureReader(Endless(head))  # type: ignore[arg-type]
    assert list(reader.packets()) == [] and names(reader) == ["bad_block"]
    assert reader.bytes_read <= 2 << 20


def test_snaplen_summary_anomaly() -> None:
    records = [(1, 0, frame(0, 50), 50), (1, 1, frame(1, 64), 1500), (1, 2, frame(2, 64), 900)]
    reader, packets = read(pcap_file(records, snaplen=64))
    assert [p.orig_len for p in packets] == [50, 1500, 900]
    [anomaly] = reader.anomalies
    assert (anomaly.name, anomaly.frame) == ("snaplen_truncated", 2)
    assert anomaly.detail.startswith("2 packet(s)") and "snaplen 64" in anomaly.detail


class Trickle(io.RawIOBase):
    """A non-seekable stream that returns at most ``step`` bytes per read."""

    def __init__(self, data: bytes, step: int = 7) -> None:
        self.data = data
        self.pos = 0
        self.step = step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        chunk = self.data[self.pos : self.pos + min(self.step, len(buffer))]
        buffer[: len(chunk)] = chunk
        self.pos += len(chunk)
        return len(chunk)


@pytest.mark.parametrize("compress", [False, True])
def test_short_reads_from_a_pipe(compress: bool) -> None:
    blob = pcap_file(RECORDS)
    blob = gzip.compress(blob) if compress else blob
    reader = CaptureReader(Trickle(blob))  # type: ignore[arg-type]
    assert [p.data for p in reader.packets()] == [r[2] for r in RECORDS]
    assert reader.bytes_read == len(blob)


def test_gzip_is_sniffed_not_named() -> None:
    _, plain = read(pcap_file(RECORDS, ns=True))
    blob = gzip.compress(pcap_file(RECORDS, ns=True))
    reader, packets = read(blob)
    assert reader.format == "pcap-ns+gzip" and packets == plain
    assert reader.bytes_read == len(blob)
    reader, _ = read(gzip.compress(pcapng_sample("<")))
    assert reader.format == "pcapng+gzip"


def test_gzip_multiple_members() -> None:
    blob = pcap_file(RECORDS)
    reader, packets = read(gzip.compress(blob[:50]) + gzip.compress(blob[50:]))
    assert len(packets) == 5 and reader.anomalies == []


def test_gzip_cut_short_keeps_packets() -> None:
    blob = gzip.compress(pcap_file([(1, i, frame(i, 1000), 1000) for i in range(300)]))
    reader, packets = read(blob[: len(blob) // 2])
    assert 0 < len(packets) < 300
    assert reader.truncated and "read_error" in names(reader)
    assert [p.frame for p in packets] == list(range(1, len(packets) + 1))


def test_gzip_corrupt_midway_keeps_packets() -> None:
    blob = bytearray(gzip.compress(pcap_file([(1, i, frame(i, 1000), 1000) for i in range(300)])))
    blob[len(blob) // 2 : len(blob) // 2 + 64] = b"\xff" * 64
    reader, packets = read(bytes(blob))
    assert 0 < len(packets) < 300
    assert names(reader)[-1:] in (["read_error"], ["bad_record"], ["truncated_record"])


def test_gzip_bad_checksum_is_a_read_error_after_all_packets() -> None:
    blob = bytearray(gzip.compress(pcap_file(RECORDS)))
    blob[-8:-4] = bytes(a ^ 0xFF for a in blob[-8:-4])  # CRC32 of the member
    reader, packets = read(bytes(blob))
    assert len(packets) == 5 and not reader.truncated
    assert names(reader) == ["read_error"] and "CRC" in reader.anomalies[0].detail


def test_bytes_read_grows() -> None:
    blob = pcap_file([(1, i, frame(i, 1400), 1400) for i in range(2000)])
    reader = CaptureReader(io.BytesIO(blob))
    seen = [reader.bytes_read for _ in reader.packets()]
    assert seen[0] < len(blob) and seen[-1] == len(blob) and seen == sorted(seen)


# --- pcapng ---------------------------------------------------------------------------------


def pcapng_sample(order: str) -> bytes:
    """One section: Ethernet (microseconds) and raw IP (nanoseconds, offset) interfaces.

    Its packets are frames 1 and 3: a custom block between them takes frame 2.
    """
    return b"".join(
        [
            shb(order),
            idb(order, 1, 0),
            idb(
                order,
                101,
                0,
                option(order, 9, b"\x09"),
                option(order, 14, struct.pack(order + "q", 100)),
            ),
            epb(order, 0, 1_700_000_000_500_000, frame(1)),
            block(order, 5, bytes(20)),  # interface statistics: skipped
            block(order, 0x40000BAD, b"custom"),  # skipped, but Wireshark numbers it: frame 2
            epb(order, 1, 1_600_000_000_123_456_789, frame(2)),
        ]
    )


@pytest.mark.parametrize("order", ["<", ">"])
def test_pcapng_interfaces_and_resolutions(order: str) -> None:
    reader, packets = read(pcapng_sample(order))
    assert reader.format == "pcapng" and reader.anomalies == []
    one, two = packets
    assert (one.frame, one.linktype, one.data, one.orig_len) == (1, 1, frame(1), 60)
    assert one.ts == 1_700_000_000.5
    assert (two.frame, two.linktype, two.orig_len) == (3, 101, 60)
    assert two.ts == pytest.approx(1_600_000_100.123456789, abs=1e-6)


def test_pcapng_power_of_two_resolution() -> None:
    order = "<"
    blob = shb(order) + idb(order, 1, 0, option(order, 9, b"\x94")) + epb(order, 0, 3 << 19, b"x")
    _, [packet] = read(blob)
    assert packet.ts == 1.5  # 2**-20 second units


def test_pcapng_sections_of_both_byte_orders() -> None:
    blob = pcapng_sample("<") + pcapng_sample(">") + shb("<") + idb("<", 276) + epb("<", 0, 5, b"y")
    reader, packets = read(blob)
    assert [p.frame for p in packets] == [1, 3, 4, 6, 7]
    assert [p.linktype for p in packets] == [1, 101, 1, 101, 276]
    assert reader.anomalies == []


def test_pcapng_spb_uses_first_interface_and_snaplen() -> None:
    order = ">"
    blob = b"".join(
        [
            shb(order),
            idb(order, 113, 16),
            idb(order, 1, 0),
            epb(order, 1, 7_000_000, frame(1)),
            spb(order, frame(2, 40), 40),
            spb(order, frame(3, 10), 8),
        ]
    )
    reader, packets = read(blob)
    assert [(p.frame, p.linktype) for p in packets] == [(1, 1), (2, 113), (3, 113)]
    assert packets[1].data == frame(2, 40)[:16] and packets[1].orig_len == 40
    assert packets[2].data == frame(3, 10)[:8] and packets[2].orig_len == 8
    assert packets[1].ts == packets[2].ts == 7.0  # no timestamp: the previous packet's
    assert names(reader) == ["snaplen_truncated"]


def test_pcapng_obsolete_packet_block_and_secrets() -> None:
    order = "<"
    keylog = b"CLIENT_RANDOM " + b"ab" * 32 + b" " + b"cd" * 48 + b"\n"
    blob = b"".join(
        [
            shb(order),
            dsb(order, 0x544C534B, keylog),
            idb(order, 0),
            obsolete_pb(order, 0, 2_000_000, frame(4, 33)),
            dsb(order, 0x57474B4C, b"wg"),
        ]
    )
    reader, [packet] = read(blob)
    assert (packet.frame, packet.linktype, packet.data, packet.ts) == (1, 0, frame(4, 33), 2.0)
    assert reader.secrets == [(0x544C534B, keylog), (0x57474B4C, b"wg")]


def test_pcapng_unsupported_interface_is_skipped_once() -> None:
    order = "<"
    blob = b"".join(
        [
            shb(order),
            idb(order, 127, 0),
            idb(order, 1, 0),
            epb(order, 0, 1, b"radiotap"),
            epb(order, 1, 2, frame(1)),
            epb(order, 0, 3, b"radiotap"),
            epb(order, 1, 4, frame(2)),
            shb(order),  # a new section: its interface 0 is another interface
            idb(order, 127, 0),
            epb(order, 0, 5, b"radiotap"),
            spb(order, b"radiotap", 8),
        ]
    )
    reader, packets = read(blob)
    assert [p.frame for p in packets] == [2, 4]
    first, second = reader.anomalies
    assert (first.name, first.frame) == ("unsupported_linktype", 1)
    assert (
        "interface 0 of section 1: unsupported link type 127 (IEEE802_11_RADIOTAP)" in first.detail
    )
    assert (second.name, second.frame) == ("unsupported_linktype", 5)
    assert "section 2" in second.detail
    for p in packets:
        segment_decoder(p.linktype)


def test_pcapng_undefined_interface() -> None:
    order = "<"
    blob = shb(order) + idb(order, 1) + epb(order, 3, 1, b"x") + epb(order, 0, 1, b"y")
    reader, packets = read(blob)
    assert [p.frame for p in packets] == [2]
    assert names(reader) == ["bad_interface"] and reader.anomalies[0].frame == 1


def test_pcapng_inconsistent_block_body_is_skipped() -> None:
    order = "<"
    broken = bytearray(epb(order, 0, 1, b"abcd"))
    struct.pack_into(order + "I", broken, 20, 999)  # captured length beyond the block
    bad_secrets = block(order, 0x0A, struct.pack(order + "II", 1, 500) + b"short")
    blob = shb(order) + idb(order, 1) + bytes(broken) + bad_secrets + epb(order, 0, 1, b"y")
    reader, packets = read(blob)
    assert [p.frame for p in packets] == [2]
    assert names(reader) == ["bad_block", "bad_block"] and reader.secrets == []


@pytest.mark.parametrize(
    "tail",
    [
        struct.pack("<II", 6, 30) + bytes(22),  # length not a multiple of 4
        struct.pack("<II", 6, 8) + bytes(4),  # length below the minimum
        struct.pack("<II", 6, MAX_BLOCK_LEN + 4) + bytes(64),
        block("<", 6, bytes(24))[:-4] + struct.pack("<I", 12),  # trailer disagrees
        shb(">")[:8] + b"junk" + bytes(20),  # later section header with a bad byte-order magic
        shb("<", major=3),
    ],
)
def test_pcapng_corruption_stops_with_anomaly(tail: bytes) -> None:
    reader, packets = read(pcapng_sample("<") + tail + epb("<", 0, 1, b"never"))
    assert len(packets) == 2
    assert names(reader) == ["bad_block"] and not reader.truncated


@pytest.mark.parametrize("cut", [3, 4, 11, 12, 40])
def test_pcapng_truncated_last_block(cut: int) -> None:
    blob = pcapng_sample("<")
    last = epb("<", 0, 99, frame(9, 100))
    reader, packets = read(blob + last[:cut])
    assert len(packets) == 2 and reader.truncated
    [anomaly] = reader.anomalies
    assert anomaly.name == "truncated_record"
    assert anomaly.frame == (4 if cut >= 4 else None)
    assert f"at byte {len(blob)}" in anomaly.detail


def test_pcapng_truncated_non_packet_block_has_no_frame() -> None:
    reader, _ = read(pcapng_sample("<") + dsb("<", 1, b"secret")[:20])
    assert names(reader) == ["truncated_record"] and reader.anomalies[0].frame is None


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_crafted_pcapng_agrees_with_tshark(tmp_path: Path) -> None:
    order = ">"
    blob = b"".join(
        [
            pcapng_sample("<"),
            shb(order),
            idb(order, 1, 64, option(order, 9, b"\x83")),
            epb(order, 0, 41, frame(5, 90), 1200),
            obsolete_pb(order, 0, 43, frame(6)),
            dsb(order, 0x544C534B, b"CLIENT_RANDOM x y\n"),
        ]
    )
    path = tmp_path / "crafted.pcapng"
    path.write_bytes(blob)
    fields = ["frame.number", "frame.time_epoch", "frame.cap_len", "frame.len"]
    rows = {int(row[0]): row for row in tshark_fields(path, fields)}
    _, packets = read(blob)
    assert [p.frame for p in packets] == [1, 3, 4, 5] and sorted(rows) == [1, 2, 3, 4, 5]
    for p in packets:
        row = rows[p.frame]
        assert (int(row[2]), int(row[3])) == (len(p.data), p.orig_len)
        assert float(row[1]) == pytest.approx(p.ts, abs=1e-6)


# --- the shared corpus ------------------------------------------------------------------------


def corpus_dir() -> Path | None:
    """The shared capture corpus, wherever this checkout sits."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (
        os.environ.get("TLSPCAP_CORPUS"),
        here.parent / "shared" / "corpus",
        "/work/shared/corpus",
    ):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


CORPUS = corpus_dir()
CORPUS_FILES = sorted(
    p for p in (CORPUS.rglob("*") if CORPUS else []) if p.suffix in (".pcap", ".pcapng")
)


def tshark_fields(path: Path, fields: list[str]) -> list[list[str]]:
    """One row of ``fields`` per frame, as tshark dissects the file."""
    args = ["tshark", "-n", "-r", str(path), "-T", "fields", "-E", "separator=|"]
    args += ["-o", "tcp.analyze_sequence_numbers:FALSE"]
    for name in fields:
        args += ["-e", name]
    out = subprocess.run(args, capture_output=True, text=True, check=False).stdout
    return [line.split("|") for line in out.splitlines()]


@pytest.mark.skipif(CORPUS is None, reason="shared corpus not present")
def test_corpus_covers_the_link_types() -> None:
    linktypes_seen: set[int] = set()
    formats: set[str] = set()
    for path in CORPUS_FILES:
        with path.open("rb") as fh:
            reader = CaptureReader(fh)
            formats.add(reader.format)
            linktypes_seen |= {p.linktype for p in reader.packets()}
    assert {0, 1, 101, 113, 276} <= linktypes_seen
    assert {"pcap", "pcapng"} <= formats


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_corpus_file_matches_tshark(path: Path) -> None:
    fields = [
        "frame.number",
        "frame.time_epoch",
        "tcp.srcport",
        "tcp.dstport",
        "tcp.seq_raw",
        "tcp.ack_raw",
        "tcp.flags",
        "tcp.len",
    ]
    rows = tshark_fields(path, fields)
    with path.open("rb") as fh:
        reader = CaptureReader(fh)
        packets = list(reader.packets())
    assert len(packets) == len(rows), "packet count differs from tshark's"
    assert "unsupported_linktype" not in names(reader)
    damaged = path.name == "tls-der-incomplete-header.pcap"  # tshark: "appears to be damaged"
    assert names(reader) == (["bad_record"] if damaged else [])
    for row, p in zip(rows, packets, strict=True):
        assert int(row[0]) == p.frame
        assert float(row[1]) == pytest.approx(p.ts, abs=2e-6)
        seg = segment_decoder(p.linktype)(p)
        if not row[2]:
            assert seg is None, f"frame {p.frame}: tshark sees no TCP"
            continue
        assert seg is not None, f"frame {p.frame}: tshark sees TCP"
        first = [int(v.split(",")[0], 0) for v in row[2:]]
        assert [seg.sport, seg.dport, seg.seq, seg.ack, seg.flags] == [*first[:4], first[4] & 0xFF]
        assert len(seg.payload) + seg.missing == first[5], f"frame {p.frame}"


# --- robustness -------------------------------------------------------------------------------


def pcapng_blocks() -> list[tuple[bytes, int]]:
    """Blocks of a multi-section pcapng file with the number of packets each holds."""
    return [
        (shb("<"), 0),
        (idb("<", 1, 64, option("<", 9, b"\x09")), 0),
        (epb("<", 0, 10**18, frame(1)), 1),
        (dsb("<", 1, b"secret"), 0),
        (spb("<", frame(2, 100), 100), 1),
        (shb(">"), 0),
        (idb(">", 105), 0),
        (idb(">", 0), 0),
        (epb(">", 0, 1, frame(3)), 0),  # unsupported interface: not yielded
        (obsolete_pb(">", 1, 5, frame(4)), 1),
        (epb(">", 1, 9, frame(5, 70)), 1),
    ]


PCAP_BOUNDARIES = [24 + sum(16 + len(r[2]) for r in RECORDS[:i]) for i in range(len(RECORDS) + 1)]
BASES: list[tuple[bytes, list[int]]] = [
    (pcap_file(RECORDS), PCAP_BOUNDARIES),
    (pcap_file(RECORDS, order=">", ns=True), PCAP_BOUNDARIES),
    (b"".join(b for b, _ in pcapng_blocks()), []),
    (gzip.compress(pcap_file(RECORDS)), []),
]
FULL = [list(CaptureReader(io.BytesIO(blob)).packets()) for blob, _ in BASES]


@settings(max_examples=400, deadline=None)
@given(
    which=st.integers(min_value=0, max_value=len(BASES) - 1),
    cut=st.integers(min_value=0, max_value=2000),
    junk=st.binary(max_size=80),
)
def test_damaged_captures_never_raise_from_packets(which: int, cut: int, junk: bytes) -> None:
    blob, boundaries = BASES[which]
    damaged = blob[:cut] + junk
    try:
        reader = CaptureReader(io.BytesIO(damaged))
    except CaptureError:
        return
    packets = list(reader.packets())  # must not raise
    frames = [p.frame for p in packets]
    assert frames == sorted(set(frames))
    for p in packets:
        segment_decoder(p.linktype)(p)  # supported link type, decoding never raises
    if not junk:
        assert packets == FULL[which][: len(packets)]
        if cut >= len(blob):
            assert packets == FULL[which] and not reader.truncated
        elif boundaries:
            assert len(packets) == sum(1 for end in boundaries[1:] if end <= cut)
            assert reader.truncated == (cut not in boundaries)
        elif which == 3:
            assert reader.truncated


@settings(max_examples=100, deadline=None)
@given(cut=st.integers(min_value=len(shb("<")), max_value=2000))
def test_pcapng_prefix_yields_whole_blocks(cut: int) -> None:
    blocks = pcapng_blocks()
    blob = b"".join(b for b, _ in blocks)
    ends, total, expected = [], 0, 0
    for data, count in blocks:
        total += len(data)
        ends.append(total)
        if total <= cut:
            expected += count
    reader = CaptureReader(io.BytesIO(blob[:cut]))
    packets = list(reader.packets())
    assert len(packets) == expected
    assert reader.truncated == (cut < len(blob) and cut not in ends)


def test_format_endpoint_prints_what_ipaddress_prints() -> None:
    import ipaddress
    import random

    from tlspcap.capture.model import format_endpoint

    rng = random.Random(7)
    for _ in range(2000):
        addr, port = bytes(rng.randrange(256) for _ in range(4)), rng.randrange(65536)
        assert format_endpoint(addr, port) == f"{ipaddress.IPv4Address(addr)}:{port}"
    assert format_endpoint(bytes(15) + b"\x01", 443) == "[::1]:443"
