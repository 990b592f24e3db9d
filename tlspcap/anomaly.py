"""Named oddities found while reading a capture (Zeek calls them "weirds")."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Anomaly:
    """Something malformed or unexpected, kept as data instead of raised."""

    name: str
    """Stable snake_case name, e.g. ``truncated_record``, ``tcp_gap``, ``malformed_alert``."""
    frame: int | None
    """1-based frame number the anomaly was seen at, when there is one."""
    detail: str = ""
    """Human-readable detail."""
