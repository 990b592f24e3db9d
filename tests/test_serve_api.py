"""``tlspcap serve`` through its API, on a real service started on a free loopback port.

Every comparison is with what the command line prints for the same files and options (never
with a stored copy of the analysis), byte for byte.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from servekit import REAL, REPO, ROOT_PEM, Server, cli, generate

from tlspcap.serve.app import ROUTES

SNI = REAL / "sni_missing.pcap"
CA_ARGS = ("--ca-bundle", "certs/root.pem")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One service for most tests: two workers, four upload slots, 64 MB uploads."""
    s = Server(
        tmp_path_factory.mktemp("serve") / "data",
        "--workers", "2", "--uploads", "4", "--max-upload", "64MB",
    )  # fmt: skip
    yield s
    s.stop()


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 20 MB capture: its analysis lasts long enough to be caught running."""
    return generate(tmp_path_factory.mktemp("big") / "big.pcap", "20MB")


def done(server: Server, response: httpx.Response) -> dict[str, Any]:
    """Wait for the job a 202 answer created; its final status."""
    assert response.status_code == 202, response.text
    st = server.wait(response.json()["id"])
    assert st["status"] == "done", st
    return st


# ---- the same analysis as the command line ---------------------------------------------------
def test_reports_are_the_clis_byte_for_byte(server: Server) -> None:
    r = server.upload(SNI, ca_bundle=REAL / "certs" / "root.pem")
    assert r.headers["location"] == f"/api/v1/analyses/{r.json()['id']}"
    assert r.json()["status_url"] == r.headers["location"]
    st = done(server, r)
    job = st["id"]
    expected = cli(REAL, "--format", "json", *CA_ARGS, SNI.name)
    body = server.client.get(f"/api/v1/analyses/{job}").content
    assert expected in body  # the document, spliced into the status as it is
    assert json.loads(body)["result"] == json.loads(expected)
    assert server.client.get(f"/api/v1/analyses/{job}/report.json").content == expected
    for fmt, ext in (("html", "html"), ("markdown", "md")):
        got = server.client.get(f"/api/v1/analyses/{job}/report.{ext}").content
        assert got == cli(REAL, "--format", fmt, *CA_ARGS, SNI.name), fmt
    doc = json.loads(expected)
    conns = doc["captures"][0]["connections"]
    failed = [c for c in conns if c["outcome"] == "failed"]
    assert st["summary"]["connections"] == len(conns)
    assert st["summary"]["failed"] == len(failed)
    assert st["summary"]["top_cause"] == failed[0]["cause"]
    assert st["progress"]["packets_read"] == doc["captures"][0]["packets"]
    assert st["files"] == [{"name": SNI.name, "size": SNI.stat().st_size}]


def test_several_captures_and_every_option_as_on_the_command_line(server: Server) -> None:
    a, b = REAL / "hostname_mismatch_python.pcap", REAL / "java_no_sni.pcap"
    keylog = REAL / "hostname_mismatch_python.keylog"
    nginx = server.data.parent / "nginx.conf"
    nginx.write_text("server { ssl_protocols TLSv1.2 TLSv1.3; ssl_ciphers HIGH:!aNULL; }\n")
    r = server.upload(
        a, b, keylog=keylog, ca_bundle=REAL / "certs" / "root.pem", nginx_conf=nginx,
        host="java.tlspcap.test", server_protocols="TLSv1.2,TLSv1.3",
    )  # fmt: skip
    st = done(server, r)
    assert st["options"]["host"] == "java.tlspcap.test"
    assert st["options"]["keylog"] == keylog.name
    expected = cli(
        REAL, "--format", "json", "--keylog", keylog.name, *CA_ARGS, "--nginx-conf", str(nginx),
        "--host", "java.tlspcap.test", "--server-protocols", "TLSv1.2,TLSv1.3", a.name, b.name,
    )  # fmt: skip
    assert [c["file"] for c in json.loads(expected)["captures"]] == [a.name, b.name]
    assert server.client.get(f"/api/v1/analyses/{st['id']}/report.json").content == expected


def test_a_format_the_cli_converts_is_read_as_the_cli_reads_it(server: Server) -> None:
    if shutil.which("editcap") is None:
        pytest.skip("editcap is not installed (make sysdeps-test installs tshark with it)")
    netmon = REPO / "fixtures" / "degraded" / "netmon2" / "expired_curl.cap"
    st = done(server, server.upload(netmon, ca_bundle=REAL / "certs" / "root.pem"))
    expected = cli(netmon.parent, "--format", "json", "--ca-bundle", str(ROOT_PEM), netmon.name)
    assert json.loads(expected)["captures"][0]["error"] is None
    assert server.client.get(f"/api/v1/analyses/{st['id']}/report.json").content == expected


# ---- refusals --------------------------------------------------------------------------------
def error_of(r: httpx.Response, status: int) -> str:
    """The message of a JSON error answer with ``status``."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["status"] == status and isinstance(body["error"], str) and body["error"]
    assert "Traceback" not in r.text
    return str(body["error"])


def test_a_non_capture_gets_a_clear_error(server: Server, tmp_path: Path) -> None:
    before = {j["id"] for j in server.client.get("/api/v1/analyses").json()["analyses"]}
    notes = tmp_path / "notes.txt"
    notes.write_text("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
    message = error_of(server.upload(notes), 415)
    assert "notes.txt" in message and "not a pcap/pcapng file" in message
    assert "pcap, pcapng and gzip of either" in message
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    assert "empty file" in error_of(server.upload(SNI, empty), 415)
    after = {j["id"] for j in server.client.get("/api/v1/analyses").json()["analyses"]}
    assert after == before  # refused uploads leave no job behind
    assert sorted(p.name for p in (server.data / "jobs").iterdir()) == sorted(after)


def test_malformed_requests_and_bad_options(server: Server, tmp_path: Path) -> None:
    api = "/api/v1/analyses"
    assert "multipart/form-data" in error_of(server.client.post(api, json={"x": 1}), 415)
    r = server.client.post(api, files=[("host", (None, "x"))])
    assert "no capture" in error_of(r, 400)
    r = server.client.post(api, files=[("file", ("a.pcap", SNI.read_bytes()))])
    assert "unknown form field 'file'" in error_of(r, 422)
    assert "unknown protocol 'TLSv9'" in error_of(server.upload(SNI, server_protocols="TLSv9"), 422)
    pem = tmp_path / "bad.pem"
    pem.write_text("not a certificate")
    assert "ca_bundle: no PEM certificate" in error_of(server.upload(SNI, ca_bundle=pem), 422)
    garbled = b"--XYZ\r\nContent-Disposition: form-data; name=capture\r\n\r\nabc"  # no end
    r = server.client.post(
        api, content=garbled, headers={"content-type": "multipart/form-data; boundary=XYZ"}
    )
    error_of(r, 400)


def test_unknown_ids_and_reports_before_the_end(server: Server) -> None:
    for job in ("0" * 32, "not-an-id", "../../etc/passwd", "A" * 32):
        assert error_of(server.client.get(f"/api/v1/analyses/{job}"), 404)
        assert error_of(server.client.get(f"/api/v1/analyses/{job}/report.html"), 404)
        assert error_of(server.client.delete(f"/api/v1/analyses/{job}"), 404)
    assert error_of(server.client.get("/api/v1/nothing"), 404) == "not found"
    assert error_of(server.client.put("/api/v1/analyses"), 405)


def test_delete_removes_the_job_and_its_files(server: Server) -> None:
    st = done(server, server.upload(SNI))
    job = st["id"]
    assert (server.data / "jobs" / job / "output" / "report.html").is_file()
    assert server.client.delete(f"/api/v1/analyses/{job}").status_code == 204
    assert not (server.data / "jobs" / job).exists()
    error_of(server.client.get(f"/api/v1/analyses/{job}"), 404)
    error_of(server.client.delete(f"/api/v1/analyses/{job}"), 404)


# ---- hostile names ---------------------------------------------------------------------------
HOSTILE = [
    '<img src=x onerror="alert(1)">.pcap',
    "../../../../tmp/tlspcap-escape.pcap",
    "/etc/passwd",
    "report.html",
    "\u202egnp.exe",
    "x" * 600 + ".pcap",
]


def test_hostile_file_names_are_data_never_paths(server: Server) -> None:
    raw_name = b"ctl\x01\x1b[31mred\x7f.pcap"  # control bytes, sent raw (httpx would encode them)
    boundary = "tlspcapboundary"
    content = SNI.read_bytes()
    body = (
        b"".join(
            b"--" + boundary.encode() + b"\r\n"
            b'Content-Disposition: form-data; name="capture"; filename="' + name + b'"\r\n'
            b"Content-Type: application/octet-stream\r\n\r\n" + content + b"\r\n"
            for name in [n.replace('"', "%22").encode() for n in HOSTILE] + [raw_name]
        )
        + b"--"
        + boundary.encode()
        + b"--\r\n"
    )
    r = server.client.post(
        "/api/v1/analyses",
        content=body,
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    st = done(server, r)
    names = [f["name"] for f in st["files"]]
    assert names[0] == "<img src=x onerror=%22alert(1)%22>.pcap"  # as the browser encodes '"'
    assert names[4] == "\ufffdgnp.exe"  # the right-to-left override cannot reorder the name
    assert len(names[5]) == 255
    assert names[6] == "ctl\ufffd\ufffd[31mred\ufffd.pcap"
    assert names[1:4] == HOSTILE[1:4]
    doc = st["result"]
    assert [c["file"] for c in doc["captures"]] == names  # the reports name them as shown
    # stored under fixed names only; nothing written outside the job's directory
    job_dir = server.data / "jobs" / st["id"]
    stored = sorted(str(p.relative_to(job_dir)) for p in job_dir.rglob("*") if p.is_file())
    assert stored == sorted(
        [f"input/capture-{i}" for i in range(7)]
        + ["output/report.html", "output/report.json", "output/report.md", "worker.log"]
    )
    assert not Path("/tmp/tlspcap-escape.pcap").exists()
    for page in ("/", f"/jobs/{st['id']}"):
        html = server.client.get(page).text
        assert "<img src=x" not in html and "\u202e" not in html and "\x1b" not in html
        assert "&lt;img src=x onerror=%22alert(1)%22&gt;.pcap" in html


# ---- limits -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A service that takes uploads of at most 1 MiB."""
    s = Server(tmp_path_factory.mktemp("small") / "data", "--max-upload", "1MiB")
    yield s
    s.stop()


def test_413_past_the_upload_limit(small: Server) -> None:
    two_mb = b"\xd4\xc3\xb2\xa1" + bytes(2 * 1024 * 1024)
    r = small.client.post("/api/v1/analyses", files=[("capture", ("big.pcap", two_mb))])
    assert "limit of 1 MiB (--max-upload)" in error_of(r, 413)

    def chunked() -> Iterator[bytes]:  # no Content-Length: refused as the bytes come
        yield b'--B\r\nContent-Disposition: form-data; name="capture"; filename="c.pcap"\r\n\r\n'
        for _ in range(32):
            yield bytes(64 * 1024)
        yield b"\r\n--B--\r\n"

    r = small.client.post(
        "/api/v1/analyses",
        content=chunked(),
        headers={"content-type": "multipart/form-data; boundary=B"},
    )
    assert "content-length" not in r.request.headers
    assert "limit of 1 MiB" in error_of(r, 413)
    assert small.client.get("/api/v1/analyses").json()["analyses"] == []
    assert list((small.data / "jobs").iterdir()) == []
    done(small, small.upload(SNI))  # the service goes on


def test_twenty_concurrent_uploads_all_finish(server: Server) -> None:
    fixtures = [
        REAL / n
        for n in ("sni_missing.pcap", "expired_curl.pcap", "cipher_mismatch.pcap",
                  "tls12_ok_openssl.pcap", "pcapng_tls13.pcapng")
    ]  # fmt: skip
    files = [fixtures[i % len(fixtures)] for i in range(20)]
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda f: server.upload(f), files))
    assert [a.status_code for a in answers] == [202] * 20
    ids = [a.json()["id"] for a in answers]
    assert len(set(ids)) == 20
    assert max(a.json()["queue_position"] or 0 for a in answers) >= 1  # a visible queue
    expected = {f: cli(REAL, "--format", "json", f.name) for f in fixtures}
    for job, f in zip(ids, files, strict=True):
        st = server.wait(job)
        assert st["status"] == "done", st
        report = server.client.get(f"/api/v1/analyses/{job}/report.json").content
        assert report == expected[f], f.name
    listed = {j["id"] for j in server.client.get("/api/v1/analyses?limit=100").json()["analyses"]}
    assert set(ids) <= listed


# ---- crashes and restarts --------------------------------------------------------------------
def catch_worker(server: Server, timeout: float = 60) -> int:
    """The pid of the one analysis worker running (waits for it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = server.workers()
        if pids:
            assert len(pids) == 1, pids
            return pids[0]
        time.sleep(0.005)
    raise AssertionError("no worker started")


def test_worker_killed_mid_job_fails_that_job_only(server: Server, big: Path) -> None:
    r = server.upload(big)
    assert r.status_code == 202
    job = r.json()["id"]
    os.kill(catch_worker(server), signal.SIGKILL)
    st = server.wait(job)
    assert st["status"] == "failed"
    assert "killed (SIGKILL)" in st["reason"]
    assert st["links"]["retry"] == f"/api/v1/analyses/{job}/retry"
    assert "is failed" in error_of(server.client.get(f"/api/v1/analyses/{job}/report.html"), 409)
    # the service goes on: another upload, and the retry of the killed one, both finish
    done(server, server.upload(SNI))
    assert server.client.post(f"/api/v1/analyses/{job}/retry").status_code == 202
    st = server.wait(job)
    assert st["status"] == "done" and st["attempts"] == 2
    assert "is done" in error_of(server.client.post(f"/api/v1/analyses/{job}/retry"), 409)


def test_restart_keeps_results_and_interrupts_running_jobs(tmp_path: Path, big: Path) -> None:
    data = tmp_path / "data"
    first = Server(data, "--workers", "1")
    try:
        finished = done(first, first.upload(SNI))
        report = first.client.get(f"/api/v1/analyses/{finished['id']}/report.json").content
        running = first.upload(big).json()["id"]
        worker = catch_worker(first)
        os.kill(first.pid, signal.SIGKILL)  # a crash: no chance to clean up
        first.proc.wait(30)
        deadline = time.monotonic() + 30
        while Path(f"/proc/{worker}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not Path(f"/proc/{worker}").exists()  # the worker died with its service
    finally:
        first.kill()
    second = Server(data, "--workers", "1")
    try:
        st = second.status(finished["id"])
        assert st["status"] == "done" and st["summary"] == finished["summary"]
        assert second.client.get(f"/api/v1/analyses/{st['id']}/report.json").content == report
        st = second.status(running)
        assert st["status"] == "interrupted" and "retry" in st["reason"]
        assert second.client.post(st["links"]["retry"]).status_code == 202
        assert second.wait(running)["status"] == "done"
    finally:
        second.stop()


# ---- the rest of the contract ----------------------------------------------------------------
def test_events_follow_a_job_to_its_end(server: Server) -> None:
    job = server.upload(SNI).json()["id"]
    events = []
    with server.client.stream("GET", f"/api/v1/analyses/{job}/events") as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    assert events[-1]["status"] == "done"  # the stream ends with the job
    assert events[-1]["progress"]["packets_read"] == 47
    assert all(e["id"] == job and "result" not in e for e in events)


def test_security_headers_on_every_response(server: Server) -> None:
    job = done(server, server.upload(SNI))["id"]
    paths = [
        "/", f"/jobs/{job}", "/static/serve.js", "/nope", "/api/v1/analyses",
        f"/api/v1/analyses/{job}", f"/api/v1/analyses/{job}/report.html", "/api/v1/analyses/x",
        "/api/v1/openapi.json", "/login",
    ]  # fmt: skip
    for path in paths:
        r = server.client.get(path)
        csp = r.headers.get("content-security-policy", "")
        assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp, path
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, path
        assert r.headers["x-content-type-options"] == "nosniff", path
    report_csp = server.client.get(f"/jobs/{job}").headers["content-security-policy"]
    assert "script-src" not in report_csp  # a report page runs no script at all


def test_openapi_schema_lists_the_api(server: Server) -> None:
    schema = server.client.get("/api/v1/openapi.json").json()
    assert schema["openapi"].startswith("3.")
    documented = {(p, m.upper()) for p, ops in schema["paths"].items() for m in ops}
    served = {
        (route.path, method)
        for route in ROUTES
        if route.path.startswith("/api/v1/analyses")
        for method in (route.methods or ()) - {"HEAD"}
    }
    assert documented == served


def test_loopback_service_refuses_rebinding_and_cross_site_posts(server: Server) -> None:
    r = server.client.get("/api/v1/analyses", headers={"host": "evil.example"})
    assert "Host" in error_of(r, 400)
    r = server.client.post(
        "/api/v1/analyses",
        files=[("capture", ("a.pcap", SNI.read_bytes()))],
        headers={"origin": "http://evil.example"},
    )
    assert "cross-site" in error_of(r, 403)


# ---- access with a token ---------------------------------------------------------------------
def test_refuses_to_listen_on_all_interfaces_without_a_token(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tlspcap", "serve", "--bind", "0.0.0.0:0", "--data", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "--token-file" in proc.stderr and "listening on" not in proc.stdout


def test_token_on_an_all_interfaces_bind(tmp_path: Path) -> None:
    token = "s3cret-" + "x" * 25
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    s = Server(tmp_path / "data", "--token-file", str(token_file), bind="0.0.0.0:0", token=token)
    anon = httpx.Client(base_url=s.url, timeout=30)
    try:
        r = anon.get("/api/v1/analyses")
        assert "token" in error_of(r, 401)
        assert r.headers["www-authenticate"].startswith("Bearer")
        wrong = {"authorization": "Bearer " + token[:-1] + "y"}
        error_of(anon.get("/api/v1/analyses", headers=wrong), 401)
        error_of(anon.post("/api/v1/analyses", files=[("capture", ("a", b"x"))]), 401)
        job = done(s, s.upload(SNI))["id"]  # s.client sends the Bearer token
        # the page: a login that sets an HttpOnly, SameSite=Strict cookie, and CSRF tokens
        r = anon.get("/")
        assert r.status_code == 303 and r.headers["location"] == "/login"
        login = anon.get("/login")
        csrf = login.text.split('name="csrf_token" value="')[1].split('"')[0]
        r = anon.post("/login", data={"csrf_token": csrf, "token": "nope"})
        assert r.status_code == 401
        assert anon.post("/login", data={"token": token}).status_code == 403  # no CSRF token
        r = anon.post("/login", data={"csrf_token": csrf, "token": token})
        assert r.status_code == 303
        cookie = r.headers["set-cookie"]
        assert "tlspcap_session=" in cookie and "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        assert anon.get("/").status_code == 200
        assert anon.get(f"/api/v1/analyses/{job}").status_code == 200
        r = anon.post(f"/jobs/{job}/delete", data={})
        assert r.status_code == 403  # a form without its CSRF token
        error_of(anon.delete(f"/api/v1/analyses/{job}"), 403)  # cookie alone: no
        r = anon.delete(f"/api/v1/analyses/{job}", headers={"x-csrf-token": csrf})
        assert r.status_code == 204
    finally:
        anon.close()
        s.stop()


def test_the_page_works_without_its_script(server: Server) -> None:
    """The plain form post (no JavaScript): CSRF token first, a redirect to the job's page."""
    page = httpx.Client(base_url=server.url, timeout=60)
    try:
        home = page.get("/")
        assert "tlspcap_csrf=" in home.headers["set-cookie"]
        assert "HttpOnly" in home.headers["set-cookie"]
        csrf = home.text.split('name="csrf_token" value="')[1].split('"')[0]
        files = [("capture", (SNI.name, SNI.read_bytes()))]
        r = page.post("/jobs", files=files)  # no CSRF token
        assert r.status_code == 403 and "CSRF" in r.text and "<h1>Error 403</h1>" in r.text
        r = page.post("/jobs", files=[("csrf_token", (None, csrf)), *files])
        assert r.status_code == 303 and r.headers["location"].startswith("/jobs/")
        job = r.headers["location"].rsplit("/", 1)[1]
        assert server.wait(job)["status"] == "done"
        report = page.get(f"/jobs/{job}").text
        assert "FAILED: sni_missing" in report and 'id="read-summary"' in report
        assert report.startswith("<!DOCTYPE html>")
        r = page.post(f"/jobs/{job}/delete", data={"csrf_token": csrf})
        assert r.status_code == 303 and r.headers["location"] == "/"
        assert page.get(f"/jobs/{job}").status_code == 404
    finally:
        page.close()
