"""Verdicts on the real-stack fixtures: the cause each scenario was built to show.

fixtures/real/MANIFEST.json records, per connection, the failure the generator set up (the
ground truth: an expired certificate, a TLS 1.0-only server, ...). tlspcap must name it. In TLS
1.3 without a key log the certificate is encrypted: there the verdict may only be the true cause
or ``unknown`` with evidence that says a key log would tell (never a wrong cause).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tlspcap.analyze import analyze_file
from tlspcap.diagnosis.certcheck import TrustStore, load_pem_roots
from tlspcap.diagnosis.engine import Options, diagnose_capture
from tlspcap.report.jsonfmt import capture_to_dict

REAL = Path(__file__).resolve().parents[1] / "fixtures" / "real"
MANIFEST = REAL / "MANIFEST.json"


def _entries() -> list[dict[str, Any]]:
    if not MANIFEST.exists():
        return []
    data = json.loads(MANIFEST.read_text())
    return list(data if isinstance(data, list) else data["fixtures"])


def _trust() -> TrustStore:
    return TrustStore(load_pem_roots((REAL / "certs" / "root.pem").read_bytes()))


def analyze_fixture(name: str, keylog: Path | None = None) -> dict[str, Any]:
    """The contract document of one fixture, judged with the fixtures' own root CA."""
    kwargs: dict[str, Any] = {}
    if keylog is not None:
        from tlspcap.keylog import parse_keylog

        kwargs["keylog"] = parse_keylog(keylog.read_text())
    result = analyze_file(REAL / name, **kwargs)
    assert result.error is None, result.error
    return capture_to_dict(result, diagnose_capture(result, Options(trust=_trust())))


def _match(doc: dict[str, Any], conn: dict[str, Any]) -> dict[str, Any]:
    found = [c for c in doc["connections"] if c["client"] == conn["client"]]
    assert len(found) == 1, f"no single connection from {conn['client']} in {doc['file']}"
    assert found[0]["server"] == conn["server"]
    return found[0]


CASES = [(e["file"], c) for e in _entries() for c in e["connections"]]


@pytest.mark.parametrize(("name", "conn"), CASES, ids=[f"{n}:{c['client']}" for n, c in CASES])
def test_verdict_without_keylog(name: str, conn: dict[str, Any]) -> None:
    got = _match(analyze_fixture(name), conn)
    assert got["outcome"] == conn["expected_outcome"], got["evidence"]
    tls13 = any(sh["version"] == 0x0304 for sh in got["server_hellos"])
    if got["cause"] != conn["expected_cause"]:
        assert tls13 and not got["certificates"], (got["cause"], got["evidence"])
        assert got["cause"] == "unknown", got["evidence"]
        assert any("--keylog" in e["text"] for e in got["evidence"]), got["evidence"]
    if got["outcome"] != "established":
        assert got["evidence"], "a failed connection needs evidence"
        assert all(e["frame"] is None or e["frame"] >= 1 for e in got["evidence"])
        assert got["fix"]


def test_every_cause_is_covered() -> None:
    """The fixtures exercise every cause code the generator can make with real stacks."""
    causes = {c["expected_cause"] for _, c in CASES}
    assert {
        "protocol_mismatch",
        "cipher_mismatch",
        "sni_missing",
        "hostname_mismatch",
        "incomplete_chain",
        "expired_certificate",
        "not_yet_valid_certificate",
        "unknown_ca",
        "client_certificate_required",
        "connection_reset",
        "no_server_response",
        "non_tls_peer",
    } <= causes


KEYED = [
    (e["file"], e["keylog"], c) for e in _entries() if e.get("keylog") for c in e["connections"]
]


@pytest.mark.parametrize(
    ("name", "keylog", "conn"), KEYED, ids=[f"{n}:{c['client']}" for n, _, c in KEYED]
)
def test_verdict_with_keylog(name: str, keylog: str, conn: dict[str, Any]) -> None:
    """With the client's key log, TLS 1.3 certificates are visible: the exact cause is required."""
    got = _match(analyze_fixture(name, REAL / keylog), conn)
    assert got["outcome"] == conn["expected_outcome"], got["evidence"]
    assert got["cause"] == conn["expected_cause"], got["evidence"]
