"""Link-layer, IPv4/IPv6 and TCP decoding: tlspcap.capture.decode."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tlspcap.capture import linktypes
from tlspcap.capture.decode import decode_segment, linktype_name, segment_decoder
from tlspcap.capture.model import ACK, PSH, SYN, Packet, TcpSegment
from tlspcap.errors import CaptureError

SRC4 = bytes([192, 0, 2, 1])
DST4 = bytes([198, 51, 100, 7])
SRC6 = bytes.fromhex("20010db8000000000000000000000001")
DST6 = bytes.fromhex("20010db8000000000000000000000002")


def tcp(
    payload: bytes = b"",
    *,
    sport: int = 51000,
    dport: int = 443,
    seq: int = 1000,
    ack: int = 2000,
    flags: int = ACK | PSH,
    options: bytes = b"",
) -> bytes:
    """A TCP header (data offset from the options) followed by the payload."""
    assert len(options) % 4 == 0
    doff = (20 + len(options)) // 4
    header = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, doff << 4, flags, 65535, 0, 0)
    return header + options + payload


def ipv4(
    body: bytes,
    *,
    proto: int = 6,
    options: bytes = b"",
    frag: int = 0x4000,
    total: int | None = None,
) -> bytes:
    """An IPv4 header (IHL from the options) followed by ``body``."""
    assert len(options) % 4 == 0
    ihl = 5 + len(options) // 4
    length = ihl * 4 + len(body) if total is None else total
    header = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, length, 7, frag, 64, proto, 0, SRC4, DST4)
    return header + options + body


def ipv6(body: bytes, *, nh: int = 6, plen: int | None = None) -> bytes:
    """An IPv6 header followed by ``body`` (extension headers included)."""
    length = len(body) if plen is None else plen
    return struct.pack("!IHBB16s16s", 6 << 28, length, nh, 64, SRC6, DST6) + body


def ext8(nh: int, units: int = 0) -> bytes:
    """A hop-by-hop/routing/destination-options style header of ``(units + 1) * 8`` bytes."""
    return bytes([nh, units]) + bytes(6 + 8 * units)


def ether(body: bytes, ethertype: int = 0x0800, tags: tuple[int, ...] = ()) -> bytes:
    """An Ethernet II frame; ``tags`` are the TPIDs of VLAN tags, outermost first."""
    head = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01"
    for i, tpid in enumerate(tags):
        head += struct.pack("!HH", tpid, 100 + i)
    return head + struct.pack("!H", ethertype) + body


def pkt(data: bytes, linktype: int = linktypes.ETHERNET, orig_len: int | None = None) -> Packet:
    """A packet record as the reader would yield it."""
    return Packet(7, 1700000000.25, linktype, data, len(data) if orig_len is None else orig_len)


def decode(
    data: bytes, linktype: int = linktypes.ETHERNET, orig_len: int | None = None
) -> TcpSegment | None:
    """Decode with the link type's decoder."""
    return segment_decoder(linktype)(pkt(data, linktype, orig_len))


def test_ethernet_ipv4_tcp_fields() -> None:
    seg = decode(ether(ipv4(tcp(b"hello", flags=SYN | ACK, seq=0xFFFFFFFF, ack=5))))
    assert seg == TcpSegment(
        7,
        1700000000.25,
        SRC4,
        51000,
        DST4,
        443,
        0xFFFFFFFF,
        5,
        SYN | ACK,
        b"hello",
        0,
        ttl=64,
        ip_id=7,
        window=65535,
        options=b"",
        tunnel=None,
        fragments=0,
    )


def test_general_path_gives_the_same_fields_as_the_fast_path() -> None:
    """A VLAN tag sends the frame down the general path: same segment, option bytes too."""
    options = b"\x02\x04\x05\xb4\x01\x01\x04\x02"
    fast = decode(ether(ipv4(tcp(b"same", options=options))))
    slow = decode(ether(ipv4(tcp(b"same", options=options)), tags=(0x8100,)))
    assert fast is not None and fast == slow
    assert fast.options == options and fast.window == 65535 and fast.ttl == 64


def test_decode_segment_convenience_matches_decoder() -> None:
    p = pkt(ether(ipv4(tcp(b"x"))))
    assert decode_segment(p) == segment_decoder(1)(p)


def test_ethernet_padding_and_fcs_are_stripped() -> None:
    frame = ether(ipv4(tcp(b"ab")))
    padded = frame + bytes(60 - len(frame)) + b"\xde\xad\xbe\xef"
    seg = decode(padded)
    assert seg is not None and seg.payload == b"ab" and seg.missing == 0


@pytest.mark.parametrize(
    "tags", [(0x8100,), (0x88A8, 0x8100), (0x9100, 0x8100), (0x88A8, 0x88A8, 0x8100, 0x8100)]
)
def test_vlan_tags_stacked(tags: tuple[int, ...]) -> None:
    seg = decode(ether(ipv6(tcp(b"vlan")), 0x86DD, tags))
    assert seg is not None and seg.payload == b"vlan" and seg.src == SRC6


def test_vlan_tag_cut_short_is_none() -> None:
    assert decode(ether(b"", 0x8100)[:14] + b"\x00\x64") is None


def test_not_ip_ethertype_is_none() -> None:
    assert decode(ether(bytes(28), 0x0806)) is None


@pytest.mark.parametrize("option_words", [1, 2, 10])
def test_ipv4_options_use_ihl(option_words: int) -> None:
    options = b"\x01" * (4 * option_words - 1) + b"\x00"
    seg = decode(ether(ipv4(tcp(b"opt"), options=options)))
    assert seg is not None and seg.payload == b"opt" and seg.dport == 443


def test_ipv4_ihl_below_five_is_none() -> None:
    frame = bytearray(ether(ipv4(tcp(b"x"))))
    frame[14] = 0x44
    assert decode(bytes(frame)) is None


@pytest.mark.parametrize(
    ("frag", "expected"),
    [(0x4000, True), (0x0000, True), (0x2000, False), (0x0010, False), (0x2010, False)],
)
def test_ipv4_fragments_are_none(frag: int, expected: bool) -> None:
    seg = decode(ether(ipv4(tcp(b"frag"), frag=frag)))
    assert (seg is not None) is expected


def test_ipv4_total_length_zero_means_tso() -> None:
    seg = decode(ether(ipv4(tcp(b"T" * 3000), total=0)))
    assert seg is not None and seg.payload == b"T" * 3000


def test_ipv4_total_length_below_header_is_none() -> None:
    assert decode(ether(ipv4(tcp(b"x"), total=19))) is None
    assert decode(ether(ipv4(tcp(b"x"), total=30))) is None  # TCP header would overrun it


@pytest.mark.parametrize("proto", [1, 17, 132])
def test_non_tcp_is_none(proto: int) -> None:
    assert decode(ether(ipv4(bytes(40), proto=proto))) is None
    assert decode(ether(ipv6(bytes(40), nh=proto), 0x86DD)) is None


def test_ipv6_without_extensions() -> None:
    seg = decode(ether(ipv6(tcp(b"six", sport=1, dport=2)), 0x86DD))
    assert seg == TcpSegment(
        7, 1700000000.25, SRC6, 1, DST6, 2, 1000, 2000, ACK | PSH, b"six", ttl=64, window=65535
    )


def test_ipv6_extension_chain_is_skipped() -> None:
    # hop-by-hop -> routing (24 bytes) -> destination options -> atomic fragment -> AH -> TCP
    routing = bytes([60, 2]) + bytes(22)
    atomic_fragment = bytes([51, 0, 0, 0]) + struct.pack("!I", 42)
    ah = bytes([6, 4, 0, 0]) + struct.pack("!II", 1, 1) + bytes(12)  # (4 + 2) * 4 bytes
    body = ext8(43) + routing + ext8(44) + atomic_fragment + ah + tcp(b"ext")
    seg = decode(ether(ipv6(body, nh=0), 0x86DD))
    assert seg is not None and seg.payload == b"ext" and seg.dport == 443


@pytest.mark.parametrize("offset_and_m", [0x0001, 0x0008, 0x0009])
def test_ipv6_fragment_is_none(offset_and_m: int) -> None:
    frag = bytes([6, 0]) + struct.pack("!H", offset_and_m) + struct.pack("!I", 99)
    assert decode(ether(ipv6(frag + tcp(b"f"), nh=44), 0x86DD)) is None


@pytest.mark.parametrize("nh", [50, 59])
def test_ipv6_esp_and_no_next_header_stop(nh: int) -> None:
    assert decode(ether(ipv6(ext8(nh) + tcp(b"x"), nh=60), 0x86DD)) is None


def test_ipv6_extension_header_cut_short_is_none() -> None:
    assert decode(ether(ipv6(bytes([6, 3]) + bytes(10), nh=0), 0x86DD)) is None


def test_ipv6_payload_length_trims_trailer() -> None:
    body = tcp(b"abc")
    seg = decode(ether(ipv6(body) + b"\x00" * 8, 0x86DD))
    assert seg is not None and seg.payload == b"abc"


def test_wrong_ip_version_in_header_is_none() -> None:
    assert decode(ether(ipv6(tcp(b"x")), 0x0800)) is None
    assert decode(ether(ipv4(tcp(b"x")), 0x86DD)) is None


def test_snaplen_cut_payload_counts_missing() -> None:
    frame = ether(ipv4(tcp(b"A" * 1000)))
    seg = decode(frame[:100], orig_len=len(frame))
    assert seg is not None
    assert seg.payload == b"A" * (100 - 54) and seg.missing == 1000 - 46


def test_snaplen_cut_ipv6_counts_missing() -> None:
    frame = ether(ipv6(ext8(6) + tcp(b"B" * 500), nh=60), 0x86DD)
    seg = decode(frame[:120], orig_len=len(frame))
    assert seg is not None and len(seg.payload) + seg.missing == 500


def test_missing_never_exceeds_the_wire_length() -> None:
    # IP claims 1000 payload bytes but the frame on the wire was shorter: not a snaplen cut.
    frame = ether(ipv4(tcp(b"C" * 10), total=20 + 20 + 1000))
    seg = decode(frame)
    assert seg is not None and seg.payload == b"C" * 10 and seg.missing == 0


@pytest.mark.parametrize("cut", [10, 14, 20, 33, 40, 53])
def test_headers_cut_short_are_none(cut: int) -> None:
    frame = ether(ipv4(tcp(b"D" * 100, options=b"\x01\x01\x01\x00" * 2)))
    assert decode(frame[:cut], orig_len=len(frame)) is None


def test_cut_inside_tcp_options_still_gives_the_segment() -> None:
    """The 20-byte TCP header is whole: flags, numbers and the payload length are known."""
    frame = ether(ipv4(tcp(b"D" * 100, flags=ACK, options=b"\x01\x01\x01\x00" * 2)))
    seg = decode(frame[:60], orig_len=len(frame))
    assert seg is not None and seg.flags == ACK and seg.payload == b"" and seg.missing == 100
    assert seg.options == b"\x01\x01\x01\x00\x01\x01"  # what the capture kept of them


@pytest.mark.parametrize("doff_byte", [0x40, 0xF0])
def test_bad_tcp_data_offset_is_none(doff_byte: int) -> None:
    frame = bytearray(ether(ipv4(tcp(b"xyz"))))
    frame[14 + 20 + 12] = doff_byte
    assert decode(bytes(frame)) is None


def test_tcp_options_are_skipped() -> None:
    seg = decode(ether(ipv4(tcp(b"payload", options=b"\x02\x04\x05\xb4" + b"\x01" * 8))))
    assert seg is not None and seg.payload == b"payload"


def sll(ethertype: int) -> bytes:
    """A Linux cooked v1 header."""
    return struct.pack("!HHH8sH", 0, 1, 6, b"\x02" * 6 + b"\0\0", ethertype)


def sll2(ethertype: int) -> bytes:
    """A Linux cooked v2 header."""
    return struct.pack("!HHIHBB8s", ethertype, 0, 3, 1, 4, 6, b"\x02" * 6 + b"\0\0")


@pytest.mark.parametrize(
    ("linktype", "data"),
    [
        (linktypes.LINUX_SLL, sll(0x0800) + ipv4(tcp(b"z"))),
        (linktypes.LINUX_SLL, sll(0x86DD) + ipv6(tcp(b"z"))),
        (linktypes.LINUX_SLL, sll(0x8100) + b"\x00\x05\x08\x00" + ipv4(tcp(b"z"))),
        (linktypes.LINUX_SLL2, sll2(0x0800) + ipv4(tcp(b"z"))),
        (linktypes.LINUX_SLL2, sll2(0x86DD) + ipv6(tcp(b"z"))),
        (linktypes.RAW, ipv4(tcp(b"z"))),
        (linktypes.RAW, ipv6(tcp(b"z"))),
        (linktypes.DLT_RAW_12, ipv4(tcp(b"z"))),
        (linktypes.DLT_RAW_14, ipv6(tcp(b"z"))),
        (linktypes.IPV4, ipv4(tcp(b"z"))),
        (linktypes.IPV6, ipv6(tcp(b"z"))),
        (linktypes.NULL, struct.pack("<I", 2) + ipv4(tcp(b"z"))),
        (linktypes.NULL, struct.pack(">I", 2) + ipv4(tcp(b"z"))),
        (linktypes.NULL, struct.pack("<I", 24) + ipv6(tcp(b"z"))),
        (linktypes.NULL, struct.pack("<I", 28) + ipv6(tcp(b"z"))),
        (linktypes.NULL, struct.pack("<I", 30) + ipv6(tcp(b"z"))),
        (linktypes.NULL, struct.pack(">I", 30) + ipv6(tcp(b"z"))),
        (linktypes.LOOP, struct.pack(">I", 2) + ipv4(tcp(b"z"))),
        (linktypes.LOOP, struct.pack(">I", 24) + ipv6(tcp(b"z"))),
    ],
)
def test_link_types(linktype: int, data: bytes) -> None:
    seg = decode(data, linktype)
    assert seg is not None and seg.payload == b"z" and seg.sport == 51000


@pytest.mark.parametrize(
    ("linktype", "data"),
    [
        (linktypes.IPV4, ipv6(tcp(b"z"))),
        (linktypes.IPV6, ipv4(tcp(b"z"))),
        (linktypes.RAW, b"\x50" + bytes(40)),
        (linktypes.RAW, b""),
        (linktypes.NULL, struct.pack("<I", 7) + ipv4(tcp(b"z"))),
        (linktypes.NULL, b"\x02\x00"),
        (linktypes.LOOP, struct.pack("<I", 2) + ipv4(tcp(b"z"))),  # LOOP is always big-endian
        (linktypes.LINUX_SLL, sll(0x0806) + bytes(28)),
        (linktypes.LINUX_SLL, sll(0x0800)[:15]),
        (linktypes.LINUX_SLL2, sll2(0x0800)[:19]),
        (linktypes.ETHERNET, b"\x00" * 13),
    ],
)
def test_link_types_without_tcp(linktype: int, data: bytes) -> None:
    assert decode(data, linktype) is None


def test_every_supported_link_type_has_a_decoder() -> None:
    for linktype in linktypes.SUPPORTED:
        assert callable(segment_decoder(linktype))


def test_unsupported_link_type_raises_naming_it() -> None:
    with pytest.raises(CaptureError, match=r"^unsupported link type 105 \(IEEE802_11\)$"):
        segment_decoder(105)
    with pytest.raises(CaptureError, match=r"unsupported link type 65000 \(UNKNOWN\)"):
        decode_segment(pkt(b"", 65000))


def test_linktype_names() -> None:
    assert linktype_name(1) == "ETHERNET"
    assert linktype_name(113) == "LINUX_SLL"
    assert linktype_name(276) == "LINUX_SLL2"
    assert linktype_name(127) == "IEEE802_11_RADIOTAP"
    assert linktype_name(150) == "USER3"
    assert linktype_name(4242) == "UNKNOWN"


def test_matches_scapy_built_frame() -> None:
    scapy = pytest.importorskip("scapy.all")
    frame = bytes(
        scapy.Ether()
        / scapy.Dot1Q(vlan=5)
        / scapy.IP(src="10.1.2.3", dst="10.3.2.1", options=[scapy.IPOption(b"\x94\x04\x00\x00")])
        / scapy.TCP(sport=4433, dport=60000, seq=17, ack=99, flags="FA")
        / b"bye"
    )
    seg = decode(frame)
    assert seg is not None
    assert (seg.src, seg.dst) == (bytes([10, 1, 2, 3]), bytes([10, 3, 2, 1]))
    assert (seg.sport, seg.dport, seg.seq, seg.ack, seg.flags) == (4433, 60000, 17, 99, 0x11)
    assert seg.payload == b"bye"


@settings(max_examples=300, deadline=None)
@given(
    linktype=st.sampled_from(sorted(linktypes.SUPPORTED)),
    data=st.binary(max_size=200),
    extra=st.integers(min_value=-10, max_value=3000),
)
def test_decoders_never_raise(linktype: int, data: bytes, extra: int) -> None:
    seg = decode(data, linktype, max(0, len(data) + extra))
    if seg is not None:
        assert seg.missing >= 0
        assert len(seg.payload) <= len(data)


@settings(max_examples=200, deadline=None)
@given(
    payload=st.binary(max_size=300),
    cut=st.integers(min_value=0, max_value=400),
    v6=st.booleans(),
)
def test_cut_frames_keep_payload_plus_missing(payload: bytes, cut: int, v6: bool) -> None:
    frame = ether(ipv6(tcp(payload)), 0x86DD) if v6 else ether(ipv4(tcp(payload)))
    header = len(frame) - len(payload)
    seg = decode(frame[:cut], orig_len=len(frame))
    if cut < header:
        assert seg is None
    else:
        assert seg is not None
        assert seg.payload == payload[: cut - header]
        assert len(seg.payload) + seg.missing == len(payload)
