"""``tlspcap serve``'s parts on their own: sizes and binds, tokens, cookies and CSRF tokens,
the streaming multipart receiver, the job table, recovery after a restart and retention."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tlspcap.serve.config import (
    ConfigError,
    GiB,
    MiB,
    format_size,
    is_loopback,
    make_config,
    parse_bind,
    parse_size,
)
from tlspcap.serve.paths import JobPaths, is_job_id, new_job_id
from tlspcap.serve.runner import Runner
from tlspcap.serve.security import Auth, _cross_site, _loopback_host, parse_cookies
from tlspcap.serve.store import Job, JobStore, Status, StoredFile
from tlspcap.serve.uploads import (
    NAME_MAX,
    FormReceiver,
    RequestError,
    check_free_space,
    display_name,
    multipart_boundary,
)
from tlspcap.serve.worker import EXIT_MEMORY


# ---- configuration -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "size"),
    [("500MB", 500_000_000), ("4GiB", 4 * GiB), ("4gib", 4 * GiB), ("1048576", MiB),
     ("1.5 MB", 1_500_000), ("2k", 2000), ("64MiB", 64 * MiB)],
)  # fmt: skip
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "MB", "-1MB", "4 GiBs", "0", "1e9", "4XB"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(ConfigError, match=r"expected a size|more than 0"):
        parse_size(text, "--max-upload")


def test_size_words() -> None:
    assert format_size(4 * GiB) == "4 GiB"
    assert format_size(500_000_000) == "500 MB"
    assert format_size(MiB) == "1 MiB"
    assert format_size(812) == "812 bytes"


def test_binds_and_loopback() -> None:
    assert parse_bind("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_bind("[::1]:0") == ("::1", 0)
    assert parse_bind("localhost:80") == ("127.0.0.1", 80)
    for bad in ("8080", "example.com:80", "1.2.3.4:99999", "[::1]", "::1:80"):
        with pytest.raises(ConfigError):
            parse_bind(bad)
    assert is_loopback("127.0.0.1") and is_loopback("127.9.8.7") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("::")
    assert not is_loopback("192.168.1.10")


def test_non_loopback_bind_needs_a_token(tmp_path: Path) -> None:
    for bind in ("0.0.0.0:8080", "[::]:8080", "192.168.1.10:8080"):
        with pytest.raises(ConfigError, match="--token-file"):
            make_config(bind=bind, data=tmp_path)
    token = tmp_path / "token"
    token.write_text("short\n")
    with pytest.raises(ConfigError, match="at least 16"):
        make_config(bind="0.0.0.0:8080", data=tmp_path, token_file=token)
    token.write_text("a-long-enough-secret-token\n")
    config = make_config(bind="0.0.0.0:8080", data=tmp_path, token_file=token)
    assert config.token == "a-long-enough-secret-token" and not config.loopback
    config = make_config(data=tmp_path)
    assert config.loopback and config.token is None and config.max_upload == 4 * GiB


# ---- tokens, sessions, CSRF --------------------------------------------------------------------
def test_token_sessions_and_csrf() -> None:
    auth = Auth("the-right-token-123", b"k" * 32)
    assert auth.token_matches("the-right-token-123")
    assert not auth.token_matches("the-right-token-124") and not auth.token_matches("")
    assert auth.bearer_ok("Bearer the-right-token-123")
    assert auth.bearer_ok("bearer  the-right-token-123 ")
    assert not auth.bearer_ok("Basic the-right-token-123") and not auth.bearer_ok(None)
    now = time.time()
    session = auth.new_session(now)
    assert auth.session_ok(session, now)
    assert not auth.session_ok(session, now + 13 * 3600)  # expired
    expiry, nonce, sig = session.split(".")
    assert not auth.session_ok(f"{int(expiry) + 3600}.{nonce}.{sig}", now)  # forged expiry
    assert not Auth("another-token-here!", b"k" * 32).session_ok(session, now)  # token changed
    assert not Auth("the-right-token-123", b"j" * 32).session_ok(session, now)  # secret changed
    nonce = auth.new_nonce()
    assert auth.csrf_ok(nonce, auth.csrf_token(nonce))
    assert not auth.csrf_ok(nonce, auth.csrf_token(auth.new_nonce()))
    assert not auth.csrf_ok(None, auth.csrf_token(nonce)) and not auth.csrf_ok(nonce, "")
    assert not Auth(None, b"k" * 32).token_matches("")


def test_request_origin_checks() -> None:
    assert _loopback_host("127.0.0.1:8080") and _loopback_host("localhost")
    assert _loopback_host("[::1]:8080")
    assert not _loopback_host("evil.example:8080") and not _loopback_host("127.0.0.1.evil.example")
    host = {"host": "127.0.0.1:8080"}
    assert not _cross_site(host)
    assert not _cross_site({**host, "origin": "http://127.0.0.1:8080"})
    assert _cross_site({**host, "origin": "http://127.0.0.1:9999"})
    assert _cross_site({**host, "origin": "null"})
    assert _cross_site({**host, "sec-fetch-site": "same-site"})
    assert not _cross_site({**host, "sec-fetch-site": "same-origin"})
    assert parse_cookies("a=1; b=2; a=3") == {"a": "1", "b": "2"}


# ---- the multipart receiver ----------------------------------------------------------------
def part(name: str, data: bytes, filename: str | None = None) -> bytes:
    fn = f'; filename="{filename}"' if filename is not None else ""
    head = f'--B\r\nContent-Disposition: form-data; name="{name}"{fn}\r\n\r\n'
    return head.encode() + data + b"\r\n"


def receive(paths: JobPaths, body: bytes, chunk: int = 7, max_bytes: int = MiB, **kw: object):  # type: ignore[no-untyped-def]
    receiver = FormReceiver(b"B", paths, max_bytes, 0, **kw)  # type: ignore[arg-type]
    try:
        for i in range(0, len(body), chunk):
            receiver.feed(body[i : i + chunk])
        return receiver.finish()
    finally:
        receiver.close()


@pytest.fixture
def paths(tmp_path: Path) -> JobPaths:
    p = JobPaths(tmp_path, new_job_id())
    p.create()
    return p


def test_receiver_streams_files_and_fields(paths: JobPaths) -> None:
    body = (
        part("capture", b"A" * 1000, "one.pcap")
        + part("capture", b"", "")  # a file input left empty
        + part("host", b"  example.com ")
        + part("keylog", b"CLIENT_RANDOM x y\n", "keys.log")
        + part("capture", b"B" * 10, "two.pcap")
        + b"--B--\r\n"
    )
    form = receive(paths, body)
    assert [(f.name, f.size) for f in form.captures] == [("one.pcap", 1000), ("two.pcap", 10)]
    assert form.fields == {"host": "example.com"}
    assert form.option_files["keylog"].name == "keys.log"
    assert paths.capture(0).read_bytes() == b"A" * 1000
    assert paths.capture(1).read_bytes() == b"B" * 10
    assert paths.option("keylog").read_bytes() == b"CLIENT_RANDOM x y\n"


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (part("host", b"x") + b"--B--\r\n", 400, "no capture"),
        (part("capture", b"x" * 2000, "a.pcap") + b"--B--\r\n", 413, "limit of 1 kB"),
        (part("upload", b"x", "a") + b"--B--\r\n", 422, "unknown form field 'upload'"),
        (part("host", b"x" * 5000) + b"--B--\r\n", 422, "longer than 4096"),
        (part("host", b"a") + part("host", b"b") + b"--B--\r\n", 422, "given twice"),
        (part("host", b"\xff\xfe") + b"--B--\r\n", 422, "not UTF-8"),
        (b"--B\r\nContent-Type: text/plain\r\n\r\nx\r\n--B--\r\n", 400, "Content-Disposition"),
        (b"--B\r\nX-Big: " + b"x" * 9000 + b"\r\n\r\nx\r\n--B--\r\n", 400, "header"),
        (part("capture", b"x", "a.pcap")[:-2], 400, "ends inside a part"),
    ],
)
def test_receiver_refusals(paths: JobPaths, body: bytes, status: int, words: str) -> None:
    with pytest.raises(RequestError) as err:
        receive(paths, body, max_bytes=1000 if status == 413 else MiB)
    assert err.value.status == status and words in err.value.message


def test_receiver_csrf_token_must_come_first(paths: JobPaths) -> None:
    ok = part("csrf_token", b"good") + part("capture", b"x", "a.pcap") + b"--B--\r\n"
    assert receive(paths, ok, csrf=lambda t: t == "good").captures[0].size == 1
    late = part("capture", b"x", "b.pcap") + part("csrf_token", b"good") + b"--B--\r\n"
    with pytest.raises(RequestError, match="CSRF token is missing"):
        receive(paths, late, csrf=lambda t: t == "good")
    wrong = part("csrf_token", b"bad") + part("capture", b"x", "c.pcap") + b"--B--\r\n"
    with pytest.raises(RequestError, match="not valid"):
        receive(paths, wrong, csrf=lambda t: t == "good")


def test_display_names() -> None:
    assert display_name(b"../../etc/passwd", "capture") == "../../etc/passwd"
    assert display_name("a\x00b\x1bc\u202ed".encode(), "c") == "a\ufffdb\ufffdc\ufffdd"
    assert display_name(b"\xff\xfe.pcap", "capture") == "\ufffd\ufffd.pcap"
    assert display_name(b"", "capture") == "capture" and display_name(None, "keylog") == "keylog"
    assert len(display_name(b"x" * 1000, "c")) == NAME_MAX


def test_content_types_and_disk_space(tmp_path: Path) -> None:
    assert multipart_boundary("multipart/form-data; boundary=abc") == b"abc"
    with pytest.raises(RequestError) as err:
        multipart_boundary("application/json")
    assert err.value.status == 415
    with pytest.raises(RequestError) as err:
        multipart_boundary("multipart/form-data")
    assert err.value.status == 400
    check_free_space(tmp_path, 0, 1)
    with pytest.raises(RequestError) as err:
        check_free_space(tmp_path, 1 << 62, 0)
    assert err.value.status == 413 and "free disk space" in err.value.message


# ---- the job table, restarts, retention -----------------------------------------------------
def test_job_ids() -> None:
    ids = {new_job_id() for _ in range(100)}
    assert len(ids) == 100 and all(is_job_id(i) and len(i) == 32 for i in ids)
    assert not is_job_id("../" + "0" * 29) and not is_job_id("A" * 32)
    with pytest.raises(ValueError):
        JobPaths(Path("/tmp"), "../etc")


def test_store_round_trip_recovery_and_retention(tmp_path: Path) -> None:
    config = make_config(data=tmp_path, retention_days=1)
    store = JobStore(tmp_path / "jobs.sqlite3")
    now = time.time()
    states = [Status.RUNNING, Status.QUEUED, Status.UPLOADING, Status.DONE, Status.DONE]
    jobs = []
    for i, status in enumerate(states):
        job = Job(id=new_job_id(), created_at=now - i, status=status,
                  files=[StoredFile("<a>.pcap", 10)], options={"host": "h"})  # fmt: skip
        JobPaths(tmp_path, job.id).create()
        store.insert(job)
        jobs.append(job)
    old = jobs[4]
    old.created_at = now - 2 * 86400
    store.save(old)
    assert store.get(jobs[0].id) == jobs[0]
    assert store.journal_mode() == "wal"
    store.close()
    store = JobStore(tmp_path / "jobs.sqlite3")  # a restart

    async def restart() -> Runner:
        runner = Runner(config, store)
        runner.recover()
        runner.queue_again()
        return runner

    runner = asyncio.run(restart())
    running, queued, uploading, done, _ = (store.get(j.id) for j in jobs)
    assert running is not None and running.status == Status.INTERRUPTED and running.reason
    assert queued is not None and queued.status == Status.QUEUED
    assert list(runner.queue) == [jobs[1].id]
    assert uploading is not None and uploading.status == Status.FAILED
    assert not JobPaths(tmp_path, jobs[2].id).input.exists()
    assert done is not None and done.status == Status.DONE and done.files[0].name == "<a>.pcap"
    gone = asyncio.run(_expire(runner, now))
    assert gone == [old.id]
    assert store.get(old.id) is None and not JobPaths(tmp_path, old.id).root.exists()
    assert done.id in {j.id for j in store.recent()}


async def _expire(runner: Runner, now: float) -> list[str]:
    return runner.expire(now)


# ---- the worker's limits --------------------------------------------------------------------
def _limited(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from tlspcap.serve.worker import limit_resources\n" + code],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_worker_limits_are_enforced_by_the_kernel() -> None:
    proc = _limited("limit_resources(512 * 2**20, None)\nb = bytearray(1024 * 2**20)")
    assert proc.returncode == 1 and "MemoryError" in proc.stderr
    proc = _limited("limit_resources(None, 1)\nwhile True: pass")
    assert proc.returncode == -signal.SIGXCPU


def test_how_a_worker_died_is_told(tmp_path: Path) -> None:
    config = make_config(data=tmp_path, worker_memory="1GiB", worker_cpu_seconds=60)
    runner = Runner(config, JobStore(tmp_path / "jobs.sqlite3"))
    assert runner._death(-signal.SIGKILL) == "the analysis worker was killed (SIGKILL)"
    assert runner._death(-signal.SIGXCPU) == "the analysis used up its CPU time limit (60 s)"
    assert runner._death(EXIT_MEMORY) == "the analysis ran out of its memory limit (1 GiB)"
    assert runner._death(1) == "the analysis worker stopped with exit status 1"
