"""The ASGI application: routes, error handling, access control, start and stop.

Starlette routes the requests; :class:`~tlspcap.serve.security.AccessMiddleware` wraps the whole
app (host check, token, CSRF cookie, security headers). Every error is an answer the client can
read: JSON ``{"error", "status"}`` under ``/api/``, an error page elsewhere; an unexpected
exception is logged here and answered with a plain 500 message, never a traceback.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from importlib import resources

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tlspcap.serve import api, views
from tlspcap.serve.config import ServeConfig
from tlspcap.serve.pages import report_csp
from tlspcap.serve.runner import Runner
from tlspcap.serve.security import AccessMiddleware, Auth, load_secret
from tlspcap.serve.service import Service
from tlspcap.serve.store import JobStore
from tlspcap.serve.uploads import RequestError

log = logging.getLogger("tlspcap.serve")

STATIC = {"serve.css": "text/css; charset=utf-8", "serve.js": "text/javascript; charset=utf-8"}
_JOB = "/api/v1/analyses/{job_id}"


async def static(request: Request) -> Response:
    """``GET /static/NAME``: the page's stylesheet and script, from the package."""
    name = request.path_params["name"]
    if name not in STATIC:
        raise RequestError(404, "no such file")
    data = resources.files("tlspcap.serve").joinpath("static", name).read_bytes()
    return Response(data, media_type=STATIC[name])


async def healthz(request: Request) -> Response:
    """``GET /healthz``: the service answers."""
    return JSONResponse({"status": "ok"})


ROUTES = [
    Route("/", views.index),
    Route("/jobs", views.upload, methods=["POST"]),
    Route("/jobs/{job_id}", views.job),
    Route("/jobs/{job_id}/delete", views.delete, methods=["POST"]),
    Route("/jobs/{job_id}/retry", views.retry, methods=["POST"]),
    Route("/login", views.login_form),
    Route("/login", views.login, methods=["POST"]),
    Route("/logout", views.logout, methods=["POST"]),
    Route("/static/{name}", static),
    Route("/healthz", healthz),
    Route("/api/v1/openapi.json", api.openapi),
    Route("/api/v1/analyses", api.list_jobs),
    Route("/api/v1/analyses", api.create, methods=["POST"]),
    Route(_JOB, api.show),
    Route(_JOB, api.delete, methods=["DELETE"]),
    Route(_JOB + "/retry", api.retry, methods=["POST"]),
    Route(_JOB + "/events", api.events),
    Route(_JOB + "/report.json", api.report_endpoint("json")),
    Route(_JOB + "/report.html", api.report_endpoint("html")),
    Route(_JOB + "/report.md", api.report_endpoint("markdown")),
]


def _answer(request: Request, status: int, message: str) -> Response:
    if request.url.path.startswith("/api/"):
        return api.error_response(status, message)
    return views.error(request, status, message)


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestError)
    return _answer(request, exc.status, exc.message)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = {404: "not found", 405: "method not allowed"}.get(exc.status_code, str(exc.detail))
    return _answer(request, exc.status_code, message)


async def _crashed(request: Request, exc: Exception) -> Response:
    log.error("%s %s: %s", request.method, request.url.path, type(exc).__name__, exc_info=exc)
    return api.error_response(500, "internal error of the service; its log has the details")


def create_app(config: ServeConfig) -> AccessMiddleware:
    """The service for ``config``: the Starlette app inside the access middleware (outermost,
    so that even a 500 answer carries the security headers). The data directory is created
    and the job database opened now; the queue starts with the ASGI lifespan."""
    config.data.mkdir(parents=True, exist_ok=True, mode=0o700)
    (config.data / "jobs").mkdir(exist_ok=True, mode=0o700)
    store = JobStore(config.data / "jobs.sqlite3")
    auth = Auth(config.token, load_secret(config.data))
    svc = Service(config, store, Runner(config, store), auth, report_csp())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await svc.runner.start()
        try:
            yield
        finally:
            await svc.runner.stop()
            store.close()

    app = Starlette(
        routes=ROUTES,
        exception_handlers={
            RequestError: _refused,
            HTTPException: _http_error,
            Exception: _crashed,
        },
        lifespan=lifespan,
    )
    app.state.service = svc
    return AccessMiddleware(app, config, auth)
