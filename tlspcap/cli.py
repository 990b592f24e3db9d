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
from tlspcap.errors import TlspcapError
from tlspcap.report import jsonfmt, text
from tlspcap.serverconf import expand_cipher_string, parse_nginx_conf, parse_protocols

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
    """Analyse captures and print, per TLS connection, what happened and why it failed."""
    try:
        opts = _options(ca_bundle, host, server_ciphers, server_protocols, nginx_conf)
    except (TlspcapError, OSError, ValueError) as exc:
        typer.echo(f"tlspcap: {exc}", err=True)
        raise typer.Exit(EXIT_ERROR) from None
    files, _skipped = find_captures(paths)
    if not files:
        typer.echo("tlspcap: no capture files found", err=True)
        raise typer.Exit(EXIT_ERROR)
    results = [analyze_file(f) for f in files]
    verdicts = [diagnose_capture(r, opts) for r in results]
    if fmt is Format.json:
        typer.echo(jsonfmt.render(results, verdicts))
    else:
        typer.echo(
            "\n\n".join(text.render_capture(r, v) for r, v in zip(results, verdicts, strict=True))
        )
    for r in results:
        if r.error:
            typer.echo(f"tlspcap: {r.file}: {r.error}", err=True)
    if any(r.error for r in results):
        raise typer.Exit(EXIT_ERROR)
    failed = any(v.outcome == "failed" for vs in verdicts for v in vs)
    raise typer.Exit(EXIT_FAILURES if failed else EXIT_OK)


def _options(
    ca_bundle: Path | None,
    host: str | None,
    server_ciphers: str | None,
    server_protocols: str | None,
    nginx_conf: Path | None,
) -> Options:
    """Turn the command line's server knowledge and trust options into diagnosis options."""
    opts = Options(host=host)
    if ca_bundle is not None:
        extra = load_pem_roots(ca_bundle.read_bytes())
        if not extra:
            raise TlspcapError(f"--ca-bundle {ca_bundle}: no PEM certificate in it")
        opts.trust = TrustStore(extra + default_trust().roots)
    if nginx_conf is not None:
        protocols, ciphers = parse_nginx_conf(nginx_conf.read_text(errors="replace"))
        opts.server_protocols, opts.server_ciphers = protocols, ciphers
    if server_ciphers is not None:
        opts.server_ciphers = expand_cipher_string(server_ciphers)
    if server_protocols is not None:
        opts.server_protocols = parse_protocols(server_protocols)
    return opts


def main() -> None:
    """Console-script entry point."""
    app(prog_name="tlspcap")
    sys.exit(0)
