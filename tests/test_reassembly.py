"""StreamReassembler: one TCP direction back into a byte stream (tlspcap.tcp.reassembly)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from vectors import PSK_CLIENT_HELLO, chunked, handshake, record, tls12_streams

from tlspcap.capture.model import ACK, FIN, PSH, SYN, TcpSegment
from tlspcap.tcp.reassembly import MASK32, Gap, Piece, StreamReassembler
from tlspcap.tcp.tracker import ConnectionTracker

ISN = 1_000_000


def started(isn: int = ISN, max_buffered: int = 1 << 20) -> StreamReassembler:
    """A reassembler that has seen the SYN carrying ``isn`` (data starts at isn + 1)."""
    r = StreamReassembler(max_buffered)
    r.syn(isn)
    return r


def seq(offset: int, isn: int = ISN) -> int:
    """Sequence number of stream byte ``offset``."""
    return (isn + 1 + offset) & MASK32


def joined(pieces: list[Piece]) -> bytes:
    """The delivered bytes, asserting there is no gap among them."""
    assert all(not isinstance(p, Gap) for p in pieces), pieces
    return b"".join(p[0] for p in pieces if not isinstance(p, Gap))


# ---- ordinary cases --------------------------------------------------------------------------


def test_in_order_segments_are_delivered_at_once_with_their_frame() -> None:
    r = started()
    assert r.add(seq(0), b"hello ", 4) == [(b"hello ", 4)]
    assert r.add(seq(6), b"world", 5) == [(b"world", 5)]
    assert r.next_offset == 11
    assert (r.retransmitted, r.out_of_order, r.buffered) == (0, 0, 0)


def test_empty_payload_delivers_nothing_and_does_not_start_the_stream() -> None:
    r = StreamReassembler()
    assert r.add(5, b"", 1) == []
    assert not r.started
    assert r.add(100, b"ab", 2) == [(b"ab", 2)]
    assert r.started
    assert r.offset_of(102) == 2


def test_without_syn_the_first_segment_sets_the_base() -> None:
    r = StreamReassembler()
    assert r.add(0xDEADBEEF, b"abc", 7) == [(b"abc", 7)]
    assert r.add(0xDEADBEEF + 3, b"def", 8) == [(b"def", 8)]
    assert r.next_offset == 6


def test_a_second_syn_does_not_move_the_base() -> None:
    r = started()
    r.syn(ISN + 500)
    assert r.add(seq(0), b"x", 3) == [(b"x", 3)]


def test_out_of_order_segment_waits_for_the_hole_and_takes_the_filling_frame() -> None:
    r = started()
    assert r.add(seq(5), b"56789", 10) == []
    assert (r.out_of_order, r.buffered, r.next_offset) == (1, 5, 0)
    assert r.add(seq(0), b"01234", 11) == [(b"01234", 11), (b"56789", 11)]
    assert (r.buffered, r.next_offset) == (0, 10)


def test_several_buffered_segments_drain_in_stream_order() -> None:
    r = started()
    assert r.add(seq(20), b"cc", 3) == []
    assert r.add(seq(10), b"bbbbbbbbbb", 4) == []
    assert r.add(seq(22), b"dd", 5) == []
    assert r.add(seq(0), b"aaaaaaaaaa", 6) == [
        (b"aaaaaaaaaa", 6),
        (b"bbbbbbbbbb", 6),
        (b"cc", 6),
        (b"dd", 6),
    ]
    assert r.out_of_order == 3


def test_identical_retransmission_is_counted_and_dropped() -> None:
    r = started()
    r.add(seq(0), b"abcdef", 1)
    assert r.add(seq(0), b"abcdef", 2) == []
    assert r.add(seq(2), b"cd", 3) == []
    assert r.retransmitted == 2
    assert r.next_offset == 6


def test_overlapping_retransmission_delivers_only_new_bytes() -> None:
    r = started()
    r.add(seq(0), b"abcdef", 1)
    assert r.add(seq(4), b"efGHIJ", 2) == [(b"GHIJ", 2)]
    assert r.next_offset == 10
    assert r.retransmitted == 0


def test_first_copy_of_a_delivered_byte_wins() -> None:
    r = started()
    r.add(seq(0), b"abc", 1)
    assert r.add(seq(0), b"XYZW", 2) == [(b"W", 2)]


def test_duplicate_of_a_buffered_segment_is_delivered_once() -> None:
    r = started()
    r.add(seq(4), b"4567", 1)
    r.add(seq(4), b"4567", 2)
    assert r.buffered == 8
    assert r.add(seq(0), b"0123", 3) == [(b"0123", 3), (b"4567", 3)]
    assert r.retransmitted == 1
    assert r.buffered == 0


def test_overlapping_buffered_segments() -> None:
    # out_of_order.pcap in miniature: [2000,3000) buffered, then [2500,3927) buffered.
    data = bytes(range(256)) * 16
    r = started()
    r.add(seq(0), data[0:1000], 6)
    assert r.add(seq(2000), data[2000:3000], 7) == []
    assert r.add(seq(2500), data[2500:3927], 8) == []
    out = r.add(seq(1000), data[1000:2000], 9)
    assert out == [(data[1000:2000], 9), (data[2000:3000], 9), (data[3000:3927], 9)]
    assert r.next_offset == 3927


def test_segment_straddling_next_offset_then_drains_buffer() -> None:
    r = started()
    r.add(seq(0), b"0123", 1)
    r.add(seq(8), b"89", 2)
    assert r.add(seq(2), b"234567", 3) == [(b"4567", 3), (b"89", 3)]


# ---- gaps ------------------------------------------------------------------------------------


def test_flush_declares_the_hole_as_a_gap_of_the_right_size() -> None:
    r = started()
    r.add(seq(0), b"0123456789", 1)
    r.add(seq(20), b"klmno", 2)
    assert r.flush(9) == [Gap(10, 9), (b"klmno", 9)]
    assert (r.next_offset, r.buffered) == (25, 0)
    assert r.flush(10) == []


def test_flush_declares_every_hole() -> None:
    r = started()
    r.add(seq(3), b"345", 1)
    r.add(seq(10), b"AB", 2)
    r.add(seq(100), b"Z", 3)
    assert r.flush(4) == [Gap(3, 4), (b"345", 4), Gap(4, 4), (b"AB", 4), Gap(88, 4), (b"Z", 4)]
    assert r.next_offset == 101


def test_after_a_flushed_gap_reading_resumes() -> None:
    r = started()
    r.add(seq(5), b"56", 1)
    r.flush(2)
    assert r.add(seq(7), b"78", 3) == [(b"78", 3)]
    assert r.add(seq(0), b"01234", 4) == []
    assert r.retransmitted == 1


def test_buffer_cap_forces_a_gap() -> None:
    r = started(max_buffered=10)
    assert r.add(seq(0), b"01234", 1) == [(b"01234", 1)]
    assert r.add(seq(10), b"ABCDEF", 2) == []
    assert r.buffered == 6
    # 12 buffered bytes > 10: the oldest hole [5, 10) becomes a gap and [10, 16) is delivered.
    assert r.add(seq(20), b"uvwxyz", 3) == [Gap(5, 3), (b"ABCDEF", 3)]
    assert (r.buffered, r.next_offset) == (6, 16)
    assert r.flush(4) == [Gap(4, 4), (b"uvwxyz", 4)]


def test_buffer_cap_zero_skips_every_hole_at_once() -> None:
    r = started(max_buffered=0)
    assert r.add(seq(3), b"345", 1) == [Gap(3, 1), (b"345", 1)]


def test_skip_to_declares_missing_bytes() -> None:
    r = started()
    r.add(seq(0), b"0123", 1)
    assert r.skip_to(seq(10), 2) == [Gap(6, 2)]
    assert r.next_offset == 10
    assert r.add(seq(10), b"ab", 3) == [(b"ab", 3)]


def test_skip_to_behind_next_offset_does_nothing() -> None:
    r = started()
    r.add(seq(0), b"0123", 1)
    assert r.skip_to(seq(2), 2) == []
    assert r.skip_to(seq(4), 2) == []
    assert r.next_offset == 4


def test_skip_to_before_the_stream_started_does_nothing() -> None:
    r = StreamReassembler()
    assert r.skip_to(12345, 1) == []
    assert not r.started


def test_skip_to_stops_at_buffered_data_and_drains_it() -> None:
    r = started()
    r.add(seq(0), b"01", 1)
    r.add(seq(5), b"5678", 2)
    assert r.skip_to(seq(7), 3) == [Gap(3, 3), (b"5678", 3)]
    assert r.next_offset == 9


def test_skip_to_drains_segments_that_start_at_the_target() -> None:
    r = started()
    r.add(seq(6), b"67", 1)
    assert r.skip_to(seq(6), 2) == [Gap(6, 2), (b"67", 2)]


# ---- sequence number wraparound --------------------------------------------------------------


def test_wraparound_in_order() -> None:
    isn = 0xFFFFFFF0
    r = started(isn)
    first = bytes(range(16))  # offsets 0..15 = seq 0xFFFFFFF1 .. 0x00000000
    assert seq(0, isn) == 0xFFFFFFF1
    assert r.add(seq(0, isn), first, 1) == [(first, 1)]
    assert seq(15, isn) == 0
    assert r.add(0x00000000 + 1, b"after", 2) == [(b"after", 2)]
    assert r.next_offset == 21
    assert r.offset_of(0x00000001) == 16


def test_wraparound_out_of_order_and_retransmitted() -> None:
    isn = 0xFFFFFFFA
    r = started(isn)
    assert r.add(seq(10, isn), b"KLM", 1) == []  # seq 5: past the wrap
    assert r.add(seq(0, isn), b"ABCDEFGHIJ", 2) == [(b"ABCDEFGHIJ", 2), (b"KLM", 2)]
    assert r.add(seq(0, isn), b"ABC", 3) == []
    assert r.retransmitted == 1
    assert r.next_offset == 13


def test_offsets_keep_growing_past_4_gib() -> None:
    isn = 0x7FFFFFFF
    r = started(isn)
    chunk = b"x" * 0x10000
    assert r.add(seq(0, isn), chunk, 1) == [(chunk, 1)]
    prev = len(chunk)
    for k in range(1, 5):  # move 1 GiB at a time (sequence numbers are compared mod 2**32)
        target = k << 30
        assert r.skip_to(seq(target, isn), k + 1) == [Gap(target - prev, k + 1)]
        prev = target
    assert r.next_offset == 1 << 32
    assert seq(1 << 32, isn) == seq(0, isn)
    assert r.add(seq(4, isn), b"EFGH", 7) == []  # ahead: same seq as offset 4 of the first lap
    assert r.add(seq(0, isn), b"ABCD", 8) == [(b"ABCD", 8), (b"EFGH", 8)]
    assert r.next_offset == (1 << 32) + 8


# ---- the incremental-reader contract on real bytes -------------------------------------------


def _server_data() -> bytes:
    return tls12_streams()[1].data


def test_real_stream_whole_at_once() -> None:
    data = _server_data()
    r = started()
    assert r.add(seq(0), data, 1) == [(data, 1)]
    assert r.flush(2) == []


def test_real_stream_one_byte_at_a_time() -> None:
    data = _server_data()
    r = started()
    for i in range(len(data)):
        assert r.add(seq(i), data[i : i + 1], i + 1) == [(data[i : i + 1], i + 1)]
    assert r.next_offset == len(data)


def test_real_stream_as_captured() -> None:
    server = tls12_streams()[1]
    r = started(server.isn - 1)
    offset = 0
    out: list[Piece] = []
    for payload, frame in server.chunks:
        out += r.add(server.isn + offset, payload, frame)
        offset += len(payload)
    assert out == list(server.chunks)


@settings(derandomize=True, max_examples=60, deadline=None)
@given(cuts=st.sets(st.integers(1, 6035), max_size=40).map(sorted))
def test_real_stream_random_chunking_in_order(cuts: list[int]) -> None:
    data = _server_data()
    r = started()
    offset = 0
    for n, piece in enumerate(chunked(data, cuts)):
        assert r.add(seq(offset), piece, n + 1) == [(piece, n + 1)]
        offset += len(piece)
    assert r.next_offset == len(data)


@settings(derandomize=True, max_examples=60, deadline=None)
@given(
    cuts=st.sets(st.integers(1, 6035), max_size=30).map(sorted),
    order=st.randoms(use_true_random=False),
    garbage=st.binary(min_size=1, max_size=50),
)
def test_real_stream_random_chunking_any_order_with_trailing_bytes(
    cuts: list[int], order: random.Random, garbage: bytes
) -> None:
    data = _server_data() + garbage
    pieces = chunked(data, [*cuts, len(data) - len(garbage)] if garbage else cuts)
    starts = [sum(len(p) for p in pieces[:i]) for i in range(len(pieces))]
    idx = list(range(len(pieces)))
    order.shuffle(idx)
    r = started()
    out: list[Piece] = []
    for frame, i in enumerate(idx, 1):
        got = r.add(seq(starts[i]), pieces[i], frame)
        assert all(not isinstance(p, Gap) and p[1] == frame for p in got)
        out += got
    assert r.flush(len(idx) + 1) == []
    assert joined(out) == data
    assert r.buffered == 0


# ---- model check: any segments, any order, overlaps and holes --------------------------------


@st.composite
def segments(draw: st.DrawFn) -> tuple[int, bytes, list[tuple[int, int]]]:
    """A stream, an ISN anywhere in the sequence space, and segments as (start, end) ranges."""
    data = draw(st.binary(min_size=1, max_size=200))
    isn = draw(st.sampled_from([0, 0xFFFFFF00, 0xFFFFFFFF, 0x7FFFFFF0]) | st.integers(0, MASK32))
    n = len(data)
    ranges = draw(
        st.lists(
            st.tuples(st.integers(0, n - 1), st.integers(1, 64)).map(
                lambda t: (t[0], min(n, t[0] + t[1]))
            ),
            min_size=1,
            max_size=25,
        )
    )
    return isn, data, ranges


@settings(derandomize=True, max_examples=300, deadline=None)
@given(case=segments(), cap=st.sampled_from([0, 16, 1 << 20]))
def test_model_any_segments_reassemble_to_the_stream_with_exact_gaps(
    case: tuple[int, bytes, list[tuple[int, int]]], cap: int
) -> None:
    isn, data, ranges = case
    r = StreamReassembler(cap)
    r.syn(isn)
    out: list[Piece] = []
    for frame, (a, b) in enumerate(ranges, 1):
        out += r.add(seq(a, isn), data[a:b], frame)
    out += r.flush(len(ranges) + 1)
    # Walk the output: bytes must match the stream at their offset; gaps skip bytes.
    offset = 0
    delivered = bytearray()
    gaps = []
    for p in out:
        if isinstance(p, Gap):
            assert p.size > 0
            gaps.append((offset, offset + p.size))
            offset += p.size
        else:
            assert p[0] == data[offset : offset + len(p[0])]
            assert p[0]
            delivered += p[0]
            offset += len(p[0])
    end = max(b for _, b in ranges)
    assert offset == end == r.next_offset
    assert r.buffered == 0
    covered: set[int] = set()
    for a, b in ranges:
        covered.update(range(a, b))
    missing = set(range(end)) - covered
    in_gaps: set[int] = set()
    for a, b in gaps:
        in_gaps.update(range(a, b))
    # Every byte never sent is inside a gap; with a cap, more may be skipped, never fewer.
    assert missing <= in_gaps
    if cap >= 1 << 20:
        assert in_gaps == missing


# ---- through the ConnectionTracker -------------------------------------------------------------

CLIENT = (b"\x7f\x00\x00\x01", 50000)
SERVER = (b"\x7f\x00\x00\x02", 443)


def segment(
    frame: int, from_client: bool, seq_: int, flags: int, payload: bytes = b""
) -> TcpSegment:
    src, dst = (CLIENT, SERVER) if from_client else (SERVER, CLIENT)
    return TcpSegment(frame, float(frame), src[0], src[1], dst[0], dst[1], seq_, 0, flags, payload)


def test_tracker_reassembles_a_reordered_client_hello() -> None:
    ch = record(22, handshake(1, PSK_CLIENT_HELLO), 0x0301)
    tracker = ConnectionTracker()
    tracker.feed(segment(1, True, 100, SYN))
    tracker.feed(segment(2, False, 500, SYN | ACK))
    tracker.feed(segment(3, True, 101 + 200, ACK | PSH, ch[200:]))
    tracker.feed(segment(4, True, 101, ACK | PSH, ch[:200]))
    tracker.feed(segment(5, True, 101, ACK | PSH, ch[:200]))  # identical retransmission
    (conn,) = tracker.finish()
    assert [h.frame for h in conn.session.client_hellos] == [4]
    assert conn.streams[0].retransmitted == 1
    assert conn.streams[0].out_of_order == 1
    assert conn.session.anomalies == []


def test_fin_ahead_of_a_retransmitted_segment_is_not_a_gap() -> None:
    # BUG: the tracker flushes a direction at its FIN. When a segment lost before the capture
    # point is retransmitted after the FIN (capture taken at the receiver), the hole is declared
    # a gap at the FIN and the retransmission that fills it is then dropped as old data.
    ch = record(22, handshake(1, PSK_CLIENT_HELLO), 0x0301)
    tracker = ConnectionTracker()
    tracker.feed(segment(1, True, 100, SYN))
    tracker.feed(segment(2, False, 500, SYN | ACK))
    tracker.feed(segment(3, True, 101, ACK | PSH, ch[:100]))
    tracker.feed(segment(4, True, 301, ACK | PSH, ch[200:]))  # ch[100:200] lost upstream
    tracker.feed(segment(5, True, 101 + len(ch), FIN | ACK))
    tracker.feed(segment(6, True, 201, ACK | PSH, ch[100:200]))  # the retransmission
    tracker.feed(segment(7, False, 501, ACK | PSH, record(21, b"\x02\x28")))
    (conn,) = tracker.finish()
    assert [h.frame for h in conn.session.client_hellos] == [6]
    assert [a.name for a in conn.session.anomalies] == []
