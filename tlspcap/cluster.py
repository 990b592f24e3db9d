"""Batch runs on a Dask cluster: ``tlspcap analyze --cluster ADDRESS --out DIR``.

Each capture is one Dask task running :func:`tlspcap.outbatch.render_capture` on a worker
(:func:`render_on_worker`): the worker opens the capture by its absolute path and writes its
reports into ``--out`` (both on a filesystem every machine mounts at the same path), and only
the capture's :class:`~tlspcap.outbatch.CaptureBrief` comes back. The client submits the tasks
largest file first and keeps only a window of them in flight (a few per worker thread): the
scheduler never holds the whole archive, and the client only its file list and the briefs'
store on disk. The settings (key log, CA bundle) go out once, as the result of a task that
every capture's task depends on.

Faults: a worker that dies in the middle of a capture makes the scheduler run the task again on
another worker (``distributed.scheduler.allowed-failures`` times, 3 by default). The scheduler
charges a death to every task the worker held, so a capture queued beside the one that kills
workers may be charged too: a task that ends that way is run once more at the end, alone in
flight, and only if that run fails as well does it become the capture's ``error``, as a crashed
worker process does in a local run.
A scheduler that cannot be reached (``distributed.comm.timeouts.connect``, 30 s by default), a
scheduler without workers, workers that cannot import tlspcap or do not see ``--out`` raise
:class:`ClusterError` before any task is submitted. An exception in the client (Ctrl-C) cancels
the tasks in flight.

Dask is an optional dependency (``pip install 'tlspcap[cluster]'``): it is imported only here,
and only when a cluster run starts.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import tlspcap
from tlspcap.batch import Settings, default_jobs
from tlspcap.errors import TlspcapError
from tlspcap.outbatch import CaptureBrief, CaptureTask, crashed_capture, render_capture
from tlspcap.report.outdir import OutSpec

if TYPE_CHECKING:
    from distributed import Client, Future

TASK_RETRIES = 2
"""Times a task that raised is run again (a worker that dies is a separate count: the
scheduler's ``allowed-failures``)."""
TASKS_PER_THREAD = 4
"""Tasks kept in flight per worker thread."""
MIN_IN_FLIGHT = 8


class ClusterError(TlspcapError):
    """The cluster cannot run the batch (unreachable, no workers, workers unfit)."""


@dataclass(frozen=True, slots=True)
class ClusterAddress:
    """Where to run: a scheduler's address, or a local cluster started for the run."""

    scheduler: str | None
    """``tcp://host:8786`` (any address Dask accepts); None: a ``LocalCluster``."""
    local_workers: int | None = None
    """Worker processes of the local cluster (None: one per CPU)."""

    def __str__(self) -> str:
        if self.scheduler is not None:
            return self.scheduler
        return "local" if self.local_workers is None else f"local:{self.local_workers}"


def parse_address(text: str) -> ClusterAddress:
    """``tcp://host:8786``, ``host:8786``, ``local`` or ``local:N``."""
    text = text.strip()
    if text == "local":
        return ClusterAddress(None)
    if text.startswith("local:"):
        count = text.removeprefix("local:")
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"--cluster {text!r}: local:N needs a number of workers N >= 1")
        return ClusterAddress(None, int(count))
    if not text or any(c.isspace() for c in text):
        raise ValueError(f"--cluster {text!r}: expected tcp://HOST:PORT or local[:N]")
    return ClusterAddress(text)


@dataclass(frozen=True, slots=True)
class ClusterInfo:
    """The cluster a run got, as the client sees it when the run starts."""

    scheduler: str
    workers: int
    threads: int
    dashboard: str | None
    """The Dask dashboard's URL, or None when the scheduler serves none (no bokeh there)."""


def run_on_cluster(
    address: ClusterAddress,
    tasks: Sequence[CaptureTask],
    settings: Settings,
    spec: OutSpec,
    on_ready: Callable[[ClusterInfo], None],
    on_done: Callable[[int, CaptureBrief], None],
) -> None:
    """Run ``tasks`` on the cluster at ``address``; ``on_done(index, brief)`` as each ends.

    ``spec.path`` and every task's ``open_path`` must be absolute. ``on_ready`` hears about
    the cluster once it has been checked, before the first task is submitted.
    """
    with _client(address) as (client, dashboard):
        info = _check(client, spec, dashboard)
        on_ready(info)
        _run(
            client,
            tasks,
            settings,
            spec,
            on_done,
            max(MIN_IN_FLIGHT, TASKS_PER_THREAD * info.threads),
        )


def worker_facts(out_path: str) -> tuple[str, bool]:
    """Run on each worker before the batch: its tlspcap version, and whether it can write into
    ``--out``."""
    return tlspcap.__version__, os.path.isdir(out_path) and os.access(out_path, os.W_OK)


@contextlib.contextmanager
def _client(address: ClusterAddress) -> Iterator[tuple[Client, str | None]]:
    """A client of the scheduler at ``address`` (of a new ``LocalCluster`` for ``local``), and
    the dashboard's URL; both are closed on exit."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise ClusterError(
            f"--cluster needs Dask ({exc}): pip install 'tlspcap[cluster]'"
        ) from None
    with contextlib.ExitStack() as stack:
        if address.scheduler is None:
            try:
                cluster = LocalCluster(  # type: ignore[no-untyped-call]
                    n_workers=address.local_workers or default_jobs(),
                    threads_per_worker=1,  # the analysis holds the GIL: one capture a process
                    processes=True,
                    dashboard_address=":0",
                    silence_logs=logging.ERROR,
                )
            except Exception as exc:
                raise ClusterError(f"cannot start a local Dask cluster: {exc}") from None
            stack.callback(cluster.close)
            target: Any = cluster
            dashboard: str | None = cluster.dashboard_link
        else:
            target = address.scheduler
            dashboard = None
        try:
            client = Client(target, set_as_default=False)  # type: ignore[no-untyped-call]
        except Exception as exc:  # OSError on a timeout, ValueError on a bad address, …
            raise ClusterError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        stack.callback(client.close)
        if dashboard is None:
            dashboard = _dashboard(client)
        yield client, dashboard


def _dashboard(client: Client) -> str | None:
    from distributed.utils import format_dashboard_link

    info = client.scheduler_info()
    port = info["services"].get("dashboard")
    if port is None:
        return None
    host = str(info["address"]).split("://")[-1].rsplit(":", 1)[0]
    link: str = format_dashboard_link(host, port)  # type: ignore[no-untyped-call]
    return link


def _check(client: Client, spec: OutSpec, dashboard: str | None) -> ClusterInfo:
    """Wait for a worker; check every worker runs this tlspcap and can write ``--out``."""
    from dask.config import get as config

    try:
        client.wait_for_workers(1, timeout=config("distributed.comm.timeouts.connect"))
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"no Dask worker joined the scheduler ({exc})") from None
    try:
        facts: dict[str, tuple[str, bool]] = client.run(worker_facts, spec.path)
    except Exception as exc:
        raise ClusterError(
            f"a Dask worker cannot run tlspcap ({type(exc).__name__}: {exc}); install it on "
            "every worker: pip install 'tlspcap[cluster]'"
        ) from None
    for worker, (version, writable) in sorted(facts.items()):
        if version != tlspcap.__version__:
            raise ClusterError(
                f"Dask worker {worker} runs tlspcap {version}, this client {tlspcap.__version__}"
            )
        if not writable:
            raise ClusterError(
                f"Dask worker {worker} cannot write into {spec.path}: every worker needs the "
                "captures and --out on a shared filesystem, at the same path"
            )
    info = client.scheduler_info()
    threads = sum(int(w.get("nthreads", 1)) for w in info["workers"].values())
    return ClusterInfo(str(info["address"]), len(info["workers"]), threads, dashboard)


def render_on_worker(task: CaptureTask, settings: Settings, spec: OutSpec) -> CaptureBrief:
    """:func:`~tlspcap.outbatch.render_capture` on a Dask worker, its connection spool in the
    worker's own directory (Dask purges the directories of dead workers)."""
    from distributed import get_worker

    try:
        local = get_worker().local_directory
    except ValueError:  # not on a worker
        local = None
    return render_capture(task, replace(settings, spool_dir=local), spec)


def _failure(status: str, result: object) -> BaseException | None:
    """The exception of a task that did not finish (``as_completed`` hands over an erred
    task's ``(type, exception, traceback)``, a cancelled task's ``CancelledError``); None for
    a finished one. Read the status before the future is released."""
    if status == "finished":
        return None
    if isinstance(result, tuple) and len(result) == 3 and isinstance(result[1], BaseException):
        return result[1]
    if isinstance(result, BaseException):
        return result
    return RuntimeError(f"the Dask task ended {status}")


def _brief(
    task: CaptureTask, spec: OutSpec, result: object, failure: BaseException | None
) -> CaptureBrief:
    """A finished task's brief, or the error brief of a task that failed everywhere it ran
    (e.g. KilledWorker) or was cancelled."""
    if failure is None and isinstance(result, CaptureBrief):
        return result
    return crashed_capture(task, spec, failure or RuntimeError("the Dask task gave no brief"))


def _same(settings: Settings) -> Settings:
    return settings


def _run(
    client: Client,
    tasks: Sequence[CaptureTask],
    settings: Settings,
    spec: OutSpec,
    on_done: Callable[[int, CaptureBrief], None],
    in_flight: int,
) -> None:
    """Submit the tasks, largest first, ``in_flight`` at a time; hand each brief over."""
    from distributed import as_completed

    # The settings (key log, CA bundle) reach each worker once, as the result of a task: unlike
    # scattered data, the scheduler computes it again when the workers that held it die.
    shared = client.submit(_same, settings, key=f"tlspcap-settings-{spec.run_id}", pure=False)
    order = iter(sorted(range(len(tasks)), key=lambda i: -tasks[i].size))
    running: dict[Future[CaptureBrief], int] = {}

    def submit() -> Future[CaptureBrief] | None:
        i = next(order, None)
        if i is None:
            return None
        future = client.submit(
            render_on_worker,
            tasks[i],
            shared,
            spec,
            key=f"tlspcap-{spec.run_id}-{i}",
            pure=False,
            retries=TASK_RETRIES,
        )
        running[future] = i
        return future

    lost: list[int] = []  # died with their workers: run again, alone, at the end
    first = [f for f in (submit() for _ in range(in_flight)) if f is not None]
    # Results are fetched in the client's event loop as tasks finish, not one round trip each.
    done = as_completed(  # type: ignore[no-untyped-call]
        first, loop=client.loop, with_results=True, raise_errors=False
    )
    try:
        for future, result in done:
            i = running.pop(future)
            failure = _failure(future.status, result)
            future.release()
            if type(failure).__name__ == "KilledWorker":
                lost.append(i)
            else:
                on_done(i, _brief(tasks[i], spec, result, failure))
            following = submit()
            if following is not None:
                done.add(following)  # type: ignore[no-untyped-call]
        for i in lost:
            alone = client.submit(
                render_on_worker,
                tasks[i],
                shared,
                spec,
                key=f"tlspcap-{spec.run_id}-{i}-alone",
                pure=False,
                retries=TASK_RETRIES,
            )
            running[alone] = i
            for future, result in as_completed(  # type: ignore[no-untyped-call]
                [alone], loop=client.loop, with_results=True, raise_errors=False
            ):
                failure = _failure(future.status, result)
                future.release()
                on_done(running.pop(future), _brief(tasks[i], spec, result, failure))
    except BaseException:
        client.cancel(list(running), force=True)  # type: ignore[no-untyped-call]
        raise
