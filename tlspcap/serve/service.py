"""What the API and the pages do to jobs: create one from an upload, retry, delete, describe.

Both front ends (``api.py`` for programs, ``views.py`` for the browser) call these, so an
upload through the page and one through ``POST /api/v1/analyses`` go through the same checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.requests import ClientDisconnect, Request

from tlspcap.capture.formats import ForeignFormatError
from tlspcap.capture.reader import CaptureReader
from tlspcap.errors import TlspcapError
from tlspcap.serve.config import MiB, ServeConfig
from tlspcap.serve.paths import JobPaths, is_job_id, new_job_id
from tlspcap.serve.runner import Live, Runner
from tlspcap.serve.security import Auth
from tlspcap.serve.store import FINISHED, RETRYABLE, Job, JobStore, Status, StoredFile
from tlspcap.serve.uploads import (
    FormReceiver,
    RequestError,
    UploadForm,
    check_free_space,
    multipart_boundary,
    too_large,
)
from tlspcap.settings import OptionFile, build_settings

DRAIN_LIMIT = 64 * MiB
"""Body bytes still read (and dropped) after refusing an upload, so that a client that sends
its whole body before reading the answer gets the answer; a larger rest is cut off."""
API = "/api/v1/analyses"


@dataclass(slots=True)
class Service:
    """The running service's parts, shared by every request."""

    config: ServeConfig
    store: JobStore
    runner: Runner
    auth: Auth
    report_csp: str
    """Content-Security-Policy of the HTML report (its inline style allowed by hash)."""

    def paths(self, job_id: str) -> JobPaths:
        """The files of a job."""
        return JobPaths(self.config.data, job_id)


# ---- creating a job ---------------------------------------------------------------------
async def create_job(
    svc: Service, request: Request, csrf: Callable[[str], bool] | None = None
) -> Job:
    """Receive an upload into a new job and queue it (:class:`RequestError` when refused)."""
    boundary = multipart_boundary(request.headers.get("content-type"))
    declared = _content_length(request)
    try:
        if declared is not None:
            if declared > svc.config.max_upload:
                raise too_large(svc.config.max_upload)
            check_free_space(svc.config.data, svc.config.free_space_reserve, declared)
    except RequestError:
        if declared is not None and declared <= DRAIN_LIMIT:
            await drain(request.stream(), DRAIN_LIMIT)
        raise
    job = Job(id=new_job_id(), created_at=time.time(), status=Status.UPLOAD_QUEUED)
    paths = svc.paths(job.id)
    paths.create()
    svc.store.insert(job)
    try:
        # the slot covers the checks too, and uploads join the analysis queue in slot order
        async with svc.runner.upload_slot(job.id):
            job.status = Status.UPLOADING
            svc.store.save(job)
            form, received = await _receive(svc, request, paths, boundary, declared, csrf)
            await asyncio.to_thread(check_inputs, paths, form)
            job.files = [StoredFile(f.name, f.size) for f in form.captures]
            job.options = dict(form.fields) | {k: f.name for k, f in form.option_files.items()}
            job.upload_bytes = received
            job.status = Status.QUEUED
            svc.store.save(job)
            svc.runner.enqueue(job.id)
    except BaseException:
        svc.runner.delete(job.id)
        raise
    finally:
        svc.runner.live.pop(job.id, None)
    return job


def _content_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    if value is None:
        return None
    if not value.isdigit():
        raise RequestError(400, "malformed Content-Length")
    return int(value)


async def _receive(
    svc: Service,
    request: Request,
    paths: JobPaths,
    boundary: bytes,
    declared: int | None,
    csrf: Callable[[str], bool] | None,
) -> tuple[UploadForm, int]:
    """Stream the body into the job's files; the form and the bytes received."""
    live = svc.runner.live.setdefault(paths.root.name, Live(upload_total=declared))
    receiver = FormReceiver(
        boundary, paths, svc.config.max_upload, svc.config.free_space_reserve, csrf
    )
    stream = request.stream()
    shown = 0.0
    try:
        async for chunk in stream:
            receiver.feed(chunk)
            live.upload_bytes = receiver.received
            now = time.monotonic()
            if now - shown > 0.25:
                shown = now
                svc.runner.notify()
        return receiver.finish(), receiver.received
    except RequestError:
        receiver.close()
        await drain(stream, DRAIN_LIMIT)
        raise
    except ClientDisconnect:
        raise RequestError(400, "the client went away during the upload") from None
    finally:
        receiver.close()


async def drain(stream: AsyncIterator[bytes], limit: int) -> None:
    """Read and drop up to ``limit`` more bytes of a request body."""
    seen = 0
    with contextlib.suppress(ClientDisconnect):
        async for chunk in stream:
            seen += len(chunk)
            if seen > limit:
                break


def check_inputs(paths: JobPaths, form: UploadForm) -> None:
    """415 for a capture tlspcap cannot read at all; 422 for an unusable option (the checks
    the command line makes before it starts)."""
    for i, cap in enumerate(form.captures):
        try:
            with paths.capture(i).open("rb") as fh:
                CaptureReader(fh)
        except ForeignFormatError as exc:
            if not exc.format.convertible:  # e.g. a zip: the message says what to do
                raise RequestError(415, f"{cap.name}: {exc}") from None
            # a format Wireshark's editcap converts: the analysis converts it, as the CLI does
        except TlspcapError as exc:
            raise RequestError(
                415,
                f"{cap.name}: {exc}; tlspcap reads pcap, pcapng and gzip of either (and "
                "what Wireshark's editcap converts)",
            ) from None
    files = {name: OptionFile(name, paths.option(name).read_bytes()) for name in form.option_files}
    try:
        build_settings(
            ca_bundle=files.get("ca_bundle"),
            host=form.fields.get("host"),
            server_ciphers=form.fields.get("server_ciphers"),
            server_protocols=form.fields.get("server_protocols"),
            nginx_conf=files.get("nginx_conf"),
            keylog=files.get("keylog"),
        )
    except (TlspcapError, ValueError) as exc:
        raise RequestError(422, str(exc)) from None


# ---- other operations --------------------------------------------------------------------
def retry_job(svc: Service, job: Job) -> None:
    """Queue a failed or interrupted job again (409 when it cannot be)."""
    if job.status not in RETRYABLE:
        raise RequestError(
            409, f"only a failed or interrupted analysis can be retried; this one is {job.status}"
        )
    if not all(svc.paths(job.id).capture(i).is_file() for i in range(len(job.files))):
        raise RequestError(409, "the uploaded files of this analysis are gone; upload again")
    job.status = Status.QUEUED
    job.reason = None
    job.finished_at = None
    svc.store.save(job)
    svc.runner.enqueue(job.id)


async def delete_job(svc: Service, job: Job) -> None:
    """Delete a job and its files, stopping its analysis (409 during its upload)."""
    if job.status in (Status.UPLOAD_QUEUED, Status.UPLOADING):
        raise RequestError(409, "this analysis is still being uploaded")
    await svc.runner.cancel(job.id)
    svc.runner.delete(job.id)


def get_job(svc: Service, job_id: str) -> Job:
    """The job (404 when there is none with this id)."""
    job = svc.store.get(job_id) if is_job_id(job_id) else None
    if job is None:
        raise RequestError(404, "no such analysis (it may have expired or been deleted)")
    return job


# ---- describing a job ----------------------------------------------------------------------
def iso(ts: float | None) -> str | None:
    """A timestamp as ISO 8601 UTC."""
    if ts is None:
        return None
    stamp = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def status_dict(svc: Service, job: Job) -> dict[str, Any]:
    """The job as the API shows it (without the report)."""
    live = svc.runner.live.get(job.id)
    total = sum(f.size for f in job.files)
    progress: dict[str, Any] = {"bytes_total": total}
    if live is not None:
        progress |= {
            "upload_bytes": live.upload_bytes,
            "upload_total": live.upload_total,
            "files_done": live.file,
            "bytes_read": live.bytes_done,
            "packets_read": live.packets,
        }
    elif job.status == Status.DONE:
        progress |= {
            "upload_bytes": job.upload_bytes,
            "files_done": len(job.files),
            "bytes_read": job.bytes_read,
            "packets_read": job.packets,
        }
    url = f"{API}/{job.id}"
    done = job.status == Status.DONE
    return {
        "id": job.id,
        "status": str(job.status),
        "status_url": url,
        "page_url": f"/jobs/{job.id}",
        "queue_position": svc.runner.queue_position(job),
        "reason": job.reason,
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "expires_at": iso(job.created_at + svc.config.retention_days * 86400),
        "files": [{"name": f.name, "size": f.size} for f in job.files],
        "options": job.options,
        "progress": progress,
        "summary": {
            "connections": job.connections,
            "failed": job.failed,
            "top_cause": job.top_cause,
        }
        if done
        else None,
        "worker": {"max_rss_bytes": job.worker_max_rss, "cpu_seconds": job.worker_cpu}
        if done
        else None,
        "attempts": job.attempts,
        "links": {
            "events": f"{url}/events",
            "report_json": f"{url}/report.json" if done else None,
            "report_html": f"{url}/report.html" if done else None,
            "report_md": f"{url}/report.md" if done else None,
            "retry": f"{url}/retry" if job.status in RETRYABLE else None,
        },
    }


def status_json(svc: Service, job: Job) -> str:
    """:func:`status_dict` as JSON text."""
    return json.dumps(status_dict(svc, job), ensure_ascii=False)


def is_finished(job: Job) -> bool:
    """Whether the job will not change by itself any more."""
    return job.status in FINISHED
