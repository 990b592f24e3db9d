"""The pcapng format: a sequence of sections, each a Section Header Block and its blocks.

Read here: Section Header Blocks of either byte order (a file may hold several sections; each
resets the interface list), Interface Description Blocks (link type, snaplen, ``if_tsresol``
as a power of 10 or of 2, ``if_tsoffset``), Enhanced Packet Blocks, Simple Packet Blocks
(interface 0 of the section; captured length = min(original length, snaplen, block room);
they carry no timestamp, so they get the previous packet's), obsolete Packet Blocks (type 2),
and Decryption Secrets Blocks (collected as ``(secrets_type, data)``). Other blocks are skipped.

Every EPB, SPB and PB takes a frame number, as in Wireshark, even when it is not yielded; so do
the other blocks Wireshark shows as frames (:data:`NUMBERED_BLOCKS`), which are never yielded.
A block longer than :data:`MAX_BLOCK_LEN`, a length that is not a multiple of 4 or a trailer
that disagrees with the header ends reading with a ``bad_block`` anomaly; a block whose body is
inconsistent but whose framing is sound is skipped with a ``bad_block`` anomaly. Packets of an
interface whose link type cannot be decoded are skipped, with one ``unsupported_linktype``
anomaly per interface.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import NamedTuple

from tlspcap.anomaly import Anomaly
from tlspcap.capture.linktypes import SUPPORTED, unsupported_message
from tlspcap.capture.model import Packet
from tlspcap.capture.source import ByteSource, CaptureState
from tlspcap.errors import CaptureError

MAX_BLOCK_LEN = 16 << 20
"""Largest block accepted (16 MiB): packets are at most 256 KiB, secrets blocks a few MiB."""

SHB_MAGIC = b"\x0a\x0d\x0d\x0a"
SHB = 0x0A0D0D0A
IDB = 1
PB = 2
SPB = 3
EPB = 6
DSB = 0x0A
PACKET_BLOCKS = frozenset({PB, SPB, EPB})
"""Block types that hold one packet each and take a frame number."""
NUMBERED_BLOCKS = PACKET_BLOCKS | {0x09, 0x0BAD, 0x40000BAD, 0x204, 0x216, 0x221}
"""Blocks Wireshark (4.0) shows as frames: packets, systemd journal entries, custom blocks and
sysdig events. The non-packet ones are skipped but take a frame number, so that every frame
number stays the one Wireshark shows."""

_BYTE_ORDER_MAGICS = {b"\x4d\x3c\x2b\x1a": "<", b"\x1a\x2b\x3c\x4d": ">"}
_OPT_IF_TSRESOL = 9
_OPT_IF_TSOFFSET = 14
_MIN_SHB_LEN = 28
_PACKET_HEADER_LEN = 28  # EPB/PB: block header (8) + 20 bytes of fields before the data


class _Interface(NamedTuple):
    """What reading a packet needs from its Interface Description Block."""

    linktype: int
    units: int  # timestamp units per second
    offset: int  # if_tsoffset, seconds
    snaplen: int
    skip: bool  # packets are not yielded (unsupported link type or malformed IDB)


class PcapngParser:
    """Reads the blocks of a pcapng stream; the constructor consumes the first section header."""

    def __init__(self, src: ByteSource, state: CaptureState) -> None:
        """Read the first Section Header Block; raises :class:`CaptureError` when unreadable."""
        self._src = src
        self._state = state
        self._interfaces: list[_Interface] = []
        self._reported: set[tuple[int, int]] = set()  # (section, interface) already reported
        self._section = 1
        self._set_order("<")
        if not src.fill(12):
            raise CaptureError("truncated pcapng section header block", offset=0)
        error = self._set_order_from(src.buf, src.pos)
        (blen,) = self._u32(src.buf, src.pos + 4)
        if error is None:
            error = _check_length(blen)
        if error is None and not src.fill(blen):
            error = f"truncated pcapng section header block ({src.remaining} of {blen} bytes)"
        if error is None:
            error = self._check_section(src.buf, src.pos, blen)
        if error is not None:
            raise CaptureError(error, offset=0)
        src.pos += blen

    def _set_order(self, order: str) -> None:
        """Compile the unpackers for one byte order."""
        self._u32 = struct.Struct(order + "I").unpack_from
        self._u32x2 = struct.Struct(order + "II").unpack_from
        self._epb = struct.Struct(order + "IIIII").unpack_from
        self._pb = struct.Struct(order + "HHIIII").unpack_from
        self._idb = struct.Struct(order + "HHI").unpack_from
        self._opt = struct.Struct(order + "HH").unpack_from
        self._i64 = struct.Struct(order + "q").unpack_from
        self._u16 = struct.Struct(order + "H").unpack_from

    def _set_order_from(self, buf: bytes, pos: int) -> str | None:
        """Take the byte order of the SHB at ``pos`` (12 bytes present); error text if bad."""
        bom = buf[pos + 8 : pos + 12]
        order = _BYTE_ORDER_MAGICS.get(bom)
        if order is None:
            return f"pcapng section header has bad byte-order magic 0x{bom.hex()}"
        self._set_order(order)
        return None

    def _check_section(self, buf: bytes, pos: int, blen: int) -> str | None:
        """Validate a whole SHB (``blen`` bytes present) and start its section."""
        if blen < _MIN_SHB_LEN:
            return f"pcapng section header block too short ({blen} bytes)"
        (trailer,) = self._u32(buf, pos + blen - 4)
        if trailer != blen:
            return f"pcapng block length {blen} disagrees with its trailer {trailer}"
        (major,) = self._u16(buf, pos + 12)
        if major != 1:
            return f"unsupported pcapng version {major}"
        self._interfaces.clear()
        return None

    def packets(self) -> Iterator[Packet]:
        """Yield the packets of all sections; malformed input ends iteration with an anomaly."""
        src = self._src
        state = self._state
        ifaces = self._interfaces
        u32x2, epb = self._u32x2, self._epb
        frame = cut = first_cut = 0
        snaplen = ""
        ts = 0.0
        buf = src.buf
        pos = src.pos
        end = len(buf)
        try:
            while True:
                if end - pos < 12:
                    src.pos = pos
                    ok = src.fill(12)
                    buf, pos, end = src.buf, src.pos, len(src.buf)
                    if not ok:
                        state.note_end(src, self._partial_frame(frame), "pcapng block")
                        return
                btype, blen = u32x2(buf, pos)
                if btype == SHB:
                    error = self._set_order_from(buf, pos)
                    u32x2, epb = self._u32x2, self._epb
                    btype, blen = u32x2(buf, pos)
                    if error is not None:
                        self._bad_block(src.base + pos, None, error + "; reading stopped")
                        return
                if blen & 3 or blen < 12 or blen > MAX_BLOCK_LEN:
                    self._bad_block(src.base + pos, None, f"{_check_length(blen)}; reading stopped")
                    return
                if end - pos < blen:
                    src.pos = pos
                    ok = src.fill(blen)
                    buf, pos, end = src.buf, src.pos, len(src.buf)
                    if not ok:
                        state.note_end(src, self._partial_frame(frame), "pcapng block")
                        return
                block_pos = pos
                pos += blen
                if u32x2(buf, pos - 8)[1] != blen:
                    src.pos = pos
                    detail = f"length {blen} disagrees with its trailer"
                    self._bad_block(src.base + block_pos, None, detail + "; reading stopped")
                    return
                if btype in (EPB, PB):
                    frame += 1
                    if blen < _PACKET_HEADER_LEN + 4:
                        self._bad_block(
                            src.base + block_pos, frame, f"packet block of {blen} bytes"
                        )
                        continue
                    if btype == EPB:
                        iid, ts_high, ts_low, caplen, wirelen = epb(buf, block_pos + 8)
                    else:
                        iid, _drops, ts_high, ts_low, caplen, wirelen = self._pb(buf, block_pos + 8)
                    if caplen > blen - _PACKET_HEADER_LEN - 4:
                        self._bad_block(src.base + block_pos, frame, f"captured length {caplen}")
                        continue
                    if iid >= len(ifaces) or ifaces[iid].skip:
                        self._skip_packet(iid, frame)
                        continue
                    linktype, units, offset, iface_snaplen, _skip = ifaces[iid]
                    ts = (ts_high * 4294967296 + ts_low) / units + offset
                    start = block_pos + _PACKET_HEADER_LEN
                elif btype == SPB:
                    frame += 1
                    if not ifaces or ifaces[0].skip:
                        self._skip_packet(0, frame)
                        continue
                    linktype, _units, _offset, iface_snaplen, _skip = ifaces[0]
                    wirelen = u32x2(buf, block_pos + 4)[1]
                    caplen = min(wirelen, blen - 16)
                    if iface_snaplen:
                        caplen = min(caplen, iface_snaplen)
                    start = block_pos + 12
                else:
                    if btype in NUMBERED_BLOCKS:
                        frame += 1
                    elif btype == IDB:
                        self._add_interface(buf, block_pos, blen)
                    elif btype == DSB:
                        self._add_secrets(buf, block_pos, blen)
                    elif btype == SHB:
                        error = self._check_section(buf, block_pos, blen)
                        if error is not None:
                            src.pos = pos
                            self._bad_block(src.base + block_pos, None, error + "; reading stopped")
                            return
                        self._section += 1
                    continue
                if caplen < wirelen:
                    cut += 1
                    if cut == 1:
                        first_cut = frame
                        # The interface's declared snap length, or (when it declares none, or
                        # more than was kept: editcap -s leaves it as it was) what was kept.
                        snaplen = (
                            str(iface_snaplen)
                            if 0 < iface_snaplen <= caplen
                            else f"{caplen} bytes kept"
                        )
                data = buf[start : start + caplen]
                yield Packet(frame, ts, linktype, data, wirelen)
        finally:
            src.pos = pos
            state.note_snaplen(cut, first_cut, snaplen)

    def _partial_frame(self, frame: int) -> int | None:
        """Frame number of the partial block at the end, if it is a packet block."""
        src = self._src
        if src.remaining >= 4 and self._u32(src.buf, src.pos)[0] in NUMBERED_BLOCKS:
            return frame + 1
        return None

    def _bad_block(self, offset: int, frame: int | None, detail: str) -> None:
        """Record a malformed block."""
        detail = f"block at byte {offset}: {detail}"
        self._state.anomalies.append(Anomaly("bad_block", frame, detail))

    def _skip_packet(self, iid: int, frame: int) -> None:
        """Account for a packet of an undefined or unsupported interface, which is skipped."""
        if iid >= len(self._interfaces):
            self._state.anomalies.append(
                Anomaly(
                    "bad_interface",
                    frame,
                    f"packet refers to interface {iid}, section {self._section} "
                    f"has {len(self._interfaces)}; packet skipped",
                )
            )
            return
        iface = self._interfaces[iid]
        key = (self._section, iid)
        if key not in self._reported and iface.linktype not in SUPPORTED:
            self._reported.add(key)
            self._state.anomalies.append(
                Anomaly(
                    "unsupported_linktype",
                    frame,
                    f"interface {iid} of section {self._section}: "
                    f"{unsupported_message(iface.linktype)}; its packets are skipped",
                )
            )

    def _add_interface(self, buf: bytes, pos: int, blen: int) -> None:
        """Parse an Interface Description Block and append its interface."""
        where = self._src.base + pos
        if blen < 20:
            self._bad_block(where, None, "interface description too short; its packets skipped")
            self._interfaces.append(_Interface(-1, 1, 0, 0, skip=True))
            return
        linktype, _reserved, snaplen = self._idb(buf, pos + 8)
        units = 1_000_000
        offset = 0
        p = pos + 16
        end = pos + blen - 4
        while p + 4 <= end:
            code, length = self._opt(buf, p)
            if code == 0:
                break
            if p + 4 + length > end:
                self._bad_block(where, None, "interface option overruns the block; ignored")
                break
            if code == _OPT_IF_TSRESOL and length >= 1:
                res = buf[p + 4]
                units = 1 << (res & 0x7F) if res & 0x80 else 10**res
            elif code == _OPT_IF_TSOFFSET and length >= 8:
                (offset,) = self._i64(buf, p + 4)
            p += 4 + ((length + 3) & ~3)
        skip = linktype not in SUPPORTED
        self._interfaces.append(_Interface(linktype, units, offset, snaplen, skip))

    def _add_secrets(self, buf: bytes, pos: int, blen: int) -> None:
        """Collect a Decryption Secrets Block."""
        if blen >= 20:
            secrets_type, length = self._u32x2(buf, pos + 8)
            if length <= blen - 20:
                self._state.secrets.append((secrets_type, buf[pos + 16 : pos + 16 + length]))
                return
        self._bad_block(self._src.base + pos, None, "decryption secrets overrun the block")


def _check_length(blen: int) -> str | None:
    """Error text when a block's total length is impossible or over the bound."""
    if blen < 12 or blen & 3:
        return f"impossible block length {blen}"
    if blen > MAX_BLOCK_LEN:
        return f"block length {blen} over the {MAX_BLOCK_LEN}-byte limit"
    return None
