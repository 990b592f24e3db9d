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
import io
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

from tlspcap import batch
from tlspcap.analyze import find_captures
from tlspcap.cluster import ClusterAddress, ClusterError, ClusterInfo, parse_address, run_on_cluster
from tlspcap.diagnosis.certcheck import load_pem_roots
from tlspcap.errors import TlspcapError
from tlspcap.keylog import parse_keylog
from tlspcap.outbatch import BriefStore, CaptureBrief, CaptureTask, finish_capture, run_local
from tlspcap.report.outdir import (
    OutSpec,
    assign_names,
    complete_or_absent,
    remove_parts,
    write_report,
)
from tlspcap.report.summary import (
    FileReport,
    Filters,
    Totals,
    apply_filters,
    error_report,
    parse_server_filter,
    totals,
    totals_csv,
    write_csv_header,
    write_summary_document,
)
from tlspcap.serverconf import expand_cipher_string, parse_nginx_conf, parse_protocols

EXIT_OK = 0
"""No failed handshakes."""
EXIT_FAILURES = 1
"""At least one failed handshake was found."""
EXIT_ERROR = 2
"""Usage error, or a file could not be read."""
EXIT_INTERRUPTED = 130
"""Ctrl-C: the run was stopped, no summary written."""

FORMATS = ("text", "json", "html", "markdown")
"""Report formats, as ``--format`` spells them."""
_ALIASES = {"md": "markdown", "txt": "text", "htm": "html"}

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
    cluster: Annotated[
        str | None,
        typer.Option(
            "--cluster",
            help="Run the batch on Dask: a scheduler's address (tcp://HOST:8786) or local[:N] "
            "(N worker processes started for the run). Needs --out; the captures and --out "
            "must be on a filesystem every worker mounts at the same path. "
            "pip install 'tlspcap[cluster]'.",
        ),
    ] = None,
) -> None:
    """Analyse captures: a summary, then why each failed TLS connection failed."""
    try:
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
    """Print errors and the report; exit with the status."""
    for r in reports:
        if r.error:
            _err(f"tlspcap: {r.file}: {r.error}")
    shown, hidden = apply_filters(reports, filters)
    t = totals(shown, skipped=skipped, hidden=hidden)
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
        for file, error in store.errors():
            _err(f"tlspcap: {file}: {error}")
        t = store.totals(skipped)
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
