"""Where a job's files live under the data directory, and job ids.

Every path is made from the job id (checked to be 32 hex digits) and fixed names; nothing a
client sends (a file name above all) ever becomes part of a path::

    DATA/jobs.sqlite3            the job table (store.py)
    DATA/secret.key              signs session cookies and CSRF tokens (security.py)
    DATA/jobs/ID/input/capture-0 the uploaded captures, in upload order
    DATA/jobs/ID/input/keylog    the option files given (keylog, ca_bundle, nginx_conf)
    DATA/jobs/ID/output/report.json, report.html, report.md
    DATA/jobs/ID/worker.log      what the analysis process wrote on stderr
"""

from __future__ import annotations

import re
import secrets
import shutil
from pathlib import Path

OPTION_FILES = ("keylog", "ca_bundle", "nginx_conf")
"""Form fields that carry a file for a diagnosis option."""
REPORTS = {"json": "report.json", "html": "report.html", "markdown": "report.md"}
"""File name of each report format in a job's output directory."""
_JOB_ID = re.compile(r"[0-9a-f]{32}")


def new_job_id() -> str:
    """A fresh job id: 128 random bits as 32 hex digits."""
    return secrets.token_hex(16)


def is_job_id(text: str) -> bool:
    """Whether ``text`` has the shape of a job id."""
    return _JOB_ID.fullmatch(text) is not None


class JobPaths:
    """The files of one job."""

    def __init__(self, data: Path, job_id: str) -> None:
        """Paths of job ``job_id`` under ``data`` (``ValueError`` for a malformed id)."""
        if not is_job_id(job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        self.root = data / "jobs" / job_id
        self.input = self.root / "input"
        self.output = self.root / "output"
        self.log = self.root / "worker.log"

    def capture(self, index: int) -> Path:
        """Where the ``index``-th uploaded capture is stored."""
        return self.input / f"capture-{index}"

    def option(self, name: str) -> Path:
        """Where an option file (one of :data:`OPTION_FILES`) is stored."""
        if name not in OPTION_FILES:
            raise ValueError(f"not an option file: {name!r}")
        return self.input / name

    def report(self, fmt: str) -> Path:
        """The report in ``fmt`` (a key of :data:`REPORTS`)."""
        return self.output / REPORTS[fmt]

    def create(self) -> None:
        """Make the job's directories (owner only)."""
        self.input.mkdir(parents=True, mode=0o700)
        self.output.mkdir(mode=0o700)

    def remove(self) -> None:
        """Delete every file of the job."""
        shutil.rmtree(self.root, ignore_errors=True)

    def remove_input(self) -> None:
        """Delete the uploaded files only."""
        shutil.rmtree(self.input, ignore_errors=True)
