"""Values produced by the capture layer and consumed by the TCP layer."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

# TCP flag bits as they appear in the TCP header's flags byte.
FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10


@dataclass(slots=True)
class Packet:
    """One packet record of a capture file, before any decoding.

    Not frozen: a frozen dataclass's ``__init__`` costs about five times more, and one of these
    is made per packet. Treat instances as read-only values all the same.
    """

    frame: int
    """1-based position of the packet in the file: the number Wireshark shows."""
    ts: float
    """Capture time, seconds since the Unix epoch (UTC)."""
    linktype: int
    """Link-layer header type (LINKTYPE_* value) of the interface that captured it."""
    data: bytes
    """The captured bytes (``caplen`` of them)."""
    orig_len: int
    """Length of the packet on the wire; larger than ``len(data)`` when snaplen cut it."""


@dataclass(slots=True)
class TcpSegment:
    """A decoded TCP segment with its addressing, as the TCP layer needs it.

    Not frozen, for speed (one per TCP packet); treat instances as read-only values.
    """

    frame: int
    """1-based frame number of the packet that carried it."""
    ts: float
    """Capture time, seconds since the Unix epoch (UTC)."""
    src: bytes
    """Source IP address, packed (4 bytes for IPv4, 16 for IPv6)."""
    sport: int
    """Source TCP port."""
    dst: bytes
    """Destination IP address, packed."""
    dport: int
    """Destination TCP port."""
    seq: int
    """Sequence number."""
    ack: int
    """Acknowledgement number (meaningful when the ACK flag is set)."""
    flags: int
    """TCP flags byte (FIN, SYN, RST, PSH, ACK, ...)."""
    payload: bytes
    """TCP payload bytes present in the capture."""
    missing: int = 0
    """Payload bytes the segment carried on the wire but the capture cut off (snaplen)."""
    ttl: int = -1
    """IPv4 TTL or IPv6 hop limit of the innermost IP header (-1 when not known)."""
    ip_id: int = -1
    """IPv4 identification (for an IPv6 datagram reassembled from fragments, the fragment
    header's identification); -1 when there is none."""
    window: int = 0
    """The raw TCP window field (not scaled)."""
    options: bytes = b""
    """The raw TCP option bytes (empty when the data offset is 5)."""
    tunnel: str | None = None
    """The encapsulation the segment was found in, outermost first, e.g. ``"VXLAN VNI 42
    (10.0.0.1 -> 10.0.0.2)"`` or ``"GRE key 7 (192.0.2.1 -> 192.0.2.2) / VLAN 100"``; ``None``
    when there is none. One shared string object per distinct tunnel (compare with ``==``)."""
    fragments: int = 0
    """How many IP fragments the segment was reassembled from (0 when it was not fragmented).
    ``frame`` and ``ts`` are then those of the fragment that completed it, as in Wireshark."""


@dataclass(frozen=True, slots=True)
class IcmpError:
    """An ICMP or ICMPv6 error message that quotes the start of a TCP segment.

    Evidence about a connection from a router or host on the path: destination unreachable
    (fragmentation needed / packet too big carry the next-hop MTU), time exceeded, parameter
    problem, source quench, redirect.
    """

    frame: int
    """1-based frame number of the packet that carried the ICMP message."""
    ts: float
    """Capture time, seconds since the Unix epoch (UTC)."""
    version: int
    """4 for ICMP (over IPv4), 6 for ICMPv6: the type and code numbering depend on it."""
    icmp_type: int
    """ICMP type, e.g. 3 destination unreachable, 11 time exceeded (ICMPv6: 1, 2, 3, 4)."""
    code: int
    """ICMP code, e.g. 4 fragmentation needed (with type 3), 13 administratively prohibited."""
    router: bytes
    """Packed source address of the ICMP message: the router or host that reported the error."""
    ttl: int
    """TTL / hop limit of the IP header that carried the ICMP message (hints at its origin)."""
    src: bytes
    """Quoted packet: source address, packed."""
    sport: int
    """Quoted packet: TCP source port."""
    dst: bytes
    """Quoted packet: destination address, packed."""
    dport: int
    """Quoted packet: TCP destination port."""
    seq: int
    """Quoted packet: TCP sequence number."""
    mtu: int | None = None
    """Next-hop MTU of a fragmentation-needed (ICMP 3/4) or packet-too-big (ICMPv6 2)
    message; ``None`` for the other messages."""
    tunnel: str | None = None
    """The encapsulation the ICMP message was found in, as :attr:`TcpSegment.tunnel`."""


def format_endpoint(addr: bytes, port: int) -> str:
    """Render an endpoint as ``ip:port`` (IPv6 as ``[addr]:port``), as in the JSON contract."""
    if len(addr) == 16:
        return f"[{ipaddress.IPv6Address(addr)}]:{port}"
    if len(addr) == 4:  # what ipaddress.IPv4Address would print, without building one
        return f"{addr[0]}.{addr[1]}.{addr[2]}.{addr[3]}:{port}"
    return f"{ipaddress.IPv4Address(addr)}:{port}"
