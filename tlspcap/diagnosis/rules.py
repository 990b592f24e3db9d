"""The walk, and the rules for a ClientHello that got no readable ServerHello (see engine.py).

The walk starts from whatever the capture shows, not from the ClientHello: a ServerHello
(however the capture began), a ClientHello without an answer, or neither (a capture that
starts later, or holds one side only). Each branch reasons from both sides' facts and from
what one side proves about the other (:mod:`tlspcap.diagnosis.sides`).
"""

from __future__ import annotations

from tlspcap.capture.model import format_endpoint
from tlspcap.diagnosis.alerts import client_alert_cause
from tlspcap.diagnosis.completion import after_server_hello
from tlspcap.diagnosis.context import (
    A_HANDSHAKE_FAILURE,
    A_INSUFFICIENT_SECURITY,
    A_INTERNAL_ERROR,
    A_NO_APPLICATION_PROTOCOL,
    A_PROTOCOL_VERSION,
    A_UNRECOGNIZED_NAME,
    SILENCE_SECONDS,
    Context,
    alpn_offer_text,
    close_of,
    describe_alert,
    first_fatal,
    first_server_frame,
    is_malformed_record,
    looks_like,
    offered_versions,
    quote,
    real_suites,
    vname,
)
from tlspcap.diagnosis.model import (
    ESTABLISHED,
    FAILED,
    INCOMPLETE,
    INFERRED,
    OBSERVED,
    PROOF,
    Finding,
    Verdict,
)
from tlspcap.diagnosis.path import (
    MIN_MTU_SAFE,
    BlackHole,
    Drop,
    dropped_hello,
    hello_segments,
    icmp_words,
    mtu_black_hole,
    prohibited,
    reset_analysis,
)
from tlspcap.diagnosis.policy import extra_findings
from tlspcap.diagnosis.sides import (
    ENCRYPTED_ALERT_MAX,
    FIN,
    ack_growth,
    acked_after,
    acked_by,
    data_proved,
    first_stop,
    hello_line,
    seen,
)
from tlspcap.diagnosis.tls13 import ALERT_SIZED, EMPTY_CERTIFICATE_RECORD
from tlspcap.facts.model import ConnFacts, SideFacts
from tlspcap.tls.messages import Alert, ClientHello
from tlspcap.tls.registry import cipher_name, cipher_properties, is_grease

TLS12 = 0x0303


# ---- the walk ---------------------------------------------------------------------------
def walk(ctx: Context) -> Verdict:
    """Decide outcome and cause for one connection."""
    f = ctx.f
    ch = f.client_hellos[-1] if f.client_hellos else None
    real = [sh for sh in f.server_hellos if not sh.hello_retry_request]
    v = _path_failure(ctx, ch) or _walk(ctx, ch)
    shown = {v.cause, *(x.code for x in v.secondary)}
    for extra in extra_findings(f, ch, real[-1] if real else None):
        if extra.code not in shown:
            v.secondary.append(extra)
            shown.add(extra.code)
    return v


def _walk(ctx: Context, ch: ClientHello | None) -> Verdict:
    f = ctx.f
    real = [sh for sh in f.server_hellos if not sh.hello_retry_request]
    if real:
        return after_server_hello(ctx, ch, real[-1])
    if not seen(f.server) and (ch is not None or _message_seen(f, "client", 1)):
        return _unanswered(ctx, ch)  # the client's side alone: its ACKs tell the rest
    if _server_answered_in_tls(f):  # its ServerHello cut or lost, what follows it read
        return after_server_hello(ctx, ch, None)
    if ch is not None or _message_seen(f, "client", 1):
        return _unanswered(ctx, ch)
    return _without_hellos(ctx)


def _message_seen(f: ConnFacts, role: str, msg_type: int) -> bool:
    """The capture holds (part of) a handshake message of ``msg_type`` from ``role``."""
    direction = f.client_dir if role == "client" else f.server_dir
    return any(m.direction == direction and m.msg_type == msg_type for m in f.messages)


def _server_answered_in_tls(f: ConnFacts) -> bool:
    """The server answered in TLS, though its ServerHello is not readable: a ServerHello the
    capture cut, the server's messages read after a gap that took it, or a client that went on
    with the handshake (it sends nothing past its hello before a ServerHello)."""
    server, client = f.server_dir, f.client_dir
    if any(m.direction == server and m.msg_type != 0 for m in f.messages):
        return True
    if f.server.certificates or f.client.ccs_frame is not None:
        return True
    return any(m.direction == client and m.msg_type not in (0, 1) for m in f.messages)


# ---- neither hello ----------------------------------------------------------------------
def _without_hellos(ctx: Context) -> Verdict:
    """No hello of either side is in the capture: judge by what each side still shows."""
    f = ctx.f
    c, sv = f.client, f.server
    frame, absent = hello_line(f, None)
    if f.role_from == "first_packet" and not (_uses_session(c) and _uses_session(sv)):
        v = Verdict(INCOMPLETE, "unknown")
        v.add(frame, absent)
        v.add(
            f.first_frame,
            "which side is the client cannot be told: the capture holds neither the TCP "
            "handshake nor a message only one side sends",
        )
        return v
    if (c.ccs_frame is not None or sv.ccs_frame is not None) and seen(c) and seen(sv):
        # A handshake caught after its hellos: the records after them still tell how it went.
        return after_server_hello(ctx, None, None)
    if _uses_session(c) and _uses_session(sv):
        v = Verdict(ESTABLISHED)
        v.add(None, "the capture starts after the handshake; TLS records flow both ways")
        return v
    for role, side in (("client", c), ("server", sv)):
        if _uses_session(side) and not first_fatal([a for a in f.alerts if a.sender == role]):
            v = Verdict(ESTABLISHED)
            v.add(frame, absent)
            v.add(
                side.first_application_frame,
                f"the {role} sends application data ({side.application_records} records): the "
                "handshake had completed",
            )
            return v
    client_alert = first_fatal([a for a in f.alerts if a.sender == "client"], False)
    server_alert = first_fatal([a for a in f.alerts if a.sender == "server"], False)
    first = _earliest(client_alert, server_alert)
    if first is not None:
        v = Verdict(FAILED)
        v.add(frame, absent)
        v.gave_up = first.sender
        v.add(first.frame, f"the {first.sender} aborted with {describe_alert(first)}")
        if first.sender == "client":
            return _client_alert_alone(v, first)
        if first.description == A_PROTOCOL_VERSION:
            v.cause, v.confidence = "protocol_mismatch", OBSERVED
            v.add(None, "the server names the version as the problem; the offer is not visible")
            return v
        v.cause = "unknown"
        v.add(None, f"{describe_alert(first)} from the server, with the handshake not visible")
        return v
    v = Verdict(INCOMPLETE, "unknown")
    v.add(frame if frame is not None else f.first_frame, absent)
    return v


def _uses_session(side: SideFacts) -> bool:
    """The side sent application data beyond what an alert-sized record holds."""
    return side.application_records > 1 or side.application_bytes > ENCRYPTED_ALERT_MAX


def _earliest(a: Alert | None, b: Alert | None) -> Alert | None:
    if a is None or b is None:
        return a or b
    return a if a.frame <= b.frame else b


def _client_alert_alone(v: Verdict, alert: Alert) -> Verdict:
    """The client's fatal alert is the only word on the certificate or parameters: name the
    cause when the alert does, else say what it allows (``unknown`` with the candidates)."""
    cause = client_alert_cause(alert)
    if cause is not None:
        v.cause, v.confidence = cause.code, cause.confidence
        v.add(None, cause.text)
        if cause.must_act:
            v.must_act = cause.must_act
        for code in cause.also:
            v.secondary.append(Finding(code, alert.frame, "possible cause (see the evidence)"))
        return v
    v.cause = "unknown"
    v.add(
        None,
        f"{describe_alert(alert)} from the client, and what it rejected is not in the capture",
    )
    return v


# ---- a ClientHello without an answer ----------------------------------------------------
def _unanswered(ctx: Context, ch: ClientHello | None) -> Verdict:
    """The ClientHello got no ServerHello the capture can read."""
    f = ctx.f
    server = f.server
    v = Verdict(FAILED)
    frame, line = hello_line(f, ch)
    v.add(frame, line)
    if not seen(server):
        return _client_side_only(ctx, v, ch)
    if server.gap_frames and not server.is_tls:
        return _answer_lost(ctx, v, server.gap_frames[0])
    if not server.is_tls and is_malformed_record(server.preamble):
        v.cause, v.gave_up, v.confidence = "unknown", "server", OBSERVED
        v.add(
            first_server_frame(ctx),
            "the server answered with a malformed TLS record (header "
            f"{server.preamble[:5].hex()}): a broken TLS stack or a middlebox mangled it",
        )
        return v
    if not server.is_tls and server.preamble:
        v.cause, v.gave_up, v.confidence = "non_tls_peer", "server", PROOF
        v.add(
            first_server_frame(ctx),
            f"the server answered in plain text ({looks_like(server.preamble)}): "
            f"{quote(server.preamble)}",
        )
        return v
    alert = first_fatal([a for a in f.alerts if a.sender == "server"])
    if alert is not None:
        if ch is None:
            v.gave_up = "server"
            v.add(alert.frame, f"the server answered with {describe_alert(alert)}")
            v.cause = "protocol_mismatch" if alert.description == A_PROTOCOL_VERSION else "unknown"
            v.confidence = OBSERVED if v.cause != "unknown" else None
            if v.cause == "unknown":
                v.add(None, "what the ClientHello offered is not in the capture")
            return v
        return _server_alert(ctx, v, ch, alert)
    if server.gap_frames:
        return _answer_lost(ctx, v, server.gap_frames[0])
    stop = close_of(server)
    if stop[0] is not None:
        sent = data_proved(f, "server") or 0
        v.gave_up = "server"
        if stop[1] == "RST" and _injected_reset(ctx, v):
            return v
        v.add(
            stop[0], f"the server closed the connection ({stop[1]}) without a ServerHello or alert"
        )
        if _large_hello(ctx, v, ch, stop[0]):
            return v
        if ch is not None and (_sni_explains(ctx, v, ch) or _version_explains(ctx, v, ch)):
            return v
        if sent > 0:  # it sent bytes the capture does not hold: lost, not silence
            return _answer_lost(ctx, v, server.gap_frames[0] if server.gap_frames else None)
        v.cause = "connection_reset" if stop[1] == "RST" else "no_server_response"
        v.confidence = OBSERVED
        return v
    if _large_hello(ctx, v, ch, None):
        return v
    return _client_waits(ctx, v, ch)


def _injected_reset(ctx: Context, v: Verdict) -> bool:
    """The server side's RST does not fit the server's own packets: with two independent
    signals, or server packets after it, a device on the path sent it (the cause); with one,
    a secondary finding."""
    reset = reset_analysis(ctx.f)
    if reset is None or not (reset.signals or reset.race):
        return False
    if not reset.injected:
        signal = reset.signals[0]
        v.secondary.append(
            Finding("middlebox_reset", signal.frame, "possible (one signal): " + signal.text)
        )
        return False
    v.cause, v.confidence = "middlebox_reset", PROOF if reset.race else OBSERVED
    v.add(reset.rst.frame, "a RST came in the server's name before any answer")
    for signal in (*((reset.race,) if reset.race else ()), *reset.signals):
        v.add(signal.frame, signal.text)
    return True


def _large_hello(ctx: Context, v: Verdict, ch: ClientHello | None, stop: int | None) -> bool:
    """A ClientHello spread over several TCP segments, then a reset, close or silence, while the
    same server answered a smaller one-segment hello in this capture (or the failure sits at
    the segment boundary): the server or a device in front of it fails on large hellos."""
    f = ctx.f
    hello = ch.frame if ch is not None else _hello_message_frame(f)
    if hello is None:
        return False
    segments = hello_segments(f, hello)
    if len(segments) < 2:
        return False
    size = sum(p.length for p in segments)
    smaller = [a for a in ctx.facts.answered_hellos if a[1] == 1 and a[0] + 4 < size]
    first_end = f.client.seq_offset(segments[0]) + segments[0].length
    at_boundary = stop is not None and acked_after(f, "server", stop) == first_end
    if not smaller and not at_boundary:
        v.secondary.append(
            Finding(
                "large_client_hello",
                hello,
                f"possible: the ClientHello took {len(segments)} TCP segments ({size} bytes); a "
                "smaller hello answered by the same server would settle it",
            )
        )
        return False
    v.cause, v.confidence = "large_client_hello", OBSERVED
    v.add(
        hello,
        f"the ClientHello is {size} bytes in {len(segments)} TCP segments (the first in frame "
        f"{segments[0].frame})" + (_big_shares(ch) if ch is not None else ""),
    )
    if smaller:
        hello_size, _, frame = smaller[0]
        v.add(
            frame,
            f"the same server answered a {hello_size + 4}-byte hello that fit one segment: only "
            "the size differs",
        )
    if at_boundary:
        v.add(stop, f"the server gave up right after the first segment ({first_end} bytes)")
    return True


def _big_shares(ch: ClientHello) -> str:
    names = {0x11EC: "X25519MLKEM768", 0x6399: "X25519Kyber768Draft00"}
    big = [names[g] for g in ch.key_share_groups if g in names]
    return f", with a post-quantum key share ({', '.join(big)})" if big else ""


def _path_failure(ctx: Context, ch: ClientHello | None) -> Verdict | None:
    """Failures the packets themselves show, whatever the TLS layer shows: a ClientHello the
    path swallowed, full-size segments lost, a filter's ICMP refusal."""
    f = ctx.f
    if _uses_session(f.client) and _uses_session(f.server):
        return None
    hello = ch.frame if ch is not None else _hello_message_frame(f)
    drop = dropped_hello(f, hello) if hello is not None else None
    if drop is not None:
        return _dropped(ctx, ch, drop)
    hole = mtu_black_hole(f)
    if hole is not None:
        return _black_hole(ctx, ch, hole)
    refused = prohibited(f.icmp)
    if refused is not None:
        v = Verdict(FAILED, "middlebox_reset")
        v.add(*hello_line(f, ch))
        v.confidence, v.gave_up = PROOF, "server"
        v.add(
            refused.frame,
            f"{format_endpoint(refused.router, 0)[:-2]} answered with ICMP "
            f"{icmp_words(refused)}: a filter on the path refused the connection",
        )
        return v
    return None


def _hello_message_frame(f: ConnFacts) -> int | None:
    return next(
        (m.frame for m in f.messages if m.direction == f.client_dir and m.msg_type == 1), None
    )


def _dropped(ctx: Context, ch: ClientHello | None, drop: Drop) -> Verdict:
    f = ctx.f
    v = Verdict(FAILED)
    v.add(*hello_line(f, ch))
    frames = ", ".join(str(p.frame) for p in drop.resent[:5]) + (
        ", ..." if len(drop.resent) > 5 else ""
    )
    v.add(
        drop.hello.frame,
        f"the ClientHello was sent {1 + len(drop.resent)} times (again at frames {frames}) and "
        "never acknowledged, though the TCP handshake had completed: it did not reach the "
        "server",
    )
    client = f.client
    v.gave_up = "client" if client.fin_frame is not None or client.rst_frame is not None else None
    if drop.size <= MIN_MTU_SAFE:
        v.cause, v.confidence = "middlebox_reset", OBSERVED
        v.add(
            None,
            f"a {drop.size}-byte hello crosses any path MTU: a device on the path dropped it "
            "(silent filtering, as SNI filters do)",
        )
        return v
    v.cause, v.confidence = "path_mtu_blackhole", INFERRED
    v.add(
        None,
        f"the hello is {drop.size} bytes: a path that loses full-size packets would drop it",
    )
    v.secondary.append(
        Finding(
            "middlebox_reset",
            drop.hello.frame,
            "also fits: a filter dropping the hello; a small hello to the same server, or the "
            "router's ICMP errors, would settle it",
        )
    )
    return v


def _black_hole(ctx: Context, ch: ClientHello | None, hole: BlackHole) -> Verdict:
    f = ctx.f
    v = Verdict(FAILED, "path_mtu_blackhole")
    v.add(*hello_line(f, ch))
    v.confidence = OBSERVED if hole.passed is not None else INFERRED
    v.add(hole.lost.frame, hole.lost.text)
    if hole.passed is not None:
        v.add(hole.passed.frame, hole.passed.text)
    if hole.icmp is None:
        v.add(None, "no ICMP 'fragmentation needed' for this connection is in the capture")
    else:
        v.add(
            hole.icmp.frame,
            f"an ICMP {icmp_words(hole.icmp)} arrived, and full-size segments went on",
        )
    v.gave_up = "client" if first_stop(f, "client") is not None else None
    return v


def _client_waits(ctx: Context, v: Verdict, ch: ClientHello | None) -> Verdict:
    """No answer and no close from the server: the client gave up, or the capture ended."""
    f = ctx.f
    hello_frame = ch.frame if ch is not None else v.evidence[0].frame
    sent = data_proved(f, "server")
    if sent:
        return _answer_lost(ctx, v, None)
    cstop = close_of(f.client)
    if cstop[0] is not None:
        v.cause, v.gave_up, v.confidence = "no_server_response", "client", OBSERVED
        waited = ctx.time_of(cstop[0]) - ctx.time_of(hello_frame)
        v.add(cstop[0], f"the client gave up ({cstop[1]}) after {waited:.1f} s without an answer")
        return v
    end = ctx.capture_end or f.last_ts
    waited = end - ctx.time_of(hello_frame)
    v.cause, v.confidence = "no_server_response", INFERRED
    if waited < SILENCE_SECONDS:
        v.outcome = INCOMPLETE
    v.add(None, f"no answer in the {waited:.1f} s the capture runs after the ClientHello")
    return v


def _answer_lost(ctx: Context, v: Verdict, gap_frame: int | None) -> Verdict:
    """The server answered, but the capture lost the answer: never silence. The client's own
    reaction may still tell the cause."""
    f = ctx.f
    sent = data_proved(f, "server")
    amount = f"{sent} bytes" if sent else "bytes"
    v.add(
        gap_frame,
        f"the server sent {amount} the capture does not hold (lost on the capture host, as "
        "the client's acknowledgements show): its answer cannot be read",
    )
    return _client_reaction(ctx, v)


def _client_reaction(ctx: Context, v: Verdict) -> Verdict:
    """The server's answer is not readable: what the client did next is the evidence."""
    f = ctx.f
    c = f.client
    alert = first_fatal([a for a in f.alerts if a.sender == "client"], False)
    if alert is not None:
        v.gave_up = "client"
        v.add(alert.frame, f"the client aborted with {describe_alert(alert)}")
        return _client_alert_alone(v, alert)
    sealed = [r for r in f.encrypted_log if r.direction == f.client_dir]
    sealed_cert = bool(sealed) and sealed[0].length in EMPTY_CERTIFICATE_RECORD
    asked = bool(c.certificates) or sealed_cert
    empty = sealed_cert or bool(c.certificates and not c.certificates[0].chain)
    if asked:
        v.secondary.append(
            Finding(
                "client_certificate_required",
                c.certificates[0].frame if c.certificates else sealed[0].frame,
                "possible: the server asked for a client certificate (the client's flight "
                "carries a Certificate message)",
            )
        )
    flight_end = c.finished_frame or (sealed[0].frame if sealed else None)
    answer = ack_growth(f, "client", flight_end) if flight_end is not None else None
    if (
        empty
        and c.ccs_frame is not None
        and answer is not None
        and answer[0] <= ENCRYPTED_ALERT_MAX + FIN
        and not c.application_records - (1 if sealed_cert else 0) > 1
        and (first_stop(f, "client") is not None or f.idle)
    ):
        v.secondary = [x for x in v.secondary if x.code != "client_certificate_required"]
        v.cause, v.gave_up, v.confidence = "client_certificate_required", "server", INFERRED
        v.add(
            c.certificates[0].frame if c.certificates else sealed[0].frame,
            "the client sent an empty Certificate message: the server had asked for one",
        )
        v.add(
            answer[1],
            f"the server answered the client's flight with {answer[0]} byte(s) (an alert's "
            "worth, as the client's acknowledgements show) and the connection ended",
        )
        return v
    if sealed and sealed[0].length <= ALERT_SIZED:
        v.cause, v.gave_up = "unknown", "client"
        v.add(
            sealed[0].frame,
            f"the client's first encrypted record is {sealed[0].length} bytes: an encrypted "
            "alert, not a Finished; it rejected the server's answer, which is not readable",
        )
        return v
    # Its Finished comes first (after an encrypted Certificate, when it sent one), then data.
    data = [r for r in sealed[2 if sealed_cert else 1 :] if r.length > ALERT_SIZED]
    if data:
        after = ack_growth(f, "client", data[0].frame)
        if empty:
            v.outcome, v.cause = INCOMPLETE, "unknown"
            v.add(
                data[0].frame,
                "the client sent an empty Certificate and then data; whether the server "
                "accepted the session without a client certificate is not in the capture",
            )
            return v
        if after is not None and after[0] > ENCRYPTED_ALERT_MAX + FIN:
            verdict = Verdict(ESTABLISHED)
            verdict.evidence = v.evidence[:1]
            verdict.add(
                data[0].frame,
                "the client finished the handshake and sends application data, and the server "
                f"answered it ({after[0]} bytes acknowledged by the client)",
            )
            return verdict
        if after is not None:
            v.cause, v.gave_up = "unknown", "server"
            v.add(
                data[0].frame,
                "the client finished the handshake and sent data; the server answered with at "
                f"most an alert's worth ({after[0]} bytes) and the connection ended: the server "
                "turned the client away, for a reason its packets would show",
            )
            return v
    stop = first_stop(f, "client")
    if stop is not None:
        v.cause, v.gave_up = "unknown", "client"
        v.add(
            stop.frame,
            f"the client then closed ({stop.kind}) without an alert: it rejected the answer, "
            "whose content is not in the capture",
        )
        return v
    v.outcome, v.cause = INCOMPLETE, "unknown"
    return v


def _client_side_only(ctx: Context, v: Verdict, ch: ClientHello | None) -> Verdict:
    """Only the client's packets are in the capture: its ACKs prove what the server sent."""
    f = ctx.f
    v.add(
        None,
        "the capture holds no packet from the server (a one-sided capture); the client's "
        "packets and acknowledgements still show what the server did",
    )
    sent = acked_by(f, "client")
    if sent is not None and sent > FIN:
        v.add(
            f.client.acked_frame,
            f"the client acknowledged {sent - FIN if f.client.fin_frame else sent} bytes from the "
            "server: the server answered",
        )
        return _client_reaction(ctx, v)
    alert = first_fatal([a for a in f.alerts if a.sender == "client"], False)
    if alert is not None:  # an alert without server bytes acknowledged: still the client's word
        v.gave_up = "client"
        v.add(alert.frame, f"the client aborted with {describe_alert(alert)}")
        return _client_alert_alone(v, alert)
    if sent is None:
        v.outcome, v.cause = INCOMPLETE, "unknown"
        v.add(
            None,
            "the client's packets do not show the start of the server's stream (no TCP "
            "handshake in the capture): whether the server answered cannot be told",
        )
        return v
    cstop = close_of(f.client)
    if cstop[0] is not None and cstop[1] == "FIN":
        hello_frame = ch.frame if ch is not None else v.evidence[0].frame
        waited = ctx.time_of(cstop[0]) - ctx.time_of(hello_frame)
        v.cause, v.gave_up, v.confidence = "no_server_response", "client", OBSERVED
        v.add(
            cstop[0],
            f"the client's acknowledgements show no byte from the server, and it gave up (FIN) "
            f"after {waited:.1f} s",
        )
        return v
    v.outcome, v.cause = INCOMPLETE, "unknown"
    v.add(
        cstop[0],
        "the client's acknowledgements show no byte from the server; a reset from the server "
        "would not show in the client's packets, so silence and a reset cannot be told apart",
    )
    v.secondary.append(Finding("no_server_response", None, "possible cause (see the evidence)"))
    v.secondary.append(Finding("connection_reset", None, "possible cause (see the evidence)"))
    return v


def _server_alert(ctx: Context, v: Verdict, ch: ClientHello, alert: Alert) -> Verdict:
    """The server refused the ClientHello with an alert."""
    v.gave_up = "server"
    v.add(alert.frame, f"the server answered with {describe_alert(alert)}")
    d = alert.description
    v.confidence = OBSERVED
    if d == A_PROTOCOL_VERSION:
        v.cause, v.confidence = "protocol_mismatch", PROOF
        _version_explains(ctx, v, ch)
        _who_is_old(ctx, v, ch)
        return v
    if _version_explains(ctx, v, ch):
        return v
    if d == A_UNRECOGNIZED_NAME and ch.sni:
        v.cause, v.confidence = "unrecognized_name", PROOF
        v.add(ch.frame, f"the client asked for {ch.sni!r}, a name the server does not serve")
        return v
    if d == A_NO_APPLICATION_PROTOCOL:
        v.cause, v.confidence = "alpn_mismatch", PROOF
        v.add(ch.frame, alpn_offer_text(ch))
        return v
    if _cipher_explains(ctx, v, ch, alert):
        return v
    if _sni_explains(ctx, v, ch, alert):
        return v
    if d in (A_HANDSHAKE_FAILURE, A_INSUFFICIENT_SECURITY) and ch.sni:
        if _old_versions_likelier(ctx, v, ch):
            return v
        v.cause, v.confidence = "cipher_mismatch", INFERRED
        v.add(
            ch.frame,
            f"the ClientHello carries server_name {ch.sni!r}, so SNI is not the issue; the "
            f"server found none of the {len(real_suites(ch))} offered suites acceptable",
        )
        _weak_offer(v, ch)
        return v
    v.cause, v.confidence = "unknown", None
    v.add(None, f"{describe_alert(alert)} to a ClientHello alone does not single out a cause")
    return v


MAINSTREAM_MARKERS = ("AES", "CHACHA20")


def _old_versions_likelier(ctx: Context, v: Verdict, ch: ClientHello) -> bool:
    """A bare handshake_failure to a hello offering mainstream suites but only versions below
    TLS 1.2: both a version and a cipher mismatch fit; the version is likelier."""
    top = max(offered_versions(ch))
    if top >= TLS12 or ctx.opts.server_ciphers or ctx.opts.server_protocols:
        return False
    names = [cipher_name(c) for c in real_suites(ch)]
    mainstream = [n for n in names if any(m in n for m in MAINSTREAM_MARKERS)]
    if not mainstream:
        return False
    v.cause, v.confidence = "protocol_mismatch", INFERRED
    v.add(
        ch.frame,
        f"the client offers only {vname(top)} and older, which current servers refuse, with "
        f"mainstream suites ({', '.join(mainstream[:3])}) that servers still accept: the "
        "version is the likelier reason for the bare handshake_failure",
    )
    v.secondary.append(
        Finding(
            "cipher_mismatch",
            ch.frame,
            "also fits a bare handshake_failure; --server-protocols (or a capture of a client "
            "that succeeds with this server) would settle it",
        )
    )
    v.must_act = "client"
    v.fix = (
        "Make the client offer TLS 1.2 or later (update it or its configuration), or, if the "
        "server really must serve this client, allow its version on the server."
    )
    return True


def _sni_explains(ctx: Context, v: Verdict, ch: ClientHello, alert: Alert | None = None) -> bool:
    """No server_name, and the server turns the client away: SNI is the first suspect."""
    if ch.sni is not None or ch.truncated:
        return False
    facts = ctx.facts
    d = alert.description if alert else None
    if facts.answered_sni:
        name, frame = next(iter(facts.answered_sni.items()))
        v.cause, v.confidence = "sni_missing", OBSERVED
        v.add(frame, f"the same server answered a ClientHello with server_name {name!r}")
        return True
    if d in (A_UNRECOGNIZED_NAME, A_HANDSHAKE_FAILURE, A_INTERNAL_ERROR, None):
        if facts.answered_without_sni is not None:
            return False
        v.cause, v.confidence = "sni_missing", INFERRED
        if d is None:
            v.add(
                None,
                "no other explanation is visible; servers that need SNI often just "
                "close or reset on a hello without it (an inference: check the server)",
            )
        if d == A_HANDSHAKE_FAILURE:
            v.add(
                None,
                "a bare handshake_failure to a hello without SNI is ambiguous: it can "
                "also mean no shared cipher suite; SNI is checked first",
            )
        if d == A_UNRECOGNIZED_NAME:
            v.confidence = PROOF
        if d == A_HANDSHAKE_FAILURE and not ctx.opts.server_ciphers:
            v.secondary.append(
                Finding(
                    "cipher_mismatch",
                    None,
                    "not excluded: the server's "
                    "cipher list is unknown (--server-ciphers would tell)",
                )
            )
        return True
    return False


def _version_explains(ctx: Context, v: Verdict, ch: ClientHello) -> bool:
    """The server speaks only versions this client does not offer."""
    if ch.truncated and not ch.supported_versions:
        return False
    offered = offered_versions(ch)
    known = set(ctx.facts.versions)
    source = "chose for other clients in this capture"
    if ctx.opts.server_protocols:
        known, source = set(ctx.opts.server_protocols), "accepts (as configured)"
    if not known:
        return False
    legacy_only = not [x for x in ch.supported_versions if not is_grease(x)]
    if legacy_only:
        shared = any(k <= ch.legacy_version for k in known) and min(known) >= 0x0300
        shared = shared and not max(known) < ch.legacy_version
    else:
        shared = bool(known & set(offered))
    if shared:
        return False
    v.cause = "protocol_mismatch"
    if v.confidence != PROOF:
        v.confidence = OBSERVED
    names = ", ".join(vname(k) for k in sorted(known))
    frame = min(ctx.facts.versions.values()) if ctx.facts.versions else None
    v.add(frame, f"the server speaks {names} (what it {source})")
    _who_is_old(ctx, v, ch)
    return True


def _who_is_old(ctx: Context, v: Verdict, ch: ClientHello) -> None:
    known = set(ctx.opts.server_protocols or ()) | set(ctx.facts.versions)
    if known and max(offered_versions(ch)) < min(known):
        v.must_act = "client"
        v.fix = (
            "Upgrade the client (or its configuration) to offer the TLS versions the "
            "server requires."
        )


def _cipher_explains(ctx: Context, v: Verdict, ch: ClientHello, alert: Alert | None = None) -> bool:
    """The offered suites against the server's: configured (proof) or chosen for others."""
    if ch.truncated and not ch.cipher_suites:
        return False
    offered = set(real_suites(ch))
    configured = set(ctx.opts.server_ciphers or ())
    if configured:
        if offered & configured:
            return False
        v.cause, v.confidence = "cipher_mismatch", PROOF
        v.add(
            ch.frame,
            f"none of the {len(offered)} offered suites is in the server's configured list "
            f"({len(configured)} suites)",
        )
        _weak_offer(v, ch)
        return True
    chosen = ctx.facts.ciphers
    d = alert.description if alert else None
    if (
        not chosen
        or offered & set(chosen)
        or d not in (A_HANDSHAKE_FAILURE, A_INSUFFICIENT_SECURITY)
    ):
        return False
    if ch.sni is None and not ctx.facts.answered_without_sni:
        return False  # SNI first: a missing server_name explains the same alert
    v.cause, v.confidence = "cipher_mismatch", OBSERVED
    names = ", ".join(cipher_name(c) for c in list(chosen)[:4])
    v.add(
        min(chosen.values()),
        f"the same server chose {names} for other clients; this client offers none of them",
    )
    _weak_offer(v, ch)
    return True


def _weak_offer(v: Verdict, ch: ClientHello) -> None:
    suites = real_suites(ch)
    props = [cipher_properties(c) for c in suites]
    if suites and all(p is not None and p.is_weak for p in props):
        v.secondary.append(
            Finding(
                "weak_cipher_offer",
                ch.frame,
                "the client offers only weak "
                "or legacy suites: " + ", ".join(cipher_name(c) for c in suites[:6]),
            )
        )


__all__ = ["walk"]
