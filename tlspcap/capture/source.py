"""Bounded-memory buffering of a binary stream, and the state the format parsers share.

The pcap and pcapng parsers work on ``ByteSource.buf`` directly (``struct.unpack_from`` at
``ByteSource.pos``) and call :meth:`ByteSource.fill` only when a record reaches past the end of
the buffer. The buffer holds one chunk (1 MiB) plus at most one record, whose size the parsers
bound before asking for it, so memory stays bounded whatever the file claims.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from tlspcap.anomaly import Anomaly

CHUNK_SIZE = 1 << 20
"""Bytes asked of the underlying stream per read."""

_READ_ERRORS = (OSError, EOFError, zlib.error)
"""What reading a (possibly gzip-compressed) stream may raise: gzip.BadGzipFile is an OSError."""


class ByteSource:
    """A growing window over a stream: ``buf[pos:]`` are the bytes not yet consumed."""

    __slots__ = ("_chunk", "_read", "base", "buf", "eof", "error", "pos", "total_read")

    def __init__(
        self, read: Callable[[int], bytes], prefix: bytes = b"", chunk: int = CHUNK_SIZE
    ) -> None:
        self._read = read
        self._chunk = chunk
        self.buf = prefix
        """Buffered bytes; ``buf[pos:]`` is unread."""
        self.pos = 0
        """Position of the next unread byte in ``buf``."""
        self.base = 0
        """Offset in the (decompressed) file of ``buf[0]``."""
        self.eof = False
        """The stream reported its end (or failed)."""
        self.error: str | None = None
        """Why reading failed (corrupt gzip data, I/O error), when it did."""
        self.total_read = len(prefix)
        """Bytes obtained from ``read`` so far, plus the prefix."""

    @property
    def offset(self) -> int:
        """Offset in the (decompressed) file of the next unread byte."""
        return self.base + self.pos

    @property
    def remaining(self) -> int:
        """Bytes buffered but not consumed yet."""
        return len(self.buf) - self.pos

    def fill(self, n: int) -> bool:
        """Make ``n`` unread bytes available at ``buf[pos:]``, reading as needed.

        Returns ``False`` when the stream ends (or fails; see :attr:`error`) first; the bytes
        that were there stay buffered. ``pos`` is reset to 0 when the buffer is rebuilt.
        """
        have = len(self.buf) - self.pos
        if have >= n:
            return True
        parts = [self.buf[self.pos :]] if have else []
        self.base += self.pos
        while have < n and not self.eof:
            try:
                data = self._read(max(self._chunk, n - have))
            except _READ_ERRORS as exc:
                self.error = f"{type(exc).__name__}: {exc}"
                self.eof = True
                break
            if not data:
                self.eof = True
                break
            self.total_read += len(data)
            parts.append(data)
            have += len(data)
        self.buf = parts[0] if len(parts) == 1 else b"".join(parts)
        self.pos = 0
        return have >= n


@dataclass(slots=True)
class CaptureState:
    """What a format parser reports besides packets; :class:`CaptureReader` exposes it."""

    anomalies: list[Anomaly] = field(default_factory=list)
    """File-level anomalies, in the order they were found."""
    secrets: list[tuple[int, bytes]] = field(default_factory=list)
    """pcapng Decryption Secrets Blocks as ``(secrets_type, data)``, in file order."""
    truncated: bool = False
    """The file ended in the middle of a record or block (or its gzip stream was cut)."""

    def note_end(self, src: ByteSource, frame: int | None, what: str) -> None:
        """Record why reading stopped early: a partial record/block at the end or a read error.

        ``frame`` is the number the partial record would have had (``None`` if it is not a
        packet record); ``what`` names the record kind for the detail text.
        """
        if src.remaining:
            self.truncated = True
            self.anomalies.append(
                Anomaly(
                    "truncated_record",
                    frame,
                    f"file ends inside a {what} at byte {src.offset} "
                    f"({src.remaining} bytes of it present); the partial record is ignored",
                )
            )
        if src.error is not None:
            self.truncated = self.truncated or src.error.startswith("EOFError")
            self.anomalies.append(
                Anomaly("read_error", None, f"reading stopped at byte {src.offset}: {src.error}")
            )

    def note_snaplen(self, cut: int, first_cut: int, snaplen: str) -> None:
        """Record, once per file, how many packets the capture cut shorter than the wire."""
        if cut:
            self.anomalies.append(
                Anomaly(
                    "snaplen_truncated",
                    first_cut,
                    f"{cut} packet(s) captured shorter than on the wire (snaplen {snaplen}), "
                    f"first at frame {first_cut}",
                )
            )
