"""Capture formats tlspcap does not read itself, recognised by their first bytes (never by name).

Wireshark reads many more formats than pcap and pcapng. :func:`identify` names the one a file
is in from its first bytes (magic numbers as Wireshark's wiretap library checks them; a
heuristic for Endace ERF, which has no magic, and a signature search for NetScaler traces).
The reader then raises :class:`ForeignFormatError`, and :mod:`tlspcap.analyze` converts the file
with Wireshark's ``editcap`` when it is installed (:mod:`tlspcap.convert`), or reports the
command that converts it (:func:`conversion_command`).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from tlspcap.errors import CaptureError

HEAD_SIZE = 8192
"""Bytes of the file :func:`identify` looks at (a NetScaler trace's first page)."""


@dataclass(frozen=True, slots=True)
class ForeignFormat:
    """A capture format recognised but not read natively."""

    name: str
    """Its name, e.g. ``"Sun snoop"``, ``"Microsoft Network Monitor 2.x"``."""
    convertible: bool = True
    """Wireshark's ``editcap`` reads it (a compressed file is not a capture format)."""
    hint: str = ""
    """For what ``editcap`` cannot read: what to do instead."""


SNOOP = ForeignFormat("Sun snoop")
"""Read natively when it is version 2 Ethernet (:mod:`tlspcap.capture.snoop`)."""

_MAGICS: tuple[tuple[bytes, ForeignFormat], ...] = (
    (b"snoop\0\0\0", SNOOP),
    (b"RTSS", ForeignFormat("Microsoft Network Monitor 1.x")),
    (b"GMBU", ForeignFormat("Microsoft Network Monitor 2.x")),
    (b"TRSNIFF data    \x1a", ForeignFormat("Sniffer (DOS)")),
    (b"XCP\0", ForeignFormat("NetXray / Sniffer (Windows)")),
    (b"VL\0\0", ForeignFormat("NetXray 1.x")),
    (b"\xaa\xaa\xaa\xaa", ForeignFormat("InfoVista 5View")),
    (b"\x05VNF", ForeignFormat("Visual Networks traffic capture")),
    (b"\x00\x00\x02\x00\x12\x05\x00\x10", ForeignFormat("Tektronix K12xx (.rf5)")),
    (b"+---------+---------------+----------+", ForeignFormat("Tektronix K12 text")),
    (b"\x01\x10\x4c\x00", ForeignFormat("Novell LANalyzer")),
    (b"\x07\x10\x4c\x00", ForeignFormat("Novell LANalyzer")),
    (b"ObserverPktBufferVersion=", ForeignFormat("Viavi (Network Instruments) Observer")),
    (b"\x54\x52\x00\x64\x00", ForeignFormat("HP-UX nettl")),
    (b"\x7fver", ForeignFormat("Savvius *Peek tagged")),
    (b"iptrace 1.0", ForeignFormat("AIX iptrace 1.0")),
    (b"iptrace 2.0", ForeignFormat("AIX iptrace 2.0")),
    (b"btsnoop\0", ForeignFormat("btsnoop (Bluetooth HCI)")),
    (b"EyeSDN", ForeignFormat("EyeSDN USB S0/E1 ISDN trace")),
    (b"\x42\xd2\x00\x34\x12\x66\x22\x88", ForeignFormat("RADCOM WAN/LAN analyzer")),
    (b"\x34\xcd\xb2\xa1", ForeignFormat("modified pcap (Alexey Kuznetsov's patched libpcap)")),
    (b"\xa1\xb2\xcd\x34", ForeignFormat("modified pcap (Alexey Kuznetsov's patched libpcap)")),
    (b"\x28\xb5\x2f\xfd", ForeignFormat("zstd-compressed", False, "decompress it: zstd -d")),
    (b"\x04\x22\x4d\x18", ForeignFormat("lz4-compressed", False, "decompress it: lz4 -d")),
    (b"\xfd7zXZ\0", ForeignFormat("xz-compressed", False, "decompress it: xz -d")),
    (b"BZh", ForeignFormat("bzip2-compressed", False, "decompress it: bzip2 -d")),
)

_NETSCALER = re.compile(rb"Net[Ss]caler (?:V[23]\d )?Performance Data")
ERF = ForeignFormat("Endace ERF")
NETSCALER = ForeignFormat("NetScaler trace")

_ERF_MIN_YEAR_SECONDS = 631152000  # 1990-01-01
_ERF_MAX_YEAR_SECONDS = 4102444800  # 2100-01-01
_ERF_MAX_TYPE = 48
_ERF_RECORDS = 3


def identify(head: bytes) -> ForeignFormat | None:
    """The format of a file starting with ``head`` (its first :data:`HEAD_SIZE` bytes), if it
    is one tlspcap knows of but does not read; ``None`` otherwise."""
    for magic, fmt in _MAGICS:
        if head.startswith(magic):
            return fmt
    if _NETSCALER.search(head[:HEAD_SIZE]):
        return NETSCALER
    if _looks_like_erf(head):
        return ERF
    return None


def _looks_like_erf(head: bytes) -> bool:
    """ERF has no magic: accept a run of plausible, chained record headers (like Wireshark).

    Each of the first records (up to :data:`_ERF_RECORDS`, at least one whole) needs a
    timestamp in 1990-2100 that does not go backwards, a known record type, a record length
    of at least 16 and a wire length; the next header starts where the record length says.
    """
    pos = 0
    seen = 0
    last = 0
    while seen < _ERF_RECORDS and pos + 16 <= len(head):
        ts = int.from_bytes(head[pos : pos + 8], "little")
        kind = head[pos + 8] & 0x7F
        rlen = int.from_bytes(head[pos + 10 : pos + 12], "big")
        wlen = int.from_bytes(head[pos + 14 : pos + 16], "big")
        seconds = ts >> 32
        if not _ERF_MIN_YEAR_SECONDS <= seconds <= _ERF_MAX_YEAR_SECONDS or ts < last:
            return False
        if not 1 <= kind <= _ERF_MAX_TYPE or rlen < 16 or (wlen == 0 and kind != 27):
            return False
        last = ts
        seen += 1
        pos += rlen
    return seen >= 1 and (seen == _ERF_RECORDS or pos >= len(head) or len(head) < HEAD_SIZE)


def conversion_command(path: str | None) -> str:
    """The ``editcap`` command that converts ``path`` (or ``IN``) to pcapng."""
    if path is None:
        return "editcap -F pcapng IN OUT.pcapng"
    out = re.sub(r"(\.gz)?$", "", path, count=1)
    out = re.sub(r"\.[A-Za-z0-9]{1,6}$", "", out) + ".pcapng"
    return f"editcap -F pcapng {shlex.quote(path)} {shlex.quote(out)}"


def unreadable_message(fmt: ForeignFormat, path: str | None, why: str = "") -> str:
    """The error for a file in ``fmt``: it names the format and the command that converts it.

    ``why`` says why tlspcap did not convert it itself (e.g. ``"editcap is not installed"``).
    """
    if not fmt.convertible:
        return f"{fmt.name} file: {fmt.hint} {shlex.quote(path or 'FILE')}, then analyse that"
    because = f" ({why})" if why else ""
    return (
        f"{fmt.name} capture: tlspcap reads pcap and pcapng; convert it with Wireshark's "
        f"editcap{because}: {conversion_command(path)}"
    )


class ForeignFormatError(CaptureError):
    """The file is a capture in a format tlspcap recognises but does not read itself."""

    def __init__(self, fmt: ForeignFormat, inside: str = "") -> None:
        self.format = fmt
        """The recognised format."""
        self.inside = inside
        """``" inside gzip"`` when the format was found in a gzip stream, else empty."""
        super().__init__(unreadable_message(fmt, None) + inside)
        self.offset = 0  # recognised from the start of the file (not repeated in the message)
