"""Handshake message reassembly over records: fragmented and coalesced messages (sans I/O)."""

from __future__ import annotations

from dataclasses import dataclass

from tlspcap.anomaly import Anomaly, CappedList

MAX_HANDSHAKE_MESSAGE = 1 << 21
"""Largest handshake message buffered (2 MiB); a larger declared length is skipped, unread."""


@dataclass(frozen=True, slots=True)
class HandshakeMessage:
    """One handshake message (whole, or as far as the capture holds it)."""

    msg_type: int
    body: bytes
    """The message body, without its 4-byte header (only its first bytes when truncated)."""
    frame: int
    """Frame of the record that completed the message."""
    length: int = -1
    """Body length as declared in the header (-1: the body's own length)."""

    @property
    def truncated(self) -> bool:
        """Part of the body is missing from the capture (snap length, loss)."""
        return 0 <= len(self.body) < self.length


class HandshakeAssembler:
    """Joins the bodies of plaintext handshake records of one direction into messages."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._skip = 0
        self.anomalies: CappedList[Anomaly] = CappedList()
        """Oversized messages that were skipped."""

    def feed(self, fragment: bytes, frame: int, lost: int = 0) -> list[HandshakeMessage]:
        """Take the body of one handshake record; return the messages it completes.

        ``lost`` counts body bytes of the record missing from the capture after ``fragment``
        (a record cut by the snap length or by a gap): the message they cut is returned
        truncated, and the messages after it in that record are lost.
        """
        if self._skip:
            taken = min(self._skip, len(fragment))
            self._skip -= taken
            fragment = fragment[taken:]
            if lost and self._skip:  # still inside a skipped or truncated message
                taken = min(self._skip, lost)
                self._skip -= taken
                lost -= taken
                if lost:
                    self.reset()
                return []
        buf = self._buf
        # Most records hold whole messages: read them from the fragment itself, and buffer only
        # what a message split across records needs.
        data: bytes | bytearray = fragment
        if buf:
            buf += fragment
            data = buf
        size = len(data)
        out: list[HandshakeMessage] = []
        i = 0
        while size - i >= 4:
            length = (data[i + 1] << 16) | (data[i + 2] << 8) | data[i + 3]
            if length > MAX_HANDSHAKE_MESSAGE:
                self.anomalies.append(
                    Anomaly("oversized_handshake_message", frame, f"declared length {length}")
                )
                self._skip = length - (size - i - 4)
                i = size
                break
            end = i + 4 + length
            if size < end:
                break
            out.append(HandshakeMessage(data[i], bytes(data[i + 4 : end]), frame))
            i = end
        if lost:
            if size - i >= 4:  # a message the missing bytes cut: as far as it goes
                length = (data[i + 1] << 16) | (data[i + 2] << 8) | data[i + 3]
                if length <= MAX_HANDSHAKE_MESSAGE:
                    out.append(HandshakeMessage(data[i], bytes(data[i + 4 :]), frame, length))
                rest = length - (size - i - 4)
                self.reset()
                if rest > lost:  # it goes on in the next record: skip the rest of it there
                    self._skip = rest - lost
            else:
                self.reset()  # the missing bytes hold a message header: boundaries are lost
            return out
        if data is buf:
            del buf[:i]
        elif i < size:
            buf += data[i:]
        return out

    def reset(self) -> None:
        """Forget a partial message (after a gap in the stream)."""
        self._buf = bytearray()
        self._skip = 0

    @property
    def pending(self) -> int:
        """Bytes of an incomplete message held."""
        return len(self._buf)
