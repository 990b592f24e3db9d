"""Connection reports kept on disk, so a capture of any size is reported in bounded memory.

A worker diagnoses each connection as it closes and appends its
:class:`~tlspcap.report.summary.ConnectionReport` to a :class:`ConnectionSpool` (a file in a
directory the caller owns and removes). :meth:`ConnectionSpool.close` returns a
:class:`SpooledConnections`: a read-only sequence of the reports in the order the connections
started, holding only two integers per connection in memory, which pickles as the file's path
plus those integers (so it crosses from a worker process to the parent cheaply).

Each entry is a pickle of ``(brief, the contract dict as JSON text, text block, ladder
events)``: the JSON text is what the JSON report prints (:meth:`SpooledConnections.json_texts`
hands it over without decoding it again; decoding JSON is cheaper than unpickling the same
dict), and the brief (outcome, cause, server, SNI) is all the totals read. The file
holds pickles this process (or its worker) wrote a moment before, in a private temporary
directory: nothing read from a capture is ever unpickled as such.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import tempfile
from array import array
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, overload

from tlspcap.errors import OutputError

if TYPE_CHECKING:
    from tlspcap.report.summary import Brief, ConnectionReport

_READ_CHUNK = 1 << 20


class SpooledConnections(Sequence["ConnectionReport"]):
    """Connection reports in a spool file, in start order (see the module docstring)."""

    def __init__(self, path: str, offsets: array[int], lengths: array[int]) -> None:
        """Reports at ``offsets`` (with ``lengths``) of the file at ``path``, in this order."""
        self.path = path
        self._offsets = offsets
        self._lengths = lengths

    def __len__(self) -> int:
        return len(self._offsets)

    @overload
    def __getitem__(self, i: int) -> ConnectionReport: ...
    @overload
    def __getitem__(self, i: slice) -> SpooledConnections: ...
    def __getitem__(self, i: int | slice) -> ConnectionReport | SpooledConnections:
        if isinstance(i, slice):
            return SpooledConnections(self.path, self._offsets[i], self._lengths[i])
        with open(self.path, "rb") as fh:
            fh.seek(self._offsets[i])
            return self._load(fh.read(self._lengths[i]))

    def __iter__(self) -> Iterator[ConnectionReport]:
        for blob in self._blobs():
            yield self._load(blob)

    def json_texts(self) -> Iterator[str]:
        """Each report's contract dict as JSON text (one line), without decoding it."""
        for blob in self._blobs():
            text: str = pickle.loads(blob)[1]
            yield text

    def briefs(self) -> Iterator[Brief]:
        """Each report's (outcome, cause, server, SNI), without decoding its JSON."""
        for blob in self._blobs():
            entry: Brief = pickle.loads(blob)[0]
            yield entry

    def _blobs(self) -> Iterator[bytes]:
        if not self._offsets:
            return
        with open(self.path, "rb", buffering=_READ_CHUNK) as fh:
            at = 0
            for offset, length in zip(self._offsets, self._lengths, strict=True):
                if offset != at:  # connections that closed in start order lie in sequence
                    fh.seek(offset)
                yield fh.read(length)
                at = offset + length

    def filter(self, keep: Callable[[ConnectionReport], bool]) -> SpooledConnections:
        """The reports ``keep`` accepts (read once each; the file is shared, not copied)."""
        offsets, lengths = array("q"), array("q")
        for report, offset, length in zip(self, self._offsets, self._lengths, strict=True):
            if keep(report):
                offsets.append(offset)
                lengths.append(length)
        return SpooledConnections(self.path, offsets, lengths)

    @staticmethod
    def _load(blob: bytes) -> ConnectionReport:
        from tlspcap.report.summary import ConnectionReport

        _, text, text_block, ladder = pickle.loads(blob)  # our own spool: see the module docstring
        return ConnectionReport(json.loads(text), text_block, ladder)


class ConnectionSpool:
    """Appends connection reports to a new file in ``directory`` (see the module docstring)."""

    def __init__(self, directory: str) -> None:
        """Create the spool file; raises :class:`OutputError` when it cannot be created."""
        try:
            fd, self.path = tempfile.mkstemp(prefix="connections-", suffix=".spool", dir=directory)
            self._fh = os.fdopen(fd, "wb", buffering=_READ_CHUNK)
        except OSError as exc:
            raise OutputError(f"cannot create a report spool in {directory}: {exc}") from exc
        self._end = 0
        self._entries: list[array[int]] = [array("q"), array("q"), array("q")]
        """Start index, offset and length of each report, in the order they were added."""

    def add(self, index: int, report: ConnectionReport) -> None:
        """Append the report of the connection that started ``index``-th."""
        from tlspcap.report.summary import brief

        text = json.dumps(report.data, ensure_ascii=False)
        entry = (brief(report.data), text, report.text_block, report.ladder_events)
        blob = pickle.dumps(entry, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            self._fh.write(blob)
        except OSError as exc:
            raise OutputError(f"cannot write the report spool {self.path}: {exc}") from exc
        indexes, offsets, lengths = self._entries
        indexes.append(index)
        offsets.append(self._end)
        lengths.append(len(blob))
        self._end += len(blob)

    def close(self) -> SpooledConnections:
        """Finish writing; the reports, sorted by the order their connections started."""
        try:
            self._fh.close()
        except OSError as exc:
            raise OutputError(f"cannot write the report spool {self.path}: {exc}") from exc
        indexes, offsets, lengths = self._entries
        in_order, ordered_lengths = array("q"), array("q")
        for k in _start_order(indexes):
            in_order.append(offsets[k])
            ordered_lengths.append(lengths[k])
        return SpooledConnections(self.path, in_order, ordered_lengths)

    def discard(self) -> None:
        """Close and remove the file (the analysis failed)."""
        with contextlib.suppress(OSError):
            self._fh.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)


def _start_order(indexes: array[int]) -> Iterator[int]:
    """Positions of ``indexes`` in increasing index order, in 8 bytes per index: each entry is
    placed at its index (sorting would make two Python ints per entry, 70 MB for a million).
    Repeated indexes (not expected) keep the order they were added in."""
    if not indexes or min(indexes) < 0:
        yield from sorted(range(len(indexes)), key=indexes.__getitem__)
        return
    slot = array("q", [-1]) * (max(indexes) + 1)
    for k, index in enumerate(indexes):
        if slot[index] >= 0:  # repeated: sort after all
            yield from sorted(range(len(indexes)), key=indexes.__getitem__)
            return
        slot[index] = k
    yield from (k for k in slot if k >= 0)
