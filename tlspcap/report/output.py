"""One report in a chosen format, the way ``tlspcap analyze`` writes it.

The command line and ``tlspcap serve`` both render through :func:`shown_and_totals` and
:func:`write_report`, so a report the service hands out is byte for byte the one the command
line prints for the same captures and options.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TextIO

from tlspcap.report.html import html_parts
from tlspcap.report.markdown import markdown_lines
from tlspcap.report.summary import (
    FileReport,
    Filters,
    Totals,
    apply_filters,
    text_lines,
    totals,
    write_json_document,
)

FORMATS = ("text", "json", "html", "markdown")
"""Report formats, as ``--format`` spells them."""
_ALIASES = {"md": "markdown", "txt": "text", "htm": "html"}
EXTENSIONS = {"text": "txt", "json": "json", "html": "html", "markdown": "md"}
"""File name extension of each format's per-capture report in ``--out``."""


def parse_formats(values: Sequence[str]) -> list[str]:
    """``--format`` values (repeated and/or comma lists) as format names, in order, once each."""
    fmts: list[str] = []
    for value in values:
        for part in value.split(","):
            name = part.strip().lower()
            if not name:
                continue
            name = _ALIASES.get(name, name)
            if name not in FORMATS:
                raise ValueError(f"--format {part.strip()!r}: choose from {', '.join(FORMATS)}")
            if name not in fmts:
                fmts.append(name)
    return fmts or ["text"]


def shown_and_totals(
    reports: Sequence[FileReport], filters: Filters, skipped: int = 0
) -> tuple[list[FileReport], Totals]:
    """The reports as ``filters`` leave them, and the totals a report over them opens with."""
    shown, hidden = apply_filters(reports, filters)
    return shown, totals(shown, skipped=skipped, hidden=hidden)


def render(fmt: str, reports: Sequence[FileReport], t: Totals, colour: bool = False) -> str:
    """One report in ``fmt`` for ``reports``, as a string (see :func:`write_report`)."""
    buf = io.StringIO()
    write_report(buf, fmt, reports, t, colour)
    return buf.getvalue()


def write_report(
    stream: TextIO, fmt: str, reports: Sequence[FileReport], t: Totals, colour: bool = False
) -> None:
    """Write one report in ``fmt`` for ``reports`` to ``stream``, ending with a newline.

    Every format is streamed connection by connection (bounded memory on any capture).
    """
    if fmt == "json":
        write_json_document(stream, reports)
    elif fmt == "html":
        stream.writelines(html_parts(reports, t))
    elif fmt == "markdown":
        stream.writelines(line + "\n" for line in markdown_lines(reports, t))
    else:
        stream.writelines(line + "\n" for line in text_lines(reports, t, colour))
