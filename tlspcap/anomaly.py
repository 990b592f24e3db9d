"""Named oddities found while reading a capture (Zeek calls them "weirds")."""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Anomaly:
    """Something malformed or unexpected, kept as data instead of raised."""

    name: str
    """Stable snake_case name, e.g. ``truncated_record``, ``tcp_gap``, ``malformed_alert``."""
    frame: int | None
    """1-based frame number the anomaly was seen at, when there is one."""
    detail: str = ""
    """Human-readable detail."""


MAX_PER_CONNECTION = 100
"""Anomalies (and alerts) kept per connection; further ones are only counted."""


class CappedList(list[T]):
    """A list that keeps its first ``cap`` items and counts the rest (hostile input is bounded)."""

    def __init__(self, cap: int = MAX_PER_CONNECTION) -> None:
        super().__init__()
        self.cap = cap
        self.dropped = 0
        """Items refused once the list was full."""

    def append(self, item: T) -> None:
        """Keep ``item`` if there is room, else count it."""
        if len(self) < self.cap:
            super().append(item)
        else:
            self.dropped += 1

    def extend(self, items: Iterable[T]) -> None:
        """Append each item (within the cap)."""
        for item in items:
            self.append(item)

    def __reduce__(self) -> tuple[object, ...]:
        """Pickle as (cap, dropped, items): the default would restore the items before ``cap``."""
        return (_capped_list, (self.cap, self.dropped, list(self)))


def _capped_list(cap: int, dropped: int, items: list[T]) -> CappedList[T]:
    """Rebuild a pickled :class:`CappedList`."""
    out: CappedList[T] = CappedList(cap)
    list.extend(out, items)
    out.dropped = dropped
    return out
