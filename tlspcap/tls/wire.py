"""A bounds-checked reader over wire bytes: every short read or leftover byte is a DecodeError.

Two ways to read: :class:`WireReader`, a sequential reader object, and the :func:`vector_end`
helper for hot parsers that walk a message by offsets (one call per length-prefixed vector
instead of several method calls per field). Both raise the same :class:`DecodeError` messages
(:func:`short_read`, :func:`trailing`), which end up in the anomaly details of a report.
"""

from __future__ import annotations

import struct
from functools import lru_cache

from tlspcap.errors import DecodeError


def short_read(n: int, pos: int, end: int) -> DecodeError:
    """The error for a read of ``n`` bytes at offset ``pos`` of a block that ends at ``end``."""
    return DecodeError(f"need {n} bytes at offset {pos}, only {end - pos} left")


def trailing(n: int, what: str) -> DecodeError:
    """The error for ``n`` bytes left over after ``what``."""
    return DecodeError(f"{n} trailing bytes after {what}")


ODD_U16_LIST = "odd length in a list of 16-bit values"
"""Message of the DecodeError for a list of 16-bit values whose body has an odd length."""


def vector_end(data: bytes, pos: int, end: int, length_bytes: int) -> int:
    """Offset just past the vector whose ``length_bytes``-byte length prefix is at ``pos``.

    The vector's body starts at ``pos + length_bytes``. A prefix or body that runs past ``end``
    is a DecodeError with the message :meth:`WireReader.opaque` would raise.
    """
    start = pos + length_bytes
    if start > end:
        raise short_read(length_bytes, pos, end)
    if length_bytes == 2:
        n = (data[pos] << 8) | data[pos + 1]
    elif length_bytes == 1:
        n = data[pos]
    else:
        n = int.from_bytes(data[pos:start], "big")
    stop = start + n
    if stop > end:
        raise short_read(n, start, end)
    return stop


@lru_cache(maxsize=256)
def _u16_struct(count: int) -> struct.Struct:
    return struct.Struct(f">{count}H")


def u16_values(data: bytes, start: int, stop: int) -> tuple[int, ...]:
    """The 16-bit big-endian values in ``data[start:stop]`` (an odd length is a DecodeError)."""
    n = stop - start
    if n & 1:
        raise DecodeError(ODD_U16_LIST)
    return _u16_struct(n >> 1).unpack_from(data, start)


class WireReader:
    """Sequential big-endian reader over a bytes value.

    Length-prefixed vectors are read with :meth:`vector`, which returns a reader limited to the
    vector's body; callers check :meth:`at_end` (or call :meth:`expect_end`) so that a block is
    consumed exactly, as aioquic's ``pull_block`` and tlslite's length checks do.
    """

    __slots__ = ("_data", "_end", "_pos")

    def __init__(self, data: bytes, start: int = 0, end: int | None = None) -> None:
        self._data = data
        self._pos = start
        self._end = len(data) if end is None else end

    @property
    def remaining(self) -> int:
        """Bytes left to read."""
        return self._end - self._pos

    def at_end(self) -> bool:
        """True when every byte has been read."""
        return self._pos >= self._end

    def expect_end(self, what: str) -> None:
        """Raise DecodeError when bytes are left over after ``what``."""
        if self._pos != self._end:
            raise trailing(self._end - self._pos, what)

    def uint(self, n: int) -> int:
        """Read an unsigned big-endian integer of ``n`` bytes."""
        pos = self._pos
        if pos + n > self._end:
            raise short_read(n, pos, self._end)
        self._pos = pos + n
        data = self._data
        if n == 2:  # the common case (lengths, cipher suites, extension types)
            return (data[pos] << 8) | data[pos + 1]
        if n == 1:
            return data[pos]
        return int.from_bytes(data[pos : pos + n], "big")

    def u8(self) -> int:
        """Read one byte."""
        pos = self._pos
        if pos >= self._end:
            raise short_read(1, pos, self._end)
        self._pos = pos + 1
        return self._data[pos]

    def u16(self) -> int:
        """Read a 16-bit integer."""
        pos = self._pos
        if pos + 2 > self._end:
            raise short_read(2, pos, self._end)
        self._pos = pos + 2
        data = self._data
        return (data[pos] << 8) | data[pos + 1]

    def u24(self) -> int:
        """Read a 24-bit integer."""
        return self.uint(3)

    def raw(self, n: int) -> bytes:
        """Read ``n`` bytes."""
        pos = self._pos
        if pos + n > self._end:
            raise short_read(n, pos, self._end)
        self._pos = pos + n
        return self._data[pos : pos + n]

    def rest(self) -> bytes:
        """Read everything that is left."""
        return self.raw(self._end - self._pos)

    def _vector_bounds(self, length_bytes: int) -> tuple[int, int]:
        """Read a vector's length prefix and skip its body; return the body's bounds.

        A body that overruns the block is a DecodeError after the prefix has been read.
        """
        start = self._pos + length_bytes
        n = self.uint(length_bytes)
        stop = start + n
        if stop > self._end:
            raise short_read(n, start, self._end)
        self._pos = stop
        return start, stop

    def opaque(self, length_bytes: int) -> bytes:
        """Read a vector with a ``length_bytes``-byte length prefix and return its body."""
        start, stop = self._vector_bounds(length_bytes)
        return self._data[start:stop]

    def vector(self, length_bytes: int) -> WireReader:
        """Read a length-prefixed vector and return a reader limited to its body."""
        start, stop = self._vector_bounds(length_bytes)
        return WireReader(self._data, start, stop)

    def u16_list(self, length_bytes: int) -> tuple[int, ...]:
        """Read a vector of 16-bit integers; an odd body length is a DecodeError."""
        start, stop = self._vector_bounds(length_bytes)
        return u16_values(self._data, start, stop)

    def u8_list(self, length_bytes: int) -> tuple[int, ...]:
        """Read a vector of bytes as integers."""
        start, stop = self._vector_bounds(length_bytes)
        return tuple(self._data[start:stop])
