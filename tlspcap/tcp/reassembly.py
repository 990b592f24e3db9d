"""One direction of a TCP connection turned back into an ordered byte stream.

Theory of operation
-------------------
Sequence numbers are unwrapped into absolute stream offsets relative to the direction's initial
sequence number (from the SYN, or from the first segment seen when the SYN is not in the
capture). ``next_offset`` is the first byte not yet delivered.

* A segment at ``next_offset`` is delivered at once, then any buffered segments it makes
  contiguous are drained.
* A segment wholly before ``next_offset`` is a retransmission: counted, dropped. One that
  straddles it (an overlapping retransmission) delivers only its new bytes.
* A segment beyond ``next_offset`` is buffered (out of order). Buffered bytes are capped
  (``max_buffered``), and so is the number of buffered segments (``max_segments``, one per
  :data:`SEGMENT_SHARE` bytes of the cap: each costs a heap entry, so a flood of tiny segments
  must not hold many times the cap); past a cap, or when the direction closes or the capture
  ends, the hole is declared a *gap*: a :class:`Gap` is delivered in its place and reading
  resumes after it. Nothing is ever spliced across a gap as if it were contiguous.

Delivered pieces carry the frame that made them deliverable: the frame Wireshark shows a
reassembled message at.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

MASK32 = 0xFFFFFFFF
DEFAULT_MAX_BUFFERED = 1 << 20
"""Out-of-order bytes buffered per direction before the oldest hole is declared a gap."""
SEGMENT_SHARE = 128
"""Bytes of ``max_buffered`` per out-of-order segment that may be held (at least 16 segments)."""


@dataclass(frozen=True, slots=True)
class Gap:
    """Bytes missing from the capture at this point of the stream."""

    size: int
    """Number of missing bytes."""
    frame: int
    """Frame at which the gap was noticed."""
    offset: int = field(default=-1, compare=False)
    """Stream offset of the first missing byte (-1 when unknown)."""
    snaplen: bool = field(default=False, compare=False)
    """The bytes were on the wire but the capture's snap length cut them off (not a loss)."""


Piece = tuple[bytes, int] | Gap
"""What a direction delivers: contiguous ``(data, frame)`` or a :class:`Gap`."""


class StreamReassembler:
    """Reassembles one direction of a TCP connection (see the module docstring)."""

    __slots__ = (
        "_base",
        "_heap",
        "_tiebreak",
        "buffered",
        "max_buffered",
        "max_segments",
        "next_offset",
        "out_of_order",
        "retransmitted",
    )

    def __init__(self, max_buffered: int = DEFAULT_MAX_BUFFERED) -> None:
        self._base: int | None = None
        self._heap: list[tuple[int, int, int, bytes]] = []
        self._tiebreak = 0
        self.next_offset = 0
        """Stream offset of the first byte not yet delivered."""
        self.buffered = 0
        """Out-of-order payload bytes held."""
        self.max_buffered = max_buffered
        self.max_segments = max(16, max_buffered // SEGMENT_SHARE)
        """Out-of-order segments held before the oldest hole is declared a gap."""
        self.retransmitted = 0
        """Segments that carried only already-delivered bytes."""
        self.out_of_order = 0
        """Segments that arrived ahead of a hole."""

    @property
    def started(self) -> bool:
        """True once an initial sequence number is known."""
        return self._base is not None

    def syn(self, seq: int) -> None:
        """Record the initial sequence number from a SYN (data starts at ``seq + 1``)."""
        if self._base is None:
            self._base = (seq + 1) & MASK32

    def offset_of(self, seq: int) -> int:
        """Absolute stream offset of sequence number ``seq`` (nearest to ``next_offset``)."""
        assert self._base is not None
        expected = (self._base + self.next_offset) & MASK32
        delta = (seq - expected) & MASK32
        if delta >= 0x80000000:
            delta -= 0x100000000
        return self.next_offset + delta

    @property
    def expected(self) -> int | None:
        """Sequence number of the first byte not yet delivered (None before the start)."""
        if self._base is None:
            return None
        return (self._base + self.next_offset) & MASK32

    def advance(self, delivered: int, retransmitted: int) -> None:
        """Count what was reassembled elsewhere (the engine's fast lane): ``delivered`` bytes
        in order, ``retransmitted`` segments of bytes already delivered; nothing buffered."""
        assert not self._heap
        self.next_offset += delivered
        self.retransmitted += retransmitted

    def add(self, seq: int, payload: bytes, frame: int) -> list[Piece]:
        """Take one segment's payload; return what became deliverable, in stream order."""
        if not payload:
            return []
        base = self._base
        if base is None:
            base = self._base = seq & MASK32
        nxt = self.next_offset
        delta = (seq - base - nxt) & MASK32  # as in offset_of, inlined: this runs per segment
        if not delta:  # in order, the common case
            self.next_offset = nxt + len(payload)
            if not self._heap:
                return [(payload, frame)]
            pieces: list[Piece] = [(payload, frame)]
            self._drain(frame, pieces)
            return pieces
        if delta >= 0x80000000:
            delta -= 0x100000000
        pos = nxt + delta
        end = pos + len(payload)
        if end <= nxt:
            self.retransmitted += 1
            return []
        out: list[Piece] = []
        if pos <= nxt:
            out.append((payload[nxt - pos :], frame))
            self.next_offset = end
            self._drain(frame, out)
            return out
        self.out_of_order += 1
        self._tiebreak += 1
        heapq.heappush(self._heap, (pos, self._tiebreak, frame, payload))
        self.buffered += len(payload)
        heap = self._heap
        while heap and (self.buffered > self.max_buffered or len(heap) > self.max_segments):
            self._skip_hole(frame, out)
        return out

    def flush(self, frame: int) -> list[Piece]:
        """Deliver everything buffered, declaring each remaining hole a gap (close, end)."""
        out: list[Piece] = []
        while self._heap:
            self._skip_hole(frame, out)
        return out

    def skip_to(self, seq: int, frame: int) -> list[Piece]:
        """Declare bytes before ``seq`` lost (the peer acknowledged data the capture lacks)."""
        if self._base is None:
            return []
        target = self.offset_of(seq)
        out: list[Piece] = []
        if target > self.next_offset:
            if self._heap and self._heap[0][0] < target:
                target = max(self.next_offset, self._heap[0][0])
            if target > self.next_offset:
                out.append(Gap(target - self.next_offset, frame, self.next_offset, snaplen=True))
                self.next_offset = target
            self._drain(frame, out)
        return out

    def acked(self, ack: int, frame: int) -> list[Piece]:
        """The peer acknowledged ``ack``: a hole it covers, with buffered data after it that the
        peer acknowledged too, was received by the peer and is missing from the capture."""
        heap = self._heap
        if not heap or self._base is None:
            return []
        first_pos, _, _, first_data = heap[0]
        if self.offset_of(ack) < first_pos + len(first_data):
            return []
        out: list[Piece] = []
        self._skip_hole(frame, out)
        return out

    def _skip_hole(self, frame: int, out: list[Piece]) -> None:
        first = self._heap[0][0]
        if first > self.next_offset:
            out.append(Gap(first - self.next_offset, frame, self.next_offset))
            self.next_offset = first
        self._drain(frame, out)

    def _drain(self, frame: int, out: list[Piece]) -> None:
        heap = self._heap
        while heap and heap[0][0] <= self.next_offset:
            pos, _, _, data = heapq.heappop(heap)
            self.buffered -= len(data)
            end = pos + len(data)
            if end <= self.next_offset:
                self.retransmitted += 1
                continue
            out.append((data[self.next_offset - pos :], frame))
            self.next_offset = end
