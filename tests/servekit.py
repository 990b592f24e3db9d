"""Helpers for the ``tlspcap serve`` tests: a real service in a subprocess on a free loopback
port, the CLI run on the same files for comparison, and the service's worker processes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
REAL = REPO / "fixtures" / "real"
ROOT_PEM = REAL / "certs" / "root.pem"
GEN = REPO / "bench" / "gen.py"
FINISHED = ("done", "failed", "interrupted")


class Server:
    """``python -m tlspcap serve`` on ``--bind HOST:0`` with its own data directory."""

    def __init__(self, data: Path, *args: str, bind: str = "127.0.0.1:0", token: str | None = None):
        """Start it and wait until it listens."""
        self.data = data
        self.token = token
        cmd = [sys.executable, "-m", "tlspcap", "serve", "--bind", bind, "--data", str(data)]
        self.log = data.parent / f"{data.name}-server.log"
        self._out = data.parent / f"{data.name}-server.out"
        with self.log.open("ab") as err, self._out.open("wb") as out:
            self.proc = subprocess.Popen(
                [*cmd, *args], stdout=out, stderr=err, start_new_session=True
            )
        line = self._first_line(timeout=60)
        assert "listening on http://" in line, line
        url = line.split("listening on ", 1)[1].split(" ", 1)[0]
        port = url.rstrip("/").rsplit(":", 1)[1]
        self.url = f"http://127.0.0.1:{port}"
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self.client = httpx.Client(base_url=self.url, headers=headers, timeout=60)
        self._wait_ready()

    def _first_line(self, timeout: float) -> str:
        """The service's line on stdout (it goes to a file: a pipe nobody reads could fill)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self._out.read_text()
            if text.endswith("\n") or self.proc.poll() is not None:
                return text
            time.sleep(0.02)
        self.kill()
        raise AssertionError("the service did not start")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if self.client.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError("the service does not answer")

    @property
    def pid(self) -> int:
        """The service's process id."""
        return self.proc.pid

    def stop(self) -> None:
        """SIGTERM (a graceful stop) and wait."""
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        """SIGKILL the service and anything it started."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    # ---- the API ---------------------------------------------------------------------------
    def upload(
        self, *files: Path, names: Sequence[str] | None = None, **fields: Any
    ) -> httpx.Response:
        """``POST /api/v1/analyses`` with ``files`` as captures; ``fields``: option files
        (Path) and text options (str)."""
        parts: list[tuple[str, Any]] = []
        handles = []
        for i, f in enumerate(files):
            fh = f.open("rb")
            handles.append(fh)
            parts.append(
                ("capture", (names[i] if names else f.name, fh, "application/octet-stream"))
            )
        data = {}
        for key, value in fields.items():
            if isinstance(value, Path):
                fh = value.open("rb")
                handles.append(fh)
                parts.append((key, (value.name, fh, "application/octet-stream")))
            else:
                data[key] = value
        try:
            return self.client.post("/api/v1/analyses", files=parts, data=data)
        finally:
            for fh in handles:
                fh.close()

    def status(self, job_id: str) -> dict[str, Any]:
        """The job's status (the report, once done, under ``result``)."""
        r = self.client.get(f"/api/v1/analyses/{job_id}")
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def wait(
        self, job_id: str, timeout: float = 120, until: Sequence[str] = FINISHED
    ) -> dict[str, Any]:
        """Poll until the job's status is one of ``until``."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.status(job_id)
            if st["status"] in until:
                return st
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} still {st['status']} after {timeout} s")
            time.sleep(0.05)

    def workers(self) -> list[int]:
        """Process ids of the analysis workers running now."""
        return worker_pids(self.pid)


def worker_pids(parent: int) -> list[int]:
    """Children of ``parent`` that are ``tlspcap.serve.worker`` processes."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"tlspcap.serve.worker" in cmdline:
            pids.append(int(entry.name))
    return pids


def cli(cwd: Path, *args: str) -> bytes:
    """``tlspcap analyze ARGS`` run in ``cwd``: its stdout bytes."""
    proc = subprocess.run(
        [sys.executable, "-m", "tlspcap", "analyze", *args],
        cwd=cwd,
        capture_output=True,
        timeout=300,
    )
    assert proc.returncode in (0, 1, 2), proc.stderr.decode()
    return proc.stdout


def generate(out: Path, size: str) -> Path:
    """A capture of about ``size`` from the benchmark generator."""
    subprocess.run(
        [sys.executable, str(GEN), "--size", size, "--out", str(out)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return out
