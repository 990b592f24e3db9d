"""Shared vocabulary of the diagnosis rules: the per-connection context, alert codes, and the
small helpers both stages use (reading alerts and closes, describing hellos and answers)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tlspcap.diagnosis.knowledge import CaptureKnowledge, ServerFacts
from tlspcap.diagnosis.options import Options
from tlspcap.facts.model import ConnFacts, SideFacts
from tlspcap.tls.messages import Alert, ClientHello
from tlspcap.tls.registry import alert_name, is_grease, version_name

SILENCE_SECONDS = 3.0
"""A ClientHello unanswered this long before the capture ends counts as no answer."""
CLOSE_AT_ONCE_SECONDS = 0.5
"""A client closing this soon after the handshake, without data, rejected the session."""

# Alerts by what they say about the sender's complaint.
A_HANDSHAKE_FAILURE, A_BAD_CERT, A_CERT_EXPIRED = 40, 42, 45
A_UNKNOWN_CA, A_PROTOCOL_VERSION, A_INSUFFICIENT_SECURITY = 48, 70, 71
A_INTERNAL_ERROR, A_UNRECOGNIZED_NAME, A_CERT_REQUIRED = 80, 112, 116
A_NO_APPLICATION_PROTOCOL = 120

ALERT_ONLY_CAUSES = {
    A_CERT_EXPIRED: (
        "expired_certificate",
        " (the client found it expired by its own clock; a client clock that is wrong sends the "
        "same alert, which only the certificate would rule out)",
    ),
}
"""Client alerts precise enough to name a cause when the certificate itself is encrypted."""

CERT_PRIORITY = (
    "expired_certificate",
    "not_yet_valid_certificate",
    "incomplete_chain",
    "unknown_ca",
    "hostname_mismatch",
)
"""Certificate causes in the order used when the alert does not single one out."""
ALERT_TO_CERT_CAUSE = {
    A_CERT_EXPIRED: ("expired_certificate", "not_yet_valid_certificate"),
    A_UNKNOWN_CA: ("incomplete_chain", "unknown_ca"),
    44: ("revoked_certificate",),  # certificate_revoked
    113: ("revoked_certificate",),  # bad_certificate_status_response (Java, stapling)
    43: ("certificate_usage", "weak_certificate"),  # unsupported_certificate
    71: ("weak_key_exchange",),  # insufficient_security (Java: DH group too small)
    120: ("alpn_mismatch",),  # no_application_protocol
}
"""Client alerts that name the certificate or parameter problem among the ones the capture
shows (first match wins)."""
POLICY_CAUSES = (
    "tls_interception",
    "legacy_renegotiation",
    "weak_key_exchange",
    "revoked_certificate",
)
"""Causes found beyond the certificate's name, chain and validity, checked before those, in the
order clients check them; each only when the client's abort fits it (policy.ALERT_FIT)."""
LATE_CAUSES = ("certificate_usage", "weak_certificate")
"""Certificate-policy causes checked after the textbook ones, each only when the abort fits."""


@dataclass(slots=True)
class Context:
    """Everything the rules look at for one connection."""

    f: ConnFacts
    """The connection's facts."""
    know: CaptureKnowledge
    opts: Options
    end: float | None
    """Time of the capture's last packet (None: not known yet, the capture is still read)."""

    @property
    def capture_end(self) -> float | None:
        """Time of the capture's last packet; reading it makes the verdict capture-wide (it
        is noted in the knowledge like the other facts that later packets may change)."""
        self.know.read_end()
        return self.end

    @property
    def facts(self) -> ServerFacts:
        """What the same server did in other connections."""
        return self.know.server(self.f.server_endpoint)

    def time_of(self, frame: int | None) -> float:
        """Capture time of a frame the facts name."""
        return self.f.time_of(frame)


def vname(v: int) -> str:
    """The registry name of a TLS version."""
    return version_name(v)


def offered_versions(ch: ClientHello) -> list[int]:
    """Versions a ClientHello offers (supported_versions, else its legacy version)."""
    listed = [v for v in ch.supported_versions if not is_grease(v)]
    return listed or [ch.legacy_version]


def first_fatal(alerts: Sequence[Alert], include_encrypted: bool = True) -> Alert | None:
    """The first alert that ends the handshake: fatal, of unknown level, or encrypted."""
    for a in alerts:
        if a.level is None:  # encrypted and not decrypted: its level is unknown
            if include_encrypted:
                return a
        elif a.level != 1:
            return a
    return None


def describe_alert(a: Alert) -> str:
    """An alert in words ("a fatal unknown_ca alert", "an encrypted alert (19 bytes)")."""
    if a.description is None:
        return f"an encrypted alert ({a.length} bytes)"
    level = {1: "warning", 2: "fatal"}.get(a.level or 0, f"level {a.level}")
    return f"a {level} {alert_name(a.description)} alert"


def first_alert_frame(alerts: Sequence[Alert], sender: str) -> int | None:
    """Frame of the first alert a side sent, if any."""
    frames = [a.frame for a in alerts if a.sender == sender]
    return frames[0] if frames else None


def close_of(side: SideFacts, alert_frame: int | None = None) -> tuple[int | None, str]:
    """Frame and kind of the first sign that a side is closing (alert, RST or FIN)."""
    if alert_frame is not None and all(
        f is None or alert_frame <= f for f in (side.rst_frame, side.fin_frame)
    ):
        return alert_frame, "alert, then " + (close_of(side)[1] or "nothing")
    if side.rst_frame is not None and (side.fin_frame is None or side.rst_frame < side.fin_frame):
        return side.rst_frame, "RST"
    if side.fin_frame is not None:
        return side.fin_frame, "FIN"
    return None, ""


def real_suites(ch: ClientHello) -> list[int]:
    """Offered cipher suites without GREASE and the signalling values (SCSVs)."""
    return [c for c in ch.cipher_suites if not is_grease(c) and c not in (0x00FF, 0x5600)]


def cert_frame(s: ConnFacts) -> int | None:
    """Frame of the server's first Certificate message, if one was seen."""
    return s.server.certificates[0].frame if s.server.certificates else None


# ---- text helpers -----------------------------------------------------------------------
def hello_text(ch: ClientHello) -> str:
    """A ClientHello in one line of evidence."""
    if ch.truncated:
        parts = [f"legacy version {vname(ch.legacy_version)}"]
        if ch.cipher_suites:
            parts.append(f"{len(ch.cipher_suites)} cipher suites")
        if ch.supported_versions:
            parts.append("versions " + ", ".join(vname(o) for o in offered_versions(ch)))
        if ch.sni is not None:
            parts.append(f"server_name {ch.sni!r}")
        return (
            "ClientHello cut short by the capture's snap length ("
            + ", ".join(parts)
            + "; what follows was not captured)"
        )
    versions = ", ".join(vname(o) for o in offered_versions(ch))
    sni = f"server_name {ch.sni!r}" if ch.sni is not None else "no server_name"
    return f"ClientHello offering {versions}, {len(ch.cipher_suites)} cipher suites, {sni}"


def alpn_offer_text(ch: ClientHello | None) -> str:
    """What the client asked for, to go with a no_application_protocol alert."""
    if ch is None or not ch.alpn:
        return (
            "the client's ALPN offer is not visible; no_application_protocol means the server "
            "accepts none of the protocols it offered"
        )
    offered = ", ".join(p.decode("utf-8", "backslashreplace") for p in ch.alpn)
    return f"the client offered ALPN {offered}, none of which the server accepts"


def first_server_frame(ctx: Context) -> int | None:
    """First frame that carried bytes from the server."""
    return ctx.f.server.first_data_frame


PLAINTEXT_SIGNS = (
    (b"HTTP/", "an HTTP response"),
    (b"SSH-", "an SSH banner"),
    (b"220", "an SMTP or FTP banner"),
    (b"+OK", "a POP3 greeting"),
    (b"* OK", "an IMAP greeting"),
    (b"<?xml", "XMPP"),
    (b"<stream", "XMPP"),
)


def looks_like(data: bytes) -> str:
    """Name the plaintext protocol a peer answered with, from its first bytes."""
    for prefix, name in PLAINTEXT_SIGNS:
        if data.startswith(prefix):
            return name
    if is_malformed_record(data):
        return "a malformed TLS record"
    return "not a known protocol"


def is_malformed_record(data: bytes) -> bool:
    """A TLS-record-shaped answer (a 5-byte header whose length fits) with a bad type/version."""
    return len(data) >= 6 and int.from_bytes(data[3:5], "big") == len(data) - 5


def quote(data: bytes) -> str:
    """The first bytes of a plaintext answer, printable."""
    text = data[:60].decode("latin-1")
    safe = "".join(ch if ch.isprintable() else "." for ch in text)
    return repr(safe)
