"""What the user knows beyond the capture, and the default trust anchors."""

from __future__ import annotations

from dataclasses import dataclass

from tlspcap.diagnosis.certcheck import TrustStore, load_pem_roots


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


_DEFAULT_TRUST: TrustStore | None = None


def default_trust() -> TrustStore:
    """Mozilla's roots as shipped by certifi (loaded once)."""
    global _DEFAULT_TRUST
    if _DEFAULT_TRUST is None:
        import certifi

        with open(certifi.where(), "rb") as fh:
            roots = load_pem_roots(fh.read())
            _DEFAULT_TRUST = TrustStore(roots, public=roots)
    return _DEFAULT_TRUST
