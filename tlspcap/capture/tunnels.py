"""Tunnel headers: parsing each encapsulation down to what it carries, and naming tunnels.

Each ``parse_*`` function reads one encapsulation header in ``d`` at ``off`` (``end`` is where
the enclosing payload ends on the wire) and returns either a :class:`Decap`, saying what
follows as an EtherType (``0x6558`` for an Ethernet frame, ``0x0800``/``0x86dd`` for IP,
:data:`IP_BY_VERSION` for IP whose version nibble decides) and where, or a :class:`Problem`
naming the file anomaly to count. Parsers never raise on packet contents.

Header layouts: VXLAN RFC 7348, VXLAN-GPE draft-ietf-nvo3-vxlan-gpe, Geneve RFC 8926, GRE
RFC 2784/2890 (and RFC 1701 for the flags), ERSPAN draft-foschiano-erspan-03 (and Wireshark's
packet-erspan.c: type I has no header and is told from type II by the GRE sequence flag), MPLS
RFC 3032 with the pseudowire control word of RFC 4385, PPPoE RFC 2516, MPLS-in-UDP RFC 7510,
GRE-in-UDP RFC 8086.

:class:`TunnelNames` renders a chain of tunnel parts (outermost first) into the string carried
by ``TcpSegment.tunnel``, interned: one string object per distinct chain.
"""

from __future__ import annotations

import ipaddress
from typing import NamedTuple

ETHERNET = 0x6558
"""Transparent Ethernet Bridging: "an Ethernet frame follows" (GRE, Geneve)."""
IPV4 = 0x0800
IPV6 = 0x86DD
MPLS_UNICAST = 0x8847
MPLS_MULTICAST = 0x8848
ERSPAN_I_II = 0x88BE
ERSPAN_III = 0x22EB
IP_BY_VERSION = -1
"""Pseudo EtherType: an IP packet whose first nibble gives its version."""

VXLAN_PORTS = frozenset({4789, 8472})
"""IANA's VXLAN port and the Linux kernel's historical default."""
VXLAN_GPE_PORT = 4790
GENEVE_PORT = 6081
MPLS_UDP_PORT = 6635
GRE_UDP_PORT = 4754
UNSUPPORTED_UDP_TUNNELS: dict[int, str] = {
    1701: "L2TP",
    2152: "GTP-U",
    3544: "Teredo",
    4341: "LISP",
}
"""UDP ports of tunnels whose content tlspcap does not decode (counted as unsupported)."""

MAX_MPLS_LABELS = 16
"""Labels read from one MPLS stack before it is called malformed."""

_GRE_PROTOCOLS = frozenset(
    {ETHERNET, IPV4, IPV6, MPLS_UNICAST, MPLS_MULTICAST, ERSPAN_I_II, ERSPAN_III, 0x8100, 0x88A8}
)
_GPE_NEXT = {1: IPV4, 2: IPV6, 3: ETHERNET, 5: MPLS_UNICAST}
_PPP_NEXT = {0x0021: IPV4, 0x0057: IPV6, 0x0281: MPLS_UNICAST, 0x0283: MPLS_MULTICAST}
_PPP_CONTROL = frozenset({0xC021, 0x8021, 0x8057, 0xC023, 0xC223, 0xC025, 0x80FD, 0x8281})
"""PPP LCP, IPCP, IPV6CP, PAP, CHAP, LQR, CCP, MPLSCP: ordinary control traffic."""


class Decap(NamedTuple):
    """What follows an encapsulation header."""

    ethertype: int
    """What follows, as an EtherType (or :data:`IP_BY_VERSION`)."""
    offset: int
    """Where it starts in the buffer."""
    end: int
    """Where it ends on the wire (the enclosing end unless the header carries a length)."""
    part: tuple[object, ...] | None
    """The tunnel's part of ``TcpSegment.tunnel`` (see :class:`TunnelNames`); None: none."""


class Problem(NamedTuple):
    """Why an encapsulation could not be decoded: a file anomaly name and its qualifier."""

    name: str
    qualifier: object


def _u16(d: bytes, i: int) -> int:
    return (d[i] << 8) | d[i + 1]


def _u24(d: bytes, i: int) -> int:
    return (d[i] << 16) | (d[i + 1] << 8) | d[i + 2]


def _u32(d: bytes, i: int) -> int:
    return (d[i] << 24) | (d[i + 1] << 16) | (d[i + 2] << 8) | d[i + 3]


def parse_vxlan(d: bytes, off: int, end: int, src: bytes, dst: bytes) -> Decap | Problem:
    """VXLAN (RFC 7348): 8 bytes (flags, 24-bit VNI), then an Ethernet frame.

    Like Wireshark, the frame is decoded whatever the flags say (the "I" flag should be set).
    """
    if off + 8 > len(d):
        return Problem("truncated_header", "VXLAN")
    return Decap(ETHERNET, off + 8, end, ("VXLAN", _u24(d, off + 4), src, dst))


def parse_vxlan_gpe(d: bytes, off: int, end: int, src: bytes, dst: bytes) -> Decap | Problem:
    """VXLAN-GPE: VXLAN with a version and a next-protocol byte (1 IPv4, 2 IPv6, 3 Ethernet,
    4 NSH, 5 MPLS)."""
    if off + 8 > len(d):
        return Problem("truncated_header", "VXLAN-GPE")
    flags, nxt = d[off], d[off + 3]
    if flags & 0x30:
        return Problem("malformed_tunnel_header", f"VXLAN-GPE version {(flags >> 4) & 3}")
    following = _GPE_NEXT.get(nxt) if flags & 0x04 else ETHERNET
    if following is None:
        return Problem("unsupported_tunnel", f"VXLAN-GPE next protocol {nxt}")
    return Decap(following, off + 8, end, ("VXLAN-GPE", _u24(d, off + 4), src, dst))


def parse_geneve(d: bytes, off: int, end: int, src: bytes, dst: bytes) -> Decap | Problem:
    """Geneve (RFC 8926): 8 bytes plus options (length in 4-byte words), then what the
    protocol type (an EtherType) names."""
    if off + 8 > len(d):
        return Problem("truncated_header", "Geneve")
    version = d[off] >> 6
    if version:
        return Problem("malformed_tunnel_header", f"Geneve version {version}")
    start = off + 8 + ((d[off] & 0x3F) << 2)
    if start > end:
        return Problem("malformed_tunnel_header", "Geneve options longer than the packet")
    if start > len(d):
        return Problem("truncated_header", "Geneve options")
    proto = _u16(d, off + 2)
    if proto not in (ETHERNET, IPV4, IPV6):
        return Problem("unsupported_tunnel", f"Geneve protocol type 0x{proto:04x}")
    return Decap(proto, start, end, ("Geneve", _u24(d, off + 4), src, dst))


def parse_gre(d: bytes, off: int, end: int, src: bytes, dst: bytes) -> Decap | Problem:
    """GRE (RFC 2784, with the key and sequence fields of RFC 2890), including ERSPAN types
    I, II and III (GRE protocol types 0x88be and 0x22eb)."""
    n = len(d)
    if off + 4 > n:
        return Problem("truncated_header", "GRE")
    flags, proto = _u16(d, off), _u16(d, off + 2)
    version = flags & 7
    if version == 1:
        return Problem("unsupported_tunnel", "PPTP enhanced GRE (version 1)")
    if version:
        return Problem("malformed_tunnel_header", f"GRE version {version}")
    if flags & 0x4000:
        return Problem("unsupported_tunnel", "GRE with source routing (RFC 1701)")
    p = off + 4
    if flags & 0x8000:  # checksum present: checksum and reserved1
        p += 4
    key: int | None = None
    if flags & 0x2000:
        if p + 4 > n:
            return Problem("truncated_header", "GRE")
        key = _u32(d, p)
        p += 4
    sequenced = bool(flags & 0x1000)
    if sequenced:
        p += 4
    if p > n:
        return Problem("truncated_header", "GRE")
    if proto not in _GRE_PROTOCOLS:
        return Problem("unsupported_tunnel", f"GRE protocol type 0x{proto:04x}")
    if proto == ERSPAN_I_II and not sequenced:
        return Decap(ETHERNET, p, end, ("ERSPAN", 1, None, src, dst))
    if proto in (ERSPAN_I_II, ERSPAN_III):
        return _parse_erspan(d, p, end, src, dst)
    return Decap(proto, p, end, ("GRE", key, src, dst))


def _parse_erspan(d: bytes, off: int, end: int, src: bytes, dst: bytes) -> Decap | Problem:
    """The ERSPAN header; its version field (1: type II, 2: type III) decides its layout."""
    n = len(d)
    if off + 8 > n:
        return Problem("truncated_header", "ERSPAN")
    version = d[off] >> 4
    session = _u16(d, off + 2) & 0x3FF
    if version == 1:  # type II: 8 bytes, then an Ethernet frame
        return Decap(ETHERNET, off + 8, end, ("ERSPAN", 2, session, src, dst))
    if version != 2:
        return Problem("malformed_tunnel_header", f"ERSPAN version {version}")
    if off + 12 > n:
        return Problem("truncated_header", "ERSPAN")
    word = _u16(d, off + 10)
    start = off + 12 + (8 if word & 1 else 0)  # O flag: 8-byte platform specific subheader
    if start > n:
        return Problem("truncated_header", "ERSPAN")
    frame_type = (word >> 10) & 0x1F
    part = ("ERSPAN", 3, session, src, dst)
    if frame_type == 0:
        return Decap(ETHERNET, start, end, part)
    if frame_type == 2:
        return Decap(IP_BY_VERSION, start, end, part)
    return Problem("unsupported_tunnel", f"ERSPAN type III frame type {frame_type}")


def parse_mpls(d: bytes, off: int, end: int) -> Decap | Problem | str:
    """An MPLS label stack (RFC 3032) and what its payload is.

    After the bottom-of-stack label, the first nibble decides, as in Wireshark: 4 IPv4, 6 IPv6,
    0 the pseudowire control word of RFC 4385 and then an Ethernet frame, 1 a pseudowire
    associated channel (OAM: returned as the string ``"MPLS OAM"``, ordinary traffic), anything
    else an Ethernet pseudowire without control word.
    """
    n = len(d)
    labels: list[int] = []
    while True:
        if off + 4 > n:
            return Problem("truncated_header", "MPLS")
        entry = _u32(d, off)
        off += 4
        labels.append(entry >> 12)
        if entry & 0x100:
            break
        if len(labels) >= MAX_MPLS_LABELS:
            return Problem("malformed_tunnel_header", f"MPLS stack deeper than {MAX_MPLS_LABELS}")
    if off >= n:
        return Problem("truncated_header", "MPLS payload")
    part = ("MPLS", tuple(labels))
    nibble = d[off] >> 4
    if nibble == 4:
        return Decap(IPV4, off, end, part)
    if nibble == 6:
        return Decap(IPV6, off, end, part)
    if nibble == 0:
        return Decap(ETHERNET, off + 4, end, part)
    if nibble == 1:
        return "MPLS OAM"
    return Decap(ETHERNET, off, end, part)


def parse_pppoe(d: bytes, off: int, end: int) -> Decap | Problem | str:
    """A PPPoE session frame (RFC 2516) and its PPP protocol: IPv4 (0x0021), IPv6 (0x0057),
    MPLS; PPP control protocols are returned as the string ``"PPP control"`` (ordinary)."""
    n = len(d)
    if off + 8 > n:
        return Problem("truncated_header", "PPPoE")
    if d[off] != 0x11 or d[off + 1] != 0:
        return Problem(
            "malformed_tunnel_header", f"PPPoE version/type 0x{d[off]:02x} code 0x{d[off + 1]:02x}"
        )
    session = _u16(d, off + 2)
    stop = min(end, off + 6 + _u16(d, off + 4))
    p = off + 6
    if d[p] & 1:  # protocol field compression: a one-byte protocol
        proto, p = d[p], p + 1
    else:
        proto, p = _u16(d, p), p + 2
    following = _PPP_NEXT.get(proto)
    if following is None:
        if proto in _PPP_CONTROL:
            return "PPP control"
        return Problem("unsupported_tunnel", f"PPP protocol 0x{proto:04x} in PPPoE")
    return Decap(following, p, stop, ("PPPoE", session))


def _ip(addr: object) -> str:
    if isinstance(addr, bytes) and len(addr) in (4, 16):
        return str(ipaddress.ip_address(addr))
    return "?"


def describe_part(part: tuple[object, ...]) -> str:
    """Render one tunnel part, e.g. ``VXLAN VNI 42 (10.0.0.1 -> 10.0.0.2)``."""
    kind = part[0]
    if kind in ("VXLAN", "VXLAN-GPE", "Geneve"):
        return f"{kind} VNI {part[1]} ({_ip(part[2])} -> {_ip(part[3])})"
    if kind == "GRE":
        key = "" if part[1] is None else f" key {part[1]}"
        return f"GRE{key} ({_ip(part[2])} -> {_ip(part[3])})"
    if kind == "ERSPAN":
        kind_name = {1: "I", 2: "II", 3: "III"}.get(part[1] if isinstance(part[1], int) else 0)
        session = "" if part[2] is None else f" session {part[2]}"
        return f"ERSPAN type {kind_name}{session} ({_ip(part[3])} -> {_ip(part[4])})"
    if kind == "MPLS":
        labels = part[1] if isinstance(part[1], tuple) else ()
        word = "label" if len(labels) == 1 else "labels"
        return f"MPLS {word} " + "/".join(str(label) for label in labels)
    if kind == "PPPoE":
        return f"PPPoE session 0x{part[1]:04x}"
    if kind == "IP":
        return f"IPv{part[1]}-in-IPv{part[2]} ({_ip(part[3])} -> {_ip(part[4])})"
    if kind == "VLAN":
        return f"VLAN {part[1]}"
    return str(kind)


MAX_TUNNEL_NAMES = 4096
"""Distinct tunnel chains named in full; further ones are named by their kinds only."""


class TunnelNames:
    """Interned names of tunnel chains: one string object per distinct chain."""

    __slots__ = ("_by_kinds", "_names", "cap")

    def __init__(self, cap: int = MAX_TUNNEL_NAMES) -> None:
        self.cap = cap
        self._names: dict[tuple[tuple[object, ...], ...], str] = {}
        self._by_kinds: dict[tuple[object, ...], str] = {}

    def name(self, chain: tuple[tuple[object, ...], ...]) -> str:
        """The name of ``chain`` (outermost part first), parts joined with `` / ``."""
        name = self._names.get(chain)
        if name is not None:
            return name
        if len(self._names) < self.cap:
            name = self._names[chain] = " / ".join(describe_part(p) for p in chain)
            return name
        kinds = tuple(p[0] for p in chain)
        name = self._by_kinds.get(kinds)
        if name is None:
            name = " / ".join(str(k) for k in kinds)
            if len(self._by_kinds) < self.cap:
                self._by_kinds[kinds] = name
        return name

    def names(self) -> list[str]:
        """The names given so far, in the order they were first needed."""
        return list(self._names.values())
