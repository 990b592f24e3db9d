"""Sun snoop (RFC 1761), version 2, Ethernet: read natively (other snoop files are converted).

A 16-byte file header (``snoop\\0\\0\\0``, version, datalink), then records: original length,
included length, record length (header, data and padding), cumulative drops, seconds and
microseconds, all big-endian, then the data padded to the record length. Only datalink 4
(Ethernet) of version 2 is read here; any other snoop file raises
:class:`~tlspcap.capture.formats.ForeignFormatError` so that ``editcap`` converts it. Records
are bounded like pcap records (:data:`tlspcap.capture.pcap.MAX_RECORD_CAPLEN`); a larger claim,
or a record length shorter than its data or padded by more than :data:`MAX_PADDING` bytes, ends
reading with a ``bad_record`` anomaly.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from tlspcap.anomaly import Anomaly
from tlspcap.capture import formats
from tlspcap.capture.linktypes import ETHERNET
from tlspcap.capture.model import Packet
from tlspcap.capture.pcap import MAX_RECORD_CAPLEN
from tlspcap.capture.source import ByteSource, CaptureState

MAGIC = b"snoop\0\0\0"
HEADER_LEN = 16
RECORD_HEADER_LEN = 24
MAX_PADDING = 4096
"""Padding accepted after a record's data (snoop pads to 4 bytes)."""
_DATALINK_ETHERNET = 4
_RECORD = struct.Struct(">IIIIII").unpack_from


def read_header(src: ByteSource, inside: str) -> None:
    """Consume the file header of a snoop file ``tlspcap`` reads itself.

    Raises :class:`~tlspcap.capture.formats.ForeignFormatError` for any other snoop file
    (another version or datalink, or a cut header): ``editcap`` may still read it.
    """
    if not src.fill(HEADER_LEN):
        raise formats.ForeignFormatError(formats.SNOOP, inside)
    version, datalink = struct.unpack_from(">II", src.buf, src.pos + 8)
    if version != 2 or datalink != _DATALINK_ETHERNET:
        raise formats.ForeignFormatError(formats.SNOOP, inside)
    src.pos += HEADER_LEN


def iter_packets(src: ByteSource, state: CaptureState) -> Iterator[Packet]:
    """Yield the records after the file header; malformed input ends iteration (anomalies in
    ``state``: ``truncated_record``, ``bad_record``, ``read_error``, ``snaplen_truncated``)."""
    frame = cut = first_cut = 0
    try:
        while True:
            if not src.fill(RECORD_HEADER_LEN):
                state.note_end(src, frame + 1, "snoop record header")
                return
            wire, caplen, reclen, _drops, sec, usec = _RECORD(src.buf, src.pos)
            padding = reclen - RECORD_HEADER_LEN - caplen
            if caplen > MAX_RECORD_CAPLEN or not 0 <= padding <= MAX_PADDING:
                state.anomalies.append(
                    Anomaly(
                        "bad_record",
                        frame + 1,
                        f"snoop record at byte {src.offset} claims {caplen} captured bytes in a "
                        f"{reclen}-byte record (limits: {MAX_RECORD_CAPLEN} bytes, "
                        f"{MAX_PADDING} of padding); reading stopped",
                    )
                )
                return
            if not src.fill(reclen):
                state.note_end(src, frame + 1, "snoop record")
                return
            start = src.pos + RECORD_HEADER_LEN
            data = src.buf[start : start + caplen]
            src.pos += reclen
            frame += 1
            if caplen < wire:
                cut += 1
                if cut == 1:
                    first_cut = frame
            yield Packet(frame, sec + usec / 1_000_000, ETHERNET, data, wire)
    finally:
        state.note_snaplen(cut, first_cut, "unknown")
