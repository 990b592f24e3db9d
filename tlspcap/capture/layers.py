"""The layers under the link: VLAN tags, tunnels, IPv4/IPv6 (with reassembly), TCP, UDP, ICMP.

:class:`LayerDecoder` holds the per-capture state (counts of undecodable packets, fragment
reassemblers, tunnel names) and the per-packet state (the packet, the tunnel chain, the depth);
:class:`tlspcap.capture.decode.PacketDecoder` adds the link layers and the public interface.
Every method here takes the packet's bytes ``d``, an offset and ``end``, where the enclosing
payload ends on the wire (beyond ``len(d)`` when the capture cut the frame), and returns the
TCP segment or ``None`` after counting why there is none.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from tlspcap.capture import tunnels as tun
from tlspcap.capture.fragments import (
    FRAGMENT_TIMEOUT_V4,
    FRAGMENT_TIMEOUT_V6,
    MAX_PENDING_BYTES,
    MAX_PENDING_DATAGRAMS,
    FragmentReassembler,
)
from tlspcap.capture.icmp import parse_icmp_error
from tlspcap.capture.model import IcmpError, Packet, TcpSegment
from tlspcap.capture.tally import Tally

MAX_DEPTH = 8
"""Encapsulations (tunnels, VLAN tags inside tunnels, IP reassemblies) decoded in one packet."""

_IPV4 = struct.Struct("!BBHHHBBH4s4s").unpack_from
_IPV6 = struct.Struct("!IHBB16s16s").unpack_from
_TCP = struct.Struct("!HHIIBBH").unpack_from
_UDP = struct.Struct("!HHH").unpack_from

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
PROTO_TCP = 6
PROTO_UDP = 17
_VLAN_TPIDS = frozenset({0x8100, 0x88A8, 0x9100})
_ORDINARY_ETHERTYPES = {0x0806: "ARP", 0x8035: "RARP", 0x8863: "PPPoE discovery"}
_IPV6_EXT_8 = frozenset({0, 43, 60, 135, 139, 140})  # length field counts 8-octet units - 1

_NO_PACKET = Packet(0, 0.0, 0, b"", 0)


class LayerDecoder:
    """The state of one capture's decoding and the layers below the link (module docstring).

    ``on_icmp``, when given, receives every ICMP/ICMPv6 error that quotes a TCP header.
    ``max_datagrams`` and ``max_bytes`` bound the pending IP fragments per IP version.
    """

    __slots__ = (
        "_depth",
        "_frags4",
        "_frags6",
        "_names",
        "_nfrag",
        "_on_icmp",
        "_packet",
        "_tally",
        "_tun",
        "_tunnelled",
        "_tunnelled_first",
        "_udp_seen",
        "_udp_seen_first",
    )

    def __init__(
        self,
        on_icmp: Callable[[IcmpError], object] | None = None,
        *,
        max_datagrams: int = MAX_PENDING_DATAGRAMS,
        max_bytes: int = MAX_PENDING_BYTES,
    ) -> None:
        self._on_icmp = on_icmp
        self._tally = Tally()
        self._names = tun.TunnelNames()
        self._frags4 = FragmentReassembler(4, FRAGMENT_TIMEOUT_V4, max_datagrams, max_bytes)
        self._frags6 = FragmentReassembler(6, FRAGMENT_TIMEOUT_V6, max_datagrams, max_bytes)
        self._packet = _NO_PACKET
        self._tun: tuple[tuple[object, ...], ...] = ()
        self._depth = 0
        self._nfrag = 0
        self._tunnelled = 0
        self._tunnelled_first = 0
        # Ordinary UDP counted by the Ethernet fast path (merged into the tally at the end).
        self._udp_seen = 0
        self._udp_seen_first = 0

    # ---- per packet ---------------------------------------------------------------------

    def _reset(self) -> None:
        """Forget the tunnels and reassembly of the previous packet."""
        self._tun = ()
        self._depth = 0
        self._nfrag = 0

    def _note(self, name: str, qualifier: object) -> None:
        self._tally.note(name, qualifier, self._packet.frame)

    # ---- layer 2 and tunnels ------------------------------------------------------------------

    def _ethertype(self, d: bytes, et: int, off: int, end: int) -> TcpSegment | None:
        """Decode the payload of EtherType ``et`` at ``d[off]``, unwrapping VLAN tags."""
        if et == ETHERTYPE_IPV4:
            return self._ipv4(d, off, end)
        if et == ETHERTYPE_IPV6:
            return self._ipv6(d, off, end)
        while et in _VLAN_TPIDS:
            if len(d) < off + 4:
                self._note("truncated_header", "VLAN tag")
                return None
            # A VLAN tag inside a tunnel is part of its description.
            if self._tun and not self._enter(("VLAN", ((d[off] << 8) | d[off + 1]) & 0xFFF)):
                return None
            et = (d[off + 2] << 8) | d[off + 3]
            off += 4
        if et == ETHERTYPE_IPV4:
            return self._ipv4(d, off, end)
        if et == ETHERTYPE_IPV6:
            return self._ipv6(d, off, end)
        if et == tun.IP_BY_VERSION:
            return self._ip_by_version(d, off, end)
        if et == tun.ETHERNET:
            if len(d) < off + 14:
                self._note("truncated_header", "inner Ethernet")
                return None
            return self._ethertype(d, (d[off + 12] << 8) | d[off + 13], off + 14, end)
        if et in (tun.MPLS_UNICAST, tun.MPLS_MULTICAST):
            return self._decap(tun.parse_mpls(d, off, end), d)
        if et == 0x8864:
            return self._decap(tun.parse_pppoe(d, off, end), d)
        ordinary = _ORDINARY_ETHERTYPES.get(et)
        if ordinary is not None:
            self._tally.ordinary(ordinary, self._packet.frame)
        else:
            self._note("unknown_ethertype", et)
        return None

    def _enter(self, part: tuple[object, ...]) -> bool:
        """Go one encapsulation deeper; False (and counted) past :data:`MAX_DEPTH`."""
        if self._depth >= MAX_DEPTH:
            self._note("tunnel_too_deep", MAX_DEPTH)
            return False
        self._depth += 1
        self._tun += (part,)
        return True

    def _decap(self, r: tun.Decap | tun.Problem | str, d: bytes) -> TcpSegment | None:
        """Continue after an encapsulation header, or count why not."""
        if isinstance(r, tun.Decap):
            if r.part is not None and not self._enter(r.part):
                return None
            return self._ethertype(d, r.ethertype, r.offset, r.end)
        if isinstance(r, tun.Problem):
            self._note(r.name, r.qualifier)
        else:
            self._tally.ordinary(r, self._packet.frame)
        return None

    # ---- IP -----------------------------------------------------------------------------------

    def _ip_by_version(self, d: bytes, off: int, end: int) -> TcpSegment | None:
        """Decode an IP packet whose version nibble tells IPv4 from IPv6."""
        if len(d) <= off:
            self._note("truncated_header", "IP")
            return None
        version = d[off] >> 4
        if version == 4:
            return self._ipv4(d, off, end)
        if version == 6:
            return self._ipv6(d, off, end)
        self._note("malformed_header", f"IP header (version field {version})")
        return None

    def _ipv4(self, d: bytes, off: int, end: int) -> TcpSegment | None:
        """Decode an IPv4 packet at ``d[off]``; ``end`` bounds it (enclosing end on the wire)."""
        if len(d) - off < 20:
            self._note("truncated_header", "IPv4")
            return None
        vihl, _tos, total, ident, frag, ttl, proto, _csum, src, dst = _IPV4(d, off)
        ihl = (vihl & 15) << 2
        if vihl >> 4 != 4 or ihl < 20:
            what = f"version field {vihl >> 4}" if vihl >> 4 != 4 else f"header length {ihl}"
            self._note("malformed_header", f"IPv4 header ({what})")
            return None
        if total == 0:  # TCP segmentation offload: length left unset
            stop = end
        elif total < ihl:
            self._note("malformed_header", "IPv4 header (total length below header length)")
            return None
        else:
            stop = off + total
            if stop > end:
                stop = end
        if frag & 0x3FFF:
            return self._fragment4(d, off + ihl, stop, src, dst, proto, ident, ttl, frag)
        if proto == PROTO_TCP:
            return self._tcp(d, off + ihl, stop, src, dst, ttl, ident)
        return self._transport(d, off + ihl, stop, src, dst, proto, ttl, ident, 4)

    def _ipv6(self, d: bytes, off: int, end: int) -> TcpSegment | None:
        """Decode an IPv6 packet at ``d[off]``, skipping extension headers."""
        if len(d) - off < 40:
            self._note("truncated_header", "IPv6")
            return None
        vtcfl, plen, nh, hlim, src, dst = _IPV6(d, off)
        if vtcfl >> 28 != 6:
            self._note("malformed_header", f"IPv6 header (version field {vtcfl >> 28})")
            return None
        p = off + 40
        # Payload length 0: jumbogram or offloaded segment; the enclosing end bounds it.
        stop = p + plen if plen and p + plen < end else end
        if nh == PROTO_TCP:
            return self._tcp(d, p, stop, src, dst, hlim, -1)
        return self._ipv6_chain(d, p, stop, nh, src, dst, hlim, -1)

    def _ipv6_chain(
        self, d: bytes, p: int, end: int, nh: int, src: bytes, dst: bytes, hlim: int, ident: int
    ) -> TcpSegment | None:
        """Walk IPv6 extension headers from ``d[p]`` (next header ``nh``) to the payload."""
        n = len(d)
        while nh != PROTO_TCP:
            if nh in _IPV6_EXT_8:
                if p + 8 > n:
                    self._note("truncated_header", "IPv6 extension")
                    return None
                step = (d[p + 1] + 1) << 3
            elif nh == 44:
                if p + 8 > n:
                    self._note("truncated_header", "IPv6 fragment")
                    return None
                word = (d[p + 2] << 8) | d[p + 3]
                if word & 0xFFF9:  # fragment offset or more-fragments: a real fragment
                    ident = (d[p + 4] << 24) | (d[p + 5] << 16) | (d[p + 6] << 8) | d[p + 7]
                    return self._fragment6(d, p + 8, end, src, dst, d[p], ident, hlim, word)
                step = 8  # an atomic fragment (offset 0, last): just a header to skip
            elif nh == 51:
                if p + 8 > n:
                    self._note("truncated_header", "IPv6 AH")
                    return None
                step = (d[p + 1] + 2) << 2
            else:
                return self._transport(d, p, end, src, dst, nh, hlim, ident, 6)
            nh = d[p]
            p += step
        return self._tcp(d, p, end, src, dst, hlim, ident)

    def _transport(
        self,
        d: bytes,
        p: int,
        end: int,
        src: bytes,
        dst: bytes,
        proto: int,
        ttl: int,
        ident: int,
        version: int,
    ) -> TcpSegment | None:
        """Dispatch the payload of an IP packet on its protocol number."""
        if proto == PROTO_TCP:
            return self._tcp(d, p, end, src, dst, ttl, ident)
        if proto == PROTO_UDP:
            return self._udp(d, p, end, src, dst)
        if proto == 47:
            return self._decap(tun.parse_gre(d, p, end, src, dst), d)
        if proto in (4, 41):
            inner = 4 if proto == 4 else 6
            if not self._enter(("IP", inner, version, src, dst)):
                return None
            return self._ipv4(d, p, end) if inner == 4 else self._ipv6(d, p, end)
        if (proto == 1 and version == 4) or (proto == 58 and version == 6):
            self._icmp(d, p, end, src, ttl, version)
            return None
        if proto == 50:
            self._note("esp_encrypted", "")
            return None
        if proto == 51 and version == 4:  # IPv4 AH: skip it
            if p + 8 > len(d):
                self._note("truncated_header", "AH")
                return None
            return self._transport(d, p + ((d[p + 1] + 2) << 2), end, src, dst, d[p], ttl, ident, 4)
        if proto == 2 and version == 4:
            self._tally.ordinary("IGMP", self._packet.frame)
            return None
        self._note("other_ip_protocol", proto)
        return None

    def _fragment4(
        self,
        d: bytes,
        p: int,
        end: int,
        src: bytes,
        dst: bytes,
        proto: int,
        ident: int,
        ttl: int,
        frag: int,
    ) -> TcpSegment | None:
        """Hand an IPv4 fragment to the reassembler; decode the datagram it completes."""
        packet = self._packet
        if end > len(d):
            self._frags4.note_truncated(packet.frame)
            return None
        done = self._frags4.add(
            (self._tun, src, dst, proto, ident),
            (frag & 0x1FFF) << 3,
            d[p:end],
            bool(frag & 0x2000),
            packet.frame,
            packet.ts,
        )
        if done is None or not self._enter_reassembly(done[1]):
            return None
        payload = done[0]
        return self._transport(payload, 0, len(payload), src, dst, proto, ttl, ident, 4)

    def _fragment6(
        self,
        d: bytes,
        p: int,
        end: int,
        src: bytes,
        dst: bytes,
        nh: int,
        ident: int,
        hlim: int,
        word: int,
    ) -> TcpSegment | None:
        """Hand an IPv6 fragment to the reassembler; decode the datagram it completes."""
        packet = self._packet
        if end > len(d):
            self._frags6.note_truncated(packet.frame)
            return None
        done = self._frags6.add(
            (self._tun, src, dst, ident),
            word & 0xFFF8,
            d[p:end],
            bool(word & 1),
            packet.frame,
            packet.ts,
            nh,
        )
        if done is None or not self._enter_reassembly(done[1]):
            return None
        payload, _count, first_nh = done
        return self._ipv6_chain(payload, 0, len(payload), first_nh, src, dst, hlim, ident)

    def _enter_reassembly(self, fragments: int) -> bool:
        """A reassembly counts as one level of depth (a bound on reassemblies per packet)."""
        if self._depth >= MAX_DEPTH:
            self._note("tunnel_too_deep", MAX_DEPTH)
            return False
        self._depth += 1
        self._nfrag = fragments
        return True

    # ---- transport ----------------------------------------------------------------------------

    def _tcp(
        self, d: bytes, t: int, end: int, src: bytes, dst: bytes, ttl: int, ident: int
    ) -> TcpSegment | None:
        """Decode the TCP header at ``d[t:]``; ``end`` is where the segment ends on the wire."""
        if end <= len(d) and t + 20 <= end and not self._depth:
            # Common case: the whole segment was captured, no tunnel, no reassembly.
            sport, dport, seq, ack, doff, flags, window = _TCP(d, t)
            start = t + ((doff >> 4) << 2)
            if t + 20 <= start <= end:
                packet = self._packet
                return TcpSegment(
                    packet.frame,
                    packet.ts,
                    src,
                    sport,
                    dst,
                    dport,
                    seq,
                    ack,
                    flags,
                    d[start:end],
                    0,
                    ttl,
                    ident,
                    window,
                    d[t + 20 : start] if start != t + 20 else b"",
                )
        return self._tcp_general(d, t, end, src, dst, ttl, ident)

    def _tcp_general(
        self, d: bytes, t: int, end: int, src: bytes, dst: bytes, ttl: int, ident: int
    ) -> TcpSegment | None:
        """:meth:`_tcp` for a segment cut by the capture, malformed, or inside a tunnel."""
        n = len(d)
        if end > n:  # cut by the snap length: count what the wire carried (frame length at most)
            wire_end = min(end, self._packet.orig_len)
            cap_end = n
        else:
            wire_end = cap_end = end
        if t + 20 > cap_end:
            if t + 20 > end:
                self._note("malformed_header", "TCP header (segment shorter than 20 bytes)")
            else:
                self._note("truncated_header", "TCP")
            return None
        sport, dport, seq, ack, doff, flags, window = _TCP(d, t)
        start = t + ((doff >> 4) << 2)
        if start < t + 20 or start > end:
            self._note("malformed_header", "TCP header (data offset outside the segment)")
            return None
        missing = wire_end - (cap_end if cap_end > start else start)
        if missing < 0:
            missing = 0
        tunnel = None
        if self._tun:
            tunnel = self._names.name(self._tun)
            if not self._tunnelled:
                self._tunnelled_first = self._packet.frame
            self._tunnelled += 1
        packet = self._packet
        return TcpSegment(
            packet.frame,
            packet.ts,
            src,
            sport,
            dst,
            dport,
            seq,
            ack,
            flags,
            d[start:cap_end],
            missing,
            ttl,
            ident,
            window,
            d[t + 20 : start],
            tunnel,
            self._nfrag,
        )

    def _udp(self, d: bytes, p: int, end: int, src: bytes, dst: bytes) -> TcpSegment | None:
        """A UDP datagram: a tunnel by its port, or ordinary traffic."""
        if p + 8 > len(d):
            self._note("truncated_header", "UDP")
            return None
        sport, dport, length = _UDP(d, p)
        stop = p + length if length >= 8 and p + length < end else end
        q = p + 8
        for port in (dport, sport):
            if port in tun.VXLAN_PORTS:
                return self._decap(tun.parse_vxlan(d, q, stop, src, dst), d)
            if port == tun.GENEVE_PORT:
                return self._decap(tun.parse_geneve(d, q, stop, src, dst), d)
            if port == tun.VXLAN_GPE_PORT:
                return self._decap(tun.parse_vxlan_gpe(d, q, stop, src, dst), d)
            if port == tun.MPLS_UDP_PORT:
                return self._decap(tun.parse_mpls(d, q, stop), d)
            if port == tun.GRE_UDP_PORT:
                return self._decap(tun.parse_gre(d, q, stop, src, dst), d)
        for port in (dport, sport):
            name = tun.UNSUPPORTED_UDP_TUNNELS.get(port)
            if name is not None:
                self._note("unsupported_tunnel", f"{name}, UDP port {port}")
                return None
            if port == 4500 and stop - q > 4 and d[q : q + 4] != b"\0\0\0\0":
                self._note("esp_encrypted", " (in UDP 4500, NAT traversal)")
                return None
        quic = 443 in (dport, sport)
        self._tally.ordinary("UDP 443 (QUIC)" if quic else "UDP", self._packet.frame)
        return None

    def _icmp(self, d: bytes, p: int, end: int, router: bytes, ttl: int, version: int) -> None:
        """Count an ICMP message; hand an error quoting TCP to the ``on_icmp`` callback."""
        packet = self._packet
        self._tally.ordinary("ICMP" if version == 4 else "ICMPv6", packet.frame)
        if self._on_icmp is None:
            return
        q = parse_icmp_error(d, p, end, version)
        if q is None:
            return
        tunnel = self._names.name(self._tun) if self._tun else None
        self._on_icmp(
            IcmpError(
                packet.frame,
                packet.ts,
                version,
                q.icmp_type,
                q.code,
                router,
                ttl,
                q.src,
                q.sport,
                q.dst,
                q.dport,
                q.seq,
                q.mtu,
                tunnel,
            )
        )
