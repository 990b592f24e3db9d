"""The rules after the server answered: certificates, completion, TLS 1.3 sizes, closes.

The ClientHello may be missing (a capture that starts late, or holds the server's side only)
and so may the ServerHello (cut by the snap length, or lost in a gap with what followed it
still read). Each rule uses what is there; the first side to give up, in capture order, is the
one that rejected, and the reason is looked for in what the other side had just sent.
"""

from __future__ import annotations

from dataclasses import dataclass

from tlspcap.certs import capture_datetime
from tlspcap.diagnosis import policy
from tlspcap.diagnosis.alerts import client_alert_cause
from tlspcap.diagnosis.certcheck import CertFinding, TrustStore, check_chain
from tlspcap.diagnosis.context import (
    A_BAD_CERT,
    A_CERT_REQUIRED,
    A_NO_APPLICATION_PROTOCOL,
    A_PROTOCOL_VERSION,
    A_UNKNOWN_CA,
    A_UNRECOGNIZED_NAME,
    ALERT_ONLY_CAUSES,
    ALERT_TO_CERT_CAUSE,
    CERT_PRIORITY,
    CLOSE_AT_ONCE_SECONDS,
    LATE_CAUSES,
    POLICY_CAUSES,
    Context,
    alpn_offer_text,
    cert_frame,
    close_of,
    describe_alert,
    first_alert_frame,
    first_fatal,
    offered_versions,
    vname,
)
from tlspcap.diagnosis.inspection import TRUST_STORES
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
from tlspcap.diagnosis.policy import ALERT_FIT, interception
from tlspcap.diagnosis.sides import (
    ALERT_RECORD,
    ENCRYPTED_ALERT_MAX,
    FIN,
    ack_growth,
    first_stop,
    hello_line,
    records_lost,
    seen,
    starts_late,
)
from tlspcap.diagnosis.tls13 import (
    ALERT_SIZED,
    EMPTY_CERTIFICATE_RECORD,
    Tls13View,
    finished_record_sizes,
    tls13_view,
)
from tlspcap.facts.model import ConnFacts
from tlspcap.session import is_tls13
from tlspcap.tls.messages import Alert, ClientHello, ServerHello
from tlspcap.tls.records import CT_APPLICATION_DATA, CT_HANDSHAKE
from tlspcap.tls.registry import cipher_name

CCS_RECORD = 6
"""A ChangeCipherSpec record on the wire (TLS 1.3 clients send one before their flight)."""


# ---- after the server's answer ------------------------------------------------------------
def after_server_hello(ctx: Context, ch: ClientHello | None, sh: ServerHello | None) -> Verdict:
    """The verdict of a connection whose server answered in TLS (``sh`` None: its ServerHello
    is not readable, what followed is)."""
    f = ctx.f
    tls13 = is_tls13(sh.version) if sh is not None else _tls13_by_records(f)
    findings = _certificate_findings(ctx, ch) + _policy_findings(ctx, ch, sh)
    v = _completion(ctx, ch, sh, tls13, findings)
    if v.cause == "tls_interception":
        _interception_fix(ctx, v)
    shown = {v.cause, "alpn_mismatch"}  # (no ALPN chosen is common and harmless on its own)
    if v.cause == "hostname_mismatch":
        shown.add("cn_only_certificate")
    if v.cause == "weak_certificate":
        shown.update(("weak_key", "weak_signature"))
    for finding in findings:
        if finding.code not in shown:
            text = finding.text
            if finding.code in POLICY_CAUSES + LATE_CAUSES and v.outcome != FAILED:
                text = "not what failed here, but a client that checks it would refuse: " + text
            v.secondary.append(Finding(finding.code, finding.frame or cert_frame(f), text))
            shown.add(finding.code)
    if (
        tls13
        and not f.server.certificates
        and v.outcome != ESTABLISHED
        and not any("--keylog" in e.text for e in v.evidence)
    ):
        v.add(
            None,
            "TLS 1.3: the certificate and most alerts are encrypted; run again with "
            "--keylog to check them",
        )
    return v


def _tls13_by_records(f: ConnFacts) -> bool:
    """Without a readable ServerHello: TLS 1.3 when the server's handshake after its hello
    travels in application_data records (TLS 1.2 sends Certificate and the rest in the clear)."""
    server = f.server_dir
    if any(m.direction == server and m.msg_type in (11, 12, 14) for m in f.messages):
        return False
    if any(r.content_type == CT_HANDSHAKE for r in f.encrypted_log):
        return False  # an encrypted Finished in a handshake record: TLS 1.2 or older
    return any(
        r.direction == server and r.content_type == CT_APPLICATION_DATA for r in f.encrypted_log
    )


def _certificate_findings(ctx: Context, ch: ClientHello | None) -> list[CertFinding]:
    f = ctx.f
    if not f.server.certificates or not f.server.certificates[0].chain:
        return []
    msg = f.server.certificates[0]
    at = capture_datetime(ctx.time_of(msg.frame))
    host = (ch.sni if ch is not None else None) or ctx.opts.host
    trust = ctx.opts.trust or TrustStore([])
    return check_chain(
        msg.chain, at, host, trust, ctx.know.certificates, complete=not msg.truncated
    )


def _policy_findings(
    ctx: Context, ch: ClientHello | None, sh: ServerHello | None
) -> list[CertFinding]:
    """The facts beyond name, chain and validity that can explain a rejection (see
    :mod:`tlspcap.diagnosis.policy`), as findings the cause selection weighs."""
    f = ctx.f
    out = [
        CertFinding(x.code, x.text, frame=x.frame)
        for x in (
            policy.revocation(f),
            policy.weak_key_exchange(f),
            policy.legacy_renegotiation(ch, sh),
            policy.alpn_unmet(f, ch, sh),
        )
        if x is not None
    ]
    seen = interception(ctx)
    if seen is not None and seen.confident:
        frame, text = seen.evidence[0]
        more = "; ".join(t for _, t in (*seen.evidence[1:], *seen.support))
        out.append(
            CertFinding("tls_interception", text + (f"; {more}" if more else ""), frame=frame)
        )
    elif seen is not None:
        frame, text = (*seen.evidence, *seen.support)[0]
        out.append(CertFinding("possible_interception", "possible: " + text, frame=frame))
    return out


def _interception_fix(ctx: Context, v: Verdict) -> None:
    """Name the product and where its root goes; or, when it re-signed with its untrusted CA
    on purpose, point at the real server's certificate."""
    seen = interception(ctx)
    product = seen.product if seen is not None else None
    name = product.name if product is not None else "The inspecting proxy"
    if product is not None and product.untrusted_signer:
        v.must_act = "server"
        v.fix = (
            f"{name} re-signed the certificate with its *untrusted* CA on purpose: the real "
            "server's certificate failed the proxy's own checks. Fix the real server's "
            "certificate (chain, validity, name); the proxy then re-signs with its trusted CA."
        )
        return
    v.fix = (
        f"{name} answered in the server's place with its own certificate: install its root CA "
        f"in {TRUST_STORES}, or have this destination exempted from inspection (pinned and "
        "mutual-TLS applications need the exemption)."
    )


def _chain_whole(f: ConnFacts) -> bool:
    """The server's whole chain is in the capture (not encrypted, not cut)."""
    certs = f.server.certificates
    return bool(certs) and not certs[0].truncated


def _blame_certificate(v: Verdict, f: ConnFacts, findings: list[CertFinding]) -> Verdict:
    """The client gave up after seeing the certificate: its worst finding is the cause."""
    cert = _cert_cause(findings, None, rejected=True)
    v.cause = cert.code if cert else "unknown"
    if cert:
        v.confidence = OBSERVED
        v.add(cert.frame or cert_frame(f), cert.text)
    elif f.server.certificates and f.server.certificates[0].truncated:
        v.add(
            cert_frame(f),
            "the capture cut the server's Certificate message: the certificates it does not "
            "hold whole could not be checked",
        )
    return v


def _cert_cause(
    findings: list[CertFinding], alert: Alert | None, rejected: bool = False
) -> CertFinding | None:
    """The finding that best explains a rejection: the one the alert names, else by priority.
    A name given only in the subject CN explains a rejection (current clients ignore the CN)."""
    codes: dict[str, CertFinding] = {}
    for finding in findings:
        codes.setdefault(finding.code, finding)
    for weak in ("weak_key", "weak_signature"):
        if weak in codes and "weak_certificate" not in codes:
            codes["weak_certificate"] = CertFinding("weak_certificate", codes[weak].text)
    how = alert.description if alert is not None else None
    silent = alert is None and rejected
    for code in POLICY_CAUSES:  # what clients check before the chain, or instead of it
        if code in codes and (silent or (alert is not None and how in ALERT_FIT[code])):
            return codes[code]
    if how in ALERT_TO_CERT_CAUSE:
        for code in ALERT_TO_CERT_CAUSE[how]:
            if code in codes:
                return codes[code]
    for code in CERT_PRIORITY:
        if code in codes:
            return codes[code]
    for code in LATE_CAUSES:
        if code in codes and (silent or (alert is not None and how in ALERT_FIT[code])):
            return codes[code]
    if silent and "alpn_mismatch" in codes:
        return codes["alpn_mismatch"]
    cn_only = codes.get("cn_only_certificate")
    if cn_only is not None and (rejected or alert is not None):
        return CertFinding(
            "hostname_mismatch",
            cn_only.text + " (Go, browsers and other current stacks do)",
            cn_only.index,
        )
    return None


def _answer_line(f: ConnFacts, sh: ServerHello | None) -> tuple[int | None, str]:
    if sh is not None:
        return sh.frame, f"the server chose {vname(sh.version)} with {cipher_name(sh.cipher_suite)}"
    server = f.server_dir
    frames = [m.frame for m in f.messages if m.direction == server]
    cut = [m for m in f.messages if m.direction == server and m.msg_type == 2]
    if not cut and starts_late(f) and not f.client_hellos:
        return f.first_frame, "the capture starts after the hellos: the ServerHello is not in it"
    if cut:
        return cut[0].frame, (
            "the server answered with a ServerHello the capture cut too short to read (snap "
            "length): the version and suite it chose are not in the capture"
        )
    return (min(frames) if frames else f.server.first_data_frame), (
        "the server answered in TLS; its ServerHello was lost from the capture, the messages "
        "after it are read"
    )


def _completion(
    ctx: Context,
    ch: ClientHello | None,
    sh: ServerHello | None,
    tls13: bool,
    findings: list[CertFinding],
) -> Verdict:
    f = ctx.f
    view = tls13_view(f) if tls13 and seen(f.client) else None
    done = _handshake_done(ctx, sh, view)
    # After the handshake, an encrypted alert is as likely a close_notify as a fatal alert:
    # it is judged as a close (by its timing), not as a rejection.
    # An encrypted alert sent after the sender's own application data closes a session that
    # was in use (a close_notify, most likely), whatever the capture shows of the handshake;
    # one read after the capture lost some of the sender's records says nothing about when
    # in the handshake it came.
    alerts = [
        a
        for a in f.alerts
        if not (
            a.level is None
            and (_sent_data_before(f, a.sender, a.frame) or _lost_before(f, a.sender, a.frame))
        )
    ]
    client_alert = first_fatal([a for a in alerts if a.sender == "client"], not done)
    server_alert = first_fatal([a for a in alerts if a.sender == "server"], not done)
    v = Verdict(FAILED)
    v.add(*hello_line(f, ch))
    v.add(*_answer_line(f, sh))
    if not seen(f.client):
        return _server_side_only(ctx, v, sh, tls13, findings)
    first = _earliest(client_alert, server_alert)
    client_quit = _client_quits_first(ctx, done, first)
    if client_quit is not None:
        return client_quit(v, findings)
    if first is not None and first is client_alert:
        return _client_rejects(ctx, v, ch, sh, first, findings)
    if first is not None and first is server_alert:
        return _server_rejects(ctx, v, ch, first)
    lost = records_lost(f)
    if lost is not None and not done:
        v.outcome, v.cause = INCOMPLETE, "unknown"
        v.add(
            lost,
            "the capture lacks part of the handshake (a gap in the TCP stream, or records "
            "whose boundaries it lost): what followed cannot be read",
        )
        return v
    if view is not None:
        return _tls13_completion(ctx, v, ch, sh, findings, view)
    return _outcome(ctx, v, ch, done, findings, _usage12(f))


def _sent_data_before(f: ConnFacts, role: str, frame: int) -> bool:
    """``role`` sent application data before ``frame`` (in TLS 1.3, more than an alert's worth:
    there alerts travel in application_data records too)."""
    side = f.client if role == "client" else f.server
    first = side.first_application_frame
    if first is None or first >= frame:
        return False
    tls13 = f.version is not None and is_tls13(f.version)
    return side.application_bytes > ENCRYPTED_ALERT_MAX if tls13 else True


def _lost_before(f: ConnFacts, role: str, frame: int) -> bool:
    """The capture lost some of ``role``'s records before ``frame``."""
    side = f.client if role == "client" else f.server
    return any(x < frame for x in (*side.gap_frames, *side.framing_lost))


class _Quit:
    """The client closed (FIN or RST) before the handshake completed and before any alert:
    it rejected what the server had sent."""

    def __init__(self, ctx: Context, frame: int, how: str) -> None:
        self.ctx, self.frame, self.how = ctx, frame, how

    def __call__(self, v: Verdict, findings: list[CertFinding]) -> Verdict:
        v.gave_up = "client"
        v.add(
            self.frame,
            f"the client closed the connection ({self.how}) without an alert, before the "
            "handshake completed: it rejected the server's flight",
        )
        return _blame_certificate(v, self.ctx.f, findings)


def _client_quits_first(ctx: Context, done: bool, alert: Alert | None) -> _Quit | None:
    """The client's FIN or RST comes before any fatal alert of either side, with the handshake
    unfinished and a server certificate to judge: it gave up first, and a later alert from the
    server is only its reaction."""
    f = ctx.f
    if done or not f.server.certificates:
        return None
    stop = first_stop(f, "client", include_encrypted=False)
    if stop is None or stop.kind == "alert" or (alert is not None and alert.frame < stop.frame):
        return None
    server_stop = first_stop(f, "server", include_encrypted=False)
    if server_stop is not None and server_stop.frame < stop.frame:
        return None
    if f.client.ccs_frame is not None and f.client.ccs_frame < stop.frame:
        return None  # it went on with the handshake: the rules for completion judge it
    return _Quit(ctx, stop.frame, stop.kind)


def _server_side_only(
    ctx: Context,
    v: Verdict,
    sh: ServerHello | None,
    tls13: bool,
    findings: list[CertFinding],
) -> Verdict:
    """Only the server's packets are in the capture: its ACKs tell what the client sent after
    the server's flight, its own messages how far the handshake went."""
    f = ctx.f
    v.add(None, "the server's packets and acknowledgements still show what the client did")
    server = f.server_dir
    frames = [m.frame for m in f.messages if m.direction == server]
    flight_end = max(frames) if frames else v.evidence[-2].frame
    reply = ack_growth(f, "server", flight_end) if flight_end is not None else None
    if reply is None:
        v.outcome, v.cause = INCOMPLETE, "unknown"
        v.add(
            None,
            "the server's packets do not show the start of the client's stream: what the "
            "client sent after the server's flight cannot be told",
        )
        return v
    if tls13:
        return _server_only_tls13(ctx, v, sh, reply, findings)
    return _server_only_tls12(ctx, v, reply, findings)


def _alert_answer(v: Verdict, f: ConnFacts, frame: int | None, sent: int) -> Verdict:
    v.gave_up = "client"
    v.add(
        frame,
        f"after the server's flight the server acknowledged {sent} byte(s) from the client: "
        "the size of a TLS alert (the alert itself is not in the capture)",
    )
    return v


def _stalled(v: Verdict, f: ConnFacts, frame: int | None, findings: list[CertFinding]) -> Verdict:
    """The client sent nothing after the server's flight (at most its FIN)."""
    cert = _cert_cause(findings, None, rejected=True)
    if cert is None:
        v.outcome, v.cause = INCOMPLETE, "unknown"
        v.add(
            frame,
            "the client sent nothing after the server's flight (as the server's acknowledgements "
            "show); why is not in the server's packets",
        )
        return v
    v.gave_up, v.cause, v.confidence = "client", cert.code, INFERRED
    v.add(
        frame,
        "the client did not go on with the handshake after the server's flight (the server "
        "acknowledged nothing more from it): it rejected the flight, whose certificate has "
        "this problem",
    )
    v.add(cert_frame(f), cert.text)
    return v


def _server_only_tls12(
    ctx: Context, v: Verdict, reply: tuple[int, int | None], findings: list[CertFinding]
) -> Verdict:
    f = ctx.f
    server = f.server
    sent, frame = reply
    if server.ccs_frame is not None:  # the server finished: it had the client's Finished
        post = ack_growth(f, "server", server.ccs_frame) or (0, None)
        if server.application_records or post[0] > ENCRYPTED_ALERT_MAX + FIN:
            return _server_used(ctx, v, server.first_application_frame or post[1])
        if post[0] > FIN:
            v.gave_up = "client"
            v.add(
                post[1],
                f"after the handshake the client sent {post[0]} bytes, the size of an encrypted "
                "alert, and no data: it rejected the server after the handshake",
            )
            return _blame_certificate(v, f, findings)
        stop = first_stop(f, "server")
        if stop is not None or f.idle:
            v.gave_up = "client"
            v.add(
                post[1] or (stop.frame if stop else None),
                "the client finished the handshake and sent no data before the connection ended",
            )
            return _blame_certificate(v, f, findings)
        v.outcome, v.cause = INCOMPLETE, "unknown"
        v.add(None, "the handshake completed; the capture ends before any data")
        return v
    alert = first_fatal([a for a in f.alerts if a.sender == "server"], True)
    if sent in (ALERT_RECORD, ALERT_RECORD + FIN):
        _alert_answer(v, f, frame, sent)
        return _blame_certificate(v, f, findings)
    if alert is not None:
        return _server_rejects(ctx, v, None, alert)
    if sent <= FIN:
        return _stalled(v, f, frame, findings)
    v.cause = "unknown"
    v.add(
        frame,
        f"the client answered the flight ({sent} bytes), but the server did not finish the "
        "handshake; the client's messages are not in the capture",
    )
    stop = first_stop(f, "server")
    if stop is not None:
        v.gave_up = "server"
        v.add(stop.frame, f"the server then closed ({stop.kind})")
    return v


def _server_only_tls13(
    ctx: Context,
    v: Verdict,
    sh: ServerHello | None,
    reply: tuple[int, int | None],
    findings: list[CertFinding],
) -> Verdict:
    f = ctx.f
    sent, frame = reply
    fins = [5 + n for n in finished_record_sizes(sh.cipher_suite if sh is not None else f.cipher)]
    if CCS_RECORD + 5 + 17 <= sent <= CCS_RECORD + ENCRYPTED_ALERT_MAX + FIN and sent < (
        CCS_RECORD + min(fins)
    ):
        _alert_answer(v, f, frame, sent)
        return _blame_certificate(v, f, findings)
    if sent <= FIN:
        return _stalled(v, f, frame, findings)
    seals = [
        r
        for r in f.encrypted_log
        if r.direction == f.server_dir and r.content_type == CT_APPLICATION_DATA
    ]
    after = [r for r in seals if frame is not None and r.frame >= frame]
    if after and after[0].length <= ALERT_SIZED:
        v.gave_up = "server"
        v.add(
            after[0].frame,
            f"the server answered the client's Finished with a {after[0].length}-byte encrypted "
            "record (an alert, not a session ticket)",
        )
        base = sent - FIN * (f.server.fin_frame is None) - CCS_RECORD
        empty_cert = {5 + n for n in EMPTY_CERTIFICATE_RECORD}
        if any(base - fin in empty_cert for fin in fins):
            v.cause, v.confidence = "client_certificate_required", INFERRED
            v.add(
                frame,
                f"the client's flight ({sent} bytes, as the server acknowledged it) is a "
                "ChangeCipherSpec, an empty Certificate and a Finished: the server asked for a "
                "certificate and got none",
            )
            return v
        v.cause = "unknown"
        v.secondary.append(
            Finding(
                "client_certificate_required",
                after[0].frame,
                "possible: a TLS 1.3 server that rejects the client's Finished flight most "
                "often wanted a client certificate",
            )
        )
        return v
    if after:
        return _server_used(ctx, v, after[0].frame)
    v.outcome, v.cause = INCOMPLETE, "unknown"
    v.add(frame, "the client finished the handshake; the capture ends before the server answered")
    return v


def _server_used(ctx: Context, v: Verdict, frame: int | None) -> Verdict:
    """The server finished the handshake and sent data: established, unless it then closed at
    once, first (it may have turned the client away over the session: not in its packets)."""
    f = ctx.f
    stop = first_stop(f, "server", include_encrypted=False)
    if (
        stop is not None
        and stop.kind != "alert"
        and frame is not None
        and ctx.time_of(stop.frame) - ctx.time_of(frame) <= CLOSE_AT_ONCE_SECONDS
    ):
        v.outcome, v.cause = INCOMPLETE, "unknown"
        v.add(
            stop.frame,
            f"the server answered and closed first ({stop.kind}) at once: whether it "
            "turned the client away (as nginx does with HTTP 400 when a required client "
            "certificate is missing) is not in the server's packets",
        )
        return v
    out = Verdict(ESTABLISHED)
    out.evidence = v.evidence[:2]
    out.add(
        frame,
        "the server finished the handshake and the session carries data (as far as the "
        "server's packets show)",
    )
    return out


def _handshake_done(ctx: Context, sh: ServerHello | None, view: Tls13View | None) -> bool:
    """Both sides finished the handshake (as far as the capture shows without keys).

    ``view`` is the connection's :func:`tls13_view` when TLS 1.3 was negotiated, else None.
    """
    f = ctx.f
    c, sv = f.client, f.server
    if view is not None:
        return view.finished
    if sh is not None and sh.sslv2:  # SSLv2: no Finished to see in the clear
        return c.application_records > 0 and sv.application_records > 0
    if c.encrypted_handshake_records > 0 and sv.encrypted_handshake_records > 0:
        return True
    # A Finished the capture lost: application data both ways shows the handshake completed
    # (before TLS 1.3 no record is of that type before the Finished; from TLS 1.3 on every
    # encrypted record is, so without the ServerHello the server's CCS must vouch for it).
    both = c.application_records > 0 and sv.application_records > 0
    if sh is not None and not is_tls13(sh.version):
        return both
    return both and sv.encrypted


def _earliest(a: Alert | None, b: Alert | None) -> Alert | None:
    if a is None or b is None:
        return a or b
    return a if a.frame <= b.frame else b


def _client_rejects(
    ctx: Context,
    v: Verdict,
    ch: ClientHello | None,
    sh: ServerHello | None,
    alert: Alert,
    findings: list[CertFinding],
) -> Verdict:
    f = ctx.f
    v.gave_up = "client"
    v.add(alert.frame, f"the client aborted with {describe_alert(alert)}")
    if alert.description == A_PROTOCOL_VERSION and sh is not None and ch is not None:
        v.cause, v.must_act, v.confidence = "protocol_mismatch", "server", PROOF
        v.add(
            sh.frame,
            f"{vname(sh.version)} is not among the client's versions "
            f"({', '.join(vname(o) for o in offered_versions(ch))})",
        )
        return v
    if (
        sh is not None
        and ch is not None
        and not ch.truncated
        and sh.cipher_suite not in ch.cipher_suites
        and not ch.sslv2
    ):
        v.cause, v.must_act, v.confidence = "cipher_mismatch", "server", PROOF
        v.add(sh.frame, "the server chose a cipher suite the client did not offer")
        return v
    cert = _cert_cause(findings, alert)
    if cert is not None:
        v.cause, v.confidence = cert.code, OBSERVED
        if alert.description in ALERT_TO_CERT_CAUSE and cert.code in ALERT_TO_CERT_CAUSE.get(
            alert.description, ()
        ):
            v.confidence = PROOF
        v.add(cert.frame or cert_frame(f), cert.text)
        return v
    if not _chain_whole(f) and alert.description in ALERT_ONLY_CAUSES:
        v.cause, note = ALERT_ONLY_CAUSES[alert.description]
        v.confidence = INFERRED
        tls13 = f.version is not None and is_tls13(f.version)
        v.add(
            None,
            f"the certificate is not visible ({'encrypted' if tls13 else 'not in the capture'}"
            f"): the cause is taken from the alert alone{note}"
            + ("; --keylog would let tlspcap check the certificate itself" if tls13 else ""),
        )
        return v
    if not _chain_whole(f):
        said = client_alert_cause(alert)
        if said is not None and said.code == "unknown":
            v.cause = "unknown"
            v.add(
                None,
                said.text.replace("is not in the capture", "is not visible")
                + ": run again with --keylog (TLS 1.3) or with a full capture to tell which",
            )
            for code in said.also:
                v.secondary.append(Finding(code, alert.frame, "possible cause (see the evidence)"))
            return v
    if alert.description == A_UNKNOWN_CA:
        v.cause, v.confidence = "unknown_ca", INFERRED
        v.add(
            cert_frame(f),
            "the client does not trust the server's CA (its trust store "
            "differs from the one tlspcap checked against)",
        )
        return v
    if alert.description == A_BAD_CERT and not f.server.certificates:
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


def _server_rejects(ctx: Context, v: Verdict, ch: ClientHello | None, alert: Alert) -> Verdict:
    f = ctx.f
    v.gave_up = "server"
    v.add(alert.frame, f"the server aborted with {describe_alert(alert)}")
    req = f.certificate_request
    certs = f.client.certificates
    if req is None and certs:
        v.add(
            certs[0].frame,
            "the client sent a Certificate message, which it does only when the server asks "
            "for one (the CertificateRequest is not in the capture)",
        )
    if req is not None or certs:
        if req is not None:
            v.add(req.frame, "the server asked for a client certificate (CertificateRequest)")
        v.cause, v.confidence = "client_certificate_required", OBSERVED
        if not seen(f.client):
            v.add(None, "what the client sent back is not in the capture")
        elif not certs or not certs[0].chain:
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
    if alert.description == A_NO_APPLICATION_PROTOCOL:
        v.cause, v.confidence = "alpn_mismatch", PROOF
        v.add(ch.frame if ch is not None else None, alpn_offer_text(ch))
        return v
    if alert.description == A_CERT_REQUIRED:
        v.cause, v.confidence = "client_certificate_required", PROOF
        v.add(alert.frame, "certificate_required: the server wanted a client certificate")
        return v
    v.cause = "unknown"
    v.add(None, f"{describe_alert(alert)} from the server after its ServerHello")
    return v


def _tls13_completion(
    ctx: Context,
    v: Verdict,
    ch: ClientHello | None,
    sh: ServerHello | None,
    findings: list[CertFinding],
    view: Tls13View,
) -> Verdict:
    f = ctx.f
    rejected = view.client_rejected
    if rejected is not None:
        v.gave_up = "client"
        v.add(
            rejected.frame,
            f"the client's first encrypted record is {rejected.length} bytes: an encrypted "
            "alert, not a Finished; the client rejected the server's certificate or parameters",
        )
        return _blame_certificate(v, f, findings)
    fin_sizes = finished_record_sizes(sh.cipher_suite if sh is not None else f.cipher)
    flight = view.client_flight
    handshake_records = 1
    empty: bool | None = None
    if view.finished and view.client_sent_certificate(fin_sizes):
        empty = flight[0].length in EMPTY_CERTIFICATE_RECORD
        sizes = [r.length for r in flight]
        at = [i for i, size in enumerate(sizes) if size in fin_sizes]
        handshake_records = at[0] + 1 if at else len(flight)
        v.add(
            flight[0].frame,
            f"the client's first encrypted record ({flight[0].length} bytes) is not a Finished: "
            "it carries a Certificate"
            + (" that is empty" if empty else "")
            + ", so the server asked for one",
        )
        server_after = [r for r in view.after if r.direction == f.server_dir]
        if server_after and server_after[0].length <= ALERT_SIZED:
            v.cause, v.gave_up, v.confidence = "client_certificate_required", "server", INFERRED
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
        if r.direction == f.client_dir and r.length > ALERT_SIZED
    ]
    server_records = [r for r in view.after if r.direction == f.server_dir]
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


def _usage12(f: ConnFacts) -> Usage:
    c, sv = f.client, f.server
    return Usage(c.application_records, sv.application_records, c.first_application_frame)


def _outcome(
    ctx: Context,
    v: Verdict,
    ch: ClientHello | None,
    done: bool,
    findings: list[CertFinding],
    use: Usage,
) -> Verdict:
    """The handshake is over or stalled with no fatal alert: judge by data, closes and resets."""
    f = ctx.f
    c, sv = f.client, f.server
    alerts = f.alerts
    client_close = close_of(c, first_alert_frame(alerts, "client"))
    server_close = close_of(sv, first_alert_frame(alerts, "server"))
    server_first = server_close[0] is not None and (
        client_close[0] is None or server_close[0] < client_close[0]
    )
    empty_cert = use.empty_client_certificate
    if f.certificate_request is not None and c.certificates:
        empty_cert = not c.certificates[0].chain and not c.certificates[0].truncated
    elif f.certificate_request is not None and not _client_flight_unread(f):
        empty_cert = True
    turned_away = (
        server_first
        and use.client_records <= 1
        and ctx.time_of(server_close[0]) - ctx.time_of(use.client_first_frame or server_close[0])
        <= CLOSE_AT_ONCE_SECONDS
    )
    if done and empty_cert and turned_away:
        v.cause, v.gave_up, v.confidence = "client_certificate_required", "server", OBSERVED
        if f.certificate_request is not None:
            v.add(f.certificate_request.frame, "the server asked for a client certificate")
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
    lost = records_lost(f)
    if done and not use.client_records and lost is not None:
        v.outcome, v.cause = INCOMPLETE, "unknown"
        v.add(
            lost,
            "records are missing from the capture here: whether the client sent data after "
            "the handshake cannot be told",
        )
        return v
    if done and not use.client_records and _closes_at_once(ctx, client_close[0]):
        v.gave_up = "client"
        v.add(
            client_close[0],
            f"the client completed the handshake and closed ({client_close[1]}) "
            "without sending data",
        )
        return _blame_certificate(v, f, findings)
    for side_name, (frame, how) in (("server", server_close), ("client", client_close)):
        if how == "RST" and frame is not None and not done:
            v.cause, v.gave_up, v.confidence = "connection_reset", side_name, OBSERVED
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
    if lost is not None:
        v.outcome, v.cause = INCOMPLETE, "unknown"
        v.add(lost, "the capture lacks part of the handshake")
        return v
    warned = [
        a
        for a in alerts
        if a.sender == "server" and a.level == 1 and a.description == A_UNRECOGNIZED_NAME
    ]
    if warned and client_close[0] is not None and not done:
        v.cause, v.gave_up, v.must_act = "unrecognized_name", "client", "server"
        v.confidence = OBSERVED
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
                return _blame_certificate(v, f, findings)
            v.cause = "unknown"
            return v
    v.outcome, v.cause = INCOMPLETE, "unknown"
    v.add(None, "the capture ends before the handshake completed")
    return v


def _client_flight_unread(f: ConnFacts) -> bool:
    """Part of the client's handshake after the server's flight is not readable: encrypted
    without keys (TLS 1.3), cut by the snap length, or lost in a gap."""
    client = f.client_dir
    if f.client.gaps or any(m.direction == client and m.truncated for m in f.messages):
        return True
    return f.version is not None and is_tls13(f.version) and not f.client.decrypted_records


def _closes_at_once(ctx: Context, frame: int | None) -> bool:
    """The client closed within CLOSE_AT_ONCE_SECONDS of the server's last handshake record."""
    if frame is None:
        return False
    f = ctx.f
    done_frame = f.server.last_frame or f.first_frame
    return ctx.time_of(frame) - ctx.time_of(done_frame) <= CLOSE_AT_ONCE_SECONDS


__all__ = ["after_server_hello"]
