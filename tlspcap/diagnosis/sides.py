"""What each side's facts say on their own: how far it got, when it gave up, what it proves
about the other side. Pure functions of :class:`~tlspcap.facts.model.ConnFacts`.

A capture may hold both directions, one only (a ``src host`` filter, asymmetric routing, a
mirror port), or start late. These views let the rules ask the same questions whatever is
missing: a side's acknowledgement numbers prove how many bytes its peer sent even when the
peer's packets are not in the capture, and a side's own records show how far it went.
"""

from __future__ import annotations

from dataclasses import dataclass

from tlspcap.diagnosis.context import hello_text
from tlspcap.facts.model import ConnFacts, SideFacts
from tlspcap.tls.messages import Alert, ClientHello

ALERT_RECORD = 7
"""A plaintext alert record on the wire: a 5-byte header and 2 bytes."""
ENCRYPTED_ALERT_MAX = 5 + 48
"""Largest record taken for an encrypted alert (header + alert + type + tag + padding)."""
FIN = 1
"""A FIN takes one sequence number: acknowledgement numbers count it like a byte."""


@dataclass(frozen=True, slots=True)
class Stop:
    """The first sign that a side is giving up: a fatal alert, a RST or a FIN."""

    frame: int
    kind: str
    """``alert``, ``RST`` or ``FIN``."""
    alert: Alert | None = None

    @property
    def words(self) -> str:
        """The stop in a few words ("alert, then RST", "FIN")."""
        return self.kind


def first_stop(f: ConnFacts, role: str, include_encrypted: bool = True) -> Stop | None:
    """The earliest of a side's first fatal (or unreadable) alert, RST and FIN."""
    side = f.client if role == "client" else f.server
    candidates: list[Stop] = []
    for a in f.alerts:
        if a.sender != role:
            continue
        if a.level is None and not include_encrypted:
            continue
        if a.level != 1:
            candidates.append(Stop(a.frame, "alert", a))
            break
    if side.rst_frame is not None:
        candidates.append(Stop(side.rst_frame, "RST"))
    if side.fin_frame is not None:
        candidates.append(Stop(side.fin_frame, "FIN"))
    if not candidates:
        return None
    return min(candidates, key=lambda s: (s.frame, ("alert", "RST", "FIN").index(s.kind)))


def records_lost(f: ConnFacts) -> int | None:
    """First frame at which either side's records may be missing from the capture (a gap, or
    lost record boundaries); None when the capture holds every record."""
    frames = [frame for side in f.sides for frame in (*side.gap_frames, *side.framing_lost)]
    return min(frames) if frames else None


def seen(side: SideFacts) -> bool:
    """The capture holds at least one packet from this side."""
    return side.packets > 0


def one_sided(f: ConnFacts) -> str | None:
    """``"client"`` or ``"server"`` when the capture holds packets from that side only."""
    if seen(f.client) and not seen(f.server):
        return "client"
    if seen(f.server) and not seen(f.client):
        return "server"
    return None


def acked_by(f: ConnFacts, role: str) -> int | None:
    """Bytes (and FIN) of the peer's stream that ``role`` acknowledged, counted from the start
    of the peer's stream; None when the start is not known (no handshake in the capture)."""
    side = f.client if role == "client" else f.server
    if side.acked < 0 or not side.ack_base_known:
        return None
    return side.acked


def data_proved(f: ConnFacts, sender: str) -> int | None:
    """Bytes ``sender`` sent as far as either side shows: what the capture holds of its stream
    or, when more, what its peer acknowledged (less a FIN the peer may have counted). None when
    neither tells (no packet of the sender and no known start of its stream)."""
    side = f.client if sender == "client" else f.server
    peer = "server" if sender == "client" else "client"
    acked = acked_by(f, peer)
    shown = side.wire_bytes if seen(side) else None
    if acked is None:
        return shown
    fin = FIN if side.fin_frame is not None or not seen(side) else 0
    from_acks = max(acked - fin, 0)
    return max(shown or 0, from_acks)


def acked_after(f: ConnFacts, role: str, frame: int) -> int | None:
    """How far ``role`` had acknowledged its peer's stream at ``frame`` (from its packet log);
    None when the log does not tell."""
    side = f.client if role == "client" else f.server
    if not side.ack_base_known:
        return None
    best: int | None = None
    for p in side.packet_log:
        if p.frame > frame:
            break
        ack = side.ack_offset(p)
        if ack >= 0:
            best = ack if best is None else max(best, ack)
    return best


def ack_growth(f: ConnFacts, role: str, after: int) -> tuple[int, int | None] | None:
    """How much more of its peer's stream ``role`` acknowledged after frame ``after``: (bytes,
    frame of the first packet that acknowledged them). None when the log does not tell."""
    side = f.client if role == "client" else f.server
    if not side.ack_base_known:
        return None
    before = acked_after(f, role, after)
    if before is None:
        return None
    first: int | None = None
    for p in side.packet_log:
        if p.frame > after and side.ack_offset(p) > before:
            first = p.frame
            break
    total = max(side.acked, before)
    return total - before, first


def starts_late(f: ConnFacts) -> bool:
    """Neither the SYN nor the SYN/ACK is in the capture: it began on a running connection."""
    return f.syn_frame is None and f.synack_frame is None


def absent_hello_text(f: ConnFacts) -> str:
    """Why the capture shows no ClientHello: one-sided, or begun later (said only when true)."""
    if not seen(f.client):
        return (
            "the capture holds no packet from the client (a one-sided capture): its ClientHello "
            "is not in it, but its acknowledgements show in the server's packets"
        )
    if starts_late(f):
        return (
            f"the capture starts on a running connection (frame {f.first_frame}, no SYN): the "
            "ClientHello is not in it"
        )
    return "the ClientHello is not in the capture (the client's stream has a gap where it was)"


def hello_line(f: ConnFacts, ch: ClientHello | None) -> tuple[int | None, str]:
    """The evidence line for the client's hello, or for its absence."""
    if ch is not None:
        return ch.frame, hello_text(ch)
    cut = [m for m in f.messages if m.direction == f.client_dir and m.msg_type == 1]
    if cut:
        return cut[0].frame, (
            "a ClientHello the capture cut too short to read (snap length): what it offered "
            "is not in the capture"
        )
    return None, absent_hello_text(f)
