"""Benchmark ``tlspcap serve``: N parallel uploads of a large capture, time to verdict, memory.

Usage: ``python bench/serve_bench.py [--parallel N] [--workers W] [CAPTURE]`` (default capture:
``bench/out/bench-100MB.pcap``, generated with ``bench/gen.py`` when missing).

It starts the service on a free loopback port with its own temporary data directory, uploads
the capture N times at once through the API (each upload streamed from the file by its own
thread, with the CA bundle of the fixtures), and polls each job until it is done. Per job: the
upload time, the wait in the queue, the analysis time and the time to verdict (from the start
of the upload to ``done``). Memory: the service's peak RSS (``VmHWM`` of its process), each
worker's peak RSS (its own ``ru_maxrss``, as the job reports it), and the highest sum of the
service's and its workers' RSS seen by a sampler every 20 ms. It checks that every job found
the verdicts the generator wrote in the capture's truth sidecar. Nothing leaves this machine:
the service listens on 127.0.0.1. Exit status 1 when a verdict count differs.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CAPTURE = REPO / "bench" / "out" / "bench-100MB.pcap"
CA = REPO / "fixtures" / "real" / "certs" / "root.pem"


def rss_kb(pid: int, field: str = "VmRSS") -> int:
    """A ``/proc/PID/status`` memory field in kB (0 when the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(parent: int) -> list[int]:
    """Process ids whose parent is ``parent``."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
                out.append(int(entry.name))
    return out


class Sampler(threading.Thread):
    """Samples the service's and its workers' RSS; keeps the highest total."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_total_kb = 0
        self.peak_workers = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            kids = children(self.pid)
            total = rss_kb(self.pid) + sum(rss_kb(k) for k in kids)
            self.peak_total_kb = max(self.peak_total_kb, total)
            self.peak_workers = max(self.peak_workers, len(kids))
            time.sleep(0.02)


def start_service(
    data: Path, workers: int, uploads: int, log: Path
) -> tuple[subprocess.Popen[bytes], str]:
    """The service on a free loopback port; its process and base URL. Its stdout (one line)
    and stderr (the log) go to files: a pipe that nobody reads would fill and stop it."""
    out = data.parent / "serve.out"
    with out.open("wb") as stdout, log.open("ab") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tlspcap", "serve", "--bind", "127.0.0.1:0", "--data",
             str(data), "--workers", str(workers), "--uploads", str(uploads)],
            stdout=stdout, stderr=stderr, start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    line = ""
    while time.monotonic() < deadline and proc.poll() is None:
        line = out.read_text()
        if line.endswith("\n"):
            break
        time.sleep(0.02)
    if "listening on " not in line:
        proc.kill()
        raise SystemExit(f"serve_bench: the service did not start: {line!r}")
    url = line.split("listening on ", 1)[1].split(" ", 1)[0].rstrip("/")
    return proc, url


def one_job(url: str, capture: Path, start: threading.Barrier) -> dict[str, Any]:
    """Upload ``capture`` (after every thread is ready), wait for the verdict; timings."""
    with httpx.Client(base_url=url, timeout=600) as client:
        start.wait()
        t0 = time.perf_counter()
        t0_wall = time.time()
        with capture.open("rb") as fh, CA.open("rb") as ca:
            r = client.post(
                "/api/v1/analyses",
                files=[("capture", (capture.name, fh)), ("ca_bundle", (CA.name, ca))],
            )
        t_uploaded = time.perf_counter()
        if r.status_code != 202:
            raise SystemExit(f"serve_bench: upload refused: {r.status_code} {r.text}")
        job = r.json()["id"]
        while True:
            st = client.get(f"/api/v1/analyses/{job}").json()
            if st["status"] in ("done", "failed", "interrupted"):
                break
            time.sleep(0.1)
        t_done = time.perf_counter()
        if st["status"] != "done":
            raise SystemExit(f"serve_bench: job {job} {st['status']}: {st['reason']}")
    causes: dict[str, int] = {}
    for cap in st["result"]["captures"]:
        for conn in cap["connections"]:
            if conn["outcome"] == "failed":
                causes[conn["cause"]] = causes.get(conn["cause"], 0) + 1
    started, finished = (
        datetime.fromisoformat(st[k]).timestamp() for k in ("started_at", "finished_at")
    )
    return {
        "id": job,
        "upload_s": t_uploaded - t0,
        "queue_s": max(started - (t0_wall + (t_uploaded - t0)), 0.0),
        "analysis_s": finished - started,
        "verdict_s": t_done - t0,
        "worker_rss_mb": st["worker"]["max_rss_bytes"] / 1e6,
        "worker_cpu_s": st["worker"]["cpu_seconds"],
        "connections": st["summary"]["connections"],
        "failed": st["summary"]["failed"],
        "causes": causes,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("capture", nargs="?", type=Path, default=DEFAULT_CAPTURE)
    parser.add_argument("--parallel", type=int, default=4, help="uploads at once (default 4)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="the service's --workers (default: CPUs)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    capture: Path = args.capture
    if not capture.exists():
        subprocess.run(
            [sys.executable, str(REPO / "bench" / "gen.py"), "--size", "100MB", "--out",
             str(capture)], check=True,
        )  # fmt: skip
    truth_path = capture.with_name(capture.name + ".truth.json")
    truth = json.loads(truth_path.read_text()) if truth_path.exists() else None
    with tempfile.TemporaryDirectory(prefix="tlspcap-serve-bench-") as tmp:
        log = Path(os.environ.get("SERVE_BENCH_LOG", Path(tmp) / "serve.log"))
        proc, url = start_service(Path(tmp) / "data", args.workers, args.parallel, log)
        sampler = Sampler(proc.pid)
        sampler.start()
        try:
            barrier = threading.Barrier(args.parallel)
            t0 = time.perf_counter()
            with ThreadPoolExecutor(args.parallel) as pool:
                runs = range(args.parallel)
                jobs = list(pool.map(lambda _: one_job(url, capture, barrier), runs))
            wall = time.perf_counter() - t0
            time.sleep(0.1)
            service_peak_mb = rss_kb(proc.pid, "VmHWM") / 1e3
        finally:
            sampler.stop.set()
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    size_mb = capture.stat().st_size / 1e6
    result = {
        "capture": capture.name,
        "capture_mb": round(size_mb, 1),
        "parallel": args.parallel,
        "workers": args.workers,
        "cpus": os.cpu_count(),
        "wall_s": round(wall, 2),
        "throughput_mb_s": round(size_mb * args.parallel / wall, 1),
        "service_peak_rss_mb": round(service_peak_mb, 1),
        "worker_peak_rss_mb": round(max(j["worker_rss_mb"] for j in jobs), 1),
        "peak_total_rss_mb": round(sampler.peak_total_kb / 1e3, 1),
        "jobs": jobs,
    }
    bad = []
    if truth is not None:
        for j in jobs:
            if j["failed"] != truth["outcomes"]["failed"] or j["causes"] != truth["failed_causes"]:
                bad.append(j["id"])
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(f"{args.parallel} parallel uploads of {capture.name} ({size_mb:.1f} MB), "
              f"--workers {args.workers}, {os.cpu_count()} CPUs")  # fmt: skip
        print("| job | upload s | queued s | analysis s | time to verdict s | worker peak RSS MB |")
        print("|---|---|---|---|---|---|")
        for i, j in enumerate(jobs, 1):
            print(f"| {i} | {j['upload_s']:.2f} | {j['queue_s']:.2f} | {j['analysis_s']:.2f} | "
                  f"{j['verdict_s']:.2f} | {j['worker_rss_mb']:.1f} |")  # fmt: skip
        print(f"all verdicts in {wall:.2f} s ({result['throughput_mb_s']} MB/s of captures); "
              f"service peak RSS {result['service_peak_rss_mb']} MB; highest service + workers "
              f"RSS {result['peak_total_rss_mb']} MB")  # fmt: skip
        if truth is not None:
            print("verdicts match the generator's truth" if not bad else f"MISMATCH in {bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
