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
    "unknown",
)
"""Every cause code (the contract's, plus ``unrecognized_name``, documented in the README)."""


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

    def add(self, frame: int | None, text: str) -> None:
        """Append one piece of evidence."""
        self.evidence.append(Evidence(frame, text))
