"""The Markdown report, for tickets and wikis: summary tables, then one section per failure.

Capture-derived text is made inert with :func:`md`: control characters and bidi overrides are
replaced, HTML is escaped (Markdown renderers pass raw HTML through) and the characters that
would start emphasis, links, code or table cells are backslash-escaped.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from tlspcap.diagnosis.advice import ACTORS
from tlspcap.diagnosis.model import ESTABLISHED
from tlspcap.report.contract import Json
from tlspcap.report.html import clean, validity_at
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

_MD_SPECIAL = frozenset("\\`*_[]#|~")
_MD_ENTITIES = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}


def md(text: object) -> str:
    """Capture-derived text made inert in Markdown (one line, no markup, no raw HTML)."""
    out = []
    for ch in clean(text):
        if ch in _MD_ENTITIES:
            out.append(_MD_ENTITIES[ch])
        elif ch in _MD_SPECIAL:
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def _row(cells: Sequence[object]) -> str:
    return "| " + " | ".join(md(c) for c in cells) + " |"


def _table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> Iterator[str]:
    yield "| " + " | ".join(header) + " |"
    yield "|" + "|".join("---" for _ in header) + "|"
    for r in rows:
        yield _row(r)


def summary_section(t: Totals) -> list[str]:
    """The summary: outcome counts, causes, servers, unreadable files."""
    lines = [
        "## Summary",
        "",
        f"{t.files} file(s), {t.connections} TLS connection(s): {md(outcome_words(t.outcomes))}",
        "",
    ]
    if t.causes:
        rows = sorted(t.causes.items(), key=lambda kv: (-kv[1], kv[0]))
        lines += [*_table(["cause", "connections"], rows), ""]
    if t.servers:
        rows2 = [
            [server, ", ".join(st.snis), *(st.outcomes[o] for o in OUTCOMES),
             ", ".join(f"{c} {n}" for c, n in st.causes.most_common())]
            for server, st in servers_by_failures(t)
        ]  # fmt: skip
        lines += [*_table(["server", "SNI", *OUTCOMES, "causes"], rows2), ""]
    for file, error in t.errors:
        lines.append(f"- **unreadable:** {md(file)}: {md(error)}")
    if t.skipped:
        lines.append(f"- {t.skipped} file(s) skipped: not captures")
    if t.hidden:
        lines.append(f"- {t.hidden} connection(s) hidden by filters")
    if t.errors or t.skipped or t.hidden:
        lines.append("")
    return lines


def connection_section(data: Json, ladder: Sequence[Json]) -> list[str]:
    """One connection that did not establish: verdict, evidence, messages, chain, fix."""
    outcome = str(data.get("outcome"))
    cause = data.get("cause")
    head = f"### {outcome.upper()}{': ' + md(cause) if cause else ''} \u2014 "
    head += f"{md(data.get('client'))} \u2192 {md(data.get('server'))}"
    sni = conn_sni(data)
    lines = [
        head,
        "",
        f"Frames {data.get('first_frame')}\u2013{data.get('last_frame')}; "
        + (f"SNI {md(sni)}" if sni is not None else "no SNI")
        + f"; history {md(data.get('history') or '-')}",
        "",
        f"**Verdict:** {md(data.get('summary'))}",
        "",
    ]
    evidence = data.get("evidence") or []
    if evidence:
        lines.append("**Evidence**")
        lines.append("")
        for e in evidence:
            where = f"frame {e['frame']}" if e.get("frame") is not None else "capture"
            lines.append(f"- \\[{where}\\] {md(e.get('text'))}")
        lines.append("")
    for f in data.get("secondary") or []:
        lines.append(f"- also: {md(f.get('code'))}: {md(f.get('text'))}")
    if data.get("secondary"):
        lines.append("")
    if ladder:
        rows = []
        for ev in ladder:
            arrow = (
                "client \u2192 server" if ev.get("sender") == "client" else "client \u2190 server"
            )
            when = "" if ev.get("time") is None else f"+{float(ev['time']):.3f}s"
            label = str(ev.get("label"))
            rows.append([ev.get("frame"), when, arrow, label])
        lines += ["**Messages**", ""]
        table = list(_table(["frame", "time", "direction", "message"], rows))
        for i, ev in enumerate(ladder):  # bold the alerts
            if ev.get("kind") == "alert":
                cells = [md(c) for c in rows[i]]
                cells[3] = f"**{cells[3]}**"
                table[i + 2] = "| " + " | ".join(cells) + " |"
        lines += [*table, ""]
    for key, title in (
        ("certificates", "Server certificates"),
        ("client_certificates", "Client certificates"),
    ):
        certs = data.get(key) or []
        if not certs:
            continue
        start = data.get("start_time")
        at = float(start) if isinstance(start, int | float) else None
        rows3 = [
            [i, c.get("frame"), c.get("subject") or c.get("error"), ", ".join(c.get("san") or []),
             c.get("issuer"), c.get("not_before"), c.get("not_after"), validity_at(c, at)]
            for i, c in enumerate(certs)
        ]  # fmt: skip
        header = ["#", "frame", "subject", "SAN", "issuer", "not before", "not after", "at capture"]
        lines += [f"**{title}**", "", *_table(header, rows3), ""]
    alerts = data.get("alerts") or []
    if alerts and not ladder:
        lines += [f"- alert: {md(alert_text(a))}" for a in alerts] + [""]
    if data.get("must_act"):
        who = str(data.get("must_act"))
        lines.append(f"**Who must act:** the {md(ACTORS.get(who, who))}")
        lines.append("")
    if data.get("fix"):
        lines.append(f"**Fix:** {md(data.get('fix'))}")
        lines.append("")
    settle = data.get("settle") or []
    if settle:
        lines += ["**What would settle it**", ""]
        for item in settle:
            command = item.get("command")
            lines.append(f"- {md(item.get('text'))}" + (f": `{command}`" if command else ""))
        lines.append("")
    return lines


def markdown_lines(
    reports: Sequence[FileReport], t: Totals, title: str = "tlspcap report"
) -> Iterator[str]:
    """The Markdown report, line by line (connections are read as they are written, so a
    report of any size is written in bounded memory); no trailing blank line."""
    pending = 0  # blank lines held back: the report ends on its last text line
    for line in _markdown_lines(reports, t, title):
        if not line:
            pending += 1
            continue
        yield from [""] * pending
        pending = 0
        yield line


def _markdown_lines(reports: Sequence[FileReport], t: Totals, title: str) -> Iterator[str]:
    yield from [f"# {md(title)}", "", *summary_section(t)]
    for r in reports:
        yield from [f"## {md(r.file)}", ""]
        if r.error:
            yield from [f"Could not be read: {md(r.error)}", ""]
            continue
        m = r.meta
        note = "; the file is truncated, results cover what was there" if m.get("truncated") else ""
        yield from [
            f"{md(m.get('format'))}, {m.get('packets')} packets, "
            f"{len(r.connections)} TLS connection(s) shown{note}",
            "",
        ]
        established = 0
        for c in r.connections:
            if c.data.get("outcome") != ESTABLISHED:
                yield from connection_section(c.data, c.ladder)
            else:
                established += 1
        if established:
            rows = (
                [d.get("client"), d.get("server"), conn_sni(d) or "", conn_version(d),
                 conn_cipher(d), f"{d.get('first_frame')}-{d.get('last_frame')}"]
                for d in (c.data for c in r.connections)
                if d.get("outcome") == ESTABLISHED
            )  # fmt: skip
            yield from [f"### Established ({established})", ""]
            yield from _table(["client", "server", "SNI", "version", "cipher", "frames"], rows)
            yield ""
