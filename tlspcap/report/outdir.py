"""The ``--out`` directory: one report per capture and format, under names unique in the batch.

Names are decided once, in input order, before any capture is analysed (:func:`assign_names`),
so a run on a cluster, where captures finish in any order on any machine, names every report
as a local run does. :func:`write_capture_reports` is the one function below the command line
that writes files: whoever analysed a capture (a local worker process, a Dask worker) writes its
reports straight into the directory with it.

Every file goes to a temporary name first (:func:`part_path`: hidden, and marked with the run's
id) and is renamed once complete, so a run that is interrupted, or a worker that dies in the
middle of a file, never leaves a partial report under a report's name. :func:`remove_parts`
sweeps what such a run or worker left behind.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from tlspcap.report.output import EXTENSIONS, write_report
from tlspcap.report.summary import FileReport, Filters, totals

RESERVED_NAMES = frozenset(("summary.json", "summary.csv", "totals.csv"))
"""The batch's own files in ``--out``: no capture's report takes these names."""
PART_SUFFIX = ".part"


@dataclass(frozen=True, slots=True)
class OutSpec:
    """What the per-capture reports of a batch look like and where they go (picklable: it is
    sent to every worker)."""

    path: str
    """The ``--out`` directory (absolute in a cluster run: workers do not share the client's
    working directory)."""
    formats: tuple[str, ...]
    """Formats to write, in ``--format`` order."""
    filters: Filters = field(default_factory=Filters)
    """Which connections the reports show."""
    run_id: str = "run"
    """Marks this run's temporary files (see :func:`part_path`)."""


def safe_name(name: str) -> str:
    """A capture's file name made safe as a report name (no path, no leading dot)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")
    return safe[:150] or "capture"


def unique_stem(stem: str, used: set[str]) -> str:
    """``stem``, or ``stem-2``, ``stem-3``…: the first whose report names are not in ``used``
    (which then gets them)."""
    candidate, n = stem, 1
    while any(f"{candidate}.{ext}" in used for ext in EXTENSIONS.values()) or candidate in used:
        n += 1
        candidate = f"{stem}-{n}"
    used.add(candidate)
    used.update(f"{candidate}.{ext}" for ext in EXTENSIONS.values())
    return candidate


def report_names(stem: str, formats: Iterable[str]) -> list[str]:
    """The report names of a capture whose stem is ``stem``, one per format."""
    return [f"{stem}.{EXTENSIONS[fmt]}" for fmt in formats]


def assign_names(
    files: Iterable[str], formats: Sequence[str]
) -> tuple[list[str], dict[str, list[str]]]:
    """Each file's report stem, in input order, and the report names written for each file
    name (``summary.json`` lists them; a file given twice lists both sets)."""
    used: set[str] = set(RESERVED_NAMES)
    stems: list[str] = []
    written: dict[str, list[str]] = {}
    for file in files:
        stem = unique_stem(safe_name(Path(file).name), used)
        stems.append(stem)
        written.setdefault(file, []).extend(report_names(stem, formats))
    return stems, written


def part_path(path: Path, run_id: str) -> Path:
    """The temporary name ``path`` is written under before it is renamed into place."""
    return path.with_name(f".{path.name}.{run_id}{PART_SUFFIX}")


@contextlib.contextmanager
def complete_or_absent(path: Path, run_id: str, newline: str | None = None) -> Iterator[TextIO]:
    """Open a temporary file for ``path``; rename it to ``path`` once the block has written it
    all, remove it if the block fails (``path`` then stays as it was)."""
    part = part_path(path, run_id)
    try:
        with part.open("w", encoding="utf-8", newline=newline) as fh:
            yield fh
        os.replace(part, path)
    except BaseException:
        with contextlib.suppress(OSError):
            part.unlink()
        raise


def write_capture_reports(spec: OutSpec, stem: str, report: FileReport) -> None:
    """Write one capture's reports (one per format of ``spec``) into ``spec.path``.

    ``report`` is already filtered; its own totals head each report. Raises :class:`OSError`
    when a report cannot be written.
    """
    one = totals([report])
    for fmt, name in zip(spec.formats, report_names(stem, spec.formats), strict=True):
        with complete_or_absent(Path(spec.path) / name, spec.run_id) as fh:
            write_report(fh, fmt, [report], one)


def remove_parts(directory: Path, run_id: str) -> int:
    """Remove the temporary files run ``run_id`` left in ``directory``; return how many."""
    removed = 0
    for part in directory.glob(f".*.{run_id}{PART_SUFFIX}"):
        with contextlib.suppress(OSError):
            part.unlink()
            removed += 1
    return removed
