"""The command line: argument handling, file output and printing; the work is elsewhere.

``tlspcap analyze`` finds the captures (:func:`tlspcap.analyze.find_captures`), analyses them in
parallel (:mod:`tlspcap.batch`), filters the connections and renders the reports
(:mod:`tlspcap.report`). With ``--out``, whoever analyses a capture writes its reports
(:mod:`tlspcap.outbatch`: local processes, or a Dask cluster with ``--cluster``,
:mod:`tlspcap.cluster`) and this process writes the summaries.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, NoReturn, Protocol, TextIO

import typer

from tlspcap import __version__, batch
from tlspcap.analyze import find_captures
from tlspcap.capture import engine
from tlspcap.clihelp import PlainHelpCommand
from tlspcap.cluster import ClusterAddress, ClusterError, ClusterInfo, parse_address, run_on_cluster
from tlspcap.errors import TlspcapError
from tlspcap.outbatch import BriefStore, CaptureBrief, CaptureTask, finish_capture, run_local
from tlspcap.report.outdir import OutSpec, assign_names, complete_or_absent, remove_parts
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
    error_report,
    parse_server_filter,
    totals_csv,
    write_csv_header,
    write_summary_document,
)
from tlspcap.settings import OptionFile, build_settings

EXIT_OK = 0
"""No failed handshakes."""
EXIT_FAILURES = 1
"""At least one failed handshake was found."""
EXIT_ERROR = 2
"""Usage error, or a file could not be read."""
EXIT_INTERRUPTED = 130
"""Ctrl-C: the run was stopped, no summary written."""

__all__ = ["EXTENSIONS", "FORMATS", "app", "main", "parse_formats", "render", "write_report"]

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
        typer.echo(engine.describe())
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
    cluster: Annotated[
        str | None,
        typer.Option(
            "--cluster",
            metavar="ADDRESS",
            help="Run the batch on Dask: a scheduler's address (tcp://HOST:8786) or local[:N] "
            "(N worker processes started for the run). Needs --out; the captures and --out "
            "must be on a filesystem every worker mounts at the same path. "
            "pip install 'tlspcap[cluster]'.",
        ),
    ] = None,
) -> None:
    """Analyse captures: a summary, then why each failed TLS connection failed."""
    try:
        engine.selected()  # a bad TLSPCAP_ENGINE is the run's error, not every file's
        fmts = parse_formats(formats or [])
        if len(fmts) > 1 and out is None:
            raise ValueError("several formats need --out DIR")
        where = None if cluster is None else _cluster_address(cluster, out, jobs)
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
    if out is not None:
        _analyze_to_out(files, sizes, skipped, settings, filters, fmts, out, jobs, where, color)
    progress = Progress(sizes, sys.stderr, enabled=_isatty(sys.stderr))
    # Connection reports are spooled to disk as they are made (flat memory on any capture size)
    # and read back while rendering; the directory goes away with the run.
    with tempfile.TemporaryDirectory(prefix="tlspcap-") as spool_dir:
        settings = dataclasses.replace(settings, spool_dir=spool_dir)
        reports = batch.run(files, settings, jobs, sizes, progress.update, progress.advance)
        progress.finish()
        _report(reports, filters, skipped, fmts[0], color)


def _report(
    reports: Sequence[FileReport], filters: Filters, skipped: int, fmt: str, color: ColorMode
) -> NoReturn:
    """Print the report; exit with the status.

    A file that could not be read is named once: in the text report's summary, else on stderr.
    """
    if fmt != "text":
        for r in reports:
            if r.error:
                _err(f"tlspcap: {r.file}: {r.error}")
    shown, t = shown_and_totals(reports, filters, skipped)
    write_report(sys.stdout, fmt, shown, t, _colour(color))
    sys.stdout.flush()
    raise typer.Exit(exit_code(reports, t))


def _colour(color: ColorMode) -> bool:
    return color is ColorMode.always or (
        color is ColorMode.auto and _isatty(sys.stdout) and not os.environ.get("NO_COLOR")
    )


def _cluster_address(cluster: str, out: Path | None, jobs: int | None) -> ClusterAddress:
    if out is None:
        raise ValueError("--cluster needs --out DIR (the workers write the reports there)")
    if jobs is not None:
        raise ValueError("--jobs is for local runs (with --cluster local:N, N is the workers)")
    return parse_address(cluster)


def _analyze_to_out(
    files: Sequence[Path],
    sizes: Sequence[int],
    skipped: int,
    settings: batch.Settings,
    filters: Filters,
    fmts: Sequence[str],
    out: Path,
    jobs: int | None,
    where: ClusterAddress | None,
    color: ColorMode,
) -> NoReturn:
    """``--out``: each capture's reports written where it is analysed (local processes, or the
    Dask cluster ``where``), then the summaries from the briefs; exit with the status."""
    paths = [str(f) for f in files]
    stems, written = assign_names(paths, fmts)
    spec = OutSpec(os.path.abspath(out), tuple(fmts), filters, secrets.token_hex(6))
    opened = paths if where is None else [os.path.abspath(p) for p in paths]
    tasks = [
        CaptureTask(i, path, open_path, stem, size)
        for i, (path, open_path, stem, size) in enumerate(
            zip(paths, opened, stems, sizes, strict=True)
        )
    ]
    existed = out.is_dir()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _err(f"tlspcap: --out {out}: {exc.strerror or exc}")
        raise typer.Exit(EXIT_ERROR) from None
    progress = Progress(sizes, sys.stderr, enabled=_isatty(sys.stderr))
    with tempfile.TemporaryDirectory(prefix="tlspcap-") as tmp:
        store = BriefStore(tmp, paths)

        def done(i: int, brief: CaptureBrief) -> None:
            if store.add(i, brief):
                progress.update(i, brief)

        try:
            if where is None:
                local = dataclasses.replace(settings, spool_dir=tmp)
                run_local(tasks, local, spec, jobs, done, progress.advance)
            else:
                run_on_cluster(where, tasks, settings, spec, _announce, done)
        except ClusterError as exc:
            progress.finish()
            if not existed:
                with contextlib.suppress(OSError):
                    out.rmdir()  # made for this run, and nothing was written in it
            _err(f"tlspcap: {exc}")
            raise typer.Exit(EXIT_ERROR) from None
        except KeyboardInterrupt:
            progress.finish()
            remove_parts(out, spec.run_id)
            _err(
                f"tlspcap: interrupted after {progress.files_done} of {len(paths)} file(s); "
                f"the reports in {out} are complete ones, no summary was written"
            )
            raise typer.Exit(EXIT_INTERRUPTED) from None
        progress.finish()
        remove_parts(out, spec.run_id)  # left by a worker that died while writing
        for i in store.missing():  # none, unless a runner lost a task
            store.add(i, finish_capture(tasks[i], spec, error_report(paths[i], "not analysed")))
        if store.out_error is not None:
            _err(f"tlspcap: --out {out}: {store.out_error}")
            raise typer.Exit(EXIT_ERROR)
        t = store.totals(skipped)  # names the unreadable files in the summary printed below
        try:
            write_summaries(out, store, t, written, spec.run_id)
        except OSError as exc:
            _err(f"tlspcap: --out {out}: {exc.strerror or exc}")
            raise typer.Exit(EXIT_ERROR) from None
        colour = _colour(color)
        typer.echo(render("text", [], t, colour).rstrip("\n"), color=colour)
        count = sum(len(v) for v in written.values())
        typer.echo(f"wrote {count} report(s), summary.json, summary.csv, totals.csv to {out}")
        code = EXIT_ERROR if store.failures else EXIT_FAILURES if t.failed else EXIT_OK
        store.close()
    raise typer.Exit(code)


def _announce(info: ClusterInfo) -> None:
    dashboard = info.dashboard or "none (the scheduler has no bokeh)"
    _err(
        f"tlspcap: Dask scheduler {info.scheduler}: {info.workers} worker(s), "
        f"{info.threads} thread(s); dashboard {dashboard}"
    )


def write_summaries(
    out: Path, store: BriefStore, t: Totals, written: dict[str, list[str]], run: str
) -> None:
    """Write ``summary.json``, ``summary.csv`` and ``totals.csv`` into ``out`` from the briefs,
    each under a temporary name first (see :func:`tlspcap.report.outdir.complete_or_absent`)."""
    with complete_or_absent(out / "summary.json", run) as fh:
        write_summary_document(fh, store.file_entries(written), t, store.row_lines())
    with complete_or_absent(out / "summary.csv", run, newline="") as fh:
        write_csv_header(fh)
        fh.writelines(store.csv_text())
    with complete_or_absent(out / "totals.csv", run, newline="") as fh:
        fh.write(totals_csv(t))


def exit_code(reports: Sequence[FileReport], t: Totals) -> int:
    """2 when a file could not be read, else 1 when a reported handshake failed, else 0."""
    if any(r.error for r in reports):
        return EXIT_ERROR
    return EXIT_FAILURES if t.failed else EXIT_OK


class Finished(Protocol):
    """What :class:`Progress` reads of a finished file (a report, or a brief)."""

    @property
    def error(self) -> str | None:
        """Why the file could not be read, or None."""


class Progress:
    """``files, bytes, failures, ETA`` on stderr, rewritten in place; only when stderr is a
    terminal."""

    def __init__(self, sizes: Sequence[int], stream: TextIO, enabled: bool) -> None:
        """Track ``sizes`` (bytes per file) on ``stream``."""
        self.sizes = list(sizes)
        self.total = sum(self.sizes)
        self.stream = stream
        self.enabled = enabled
        self.files_done = 0
        self.failures = 0
        """Files that could not be read, so far."""
        self.bytes_done = 0
        self._partial = 0  # bytes read of the file being analysed in this process
        self.start = time.monotonic()
        self._shown = 0.0

    def update(self, index: int, report: Finished) -> None:
        """A file finished."""
        self.files_done += 1
        self.failures += report.error is not None
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
        if self.failures:
            line += f", {self.failures} unreadable"
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
