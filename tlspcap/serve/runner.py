"""The queue: bounded uploads and analyses, one worker process per analysis, live progress.

Theory of operation. The service process runs one asyncio event loop. Jobs wait in two visible
queues: uploads wait for one of ``upload_slots`` slots before their body is read, and uploaded
jobs wait in :attr:`Runner.queue` until one of ``workers`` analysis loops takes them. An analysis
loop starts ``python -m tlspcap.serve.worker`` (its own process, with memory and CPU limits),
hands it the job on stdin, reads its progress lines from stdout and waits for it to end. The job
is ``done`` only when the worker said so and exited 0; otherwise it is ``failed`` with the
reason (its last word, or how it died: a signal, a limit), and the loop goes on with the next
job. Progress lives in memory (:class:`Live`); the job row is written at each change of state.
Every change wakes :meth:`Runner.changed` waiters (the server-sent events of the pages).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

from tlspcap.serve.config import ServeConfig, format_size
from tlspcap.serve.paths import OPTION_FILES, REPORTS, JobPaths
from tlspcap.serve.store import FINISHED, Job, JobStore, Status
from tlspcap.serve.worker import EXIT_MEMORY, Capture, WorkerSpec

log = logging.getLogger("tlspcap.serve")

RETENTION_SWEEP_SECONDS = 3600.0
"""How often expired jobs are looked for (at most)."""
_LAST_WORDS = 4096
"""Longest progress line read from a worker."""


@dataclass(slots=True)
class Live:
    """Progress of a job being uploaded or analysed (not stored)."""

    upload_bytes: int = 0
    upload_total: int | None = None
    file: int = 0
    """Index of the capture being read."""
    bytes_done: int = 0
    """Bytes read of the captures, all files so far."""
    packets_before: int = 0
    """Packets of the captures before :attr:`file`."""
    file_packets: int = 0
    """Packets read of the capture :attr:`file`."""

    @property
    def packets(self) -> int:
        """Packets read, all files so far."""
        return self.packets_before + self.file_packets


class Runner:
    """Owns the queues, the worker processes and the live progress of the jobs."""

    def __init__(self, config: ServeConfig, store: JobStore) -> None:
        """Nothing runs until :meth:`start`."""
        self.config = config
        self.store = store
        self.queue: deque[str] = deque()
        """Job ids waiting for a worker, first out first."""
        self.upload_waiting: deque[str] = deque()
        """Job ids waiting for an upload slot."""
        self.live: dict[str, Live] = {}
        self._uploads = asyncio.Semaphore(config.upload_slots)
        self._queued = asyncio.Event()
        """Set when a job is queued (analysis loops wait on it while the queue is empty)."""
        self._changed = asyncio.Event()
        """Set, and replaced by a fresh one, at each change."""
        self._version = 0
        self._procs: dict[str, asyncio.subprocess.Process] = {}
        self._tasks: list[asyncio.Task[None]] = []

    # ---- life of the service -------------------------------------------------------------
    async def start(self) -> None:
        """Recover from the last run, queue again the jobs that were queued, then start the
        analysis loops and the retention sweep."""
        self.recover()
        self.queue_again()
        self._tasks = [
            asyncio.create_task(self._analysis_loop()) for _ in range(self.config.workers)
        ]
        self._tasks.append(asyncio.create_task(self._retention_loop()))

    def recover(self) -> None:
        """When the service stops or starts again: running jobs become interrupted (with a
        retry), and uploads that were cut off fail (queued jobs stay queued)."""
        for job in self.store.with_status(Status.RUNNING):
            job.status = Status.INTERRUPTED
            job.reason = "the service stopped while this analysis ran; retry it"
            job.finished_at = time.time()
            self.store.save(job)
        for job in self.store.with_status(Status.UPLOAD_QUEUED, Status.UPLOADING):
            job.status = Status.FAILED
            job.reason = "the upload was cut off when the service stopped; upload it again"
            job.finished_at = time.time()
            self.store.save(job)
            JobPaths(self.config.data, job.id).remove_input()

    def queue_again(self) -> None:
        """Queue the jobs the table says are queued (after a restart), oldest first."""
        self.queue.extend(job.id for job in self.store.with_status(Status.QUEUED))

    async def stop(self) -> None:
        """Stop the loops and the workers; their jobs are marked interrupted."""
        for task in self._tasks:
            task.cancel()
        for proc in list(self._procs.values()):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self.recover()

    # ---- queues ------------------------------------------------------------------------
    def enqueue(self, job_id: str) -> None:
        """Queue an uploaded job for analysis."""
        self.queue.append(job_id)
        self._queued.set()
        self.notify()

    def queue_position(self, job: Job) -> int | None:
        """1 for the next job to start (uploads and analyses have their own queues)."""
        for waiting in (self.queue, self.upload_waiting):
            if job.id in waiting:
                return list(waiting).index(job.id) + 1
        return None

    @contextlib.asynccontextmanager
    async def upload_slot(self, job_id: str) -> AsyncIterator[None]:
        """Wait for an upload slot (the job shows as ``upload_queued`` meanwhile)."""
        self.upload_waiting.append(job_id)
        self.notify()
        try:
            await self._uploads.acquire()
        finally:
            self.upload_waiting.remove(job_id)
        try:
            yield
        finally:
            self._uploads.release()
            self.notify()

    def running(self) -> int:
        """Analyses running now."""
        return len(self._procs)

    async def cancel(self, job_id: str) -> None:
        """Take a job out of the queue, or stop its worker."""
        if job_id in self.queue:
            self.queue.remove(job_id)
        proc = self._procs.get(job_id)
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    # ---- change notification -------------------------------------------------------------
    def notify(self) -> None:
        """Something changed: wake :meth:`changed` waiters."""
        self._version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def changed(self, version: int, timeout: float) -> int:
        """Wait until something changes after ``version`` (or ``timeout``); the new version."""
        if self._version == version:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)
        return self._version

    @property
    def version(self) -> int:
        """Counts the changes so far."""
        return self._version

    # ---- analyses ------------------------------------------------------------------------
    async def _next_job(self) -> str:
        while not self.queue:
            self._queued.clear()
            await self._queued.wait()
        return self.queue.popleft()

    async def _analysis_loop(self) -> None:
        while True:
            job_id = await self._next_job()
            job = self.store.get(job_id)
            if job is None or job.status != Status.QUEUED:
                continue
            try:
                await self._analyse(job)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug of the service: fail this job, keep serving
                log.exception("job %s: the analysis could not be run", job_id)
                self._finish(job, Status.FAILED, "internal error of the service; see its log")

    def worker_spec(self, job: Job) -> WorkerSpec:
        """The worker's instructions for ``job``."""
        paths = JobPaths(self.config.data, job.id)
        return WorkerSpec(
            captures=[
                Capture(str(paths.capture(i)), f.name, f.size) for i, f in enumerate(job.files)
            ],
            output=str(paths.output),
            reports=dict(REPORTS),
            options={k: v for k, v in job.options.items() if k not in OPTION_FILES},
            option_files={k: str(paths.option(k)) for k in OPTION_FILES if k in job.options},
            memory_limit=self.config.worker_memory,
            cpu_limit=self.config.worker_cpu_seconds,
        )

    async def _analyse(self, job: Job) -> None:
        paths = JobPaths(self.config.data, job.id)
        job.status = Status.RUNNING
        job.started_at = time.time()
        job.attempts += 1
        job.reason = None
        self.store.save(job)
        live = self.live.setdefault(job.id, Live())
        self.notify()
        with paths.log.open("ab") as errlog:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tlspcap.serve.worker",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=errlog,
                start_new_session=True,
                limit=_LAST_WORDS,
            )
        self._procs[job.id] = proc
        try:
            result = await self._talk(proc, job, live)
        finally:
            self._procs.pop(job.id, None)
            self.live.pop(job.id, None)
        if self.store.get(job.id) is None:  # deleted while it ran
            return
        if result is not None and result.get("event") == "done" and proc.returncode == 0:
            self._done(job, result)
        else:
            message = result.get("message") if result is not None else None
            self._finish(job, Status.FAILED, str(message or self._death(proc.returncode)))

    async def _talk(
        self, proc: asyncio.subprocess.Process, job: Job, live: Live
    ) -> dict[str, object] | None:
        """Send the spec, follow the progress; the worker's last word (None: it said none)."""
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(self.worker_spec(job).to_json().encode())
        with contextlib.suppress(ConnectionError):
            await proc.stdin.drain()
        proc.stdin.close()
        last: dict[str, object] | None = None
        sizes = [f.size for f in job.files]
        while True:
            try:
                line = await proc.stdout.readline()
            except ValueError:  # a line over the limit: not our worker's
                break
            if not line:
                break
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if not isinstance(event, dict):
                continue
            if event.get("event") == "progress":
                self._progress(live, event, sizes)
            else:
                last = event
        await proc.wait()
        return last

    def _progress(self, live: Live, event: dict[str, object], sizes: list[int]) -> None:
        i, done, packets = event.get("file"), event.get("bytes"), event.get("packets")
        if not (isinstance(i, int) and isinstance(done, int) and isinstance(packets, int)):
            return
        if not 0 <= i < len(sizes):
            return
        if i != live.file:  # the next file: the previous one is read whole
            live.packets_before += live.file_packets
        live.file = i
        live.bytes_done = sum(sizes[:i]) + min(done, sizes[i])
        live.file_packets = packets
        self.notify()

    def _death(self, returncode: int | None) -> str:
        """Why a worker that left no last word ended."""
        if returncode is None:
            return "the analysis worker did not end"
        if returncode == -signal.SIGXCPU:
            limit = self.config.worker_cpu_seconds
            return f"the analysis used up its CPU time limit ({limit} s)"
        if returncode < 0:
            try:
                name = signal.Signals(-returncode).name
            except ValueError:
                name = f"signal {-returncode}"
            return f"the analysis worker was killed ({name})"
        if returncode == EXIT_MEMORY:
            limit_text = format_size(self.config.worker_memory)
            return f"the analysis ran out of its memory limit ({limit_text})"
        return f"the analysis worker stopped with exit status {returncode}"

    def _done(self, job: Job, result: dict[str, object]) -> None:
        def num(key: str) -> int | None:
            value = result.get(key)
            return value if isinstance(value, int) else None

        job.connections = num("connections")
        job.failed = num("failed")
        cause = result.get("top_cause")
        job.top_cause = cause if isinstance(cause, str) else None
        job.packets = num("packets")
        job.bytes_read = sum(f.size for f in job.files)
        job.worker_max_rss = num("max_rss")
        cpu = result.get("cpu")
        job.worker_cpu = float(cpu) if isinstance(cpu, int | float) else None
        self._finish(job, Status.DONE, None)

    def _finish(self, job: Job, status: Status, reason: str | None) -> None:
        assert status in FINISHED
        job.status = status
        job.reason = reason
        job.finished_at = time.time()
        self.store.save(job)
        self.notify()

    # ---- retention -----------------------------------------------------------------------
    def expire(self, now: float) -> list[str]:
        """Delete the finished jobs older than the retention; their ids."""
        cutoff = now - self.config.retention_days * 86400
        gone = []
        for job_id in self.store.created_before(cutoff):
            job = self.store.get(job_id)
            if job is None or job.status not in FINISHED:
                continue
            self.delete(job_id)
            gone.append(job_id)
        return gone

    def delete(self, job_id: str) -> None:
        """Forget a job that is not running and remove its files."""
        self.store.delete(job_id)
        JobPaths(self.config.data, job_id).remove()
        self.notify()

    async def _retention_loop(self) -> None:
        period = min(RETENTION_SWEEP_SECONDS, self.config.retention_days * 86400 / 10)
        while True:
            gone = self.expire(time.time())
            if gone:
                log.info("retention: deleted %d job(s)", len(gone))
            await asyncio.sleep(max(period, 1.0))
