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
    """IPv4 TTL or IPv6 hop limit of the innermost IP header (-1 when unknown)."""
    ip_id: int = -1
    """IPv4 identification (-1 when there is none)."""
    window: int = 0
    """Raw TCP window field."""
    options: bytes = b""
    """Raw TCP option bytes (empty when the data offset is 5)."""
    tunnel: str | None = None
    """Encapsulation, outermost first (one shared string per distinct tunnel)."""
    fragments: int = 0
    """IP fragments the segment was reassembled from (0: not fragmented)."""


def format_endpoint(addr: bytes, port: int) -> str:
    """Render an endpoint as ``ip:port`` (IPv6 as ``[addr]:port``), as in the JSON contract."""
    if len(addr) == 16:
        return f"[{ipaddress.IPv6Address(addr)}]:{port}"
    if len(addr) == 4:  # what ipaddress.IPv4Address would print, without building one
        return f"{addr[0]}.{addr[1]}.{addr[2]}.{addr[3]}:{port}"
    return f"{ipaddress.IPv4Address(addr)}:{port}"
