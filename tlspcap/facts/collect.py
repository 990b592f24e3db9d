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
from tlspcap.facts.model import ConnFacts, SideFacts, stream_offset
from tlspcap.session import Side, TlsSession
from tlspcap.tcp.reassembly import MASK32
from tlspcap.tcp.tracker import TcpConnection
from tlspcap.tls.records import RecordReader


def _stream_base(conn: TcpConnection, direction: int) -> tuple[int | None, bool]:
    """Sequence number of byte 0 of a direction's stream, and whether that is the true start.

    The true start comes from the direction's own SYN or, when that is not in the capture, from
    the peer's side of the TCP handshake (the SYN/ACK's acknowledgement number, or the ACK that
    follows the peer's SYN). Otherwise offsets count from the first sequence number the capture
    shows for the direction (its own first packet, else the peer's first acknowledgement).
    """
    isn = conn.dirs[direction].isn
    if isn is not None:
        return (isn + 1) & MASK32, True
    peer = conn.dirs[1 - direction].log
    if peer and peer[0][2] & SYN:
        for row in peer:
            if row[2] & ACK:
                return row[4], True
    own = conn.dirs[direction].log
    if own:
        return own[0][3], False
    for row in peer:
        if row[2] & ACK:
            return row[4], False
    return None, False


def _framing_lost(reader: RecordReader) -> tuple[int, ...]:
    """Frames at which a direction's record reader lost the record boundaries."""
    return tuple(
        a.frame
        for a in reader.anomalies
        if a.frame is not None and a.name in ("record_lost_in_gap", "invalid_record_header")
    )


def _side(
    conn: TcpConnection,
    session: TlsSession,
    direction: int,
    bases: list[tuple[int | None, bool]],
) -> SideFacts:
    side: Side = session.sides[direction]
    stream = conn.streams[direction]
    above = conn.stream_sides[direction]
    reader = above.reader
    peer_base, base_known = bases[1 - direction]
    state = conn.dirs[direction]
    last_ack = state.last_ack
    acked = -1
    if last_ack is not None and peer_base is not None:
        acked = max(stream_offset(last_ack, peer_base), 0)
    missing = sum(g.size for g in above.gaps)
    return SideFacts(
        packets=state.packets,
        first_frame=state.first_frame,
        last_packet_frame=state.last_frame,
        syn_frame=conn.syn_frame if direction == 0 else conn.synack_frame,
        fin_frame=state.fin_frame,
        rst_frame=state.rst_frame,
        first_data_frame=above.first_data_frame,
        last_frame=side.last_frame,
        stream_bytes=max(stream.next_offset - missing, 0),
        wire_bytes=stream.next_offset,
        acked=acked,
        ack_base_known=base_known,
        retransmissions=stream.retransmitted,
        gaps=tuple(above.gaps),
        gap_count=above.gap_count,
        snaplen_missing=state.snaplen_missing,
        framing_lost=_framing_lost(reader) if reader.anomalies else (),
        is_tls=reader.is_tls,
        preamble=reader.preamble,
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
        packet_rows=tuple(state.log),
        seq_base=bases[direction][0],
        ack_base=peer_base,
    )


def collect(conn: TcpConnection) -> ConnFacts:
    """The facts of a retired connection that carried payload (see the module docstring)."""
    session = conn.session
    bases = [_stream_base(conn, 0), _stream_base(conn, 1)]
    sides = (_side(conn, session, 0, bases), _side(conn, session, 1, bases))
    role_from = session.role_from
    if role_from is None:
        role_from = "syn" if conn.syn_frame is not None or conn.synack_frame else "first_packet"
    times = session.frame_times
    anomalies = list(session.anomalies)
    for direction in (0, 1):
        state = conn.dirs[direction]
        cut = state.snaplen_missing
        if cut:
            anomalies.append(
                Anomaly(
                    "snaplen_truncated",
                    state.snaplen_first,
                    f"{cut} payload bytes in {state.snaplen_packets} packet(s) of the "
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
        key_exchange=session.key_exchange,
        certificate_status=session.certificate_status,
        encrypted_extensions_frame=session.encrypted_extensions_frame,
        encrypted_extensions_alpn=session.encrypted_extensions_alpn,
        renegotiations=(session.renegotiations[0], session.renegotiations[1]),
        icmp=tuple(conn.icmp),
    )
