"""The pure-Python packet stage's facts: a retired :class:`TcpConnection` in, :class:`ConnFacts`
out.

Called once per connection when the tracker retires it (its session finished, its buffers
flushed). Sequence and acknowledgement numbers become stream offsets here, so the facts say
"the client acknowledged 1,834 bytes of the server's stream" whatever the initial sequence
numbers were, and whether or not the server's packets are in the capture.
"""

from __future__ import annotations

from tlspcap.anomaly import Anomaly
from tlspcap.capture.model import ACK, SYN
from tlspcap.facts.model import ConnFacts, PacketFacts, SideFacts
from tlspcap.session import Side, TlsSession
from tlspcap.tcp.reassembly import MASK32
from tlspcap.tcp.tracker import PacketRow, TcpConnection


def _offset(seq: int, base: int | None) -> int:
    """Stream offset of sequence number ``seq`` for a stream whose byte 0 has number ``base``."""
    if base is None:
        return -1
    delta = (seq - base) & MASK32
    return delta - (1 << 32) if delta >= 0x80000000 else delta


def _stream_base(conn: TcpConnection, direction: int) -> tuple[int | None, bool]:
    """Sequence number of byte 0 of a direction's stream, and whether that is the true start.

    The true start comes from the direction's own SYN or, when that is not in the capture, from
    the peer's side of the TCP handshake (the SYN/ACK's acknowledgement number, or the ACK that
    follows the peer's SYN). Otherwise offsets count from the first sequence number the capture
    shows for the direction (its own first packet, else the peer's first acknowledgement).
    """
    isn = conn.isn[direction]
    if isn is not None:
        return (isn + 1) & MASK32, True
    peer = conn.log[1 - direction]
    if peer and peer[0][2] & SYN:
        for row in peer:
            if row[2] & ACK:
                return row[4], True
    own = conn.log[direction]
    if own:
        return own[0][3], False
    for row in peer:
        if row[2] & ACK:
            return row[4], False
    return None, False


def _packets(rows: list[PacketRow], own: int | None, peer: int | None) -> tuple[PacketFacts, ...]:
    out = []
    for frame, ts, flags, seq, ack, length, ttl, ip_id, window, options in rows:
        start = seq + 1 if flags & SYN else seq
        out.append(
            PacketFacts(
                frame,
                ts,
                flags,
                _offset(start, own),
                _offset(ack, peer) if flags & ACK else -1,
                length,
                ttl,
                ip_id,
                window,
                options,
            )
        )
    return tuple(out)


def _side(
    conn: TcpConnection,
    session: TlsSession,
    direction: int,
    bases: list[tuple[int | None, bool]],
) -> SideFacts:
    side: Side = session.sides[direction]
    stream = conn.streams[direction]
    peer_base, base_known = bases[1 - direction]
    last_ack = conn.last_ack[direction]
    acked = -1
    if last_ack is not None and peer_base is not None:
        acked = max(_offset(last_ack, peer_base), 0)
    missing = sum(g.size for g in side.gaps)
    return SideFacts(
        packets=conn.packets_by_direction[direction],
        first_frame=conn.first_frames[direction],
        last_packet_frame=conn.last_frames[direction],
        syn_frame=next((r[0] for r in conn.log[direction] if r[2] & SYN), None),
        fin_frame=conn.fin_frames[direction],
        rst_frame=conn.rst_frames[direction],
        first_data_frame=side.first_data_frame,
        last_frame=side.last_frame,
        stream_bytes=max(stream.next_offset - missing, 0),
        wire_bytes=stream.next_offset,
        acked=acked,
        acked_frame=conn.ack_frames[direction],
        ack_base_known=base_known,
        retransmissions=stream.retransmitted,
        gaps=tuple(side.gaps),
        gap_count=side.gap_count,
        snaplen_missing=conn.snaplen_missing[direction],
        framing_lost=tuple(
            a.frame
            for a in side.reader.anomalies
            if a.frame is not None and a.name in ("record_lost_in_gap", "invalid_record_header")
        ),
        is_tls=side.reader.is_tls,
        preamble=side.reader.preamble,
        encrypted=side.encrypted,
        ccs_frame=side.ccs_frame,
        finished_frame=side.finished_frame,
        encrypted_handshake_records=side.encrypted_handshake_records,
        application_records=side.application_records,
        application_bytes=side.application_bytes,
        first_application_frame=side.first_application_frame,
        application_preview=side.application_preview,
        decrypted_records=side.decrypted_records,
        certificates=tuple(side.certificates),
        packet_log=_packets(conn.log[direction], bases[direction][0], peer_base),
    )


def collect(conn: TcpConnection) -> ConnFacts:
    """The facts of a retired connection that carried payload (see the module docstring)."""
    session = conn.session
    bases = [_stream_base(conn, 0), _stream_base(conn, 1)]
    sides = (_side(conn, session, 0, bases), _side(conn, session, 1, bases))
    role_from = session.role_from
    if role_from is None:
        role_from = "syn" if conn.syn_frame is not None or conn.synack_frame else "first_packet"
    times = dict(session.frame_times)
    for rows in conn.log:
        for row in rows:
            times.setdefault(row[0], row[1])
    anomalies = list(session.anomalies)
    for direction in (0, 1):
        cut = conn.snaplen_missing[direction]
        if cut:
            anomalies.append(
                Anomaly(
                    "snaplen_truncated",
                    conn.snaplen_first[direction],
                    f"{cut} payload bytes in {conn.snaplen_packets[direction]} packet(s) of the "
                    f"{session.role(direction)} not captured (the capture's snap length cut "
                    "them)",
                )
            )
    return ConnFacts(
        index=conn.index,
        endpoints=conn.endpoints,
        client_dir=session.client_dir,
        role_from=role_from,
        first_frame=conn.first_frame,
        last_frame=conn.last_frame,
        first_ts=conn.first_ts,
        last_ts=conn.last_ts,
        sides=sides,
        syn_frame=conn.syn_frame,
        synack_frame=conn.synack_frame,
        client_hellos=tuple(session.client_hellos),
        server_hellos=tuple(session.server_hellos),
        certificate_request=session.certificate_request,
        server_hello_done_frame=session.server_hello_done_frame,
        messages=tuple(session.messages),
        alerts=tuple(session.alerts),
        encrypted_log=tuple(session.encrypted_log),
        history=session.history,
        anomalies=tuple(anomalies),
        frame_times=times,
        version=session.version,
        cipher=session.cipher,
        evicted=conn.evicted,
        idle=conn.idle,
        tunnel=conn.tunnel,
    )
