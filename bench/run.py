"""Time tlspcap against tshark and a bare record-header loop, and check tlspcap's verdicts.

Usage: ``python bench/run.py [--repeat N] [--no-tshark] CAPTURE...`` (each capture made by
``bench/gen.py``, with its ``.truth.json`` sidecar next to it).

For every capture, in the same run, it measures (each command is a child process; wall time
with ``time.perf_counter``, peak RSS from that child's own ``wait4`` rusage):

Wall time is what the targets are stated in; CPU time (user + system, from the same rusage) is
shown too, since on a shared machine it moves much less with other load.

* ``bare``: a minimal Python loop over the pcap record headers (pcapng block headers) that
  reads the file in 1 MiB chunks and only unpacks each header: the floor for Python;
* ``tlspcap``: ``tlspcap analyze --format json --ca-bundle CA CAPTURE`` (the full diagnosis);
* ``tshark``: the field extraction in :data:`TSHARK_FIELDS` (ClientHello, ServerHello, alerts).

It prints a Markdown table (best, median and worst wall time over ``--repeat`` runs;
packets/s and MB/s from the best; the ratios use the best too, the run least disturbed by
other load) and the ratios against the targets, then compares tlspcap's verdict counts
(per outcome, per cause, and per template) with the generator's truth. The exit status is 1
when a count differs (speed must never come from skipping work), 2 on a usage or run error.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CA = REPO / "fixtures" / "real" / "certs" / "root.pem"
TSHARK_FILTER = "tls.handshake.type==1 || tls.handshake.type==2 || tls.alert_message"
TSHARK_FIELDS = (
    "frame.number",
    "tcp.stream",
    "tls.handshake.type",
    "tls.handshake.ciphersuite",
    "tls.handshake.extensions_server_name",
    "tls.alert_message.desc",
)
CHUNK = 1 << 20
TARGET_VS_TSHARK = 10.0
TARGET_VS_BARE = 3.0
TARGET_RSS_MB = 150.0


# ---- the bare loop (runs in a child: ``run.py --bare FILE``) ----------------------------------
def bare_loop(path: Path) -> tuple[int, int]:
    """Count the packet records of a pcap or pcapng file by unpacking only their headers."""
    with path.open("rb", buffering=0) as fh:
        head = fh.read(24)
        if head[:4] == b"\x0a\x0d\x0d\x0a":
            order = "<" if head[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
            return _bare(fh, head, struct.Struct(order + "II"), 0, 12, True)
        order = "<" if head[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        return _bare(fh, head[24:], struct.Struct(order + "IIII"), 24, 16, False)


def _bare(
    fh: Any, buf: bytes, header: struct.Struct, consumed: int, need: int, ng: bool
) -> tuple[int, int]:
    """The loop itself: ``need`` header bytes per record, then skip the record."""
    unpack = header.unpack_from
    pos = 0
    packets = 0
    total = consumed
    while True:
        if len(buf) - pos < need:
            buf = buf[pos:] + fh.read(CHUNK)
            pos = 0
            if len(buf) < need:
                break
        if ng:
            btype, blen = unpack(buf, pos)
            end = pos + blen
            if btype in (2, 3, 6):
                packets += 1
        else:
            _sec, _frac, caplen, _wire = unpack(buf, pos)
            end = pos + 16 + caplen
            packets += 1
        while end > len(buf):
            more = fh.read(max(CHUNK, end - len(buf)))
            if not more:
                return packets, total + len(buf)
            buf = buf[pos:] + more
            end -= pos
            pos = 0
        total += end - pos
        pos = end
    return packets, total


# ---- measuring ----------------------------------------------------------------------------
@dataclass(slots=True)
class Timing:
    """Repeated runs of one command on one capture."""

    tool: str
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    """User + system CPU seconds of each run: less sensitive than wall time to other load."""
    rss_kb: list[int] = field(default_factory=list)
    codes: list[int] = field(default_factory=list)

    @property
    def best(self) -> float:
        """The fastest run (the least disturbed by other load)."""
        return min(self.walls)

    @property
    def best_cpu(self) -> float:
        """The smallest CPU time of the runs."""
        return min(self.cpus)

    @property
    def peak_mb(self) -> float:
        """The largest peak RSS of the runs, MB."""
        return max(self.rss_kb) / 1024


def measure(
    cmd: list[str], stdout: Path, env: dict[str, str] | None = None
) -> tuple[float, float, int, int]:
    """Run ``cmd`` with stdout to a file; (wall s, CPU s, peak RSS KB, exit status)."""
    with stdout.open("wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE, env=env)
        assert proc.stderr is not None
        err = proc.stderr.read()
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 1):
        sys.stderr.write(err.decode(errors="replace")[-2000:])
    return wall, usage.ru_utime + usage.ru_stime, int(usage.ru_maxrss), proc.returncode


def tlspcap_command(ca: Path, capture: Path) -> list[str]:
    """The tlspcap command line (the console script of this interpreter's environment)."""
    script = Path(sys.executable).parent / "tlspcap"
    base = [str(script)] if script.exists() else [sys.executable, "-c", _MAIN]
    return [*base, "analyze", "--format", "json", "--ca-bundle", str(ca), str(capture)]


_MAIN = "from tlspcap.cli import main; main()"
_SCAN = "import sys, tlspcap_engine; print(*tlspcap_engine.scan(sys.argv[1]))"


def engine_built() -> bool:
    """The compiled engine is importable by this interpreter."""
    code = "import tlspcap_engine"
    return subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def path_env(path: str) -> dict[str, str]:
    """The environment that forces tlspcap's packet stage (``rust`` or ``python``)."""
    return {**os.environ, "TLSPCAP_ENGINE": path}


def tshark_command(capture: Path) -> list[str]:
    """The tshark field extraction the targets are stated against."""
    fields = [a for f in TSHARK_FIELDS for a in ("-e", f)]
    return ["tshark", "-r", str(capture), "-Y", TSHARK_FILTER, "-T", "fields", *fields]


# ---- checking -----------------------------------------------------------------------------
def template_index(server: str) -> int:
    """The template number bench/gen.py encodes in a server address (0: none)."""
    if server.startswith("[fd00:"):
        import ipaddress

        return int.from_bytes(ipaddress.IPv6Address(server[1 : server.index("]")]).packed[6:8])
    parts = server.split(".")
    return int(parts[1]) if len(parts) == 4 and parts[0] == "10" else 0


def check_verdicts(report: dict[str, Any], truth: dict[str, Any]) -> list[str]:
    """Differences between tlspcap's JSON report and the generator's truth (empty: equal)."""
    problems: list[str] = []
    captures = report.get("captures") or []
    if len(captures) != 1 or captures[0].get("error"):
        return [f"tlspcap reported no usable capture: {captures[:1]}"]
    conns = captures[0]["connections"]
    got_outcomes = Counter(c["outcome"] for c in conns)
    got_causes: dict[str, Counter[str]] = {}
    by_template: dict[int, Counter[tuple[str, str]]] = {}
    for c in conns:
        got_causes.setdefault(c["outcome"], Counter())[str(c["cause"])] += 1
        t = template_index(c["server"])
        by_template.setdefault(t, Counter())[(c["outcome"], str(c["cause"]))] += 1
    if captures[0]["packets"] != truth["packets"]:
        problems.append(
            f"packets: tlspcap read {captures[0]['packets']}, file has {truth['packets']}"
        )
    if dict(got_outcomes) != truth["outcomes"]:
        problems.append(f"outcomes: tlspcap {dict(got_outcomes)} != truth {truth['outcomes']}")
    for outcome in sorted(set(truth["causes"]) | set(got_causes)):
        want = truth["causes"].get(outcome, {})
        got = dict(got_causes.get(outcome, Counter()))
        if got != want:
            problems.append(f"{outcome} causes: tlspcap {got} != truth {want}")
    for row in truth["templates"]:
        want_t: Counter[tuple[str, str]] = Counter()
        for outcome, cause in row["verdicts"]:
            want_t[(outcome, str(cause))] += row["instances"]
        got_t = by_template.pop(row["index"], Counter())
        if got_t != want_t:
            problems.append(f"template {row['name']}: tlspcap {dict(got_t)} != {dict(want_t)}")
    for t, got_t in by_template.items():
        problems.append(f"connections outside any template (block {t}): {dict(got_t)}")
    return problems


# ---- the run ------------------------------------------------------------------------------
def machine() -> str:
    """CPU model, cores and load: the context of the numbers."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{model}, {os.cpu_count()} cores, load average {load}"


def run_capture(
    capture: Path, ca: Path, repeat: int, tshark: bool, workdir: Path
) -> tuple[list[Timing], list[str], dict[str, Any]]:
    """Measure the tools on one capture; return timings, verdict problems and the truth."""
    truth_path = capture.with_name(capture.name + ".truth.json")
    truth = json.loads(truth_path.read_text())
    tools: list[tuple[str, list[str], dict[str, str] | None]] = [
        ("bare", [sys.executable, str(Path(__file__).resolve()), "--bare", str(capture)], None),
    ]
    if engine_built():
        tools += [
            ("engine floor", [sys.executable, "-c", _SCAN, str(capture)], None),
            ("tlspcap", tlspcap_command(ca, capture), path_env("rust")),
            ("tlspcap python", tlspcap_command(ca, capture), path_env("python")),
        ]
    else:
        tools.append(("tlspcap", tlspcap_command(ca, capture), path_env("python")))
    if tshark:
        tools.append(("tshark", tshark_command(capture), None))
    timings = {name: Timing(name) for name, _, _ in tools}
    outputs = {n: workdir / f"{capture.name}.{n.replace(' ', '-')}.out" for n, _, _ in tools}
    for _ in range(repeat):  # interleaved, so that a burst of load hits every tool alike
        for name, cmd, env in tools:
            wall, cpu, rss, code = measure(cmd, outputs[name], env)
            t = timings[name]
            t.walls.append(wall)
            t.cpus.append(cpu)
            t.rss_kb.append(rss)
            t.codes.append(code)
    problems = []
    for name, t in timings.items():
        bad = [c for c in t.codes if c not in (0, 1)]
        if bad:
            problems.append(f"{name} exited with status {bad[0]}")
    bare_count = outputs["bare"].read_text().split()
    if bare_count and int(bare_count[0]) != truth["packets"]:
        problems.append(f"bare loop counted {bare_count[0]} packets, file has {truth['packets']}")
    for name in ("engine floor",):
        if name in outputs and outputs[name].read_text().split()[:1] != bare_count[:1]:
            problems.append(f"{name} read {outputs[name].read_text().split()[:1]} packets")
    for name in ("tlspcap", "tlspcap python"):
        if name not in outputs:
            continue
        try:
            report = json.loads(outputs[name].read_text())
        except ValueError as exc:
            problems.append(f"{name} output is not JSON: {exc}")
        else:
            problems += [f"{name}: {p}" for p in check_verdicts(report, truth)]
    if "tlspcap python" in outputs and _report_body(outputs["tlspcap"]) != _report_body(
        outputs["tlspcap python"]
    ):
        problems.append("the engine's JSON differs from the pure-Python path's")
    if tshark:
        lines = outputs["tshark"].read_text().splitlines()
        hellos = sum(1 for ln in lines if "1" in ln.split("\t")[2].split(",")[:1])
        truth["tshark_lines"] = len(lines)
        truth["tshark_client_hello_frames"] = hellos
    return list(timings.values()), problems, truth


def _report_body(path: Path) -> Any:
    """A JSON report without the parts that name the run (timings) rather than the capture."""
    doc = json.loads(path.read_text())
    doc.pop("elapsed_s", None)
    doc.pop("generated", None)
    return doc


def table(rows: list[tuple[Path, list[Timing], dict[str, Any]]]) -> str:
    """The Markdown table of all measurements, then the ratios against the targets."""
    out = [
        "| capture | tool | wall s: best / median / worst | CPU s (best) | packets/s | MB/s "
        "| peak RSS MB |",
        "|---|---|---|---|---|---|---|",
    ]
    ratios = []
    for capture, timings, truth in rows:
        mb = truth["bytes"] / 1e6
        label = f"{capture.name} ({mb:.0f} MB, {truth['packets']} pkts)"
        for t in timings:
            walls = f"{t.best:.2f} / {statistics.median(t.walls):.2f} / {max(t.walls):.2f}"
            out.append(
                f"| {label} | {t.tool} | {walls} | {t.best_cpu:.2f} | "
                f"{truth['packets'] / t.best / 1e3:,.0f} k | {mb / t.best:.0f} | {t.peak_mb:.0f} |"
            )
            label = ""
        by = {t.tool: t for t in timings}
        tl = by["tlspcap"]
        bare = by["bare"]
        parts = [
            f"{capture.name}: tlspcap/bare = {tl.best / bare.best:.1f}x wall, "
            f"{tl.best_cpu / bare.best_cpu:.1f}x CPU (target <= {TARGET_VS_BARE:.0f}x)"
        ]
        if "engine floor" in by:
            floor = by["engine floor"].best
            parts.append(
                f", engine floor {floor:.2f} s = {floor / tl.best:.0%} of the run "
                f"(the Python side takes {1 - floor / tl.best:.0%})"
            )
        if "tlspcap python" in by:
            py = by["tlspcap python"]
            parts.append(f", pure-Python path {py.best:.2f} s ({py.best / tl.best:.2f}x engine)")
            if "tshark" in by:
                parts.append(f", tshark/pure-Python = {by['tshark'].best / py.best:.2f}x")
        if "tshark" in by:
            ts = by["tshark"]
            parts.append(
                f", tshark/tlspcap = {ts.best / tl.best:.2f}x wall, "
                f"{ts.best_cpu / tl.best_cpu:.2f}x CPU (target >= {TARGET_VS_TSHARK:.0f}x)"
            )
        parts.append(f", tlspcap peak RSS {tl.peak_mb:.0f} MB (target < {TARGET_RSS_MB:.0f} MB)")
        ratios.append("".join(parts))
    return "\n".join([*out, "", *ratios])


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["--bare"] and len(argv) == 2:
        packets, size = bare_loop(Path(argv[1]))
        print(packets, size)
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("captures", nargs="+", type=Path)
    ap.add_argument("--repeat", type=int, default=3, help="runs per tool (default 3)")
    ap.add_argument("--ca-bundle", type=Path, default=DEFAULT_CA)
    ap.add_argument("--no-tshark", action="store_true", help="skip tshark")
    ap.add_argument("--workdir", type=Path, help="where outputs go (default: next to capture)")
    ap.add_argument(
        "--batch",
        type=int,
        default=0,
        metavar="N",
        help="also time a directory of N copies of the first capture with --jobs 1 and 2",
    )
    args = ap.parse_args(argv)
    use_tshark = not args.no_tshark
    if use_tshark and shutil.which("tshark") is None:
        print("run: tshark not found; use --no-tshark", file=sys.stderr)
        return 2
    print(f"machine: {machine()}")
    rows = []
    failed = False
    for capture in args.captures:
        if not capture.exists() or not capture.with_name(capture.name + ".truth.json").exists():
            print(
                f"run: {capture} or its .truth.json is missing (run bench/gen.py)", file=sys.stderr
            )
            return 2
        workdir = args.workdir or capture.parent
        workdir.mkdir(parents=True, exist_ok=True)
        timings, problems, truth = run_capture(
            capture, args.ca_bundle, max(1, args.repeat), use_tshark, workdir
        )
        rows.append((capture, timings, truth))
        if problems:
            failed = True
            print(f"VERDICTS DIFFER for {capture.name}:")
            for p in problems:
                print(f"  {p}")
        else:
            print(
                f"verdicts OK for {capture.name}: {truth['tls_connections']} TLS connections, "
                f"outcomes {truth['outcomes']}"
            )
        if "tshark_lines" in truth:
            print(
                f"  tshark: {truth['tshark_lines']} lines, "
                f"{truth['tshark_client_hello_frames']} ClientHello frames"
            )
    print(f"machine after: {machine()}")
    print()
    print(table(rows))
    if args.batch:
        print()
        print(batch_scaling(args.captures[0], args.batch, args.ca_bundle, max(1, args.repeat)))
    return 1 if failed else 0


def batch_scaling(capture: Path, copies: int, ca: Path, repeat: int) -> str:
    """Time ``--jobs 1`` and ``--jobs 2`` on a directory of ``copies`` links to ``capture``."""
    with tempfile.TemporaryDirectory(prefix="tlspcap-bench-") as tmp:
        folder = Path(tmp) / "captures"
        folder.mkdir()
        for i in range(copies):
            (folder / f"copy{i}{capture.suffix}").symlink_to(capture.resolve())
        best: dict[int, float] = {}
        for _ in range(repeat):
            for jobs in (1, 2):
                cmd = [*tlspcap_command(ca, folder), "--jobs", str(jobs)]
                wall, _cpu, _rss, _code = measure(cmd, Path(tmp) / "out.json")
                best[jobs] = min(best.get(jobs, wall), wall)
    return (
        f"batch of {copies} x {capture.name}: --jobs 1 {best[1]:.2f} s, --jobs 2 {best[2]:.2f} s "
        f"(speed-up {best[1] / best[2]:.2f}x, target close to 2x)"
    )


if __name__ == "__main__":
    sys.exit(main())
