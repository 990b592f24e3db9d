"""Batch throughput on Dask (``--cluster``) against local processes (``--jobs``).

Usage: ``python bench/cluster_bench.py [--files 4] [--size 100MB] [--tiny 300] [--repeat 3]``

Measured on this machine, each command a child process (wall time, and the client's CPU time
and peak RSS from its own ``wait4`` rusage), best of ``--repeat`` runs:

* throughput: a directory of ``--files`` captures of ``--size`` made by ``bench/gen.py`` (seeds
  1..N, cached in ``bench/out/cluster/``), analysed into ``--out DIR -f json`` with
  ``--jobs 2``, with ``--cluster local:2`` (a LocalCluster started and stopped by tlspcap) and
  with ``--cluster tcp://…`` (a two-worker LocalCluster this script keeps running, as a
  cluster that is already up would be);
* the overhead per file: a directory of ``--tiny`` copies of a 3 kB fixture (one TLS
  connection each), and four times as many, with ``--jobs 2`` and on the running cluster: the
  slope between the two sizes is the cost of one more file, the intercept the fixed cost of a
  run; the client's peak RSS at both sizes shows what more files cost it;
* the client's summary pass: ``summary.json``, ``summary.csv`` and ``totals.csv`` written from
  a brief store of 100,000 connections (the briefs of a generated capture, repeated), in
  microseconds per connection.

Every cluster run's reports and summaries are compared with the ``--jobs 2`` run's, byte for
byte; the script exits 1 if one differs. No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import psutil  # installed with distributed
from run import DEFAULT_CA, REPO, machine

TINY = REPO / "fixtures" / "real" / "tls12_ok_openssl.pcap"
GEN = REPO / "bench" / "gen.py"


# A small process that starts the command and reports on it: the command's peak RSS is then its
# own, not the high-water mark of this (large) process that it was forked from.
_LAUNCHER = """
import os, sys, time
report, cmd = sys.argv[1], sys.argv[2:]
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execv(cmd[0], cmd)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - start
with open(report, "w") as fh:
    cpu = usage.ru_utime + usage.ru_stime
    fh.write(f"{wall} {cpu} {usage.ru_maxrss} {os.waitstatus_to_exitcode(status)}")
"""


def measure(cmd: list[str], stdout: Path) -> tuple[float, float, int, int]:
    """Run ``cmd`` with stdout to a file; (wall s, CPU s of it and the children it waited for,
    peak RSS KB of the largest of them, exit status)."""
    report = stdout.with_suffix(".measure")
    with stdout.open("wb") as out:
        proc = subprocess.run(
            [sys.executable, "-c", _LAUNCHER, str(report), *cmd],
            stdout=out,
            stderr=subprocess.PIPE,
            check=False,
        )
    wall, cpu, rss, code = report.read_text().split()
    if int(code) not in (0, 1, 2):
        sys.stderr.write(proc.stderr.decode(errors="replace")[-2000:])
    return float(wall), float(cpu), int(rss), int(code)


def cluster_cpu() -> float:
    """CPU seconds used so far by this process (the running cluster's scheduler lives here) and
    its worker processes (its children)."""
    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.Error:
            continue
    return total


@dataclass
class Runs:
    """The timings of one command, over the repeats."""

    label: str
    files: int
    size: int
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    """CPU s of the command and the processes it started and waited for."""
    cluster_cpu: list[float] = field(default_factory=list)
    """CPU s of the running cluster (scheduler and workers) during the command."""
    rss_kb: list[int] = field(default_factory=list)

    @property
    def best(self) -> float:
        """The least disturbed run."""
        return min(self.wall)

    @property
    def total_cpu(self) -> float:
        """CPU s of every process the run used (the least of the repeats)."""
        return min(a + b for a, b in zip(self.cpu, self.cluster_cpu, strict=True))

    def row(self) -> str:
        """One Markdown table row."""
        median = sorted(self.wall)[len(self.wall) // 2]
        return (
            f"| {self.label} | {self.files} | {self.size / 1e6:,.1f} | {self.best:.2f} | "
            f"{median:.2f} | {self.size / 1e6 / self.best:.1f} | {self.total_cpu:.2f} | "
            f"{min(self.cpu):.2f} | {max(self.rss_kb) / 1024:.0f} |"
        )


def tlspcap(*args: str) -> list[str]:
    """The console script of this interpreter's environment, with ``args``."""
    return [str(Path(sys.executable).parent / "tlspcap"), "analyze", *args]


def make_captures(count: int, size: str, folder: Path, ca: Path) -> list[Path]:
    """``count`` generated captures of ``size`` in ``folder`` (cached by gen.py)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in range(1, count + 1):
        out = folder / f"bench-{size}-s{seed}.pcap"
        cmd = [sys.executable, str(GEN), "--size", size, "--seed", str(seed), "--out", str(out)]
        subprocess.run([*cmd, "--ca-bundle", str(ca)], check=True)
        paths.append(out)
    return paths


def tree(directory: Path) -> dict[str, bytes]:
    """Every file of ``directory`` by name, with its bytes."""
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def timed(runs: Runs, cmd: list[str], out: Path, scratch: Path) -> str:
    """Run ``cmd`` once into a fresh ``out``; add its timing to ``runs``; return its stdout
    with ``out`` replaced by ``OUT``."""
    shutil.rmtree(out, ignore_errors=True)
    stdout = scratch / "stdout.txt"
    before = cluster_cpu()
    wall, cpu, rss, code = measure(cmd, stdout)
    if code not in (0, 1, 2):
        raise SystemExit(f"cluster_bench: {' '.join(cmd)} exited {code}")
    runs.wall.append(wall)
    runs.cpu.append(cpu)
    runs.cluster_cpu.append(cluster_cpu() - before)
    runs.rss_kb.append(rss)
    return stdout.read_text().replace(str(out), "OUT")


def compare(reference: tuple[str, dict[str, bytes]], other: tuple[str, dict[str, bytes]]) -> int:
    """How many files (and stdout) differ between two runs."""
    diff = int(reference[0] != other[0])
    names = set(reference[1]) | set(other[1])
    return diff + sum(reference[1].get(n) != other[1].get(n) for n in names)


def batch(
    label_prefix: str,
    inputs: Path,
    files: int,
    size: int,
    ca: Path,
    address: str,
    repeat: int,
    scratch: Path,
) -> tuple[list[Runs], int]:
    """``--jobs 2``, ``local:2`` and the running cluster on ``inputs``; (timings, files that
    differ from the --jobs 2 run)."""
    common = ["--ca-bundle", str(ca), "-f", "json", str(inputs)]
    setups = [
        (f"{label_prefix} --jobs 2", ["--jobs", "2"]),
        (f"{label_prefix} --cluster local:2", ["--cluster", "local:2"]),
        (f"{label_prefix} --cluster tcp:// (running)", ["--cluster", address]),
    ]
    runs = [Runs(label, files, size) for label, _ in setups]
    differ = 0
    for _ in range(repeat):
        reference: tuple[str, dict[str, bytes]] | None = None
        for r, (_label, extra) in zip(runs, setups, strict=True):
            out = scratch / "out"
            stdout = timed(r, tlspcap(*common, *extra, "--out", str(out)), out, scratch)
            result = (stdout, tree(out))
            if reference is None:
                reference = result
            else:
                differ += compare(reference, result)
    return runs, differ


def tiny_dir(folder: Path, count: int) -> Path:
    """``count`` copies of a 3 kB capture (one TLS connection each)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for i in range(count):
        shutil.copy(TINY, folder / f"tiny{i:05d}.pcap")
    return folder


def summary_pass(reports_json: Path, connections: int, scratch: Path) -> tuple[float, int]:
    """Seconds per connection of the client's summary pass (totals, ``summary.json``,
    ``summary.csv``, ``totals.csv``) over about ``connections`` briefs: the brief of the
    capture reported in ``reports_json``, as many times as it takes."""
    from tlspcap.cli import write_summaries
    from tlspcap.outbatch import BriefStore, brief_capture
    from tlspcap.report.outdir import assign_names
    from tlspcap.report.summary import ConnectionReport, FileReport

    capture = json.loads(reports_json.read_text())["captures"][0]
    conns = [ConnectionReport(c) for c in capture.pop("connections")]
    brief = brief_capture(FileReport(capture, conns), hidden=0)
    count = -(-connections // len(conns))
    files = [f"capture{i}.pcap" for i in range(count)]
    _, written = assign_names(files, ["json"])
    store = BriefStore(str(scratch), files)
    for i in range(count):
        store.add(i, brief)
    out = scratch / "summaries"
    out.mkdir(exist_ok=True)
    start = time.perf_counter()
    t = store.totals()
    write_summaries(out, store, t, written, "bench")
    took = time.perf_counter() - start
    store.close()
    return took / (count * len(conns)), count * len(conns)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--files", type=int, default=4, help="generated captures (default 4)")
    ap.add_argument("--size", default="100MB", help="size of each (default 100MB)")
    ap.add_argument("--tiny", type=int, default=300, help="tiny files (default 300, and 4x)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per command (default 3)")
    ap.add_argument("--ca-bundle", type=Path, default=DEFAULT_CA)
    ap.add_argument("--workdir", type=Path, default=REPO / "bench" / "out" / "cluster")
    args = ap.parse_args(argv)

    from distributed import LocalCluster

    big = make_captures(args.files, args.size, args.workdir / "captures", args.ca_bundle)
    big_bytes = sum(p.stat().st_size for p in big)
    print(f"machine before: {machine()}")
    with (
        tempfile.TemporaryDirectory(prefix="tlspcap-cluster-bench-") as tmp,
        LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as lc,
    ):
        scratch = Path(tmp)
        address = lc.scheduler_address
        rows, differ = batch(
            f"{args.files} x {args.size}", big[0].parent, args.files, big_bytes,
            args.ca_bundle, address, args.repeat, scratch,
        )  # fmt: skip
        reports_json = scratch / "first.json"
        subprocess.run(
            tlspcap("--ca-bundle", str(args.ca_bundle), "-f", "json", "--out",
                    str(scratch / "one"), str(big[0])), check=False, capture_output=True,
        )  # fmt: skip
        shutil.copy(scratch / "one" / f"{big[0].name}.json", reports_json)
        tiny_rows: list[list[Runs]] = []
        for count in (args.tiny, 4 * args.tiny):
            folder = tiny_dir(scratch / f"tiny{count}", count)
            size = sum(p.stat().st_size for p in folder.iterdir())
            found, d = batch(
                f"{count} x 3 kB", folder, count, size, args.ca_bundle, address,
                args.repeat, scratch,
            )  # fmt: skip
            tiny_rows.append(found)
            differ += d
            shutil.rmtree(folder)
        per_conn, conns = summary_pass(reports_json, 100_000, scratch)
    print(f"machine after: {machine()}")
    print()
    print(
        "| run | files | MB | wall s, best | wall s, median | MB/s | CPU s, all | "
        "CPU s, tlspcap process tree | peak RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in [*rows, *tiny_rows[0], *tiny_rows[1]]:
        print(r.row())
    print()
    jobs, local, running = rows
    print(
        f"throughput on {args.files} x {args.size}: --jobs 2 {jobs.best:.2f} s, local:2 "
        f"{local.best:.2f} s ({jobs.best / local.best:.2f}x of --jobs 2), running cluster "
        f"{running.best:.2f} s ({jobs.best / running.best:.2f}x); CPU s, all processes: "
        f"{jobs.total_cpu:.2f}, {local.total_cpu:.2f}, {running.total_cpu:.2f}"
    )
    small, large = tiny_rows
    n1, n2 = args.tiny, 4 * args.tiny
    for i, name in ((0, "--jobs 2"), (1, "local:2"), (2, "running cluster")):
        slope = (large[i].best - small[i].best) / (n2 - n1)
        cpu_slope = (large[i].total_cpu - small[i].total_cpu) / (n2 - n1)
        print(
            f"per file, {name}: wall {slope * 1e3:.2f} ms, CPU {cpu_slope * 1e3:.2f} ms; fixed "
            f"wall of a run {small[i].best - slope * n1:.2f} s; peak RSS "
            f"{max(small[i].rss_kb) / 1024:.0f} MB at {n1} files, "
            f"{max(large[i].rss_kb) / 1024:.0f} MB at {n2}"
        )
    print(f"client summary pass: {per_conn * 1e6:.1f} us per connection ({conns:,} connections)")
    if differ:
        print(f"OUTPUTS DIFFER: {differ} file(s) of a cluster run differ from --jobs 2")
        return 1
    print("every cluster run's reports and summaries equal the --jobs 2 run's, byte for byte")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())
