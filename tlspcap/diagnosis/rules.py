"""The rules of the walk, one function per stage of the handshake (see engine.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tlspcap.certs import capture_datetime
from tlspcap.diagnosis.certcheck import CertFinding, TrustStore, check_chain
from tlspcap.diagnosis.knowledge import CaptureKnowledge, ServerFacts, server_key
from tlspcap.diagnosis.model import ESTABLISHED, FAILED, INCOMPLETE, Finding, Verdict
from tlspcap.diagnosis.tls13 import (
    ALERT_SIZED,
    EMPTY_CERTIFICATE_RECORD,
    finished_record_size,
    tls13_view,
)
from tlspcap.session import Side, TlsSession, is_tls13
from tlspcap.tcp.tracker import TcpConnection
from tlspcap.tls.messages import Alert, ClientHello, ServerHello
from tlspcap.tls.registry import alert_name, cipher_name, cipher_properties, is_grease, version_name

if TYPE_CHECKING:
    from tlspcap.diagnosis.engine import Options

SILENCE_SECONDS = 3.0
"""A ClientHello unanswered this long before the capture ends counts as no answer."""
CLOSE_AT_ONCE_SECONDS = 0.5
"""A client closing this soon after the handshake, without data, rejected the session."""

# Alerts by what they say about the sender's complaint.
A_CLOSE_NOTIFY, A_HANDSHAKE_FAILURE, A_BAD_CERT, A_CERT_EXPIRED = 0, 40, 42, 45
A_CERT_UNKNOWN, A_UNKNOWN_CA, A_PROTOCOL_VERSION, A_INSUFFICIENT_SECURITY = 46, 48, 70, 71
A_INTERNAL_ERROR, A_UNRECOGNIZED_NAME, A_CERT_REQUIRED = 80, 112, 116
CERT_COMPLAINTS = {42, 43, 44, 45, 46, 48, 49, 51, 116}

ALERT_ONLY_CAUSES = {
    A_CERT_EXPIRED: ("expired_certificate", ""),
}
"""Client alerts precise enough to name a cause when the certificate itself is encrypted."""

CERT_PRIORITY = (
    "expired_certificate",
    "not_yet_valid_certificate",
    "incomplete_chain",
    "unknown_ca",
    "hostname_mismatch",
)
"""Certificate causes in the order used when the alert does not single one out."""
ALERT_TO_CERT_CAUSE = {
    A_CERT_EXPIRED: ("expired_certificate", "not_yet_valid_certificate"),
    A_UNKNOWN_CA: ("incomplete_chain", "unknown_ca"),
}


@dataclass(slots=True)
class Context:
    """Everything the rules look at for one connection."""

    conn: TcpConnection
    know: CaptureKnowledge
    opts: Options
    capture_end: float | None

    @property
    def s(self) -> TlsSession:
        """The TLS session."""
        return self.conn.session

    @property
    def facts(self) -> ServerFacts:
        """What the same server did in other connections."""
        return self.know.server(server_key(self.s))

    def time_of(self, frame: int | None) -> float:
        """Capture time of a frame the session saw."""
        if frame is not None and frame in self.s.frame_times:
            return self.s.frame_times[frame]
        return self.conn.first_ts


def _vname(v: int) -> str:
    return version_name(v)


def offered_versions(ch: ClientHello) -> list[int]:
    """Versions a ClientHello offers (supported_versions, else its legacy version)."""
    listed = [v for v in ch.supported_versions if not is_grease(v)]
    return listed or [ch.legacy_version]


def _first_fatal(alerts: list[Alert], include_encrypted: bool = True) -> Alert | None:
    """The first alert that ends the handshake: fatal, of unknown level, or encrypted."""
    for a in alerts:
        if a.level is None:  # encrypted and not decrypted: its level is unknown
            if include_encrypted:
                return a
        elif a.level != 1:
            return a
    return None


def _describe(a: Alert) -> str:
    if a.description is None:
        return f"an encrypted alert ({a.length} bytes)"
    level = {1: "warning", 2: "fatal"}.get(a.level or 0, f"level {a.level}")
    return f"a {level} {alert_name(a.description)} alert"


def _first_alert_frame(alerts: list[Alert], sender: str) -> int | None:
    frames = [a.frame for a in alerts if a.sender == sender]
    return frames[0] if frames else None


def _close_of(side: Side, alert_frame: int | None = None) -> tuple[int | None, str]:
    """Frame and kind of the first sign that a side is closing (alert, RST or FIN)."""
    if alert_frame is not None and all(
        f is None or alert_frame <= f for f in (side.rst_frame, side.fin_frame)
    ):
        return alert_frame, "alert, then " + (_close_of(side)[1] or "nothing")
    if side.rst_frame is not None and (side.fin_frame is None or side.rst_frame < side.fin_frame):
        return side.rst_frame, "RST"
    if side.fin_frame is not None:
        return side.fin_frame, "FIN"
    return None, ""


# ---- the walk ---------------------------------------------------------------------------
def walk(ctx: Context) -> Verdict:
    """Decide outcome and cause for one connection."""
    s = ctx.s
    if not s.client_hellos:
        return _no_client_hello(ctx)
    real = [sh for sh in s.server_hellos if not sh.hello_retry_request]
    if not real:
        return _unanswered(ctx, s.client_hellos[-1])
    return _after_server_hello(ctx, s.client_hellos[-1], real[-1])


def _no_client_hello(ctx: Context) -> Verdict:
    s = ctx.s
    v = Verdict(INCOMPLETE, "unknown")
    if s.client.application_records and s.server.application_records:
        v = Verdict(ESTABLISHED)
        v.add(None, "the capture starts after the handshake; TLS records flow both ways")
        return v
    v.add(ctx.conn.first_frame, "no ClientHello in the capture: it starts mid-connection")
    return v


def _unanswered(ctx: Context, ch: ClientHello) -> Verdict:
    """The ClientHello got no ServerHello."""
    s = ctx.s
    server = s.server
    v = Verdict(FAILED)
    v.add(ch.frame, _hello_text(ch))
    if server.gap_frames:
        v.outcome, v.cause = INCOMPLETE, "unknown"
        v.add(server.gap_frames[0], "the capture lacks part of the server's answer")
        return v
    if not ctx.conn.packets_by_direction[s.server_dir]:
        v.outcome, v.cause = INCOMPLETE, "unknown"
        v.add(
            None,
            "the capture holds no packet at all from the server (a one-sided or "
            "filtered capture): whether it answered cannot be told",
        )
        return v
    reader = server.reader
    if not reader.is_tls and is_malformed_record(reader.preamble):
        v.cause, v.gave_up = "unknown", "server"
        v.add(
            _first_server_frame(ctx),
            "the server answered with a malformed TLS record (header "
            f"{reader.preamble[:5].hex()}): a broken TLS stack or a middlebox mangled it",
        )
        return v
    if not reader.is_tls and reader.preamble:
        v.cause, v.gave_up = "non_tls_peer", "server"
        v.add(
            _first_server_frame(ctx),
            f"the server answered in plain text ({looks_like(reader.preamble)}): "
            f"{_quote(reader.preamble)}",
        )
        return v
    alert = _first_fatal([a for a in s.alerts if a.sender == "server"])
    if alert is not None:
        return _server_alert(ctx, v, ch, alert)
    frame, how = _close_of(server)
    if frame is not None:
        v.gave_up = "server"
        v.add(frame, f"the server closed the connection ({how}) without a ServerHello or alert")
        if _sni_explains(ctx, v, ch) or _version_explains(ctx, v, ch):
            return v
        v.cause = "connection_reset" if how == "RST" else "no_server_response"
        return v
    cframe, chow = _close_of(s.client)
    if cframe is not None:
        v.cause, v.gave_up = "no_server_response", "client"
        waited = ctx.time_of(cframe) - ctx.time_of(ch.frame)
        v.add(cframe, f"the client gave up ({chow}) after {waited:.1f} s without an answer")
        return v
    end = ctx.capture_end or ctx.conn.last_ts
    waited = end - ctx.time_of(ch.frame)
    v.cause = "no_server_response"
    if waited < SILENCE_SECONDS:
        v.outcome = INCOMPLETE
    v.add(None, f"no answer in the {waited:.1f} s the capture runs after the ClientHello")
    return v


def _server_alert(ctx: Context, v: Verdict, ch: ClientHello, alert: Alert) -> Verdict:
    """The server refused the ClientHello with an alert."""
    v.gave_up = "server"
    v.add(alert.frame, f"the server answered with {_describe(alert)}")
    d = alert.description
    if d == A_PROTOCOL_VERSION:
        v.cause = "protocol_mismatch"
        _version_explains(ctx, v, ch)
        _who_is_old(ctx, v, ch)
        return v
    if _version_explains(ctx, v, ch):
        return v
    if d == A_UNRECOGNIZED_NAME and ch.sni:
        v.cause = "unrecognized_name"
        v.add(ch.frame, f"the client asked for {ch.sni!r}, a name the server does not serve")
        return v
    if _cipher_explains(ctx, v, ch, alert):
        return v
    if _sni_explains(ctx, v, ch, alert):
        return v
    if d in (A_HANDSHAKE_FAILURE, A_INSUFFICIENT_SECURITY) and ch.sni:
        v.cause = "cipher_mismatch"
        v.add(
            ch.frame,
            f"the ClientHello carries server_name {ch.sni!r}, so SNI is not the issue; the "
            f"server found none of the {len(_real_suites(ch))} offered suites acceptable",
        )
        _weak_offer(v, ch)
        return v
    v.cause = "unknown"
    v.add(None, f"{_describe(alert)} to a ClientHello alone does not single out a cause")
    return v


def _sni_explains(ctx: Context, v: Verdict, ch: ClientHello, alert: Alert | None = None) -> bool:
    """No server_name, and the server turns the client away: SNI is the first suspect."""
    if ch.sni is not None:
        return False
    facts = ctx.facts
    d = alert.description if alert else None
    if facts.answered_sni:
        name, frame = next(iter(facts.answered_sni.items()))
        v.cause = "sni_missing"
        v.add(frame, f"the same server answered a ClientHello with server_name {name!r}")
        return True
    if d in (A_UNRECOGNIZED_NAME, A_HANDSHAKE_FAILURE, A_INTERNAL_ERROR, None):
        if facts.answered_without_sni is not None:
            return False
        v.cause = "sni_missing"
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
    names = ", ".join(_vname(k) for k in sorted(known))
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


def _real_suites(ch: ClientHello) -> list[int]:
    return [c for c in ch.cipher_suites if not is_grease(c) and c not in (0x00FF, 0x5600)]


def _cipher_explains(ctx: Context, v: Verdict, ch: ClientHello, alert: Alert | None = None) -> bool:
    """The offered suites against the server's: configured (proof) or chosen for others."""
    offered = set(_real_suites(ch))
    configured = set(ctx.opts.server_ciphers or ())
    if configured:
        if offered & configured:
            return False
        v.cause = "cipher_mismatch"
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
    v.cause = "cipher_mismatch"
    names = ", ".join(cipher_name(c) for c in list(chosen)[:4])
    v.add(
        min(chosen.values()),
        f"the same server chose {names} for other clients; this client offers none of them",
    )
    _weak_offer(v, ch)
    return True


def _weak_offer(v: Verdict, ch: ClientHello) -> None:
    suites = _real_suites(ch)
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


# ---- after the ServerHello --------------------------------------------------------------
def _after_server_hello(ctx: Context, ch: ClientHello, sh: ServerHello) -> Verdict:
    s = ctx.s
    tls13 = is_tls13(sh.version)
    findings = _certificate_findings(ctx, ch)
    v = _completion(ctx, ch, sh, tls13, findings)
    shown = {v.cause}
    for f in findings:
        if f.code not in shown:
            v.secondary.append(Finding(f.code, _cert_frame(s), f.text))
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


def _cert_frame(s: TlsSession) -> int | None:
    return s.server.certificates[0].frame if s.server.certificates else None


def _certificate_findings(ctx: Context, ch: ClientHello) -> list[CertFinding]:
    s = ctx.s
    if not s.server.certificates or not s.server.certificates[0].chain:
        return []
    msg = s.server.certificates[0]
    at = capture_datetime(ctx.time_of(msg.frame))
    host = ch.sni or ctx.opts.host
    trust = ctx.opts.trust or TrustStore([])
    return check_chain(msg.chain, at, host, trust, ctx.know.certificates)


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
    s = ctx.s
    done = _handshake_done(ctx, sh, tls13)
    # After the handshake, an encrypted alert is as likely a close_notify as a fatal alert:
    # it is judged as a close (by its timing), not as a rejection.
    client_alert = _first_fatal([a for a in s.alerts if a.sender == "client"], not done)
    server_alert = _first_fatal([a for a in s.alerts if a.sender == "server"], not done)
    v = Verdict(FAILED)
    v.add(ch.frame, _hello_text(ch))
    v.add(sh.frame, f"the server chose {_vname(sh.version)} with {cipher_name(sh.cipher_suite)}")
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
    if tls13:
        return _tls13_completion(ctx, v, ch, sh, findings)
    return _outcome(ctx, v, ch, done, findings, _usage12(s))


def _handshake_done(ctx: Context, sh: ServerHello, tls13: bool) -> bool:
    """Both sides finished the handshake (as far as the capture shows without keys)."""
    s = ctx.s
    c, sv = s.client, s.server
    if tls13:
        return tls13_view(s).finished
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
    v.add(alert.frame, f"the client aborted with {_describe(alert)}")
    if alert.description == A_PROTOCOL_VERSION:
        v.cause, v.must_act = "protocol_mismatch", "server"
        v.add(
            sh.frame,
            f"{_vname(sh.version)} is not among the client's versions "
            f"({', '.join(_vname(o) for o in offered_versions(ch))})",
        )
        return v
    if sh.cipher_suite not in ch.cipher_suites and not ch.sslv2:
        v.cause, v.must_act = "cipher_mismatch", "server"
        v.add(sh.frame, "the server chose a cipher suite the client did not offer")
        return v
    cert = _cert_cause(findings, alert)
    if cert is not None:
        v.cause = cert.code
        v.add(_cert_frame(ctx.s), cert.text)
        return v
    if not ctx.s.server.certificates and alert.description in ALERT_ONLY_CAUSES:
        v.cause, note = ALERT_ONLY_CAUSES[alert.description]
        v.add(
            None,
            f"the certificate is not visible (encrypted): the cause is taken from the "
            f"alert alone{note}; --keylog would let tlspcap check the certificate itself",
        )
        return v
    if alert.description == A_UNKNOWN_CA and not ctx.s.server.certificates:
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
            _cert_frame(ctx.s),
            "the client does not trust the server's CA (its trust store "
            "differs from the one tlspcap checked against)",
        )
        return v
    if alert.description == A_BAD_CERT and not ctx.s.server.certificates:
        v.add(
            None,
            "bad_certificate is what OpenSSL-based clients send for a hostname "
            "mismatch, a not-yet-valid certificate or a weak key; the certificate is "
            "encrypted, run again with --keylog to tell which",
        )
        v.cause = "unknown"
        return v
    v.cause = "unknown"
    v.add(None, f"{_describe(alert)} from the client with no certificate problem visible")
    return v


def _server_rejects(ctx: Context, v: Verdict, ch: ClientHello, alert: Alert) -> Verdict:
    s = ctx.s
    v.gave_up = "server"
    v.add(alert.frame, f"the server aborted with {_describe(alert)}")
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
    v.add(None, f"{_describe(alert)} from the server after its ServerHello")
    return v


def _tls13_completion(
    ctx: Context, v: Verdict, ch: ClientHello, sh: ServerHello, findings: list[CertFinding]
) -> Verdict:
    s = ctx.s
    view = tls13_view(s)
    rejected = view.client_rejected
    if rejected is not None:
        v.gave_up = "client"
        v.add(
            rejected.frame,
            f"the client's first encrypted record is {rejected.length} bytes: an encrypted "
            "alert, not a Finished; the client rejected the server's certificate or parameters",
        )
        cert = _cert_cause(findings, None)
        v.cause = cert.code if cert else "unknown"
        if cert:
            v.add(_cert_frame(s), cert.text)
        return v
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


def _usage12(s: TlsSession) -> Usage:
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
    s = ctx.s
    c, sv = s.client, s.server
    client_close = _close_of(c, _first_alert_frame(s.alerts, "client"))
    server_close = _close_of(sv, _first_alert_frame(s.alerts, "server"))
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
        cert = _cert_cause(findings, None)
        v.cause = cert.code if cert else "unknown"
        if cert:
            v.add(_cert_frame(s), cert.text)
        return v
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
        for a in s.alerts
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
            cert = _cert_cause(findings, None) if side_name == "client" else None
            v.cause = cert.code if cert else "unknown"
            if cert:
                v.add(_cert_frame(s), cert.text)
            return v
    v.outcome, v.cause = INCOMPLETE, "unknown"
    v.add(None, "the capture ends before the handshake completed")
    return v


def _closes_at_once(ctx: Context, frame: int | None) -> bool:
    """The client closed within CLOSE_AT_ONCE_SECONDS of the server's last handshake record."""
    if frame is None:
        return False
    s = ctx.s
    done_frame = s.server.last_frame or ctx.conn.first_frame
    return ctx.time_of(frame) - ctx.time_of(done_frame) <= CLOSE_AT_ONCE_SECONDS


# ---- text helpers -----------------------------------------------------------------------
def _hello_text(ch: ClientHello) -> str:
    versions = ", ".join(_vname(o) for o in offered_versions(ch))
    sni = f"server_name {ch.sni!r}" if ch.sni is not None else "no server_name"
    return f"ClientHello offering {versions}, {len(ch.cipher_suites)} cipher suites, {sni}"


def _first_server_frame(ctx: Context) -> int | None:
    return ctx.s.server.first_data_frame


PLAINTEXT_SIGNS = (
    (b"HTTP/", "an HTTP response"),
    (b"SSH-", "an SSH banner"),
    (b"220", "an SMTP or FTP banner"),
    (b"+OK", "a POP3 greeting"),
    (b"* OK", "an IMAP greeting"),
    (b"<?xml", "XMPP"),
    (b"<stream", "XMPP"),
)


def looks_like(data: bytes) -> str:
    """Name the plaintext protocol a peer answered with, from its first bytes."""
    for prefix, name in PLAINTEXT_SIGNS:
        if data.startswith(prefix):
            return name
    if is_malformed_record(data):
        return "a malformed TLS record"
    return "not a known protocol"


def is_malformed_record(data: bytes) -> bool:
    """A TLS-record-shaped answer (a 5-byte header whose length fits) with a bad type/version."""
    return len(data) >= 6 and int.from_bytes(data[3:5], "big") == len(data) - 5


def _quote(data: bytes) -> str:
    text = data[:60].decode("latin-1")
    safe = "".join(ch if ch.isprintable() else "." for ch in text)
    return repr(safe)
