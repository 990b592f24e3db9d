"""The verdict of one connection, as every report renders it."""

from __future__ import annotations

from dataclasses import dataclass, field

ESTABLISHED = "established"
FAILED = "failed"
INCOMPLETE = "incomplete"

CAUSES = (
    "protocol_mismatch",
    "cipher_mismatch",
    "sni_missing",
    "unrecognized_name",
    "hostname_mismatch",
    "incomplete_chain",
    "expired_certificate",
    "not_yet_valid_certificate",
    "unknown_ca",
    "client_certificate_required",
    "connection_reset",
    "no_server_response",
    "non_tls_peer",
    "alpn_mismatch",
    "weak_certificate",
    "certificate_usage",
    "revoked_certificate",
    "legacy_renegotiation",
    "weak_key_exchange",
    "tls_interception",
    "middlebox_reset",
    "large_client_hello",
    "path_mtu_blackhole",
    "unknown",
)
"""Every cause code (the contract's, ../shared/CAUSES.md, plus ``unrecognized_name``)."""

PROOF = "proof"
"""The capture shows the cause itself (an alert that names it and the fact it names)."""
OBSERVED = "observed"
"""The capture shows the rejection and a fact that explains it, but not their link."""
INFERRED = "inferred"
"""The cause is the likeliest reading of indirect evidence (timing, sizes, other connections)."""
CONFIDENCES = (PROOF, OBSERVED, INFERRED)


@dataclass(frozen=True, slots=True)
class Evidence:
    """One fact behind a verdict, with the frame a user can open in Wireshark."""

    frame: int | None
    text: str


@dataclass(frozen=True, slots=True)
class Finding:
    """A secondary problem: real, but not what made this handshake fail."""

    code: str
    frame: int | None
    text: str


@dataclass(frozen=True, slots=True)
class Settle:
    """A capture or an option that would settle what this one leaves open."""

    text: str
    """What it would show."""
    command: str | None = None
    """The exact command to get it, when there is one."""


@dataclass(slots=True)
class Verdict:
    """Outcome, cause and the reasoning behind them."""

    outcome: str
    """``established``, ``failed`` or ``incomplete``."""
    cause: str | None = None
    """A code of :data:`CAUSES`; None when established."""
    evidence: list[Evidence] = field(default_factory=list)
    secondary: list[Finding] = field(default_factory=list)
    gave_up: str | None = None
    """``client`` or ``server``: the side that aborted (None when unknown or established)."""
    must_act: str | None = None
    """Who has to change something: ``client``, ``server``, ``both``, or None."""
    summary: str = ""
    """One paragraph in plain words."""
    fix: str = ""
    """What to do about it."""
    confidence: str | None = None
    """How directly the capture shows the cause (:data:`CONFIDENCES`); None when established."""
    settle: list[Settle] = field(default_factory=list)
    """What would settle what the capture leaves open (a fuller capture, a key log, ...)."""

    def add(self, frame: int | None, text: str) -> None:
        """Append one piece of evidence."""
        self.evidence.append(Evidence(frame, text))
