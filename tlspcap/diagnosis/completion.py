"""The rules after the ServerHello: certificates, completion, TLS 1.3 sizes, closes."""

from __future__ import annotations

from dataclasses import dataclass

from tlspcap.certs import capture_datetime
from tlspcap.diagnosis.certcheck import CertFinding, TrustStore, check_chain
from tlspcap.diagnosis.context import (
    A_BAD_CERT,
    A_CERT_REQUIRED,
    A_PROTOCOL_VERSION,
    A_UNKNOWN_CA,
    A_UNRECOGNIZED_NAME,
    ALERT_ONLY_CAUSES,
    ALERT_TO_CERT_CAUSE,
    CERT_PRIORITY,
    CLOSE_AT_ONCE_SECONDS,
    Context,
    cert_frame,
    close_of,
    describe_alert,
    first_alert_frame,
    first_fatal,
    hello_text,
    offered_versions,
    vname,
)
from tlspcap.diagnosis.model import ESTABLISHED, FAILED, INCOMPLETE, Finding, Verdict
from tlspcap.diagnosis.tls13 import (
    ALERT_SIZED,
    EMPTY_CERTIFICATE_RECORD,
    Tls13View,
    finished_record_size,
    tls13_view,
)
from tlspcap.facts.model import ConnFacts
from tlspcap.session import is_tls13
from tlspcap.tls.messages import Alert, ClientHello, ServerHello
from tlspcap.tls.registry import cipher_name


# ---- after the ServerHello --------------------------------------------------------------
def after_server_hello(ctx: Context, ch: ClientHello, sh: ServerHello) -> Verdict:
    """The verdict of a connection whose ClientHello got a ServerHello."""
    s = ctx.f
    tls13 = is_tls13(sh.version)
    findings = _certificate_findings(ctx, ch)
    v = _completion(ctx, ch, sh, tls13, findings)
    shown = {v.cause}
    for f in findings:
        if f.code not in shown:
            v.secondary.append(Finding(f.code, cert_frame(s), f.text))
            shown.add(f.code)
    if (
        tls13
        and not s.server.certificates
        and v.outcome != ESTABLISHED
        and not any("--keylog" in e.text for e in v.evidence)
    ):
        v.add(
            None,
            "TLS 1.3: the certificate and most alerts are encrypted; run again with "
            "--keylog to check them",
        )
    return v


def _certificate_findings(ctx: Context, ch: ClientHello) -> list[CertFinding]:
    s = ctx.f
    if not s.server.certificates or not s.server.certificates[0].chain:
        return []
    msg = s.server.certificates[0]
    at = capture_datetime(ctx.time_of(msg.frame))
    host = ch.sni or ctx.opts.host
    trust = ctx.opts.trust or TrustStore([])
    return check_chain(msg.chain, at, host, trust, ctx.know.certificates)


def _blame_certificate(v: Verdict, s: ConnFacts, findings: list[CertFinding]) -> Verdict:
    """The client gave up after seeing the certificate: its worst finding is the cause."""
    cert = _cert_cause(findings, None)
    v.cause = cert.code if cert else "unknown"
    if cert:
        v.add(cert_frame(s), cert.text)
    return v


def _cert_cause(findings: list[CertFinding], alert: Alert | None) -> CertFinding | None:
    codes = {f.code: f for f in findings}
    if alert is not None and alert.description in ALERT_TO_CERT_CAUSE:
        for code in ALERT_TO_CERT_CAUSE[alert.description]:
            if code in codes:
                return codes[code]
    for code in CERT_PRIORITY:
        if code in codes:
            return codes[code]
    return None


def _completion(
    ctx: Context, ch: ClientHello, sh: ServerHello, tls13: bool, findings: list[CertFinding]
) -> Verdict:
    s = ctx.f
    view = tls13_view(s) if tls13 else None
    done = _handshake_done(ctx, sh, view)
    # After the handshake, an encrypted alert is as likely a close_notify as a fatal alert:
    # it is judged as a close (by its timing), not as a rejection.
    alerts = s.alerts
    client_alert = first_fatal([a for a in alerts if a.sender == "client"], not done)
    server_alert = first_fatal([a for a in alerts if a.sender == "server"], not done)
    v = Verdict(FAILED)
    v.add(ch.frame, hello_text(ch))
    v.add(sh.frame, f"the server chose {vname(sh.version)} with {cipher_name(sh.cipher_suite)}")
    gaps = s.server.gap_frames + s.client.gap_frames
    if gaps and not done:
        v.outcome, v.cause = INCOMPLETE, "unknown"
        v.add(
            min(gaps),
            "the capture lacks part of the handshake (a gap in the TCP stream): "
            "what followed cannot be read",
        )
        return v
    first = _earliest(client_alert, server_alert)
    if first is not None and first is client_alert:
        return _client_rejects(ctx, v, ch, sh, first, findings)
    if first is not None and first is server_alert:
        return _server_rejects(ctx, v, ch, first)
    if view is not None:
        return _tls13_completion(ctx, v, ch, sh, findings, view)
    return _outcome(ctx, v, ch, done, findings, _usage12(s))


def _handshake_done(ctx: Context, sh: ServerHello, view: Tls13View | None) -> bool:
    """Both sides finished the handshake (as far as the capture shows without keys).

    ``view`` is the connection's :func:`tls13_view` when TLS 1.3 was negotiated, else None.
    """
    s = ctx.f
    c, sv = s.client, s.server
    if view is not None:
        return view.finished
    if sh.sslv2:  # SSLv2: no Finished to see in the clear
        return c.application_records > 0 and sv.application_records > 0
    return c.encrypted_handshake_records > 0 and sv.encrypted_handshake_records > 0


def _earliest(a: Alert | None, b: Alert | None) -> Alert | None:
    if a is None or b is None:
        return a or b
    return a if a.frame <= b.frame else b


def _client_rejects(
    ctx: Context,
    v: Verdict,
    ch: ClientHello,
    sh: ServerHello,
    alert: Alert,
    findings: list[CertFinding],
) -> Verdict:
    v.gave_up = "client"
    v.add(alert.frame, f"the client aborted with {describe_alert(alert)}")
    if alert.description == A_PROTOCOL_VERSION:
        v.cause, v.must_act = "protocol_mismatch", "server"
        v.add(
            sh.frame,
            f"{vname(sh.version)} is not among the client's versions "
            f"({', '.join(vname(o) for o in offered_versions(ch))})",
        )
        return v
    if sh.cipher_suite not in ch.cipher_suites and not ch.sslv2:
        v.cause, v.must_act = "cipher_mismatch", "server"
        v.add(sh.frame, "the server chose a cipher suite the client did not offer")
        return v
    cert = _cert_cause(findings, alert)
    if cert is not None:
        v.cause = cert.code
        v.add(cert_frame(ctx.f), cert.text)
        return v
    if not ctx.f.server.certificates and alert.description in ALERT_ONLY_CAUSES:
        v.cause, note = ALERT_ONLY_CAUSES[alert.description]
        v.add(
            None,
            f"the certificate is not visible (encrypted): the cause is taken from the "
            f"alert alone{note}; --keylog would let tlspcap check the certificate itself",
        )
        return v
    if alert.description == A_UNKNOWN_CA and not ctx.f.server.certificates:
        v.cause = "unknown"
        v.add(
            None,
            "unknown_ca: the client could not build a path to a root it trusts, from "
            "an untrusted root or from an intermediate missing in the chain; the chain is "
            "encrypted: run again with --keylog to tell which",
        )
        for code in ("incomplete_chain", "unknown_ca"):
            v.secondary.append(Finding(code, alert.frame, "possible cause (see the evidence)"))
        return v
    if alert.description == A_UNKNOWN_CA:
        v.cause = "unknown_ca"
        v.add(
            cert_frame(ctx.f),
            "the client does not trust the server's CA (its trust store "
            "differs from the one tlspcap checked against)",
        )
        return v
    if alert.description == A_BAD_CERT and not ctx.f.server.certificates:
        v.add(
            None,
            "bad_certificate is what OpenSSL-based clients send for a hostname "
            "mismatch, a not-yet-valid certificate or a weak key; the certificate is "
            "encrypted, run again with --keylog to tell which",
        )
        v.cause = "unknown"
        return v
    v.cause = "unknown"
    v.add(None, f"{describe_alert(alert)} from the client with no certificate problem visible")
    return v


def _server_rejects(ctx: Context, v: Verdict, ch: ClientHello, alert: Alert) -> Verdict:
    s = ctx.f
    v.gave_up = "server"
    v.add(alert.frame, f"the server aborted with {describe_alert(alert)}")
    req = s.certificate_request
    if req is not None:
        v.add(req.frame, "the server asked for a client certificate (CertificateRequest)")
        v.cause = "client_certificate_required"
        certs = s.client.certificates
        if not certs or not certs[0].chain:
            frame = certs[0].frame if certs else None
            v.add(
                frame,
                "the client sent no certificate"
                if frame is None
                else "the client sent an empty Certificate message",
            )
        else:
            v.add(
                certs[0].frame,
                f"the client sent {len(certs[0].chain)} certificate(s), which "
                "the server did not accept",
            )
        return v
    if alert.description == A_CERT_REQUIRED:
        v.cause = "client_certificate_required"
        v.add(alert.frame, "certificate_required: the server wanted a client certificate")
        return v
    v.cause = "unknown"
    v.add(None, f"{describe_alert(alert)} from the server after its ServerHello")
    return v


def _tls13_completion(
    ctx: Context,
    v: Verdict,
    ch: ClientHello,
    sh: ServerHello,
    findings: list[CertFinding],
    view: Tls13View,
) -> Verdict:
    s = ctx.f
    rejected = view.client_rejected
    if rejected is not None:
        v.gave_up = "client"
        v.add(
            rejected.frame,
            f"the client's first encrypted record is {rejected.length} bytes: an encrypted "
            "alert, not a Finished; the client rejected the server's certificate or parameters",
        )
        return _blame_certificate(v, s, findings)
    fin_size = finished_record_size(sh.cipher_suite)
    flight = view.client_flight
    handshake_records = 1
    empty: bool | None = None
    if view.finished and view.client_sent_certificate(fin_size):
        empty = flight[0].length in EMPTY_CERTIFICATE_RECORD
        sizes = [r.length for r in flight]
        handshake_records = sizes.index(fin_size) + 1 if fin_size in sizes else len(flight)
        v.add(
            flight[0].frame,
            f"the client's first encrypted record ({flight[0].length} bytes) is not a Finished: "
            "it carries a Certificate"
            + (" that is empty" if empty else "")
            + ", so the server asked for one",
        )
        server_after = [r for r in view.after if r.direction == s.server_dir]
        if server_after and server_after[0].length <= ALERT_SIZED:
            v.cause, v.gave_up = "client_certificate_required", "server"
            v.add(
                server_after[0].frame,
                f"the server answered with a {server_after[0].length}-byte encrypted record (an "
                "alert, not a session ticket) and closed",
            )
            return v
    # Alert-sized records (a close_notify, most likely) are not counted as data.
    client_records = [
        r
        for r in (flight + view.after)[handshake_records:]
        if r.direction == s.client_dir and r.length > ALERT_SIZED
    ]
    server_records = [r for r in view.after if r.direction == s.server_dir]
    use = Usage(
        len(client_records),
        len(server_records),
        client_records[0].frame if client_records else None,
        empty,
        flight[0].frame if empty else None,
    )
    return _outcome(ctx, v, ch, view.finished, findings, use)


@dataclass(frozen=True, slots=True)
class Usage:
    """Application data each side sent after the handshake."""

    client_records: int
    server_records: int
    client_first_frame: int | None
    empty_client_certificate: bool | None = None
    """TLS 1.3 without keys: the client's Certificate was empty (None: unknown or none sent)."""
    certificate_frame: int | None = None
    """TLS 1.3 without keys: frame of the client's encrypted Certificate."""


def _usage12(s: ConnFacts) -> Usage:
    c, sv = s.client, s.server
    return Usage(c.application_records, sv.application_records, c.first_application_frame)


def _outcome(
    ctx: Context,
    v: Verdict,
    ch: ClientHello,
    done: bool,
    findings: list[CertFinding],
    use: Usage,
) -> Verdict:
    """The handshake is over or stalled with no fatal alert: judge by data, closes and resets."""
    s = ctx.f
    c, sv = s.client, s.server
    alerts = s.alerts
    client_close = close_of(c, first_alert_frame(alerts, "client"))
    server_close = close_of(sv, first_alert_frame(alerts, "server"))
    server_first = server_close[0] is not None and (
        client_close[0] is None or server_close[0] < client_close[0]
    )
    empty_cert = use.empty_client_certificate
    if s.certificate_request is not None:
        empty_cert = not c.certificates or not c.certificates[0].chain
    turned_away = (
        server_first
        and use.client_records <= 1
        and ctx.time_of(server_close[0]) - ctx.time_of(use.client_first_frame or server_close[0])
        <= CLOSE_AT_ONCE_SECONDS
    )
    if done and empty_cert and turned_away:
        v.cause, v.gave_up = "client_certificate_required", "server"
        if s.certificate_request is not None:
            v.add(s.certificate_request.frame, "the server asked for a client certificate")
        v.add(
            c.certificates[0].frame if c.certificates else use.certificate_frame,
            "the client sent none (an empty Certificate message)",
        )
        v.add(
            server_close[0],
            "the server closed first, right after answering the client "
            "(nginx answers HTTP 400 over the completed handshake in this case)",
        )
        return v
    if done and use.client_records and use.server_records:
        v.outcome, v.cause = ESTABLISHED, None
        v.evidence = v.evidence[:2]
        v.add(use.client_first_frame, "the client sent application data")
        return v
    if done and not use.client_records and _closes_at_once(ctx, client_close[0]):
        v.gave_up = "client"
        v.add(
            client_close[0],
            f"the client completed the handshake and closed ({client_close[1]}) "
            "without sending data",
        )
        return _blame_certificate(v, s, findings)
    for side_name, (frame, how) in (("server", server_close), ("client", client_close)):
        if how == "RST" and frame is not None and not done:
            v.cause, v.gave_up = "connection_reset", side_name
            v.add(
                frame,
                f"the {side_name} reset the connection during the handshake, without an alert",
            )
            return v
    if done:
        v.outcome, v.cause = ESTABLISHED, None
        v.evidence = v.evidence[:2]
        v.add(None, "the handshake completed with no sign of rejection")
        return v
    if sv.gap_frames or c.gap_frames:
        v.outcome, v.cause = INCOMPLETE, "unknown"
        v.add((sv.gap_frames + c.gap_frames)[0], "the capture lacks part of the handshake")
        return v
    warned = [
        a
        for a in alerts
        if a.sender == "server" and a.level == 1 and a.description == A_UNRECOGNIZED_NAME
    ]
    if warned and client_close[0] is not None and not done:
        v.cause, v.gave_up, v.must_act = "unrecognized_name", "client", "server"
        v.add(warned[0].frame, "the server sent a warning unrecognized_name alert")
        v.add(
            client_close[0],
            "the client closed at once: some clients (Java among them) treat that warning as fatal",
        )
        v.fix = (
            "Configure the server with a certificate/virtual host for the requested name "
            "(so it stops sending unrecognized_name), or relax the client."
        )
        return v
    for side_name, (frame, how) in (("client", client_close), ("server", server_close)):
        if frame is not None:
            v.gave_up = side_name
            v.add(frame, f"the {side_name} closed ({how}) before the handshake completed")
            if side_name == "client":
                return _blame_certificate(v, s, findings)
            v.cause = "unknown"
            return v
    v.outcome, v.cause = INCOMPLETE, "unknown"
    v.add(None, "the capture ends before the handshake completed")
    return v


def _closes_at_once(ctx: Context, frame: int | None) -> bool:
    """The client closed within CLOSE_AT_ONCE_SECONDS of the server's last handshake record."""
    if frame is None:
        return False
    s = ctx.f
    done_frame = s.server.last_frame or ctx.f.first_frame
    return ctx.time_of(frame) - ctx.time_of(done_frame) <= CLOSE_AT_ONCE_SECONDS
