"""The engine's fast lane (``engine/src/lane.rs``, ``tlspcap/tcp/lane.py``) against the pure path.

The lane counts the bulk of settled TLS connections in the engine; everything it counts must
land in the connection exactly as if Python had taken the segments. The fixtures' connections
are short, so these tests continue real handshakes (a TLS 1.2 and a TLS 1.3 fixture, keyless)
with long made-up conversations: application data cut into segments anywhere (headers split
too), retransmissions, reordering, loss, snap-length cuts, pure ACKs, pauses across the
tracker's sweeps and its idle timeout, FIN, RST, a SYN again, records of other types. Each
capture is analysed on both paths and the connections' facts (everything the diagnosis reads)
and the JSON must be equal; a plain conversation must actually go through the lane.
"""

from __future__ import annotations

import io
import json
import os
import struct
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wire_builders import ether, ipv4, tcp

from tlspcap import analyze
from tlspcap.analyze import analyze_stream
from tlspcap.capture import engine
from tlspcap.capture.decode import PacketDecoder
from tlspcap.capture.model import ACK, FIN, RST, SYN, TcpSegment
from tlspcap.capture.reader import CaptureReader
from tlspcap.diagnosis.engine import Options, diagnose_capture
from tlspcap.facts.model import ConnFacts
from tlspcap.report.jsonfmt import capture_to_dict
from tlspcap.tcp.lane import FastLane, Summary
from tlspcap.tcp.tracker import ConnectionTracker

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "real"
BASES = ("tls12_ok_openssl.pcap", "tls13_ok_python.pcap")
PSH_ACK = 0x18

if not engine.available():
    if os.environ.get("TLSPCAP_REQUIRE_ENGINE") == "1":
        pytest.fail("TLSPCAP_REQUIRE_ENGINE=1 but tlspcap_engine is not importable", pytrace=False)
    pytest.skip("the engine is not built (make engine)", allow_module_level=True)


# ---- a real handshake, continued ----------------------------------------------------------


@dataclass
class Conversation:
    """Frames of one connection: a fixture's handshake, then what the test adds."""

    ends: tuple[tuple[bytes, int], tuple[bytes, int]]
    """(address, port) of the client and of the server."""
    seq: list[int]
    """Next sequence number of each direction."""
    frames: list[tuple[float, bytes, int]] = field(default_factory=list)
    """(time, frame, bytes cut off by the snap length)."""
    sent: list[list[tuple[int, bytes]]] = field(default_factory=lambda: [[], []])
    """Data segments sent by each direction, (seq, payload)."""
    now: float = 0.0

    def segment(
        self, direction: int, payload: bytes = b"", flags: int = PSH_ACK, seq: int | None = None
    ) -> None:
        """Append one segment of ``direction`` (its next sequence number unless ``seq``)."""
        (src, sport), (dst, dport) = self.ends[direction], self.ends[1 - direction]
        at = self.seq[direction] if seq is None else seq
        body = tcp(
            payload,
            sport=sport,
            dport=dport,
            seq=at & 0xFFFFFFFF,
            ack=self.seq[1 - direction] & 0xFFFFFFFF,
            flags=flags,
        )
        self.now += 0.001
        self.frames.append((self.now, ether(ipv4(body, src=src, dst=dst)), 0))
        if seq is None:
            self.seq[direction] += len(payload) + (1 if flags & (SYN | FIN) else 0)
            if payload:
                self.sent[direction].append((at, payload))

    def pcap(self) -> bytes:
        """The frames as a little-endian microsecond pcap (with their snap-length cuts)."""
        out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)]
        for ts, frame, cut in self.frames:
            kept = frame[: len(frame) - cut]
            usec = round(ts * 1e6)
            out.append(struct.pack("<IIII", usec // 10**6, usec % 10**6, len(kept), len(frame)))
            out.append(kept)
        return b"".join(out)


def _handshake(name: str) -> Conversation:
    """The fixture's connection up to its first alert, FIN or RST, re-encoded as Ethernet and
    IPv4 frames (the same segments, times and sequence numbers)."""
    reader = CaptureReader(io.BytesIO((FIXTURES / name).read_bytes()))
    decoder = PacketDecoder()
    segments: list[TcpSegment] = []
    for packet in reader.packets():
        seg = decoder.for_linktype(packet.linktype)(packet)
        if seg is not None:
            segments.append(seg)
    first = segments[0]
    client, server = (first.src, first.sport), (first.dst, first.dport)
    conv = Conversation((client, server), [0, 0])
    for seg in segments:
        if seg.flags & (FIN | RST) or seg.payload[:1] == b"\x15":
            break
        direction = 0 if (seg.src, seg.sport) == client else 1
        conv.now = seg.ts - 0.001  # (segment() adds a millisecond)
        conv.seq[1 - direction] = seg.ack
        conv.segment(direction, seg.payload, seg.flags, seq=seg.seq)
        conv.seq[direction] = seg.seq + len(seg.payload) + (1 if seg.flags & (SYN | FIN) else 0)
    return conv


BASE_CONVERSATIONS = {name: _handshake(name) for name in BASES}


def _records(specs: list[tuple[int, int, int]]) -> bytes:
    return b"".join(
        struct.pack("!BHH", ct, version, size) + bytes((i * 7) & 0xFF for i in range(size))
        for ct, size, version in specs
    )


def _split(data: bytes, sizes: list[int]) -> list[bytes]:
    out, at = [], 0
    for size in sizes:
        if at >= len(data):
            break
        out.append(data[at : at + size])
        at += size
    if at < len(data):
        out.append(data[at:])
    return out


def _play(conv: Conversation, steps: list[tuple[Any, ...]]) -> None:
    """Append what ``steps`` say (see the strategies below)."""
    for step in steps:
        kind, direction = step[0], step[1]
        if kind == "data":
            _, _, specs, sizes, cut = step
            pieces = _split(_records(specs), sizes)
            for piece in pieces:
                conv.segment(direction, piece)
            if cut and pieces:
                ts, frame, _ = conv.frames[-1]
                conv.frames[-1] = (ts, frame, min(cut, len(pieces[-1])))
        elif kind == "bulk":
            _, _, count, size, mss = step
            data = _records([(23, size, 0x0303)] * count)
            for piece in _split(data, [mss] * (len(data) // mss + 1)):
                conv.segment(direction, piece)
                if len(conv.sent[direction]) % 2:
                    conv.segment(1 - direction)  # the peer's ACK
        elif kind == "ack":
            conv.segment(direction)
        elif kind == "again" and conv.sent[direction]:
            seq, payload = conv.sent[direction][-1 - step[2] % len(conv.sent[direction])]
            conv.segment(direction, payload, seq=seq)
        elif kind == "swap" and len(conv.frames) > 1:
            (t1, f1, c1), (t2, f2, c2) = conv.frames[-2:]
            conv.frames[-2:] = [(t1, f2, c2), (t2, f1, c1)]
        elif kind == "drop" and conv.frames:
            conv.frames.pop()
        elif kind == "pause":
            conv.now += step[2]
        elif kind == "end":
            conv.segment(direction, flags=step[2])
        elif kind == "syn":
            conv.segment(direction, flags=SYN)


_direction = st.integers(0, 1)
_record = st.tuples(
    st.sampled_from([23] * 10 + [20, 21, 22, 24, 0x99]),
    st.integers(0, 1800),
    st.sampled_from([0x0303, 0x0301, 0x0304, 0x0305]),
)
_steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("data"),
            _direction,
            st.lists(_record, min_size=1, max_size=5),
            st.lists(st.integers(1, 1600), max_size=6),
            st.one_of(st.just(0), st.integers(1, 300)),
        ),
        st.tuples(
            st.just("bulk"),
            _direction,
            st.integers(1, 90),
            st.integers(1, 3000),
            st.sampled_from([3, 5, 100, 1448, 16384]),
        ),
        st.tuples(st.just("ack"), _direction),
        st.tuples(st.just("again"), _direction, st.integers(0, 40)),
        st.tuples(st.just("swap"), _direction),
        st.tuples(st.just("drop"), _direction),
        st.tuples(st.just("pause"), _direction, st.sampled_from([0.5, 4.99, 5.0, 11.0, 301.0])),
        st.tuples(st.just("end"), _direction, st.sampled_from([FIN | ACK, RST, RST | ACK])),
        st.tuples(st.just("syn"), _direction),
    ),
    max_size=30,
)


# ---- both paths ---------------------------------------------------------------------------


class CountingLane(FastLane):
    """A fast lane that counts the segments its summaries carried."""

    absorbed = 0

    def apply(self, summary: Summary) -> None:
        CountingLane.absorbed += summary[1][0] + summary[2][0]
        super().apply(summary)


def _run(data: bytes, which: str, monkeypatch: pytest.MonkeyPatch) -> tuple[list[ConnFacts], str]:
    monkeypatch.setenv(engine.ENV, which)
    facts: list[ConnFacts] = []
    result = analyze_stream(io.BytesIO(data), "lane.pcap", on_connection=facts.append)
    doc = capture_to_dict(result, diagnose_capture(result, Options()))
    return facts, json.dumps(doc, indent=1, sort_keys=True)


def _assert_same(data: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    python = _run(data, "python", monkeypatch)
    rust = _run(data, "rust", monkeypatch)
    assert rust[0] == python[0]
    assert rust[1] == python[1]


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> type[CountingLane]:
    CountingLane.absorbed = 0
    monkeypatch.setattr(analyze, "FastLane", CountingLane)
    return CountingLane


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(base=st.sampled_from(BASES), steps=_steps)
def test_made_up_conversations_agree(
    base: str, steps: list[tuple[Any, ...]], monkeypatch: pytest.MonkeyPatch
) -> None:
    conv = BASE_CONVERSATIONS[base]
    conv = Conversation(conv.ends, list(conv.seq), list(conv.frames), [[], []], conv.now)
    _play(conv, steps)
    _assert_same(conv.pcap(), monkeypatch)


@pytest.mark.parametrize("base", BASES)
def test_a_long_conversation_goes_through_the_lane(
    base: str, monkeypatch: pytest.MonkeyPatch, counting: type[CountingLane]
) -> None:
    template = BASE_CONVERSATIONS[base]
    conv = Conversation(template.ends, list(template.seq), list(template.frames), [[], []])
    conv.now = template.now
    steps: list[tuple[Any, ...]] = []
    for turn in range(40):
        steps += [("bulk", turn % 2, 30, 900 + turn, 1448), ("pause", 0, 1.3)]
    _play(conv, [*steps, ("end", 0, FIN | ACK), ("end", 1, FIN | ACK), ("ack", 0)])
    _assert_same(conv.pcap(), monkeypatch)
    # Past the handshake, nearly every segment is counted in the engine.
    assert counting.absorbed > len(conv.frames) * 3 // 4


def test_no_connection_is_held_while_an_eviction_may_come(
    monkeypatch: pytest.MonkeyPatch, counting: type[CountingLane]
) -> None:
    """Many connections at once against a small table: the lane works while the table is
    small, stops before the tracker could evict, and the evictions match the pure path's."""
    template = BASE_CONVERSATIONS[BASES[0]]
    convs = []
    for i in range(48):
        (client, _), server = template.ends
        conv = Conversation(((client, 20000 + i), server), list(template.seq), [], [[], []])
        for ts, frame, cut in template.frames:  # the same handshake from another port
            conv.frames.append((ts + i * 0.01, _with_client_port(frame, 20000 + i), cut))
        conv.now = template.now + i * 0.01
        _play(conv, [("bulk", i % 2, 12, 700, 1448)])
        convs.append(conv)
    merged = Conversation(template.ends, [0, 0])
    merged.frames = sorted((f for c in convs for f in c.frames), key=lambda f: f[0])
    small = partial(ConnectionTracker, max_connections=40)
    monkeypatch.setattr(analyze, "ConnectionTracker", small)
    _assert_same(merged.pcap(), monkeypatch)
    assert counting.absorbed > 0


def _with_client_port(frame: bytes, port: int) -> bytes:
    """``frame`` (Ethernet, IPv4 without options, TCP) with its client port changed to
    ``port``."""
    tcp_at = 14 + 20
    sport, dport = struct.unpack_from("!HH", frame, tcp_at)
    if dport < sport:  # client to server (the server's port is the low one)
        return frame[:tcp_at] + struct.pack("!H", port) + frame[tcp_at + 2 :]
    return frame[: tcp_at + 2] + struct.pack("!H", port) + frame[tcp_at + 4 :]
