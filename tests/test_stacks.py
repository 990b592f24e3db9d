"""The likely-client table names the stacks whose ClientHellos the fixtures hold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tlspcap.analyze import analyze_file
from tlspcap.capture.model import format_endpoint
from tlspcap.stacks import likely_stack

REAL = Path(__file__).resolve().parents[1] / "fixtures" / "real"
# MANIFEST client_stack prefix -> the name likely_stack must give
EXPECTED = {
    "curl": "curl",
    "Python": "Python ssl",
    "GnuTLS": "GnuTLS client",
    "OpenSSL": "OpenSSL 3.x client",
    "OpenJDK": "Java (OpenJDK JSSE)",
}
# Clients run with their stack's default configuration: these must be named. Clients given
# restricted cipher or version lists have other fingerprints and may stay unnamed.
DEFAULT_CONFIG = {
    "tls13_ok_python.pcap",
    "tls13_ok_curl_nginx.pcap",
    "tls12_gnutls.pcap",
    "java_no_sni.pcap",
    "expired_python.pcap",
    "hostname_mismatch_curl.pcap",
}


def _cases() -> list[tuple[str, str, str]]:
    out = []
    for entry in json.loads((REAL / "MANIFEST.json").read_text()):
        for conn in entry["connections"]:
            stack = conn.get("client_stack") or entry["client_stack"]
            out.append((entry["file"], conn["client"], stack))
    return out


@pytest.mark.parametrize(("name", "client", "stack"), _cases())
def test_fixture_clients_are_named(name: str, client: str, stack: str) -> None:
    result = analyze_file(REAL / name)
    (conn,) = [
        c for c in result.connections if format_endpoint(*c.endpoints[c.client_dir]) == client
    ]
    want = next(v for k, v in EXPECTED.items() if stack.startswith(k))
    hint = likely_stack(conn.client_hellos[0])
    if name in DEFAULT_CONFIG:
        assert hint is not None, (name, stack)
    if hint is not None:  # never a wrong name
        # curl uses OpenSSL: with options that change its hello (--cert-status) it may look like
        # "an OpenSSL 3.x client (openssl s_client or an app using it)", which it is.
        also = ("OpenSSL 3.x client",) if want == "curl" else ()
        assert hint.name.startswith((want, *also)), (hint.name, stack)
