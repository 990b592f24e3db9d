"""``tlspcap analyze --cluster`` on a real Dask ``LocalCluster`` of two worker processes.

The cluster is started once for the module, from a directory of its own, so its workers do not
share the tests' working directory: a relative path that reached a worker as given would not
open. A worker is killed deterministically: the capture it reads is a FIFO, fed by the test, so
the test knows the worker is in the middle of that file, and which process it is, before it
stops and kills it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed")
dask_config = pytest.importorskip("dask.config")
psutil = pytest.importorskip("psutil")  # installed with distributed

from typer.testing import CliRunner  # noqa: E402

from tlspcap.analyze import find_captures  # noqa: E402
from tlspcap.cli import EXIT_ERROR, EXIT_FAILURES, EXIT_INTERRUPTED, app  # noqa: E402
from tlspcap.cluster import ClusterAddress, parse_address  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
REAL = REPO / "fixtures" / "real"
CA = ["--ca-bundle", str(REAL / "certs" / "root.pem")]
SNI = REAL / "sni_missing.pcap"  # 4 connections: 3 failed (sni_missing), 1 established
ALL_FORMATS = ["-f", "text,json,html,md"]
WAIT = 60.0
"""Seconds a helper waits for a worker before it gives up (a hang guard, not a timing)."""

runner = CliRunner()


def run(*args: str | Path) -> tuple[int, str, str]:
    """``tlspcap analyze ARGS`` in this process; exit code, stdout, stderr."""
    result = runner.invoke(app, ["analyze", *map(str, args)])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A LocalCluster with two single-threaded worker processes (children of this process);
    its scheduler's address."""
    home = tmp_path_factory.mktemp("workers-home")
    cwd = os.getcwd()
    os.chdir(home)  # the workers start (and stay) here
    try:
        lc = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        )
    finally:
        os.chdir(cwd)
    try:
        yield lc.scheduler_address
    finally:
        lc.close()


def tree(directory: Path) -> dict[str, bytes]:
    """Every file of ``directory`` by name, with its bytes."""
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def same_run(
    local: tuple[int, str, str], clustered: tuple[int, str, str], out_l: Path, out_c: Path
) -> None:
    """The exit code, stdout and error lines of two runs are the same, and so are their --out
    directories, byte for byte."""
    assert clustered[0] == local[0]
    assert clustered[1].replace(str(out_c), "OUT") == local[1].replace(str(out_l), "OUT")
    errors = [line for line in clustered[2].splitlines() if "Dask scheduler" not in line]
    assert errors == local[2].splitlines()
    assert "Dask scheduler tcp://" in clustered[2] and "dashboard http" in clustered[2]
    left, right = tree(out_l), tree(out_c)
    assert sorted(right) == sorted(left)
    for name, data in left.items():
        assert right[name] == data, name


@pytest.fixture
def inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Relative paths (from the tests' working directory, not the workers'): the real and
    crafted fixture directories, a file given twice, a corrupt and a missing capture."""
    monkeypatch.chdir(REPO)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "corrupt.pcap").write_bytes(b"not a capture")
    rel_bad = os.path.relpath(bad, REPO)
    return ["fixtures/real", "fixtures/crafted", "fixtures/real/sni_missing.pcap", rel_bad,
            "fixtures/absent.pcap"]  # fmt: skip


OPTION_SETS = {
    "formats-keylog": [*ALL_FORMATS, *CA, "--keylog", str(REAL / "sni_missing.keylog")],
    "filters-diagnosis": [
        "-f", "json,md", *CA, "--only-failures", "--server", "127.0.0.1", "--sni", "local*",
        "--host", "localhost", "--server-protocols", "TLSv1.2,TLSv1.3",
    ],
}  # fmt: skip


@pytest.mark.parametrize("options", OPTION_SETS.values(), ids=OPTION_SETS.keys())
def test_cluster_run_equals_local_jobs_2_byte_for_byte(
    address: str, inputs: list[str], tmp_path: Path, options: list[str]
) -> None:

    out_l, out_c = tmp_path / "local" / "out", tmp_path / "cluster" / "out"
    local = run(*inputs, *options, "--jobs", "2", "--out", out_l)
    clustered = run(*inputs, *options, "--cluster", address, "--out", out_c)
    same_run(local, clustered, out_l, out_c)
    assert local[0] == EXIT_ERROR  # the corrupt and the missing file
    summary = json.loads((out_c / "summary.json").read_text())
    files = [f["file"] for f in summary["files"]]
    expected, _ = find_captures([Path(p) for p in inputs])
    assert files == [str(p) for p in expected]  # each input once, in input order
    assert files.count("fixtures/real/sni_missing.pcap") == 2
    assert "fixtures/absent.pcap" in files and files[0].startswith("fixtures/real/")
    assert not [p for p in out_c.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_local_cluster_started_by_tlspcap(tmp_path: Path) -> None:
    out_l, out_c = tmp_path / "local" / "out", tmp_path / "cluster" / "out"
    files = [SNI, REAL / "tls12_ok_openssl.pcap", REAL / "expired_curl.pcap"]
    local = run(*files, *CA, *ALL_FORMATS, "--jobs", "2", "--out", out_l)
    clustered = run(*files, *CA, *ALL_FORMATS, "--cluster", "local:1", "--out", out_c)
    same_run(local, clustered, out_l, out_c)
    assert "1 worker(s), 1 thread(s)" in clustered[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_unreachable_scheduler_exits_2_before_any_work(tmp_path: Path) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    out = tmp_path / "out"
    with dask_config.set({"distributed.comm.timeouts.connect": "1s"}):
        code, stdout, err = run(SNI, *CA, "--cluster", address, "--out", out)
    assert code == EXIT_ERROR
    assert f"tlspcap: cannot reach the Dask scheduler at {address}" in err
    assert "Traceback" not in err and stdout == ""
    assert not out.exists()  # made for the run, and removed: nothing was written


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cluster", "local:2"], "--cluster needs --out DIR"),
        (["--cluster", "local:0", "--out", "o"], "local:N needs a number of workers N >= 1"),
        (["--cluster", "local:2", "--jobs", "2", "--out", "o"], "--jobs is for local runs"),
    ],
)
def test_cluster_usage_errors(args: list[str], message: str) -> None:
    code, _, err = run(SNI, *args)
    assert code == EXIT_ERROR and message in err


def test_parse_address() -> None:
    assert parse_address("tcp://10.0.0.5:8786") == ClusterAddress("tcp://10.0.0.5:8786")
    assert parse_address("local") == ClusterAddress(None)
    assert parse_address("local:3") == ClusterAddress(None, 3)
    assert str(parse_address("local:3")) == "local:3"
    for bad in ("local:x", "local:-1", "", "tcp://a b"):
        with pytest.raises(ValueError):
            parse_address(bad)


# ---- faults -------------------------------------------------------------------------------
class FifoFeeder(threading.Thread):
    """Serves a capture through the FIFO ``fifo``: the first ``kills`` workers that open it are
    stopped in the middle of the file and killed with SIGKILL; the next one gets ``data``.
    With ``kills=None``, every worker that opens it is killed until :attr:`done` is set: how
    many tries the scheduler makes is Dask's business, and a try that found no writer would
    block in ``open`` for ever.

    Workers are the processes of the module's LocalCluster: children of this process. Should
    anything go wrong here, the thread keeps giving whoever opens the FIFO an empty file until
    :attr:`done` is set, so the run under test ends (and the test fails on :attr:`error`).
    """

    def __init__(self, fifo: Path, data: bytes, kills: int | None) -> None:
        super().__init__(daemon=True)
        os.mkfifo(fifo)
        self.fifo, self.data, self.kills = fifo, data, kills
        self.killed: list[int] = []
        self.fed = False
        self.error: BaseException | None = None
        self.done = threading.Event()

    def run(self) -> None:
        try:
            while self.kills is None or len(self.killed) < self.kills:
                fd = self.wait_reader(until_done=self.kills is None)
                if fd is None:  # the run is over
                    return
                victim = self.reader()  # a worker opened the capture: it is reading it now
                if victim is None:  # it closed the FIFO again before we saw who it was
                    os.close(fd)
                    continue
                os.kill(victim, signal.SIGSTOP)  # it reads nothing more …
                os.close(fd)  # … so it never sees the end of the file
                os.kill(victim, signal.SIGKILL)
                self.killed.append(victim)
                self._wait_closed(victim)  # the FIFO's next reader is the task's next try
            if self.data:
                fd = self.wait_reader()
                assert self.reader() not in self.killed
                os.set_blocking(fd, True)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(self.data)
                self.fed = True
        except BaseException as exc:  # reported by the test
            self.error = exc
            while not self.done.wait(0.05):
                with contextlib.suppress(OSError):
                    os.close(os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK))

    def wait_reader(self, until_done: bool = False) -> int | None:
        """Open the FIFO for writing once a worker has opened it for reading; None when
        ``until_done`` and the run under test is over first."""
        deadline = time.monotonic() + WAIT
        while True:
            try:
                return os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:  # ENXIO: no reader yet
                if exc.errno != errno.ENXIO:
                    raise
                if until_done:
                    if self.done.wait(0.01):
                        return None
                elif time.monotonic() > deadline:
                    raise
                else:
                    time.sleep(0.01)

    def reader(self) -> int | None:
        """The worker process that has the FIFO open; None once no process has it open for
        reading any more."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            for child in psutil.Process().children(recursive=True):
                if self._has_open(child.pid):
                    return child.pid
            try:
                os.close(os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # no reader at all
                    return None
                raise
            time.sleep(0.01)
        raise AssertionError(f"no worker has {self.fifo} open")

    def _wait_closed(self, pid: int) -> None:
        """Until every thread of the killed process ``pid`` has exited: only then are its
        files closed and the FIFO's next reader the task's next try. (Its main thread turns
        zombie first, while the thread that read the capture may still hold the FIFO.)"""
        deadline = time.monotonic() + WAIT
        while True:
            try:
                threads = os.listdir(f"/proc/{pid}/task")
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):  # reaped
                return
            if state in ("Z", "X") and len(threads) <= 1:
                return
            assert time.monotonic() < deadline, f"{pid} did not exit"
            time.sleep(0.01)

    def _has_open(self, pid: int) -> bool:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:  # gone
            return False
        for fd in fds:
            with contextlib.suppress(OSError):  # closed while we looked
                if os.readlink(fd) == str(self.fifo):
                    return True
        return False

    def finish(self) -> None:
        """The run under test is over: stop serving, wait for the thread."""
        self.done.set()
        self.join(WAIT)


needs_proc = pytest.mark.skipif(
    not Path("/proc/self/fd").is_dir() or not hasattr(os, "mkfifo"), reason="needs Linux /proc"
)


def batch_dir(tmp_path: Path) -> tuple[list[Path], Path]:
    """Four captures, the last one at the path the FIFO will take: (files, that path)."""
    d = tmp_path / "captures"
    d.mkdir()
    names = ["tls12_ok_openssl.pcap", "expired_curl.pcap", "cipher_mismatch.pcap"]
    files = [Path(shutil.copy(REAL / n, d / n)) for n in names]
    return [*files, d / "slow.pcap"], d / "slow.pcap"


@needs_proc
def test_worker_killed_mid_file_is_retried_and_counted_once(address: str, tmp_path: Path) -> None:

    files, slow = batch_dir(tmp_path)
    out_l, out_c = tmp_path / "local" / "out", tmp_path / "cluster" / "out"
    shutil.copy(SNI, slow)  # the reference run reads it as a plain file
    local = run(*files, *CA, *ALL_FORMATS, "--jobs", "2", "--out", out_l)
    slow.unlink()
    feeder = FifoFeeder(slow, SNI.read_bytes(), kills=1)
    feeder.start()
    clustered = run(*files, *CA, *ALL_FORMATS, "--cluster", address, "--out", out_c)
    feeder.finish()
    assert feeder.error is None and len(feeder.killed) == 1 and feeder.fed  # died, then retried
    same_run(local, clustered, out_l, out_c)
    assert clustered[0] == EXIT_FAILURES
    summary = json.loads((out_c / "summary.json").read_text())
    assert [f["file"] for f in summary["files"]] == [str(f) for f in files]  # each file once
    slow_entry = summary["files"][3]
    assert slow_entry["error"] is None and slow_entry["connections"] == 4
    assert slow_entry["failed"] == 3
    assert summary["totals"]["connections"] == sum(f["connections"] for f in summary["files"])
    rows = [r for r in summary["connections"] if r["file"] == str(slow)]
    assert len(rows) == 4 and sorted(r["outcome"] for r in rows) == ["established"] + 3 * ["failed"]


@needs_proc
def test_file_whose_worker_dies_every_time_becomes_its_error(address: str, tmp_path: Path) -> None:

    files, slow = batch_dir(tmp_path)
    allowed = int(dask_config.get("distributed.scheduler.allowed-failures"))
    feeder = FifoFeeder(slow, b"", kills=None)
    feeder.start()
    out = tmp_path / "out"
    code, stdout, err = run(*files, *CA, "-f", "json", "--cluster", address, "--out", out)
    feeder.finish()
    # The scheduler's tries, then as many again for the run alone. (The feeder kills whatever
    # opens the capture until the run ends: a miscount fails here instead of hanging.)
    assert feeder.error is None and len(feeder.killed) == 2 * (allowed + 1)
    assert code == EXIT_ERROR
    assert f"error: {slow}: internal error (KilledWorker" in stdout  # in the summary, once
    assert "KilledWorker" not in err
    summary = json.loads((out / "summary.json").read_text())
    entries = {Path(f["file"]).name: f for f in summary["files"]}
    assert len(summary["files"]) == 4
    assert "KilledWorker" in entries["slow.pcap"]["error"]
    assert all(entries[f.name]["error"] is None for f in files[:3]), entries  # the others went on
    report = json.loads((out / "slow.pcap.json").read_text())
    assert "KilledWorker" in report["captures"][0]["error"]  # its report says so, as locally


@needs_proc
def test_ctrl_c_cancels_and_leaves_no_partial_report(address: str, tmp_path: Path) -> None:

    files, slow = batch_dir(tmp_path)
    out = tmp_path / "out"
    feeder = FifoFeeder(slow, b"", kills=0)  # not started: the test holds the FIFO by hand
    cmd = [str(Path(sys.executable).with_name("tlspcap")), "analyze", *map(str, files), *CA,
           "-f", "json,html", "--cluster", address, "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    fd = feeder.wait_reader()  # a worker is in the middle of slow.pcap
    try:
        feeder.reader()
        deadline = time.monotonic() + WAIT
        while len([p for p in out.glob("*.json")]) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)  # the three other captures are done
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=WAIT)
        assert proc.returncode == EXIT_INTERRUPTED, stderr
        assert re.search(r"tlspcap: interrupted after [0-3] of 4 file\(s\)", stderr), stderr
        assert "Traceback" not in stderr
        names = sorted(p.name for p in out.iterdir())
        assert "summary.json" not in names and not [n for n in names if n.startswith("slow")]
        assert not [n for n in names if n.startswith(".")]  # no temporary file left
        for name in names:  # what is there is complete
            if name.endswith(".json"):
                json.loads((out / name).read_text())
            else:
                assert (out / name).read_text().rstrip().endswith("</html>")
    finally:
        os.close(fd)  # the cancelled task ends (Dask does not interrupt a running task)
        if proc.poll() is None:
            proc.kill()
