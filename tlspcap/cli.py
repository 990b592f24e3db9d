"""The command line: argument handling and rendering only; the work is in tlspcap.analyze."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from tlspcap.analyze import analyze_file, find_captures
from tlspcap.diagnosis.certcheck import TrustStore, load_pem_roots
from tlspcap.diagnosis.engine import Options, default_trust, diagnose_capture
from tlspcap.report import jsonfmt, text

EXIT_OK = 0
"""No failed handshakes."""
EXIT_FAILURES = 1
"""At least one failed handshake was found."""
EXIT_ERROR = 2
"""Usage error, or a file could not be read."""

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Explain why TLS handshakes in packet captures failed.",
)


class Format(StrEnum):
    """Output formats."""

    text = "text"
    json = "json"


@app.callback()
def _root() -> None:
    """tlspcap: offline TLS handshake failure analysis."""


@app.command()
def analyze(
    paths: Annotated[list[Path], typer.Argument(help="Capture files or directories.")],
    fmt: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.text,
    ca_bundle: Annotated[
        Path | None, typer.Option("--ca-bundle", help="Extra trust anchors (PEM).")
    ] = None,
    host: Annotated[
        str | None, typer.Option("--host", help="Name to check certificates against without SNI.")
    ] = None,
) -> None:
    """Analyse captures and print, per TLS connection, what happened and why it failed."""
    files, _skipped = find_captures(paths)
    if not files:
        typer.echo("tlspcap: no capture files found", err=True)
        raise typer.Exit(EXIT_ERROR)
    opts = Options(host=host)
    if ca_bundle is not None:
        try:
            extra = load_pem_roots(ca_bundle.read_bytes())
        except (OSError, ValueError) as exc:
            typer.echo(f"tlspcap: --ca-bundle {ca_bundle}: {exc}", err=True)
            raise typer.Exit(EXIT_ERROR) from None
        base = default_trust()
        opts.trust = TrustStore(extra + base.roots)
    results = [analyze_file(f) for f in files]
    verdicts = [diagnose_capture(r, opts) for r in results]
    if fmt is Format.json:
        typer.echo(jsonfmt.render(results, verdicts))
    else:
        typer.echo("\n\n".join(text.render_capture(r, v) for r, v in zip(results, verdicts)))
    for r in results:
        if r.error:
            typer.echo(f"tlspcap: {r.file}: {r.error}", err=True)
    if any(r.error for r in results):
        raise typer.Exit(EXIT_ERROR)
    failed = any(v.outcome == "failed" for vs in verdicts for v in vs)
    raise typer.Exit(EXIT_FAILURES if failed else EXIT_OK)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="tlspcap")
    sys.exit(0)
