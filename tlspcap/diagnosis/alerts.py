"""What a client's fatal alert alone says, when what it rejected is not in the capture.

Stacks disagree on which alert they send for which certificate problem (see the table in
``../shared/research/real-world-causes.md``): OpenSSL and Java send certificate_expired for an
expired certificate, Go sends bad_certificate for everything. So an alert names a cause only
where every stack that sends it means that cause; otherwise it narrows the candidates, which
are listed, and the cause stays ``unknown`` until the certificate itself is seen.
"""

from __future__ import annotations

from dataclasses import dataclass

from tlspcap.diagnosis.model import INFERRED, OBSERVED
from tlspcap.tls.messages import Alert

A_CERT_EXPIRED = 45
A_BAD_CERT = 42
A_UNSUPPORTED_CERT = 43
A_CERT_UNKNOWN = 46
A_UNKNOWN_CA = 48
A_PROTOCOL_VERSION = 70


@dataclass(frozen=True, slots=True)
class AlertCause:
    """What one client alert establishes on its own."""

    code: str
    """The cause (``unknown`` when the alert only narrows the candidates)."""
    confidence: str | None
    text: str
    """The evidence line saying why."""
    also: tuple[str, ...] = ()
    """Candidate causes the alert leaves open."""
    must_act: str | None = None


_CAUSES: dict[int, AlertCause] = {
    A_CERT_EXPIRED: AlertCause(
        "expired_certificate",
        INFERRED,
        "certificate_expired: the client found the certificate expired by its own clock "
        "(OpenSSL- and Java-based clients send it for nothing else); the certificate is not in "
        "the capture, so a client clock that is wrong cannot be ruled out",
    ),
    A_PROTOCOL_VERSION: AlertCause(
        "protocol_mismatch",
        OBSERVED,
        "protocol_version from the client: it refuses the version the server chose",
        must_act="server",
    ),
    A_UNKNOWN_CA: AlertCause(
        "unknown",
        None,
        "unknown_ca: the client could not build a path to a root it trusts, from an untrusted "
        "root or from an intermediate missing in the chain; the chain is not in the capture",
        also=("incomplete_chain", "unknown_ca"),
    ),
    A_CERT_UNKNOWN: AlertCause(
        "unknown",
        None,
        "certificate_unknown: Java clients send it for an untrusted or incomplete chain, "
        "OpenSSL for a name-constraint violation; the chain is not in the capture",
        also=("unknown_ca", "incomplete_chain"),
    ),
    A_BAD_CERT: AlertCause(
        "unknown",
        None,
        "bad_certificate is what OpenSSL-based clients send for a hostname mismatch, a "
        "not-yet-valid certificate or a weak key, and Go clients for any certificate problem; "
        "the certificate is not in the capture",
    ),
}


def client_alert_cause(alert: Alert) -> AlertCause | None:
    """What ``alert`` (sent by the client) says about the cause, or None when nothing."""
    if alert.description is None:
        return None
    return _CAUSES.get(alert.description)
