"""Open a capture stream of any supported format: pcap, pcapng, snoop, or a gzip of one.

The format is sniffed from the first bytes, never from a file name. Memory stays bounded: the
stream is read in 1 MiB chunks (gzip is decompressed as it streams), a pcap record may hold at
most 256 KiB (:data:`tlspcap.capture.pcap.MAX_RECORD_CAPLEN`) and a pcapng block at most 16 MiB
(:data:`tlspcap.capture.pcapng.MAX_BLOCK_LEN`); a larger claim is treated as corruption.
"""

from __future__ import annotations

import gzip
import io
import typing
from collections.abc import Iterator

from tlspcap.anomaly import Anomaly
from tlspcap.capture import formats, pcap, pcapng, snoop
from tlspcap.capture.linktypes import SUPPORTED, unsupported_message
from tlspcap.capture.model import Packet
from tlspcap.capture.source import ByteSource, CaptureState
from tlspcap.errors import CaptureError

GZIP_MAGIC = b"\x1f\x8b"


class CountingStream:
    """Feeds gzip the already-sniffed prefix, then the stream, counting compressed bytes."""

    def __init__(self, prefix: bytes, stream: typing.BinaryIO) -> None:
        self._prefix = prefix
        self._stream = stream
        self.count = len(prefix)

    def read(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes (all when negative)."""
        if self._prefix:
            cut = len(self._prefix) if size < 0 else size
            data, self._prefix = self._prefix[:cut], self._prefix[cut:]
            return data
        data = self._stream.read(size)
        self.count += len(data)
        return data

    def seek(self, offset: int, /) -> int:
        """Refuse: the capture is read in one forward pass (gzip only seeks to rewind)."""
        raise io.UnsupportedOperation(f"cannot seek to {offset}: capture streams are read once")


def read_exactly(stream: typing.BinaryIO, n: int) -> bytes:
    """Read ``n`` bytes, fewer only at the end of the stream."""
    parts: list[bytes] = []
    while n > 0:
        data = stream.read(n)
        if not data:
            break
        parts.append(data)
        n -= len(data)
    return b"".join(parts)


class CaptureReader:
    """Reads packets from a binary stream holding a pcap, pcapng or snoop file, or a gzip of one.

    The constructor reads the file header and raises :class:`CaptureError` only when the stream
    cannot be read as a capture at all: empty, unknown magic (a
    :class:`~tlspcap.capture.formats.ForeignFormatError` when it is a capture format Wireshark
    reads, see :mod:`tlspcap.capture.formats`), unreadable file or section header,
    or a pcap file whose (single) link type cannot be decoded (e.g. ``unsupported link type 105
    (IEEE802_11)``). After that, :meth:`packets` never raises: malformed or truncated input ends
    the iteration and leaves an :class:`Anomaly` in :attr:`anomalies`.

    Every packet yielded has a link type that
    :func:`tlspcap.capture.decode.segment_decoder` accepts. In a pcapng file, the packets of an
    interface with an unsupported link type are skipped (their frame numbers stay used, so the
    other frames keep Wireshark's numbers) and one ``unsupported_linktype`` anomaly names it.
    A caller can therefore look the decoder up per distinct link type without a ``try``.

    Anomaly names: ``truncated_record`` (partial last record/block; ``frame`` is the number it
    would have had), ``bad_record`` (pcap record over the length bound), ``bad_block`` (pcapng
    block malformed or over the bound), ``bad_interface`` (packet names an undefined pcapng
    interface), ``unsupported_linktype``, ``read_error`` (corrupt or cut gzip, I/O error) and
    ``snaplen_truncated`` (one summary: how many packets were captured shorter than the wire).
    """

    def __init__(self, stream: typing.BinaryIO) -> None:
        """Sniff the format of ``stream`` and read its file header."""
        self._state = CaptureState()
        self.anomalies: list[Anomaly] = self._state.anomalies
        """File-level anomalies found so far (complete once :meth:`packets` is exhausted)."""
        self.secrets: list[tuple[int, bytes]] = self._state.secrets
        """pcapng Decryption Secrets Blocks as ``(secrets_type, data)``, in file order."""
        self._counter: CountingStream | None = None
        try:
            prefix = read_exactly(stream, 4)
        except OSError as exc:
            raise CaptureError(f"cannot read the stream: {exc}", offset=0) from exc
        suffix = ""
        if prefix[:2] == GZIP_MAGIC:
            self._counter = CountingStream(prefix, stream)
            gz = gzip.GzipFile(fileobj=self._counter, mode="rb")
            self._src = ByteSource(gz.read1)
            suffix = "+gzip"
        else:
            self._src = ByteSource(stream.read, prefix)
        src = self._src
        src.fill(4)
        if src.error is not None:
            raise CaptureError(f"unreadable gzip data ({src.error})", offset=0)
        magic = src.buf[src.pos : src.pos + 4]
        inside = " inside gzip" if suffix else ""
        if not magic:
            raise CaptureError(f"empty file{inside}", offset=0)
        self._packets: Iterator[Packet]
        if magic in pcap.MAGICS:
            header = pcap.read_header(src)
            if header.linktype not in SUPPORTED:
                raise CaptureError(unsupported_message(header.linktype), offset=20)
            self.format = ("pcap-ns" if header.nanoseconds else "pcap") + suffix
            """``pcap``, ``pcap-ns``, ``pcapng`` or ``snoop``, with ``+gzip`` when compressed."""
            self._packets = pcap.iter_packets(src, header, self._state)
        elif magic == pcapng.SHB_MAGIC:
            self.format = "pcapng" + suffix
            self._packets = pcapng.PcapngParser(src, self._state).packets()
        elif src.fill(8) and src.buf[src.pos : src.pos + 8] == snoop.MAGIC:
            snoop.read_header(src, inside)  # other snoop files: ForeignFormatError
            self.format = "snoop" + suffix
            self._packets = snoop.iter_packets(src, self._state)
        else:
            src.fill(formats.HEAD_SIZE)
            foreign = formats.identify(src.buf[src.pos : src.pos + formats.HEAD_SIZE])
            if foreign is not None:
                raise formats.ForeignFormatError(foreign, inside)
            if len(magic) < 4:
                raise CaptureError(f"not a pcap/pcapng file{inside} ({len(magic)} bytes)", offset=0)
            raise CaptureError(f"not a pcap/pcapng file{inside} (magic 0x{magic.hex()})", offset=0)

    @property
    def truncated(self) -> bool:
        """The file ended in the middle of a record or block (or its gzip stream was cut)."""
        return self._state.truncated

    @property
    def bytes_read(self) -> int:
        """Bytes consumed from the stream so far (compressed bytes for gzip), for progress."""
        if self._counter is not None:
            return self._counter.count
        return self._src.total_read

    def packets(self) -> Iterator[Packet]:
        """Iterate over the packets, in file order; one pass (a second call continues it).

        Frame numbers are the 1-based positions of packet records (pcapng: EPB, SPB and
        obsolete PB each count); timestamps are float seconds since the epoch, UTC.
        """
        return self._packets
