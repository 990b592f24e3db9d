"""The walk, and the rules for a ClientHello that got no ServerHello (see engine.py)."""

from __future__ import annotations

from tlspcap.diagnosis.completion import after_server_hello
from tlspcap.diagnosis.context import (
    A_HANDSHAKE_FAILURE,
    A_INSUFFICIENT_SECURITY,
    A_INTERNAL_ERROR,
    A_PROTOCOL_VERSION,
    A_UNRECOGNIZED_NAME,
    SILENCE_SECONDS,
    Context,
    close_of,
    describe_alert,
    first_fatal,
    first_server_frame,
    hello_text,
    is_malformed_record,
    looks_like,
    offered_versions,
    quote,
    real_suites,
    vname,
)
from tlspcap.diagnosis.model import ESTABLISHED, FAILED, INCOMPLETE, Finding, Verdict
from tlspcap.tls.messages import Alert, ClientHello
from tlspcap.tls.registry import cipher_name, cipher_properties, is_grease


# ---- the walk ---------------------------------------------------------------------------
def walk(ctx: Context) -> Verdict:
    """Decide outcome and cause for one connection."""
    s = ctx.f
    if not s.client_hellos:
        return _no_client_hello(ctx)
    real = [sh for sh in s.server_hellos if not sh.hello_retry_request]
    if not real:
        return _unanswered(ctx, s.client_hellos[-1])
    return after_server_hello(ctx, s.client_hellos[-1], real[-1])


def _no_client_hello(ctx: Context) -> Verdict:
    s = ctx.f
    v = Verdict(INCOMPLETE, "unknown")
    if s.client.application_records and s.server.application_records:
        v = Verdict(ESTABLISHED)
        v.add(None, "the capture starts after the handshake; TLS records flow both ways")
        return v
    v.add(ctx.f.first_frame, "no ClientHello in the capture: it starts mid-connection")
    return v


def _unanswered(ctx: Context, ch: ClientHello) -> Verdict:
    """The ClientHello got no ServerHello."""
    s = ctx.f
    server = s.server
    v = Verdict(FAILED)
    v.add(ch.frame, hello_text(ch))
    if server.gap_frames:
        v.outcome, v.cause = INCOMPLETE, "unknown"
        v.add(server.gap_frames[0], "the capture lacks part of the server's answer")
        return v
    if not ctx.f.packets_by_direction[s.server_dir]:
        v.outcome, v.cause = INCOMPLETE, "unknown"
        v.add(
            None,
            "the capture holds no packet at all from the server (a one-sided or "
            "filtered capture): whether it answered cannot be told",
        )
        return v
    if not server.is_tls and is_malformed_record(server.preamble):
        v.cause, v.gave_up = "unknown", "server"
        v.add(
            first_server_frame(ctx),
            "the server answered with a malformed TLS record (header "
            f"{server.preamble[:5].hex()}): a broken TLS stack or a middlebox mangled it",
        )
        return v
    if not server.is_tls and server.preamble:
        v.cause, v.gave_up = "non_tls_peer", "server"
        v.add(
            first_server_frame(ctx),
            f"the server answered in plain text ({looks_like(server.preamble)}): "
            f"{quote(server.preamble)}",
        )
        return v
    alert = first_fatal([a for a in s.alerts if a.sender == "server"])
    if alert is not None:
        return _server_alert(ctx, v, ch, alert)
    frame, how = close_of(server)
    if frame is not None:
        v.gave_up = "server"
        v.add(frame, f"the server closed the connection ({how}) without a ServerHello or alert")
        if _sni_explains(ctx, v, ch) or _version_explains(ctx, v, ch):
            return v
        v.cause = "connection_reset" if how == "RST" else "no_server_response"
        return v
    cframe, chow = close_of(s.client)
    if cframe is not None:
        v.cause, v.gave_up = "no_server_response", "client"
        waited = ctx.time_of(cframe) - ctx.time_of(ch.frame)
        v.add(cframe, f"the client gave up ({chow}) after {waited:.1f} s without an answer")
        return v
    end = ctx.capture_end or ctx.f.last_ts
    waited = end - ctx.time_of(ch.frame)
    v.cause = "no_server_response"
    if waited < SILENCE_SECONDS:
        v.outcome = INCOMPLETE
    v.add(None, f"no answer in the {waited:.1f} s the capture runs after the ClientHello")
    return v


def _server_alert(ctx: Context, v: Verdict, ch: ClientHello, alert: Alert) -> Verdict:
    """The server refused the ClientHello with an alert."""
    v.gave_up = "server"
    v.add(alert.frame, f"the server answered with {describe_alert(alert)}")
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
            f"server found none of the {len(real_suites(ch))} offered suites acceptable",
        )
        _weak_offer(v, ch)
        return v
    v.cause = "unknown"
    v.add(None, f"{describe_alert(alert)} to a ClientHello alone does not single out a cause")
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
    offered = set(real_suites(ch))
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
