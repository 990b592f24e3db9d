"""Converting a capture in a foreign format to pcapng with Wireshark's ``editcap``.

:mod:`tlspcap.analyze` (the one place that opens capture files) calls it; this is the only
place tlspcap starts a process, and only for a file whose first bytes name a format Wireshark
reads and tlspcap does not (:mod:`tlspcap.capture.formats`). pcap and pcapng files never get
here.

``editcap -F pcapng -- IN OUT`` writes into a private temporary directory (mode 0700, removed
with everything in it when the analysis is over). The output is bounded: it may not grow past
:data:`MAX_CONVERTED_RATIO` times the input (at least 1 MiB) nor past
:data:`MAX_CONVERTED_BYTES`; ``editcap`` is stopped once it does (the size is checked every
:data:`POLL_SECONDS`), and after :data:`CONVERSION_TIMEOUT` seconds.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MAX_CONVERTED_RATIO = 16
"""The pcapng copy may be at most this many times the size of the file (pcapng adds 28 to 32
bytes per packet to any format's record header; a gzip-compressed input expands)."""
MAX_CONVERTED_BYTES = 4 << 30
"""Absolute bound on the pcapng copy (4 GiB)."""
CONVERSION_TIMEOUT = 600.0
"""Seconds ``editcap`` may run."""
POLL_SECONDS = 0.05
"""How often the size of the copy is checked while ``editcap`` runs."""
_STDERR_KEEP = 400


class ConversionError(Exception):
    """The file could not be converted; the message says why, for the file's error."""


def find_editcap() -> str | None:
    """The path of Wireshark's ``editcap`` on ``PATH``, or None."""
    return shutil.which("editcap")


def converted_limit(size: int) -> int:
    """The largest pcapng copy accepted for an input of ``size`` bytes."""
    return min(MAX_CONVERTED_BYTES, max(size, 1 << 20) * MAX_CONVERTED_RATIO)


@contextmanager
def converted(path: Path) -> Iterator[Path]:
    """Yield the path of a pcapng copy of ``path`` made by ``editcap``; removed afterwards.

    Raises :class:`ConversionError` when ``editcap`` is not installed, fails, runs too long or
    writes more than :func:`converted_limit` allows.
    """
    editcap = find_editcap()
    if editcap is None:
        raise ConversionError("editcap is not installed")
    limit = converted_limit(path.stat().st_size)
    with tempfile.TemporaryDirectory(prefix="tlspcap-convert-") as tmp:
        out = Path(tmp) / "converted.pcapng"
        errors = Path(tmp) / "editcap.stderr"
        with errors.open("wb") as err:
            proc = subprocess.Popen(
                [editcap, "-F", "pcapng", "--", str(path), str(out)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
            try:
                status = _wait(proc, out, limit)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        if status != 0:
            said = errors.read_bytes()[:_STDERR_KEEP].decode("utf-8", "replace")
            said = " ".join(said.replace("editcap: ", "").split())
            raise ConversionError(f"editcap failed with exit status {status}: {said}")
        yield out


def _wait(proc: subprocess.Popen[bytes], out: Path, limit: int) -> int:
    """Wait for ``editcap``; stop it when its output passes ``limit`` or time runs out."""
    deadline = time.monotonic() + CONVERSION_TIMEOUT
    while True:
        try:
            status = proc.wait(timeout=POLL_SECONDS)
        except subprocess.TimeoutExpired:
            status = None
        size = out.stat().st_size if out.exists() else 0
        if size > limit:
            raise ConversionError(
                f"editcap's pcapng copy passed {limit} bytes (the bound: "
                f"{MAX_CONVERTED_RATIO} times the file, at most {MAX_CONVERTED_BYTES}); "
                "conversion stopped"
            )
        if status is not None:
            return status
        if time.monotonic() > deadline:
            raise ConversionError(f"editcap ran longer than {CONVERSION_TIMEOUT:g} s; stopped")
