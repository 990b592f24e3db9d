"""Access control and the headers every response carries.

* Loopback binds need no token; any other bind has one (``config.make_config`` refuses to start
  without). The API takes it as ``Authorization: Bearer TOKEN``; the page takes it once, at
  ``/login``, which sets an HttpOnly, SameSite=Strict session cookie signed with a key derived
  from the token and a secret kept in the data directory. Tokens are compared in constant time.
* Forms carry a CSRF token: an HMAC of a random nonce kept in its own HttpOnly, SameSite=Strict
  cookie (double submit, signed). The page's upload script sends it as ``X-CSRF-Token``.
* On a loopback bind, a request whose ``Host`` is not a loopback name is refused (DNS
  rebinding), and so is a state-changing request that a browser marks as cross-site.
* Every response gets a restrictive Content-Security-Policy (``frame-ancestors 'none'``),
  ``nosniff``, no referrer, no caching.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from tlspcap.serve.config import ServeConfig

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SESSION_COOKIE = "tlspcap_session"
CSRF_COOKIE = "tlspcap_csrf"
CSRF_HEADER = "x-csrf-token"
SESSION_SECONDS = 12 * 3600
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
"""The policy of the service's own pages (no inline script or style, nothing remote)."""
DATA_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
"""The policy of everything that is not a page (JSON, downloads)."""
PUBLIC_PATHS = ("/login", "/static/", "/api/v1/openapi.json", "/healthz")
"""Paths served without a token (prefixes ending with '/')."""
UNSAFE_METHODS = frozenset(("POST", "PUT", "PATCH", "DELETE"))


def load_secret(data: Path) -> bytes:
    """The service's signing secret (created on first start, owner-only)."""
    path = data / "secret.key"
    try:
        secret = path.read_bytes()
        if len(secret) >= 32:
            return secret
    except FileNotFoundError:
        pass
    secret = secrets.token_bytes(32)
    path.touch(mode=0o600)
    path.write_bytes(secret)
    return secret


class Auth:
    """Token checks, session cookies and CSRF tokens."""

    def __init__(self, token: str | None, secret: bytes) -> None:
        """``token`` None: no authentication (loopback)."""
        self.token = token
        material = b"tlspcap-serve|" + (token or "").encode()
        self._key = hmac.new(secret, material, hashlib.sha256).digest()

    @property
    def required(self) -> bool:
        """Whether clients must present the token."""
        return self.token is not None

    def token_matches(self, given: str) -> bool:
        """Constant-time comparison with the token."""
        if self.token is None:
            return False
        a = hashlib.sha256(given.encode("utf-8", errors="replace")).digest()
        b = hashlib.sha256(self.token.encode()).digest()
        return hmac.compare_digest(a, b)

    def bearer_ok(self, header: str | None) -> bool:
        """Whether an ``Authorization`` header carries the token."""
        if header is None:
            return False
        scheme, _, value = header.partition(" ")
        return scheme.lower() == "bearer" and self.token_matches(value.strip())

    def _sign(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()

    def new_session(self, now: float | None = None) -> str:
        """A session cookie value: expiry, nonce, signature."""
        expiry = int((time.time() if now is None else now) + SESSION_SECONDS)
        body = f"{expiry}.{secrets.token_hex(16)}"
        return f"{body}.{self._sign('session|' + body)}"

    def session_ok(self, value: str | None, now: float | None = None) -> bool:
        """Whether a session cookie is ours and not expired."""
        if not value or value.count(".") != 2:
            return False
        body, _, sig = value.rpartition(".")
        if not hmac.compare_digest(self._sign("session|" + body), sig):
            return False
        expiry = body.split(".")[0]
        return expiry.isdigit() and int(expiry) > (time.time() if now is None else now)

    @staticmethod
    def new_nonce() -> str:
        """A value for the CSRF cookie."""
        return secrets.token_hex(16)

    def csrf_token(self, nonce: str) -> str:
        """The CSRF token that goes with the CSRF cookie ``nonce``."""
        return self._sign("csrf|" + nonce)

    def csrf_ok(self, nonce: str | None, token: str | None) -> bool:
        """Whether ``token`` is the CSRF token of ``nonce``."""
        if not nonce or not token:
            return False
        return hmac.compare_digest(self.csrf_token(nonce), token)


def cookie(name: str, value: str, max_age: int | None = None) -> str:
    """A ``Set-Cookie`` value: HttpOnly, SameSite=Strict, whole site."""
    parts = [f"{name}={value}", "Path=/", "HttpOnly", "SameSite=Strict"]
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    return "; ".join(parts)


def parse_cookies(header: str) -> dict[str, str]:
    """The cookies of a ``Cookie`` header (first value of each name)."""
    out: dict[str, str] = {}
    for item in header.split(";"):
        name, sep, value = item.strip().partition("=")
        if sep and name not in out:
            out[name] = value
    return out


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}


def is_public(path: str) -> bool:
    """Whether ``path`` is served without a token."""
    return any(path == p or (p.endswith("/") and path.startswith(p)) for p in PUBLIC_PATHS)


def _loopback_host(host_header: str) -> bool:
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host
    else:
        host = host.rpartition(":")[0] if ":" in host else host
    return host in ("localhost", "::1") or (
        host.startswith("127.") and host.replace(".", "").isdigit() and host.count(".") == 3
    )


async def _send_json(
    send: Send, status: int, message: str, extra: list[tuple[bytes, bytes]]
) -> None:
    body = json.dumps({"error": message, "status": status}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _redirect(send: Send, location: str) -> None:
    headers = [(b"location", location.encode("latin-1")), (b"content-length", b"0")]
    await send({"type": "http.response.start", "status": 303, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


class AccessMiddleware:
    """Host check, authentication, cross-site refusal, the CSRF cookie, security headers.

    It puts ``auth`` (``"bearer"``, ``"session"`` or ``"open"``) and ``csrf_nonce`` (the
    browser's CSRF cookie, or a fresh one) in ``scope["state"]`` for the handlers; a request
    the handlers should not see is answered here (401 JSON for the API, a redirect to the
    login page for pages).
    """

    def __init__(self, app: ASGIApp, config: ServeConfig, auth: Auth) -> None:
        """Wrap ``app``."""
        self.app = app
        self.config = config
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the request, then pass it on with the headers added to the response."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        cookies = parse_cookies(headers.get("cookie", ""))
        path: str = scope.get("path", "/")
        api = path.startswith("/api/")
        nonce = cookies.get(CSRF_COOKIE)
        new_nonce = None
        if not nonce or len(nonce) != 32:
            nonce = Auth.new_nonce()
            new_nonce = None if api else nonce  # the pages set it; API clients need none
        state = scope.setdefault("state", {})
        state["csrf_nonce"] = nonce
        send = _with_headers(send, new_nonce)
        if self.config.loopback and not _loopback_host(headers.get("host", "")):
            await _send_json(send, 400, "unexpected Host header for a loopback service", [])
            return
        method = scope.get("method", "GET")
        if method in UNSAFE_METHODS and _cross_site(headers):
            await _send_json(send, 403, "cross-site request refused", [])
            return
        state["auth"] = self._authenticate(headers, cookies)
        if state["auth"] is None and not is_public(path):
            if api:
                challenge = [(b"www-authenticate", b'Bearer realm="tlspcap"')]
                await _send_json(
                    send, 401, "missing or wrong token (Authorization: Bearer ...)", challenge
                )
            else:
                await _redirect(send, "/login")
            return
        await self.app(scope, receive, send)

    def _authenticate(self, headers: dict[str, str], cookies: dict[str, str]) -> str | None:
        if not self.auth.required:
            return "open"
        if self.auth.bearer_ok(headers.get("authorization")):
            return "bearer"
        if self.auth.session_ok(cookies.get(SESSION_COOKIE)):
            return "session"
        return None


def _cross_site(headers: dict[str, str]) -> bool:
    """Whether a browser says the request comes from another site."""
    site = headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return True
    origin = headers.get("origin")
    host = headers.get("host", "")
    if origin is None or origin == "null":
        return origin == "null"
    return origin.partition("://")[2] != host


def _with_headers(send: Send, new_nonce: str | None) -> Send:
    """``send`` with the security headers (and a fresh CSRF cookie) added to the response."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            names = {k.lower() for k, _ in headers}
            extra = [
                (b"x-content-type-options", b"nosniff"),
                (b"referrer-policy", b"no-referrer"),
                (b"x-frame-options", b"DENY"),
                (b"cross-origin-opener-policy", b"same-origin"),
                (b"cross-origin-resource-policy", b"same-origin"),
                (b"cache-control", b"no-store"),
            ]
            if b"content-security-policy" not in names:
                extra.append((b"content-security-policy", DATA_CSP.encode()))
            headers += [(k, v) for k, v in extra if k not in names]
            if new_nonce is not None:
                headers.append((b"set-cookie", cookie(CSRF_COOKIE, new_nonce).encode()))
            message = {**message, "headers": headers}
        await send(message)

    return wrapped
