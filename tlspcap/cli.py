"""The command line: argument handling, file output and printing; the work is elsewhere.

``tlspcap analyze`` finds the captures (:func:`tlspcap.analyze.find_captures`), analyses them in
parallel (:mod:`tlspcap.batch`), filters the connections and renders the reports
(:mod:`tlspcap.report`).
"""

from __future__ import annotations

import dataclasses
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

from tlspcap import __version__, batch
from tlspcap.analyze import find_captures
from tlspcap.clihelp import PlainHelpCommand
from tlspcap.errors import TlspcapError
from tlspcap.report.output import (
    EXTENSIONS,
    FORMATS,
    parse_formats,
    render,
    shown_and_totals,
    write_report,
)
from tlspcap.report.summary import (
    FileReport,
    Filters,
    Totals,
    parse_server_filter,
    totals,
    totals_csv,
    write_summary_csv,
    write_summary_json,
)
from tlspcap.settings import OptionFile, build_settings

EXIT_OK = 0
"""No failed handshakes."""
EXIT_FAILURES = 1
"""At least one failed handshake was found."""
EXIT_ERROR = 2
"""Usage error, or a file could not be read."""

__all__ = ["EXTENSIONS", "FORMATS", "app", "main", "parse_formats", "render", "write_report"]

RESERVED_NAMES = frozenset(("summary.json", "summary.csv", "totals.csv"))

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Explain why TLS handshakes in packet captures failed.",
)


class ColorMode(StrEnum):
    """When the text report is coloured."""

    auto = "auto"
    always = "always"
    never = "never"


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"tlspcap {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the version and exit.",
            callback=_show_version,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """tlspcap: offline TLS handshake failure analysis."""


_EPILOG = (
    "Exit status: 0 no failed handshake among the connections reported; 1 at least one failed "
    "handshake; 2 usage error or an input that could not be read (the other files are still "
    "analysed and reported)."
)


@app.command(epilog=_EPILOG, cls=PlainHelpCommand)
def analyze(
    paths: Annotated[
        list[Path],
        typer.Argument(
            metavar="PATH...",
            help="Capture files or directories (walked for .pcap, .pcapng, .cap and their .gz; "
            "other files there are skipped and counted).",
        ),
    ],
    formats: Annotated[
        list[str] | None,
        typer.Option(
            "--format",
            "-f",
            metavar="FORMAT",
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
            metavar="DIR",
            help="Directory to write one report per capture and format into, plus summary.json, "
            "summary.csv (one row per connection) and totals.csv; stdout then gets the summary.",
        ),
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs", "-j", min=1, metavar="N", help="Files analysed in parallel (default: CPUs)."
        ),
    ] = None,
    only_failures: Annotated[
        bool, typer.Option("--only-failures", help="Report only connections that failed.")
    ] = False,
    server: Annotated[
        list[str] | None,
        typer.Option(
            "--server",
            metavar="HOST[:PORT]",
            help="Only connections to HOST[:PORT] (HOST: the server address or the SNI; "
            "':PORT' alone; IPv6 in brackets before a port). Repeatable.",
        ),
    ] = None,
    sni: Annotated[
        list[str] | None,
        typer.Option(
            "--sni",
            metavar="NAME",
            help="Only connections whose SNI matches NAME ('*.example.com'). Repeatable.",
        ),
    ] = None,
    keylog: Annotated[
        Path | None,
        typer.Option(
            "--keylog", metavar="FILE", help="SSLKEYLOGFILE to decrypt TLS 1.3 handshakes with."
        ),
    ] = None,
    color: Annotated[
        ColorMode,
        typer.Option(
            "--color",
            metavar="WHEN",
            help="Colour the text report: auto (on a terminal), always, never.",
        ),
    ] = ColorMode.auto,
    ca_bundle: Annotated[
        Path | None, typer.Option("--ca-bundle", metavar="FILE", help="Extra trust anchors (PEM).")
    ] = None,
    host: Annotated[
        str | None,
        typer.Option(
            "--host",
            metavar="NAME",
            help="Name to check certificates against when there is no SNI.",
        ),
    ] = None,
    server_ciphers: Annotated[
        str | None,
        typer.Option(
            "--server-ciphers",
            metavar="STRING",
            help="The server's OpenSSL cipher string (e.g. 'HIGH:!aNULL').",
        ),
    ] = None,
    server_protocols: Annotated[
        str | None,
        typer.Option(
            "--server-protocols",
            metavar="LIST",
            help="Versions the server accepts: TLSv1.2,TLSv1.3.",
        ),
    ] = None,
    nginx_conf: Annotated[
        Path | None,
        typer.Option(
            "--nginx-conf",
            metavar="FILE",
            help="nginx config to read ssl_protocols/ssl_ciphers from.",
        ),
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
    """Print the report or the summary; write ``--out``; exit with the status.

    A file that could not be read is named once: in the text summary when stdout shows one
    (the text report, or the summary after ``--out``), else on stderr.
    """
    if out is None and fmts[0] != "text":
        for r in reports:
            if r.error:
                _err(f"tlspcap: {r.file}: {r.error}")
    shown, t = shown_and_totals(reports, filters, skipped)
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

    def read(option: str, path: Path | None) -> OptionFile | None:
        return None if path is None else OptionFile(f"{option} {path}", path.read_bytes())

    return build_settings(
        ca_bundle=read("--ca-bundle", ca_bundle),
        host=host,
        server_ciphers=server_ciphers,
        server_protocols=server_protocols,
        nginx_conf=read("--nginx-conf", nginx_conf),
        keylog=read("--keylog", keylog),
    )


@app.command(cls=PlainHelpCommand)
def serve(
    bind: Annotated[
        str,
        typer.Option(
            "--bind",
            metavar="HOST:PORT",
            help="Address to listen on. A loopback address (127.0.0.1, [::1]) needs no token; "
            "any other (0.0.0.0 included) needs --token-file.",
        ),
    ] = "127.0.0.1:8080",
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            metavar="DIR",
            help="Directory of the job database and the uploads "
            "(default: ~/.local/share/tlspcap/serve).",
        ),
    ] = None,
    max_upload: Annotated[
        str,
        typer.Option("--max-upload", metavar="SIZE", help="Largest upload, e.g. 500MB or 4GiB."),
    ] = "4GiB",
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            metavar="N",
            help="Analyses run at once, each in its own process "
            "(default: CPUs); more wait in the queue.",
        ),
    ] = None,
    uploads: Annotated[
        int,
        typer.Option("--uploads", metavar="N", help="Uploads received at once; more wait."),
    ] = 4,
    retention: Annotated[
        float,
        typer.Option(
            "--retention", metavar="DAYS", help="Delete analyses older than this many days."
        ),
    ] = 30.0,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            metavar="FILE",
            help="File holding the access token: API clients send it as a Bearer token, "
            "browsers log in with it.",
        ),
    ] = None,
    worker_memory: Annotated[
        str,
        typer.Option(
            "--worker-memory", metavar="SIZE", help="Memory (address space) of an analysis."
        ),
    ] = "2GiB",
    worker_cpu: Annotated[
        int,
        typer.Option("--worker-cpu", metavar="SECONDS", help="CPU time of an analysis."),
    ] = 1800,
) -> None:
    """Serve a page and an API where captures are uploaded and analysed (Ctrl-C stops it)."""
    from tlspcap.serve.config import make_config

    try:
        config = make_config(
            bind=bind,
            data=data,
            max_upload=max_upload,
            workers=workers,
            uploads=uploads,
            retention_days=retention,
            token_file=token_file,
            worker_memory=worker_memory,
            worker_cpu_seconds=worker_cpu,
        )
    except TlspcapError as exc:
        _err(f"tlspcap serve: {exc}")
        raise typer.Exit(EXIT_ERROR) from None
    from tlspcap.serve.server import run

    try:
        run(config)
    except OSError as exc:
        _err(f"tlspcap serve: cannot listen on {bind}: {exc.strerror or exc}")
        raise typer.Exit(EXIT_ERROR) from None


def main() -> None:
    """Console-script entry point."""
    app(prog_name="tlspcap")
    sys.exit(0)
