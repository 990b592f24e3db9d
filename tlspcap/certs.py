"""X.509 facts from DER certificates, read with ``cryptography`` (no validation here)."""

from __future__ import annotations

import functools
import hashlib
import warnings
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from cryptography import x509
from cryptography.x509.oid import ExtensionOID


@dataclass(frozen=True, slots=True)
class CertInfo:
    """What a report shows of one certificate as sent on the wire."""

    frame: int
    """Frame of the Certificate message that carried it."""
    der: bytes
    sha256: str
    """SHA-256 of the DER encoding, lowercase hex."""
    subject: str | None = None
    """RFC 4514 subject; None when the certificate could not be parsed."""
    issuer: str | None = None
    san: tuple[str, ...] = ()
    """subjectAltName DNS names and IP addresses, in order."""
    not_before: datetime | None = None
    """Start of validity, aware UTC."""
    not_after: datetime | None = None
    """End of validity, aware UTC."""
    is_ca: bool = False
    """basicConstraints CA flag."""
    error: str | None = None
    """Why the DER could not be parsed, when it could not."""

    @property
    def self_issued(self) -> bool:
        """Subject equals issuer (a root, or a self-signed leaf)."""
        return self.subject is not None and self.subject == self.issuer


def _names(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        ext = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    except (x509.ExtensionNotFound, ValueError):
        return ()
    san = ext.value
    assert isinstance(san, x509.SubjectAlternativeName)
    dns = san.get_values_for_type(x509.DNSName)
    ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return tuple(dns) + tuple(ips)


def is_ca(cert: x509.Certificate) -> bool:
    """The basicConstraints CA flag (False when absent or unreadable)."""
    try:
        bc = cert.extensions.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS).value
    except (x509.ExtensionNotFound, ValueError):
        return False
    assert isinstance(bc, x509.BasicConstraints)
    return bc.ca


@functools.lru_cache(maxsize=4096)
def load_certificate(der: bytes) -> x509.Certificate | None:
    """Parse DER with cryptography; None when it is not a certificate it can read.

    Cached by DER: a server sends the same certificates to every client, so each is parsed once
    (a parsed certificate is immutable; nothing in it depends on time).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # old roots with non-positive serials, etc.
            cert = x509.load_der_x509_certificate(der)
            # cryptography parses fields lazily: touch the ones tlspcap reads, so a corrupt
            # certificate is rejected here rather than raising later.
            cert.subject.rfc4514_string()
            cert.issuer.rfc4514_string()
            _ = cert.not_valid_before_utc, cert.not_valid_after_utc
            _ = list(cert.extensions)
    except Exception:  # hostile DER: cryptography raises ValueError, InvalidVersion, ...
        return None
    return cert


def capture_datetime(ts: float) -> datetime | None:
    """A capture timestamp as an aware UTC datetime; None when no calendar date holds it (a
    corrupt timestamp: judging validity at year 9999 would invent an expired certificate)."""
    try:
        return datetime.fromtimestamp(ts, UTC)
    except (ValueError, OverflowError, OSError):
        return None


def cert_info(der: bytes, frame: int) -> CertInfo:
    """Describe one DER certificate; never raises on bad input (``error`` says why).

    The parsed fields are cached by DER (a certificate is parsed once however many connections
    carry it); nothing in them depends on time, so validity is still judged per connection.
    """
    return replace(_cert_fields(der), frame=frame)


@functools.lru_cache(maxsize=4096)
def _cert_fields(der: bytes) -> CertInfo:
    """Everything :func:`cert_info` says of ``der`` but the frame (which is 0 here)."""
    digest = hashlib.sha256(der).hexdigest()
    cert = load_certificate(der)
    if cert is None:
        return CertInfo(0, der, digest, error="not a parsable X.509 certificate")
    try:
        return CertInfo(
            0,
            der,
            digest,
            subject=cert.subject.rfc4514_string(),
            issuer=cert.issuer.rfc4514_string(),
            san=_names(cert),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            is_ca=is_ca(cert),
        )
    except ValueError as exc:
        return CertInfo(0, der, digest, error=f"unreadable certificate field: {exc}")


def iso_utc(value: datetime | None) -> str | None:
    """ISO 8601 UTC with a Z suffix, as the JSON contract wants."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
