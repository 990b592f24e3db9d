"""The command line: argument handling, file output and printing; the work is elsewhere.

``tlspcap analyze`` finds the captures (:func:`tlspcap.analyze.find_captures`), analyses them in
parallel (:mod:`tlspcap.batch`), filters the connections and renders the reports
(:mod:`tlspcap.report`).
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, TextIO

import typer

from tlspcap import batch
from tlspcap.analyze import find_captures
from tlspcap.diagnosis.certcheck import load_pem_roots
from tlspcap.errors import TlspcapError
from tlspcap.keylog import parse_keylog
from tlspcap.report.html import html_parts
from tlspcap.report.markdown import markdown_lines
from tlspcap.report.summary import (
    FileReport,
    Filters,
    Totals,
    apply_filters,
    parse_server_filter,
    text_lines,
    totals,
    totals_csv,
    write_json_document,
    write_summary_csv,
    write_summary_json,
)
from tlspcap.serverconf import expand_cipher_string, parse_nginx_conf, parse_protocols

EXIT_OK = 0
"""No failed handshakes."""
EXIT_FAILURES = 1
"""At least one failed handshake was found."""
EXIT_ERROR = 2
"""Usage error, or a file could not be read."""

FORMATS = ("text", "json", "html", "markdown")
"""Report formats, as ``--format`` spells them."""
_ALIASES = {"md": "markdown", "txt": "text", "htm": "html"}
EXTENSIONS = {"text": "txt", "json": "json", "html": "html", "markdown": "md"}
"""File name extension of each format's per-capture report in ``--out``."""
RESERVED_NAMES = frozenset(("summary.json", "summary.csv", "totals.csv"))

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Explain why TLS handshakes in packet captures failed.",
)


class ColorMode(StrEnum):
    """When the text report is coloured."""

    auto = "auto"
    always = "always"
    never = "never"


@app.callback()
def _root() -> None:
    """tlspcap: offline TLS handshake failure analysis."""


_EPILOG = (
    "Exit status: 0 no failed handshake among the connections reported; 1 at least one failed "
    "handshake; 2 usage error or an input that could not be read (the other files are still "
    "analysed and reported)."
)


@app.command(epilog=_EPILOG)
def analyze(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Capture files or directories (walked for .pcap, .pcapng, .cap and their .gz; "
            "other files there are skipped and counted)."
        ),
    ],
    formats: Annotated[
        list[str] | None,
        typer.Option(
            "--format",
            "-f",
            help="Report format: text, json, html or markdown (md). Repeat the option or give a "
            "comma list (--format html,json) to write several; several formats need --out. "
            "Default: text.",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Directory to write one report per capture and format into, plus summary.json, "
            "summary.csv (one row per connection) and totals.csv; stdout then gets the summary.",
        ),
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option("--jobs", "-j", min=1, help="Files analysed in parallel (default: CPUs)."),
    ] = None,
    only_failures: Annotated[
        bool, typer.Option("--only-failures", help="Report only connections that failed.")
    ] = False,
    server: Annotated[
        list[str] | None,
        typer.Option(
            "--server",
            help="Only connections to HOST[:PORT] (HOST: the server address or the SNI; "
            "':PORT' alone; IPv6 in brackets before a port). Repeatable.",
        ),
    ] = None,
    sni: Annotated[
        list[str] | None,
        typer.Option(
            "--sni", help="Only connections whose SNI matches NAME ('*.example.com'). Repeatable."
        ),
    ] = None,
    keylog: Annotated[
        Path | None,
        typer.Option("--keylog", help="SSLKEYLOGFILE to decrypt TLS 1.3 handshakes with."),
    ] = None,
    color: Annotated[
        ColorMode,
        typer.Option(
            "--color", help="Colour the text report: auto (on a terminal), always, never."
        ),
    ] = ColorMode.auto,
    ca_bundle: Annotated[
        Path | None, typer.Option("--ca-bundle", help="Extra trust anchors (PEM).")
    ] = None,
    host: Annotated[
        str | None,
        typer.Option("--host", help="Name to check certificates against when there is no SNI."),
    ] = None,
    server_ciphers: Annotated[
        str | None,
        typer.Option(
            "--server-ciphers", help="The server's OpenSSL cipher string (e.g. 'HIGH:!aNULL')."
        ),
    ] = None,
    server_protocols: Annotated[
        str | None,
        typer.Option("--server-protocols", help="Versions the server accepts: TLSv1.2,TLSv1.3."),
    ] = None,
    nginx_conf: Annotated[
        Path | None,
        typer.Option("--nginx-conf", help="nginx config to read ssl_protocols/ssl_ciphers from."),
    ] = None,
) -> None:
    """Analyse captures: a summary, then why each failed TLS connection failed."""
    try:
        fmts = parse_formats(formats or [])
        if len(fmts) > 1 and out is None:
            raise ValueError("several formats need --out DIR")
        filters = Filters(
            only_failures=only_failures,
            servers=tuple(parse_server_filter(s) for s in server or []),
            snis=tuple(sni or []),
        )
        settings = _settings(ca_bundle, host, server_ciphers, server_protocols, nginx_conf, keylog)
        # build only the report parts the requested formats render (text block, ladder)
        settings = dataclasses.replace(settings, formats=frozenset(fmts))
    except (TlspcapError, OSError, ValueError) as exc:
        _err(f"tlspcap: {exc}")
        raise typer.Exit(EXIT_ERROR) from None
    files, skipped = find_captures(paths)
    if not files:
        _err("tlspcap: no capture files found")
        raise typer.Exit(EXIT_ERROR)
    sizes = [_size(f) for f in files]
    progress = Progress(sizes, sys.stderr, enabled=_isatty(sys.stderr))
    # Connection reports are spooled to disk as they are made (flat memory on any capture size)
    # and read back while rendering; the directory goes away with the run.
    with tempfile.TemporaryDirectory(prefix="tlspcap-") as spool_dir:
        settings = dataclasses.replace(settings, spool_dir=spool_dir)
        reports = batch.run(files, settings, jobs, sizes, progress.update, progress.advance)
        progress.finish()
        _report(reports, filters, skipped, fmts, out, color)


def _report(
    reports: Sequence[FileReport],
    filters: Filters,
    skipped: int,
    fmts: Sequence[str],
    out: Path | None,
    color: ColorMode,
) -> None:
    """Print errors, the report or the summary; write ``--out``; exit with the status."""
    for r in reports:
        if r.error:
            _err(f"tlspcap: {r.file}: {r.error}")
    shown, hidden = apply_filters(reports, filters)
    t = totals(shown, skipped=skipped, hidden=hidden)
    colour = color is ColorMode.always or (
        color is ColorMode.auto and _isatty(sys.stdout) and not os.environ.get("NO_COLOR")
    )
    if out is None:
        write_report(sys.stdout, fmts[0], shown, t, colour)
        sys.stdout.flush()
    else:
        try:
            written = write_reports(out, fmts, shown, t)
        except OSError as exc:
            _err(f"tlspcap: --out {out}: {exc.strerror or exc}")
            raise typer.Exit(EXIT_ERROR) from None
        typer.echo(render("text", [], t, colour).rstrip("\n"), color=colour)
        count = sum(len(v) for v in written.values())
        typer.echo(f"wrote {count} report(s), summary.json, summary.csv, totals.csv to {out}")
    raise typer.Exit(exit_code(reports, t))


def exit_code(reports: Sequence[FileReport], t: Totals) -> int:
    """2 when a file could not be read, else 1 when a reported handshake failed, else 0."""
    if any(r.error for r in reports):
        return EXIT_ERROR
    return EXIT_FAILURES if t.failed else EXIT_OK


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


def write_reports(
    out: Path, fmts: Sequence[str], reports: Sequence[FileReport], t: Totals
) -> dict[str, list[str]]:
    """Write one report per capture and format, and the summaries; return the names written."""
    out.mkdir(parents=True, exist_ok=True)
    used: set[str] = set(RESERVED_NAMES)
    written: dict[str, list[str]] = {}
    for r in reports:
        stem = _unique(_safe_name(Path(r.file).name), used)
        one = totals([r])
        names = written.setdefault(r.file, [])
        for fmt in fmts:
            name = f"{stem}.{EXTENSIONS[fmt]}"
            with (out / name).open("w", encoding="utf-8") as fh:
                write_report(fh, fmt, [r], one)
            names.append(name)
    with (out / "summary.json").open("w", encoding="utf-8") as fh:
        write_summary_json(fh, reports, t, written)
    with (out / "summary.csv").open("w", encoding="utf-8", newline="") as fh:
        write_summary_csv(fh, reports)
    (out / "totals.csv").write_text(totals_csv(t), "utf-8", newline="")
    return written


def _safe_name(name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")
    return safe[:150] or "capture"


def _unique(stem: str, used: set[str]) -> str:
    candidate, n = stem, 1
    while any(f"{candidate}.{ext}" in used for ext in EXTENSIONS.values()) or candidate in used:
        n += 1
        candidate = f"{stem}-{n}"
    used.add(candidate)
    used.update(f"{candidate}.{ext}" for ext in EXTENSIONS.values())
    return candidate


class Progress:
    """``files, bytes, ETA`` on stderr, rewritten in place; only when stderr is a terminal."""

    def __init__(self, sizes: Sequence[int], stream: TextIO, enabled: bool) -> None:
        """Track ``sizes`` (bytes per file) on ``stream``."""
        self.sizes = list(sizes)
        self.total = sum(self.sizes)
        self.stream = stream
        self.enabled = enabled
        self.files_done = 0
        self.bytes_done = 0
        self._partial = 0  # bytes read of the file being analysed in this process
        self.start = time.monotonic()
        self._shown = 0.0

    def update(self, index: int, report: FileReport) -> None:
        """A file finished."""
        self.files_done += 1
        self.bytes_done += self.sizes[index]
        self._partial = 0
        self._show()

    def advance(self, index: int, bytes_read: int) -> None:
        """The file at ``index`` (analysed in this process) has been read up to ``bytes_read``."""
        self._partial = min(bytes_read, self.sizes[index])
        now = time.monotonic()
        if now - self._shown >= 0.5:  # a terminal needs no more than two updates a second
            self._show()

    def _show(self) -> None:
        if not self.enabled:
            return
        self._shown = time.monotonic()
        elapsed = self._shown - self.start
        done = self.bytes_done + self._partial
        eta = ""
        if 0 < done < self.total and elapsed > 0:
            eta = f", ETA {(self.total - done) * elapsed / done:.0f}s"
        line = f"tlspcap: {self.files_done}/{len(self.sizes)} files, {_mb(done)}/{_mb(self.total)}"
        self.stream.write("\r\x1b[K" + line + eta)
        self.stream.flush()

    def finish(self) -> None:
        """Clear the progress line."""
        if self.enabled and self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _err(message: str) -> None:
    typer.echo(message, err=True)


def _settings(
    ca_bundle: Path | None,
    host: str | None,
    server_ciphers: str | None,
    server_protocols: str | None,
    nginx_conf: Path | None,
    keylog: Path | None,
) -> batch.Settings:
    """Read the option files and turn the server knowledge into worker settings."""
    ca_pem = None
    if ca_bundle is not None:
        ca_pem = ca_bundle.read_bytes()
        if not load_pem_roots(ca_pem):
            raise TlspcapError(f"--ca-bundle {ca_bundle}: no PEM certificate in it")
    protocols: frozenset[int] | None = None
    ciphers: frozenset[int] | None = None
    if nginx_conf is not None:
        protocols, ciphers = parse_nginx_conf(nginx_conf.read_text(errors="replace"))
    if server_ciphers is not None:
        ciphers = expand_cipher_string(server_ciphers)
    if server_protocols is not None:
        protocols = parse_protocols(server_protocols)
    kl = None
    if keylog is not None:
        kl = parse_keylog(keylog.read_text("utf-8", errors="replace"))
        if not len(kl):
            raise TlspcapError(
                f"--keylog {keylog}: no TLS secret in it ({kl.skipped} lines skipped)"
            )
    return batch.Settings(
        ca_pem=ca_pem,
        host=host,
        server_ciphers=ciphers,
        server_protocols=protocols,
        keylog=kl,
    )


def main() -> None:
    """Console-script entry point."""
    app(prog_name="tlspcap")
    sys.exit(0)
