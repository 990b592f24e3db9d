"""What a capture as a whole tells about each server (cross-connection evidence)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography import x509

from tlspcap.capture.model import format_endpoint
from tlspcap.certs import load_certificate
from tlspcap.session import TlsSession
from tlspcap.tcp.tracker import TcpConnection


@dataclass(slots=True)
class ServerFacts:
    """What one server (ip:port) did across the connections of a capture."""

    versions: dict[int, int] = field(default_factory=dict)
    """Version chosen in a ServerHello -> first frame showing it."""
    ciphers: dict[int, int] = field(default_factory=dict)
    """Cipher suite chosen -> first frame showing it."""
    answered_sni: dict[str, int] = field(default_factory=dict)
    """SNI names the server answered with a ServerHello -> frame of that ServerHello."""
    answered_without_sni: int | None = None
    """Frame of a ServerHello answering a ClientHello without SNI, if any."""
    leaf_by_sni: dict[str | None, str] = field(default_factory=dict)
    """SHA-256 of the leaf certificate served, by SNI (None = no SNI)."""


@dataclass(slots=True)
class CaptureKnowledge:
    """Cross-connection facts of one capture."""

    servers: dict[str, ServerFacts] = field(default_factory=dict)
    certificates: list[x509.Certificate] = field(default_factory=list)
    """Every parsable certificate seen in the capture (to supply missing intermediates)."""

    def server(self, key: str) -> ServerFacts:
        """Facts about ``key`` (empty when the server was seen nowhere else)."""
        return self.servers.get(key) or ServerFacts()


def server_key(session: TlsSession) -> str:
    """The server's ``ip:port``."""
    return format_endpoint(*session.endpoints[session.server_dir])


def learn(connections: Sequence[TcpConnection]) -> CaptureKnowledge:
    """Collect per-server facts from every connection of a capture."""
    import hashlib

    know = CaptureKnowledge()
    seen_der: set[bytes] = set()
    for conn in connections:
        s = conn.session
        facts = know.servers.setdefault(server_key(s), ServerFacts())
        sni = s.client_hellos[-1].sni if s.client_hellos else None
        for sh in s.server_hellos:
            if sh.hello_retry_request:
                continue
            facts.versions.setdefault(sh.version, sh.frame)
            facts.ciphers.setdefault(sh.cipher_suite, sh.frame)
            if sni:
                facts.answered_sni.setdefault(sni, sh.frame)
            elif s.client_hellos and facts.answered_without_sni is None:
                facts.answered_without_sni = sh.frame
        for side in s.sides:
            for msg in side.certificates:
                for der in msg.chain:
                    if der not in seen_der:
                        seen_der.add(der)
                        cert = load_certificate(der)
                        if cert is not None:
                            know.certificates.append(cert)
        if s.server.certificates and s.server.certificates[0].chain:
            leaf = s.server.certificates[0].chain[0]
            facts.leaf_by_sni.setdefault(sni, hashlib.sha256(leaf).hexdigest())
    return know
