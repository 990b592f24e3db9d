"""Hostile captures (issue 6): bounded memory and time, no raw terminal escapes, no network.

Each capture here is built in memory, byte by byte, to hit one limit of tlspcap (see
docs/LIMITS.md): a handshake message declaring 16 MiB, a pcapng block of 2 GiB, a gzip bomb,
200,000 connections, an out-of-order flood, hostile names and certificates. Memory is measured
with tracemalloc (peak of Python allocations while the capture is analysed, diagnosed and
rendered; the input bytes are allocated before measuring starts).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import shutil
import socket
import struct
import subprocess
import sys
import textwrap
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from tlspcap.analyze import CaptureResult, analyze_file, analyze_stream
from tlspcap.capture.model import SYN, TcpSegment
from tlspcap.capture.pcapng import MAX_BLOCK_LEN
from tlspcap.diagnosis.engine import Verdict, default_trust, diagnose_capture
from tlspcap.report import jsonfmt, text
from tlspcap.tcp.reassembly import DEFAULT_MAX_BUFFERED, StreamReassembler
from tlspcap.tcp.tracker import DEFAULT_MAX_CONNECTIONS, ConnectionTracker
from tlspcap.tls.handshake import MAX_HANDSHAKE_MESSAGE

ROOT = Path(__file__).resolve().parents[1]
MiB = 1 << 20
T0 = 1767225600.0  # 2026-01-01T00:00:00Z

# ---- building captures ------------------------------------------------------------------

CLIENT = (bytes([10, 0, 0, 1]), 40000)
SERVER = (bytes([10, 0, 0, 2]), 443)
FIN, SYN_, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def ipv4_tcp(
    src: tuple[bytes, int],
    dst: tuple[bytes, int],
    seq: int,
    ack: int,
    flags: int,
    payload: bytes = b"",
) -> bytes:
    """A raw IPv4 packet holding one TCP segment (checksums left 0: tlspcap ignores them)."""
    tcp = struct.pack(
        "!HHIIBBHHH", src[1], dst[1], seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 0x50, flags, 65535, 0, 0
    )
    total = 20 + len(tcp) + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0x4000, 64, 6, 0, src[0], dst[0])
    return ip + tcp + payload


def pcap(frames: Iterable[bytes], linktype: int = 101, step: float = 0.001) -> bytes:
    """A little-endian microsecond pcap of raw IP frames, ``step`` seconds apart."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype)]
    for i, f in enumerate(frames):
        ts = T0 + i * step
        out.append(struct.pack("<IIII", int(ts), int(ts % 1 * 1e6), len(f), len(f)) + f)
    return b"".join(out)


def pcapng_block(btype: int, body: bytes) -> bytes:
    """A little-endian pcapng block."""
    body += bytes(-len(body) % 4)
    return struct.pack("<II", btype, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))


PCAPNG_HEAD = pcapng_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)) + pcapng_block(
    1, struct.pack("<HHI", 101, 0, 262144)
)


def epb(frame: bytes, ts_us: int) -> bytes:
    """An Enhanced Packet Block on interface 0 (microsecond timestamps)."""
    fields = struct.pack("<IIIII", 0, ts_us >> 32, ts_us & 0xFFFFFFFF, len(frame), len(frame))
    return pcapng_block(6, fields + frame)


def pcapng(frames: Iterable[bytes], ts_us: Callable[[int], int] | None = None) -> bytes:
    """A pcapng file (one section, one raw-IP interface) of ``frames``."""
    when = ts_us or (lambda i: int(T0 * 1e6) + 1000 * i)
    return PCAPNG_HEAD + b"".join(epb(f, when(i)) for i, f in enumerate(frames))


class Conversation:
    """A TCP connection between CLIENT and SERVER, as raw IPv4 frames."""

    def __init__(self, client: tuple[bytes, int] = CLIENT, server: tuple[bytes, int] = SERVER):
        self.ends = (client, server)
        self.next = [1000, 5000]
        self.frames: list[bytes] = []

    def _frame(self, d: int, seq: int, flags: int, payload: bytes = b"") -> bytes:
        return ipv4_tcp(self.ends[d], self.ends[1 - d], seq, self.next[1 - d], flags, payload)

    def handshake(self) -> Conversation:
        """SYN, SYN/ACK, ACK."""
        self.frames.append(self._frame(0, self.next[0], SYN_))
        self.next[0] += 1
        self.frames.append(self._frame(1, self.next[1], SYN_ | ACK))
        self.next[1] += 1
        self.frames.append(self._frame(0, self.next[0], ACK))
        return self

    def send(self, d: int, data: bytes, mss: int = 1400) -> Conversation:
        """``data`` from direction ``d`` (0 client, 1 server) in segments of ``mss`` bytes."""
        for i in range(0, len(data), mss):
            chunk = data[i : i + mss]
            self.frames.append(self._frame(d, self.next[d], PSH | ACK, chunk))
            self.next[d] += len(chunk)
        return self

    def at(self, d: int, offset: int, data: bytes) -> bytes:
        """A segment of direction ``d`` carrying ``data`` at stream ``offset`` (not recorded)."""
        return self._frame(d, self.next[d] + offset, PSH | ACK, data)

    def close(self) -> Conversation:
        """FIN from the client, then from the server."""
        for d in (0, 1):
            self.frames.append(self._frame(d, self.next[d], FIN | ACK))
            self.next[d] += 1
        return self


def record(ct: int, body: bytes, version: int = 0x0303) -> bytes:
    """One TLS record."""
    return struct.pack("!BHH", ct, version, len(body)) + body


def records(ct: int, body: bytes) -> bytes:
    """``body`` cut into records of at most 16 KiB."""
    return b"".join(record(ct, body[i : i + 16384]) for i in range(0, len(body), 16384))


def handshake(msg_type: int, body: bytes) -> bytes:
    """A handshake message."""
    return bytes([msg_type]) + len(body).to_bytes(3, "big") + body


def vec(n: int, body: bytes) -> bytes:
    """A vector with an ``n``-byte length prefix."""
    return len(body).to_bytes(n, "big") + body


def client_hello(sni: bytes | None = b"www.example.com", alpn: Iterable[bytes] = (b"h2",)) -> bytes:
    """A TLS 1.2 ClientHello (ECDHE-RSA/ECDSA suites), SNI and ALPN as given, raw."""
    exts = b""
    if sni is not None:
        exts += struct.pack("!H", 0) + vec(2, vec(2, b"\x00" + vec(2, sni)))
    alpn_list = b"".join(vec(1, p) for p in alpn)
    if alpn_list:
        exts += struct.pack("!H", 16) + vec(2, vec(2, alpn_list))
    exts += struct.pack("!H", 10) + vec(2, vec(2, b"\x00\x17"))
    suites = struct.pack("!HH", 0xC02B, 0xC02F)
    body = b"\x03\x03" + bytes(range(32)) + vec(1, b"") + vec(2, suites) + vec(1, b"\x00")
    return handshake(1, body + vec(2, exts))


def server_hello(suite: int = 0xC02B) -> bytes:
    """A TLS 1.2 ServerHello."""
    return handshake(2, b"\x03\x03" + bytes(32) + vec(1, b"") + struct.pack("!HB", suite, 0))


def certificate_msg(ders: Iterable[bytes]) -> bytes:
    """A TLS 1.2 Certificate message."""
    return handshake(11, vec(3, b"".join(vec(3, d) for d in ders)))


SERVER_HELLO_DONE = handshake(14, b"")


def tls12_failure(chain: Iterable[bytes], sni: bytes | None = b"www.example.com") -> Conversation:
    """Client hello, server flight with ``chain``, the client rejects it (bad_certificate)."""
    conv = Conversation().handshake()
    conv.send(0, record(22, client_hello(sni)))
    conv.send(1, records(22, server_hello() + certificate_msg(chain) + SERVER_HELLO_DONE))
    conv.send(0, record(21, b"\x02\x2a"))
    return conv.close()


# ---- certificates ---------------------------------------------------------------------

_KEY = ec.generate_private_key(ec.SECP256R1())


def make_cert(
    cn: str = "www.example.com",
    san: Iterable[str] = ("www.example.com",),
    issuer_alt: Iterable[str] = (),
) -> bytes:
    """A self-signed ECDSA P-256 certificate, DER."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(_KEY.public_key())
        .serial_number(4242)
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=3650))
    )
    names = [x509.DNSName(s) for s in san]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    alt = [x509.DNSName(s) for s in issuer_alt]
    if alt:
        builder = builder.add_extension(x509.IssuerAlternativeName(alt), critical=False)
    return builder.sign(_KEY, hashes.SHA256()).public_bytes(Encoding.DER)


def _replace_once(der: bytes, old: bytes, new: bytes, count: int = 1) -> bytes:
    assert der.count(old) == count, (old, der.count(old))
    return der.replace(old, new)


ECDSA_SHA256 = bytes.fromhex("06082a8648ce3d040302")


def hostile_certificates() -> dict[str, bytes]:
    """DER that cryptography cannot parse, or parses only partly (lazily, then fails)."""
    good = make_cert("ABCDEFGH")
    two_alt_names = make_cert("ABCDEFGH", ["a.example"], issuer_alt=["a.example"])
    return {
        "empty": b"",
        "one_byte": b"\x30",
        "random": bytes((i * 151 + 7) & 0xFF for i in range(300)),
        "truncated": good[: len(good) // 2],
        "trailing_garbage": good + b"\x00\x01",
        "huge_length": b"\x30\x84\xff\xff\xff\xff" + good[4:],
        # X.509 version field 37 (cryptography raises InvalidVersion, not ValueError)
        "bad_version": _replace_once(good, b"\xa0\x03\x02\x01\x02", b"\xa0\x03\x02\x01\x25"),
        # subject and issuer CN are UTF8String holding invalid UTF-8: parsed only on access
        "bad_utf8_name": _replace_once(good, b"\x0c\x08ABCDEFGH", b"\x0c\x08\xff\xfeCDEFGH", 2),
        # a signature algorithm OID nobody knows: signature_hash_algorithm raises
        "unknown_signature_oid": _replace_once(
            good, ECDSA_SHA256, bytes.fromhex("06082a8648ce3d040309"), 2
        ),
        # issuerAltName turned into a second subjectAltName: extensions raise DuplicateExtension
        "duplicate_san": _replace_once(
            two_alt_names, b"\x06\x03\x55\x1d\x12", b"\x06\x03\x55\x1d\x11"
        ),
    }


# ---- running ----------------------------------------------------------------------------


@dataclass(slots=True)
class Run:
    """One capture analysed, diagnosed and rendered."""

    result: CaptureResult
    verdicts: list[Verdict]
    json_text: str
    text: str
    peak: int = 0
    """tracemalloc peak (bytes) when measured."""
    seconds: float = 0.0

    @property
    def doc(self) -> dict[str, Any]:
        """The capture's entry of the JSON document."""
        entry: dict[str, Any] = json.loads(self.json_text)["captures"][0]
        return entry

    def anomaly_names(self) -> set[str]:
        """Names of the file-level and connection-level anomalies."""
        names = {a.name for a in self.result.anomalies}
        for c in self.result.connections:
            names |= {a.name for a in c.anomalies}
        return names


def run(data: bytes, name: str = "hostile.pcap", measure: bool = False) -> Run:
    """analyze_stream + diagnose_capture + both renderers (exceptions propagate)."""
    default_trust()  # loaded once per process: not part of what is measured
    stream = io.BytesIO(data)
    if measure:
        tracemalloc.start()
    start = time.perf_counter()
    try:
        result = analyze_stream(stream, name)
        verdicts = diagnose_capture(result)
        json_text = jsonfmt.render([result], [verdicts])
        rendered = text.render_capture(result, verdicts)
        peak = tracemalloc.get_traced_memory()[1] if measure else 0
    finally:
        if measure:
            tracemalloc.stop()
    return Run(result, verdicts, json_text, rendered, peak, time.perf_counter() - start)


def assert_clean_text(report: str) -> None:
    """No control character (ESC, BEL, C1, bidi overrides...) in the text report."""
    bad = sorted({ch for ch in report if ch != "\n" and not (ch.isprintable() or ch == " ")})
    assert not bad, f"control characters reach the text report: {bad!r}"


# ---- 1. a handshake message declaring 16 MiB --------------------------------------------


def test_handshake_declaring_16_mib_is_skipped_not_buffered() -> None:
    """A 16 MiB handshake header is skipped with an anomaly; nothing near 16 MiB is allocated."""
    header = b"\x01\xff\xff\xff"  # ClientHello, length 16,777,215
    body = header + bytes(200_000)
    conv = Conversation().handshake()
    conv.send(0, records(22, body))
    conv.send(1, record(21, b"\x02\x28"))
    r = run(pcap(conv.close().frames), measure=True)
    assert len(r.result.connections) == 1
    assert "oversized_handshake_message" in r.anomaly_names()
    assert r.peak < 4 * MiB, f"peak {r.peak / MiB:.1f} MiB"


def test_handshake_just_under_the_limit_is_bounded() -> None:
    """A message declaring just under MAX_HANDSHAKE_MESSAGE costs a few times the limit at most."""
    declared = MAX_HANDSHAKE_MESSAGE
    body = b"\x0b" + declared.to_bytes(3, "big") + bytes(declared + 100_000)
    conv = Conversation().handshake()
    conv.send(1, records(22, body), mss=16000)
    r = run(pcap(conv.close().frames), measure=True)
    assert r.peak < 4 * declared + 4 * MiB, f"peak {r.peak / MiB:.1f} MiB"


# ---- 2. pcapng/pcap length fields of 2^31 -----------------------------------------------


def _good_frames() -> list[bytes]:
    return tls12_failure([make_cert()]).frames


def test_pcapng_block_length_2_31_mid_file() -> None:
    """Reading stops at the bad block (anomaly), the packets before it keep their results."""
    frames = _good_frames()
    clean = pcapng(frames)
    bad_block = struct.pack("<II", 6, 1 << 31) + bytes(64)
    r = run(clean + bad_block + pcapng(frames)[len(PCAPNG_HEAD) :], measure=True)
    ref = run(clean)
    assert "bad_block" in r.anomaly_names()
    assert r.result.packets == len(frames)
    assert r.doc["connections"] == ref.doc["connections"]
    assert r.peak < 4 * MiB


def test_pcapng_section_header_length_2_31() -> None:
    """A first block claiming 2 GiB: the file is unreadable, nothing is allocated for it."""
    data = struct.pack("<II", 0x0A0D0D0A, 1 << 31) + struct.pack("<I", 0x1A2B3C4D) + bytes(64)
    r = run(data, measure=True)
    assert r.result.error is not None and str(MAX_BLOCK_LEN) in r.result.error
    assert r.peak < MiB


def test_pcapng_block_at_the_limit_in_a_short_file() -> None:
    """A block just under 16 MiB that the file does not hold: truncated, memory bounded."""
    block = struct.pack("<II", 0x0BAD, MAX_BLOCK_LEN) + bytes(1000)
    r = run(pcapng(_good_frames()) + block, measure=True)
    assert r.result.truncated
    assert len(r.result.connections) == 1
    assert r.peak < 4 * MiB


def test_pcap_record_caplen_2_31() -> None:
    """A pcap record claiming 2 GiB: bad_record, earlier packets kept."""
    frames = _good_frames()
    clean = pcap(frames)
    r = run(clean + struct.pack("<IIII", int(T0), 0, 1 << 31, 1 << 31) + bytes(100), measure=True)
    assert "bad_record" in r.anomaly_names()
    assert r.doc["connections"] == run(clean).doc["connections"]
    assert r.peak < 4 * MiB


# ---- 3. gzip bombs ----------------------------------------------------------------------


def gzip_of(head: bytes, zeros: int) -> bytes:
    """gzip of ``head`` followed by ``zeros`` zero bytes, built without holding them."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [z.compress(head)]
    chunk = bytes(MiB)
    for _ in range(zeros // MiB):
        parts.append(z.compress(chunk))
    parts.append(z.flush())
    return b"".join(parts)


def test_gzip_bomb_of_zeros_is_refused_after_one_chunk() -> None:
    """512 MiB of zeros in a 500 KB gzip: not a capture; only the first chunk is inflated."""
    bomb = gzip_of(b"", 512 * MiB)
    assert len(bomb) < MiB
    r = run(bomb, "bomb.pcap.gz", measure=True)
    assert r.result.error is not None and "not a pcap/pcapng file inside gzip" in r.result.error
    assert r.peak < 4 * MiB
    assert r.seconds < 5


def test_gzip_bomb_of_empty_pcap_records() -> None:
    """A pcap header and 16 MiB of zeros (a million empty records): streamed, bounded memory."""
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 101)
    bomb = gzip_of(header, 16 * MiB)
    start = time.perf_counter()
    r = run(bomb, "bomb.pcap.gz")
    seconds = time.perf_counter() - start
    assert r.result.packets == 16 * MiB // 16
    assert r.result.connections == []
    assert seconds < 60, f"{seconds:.1f} s for 16 MiB of empty records"
    small = gzip_of(header, 2 * MiB)
    assert run(small, "small.pcap.gz", measure=True).peak < 8 * MiB


def test_gzip_bomb_after_a_pcapng_section() -> None:
    """Zeros after a pcapng section header are an impossible block: reading stops at once."""
    bomb = gzip_of(pcapng(_good_frames()), 256 * MiB)
    r = run(bomb, "bomb.pcapng.gz", measure=True)
    assert "bad_block" in r.anomaly_names()
    assert len(r.result.connections) == 1
    assert r.peak < 4 * MiB
    assert r.seconds < 5


# ---- 4. 200,000 connections -----------------------------------------------------------


def syn_flood(n: int, payload: bytes = b"") -> bytes:
    """``n`` connections to SERVER from distinct endpoints, each one SYN (or, with ``payload``,
    one data segment carrying it: a connection that has a session but never speaks TLS)."""
    frames = []
    flags = PSH | ACK if payload else SYN_
    for i in range(n):
        src = (bytes([10, 1, (i >> 8) & 0xFF, i & 0xFF]), 1024 + (i >> 16))
        frames.append(ipv4_tcp(src, SERVER, i, 0, flags, payload))
    return pcap(frames, step=0.0001)


_FLOOD_CHILD = textwrap.dedent(
    """
    import io, resource, sys, time
    from tlspcap.analyze import analyze_stream
    data = open(sys.argv[1], "rb").read()
    start = time.perf_counter()
    result = analyze_stream(io.BytesIO(data), "flood.pcap")
    seconds = time.perf_counter() - start
    evicted = sum(1 for a in result.anomalies if a.name == "connection_evicted")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(result.packets, len(result.connections), evicted, rss, f"{seconds:.1f}")
    """
)
FLOOD_SECONDS = 90
FLOOD_RSS_MB = 700


@pytest.mark.parametrize("payload", [b"", b"x"], ids=["syn_only", "one_byte_not_tls"])
def test_flood_200k_connections(tmp_path: Path, payload: bytes) -> None:
    """200,000 connections (far more than DEFAULT_MAX_CONNECTIONS) in bounded time and memory.

    SYN-only, or one byte of non-TLS data each (then every connection has a session, and an
    evicted one must not be kept until the end when it can never be reported). Run in a child
    process so that its peak RSS is its own and a runaway can be stopped.
    """
    path = tmp_path / "flood.pcap"
    path.write_bytes(syn_flood(200_000, payload))
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _FLOOD_CHILD, str(path)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=FLOOD_SECONDS,
            check=True,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"200k SYN-only connections not analysed within {FLOOD_SECONDS} s")
    packets, connections, evicted, rss_mb, seconds = proc.stdout.split()
    assert int(packets) == 200_000
    assert int(connections) == 0  # none of them carried TLS
    assert int(evicted) >= 1  # the table was bounded, and it was said
    assert int(rss_mb) < FLOOD_RSS_MB, f"peak RSS {rss_mb} MB ({seconds} s)"


def _syns(n: int) -> Iterator[TcpSegment]:
    for i in range(n):
        src = bytes([10, 1, (i >> 8) & 0xFF, i & 0xFF])
        yield TcpSegment(
            i + 1, T0 + i / 1000, src, 1024 + (i >> 16), SERVER[0], 443, i, 0, SYN, b""
        )


def _feed_syns(limit: int, n: int) -> ConnectionTracker:
    tracker = ConnectionTracker(max_connections=limit)
    for seg in _syns(n):
        tracker.feed(seg)
    return tracker


def test_tracker_eviction_is_reported_and_bounds_the_table() -> None:
    """Past max_connections the idlest connection is evicted, with an anomaly."""
    assert 1000 <= DEFAULT_MAX_CONNECTIONS <= 100_000  # docs/LIMITS.md
    tracker = _feed_syns(100, 1000)
    assert sum(1 for _ in tracker) <= 2 * 100
    tracker.finish()
    assert any(a.name == "connection_evicted" for a in tracker.anomalies)


def test_eviction_releases_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """Connections evicted without any TLS are never results: the memory they held is released.

    analyze_stream with the table limited to 500: 4,000 SYN-only connections must not cost
    much more than 1,000.
    """
    limit = 500

    def limited(*args: Any, **kwargs: Any) -> ConnectionTracker:
        return ConnectionTracker(*args, **{**kwargs, "max_connections": limit})

    monkeypatch.setattr("tlspcap.analyze.ConnectionTracker", limited)
    small, large = syn_flood(2 * limit), syn_flood(8 * limit)
    p1, p2 = run(small, measure=True).peak, run(large, measure=True).peak
    assert p2 < 2 * p1, f"peak grows with evicted connections: {p1 / MiB:.1f} -> {p2 / MiB:.1f} MiB"


def test_eviction_cost_does_not_grow_with_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """Evicting must not scan the table per connection: a full table sheds a tenth at a time,
    so 5,000 connections past the limit cost about ten passes over the table, not 5,000.
    (Counted, not timed: a timing assertion failed on a loaded machine.)"""
    limit = 5000
    passes: list[int] = []
    evict = ConnectionTracker._evict

    def counted(self: ConnectionTracker) -> None:
        passes.append(len(self))
        evict(self)

    monkeypatch.setattr(ConnectionTracker, "_evict", counted)
    tracker = ConnectionTracker(max_connections=limit)
    for seg in _syns(2 * limit):
        tracker.feed(seg)
    assert passes and len(passes) <= limit // (limit // 10) + 1, f"{len(passes)} passes"
    assert sum(passes) <= 11 * limit
    assert len(tracker) <= limit


# ---- 5. out-of-order flood --------------------------------------------------------------


def test_out_of_order_flood_large_segments() -> None:
    """1.5 MiB of data behind a hole: the buffer cap declares the hole a gap, memory bounded."""
    conv = Conversation().handshake()
    conv.send(0, record(22, client_hello()))
    chunk = record(23, bytes(16000))
    frames = list(conv.frames)
    frames += [conv.at(0, 10 + i * len(chunk), chunk) for i in range(100)]
    r = run(pcap(frames), measure=True)
    assert "tcp_gap" in r.anomaly_names()
    assert len(r.result.connections) == 1
    assert r.peak < 3 * DEFAULT_MAX_BUFFERED + 4 * MiB, f"peak {r.peak / MiB:.1f} MiB"


def test_out_of_order_flood_tiny_segments() -> None:
    """100,000 one-byte segments behind a hole (100 KB of payload, under the 1 MiB cap).

    The cap counts payload bytes; each buffered segment also costs a heap entry, so the
    memory held must stay within a small multiple of the cap whatever the segment size.
    """
    stream = StreamReassembler()
    stream.syn(0)
    n = 100_000
    tracemalloc.start()
    for i in range(n):
        stream.add(10 + 2 * i, b"x", i)
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert held < 4 * DEFAULT_MAX_BUFFERED, (
        f"{n} bytes buffered out of order hold {held / MiB:.1f} MiB "
        f"(cap {DEFAULT_MAX_BUFFERED / MiB:.0f} MiB of payload)"
    )


# ---- 6. hostile names and certificates --------------------------------------------------

ESCAPES = "\x1b[31m\x1b]0;title\x07\x1b[2J\x9b31m\u202e"


def test_escape_sequences_never_reach_the_text_report() -> None:
    """SNI, ALPN, certificate subject/SAN and the file name carry terminal escapes."""
    sni = ("evil" + ESCAPES + ".example").encode()
    cert = make_cert("evil" + ESCAPES, san=["evil\x1b[31m.example", "x\x07.example"])
    conv = Conversation().handshake()
    conv.send(0, record(22, client_hello(sni, alpn=[b"h2\x1b[2J", "\x9b".encode()])))
    conv.send(1, records(22, server_hello() + certificate_msg([cert]) + SERVER_HELLO_DONE))
    conv.send(0, record(21, b"\x02\x2a")).close()
    r = run(pcap(conv.frames), name="capture\x1b]0;pwned\x07.pcap")
    assert len(r.result.connections) == 1
    assert_clean_text(r.text)
    assert "\x1b" not in r.json_text and "\x07" not in r.json_text
    doc = r.doc["connections"][0]
    assert doc["client_hellos"][0]["sni"] == sni.decode()  # kept intact in JSON, escaped
    assert doc["certificates"][0]["subject"] is not None


def test_plaintext_answer_with_escapes() -> None:
    """A non-TLS server answer full of escapes (quoted in the report) stays escaped."""
    conv = Conversation().handshake()
    conv.send(0, record(22, client_hello()))
    conv.send(1, b"HTTP/1.1 400 Bad\x1b[31m Request\r\nX: \x1b]0;pwned\x07\r\n\r\n")
    r = run(pcap(conv.close().frames))
    assert_clean_text(r.text)


def test_invalid_utf8_sni() -> None:
    """An SNI that is not UTF-8: no crash, the JSON document is valid UTF-8."""
    conv = tls12_failure([make_cert()], sni=b"\xff\xfe\xc0\x80bad\xed\xa0\x80.example")
    r = run(pcap(conv.frames))
    assert_clean_text(r.text)
    r.json_text.encode("utf-8")
    sni = r.doc["connections"][0]["client_hellos"][0]["sni"]
    assert "bad" in sni and "\ufffd" in sni


@pytest.mark.parametrize("kind", sorted(hostile_certificates()))
def test_unparsable_certificate(kind: str) -> None:
    """A certificate cryptography cannot parse is reported as such, never raised."""
    der = hostile_certificates()[kind]
    r = run(pcap(tls12_failure([der, make_cert()]).frames))
    (conn,) = r.doc["connections"]
    assert conn["outcome"] == "failed"
    assert conn["certificates"][0]["sha256"]
    assert_clean_text(r.text)


@pytest.mark.parametrize("kind", sorted(hostile_certificates()))
def test_unparsable_certificate_in_another_connection(kind: str) -> None:
    """One connection's bad certificate (seen capture-wide) does not break the others."""
    bad = tls12_failure([make_cert(), hostile_certificates()[kind]]).frames
    other = Conversation(client=(CLIENT[0], 40001))
    other.handshake().send(0, record(22, client_hello()))
    other.send(1, records(22, server_hello() + certificate_msg([make_cert()]) + SERVER_HELLO_DONE))
    other.send(0, record(21, b"\x02\x30")).close()
    r = run(pcap(bad + other.frames))
    assert len(r.result.connections) == 2
    assert r.verdicts[1].cause == "unknown_ca"


def _flood(payload: bytes) -> Run:
    """A handshake whose server then sends ``payload`` (64 KiB of small records)."""
    conv = Conversation().handshake()
    conv.send(0, record(22, client_hello()))
    conv.send(1, record(22, server_hello()) + payload, mss=16000)
    return run(pcap(conv.close().frames), measure=True)


FLOODS = {
    # 32,768 two-byte alerts in four records
    "alerts": b"".join(record(21, b"\x01\x00" * 8192) for _ in range(4)),
    # 13,107 empty records of content type 26 (one unknown_content_type anomaly each)
    "unknown_content_type": b"\x1a\x03\x03\x00\x00" * 13107,
    # 10,922 one-byte alert records (one malformed_alert anomaly each)
    "malformed_alerts": record(21, b"\x01") * 10922,
    # 1,560 ServerHellos in four records
    "server_hellos": b"".join(record(22, server_hello() * 390) for _ in range(4)),
}


@pytest.mark.parametrize("kind", sorted(FLOODS))
def test_record_flood_memory(kind: str) -> None:
    """64 KiB of tiny records in one connection: memory stays a small multiple of the input.

    An alert costs ~700 bytes by the time it is in the JSON document, for 2 bytes of capture:
    without a cap on what a connection keeps, 1 MiB of alert records peaks at ~750 MiB.
    """
    payload = FLOODS[kind]
    assert len(payload) <= 64 * 1024 + 100
    r = _flood(payload)
    assert len(r.result.connections) == 1
    assert r.peak < 8 * MiB, f"{kind}: peak {r.peak / MiB:.1f} MiB for 64 KiB"


def test_timestamp_out_of_datetime_range() -> None:
    """A pcapng timestamp in the year 586,000 (EPB high word 0xffffffff): no crash, and no
    verdict drawn from it (a date no calendar holds must not make a certificate expired)."""
    frames = _good_frames()
    sane = run(pcapng(frames)).verdicts[0]
    r = run(pcapng(frames, ts_us=lambda i: (0xFFFFFFFF << 32) + i))
    assert len(r.result.connections) == 1
    assert (r.verdicts[0].outcome, r.verdicts[0].cause) == (sane.outcome, sane.cause)


def test_negative_timestamp_offset() -> None:
    """An if_tsoffset of -2^62 seconds (timestamps before year 1): no crash, no validity
    verdict drawn from the impossible date."""
    shb = pcapng_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    option = struct.pack("<HHq", 14, 8, -(1 << 62)) + struct.pack("<HH", 0, 0)
    idb = pcapng_block(1, struct.pack("<HHI", 101, 0, 262144) + option)
    data = shb + idb + b"".join(epb(f, i) for i, f in enumerate(_good_frames()))
    r = run(data)
    assert len(r.result.connections) == 1
    sane = run(pcapng(_good_frames())).verdicts[0]
    assert (r.verdicts[0].outcome, r.verdicts[0].cause) == (sane.outcome, sane.cause)


# ---- 7. no network, no subprocess -------------------------------------------------------


def _refuse(*args: object, **kwargs: object) -> NoReturn:
    raise AssertionError(f"tlspcap tried to reach out: {args!r}")


def test_no_network_and_no_subprocess(monkeypatch: pytest.MonkeyPatch) -> None:
    """Analysis, diagnosis (certificate path building included) and rendering stay offline.

    pcap, pcapng and snoop files start no process at all; a file in a foreign format (Network
    Monitor here) may start Wireshark's editcap to convert it, and nothing else.
    """
    default_trust()
    for name in ("socket", "create_connection", "getaddrinfo", "gethostbyname"):
        monkeypatch.setattr(socket, name, _refuse)
    real_popen = subprocess.Popen
    monkeypatch.setattr(subprocess, "Popen", _refuse)
    captures = sorted((ROOT / "fixtures" / "real").glob("*.pcap*"))
    assert captures
    for path in captures:
        result = analyze_file(path)
        assert result.error is None, result.error
        verdicts = diagnose_capture(result)
        jsonfmt.render([result], [verdicts])
        text.render_capture(result, verdicts)
    hostile = run(pcap(tls12_failure([make_cert(), hostile_certificates()["random"]]).frames))
    assert hostile.result.connections

    started: list[str] = []

    def editcap_only(args: list[str], *rest: object, **kw: Any) -> Any:
        if Path(args[0]).name != "editcap":
            _refuse(args)
        started.append(args[0])
        return real_popen(args, *rest, **kw)  # type: ignore[call-overload]

    monkeypatch.setattr(subprocess, "Popen", editcap_only)
    degraded = ROOT / "fixtures" / "degraded"
    assert analyze_file(degraded / "snoop" / "expired_curl.snoop").error is None
    assert started == []  # snoop is read natively
    result = analyze_file(degraded / "netmon2" / "expired_curl.cap")
    assert len(started) == (1 if shutil.which("editcap") else 0)
    assert (result.error is None) == bool(started)
