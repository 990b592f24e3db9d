"""The browser pages' handlers: upload, job list, job page, login; forms carry CSRF tokens."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs

from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from tlspcap.serve.pages import (
    error_page,
    index_page,
    job_page,
    login_page,
    report_bar,
    report_page,
)
from tlspcap.serve.security import PAGE_CSP, SESSION_COOKIE, SESSION_SECONDS, cookie
from tlspcap.serve.service import (
    API,
    Service,
    create_job,
    delete_job,
    get_job,
    retry_job,
)
from tlspcap.serve.store import Status
from tlspcap.serve.uploads import RequestError

SMALL_FORM = 16 * 1024
"""Largest body of the small forms (login, delete, retry)."""
LOGIN_FAILURE_DELAY = 0.5
"""Seconds a wrong token waits before its answer (slows guessing)."""


def service(request: Request) -> Service:
    """The service the app runs."""
    svc: Service = request.app.state.service
    return svc


def csrf_of(request: Request) -> str:
    """The CSRF token for this browser's forms."""
    return service(request).auth.csrf_token(request.scope["state"]["csrf_nonce"])


def logged_in(request: Request) -> bool:
    """Whether a log-out button makes sense."""
    return bool(request.scope["state"].get("auth") == "session")


def page(html: str, status: int = 200) -> HTMLResponse:
    """A page of the service, under the page policy."""
    return HTMLResponse(html, status, headers={"content-security-policy": PAGE_CSP})


def error(request: Request, status: int, message: str) -> HTMLResponse:
    """An error page."""
    response = page(error_page(status, message, csrf_of(request), logged_in(request)), status)
    if status == 413:
        response.headers["connection"] = "close"
    return response


async def small_form(request: Request) -> dict[str, str]:
    """An urlencoded form of at most :data:`SMALL_FORM` bytes, checked for its CSRF token."""
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > SMALL_FORM:
                raise RequestError(413, "form too large")
    except ClientDisconnect:
        raise RequestError(400, "the client went away") from None
    fields = {k: v[0] for k, v in parse_qs(body.decode("utf-8", errors="replace")).items()}
    state = request.scope["state"]
    if not service(request).auth.csrf_ok(state["csrf_nonce"], fields.get("csrf_token")):
        raise RequestError(403, "the form's CSRF token is missing or wrong: reload the page")
    return fields


async def index(request: Request) -> Response:
    """``GET /``: upload form and job list."""
    svc = service(request)
    jobs = svc.store.recent(50)
    positions = {j.id: svc.runner.queue_position(j) for j in jobs}
    queue = (svc.runner.running(), len(svc.runner.queue), len(svc.runner.upload_waiting))
    html = index_page(
        csrf_of(request), logged_in(request), svc.config.max_upload, jobs, positions, queue
    )
    return page(html)


async def upload(request: Request) -> Response:
    """``POST /jobs``: the form without the script; to the job's page."""
    svc = service(request)
    nonce = request.scope["state"]["csrf_nonce"]
    job = await create_job(svc, request, csrf=lambda token: svc.auth.csrf_ok(nonce, token))
    return RedirectResponse(f"/jobs/{job.id}", 303)


async def job(request: Request) -> Response:
    """``GET /jobs/{id}``: the report once done, else progress or what went wrong."""
    svc = service(request)
    j = get_job(svc, request.path_params["job_id"])
    report = svc.paths(j.id).report("html")
    if j.status == Status.DONE and report.is_file():
        bar = report_bar(j, csrf_of(request))
        return StreamingResponse(
            report_page(report, bar),
            media_type="text/html; charset=utf-8",
            headers={"content-security-policy": svc.report_csp},
        )
    position = svc.runner.queue_position(j)
    html = job_page(j, position, csrf_of(request), logged_in(request), f"{API}/{j.id}")
    return page(html)


async def delete(request: Request) -> Response:
    """``POST /jobs/{id}/delete``."""
    svc = service(request)
    await small_form(request)
    await delete_job(svc, get_job(svc, request.path_params["job_id"]))
    return RedirectResponse("/", 303)


async def retry(request: Request) -> Response:
    """``POST /jobs/{id}/retry``."""
    svc = service(request)
    await small_form(request)
    j = get_job(svc, request.path_params["job_id"])
    retry_job(svc, j)
    return RedirectResponse(f"/jobs/{j.id}", 303)


async def login_form(request: Request) -> Response:
    """``GET /login``."""
    if not service(request).auth.required:
        return RedirectResponse("/", 303)
    return page(login_page(csrf_of(request)))


async def login(request: Request) -> Response:
    """``POST /login``: the token, once; a session cookie."""
    svc = service(request)
    fields = await small_form(request)
    if not svc.auth.required:
        return RedirectResponse("/", 303)
    if not svc.auth.token_matches(fields.get("token", "")):
        await asyncio.sleep(LOGIN_FAILURE_DELAY)
        return page(login_page(csrf_of(request), "That is not the access token."), 401)
    response = RedirectResponse("/", 303)
    value = svc.auth.new_session()
    response.headers.append("set-cookie", cookie(SESSION_COOKIE, value, SESSION_SECONDS))
    return response


async def logout(request: Request) -> Response:
    """``POST /logout``."""
    await small_form(request)
    response = RedirectResponse("/login", 303)
    response.headers.append("set-cookie", cookie(SESSION_COOKIE, "", 0))
    return response
