"""Running the service: uvicorn on the configured address, until SIGINT or SIGTERM."""

from __future__ import annotations

import logging
import socket
import sys

import uvicorn

from tlspcap.serve.app import create_app
from tlspcap.serve.config import ServeConfig


def bind(config: ServeConfig) -> socket.socket:
    """A listening socket on the configured address (port 0: a free port)."""
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind((config.host, config.port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    """``http://HOST:PORT/`` of a bound socket."""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def run(config: ServeConfig) -> None:
    """Serve until stopped. The one line on stdout says where; the log (uvicorn's access log
    included) goes to stderr."""
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(levelname)s: %(name)s: %(message)s"
    )
    app = create_app(config)
    sock = bind(config)
    auth = "token required" if config.token else "this machine only, no token"
    print(f"tlspcap serve: listening on {url_of(sock)} ({auth}; data in {config.data})")
    sys.stdout.flush()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            http="h11",
            ws="none",
            loop="asyncio",
            lifespan="on",
            server_header=False,
            proxy_headers=False,
            timeout_graceful_shutdown=5,
            log_config=None,  # uvicorn's loggers go to the root logger above
            log_level="info",
        )
    )
    server.run(sockets=[sock])
