"""The TLS record layer of one direction: a byte stream in, records out (sans I/O).

The reader starts in *probe* mode: TLS is recognised by content, not by port. It looks for a
plausible record at the start of the stream and at the start of every later chunk (a STARTTLS
upgrade, a PostgreSQL SSLRequest, a MySQL switch: the ClientHello always starts a new segment).
Plaintext seen before TLS is kept (its first bytes) so a non-TLS answer can be named.

Once in TLS mode it cuts records: TLS/SSLv3 records with a 5-byte header, and SSLv2 records
(2-byte header) as long as no SSLv3-format record was seen in that direction. A header that is
neither is an ``invalid_record_header`` anomaly; after it the reader is *lost* and
resynchronises at the next chunk that starts a consistent run of records (see below).

Gaps in the TCP stream (loss, or a snap length that cut the packets) have a known size, so they
do not always cost the record boundaries. A gap inside a record whose header was read leaves
the framing intact: the record is delivered when its last byte has streamed past, with the body
bytes before the first missing one and :attr:`Record.lost` saying how many are missing, and the
next record is read as usual. Only a gap that swallows a record header (or starts where no
header was read) loses the framing: the reader is then lost until a chunk starts with a
plausible record header whose record either fills the chunk exactly or is followed by another
plausible header. Records read after such a resynchronisation carry :attr:`Record.after_gap`;
nothing is ever spliced across a gap.

When the consumer will not read record bodies any more (an encrypted direction without keys),
it sets :attr:`RecordReader.skim`: application_data records are then delivered with an empty
payload and their body size in :attr:`Record.skipped`, and body bytes are counted as they
stream past instead of being buffered or copied (bulk data costs a subtraction per segment).
Other records keep their bodies (a TLS 1.3 peer may still send a plaintext alert).
"""

from __future__ import annotations

from dataclasses import dataclass

from tlspcap.anomaly import Anomaly, CappedList

CT_CHANGE_CIPHER_SPEC = 20
CT_ALERT = 21
CT_HANDSHAKE = 22
CT_APPLICATION_DATA = 23
CT_HEARTBEAT = 24

MAX_RECORD = (1 << 14) + 2048
"""Largest record payload RFC 5246 allows (TLSCiphertext); larger ones are flagged."""
PREAMBLE_KEEP = 256
"""Plaintext bytes kept from before TLS starts (to name a non-TLS peer)."""
PROBE_LIMIT = 1 << 16
"""Plaintext bytes scanned for the start of TLS before giving up on a direction."""

_PROBE, _TLS, _LOST, _PLAIN = range(4)


@dataclass(frozen=True, slots=True)
class Record:
    """One record as sent."""

    content_type: int
    """Record content type (SSLv2 records: 22 for hellos, 23 otherwise)."""
    version: int
    """Record-layer version (SSLv2 records: 0x0002)."""
    payload: bytes
    """Record body (SSLv2: the message, starting with its type byte)."""
    frame: int
    """Frame that carried the record's last byte."""
    sslv2: bool = False
    """Sent in the SSLv2 record format."""
    skipped: int = 0
    """Body bytes not kept (the reader was skimming); ``payload`` is then empty."""
    lost: int = 0
    """Body bytes not in ``payload`` because the capture lacks some of them (snap length,
    loss): ``payload`` is then the part before the first missing byte, and :attr:`truncated`
    is set."""
    after_gap: bool = False
    """Read after the reader lost and found the record boundaries again (see :meth:`gap`)."""

    @property
    def size(self) -> int:
        """Length of the record body as sent."""
        return len(self.payload) + self.skipped + self.lost

    @property
    def truncated(self) -> bool:
        """Part of the body is missing from the capture."""
        return self.lost > 0


def _plausible_v3(b: bytes | bytearray, i: int, first: bool) -> bool | None:
    """Can a TLS record start at ``b[i]``? None when more bytes are needed to tell."""
    n = len(b) - i
    if n < 5:
        return None
    ct, major, minor = b[i], b[i + 1], b[i + 2]
    if major != 3 or minor > 4 or not CT_CHANGE_CIPHER_SPEC <= ct <= CT_HEARTBEAT:
        return False
    length = (b[i + 3] << 8) | b[i + 4]
    if length == 0 or length > MAX_RECORD:
        return False
    if ct == CT_ALERT:
        return length == 2 and b[i + 5] in (1, 2) if n >= 7 else None
    if ct == CT_HANDSHAKE:
        if n < 6:
            return None
        return b[i + 5] in (1, 2) or (first and b[i + 5] <= 24)
    return first


def _header_ok(b: bytes | bytearray, i: int) -> bool:
    """A TLS/SSLv3 record header of any content type at ``b[i:i+5]`` (5 bytes present)."""
    length = (b[i + 3] << 8) | b[i + 4]
    return (
        CT_CHANGE_CIPHER_SPEC <= b[i] <= CT_HEARTBEAT
        and b[i + 1] == 3
        and b[i + 2] <= 4
        and 0 < length <= MAX_RECORD
    )


def _consistent_run(b: bytes | bytearray, i: int) -> bool | None:
    """After lost bytes: does a run of records start at ``b[i]``? Its first record must end
    exactly where the buffered bytes end (a chunk boundary) or where another plausible header
    starts. None when more bytes are needed to tell."""
    n = len(b)
    if n - i < 5:
        return None
    if not _header_ok(b, i):
        return False
    end = i + 5 + ((b[i + 3] << 8) | b[i + 4])
    if end >= n:
        return True if end == n else None
    if n - end < 5:
        return None
    return _header_ok(b, end)


def _plausible_v2(b: bytes | bytearray, i: int) -> bool | None:
    """Can an SSLv2 CLIENT-HELLO or SERVER-HELLO start at ``b[i]``?"""
    n = len(b) - i
    if n < 7:
        return None
    if not b[i] & 0x80:
        return False
    length = ((b[i] & 0x7F) << 8) | b[i + 1]
    if b[i + 2] == 1:
        version = (b[i + 3] << 8) | b[i + 4]
        return length >= 9 and (version == 2 or 0x0300 <= version <= 0x0304)
    if b[i + 2] == 4:
        return length >= 11 and b[i + 3] in (0, 1) and ((b[i + 5] << 8) | b[i + 6]) == 2
    return False


class RecordReader:
    """Incremental record reader for one direction (see the module docstring)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._start = 0  # stream offset of _buf[0]
        self._end = 0  # stream offset after the last byte fed
        self._pieces: list[tuple[int, int]] = []  # (end offset, frame) of fed chunks
        self._candidates: list[int] = [0]
        self._state = _PROBE
        self._v3_seen = False
        self._v2_seen = False
        self._plain = bytearray()  # the stream's first bytes, while probing
        self._gapped = 0  # bytes missing before TLS starts: not in _plain
        self._skip = 0  # skim mode: body bytes of the current record still to stream past
        self._skip_header = (0, 0, 0)  # skim mode: (content type, version, length) of it
        self._hole: tuple[int, int, int, bytes] | None = None  # a record a gap cut into:
        # (content type, version, length, body bytes before the gap)
        self._hole_left = 0  # body bytes of that record still to stream past
        self._after_gap = False  # the framing was lost and found again
        self.skim = False
        """Deliver record headers only (see the module docstring); set by the consumer."""
        self.tls_offset: int | None = None
        """Stream offset where TLS starts; None while (or if) no TLS was found."""
        self.anomalies: CappedList[Anomaly] = CappedList()
        """Record-layer anomalies, in order."""

    @property
    def preamble(self) -> bytes:
        """First plaintext bytes seen before TLS (or instead of it), at most PREAMBLE_KEEP."""
        if self.tls_offset is not None:
            return bytes(self._plain[: self.tls_offset - self._gapped])
        return bytes(self._plain)

    @property
    def lost(self) -> bool:
        """The record boundaries were lost in a gap and are not found again yet."""
        return self._state == _LOST

    @property
    def is_tls(self) -> bool:
        """True once a plausible TLS record was found in this direction."""
        return self.tls_offset is not None

    @property
    def skim_state(self) -> tuple[int, int, int] | None:
        """``(body bytes left, version, length)`` of the application-data record being
        skimmed (``(0, 0, 0)`` at a record boundary) while this reader skims in step with
        nothing buffered, not after a gap: then the next records can be cut without it (the
        engine's fast lane); None otherwise."""
        if (
            not self.skim
            or self._state != _TLS
            or self._start != self._end
            or self._hole_left
            or self._after_gap
        ):
            return None
        if not self._skip:
            return (0, 0, 0)
        ct, version, length = self._skip_header
        return (self._skip, version, length) if ct == CT_APPLICATION_DATA else None

    def skimmed(self, size: int, skip: int, version: int, length: int) -> None:
        """``size`` bytes were cut elsewhere (the engine's fast lane) from the state
        :attr:`skim_state` gave; ``skip``, ``version`` and ``length`` are the state after."""
        self._start = self._end = self._end + size
        self._skip = skip
        if skip:
            self._skip_header = (CT_APPLICATION_DATA, version, length)
        self._pieces = []

    def feed(self, data: bytes, frame: int) -> list[Record]:
        """Take the next contiguous stream bytes; return the records they complete."""
        if not data or self._state == _PLAIN:
            return []
        if self._hole_left or self._skip:
            return self._feed_past(data, frame)
        if self._state != _TLS and self._end != 0:
            self._candidates.append(self._end)
        if self._state == _PROBE and len(self._plain) < PREAMBLE_KEEP:
            self._plain += data[: PREAMBLE_KEEP - len(self._plain)]
        self._buf += data
        self._end += len(data)
        self._pieces.append((self._end, frame))
        if self._state != _TLS and not self._probe(frame):
            return []
        return self._cut(frame)

    def _feed_past(self, data: bytes, frame: int) -> list[Record]:
        """Feed bytes that first finish a record whose body is not buffered (skimmed, or cut
        by a gap), then go on as :meth:`feed`."""
        done: list[Record] = []
        if self._hole_left:  # the rest of a record a gap cut into: its end is known
            n = len(data)
            if n < self._hole_left:
                self._hole_left -= n
                self._start = self._end = self._end + n
                return []
            data = data[self._hole_left :]
            self._start = self._end = self._end + self._hole_left
            self._hole_left = 0
            done.append(self._close_hole(frame))
            if not data:
                return done
        if self._skip:
            n = len(data)
            if n < self._skip:
                self._skip -= n
                self._start = self._end = self._end + n
                return done
            data = data[self._skip :]
            self._start = self._end = self._end + self._skip
            self._skip = 0
            ct, version, length = self._skip_header
            done.append(Record(ct, version, b"", frame, skipped=length, after_gap=self._after_gap))
        return done + self.feed(data, frame) if data else done

    def gap(self, size: int, frame: int) -> list[Record]:
        """``size`` bytes are missing here; return the records the gap completes (cut ones).

        See the module docstring: inside a record whose header was read, the framing survives
        and the record is delivered truncated; otherwise the reader resynchronises later.
        """
        if self._state == _PLAIN or size <= 0:
            return []
        if self._state == _PROBE:
            self._gapped += size
        if self._state == _TLS and not (self._skip or self._hole_left):
            self._cut_open_record()
        if self._state == _TLS and (self._skip or self._hole_left):
            left = self._skip or self._hole_left
            if size < left:  # the record goes on after the gap
                if self._skip:
                    self._skip -= size
                else:
                    self._hole_left -= size
                self._start = self._end = self._end + size
                return []
            done = [self._close_skip(frame) if self._skip else self._close_hole(frame)]
            self._skip = self._hole_left = 0
            self._start = self._end = self._end + left
            size -= left
            if not size:  # the gap ends where the next record starts: still in step
                return done
            self.anomalies.append(
                Anomaly(
                    "record_lost_in_gap",
                    frame,
                    f"{size} bytes missing after a record: the record boundaries are lost",
                )
            )
            self._lose(size)
            return done
        if self._state == _TLS and self._start < self._end:
            self.anomalies.append(
                Anomaly("record_lost_in_gap", frame, f"{size} bytes missing mid-record")
            )
        self._lose(size)
        return []

    def _lose(self, size: int) -> None:
        """Skip ``size`` missing bytes without knowing where records start after them."""
        self._end += size
        self._reset_buffer()
        if self._state == _TLS:
            self._state = _LOST
            self._after_gap = True
        self._candidates = [self._end]

    def _cut_open_record(self) -> None:
        """A gap follows: turn a buffered record whose header is whole into a hole, so its
        end (known from the header) keeps the framing."""
        buf = self._buf
        if len(buf) < 5 or (self._v2_seen and not self._v3_seen):
            return
        b0 = buf[0]
        if not (CT_CHANGE_CIPHER_SPEC <= b0 <= 26 and buf[1] == 3 and buf[2] <= 4):
            return
        length = (buf[3] << 8) | buf[4]
        self._hole = (b0, (buf[1] << 8) | buf[2], length, bytes(buf[5:]))
        self._hole_left = self._start + 5 + length - self._end
        self._reset_buffer()

    def _close_hole(self, frame: int) -> Record:
        assert self._hole is not None
        ct, version, length, body = self._hole
        self._hole = None
        return Record(ct, version, body, frame, lost=length - len(body), after_gap=self._after_gap)

    def _close_skip(self, frame: int) -> Record:
        ct, version, length = self._skip_header
        return Record(ct, version, b"", frame, skipped=length, after_gap=self._after_gap)

    def release(self) -> None:
        """The stream is over: free the buffers (what was learnt, e.g. the preamble, stays).
        A bytearray keeps its capacity when emptied, so an idle reader would hold on to the
        largest record it ever buffered."""
        self._buf = bytearray()
        self._pieces = []
        self._candidates = []
        self._state = _PLAIN

    def _reset_buffer(self) -> None:
        self._buf = bytearray()
        self._start = self._end
        self._pieces = []

    def _frame_at(self, offset: int) -> int:
        """Frame of the chunk holding stream byte ``offset``."""
        for end, frame in self._pieces:
            if offset < end:
                return frame
        return self._pieces[-1][1]

    def _probe(self, frame: int) -> bool:
        """Look for the start of TLS at pending candidate offsets; True when found.

        A candidate that cannot be judged yet waits for more bytes, unless a later one is
        judged a start first: that one wins (a later confirmed start beats an open question).
        """
        buf = self._buf
        pending: list[int] = []
        for at in self._candidates:
            i = at - self._start
            first = at == 0 and self._state == _PROBE
            verdict = _plausible_v3(buf, i, first)
            if verdict is not True and (self._state == _LOST or self._gapped):
                run = _consistent_run(buf, i)
                verdict = True if run else (None if verdict is None or run is None else False)
            if verdict is not True and not self._v3_seen:
                v2 = _plausible_v2(buf, i)
                verdict = True if v2 else (None if verdict is None or v2 is None else False)
            if verdict:
                self._enter_tls(at, frame)
                return True
            if verdict is None:
                pending.append(at)
        self._candidates = pending
        if pending:
            return False
        self._discard_plaintext()
        return False

    def _enter_tls(self, at: int, frame: int) -> None:
        if self._state == _PROBE:
            self.tls_offset = at
        else:
            self.anomalies.append(Anomaly("record_resync", frame, f"records resume at {at}"))
        self._state = _TLS
        self._candidates = []
        del self._buf[: at - self._start]
        self._start = at

    def _discard_plaintext(self) -> None:
        """Keep memory bounded while probing: keep the preamble, drop what no candidate needs."""
        if self._state == _PROBE and self._end > PROBE_LIMIT:
            self._state = _PLAIN
            self._reset_buffer()
            return
        keep_from = self._candidates[0] if self._candidates else self._end
        if keep_from > self._start:
            del self._buf[: keep_from - self._start]
            self._start = keep_from
            self._pieces = [p for p in self._pieces if p[0] > keep_from]

    def _cut(self, frame: int) -> list[Record]:
        out: list[Record] = []
        buf = self._buf
        i = 0
        n = len(buf)
        while n - i >= 5:
            b0 = buf[i]
            if CT_CHANGE_CIPHER_SPEC <= b0 <= 26 and buf[i + 1] == 3 and buf[i + 2] <= 4:
                length = (buf[i + 3] << 8) | buf[i + 4]
                end = i + 5 + length
                skim = self.skim and b0 == CT_APPLICATION_DATA
                if end > n and not skim:
                    break
                if length > MAX_RECORD:
                    self.anomalies.append(
                        Anomaly("oversized_record", frame, f"record of {length} bytes")
                    )
                version = (buf[i + 1] << 8) | buf[i + 2]
                self._v3_seen = True
                if end > n:  # skimming: stream the rest of the body past
                    self._skip = end - n
                    self._skip_header = (b0, version, length)
                    i = n
                    break
                if skim:
                    rec = Record(
                        b0,
                        version,
                        b"",
                        self._frame_at(self._start + end - 1),
                        skipped=length,
                        after_gap=self._after_gap,
                    )
                else:
                    rec = Record(
                        b0,
                        version,
                        bytes(buf[i + 5 : end]),
                        self._frame_at(self._start + end - 1),
                        after_gap=self._after_gap,
                    )
            elif b0 & 0x80 and not self._v3_seen:
                length = ((b0 & 0x7F) << 8) | buf[i + 1]
                if n - i < 2 + length:
                    break
                end = i + 2 + length
                body = bytes(buf[i + 2 : end])
                self._v2_seen = True
                ct = CT_HANDSHAKE if body[:1] in (b"\x01", b"\x04") else CT_APPLICATION_DATA
                rec = Record(ct, 0x0002, body, self._frame_at(self._start + end - 1), sslv2=True)
            elif self._v2_seen and not self._v3_seen:
                # SSLv2 record with a 3-byte header (length, then a padding count).
                length = ((b0 & 0x3F) << 8) | buf[i + 1]
                if n - i < 3 + length:
                    break
                end = i + 3 + length
                body = bytes(buf[i + 3 : end])
                rec = Record(
                    CT_APPLICATION_DATA, 0x0002, body, self._frame_at(self._start + end - 1), True
                )
            else:
                self.anomalies.append(
                    Anomaly("invalid_record_header", frame, f"bytes {bytes(buf[i : i + 5]).hex()}")
                )
                self._end = self._start + n
                self._reset_buffer()
                self._state = _LOST
                self._candidates = []
                return out
            out.append(rec)
            i = end
        if i:
            del buf[:i]
            self._start += i
            self._pieces = [p for p in self._pieces if p[0] > self._start]
        return out
