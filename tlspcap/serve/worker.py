"""The analysis process of one job: ``python -m tlspcap.serve.worker``, one per analysis.

The service starts it with the job's :class:`WorkerSpec` as JSON on stdin. It limits itself
first (address space with ``RLIMIT_AS``, CPU time with ``RLIMIT_CPU``, no core files), then
analyses the captures exactly as ``tlspcap analyze`` does (:func:`tlspcap.batch.analyze_one`,
:func:`tlspcap.settings.build_settings`, :func:`tlspcap.report.output.write_report`) and writes
the JSON, HTML and Markdown reports into the job's output directory.

It talks back on stdout, one JSON object a line: ``{"event": "progress", "file": i, "bytes": n,
"packets": n}`` now and then, and at the end ``{"event": "done", ...totals}`` or
``{"event": "error", "message": ...}``. A worker that dies without a last word (killed, over its
CPU time) is judged by the service from its exit status.
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import resource
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tlspcap.batch import analyze_one, internal_error
from tlspcap.errors import TlspcapError
from tlspcap.report.output import shown_and_totals, write_report
from tlspcap.report.summary import FileReport, Filters, Totals
from tlspcap.serve.config import format_size
from tlspcap.settings import OptionFile, build_settings

PROGRESS_INTERVAL = 0.25
"""Seconds between two progress events (at most)."""
RENDERED = ("json", "html", "markdown")
EXIT_REFUSED = 2
"""Exit status when the options or the reports could not be used or written."""
EXIT_MEMORY = 3
"""Exit status when the memory limit was reached."""
PR_SET_PDEATHSIG = 1

Emit = Callable[[dict[str, Any]], None]
_OUT_OF_MEMORY = internal_error(MemoryError()).split(":")[0]
"""How :func:`analyze_one` words a file that ran out of memory (``internal error
(MemoryError``)."""


@dataclass(frozen=True, slots=True)
class Capture:
    """One capture of the job."""

    path: str
    """Where it is stored."""
    name: str
    """The name it was uploaded under (the reports' ``file``)."""
    size: int


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """What a worker is asked to do."""

    captures: list[Capture]
    output: str
    """Directory to write ``report.json``, ``report.html`` and ``report.md`` into."""
    reports: dict[str, str]
    """Report file name per format (``paths.REPORTS``)."""
    options: dict[str, str] = field(default_factory=dict)
    """``host``, ``server_ciphers``, ``server_protocols`` when given."""
    option_files: dict[str, str] = field(default_factory=dict)
    """``keylog``, ``ca_bundle``, ``nginx_conf`` when given: where each is stored."""
    memory_limit: int | None = None
    cpu_limit: int | None = None

    def to_json(self) -> str:
        """The spec as the worker reads it on stdin."""
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> WorkerSpec:
        """Read a spec written by :meth:`to_json`."""
        raw = json.loads(text)
        raw["captures"] = [Capture(**c) for c in raw["captures"]]
        return cls(**raw)


def die_with_parent() -> None:
    """Ask Linux to kill this process when the service dies (best effort elsewhere): a worker
    must not outlive a service that crashed."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def limit_resources(memory: int | None, cpu: int | None) -> None:
    """Cap this process's address space and CPU time; no core files."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if memory is not None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    if cpu is not None:
        # past the soft limit the kernel sends SIGXCPU (fatal here), past the hard one SIGKILL
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))


def _option_file(spec: WorkerSpec, name: str) -> OptionFile | None:
    path = spec.option_files.get(name)
    return None if path is None else OptionFile(name, Path(path).read_bytes())


def analyze_job(spec: WorkerSpec, emit: Emit) -> tuple[Totals, int]:
    """Analyse the captures of ``spec`` and write its reports; the totals of the reports and
    the packets read."""
    settings = build_settings(
        ca_bundle=_option_file(spec, "ca_bundle"),
        host=spec.options.get("host"),
        server_ciphers=spec.options.get("server_ciphers"),
        server_protocols=spec.options.get("server_protocols"),
        nginx_conf=_option_file(spec, "nginx_conf"),
        keylog=_option_file(spec, "keylog"),
    )
    output = Path(spec.output)
    with tempfile.TemporaryDirectory(prefix="spool-", dir=output) as spool:
        settings = dataclasses.replace(settings, formats=frozenset(RENDERED), spool_dir=spool)
        reports: list[FileReport] = []
        packets = 0
        for i, cap in enumerate(spec.captures):
            emit({"event": "progress", "file": i, "bytes": 0, "packets": 0})
            report = analyze_one(cap.path, settings, cap.size, _throttled(emit, i))
            if (report.error or "").startswith(_OUT_OF_MEMORY):
                raise MemoryError  # analyze_one keeps going on a bug; this is our limit
            # the report names the capture as uploaded, as the CLI names a file as given
            report = dataclasses.replace(report, meta={**report.meta, "file": cap.name})
            reports.append(report)
            read = int(report.meta.get("packets") or 0)
            packets += read
            emit({"event": "progress", "file": i, "bytes": cap.size, "packets": read})
        shown, totals = shown_and_totals(reports, Filters())
        for fmt in RENDERED:
            final = output / spec.reports[fmt]
            part = final.with_name(final.name + ".part")
            with part.open("w", encoding="utf-8") as fh:
                write_report(fh, fmt, shown, totals)
            part.replace(final)
    return totals, packets


def _throttled(emit: Emit, index: int) -> Callable[[int, int], None]:
    last = 0.0

    def progress(bytes_read: int, packets: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= PROGRESS_INTERVAL:
            last = now
            emit({"event": "progress", "file": index, "bytes": bytes_read, "packets": packets})

    return progress


def summary(totals: Totals, packets: int) -> dict[str, Any]:
    """The ``done`` event: what the job list shows, and what the process used."""
    ranked = sorted(totals.causes.items(), key=lambda kv: (-kv[1], kv[0]))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "event": "done",
        "connections": totals.connections,
        "failed": totals.failed,
        "top_cause": ranked[0][0] if ranked else None,
        "errors": len(totals.errors),
        "packets": packets,
        "max_rss": usage.ru_maxrss * 1024,
        "cpu": round(usage.ru_utime + usage.ru_stime, 3),
    }


def main() -> int:
    """Read the spec, run the job, report; the exit status says how it went."""
    out = sys.stdout

    def emit(event: dict[str, Any]) -> None:
        out.write(json.dumps(event) + "\n")
        out.flush()

    die_with_parent()
    spec = WorkerSpec.from_json(sys.stdin.read())
    limit_resources(spec.memory_limit, spec.cpu_limit)
    try:
        totals, packets = analyze_job(spec, emit)
    except MemoryError:
        limit = "" if spec.memory_limit is None else f" ({format_size(spec.memory_limit)})"
        emit({"event": "error", "message": f"the analysis ran out of its memory limit{limit}"})
        return EXIT_MEMORY
    except (TlspcapError, ValueError, OSError) as exc:
        emit({"event": "error", "message": f"the analysis could not run: {exc}"})
        return EXIT_REFUSED
    emit(summary(totals, packets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
