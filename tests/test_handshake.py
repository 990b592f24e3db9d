"""HandshakeAssembler: handshake messages from record fragments (tlspcap.tls.handshake)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from vectors import (
    CHROME_CLIENT_HELLO,
    chunked,
    handshake,
    plaintext_handshake,
    split_messages,
    tls12_streams,
)

from tlspcap.tls.handshake import MAX_HANDSHAKE_MESSAGE, HandshakeAssembler, HandshakeMessage


def flights() -> list[bytes]:
    """The plaintext handshake bytes of each side of the real TLS 1.2 handshake."""
    return [plaintext_handshake(s) for s in tls12_streams()]


def expected(data: bytes, frame_of_end: dict[int, int] | None = None) -> list[HandshakeMessage]:
    return [
        HandshakeMessage(t, body, frame_of_end[end - 1] if frame_of_end else 1)
        for t, body, end in split_messages(data)
    ]


def feed(fragments: list[tuple[bytes, int]], a: HandshakeAssembler) -> list[HandshakeMessage]:
    out: list[HandshakeMessage] = []
    for data, frame in fragments:
        out += a.feed(data, frame)
    return out


def test_real_flights_have_the_expected_messages() -> None:
    client, server = flights()
    assert [(t, len(b)) for t, b, _ in split_messages(client)] == [(1, 313), (16, 258)]
    assert [(t, len(b)) for t, b, _ in split_messages(server)] == [(2, 77), (11, 3823), (14, 0)]


# ---- the incremental-reader contract ---------------------------------------------------------


def test_whole_flight_at_once() -> None:
    for data in flights():
        a = HandshakeAssembler()
        assert a.feed(data, 1) == expected(data)
        assert a.pending == 0
        assert a.anomalies == []


def test_one_byte_per_fragment_frame_is_frame_of_last_byte() -> None:
    for data in flights():
        a = HandshakeAssembler()
        got = feed([(data[i : i + 1], i + 1) for i in range(len(data))], a)
        assert got == expected(data, {i: i + 1 for i in range(len(data))})
        assert a.pending == 0


def test_as_recorded_one_record_per_fragment() -> None:
    # Server: SH (record 1, frame 6), Certificate + SHD (records 2 and 3, frame 9).
    _, server = tls12_streams()
    a = HandshakeAssembler()
    got = feed([(server.data[5:86], 6), (server.data[91:3918], 9), (server.data[3923:3927], 9)], a)
    assert [(m.msg_type, m.frame) for m in got] == [(2, 6), (11, 9), (14, 9)]


@settings(derandomize=True, max_examples=60, deadline=None)
@given(cuts=st.sets(st.integers(1, 3911), max_size=50).map(sorted), which=st.sampled_from([0, 1]))
def test_random_fragmentation(cuts: list[int], which: int) -> None:
    data = flights()[which]
    pieces = chunked(data, [c for c in cuts if c < len(data)])
    frame_of: dict[int, int] = {}
    offset = 0
    for n, p in enumerate(pieces, 1):
        for i in range(len(p)):
            frame_of[offset + i] = n
        offset += len(p)
    a = HandshakeAssembler()
    assert feed([(p, n) for n, p in enumerate(pieces, 1)], a) == expected(data, frame_of)
    assert a.pending == 0


def test_trailing_partial_message_is_held() -> None:
    for data in flights():
        a = HandshakeAssembler()
        assert a.feed(data + b"\x04\x00\x00", 1) == expected(data)
        assert a.pending == 3
        assert a.feed(b"\x02\xab", 2) == []
        assert a.feed(b"\xcd", 3) == [HandshakeMessage(4, b"\xab\xcd", 3)]
        assert a.pending == 0


def test_trailing_garbage_declaring_a_huge_length() -> None:
    for data in flights():
        a = HandshakeAssembler()
        assert a.feed(data + b"\xff\xff\xff\xff" + b"junk", 1) == expected(data)
        assert [(x.name, x.frame) for x in a.anomalies] == [("oversized_handshake_message", 1)]
        assert a.pending == 0


@settings(derandomize=True, max_examples=150, deadline=None)
@given(
    which=st.sampled_from([0, 1]),
    cut=st.integers(0, 3912),
    garbage=st.binary(max_size=64),
    cuts=st.sets(st.integers(1, 4000), max_size=20).map(sorted),
)
def test_prefix_plus_garbage_keeps_complete_messages(
    which: int, cut: int, garbage: bytes, cuts: list[int]
) -> None:
    flight = flights()[which]
    prefix = flight[:cut]
    data = prefix + garbage
    a = HandshakeAssembler()
    got = feed(
        [(p, n) for n, p in enumerate(chunked(data, [c for c in cuts if c < len(data)]), 1)], a
    )
    complete = [(t, b) for t, b, end in split_messages(flight) if end <= len(prefix)]
    assert [(m.msg_type, m.body) for m in got[: len(complete)]] == complete


@settings(derandomize=True, max_examples=300, deadline=None)
@given(fragments=st.lists(st.binary(max_size=30), max_size=15), reset_at=st.integers(-1, 15))
def test_arbitrary_fragments_never_raise(fragments: list[bytes], reset_at: int) -> None:
    a = HandshakeAssembler()
    fed = 0
    for n, f in enumerate(fragments, 1):
        if n == reset_at:
            a.reset()
        fed += len(f)
        for m in a.feed(f, n):
            assert m.frame == n
            assert len(m.body) <= fed
        assert a.pending <= fed


# ---- messages across records, reset, oversized -------------------------------------------------


def test_coalesced_messages_in_one_fragment() -> None:
    data = handshake(2, b"sh") + handshake(11, b"cert") + handshake(14, b"")
    a = HandshakeAssembler()
    assert a.feed(data, 5) == [
        HandshakeMessage(2, b"sh", 5),
        HandshakeMessage(11, b"cert", 5),
        HandshakeMessage(14, b"", 5),
    ]


def test_message_split_over_records_like_ch_split_records() -> None:
    # ch_split_records.pcap: the ClientHello message re-wrapped into 120/120/rest-byte records.
    msg = handshake(1, CHROME_CLIENT_HELLO)
    a = HandshakeAssembler()
    assert a.feed(msg[:120], 4) == []
    assert a.pending == 120
    assert a.feed(msg[120:240], 4) == []
    assert a.feed(msg[240:], 4) == [HandshakeMessage(1, CHROME_CLIENT_HELLO, 4)]


def test_record_ends_inside_the_next_header() -> None:
    data = handshake(2, b"hello") + handshake(14, b"")
    a = HandshakeAssembler()
    assert a.feed(data[:11], 1) == [HandshakeMessage(2, b"hello", 1)]
    assert a.pending == 2
    assert a.feed(data[11:], 2) == [HandshakeMessage(14, b"", 2)]


def test_reset_forgets_the_partial_message() -> None:
    a = HandshakeAssembler()
    a.feed(handshake(11, b"x" * 100)[:50], 1)
    assert a.pending == 50
    a.reset()
    assert a.pending == 0
    assert a.feed(handshake(14, b""), 2) == [HandshakeMessage(14, b"", 2)]


def test_oversized_message_is_skipped_and_the_next_one_read() -> None:
    length = MAX_HANDSHAKE_MESSAGE + 1
    header = bytes([11]) + length.to_bytes(3, "big")
    a = HandshakeAssembler()
    assert a.feed(header + b"a" * 10, 3) == []
    assert [(x.name, x.frame) for x in a.anomalies] == [("oversized_handshake_message", 3)]
    assert a.pending == 0
    rest = length - 10
    assert a.feed(b"b" * (rest - 5), 4) == []
    assert a.pending == 0
    # The last 5 skipped bytes and a whole ServerHelloDone arrive together.
    assert a.feed(b"c" * 5 + handshake(14, b""), 5) == [HandshakeMessage(14, b"", 5)]


def test_oversized_header_split_across_fragments() -> None:
    length = MAX_HANDSHAKE_MESSAGE + 100
    header = bytes([11]) + length.to_bytes(3, "big")
    a = HandshakeAssembler()
    assert a.feed(header[:2], 1) == []
    assert a.feed(header[2:], 2) == []
    assert [(x.name, x.frame) for x in a.anomalies] == [("oversized_handshake_message", 2)]
    assert a.feed(bytes(length) + handshake(20, b"v" * 12), 3) == [
        HandshakeMessage(20, b"v" * 12, 3)
    ]


def test_largest_allowed_message_is_assembled() -> None:
    body = bytes(MAX_HANDSHAKE_MESSAGE)
    a = HandshakeAssembler()
    msg = handshake(11, body)
    out = feed([(msg[i : i + 16384], i) for i in range(0, len(msg), 16384)], a)
    assert [(m.msg_type, len(m.body)) for m in out] == [(11, MAX_HANDSHAKE_MESSAGE)]
    assert a.anomalies == []
