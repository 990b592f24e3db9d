"""``tlspcap serve`` settings: sizes, the bind address, the token, and the checks made before
the service starts (a non-loopback bind without a token is refused)."""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path

from tlspcap.errors import TlspcapError

KiB, MiB, GiB, TiB = 1 << 10, 1 << 20, 1 << 30, 1 << 40
_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": KiB,
    "mib": MiB,
    "gib": GiB,
    "tib": TiB,
}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*")

DEFAULT_BIND = "127.0.0.1:8080"
DEFAULT_MAX_UPLOAD = "4GiB"
DEFAULT_RETENTION_DAYS = 30.0
DEFAULT_WORKER_MEMORY = "2GiB"
DEFAULT_WORKER_CPU_SECONDS = 1800
DEFAULT_UPLOAD_SLOTS = 4
MIN_TOKEN_LENGTH = 16
"""Shortest token accepted (a guessable token on an open port is no protection)."""


class ConfigError(TlspcapError):
    """The service cannot start with these settings."""


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/tlspcap/serve``, else ``~/.local/share/tlspcap/serve``."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "tlspcap" / "serve"


def parse_size(text: str, what: str = "size") -> int:
    """``500MB`` (decimal units), ``4GiB`` (binary units) or plain bytes, as bytes."""
    m = _SIZE.fullmatch(text)
    unit = m.group(2).lower() if m else ""
    if m is None or unit not in _UNITS:
        raise ConfigError(f"{what} {text!r}: expected a size such as 500MB, 4GiB or 1048576")
    size = int(float(m.group(1)) * _UNITS[unit])
    if size <= 0:
        raise ConfigError(f"{what} {text!r}: must be more than 0 bytes")
    return size


def format_size(n: int) -> str:
    """A size the way a user would write it: ``4 GiB``, ``500 MB``, ``1.5 MB``, ``812 bytes``."""
    for unit, factor in (("TiB", TiB), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= factor and n % factor == 0:
            return f"{n // factor} {unit}"
    for unit, factor in (("TB", 1000**4), ("GB", 1000**3), ("MB", 1000**2), ("kB", 1000)):
        if n >= factor:
            return f"{n / factor:.3g} {unit}"
    return f"{n} bytes"


def parse_bind(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (IPv6 in brackets, ``localhost`` allowed) as (IP address, port)."""
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([^:\[\]]+):(\d+)", text.strip())
    if m is None:
        raise ConfigError(f"--bind {text!r}: expected HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080")
    host = m.group(1) or m.group(3)
    port = int(m.group(2) or m.group(4))
    if host == "localhost":
        host = "127.0.0.1"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"--bind {text!r}: the host must be an IP address or localhost") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"--bind {text!r}: the port must be from 0 to 65535")
    return host, port


def is_loopback(host: str) -> bool:
    """127.0.0.0/8 and ::1 (``0.0.0.0`` and ``::`` are every interface, not loopback)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_token(path: Path) -> str:
    """The token in ``path`` (surrounding whitespace dropped), checked for length."""
    try:
        token = path.read_text("utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--token-file {path}: cannot read it ({exc})") from None
    if len(token) < MIN_TOKEN_LENGTH or any(c.isspace() or not c.isprintable() for c in token):
        raise ConfigError(
            f"--token-file {path}: the token must be at least {MIN_TOKEN_LENGTH} printable "
            "characters without spaces (e.g. `openssl rand -hex 32`)"
        )
    return token


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """Everything the service needs to run."""

    host: str
    """The IP address to listen on."""
    port: int
    """The TCP port (0: any free port)."""
    data: Path
    """Directory of the job database and the uploaded files."""
    max_upload: int = 4 * GiB
    """Largest upload (the whole request body), in bytes."""
    workers: int = 1
    """Analyses run at the same time (each in its own process)."""
    upload_slots: int = DEFAULT_UPLOAD_SLOTS
    """Uploads received at the same time; more wait their turn."""
    retention_days: float = DEFAULT_RETENTION_DAYS
    """Jobs older than this are deleted."""
    token: str | None = None
    """The access token; None: no authentication (loopback binds only)."""
    worker_memory: int = 2 * GiB
    """Address-space limit of an analysis process (RLIMIT_AS)."""
    worker_cpu_seconds: int = DEFAULT_WORKER_CPU_SECONDS
    """CPU-time limit of an analysis process (RLIMIT_CPU)."""
    free_space_reserve: int = 256 * MiB
    """Disk space an upload must leave free under ``data``."""

    @property
    def loopback(self) -> bool:
        """Whether only this machine can reach the service."""
        return is_loopback(self.host)


def make_config(
    bind: str = DEFAULT_BIND,
    data: Path | None = None,
    max_upload: str = DEFAULT_MAX_UPLOAD,
    workers: int | None = None,
    uploads: int = DEFAULT_UPLOAD_SLOTS,
    retention_days: float = DEFAULT_RETENTION_DAYS,
    token_file: Path | None = None,
    worker_memory: str = DEFAULT_WORKER_MEMORY,
    worker_cpu_seconds: int = DEFAULT_WORKER_CPU_SECONDS,
) -> ServeConfig:
    """Check the command line's values and build the configuration (:class:`ConfigError`)."""
    host, port = parse_bind(bind)
    token = read_token(token_file) if token_file is not None else None
    if token is None and not is_loopback(host):
        raise ConfigError(
            f"--bind {bind}: listening beyond this machine needs --token-file FILE (a secret "
            "that every client must present); without one, bind to 127.0.0.1 or [::1]"
        )
    if retention_days <= 0:
        raise ConfigError("--retention must be more than 0 days")
    for name, value in (("--workers", workers), ("--uploads", uploads)):
        if value is not None and value < 1:
            raise ConfigError(f"{name} must be at least 1")
    if worker_cpu_seconds < 1:
        raise ConfigError("--worker-cpu must be at least 1 second")
    return ServeConfig(
        host=host,
        port=port,
        data=(data if data is not None else default_data_dir()).resolve(),
        max_upload=parse_size(max_upload, "--max-upload"),
        workers=workers if workers is not None else (os.cpu_count() or 1),
        upload_slots=uploads,
        retention_days=retention_days,
        token=token,
        worker_memory=parse_size(worker_memory, "--worker-memory"),
        worker_cpu_seconds=worker_cpu_seconds,
    )
