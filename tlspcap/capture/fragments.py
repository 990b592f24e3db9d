"""IP fragment reassembly (IPv4 and IPv6) in bounded memory, with capture-time timeouts.

The decoder hands every fragment to :meth:`FragmentReassembler.add` with its datagram key
(addresses, identification, protocol for IPv4, and the tunnel it was found in), its offset, its
bytes and its "more fragments" flag. The fragment that completes a datagram gets the reassembled
payload back, and the decoder carries on with it as if that frame had held the whole datagram
(the frame number Wireshark shows the reassembled packet at).

Theory of operation. A pending datagram keeps its pieces as sorted, non-overlapping
``(start, end, bytes)`` runs and the count of distinct bytes held. A new fragment only fills the
holes between the runs already held: **the bytes received first win** where fragments overlap.
That is the "first" policy of Snort's frag3 and Suricata's defragmenter (after Novak,
"Target-Based Fragmentation Reassembly", 2005). Real receivers differ: since RFC 5722 every IPv6
stack, and Linux for IPv4 since 4.19 (commit 7969e5c40dfd, "ip: discard IPv4 datagrams with
overlapping segments"), drop a datagram with overlapping fragments altogether. An overlap is
therefore always reported (``fragment_overlap``, saying whether the overlapping bytes
differed), so a verdict that rests on such a datagram can be weighed. A datagram is complete
when its last fragment (no "more fragments" flag) has fixed its length and every byte below it
is held; the payload is then the runs joined.

Bounds (docs/LIMITS.md): at most :data:`MAX_PENDING_DATAGRAMS` datagrams and
:data:`MAX_PENDING_BYTES` bytes pending per IP version (each fragment held is charged its
length plus :data:`FRAGMENT_OVERHEAD`, so a flood of tiny fragments is bounded too). Past either
bound the oldest pending datagram is dropped (``fragments_dropped``). A datagram still
incomplete :data:`FRAGMENT_TIMEOUT_V4` / :data:`FRAGMENT_TIMEOUT_V6` seconds of capture time
after its first fragment is dropped (``fragments_timed_out``) when a later fragment arrives;
what is pending at the end of the capture is reported as ``fragments_incomplete``.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Hashable

from tlspcap.anomaly import Anomaly

MAX_PENDING_DATAGRAMS = 1024
"""Incomplete datagrams held at once, per IP version."""
MAX_PENDING_BYTES = 4 << 20
"""Bytes held in incomplete datagrams at once, per IP version (Linux's ``ipfrag_high_thresh``
default, 4 MiB), counting :data:`FRAGMENT_OVERHEAD` per fragment held."""
FRAGMENT_OVERHEAD = 64
"""Bytes charged per fragment held, besides its data (about what Python spends on it)."""
FRAGMENT_TIMEOUT_V4 = 30.0
"""Seconds of capture time an IPv4 datagram may take to complete (Linux ``ipfrag_time``)."""
FRAGMENT_TIMEOUT_V6 = 60.0
"""Seconds of capture time an IPv6 datagram may take to complete (RFC 8200, section 4.5)."""
MAX_DATAGRAM = 65535
"""Largest reassembled payload accepted: an IPv4 total length or IPv6 payload length is 16 bits."""


class _Pending:
    """One incomplete datagram."""

    __slots__ = (
        "charge",
        "count",
        "datas",
        "deadline",
        "ends",
        "first",
        "first_frame",
        "have",
        "starts",
        "total",
    )

    def __init__(self, frame: int, deadline: float) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.datas: list[bytes] = []
        self.have = 0
        """Distinct bytes held."""
        self.total = -1
        """Payload length, once the last fragment has been seen (-1 before)."""
        self.count = 0
        """Fragments received for it."""
        self.charge = 0
        """Bytes charged against :data:`MAX_PENDING_BYTES`."""
        self.first = -1
        """``first_info`` of the fragment at offset 0 (IPv6: its next header)."""
        self.first_frame = frame
        self.deadline = deadline


class _Counter:
    """How many datagrams and fragments met one fate, and the first frame it happened at."""

    __slots__ = ("datagrams", "first", "fragments")

    def __init__(self) -> None:
        self.datagrams = 0
        self.fragments = 0
        self.first = 0

    def add(self, datagrams: int, fragments: int, frame: int) -> None:
        if not self.datagrams and not self.fragments:
            self.first = frame
        self.datagrams += datagrams
        self.fragments += fragments


class FragmentReassembler:
    """Reassembles the fragmented datagrams of one IP version (see the module docstring)."""

    def __init__(
        self,
        version: int,
        timeout: float,
        max_datagrams: int = MAX_PENDING_DATAGRAMS,
        max_bytes: int = MAX_PENDING_BYTES,
    ) -> None:
        """``version`` (4 or 6) only names the reassembler in anomalies."""
        self.version = version
        self.timeout = timeout
        self.max_datagrams = max_datagrams
        self.max_bytes = max_bytes
        self._pending: dict[Hashable, _Pending] = {}  # insertion order: oldest first
        self.held_bytes = 0
        """Bytes currently charged (data plus :data:`FRAGMENT_OVERHEAD` per fragment)."""
        self.received = 0
        """Fragments handed over so far (:meth:`add` and :meth:`note_truncated`)."""
        self.reassembled = _Counter()
        self.overlaps = _Counter()
        """Fragments that overlapped bytes already held (``datagrams`` counts the conflicting
        ones: overlapping bytes that differed)."""
        self.invalid = _Counter()
        self.truncated = _Counter()
        self.timed_out = _Counter()
        self.dropped = _Counter()
        self.incomplete = _Counter()

    @property
    def pending(self) -> int:
        """Incomplete datagrams held."""
        return len(self._pending)

    def add(
        self,
        key: Hashable,
        offset: int,
        data: bytes,
        more: bool,
        frame: int,
        ts: float,
        first_info: int = -1,
    ) -> tuple[bytes, int, int] | None:
        """Add one fragment; return ``(payload, fragments, first_info)`` when it completes the
        datagram (``first_info`` as given with the fragment at offset 0), else ``None``."""
        self.received += 1
        pending = self._pending
        if pending:
            self._expire(ts)
        end = offset + len(data)
        if end > MAX_DATAGRAM:
            self.invalid.add(0, 1, frame)
            return None
        p = pending.get(key)
        if p is None:
            p = pending[key] = _Pending(frame, ts + self.timeout)
        p.count += 1
        if not more:
            if p.total >= 0 and p.total != end:
                self._drop_invalid(key, p, frame)
                return None
            if p.ends and p.ends[-1] > end:
                self._drop_invalid(key, p, frame)
                return None
            p.total = end
        elif p.total >= 0 and end > p.total:
            self._drop_invalid(key, p, frame)
            return None
        if offset == 0:
            p.first = first_info
        if data:
            self._insert(p, offset, end, data, frame)
        if p.have == p.total:
            del pending[key]
            self.held_bytes -= p.charge
            self.reassembled.add(1, p.count, frame)
            payload = p.datas[0] if len(p.datas) == 1 else b"".join(p.datas)
            return payload, p.count, p.first
        if len(pending) > self.max_datagrams or self.held_bytes > self.max_bytes:
            self._evict(frame)
        return None

    def note_truncated(self, frame: int) -> None:
        """Count a fragment the capture cut short (snap length): it cannot be used."""
        self.received += 1
        self.truncated.add(0, 1, frame)

    def finish(self) -> None:
        """Count what is still pending at the end of the capture and let it go."""
        for p in self._pending.values():
            self.incomplete.add(1, p.count, p.first_frame)
        self._pending.clear()
        self.held_bytes = 0

    def _insert(self, p: _Pending, offset: int, end: int, data: bytes, frame: int) -> None:
        """Add the parts of ``data`` that fall into holes; compare the overlapping parts."""
        starts, ends, datas = p.starts, p.ends, p.datas
        j = bisect_right(ends, offset)  # first run ending after ``offset``
        if j == len(starts) or starts[j] >= end:  # no overlap: the common case
            starts.insert(j, offset)
            ends.insert(j, end)
            datas.insert(j, data)
            p.have += end - offset
            charge = end - offset + FRAGMENT_OVERHEAD
            p.charge += charge
            self.held_bytes += charge
            return
        pos = offset
        conflict = False
        holes: list[tuple[int, int]] = []
        while j < len(starts) and starts[j] < end:
            s, e = starts[j], ends[j]
            if s > pos:
                holes.append((pos, s))
            a, b = max(pos, s), min(end, e)
            if a < b and data[a - offset : b - offset] != datas[j][a - s : b - s]:
                conflict = True
            pos = max(pos, e)
            j += 1
        if pos < end:
            holes.append((pos, end))
        self.overlaps.add(1 if conflict else 0, 1, frame)
        for s, e in holes:
            k = bisect_right(starts, s)
            starts.insert(k, s)
            ends.insert(k, e)
            datas.insert(k, data[s - offset : e - offset])
            p.have += e - s
            charge = e - s + FRAGMENT_OVERHEAD
            p.charge += charge
            self.held_bytes += charge

    def _drop_invalid(self, key: Hashable, p: _Pending, frame: int) -> None:
        """Drop a datagram whose fragments disagree on where it ends."""
        del self._pending[key]
        self.held_bytes -= p.charge
        self.invalid.add(1, p.count, frame)

    def _expire(self, now: float) -> None:
        """Drop the datagrams whose time ran out, oldest first."""
        pending = self._pending
        while pending:
            key = next(iter(pending))
            p = pending[key]
            if p.deadline > now:
                return
            del pending[key]
            self.held_bytes -= p.charge
            self.timed_out.add(1, p.count, p.first_frame)

    def _evict(self, frame: int) -> None:
        """Drop the oldest datagrams until both bounds hold again."""
        pending = self._pending
        while pending and (len(pending) > self.max_datagrams or self.held_bytes > self.max_bytes):
            key = next(iter(pending))
            p = pending.pop(key)
            self.held_bytes -= p.charge
            self.dropped.add(1, p.count, p.first_frame)

    def anomalies(self) -> list[Anomaly]:
        """File anomalies: what was reassembled, and every fragment that could not be used."""
        v = f"IPv{self.version}"
        out: list[Anomaly] = []
        c = self.reassembled
        if c.datagrams:
            out.append(
                Anomaly(
                    "ip_fragments_reassembled",
                    c.first,
                    f"{c.datagrams} {v} datagram(s) reassembled from {c.fragments} fragments; "
                    f"first completed at frame {c.first}",
                )
            )
        c = self.overlaps
        if c.fragments:
            conflict = (
                f", {c.datagrams} of them with different bytes" if c.datagrams else ", same bytes"
            )
            out.append(
                Anomaly(
                    "fragment_overlap",
                    c.first,
                    f"{c.fragments} {v} fragment(s) overlapped bytes already received{conflict}"
                    " (the bytes received first were kept; Linux and RFC 5722 receivers drop such"
                    f" datagrams); first at frame {c.first}",
                )
            )
        fates = (
            (
                "fragment_invalid",
                self.invalid,
                "inconsistent (past 65,535 bytes, or ends that disagree): dropped",
            ),
            ("fragment_truncated", self.truncated, "cut by the snap length: not reassembled"),
            (
                "fragments_timed_out",
                self.timed_out,
                f"still incomplete {self.timeout:g} s of "
                "capture time after their first fragment: dropped",
            ),
            (
                "fragments_dropped",
                self.dropped,
                f"dropped incomplete to stay within "
                f"{self.max_datagrams} pending datagrams and {self.max_bytes} bytes",
            ),
            (
                "fragments_incomplete",
                self.incomplete,
                "still incomplete at the end of the capture: their data is missing",
            ),
        )
        for name, c, what in fates:
            if not c.fragments:
                continue
            lead = f"{c.datagrams} {v} datagram(s) ({c.fragments} fragments)"
            if not c.datagrams:
                lead = f"{c.fragments} {v} fragment(s)"
            out.append(Anomaly(name, c.first, f"{lead} {what}; first at frame {c.first}"))
        return out
