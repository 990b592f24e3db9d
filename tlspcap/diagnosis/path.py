"""What the packets themselves say about the path: injected resets, silent drops, hellos too
large for a device, full-size segments lost.

Each function reads the per-packet facts (TTL, IP ID, window, options, retransmissions,
acknowledgements, SACK blocks) and ICMP errors of one connection and returns its signals with
their evidence; the rules decide what they add up to. A single weak signal is never a cause.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from tlspcap.capture.model import ACK, RST, SYN, IcmpError
from tlspcap.facts.model import ConnFacts, PacketFacts, SideFacts, stream_offset

INITIAL_TTLS = (32, 64, 128, 255)
"""The TTLs operating systems start from (Windows 128, Linux/macOS 64, network gear 255)."""
MIN_MTU_SAFE = 1280
"""A segment this small crosses any IPv6 path (and nearly every IPv4 one): its loss is not the
MTU's doing."""
FULL_SIZE = 1000
"""A segment at least this large may be one a smaller MTU on the path swallows."""
MIN_RTT_FOR_TIMING = 0.002
"""Below this handshake round trip (loopback, a LAN) timing cannot tell who sent a packet."""


@dataclass(frozen=True, slots=True)
class Signal:
    """One observation, with the frame it rests on."""

    frame: int | None
    text: str


# ---- TCP details ------------------------------------------------------------------------------
def option_kinds(options: bytes) -> set[int]:
    """The TCP option kinds present (NOP and end-of-list left out)."""
    kinds: set[int] = set()
    i = 0
    while i < len(options):
        kind = options[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        kinds.add(kind)
        if i + 1 >= len(options) or options[i + 1] < 2:
            break
        i += options[i + 1]
    return kinds


def sack_blocks(options: bytes) -> list[tuple[int, int]]:
    """The SACK blocks (left, right sequence numbers) of a packet's options."""
    i = 0
    while i < len(options):
        kind = options[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= len(options) or options[i + 1] < 2:
            break
        length = options[i + 1]
        if kind == 5:
            body = options[i + 2 : i + length]
            return [
                (int.from_bytes(body[j : j + 4], "big"), int.from_bytes(body[j + 4 : j + 8], "big"))
                for j in range(0, len(body) - 7, 8)
            ]
        i += length
    return []


def hops(ttl: int) -> int | None:
    """Routers crossed, from a TTL and the initial TTLs systems use (None when unknown)."""
    if ttl < 0:
        return None
    for start in INITIAL_TTLS:
        if ttl <= start:
            return start - ttl
    return None


def _synack(f: ConnFacts) -> PacketFacts | None:
    return next((p for p in f.server.packet_log if p.flags & SYN and p.flags & ACK), None)


# ---- injected resets --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ResetAnalysis:
    """How well a RST "from the server" fits the server's own packets."""

    rst: PacketFacts
    signals: tuple[Signal, ...]
    race: Signal | None
    """Server packets after the RST: the strongest sign that someone else sent it."""

    @property
    def injected(self) -> bool:
        """Two independent signals, or the race: the RST did not come from the server."""
        return self.race is not None or len(self.signals) >= 2


def reset_analysis(f: ConnFacts) -> ResetAnalysis | None:
    """Signals that the server side's first RST was sent by a device on the path (None when
    the server side sent no RST the log holds)."""
    server = f.server
    log = server.packet_log
    rst = next((p for p in log if p.flags & RST), None)
    if rst is None:
        return None
    before = [p for p in log if p.frame < rst.frame and not p.flags & RST]
    signals: list[Signal] = []
    synack = _synack(f)
    if synack is not None:
        h_rst, h_syn = hops(rst.ttl), hops(synack.ttl)
        if h_rst is not None and h_syn is not None and h_rst != h_syn:
            signals.append(
                Signal(
                    rst.frame,
                    f"the RST arrived with TTL {rst.ttl} ({h_rst} hop(s) away) but the "
                    f"server's SYN/ACK with TTL {synack.ttl} ({h_syn} hop(s), frame "
                    f"{synack.frame}): they come from different distances",
                )
            )
    ids = [p.ip_id for p in before if p.ip_id > 0 and not p.flags & SYN]
    if len(ids) >= 2 and all(0 < (b - a) % 65536 < 64 for a, b in itertools.pairwise(ids)):
        step = (rst.ip_id - ids[-1]) % 65536
        if rst.ip_id >= 0 and not 0 < step <= 64:
            signals.append(
                Signal(
                    rst.frame,
                    f"the RST's IP ID {rst.ip_id} is out of the server's sequence "
                    f"(its packets before had {ids[-2]}, {ids[-1]})",
                )
            )
    stateless = _stateless(rst, synack)
    if stateless is not None:
        signals.append(stateless)
    timing = _early(f, rst)
    if timing is not None:
        signals.append(timing)
    seqs = {server.seq_offset(p) for p in log if p.flags & RST}
    if len(seqs) > 1:
        signals.append(
            Signal(rst.frame, f"{len(seqs)} RSTs with different sequence numbers arrived")
        )
    after = [p for p in log if p.frame > rst.frame and not p.flags & RST]
    race = None
    if after:
        race = Signal(
            after[0].frame,
            f"the server's own packets kept coming after the RST (frame {after[0].frame}): the "
            "server had not reset the connection",
        )
    return ResetAnalysis(rst, tuple(signals), race)


def _stateless(rst: PacketFacts, synack: PacketFacts | None) -> Signal | None:
    """The RST was made without the connection's state: no TCP timestamps although the SYN/ACK
    negotiated them, and window 0 (a stack's own reset on a live connection carries both)."""
    if synack is None or 8 not in option_kinds(synack.options):
        return None
    if 8 in option_kinds(rst.options) or rst.window:
        return None
    return Signal(
        rst.frame,
        "the RST carries no TCP timestamps, which the server negotiated in its SYN/ACK (frame "
        f"{synack.frame}), and window 0: it was made without the connection's state",
    )


def _early(f: ConnFacts, rst: PacketFacts) -> Signal | None:
    """The RST came back sooner after the client's last packet than a round trip allows."""
    client = f.client
    syn = next((p for p in client.packet_log if p.flags & SYN and not p.flags & ACK), None)
    synack = _synack(f)
    if syn is None or synack is None:
        return None
    rtt = synack.ts - syn.ts
    last = [p for p in client.packet_log if p.frame < rst.frame and p.length]
    if rtt < MIN_RTT_FOR_TIMING or not last:
        return None
    delay = rst.ts - last[-1].ts
    if delay >= rtt / 2:
        return None
    return Signal(
        rst.frame,
        f"the RST came {delay * 1000:.1f} ms after the client's packet (frame {last[-1].frame}), "
        f"faster than the {rtt * 1000:.1f} ms round trip to the server allows",
    )


# ---- the ClientHello on the wire --------------------------------------------------------------
def hello_segments(f: ConnFacts, hello_frame: int) -> list[PacketFacts]:
    """The client's data packets up to the one that completed its hello (first transmissions)."""
    client = f.client
    seen: set[int] = set()
    out = []
    for p in client.packet_log:
        if p.frame > hello_frame:
            break
        offset = client.seq_offset(p)
        if p.length and offset not in seen:
            seen.add(offset)
            out.append(p)
    return out


def retransmissions(side: SideFacts, p: PacketFacts) -> list[PacketFacts]:
    """Later packets of ``side`` that resend ``p``'s first byte."""
    start = side.seq_offset(p)
    return [
        q for q in side.packet_log if q.frame > p.frame and q.length and side.seq_offset(q) == start
    ]


@dataclass(frozen=True, slots=True)
class Drop:
    """A ClientHello the path swallowed: retransmitted, never acknowledged."""

    hello: PacketFacts
    resent: tuple[PacketFacts, ...]
    size: int


def dropped_hello(f: ConnFacts, hello_frame: int) -> Drop | None:
    """The hello's first segment was sent again and again and the server never acknowledged
    it, though the TCP handshake completed: it did not reach the server."""
    segments = hello_segments(f, hello_frame)
    if not segments:
        return None
    first = segments[0]
    resent = retransmissions(f.client, first)
    if len(resent) < 2:
        return None
    end = f.client.seq_offset(first) + first.length
    server = f.server
    if server.packets and server.acked >= 0 and server.ack_base_known and server.acked >= end:
        return None
    if not server.packets and f.client.ack_base_known and f.client.acked > 0:
        return None  # the server answered (the client acknowledged its bytes)
    return Drop(first, tuple(resent), sum(p.length for p in segments))


# ---- path MTU ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class BlackHole:
    """Full-size segments that never arrived while small ones did."""

    lost: Signal
    passed: Signal | None
    icmp: IcmpError | None
    """A fragmentation-needed error the sender then ignored (None when there was none)."""


def _sacked(receiver: SideFacts) -> list[tuple[int, int]]:
    """The peer-stream ranges ``receiver`` reported in SACK blocks, as offsets."""
    out = []
    for p in receiver.packet_log:
        for left, right in sack_blocks(p.options):
            a, b = stream_offset(left, receiver.ack_base), stream_offset(right, receiver.ack_base)
            if 0 <= a < b:
                out.append((a, b))
    return out


def mtu_black_hole(f: ConnFacts) -> BlackHole | None:
    """Full-size segments of one side lost on the path while its small ones pass (seen from
    either end: the sender's retransmissions, or the receiver's holes and SACK blocks)."""
    for sender, receiver in ((f.server, f.client), (f.client, f.server)):
        found = _from_sender(f, sender, receiver) or _from_receiver(f, sender, receiver)
        if found is not None:
            return found
    return None


def _frag_needed(f: ConnFacts) -> IcmpError | None:
    return next((e for e in f.icmp if e.mtu is not None), None)


def _from_sender(f: ConnFacts, sender: SideFacts, receiver: SideFacts) -> BlackHole | None:
    """The sender's view: a full-size segment sent again and again, never acknowledged."""
    if not sender.packets or not receiver.packets:
        return None
    acked = receiver.acked if receiver.ack_base_known else -1
    sacked = _sacked(receiver)
    for p in sender.packet_log:
        start = sender.seq_offset(p)
        if p.length < FULL_SIZE or start < 0 or start + p.length <= acked:
            continue
        resent = [q for q in retransmissions(sender, p) if q.length >= p.length]
        if len(resent) < 2 or any(a <= start < b for a, b in sacked):
            continue
        small = [(a, b) for a, b in sacked if b - a < p.length]
        passed = None
        if small:
            a, b = small[0]
            passed = Signal(
                None,
                f"a {b - a}-byte segment after it arrived (the receiver acknowledged it "
                "selectively)",
            )
        icmp = _frag_needed(f)
        return BlackHole(
            Signal(
                p.frame,
                f"a {p.length}-byte segment was sent {1 + len(resent)} times (frames "
                f"{p.frame}, {', '.join(str(q.frame) for q in resent[:4])}"
                f"{', ...' if len(resent) > 4 else ''}) and never acknowledged",
            ),
            passed,
            icmp,
        )
    return None


def _from_receiver(f: ConnFacts, sender: SideFacts, receiver: SideFacts) -> BlackHole | None:
    """The receiver's view: a hole at least a full segment wide that never fills, while the
    smaller segments after it arrive (and are acknowledged selectively)."""
    if not receiver.packets or not receiver.ack_base_known or receiver.acked < 0:
        return None
    sacked = [(a, b) for a, b in _sacked(receiver) if a > receiver.acked]
    if not sacked:
        return None
    left = min(a for a, _ in sacked)
    hole = left - receiver.acked
    seen = [p for p in sender.packet_log if p.length]
    if hole < FULL_SIZE or (seen and max(p.length for p in seen) >= hole):
        return None
    sizes = ", ".join(str(p.length) for p in seen[:3])
    return BlackHole(
        Signal(
            receiver.acked_frame,
            f"{hole} bytes of the peer's stream never arrived (the receiver acknowledges "
            f"{receiver.acked} bytes while it holds those from byte {left} on)",
        ),
        Signal(
            seen[0].frame if seen else None,
            f"the smaller segments after the hole arrived ({sizes} bytes)",
        ),
        _frag_needed(f),
    )


def icmp_words(error: IcmpError) -> str:
    """An ICMP error in words (what it says about the packet it quotes)."""
    v4 = error.version == 4
    kind = (
        {
            (3, 0): "network unreachable",
            (3, 1): "host unreachable",
            (3, 3): "port unreachable",
            (3, 4): f"fragmentation needed (next-hop MTU {error.mtu})",
            (3, 9): "network administratively prohibited",
            (3, 10): "host administratively prohibited",
            (3, 13): "communication administratively prohibited",
            (11, 0): "TTL exceeded in transit",
        }.get((error.icmp_type, error.code))
        if v4
        else {
            (1, 0): "no route to destination",
            (1, 1): "communication administratively prohibited",
            (1, 3): "address unreachable",
            (1, 4): "port unreachable",
            (2, 0): f"packet too big (MTU {error.mtu})",
            (3, 0): "hop limit exceeded in transit",
        }.get((error.icmp_type, error.code))
    )
    return kind or f"ICMP{'' if v4 else 'v6'} type {error.icmp_type} code {error.code}"


def prohibited(errors: Sequence[IcmpError]) -> IcmpError | None:
    """An ICMP error that says a filter refused the packet."""
    for e in errors:
        if (e.version == 4 and e.icmp_type == 3 and e.code in (9, 10, 13)) or (
            e.version == 6 and e.icmp_type == 1 and e.code == 1
        ):
            return e
    return None
