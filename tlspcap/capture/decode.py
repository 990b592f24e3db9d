"""Decode captured frames down to TCP segments: link layer, tunnels, IPv4/IPv6, TCP.

One :class:`PacketDecoder` per capture: it is stateful, because IP fragments are reassembled
across packets. Look the per-link-type function up once with :meth:`PacketDecoder.for_linktype`
and call it on every packet of that link type; it returns the packet's
:class:`~tlspcap.capture.model.TcpSegment`, or ``None``. Call :meth:`PacketDecoder.finish` at the
end of the capture, then :meth:`PacketDecoder.anomalies` gives the file anomalies: every packet
that yielded no segment is accounted for there (see :mod:`tlspcap.capture.tally`), except
fragments still waiting for the rest of their datagram. ICMP/ICMPv6 errors quoting a TCP header
are handed to the ``on_icmp`` callback as :class:`~tlspcap.capture.model.IcmpError` values.
Decoding never raises on packet contents.

In detail:

* Ethernet frames may carry any stack of 802.1Q / 802.1ad / old QinQ (0x8100, 0x88a8, 0x9100)
  VLAN tags; trailing Ethernet padding and FCS are cut off using the IP length fields. Linux
  cooked captures (v1, v2), raw IP, BSD/OpenBSD loopback and ERF records (LINKTYPE_ERF, what
  ``editcap`` makes of an Endace ERF file) are read too.
* Tunnels (:mod:`tlspcap.capture.tunnels`): VXLAN (UDP 4789 and 8472), VXLAN-GPE (4790), Geneve
  (6081), GRE (checksum, key, sequence; IPv4, IPv6, Ethernet, MPLS and VLAN payloads, also over
  UDP 4754), ERSPAN types I, II and III, MPLS label stacks (IP payload by first nibble, Ethernet
  pseudowires with or without control word, also over UDP 6635), PPPoE sessions, IPv4/IPv6 in
  IPv4/IPv6 (protocols 4 and 41), VLAN tags inside tunnels, nested up to
  :data:`MAX_DEPTH` encapsulations. Segments are addressed by their innermost IP header; the
  encapsulation is named in ``TcpSegment.tunnel`` (outermost first; VLAN tags of the capture's
  own link are not a tunnel).
* IPv4 options are skipped (IHL). An IPv4 total length of 0 (TSO captures) means "up to the end
  of the frame on the wire". IPv6 hop-by-hop (0), routing (43), destination options (60), AH
  (51), mobility (135), HIP (139) and shim6 (140) headers are skipped; so is IPv4 AH.
* IPv4 and IPv6 fragments are reassembled (:mod:`tlspcap.capture.fragments`); the segment then
  carries the frame number of the fragment that completed it, and ``fragments`` says of how many.
* When the capture cut the frame short (snaplen), ``TcpSegment.payload`` holds the bytes present
  and ``TcpSegment.missing`` counts the payload bytes the wire carried beyond them; a cut inside
  the TCP options still gives the segment (empty payload). A frame cut inside the IP header or
  the first 20 bytes of TCP gives ``None`` (counted as ``truncated_header``). Checksums are not
  verified.

The untagged Ethernet/IPv4/TCP case takes a fast path (one ``struct`` call); everything else,
and anything odd about that case, takes the general path. This module holds the public
interface and the link layers; the layers below them are in :mod:`tlspcap.capture.layers`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from tlspcap.anomaly import Anomaly
from tlspcap.capture import linktypes as lt
from tlspcap.capture import tunnels as tun
from tlspcap.capture.layers import (
    ETHERTYPE_IPV4,
    MAX_DEPTH,
    PROTO_TCP,
    PROTO_UDP,
    LayerDecoder,
)
from tlspcap.capture.linktypes import linktype_name, unsupported_message
from tlspcap.capture.model import Packet, TcpSegment
from tlspcap.capture.tally import Tally
from tlspcap.errors import CaptureError

__all__ = [
    "MAX_DEPTH",
    "Decoder",
    "PacketDecoder",
    "decode_segment",
    "linktype_name",
    "segment_decoder",
]

Decoder = Callable[[Packet], TcpSegment | None]
"""A per-link-type function from a packet to its TCP segment (``None`` when there is none)."""

_ETH_IPV4_TCP = struct.Struct("!HBxHHHBBxx4s4sHHIIBBH").unpack_from
"""From the EtherType (offset 12) through the TCP window: the whole common case in one call."""
_UDP_SPECIAL = frozenset(
    {*tun.VXLAN_PORTS, tun.VXLAN_GPE_PORT, tun.GENEVE_PORT, tun.MPLS_UDP_PORT, tun.GRE_UDP_PORT}
    | set(tun.UNSUPPORTED_UDP_TUNNELS)
    | {443, 4500}
)
"""UDP ports the general path looks at (tunnels, QUIC, ESP in UDP); other UDP is only counted."""
_BSD_AF_INET = 2
_BSD_AF_INET6 = frozenset({24, 28, 30})
_ERF_ETHERNET = frozenset({2, 11, 16, 20})  # ETH, COLOR_ETH, DSM_COLOR_ETH, COLOR_HASH_ETH
_ERF_IP = {22: 4, 23: 6}
_ERF_META = 27
_LINK_METHODS = {
    lt.NULL: "_null",
    lt.ETHERNET: "_ethernet",
    lt.DLT_RAW_12: "_raw",
    lt.DLT_RAW_14: "_raw",
    lt.RAW: "_raw",
    lt.LOOP: "_loop",
    lt.LINUX_SLL: "_linux_sll",
    lt.ERF: "_erf",
    lt.IPV4: "_raw_ipv4",
    lt.IPV6: "_raw_ipv6",
    lt.LINUX_SLL2: "_linux_sll2",
}


class PacketDecoder(LayerDecoder):
    """Decodes the packets of one capture to TCP segments (see the module docstring).

    ``on_icmp``, when given, receives every ICMP/ICMPv6 error that quotes a TCP header.
    ``max_datagrams`` and ``max_bytes`` bound the pending IP fragments per IP version.
    """

    __slots__ = ()

    # ---- public interface ----------------------------------------------------------------

    def for_linktype(self, linktype: int) -> Decoder:
        """The decoding function for packets of ``linktype``; look it up once per link type.

        Raises :class:`CaptureError` naming the link type (``unsupported link type 105
        (IEEE802_11)``) when it cannot be decoded; :class:`CaptureReader` never yields packets
        of such a link type.
        """
        method = _LINK_METHODS.get(linktype)
        if method is None:
            raise CaptureError(unsupported_message(linktype))
        fn: Decoder = getattr(self, method)  # not cached here: that would be a reference cycle
        return fn

    def decode(self, packet: Packet) -> TcpSegment | None:
        """Decode one packet: ``self.for_linktype(packet.linktype)(packet)``."""
        return self.for_linktype(packet.linktype)(packet)

    def finish(self) -> None:
        """The capture is over: fragments still pending are counted as incomplete."""
        self._frags4.finish()
        self._frags6.finish()

    def anomalies(self) -> list[Anomaly]:
        """File anomalies: tunnels and reassembled fragments found, and every kind of packet
        that could not be decoded to TCP, with counts and first frames."""
        out: list[Anomaly] = []
        if self._tunnelled:
            names = self._names.names()
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            out.append(
                Anomaly(
                    "tunnelled",
                    self._tunnelled_first,
                    f"{self._tunnelled} TCP segment(s) were decoded from inside tunnels "
                    f"({shown}); connections are reported by their inner addresses; "
                    f"first at frame {self._tunnelled_first}",
                )
            )
        out += self._frags4.anomalies()
        out += self._frags6.anomalies()
        out += self._tally.anomalies({"UDP": (self._udp_seen, self._udp_seen_first)})
        return out

    @property
    def tally(self) -> Tally:
        """The counts of undecodable packets so far."""
        return self._tally

    @property
    def accounted(self) -> int:
        """Packets accounted for without a segment so far: counted in the anomalies (every kind,
        ordinary traffic too) or handed to the fragment reassembler. Together with the segments
        returned, it grows with every packet decoded: nothing is dropped silently."""
        frags = self._frags4.received + self._frags6.received
        return self._tally.total() + self._udp_seen + frags

    @property
    def pending_fragments(self) -> int:
        """Incomplete IP datagrams held (both IP versions)."""
        return self._frags4.pending + self._frags6.pending

    @property
    def held_fragment_bytes(self) -> int:
        """Bytes charged for pending IP fragments (both IP versions)."""
        return self._frags4.held_bytes + self._frags6.held_bytes

    # ---- link layers -----------------------------------------------------------------------

    def _ethernet(self, packet: Packet) -> TcpSegment | None:
        """LINKTYPE_ETHERNET: 14-byte header, then optional VLAN tags."""
        d = packet.data
        n = len(d)
        if n >= 54:
            # Fast path: untagged IPv4 without options carrying an unfragmented TCP segment whose
            # IP length fits the frame. Anything else takes the general path below.
            (
                et,
                vihl,
                total,
                ident,
                frag,
                ttl,
                proto,
                src,
                dst,
                sport,
                dport,
                seq,
                ack,
                doff,
                fl,
                win,
            ) = _ETH_IPV4_TCP(d, 12)
            if et == ETHERTYPE_IPV4 and vihl == 0x45 and not frag & 0x3FFF and total <= n - 14:
                start = 34 + ((doff >> 4) << 2)
                end = 14 + total
                if proto == PROTO_TCP and 54 <= start <= end:
                    return TcpSegment(
                        packet.frame,
                        packet.ts,
                        src,
                        sport,
                        dst,
                        dport,
                        seq,
                        ack,
                        fl,
                        d[start:end],
                        0,
                        ttl,
                        ident,
                        win,
                        d[54:start] if start != 54 else b"",
                    )
                if (
                    proto == PROTO_UDP
                    and total >= 28
                    and sport not in _UDP_SPECIAL
                    and dport not in _UDP_SPECIAL
                ):
                    # Ordinary UDP (no tunnel, no QUIC port): only counted.
                    if not self._udp_seen:
                        self._udp_seen_first = packet.frame
                    self._udp_seen += 1
                    return None
        self._packet = packet
        if self._depth:
            self._reset()
        if n < 14:
            self._note("truncated_header", "Ethernet")
            return None
        return self._ethertype(d, (d[12] << 8) | d[13], 14, max(packet.orig_len, n))

    def _linux_sll(self, packet: Packet) -> TcpSegment | None:
        """LINKTYPE_LINUX_SLL: protocol (EtherType) in bytes 14-15 of a 16-byte header."""
        return self._cooked(packet, 14, 16, "Linux cooked")

    def _linux_sll2(self, packet: Packet) -> TcpSegment | None:
        """LINKTYPE_LINUX_SLL2: protocol (EtherType) in bytes 0-1 of a 20-byte header."""
        return self._cooked(packet, 0, 20, "Linux cooked v2")

    def _cooked(self, packet: Packet, at: int, size: int, name: str) -> TcpSegment | None:
        """A Linux cooked header of ``size`` bytes, its EtherType at ``at``."""
        self._packet = packet
        if self._depth:
            self._reset()
        d = packet.data
        if len(d) < size:
            self._note("truncated_header", name)
            return None
        return self._ethertype(d, (d[at] << 8) | d[at + 1], size, max(packet.orig_len, len(d)))

    def _raw(self, packet: Packet) -> TcpSegment | None:
        """LINKTYPE_RAW (and DLT_RAW 12/14): a bare IPv4 or IPv6 packet."""
        self._packet = packet
        if self._depth:
            self._reset()
        d = packet.data
        return self._ip_by_version(d, 0, max(packet.orig_len, len(d)))

    def _raw_ipv4(self, packet: Packet) -> TcpSegment | None:
        """LINKTYPE_IPV4: a bare IPv4 packet."""
        self._packet = packet
        if self._depth:
            self._reset()
        return self._ipv4(packet.data, 0, max(packet.orig_len, len(packet.data)))

    def _raw_ipv6(self, packet: Packet) -> TcpSegment | None:
        """LINKTYPE_IPV6: a bare IPv6 packet."""
        self._packet = packet
        if self._depth:
            self._reset()
        return self._ipv6(packet.data, 0, max(packet.orig_len, len(packet.data)))

    def _by_family(self, packet: Packet, af: int) -> TcpSegment | None:
        """Dispatch a BSD loopback frame on its address family."""
        d = packet.data
        if af == _BSD_AF_INET:
            return self._ipv4(d, 4, max(packet.orig_len, len(d)))
        if af in _BSD_AF_INET6:
            return self._ipv6(d, 4, max(packet.orig_len, len(d)))
        self._note("unknown_address_family", af)
        return None

    def _null(self, packet: Packet) -> TcpSegment | None:
        """LINKTYPE_NULL: 4-byte address family in the capturing host's byte order."""
        self._packet = packet
        if self._depth:
            self._reset()
        d = packet.data
        if len(d) < 4:
            self._note("truncated_header", "loopback")
            return None
        af = int.from_bytes(d[:4], "little")
        if af & 0xFFFF0000:  # written by a big-endian host
            af = int.from_bytes(d[:4], "big")
        return self._by_family(packet, af)

    def _loop(self, packet: Packet) -> TcpSegment | None:
        """LINKTYPE_LOOP (OpenBSD): 4-byte big-endian address family."""
        self._packet = packet
        if self._depth:
            self._reset()
        d = packet.data
        if len(d) < 4:
            self._note("truncated_header", "loopback")
            return None
        return self._by_family(packet, int.from_bytes(d[:4], "big"))

    def _erf(self, packet: Packet) -> TcpSegment | None:
        """LINKTYPE_ERF: an Endace ERF record (16-byte header, extension headers, payload)."""
        self._packet = packet
        if self._depth:
            self._reset()
        d = packet.data
        n = len(d)
        if n < 16:
            self._note("truncated_header", "ERF")
            return None
        kind = d[8]
        p = 16
        more = kind & 0x80
        while more:  # extension headers: 8 bytes each, the top bit of each says another follows
            if p + 8 > n:
                self._note("truncated_header", "ERF extension")
                return None
            more = d[p] & 0x80
            p += 8
        kind &= 0x7F
        end = max(packet.orig_len, n)
        if kind in _ERF_ETHERNET:
            if p + 16 > n:
                self._note("truncated_header", "ERF Ethernet")
                return None
            p += 2  # offset and pad bytes before the Ethernet header
            return self._ethertype(d, (d[p + 12] << 8) | d[p + 13], p + 14, end)
        if kind in _ERF_IP:
            return self._ip_by_version(d, p, end)
        if kind == _ERF_META:
            self._tally.ordinary("ERF metadata", packet.frame)
            return None
        self._note("unsupported_erf_type", kind)
        return None


def segment_decoder(linktype: int) -> Decoder:
    """Return the decoding function of a new :class:`PacketDecoder` for one link type.

    Each call makes a new decoder: fragments reassemble across the packets given to the same
    function only. Raises :class:`CaptureError` naming the link type, e.g. ``unsupported link
    type 105 (IEEE802_11)``, when the link type cannot be decoded.
    """
    return PacketDecoder().for_linktype(linktype)


def decode_segment(packet: Packet) -> TcpSegment | None:
    """Decode one packet on its own (no fragment reassembly across packets)."""
    return segment_decoder(packet.linktype)(packet)
