"""The project's exceptions: one decode error for wire data, one error for unusable files."""


class TlspcapError(Exception):
    """Base class of every error tlspcap raises on purpose."""


class DecodeError(TlspcapError):
    """Bytes on the wire (or in a capture) do not follow the structure they claim.

    Incremental readers raise it; the stage that calls them turns it into an anomaly on the
    connection (or the file) and carries on.
    """


class CaptureError(TlspcapError):
    """A capture file cannot be read at all (unknown format, unsupported link type, ...)."""

    def __init__(self, reason: str, offset: int | None = None) -> None:
        self.reason = reason
        self.offset = offset
        where = f" at byte {offset}" if offset is not None else ""
        super().__init__(f"{reason}{where}")


class OutputError(TlspcapError):
    """Results could not be written (e.g. the temporary report spool on a full disk)."""
