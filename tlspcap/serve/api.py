"""The JSON API under ``/api/v1``: what a ticket bot uses.

``POST /api/v1/analyses`` (multipart: ``capture`` files, optional ``keylog``, ``ca_bundle``,
``nginx_conf`` files and ``host``, ``server_ciphers``, ``server_protocols`` fields) answers 202
with the job's status. ``GET /api/v1/analyses/{id}`` gives the status and, once the job is
done, the report under ``result``: the bytes of ``tlspcap analyze --format json`` on the same
files and options, spliced in as they are. Errors are ``{"error": message, "status": code}``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse

from tlspcap.serve.security import CSRF_HEADER
from tlspcap.serve.service import (
    API,
    Service,
    create_job,
    delete_job,
    get_job,
    is_finished,
    retry_job,
    status_dict,
    status_json,
)
from tlspcap.serve.store import Status
from tlspcap.serve.uploads import RequestError

CHUNK = 256 * 1024
EVENTS_KEEPALIVE = 15.0
"""Seconds between two comments on an idle event stream."""
EVENTS_MIN_INTERVAL = 0.2
"""Seconds between two events of one stream (at least)."""
MEDIA = {
    "json": "application/json",
    "html": "text/html; charset=utf-8",
    "markdown": "text/markdown; charset=utf-8",
}
SUFFIX = {"json": "json", "html": "html", "markdown": "md"}


def service(request: Request) -> Service:
    """The service the app runs."""
    svc: Service = request.app.state.service
    return svc


def error_response(status: int, message: str) -> JSONResponse:
    """A JSON error."""
    headers = {"connection": "close"} if status == 413 else None
    return JSONResponse({"error": message, "status": status}, status, headers=headers)


def check_api_csrf(request: Request) -> None:
    """A state-changing API call authenticated by the session cookie (a browser, not a
    Bearer token) must carry the CSRF token in ``X-CSRF-Token``. (Without a token on a
    loopback bind, cross-site requests are refused by the access middleware.)"""
    state = request.scope["state"]
    if state.get("auth") != "session":
        return
    if not service(request).auth.csrf_ok(state.get("csrf_nonce"), request.headers.get(CSRF_HEADER)):
        raise RequestError(403, "missing or wrong X-CSRF-Token header")


async def create(request: Request) -> Response:
    """``POST /api/v1/analyses``."""
    svc = service(request)
    check_api_csrf(request)
    job = await create_job(svc, request)
    headers = {"location": f"{API}/{job.id}"}
    return Response(status_json(svc, job), 202, headers, "application/json")


async def list_jobs(request: Request) -> Response:
    """``GET /api/v1/analyses``: the newest jobs first."""
    svc = service(request)
    try:
        limit = min(max(int(request.query_params.get("limit", "50")), 1), 500)
    except ValueError:
        raise RequestError(400, "limit must be a number") from None
    jobs = svc.store.recent(limit)
    body = {
        "analyses": [status_dict(svc, j) for j in jobs],
        "running": svc.runner.running(),
        "queued": len(svc.runner.queue),
        "uploads_waiting": len(svc.runner.upload_waiting),
    }
    return JSONResponse(body)


async def show(request: Request) -> Response:
    """``GET /api/v1/analyses/{id}``: the status, with the JSON report once done."""
    svc = service(request)
    job = get_job(svc, request.path_params["job_id"])
    report = svc.paths(job.id).report("json")
    head = status_json(svc, job)
    if job.status != Status.DONE or not report.is_file():
        return Response(head, media_type="application/json")
    # the report's bytes as they are: the document is valid JSON, so it can stand as a value
    prefix = head[:-1] + ', "result": '
    return StreamingResponse(
        _spliced(prefix.encode(), report, b"}\n"), media_type="application/json"
    )


def _spliced(prefix: bytes, path: Path, suffix: bytes) -> Iterator[bytes]:
    yield prefix
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            yield chunk
    yield suffix


def report_response(svc: Service, job_id: str, fmt: str, download: bool) -> Response:
    """A job's report file (409 until the job is done)."""
    job = get_job(svc, job_id)
    path = svc.paths(job.id).report(fmt)
    if job.status != Status.DONE or not path.is_file():
        raise RequestError(409, f"the analysis is {job.status}; its reports come when it is done")
    headers = {}
    if fmt == "html":
        headers["content-security-policy"] = svc.report_csp
    if download:
        name = f"tlspcap-{job.id[:12]}.{SUFFIX[fmt]}"
        headers["content-disposition"] = f'attachment; filename="{name}"'
    return FileResponse(path, media_type=MEDIA[fmt], headers=headers)


def report_endpoint(fmt: str) -> Callable[[Request], Awaitable[Response]]:
    """The handler of ``GET .../report.EXT`` for ``fmt``."""

    async def endpoint(request: Request) -> Response:
        download = request.query_params.get("download") == "1"
        return report_response(service(request), request.path_params["job_id"], fmt, download)

    endpoint.__doc__ = f"``GET /api/v1/analyses/{{id}}/report.{SUFFIX[fmt]}``."
    return endpoint


async def delete(request: Request) -> Response:
    """``DELETE /api/v1/analyses/{id}``."""
    svc = service(request)
    check_api_csrf(request)
    job = get_job(svc, request.path_params["job_id"])
    await delete_job(svc, job)
    return Response(status_code=204)


async def retry(request: Request) -> Response:
    """``POST /api/v1/analyses/{id}/retry``."""
    svc = service(request)
    check_api_csrf(request)
    job = get_job(svc, request.path_params["job_id"])
    retry_job(svc, job)
    return Response(status_json(svc, job), 202, media_type="application/json")


async def events(request: Request) -> Response:
    """``GET /api/v1/analyses/{id}/events``: server-sent events, one ``status`` event per
    change (the status without the report), until the job is finished."""
    svc = service(request)
    job = get_job(svc, request.path_params["job_id"])
    return StreamingResponse(_event_stream(svc, job.id), media_type="text/event-stream")


async def _event_stream(svc: Service, job_id: str) -> AsyncIterator[str]:
    version = -1
    while True:
        job = svc.store.get(job_id)
        if job is None:
            yield "event: gone\ndata: {}\n\n"
            return
        if version != svc.runner.version:
            version = svc.runner.version
            yield f"event: status\ndata: {status_json(svc, job)}\n\n"
        if is_finished(job):
            return
        await asyncio.sleep(EVENTS_MIN_INTERVAL)
        new = await svc.runner.changed(version, EVENTS_KEEPALIVE)
        if new == version:
            yield ": keep-alive\n\n"


async def openapi(request: Request) -> Response:
    """``GET /api/v1/openapi.json``."""
    from tlspcap.serve.openapi import schema

    return Response(json.dumps(schema(), indent=1), media_type="application/json")
