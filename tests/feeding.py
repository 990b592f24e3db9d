"""A TLS session fed reassembled stream pieces directly, through the record layer (no TCP).

What the tracker does per connection (:meth:`tlspcap.tcp.tracker.TcpConnection.deliver`), for
tests that write a conversation's bytes by hand.
"""

from __future__ import annotations

from typing import Any

from tlspcap.session import TlsSession
from tlspcap.tcp.reassembly import Piece
from tlspcap.tcp.stream import StreamSide


class Fed:
    """``session`` behind a record layer per direction; other attributes are the session's."""

    def __init__(self, session: TlsSession) -> None:
        self.session = session
        self.streams = (StreamSide(), StreamSide())
        session.skim = self._skim

    def _skim(self, direction: int) -> None:
        self.streams[direction].reader.skim = True

    def data(self, direction: int, piece: Piece) -> None:
        """Hand one piece (``(bytes, frame)`` or a Gap) of a direction to the session."""
        s = self.session
        self.streams[direction].data(direction, piece, s.now, s.record, s.records_lost)

    def finish(self) -> None:
        """End of the conversation: anomalies merged as the tracker merges them."""
        self.session.finish([side.reader.anomalies for side in self.streams])

    @property
    def is_tls(self) -> bool:
        """Either direction carried TLS."""
        return any(side.reader.is_tls for side in self.streams)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.session, name)
