"""One direction of a connection above TCP reassembly: pieces in, TLS records out.

The packet stage ends here. A :class:`StreamSide` takes the reassembled pieces of one
direction (bytes with their frame, or gaps), finds TLS in them and cuts records
(:class:`~tlspcap.tls.records.RecordReader`), and keeps the facts of the stream itself: where
data started, the gaps, and the anomalies of the record layer (``tcp_gap`` among them). What it
hands on is records and "the record boundaries were lost here": the whole interface of the TLS
session
(:meth:`tlspcap.session.TlsSession.record`, :meth:`~tlspcap.session.TlsSession.records_lost`).
A compiled packet engine produces exactly these, so the session and everything after it are
shared by both paths.
"""

from __future__ import annotations

from collections.abc import Callable

from tlspcap.anomaly import Anomaly
from tlspcap.facts.model import MAX_GAPS, GapFacts
from tlspcap.tcp.reassembly import Gap, Piece
from tlspcap.tls.records import Record, RecordReader

RecordSink = Callable[[int, Record, float], None]
"""Where records go: (direction, record, capture time of the segment that completed it)."""
LostSink = Callable[[int, int], None]
"""Told (direction, frame) when a direction's record boundaries are lost in a gap."""


class StreamSide:
    """The record layer of one direction and the stream facts around it."""

    __slots__ = ("first_data_frame", "gap_count", "gaps", "reader")

    def __init__(self) -> None:
        self.reader = RecordReader()
        self.first_data_frame: int | None = None
        """First frame that carried stream bytes of this direction (TLS or not)."""
        self.gaps: list[GapFacts] = []
        """Losses in this direction's stream (the first :data:`MAX_GAPS`)."""
        self.gap_count = 0

    def data(
        self,
        direction: int,
        piece: Piece,
        now: float,
        records: RecordSink,
        lost: LostSink,
    ) -> None:
        """Take one reassembled piece; hand on the records it completes."""
        if isinstance(piece, Gap):
            if not piece.snaplen:  # (what the snap length cut is summed up per direction)
                self.gap_count += 1
                if len(self.gaps) < MAX_GAPS:
                    self.gaps.append(GapFacts(piece.frame, piece.size, piece.offset))
                self.reader.anomalies.append(  # (with the record layer's: one list a side)
                    Anomaly("tcp_gap", piece.frame, f"{piece.size} bytes missing from the capture")
                )
            for record in self.reader.gap(piece.size, piece.frame):
                records(direction, record, now)
            if self.reader.lost:
                lost(direction, piece.frame)
            return
        if self.first_data_frame is None:
            self.first_data_frame = piece[1]
        for record in self.reader.feed(piece[0], piece[1]):
            records(direction, record, now)

    def skim_pair(self, other: StreamSide) -> Callable[[int], None]:
        """A callback for :attr:`tlspcap.session.TlsSession.skim`: direction 0 is this side,
        1 the ``other``."""
        readers = (self.reader, other.reader)

        def skim(direction: int) -> None:
            readers[direction].skim = True

        return skim

    def release(self) -> None:
        """The stream is over: free the record reader's buffers (its facts stay)."""
        self.reader.release()
