"""Counting, per kind, the packets the decoder could not turn into TCP segments.

Nothing a capture holds is dropped silently: every packet that yields no TCP segment is either
counted here under an anomaly name and a qualifier (``unknown_ethertype`` / ``0x88cc``), or
counted as ordinary non-TCP traffic (ARP, DNS over UDP, ICMP, ...), or held by the fragment
reassembler (which reports on its own). :meth:`Tally.anomalies` turns the counts into one file
anomaly per (name, qualifier), with the count and the first frame, plus one summary anomaly
``non_tcp_traffic`` for the ordinary traffic.

A qualifier is kept raw (an int or a short string) while counting; it is rendered only once,
when the anomalies are built, so a flood of undecodable packets costs a dict update each.
"""

from __future__ import annotations

from collections.abc import Callable

from tlspcap.anomaly import Anomaly

MAX_KINDS = 256
"""Distinct (name, qualifier) pairs counted; further qualifiers of a name go under ``other``."""

ETHERTYPE_NAMES: dict[int, str] = {
    0x0806: "ARP",
    0x0842: "Wake-on-LAN",
    0x22F0: "AVTP",
    0x22F3: "TRILL",
    0x6003: "DECnet",
    0x8035: "RARP",
    0x809B: "AppleTalk",
    0x80F3: "AARP",
    0x8137: "IPX",
    0x8808: "Ethernet flow control",
    0x8809: "slow protocols (LACP)",
    0x8819: "CobraNet",
    0x8847: "MPLS",
    0x8848: "MPLS multicast",
    0x8863: "PPPoE discovery",
    0x8864: "PPPoE session",
    0x886D: "Intel ANS",
    0x887B: "HomePlug",
    0x888E: "EAPOL (802.1X)",
    0x8892: "PROFINET",
    0x889A: "HyperSCSI",
    0x88A2: "ATA over Ethernet",
    0x88A4: "EtherCAT",
    0x88AB: "Ethernet Powerlink",
    0x88B8: "GOOSE",
    0x88BA: "IEC 61850 SV",
    0x88CC: "LLDP",
    0x88CD: "SERCOS III",
    0x88E1: "HomePlug AV",
    0x88E3: "MRP",
    0x88E5: "MACsec",
    0x88E7: "PBB",
    0x88F7: "PTP",
    0x88FB: "PRP",
    0x8902: "CFM",
    0x8906: "FCoE",
    0x8914: "FCoE initialization",
    0x8915: "RoCE",
    0x891D: "TTEthernet",
    0x893A: "IEEE 1905.1",
    0x892F: "HSR",
    0x9000: "loopback (configuration test)",
}
"""Names of EtherTypes that are not IP, for the ``unknown_ethertype`` anomaly."""

IP_PROTOCOL_NAMES: dict[int, str] = {
    0: "IPv6 hop-by-hop",
    2: "IGMP",
    3: "GGP",
    8: "EGP",
    9: "IGP",
    27: "RDP",
    33: "DCCP",
    43: "IPv6 routing header",
    44: "IPv6 fragment header",
    46: "RSVP",
    47: "GRE",
    50: "ESP",
    51: "AH",
    58: "ICMPv6",
    59: "IPv6 no next header",
    60: "IPv6 destination options",
    88: "EIGRP",
    89: "OSPF",
    94: "IPIP (KA9Q)",
    97: "EtherIP",
    98: "ENCAP",
    103: "PIM",
    108: "IPComp",
    112: "VRRP",
    115: "L2TPv3",
    124: "IS-IS over IPv4",
    132: "SCTP",
    133: "FC",
    135: "IPv6 mobility header",
    136: "UDP-Lite",
    137: "MPLS in IP",
    139: "HIP",
    140: "shim6",
    143: "Ethernet (RFC 8986)",
}
"""Names of IP protocol numbers, for the ``other_ip_protocol`` anomaly."""


def _named(value: int, names: dict[int, str], width: int) -> str:
    name = names.get(value)
    hexa = f"0x{value:0{width}x}"
    return f"{hexa} ({name})" if name else hexa


def _ethertype(q: object) -> str:
    if isinstance(q, int):
        if q < 0x0600:
            return f"0x{q:04x}, an 802.3 length field (LLC/SNAP frame)"
        return _named(q, ETHERTYPE_NAMES, 4)
    return str(q)


def _ip_protocol(q: object) -> str:
    if isinstance(q, int):
        name = IP_PROTOCOL_NAMES.get(q)
        return f"{q} ({name})" if name else str(q)
    return str(q)


_QUALIFIERS: dict[str, Callable[[object], str]] = {
    "unknown_ethertype": _ethertype,
    "other_ip_protocol": _ip_protocol,
}

_DETAILS: dict[str, str] = {
    "truncated_header": "{n} packet(s) end inside their {q} header (cut by the snap length or "
    "damaged): not decoded",
    "malformed_header": "{n} packet(s) with a malformed {q}: not decoded",
    "malformed_tunnel_header": "{n} packet(s) with a malformed tunnel header ({q}): not decoded",
    "unsupported_tunnel": "{n} packet(s) in a tunnel tlspcap does not decode ({q}): their "
    "content is not analysed",
    "unknown_ethertype": "{n} frame(s) of EtherType {q}: not IP, not analysed",
    "unknown_address_family": "{n} loopback frame(s) of address family {q}: not IP, not analysed",
    "unsupported_erf_type": "{n} ERF record(s) of type {q}: not decoded",
    "other_ip_protocol": "{n} IP packet(s) of protocol {q}, neither TCP nor UDP: not analysed",
    "esp_encrypted": "{n} IPsec ESP packet(s){q}: encrypted, their content cannot be decoded",
    "tunnel_too_deep": "{n} packet(s) nest more than {q} encapsulations (tunnels and IP "
    "reassemblies): decoding stopped there",
}


class Tally:
    """Counts of undecodable packets per (anomaly name, qualifier), and of ordinary traffic."""

    __slots__ = ("_kinds", "_ordinary", "_ordinary_first")

    def __init__(self) -> None:
        self._kinds: dict[tuple[str, object], list[int]] = {}
        self._ordinary: dict[str, int] = {}
        self._ordinary_first = 0

    def note(self, name: str, qualifier: object, frame: int) -> None:
        """Count one packet that could not be decoded, under ``name`` and ``qualifier``."""
        key = (name, qualifier)
        entry = self._kinds.get(key)
        if entry is not None:
            entry[0] += 1
            return
        if len(self._kinds) >= MAX_KINDS:
            key = (name, "other")
            entry = self._kinds.get(key)
            if entry is not None:
                entry[0] += 1
                return
        self._kinds[key] = [1, frame]

    def ordinary(self, what: str, frame: int) -> None:
        """Count one packet of ordinary non-TCP traffic (``"ARP"``, ``"UDP"``, ``"ICMP"``...)."""
        if not self._ordinary:
            self._ordinary_first = frame
        self._ordinary[what] = self._ordinary.get(what, 0) + 1

    def total(self) -> int:
        """Packets counted so far, every kind and the ordinary traffic together."""
        return sum(e[0] for e in self._kinds.values()) + sum(self._ordinary.values())

    def count(self, name: str) -> int:
        """Packets counted under ``name`` so far, all qualifiers together (for tests)."""
        return sum(e[0] for (n, _q), e in self._kinds.items() if n == name)

    def anomalies(self, more: dict[str, tuple[int, int]] | None = None) -> list[Anomaly]:
        """One anomaly per (name, qualifier), by first frame, then the ordinary-traffic line.

        ``more`` adds ordinary traffic counted elsewhere: ``{what: (count, first frame)}``.
        """
        out: list[Anomaly] = []
        for (name, qualifier), (n, first) in sorted(self._kinds.items(), key=lambda i: i[1][1]):
            render = _QUALIFIERS.get(name, str)
            q = render(qualifier)
            text = _DETAILS.get(name, "{n} packet(s): {q}").format(n=n, q=q)
            out.append(Anomaly(name, first, f"{text}; first at frame {first}"))
        counts = dict(self._ordinary)
        first = self._ordinary_first if counts else 0
        for what, (count, at) in (more or {}).items():
            if count:
                counts[what] = counts.get(what, 0) + count
                first = at if not first else min(first, at)
        if counts:
            total = sum(counts.values())
            parts = ", ".join(
                f"{what} {count}"
                for what, count in sorted(counts.items(), key=lambda i: (-i[1], i[0]))
            )
            out.append(
                Anomaly(
                    "non_tcp_traffic",
                    first,
                    f"{total} packet(s) carry no TCP and are not analysed ({parts}); "
                    f"first at frame {first}",
                )
            )
        return out
