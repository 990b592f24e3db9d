"""Reports over many captures: the per-file report model, filters, totals, CSV/JSON summaries.

A :class:`FileReport` is what the batch runner's workers send back (plain, picklable data: the
JSON contract's dicts plus, when the run's formats show them, pre-rendered text lines and ladder
events), so every requested format can be rendered in the parent process without the capture or
the parsed sessions.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol, TextIO

from tlspcap.diagnosis.model import CAUSES, ESTABLISHED, FAILED, INCOMPLETE
from tlspcap.report.contract import Json
from tlspcap.report.jsonfmt import SCHEMA_VERSION, write_document
from tlspcap.report.spool import SpooledConnections
from tlspcap.report.text import sanitize
from tlspcap.tls.registry import cipher_name, is_grease, version_name

OUTCOMES = (FAILED, INCOMPLETE, ESTABLISHED)
"""Outcomes in the order reports list them."""

CSV_COLUMNS = (
    "file",
    "client",
    "server",
    "sni",
    "version",
    "cipher",
    "outcome",
    "cause",
    "gave_up",
    "must_act",
    "first_alert",
    "error",
)
"""Columns of ``summary.csv`` (one row per connection, one per unreadable file)."""

MAX_SERVER_TOTALS = 10_000
"""Servers counted apart in the totals; the connections to any further server are counted
under :data:`OTHER_SERVERS` (totals stay small whatever the input)."""
OTHER_SERVERS = "(other servers)"
MAX_SNIS_PER_SERVER = 100
"""Distinct SNI names listed per server in the totals."""

_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


@dataclass(slots=True)
class ConnectionReport:
    """One connection as the requested formats render it.

    ``data`` is always there (JSON, CSV, totals and filters read it); the text block and the
    ladder events are built only when a format that shows them was asked for (None otherwise),
    and reading one that was not built raises :class:`MissingReportPart`.
    """

    data: Json
    """The contract's connection dict (``jsonfmt.connection_to_dict``)."""
    text_block: list[str] | None = None
    """The text report's block (``text.connection_block``), already sanitized; None: not built."""
    ladder_events: list[Json] | None = None
    """Message sequence for the ladder diagram (``html.ladder_events``); None: not built."""

    @property
    def text(self) -> list[str]:
        """The text block (for the text format)."""
        if self.text_block is None:
            raise MissingReportPart("the text block was not built (text format not requested)")
        return self.text_block

    @property
    def ladder(self) -> list[Json]:
        """The ladder events (for the HTML and Markdown formats)."""
        if self.ladder_events is None:
            raise MissingReportPart(
                "the ladder events were not built (html/markdown format not requested)"
            )
        return self.ladder_events


class MissingReportPart(RuntimeError):
    """A renderer asked for a part of a connection report that its run did not build."""


@dataclass(slots=True)
class FileReport:
    """One capture file's results, ready to render."""

    meta: Json
    """The contract's capture dict without ``connections`` (file, error, format, packets…)."""
    connections: Sequence[ConnectionReport] = field(default_factory=list)
    """In start order: a list, or a :class:`~tlspcap.report.spool.SpooledConnections`."""
    size: int = 0
    """Size of the file in bytes (for progress)."""

    @property
    def file(self) -> str:
        """The capture's path as given."""
        return str(self.meta["file"])

    @property
    def error(self) -> str | None:
        """Why the file could not be read, or None."""
        err = self.meta.get("error")
        return None if err is None else str(err)

    def filtered(self, keep: Callable[[ConnectionReport], bool]) -> FileReport:
        """The same report with only the connections ``keep`` accepts."""
        conns = self.connections
        if isinstance(conns, SpooledConnections):
            return replace(self, connections=conns.filter(keep))
        return replace(self, connections=[c for c in conns if keep(c)])


def error_report(file: str, error: str, size: int = 0) -> FileReport:
    """A report for a file that could not be analysed at all."""
    meta: Json = {
        "file": file,
        "error": error,
        "format": None,
        "packets": 0,
        "truncated": False,
        "anomalies": [],
    }
    return FileReport(meta=meta, size=size)


# ---- facts of one connection dict ---------------------------------------------------------
def conn_sni(data: Json) -> str | None:
    """The first server_name the client asked for."""
    for ch in data.get("client_hellos", []):
        if ch.get("sni") is not None:
            return str(ch["sni"])
    return None


def conn_server_hello(data: Json) -> Json | None:
    """The ServerHello that chose the parameters (the last one that is not a retry request)."""
    chosen = None
    for sh in data.get("server_hellos", []):
        if not sh.get("hello_retry_request"):
            chosen = sh
    return chosen


def conn_version(data: Json) -> str:
    """Negotiated version name, or an empty string."""
    sh = conn_server_hello(data)
    return version_name(int(sh["version"])) if sh is not None else ""


def conn_cipher(data: Json) -> str:
    """Negotiated cipher suite name, or an empty string."""
    sh = conn_server_hello(data)
    return cipher_name(int(sh["cipher_suite"])) if sh is not None else ""


def alert_text(alert: Json) -> str:
    """An alert dict in words: ``server fatal handshake_failure (frame 23)``."""
    if alert.get("encrypted") and alert.get("description") is None:
        what = "encrypted alert"
    else:
        what = f"{alert.get('level') or '?'} {alert.get('description') or '?'}"
    return f"{alert.get('sender')} {what} (frame {alert.get('frame')})"


def first_alert(data: Json) -> str:
    """The first alert of a connection in words, or an empty string."""
    alerts = data.get("alerts", [])
    return alert_text(alerts[0]) if alerts else ""


# ---- filters ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ServerFilter:
    """``--server HOST[:PORT]``: HOST matches the server address or the SNI."""

    host: str | None
    port: int | None

    def matches(self, data: Json) -> bool:
        """Whether a connection dict talks to this server."""
        addr, _, port = str(data.get("server", "")).rpartition(":")
        addr = addr.strip("[]").lower()
        if self.port is not None and port != str(self.port):
            return False
        if self.host is None:
            return True
        sni = (conn_sni(data) or "").lower()
        return self.host in (addr, sni)


def parse_server_filter(spec: str) -> ServerFilter:
    """Parse ``HOST``, ``HOST:PORT``, ``:PORT``, ``[V6]:PORT`` or a bare IPv6 address."""
    spec = spec.strip()
    host: str | None
    port_text: str | None = None
    if spec.startswith("["):
        end = spec.find("]")
        if end < 0:
            raise ValueError(f"--server {spec!r}: missing ']'")
        host, rest = spec[1:end], spec[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"--server {spec!r}: expected ':PORT' after ']'")
            port_text = rest[1:]
    elif spec.count(":") == 1:
        host, port_text = spec.split(":")
    else:
        host = spec
    port = None
    if port_text is not None:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"--server {spec!r}: the port must be a number from 1 to 65535")
        port = int(port_text)
    host = host.lower() or None
    if host is None and port is None:
        raise ValueError("--server needs a host, a port or both")
    return ServerFilter(host, port)


@dataclass(frozen=True, slots=True)
class Filters:
    """Which connections a report shows."""

    only_failures: bool = False
    """Only connections whose outcome is ``failed``."""
    servers: tuple[ServerFilter, ...] = ()
    """Any of these servers (none given: every server)."""
    snis: tuple[str, ...] = ()
    """Any of these SNI names, shell patterns allowed (``*.example.com``), case-insensitive."""

    def keep(self, data: Json) -> bool:
        """Whether a connection dict passes every filter."""
        if self.only_failures and data.get("outcome") != FAILED:
            return False
        if self.servers and not any(s.matches(data) for s in self.servers):
            return False
        if self.snis:
            sni = conn_sni(data)
            if sni is None:
                return False
            sni = sni.lower()
            if not any(fnmatch.fnmatchcase(sni, p.lower()) for p in self.snis):
                return False
        return True


def apply_filters(reports: Sequence[FileReport], filters: Filters) -> tuple[list[FileReport], int]:
    """Keep the connections that pass ``filters``; also return how many were left out."""
    out: list[FileReport] = []
    hidden = 0
    if filters == Filters():
        return list(reports), 0
    for r in reports:
        kept = r.filtered(lambda c: filters.keep(c.data))
        hidden += len(r.connections) - len(kept.connections)
        out.append(kept)
    return out, hidden


# ---- totals -------------------------------------------------------------------------------
@dataclass(slots=True)
class ServerTotals:
    """Outcomes and causes of the connections to one server."""

    outcomes: Counter[str] = field(default_factory=Counter)
    causes: Counter[str] = field(default_factory=Counter)
    snis: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Totals:
    """Counts across every capture of a run."""

    files: int = 0
    connections: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    causes: Counter[str] = field(default_factory=Counter)
    """Causes of connections that did not establish."""
    servers: dict[str, ServerTotals] = field(default_factory=dict)
    errors: list[tuple[str, str]] = field(default_factory=list)
    """(file, error) of the files that could not be read."""
    skipped: int = 0
    """Files in the directories walked that are not captures."""
    hidden: int = 0
    """Connections the filters left out."""

    @property
    def failed(self) -> int:
        """Connections whose handshake failed."""
        return self.outcomes[FAILED]


Brief = tuple[str, str | None, str, str | None]
"""What the totals need of a connection: (outcome, cause, server, SNI)."""


def brief(data: Json) -> Brief:
    """A connection dict's :data:`Brief`."""
    cause = data.get("cause")
    return (
        str(data.get("outcome")),
        None if cause is None else str(cause),
        str(data.get("server")),
        conn_sni(data),
    )


def _briefs(connections: Sequence[ConnectionReport]) -> Iterable[Brief]:
    if isinstance(connections, SpooledConnections):
        return connections.briefs()  # kept beside each report: no JSON to decode
    return (brief(c.data) for c in connections)


def totals(reports: Iterable[FileReport], skipped: int = 0, hidden: int = 0) -> Totals:
    """Count outcomes and causes, overall and per server."""
    t = Totals(skipped=skipped, hidden=hidden)
    for r in reports:
        count_file(t, r.file, r.error, _briefs(r.connections))
    return t


def count_file(t: Totals, file: str, error: str | None, briefs: Iterable[Brief]) -> None:
    """Add one capture to ``t``: its error, then its connections' briefs, in start order
    (files are counted in input order: the caps on servers and names keep the first ones)."""
    t.files += 1
    if error:
        t.errors.append((file, error))
    for outcome, cause, server, sni in briefs:
        t.connections += 1
        t.outcomes[outcome] += 1
        if server not in t.servers and len(t.servers) >= MAX_SERVER_TOTALS:
            server = OTHER_SERVERS
        srv = t.servers.setdefault(server, ServerTotals())
        srv.outcomes[outcome] += 1
        if outcome != ESTABLISHED and cause:
            t.causes[cause] += 1
            srv.causes[cause] += 1
        if sni is not None and len(srv.snis) < MAX_SNIS_PER_SERVER and sni not in srv.snis:
            srv.snis.append(sni)


def servers_by_failures(t: Totals) -> list[tuple[str, ServerTotals]]:
    """The per-server totals, most failed connections first, then by name (every report lists
    servers in this order)."""
    return sorted(t.servers.items(), key=lambda kv: (-kv[1].outcomes[FAILED], kv[0]))


def _cause_order(counter: Counter[str]) -> list[tuple[str, int]]:
    rank = {c: i for i, c in enumerate(CAUSES)}
    return sorted(counter.items(), key=lambda kv: (-kv[1], rank.get(kv[0], len(rank)), kv[0]))


def outcome_words(outcomes: Counter[str]) -> str:
    """``3 failed, 1 established`` (outcomes with no connection left out)."""
    parts = [f"{outcomes[o]} {o}" for o in OUTCOMES if outcomes[o]]
    parts += [f"{n} {o}" for o, n in sorted(outcomes.items()) if o not in OUTCOMES and n]
    return ", ".join(parts) or "none"


def cause_words(causes: Counter[str]) -> str:
    """``sni_missing 3, unknown_ca 1``, most frequent first."""
    return ", ".join(f"{c} {n}" for c, n in _cause_order(causes))


def summary_lines(t: Totals) -> list[str]:
    """The summary that opens the text report (plain text, sanitized)."""
    lines = [
        f"Summary: {t.files} file(s), {t.connections} TLS connection(s): "
        f"{outcome_words(t.outcomes)}"
    ]
    if t.causes:
        lines.append(f"  causes (not established): {cause_words(t.causes)}")
    if t.servers:
        lines.append("  per server:")
        width = max(len(s) for s in t.servers)
        for server, st in servers_by_failures(t):
            line = f"    {server:<{width}}  {outcome_words(st.outcomes)}"
            if st.causes:
                line += f" ({cause_words(st.causes)})"
            if st.snis:
                shown = st.snis[:5]
                more = f" +{len(st.snis) - 5} more" if len(st.snis) > 5 else ""
                line += f"  SNI {', '.join(shown)}{more}"
            lines.append(line)
    for file, error in t.errors:
        lines.append(f"  error: {file}: {error}")
    if t.skipped:
        lines.append(f"  skipped: {t.skipped} file(s) that are not captures")
    if t.hidden:
        lines.append(f"  hidden by filters: {t.hidden} connection(s)")
    return [sanitize(line) for line in lines]


# ---- the text report ----------------------------------------------------------------------
_RESET = "\x1b[0m"
_STYLE = {
    FAILED: "\x1b[1;31m",
    INCOMPLETE: "\x1b[1;33m",
    ESTABLISHED: "\x1b[32m",
    "head": "\x1b[1m",
    "fix": "\x1b[36m",
}


def _paint(line: str, style: str, colour: bool) -> str:
    return f"{_STYLE[style]}{line}{_RESET}" if colour else line


def established_line(data: Json) -> str:
    """One line for a connection that did not fail (sanitized)."""
    parts = [f"  ok  {data.get('client')} -> {data.get('server')}"]
    sni = conn_sni(data)
    if sni is not None:
        parts.append(f"SNI {sni}")
    hellos = data.get("client_hellos") or []
    if hellos:
        offered = hellos[0].get("supported_versions") or [hellos[0].get("legacy_version")]
        names = [version_name(v) for v in offered if isinstance(v, int) and not is_grease(v)]
        parts.append("offers " + "/".join(names))
    version, cipher = conn_version(data), conn_cipher(data)
    if version:
        parts.append(f"chose {version} {cipher}")
    parts.append(f"frames {data.get('first_frame')}-{data.get('last_frame')}")
    alerts = data.get("alerts") or []
    if alerts:
        parts.append("alerts: " + "; ".join(alert_text(a) for a in alerts[:3]))
    if data.get("ended"):
        parts.append(f"ended: {data['ended']}")
    findings = sorted({str(f.get("code")) for f in data.get("secondary") or []})
    if findings:
        parts.append("findings: " + ", ".join(findings))
    return sanitize("  ".join(parts))


def text_lines(reports: Sequence[FileReport], t: Totals, colour: bool = False) -> Iterator[str]:
    """The terminal report, line by line: the summary, then per capture one block per
    connection that did not establish and one line per established one. ANSI colour only when
    ``colour``."""
    for i, line in enumerate(summary_lines(t)):
        yield _paint(line, "head", colour) if i == 0 else line
    for r in reports:
        if r.error:  # named with its error in the summary above
            continue
        yield ""
        m = r.meta
        head = f"== {r.file} ({m.get('format')}, {m.get('packets')} packets, "
        head += f"{len(r.connections)} TLS connection(s) shown)"
        yield _paint(sanitize(head), "head", colour)
        if m.get("truncated"):
            yield "  note: the file is truncated; results cover what was there"
        for a in m.get("anomalies", []):
            yield sanitize(f"  anomaly: {a['name']} (frame {a['frame']}) {a['detail']}")
        for c in r.connections:
            outcome = str(c.data.get("outcome"))
            if outcome == ESTABLISHED:
                yield _paint(established_line(c.data), ESTABLISHED, colour)
                continue
            yield ""
            for i, line in enumerate(c.text):
                if i == 0:
                    line = _paint(line, outcome if outcome in _STYLE else FAILED, colour)
                elif line.startswith(("  Fix:", "  Who must act:")):
                    line = _paint(line, "fix", colour)
                elif line.startswith("  Verdict:"):
                    line = _paint(line, "head", colour)
                yield line


# ---- JSON document and machine summaries --------------------------------------------------
def write_json_document(out: TextIO, reports: Sequence[FileReport]) -> None:
    """Stream the JSON document of the contract to ``out`` (:func:`jsonfmt.write_document`)."""
    write_document(out, ((r.meta, _json_texts(r.connections)) for r in reports))


def _json_texts(connections: Sequence[ConnectionReport]) -> Iterable[str]:
    """The connections' contract dicts as JSON text (straight from a spool when spooled)."""
    if isinstance(connections, SpooledConnections):
        return connections.json_texts()
    return (json.dumps(c.data, ensure_ascii=False) for c in connections)


def csv_cell(value: object) -> str:
    """A CSV cell that spreadsheets will not run as a formula (leading ``'`` when needed)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_PREFIXES) else text


Row = dict[str, str | None]
"""One row of ``summary.csv`` (and of ``summary.json``'s ``connections``): raw values by
column name."""


def summary_rows(reports: Sequence[FileReport]) -> Iterator[Row]:
    """One row per connection (and one per unreadable file), raw values, by column name."""
    for r in reports:
        if r.error:
            yield error_row(r.file, r.error)
            continue
        for c in r.connections:
            yield connection_row(r.file, c.data)


def error_row(file: str, error: str) -> Row:
    """The row of a file that could not be read."""
    row: Row = dict.fromkeys(CSV_COLUMNS)
    row.update(file=file, outcome="error", error=error)
    return row


def connection_row(file: str, d: Json) -> Row:
    """The row of one connection dict of ``file``."""
    return {
        "file": file,
        "client": d.get("client"),
        "server": d.get("server"),
        "sni": conn_sni(d),
        "version": conn_version(d) or None,
        "cipher": conn_cipher(d) or None,
        "outcome": d.get("outcome"),
        "cause": d.get("cause"),
        "gave_up": d.get("gave_up"),
        "must_act": d.get("must_act"),
        "first_alert": first_alert(d) or None,
        "error": None,
    }


def write_summary_csv(out: TextIO, reports: Sequence[FileReport]) -> None:
    """``summary.csv``: a header, then one row per connection; cells are formula-safe."""
    write_csv_header(out)
    write_csv_rows(out, summary_rows(reports))


def write_csv_header(out: TextIO) -> None:
    """The header line of ``summary.csv``."""
    csv.writer(out, lineterminator="\n").writerow(CSV_COLUMNS)


class TextSink(Protocol):
    """Where text is written: a text file, or anything with its ``write``."""

    def write(self, text: str, /) -> object:
        """Write ``text``."""


def write_csv_rows(out: TextSink, rows: Iterable[Row]) -> None:
    """Lines of ``summary.csv`` for ``rows`` (formula-safe cells)."""
    writer = csv.writer(out, lineterminator="\n")
    for row in rows:
        writer.writerow([csv_cell(row[col]) for col in CSV_COLUMNS])


def row_json(row: Row) -> str:
    """A row as one line of JSON text, as ``summary.json`` lists it."""
    return json.dumps(row, ensure_ascii=False)


def totals_csv(t: Totals) -> str:
    """``totals.csv``: connections by outcome and cause across all files."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(("outcome", "cause", "connections"))
    for outcome in OUTCOMES:
        if t.outcomes[outcome]:
            writer.writerow((outcome, "", t.outcomes[outcome]))
    for cause, n in _cause_order(t.causes):
        writer.writerow(("", csv_cell(cause), n))
    return buf.getvalue()


def write_summary_json(
    out: TextIO,
    reports: Sequence[FileReport],
    t: Totals,
    written: dict[str, list[str]] | None = None,
) -> None:
    """``summary.json``: files, totals by outcome, cause and server, and the CSV's rows (one
    per line, streamed)."""
    written = written or {}
    files = (
        file_entry(
            r.file,
            r.error,
            len(r.connections),
            sum(1 for c in r.connections if c.data.get("outcome") == FAILED),
            written.get(r.file, []),
        )
        for r in reports
    )
    write_summary_document(out, files, t, (row_json(row) for row in summary_rows(reports)))


def file_entry(
    file: str, error: str | None, connections: int, failed: int, reports: list[str]
) -> Json:
    """One capture's entry in ``summary.json``'s ``files``."""
    return {
        "file": file,
        "error": error,
        "connections": connections,
        "failed": failed,
        "reports": reports,
    }


def write_summary_document(
    out: TextIO, files: Iterable[Json], t: Totals, rows: Iterable[str]
) -> None:
    """``summary.json`` from its parts, streamed: the files' entries (:func:`file_entry`), the
    totals, and the rows as JSON text (:func:`row_json`), in input order."""
    doc = {
        "schema_version": SCHEMA_VERSION,
        "files": [],
        "skipped_files": t.skipped,
        "hidden_by_filters": t.hidden,
        "totals": {
            "files": t.files,
            "unreadable_files": len(t.errors),
            "connections": t.connections,
            "by_outcome": {o: t.outcomes[o] for o in OUTCOMES},
            "by_cause": dict(_cause_order(t.causes)),
            "by_server": {
                server: {
                    "by_outcome": {o: st.outcomes[o] for o in OUTCOMES},
                    "by_cause": dict(_cause_order(st.causes)),
                    "sni": st.snis,
                }
                for server, st in sorted(t.servers.items())
            },
        },
        "connections": [],
    }
    text = json.dumps(doc, indent=2, ensure_ascii=False)
    head, tail = text.rsplit('"connections": []', 1)
    before, after = head.split('"files": []', 1)  # keys come first: no value holds this text
    out.write(before + '"files": [')
    sep = "\n    "
    for entry in files:  # nested two levels deep, as json.dumps(doc, indent=2) puts it
        out.write(sep + json.dumps(entry, indent=2, ensure_ascii=False).replace("\n", "\n    "))
        sep = ",\n    "
    out.write(("]" if sep == "\n    " else "\n  ]") + after + '"connections": [')
    sep = "\n    "
    for line in rows:
        out.write(sep + line)
        sep = ",\n    "
    out.write(("]" if sep == "\n    " else "\n  ]") + tail + "\n")
