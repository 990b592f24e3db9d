"""Batches with ``--out``: each capture's reports are written where it is analysed.

The client (the ``tlspcap analyze`` process) names every report in input order
(:func:`tlspcap.report.outdir.assign_names`) and hands out one :class:`CaptureTask` per capture.
Whoever runs the task, a local worker process (:func:`run_local`) or a Dask worker
(:mod:`tlspcap.cluster`), calls :func:`render_capture`: it analyses the capture, writes its
reports into ``--out`` and sends back only a :class:`CaptureBrief`: the file's error, and per
connection shown the few fields ``summary.json``, ``summary.csv`` and ``totals.csv`` read
(:func:`~tlspcap.report.summary.summary_view`: outcome, cause, client, server, SNI, version,
cipher, who gave up and must act, the first alert and its frame), compressed.

The client keeps the briefs on disk in a :class:`BriefStore`, by input index, whatever order
they arrive in, and reads them back in input order as
:class:`~tlspcap.report.summary.FileReport` objects for the same summary writers a local run
uses. Its memory holds a few integers per file and nothing per connection. A local ``--jobs``
run and a cluster run go through the same functions, so their reports and summaries are the
same bytes.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import shutil
import tempfile
import zlib
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import overload

from tlspcap.batch import Settings, analyze_one, internal_error, map_items
from tlspcap.errors import OutputError
from tlspcap.report.facts import Json
from tlspcap.report.outdir import OutSpec, write_capture_reports
from tlspcap.report.summary import (
    ConnectionReport,
    FileReport,
    apply_filters,
    error_report,
    summary_view,
)

_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class CaptureTask:
    """One capture of a batch, as the client hands it out."""

    index: int
    """Position of the capture in the input."""
    path: str
    """The path as the user gave it: the name reports show."""
    open_path: str
    """The path to open (absolute in a cluster run)."""
    stem: str
    """Its reports' name without the extension (unique in the batch)."""
    size: int = 0


@dataclass(frozen=True, slots=True)
class CaptureBrief:
    """What comes back of one capture once its reports are written."""

    file: str
    error: str | None
    """Why the capture could not be read, or None."""
    connections: int
    """Connections its reports show (after the filters)."""
    hidden: int
    """Connections the filters left out."""
    views: bytes
    """zlib-compressed JSON lines: each shown connection's summary view, in start order."""
    out_error: str | None = None
    """Why its reports could not be written, or None."""


def encode_views(connections: Iterable[ConnectionReport]) -> bytes:
    """The summary views of ``connections`` as :attr:`CaptureBrief.views`."""
    packer = zlib.compressobj(1)
    parts = [
        packer.compress(json.dumps(summary_view(c.data), ensure_ascii=False).encode() + b"\n")
        for c in connections
    ]
    parts.append(packer.flush())
    return b"".join(parts)


def decode_views(blob: bytes) -> Iterator[Json]:
    """The summary views in a :attr:`CaptureBrief.views` blob, one at a time."""
    unpacker = zlib.decompressobj()
    rest = b""
    for start in range(0, len(blob), _CHUNK):
        lines = (rest + unpacker.decompress(blob[start : start + _CHUNK])).split(b"\n")
        rest = lines.pop()
        for line in lines:
            view: Json = json.loads(line)
            yield view
    rest += unpacker.flush()
    if rest:
        last: Json = json.loads(rest)
        yield last


def render_capture(
    task: CaptureTask,
    settings: Settings,
    spec: OutSpec,
    progress: Callable[[int], None] | None = None,
) -> CaptureBrief:
    """Analyse one capture, write its reports into ``spec.path``, return its brief.

    Runs in a worker. The connection reports are spooled in a private directory under
    ``settings.spool_dir`` (the system's temporary directory when None), removed on return.
    """
    try:
        spool_dir = tempfile.mkdtemp(prefix="spool-", dir=settings.spool_dir)
    except OSError as exc:
        error = f"cannot create a report spool: {exc.strerror or exc}"
        return finish_capture(task, spec, error_report(task.path, error, task.size))
    try:
        worker_settings = replace(settings, spool_dir=spool_dir)
        report = analyze_one(task.open_path, worker_settings, task.size, progress, task.path)
        return finish_capture(task, spec, report)
    finally:
        shutil.rmtree(spool_dir, ignore_errors=True)


def finish_capture(task: CaptureTask, spec: OutSpec, report: FileReport) -> CaptureBrief:
    """Filter ``report``, write its reports, and brief it."""
    (shown,), hidden = apply_filters([report], spec.filters)
    try:
        write_capture_reports(spec, task.stem, shown)
        views = encode_views(shown.connections)
    except (OSError, OutputError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return CaptureBrief(task.path, report.error, 0, hidden, b"", out_error=why)
    return CaptureBrief(task.path, shown.error, len(shown.connections), hidden, views)


def crashed_capture(task: CaptureTask, spec: OutSpec, exc: BaseException) -> CaptureBrief:
    """The brief of a capture whose analysis never returned (its worker died, on every try):
    an error, with its error reports written, as for any unreadable file."""
    return finish_capture(task, spec, error_report(task.path, internal_error(exc), task.size))


def _render_item(
    settings: Settings,
    spec: OutSpec,
    task: CaptureTask,
    progress: Callable[[int], None] | None,
) -> CaptureBrief:
    return render_capture(task, settings, spec, progress)


def run_local(
    tasks: Sequence[CaptureTask],
    settings: Settings,
    spec: OutSpec,
    jobs: int | None,
    on_done: Callable[[int, CaptureBrief], None],
    on_bytes: Callable[[int, int], None] | None = None,
) -> None:
    """Run ``tasks`` on ``jobs`` local processes (:func:`tlspcap.batch.map_items`)."""

    def crash(i: int, exc: Exception) -> CaptureBrief:
        return crashed_capture(tasks[i], spec, exc)

    task = functools.partial(_render_item, settings, spec)
    map_items(task, tasks, jobs, on_done, crash, on_bytes)


class BriefStore:
    """The briefs of a batch, by input index, in a file the store creates in ``directory``
    (which the caller owns and removes).

    :meth:`add` appends a brief's views as they came and keeps four integers for it;
    :meth:`reports` reads them back in input order. A capture's first brief is kept, a later
    one for the same index ignored, so each capture is counted once whatever the retries.
    """

    def __init__(self, directory: str, files: Sequence[str]) -> None:
        """A store for the captures ``files`` (the paths as given, in input order)."""
        fd, self.path = tempfile.mkstemp(prefix="briefs-", suffix=".spool", dir=directory)
        self._fh = os.fdopen(fd, "wb", buffering=_CHUNK)
        self.files = files
        self._offsets = array("q", itertools.repeat(0, len(files)))
        self._lengths = array("q", itertools.repeat(0, len(files)))
        self._counts = array("q", itertools.repeat(-1, len(files)))
        """Connections shown per capture; -1 until its brief has come."""
        self._errors: dict[int, str] = {}
        self._end = 0
        self.hidden = 0
        """Connections the filters left out, over every capture so far."""
        self.failures = 0
        """Captures that could not be read, so far."""
        self.out_error: str | None = None
        """The first reason a capture's reports could not be written, or None."""

    def add(self, index: int, brief: CaptureBrief) -> bool:
        """Keep ``brief`` as the capture at ``index``'s; False when it already had one."""
        if self._counts[index] >= 0:
            return False
        self._fh.write(brief.views)
        self._offsets[index] = self._end
        self._lengths[index] = len(brief.views)
        self._end += len(brief.views)
        self._counts[index] = brief.connections
        if brief.error is not None:
            self._errors[index] = brief.error
            self.failures += 1
        if brief.out_error is not None and self.out_error is None:
            self.out_error = brief.out_error
        self.hidden += brief.hidden
        return True

    def missing(self) -> list[int]:
        """Indexes of the captures without a brief."""
        return [i for i, n in enumerate(self._counts) if n < 0]

    def reports(self) -> Sequence[FileReport]:
        """Every capture as a :class:`FileReport` for the summaries, in input order, each read
        from the file when it is asked for. Their connections hold summary views only (see
        :func:`~tlspcap.report.summary.summary_view`): enough for the summaries and totals, not
        for a report."""
        self._fh.flush()
        return _StoredReports(self)

    def close(self) -> None:
        """Close the file (it is removed with the caller's directory)."""
        self._fh.close()

    def report_at(self, index: int) -> FileReport:
        """The capture at ``index`` as :meth:`reports` gives it."""
        meta: Json = {"file": self.files[index], "error": self._errors.get(index)}
        count = max(self._counts[index], 0)
        views = _StoredViews(self.path, self._offsets[index], self._lengths[index], count)
        return FileReport(meta=meta, connections=views)


class _StoredReports(Sequence[FileReport]):
    def __init__(self, store: BriefStore) -> None:
        self._store = store

    def __len__(self) -> int:
        return len(self._store.files)

    @overload
    def __getitem__(self, i: int) -> FileReport: ...
    @overload
    def __getitem__(self, i: slice) -> list[FileReport]: ...
    def __getitem__(self, i: int | slice) -> FileReport | list[FileReport]:
        if isinstance(i, slice):
            return [self._store.report_at(j) for j in range(len(self))[i]]
        return self._store.report_at(range(len(self))[i])

    def __iter__(self) -> Iterator[FileReport]:
        for i in range(len(self)):
            yield self._store.report_at(i)


class _StoredViews(Sequence[ConnectionReport]):
    """One capture's summary views in a :class:`BriefStore` file, decoded as they are read."""

    def __init__(self, path: str, offset: int, length: int, count: int) -> None:
        self._path, self._offset, self._length, self._count = path, offset, length, count

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, i: int) -> ConnectionReport: ...
    @overload
    def __getitem__(self, i: slice) -> list[ConnectionReport]: ...
    def __getitem__(self, i: int | slice) -> ConnectionReport | list[ConnectionReport]:
        if isinstance(i, slice):
            return list(self)[i]
        j = range(self._count)[i]
        return next(itertools.islice(self, j, None))

    def __iter__(self) -> Iterator[ConnectionReport]:
        if not self._count:
            return
        with open(self._path, "rb") as fh:
            fh.seek(self._offset)
            blob = fh.read(self._length)
        for view in decode_views(blob):
            yield ConnectionReport(view)
