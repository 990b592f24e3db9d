"""IP fragment reassembly (tlspcap.capture.fragments through the decoder) and ICMP errors.

Datagrams are fragmented byte by byte (tests/wire_builders.py). Reassembly must give back the
TCP segment at the frame of the fragment that completed it, in or out of order, IPv4 and IPv6,
with first-received bytes winning an overlap; every bound (pending datagrams, bytes, capture-time
timeout) must hold under a flood, with a named anomaly for what was given up.
"""

from __future__ import annotations

import io
import struct
import tracemalloc
from pathlib import Path

import pytest
from wire_builders import (
    DST4,
    DST6,
    OUT_A,
    OUT_B,
    SRC4,
    SRC6,
    ether,
    icmp4,
    icmp6,
    ipv4,
    ipv4_fragments,
    ipv6,
    ipv6_fragments,
    pcap_file,
    tcp,
    udp,
    vxlan,
)

from tlspcap.analyze import MAX_ICMP_ERRORS, analyze_stream
from tlspcap.capture.decode import PacketDecoder, decode_segment
from tlspcap.capture.fragments import FRAGMENT_TIMEOUT_V4, FRAGMENT_TIMEOUT_V6
from tlspcap.capture.model import IcmpError, Packet, TcpSegment
from tlspcap.capture.reader import CaptureReader
from tlspcap.diagnosis.engine import diagnose_capture
from tlspcap.report.jsonfmt import capture_to_dict

ROOT = Path(__file__).resolve().parents[1]
PAYLOAD = bytes(range(256)) * 3  # 768 bytes: distinct content at every offset


def feed(
    frames: list[bytes], decoder: PacketDecoder | None = None, t0: float = 0.0, step: float = 0.01
) -> tuple[PacketDecoder, list[TcpSegment | None]]:
    dec = decoder or PacketDecoder()
    f = dec.for_linktype(1)
    out = [f(Packet(i, t0 + i * step, 1, d, len(d))) for i, d in enumerate(frames, start=1)]
    return dec, out


def names(dec: PacketDecoder) -> dict[str, str]:
    dec.finish()
    return {a.name: a.detail for a in dec.anomalies()}


def v4_frags(size: int = 200, ident: int = 0x1234, payload: bytes = PAYLOAD) -> list[bytes]:
    return [ether(f) for f in ipv4_fragments(ipv4(tcp(payload), ident=ident, frag=0), size)]


def v6_frags(size: int = 200, ident: int = 0x1234, payload: bytes = PAYLOAD) -> list[bytes]:
    return [ether(f, 0x86DD) for f in ipv6_fragments(ipv6(tcp(payload)), size, ident)]


@pytest.mark.parametrize("order", ["in", "reversed", "middle_last"])
@pytest.mark.parametrize("frags", [v4_frags, v6_frags], ids=["ipv4", "ipv6"])
def test_fragments_reassemble_in_any_order(order: str, frags: object) -> None:
    pieces = frags(200)  # type: ignore[operator]
    assert len(pieces) == 4
    if order == "reversed":
        pieces.reverse()
    elif order == "middle_last":
        pieces = [pieces[0], pieces[3], pieces[2], pieces[1]]
    dec, out = feed(pieces)
    assert out[:3] == [None, None, None]
    seg = out[3]
    assert seg is not None and seg.payload == PAYLOAD
    assert seg.frame == 4 and seg.ts == pytest.approx(0.04)  # the fragment that completed it
    assert seg.fragments == 4 and seg.tunnel is None
    assert (seg.src, seg.dst) in ((SRC4, DST4), (SRC6, DST6))
    assert seg.ip_id == 0x1234 and dec.pending_fragments == 0 and dec.held_fragment_bytes == 0
    detail = names(dec)["ip_fragments_reassembled"]
    assert detail.startswith("1 IPv") and "from 4 fragments; first completed at frame 4" in detail


def test_ipv6_extension_headers_after_the_fragment_header() -> None:
    """The fragmentable part may start with destination options: the first fragment's next
    header says so."""
    dstopts = bytes([6, 0]) + bytes(6)
    datagram = ipv6(dstopts + tcp(PAYLOAD), nh=60)
    pieces = [ether(f, 0x86DD) for f in ipv6_fragments(datagram, 256)]
    _, out = feed(list(reversed(pieces)))
    seg = out[-1]
    assert seg is not None and seg.payload == PAYLOAD and seg.ip_id == 0x1234


def test_interleaved_datagrams_keep_apart() -> None:
    a = v4_frags(256, ident=1, payload=b"A" * 600)
    b = v4_frags(256, ident=2, payload=b"B" * 600)
    _, out = feed([a[0], b[0], b[2], a[2], a[1], b[1]])
    done = [s for s in out if s is not None]
    assert [s.payload[:1] for s in done] == [b"A", b"B"] and [s.frame for s in done] == [5, 6]


def _overlapping(second_bytes: bytes) -> list[bytes]:
    """Fragment 0-16 and 16-32 of 'segment' bytes, then a fragment 8-24 with other bytes."""
    datagram = ipv4(tcp(b"0123456789abcdef" + b"ABCDEFGHIJKLMNOP"), frag=0, ident=9)
    head, body = datagram[:20], datagram[20:]  # body: 20-byte TCP header + 32 payload bytes

    def frag(off: int, data: bytes, more: bool) -> bytes:
        h = bytearray(head)
        struct.pack_into("!HHH", h, 2, 20 + len(data), 9, (off // 8) | (0x2000 * more))
        return ether(bytes(h) + data)

    return [
        frag(0, body[:24], True),
        frag(16, second_bytes, True),  # overlaps bytes 16-24 (payload "01234567" lies at 20)
        frag(24, body[24:], False),
    ]


def test_overlap_keeps_the_first_bytes_and_is_named() -> None:
    dec, out = feed(_overlapping(b"X" * 16))
    seg = out[-1]
    assert seg is not None
    # Bytes 16-24 of the datagram body come from the first fragment, 24-32 from the second
    # (it arrived before the third): the payload starts at body byte 20.
    assert seg.payload == b"0123" + b"X" * 8 + b"cdef" + b"ABCDEFGHIJKLMNOP"
    detail = names(dec)["fragment_overlap"]
    assert detail.startswith(
        "2 IPv4 fragment(s) overlapped bytes already received, 2 of them with different bytes"
    )
    assert "the bytes received first were kept" in detail


def test_identical_overlap_is_reported_as_same_bytes() -> None:
    pieces = v4_frags(200)
    dec, out = feed([pieces[0], pieces[1], pieces[1], pieces[2], pieces[3]])
    assert out[-1] is not None and out[-1].payload == PAYLOAD
    assert ", same bytes" in names(dec)["fragment_overlap"]


def test_fragment_after_completion_starts_a_datagram_that_never_completes() -> None:
    pieces = v4_frags(200)
    dec, out = feed([*pieces, pieces[1]])
    assert out[3] is not None and out[4] is None
    detail = names(dec)["fragments_incomplete"]
    assert detail == (
        "1 IPv4 datagram(s) (1 fragments) still incomplete at the end of the capture: their "
        "data is missing; first at frame 5"
    )


def test_timeout_in_capture_time() -> None:
    pieces = v4_frags(200)
    dec, _ = feed(pieces[:2], step=1.0)
    _, late = feed(pieces[2:], dec, t0=FRAGMENT_TIMEOUT_V4 + 2, step=1.0)
    assert late == [None, None]
    found = names(dec)
    assert found["fragments_timed_out"].startswith("1 IPv4 datagram(s) (2 fragments) still")
    assert "30 s of capture time" in found["fragments_timed_out"]
    assert "fragments_incomplete" in found  # the late ones never completed either


def test_ipv6_waits_sixty_seconds() -> None:
    pieces = v6_frags(200)
    dec, _ = feed(pieces[:2], step=1.0)
    _, late = feed(pieces[2:], dec, t0=FRAGMENT_TIMEOUT_V6 - 5, step=1.0)
    assert late[-1] is not None and late[-1].payload == PAYLOAD


def test_pending_datagrams_are_bounded() -> None:
    dec = PacketDecoder(max_datagrams=4)
    firsts = [v4_frags(200, ident=i)[0] for i in range(10)]
    feed(firsts, dec)
    assert dec.pending_fragments == 4
    found = names(dec)
    assert found["fragments_dropped"].startswith("6 IPv4 datagram(s) (6 fragments) dropped")
    assert "within 4 pending datagrams" in found["fragments_dropped"]
    assert found["fragments_incomplete"].startswith("4 IPv4 datagram(s)")


def test_pending_bytes_are_bounded_under_a_flood_of_tiny_fragments() -> None:
    """8-byte fragments of 2,000 datagrams that never complete: the bytes held stay within the
    bound (each fragment is charged 64 bytes on top of its data)."""
    dec = PacketDecoder(max_bytes=64 * 1024)
    f = dec.for_linktype(1)
    peak = 0
    for i in range(2000):
        datagram = ipv4(tcp(b"z" * 40), ident=i, frag=0)
        for k, piece in enumerate(ipv4_fragments(datagram, 8)[:-1]):
            assert f(Packet(i * 10 + k, float(i) / 1000, 1, ether(piece), 0)) is None
            peak = max(peak, dec.held_fragment_bytes)
    assert peak <= 64 * 1024
    assert "fragments_dropped" in names(dec)


def test_fragment_flood_memory_is_bounded() -> None:
    """30,000 first fragments of distinct datagrams with the default bounds (1,024 datagrams,
    4 MiB per IP version): Python's peak allocation stays far below what keeping them all
    would take (~12 MB)."""
    frames = [
        ether(
            ipv4_fragments(
                ipv4(tcp(b"q" * 300), ident=i, frag=0, src=bytes([10, 0, 0, i >> 15])), 256
            )[0]
        )
        for i in range(30_000)
    ]
    dec = PacketDecoder()
    f = dec.for_linktype(1)
    tracemalloc.start()
    try:
        for i, frame in enumerate(frames):
            f(Packet(i + 1, 0.0, 1, frame, len(frame)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert dec.pending_fragments == 1024
    assert peak < 3 * (1 << 20), peak
    assert names(dec)["fragments_dropped"].startswith("28976 IPv4 datagram(s) (28976 fragments)")


def test_fragment_past_65535_bytes_is_invalid() -> None:
    last = bytearray(ipv4_fragments(ipv4(tcp(PAYLOAD), frag=0, ident=5), 200)[-1])
    struct.pack_into("!H", last, 6, 65528 // 8)  # offset 65,528 + 168 bytes > 65,535
    dec, out = feed([ether(bytes(last))])
    assert out == [None] and dec.pending_fragments == 0
    assert names(dec)["fragment_invalid"].startswith("1 IPv4 fragment(s) inconsistent")


def test_fragments_disagreeing_on_the_end_drop_the_datagram() -> None:
    pieces = ipv4_fragments(ipv4(tcp(PAYLOAD), frag=0, ident=5), 200)
    other_end = bytearray(pieces[-1][:-8])  # another last fragment, 8 bytes shorter
    struct.pack_into("!H", other_end, 2, len(other_end))
    dec, out = feed(
        [ether(pieces[0]), ether(pieces[-1]), ether(bytes(other_end)), ether(pieces[1])]
    )
    assert out == [None, None, None, None]
    found = names(dec)
    assert found["fragment_invalid"].startswith("1 IPv4 datagram(s) (3 fragments) inconsistent")
    assert found["fragments_incomplete"].startswith("1 IPv4 datagram(s) (1 fragments)")


def test_fragment_cut_by_the_snap_length_is_not_used() -> None:
    pieces = v4_frags(200)
    dec = PacketDecoder()
    f = dec.for_linktype(1)
    cut = pieces[1][:100]
    assert f(Packet(1, 0.0, 1, pieces[0], len(pieces[0]))) is None
    assert f(Packet(2, 0.0, 1, cut, len(pieces[1]))) is None
    assert names(dec)["fragment_truncated"].startswith("1 IPv4 fragment(s) cut by the snap length")


def test_fragments_inside_tunnels_are_keyed_by_tunnel() -> None:
    """The same inner datagram id in two VXLAN segments: two datagrams, each with its tunnel."""
    a = [vxlan(1, f) for f in v4_frags(256, ident=77, payload=b"a" * 400)]
    b = [vxlan(2, f) for f in v4_frags(256, ident=77, payload=b"b" * 400)]
    assert len(a) == len(b) == 2
    wrap = [ether(ipv4(udp(x, 40000, 4789), proto=17, src=OUT_A, dst=OUT_B)) for x in a + b]
    _, out = feed([wrap[0], wrap[2], wrap[1], wrap[3]])
    done = [s for s in out if s is not None]
    assert [s.payload[:1] for s in done] == [b"a", b"b"]
    assert [s.tunnel for s in done] == [
        "VXLAN VNI 1 (203.0.113.1 -> 203.0.113.2)",
        "VXLAN VNI 2 (203.0.113.1 -> 203.0.113.2)",
    ]


def test_fragmented_outer_tunnel_packets_are_reassembled_first() -> None:
    """A VXLAN packet larger than the underlay MTU arrives as two outer IPv4 fragments."""
    inner = ether(ipv4(tcp(PAYLOAD)))
    outer = ipv4(udp(vxlan(5, inner), 40000, 4789), proto=17, src=OUT_A, dst=OUT_B, frag=0)
    pieces = [ether(f) for f in ipv4_fragments(outer, 480)]
    _, out = feed(list(reversed(pieces)))
    seg = out[-1]
    assert seg is not None and seg.payload == PAYLOAD and seg.fragments == 2
    assert seg.tunnel == "VXLAN VNI 5 (203.0.113.1 -> 203.0.113.2)"


def test_reassembled_non_tcp_is_counted() -> None:
    datagram = ipv4(udp(b"d" * 900, 5353, 53), proto=17, frag=0)
    dec, out = feed([ether(f) for f in ipv4_fragments(datagram, 256)])
    assert out == [None] * 4
    assert "UDP 1" in names(dec)["non_tcp_traffic"]


def test_analysis_of_a_fragmented_handshake_reports_the_completing_frames() -> None:
    """End to end: a real ClientHello (from a fixture) in fragments sent last first; the
    connection is found and the hello is at the frame that completed the datagram."""
    with (ROOT / "fixtures" / "real" / "tls12_ok_openssl.pcap").open("rb") as fh:
        packets = list(CaptureReader(fh).packets())
    segs = [decode_segment(p) for p in packets[:4]]
    hello = segs[3]
    assert hello is not None and hello.payload[:1] == b"\x16"
    frames = [packets[i].data for i in range(3)]
    head = packets[3].data[:14]
    datagram = packets[3].data[14 : 14 + int.from_bytes(packets[3].data[16:18], "big")]
    pieces = [head + f for f in ipv4_fragments(datagram[:6] + b"\0\0" + datagram[8:], 64)]
    assert len(pieces) == 4
    blob = pcap_file([*frames, *reversed(pieces)])
    result = analyze_stream(io.BytesIO(blob), "frag.pcap")
    assert result.error is None and result.packets == 3 + len(pieces)
    assert "ip_fragments_reassembled" in [a.name for a in result.anomalies]
    [conn] = capture_to_dict(result, diagnose_capture(result))["connections"]
    [ch] = conn["client_hellos"]
    assert ch["frame"] == 3 + len(pieces) and ch["sni"] == "localhost"


# ---- ICMP errors quoting TCP -----------------------------------------------------------------


def _quoted4() -> bytes:
    return ipv4(tcp(b"", seq=0xDEADBEEF, sport=40000, dport=443))[:28]  # IP header + 8 bytes


def test_icmp_fragmentation_needed_is_reported_with_its_mtu() -> None:
    got: list[IcmpError] = []
    dec = PacketDecoder(on_icmp=got.append)
    frame = ether(
        ipv4(
            icmp4(3, 4, _quoted4(), rest=struct.pack("!HH", 0, 1400)),
            proto=1,
            src=OUT_A,
            dst=SRC4,
            ttl=61,
        )
    )
    assert dec.for_linktype(1)(Packet(9, 5.0, 1, frame, len(frame))) is None
    assert got == [
        IcmpError(9, 5.0, 4, 3, 4, OUT_A, 61, SRC4, 40000, DST4, 443, 0xDEADBEEF, 1400, None)
    ]


@pytest.mark.parametrize(("icmp_type", "code"), [(11, 0), (3, 13), (3, 3), (12, 0), (5, 1)])
def test_other_icmp_errors_quoting_tcp(icmp_type: int, code: int) -> None:
    got: list[IcmpError] = []
    frame = ether(ipv4(icmp4(icmp_type, code, _quoted4()), proto=1, src=OUT_A, dst=SRC4))
    PacketDecoder(on_icmp=got.append).for_linktype(1)(Packet(1, 0.0, 1, frame, len(frame)))
    assert [(e.icmp_type, e.code, e.mtu, e.sport, e.seq) for e in got] == [
        (icmp_type, code, None, 40000, 0xDEADBEEF)
    ]


def test_icmpv6_packet_too_big_inside_a_tunnel() -> None:
    got: list[IcmpError] = []
    quoted = ipv6(tcp(b"", seq=7, sport=1234, dport=8443))[:48]
    message = icmp6(2, 0, quoted, rest=struct.pack("!I", 1280))
    inner = ether(ipv6(message, nh=58, src=bytes(15) + b"\x09", dst=SRC6, hlim=250), 0x86DD)
    frame = ether(ipv4(udp(vxlan(8, inner), 1, 4789), proto=17, src=OUT_A, dst=OUT_B))
    PacketDecoder(on_icmp=got.append).for_linktype(1)(Packet(3, 1.0, 1, frame, len(frame)))
    [e] = got
    assert (e.version, e.icmp_type, e.mtu, e.ttl, e.dport, e.seq) == (6, 2, 1280, 250, 8443, 7)
    assert (
        e.router == bytes(15) + b"\x09" and e.tunnel == "VXLAN VNI 8 (203.0.113.1 -> 203.0.113.2)"
    )


@pytest.mark.parametrize(
    "message",
    [
        icmp4(8, 0, b"echo request payload"),  # not an error
        icmp4(3, 3, ipv4(udp(b"dns", 53, 5353), proto=17)[:28]),  # quotes UDP
        icmp4(3, 4, _quoted4()[:24]),  # quote shorter than IP header + 8
        icmp4(3, 4, ipv4(tcp(b""), frag=0x2005)[:28]),  # quotes a non-first fragment
    ],
)
def test_icmp_without_a_tcp_quote_is_only_counted(message: bytes) -> None:
    got: list[IcmpError] = []
    dec = PacketDecoder(on_icmp=got.append)
    frame = ether(ipv4(message, proto=1))
    assert dec.for_linktype(1)(Packet(1, 0.0, 1, frame, len(frame))) is None
    assert got == [] and "ICMP 1" in names(dec)["non_tcp_traffic"]


def test_analysis_keeps_a_bounded_list_of_icmp_errors() -> None:
    frame = ether(ipv4(icmp4(11, 0, _quoted4()), proto=1, src=OUT_A, dst=SRC4))
    result = analyze_stream(io.BytesIO(pcap_file([frame] * (MAX_ICMP_ERRORS + 5))), "icmp")
    assert len(result.icmp_errors) == MAX_ICMP_ERRORS and result.icmp_errors.dropped == 5
    assert result.icmp_errors[0].frame == 1 and result.icmp_errors[-1].frame == MAX_ICMP_ERRORS
