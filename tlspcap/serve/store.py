"""Job metadata in SQLite (stdlib ``sqlite3``, WAL journal) under the data directory.

One row per job: its state, the names and sizes of the files it was given, the options, and
once it is over, the totals the job list shows. The files themselves live in the job's own
directory beside the database (see :mod:`tlspcap.serve.paths`). Only the service process opens
the database, from its event loop; every call is a short local transaction.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    status TEXT NOT NULL,
    files TEXT NOT NULL DEFAULT '[]',
    options TEXT NOT NULL DEFAULT '{}',
    upload_bytes INTEGER NOT NULL DEFAULT 0,
    started_at REAL,
    finished_at REAL,
    reason TEXT,
    connections INTEGER,
    failed INTEGER,
    top_cause TEXT,
    packets INTEGER,
    bytes_read INTEGER,
    worker_max_rss INTEGER,
    worker_cpu REAL,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created_at);
"""


class Status(StrEnum):
    """Where a job is in its life."""

    UPLOAD_QUEUED = "upload_queued"
    """Waiting for an upload slot (the body is not read yet)."""
    UPLOADING = "uploading"
    QUEUED = "queued"
    """Uploaded, waiting for a worker."""
    RUNNING = "running"
    DONE = "done"
    """Analysed; the reports are there (a file that could not be read is named in them)."""
    FAILED = "failed"
    """The analysis did not finish (worker crashed, killed, over a limit): see ``reason``."""
    INTERRUPTED = "interrupted"
    """The service stopped while it ran; it can be retried."""


FINISHED = frozenset((Status.DONE, Status.FAILED, Status.INTERRUPTED))
"""States a job stays in until it is retried or deleted."""
RETRYABLE = frozenset((Status.FAILED, Status.INTERRUPTED))


@dataclass(frozen=True, slots=True)
class StoredFile:
    """A capture of a job, as the user named it."""

    name: str
    """The uploaded file name, cleaned for display (never used as a path)."""
    size: int


@dataclass(slots=True)
class Job:
    """One analysis request and what became of it."""

    id: str
    """128-bit random, 32 hex digits."""
    created_at: float
    status: Status
    files: list[StoredFile] = field(default_factory=list)
    options: dict[str, str] = field(default_factory=dict)
    """Text options (``host``, ``server_ciphers``, ``server_protocols``) and, for the option
    files given (``keylog``, ``ca_bundle``, ``nginx_conf``), their uploaded names."""
    upload_bytes: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    reason: str | None = None
    """Why the job failed or was interrupted."""
    connections: int | None = None
    failed: int | None = None
    top_cause: str | None = None
    packets: int | None = None
    bytes_read: int | None = None
    worker_max_rss: int | None = None
    """Peak resident memory of the analysis process, bytes."""
    worker_cpu: float | None = None
    """CPU seconds the analysis process used."""
    attempts: int = 0


_COLUMNS = [f.name for f in fields(Job)]


def _to_row(job: Job) -> dict[str, Any]:
    row = {c: getattr(job, c) for c in _COLUMNS}
    row["status"] = str(job.status)
    row["files"] = json.dumps([{"name": f.name, "size": f.size} for f in job.files])
    row["options"] = json.dumps(job.options)
    return row


def _from_row(row: sqlite3.Row) -> Job:
    values = {c: row[c] for c in _COLUMNS}
    values["status"] = Status(row["status"])
    values["files"] = [StoredFile(str(f["name"]), int(f["size"])) for f in json.loads(row["files"])]
    values["options"] = {str(k): str(v) for k, v in json.loads(row["options"]).items()}
    return Job(**values)


class JobStore:
    """The jobs table."""

    def __init__(self, path: Path) -> None:
        """Open (or create) the database at ``path``."""
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def journal_mode(self) -> str:
        """SQLite's journal mode (``wal``)."""
        return str(self._db.execute("PRAGMA journal_mode").fetchone()[0])

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def insert(self, job: Job) -> None:
        """Add a new job."""
        row = _to_row(job)
        names = ", ".join(row)
        marks = ", ".join(f":{c}" for c in row)
        self._db.execute(f"INSERT INTO jobs ({names}) VALUES ({marks})", row)

    def save(self, job: Job) -> None:
        """Write every field of an existing job."""
        row = _to_row(job)
        sets = ", ".join(f"{c} = :{c}" for c in row if c != "id")
        self._db.execute(f"UPDATE jobs SET {sets} WHERE id = :id", row)

    def get(self, job_id: str) -> Job | None:
        """The job, or None."""
        row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else _from_row(row)

    def delete(self, job_id: str) -> None:
        """Forget a job."""
        self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def recent(self, limit: int = 50) -> list[Job]:
        """The newest jobs first."""
        rows = self._db.execute(
            "SELECT * FROM jobs ORDER BY created_at DESC, id LIMIT ?", (limit,)
        ).fetchall()
        return [_from_row(r) for r in rows]

    def with_status(self, *statuses: Status) -> Iterator[Job]:
        """Jobs in any of ``statuses``, oldest first."""
        marks = ", ".join("?" for _ in statuses)
        rows = self._db.execute(
            f"SELECT * FROM jobs WHERE status IN ({marks}) ORDER BY created_at, id",
            [str(s) for s in statuses],
        ).fetchall()
        return (_from_row(r) for r in rows)

    def created_before(self, when: float) -> list[str]:
        """Ids of the jobs created before ``when`` (seconds since the epoch)."""
        rows = self._db.execute("SELECT id FROM jobs WHERE created_at < ?", (when,)).fetchall()
        return [str(r["id"]) for r in rows]
