"""Connection facts waiting for the end of a capture, kept on disk.

A verdict that read capture-wide facts may have to be computed again when the capture ends. Its
connection's :class:`~tlspcap.facts.model.ConnFacts` (with what the caller needs to decide
that) waits here: the first
:data:`IN_MEMORY` in a list, the rest appended to a file in a directory the caller owns
(pickles this process wrote a moment before; nothing read from a capture is ever unpickled as
such). Without a directory (tests, small programs) everything stays in the list. Memory is
bounded either way, and no cap changes which verdicts wait.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import tempfile
from collections.abc import Iterator
from typing import BinaryIO, Generic, TypeVar

from tlspcap.errors import OutputError

T = TypeVar("T")

_CHUNK = 1 << 20
IN_MEMORY = 1000
"""Facts kept in memory before the spool goes to disk (a few tens of kB each at most: the
certificates and the packet log dominate)."""


class FactsSpool(Generic[T]):
    """Append-only store of entries (a connection's facts and what goes with them), read back
    once in the order they were added."""

    def __init__(self, directory: str | None) -> None:
        """Spool into a new file in ``directory`` (created on the first :meth:`add`), or in
        memory when ``directory`` is None."""
        self._directory = directory
        self._path: str | None = None
        self._fh: BinaryIO | None = None
        self._memory: list[T] = []
        self._count = 0
        self._on_disk = 0

    def __len__(self) -> int:
        return self._count

    def add(self, entry: T) -> None:
        """Keep one entry until :meth:`drain`."""
        self._count += 1
        if self._directory is None or len(self._memory) < IN_MEMORY:
            self._memory.append(entry)
            return
        self._on_disk += 1
        try:
            if self._path is None:
                fd, self._path = tempfile.mkstemp(
                    prefix="facts-", suffix=".spool", dir=self._directory
                )
                self._fh = os.fdopen(fd, "wb", buffering=_CHUNK)
            assert self._fh is not None
            pickle.dump(entry, self._fh, protocol=pickle.HIGHEST_PROTOCOL)
        except OSError as exc:
            raise OutputError(f"cannot write the facts spool in {self._directory}: {exc}") from exc

    def drain(self) -> Iterator[T]:
        """The entries in the order they were added, each once; the spool is empty afterwards."""
        memory, self._memory = self._memory, []
        yield from memory
        if self._path is None:
            self._count = 0
            return
        path, fh = self._path, self._fh
        try:
            if fh is not None:
                fh.close()
        except OSError as exc:
            raise OutputError(f"cannot write the facts spool {path}: {exc}") from exc
        self._path = self._fh = None
        try:
            with open(path, "rb", buffering=_CHUNK) as fh:
                for _ in range(self._on_disk):
                    entry: T = pickle.load(fh)  # our own spool: see the module docstring
                    yield entry
        finally:
            self._count = self._on_disk = 0
            with contextlib.suppress(OSError):
                os.unlink(path)

    def discard(self) -> None:
        """Close and remove the file."""
        self._memory = []
        if self._path is not None:
            if self._fh is not None:
                with contextlib.suppress(OSError):
                    self._fh.close()
            with contextlib.suppress(OSError):
                os.unlink(self._path)
            self._path = self._fh = None
