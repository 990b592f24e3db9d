"""Per-server facts that no longer fit in memory, kept in a file until the capture ends.

:class:`~tlspcap.diagnosis.knowledge.CaptureKnowledge` keeps the servers learnt about most
recently in memory; past :data:`~tlspcap.diagnosis.knowledge.MAX_SERVERS` the least recent one
moves here (an SQLite file in a directory the caller owns, removed by :meth:`ServerSpill.close`),
and comes back when a connection to it is learnt or diagnosed. Nothing is forgotten, so no cap
changes a verdict on a capture that talks to many servers. The rows are pickles this process
wrote (nothing read from a capture is ever unpickled as such).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sqlite3
import tempfile
from typing import TYPE_CHECKING

from tlspcap.errors import OutputError

if TYPE_CHECKING:
    from tlspcap.diagnosis.knowledge import ServerFacts


class ServerSpill:
    """A file of ``server endpoint -> ServerFacts``, created on the first :meth:`put`."""

    def __init__(self, directory: str) -> None:
        """Spill into a new file in ``directory``."""
        self._directory = directory
        self._path: str | None = None
        self._db: sqlite3.Connection | None = None

    def put(self, key: str, facts: ServerFacts) -> None:
        """Keep (or replace) one server's facts."""
        try:
            db = self._open()
            db.execute(
                "INSERT OR REPLACE INTO servers VALUES (?, ?)",
                (key, pickle.dumps(facts, protocol=pickle.HIGHEST_PROTOCOL)),
            )
        except (OSError, sqlite3.Error) as exc:
            raise OutputError(f"cannot write the server facts in {self._directory}: {exc}") from exc

    def get(self, key: str) -> ServerFacts | None:
        """One server's facts as last put, or None."""
        if self._db is None:
            return None
        try:
            row = self._db.execute("SELECT facts FROM servers WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error as exc:
            raise OutputError(f"cannot read the server facts {self._path}: {exc}") from exc
        if row is None:
            return None
        facts: ServerFacts = pickle.loads(row[0])  # our own file: see the module docstring
        return facts

    def close(self) -> None:
        """Remove the file."""
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None
        if self._path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._path)
            self._path = None

    def _open(self) -> sqlite3.Connection:
        if self._db is None:
            fd, self._path = tempfile.mkstemp(prefix="servers-", suffix=".db", dir=self._directory)
            os.close(fd)
            self._db = sqlite3.connect(self._path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode = OFF")
            self._db.execute("PRAGMA synchronous = OFF")
            self._db.execute("CREATE TABLE servers (key TEXT PRIMARY KEY, facts BLOB)")
        return self._db
