"""Decode a captured frame down to its TCP segment: link layer, IPv4/IPv6, TCP.

Pick the decoder once per link type with :func:`segment_decoder` and call it on every packet of
that link type; :func:`decode_segment` does both for one packet. A decoder never raises on packet
contents: it returns ``None`` for anything that is not a complete-headered, unfragmented TCP
segment over IPv4/IPv6. In detail:

* Ethernet frames may carry any stack of 802.1Q / 802.1ad / old QinQ (0x8100, 0x88a8, 0x9100)
  VLAN tags; trailing Ethernet padding and FCS are cut off using the IP length fields.
* IPv4 options are skipped (IHL). IPv4 fragments return ``None``: non-first fragments and also a
  first fragment with MF set, since its TCP payload is incomplete. The TCP layer treats a missing
  fragment like any other lost data. An IPv4 total length of 0 (TSO captures) means "up to the
  end of the frame on the wire".
* IPv6 hop-by-hop (0), routing (43), fragment (44, only the atomic "offset 0, no MF" kind is
  passed through), destination options (60), AH (51), mobility (135), HIP (139) and shim6 (140)
  headers are skipped; ESP (50), no-next-header (59) and anything else that is not TCP return
  ``None``.
* When the capture cut the frame short (snaplen), ``TcpSegment.payload`` holds the bytes present
  and ``TcpSegment.missing`` counts the payload bytes the wire carried beyond them. A frame cut
  inside the IP or TCP header returns ``None``. Checksums are not verified.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from tlspcap.capture import linktypes as lt
from tlspcap.capture.linktypes import linktype_name, unsupported_message
from tlspcap.capture.model import Packet, TcpSegment
from tlspcap.errors import CaptureError

__all__ = ["Decoder", "decode_segment", "linktype_name", "segment_decoder"]

Decoder = Callable[[Packet], TcpSegment | None]
"""A per-link-type function from a packet to its TCP segment (``None`` when there is none)."""

_IPV4 = struct.Struct("!BBHHHBBH4s4s").unpack_from
_IPV6 = struct.Struct("!IHBB16s16s").unpack_from
_TCP = struct.Struct("!HHIIBB").unpack_from
_ETH_IPV4_TCP = struct.Struct("!HBxHHHxBxx4s4sHHIIBB").unpack_from
"""From the EtherType (offset 12) through the TCP flags: the whole common case in one call."""

_ETHERTYPE_IPV4 = 0x0800
_ETHERTYPE_IPV6 = 0x86DD
_VLAN_TPIDS = frozenset({0x8100, 0x88A8, 0x9100})
_IPV6_EXT_8 = frozenset({0, 43, 60, 135, 139, 140})  # length field counts 8-octet units - 1
_IPV6_FRAGMENT = 44
_IPV6_AH = 51
_PROTO_TCP = 6
_BSD_AF_INET = 2
_BSD_AF_INET6 = frozenset({24, 28, 30})


def _tcp(packet: Packet, d: bytes, t: int, end: int, src: bytes, dst: bytes) -> TcpSegment | None:
    """Decode the TCP header at ``d[t:]``; ``end`` is where the IP packet ends on the wire."""
    n = len(d)
    missing = 0
    if end > n:
        # Cut by snaplen: count what the wire carried, but never more than the frame's length.
        wire_end = min(end, packet.orig_len)
        if wire_end > n:
            missing = wire_end - n
        end = n
    if end - t < 20:
        return None
    sport, dport, seq, ack, doff, flags = _TCP(d, t)
    start = t + ((doff >> 4) << 2)
    if start < t + 20 or start > end:
        return None
    return TcpSegment(
        packet.frame, packet.ts, src, sport, dst, dport, seq, ack, flags, d[start:end], missing
    )


def _ipv4(packet: Packet, d: bytes, off: int) -> TcpSegment | None:
    """Decode an IPv4 packet starting at ``d[off]``."""
    if len(d) - off < 20:
        return None
    vihl, _tos, total, _ident, frag, _ttl, proto, _csum, src, dst = _IPV4(d, off)
    if proto != _PROTO_TCP or vihl >> 4 != 4 or frag & 0x3FFF:
        return None
    ihl = (vihl & 15) << 2
    if ihl < 20:
        return None
    if total == 0:  # TCP segmentation offload: length left unset
        total = max(packet.orig_len, len(d)) - off
    elif total < ihl:
        return None
    return _tcp(packet, d, off + ihl, off + total, src, dst)


def _ipv6(packet: Packet, d: bytes, off: int) -> TcpSegment | None:
    """Decode an IPv6 packet starting at ``d[off]``, skipping extension headers."""
    n = len(d)
    if n - off < 40:
        return None
    vtcfl, plen, nh, _hlim, src, dst = _IPV6(d, off)
    if vtcfl >> 28 != 6:
        return None
    p = off + 40
    # Payload length 0: jumbogram or offloaded segment; the frame's wire length bounds it.
    end = p + plen if plen else max(packet.orig_len, n)
    while nh != _PROTO_TCP:
        if p + 8 > n:
            return None
        if nh in _IPV6_EXT_8:
            step = (d[p + 1] + 1) << 3
        elif nh == _IPV6_FRAGMENT:
            if ((d[p + 2] << 8) | d[p + 3]) & 0xFFF9:  # fragment offset or more-fragments
                return None
            step = 8
        elif nh == _IPV6_AH:
            step = (d[p + 1] + 2) << 2
        else:
            return None
        nh = d[p]
        p += step
    return _tcp(packet, d, p, end, src, dst)


def _ip(packet: Packet, d: bytes, off: int) -> TcpSegment | None:
    """Decode an IP packet whose version nibble tells IPv4 from IPv6."""
    if len(d) <= off:
        return None
    version = d[off] >> 4
    if version == 4:
        return _ipv4(packet, d, off)
    if version == 6:
        return _ipv6(packet, d, off)
    return None


def _ethertype(packet: Packet, d: bytes, et: int, off: int) -> TcpSegment | None:
    """Decode the payload of EtherType ``et`` starting at ``d[off]``, unwrapping VLAN tags."""
    while et in _VLAN_TPIDS:
        if len(d) < off + 4:
            return None
        et = (d[off + 2] << 8) | d[off + 3]
        off += 4
    if et == _ETHERTYPE_IPV4:
        return _ipv4(packet, d, off)
    if et == _ETHERTYPE_IPV6:
        return _ipv6(packet, d, off)
    return None


def _ethernet(packet: Packet) -> TcpSegment | None:
    """LINKTYPE_ETHERNET: 14-byte header, then optional VLAN tags."""
    d = packet.data
    n = len(d)
    if n >= 54:
        # Fast path: untagged IPv4 without options carrying an unfragmented TCP segment whose
        # IP length fits the frame. Anything else takes the general path below.
        et, vihl, total, _ident, frag, proto, src, dst, sport, dport, seq, ack, doff, flags = (
            _ETH_IPV4_TCP(d, 12)
        )
        if (
            et == _ETHERTYPE_IPV4
            and vihl == 0x45
            and proto == _PROTO_TCP
            and not frag & 0x3FFF
            and 40 <= total <= n - 14
        ):
            start = 34 + ((doff >> 4) << 2)
            end = 14 + total
            if 54 <= start <= end:
                return TcpSegment(
                    packet.frame, packet.ts, src, sport, dst, dport, seq, ack, flags, d[start:end]
                )
            return None
    elif n < 14:
        return None
    et = (d[12] << 8) | d[13]
    if et == _ETHERTYPE_IPV4:
        return _ipv4(packet, d, 14)
    return _ethertype(packet, d, et, 14)


def _linux_sll(packet: Packet) -> TcpSegment | None:
    """LINKTYPE_LINUX_SLL: protocol (EtherType) in bytes 14-15 of a 16-byte header."""
    d = packet.data
    if len(d) < 16:
        return None
    return _ethertype(packet, d, (d[14] << 8) | d[15], 16)


def _linux_sll2(packet: Packet) -> TcpSegment | None:
    """LINKTYPE_LINUX_SLL2: protocol (EtherType) in bytes 0-1 of a 20-byte header."""
    d = packet.data
    if len(d) < 20:
        return None
    return _ethertype(packet, d, (d[0] << 8) | d[1], 20)


def _raw(packet: Packet) -> TcpSegment | None:
    """LINKTYPE_RAW (and DLT_RAW 12/14): a bare IPv4 or IPv6 packet."""
    return _ip(packet, packet.data, 0)


def _raw_ipv4(packet: Packet) -> TcpSegment | None:
    """LINKTYPE_IPV4: a bare IPv4 packet."""
    return _ipv4(packet, packet.data, 0)


def _raw_ipv6(packet: Packet) -> TcpSegment | None:
    """LINKTYPE_IPV6: a bare IPv6 packet."""
    return _ipv6(packet, packet.data, 0)


def _by_family(packet: Packet, af: int) -> TcpSegment | None:
    """Dispatch a BSD loopback frame on its address family."""
    if af == _BSD_AF_INET:
        return _ipv4(packet, packet.data, 4)
    if af in _BSD_AF_INET6:
        return _ipv6(packet, packet.data, 4)
    return None


def _null(packet: Packet) -> TcpSegment | None:
    """LINKTYPE_NULL: 4-byte address family in the capturing host's byte order."""
    d = packet.data
    if len(d) < 4:
        return None
    af = int.from_bytes(d[:4], "little")
    if af & 0xFFFF0000:  # written by a big-endian host
        af = int.from_bytes(d[:4], "big")
    return _by_family(packet, af)


def _loop(packet: Packet) -> TcpSegment | None:
    """LINKTYPE_LOOP (OpenBSD): 4-byte big-endian address family."""
    d = packet.data
    if len(d) < 4:
        return None
    return _by_family(packet, int.from_bytes(d[:4], "big"))


_DECODERS: dict[int, Decoder] = {
    lt.NULL: _null,
    lt.ETHERNET: _ethernet,
    lt.DLT_RAW_12: _raw,
    lt.DLT_RAW_14: _raw,
    lt.RAW: _raw,
    lt.LOOP: _loop,
    lt.LINUX_SLL: _linux_sll,
    lt.IPV4: _raw_ipv4,
    lt.IPV6: _raw_ipv6,
    lt.LINUX_SLL2: _linux_sll2,
}


def segment_decoder(linktype: int) -> Decoder:
    """Return the decoder for one link type; call it once per interface, not per packet.

    Raises :class:`CaptureError` naming the link type, e.g. ``unsupported link type 105
    (IEEE802_11)``, when the link type cannot be decoded. :class:`CaptureReader` never yields
    packets of such a link type (see its docstring), so a caller that only decodes what the
    reader yields does not see this error.
    """
    try:
        return _DECODERS[linktype]
    except KeyError:
        raise CaptureError(unsupported_message(linktype)) from None


def decode_segment(packet: Packet) -> TcpSegment | None:
    """Decode one packet: ``segment_decoder(packet.linktype)(packet)``."""
    return segment_decoder(packet.linktype)(packet)
