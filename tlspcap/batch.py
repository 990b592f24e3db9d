"""Analysing many captures: one worker process per file, results back as plain data.

A worker runs :func:`analyze_one`: it reads the capture (through :func:`analyze_file`), diagnoses
every connection and turns the result into a :class:`~tlspcap.report.summary.FileReport` (the
JSON contract's dicts, plus the text blocks and the ladder events when the requested formats show
them), which pickles cheaply. A failure in one file, even a crash of its worker, becomes an error
entry for that file; the others go on.
"""

from __future__ import annotations

import functools
import gc
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from tlspcap.analyze import CaptureResult, analyze_file
from tlspcap.diagnosis.certcheck import TrustStore, load_pem_roots
from tlspcap.diagnosis.engine import Options, Verdict, default_trust, diagnose_capture
from tlspcap.keylog import KeyLog
from tlspcap.report import jsonfmt, text
from tlspcap.report.html import ladder_events
from tlspcap.report.summary import ConnectionReport, FileReport, error_report

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


TEXT_PART_FORMATS = frozenset(("text",))
"""Formats that render :attr:`ConnectionReport.text`."""
LADDER_PART_FORMATS = frozenset(("html", "markdown"))
"""Formats that render :attr:`ConnectionReport.ladder`."""


@functools.lru_cache(maxsize=4)
def _trust(ca_pem: bytes | None) -> TrustStore:
    """The trust store, built once per process."""
    if ca_pem is None:
        return default_trust()
    return TrustStore(load_pem_roots(ca_pem) + default_trust().roots)


def options_for(settings: Settings) -> Options:
    """Diagnosis options for ``settings``."""
    return Options(
        trust=_trust(settings.ca_pem),
        host=settings.host,
        server_ciphers=settings.server_ciphers,
        server_protocols=settings.server_protocols,
    )


def build_report(
    result: CaptureResult,
    verdicts: Sequence[Verdict],
    size: int = 0,
    formats: frozenset[str] | None = None,
) -> FileReport:
    """A capture's results as plain data for ``formats`` (None: every format)."""
    want_text = formats is None or not formats.isdisjoint(TEXT_PART_FORMATS)
    want_ladder = formats is None or not formats.isdisjoint(LADDER_PART_FORMATS)
    capture = jsonfmt.capture_to_dict(result, verdicts)
    connections = capture.pop("connections")
    reports = [
        ConnectionReport(
            data=data,
            text_block=text.connection_block(conn, v) if want_text else None,
            ladder_events=ladder_events(conn) if want_ladder else None,
        )
        for data, conn, v in zip(connections, result.connections, verdicts, strict=True)
    ]
    return FileReport(meta=capture, connections=reports, size=size)


def analyze_one(path: str, settings: Settings, size: int = 0) -> FileReport:
    """Analyse one capture file and render it to plain data (runs in a worker process)."""
    # Millions of objects are made and a growing set is kept: the cyclic collector would rescan
    # the kept ones again and again (a quarter of the CPU on 1 GB) and find next to nothing.
    collecting = gc.isenabled()
    gc.disable()
    try:
        result = analyze_file(Path(path), keylog=settings.keylog)
        verdicts = diagnose_capture(result, options_for(settings))
        return build_report(result, verdicts, size, settings.formats)
    except Exception as exc:  # a tlspcap bug: isolate it to this file
        return error_report(path, internal_error(exc), size)
    finally:
        if collecting:
            gc.enable()


def internal_error(exc: BaseException) -> str:
    """The error text of a file whose analysis hit a bug."""
    return (
        f"internal error ({type(exc).__name__}: {exc}); please report this as a bug "
        "with the capture attached"
    )


def default_jobs() -> int:
    """Worker processes when ``--jobs`` is not given: one per CPU."""
    return os.cpu_count() or 1


def run(
    files: Sequence[Path],
    settings: Settings,
    jobs: int | None = None,
    sizes: Sequence[int] | None = None,
    on_done: ProgressCallback | None = None,
) -> list[FileReport]:
    """Analyse ``files`` on ``jobs`` processes; reports come back in the order of ``files``.

    With one job, or one file, everything runs in this process (no pool to start).
    """
    jobs = default_jobs() if jobs is None else jobs
    sizes = list(sizes) if sizes is not None else [0] * len(files)
    out: list[FileReport | None] = [None] * len(files)

    def done(i: int, report: FileReport) -> None:
        out[i] = report
        if on_done is not None:
            on_done(i, report)

    if jobs <= 1 or len(files) <= 1:
        for i, path in enumerate(files):
            done(i, analyze_one(str(path), settings, sizes[i]))
    else:
        with ProcessPoolExecutor(max_workers=min(jobs, len(files))) as pool:
            futures: dict[Future[FileReport], int] = {
                pool.submit(analyze_one, str(path), settings, sizes[i]): i
                for i, path in enumerate(files)
            }
            for fut in as_completed(futures):
                i = futures[fut]
                try:
                    report = fut.result()
                except Exception as exc:  # the worker died or its result did not pickle
                    report = error_report(str(files[i]), internal_error(exc), sizes[i])
                done(i, report)
    return [
        r if r is not None else error_report(str(f), "not analysed")
        for r, f in zip(out, files, strict=True)
    ]
