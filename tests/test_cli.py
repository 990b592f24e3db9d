"""``tlspcap analyze`` end to end, in process: formats, filters, exit codes, --out, batches."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from test_html_report import BIDI, EVIL_SNI, crafted_capture
from typer.testing import CliRunner

from tlspcap import batch
from tlspcap.analyze import CaptureResult, analyze_file
from tlspcap.cli import EXIT_ERROR, EXIT_FAILURES, EXIT_OK, Progress, app, parse_formats
from tlspcap.diagnosis.engine import Options, diagnose_capture
from tlspcap.report import jsonfmt
from tlspcap.report.summary import CSV_COLUMNS, csv_cell, error_report, parse_server_filter

REAL = Path(__file__).resolve().parents[1] / "fixtures" / "real"
CA = ["--ca-bundle", str(REAL / "certs" / "root.pem")]
SNI = REAL / "sni_missing.pcap"  # 1 established (SNI sni.tlspcap.test), 3 failed: sni_missing
OK12 = REAL / "tls12_ok_openssl.pcap"  # 1 established, server 127.0.0.1:4431, SNI localhost
HOSTNAME = REAL / "hostname_mismatch_python.pcap"  # TLS 1.3, fails; keylog beside it

runner = CliRunner()


def run(*args: str | Path) -> tuple[int, str, str]:
    """Run ``tlspcap analyze ARGS``; exit code, stdout, stderr."""
    result = runner.invoke(app, ["analyze", *map(str, args)])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def doc_of(stdout: str) -> dict[str, object]:
    doc = json.loads(stdout)
    assert isinstance(doc, dict)
    return doc


def connections(doc: dict[str, object]) -> list[dict[str, object]]:
    captures = doc["captures"]
    assert isinstance(captures, list)
    return [c for cap in captures for c in cap["connections"]]


# ---- formats ------------------------------------------------------------------------------
def test_text_report_summary_first_then_failures_then_one_line_per_established() -> None:
    code, out, err = run(SNI, *CA)
    assert code == EXIT_FAILURES
    lines = out.splitlines()
    assert lines[0] == "Summary: 1 file(s), 4 TLS connection(s): 3 failed, 1 established"
    assert lines[1] == "  causes (not established): sni_missing 3"
    assert any(
        ln.startswith("    127.0.0.1:8444") and "3 failed, 1 established" in ln for ln in lines
    )
    ok = [ln for ln in lines if ln.startswith("  ok  ")]
    assert len(ok) == 1 and "127.0.0.1:8444" in ok[0] and "SNI sni.tlspcap.test" in ok[0]
    assert out.count("[FAILED: sni_missing]") == 3
    result = analyze_file(SNI)
    for v in diagnose_capture(result, Options()):
        if v.outcome == "failed":
            assert v.fix.split(";")[0] in out
    assert "\x1b[" not in out  # not a terminal: no colour
    assert "\x1b[" not in err and "files" not in err  # not a terminal: no progress


def test_colour_only_when_asked_or_on_a_terminal() -> None:
    _, plain, _ = run(SNI, *CA)
    _, coloured, _ = run(SNI, *CA, "--color", "always")
    assert "\x1b[" not in plain
    assert "\x1b[1;31m127.0.0.1:" in coloured  # failed connection header in red
    assert "\x1b[32m  ok  " in coloured
    assert "\x1b[" not in run(SNI, *CA, "--color", "never")[1]


def test_json_is_the_contract_document() -> None:
    code, out, _ = run(SNI, OK12, *CA, "--format", "json")
    assert code == EXIT_FAILURES
    results = [analyze_file(SNI), analyze_file(OK12)]
    expected = jsonfmt.render(results, [diagnose_capture(r, _ca_options()) for r in results])
    assert out == expected
    doc = doc_of(out)
    assert doc["schema_version"] == jsonfmt.SCHEMA_VERSION
    assert [c["outcome"] for c in connections(doc)].count("failed") == 3


def _ca_options() -> Options:
    return batch.options_for(batch.Settings(ca_pem=(REAL / "certs" / "root.pem").read_bytes()))


def test_html_format() -> None:
    code, out, _ = run(SNI, *CA, "--format", "html")
    assert code == EXIT_FAILURES
    assert out.startswith("<!DOCTYPE html>") and out.rstrip().endswith("</html>")
    assert out.count("FAILED: sni_missing") == 3
    assert "Alert fatal unrecognized_name" in out
    assert "<script" not in out


def test_markdown_format() -> None:
    code, out, _ = run(SNI, *CA, "--format", "md")
    assert code == EXIT_FAILURES
    assert out.startswith("# tlspcap report\n")
    assert out.count("### FAILED: sni\\_missing") == 3
    assert "| 127.0.0.1:8444 | sni.tlspcap.test | 3 | 0 | 1 | sni\\_missing 3 |" in out
    assert "**Fix:**" in out and "**Alert fatal unrecognized\\_name**" in out


def test_format_parsing() -> None:
    assert parse_formats([]) == ["text"]
    assert parse_formats(["html,json", "md", "json"]) == ["html", "json", "markdown"]
    with pytest.raises(ValueError):
        parse_formats(["pdf"])


@pytest.mark.parametrize(
    "args",
    [
        ["--format", "pdf"],
        ["--format", "html,json"],  # several formats need --out
        ["--server", "host:99999"],
        ["--jobs", "0"],
        ["--no-such-option"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    code, out, _ = run(SNI, *args)
    assert code == EXIT_ERROR
    assert "Summary" not in out


def test_exit_0_without_failures() -> None:
    code, out, _ = run(OK12, *CA)
    assert code == EXIT_OK
    assert out.startswith("Summary: 1 file(s), 1 TLS connection(s): 1 established")


def test_help_documents_exit_codes_and_formats() -> None:
    result = runner.invoke(app, ["analyze", "--help"])
    text = " ".join(result.stdout.split())
    assert "Exit status: 0 no failed handshake" in text
    assert "2 usage error or an input that could not be read" in text
    assert "comma list" in text and "markdown" in text


# ---- filters ------------------------------------------------------------------------------
def test_only_failures() -> None:
    code, out, _ = run(SNI, OK12, *CA, "--only-failures")
    assert code == EXIT_FAILURES
    assert "  ok  " not in out
    assert "hidden by filters: 2 connection(s)" in out
    code, out, _ = run(SNI, OK12, *CA, "--only-failures", "--format", "json")
    assert {c["outcome"] for c in connections(doc_of(out))} == {"failed"}
    assert len(connections(doc_of(out))) == 3


def test_server_filter() -> None:
    code, out, _ = run(SNI, OK12, *CA, "--server", "127.0.0.1:4431", "-f", "json")
    conns = connections(doc_of(out))
    assert [c["server"] for c in conns] == ["127.0.0.1:4431"]
    assert code == EXIT_OK  # the failures are elsewhere
    code, out, _ = run(SNI, OK12, *CA, "--server", ":8444", "-f", "json")
    assert {c["server"] for c in connections(doc_of(out))} == {"127.0.0.1:8444"}
    assert len(connections(doc_of(out))) == 4 and code == EXIT_FAILURES
    code, out, _ = run(SNI, OK12, *CA, "--server", "LOCALHOST", "-f", "json")  # by SNI
    assert [c["server"] for c in connections(doc_of(out))] == ["127.0.0.1:4431"]


def test_server_filter_parsing() -> None:
    assert parse_server_filter("[::1]:443") == parse_server_filter("[::1]:443")
    f = parse_server_filter("[::1]:443")
    assert (f.host, f.port) == ("::1", 443)
    assert (parse_server_filter("::1").host, parse_server_filter("::1").port) == ("::1", None)
    assert parse_server_filter(":443").host is None
    assert f.matches({"server": "[::1]:443"}) and not f.matches({"server": "[::1]:8443"})
    for bad in ("", "h:x", "h:0", "[::1", "[::1]443"):
        with pytest.raises(ValueError):
            parse_server_filter(bad)


def test_sni_filter() -> None:
    code, out, _ = run(SNI, OK12, *CA, "--sni", "sni.tlspcap.test", "-f", "json")
    conns = connections(doc_of(out))
    assert len(conns) == 1 and conns[0]["outcome"] == "established"
    assert code == EXIT_OK
    code, out, _ = run(
        SNI, OK12, *CA, "--sni", "*.TLSPCAP.test", "--sni", "localhost", "-f", "json"
    )
    assert len(connections(doc_of(out))) == 2
    code, out, _ = run(SNI, *CA, "--sni", "nothing.example")
    assert code == EXIT_OK and "hidden by filters: 4 connection(s)" in out


# ---- directories, unreadable input, workers -----------------------------------------------
@pytest.fixture
def mixed_dir(tmp_path: Path) -> Path:
    d = tmp_path / "captures"
    (d / "sub").mkdir(parents=True)
    shutil.copy(SNI, d / "sni_missing.pcap")
    shutil.copy(OK12, d / "sub" / "ok.pcap")
    (d / "x.pcap").write_bytes(b"not a pcap")
    (d / "notes.txt").write_text("not a capture")
    return d


def test_directory_with_corrupt_and_non_capture_files(mixed_dir: Path) -> None:
    code, out, err = run(mixed_dir, *CA, "--jobs", "2")
    assert code == EXIT_ERROR  # unreadable input wins over failures
    assert (out + err).count("x.pcap") == 1  # named once: in the summary, not on stderr too
    assert "Summary: 3 file(s), 5 TLS connection(s): 3 failed, 2 established" in out
    assert "  skipped: 1 file(s) that are not captures" in out
    assert f"error: {mixed_dir / 'x.pcap'}:" in out
    assert out.count("[FAILED: sni_missing]") == 3  # the other files are still reported
    code, out, _ = run(mixed_dir, *CA, "-f", "json")
    caps = doc_of(out)["captures"]
    assert isinstance(caps, list)
    bad = [c for c in caps if c["file"].endswith("x.pcap")]
    assert len(bad) == 1 and bad[0]["error"] and bad[0]["connections"] == []


def test_missing_file_exit_2_others_reported(tmp_path: Path) -> None:
    code, out, err = run(tmp_path / "absent.pcap", SNI, *CA)
    assert code == EXIT_ERROR
    assert "absent.pcap" in out and "[FAILED: sni_missing]" in out
    code, out, err = run(tmp_path / "absent.pcap", SNI, *CA, "-f", "json")
    assert code == EXIT_ERROR
    assert "absent.pcap" in err  # stdout is JSON: the error is said on stderr too


def test_parallel_equals_serial(mixed_dir: Path) -> None:
    serial = run(mixed_dir, *CA, "-f", "json", "--jobs", "1")
    parallel = run(mixed_dir, *CA, "-f", "json", "--jobs", "3")
    assert serial == parallel
    assert len(doc_of(serial[1])["captures"]) == 3  # type: ignore[arg-type]


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_worker_exception_is_isolated(
    mixed_dir: Path, monkeypatch: pytest.MonkeyPatch, jobs: str
) -> None:
    real = batch.analyze_file

    def explode(path: Path, *args: Any) -> CaptureResult:
        if path.name == "ok.pcap":
            raise RuntimeError("boom")
        return real(path, *args)

    monkeypatch.setattr(batch, "analyze_file", explode)  # forked workers inherit it
    code, out, err = run(mixed_dir, *CA, "-f", "json", "--jobs", jobs)
    assert code == EXIT_ERROR
    captures = doc_of(out)["captures"]
    assert isinstance(captures, list)
    caps = {Path(c["file"]).name: c for c in captures}
    assert "internal error (RuntimeError: boom)" in caps["ok.pcap"]["error"]
    assert len(caps["sni_missing.pcap"]["connections"]) == 4
    assert "boom" in err


def test_unreadable_file_in_a_pool_is_an_error_entry(tmp_path: Path) -> None:
    reports = batch.run([tmp_path / "a.pcap", SNI], batch.Settings(), jobs=2)
    assert reports[0].error and "cannot read file" in reports[0].error
    assert len(reports[1].connections) == 4


def test_worker_process_death_becomes_error_entry(
    mixed_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def die(path: Path, *args: Any) -> CaptureResult:
        if path.name == "ok.pcap":
            os._exit(3)  # the worker process dies without a word
        return analyze_file(path, *args)

    monkeypatch.setattr(batch, "analyze_file", die)  # forked workers inherit it
    files = sorted(p for p in mixed_dir.rglob("*.pcap"))
    reports = batch.run(files, batch.Settings(), jobs=2)
    assert [r.file for r in reports] == [str(f) for f in files]
    dead = next(r for r in reports if r.file.endswith("ok.pcap"))
    assert dead.error and "internal error (BrokenProcessPool" in dead.error


def test_progress_on_terminal_only() -> None:
    stream = io.StringIO()
    p = Progress([1000, 3000], stream, enabled=True)
    p.update(0, error_report("a", "x"))
    assert "1/2 files, 1.0 kB/4.0 kB" in stream.getvalue() and "ETA" in stream.getvalue()
    p.update(1, error_report("b", "x"))
    p.finish()
    assert stream.getvalue().endswith("\r\x1b[K")
    quiet = io.StringIO()
    q = Progress([1000], quiet, enabled=False)
    q.advance(0, 500)
    q.update(0, error_report("a", "x"))
    q.finish()
    assert quiet.getvalue() == ""


def test_progress_within_one_large_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One big capture: the bytes read so far are shown while it is analysed."""
    stream = io.StringIO()
    p = Progress([10_000_000], stream, enabled=True)
    p.advance(0, 2_500_000)
    assert "0/1 files, 2.5 MB/10.0 MB" in stream.getvalue() and "ETA" in stream.getvalue()
    p.advance(0, 2_600_000)  # within half a second of the last update: not redrawn
    assert "2.6 MB" not in stream.getvalue()
    seen: list[tuple[int, int]] = []
    path = tmp_path / "many.pcap"
    shutil.copy(SNI, path)
    batch.run([path], batch.Settings(), jobs=1, on_bytes=lambda i, n: seen.append((i, n)))
    assert seen == []  # fewer packets than one progress step
    monkeypatch.setattr("tlspcap.analyze.PROGRESS_PACKETS", 2)
    batch.run([path], batch.Settings(), jobs=1, on_bytes=lambda i, n: seen.append((i, n)))
    assert seen and all(i == 0 for i, _ in seen)
    assert [n for _, n in seen] == sorted(n for _, n in seen) and seen[-1][1] <= path.stat().st_size


# ---- --out --------------------------------------------------------------------------------
def test_out_dir_reports_and_summaries(mixed_dir: Path, tmp_path: Path) -> None:
    crafted_capture(
        mixed_dir / "evil.pcap", sni='=HYPERLINK("http://x","y")', alpn=("@SUM(A1)", "h2")
    )
    out_dir = tmp_path / "reports"
    code, out, _ = run(mixed_dir, *CA, "--out", out_dir, "--format", "html,json", "-f", "md")
    assert code == EXIT_ERROR  # x.pcap
    assert out.startswith("Summary: 4 file(s)")
    assert "[FAILED" not in out  # only the summary on stdout
    names = sorted(p.name for p in out_dir.iterdir())
    for stem in ("sni_missing.pcap", "ok.pcap", "evil.pcap", "x.pcap"):
        for ext in ("html", "json", "md"):
            assert f"{stem}.{ext}" in names
    assert {"summary.json", "summary.csv", "totals.csv"} <= set(names)
    one = json.loads((out_dir / "sni_missing.pcap.json").read_text())
    assert [c["file"] for c in one["captures"]] == [str(mixed_dir / "sni_missing.pcap")]
    assert "FAILED: sni_missing" in (out_dir / "sni_missing.pcap.html").read_text()

    rows = list(csv.DictReader(io.StringIO((out_dir / "summary.csv").read_text())))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == 4 + 1 + 1 + 1  # sni_missing, ok, evil, plus x.pcap's error row
    sni_rows = [r for r in rows if r["file"].endswith("sni_missing.pcap")]
    failed = [r for r in sni_rows if r["outcome"] == "failed"]
    assert len(failed) == 3 and {r["cause"] for r in failed} == {"sni_missing"}
    assert failed[0]["first_alert"].startswith("server fatal unrecognized_name (frame ")
    assert failed[0]["gave_up"] == "server" and failed[0]["must_act"] == "client"
    est = next(r for r in sni_rows if r["outcome"] == "established")
    assert est["version"] == "TLS 1.2" and est["cipher"].startswith("TLS_ECDHE_")
    assert est["sni"] == "sni.tlspcap.test" and est["server"] == "127.0.0.1:8444"
    evil_row = next(r for r in rows if r["file"].endswith("evil.pcap"))
    assert evil_row["sni"] == '\'=HYPERLINK("http://x","y")'
    err_row = next(r for r in rows if r["file"].endswith("x.pcap"))
    assert err_row["outcome"] == "error" and err_row["error"]

    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["totals"]["by_cause"]["sni_missing"] == 3
    assert summary["totals"]["by_outcome"]["failed"] == 4
    assert summary["totals"]["unreadable_files"] == 1
    assert summary["skipped_files"] == 1
    assert summary["totals"]["by_server"]["127.0.0.1:8444"]["by_outcome"]["established"] == 1
    files = {Path(f["file"]).name: f for f in summary["files"]}
    assert files["sni_missing.pcap"]["reports"] == [
        "sni_missing.pcap.html",
        "sni_missing.pcap.json",
        "sni_missing.pcap.md",
    ]
    totals = list(csv.reader(io.StringIO((out_dir / "totals.csv").read_text())))
    assert ["", "sni_missing", "3"] in totals and ["failed", "", "4"] in totals


def test_out_dir_name_collisions(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    shutil.copy(OK12, a / "cap.pcap")
    shutil.copy(OK12, b / "cap.pcap")
    out_dir = tmp_path / "out"
    code, _, _ = run(a, b, *CA, "--out", out_dir, "-f", "text")
    assert code == EXIT_OK
    assert {"cap.pcap.txt", "cap.pcap-2.txt"} <= {p.name for p in out_dir.iterdir()}


def test_csv_cells_are_formula_safe() -> None:
    for raw in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"):
        assert csv_cell(raw) == "'" + raw
    for raw in ("localhost", "127.0.0.1:443", "[::1]:443", ""):
        assert csv_cell(raw) == raw
    assert csv_cell(None) == ""


# ---- --keylog -----------------------------------------------------------------------------
def test_keylog_decrypts_the_certificate() -> None:
    _, out, _ = run(HOSTNAME, *CA, "-f", "json")
    assert connections(doc_of(out))[0]["certificates"] == []
    keylog = HOSTNAME.with_suffix(".keylog")
    _, out, _ = run(HOSTNAME, *CA, "-f", "json", "--keylog", keylog)
    certs = connections(doc_of(out))[0]["certificates"]
    assert isinstance(certs, list) and certs
    assert "other.example.test" in certs[0]["san"]


def test_keylog_errors_exit_2(tmp_path: Path) -> None:
    code, _, err = run(SNI, "--keylog", tmp_path / "absent.keylog")
    assert code == EXIT_ERROR and "absent.keylog" in err
    empty = tmp_path / "empty.keylog"
    empty.write_text("# nothing\nbogus line\n")
    code, _, err = run(SNI, "--keylog", empty)
    assert code == EXIT_ERROR and "no TLS secret" in err


# ---- hostile capture in the other formats -------------------------------------------------
@pytest.fixture
def evil_capture(tmp_path: Path) -> Path:
    return crafted_capture(tmp_path / "evil.pcap")  # markup, bidi overrides in SNI/ALPN/cert


def test_markdown_of_hostile_capture_is_inert(evil_capture: Path) -> None:
    code, out, _ = run(evil_capture, "-f", "markdown")
    assert code == EXIT_FAILURES
    assert "<" not in out and ">" not in out  # no raw HTML at all
    assert not any(ch in out for ch in BIDI)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    assert "### FAILED:" in out


def test_text_of_hostile_capture_has_no_control_characters(evil_capture: Path) -> None:
    _, out, _ = run(evil_capture, "--color", "never")
    assert not any(ch in out for ch in BIDI)
    assert not any(ord(ch) < 32 and ch != "\n" for ch in out)
    assert "<script>alert(1)</script>\ufffdevil.example" in out  # shown, defused


def test_json_keeps_hostile_values_verbatim(evil_capture: Path) -> None:
    _, out, _ = run(evil_capture, "-f", "json")
    (conn,) = connections(doc_of(out))
    assert conn["client_hellos"][0]["sni"] == EVIL_SNI  # type: ignore[index]


# ---- command-line polish ------------------------------------------------------------------
def test_version() -> None:
    from tlspcap import __version__
    from tlspcap.capture import engine

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == f"tlspcap {__version__}"
    assert lines[1].startswith(f"packet engine: {engine.selected()} (")


def test_version_names_the_forced_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TLSPCAP_ENGINE", "python")
    result = runner.invoke(app, ["--version"])
    expected = "forced by TLSPCAP_ENGINE" if _engine_available() else "not installed"
    assert "packet engine: python (" in result.stdout and expected in result.stdout


def test_unknown_engine_is_the_runs_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TLSPCAP_ENGINE", "fortran")
    result = runner.invoke(app, ["analyze", str(REAL)])
    assert result.exit_code == 2
    assert "TLSPCAP_ENGINE='fortran': use one of rust, python" in result.stderr


def _engine_available() -> bool:
    from tlspcap.capture import engine

    return engine.available()


@pytest.mark.parametrize("command", [[], ["analyze"], ["serve"]])
def test_help_shows_plain_metavars(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    text = result.stdout
    for typed in ("<list[", "<bool>", "<str>", "<path>", "<int", "<float", "{PATH"):
        assert typed not in text, f"{typed!r} in the help of {command}"
    if command == ["analyze"]:
        assert "analyze [OPTIONS] PATH...\n" in text
        assert "--ca-bundle FILE" in text and "-j, --jobs N" in text
        assert "--only-failures " in text and "--keylog FILE" in text
    if command == ["serve"]:
        assert "--bind HOST:PORT" in text and "--max-upload SIZE" in text
        assert "--token-file FILE" in text and "--retention DAYS" in text


def test_unreadable_file_named_once(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"hello, not a capture")
    reason = "not a pcap/pcapng file"
    code, out, err = run(bad)
    assert code == EXIT_ERROR
    assert (out + err).count(reason) == 1 and "bad.pcap" in out
    code, out, err = run(bad, "--out", tmp_path / "reports")
    assert code == EXIT_ERROR
    assert (out + err).count(reason) == 1
    code, out, err = run(bad, "-f", "json")
    assert code == EXIT_ERROR
    assert err.count(reason) == 1  # stdout is the JSON document, which holds it as data
    assert reason in doc_of(out)["captures"][0]["error"]  # type: ignore[index]
