"""What one connection showed, as a record: the facts every verdict is a function of.

A :class:`ConnFacts` is built once per connection when the connection is over (by
:func:`tlspcap.facts.collect.collect` from the pure-Python packet stage, or from a compiled
engine's output) and never changes after that: a read-only value by convention, since a frozen
dataclass of this size costs several times more to build. The diagnosis reads only these facts
and the capture-wide knowledge learnt from other connections' facts; the reports render them.
So a verdict that must wait for the end of the capture waits as facts (pickled to disk past a
bound), not as a live connection with its buffers.

Facts are kept per *direction* (0: the TCP initiator, or the first sender seen) and roles are a
separate decision (:attr:`ConnFacts.client_dir`, with :attr:`ConnFacts.role_from` saying what it
rests on), so a capture of one side only, or one that starts mid-connection, is just a record
with an empty or a partial side, not a special case.

Everything here is bounded: per-packet facts are kept for the first :data:`PACKET_LOG` packets
of each direction and for every SYN, FIN and RST (up to :data:`CONTROL_LOG`); gaps, events and
the encrypted-record log have caps of their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from tlspcap.anomaly import Anomaly
from tlspcap.capture.model import IcmpError, format_endpoint
from tlspcap.roles import Roles
from tlspcap.tls.messages import (
    Alert,
    CertificateMessage,
    CertificateRequest,
    CertificateStatus,
    ClientHello,
    KeyExchange,
    ServerHello,
)

Endpoint = tuple[bytes, int]
"""A packed IP address and a port."""

PACKET_LOG = 24
"""Packets per direction whose facts (TTL, IP ID, window, ...) are kept, from the first on."""
CONTROL_LOG = 8
"""SYN/FIN/RST packets per direction kept beyond :data:`PACKET_LOG`."""
MAX_GAPS = 32
"""Gaps kept per direction (the rest are counted in :attr:`SideFacts.gap_count`)."""


class PacketFacts(NamedTuple):
    """The header facts of one TCP packet, as rules about the path need them.

    ``seq`` and ``ack`` are the numbers as sent; :meth:`SideFacts.seq_offset` and
    :meth:`SideFacts.ack_offset` turn them into stream offsets.
    """

    frame: int
    ts: float
    flags: int
    """TCP flags byte."""
    seq: int
    ack: int
    length: int
    """Payload bytes on the wire (captured or not)."""
    ttl: int
    """IPv4 TTL or IPv6 hop limit (-1 when unknown)."""
    ip_id: int
    """IPv4 identification (-1 for IPv6 or unknown)."""
    window: int
    """TCP window field, unscaled."""
    options: bytes = b""
    """Raw TCP options."""


def stream_offset(number: int, base: int | None) -> int:
    """Offset of sequence number ``number`` in a stream whose byte 0 has number ``base`` (-1
    when ``base`` is unknown); numbers wrap at 2**32."""
    if base is None:
        return -1
    delta = (number - base) & 0xFFFFFFFF
    return delta - (1 << 32) if delta >= 0x80000000 else delta


class GapFacts(NamedTuple):
    """Bytes of a direction's stream missing from the capture."""

    frame: int
    """Frame at which the gap was noticed."""
    size: int
    offset: int
    """Stream offset of the first missing byte (-1 when unknown)."""


class EncryptedRecord(NamedTuple):
    """An encrypted record's place in the conversation (for TLS 1.3 size inferences)."""

    direction: int
    content_type: int
    length: int
    frame: int


class MessageFacts(NamedTuple):
    """One handshake message seen in the clear (or decrypted), in capture order."""

    direction: int
    msg_type: int
    frame: int
    length: int
    """Body length as declared."""
    truncated: bool = False
    """The capture holds only part of it (snap length or a gap): parsed as far as it goes."""


@dataclass(slots=True)
class SideFacts:
    """What one direction of the connection sent, and what it acknowledged of the other.

    Not frozen, for speed (a frozen dataclass of this many fields costs ~20 us to build, and
    two are built per connection); treat instances as read-only values all the same.
    """

    packets: int = 0
    """Packets captured from this side."""
    first_frame: int | None = None
    """First packet from this side."""
    last_packet_frame: int | None = None
    """Last packet from this side."""
    syn_frame: int | None = None
    fin_frame: int | None = None
    rst_frame: int | None = None
    first_data_frame: int | None = None
    """First frame that carried stream bytes (TLS or not)."""
    last_frame: int | None = None
    """Last frame that carried TLS bytes."""
    stream_bytes: int = 0
    """Stream bytes of this side present in the capture (retransmissions not counted)."""
    wire_bytes: int = 0
    """Stream bytes of this side the capture shows were sent: present, cut by the snap length,
    or lost in gaps (the highest offset reached)."""
    acked: int = -1
    """Highest offset of the peer's stream this side acknowledged (-1: no ACK seen, or the
    peer's stream has no known start). Proves how much the peer sent even when the peer's
    packets are not in the capture."""
    ack_base_known: bool = False
    """The peer's initial sequence number is known (its SYN, or this side's ACK of it), so
    :attr:`acked` counts from the start of the peer's stream; else from this side's first ACK."""
    retransmissions: int = 0
    """Segments that carried only bytes already seen."""
    gaps: tuple[GapFacts, ...] = ()
    gap_count: int = 0
    snaplen_missing: int = 0
    """Payload bytes of this side cut off by the capture's snap length."""
    framing_lost: tuple[int, ...] = ()
    """Frames at which the record boundaries were lost (a gap that swallowed a record header,
    or a malformed header): records may be missing until they were found again."""
    is_tls: bool = False
    preamble: bytes = b""
    """First plaintext bytes before (or instead of) TLS."""
    encrypted: bool = False
    """The side's records were encrypted at the end."""
    ccs_frame: int | None = None
    finished_frame: int | None = None
    encrypted_handshake_records: int = 0
    application_records: int = 0
    application_bytes: int = 0
    first_application_frame: int | None = None
    application_preview: bytes = b""
    decrypted_records: int = 0
    certificates: tuple[CertificateMessage, ...] = ()
    packet_rows: tuple[tuple[int, float, int, int, int, int, int, int, int, bytes], ...] = ()
    """The :class:`PacketFacts` fields of the first packets and of the control packets (see the
    module docstring), as plain tuples: read them through :attr:`packet_log`."""
    seq_base: int | None = None
    """Sequence number of byte 0 of this side's stream (see ``ack_base_known`` for the peer's)."""
    ack_base: int | None = None
    """Sequence number of byte 0 of the peer's stream, as this side's ACKs count it."""

    @property
    def packet_log(self) -> list[PacketFacts]:
        """Facts of the first packets and of the control packets, in capture order."""
        return [PacketFacts._make(row) for row in self.packet_rows]

    @property
    def acked_frame(self) -> int | None:
        """The first logged packet whose ACK reached :attr:`acked` (else this side's last
        packet: the log keeps only the first ones)."""
        if self.acked < 0:
            return None
        for p in self.packet_log:
            if self.ack_offset(p) >= self.acked:
                return p.frame
        return self.last_packet_frame

    def seq_offset(self, p: PacketFacts) -> int:
        """Offset in this side's stream of a logged packet's first payload byte (-1: unknown)."""
        return stream_offset(p.seq + 1 if p.flags & 0x02 else p.seq, self.seq_base)

    def ack_offset(self, p: PacketFacts) -> int:
        """Offset of the peer's stream a logged packet acknowledges (-1: no ACK, unknown)."""
        return stream_offset(p.ack, self.ack_base) if p.flags & 0x10 else -1

    @property
    def gap_frames(self) -> list[int]:
        """Frames at which gaps in this side's stream were noticed."""
        return [g.frame for g in self.gaps]


@dataclass(slots=True)
class ConnFacts(Roles[SideFacts]):
    """Everything one TCP connection showed (see the module docstring).

    Not frozen, for speed (see :class:`SideFacts`); never changed once built.
    """

    index: int
    """Order in which connections started in the capture (0-based)."""
    endpoints: tuple[Endpoint, Endpoint]
    """Sender of direction 0, sender of direction 1."""
    client_dir: int
    """Direction index of the client."""
    role_from: str
    """What the roles rest on: ``client_hello``, ``server_hello``, ``certificate_request``,
    ``server_message`` (a message only a server sends), ``syn``, or ``first_packet``."""
    first_frame: int
    last_frame: int
    first_ts: float
    last_ts: float
    sides: tuple[SideFacts, SideFacts]
    syn_frame: int | None = None
    synack_frame: int | None = None
    client_hellos: tuple[ClientHello, ...] = ()
    server_hellos: tuple[ServerHello, ...] = ()
    certificate_request: CertificateRequest | None = None
    server_hello_done_frame: int | None = None
    messages: tuple[MessageFacts, ...] = ()
    """Handshake messages read, in capture order (capped)."""
    alerts: tuple[Alert, ...] = ()
    """Every alert kept, in order, with its sender's role."""
    encrypted_log: tuple[EncryptedRecord, ...] = ()
    history: str = ""
    anomalies: tuple[Anomaly, ...] = ()
    frame_times: dict[int, float] = field(default_factory=dict)
    """Capture time of the frames that carried TLS messages, alerts and records (the packet
    logs give the times of the others)."""
    version: int | None = None
    """Negotiated version (from the last real ServerHello)."""
    cipher: int | None = None
    evicted: bool = False
    """Closed early to bound memory (too many connections at once)."""
    idle: bool = False
    """Retired for being quiet (see :data:`tlspcap.tcp.tracker.IDLE_SECONDS`)."""
    tunnel: str | None = None
    """Encapsulation the connection's packets came in (VXLAN, GRE, ...), if any."""
    key_exchange: KeyExchange | None = None
    """The ServerKeyExchange's parameters (TLS <= 1.2 DHE/ECDHE)."""
    certificate_status: CertificateStatus | None = None
    """The stapled OCSP response, if the server sent one."""
    encrypted_extensions_frame: int | None = None
    """Frame of the TLS 1.3 EncryptedExtensions, when decrypted."""
    encrypted_extensions_alpn: bytes | None = None
    """The ALPN protocol it selected (None: none, or not decrypted)."""
    renegotiations: tuple[int | None, int | None] = (None, None)
    """Per direction: the first handshake record sent after that side's own application data."""
    icmp: tuple[IcmpError, ...] = ()
    """ICMP errors that quote the connection's packets (a router's or host's word on it)."""

    # ---- roles (server_dir, role, client, server: see Roles) ---------------------------
    @property
    def client_endpoint(self) -> str:
        """The client as ``ip:port``."""
        return format_endpoint(*self.endpoints[self.client_dir])

    @property
    def server_endpoint(self) -> str:
        """The server as ``ip:port``."""
        return format_endpoint(*self.endpoints[self.server_dir])

    @property
    def packets_by_direction(self) -> tuple[int, int]:
        """Packets captured from direction 0 and from direction 1."""
        return (self.sides[0].packets, self.sides[1].packets)

    @property
    def packets(self) -> int:
        """Packets captured in both directions."""
        return self.sides[0].packets + self.sides[1].packets

    @property
    def decrypted(self) -> bool:
        """At least one record was decrypted with key-log secrets."""
        return any(s.decrypted_records for s in self.sides)

    def time_of(self, frame: int | None) -> float:
        """Capture time of a frame the facts name (the connection's start when unknown)."""
        if frame is not None:
            ts = self.frame_times.get(frame)
            if ts is not None:
                return ts
            for side in self.sides:
                for row in side.packet_rows:
                    if row[0] == frame:
                        return row[1]
        return self.first_ts

    def time_at(self, frame: int) -> float | None:
        """Capture time of ``frame`` when the facts know it, else None."""
        ts = self.frame_times.get(frame)
        if ts is None:
            for side in self.sides:
                for row in side.packet_rows:
                    if row[0] == frame:
                        return row[1]
        return ts
