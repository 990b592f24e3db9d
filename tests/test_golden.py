"""Golden verdicts: any change in a fixture's verdict or its evidence frames fails here.

Each capture under fixtures/ has tests/golden/<relative path>.json holding, per connection, the
outcome, the cause, the frames of the evidence and the alerts. When a change is intended,
regenerate with ``TLSPCAP_UPDATE_GOLDEN=1 pytest tests/test_golden.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tlspcap.analyze import analyze_file
from tlspcap.diagnosis.certcheck import TrustStore, load_pem_roots
from tlspcap.diagnosis.engine import Options, diagnose_capture
from tlspcap.report.jsonfmt import capture_to_dict

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"
GOLDEN = ROOT / "tests" / "golden"
SUFFIXES = (".pcap", ".pcapng", ".pcap.gz")
CAPTURES = sorted(
    p
    for p in FIXTURES.rglob("*")
    if p.is_file() and p.name.endswith(SUFFIXES) and "degraded" not in p.relative_to(FIXTURES).parts
)
"""Every fixture but the degraded variants (tests/test_degraded.py and their MANIFEST.json)."""


def golden_view(doc: dict[str, Any]) -> dict[str, Any]:
    """The part of a capture's JSON a golden file pins."""
    return {
        "error": doc["error"],
        "truncated": doc["truncated"],
        "connections": [
            {
                "client": c["client"],
                "server": c["server"],
                "outcome": c["outcome"],
                "cause": c["cause"],
                "gave_up": c["gave_up"],
                "must_act": c["must_act"],
                "evidence_frames": [e["frame"] for e in c["evidence"]],
                "secondary": sorted({s["code"] for s in c["secondary"]}),
                "alerts": [
                    [a["frame"], a["sender"], a["level"], a["description"]] for a in c["alerts"]
                ],
                "history": c["history"],
            }
            for c in doc["connections"]
        ],
    }


def _doc(path: Path) -> dict[str, Any]:
    trust = TrustStore(load_pem_roots((FIXTURES / "real" / "certs" / "root.pem").read_bytes()))
    result = analyze_file(path)
    return capture_to_dict(result, diagnose_capture(result, Options(trust=trust)))


@pytest.mark.parametrize("path", CAPTURES, ids=[str(p.relative_to(FIXTURES)) for p in CAPTURES])
def test_golden(path: Path) -> None:
    golden = GOLDEN / (str(path.relative_to(FIXTURES)) + ".json")
    got = golden_view(_doc(path))
    if os.environ.get("TLSPCAP_UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(json.dumps(got, indent=1) + "\n")
    assert golden.exists(), f"no golden file {golden}: run with TLSPCAP_UPDATE_GOLDEN=1"
    assert got == json.loads(golden.read_text())


def test_every_capture_has_a_golden_file() -> None:
    stale = [
        g
        for g in GOLDEN.rglob("*.json")
        if not (FIXTURES / str(g.relative_to(GOLDEN))[: -len(".json")]).exists()
    ]
    assert not stale, f"golden files without a capture: {stale}"
