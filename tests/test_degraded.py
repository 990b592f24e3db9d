"""The degraded variants of fixtures/degraded/ (fixtures/gen/make_degraded.py).

The manifest must describe exactly the files present. Every variant whose evidence is "all"
(tunnels, IP fragments, foreign formats) must give the same JSON as the clean fixture it was
made from, except the fields that legitimately differ: the file name, the capture format,
the packet count, the file anomalies, a connection's tunnel (if the report shows one), frame
numbers for fragments (mapped back through the manifest's ``frame_map``), and timestamps
within the precision the foreign format stores. The lossy variants' expected verdicts are not
checked here.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from tlspcap.analyze import analyze_file
from tlspcap.diagnosis.certcheck import TrustStore, load_pem_roots
from tlspcap.diagnosis.engine import Options, diagnose_capture
from tlspcap.keylog import parse_keylog
from tlspcap.report.jsonfmt import capture_to_dict

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / "fixtures" / "real"
DEGRADED = ROOT / "fixtures" / "degraded"
MANIFEST: dict[str, Any] = json.loads((DEGRADED / "MANIFEST.json").read_text())
ENTRIES: list[dict[str, Any]] = MANIFEST["entries"]
LOSSLESS = [e for e in ENTRIES if e["evidence"] == "all"]

TIMESTAMP_PRECISION = {"netmon1": 1e-3, "visual": 1e-3, "netxray": 2e-6}
"""Seconds: formats that store milliseconds, and NetXray's clock ticks (editcap rounds to them).
Every other one keeps microseconds."""
NATIVE_FORMATS = {"snoop": "snoop", "snoop_gzip": "snoop+gzip"}
"""Variants tlspcap reads itself (no editcap), with the format it reports."""
MAY_DIFFER = ("file", "format", "packets", "anomalies")
"""Capture-level fields a lossless variant may change."""


def _keylog(path: str | None) -> Any:
    return parse_keylog(Path(path).read_text()) if path else None


@functools.cache
def _trust() -> TrustStore:
    return TrustStore(load_pem_roots((REAL / "certs" / "root.pem").read_bytes()))


def _doc(path: Path, keylog: str | None) -> dict[str, Any]:
    result = analyze_file(path, _keylog(keylog))
    assert result.error is None, result.error
    doc: dict[str, Any] = capture_to_dict(result, diagnose_capture(result, Options(trust=_trust())))
    return doc


@functools.cache
def _clean(source: str) -> str:
    keylog = REAL / (Path(source).stem + ".keylog")
    doc = _doc(REAL / source, str(keylog) if keylog.exists() else None)
    return json.dumps(doc)


def _map_frames(doc: dict[str, Any], frame_map: list[int]) -> dict[str, Any]:
    """Frame numbers of a fragment variant replaced by the source frames they stand for."""

    def source(n: str) -> str:
        mapped = frame_map[int(n) - 1]
        assert mapped, f"frame {n} is a fragment that completed nothing"
        return str(mapped)

    text = json.dumps(doc)
    text = re.sub(r'"((?:first_|last_)?frame)": (\d+)', lambda m: f'"{m[1]}": {source(m[2])}', text)
    text = re.sub(r"\bframes? (\d+)", lambda m: m[0][: -len(m[1])] + source(m[1]), text)
    mapped: dict[str, Any] = json.loads(text)
    return mapped


def _strip(doc: dict[str, Any]) -> tuple[dict[str, Any], list[float]]:
    """Remove what may differ; return the timestamps separately (compared with a tolerance)."""
    out = {k: v for k, v in doc.items() if k not in MAY_DIFFER}
    times: list[float] = []
    for conn in out["connections"]:
        conn.pop("tunnel", None)
        for key in ("start_time", "end_time"):
            times.append(conn.pop(key))
    return out, times


def test_manifest_lists_exactly_the_files_present() -> None:
    listed = {e["file"] for e in ENTRIES} | {e["keylog"] for e in ENTRIES if e["keylog"]}
    present = {
        p.relative_to(DEGRADED).as_posix()
        for p in DEGRADED.rglob("*")
        if p.is_file() and p.name != "MANIFEST.json"
    }
    assert listed == present


def test_every_variant_of_every_fixture_is_there_or_explained() -> None:
    real = [e["file"] for e in json.loads((REAL / "MANIFEST.json").read_text())]
    made = {(e["variant"], e["source"]) for e in ENTRIES}
    skipped = {(s["variant"], s["source"]): s["why"] for s in MANIFEST["skipped"]}
    for name, v in MANIFEST["variants"].items():
        sources = real if v["kind"] == "lossy" else MANIFEST["lossless_subset"]
        for source in sources:
            assert (name, source) in made or skipped.get((name, source)), (name, source)
        assert v["evidence"] == ("all" if v["kind"] != "lossy" else name)
    for e in ENTRIES:
        assert e["evidence"] == MANIFEST["variants"][e["variant"]]["evidence"]
        assert e["transform"] == MANIFEST["variants"][e["variant"]]["transform"]
        has_keylog = (REAL / (Path(e["source"]).stem + ".keylog")).exists()
        assert (e["keylog"] is not None) == has_keylog


def _entry_id(e: dict[str, Any]) -> str:
    return str(e["file"])


@pytest.mark.parametrize("entry", LOSSLESS, ids=[_entry_id(e) for e in LOSSLESS])
def test_lossless_variant_gives_the_clean_json(entry: dict[str, Any]) -> None:
    kind = MANIFEST["variants"][entry["variant"]]["kind"]
    native = entry["variant"] in NATIVE_FORMATS
    if kind == "format" and not native and shutil.which("editcap") is None:
        pytest.skip("editcap not installed")
    keylog = str(DEGRADED / entry["keylog"]) if entry["keylog"] else None
    got = _doc(DEGRADED / entry["file"], keylog)
    if "frame_map" in entry:
        got = _map_frames(got, entry["frame_map"])
    precision = TIMESTAMP_PRECISION.get(entry["variant"], 1e-6)
    want, want_times = _strip(json.loads(_clean(entry["source"])))
    have, have_times = _strip(got)
    assert have == want
    assert have_times == pytest.approx(want_times, abs=precision)
    names = [a["name"] for a in got["anomalies"]]
    if kind == "tunnel":
        assert "tunnelled" in names
    elif kind == "fragments":
        assert "ip_fragments_reassembled" in names
    elif native:
        assert got["format"] == NATIVE_FORMATS[entry["variant"]]
    else:
        assert names[0] == "converted_format" and got["format"].endswith("(converted by editcap)")


def test_fragment_variants_really_are_fragmented() -> None:
    for e in LOSSLESS:
        if MANIFEST["variants"][e["variant"]]["kind"] != "fragments":
            continue
        result = analyze_file(DEGRADED / e["file"])
        clean = analyze_file(REAL / e["source"])
        assert result.packets == len(e["frame_map"]) > clean.packets
        assert sorted(set(e["frame_map"]) - {0}) == list(range(1, clean.packets + 1))


# ---- the lossy variants -----------------------------------------------------------------------
LOSSY = [e for e in ENTRIES if e["evidence"] != "all"]
TRUTH: dict[str, list[dict[str, Any]]] = {
    e["file"]: e["connections"] for e in json.loads((REAL / "MANIFEST.json").read_text())
}
"""Each real fixture's connections with the verdict its scenario was built to show."""
EXPECTED = ROOT / "tests" / "golden" / "degraded.json"
"""The verdict of every connection of every lossy variant, pinned (regenerate with
``TLSPCAP_UPDATE_GOLDEN=1 pytest tests/test_degraded.py`` and review the diff)."""


ALERT_ONLY = frozenset({"expired_certificate"})
"""Causes a client's alert names on its own (diagnosis/alerts.py) when the certificate is not in
the capture: the client's reading, which the certificate might have disproved (a client whose
clock is wrong sends the same alert)."""


SYMPTOMS = {
    "large_client_hello": ("connection_reset", "no_server_response"),
    "middlebox_reset": ("connection_reset", "no_server_response"),
}
"""Causes that refine a symptom's code (a RST, no answer): where the evidence that singles them
out is lost, the symptom is still true, and the cause stays a possible secondary finding."""


def _verdicts(entry: dict[str, Any]) -> list[dict[str, Any]]:
    keylog = str(DEGRADED / entry["keylog"]) if entry["keylog"] else None
    doc = _doc(DEGRADED / entry["file"], keylog)
    out = []
    for truth in TRUTH[entry["source"]]:
        pair = {truth["client"], truth["server"]}
        found = [c for c in doc["connections"] if {c["client"], c["server"]} == pair]
        assert len(found) <= 1
        if not found:
            out.append({"client": truth["client"], "reported": False})
            continue
        c = found[0]
        out.append(
            {
                "client": truth["client"],
                "reported": True,
                "roles_swapped": c["client"] != truth["client"],
                "roles_from": c["roles_from"],
                "outcome": c["outcome"],
                "cause": c["cause"],
                "confidence": c["confidence"],
                "secondary": sorted({x["code"] for x in c["secondary"]}),
                "settle": bool(c["settle"]),
                "evidence": bool(c["evidence"]),
            }
        )
    return out


@functools.cache
def _expected() -> dict[str, Any]:
    if not EXPECTED.exists():
        return {}
    data: dict[str, Any] = json.loads(EXPECTED.read_text())
    return data


@pytest.mark.parametrize("entry", LOSSY, ids=[_entry_id(e) for e in LOSSY])
def test_lossy_variant_keeps_the_cause_or_says_unknown(entry: dict[str, Any]) -> None:
    """Where the deciding evidence survives the cause is the clean capture's; where it does not
    the verdict is unknown or incomplete and says what is missing. Never a different cause,
    never ``established`` for a failure, never a failure for an established connection, and
    roles taken from nothing are said to be unknown."""
    got = _verdicts(entry)
    for truth, v in zip(TRUTH[entry["source"]], got, strict=True):
        if not v["reported"]:
            continue  # no TLS byte of it survives (a side that sent only TCP, or an alert)
        where = f"{entry['file']} {truth['client']}: {v}"
        if v["roles_swapped"]:
            assert v["roles_from"] == "unknown", where
        if truth["expected_outcome"] == "established":
            assert v["outcome"] in ("established", "incomplete"), where
            continue
        assert v["outcome"] in ("failed", "incomplete"), where
        if v["cause"] in ALERT_ONLY and v["confidence"] == "inferred":
            # the client's own alert survives and the certificate that would disprove it is
            # lost: the alert's reading, said to be inferred, with what would settle it
            assert v["settle"], where
            continue
        if v["cause"] in SYMPTOMS.get(truth["expected_cause"], ()):
            # the symptom the cause shows as, the cause itself a possible secondary finding
            assert truth["expected_cause"] in v["secondary"], where
            assert v["settle"] or v["evidence"], where
            continue
        assert v["cause"] in (truth["expected_cause"], "unknown"), where
        if v["cause"] == "unknown":
            assert v["evidence"], where  # it says what is missing
        if v["cause"] != truth["expected_cause"] or v["outcome"] == "incomplete":
            assert v["settle"], where  # and which capture would settle it
    if os.environ.get("TLSPCAP_UPDATE_GOLDEN"):
        return
    assert _expected().get(entry["file"]) == got


def test_pinned_lossy_verdicts_cover_every_variant() -> None:
    if os.environ.get("TLSPCAP_UPDATE_GOLDEN"):
        EXPECTED.write_text(
            json.dumps({e["file"]: _verdicts(e) for e in LOSSY}, indent=1, sort_keys=True) + "\n"
        )
    assert set(_expected()) == {e["file"] for e in LOSSY}
