"""``--out`` batches: reports written where each capture is analysed, briefs back to the client.

The same functions serve local ``--jobs`` runs and cluster runs (``test_cluster.py``); here they
are checked without Dask: summary views against whole connection dicts, the brief store, report
names, complete-or-absent files, and a local worker process that dies.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from test_html_report import crafted_capture
from typer.testing import CliRunner

from tlspcap import batch, outbatch
from tlspcap.analyze import CaptureResult, analyze_file, find_captures
from tlspcap.cli import EXIT_ERROR, Progress, app
from tlspcap.outbatch import BriefStore, CaptureBrief, brief_capture, unpack_lines, unpack_text
from tlspcap.report.outdir import (
    assign_names,
    complete_or_absent,
    part_path,
    remove_parts,
)
from tlspcap.report.summary import (
    ConnectionReport,
    FileReport,
    totals,
    write_csv_header,
    write_summary_csv,
    write_summary_document,
    write_summary_json,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REAL = FIXTURES / "real"
CA = ["--ca-bundle", str(REAL / "certs" / "root.pem")]
SNI = REAL / "sni_missing.pcap"

runner = CliRunner()


def run(*args: str | Path) -> tuple[int, str, str]:
    result = runner.invoke(app, ["analyze", *map(str, args)])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def fixture_reports(tmp_path_factory: pytest.TempPathFactory) -> list[FileReport]:
    """Every shipped capture, a missing one, and hostile ones (CSV and JSON metacharacters in
    the SNI), analysed in memory."""
    hostile = tmp_path_factory.mktemp("hostile")
    crafted_capture(hostile / "quotes.pcap", sni="a,\"b\";'c'\u00e9\u202e=1+1")
    crafted_capture(hostile / "evil.pcap")
    files, _ = find_captures([REAL, FIXTURES / "crafted", hostile])
    ca = (REAL / "certs" / "root.pem").read_bytes()
    return batch.run([*files, hostile / "absent.pcap"], batch.Settings(ca_pem=ca), jobs=1)


def test_summaries_from_briefs_equal_the_summaries_from_reports(
    fixture_reports: list[FileReport], tmp_path: Path
) -> None:
    reports = fixture_reports
    assert sum(len(r.connections) for r in reports) > 60 and reports[-1].error
    files = [r.file for r in reports]
    _, written = assign_names(files, ["json", "html"])
    store = BriefStore(str(tmp_path), files)
    for i in reversed(range(len(reports))):  # they arrive in any order
        assert store.add(i, brief_capture(reports[i], hidden=i % 3))
    assert store.missing() == [] and store.failures == 1
    assert store.hidden == sum(i % 3 for i in range(len(reports)))

    expected_t = totals(reports, skipped=2, hidden=store.hidden)
    t = store.totals(skipped=2)
    assert t == expected_t
    expected, got = io.StringIO(), io.StringIO()
    write_summary_json(expected, reports, expected_t, written)
    write_summary_document(got, store.file_entries(written), t, store.row_lines())
    assert got.getvalue() == expected.getvalue()
    json.loads(got.getvalue())
    expected, got = io.StringIO(newline=""), io.StringIO(newline="")
    write_summary_csv(expected, reports)
    write_csv_header(got)
    got.writelines(store.csv_text())
    assert got.getvalue() == expected.getvalue()
    assert 'a,""b"";' in got.getvalue()  # quoted by the csv writer, as locally
    assert list(store.errors()) == [(reports[-1].file, reports[-1].error)]
    store.close()


def test_packed_text_round_trips_across_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    report = FileReport(
        {"file": "x.pcap", "error": None},
        [ConnectionReport({"server": f"h{i}:443", "outcome": "failed", "client_hellos":
                           [{"sni": "\u00e9\u4e2d" * (i % 5)}]}) for i in range(300)],
    )  # fmt: skip
    packed = brief_capture(report, hidden=0)
    assert packed.connections == 300 and packed.failed == 300
    lines = list(unpack_lines(packed.rows))
    monkeypatch.setattr(outbatch, "_CHUNK", 7)  # multi-byte characters split between reads
    assert list(unpack_lines(packed.rows)) == lines
    assert [json.loads(line)["sni"] for line in lines[:3]] == [
        "",
        "\u00e9\u4e2d",
        "\u00e9\u4e2d" * 2,
    ]
    assert "".join(unpack_text(packed.csv)).count("\n") == 300
    assert list(unpack_lines(brief_capture(FileReport({"file": "y", "error": None}), 0).rows)) == []


def brief_of(file: str, connections: int = 0, **kw: Any) -> CaptureBrief:
    return CaptureBrief(file, kw.get("error"), connections, 0, kw.get("hidden", 0))


def test_brief_store_keeps_the_first_brief_of_a_capture(tmp_path: Path) -> None:
    files = ["a.pcap", "b.pcap"]
    store = BriefStore(str(tmp_path), files)
    assert store.missing() == [0, 1]
    assert store.add(1, brief_of("b.pcap", 2, hidden=2))
    assert not store.add(1, brief_of("b.pcap", 5, hidden=5))  # a second answer for it
    assert store.missing() == [0] and store.hidden == 2
    assert store.add(0, brief_of("a.pcap", error="cannot read file"))
    entries = list(store.file_entries({"b.pcap": ["b.pcap.json"]}))
    assert [(e["file"], e["connections"], e["reports"]) for e in entries] == [
        ("a.pcap", 0, []),
        ("b.pcap", 2, ["b.pcap.json"]),
    ]
    assert store.failures == 1 and store.out_error is None
    store.close()


def test_report_names_in_input_order(tmp_path: Path) -> None:
    files = ["a/cap.pcap", "b/cap.pcap", "c/summary.json", "a/cap.pcap", ".hidden.pcap"]
    stems, written = assign_names(files, ["json", "text"])
    assert stems == ["cap.pcap", "cap.pcap-2", "summary.json-2", "cap.pcap-3", "hidden.pcap"]
    assert written["a/cap.pcap"] == [
        "cap.pcap.json",
        "cap.pcap.txt",
        "cap.pcap-3.json",
        "cap.pcap-3.txt",
    ]  # a file given twice lists both sets, as summary.json always did


def test_a_file_is_complete_or_absent(tmp_path: Path) -> None:
    final = tmp_path / "x.pcap.json"
    final.write_text("old")
    with pytest.raises(RuntimeError), complete_or_absent(final, "run1") as fh:
        fh.write("half a rep")
        assert part_path(final, "run1").exists() and final.read_text() == "old"
        raise RuntimeError("interrupted")
    assert final.read_text() == "old" and sorted(os.listdir(tmp_path)) == ["x.pcap.json"]
    with complete_or_absent(final, "run1") as fh:
        fh.write("new")
    assert final.read_text() == "new" and sorted(os.listdir(tmp_path)) == ["x.pcap.json"]
    part_path(final, "run1").write_text("left by a killed worker")
    part_path(final, "run2").write_text("another run's")
    assert remove_parts(tmp_path, "run1") == 1
    assert sorted(os.listdir(tmp_path)) == [".x.pcap.json.run2.part", "x.pcap.json"]


@pytest.mark.parametrize("fmt", ["text", "json", "html", "markdown"])
def test_report_written_in_the_worker_equals_the_report_on_stdout(tmp_path: Path, fmt: str) -> None:
    captures = [SNI, REAL / "tls12_ok_openssl.pcap", FIXTURES / "crafted" / "truncated.pcap"]
    code, _, _ = run(*captures, *CA, "-f", fmt, "--jobs", "2", "--out", tmp_path)
    assert code == 1
    ext = {"text": "txt", "markdown": "md"}.get(fmt, fmt)
    for capture in captures:
        _, alone, _ = run(capture, *CA, "-f", fmt, "--color", "never")
        assert (tmp_path / f"{capture.name}.{ext}").read_text() == alone


def test_local_worker_death_becomes_the_files_error_with_its_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def die(path: Path, *args: Any) -> CaptureResult:
        if path.name == "tls12_ok_openssl.pcap":
            os._exit(3)  # the worker process dies without a word
        return analyze_file(path, *args)

    monkeypatch.setattr(batch, "analyze_file", die)  # forked workers inherit it
    captures = [SNI, REAL / "tls12_ok_openssl.pcap"]
    code, out, err = run(*captures, *CA, "-f", "json", "--jobs", "2", "--out", tmp_path)
    # named once: in the summary printed on stdout, not again on stderr
    assert code == EXIT_ERROR and "BrokenProcessPool" in out and "BrokenProcessPool" not in err
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [f["file"] for f in summary["files"]] == [str(c) for c in captures]
    dead = summary["files"][1]
    assert dead["error"].startswith("internal error (BrokenProcessPool")
    report = json.loads((tmp_path / "tls12_ok_openssl.pcap.json").read_text())
    assert report["captures"][0]["error"] == dead["error"]  # written by the parent instead


def test_progress_counts_unreadable_files() -> None:
    stream = io.StringIO()
    p = Progress([1000, 3000], stream, enabled=True)
    p.update(0, brief_of("a", error="cannot read file"))
    assert "1/2 files, 1.0 kB/4.0 kB, 1 unreadable" in stream.getvalue()
    p.update(1, brief_of("b"))
    assert p.failures == 1 and p.files_done == 2
