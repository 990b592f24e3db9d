"""The JSON document of ../shared/CAUSES.md (``tlspcap analyze --format json``)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Sequence
from typing import TextIO

from tlspcap.analyze import CaptureResult
from tlspcap.diagnosis.engine import Verdict
from tlspcap.facts.model import ConnFacts
from tlspcap.report import text
from tlspcap.report.contract import (
    Json,
    alert_facts,
    certificate_facts,
    client_hello_facts,
    endpoints,
    server_hello_facts,
)
from tlspcap.stacks import likely_stack
from tlspcap.tls.messages import ClientHello

SCHEMA_VERSION = "1.1"
"""1.1: the cause codes added in ../shared/CAUSES.md (alpn_mismatch ... path_mtu_blackhole)."""


def connection_to_dict(conn: ConnFacts, verdict: Verdict) -> Json:
    """One connection: endpoints, verdict, and the handshake facts."""
    s = conn
    client, server = endpoints(conn)
    return {
        "client": client,
        "server": server,
        "roles_from": "unknown" if conn.role_from == "first_packet" else conn.role_from,
        "outcome": verdict.outcome,
        "cause": verdict.cause,
        "gave_up": verdict.gave_up,
        "must_act": verdict.must_act,
        "summary": verdict.summary,
        "fix": verdict.fix,
        "evidence": [{"frame": e.frame, "text": e.text} for e in verdict.evidence],
        "secondary": [
            {"code": f.code, "frame": f.frame, "text": f.text} for f in verdict.secondary
        ],
        "confidence": verdict.confidence,
        "settle": [{"text": x.text, "command": x.command} for x in verdict.settle],
        "alerts": [alert_facts(a) for a in s.alerts],
        "client_hellos": [client_hello_facts(ch) for ch in s.client_hellos],
        "server_hellos": [server_hello_facts(sh) for sh in s.server_hellos],
        "certificates": certificate_facts(s, "server"),
        "client_certificates": certificate_facts(s, "client"),
        "history": s.history,
        "ended": text.ended(conn),
        "likely_client": _likely_client(s.client_hellos),
        "first_frame": conn.first_frame,
        "last_frame": conn.last_frame,
        "start_time": conn.first_ts,
        "end_time": conn.last_ts,
        "tunnel": conn.tunnel,
        "anomalies": [{"name": a.name, "frame": a.frame, "detail": a.detail} for a in s.anomalies],
    }


def _likely_client(hellos: Sequence[ClientHello]) -> Json | None:
    hint = likely_stack(hellos[0]) if hellos else None
    return {"name": hint.name, "hint": hint.hint} if hint else None


def capture_meta(result: CaptureResult) -> Json:
    """One capture's entry of the ``captures`` list, without its ``connections``."""
    return {
        "file": result.file,
        "error": result.error,
        "format": result.format,
        "packets": result.packets,
        "truncated": result.truncated,
        "anomalies": [
            {"name": a.name, "frame": a.frame, "detail": a.detail} for a in result.anomalies
        ],
    }


def capture_to_dict(result: CaptureResult, verdicts: Sequence[Verdict] | None = None) -> Json:
    """One capture's entry of the ``captures`` list (its connections kept in ``result``)."""
    if verdicts is None:
        from tlspcap.diagnosis.engine import diagnose_capture

        verdicts = diagnose_capture(result)
    return {
        **capture_meta(result),
        "connections": [
            connection_to_dict(c, v) for c, v in zip(result.connections, verdicts, strict=True)
        ],
    }


def write_document(out: TextIO, captures: Iterable[tuple[Json, Iterable[str]]]) -> None:
    """Write the JSON document for ``(capture meta, connections)`` pairs to ``out``; each
    connection is its contract dict as one line of JSON text (``json.dumps(d,
    ensure_ascii=False)``).

    Streamed, one connection per line (a report of any size is written in bounded memory and
    stays greppable)::

        {
          "schema_version": "1.1",
          "captures": [
            {"file": "a.pcap", ..., "connections": [
              {"client": "10.0.0.1:50000", ...},
              ...
            ]}
          ]
        }
    """
    out.write('{\n  "schema_version": ' + json.dumps(SCHEMA_VERSION) + ',\n  "captures": [')
    first_capture = True
    for meta, connections in captures:
        head = json.dumps({**meta, "connections": []}, ensure_ascii=False)
        out.write(("\n" if first_capture else ",\n") + "    " + head[:-2])
        first_capture = False
        sep = "\n      "
        for line in connections:
            out.write(sep + line)
            sep = ",\n      "
        out.write("]}" if sep == "\n      " else "\n    ]}")
    out.write("\n  ]\n}\n" if not first_capture else "]\n}\n")


def render(
    results: Sequence[CaptureResult], verdicts: Sequence[Sequence[Verdict]] | None = None
) -> str:
    """The whole JSON document for any number of captures (see :func:`write_document`)."""
    per_file = verdicts if verdicts is not None else [None] * len(results)
    buf = io.StringIO()
    write_document(
        buf,
        (
            (
                capture_meta(r),
                [json.dumps(d, ensure_ascii=False) for d in capture_to_dict(r, v)["connections"]],
            )
            for r, v in zip(results, per_file, strict=True)
        ),
    )
    return buf.getvalue()
