"""Connection tracking: TCP segments in, per-connection reassembled streams out (sans I/O).

A connection is keyed by its 4-tuple. Direction 0 is the initiator: the sender of a SYN without
ACK, the receiver of a SYN/ACK, or else the sender of the first segment seen (the session may
later decide from a ClientHello that the other side is the client). A SYN on a 4-tuple whose
connection was closed (FIN or RST) or that carries a different initial sequence number starts a
new connection (port reuse). Checksums are not verified.

Each connection's streams go to a *handler* (a :class:`~tlspcap.session.TlsSession`) created by
a factory, when the connection first carries payload.

Memory stays bounded by retiring connections as the capture goes on (capture time, checked
every :data:`SWEEP_SECONDS` of it): a connection closed on both sides (FIN each way, or a RST)
is retired :data:`LINGER_SECONDS` after its last packet (late retransmissions still find it),
one that has gone quiet :data:`IDLE_SECONDS` after its last packet (Zeek's TCP inactivity
timeout); past :data:`DEFAULT_MAX_CONNECTIONS` at once, the tenth idle longest are evicted with
an anomaly. A retired connection's buffered data is flushed (holes become gaps), its session is
finished, and TLS connections go to the ``on_close`` callback, or are kept for :meth:`finish`
to return in the order they started when there is none. A packet of a retired connection
starts a new one (reported apart: it has no handshake).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from tlspcap.anomaly import Anomaly
from tlspcap.capture.model import ACK, FIN, RST, SYN, IcmpError, TcpSegment
from tlspcap.facts.model import CONTROL_LOG, PACKET_LOG
from tlspcap.session import TlsSession
from tlspcap.tcp.reassembly import Piece, StreamReassembler
from tlspcap.tcp.stream import StreamSide

Endpoint = tuple[bytes, int]
Key = tuple[bytes, int, bytes, int]
PacketRow = tuple[int, float, int, int, int, int, int, int, int, bytes]
"""(frame, ts, flags, seq, ack, wire payload length, ttl, ip_id, window, options) as sent."""

DEFAULT_MAX_CONNECTIONS = 25_000
"""Connections tracked at once (about 4.5 KB each); past this the tenth idle longest are closed
(and still reported when they carried TLS)."""
LINGER_SECONDS = 10.0
"""A connection closed both ways (or reset) is retired this long after its last packet."""
IDLE_SECONDS = 300.0
"""A connection without packets for this long is retired (Zeek's inactivity timeout)."""
SWEEP_SECONDS = 5.0
"""Capture time between two looks for closed connections to retire (quiet ones: every
:data:`IDLE_SWEEP_SECONDS`, since that look goes through the whole table)."""
IDLE_SWEEP_SECONDS = 60.0
MAX_ICMP = 16
"""ICMP errors kept per connection."""
_NO_STREAMS: tuple[StreamSide, StreamSide] = (StreamSide(), StreamSide())
"""Placeholder for connections that never carried payload (no record layer is made for them:
SYN floods and port scans stay cheap)."""


class DirectionState:
    """The TCP facts of one direction of a connection (one object, not a list per field: a
    SYN flood makes hundreds of thousands of these)."""

    __slots__ = (
        "fin_frame",
        "first_frame",
        "isn",
        "last_ack",
        "last_frame",
        "log",
        "packets",
        "rst_frame",
        "snaplen_first",
        "snaplen_missing",
        "snaplen_packets",
        "syn_isns",
    )

    def __init__(self) -> None:
        self.packets = 0
        self.first_frame: int | None = None
        """First packet of this direction."""
        self.last_frame: int | None = None
        """Last packet of this direction."""
        self.fin_frame: int | None = None
        """First FIN."""
        self.rst_frame: int | None = None
        """First RST."""
        self.isn: int | None = None
        """Initial sequence number (from the first SYN)."""
        self.syn_isns: list[int] = []
        """Every initial sequence number seen in SYNs."""
        self.last_ack: int | None = None
        """Latest acknowledgement number sent (ACKs are cumulative)."""
        self.log: list[PacketRow] = []
        """Header facts of the first :data:`PACKET_LOG` packets and of later SYN/FIN/RST
        packets (up to :data:`CONTROL_LOG` more)."""
        self.snaplen_missing = 0
        """Payload bytes the capture's snap length cut off."""
        self.snaplen_packets = 0
        """Packets the snap length cut."""
        self.snaplen_first: int | None = None
        """First frame the snap length cut."""


@dataclass(slots=True)
class TcpConnection:
    """Bookkeeping of one TCP connection."""

    index: int
    """Order in which connections started (0-based)."""
    endpoints: tuple[Endpoint, Endpoint]
    """(address, port) of direction 0's sender and of direction 1's sender."""
    factory: Callable[[tuple[Endpoint, Endpoint]], TlsSession]
    _session: TlsSession | None = None
    streams: tuple[StreamReassembler, StreamReassembler] = field(
        default_factory=lambda: (StreamReassembler(), StreamReassembler())
    )
    stream_sides: tuple[StreamSide, StreamSide] = _NO_STREAMS
    """Each direction's record layer (see :mod:`tlspcap.tcp.stream`), made with the session."""
    syn_frame: int | None = None
    synack_frame: int | None = None
    first_frame: int = 0
    last_frame: int = 0
    first_ts: float = 0.0
    last_ts: float = 0.0
    dirs: tuple[DirectionState, DirectionState] = field(
        default_factory=lambda: (DirectionState(), DirectionState())
    )
    """What each direction sent (packets, SYN/FIN/RST, ACKs, the packet log)."""
    fins: int = 0
    """Directions that sent a FIN (bit 1: direction 0, bit 2: direction 1); 3 with a RST."""
    evicted: bool = False
    """Dropped from the table to bound memory before it ended."""
    idle: bool = False
    """Retired for being quiet for :data:`IDLE_SECONDS`."""
    tunnel: str | None = None
    """Encapsulation of the connection's packets (the first tunnelled packet's)."""
    icmp: list[IcmpError] = field(default_factory=list)
    """ICMP errors quoting the connection's packets (the first :data:`MAX_ICMP`)."""

    @property
    def packets(self) -> int:
        """Packets seen in both directions."""
        return self.dirs[0].packets + self.dirs[1].packets

    @property
    def session(self) -> TlsSession:
        """The TLS session, created when the connection first carries payload."""
        if self._session is None:
            session = self._session = self.factory(self.endpoints)
            sides = self.stream_sides = (StreamSide(), StreamSide())
            session.skim = sides[0].skim_pair(sides[1])  # (no reference back to the session)
        return self._session

    def deliver(self, direction: int, piece: Piece, now: float) -> None:
        """Hand one reassembled piece of a direction to its record layer and on to the
        session."""
        session = self.session
        self.stream_sides[direction].data(
            direction, piece, now, session.record, session.records_lost
        )

    @property
    def is_tls(self) -> bool:
        """Either direction carried TLS."""
        sides = self.stream_sides
        return sides is not _NO_STREAMS and (sides[0].reader.is_tls or sides[1].reader.is_tls)

    @property
    def closed(self) -> bool:
        """A FIN or RST was seen (a new SYN on the tuple starts a new connection)."""
        return self.fins != 0

    @property
    def has_session(self) -> bool:
        """True once the connection carried payload (SYN-only and ACK-only ones never do)."""
        return self._session is not None


class ConnectionTracker:
    """Feeds TCP segments to per-connection reassemblers and sessions."""

    def __init__(
        self,
        session_factory: Callable[[tuple[Endpoint, Endpoint]], TlsSession] = TlsSession,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        on_close: Callable[[TcpConnection], None] | None = None,
    ) -> None:
        """``on_close`` receives each TLS connection as it is retired (see the module
        docstring); without it they are kept and returned by :meth:`finish`."""
        self._factory = session_factory
        self._table: dict[Key, tuple[TcpConnection, int]] = {}
        self._done: list[TcpConnection] = []
        self._on_close = on_close
        self._count = 0
        self._next_sweep = -math.inf
        self._next_idle_sweep = 0.0
        self._closing: dict[int, TcpConnection] = {}
        """Connections closed both ways, waiting out the linger time."""
        self.max_connections = max_connections
        self.anomalies: list[Anomaly] = []
        """Tracker-level anomalies (evictions)."""

    def feed(self, seg: TcpSegment) -> None:
        """Take one segment."""
        ts = seg.ts
        if ts >= self._next_sweep:  # before the lookup: a packet after the retirement of its
            self._sweep(ts)  # connection starts a new one
        fwd: Key = (seg.src, seg.sport, seg.dst, seg.dport)
        entry = self._table.get(fwd)
        flags = seg.flags
        if entry is not None and flags & SYN and not flags & ACK:
            old = entry[0]
            isn = old.dirs[0].isn
            if old.closed or (isn is not None and isn != seg.seq):
                self._close(old)
                entry = None
        if entry is None:
            entry = self._open(seg, fwd)
        self._segment(entry[0], entry[1], seg)

    def icmp(self, error: IcmpError) -> None:
        """An ICMP error quoting a TCP packet: evidence for that packet's connection."""
        entry = self._table.get((error.src, error.sport, error.dst, error.dport))
        if entry is not None and len(entry[0].icmp) < MAX_ICMP:
            entry[0].icmp.append(error)

    def finish(self) -> list[TcpConnection]:
        """End of capture: retire every connection; return the TLS connections kept (all of
        them in start order, or none when an ``on_close`` callback took them)."""
        pending = {id(c): c for c, _ in self._table.values()}
        for conn in sorted(pending.values(), key=lambda c: c.index):
            self._close(conn)
        self._done.sort(key=lambda c: c.index)
        return self._done

    def __iter__(self) -> Iterator[TcpConnection]:
        """The connections tracked right now (each once per direction key)."""
        return iter(c for c, _ in self._table.values())

    def lookup(self, key: Key) -> tuple[TcpConnection, int] | None:
        """The connection tracked now for the endpoints ``(src, sport, dst, dport)`` of a
        packet, with that packet's direction."""
        return self._table.get(key)

    @property
    def next_sweep(self) -> float:
        """Capture time of the segment at or after which the next sweep runs."""
        return self._next_sweep

    def __len__(self) -> int:
        """Number of connections tracked right now."""
        return len(self._table) // 2

    # ---- internals ----------------------------------------------------------------------
    def _open(self, seg: TcpSegment, fwd: Key) -> tuple[TcpConnection, int]:
        rev: Key = (seg.dst, seg.dport, seg.src, seg.sport)
        initiator_is_src = not (seg.flags & SYN and seg.flags & ACK)
        k0 = fwd if initiator_is_src else rev
        ends = ((k0[0], k0[1]), (k0[2], k0[3]))
        conn = TcpConnection(self._count, ends, self._factory)
        self._count += 1
        conn.first_frame, conn.first_ts = seg.frame, seg.ts
        if len(self._table) >= 2 * self.max_connections:
            self._evict()
        self._table[k0] = (conn, 0)
        self._table[rev if initiator_is_src else fwd] = (conn, 1)
        return self._table[fwd]

    def _segment(self, conn: TcpConnection, direction: int, seg: TcpSegment) -> None:
        state = conn.dirs[direction]
        count = state.packets = state.packets + 1
        frame = seg.frame
        conn.last_frame, conn.last_ts = frame, seg.ts
        state.last_frame = frame
        flags = seg.flags
        if count <= PACKET_LOG or (
            flags & (SYN | FIN | RST) and len(state.log) < PACKET_LOG + CONTROL_LOG
        ):
            state.log.append(
                (
                    frame,
                    seg.ts,
                    flags,
                    seg.seq,
                    seg.ack,
                    len(seg.payload) + seg.missing,
                    seg.ttl,
                    seg.ip_id,
                    seg.window,
                    seg.options,
                )
            )
            if count == 1:
                state.first_frame = frame
                if seg.tunnel is not None and conn.tunnel is None:
                    conn.tunnel = seg.tunnel
        if flags & ACK:
            state.last_ack = seg.ack
        stream = conn.streams[direction]
        session = conn._session
        ts = seg.ts
        if session is not None and not flags & (SYN | FIN | RST) and not seg.missing:
            # The bulk of a capture: data and ACKs on a connection already carrying payload.
            if flags & ACK and conn.streams[1 - direction].buffered:
                for piece in conn.streams[1 - direction].acked(seg.ack, frame):
                    conn.deliver(1 - direction, piece, ts)
            if seg.payload and stream.next_offset:
                for piece in stream.add(seg.seq, seg.payload, frame):
                    conn.deliver(direction, piece, ts)
                return
            if not seg.payload:
                return
        if flags & SYN:
            self._syn(conn, direction, seg.seq, frame, flags & ACK)
        if flags & (FIN | RST):
            if flags & FIN and state.fin_frame is None:
                state.fin_frame = frame
            if flags & RST and state.rst_frame is None:
                state.rst_frame = frame
            conn.fins |= 3 if flags & RST else 1 << direction
            if conn.fins == 3:
                self._closing[conn.index] = conn
        if not (seg.payload or seg.missing or conn.has_session):
            # No payload yet: no session (SYN floods and port scans stay cheap).
            return
        if flags & ACK:
            for piece in conn.streams[1 - direction].acked(seg.ack, frame):
                conn.deliver(1 - direction, piece, ts)
        if seg.payload:
            fresh = stream.next_offset == 0 and not stream.buffered
            if fresh and len(state.syn_isns) > 1:
                stream = self._rebase(conn, direction, seg.seq)
            seq = seg.seq + 1 if flags & SYN else seg.seq
            for piece in stream.add(seq, seg.payload, frame):
                conn.deliver(direction, piece, ts)
        if seg.missing:
            state.snaplen_missing += seg.missing
            state.snaplen_packets += 1
            if state.snaplen_first is None:
                state.snaplen_first = frame
            end = seg.seq + len(seg.payload) + seg.missing + (1 if flags & SYN else 0)
            for piece in stream.skip_to(end & 0xFFFFFFFF, frame):
                conn.deliver(direction, piece, ts)
        # A FIN is not flushed: a segment lost before the capture point may still be
        # retransmitted after it; holes become gaps at RST or at the end.
        if flags & RST:
            self._flush(conn, frame)

    @staticmethod
    def _syn(conn: TcpConnection, direction: int, seq: int, frame: int, ack: int) -> None:
        if ack:
            conn.synack_frame = conn.synack_frame or frame
        else:
            conn.syn_frame = conn.syn_frame or frame
        state = conn.dirs[direction]
        if state.isn is None:
            state.isn = seq
        if seq not in state.syn_isns:
            state.syn_isns.append(seq)
        conn.streams[direction].syn(seq)

    @staticmethod
    def _rebase(conn: TcpConnection, direction: int, seq: int) -> StreamReassembler:
        """Several SYNs with different ISNs and no data yet (TCP Fast Open fallback, retried
        handshakes): start the stream from the ISN the first data segment follows."""
        best = min(conn.dirs[direction].syn_isns, key=lambda isn: (seq - isn - 1) & 0xFFFFFFFF)
        stream = StreamReassembler()
        stream.syn(best)
        pair = list(conn.streams)
        pair[direction] = stream
        conn.streams = (pair[0], pair[1])
        return stream

    def _flush(self, conn: TcpConnection, frame: int) -> None:
        for direction, stream in enumerate(conn.streams):
            for piece in stream.flush(frame):
                conn.deliver(direction, piece, conn.last_ts)

    def _close(self, conn: TcpConnection) -> None:
        """Retire a connection: out of the table, buffers flushed, session finished, reported."""
        (a, ap), (b, bp) = conn.endpoints
        self._closing.pop(conn.index, None)
        if self._table.pop((a, ap, b, bp), None) is None:
            return  # already retired
        self._table.pop((b, bp, a, ap), None)
        if not conn.has_session:
            return
        self._flush(conn, conn.last_frame)
        if not conn.is_tls:  # only TLS connections are reported
            return
        sides = conn.stream_sides
        conn.session.finish([sides[0].reader.anomalies, sides[1].reader.anomalies])
        for side in sides:
            side.release()
        if self._on_close is None:
            self._done.append(conn)
        else:
            self._on_close(conn)

    def _sweep(self, now: float) -> None:
        """Retire the connections closed (both ways) or quiet long enough before ``now``."""
        self._next_sweep = now + SWEEP_SECONDS
        closed_before = now - LINGER_SECONDS
        retire = {c.index: c for c in self._closing.values() if c.last_ts < closed_before}
        if now >= self._next_idle_sweep:
            self._next_idle_sweep = now + IDLE_SWEEP_SECONDS
            idle_before = now - IDLE_SECONDS
            for conn, _ in self._table.values():
                if conn.last_ts < idle_before and conn.index not in retire:
                    retire[conn.index] = conn
                    conn.idle = True
                    if conn.has_session:
                        conn.session.anomalies.append(
                            Anomaly(
                                "connection_idle",
                                conn.last_frame,
                                f"no packet for {IDLE_SECONDS:.0f} s: treated as over (a later "
                                "packet on it is reported as another connection)",
                            )
                        )
        for index in sorted(retire):
            self._close(retire[index])

    def _evict(self) -> None:
        """Close the tenth of the tracked connections idle longest (amortised, not per SYN)."""
        conns = {id(c): c for c, _ in self._table.values()}
        ranked = sorted(conns.values(), key=lambda c: c.last_ts)
        for conn in ranked[: max(1, len(ranked) // 10)]:
            conn.evicted = True
            if conn.has_session:
                conn.session.anomalies.append(
                    Anomaly("connection_evicted", conn.last_frame, "too many connections at once")
                )
            self._close(conn)
        self.anomalies.append(
            Anomaly(
                "connection_evicted",
                None,
                f"more than {self.max_connections} connections open at once: the "
                f"{max(1, len(ranked) // 10)} idle longest were closed early",
            )
        )
