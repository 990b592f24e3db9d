"""Facts that explain a rejection beyond name, chain and validity: a revoked certificate, weak
key-exchange parameters, a server without secure renegotiation, an interception proxy, an
application protocol nobody chose; and the findings that only help a ticket (clock skew, the
downgrade sentinel, renegotiation inside a session).

Each function reads the facts (and the capture-wide knowledge) and returns what it found, with
the evidence text; whether it is the cause depends on how the client then aborted, which the
rules in :mod:`tlspcap.diagnosis.completion` decide with :data:`ALERT_FIT`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.x509 import ocsp

from tlspcap.certs import capture_datetime, cert_info, load_certificate
from tlspcap.diagnosis.context import Context, offered_versions
from tlspcap.diagnosis.inspection import Product, match_product
from tlspcap.diagnosis.knowledge import key_digest
from tlspcap.diagnosis.model import Finding
from tlspcap.diagnosis.options import default_trust
from tlspcap.facts.model import ConnFacts
from tlspcap.session import is_tls13
from tlspcap.tls.messages import ClientHello, ServerHello
from tlspcap.tls.registry import group_name

A_HANDSHAKE_FAILURE, A_BAD_CERT, A_UNSUPPORTED_CERT, A_CERT_REVOKED = 40, 42, 43, 44
A_CERT_UNKNOWN, A_UNKNOWN_CA, A_INSUFFICIENT_SECURITY = 46, 48, 71
A_BAD_STATUS, A_NO_ALPN = 113, 120

NO_ALERT = None
ALERT_FIT: dict[str, frozenset[int | None]] = {
    "weak_certificate": frozenset({A_BAD_CERT, A_UNSUPPORTED_CERT, NO_ALERT}),
    "certificate_usage": frozenset({A_UNSUPPORTED_CERT, A_BAD_CERT, A_CERT_UNKNOWN, NO_ALERT}),
    "revoked_certificate": frozenset(
        {A_CERT_REVOKED, A_BAD_STATUS, A_BAD_CERT, A_CERT_UNKNOWN, NO_ALERT}
    ),
    "weak_key_exchange": frozenset({A_HANDSHAKE_FAILURE, A_INSUFFICIENT_SECURITY, NO_ALERT}),
    "legacy_renegotiation": frozenset({A_HANDSHAKE_FAILURE, NO_ALERT}),
    "tls_interception": frozenset({A_UNKNOWN_CA, A_CERT_UNKNOWN, A_BAD_CERT, NO_ALERT}),
}
"""The client alerts that fit each cause, from the stacks' alert tables (OpenSSL's x509table,
JSSE's CertificateMessage, Go's crypto/tls; see ../shared/research/real-world-causes.md).
``None``: the client closed without an alert (Node.js, .NET, curl after its own checks)."""

MIN_DH_BITS = 2048
"""Smallest finite-field DH group a client at OpenSSL security level 2 (Debian's default)
accepts; Java 17 refuses 1024 with jdk.tls.ephemeralDHKeySize set, and under 768 always."""
WEAK_CURVES = frozenset(range(1, 23))
"""The old named curves (RFC 4492 ids 1-22: sect163k1 ... secp224r1) current clients dropped;
secp256r1 is 23."""
RENEGOTIATION_INFO = 0xFF01
EMPTY_RENEGOTIATION_SCSV = 0x00FF
DOWNGRADE_TLS12 = b"DOWNGRD\x01"
DOWNGRADE_TLS11 = b"DOWNGRD\x00"
FRESH_SECONDS = 2 * 86400
SHORT_VALIDITY_DAYS = 31


@dataclass(frozen=True, slots=True)
class Fact:
    """One explanation the capture supports, with its evidence."""

    code: str
    frame: int | None
    text: str


# ---- revocation -------------------------------------------------------------------------------
def revocation(f: ConnFacts) -> Fact | None:
    """A stapled OCSP response saying the leaf is revoked."""
    status = f.certificate_status
    certs = f.server.certificates
    if status is None or not certs or not certs[0].chain:
        return None
    leaf = load_certificate(certs[0].chain[0])
    if leaf is None:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            response = ocsp.load_der_ocsp_response(status.response)
            if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
                return None
            for single in response.responses:
                if single.serial_number != leaf.serial_number:
                    continue
                if single.certificate_status == ocsp.OCSPCertStatus.REVOKED:
                    when = single.revocation_time_utc
                    reason = single.revocation_reason
                    return Fact(
                        "revoked_certificate",
                        status.frame,
                        "the server stapled an OCSP response saying its certificate is revoked"
                        + (f" since {when:%Y-%m-%d %H:%M}Z" if when else "")
                        + (f" ({reason.name})" if reason is not None else ""),
                    )
    except (ValueError, TypeError):
        return None
    return None


# ---- key exchange -----------------------------------------------------------------------------
def weak_key_exchange(f: ConnFacts) -> Fact | None:
    """The server's finite-field DH group (or curve) is below what current clients accept."""
    kx = f.key_exchange
    if kx is None:
        return None
    if kx.dh_bits is not None and kx.dh_bits < MIN_DH_BITS:
        return Fact(
            "weak_key_exchange",
            kx.frame,
            f"the server's ServerKeyExchange offers a {kx.dh_bits}-bit DH group; OpenSSL clients "
            f'at security level 2 need {MIN_DH_BITS} bits ("dh key too small"), Java clients '
            "are often set to refuse it too",
        )
    if kx.curve is not None and kx.curve in WEAK_CURVES:
        return Fact(
            "weak_key_exchange",
            kx.frame,
            f"the server's ServerKeyExchange uses the curve {group_name(kx.curve)}, which current "
            "clients no longer accept",
        )
    return None


# ---- renegotiation ----------------------------------------------------------------------------
def legacy_renegotiation(ch: ClientHello | None, sh: ServerHello | None) -> Fact | None:
    """A TLS <= 1.2 ServerHello without renegotiation_info to a client that asked for it."""
    if ch is None or sh is None or sh.sslv2 or is_tls13(sh.version) or sh.version < 0x0300:
        return None
    asked = RENEGOTIATION_INFO in ch.extension_types or EMPTY_RENEGOTIATION_SCSV in (
        ch.cipher_suites
    )
    if not asked or RENEGOTIATION_INFO in sh.extension_types:
        return None
    how = (
        "the renegotiation_info extension"
        if RENEGOTIATION_INFO in ch.extension_types
        else "the empty-renegotiation SCSV"
    )
    return Fact(
        "legacy_renegotiation",
        sh.frame,
        f"the client offered {how} and the ServerHello answers without renegotiation_info: the "
        "server does not support secure renegotiation (RFC 5746), which OpenSSL 3 clients "
        'require ("unsafe legacy renegotiation disabled")',
    )


# ---- interception -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Interception:
    """Signs that an inspecting proxy minted the certificate."""

    product: Product | None
    confident: bool
    evidence: tuple[tuple[int | None, str], ...]
    support: tuple[tuple[int | None, str], ...]


def interception(ctx: Context) -> Interception | None:
    """An inspection product's CA name in the chain, or one key serving many names under a
    non-public root (both confident); a freshly minted short-lived leaf supports them."""
    f = ctx.f
    certs = f.server.certificates
    if not certs or not certs[0].chain:
        return None
    msg = certs[0]
    infos = [cert_info(der, msg.frame) for der in msg.chain]
    product = match_product(*(n for i in infos for n in (i.issuer, i.subject)))
    evidence: list[tuple[int | None, str]] = []
    support: list[tuple[int | None, str]] = []
    if product is not None:
        evidence.append(
            (
                msg.frame,
                f"the certificate was issued by {infos[0].issuer}, the CA of {product.name}"
                + ("" if product.confident else " (a name such products use, not a certainty)"),
            )
        )
    digest = key_digest(msg.chain[0])
    public = _publicly_trusted(msg.chain)
    if digest is not None and not public:
        names = ctx.know.names_for_key(digest)
        if len(names) >= 3:
            shown = ", ".join(sorted(names)[:5])
            evidence.append(
                (
                    min(names.values()),
                    f"the same server key answered {len(names)} different names in this "
                    f"capture ({shown}) under a root no browser trusts: one proxy speaking for "
                    "many servers",
                )
            )
    leaf = infos[0]
    at = capture_datetime(f.time_of(msg.frame))
    if leaf.not_before and leaf.not_after and at is not None:
        age = (at - leaf.not_before).total_seconds()
        days = (leaf.not_after - leaf.not_before).days
        if 0 <= age <= FRESH_SECONDS and days <= SHORT_VALIDITY_DAYS:
            support.append(
                (
                    msg.frame,
                    f"the leaf was minted {age / 3600:.1f} hours before the connection and is "
                    f"valid for {days} days, as inspection proxies mint them",
                )
            )
    if not evidence and not support:
        return None
    confident = bool(evidence) and (product is None or product.confident)
    return Interception(product, confident, tuple(evidence), tuple(support))


def _publicly_trusted(chain: tuple[bytes, ...]) -> bool:
    """The chain reaches a root of Mozilla's store (the one browsers trust), not a private one."""
    store = default_trust()
    for der in chain:
        cert = load_certificate(der)
        if cert is not None and (store.contains(cert) or store.issuers_of(cert)):
            return True
    return False


# ---- application protocol ---------------------------------------------------------------------
def alpn_unmet(f: ConnFacts, ch: ClientHello | None, sh: ServerHello | None) -> Fact | None:
    """The client asked for application protocols and the server chose none of them (known
    from a TLS 1.2 ServerHello, or a decrypted TLS 1.3 EncryptedExtensions)."""
    if ch is None or sh is None or not ch.alpn:
        return None
    if is_tls13(sh.version):
        if f.encrypted_extensions_frame is None:
            return None  # encrypted: the answer is not visible
        chosen, frame = f.encrypted_extensions_alpn, f.encrypted_extensions_frame
    else:
        chosen, frame = sh.alpn, sh.frame
    if chosen is not None:
        return None
    offered = ", ".join(p.decode("utf-8", "backslashreplace") for p in ch.alpn)
    return Fact(
        "alpn_mismatch",
        frame,
        f"the client offered ALPN {offered} and the server selected none; clients that need "
        "a protocol (gRPC needs h2) close right after the handshake",
    )


# ---- findings that help a ticket --------------------------------------------------------------
def extra_findings(f: ConnFacts, ch: ClientHello | None, sh: ServerHello | None) -> list[Finding]:
    """Secondary findings that never make the cause on their own."""
    out: list[Finding] = []
    if sh is not None and ch is not None and not sh.hello_retry_request:
        tail = sh.random[-8:]
        if tail in (DOWNGRADE_TLS12, DOWNGRADE_TLS11) and 0x0304 in offered_versions(ch):
            out.append(
                Finding(
                    "downgrade_sentinel",
                    sh.frame,
                    "the ServerHello random ends in the TLS 1.3 downgrade sentinel (DOWNGRD) "
                    "although the client offered TLS 1.3: something in between negotiated an "
                    "older version (Chrome: ERR_TLS13_DOWNGRADE_DETECTED)",
                )
            )
    skew = clock_skew(f)
    if skew is not None:
        out.append(skew)
    server_renegotiated = f.renegotiations[f.server_dir]
    if server_renegotiated is not None:
        out.append(
            Finding(
                "server_renegotiation",
                server_renegotiated,
                "the server started a new handshake inside the session (after application "
                "data): a renegotiation, which Go, rustls, BoringSSL and HTTP/2 clients refuse; "
                "request client certificates in the initial handshake instead",
            )
        )
    kx = weak_key_exchange(f)
    if kx is not None:
        out.append(Finding("weak_key_exchange", kx.frame, "possible: " + kx.text))
    return out


def clock_skew(f: ConnFacts) -> Finding | None:
    """A TLS 1.2 client whose hellos carry a UNIX time far from the capture's, consistently."""
    hellos = [h for h in f.client_hellos if not h.sslv2 and 0x0304 not in offered_versions(h)]
    if not hellos:
        return None
    offsets = []
    for h in hellos:
        claimed = int.from_bytes(h.random[:4], "big")
        at = f.time_of(h.frame)
        offset = claimed - at
        if abs(offset) > 5 * 365 * 86400:  # random bytes, not a time
            return None
        offsets.append(offset)
    if len(offsets) < 2 or max(offsets) - min(offsets) > 5 or abs(offsets[0]) < 3600:
        return None
    when = datetime.fromtimestamp(int.from_bytes(hellos[0].random[:4], "big"), UTC)
    days = offsets[0] / 86400
    return Finding(
        "client_clock_skew",
        hellos[0].frame,
        f"the client's hellos carry the time {when:%Y-%m-%d %H:%M}Z, {days:+.1f} days from the "
        "capture's: its clock is off, which makes valid certificates look expired or not yet "
        "valid to it",
    )


__all__ = [
    "ALERT_FIT",
    "Fact",
    "Interception",
    "alpn_unmet",
    "clock_skew",
    "extra_findings",
    "interception",
    "legacy_renegotiation",
    "revocation",
    "weak_key_exchange",
]
