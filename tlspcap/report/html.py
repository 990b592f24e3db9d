"""The HTML report: one self-contained file (inline CSS, inline SVG, no script, no external asset).

Everything taken from a capture (SNI, ALPN, certificate names, alert names, file names) is
attacker-controlled: it goes through :func:`esc`, which replaces control characters and
bidirectional overrides and then HTML-escapes, so it can neither add markup nor reorder text.
A Content-Security-Policy forbidding scripts and remote loads is a second line of defence.
"""

from __future__ import annotations

import html
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime

from tlspcap.diagnosis.advice import ACTORS
from tlspcap.diagnosis.model import ESTABLISHED
from tlspcap.diagnosis.path import hello_segments
from tlspcap.facts.model import ConnFacts, SideFacts
from tlspcap.report.contract import Json, alpn_text
from tlspcap.report.summary import (
    OUTCOMES,
    FileReport,
    Totals,
    alert_text,
    conn_cipher,
    conn_sni,
    conn_version,
    outcome_words,
    servers_by_failures,
)
from tlspcap.tls.registry import alert_level_name, alert_name, cipher_name, version_name

_BIDI = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)  # fmt: skip
_UNSAFE_CATEGORIES = frozenset(("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"))
LABEL_MAX = 66
"""Longest message label drawn in the ladder (the full values are in the tables)."""


def clean(text: object) -> str:
    """Replace control, format (bidi overrides, zero-width) and unassigned characters by U+FFFD."""
    s = "" if text is None else str(text)
    return "".join(
        "\ufffd"
        if ch in _BIDI or (unicodedata.category(ch) in _UNSAFE_CATEGORIES and ch != " ")
        else ch
        for ch in s
    )


def esc(text: object) -> str:
    """Capture-derived text made safe for HTML element content and quoted attributes."""
    return html.escape(clean(text), quote=True)


def _short(text: str, limit: int = LABEL_MAX) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


# ---- the ladder, from the session ---------------------------------------------------------
def ladder_events(conn: ConnFacts) -> list[Json]:
    """The messages of a connection in capture order, for the ladder diagram.

    Each event is ``{"frame", "time" (seconds since the connection's first packet, or None),
    "sender" ("client"|"server"), "label", "kind" ("tcp"|"handshake"|"encrypted"|"data"|
    "alert")}``. Plain data, so that it travels from a worker process.
    """
    s = conn
    events: list[tuple[int, str, str, str]] = []

    def add(frame: int | None, sender: str, label: str, kind: str) -> None:
        if frame is not None:
            events.append((frame, sender, label, kind))

    ttl = _ttls(conn)
    if conn.syn_frame is not None:
        add(conn.syn_frame, s.role(0), "SYN" + ttl.get(conn.syn_frame, ""), "tcp")
    if conn.synack_frame is not None:
        add(conn.synack_frame, s.role(1), "SYN, ACK" + ttl.get(conn.synack_frame, ""), "tcp")
    for frame, label in _hello_parts(conn):
        add(frame, "client", label, "handshake")
    for role, side in (("client", s.client), ("server", s.server)):
        for frame, label in _retransmitted(side):
            add(frame, role, label, "tcp")
    for ch in s.client_hellos:
        offered = "/".join(version_name(v) for v in (ch.supported_versions or (ch.legacy_version,)))
        label = f"ClientHello ({offered}"
        label += f", SNI {ch.sni}" if ch.sni is not None else ", no SNI"
        if ch.alpn:
            label += ", ALPN " + ",".join(alpn_text(a) for a in ch.alpn)
        add(ch.frame, "client", label + ")", "handshake")
    for sh in s.server_hellos:
        if sh.hello_retry_request:
            add(sh.frame, "server", "HelloRetryRequest", "handshake")
        else:
            label = f"ServerHello ({version_name(sh.version)}, {cipher_name(sh.cipher_suite)})"
            add(sh.frame, "server", label, "handshake")
    for role, side in (("server", s.server), ("client", s.client)):
        for cm in side.certificates:
            n = len(cm.chain)
            add(
                cm.frame, role, f"Certificate ({n} certificate{'s' if n != 1 else ''})", "handshake"
            )
    if s.certificate_request is not None:
        add(s.certificate_request.frame, "server", "CertificateRequest", "handshake")
    add(s.server_hello_done_frame, "server", "ServerHelloDone", "handshake")
    tls13 = s.version is not None and (s.version == 0x0304 or s.version >> 8 in (0x7F, 0xFB))
    for role, side in (("client", s.client), ("server", s.server)):
        add(side.ccs_frame, role, "ChangeCipherSpec", "handshake")
        if side.decrypted_records:  # decrypted with --keylog: the messages themselves show
            add(side.finished_frame, role, "Finished", "handshake")
        else:
            add(
                _first_encrypted_handshake(s, role, tls13), role, "encrypted handshake", "encrypted"
            )
        if side.first_application_frame is not None:
            label = f"application data ({side.application_records} records, "
            label += f"{side.application_bytes} bytes)"
            add(side.first_application_frame, role, label, "data")
    for a in s.alerts:
        if a.encrypted or a.level is None or a.description is None:
            label = "Alert (encrypted)"
        else:
            label = f"Alert {alert_level_name(a.level)} {alert_name(a.description)}"
        add(a.frame, a.sender or "client", label, "alert")
    for role, side in (("client", s.client), ("server", s.server)):
        if side.fin_frame is not None:
            add(side.fin_frame, role, "FIN" + ttl.get(side.fin_frame, ""), "tcp")
        if side.rst_frame is not None:
            add(side.rst_frame, role, "RST" + ttl.get(side.rst_frame, ""), "tcp")
    events.sort(key=lambda e: e[0])
    out: list[Json] = []
    for frame, sender, label, kind in events:
        ts = s.time_at(frame)
        if ts is None and frame == conn.first_frame:
            ts = conn.first_ts
        rel = None if ts is None else round(max(ts - conn.first_ts, 0.0), 6)
        out.append({"frame": frame, "time": rel, "sender": sender, "label": label, "kind": kind})
    return out


MAX_RETRANSMISSIONS_SHOWN = 6
"""Retransmitted segments drawn per side (the packet log holds the first ones only)."""


def _ttls(conn: ConnFacts) -> dict[int, str]:
    """`` (TTL n)`` for the logged control packets, by frame: where a RST came from shows in
    its TTL next to the SYN/ACK's."""
    out = {}
    for side in conn.sides:
        for p in side.packet_log:
            if p.flags & 0x07 and p.ttl >= 0:
                out[p.frame] = f" (TTL {p.ttl})"
    return out


def _hello_parts(conn: ConnFacts) -> list[tuple[int, str]]:
    """The TCP segments of a ClientHello spread over several, but the one completing it."""
    if not conn.client_hellos:
        return []
    hello = conn.client_hellos[0].frame
    parts = hello_segments(conn, hello)
    n = len(parts)
    if n < 2:
        return []
    return [
        (p.frame, f"ClientHello, TCP segment {i} of {n} ({p.length} bytes)")
        for i, p in enumerate(parts, 1)
        if p.frame != hello
    ]


def _retransmitted(side: SideFacts) -> list[tuple[int, str]]:
    """Logged data segments that resend bytes the side had sent before."""
    sent: set[int] = set()
    out: list[tuple[int, str]] = []
    for p in side.packet_log:
        if not p.length:
            continue
        start = side.seq_offset(p)
        if start in sent and len(out) < MAX_RETRANSMISSIONS_SHOWN:
            out.append((p.frame, f"retransmission ({p.length} bytes)"))
        sent.add(start)
    return out


def _first_encrypted_handshake(s: ConnFacts, role: str, tls13: bool) -> int | None:
    """Frame of a side's first encrypted handshake record (TLS 1.2: its Finished; TLS 1.3: the
    first application_data record, which carries the encrypted handshake)."""
    direction = s.client_dir if role == "client" else s.server_dir
    for rec in s.encrypted_log:
        if rec.direction == direction and rec.content_type in (22, 23):
            return rec.frame if rec.content_type == 22 or tls13 else None
    return None


# ---- rendering ----------------------------------------------------------------------------
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em;color:#1b1b1b;
max-width:70em}
h1{font-size:1.5em}h2{font-size:1.25em;border-bottom:1px solid #ccc;margin-top:2em}
h3{font-size:1.1em;margin-bottom:.3em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .5em;
text-align:left;vertical-align:top}th{background:#f3f3f3}
.failed{color:#b00020}.incomplete{color:#9a6700}.established{color:#1a7f37}
.conn{border:1px solid #ddd;border-left:5px solid #b00020;padding:.2em 1em 1em;margin:1em 0}
.conn-incomplete{border-left-color:#d4a72c}
.fix{background:#eef7ff;border:1px solid #b6d7f5;padding:.5em}
.mono,code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.92em;
overflow-wrap:anywhere}
.bad{color:#b00020;font-weight:bold}.ok{color:#1a7f37}
svg text{font:12px ui-monospace,Menlo,Consolas,monospace}
svg .alert text{fill:#b00020;font-weight:bold}
"""

_LANE_CLIENT = 200
_LANE_SERVER = 700
_ROW = 30
_TOP = 46


def _ladder_svg(data: Json, events: Sequence[Json]) -> str:
    """The ladder as inline SVG: client and server columns, one arrow per message."""
    height = _TOP + _ROW * len(events) + 20
    width = _LANE_SERVER + 200
    parts = [
        f'<svg class="ladder" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="message sequence">',
        f'<text x="{_LANE_CLIENT}" y="16" text-anchor="middle" font-weight="bold">client</text>',
        f'<text x="{_LANE_CLIENT}" y="32" text-anchor="middle">{esc(data.get("client"))}</text>',
        f'<text x="{_LANE_SERVER}" y="16" text-anchor="middle" font-weight="bold">server</text>',
        f'<text x="{_LANE_SERVER}" y="32" text-anchor="middle">{esc(data.get("server"))}</text>',
        f'<line x1="{_LANE_CLIENT}" y1="{_TOP - 8}" x2="{_LANE_CLIENT}" y2="{height - 6}" '
        'stroke="#555" stroke-width="2"/>',
        f'<line x1="{_LANE_SERVER}" y1="{_TOP - 8}" x2="{_LANE_SERVER}" y2="{height - 6}" '
        'stroke="#555" stroke-width="2"/>',
    ]
    decisive = {e.get("frame") for e in data.get("evidence") or [] if isinstance(e, dict)}
    for i, ev in enumerate(events):
        y = _TOP + _ROW * i + 20
        kind = str(ev.get("kind"))
        colour = {"alert": "#b00020", "tcp": "#888", "encrypted": "#6e40c9"}.get(kind, "#1f4e9c")
        from_client = ev.get("sender") == "client"
        x1, x2 = (_LANE_CLIENT, _LANE_SERVER) if from_client else (_LANE_SERVER, _LANE_CLIENT)
        tip = -9 if from_client else 9
        when = "" if ev.get("time") is None else f"+{float(ev['time']):.3f}s"
        cls = ' class="alert"' if kind == "alert" else ""
        parts.append(f"<g{cls}>")
        if kind == "alert":
            parts.append(
                f'<rect x="2" y="{y - 22}" width="{width - 4}" height="{_ROW - 2}" fill="#fde7ea"/>'
            )
        mark = ' font-weight="bold" fill="#9a6700"' if ev.get("frame") in decisive else ""
        star = "\u25c6" if mark else ""
        parts.append(f'<text x="4" y="{y}"{mark}>{star}#{esc(ev.get("frame"))}</text>')
        parts.append(f'<text x="60" y="{y}">{esc(when)}</text>')
        dash = ' stroke-dasharray="5,4"' if kind == "tcp" else ""
        width_px = 3 if kind == "alert" else 1.5
        parts.append(
            f'<line x1="{x1}" y1="{y}" x2="{x2}" y2="{y}" stroke="{colour}" '
            f'stroke-width="{width_px}"{dash}/>'
        )
        parts.append(
            f'<polygon points="{x2},{y} {x2 + tip},{y - 5} {x2 + tip},{y + 5}" fill="{colour}"/>'
        )
        label = esc(_short(clean(ev.get("label"))))
        mid = (_LANE_CLIENT + _LANE_SERVER) // 2
        parts.append(f'<text x="{mid}" y="{y - 5}" text-anchor="middle">{label}</text>')
        parts.append("</g>")
    parts.append("</svg>")
    return "\n".join(parts)


def _parse_iso(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def utc(ts: object) -> datetime | None:
    """A capture timestamp as aware UTC, None when absent or out of range (hostile input)."""
    if not isinstance(ts, int | float):
        return None
    try:
        return datetime.fromtimestamp(ts, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def validity_at(cert: Json, when: float | None) -> str:
    """``valid``, ``expired`` or ``not yet valid`` at capture time (``unknown`` without dates)."""
    nb, na = _parse_iso(cert.get("not_before")), _parse_iso(cert.get("not_after"))
    at = utc(when)
    if at is None or nb is None or na is None:
        return "unknown"
    if at > na:
        return "expired"
    if at < nb:
        return "not yet valid"
    return "valid"


def _chain_table(data: Json, key: str, title: str) -> str:
    certs = data.get(key) or []
    if not certs:
        return ""
    when = data.get("start_time")
    start = utc(when)
    at = start.strftime("%Y-%m-%d %H:%M:%S UTC") if start is not None else "unknown"
    rows = [
        f"<h4>{esc(title)} (validity at capture time {esc(at)})</h4>",
        "<table><tr><th>#</th><th>frame</th><th>subject</th><th>subjectAltName</th>"
        "<th>issuer</th><th>not before</th><th>not after</th><th>at capture time</th></tr>",
    ]
    for i, cert in enumerate(certs):
        if cert.get("error"):
            rows.append(
                f"<tr><td>{i}</td><td>{esc(cert.get('frame'))}</td>"
                f'<td colspan="6" class="bad">{esc(cert.get("error"))}</td></tr>'
            )
            continue
        status = validity_at(cert, when if isinstance(when, int | float) else None)
        cls = "ok" if status == "valid" else "bad"
        san = ", ".join(str(n) for n in cert.get("san") or []) or "(none)"
        rows.append(
            f"<tr><td>{i}</td><td>{esc(cert.get('frame'))}</td>"
            f'<td class="mono">{esc(cert.get("subject"))}</td><td class="mono">{esc(san)}</td>'
            f'<td class="mono">{esc(cert.get("issuer"))}</td>'
            f"<td>{esc(cert.get('not_before'))}</td><td>{esc(cert.get('not_after'))}</td>"
            f'<td class="{cls}">{esc(status)}</td></tr>'
        )
    rows.append("</table>")
    return "\n".join(rows)


def _hello_table(data: Json) -> str:
    rows = ["<table><tr><th>frame</th><th>message</th><th>facts</th></tr>"]
    for ch in data.get("client_hellos", []):
        offered = ch.get("supported_versions") or [ch.get("legacy_version")]
        facts = [
            "versions " + ", ".join(version_name(int(v)) for v in offered),
            f"{len(ch.get('cipher_suites', []))} cipher suites",
            f"SNI {ch['sni']}" if ch.get("sni") is not None else "no SNI",
        ]
        if ch.get("alpn"):
            facts.append("ALPN " + ", ".join(str(a) for a in ch["alpn"]))
        facts.append(f"JA3 {ch.get('ja3')}, JA4 {ch.get('ja4')}")
        rows.append(
            f"<tr><td>{esc(ch.get('frame'))}</td><td>ClientHello</td>"
            f'<td class="mono">{"<br>".join(esc(f) for f in facts)}</td></tr>'
        )
    for sh in data.get("server_hellos", []):
        kind = "HelloRetryRequest" if sh.get("hello_retry_request") else "ServerHello"
        facts = [
            version_name(int(sh["version"])),
            cipher_name(int(sh["cipher_suite"])),
            f"JA3S {sh.get('ja3s')}",
        ]
        if sh.get("alpn") is not None:
            facts.append(f"ALPN {sh['alpn']}")
        rows.append(
            f"<tr><td>{esc(sh.get('frame'))}</td><td>{kind}</td>"
            f'<td class="mono">{"<br>".join(esc(f) for f in facts)}</td></tr>'
        )
    for a in data.get("alerts", []):
        rows.append(
            f'<tr><td>{esc(a.get("frame"))}</td><td class="bad">Alert</td>'
            f"<td>{esc(alert_text(a))}</td></tr>"
        )
    rows.append("</table>")
    return "\n".join(rows) if len(rows) > 2 else ""


def connection_section(data: Json, ladder: Sequence[Json]) -> str:
    """The section of one connection that did not establish."""
    outcome = str(data.get("outcome"))
    cause = data.get("cause")
    title = f"{data.get('client')} \u2192 {data.get('server')}"
    sni = conn_sni(data)
    parts = [
        f'<section class="conn conn-{esc(outcome)}">',
        f'<h3><span class="{esc(outcome)}">{esc(outcome.upper())}'
        f"{': ' + esc(cause) if cause else ''}</span> {esc(title)}</h3>",
        f"<p>frames {esc(data.get('first_frame'))}\u2013{esc(data.get('last_frame'))}"
        f"{', SNI <code>' + esc(sni) + '</code>' if sni is not None else ', no SNI'}"
        f"; history <code>{esc(data.get('history') or '-')}</code></p>",
        f'<p class="verdict"><strong>Verdict:</strong> {esc(data.get("summary"))}</p>',
    ]
    evidence = data.get("evidence") or []
    if evidence:
        parts.append("<h4>Evidence</h4><ul>")
        for e in evidence:
            where = f"frame {e['frame']}" if e.get("frame") is not None else "capture"
            parts.append(f"<li><strong>[{esc(where)}]</strong> {esc(e.get('text'))}</li>")
        parts.append("</ul>")
    secondary = data.get("secondary") or []
    if secondary:
        parts.append("<h4>Also found</h4><ul>")
        for f in secondary:
            where = f" (frame {f['frame']})" if f.get("frame") is not None else ""
            parts.append(
                f"<li><code>{esc(f.get('code'))}</code>{esc(where)}: {esc(f.get('text'))}</li>"
            )
        parts.append("</ul>")
    if ladder:
        parts.append("<h4>Messages</h4>")
        parts.append(_ladder_svg(data, ladder))
        parts.append(
            '<p class="note">\u25c6 marks the frames the evidence cites; TTLs are those the '
            "packets arrived with at the capture point.</p>"
        )
    parts.append(_hello_table(data))
    parts.append(_chain_table(data, "certificates", "Server certificate chain"))
    parts.append(_chain_table(data, "client_certificates", "Client certificate chain"))
    if data.get("must_act") or data.get("fix"):
        who = (
            f"<strong>Who must act:</strong> the "
            f"{esc(ACTORS.get(str(data.get('must_act')), data.get('must_act')))}. "
            if data.get("must_act")
            else ""
        )
        parts.append(f'<p class="fix">{who}<strong>Fix:</strong> {esc(data.get("fix"))}</p>')
    settle = data.get("settle") or []
    if settle:
        parts.append("<h4>What would settle it</h4><ul>")
        for item in settle:
            command = item.get("command")
            cmd = f"<br><code>{esc(command)}</code>" if command else ""
            parts.append(f"<li>{esc(item.get('text'))}{cmd}</li>")
        parts.append("</ul>")
    parts.append("</section>")
    return "\n".join(p for p in parts if p)


def _established_rows(conns: Iterable[Json]) -> Iterator[str]:
    """The established connections' table, a row at a time."""
    yield (
        "<table><tr><th>client</th><th>server</th><th>SNI</th><th>version</th><th>cipher</th>"
        "<th>frames</th></tr>"
    )
    for d in conns:
        yield (
            f"<tr><td>{esc(d.get('client'))}</td><td>{esc(d.get('server'))}</td>"
            f"<td>{esc(conn_sni(d) or '')}</td><td>{esc(conn_version(d))}</td>"
            f"<td>{esc(conn_cipher(d))}</td>"
            f"<td>{esc(d.get('first_frame'))}\u2013{esc(d.get('last_frame'))}</td></tr>"
        )
    yield "</table>"


def _summary_section(t: Totals) -> str:
    parts = [
        "<h2>Summary</h2>",
        f"<p>{t.files} file(s), {t.connections} TLS connection(s): "
        f"{esc(outcome_words(t.outcomes))}</p>",
    ]
    if t.causes:
        parts.append("<table><tr><th>cause</th><th>connections</th></tr>")
        for cause, n in sorted(t.causes.items(), key=lambda kv: (-kv[1], kv[0])):
            parts.append(f"<tr><td><code>{esc(cause)}</code></td><td>{n}</td></tr>")
        parts.append("</table>")
    if t.servers:
        head = "".join(f"<th>{o}</th>" for o in OUTCOMES)
        parts.append(f"<table><tr><th>server</th><th>SNI</th>{head}<th>causes</th></tr>")
        for server, st in servers_by_failures(t):
            cells = "".join(f"<td>{st.outcomes[o]}</td>" for o in OUTCOMES)
            causes = ", ".join(f"{c} {n}" for c, n in st.causes.most_common())
            parts.append(
                f"<tr><td>{esc(server)}</td><td>{esc(', '.join(st.snis))}</td>{cells}"
                f"<td>{esc(causes)}</td></tr>"
            )
        parts.append("</table>")
    if t.errors:
        parts.append("<p>Files that could not be read:</p><ul>")
        parts.extend(f"<li>{esc(f)}: {esc(e)}</li>" for f, e in t.errors)
        parts.append("</ul>")
    if t.skipped:
        parts.append(f"<p>{t.skipped} file(s) skipped: not captures.</p>")
    if t.hidden:
        parts.append(f"<p>{t.hidden} connection(s) hidden by filters.</p>")
    return "\n".join(parts)


def render_html(reports: Sequence[FileReport], t: Totals, title: str = "tlspcap report") -> str:
    """The whole report as one self-contained HTML document (see :func:`html_parts`)."""
    return "".join(html_parts(reports, t, title))


def html_parts(
    reports: Sequence[FileReport], t: Totals, title: str = "tlspcap report"
) -> Iterator[str]:
    """The HTML document, piece by piece (connections are read as they are written, so a
    report of any size is written in bounded memory)."""
    yield (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
    )
    yield f"<h1>{esc(title)}</h1>\n" + _summary_section(t)
    for r in reports:
        yield f"\n<h2>{esc(r.file)}</h2>"
        if r.error:
            yield f'\n<p class="bad">Could not be read: {esc(r.error)}</p>'
            continue
        m = r.meta
        note = "; the file is truncated, results cover what was there" if m.get("truncated") else ""
        yield (
            f"\n<p>{esc(m.get('format'))}, {esc(m.get('packets'))} packets, "
            f"{len(r.connections)} TLS connection(s) shown{note}</p>"
        )
        established = 0
        for c in r.connections:
            if c.data.get("outcome") != ESTABLISHED:
                yield "\n" + connection_section(c.data, c.ladder)
            else:
                established += 1
        if established:
            yield f'\n<h3 class="established">Established ({established})</h3>'
            rows = (c.data for c in r.connections if c.data.get("outcome") == ESTABLISHED)
            for row in _established_rows(rows):
                yield "\n" + row
    yield "\n</body>\n</html>\n"
