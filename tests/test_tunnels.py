"""Tunnels and encapsulations: tlspcap.capture.decode with tlspcap.capture.tunnels.

Each tunnel is built byte by byte (tests/wire_builders.py) around one TCP segment; the decoder
must give the inner segment, addressed by the inner IP header, with the tunnel named in
``TcpSegment.tunnel``. Malformed, truncated, unsupported and nested-too-deep encapsulations
are counted under named anomalies, never raised.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wire_builders import (
    DST4,
    DST6,
    OUT6_A,
    OUT6_B,
    OUT_A,
    OUT_B,
    SRC4,
    SRC6,
    erspan2,
    erspan3,
    ether,
    geneve,
    gre,
    ipv4,
    ipv6,
    mpls,
    packet,
    pppoe,
    tcp,
    udp,
    vxlan,
)

from tlspcap.capture import linktypes
from tlspcap.capture.decode import MAX_DEPTH, PacketDecoder
from tlspcap.capture.model import Packet, TcpSegment

INNER4 = ether(ipv4(tcp(b"inner")))
INNER6 = ether(ipv6(tcp(b"inner")), 0x86DD)
IP4 = ipv4(tcp(b"inner"))
IP6 = ipv6(tcp(b"inner"))


def decode(frame: bytes, decoder: PacketDecoder | None = None) -> TcpSegment | None:
    return (decoder or PacketDecoder()).for_linktype(1)(packet(frame))


def outer_udp(body: bytes, dport: int, *, sport: int = 40000) -> bytes:
    return ether(ipv4(udp(body, sport, dport), proto=17, src=OUT_A, dst=OUT_B))


def outer_gre(body: bytes) -> bytes:
    return ether(ipv4(body, proto=47, src=OUT_A, dst=OUT_B))


CASES: list[tuple[str, bytes, str]] = [
    ("vxlan", outer_udp(vxlan(42, INNER4), 4789), "VXLAN VNI 42 (203.0.113.1 -> 203.0.113.2)"),
    ("vxlan_8472", outer_udp(vxlan(7, INNER6), 8472), "VXLAN VNI 7 (203.0.113.1 -> 203.0.113.2)"),
    (
        "vxlan_source_port",
        outer_udp(vxlan(9, INNER4), 50000, sport=4789),
        "VXLAN VNI 9 (203.0.113.1 -> 203.0.113.2)",
    ),
    (
        "vxlan_gpe_ipv4",
        outer_udp(struct.pack("!BBBBI", 0x0C, 0, 0, 1, 5 << 8) + IP4, 4790),
        "VXLAN-GPE VNI 5 (203.0.113.1 -> 203.0.113.2)",
    ),
    (
        "geneve_options",
        outer_udp(geneve(4242, 0x6558, INNER4, options=b"\x01\x02\x80\x01tlsp"), 6081),
        "Geneve VNI 4242 (203.0.113.1 -> 203.0.113.2)",
    ),
    (
        "geneve_ipv6_payload",
        outer_udp(geneve(1, 0x86DD, IP6), 6081),
        "Geneve VNI 1 (203.0.113.1 -> 203.0.113.2)",
    ),
    ("gre_ipv4", outer_gre(gre(0x0800, IP4)), "GRE (203.0.113.1 -> 203.0.113.2)"),
    ("gre_ipv6", outer_gre(gre(0x86DD, IP6)), "GRE (203.0.113.1 -> 203.0.113.2)"),
    (
        "gre_checksum_key_seq_ethernet",
        outer_gre(gre(0x6558, INNER4, key=7, seq=99, csum=True)),
        "GRE key 7 (203.0.113.1 -> 203.0.113.2)",
    ),
    (
        "gre_over_ipv6",
        ether(ipv6(gre(0x0800, IP4, key=1), nh=47, src=OUT6_A, dst=OUT6_B), 0x86DD),
        "GRE key 1 (2001:db8:ffff::1 -> 2001:db8:ffff::2)",
    ),
    (
        "gre_in_udp",
        outer_udp(gre(0x0800, IP4), 4754),
        "GRE (203.0.113.1 -> 203.0.113.2)",
    ),
    (
        "gre_vlan_payload",
        outer_gre(gre(0x8100, struct.pack("!HH", 30, 0x0800) + IP4)),
        "GRE (203.0.113.1 -> 203.0.113.2) / VLAN 30",
    ),
    (
        "erspan_type_i",
        outer_gre(gre(0x88BE, INNER4)),
        "ERSPAN type I (203.0.113.1 -> 203.0.113.2)",
    ),
    (
        "erspan_type_ii",
        outer_gre(gre(0x88BE, erspan2(5, INNER4), seq=1)),
        "ERSPAN type II session 5 (203.0.113.1 -> 203.0.113.2)",
    ),
    (
        "erspan_type_iii",
        outer_gre(gre(0x22EB, erspan3(6, INNER4), seq=1)),
        "ERSPAN type III session 6 (203.0.113.1 -> 203.0.113.2)",
    ),
    (
        "erspan_type_iii_subheader_ip_frame",
        outer_gre(gre(0x22EB, erspan3(6, IP6, frame_type=2, subheader=True))),
        "ERSPAN type III session 6 (203.0.113.1 -> 203.0.113.2)",
    ),
    ("mpls_ipv4", ether(mpls([16, 1001], IP4), 0x8847), "MPLS labels 16/1001"),
    ("mpls_ipv6_multicast", ether(mpls([5], IP6), 0x8848), "MPLS label 5"),
    (
        "mpls_pseudowire_control_word",
        ether(mpls([17, 2002], b"\0\0\0\1" + INNER4), 0x8847),
        "MPLS labels 17/2002",
    ),
    (
        "mpls_pseudowire_without_control_word",
        ether(mpls([18], b"\xa0" + INNER4[1:]), 0x8847),  # first nibble a: an Ethernet frame
        "MPLS label 18",
    ),
    ("mpls_in_udp", outer_udp(mpls([33], IP4), 6635), "MPLS label 33"),
    ("pppoe_ipv4", ether(pppoe(0x0001, 0x0021, IP4), 0x8864), "PPPoE session 0x0001"),
    ("pppoe_ipv6", ether(pppoe(0xBEEF, 0x0057, IP6), 0x8864), "PPPoE session 0xbeef"),
    (
        "ipv4_in_ipv4",
        ether(ipv4(IP4, proto=4, src=OUT_A, dst=OUT_B)),
        "IPv4-in-IPv4 (203.0.113.1 -> 203.0.113.2)",
    ),
    (
        "ipv6_in_ipv4",
        ether(ipv4(IP6, proto=41, src=OUT_A, dst=OUT_B)),
        "IPv6-in-IPv4 (203.0.113.1 -> 203.0.113.2)",
    ),
    (
        "ipv4_in_ipv6",
        ether(ipv6(IP4, nh=4, src=OUT6_A, dst=OUT6_B), 0x86DD),
        "IPv4-in-IPv6 (2001:db8:ffff::1 -> 2001:db8:ffff::2)",
    ),
    (
        "ipv6_in_ipv6",
        ether(ipv6(IP6, nh=41, src=OUT6_A, dst=OUT6_B), 0x86DD),
        "IPv6-in-IPv6 (2001:db8:ffff::1 -> 2001:db8:ffff::2)",
    ),
    (
        "vlan_inside_vxlan",
        outer_udp(vxlan(42, ether(IP4, vlans=(100, 200))), 4789),
        "VXLAN VNI 42 (203.0.113.1 -> 203.0.113.2) / VLAN 100 / VLAN 200",
    ),
    (
        "outer_vlan_is_not_a_tunnel",
        ether(ipv4(udp(vxlan(3, INNER4), 1, 4789), proto=17, src=OUT_A, dst=OUT_B), vlans=(10,)),
        "VXLAN VNI 3 (203.0.113.1 -> 203.0.113.2)",
    ),
    (
        "nested_mpls_gre_vlan_vxlan",
        ether(
            mpls(
                [300],
                ipv4(
                    gre(
                        0x6558,
                        ether(ipv4(udp(vxlan(77, INNER4), 1, 4789), proto=17), vlans=(200,)),
                        key=9,
                    ),
                    proto=47,
                    src=OUT_A,
                    dst=OUT_B,
                ),
            ),
            0x8847,
        ),
        "MPLS label 300 / GRE key 9 (203.0.113.1 -> 203.0.113.2) / VLAN 200 / "
        "VXLAN VNI 77 (192.0.2.1 -> 198.51.100.7)",
    ),
]


@pytest.mark.parametrize(
    ("frame", "name"), [(f, n) for _, f, n in CASES], ids=[c[0] for c in CASES]
)
def test_tunnel_gives_the_inner_segment_and_names_the_tunnel(frame: bytes, name: str) -> None:
    seg = decode(frame)
    assert seg is not None, name
    assert seg.payload == b"inner" and (seg.sport, seg.dport) == (51000, 443)
    assert (seg.src, seg.dst) in ((SRC4, DST4), (SRC6, DST6))  # the inner addresses
    assert seg.tunnel == name
    assert seg.ttl == 64 and seg.window == 65535


def test_plain_frames_have_no_tunnel() -> None:
    for frame in (INNER4, INNER6, ether(IP4, vlans=(5, 6))):
        seg = decode(frame)
        assert seg is not None and seg.tunnel is None


def test_tunnel_names_are_interned_per_distinct_tunnel() -> None:
    dec = PacketDecoder()
    first = decode(outer_udp(vxlan(42, INNER4), 4789), dec)
    second = decode(outer_udp(vxlan(42, ether(ipv4(tcp(b"again")))), 4789), dec)
    other = decode(outer_udp(vxlan(43, INNER4), 4789), dec)
    assert first is not None and second is not None and other is not None
    assert first.tunnel is second.tunnel  # the same object, not just an equal string
    assert other.tunnel == "VXLAN VNI 43 (203.0.113.1 -> 203.0.113.2)"


def test_tunnel_segments_are_summarised_in_one_anomaly() -> None:
    dec = PacketDecoder()
    for i in range(3):
        f = dec.for_linktype(1)
        assert f(packet(outer_udp(vxlan(42, INNER4), 4789), frame=i + 1)) is not None
    dec.finish()
    [note] = [a for a in dec.anomalies() if a.name == "tunnelled"]
    assert note.frame == 1
    assert note.detail.startswith("3 TCP segment(s) were decoded from inside tunnels (VXLAN VNI 42")


def test_snaplen_cut_inside_a_tunnel_counts_the_missing_bytes() -> None:
    frame = outer_udp(vxlan(1, ether(ipv4(tcp(b"x" * 400)))), 4789)
    cut = frame[: len(frame) - 300]
    seg = PacketDecoder().for_linktype(1)(Packet(1, 0.0, 1, cut, len(frame)))
    assert seg is not None and len(seg.payload) == 100 and seg.missing == 300


def _nest_ip_in_ip(levels: int) -> bytes:
    body = IP4
    for _ in range(levels):
        body = ipv4(body, proto=4, src=OUT_A, dst=OUT_B)
    return ether(body)


def test_nesting_up_to_the_bound_is_decoded() -> None:
    seg = decode(_nest_ip_in_ip(MAX_DEPTH))
    assert seg is not None and seg.tunnel is not None
    assert seg.tunnel.count("IPv4-in-IPv4") == MAX_DEPTH


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 200, 3000])
def test_nesting_bomb_stops_at_the_bound(levels: int) -> None:
    dec = PacketDecoder()
    assert decode(_nest_ip_in_ip(levels), dec) is None
    assert dec.tally.count("tunnel_too_deep") == 1


def test_gre_in_gre_bomb_and_vlan_stack_inside_a_tunnel_are_bounded() -> None:
    body = IP4
    for _ in range(50):
        body = ipv4(gre(0x0800, body), proto=47, src=OUT_A, dst=OUT_B)
    dec = PacketDecoder()
    assert decode(ether(body), dec) is None and dec.tally.count("tunnel_too_deep") == 1
    vlans = tuple(range(1, 40))
    dec = PacketDecoder()
    assert decode(outer_udp(vxlan(1, ether(IP4, vlans=vlans)), 4789), dec) is None
    assert dec.tally.count("tunnel_too_deep") == 1


PROBLEMS: list[tuple[str, bytes, str, str]] = [
    (
        "gre_version_2",
        outer_gre(gre(0x0800, IP4, version=2)),
        "malformed_tunnel_header",
        "GRE version 2",
    ),
    (
        "pptp_gre",
        outer_gre(gre(0x880B, b"\xff\x03\x00\x21", key=1, version=1)),
        "unsupported_tunnel",
        "PPTP",
    ),
    (
        "gre_routing",
        outer_gre(gre(0x0800, IP4, routing=True)),
        "unsupported_tunnel",
        "source routing",
    ),
    (
        "gre_ppp_payload",
        outer_gre(gre(0x880B, IP4)),
        "unsupported_tunnel",
        "GRE protocol type 0x880b",
    ),
    (
        "geneve_version_1",
        outer_udp(geneve(1, 0x6558, INNER4, version=1), 6081),
        "malformed_tunnel_header",
        "Geneve version 1",
    ),
    (
        "geneve_nsh",
        outer_udp(geneve(1, 0x894F, INNER4), 6081),
        "unsupported_tunnel",
        "Geneve protocol type 0x894f",
    ),
    (
        "geneve_options_past_end",
        outer_udp(struct.pack("!BBHI", 63, 0, 0x6558, 0), 6081),
        "malformed_tunnel_header",
        "Geneve options longer",
    ),
    (
        "erspan_version_3",
        outer_gre(gre(0x88BE, struct.pack("!HHI", 3 << 12, 0, 0) + INNER4, seq=1)),
        "malformed_tunnel_header",
        "ERSPAN version 3",
    ),
    (
        "erspan_iii_frame_type_5",
        outer_gre(gre(0x22EB, erspan3(1, INNER4, frame_type=5))),
        "unsupported_tunnel",
        "frame type 5",
    ),
    (
        "mpls_stack_too_deep",
        ether(mpls(list(range(1, 40)), IP4), 0x8847),
        "malformed_tunnel_header",
        "MPLS stack deeper",
    ),
    (
        "pppoe_bad_version",
        ether(b"\x21\x00" + pppoe(1, 0x21, IP4)[2:], 0x8864),
        "malformed_tunnel_header",
        "PPPoE version/type 0x21",
    ),
    (
        "pppoe_unknown_protocol",
        ether(pppoe(1, 0x002B, IP4), 0x8864),
        "unsupported_tunnel",
        "PPP protocol 0x002b",
    ),
    (
        "vxlan_gpe_nsh",
        outer_udp(struct.pack("!BBBBI", 0x0C, 0, 0, 4, 0) + IP4, 4790),
        "unsupported_tunnel",
        "next protocol 4",
    ),
    (
        "vxlan_gpe_version",
        outer_udp(struct.pack("!BBBBI", 0x1C, 0, 0, 1, 0) + IP4, 4790),
        "malformed_tunnel_header",
        "VXLAN-GPE version 1",
    ),
    (
        "gtp_u",
        outer_udp(b"\x30\xff" + bytes(30), 2152),
        "unsupported_tunnel",
        "GTP-U, UDP port 2152",
    ),
    ("l2tp", outer_udp(bytes(30), 1701), "unsupported_tunnel", "L2TP"),
    ("esp", ether(ipv4(bytes(60), proto=50)), "esp_encrypted", ""),
    (
        "esp_in_udp",
        outer_udp(b"\x00\x00\x10\x01" + bytes(40), 4500),
        "esp_encrypted",
        "NAT traversal",
    ),
    ("esp_in_ipv6", ether(ipv6(bytes(60), nh=50), 0x86DD), "esp_encrypted", ""),
    ("lldp", ether(bytes(40), 0x88CC), "unknown_ethertype", "0x88cc (LLDP)"),
    (
        "llc",
        b"\x01\x80\xc2\x00\x00\x00" + bytes(6) + b"\x00\x26" + bytes(38),
        "unknown_ethertype",
        "802.3 length field",
    ),
    ("sctp", ether(ipv4(bytes(40), proto=132)), "other_ip_protocol", "132 (SCTP)"),
    ("ospf", ether(ipv4(bytes(40), proto=89)), "other_ip_protocol", "89 (OSPF)"),
    ("ipv6_no_next_header", ether(ipv6(b"", nh=59), 0x86DD), "other_ip_protocol", "59"),
    ("ip_version_5", ether(b"\x55" + IP4[1:]), "malformed_header", "version field 5"),
    ("ihl_below_5", ether(b"\x44" + IP4[1:]), "malformed_header", "header length 16"),
    (
        "tcp_data_offset_too_big",
        ether(ipv4(tcp(b"")[:12] + b"\xf0" + tcp(b"")[13:] + b"x")),
        "malformed_header",
        "data offset",
    ),
    (
        "tcp_data_offset_below_5",
        ether(ipv4(tcp(b"")[:12] + b"\x30" + tcp(b"")[13:] + b"x")),
        "malformed_header",
        "data offset",
    ),
]


@pytest.mark.parametrize(
    ("frame", "name", "qualifier"),
    [(f, n, q) for _, f, n, q in PROBLEMS],
    ids=[p[0] for p in PROBLEMS],
)
def test_undecodable_packets_are_counted_by_kind(frame: bytes, name: str, qualifier: str) -> None:
    dec = PacketDecoder()
    assert decode(frame, dec) is None
    dec.finish()
    [anomaly] = [a for a in dec.anomalies() if a.name == name]
    assert anomaly.frame == 1 and qualifier in anomaly.detail
    assert anomaly.detail.startswith("1 ") and anomaly.detail.endswith("first at frame 1")


def test_ordinary_traffic_is_one_summary_line() -> None:
    dec = PacketDecoder()
    f = dec.for_linktype(1)
    frames = [
        ether(ipv4(udp(b"dns query here", 5353, 53), proto=17)),  # fast path
        ether(ipv4(udp(b"q", 5353, 53), proto=17)),  # shorter than the fast path needs
        ether(ipv6(udp(b"dns", 5353, 53), nh=17), 0x86DD),
        ether(ipv4(udp(b"quic initial", 50000, 443), proto=17)),
        ether(bytes(28), 0x0806),
        ether(ipv4(b"\x08\x00" + bytes(10), proto=1)),
        ether(ipv6(b"\x80\x00" + bytes(10), nh=58), 0x86DD),
        ether(ipv4(bytes(8), proto=2)),
    ]
    for i, frame in enumerate(frames, start=5):
        assert f(packet(frame, frame=i)) is None
    [line] = dec.anomalies()
    assert line.name == "non_tcp_traffic" and line.frame == 5
    assert line.detail == (
        "8 packet(s) carry no TCP and are not analysed (UDP 3, ARP 1, ICMP 1, ICMPv6 1, IGMP 1, "
        "UDP 443 (QUIC) 1); first at frame 5"
    )


def test_counts_and_first_frames_accumulate_per_kind() -> None:
    dec = PacketDecoder()
    f = dec.for_linktype(1)
    for i in range(1, 6):
        f(packet(ether(bytes(40), 0x88CC), frame=i * 10))
    f(packet(ether(bytes(40), 0x88B8), frame=7))
    names = [(a.name, a.frame, a.detail.split(" ")[0]) for a in dec.anomalies()]
    assert names == [("unknown_ethertype", 7, "1"), ("unknown_ethertype", 10, "5")]


TRUNCATABLE = [
    ("vxlan", outer_udp(vxlan(42, INNER4), 4789)),
    ("geneve", outer_udp(geneve(4242, 0x6558, INNER4, options=b"\x01\x02\x80\x01tlsp"), 6081)),
    ("gre", outer_gre(gre(0x6558, INNER4, key=7, seq=99, csum=True))),
    ("erspan_ii", outer_gre(gre(0x88BE, erspan2(5, INNER4), seq=1))),
    ("erspan_iii", outer_gre(gre(0x22EB, erspan3(6, INNER4, subheader=True), seq=1))),
    ("mpls", ether(mpls([16, 1001], IP4), 0x8847)),
    ("pppoe", ether(pppoe(1, 0x0021, IP4), 0x8864)),
    ("ipv6_in_ipv4", ether(ipv4(IP6, proto=41, src=OUT_A, dst=OUT_B))),
]


@pytest.mark.parametrize("frame", [f for _, f in TRUNCATABLE], ids=[n for n, _ in TRUNCATABLE])
def test_truncated_tunnel_headers_are_counted_at_every_cut(frame: bytes) -> None:
    """Cut the frame at every byte before the inner TCP header's end: no exception, no segment,
    one named anomaly each time (the capture ends inside some header)."""
    inner_tcp_end = len(frame) - len(b"inner")
    for cut in range(inner_tcp_end):
        dec = PacketDecoder()
        f = dec.for_linktype(1)
        assert f(packet(frame[:cut])) is None, cut
        assert dec.accounted == 1, cut
        dec.finish()
        names = {a.name for a in dec.anomalies()}
        assert names & {"truncated_header", "malformed_header", "malformed_tunnel_header"}, cut


def test_erf_link_type_records() -> None:
    """LINKTYPE_ERF (what editcap makes of an ERF file): header, extension headers, pad."""
    eth = struct.pack("<Q", 1 << 32) + struct.pack(">BBHHH", 2, 4, 0, 0, 0) + b"\0\0" + INNER4
    ext = struct.pack("<Q", 1 << 32) + struct.pack(">BBHHH", 0x80 | 2, 4, 0, 0, 0)
    ext += b"\x81" + bytes(7) + b"\x01" + bytes(7) + b"\0\0" + INNER4  # two extension headers
    ipv6_rec = struct.pack("<Q", 1 << 32) + struct.pack(">BBHHH", 23, 4, 0, 0, 0) + IP6
    for data in (eth, ext, ipv6_rec):
        seg = PacketDecoder().for_linktype(linktypes.ERF)(packet(data, linktype=linktypes.ERF))
        assert seg is not None and seg.payload == b"inner"
    dec = PacketDecoder()
    meta = struct.pack("<Q", 1 << 32) + struct.pack(">BBHHH", 27, 4, 0, 0, 0) + bytes(20)
    odd = struct.pack("<Q", 1 << 32) + struct.pack(">BBHHH", 3, 4, 0, 0, 0) + bytes(48)
    f = dec.for_linktype(linktypes.ERF)
    assert f(packet(meta, linktype=197)) is None and f(packet(odd, frame=2, linktype=197)) is None
    names = {a.name: a.detail for a in dec.anomalies()}
    assert "ERF metadata 1" in names["non_tcp_traffic"]
    assert names["unsupported_erf_type"].startswith("1 ERF record(s) of type 3")


@settings(max_examples=400, deadline=None)
@given(
    which=st.sampled_from([f for _, f, _ in CASES] + [f for _, f, _, _ in PROBLEMS]),
    cut=st.integers(min_value=0, max_value=400),
    junk=st.binary(max_size=40),
    flip=st.integers(min_value=0, max_value=399),
)
def test_damaged_tunnels_never_raise_and_are_always_accounted(
    which: bytes, cut: int, junk: bytes, flip: int
) -> None:
    data = bytearray(which[:cut] + junk)
    if data:
        data[flip % len(data)] ^= 0xA5
    dec = PacketDecoder()
    seg = dec.for_linktype(1)(packet(bytes(data)))
    assert seg is not None or dec.accounted == 1
    dec.finish()
    dec.anomalies()
