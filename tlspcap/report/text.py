"""The terminal report: what happened on each TLS connection, and why failed ones failed."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from tlspcap.analyze import CaptureResult
from tlspcap.diagnosis.engine import Verdict
from tlspcap.diagnosis.model import ESTABLISHED
from tlspcap.facts.model import ConnFacts
from tlspcap.report.contract import alert_facts, alpn_text, endpoints
from tlspcap.stacks import likely_stack
from tlspcap.tls.registry import cipher_name, version_name


def sanitize(text: str) -> str:
    """Strip terminal control characters (capture data is attacker-controlled)."""
    return "".join(ch if ch.isprintable() or ch == " " else "\ufffd" for ch in text)


def ended(conn: ConnFacts) -> str:
    """How the connection ended: who sent FIN or RST, at which frame."""
    s = conn
    parts = []
    for role, side in (("client", s.client), ("server", s.server)):
        if side.rst_frame is not None:
            parts.append(f"{role} RST (frame {side.rst_frame})")
        elif side.fin_frame is not None:
            parts.append(f"{role} FIN (frame {side.fin_frame})")
    return ", ".join(parts) if parts else "still open at the end of the capture"


def connection_block(conn: ConnFacts, verdict: Verdict) -> list[str]:
    """The lines describing one connection."""
    s = conn
    client, server = endpoints(conn)
    status = verdict.outcome.upper()
    if verdict.cause and verdict.outcome != ESTABLISHED:
        status += f": {verdict.cause}"
    lines = [f"{client} -> {server}  frames {conn.first_frame}-{conn.last_frame}  [{status}]"]
    for ch in s.client_hellos:
        offered = ch.supported_versions or (ch.legacy_version,)
        alpn = ",".join(alpn_text(a) for a in ch.alpn)
        sni = "not captured" if ch.truncated and ch.sni is None else repr(ch.sni)
        lines.append(
            f"  ClientHello  frame {ch.frame}: SNI {sni}, offers "
            f"{'/'.join(version_name(v) for v in offered)}, {len(ch.cipher_suites)} suites"
            + (f", ALPN {alpn}" if alpn else "")
            + (" (SSLv2 format)" if ch.sslv2 else "")
            + (" (cut short by the capture)" if ch.truncated else "")
        )
    for sh in s.server_hellos:
        kind = "HelloRetryRequest" if sh.hello_retry_request else "ServerHello"
        lines.append(
            f"  {kind:<12} frame {sh.frame}: {version_name(sh.version)}, "
            f"{cipher_name(sh.cipher_suite)}"
        )
    certs = s.server.certificates
    if certs:
        lines.append(f"  Certificate  frame {certs[0].frame}: {len(certs[0].chain)} certificate(s)")
    for a in s.alerts:
        f = alert_facts(a)
        what = "encrypted alert" if a.encrypted else f"{f['level']} {f['description']}"
        lines.append(f"  Alert        frame {a.frame}: {a.sender} sent {what}")
    hint = likely_stack(s.client_hellos[0]) if s.client_hellos else None
    if hint is not None:
        lines.append(
            f"  client looks like: {hint.name}" + (f" (check: {hint.hint})" if hint.hint else "")
        )
    lines.append(f"  history {s.history or '-'}; ended: {ended(conn)}")
    for an in s.anomalies:
        lines.append(f"  anomaly: {an.name} (frame {an.frame}) {an.detail}")
    if verdict.outcome == ESTABLISHED:
        for f2 in verdict.secondary:
            lines.append(f"  note: {f2.code}: {f2.text}")
    else:
        lines.extend(
            textwrap.wrap(verdict.summary, 96, initial_indent="  ", subsequent_indent="  ")
        )
        for f2 in verdict.secondary:
            lines.append(f"  Also: {f2.code}: {f2.text}")
        for item in verdict.settle:
            lines.extend(
                textwrap.wrap(
                    f"To settle it: {item.text}" + (":" if item.command else ""),
                    96,
                    initial_indent="  ",
                    subsequent_indent="    ",
                )
            )
            if item.command:
                lines.append(f"    {item.command}")
    return [sanitize(line) for line in lines]


def render_capture(result: CaptureResult, verdicts: Sequence[Verdict]) -> str:
    """One capture's section."""
    if result.error:
        return f"{sanitize(result.file)}: error: {sanitize(result.error)}"
    head = f"{sanitize(result.file)} ({result.format}, {result.packets} packets, "
    head += f"{len(result.connections)} TLS connection(s))"
    lines = [head]
    if result.truncated:
        lines.append("  note: the file is truncated; results cover what was there")
    for a in result.anomalies:
        lines.append(sanitize(f"  anomaly: {a.name} (frame {a.frame}) {a.detail}"))
    for conn, verdict in zip(result.connections, verdicts, strict=True):
        lines.append("")
        lines.extend(connection_block(conn, verdict))
    return "\n".join(lines)
