"""The diagnosis: walk each connection's handshake as an engineer reading Wireshark would.

The walk asks, in order: did the client speak TLS (a ClientHello)? did the server answer, and
with what (TLS, plaintext, an alert, a reset, silence)? did the server's certificate pass the
client's checks (at capture time)? did the handshake complete, and was the session then used?
Each rule combines what was offered, what was answered, the certificate and the alert: an
alert's description alone is never trusted, since stacks disagree on which alert they send.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from tlspcap.analyze import CaptureResult
from tlspcap.anomaly import Anomaly
from tlspcap.diagnosis import rules
from tlspcap.diagnosis.advice import FIXES, HEADLINES, MUST_ACT
from tlspcap.diagnosis.certcheck import TrustStore
from tlspcap.diagnosis.context import Context
from tlspcap.diagnosis.knowledge import CaptureKnowledge, learn
from tlspcap.diagnosis.model import ESTABLISHED, INCOMPLETE, Verdict
from tlspcap.tcp.tracker import TcpConnection

__all__ = ["Options", "StreamingDiagnosis", "Verdict", "diagnose", "diagnose_capture"]

MAX_DEFERRED = 1_000
"""Connections held back at once until the end of the capture because their verdict read
capture-wide facts (other connections to the server, certificates seen elsewhere, the capture's
end); past this the oldest is diagnosed with the facts known so far."""


@dataclass(slots=True)
class Options:
    """What the user knows beyond the capture."""

    trust: TrustStore | None = None
    """Trust anchors (default: Mozilla's roots from certifi)."""
    host: str | None = None
    """Name to check certificates against when the client sent no SNI."""
    server_ciphers: frozenset[int] | None = None
    """Cipher suites the server accepts (from --server-ciphers or --nginx-conf)."""
    server_protocols: frozenset[int] | None = None
    """Versions the server accepts (from --server-protocols or --nginx-conf)."""
    keylog: dict[str, dict[bytes, bytes]] = field(default_factory=dict)
    """Key-log secrets (label -> client random -> secret); used by TLS 1.3 decryption."""


_DEFAULT_TRUST: TrustStore | None = None


def default_trust() -> TrustStore:
    """Mozilla's roots as shipped by certifi (loaded once)."""
    global _DEFAULT_TRUST
    if _DEFAULT_TRUST is None:
        import certifi

        from tlspcap.diagnosis.certcheck import load_pem_roots

        with open(certifi.where(), "rb") as fh:
            _DEFAULT_TRUST = TrustStore(load_pem_roots(fh.read()))
    return _DEFAULT_TRUST


def diagnose_capture(result: CaptureResult, options: Options | None = None) -> list[Verdict]:
    """A verdict for every connection of a capture, in the same order."""
    opts = options or Options()
    if opts.trust is None:
        opts.trust = default_trust()
    know = learn(result.connections)
    return [diagnose(c, know, opts, result.last_ts) for c in result.connections]


class StreamingDiagnosis:
    """Verdicts for connections handed over as they close, in bounded memory.

    Each connection is learnt (:meth:`CaptureKnowledge.learn`) and diagnosed at once; a verdict
    that read no capture-wide fact cannot change later and goes straight to ``emit`` (so the
    connection can be dropped). The others wait for :meth:`finish`, which diagnoses them again
    with everything the capture taught, as :func:`diagnose_capture` would. At most
    :data:`MAX_DEFERRED` wait: past that the oldest is emitted with the facts known then (and a
    ``diagnosed_early`` anomaly saying so).
    """

    def __init__(
        self,
        opts: Options,
        emit: Callable[[TcpConnection, Verdict], None],
        max_deferred: int = MAX_DEFERRED,
    ) -> None:
        """Verdicts go to ``emit`` (deferred ones in the order they were handed over)."""
        if opts.trust is None:
            opts.trust = default_trust()
        self.opts = opts
        self.know = CaptureKnowledge()
        self._emit = emit
        self._deferred: deque[TcpConnection] = deque()
        self._max_deferred = max_deferred

    def add(self, conn: TcpConnection) -> None:
        """Take one finished connection."""
        self.know.learn(conn)
        self.know.consulted = False
        verdict = diagnose(conn, self.know, self.opts, None)
        if not self.know.consulted:
            self._emit(conn, verdict)
            return
        self._deferred.append(conn)
        if len(self._deferred) > self._max_deferred:
            early = self._deferred.popleft()
            early.session.anomalies.append(
                Anomaly(
                    "diagnosed_early",
                    None,
                    f"more than {self._max_deferred} connections waited for capture-wide facts:"
                    " this one was diagnosed with the facts known when it closed",
                )
            )
            self._emit(early, diagnose(early, self.know, self.opts, early.last_ts))

    def finish(self, capture_end: float | None) -> None:
        """The capture ended at ``capture_end``: emit the connections held back."""
        while self._deferred:
            conn = self._deferred.popleft()
            self._emit(conn, diagnose(conn, self.know, self.opts, capture_end))


def diagnose(
    conn: TcpConnection, know: CaptureKnowledge, opts: Options, capture_end: float | None
) -> Verdict:
    """The verdict of one connection."""
    ctx = Context(conn, know, opts, capture_end)
    verdict = rules.walk(ctx)
    _finish(verdict)
    return verdict


def _finish(v: Verdict) -> None:
    """Fill who must act, the fix and the summary paragraph from the cause and evidence."""
    if v.outcome == ESTABLISHED or v.cause is None:
        if not v.summary:
            v.summary = "The handshake completed and the session was used."
        return
    v.must_act = v.must_act or MUST_ACT.get(v.cause)
    v.fix = v.fix or FIXES[v.cause]
    if not v.summary:
        v.summary = summarize(v)


def summarize(v: Verdict) -> str:
    """The paragraph a senior engineer would paste into a ticket."""
    head = HEADLINES[v.cause or "unknown"]
    facts = "; ".join(
        e.text + (f" (frame {e.frame})" if e.frame is not None else "") for e in v.evidence
    )
    if v.outcome == INCOMPLETE and v.cause == "unknown":
        lead = "Incomplete: the capture does not show how the handshake ended."
    elif v.outcome == INCOMPLETE:
        lead = f"Incomplete: {head}, as far as the capture shows."
    else:
        lead = f"Handshake failed: {head}."
    parts = [lead, facts[0].upper() + facts[1:] + "." if facts else ""]
    if v.gave_up:
        parts.append(f"The {v.gave_up} gave up.")
    if v.must_act and v.outcome != INCOMPLETE:
        parts.append(f"The {v.must_act} must act: {v.fix}")
    return " ".join(p for p in parts if p)
