"""The engine's fast lane, Python side: offer settled connections, take back what it counted.

Past its handshake, a keyless TLS connection's segments only move counters: in-order encrypted
application data whose records the reader skims, and the ACKs that answer it. The compiled
engine (``engine/src/lane.rs``) can count those itself, without a segment object, a tracker
step or a record-reader call per packet. Between two of the engine's batches (it reads one
ahead), :meth:`FastLane.boundary` offers it the connections whose last segments left them in
that state, with what it needs to go on exactly as the tracker, reassembler, record reader and
session would: each direction's next sequence number, the record being skimmed, the
packet-log rows and encrypted-record log entries still to fill, and how many records the
session must still see one by one. The engine hands each connection back as a *summary* (see
``summary_tuple`` in ``engine/src/py.rs``) before the first segment it cannot count, before
any segment at which the tracker sweeps its table, and at the end; :meth:`FastLane.apply` puts
the summary into the connection as if the segments had come through Python.

Everything the tracker reads across connections (its sweeps, its evictions) therefore sees
the same values on both paths: the engine releases every connection before a sweeping segment,
and no connection is offered while an eviction could happen within the next batch. The
differential tests hold the engine path, fast lane included, to the pure path's JSON.
"""

from __future__ import annotations

from typing import Protocol

from tlspcap.capture.engine import Offer, Summary
from tlspcap.facts.model import PACKET_LOG
from tlspcap.session import MAX_ENCRYPTED_LOG
from tlspcap.tcp.tracker import SWEEP_SECONDS, ConnectionTracker, Key, TcpConnection
from tlspcap.tls.records import CT_APPLICATION_DATA, MAX_RECORD, Record


class LaneEngine(Protocol):
    """The engine capture's side of the lane (:class:`tlspcap.capture.engine.EngineCapture`)."""

    batch_items: int

    def lane_offer(
        self, next_sweep: float, sweep_seconds: float, max_record: int, offers: list[Offer]
    ) -> None:
        """Hold these connections."""

    def lane_release(self) -> list[Summary]:
        """Release every connection held."""


class FastLane:
    """Offers a tracker's settled connections to the engine and applies its summaries."""

    def __init__(self, tracker: ConnectionTracker, engine: LaneEngine) -> None:
        self._tracker = tracker
        self._engine = engine
        self._held: dict[int, TcpConnection] = {}
        self.touched: set[Key] = set()
        """Endpoints of the segments Python was given since the last boundary (the caller
        adds them): the connections that may have become settled."""

    def boundary(self) -> None:
        """Between two batches: offer the settled connections (none when the tracker's table
        is close enough to its limit that the next batch could evict)."""
        tracker = self._tracker
        touched = list(self.touched)
        self.touched.clear()  # (in place: the caller holds its add method)
        if len(tracker) + 2 * self._engine.batch_items >= tracker.max_connections:
            if self._held:
                for summary in self._engine.lane_release():
                    self.apply(summary)
            return
        offers = []
        for key in touched:
            entry = tracker.lookup(key)
            if entry is not None and entry[0].index not in self._held:
                offer = _offer(entry[0])
                if offer is not None:
                    offers.append(offer)
                    self._held[entry[0].index] = entry[0]
        if offers:
            self._engine.lane_offer(tracker.next_sweep, SWEEP_SECONDS, MAX_RECORD, offers)

    def apply(self, summary: Summary) -> None:
        """Put what the engine counted of a released connection into it."""
        index, dir0, dir1, last, events = summary
        conn = self._held.pop(index)
        for direction, (packets, frame, ack, size, again, skip, version, length, log) in (
            (0, dir0),
            (1, dir1),
        ):
            if not packets:
                continue
            state = conn.dirs[direction]
            state.packets += packets
            state.last_frame = frame
            if ack is not None:
                state.last_ack = ack
            state.log.extend(log)
            conn.streams[direction].advance(size, again)
            if size:
                conn.stream_sides[direction].reader.skimmed(size, skip, version, length)
        if last is not None:
            conn.last_frame, conn.last_ts = last
        session = conn.session
        for kind, direction, a, b, frame, now in events:
            if kind == 0:  # one record: (version, length)
                record = Record(CT_APPLICATION_DATA, a, b"", frame, skipped=b)
                session.record(direction, record, now)
            else:  # a run: (count, body bytes)
                session.application_run(direction, a, b, frame, now)


def _offer(conn: TcpConnection) -> Offer | None:
    """What the engine needs to go on with ``conn`` as Python would, or None when the
    connection is not settled (no session, closed, data held out of order)."""
    if not conn.has_session or conn.fins == 3:
        return None
    streams = conn.streams
    if streams[0].buffered or streams[1].buffered:
        return None
    session = conn.session
    room = max(0, MAX_ENCRYPTED_LOG - len(session.encrypted_log))
    dirs = []
    for direction in (0, 1):
        packets = conn.dirs[direction].packets
        stream = streams[direction]
        side = conn.stream_sides[direction]
        expected = stream.expected
        skim = side.reader.skim_state
        data = (
            expected is not None
            and stream.next_offset > 0
            and side.first_data_frame is not None
            and skim is not None
        )
        skip, version, length = skim if data and skim is not None else (0, 0, 0)
        dirs.append(
            (
                packets > 0,
                max(0, PACKET_LOG - packets),
                data,
                expected if data else 0,
                skip,
                version,
                length,
                session.explicit_records(direction) if data else 0,
            )
        )
    if not (dirs[0][0] or dirs[1][0]):
        return None
    (a, ap), (b, bp) = conn.endpoints
    return (conn.index, a, ap, b, bp, dirs[0], dirs[1], room)
