"""Analysing many captures: one worker process per file, results back as plain data.

A worker runs :func:`analyze_one`: it reads the capture (through :func:`analyze_file`), diagnoses
each connection as it closes (:class:`~tlspcap.diagnosis.engine.StreamingDiagnosis`) and turns
it into a :class:`~tlspcap.report.summary.ConnectionReport` (the JSON contract's dict, plus the
text block and the ladder events when the requested formats show them). With
:attr:`Settings.spool_dir` the reports go to a spool file there
(:mod:`tlspcap.report.spool`) and the connection is dropped, so memory stays flat whatever the
capture's size; without it they are kept in a list. The
:class:`~tlspcap.report.summary.FileReport` pickles cheaply either way. A failure in one file,
even a crash of its worker, becomes an error entry for that file; the others go on.
"""

from __future__ import annotations

import functools
import gc
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from tlspcap.analyze import CaptureResult, ReadProgress, analyze_file
from tlspcap.diagnosis.certcheck import TrustStore, load_pem_roots
from tlspcap.diagnosis.engine import Options, StreamingDiagnosis, Verdict, default_trust
from tlspcap.errors import OutputError
from tlspcap.facts.model import ConnFacts
from tlspcap.keylog import KeyLog
from tlspcap.report import jsonfmt, text
from tlspcap.report.html import ladder_events
from tlspcap.report.spool import ConnectionSpool
from tlspcap.report.summary import ConnectionReport, FileReport, error_report

Item = TypeVar("Item")
Result = TypeVar("Result")

ProgressCallback = Callable[[int, FileReport], None]
"""Called in the parent with (index of the file in the input, its report) as each finishes."""


@dataclass(frozen=True, slots=True)
class Settings:
    """What every worker needs besides the file: the diagnosis options, in picklable form."""

    ca_pem: bytes | None = None
    """Extra trust anchors (PEM), added to the default roots."""
    host: str | None = None
    server_ciphers: frozenset[int] | None = None
    server_protocols: frozenset[int] | None = None
    keylog: KeyLog | None = None
    """Parsed ``--keylog`` secrets."""
    formats: frozenset[str] | None = None
    """Report formats the run will render (``cli.FORMATS`` names); None: every format. Parts
    only some formats show (the text block, the ladder events) are built only when needed."""
    spool_dir: str | None = None
    """Directory (owned and removed by the caller) to spool connection reports into; None:
    keep them in memory."""


TEXT_PART_FORMATS = frozenset(("text",))
"""Formats that render :attr:`ConnectionReport.text`."""
LADDER_PART_FORMATS = frozenset(("html", "markdown"))
"""Formats that render :attr:`ConnectionReport.ladder`."""


@functools.lru_cache(maxsize=4)
def _trust(ca_pem: bytes | None) -> TrustStore:
    """The trust store, built once per process."""
    if ca_pem is None:
        return default_trust()
    public = default_trust()
    return TrustStore(load_pem_roots(ca_pem) + public.roots, public=public.public)


def options_for(settings: Settings) -> Options:
    """Diagnosis options for ``settings``."""
    return Options(
        trust=_trust(settings.ca_pem),
        host=settings.host,
        server_ciphers=settings.server_ciphers,
        server_protocols=settings.server_protocols,
    )


def connection_report(
    conn: ConnFacts, verdict: Verdict, formats: frozenset[str] | None = None
) -> ConnectionReport:
    """One connection's results as plain data for ``formats`` (None: every format)."""
    want_text = formats is None or not formats.isdisjoint(TEXT_PART_FORMATS)
    want_ladder = formats is None or not formats.isdisjoint(LADDER_PART_FORMATS)
    return ConnectionReport(
        data=jsonfmt.connection_to_dict(conn, verdict),
        text_block=text.connection_block(conn, verdict) if want_text else None,
        ladder_events=ladder_events(conn) if want_ladder else None,
    )


def build_report(
    result: CaptureResult,
    verdicts: Sequence[Verdict],
    size: int = 0,
    formats: frozenset[str] | None = None,
) -> FileReport:
    """A capture's results (connections kept in ``result``) as plain data for ``formats``."""
    reports = [
        connection_report(conn, v, formats)
        for conn, v in zip(result.connections, verdicts, strict=True)
    ]
    return FileReport(meta=jsonfmt.capture_meta(result), connections=reports, size=size)


def analyze_one(
    path: str,
    settings: Settings,
    size: int = 0,
    progress: ReadProgress | None = None,
    name: str | None = None,
) -> FileReport:
    """Analyse one capture file and render it to plain data (runs in a worker process).

    ``progress`` is called now and then with the bytes and the packets of the file read so far.
    ``name`` is the file's name in the report when it is not ``path`` (see :func:`analyze_file`).
    """
    shown = path if name is None else name
    try:
        spool = ConnectionSpool(settings.spool_dir) if settings.spool_dir is not None else None
    except OutputError as exc:
        return error_report(shown, str(exc), size)
    # Millions of short-lived objects are made: the cyclic collector would run again and again
    # over the survivors and find next to nothing (reference counting frees the rest).
    collecting = gc.isenabled()
    gc.disable()
    kept: list[tuple[int, ConnectionReport]] = []

    def emit(conn: ConnFacts, verdict: Verdict) -> None:
        report = connection_report(conn, verdict, settings.formats)
        if spool is not None:
            spool.add(conn.index, report)
        else:
            kept.append((conn.index, report))

    diagnosis = StreamingDiagnosis(options_for(settings), emit, settings.spool_dir)
    try:
        result = analyze_file(Path(path), settings.keylog, diagnosis.add, progress, name)
        diagnosis.finish(result.last_ts)
        connections: Sequence[ConnectionReport]
        if spool is not None:
            connections = spool.close()
        else:
            connections = [report for _, report in sorted(kept, key=lambda e: e[0])]
        return FileReport(meta=jsonfmt.capture_meta(result), connections=connections, size=size)
    except OutputError as exc:  # e.g. the disk filled up under the spool
        diagnosis.discard()
        if spool is not None:
            spool.discard()
        return error_report(shown, str(exc), size)
    except Exception as exc:  # a tlspcap bug: isolate it to this file
        diagnosis.discard()
        if spool is not None:
            spool.discard()
        return error_report(shown, internal_error(exc), size)
    finally:
        if collecting:
            gc.enable()


def internal_error(exc: BaseException) -> str:
    """The error text of a file whose analysis hit a bug."""
    return (
        f"internal error ({type(exc).__name__}: {exc}); please report this as a bug "
        "with the capture attached"
    )


def _bytes_only(on_bytes: Callable[[int, int], None], index: int) -> ReadProgress:
    """A progress callback that tells ``on_bytes`` (index, bytes read)."""

    def progress(bytes_read: int, packets: int) -> None:
        on_bytes(index, bytes_read)

    return progress


def default_jobs() -> int:
    """Worker processes when ``--jobs`` is not given: one per CPU."""
    return os.cpu_count() or 1


def map_items(
    task: Callable[[Item, ReadProgress | None], Result],
    items: Sequence[Item],
    jobs: int | None,
    on_done: Callable[[int, Result], None],
    on_crash: Callable[[int, Exception], Result],
    on_bytes: Callable[[int, int], None] | None = None,
) -> None:
    """Run ``task(item, progress)`` for each of ``items`` on ``jobs`` processes.

    ``task`` must pickle (a module-level function, or a partial of one). Each result goes to
    ``on_done`` with the item's index, in the order they finish; a task whose worker process
    died (or whose result did not pickle) gets ``on_crash(index, exception)``'s result instead.
    With one job, or one item, everything runs in this process (no pool to start) and
    ``on_bytes`` hears (index, bytes read) through the task's ``progress``. Ctrl-C cancels the
    tasks not yet started.
    """
    jobs = default_jobs() if jobs is None else jobs
    if jobs <= 1 or len(items) <= 1:
        for i, item in enumerate(items):
            progress = None if on_bytes is None else _bytes_only(on_bytes, i)
            on_done(i, task(item, progress))
        return
    pool = ProcessPoolExecutor(max_workers=min(jobs, len(items)))
    try:
        futures: dict[Future[Result], int] = {
            pool.submit(task, item, None): i for i, item in enumerate(items)
        }
        for fut in as_completed(futures):
            i = futures[fut]
            try:
                result = fut.result()
            except Exception as exc:  # the worker died or its result did not pickle
                result = on_crash(i, exc)
            on_done(i, result)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def _analyze_item(
    settings: Settings, item: tuple[str, int], progress: ReadProgress | None
) -> FileReport:
    """:func:`analyze_one` on a (path, size) item of :func:`run`."""
    return analyze_one(item[0], settings, item[1], progress)


def run(
    files: Sequence[Path],
    settings: Settings,
    jobs: int | None = None,
    sizes: Sequence[int] | None = None,
    on_done: ProgressCallback | None = None,
    on_bytes: Callable[[int, int], None] | None = None,
) -> list[FileReport]:
    """Analyse ``files`` on ``jobs`` processes; reports come back in the order of ``files``.

    With one job, or one file, everything runs in this process (no pool to start), and
    ``on_bytes`` hears (index of the file, bytes read) as each file is read.
    """
    sizes = list(sizes) if sizes is not None else [0] * len(files)
    out: list[FileReport | None] = [None] * len(files)

    def done(i: int, report: FileReport) -> None:
        out[i] = report
        if on_done is not None:
            on_done(i, report)

    def crash(i: int, exc: Exception) -> FileReport:
        return error_report(str(files[i]), internal_error(exc), sizes[i])

    items = [(str(path), size) for path, size in zip(files, sizes, strict=True)]
    map_items(functools.partial(_analyze_item, settings), items, jobs, done, crash, on_bytes)
    return [
        r if r is not None else error_report(str(f), "not analysed")
        for r, f in zip(out, files, strict=True)
    ]
