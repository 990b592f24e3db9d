"""Byte builders for capture-layer tests: link, IP, TCP/UDP, tunnel and ICMP headers.

Every header is packed with ``struct`` from its RFC layout, independently of the decoder under
test. Checksums are left 0 (tlspcap does not verify them) except where a field is computed.
"""

from __future__ import annotations

import struct

from tlspcap.capture.model import Packet

SRC4 = bytes([192, 0, 2, 1])
DST4 = bytes([198, 51, 100, 7])
SRC6 = bytes.fromhex("20010db8000000000000000000000001")
DST6 = bytes.fromhex("20010db8000000000000000000000002")
OUT_A = bytes([203, 0, 113, 1])
OUT_B = bytes([203, 0, 113, 2])
OUT6_A = bytes.fromhex("20010db8ffff00000000000000000001")
OUT6_B = bytes.fromhex("20010db8ffff00000000000000000002")
MACS = bytes.fromhex("020000000002") + bytes.fromhex("020000000001")

ACK_PSH = 0x18


def tcp(
    payload: bytes = b"",
    *,
    sport: int = 51000,
    dport: int = 443,
    seq: int = 1000,
    ack: int = 2000,
    flags: int = ACK_PSH,
    options: bytes = b"",
    window: int = 65535,
) -> bytes:
    doff = (20 + len(options)) // 4
    head = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, doff << 4, flags, window, 0, 0)
    return head + options + payload


def udp(body: bytes, sport: int = 49152, dport: int = 53) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(body), 0) + body


def ipv4(
    body: bytes,
    *,
    proto: int = 6,
    src: bytes = SRC4,
    dst: bytes = DST4,
    ident: int = 7,
    frag: int = 0x4000,
    ttl: int = 64,
    total: int | None = None,
) -> bytes:
    length = 20 + len(body) if total is None else total
    return (
        struct.pack("!BBHHHBBH4s4s", 0x45, 0, length, ident, frag, ttl, proto, 0, src, dst) + body
    )


def ipv6(
    body: bytes, *, nh: int = 6, src: bytes = SRC6, dst: bytes = DST6, hlim: int = 64
) -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, len(body), nh, hlim, src, dst) + body


def ether(body: bytes, ethertype: int = 0x0800, vlans: tuple[int, ...] = ()) -> bytes:
    head = MACS
    for vid in vlans:
        head += struct.pack("!HH", 0x8100, vid)
    return head + struct.pack("!H", ethertype) + body


def vxlan(vni: int, frame: bytes) -> bytes:
    return struct.pack("!B3xI", 0x08, vni << 8) + frame


def geneve(vni: int, proto: int, body: bytes, options: bytes = b"", version: int = 0) -> bytes:
    first = (version << 6) | (len(options) // 4)
    return struct.pack("!BBHI", first, 0, proto, vni << 8) + options + body


def gre(
    proto: int,
    body: bytes,
    *,
    key: int | None = None,
    seq: int | None = None,
    csum: bool = False,
    version: int = 0,
    routing: bool = False,
) -> bytes:
    flags = version | (0x8000 if csum else 0) | (0x2000 if key is not None else 0)
    flags |= (0x1000 if seq is not None else 0) | (0x4000 if routing else 0)
    opt = b"\0\0\0\0" if csum else b""
    opt += struct.pack("!I", key) if key is not None else b""
    opt += struct.pack("!I", seq) if seq is not None else b""
    return struct.pack("!HH", flags, proto) + opt + body


def erspan2(session: int, frame: bytes) -> bytes:
    return struct.pack("!HHI", 1 << 12, session, 0) + frame


def erspan3(session: int, frame: bytes, *, frame_type: int = 0, subheader: bool = False) -> bytes:
    word = (frame_type << 10) | (1 if subheader else 0)
    head = struct.pack("!HHIHH", 2 << 12, session, 12345, 0, word)
    return head + (b"\x1c\0\0\x2a\0\0\0\1" if subheader else b"") + frame


def mpls(labels: list[int], body: bytes) -> bytes:
    out = b""
    for i, label in enumerate(labels):
        out += struct.pack("!I", (label << 12) | (0x100 if i == len(labels) - 1 else 0) | 64)
    return out + body


def pppoe(session: int, proto: int, body: bytes) -> bytes:
    ppp = struct.pack("!H", proto) + body
    return struct.pack("!BBHH", 0x11, 0, session, len(ppp)) + ppp


def icmp4(icmp_type: int, code: int, quoted: bytes, rest: bytes = b"\0\0\0\0") -> bytes:
    return struct.pack("!BBH", icmp_type, code, 0) + rest + quoted


def icmp6(icmp_type: int, code: int, quoted: bytes, rest: bytes = b"\0\0\0\0") -> bytes:
    return struct.pack("!BBH", icmp_type, code, 0) + rest + quoted


def ipv4_fragments(datagram: bytes, size: int) -> list[bytes]:
    """Split an IPv4 datagram (20-byte header) into fragments of ``size`` payload bytes."""
    head, body = datagram[:20], datagram[20:]
    out = []
    for off in range(0, len(body), size):
        piece = body[off : off + size]
        more = off + size < len(body)
        h = bytearray(head)
        struct.pack_into(
            "!HHH", h, 2, 20 + len(piece), h[4] << 8 | h[5], (off // 8) | (0x2000 * more)
        )
        out.append(bytes(h) + piece)
    return out


def ipv6_fragments(datagram: bytes, size: int, ident: int = 0x1234) -> list[bytes]:
    """Split an IPv6 datagram (40-byte header, no extension) with fragment headers."""
    head, body = datagram[:40], datagram[40:]
    nh = head[6]
    out = []
    for off in range(0, len(body), size):
        piece = body[off : off + size]
        more = off + size < len(body)
        h = bytearray(head)
        h[6] = 44
        struct.pack_into("!H", h, 4, 8 + len(piece))
        out.append(bytes(h) + struct.pack("!BBHI", nh, 0, off | more, ident) + piece)
    return out


def packet(data: bytes, frame: int = 1, ts: float = 1700000000.0, linktype: int = 1) -> Packet:
    return Packet(frame, ts, linktype, data, len(data))


def pcap_file(frames: list[bytes], linktype: int = 1, t0: float = 1767225600.0) -> bytes:
    """A little-endian microsecond pcap of ``frames``, a millisecond apart."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype)]
    for i, f in enumerate(frames):
        ts = t0 + i / 1000
        out.append(struct.pack("<IIII", int(ts), round(ts % 1 * 1e6), len(f), len(f)) + f)
    return b"".join(out)
