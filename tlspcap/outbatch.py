"""Batches with ``--out``: each capture's reports are written where it is analysed.

The client (the ``tlspcap analyze`` process) names every report in input order
(:func:`tlspcap.report.outdir.assign_names`) and hands out one :class:`CaptureTask` per capture.
Whoever runs the task, a local worker process (:func:`run_local`) or a Dask worker
(:mod:`tlspcap.cluster`), calls :func:`render_capture`: it analyses the capture, writes its
reports into ``--out`` and sends back only a :class:`CaptureBrief`: the capture's error and
counts, and per connection shown its brief (outcome, cause, server, SNI: what the totals count)
and its row of ``summary.csv`` and ``summary.json`` (client, server, SNI, version, cipher,
outcome, cause, who gave up and must act, the first alert and its frame), already rendered by
the summary writers' own functions and compressed.

The client keeps the briefs on disk in a :class:`BriefStore`, by input index, whatever order
they arrive in, and writes the summaries from it in input order, copying the rendered rows:
its memory holds a few integers per file and nothing per connection, and its work per
connection is counting the totals. A local ``--jobs`` run and a cluster run go through the
same functions, so their reports and summaries are the same bytes.
"""

from __future__ import annotations

import codecs
import functools
import itertools
import json
import os
import shutil
import tempfile
import zlib
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import BinaryIO

from tlspcap.analyze import ReadProgress
from tlspcap.batch import Settings, analyze_one, internal_error, map_items
from tlspcap.diagnosis.model import FAILED
from tlspcap.errors import OutputError
from tlspcap.report.contract import Json
from tlspcap.report.outdir import OutSpec, write_capture_reports
from tlspcap.report.summary import (
    Brief,
    FileReport,
    Row,
    Totals,
    apply_filters,
    brief,
    connection_row,
    count_file,
    error_report,
    error_row,
    file_entry,
    row_json,
    write_csv_rows,
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
    failed: int
    """Of those, the ones whose handshake failed."""
    hidden: int
    """Connections the filters left out."""
    briefs: bytes = b""
    """Compressed JSON lines: each shown connection's :data:`~tlspcap.report.summary.Brief`,
    in start order."""
    csv: bytes = b""
    """Compressed: its lines of ``summary.csv`` (one per connection, or the error row)."""
    rows: bytes = b""
    """Compressed: the same rows as ``summary.json`` lists them, one JSON text per line."""
    out_error: str | None = None
    """Why its reports could not be written, or None."""


class _Packer:
    """A text stream compressed as it is written."""

    def __init__(self) -> None:
        self._packer = zlib.compressobj(1)
        self._parts: list[bytes] = []

    def write(self, text: str) -> int:
        self._parts.append(self._packer.compress(text.encode()))
        return len(text)

    def packed(self) -> bytes:
        self._parts.append(self._packer.flush())
        return b"".join(self._parts)


def unpack_text(blob: bytes) -> Iterator[str]:
    """The text packed in ``blob``, a piece at a time."""
    unpacker = zlib.decompressobj()
    decoder = codecs.getincrementaldecoder("utf-8")()
    for start in range(0, len(blob), _CHUNK):
        text = decoder.decode(unpacker.decompress(blob[start : start + _CHUNK]))
        if text:
            yield text
    text = decoder.decode(unpacker.flush(), final=True)
    if text:
        yield text


def unpack_lines(blob: bytes) -> Iterator[str]:
    """The lines (without their newline) of the text packed in ``blob``."""
    rest = ""
    for text in unpack_text(blob):
        lines = (rest + text).split("\n")
        rest = lines.pop()
        yield from lines
    if rest:
        yield rest


def brief_capture(report: FileReport, hidden: int) -> CaptureBrief:
    """The brief of a (filtered) capture report: its briefs and summary rows, rendered."""
    briefs, csv_text, rows = _Packer(), _Packer(), _Packer()
    failed = 0

    def each_row() -> Iterator[Row]:
        nonlocal failed
        if report.error:
            row = error_row(report.file, report.error)
            rows.write(row_json(row) + "\n")
            yield row
            return
        for c in report.connections:
            b = brief(c.data)
            failed += b[0] == FAILED
            briefs.write(json.dumps(b, ensure_ascii=False) + "\n")
            row = connection_row(report.file, c.data)
            rows.write(row_json(row) + "\n")
            yield row

    write_csv_rows(csv_text, each_row())
    return CaptureBrief(
        report.file,
        report.error,
        len(report.connections),
        failed,
        hidden,
        briefs.packed(),
        csv_text.packed(),
        rows.packed(),
    )


def render_capture(
    task: CaptureTask,
    settings: Settings,
    spec: OutSpec,
    progress: ReadProgress | None = None,
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
        return brief_capture(shown, hidden)
    except (OSError, OutputError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return CaptureBrief(task.path, report.error, 0, 0, hidden, out_error=why)


def crashed_capture(task: CaptureTask, spec: OutSpec, exc: BaseException) -> CaptureBrief:
    """The brief of a capture whose analysis never returned (its worker died, on every try):
    an error, with its error reports written, as for any unreadable file."""
    return finish_capture(task, spec, error_report(task.path, internal_error(exc), task.size))


def _render_item(
    settings: Settings,
    spec: OutSpec,
    task: CaptureTask,
    progress: ReadProgress | None,
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

    :meth:`add` appends a brief's packed parts as they came and keeps a few integers for it;
    the other methods read them back in input order. A capture's first brief is kept, a later
    one for the same index ignored, so each capture is counted once whatever the retries.
    """

    def __init__(self, directory: str, files: Sequence[str]) -> None:
        """A store for the captures ``files`` (the paths as given, in input order)."""
        fd, self.path = tempfile.mkstemp(prefix="briefs-", suffix=".spool", dir=directory)
        self._fh = os.fdopen(fd, "wb", buffering=_CHUNK)
        self.files = files

        def column(value: int) -> array[int]:
            return array("q", itertools.repeat(value, len(files)))

        self._offsets = column(0)
        self._lengths = [column(0), column(0), column(0)]  # briefs, csv, rows
        self._connections = column(-1)
        """Connections shown per capture; -1 until its brief has come."""
        self._failed = column(0)
        self._errors: dict[int, str] = {}
        self._end = 0
        self._reader: BinaryIO | None = None
        self.hidden = 0
        """Connections the filters left out, over every capture so far."""
        self.failures = 0
        """Captures that could not be read, so far."""
        self.out_error: str | None = None
        """The first reason a capture's reports could not be written, or None."""

    def add(self, index: int, brief: CaptureBrief) -> bool:
        """Keep ``brief`` as the capture at ``index``'s; False when it already had one."""
        if self._connections[index] >= 0:
            return False
        self._offsets[index] = self._end
        for lengths, part in zip(self._lengths, (brief.briefs, brief.csv, brief.rows), strict=True):
            self._fh.write(part)
            lengths[index] = len(part)
            self._end += len(part)
        self._connections[index] = brief.connections
        self._failed[index] = brief.failed
        if brief.error is not None:
            self._errors[index] = brief.error
            self.failures += 1
        if brief.out_error is not None and self.out_error is None:
            self.out_error = brief.out_error
        self.hidden += brief.hidden
        return True

    def missing(self) -> list[int]:
        """Indexes of the captures without a brief."""
        return [i for i, n in enumerate(self._connections) if n < 0]

    def errors(self) -> Iterator[tuple[str, str]]:
        """(file, error) of each capture that could not be read, in input order."""
        for i in sorted(self._errors):
            yield self.files[i], self._errors[i]

    def totals(self, skipped: int = 0) -> Totals:
        """The totals over every capture, counted in input order."""
        self._fh.flush()
        t = Totals(skipped=skipped, hidden=self.hidden)
        for i, file in enumerate(self.files):
            count_file(t, file, self._errors.get(i), self._briefs(i))
        return t

    def file_entries(self, written: dict[str, list[str]]) -> Iterator[Json]:
        """Each capture's entry of ``summary.json``'s ``files``, in input order."""
        for i, file in enumerate(self.files):
            connections = max(self._connections[i], 0)
            error = self._errors.get(i)
            yield file_entry(file, error, connections, self._failed[i], written.get(file, []))

    def csv_text(self) -> Iterator[str]:
        """The rows of ``summary.csv`` after its header, in input order, a piece at a time."""
        self._fh.flush()
        for i in range(len(self.files)):
            yield from unpack_text(self._part(i, 1))

    def row_lines(self) -> Iterator[str]:
        """The rows of ``summary.json``, one JSON text each, in input order."""
        self._fh.flush()
        for i in range(len(self.files)):
            yield from unpack_lines(self._part(i, 2))

    def close(self) -> None:
        """Close the file (it is removed with the caller's directory)."""
        self._fh.close()
        if self._reader is not None:
            self._reader.close()

    def _briefs(self, index: int) -> Iterator[Brief]:
        for line in unpack_lines(self._part(index, 0)):
            outcome, cause, server, sni = json.loads(line)
            yield outcome, cause, server, sni

    def _part(self, index: int, which: int) -> bytes:
        length = self._lengths[which][index]
        if not length:
            return b""
        offset = self._offsets[index] + sum(self._lengths[k][index] for k in range(which))
        if self._reader is None:
            self._fh.flush()
            self._reader = open(self.path, "rb")  # noqa: SIM115  # closed by close()
        self._reader.seek(offset)
        return self._reader.read(length)
