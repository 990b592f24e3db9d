"""The classic libpcap format: 24-byte file header, then 16-byte record headers and data.

Both byte orders, microsecond (magic 0xa1b2c3d4) and nanosecond (0xa1b23c4d) timestamps.
A record claiming more than :data:`MAX_RECORD_CAPLEN` captured bytes is treated as corruption:
reading stops with a ``bad_record`` anomaly instead of allocating (Wireshark does the same).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from tlspcap.anomaly import Anomaly
from tlspcap.capture.model import Packet
from tlspcap.capture.source import ByteSource, CaptureState
from tlspcap.errors import CaptureError

MAX_RECORD_CAPLEN = 262144
"""Largest captured length accepted in one record: libpcap's and Wireshark's 256 KiB limit."""

FILE_HEADER_LEN = 24
RECORD_HEADER_LEN = 16

MAGICS: dict[bytes, tuple[str, bool]] = {
    b"\xd4\xc3\xb2\xa1": ("<", False),
    b"\xa1\xb2\xc3\xd4": (">", False),
    b"\x4d\x3c\xb2\xa1": ("<", True),
    b"\xa1\xb2\x3c\x4d": (">", True),
}
"""File magic as stored -> (struct byte order, nanosecond timestamps)."""

MODIFIED_MAGICS = frozenset({b"\x34\xcd\xb2\xa1", b"\xa1\xb2\xcd\x34"})
"""Magic of Kuznetzov's "modified pcap" (24-byte records), which is not supported."""


@dataclass(frozen=True, slots=True)
class PcapHeader:
    """The fields of a pcap file header that reading needs."""

    order: str
    """``"<"`` or ``">"``: the byte order of every header in the file."""
    nanoseconds: bool
    """Record timestamps count nanoseconds instead of microseconds."""
    snaplen: int
    """Snapshot length the capture was taken with."""
    linktype: int
    """Link-layer header type (lower 16 bits of the header's link type field)."""


def read_header(src: ByteSource) -> PcapHeader:
    """Consume and parse the file header; raises :class:`CaptureError` if it is unreadable."""
    if not src.fill(FILE_HEADER_LEN):
        raise CaptureError(
            f"truncated pcap file header ({src.remaining} of {FILE_HEADER_LEN} bytes)", offset=0
        )
    magic = src.buf[src.pos : src.pos + 4]
    order, nanoseconds = MAGICS[magic]
    _major, _minor, _zone, _sigfigs, snaplen, network = struct.unpack_from(
        order + "HHiIII", src.buf, src.pos + 4
    )
    src.pos += FILE_HEADER_LEN
    # Bits 16-31 of the link type field carry FCS information; the link type is bits 0-15.
    return PcapHeader(order, nanoseconds, snaplen, network & 0xFFFF)


def iter_packets(src: ByteSource, header: PcapHeader, state: CaptureState) -> Iterator[Packet]:
    """Yield the records following the file header; malformed input ends iteration.

    Problems are appended to ``state``: a partial last record (``truncated_record``), an
    absurd captured length (``bad_record``), a read error, and a ``snaplen_truncated`` summary.
    """
    unpack = struct.Struct(header.order + "IIII").unpack_from
    units = 1_000_000_000 if header.nanoseconds else 1_000_000
    linktype = header.linktype
    frame = cut = first_cut = 0
    buf = src.buf
    pos = src.pos
    end = len(buf)
    try:
        while True:
            if end - pos < RECORD_HEADER_LEN:
                src.pos = pos
                ok = src.fill(RECORD_HEADER_LEN)
                buf = src.buf
                pos = src.pos
                end = len(buf)
                if not ok:
                    state.note_end(src, frame + 1, "packet record header")
                    return
            sec, frac, caplen, wirelen = unpack(buf, pos)
            if caplen > MAX_RECORD_CAPLEN:
                state.anomalies.append(
                    Anomaly(
                        "bad_record",
                        frame + 1,
                        f"record at byte {src.base + pos} claims {caplen} captured bytes "
                        f"(limit {MAX_RECORD_CAPLEN}); reading stopped",
                    )
                )
                return
            stop = pos + RECORD_HEADER_LEN + caplen
            if stop > end:
                src.pos = pos
                ok = src.fill(RECORD_HEADER_LEN + caplen)
                buf = src.buf
                pos = src.pos
                end = len(buf)
                if not ok:
                    state.note_end(src, frame + 1, "packet record")
                    return
                stop = pos + RECORD_HEADER_LEN + caplen
            frame += 1
            if caplen < wirelen:
                cut += 1
                if cut == 1:
                    first_cut = frame
            data = buf[pos + RECORD_HEADER_LEN : stop]
            pos = stop
            yield Packet(frame, sec + frac / units, linktype, data, wirelen)
    finally:
        src.pos = pos
        state.note_snaplen(cut, first_cut, str(header.snaplen))
