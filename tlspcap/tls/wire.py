"""A bounds-checked reader over wire bytes: every short read or leftover byte is a DecodeError."""

from __future__ import annotations

import struct

from tlspcap.errors import DecodeError


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
            raise DecodeError(f"{self._end - self._pos} trailing bytes after {what}")

    def _take(self, n: int) -> int:
        pos = self._pos
        if pos + n > self._end:
            raise DecodeError(f"need {n} bytes at offset {pos}, only {self._end - pos} left")
        self._pos = pos + n
        return pos

    def uint(self, n: int) -> int:
        """Read an unsigned big-endian integer of ``n`` bytes."""
        pos = self._take(n)
        data = self._data
        if n == 2:  # the common case (lengths, cipher suites, extension types)
            return (data[pos] << 8) | data[pos + 1]
        return int.from_bytes(data[pos : pos + n], "big")

    def u8(self) -> int:
        """Read one byte."""
        pos = self._take(1)
        return self._data[pos]

    def u16(self) -> int:
        """Read a 16-bit integer."""
        return self.uint(2)

    def u24(self) -> int:
        """Read a 24-bit integer."""
        return self.uint(3)

    def raw(self, n: int) -> bytes:
        """Read ``n`` bytes."""
        pos = self._take(n)
        return self._data[pos : pos + n]

    def rest(self) -> bytes:
        """Read everything that is left."""
        return self.raw(self.remaining)

    def opaque(self, length_bytes: int) -> bytes:
        """Read a vector with a ``length_bytes``-byte length prefix and return its body."""
        return self.raw(self.uint(length_bytes))

    def vector(self, length_bytes: int) -> WireReader:
        """Read a length-prefixed vector and return a reader limited to its body."""
        n = self.uint(length_bytes)
        pos = self._take(n)
        return WireReader(self._data, pos, pos + n)

    def u16_list(self, length_bytes: int) -> tuple[int, ...]:
        """Read a vector of 16-bit integers; an odd body length is a DecodeError."""
        body = self.opaque(length_bytes)
        if len(body) % 2:
            raise DecodeError("odd length in a list of 16-bit values")
        return struct.unpack(f">{len(body) // 2}H", body)

    def u8_list(self, length_bytes: int) -> tuple[int, ...]:
        """Read a vector of bytes as integers."""
        return tuple(self.opaque(length_bytes))
