"""The diagnosis: walk each connection's handshake as an engineer reading Wireshark would.

The walk asks, in order: did the client speak TLS (a ClientHello)? did the server answer, and
with what (TLS, plaintext, an alert, a reset, silence)? did the server's certificate pass the
client's checks (at capture time)? did the handshake complete, and was the session then used?
Each rule combines what was offered, what was answered, the certificate and the alert: an
alert's description alone is never trusted, since stacks disagree on which alert they send.
"""

from __future__ import annotations

from collections.abc import Callable

from tlspcap.analyze import CaptureResult
from tlspcap.diagnosis import rules
from tlspcap.diagnosis.advice import ACTORS, FIXES, HEADLINES, MUST_ACT
from tlspcap.diagnosis.context import Context
from tlspcap.diagnosis.knowledge import CaptureKnowledge, Read, learn
from tlspcap.diagnosis.model import ESTABLISHED, INCOMPLETE, Verdict
from tlspcap.diagnosis.options import Options, default_trust
from tlspcap.diagnosis.settle import settle
from tlspcap.facts.model import ConnFacts
from tlspcap.facts.spool import FactsSpool

__all__ = [
    "Options",
    "StreamingDiagnosis",
    "Verdict",
    "default_trust",
    "diagnose",
    "diagnose_capture",
]


def diagnose_capture(result: CaptureResult, options: Options | None = None) -> list[Verdict]:
    """A verdict for every connection of a capture, in the same order."""
    opts = options or Options()
    if opts.trust is None:
        opts.trust = default_trust()
    know = learn(result.connections)
    return [diagnose(c, know, opts, result.last_ts) for c in result.connections]


class StreamingDiagnosis:
    """Verdicts for connections handed over as they close, in bounded memory.

    Each connection's facts are learnt (:meth:`CaptureKnowledge.learn`) and diagnosed at once;
    a verdict that read no capture-wide fact cannot change later and goes straight to ``emit``.
    The others wait for :meth:`finish`, with the facts they read and those facts' versions then:
    a verdict whose facts are all still the same there is the verdict :func:`diagnose_capture`
    would give, and is emitted as it is; the others are diagnosed again with everything the
    capture taught. Waiting means the facts, verdict and reads are appended to a
    :class:`~tlspcap.facts.spool.FactsSpool` (on disk when a directory is given): memory does
    not grow with the number waiting, and no cap makes a verdict depend on the capture's size.
    """

    def __init__(
        self,
        opts: Options,
        emit: Callable[[ConnFacts, Verdict], None],
        spool_dir: str | None = None,
    ) -> None:
        """Verdicts go to ``emit`` (deferred ones in the order they were handed over);
        deferred facts wait in a file in ``spool_dir`` (in memory when None)."""
        if opts.trust is None:
            opts.trust = default_trust()
        self.opts = opts
        self.know = CaptureKnowledge(spool_dir)
        self._emit = emit
        self._deferred: FactsSpool[tuple[ConnFacts, Verdict, tuple[Read, ...]]]
        self._deferred = FactsSpool(spool_dir)
        self.deferred = 0
        """Connections whose verdict waited for the end of the capture."""
        self.rediagnosed = 0
        """Of those, the ones diagnosed again at the end (what they had read had changed)."""

    def add(self, facts: ConnFacts) -> None:
        """Take one finished connection's facts."""
        know = self.know
        know.learn(facts)
        verdict = diagnose(facts, know, self.opts, None)
        if not know.consulted:
            self._emit(facts, verdict)
            return
        self._deferred.add((facts, verdict, tuple(know.reads)))
        self.deferred += 1

    def finish(self, capture_end: float | None) -> None:
        """The capture ended at ``capture_end``: emit the connections held back."""
        try:
            for facts, verdict, reads in self._deferred.drain():
                if not self.know.unchanged(reads):
                    verdict = diagnose(facts, self.know, self.opts, capture_end)
                    self.rediagnosed += 1
                self._emit(facts, verdict)
        finally:
            self.know.close()

    def discard(self) -> None:
        """Drop what waits (the analysis failed)."""
        self._deferred.discard()
        self.know.close()


def diagnose(
    facts: ConnFacts, know: CaptureKnowledge, opts: Options, capture_end: float | None
) -> Verdict:
    """The verdict of one connection: a function of its facts, the capture-wide knowledge and
    the options (and the capture's end, once known). ``know.reads`` lists what it read of the
    knowledge (:meth:`CaptureKnowledge.unchanged` tells whether that is still the same)."""
    know.reads.clear()
    ctx = Context(facts, know, opts, capture_end)
    verdict = rules.walk(ctx)
    _finish(verdict)
    verdict.settle = settle(facts, verdict)
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
        parts.append(f"The {ACTORS.get(v.must_act, v.must_act)} must act: {v.fix}")
    return " ".join(p for p in parts if p)
