"""Keep the benchmark working: generate tiny captures, run the runner, check its verdict check.

No timing is asserted: the machine running the tests may be loaded.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
GEN = REPO / "bench" / "gen.py"
RUN = REPO / "bench" / "run.py"


def _gen(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GEN), "--size", "3MB", "--out", str(out), *extra],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ~3 MB pcap and its truth sidecar (room to replay every fixture at least once)."""
    out = tmp_path_factory.mktemp("bench") / "tiny.pcap"
    _gen(out)
    return out


def test_generator_writes_a_truth_sidecar(tiny: Path) -> None:
    truth = json.loads(tiny.with_name(tiny.name + ".truth.json").read_text())
    assert truth["bytes"] == tiny.stat().st_size
    assert truth["tls_connections"] == sum(truth["outcomes"].values())
    assert truth["outcomes"].get("established") and truth["outcomes"].get("failed")
    assert sum(truth["failed_causes"].values()) == truth["outcomes"]["failed"]
    # Every template is replayed at least once, with its calibrated verdicts.
    assert all(row["instances"] >= 1 and row["verdicts"] for row in truth["templates"])
    for key in ("bulk_records", "retransmissions", "dns_packets", "http_connections"):
        assert truth["stats"][key] > 0, key


def test_generator_is_deterministic_and_caches(tiny: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.pcap"
    _gen(again)
    assert again.read_bytes() == tiny.read_bytes()
    cached = _gen(again)
    assert "up to date" in cached.stderr


def test_runner_checks_verdicts_against_the_truth(tiny: Path, tmp_path: Path) -> None:
    args = [sys.executable, str(RUN), "--repeat", "1", "--batch", "2"]
    args += ["--workdir", str(tmp_path), str(tiny)]
    if shutil.which("tshark") is None:
        args.insert(2, "--no-tshark")
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"verdicts OK for {tiny.name}" in proc.stdout
    assert "| tlspcap |" in proc.stdout and "| bare |" in proc.stdout
    assert f"batch of 2 x {tiny.name}: --jobs 1 " in proc.stdout


def test_runner_fails_when_the_truth_disagrees(tiny: Path, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.pcap"
    shutil.copyfile(tiny, wrong)
    truth = json.loads(tiny.with_name(tiny.name + ".truth.json").read_text())
    truth["outcomes"]["established"] += 1
    wrong.with_name(wrong.name + ".truth.json").write_text(json.dumps(truth))
    proc = subprocess.run(
        [sys.executable, str(RUN), "--repeat", "1", "--no-tshark", str(wrong)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 1
    assert "VERDICTS DIFFER" in proc.stdout


def test_pcapng_output_is_read_alike(tmp_path: Path) -> None:
    out = tmp_path / "tiny.pcapng"
    _gen(out, "--format", "pcapng")
    proc = subprocess.run(
        [sys.executable, str(RUN), "--repeat", "1", "--no-tshark", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert out.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"


def test_floor_loop_reads_the_capture(tiny: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "floor.py"), str(tiny)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    truth = json.loads(tiny.with_name(tiny.name + ".truth.json").read_text())
    packets = int(proc.stdout.split()[0])
    assert packets == truth["packets"], proc.stdout
