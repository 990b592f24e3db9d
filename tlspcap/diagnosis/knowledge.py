"""What a capture as a whole tells about each server (cross-connection evidence)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

from cryptography import x509

from tlspcap.certs import load_certificate
from tlspcap.facts.model import ConnFacts


@dataclass(slots=True)
class ServerFacts:
    """What one server (ip:port) did across the connections of a capture."""

    versions: dict[int, int] = field(default_factory=dict)
    """Version chosen in a ServerHello -> first frame showing it."""
    ciphers: dict[int, int] = field(default_factory=dict)
    """Cipher suite chosen -> first frame showing it."""
    answered_sni: dict[str, int] = field(default_factory=dict)
    """SNI names the server answered with a ServerHello -> frame of that ServerHello (the name
    answered earliest comes first)."""
    answered_without_sni: int | None = None
    """Frame of a ServerHello answering a ClientHello without SNI, if any."""


class _Watched(Sequence[x509.Certificate]):
    """The capture's certificates, noting in their knowledge object when they are looked at."""

    def __init__(self, owner: CaptureKnowledge) -> None:
        self._owner = owner

    def __len__(self) -> int:
        self._owner.consulted = True
        return len(self._owner.certificate_list)

    @overload
    def __getitem__(self, i: int) -> x509.Certificate: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[x509.Certificate]: ...
    def __getitem__(self, i: int | slice) -> x509.Certificate | Sequence[x509.Certificate]:
        self._owner.consulted = True
        return self._owner.certificate_list[i]

    def __iter__(self) -> Iterator[x509.Certificate]:
        self._owner.consulted = True
        return iter(self._owner.certificate_list)


MAX_SERVERS = 20_000
"""Servers whose facts are kept; past this the one learnt about least recently is forgotten (a
capture talking to more servers than this loses facts about the quietest ones)."""
MAX_CERTIFICATES = 10_000
"""Distinct certificates kept per capture to supply missing intermediates (DER bytes beyond this
are still deduplicated by hash; a capture rarely holds more than a few hundred)."""


class CaptureKnowledge:
    """Cross-connection facts of one capture, learnt one connection at a time.

    Connections may be learnt in any order (e.g. as they close): every fact keeps the earliest
    frame that shows it. :attr:`consulted` turns True whenever a diagnosis reads the facts
    (:meth:`server`, :attr:`certificates`), so a streaming caller can tell which verdicts may
    change once later connections are learnt.
    """

    def __init__(self) -> None:
        self.servers: dict[str, ServerFacts] = {}
        self.certificate_list: list[x509.Certificate] = []
        """Every parsable certificate seen (up to :data:`MAX_CERTIFICATES`), unwatched."""
        self._seen_der: set[bytes] = set()
        self.consulted = False
        """Set when a diagnosis read the facts; the caller resets it."""

    @property
    def certificates(self) -> Sequence[x509.Certificate]:
        """Every parsable certificate seen in the capture (to supply missing intermediates)."""
        return _Watched(self)

    def server(self, key: str) -> ServerFacts:
        """Facts about ``key`` (empty when the server was seen nowhere else)."""
        self.consulted = True
        return self.servers.get(key) or ServerFacts()

    def learn(self, s: ConnFacts) -> None:
        """Add one connection's facts."""
        key = s.server_endpoint
        facts = self.servers.pop(key, None) or ServerFacts()
        self.servers[key] = facts  # most recently learnt last
        if len(self.servers) > MAX_SERVERS:
            del self.servers[next(iter(self.servers))]
        sni = s.client_hellos[-1].sni if s.client_hellos else None
        for sh in s.server_hellos:
            if sh.hello_retry_request:
                continue
            _earliest(facts.versions, sh.version, sh.frame)
            _earliest(facts.ciphers, sh.cipher_suite, sh.frame)
            if sni and _earliest(facts.answered_sni, sni, sh.frame):
                first = next(iter(facts.answered_sni))
                if facts.answered_sni[first] > sh.frame:  # keep the earliest answered first
                    facts.answered_sni = {sni: sh.frame, **facts.answered_sni}
            elif s.client_hellos and (
                facts.answered_without_sni is None or sh.frame < facts.answered_without_sni
            ):
                facts.answered_without_sni = sh.frame
        for side in s.sides:
            for msg in side.certificates:
                for der in msg.chain:
                    digest = hashlib.sha256(der).digest()
                    if digest in self._seen_der:
                        continue
                    self._seen_der.add(digest)
                    if len(self.certificate_list) < MAX_CERTIFICATES:
                        cert = load_certificate(der)
                        if cert is not None:
                            self.certificate_list.append(cert)


def _earliest(table: dict[Any, int], key: object, frame: int) -> bool:
    """Record ``frame`` for ``key`` unless an earlier frame already shows it; True if recorded."""
    if frame < table.get(key, frame + 1):
        table[key] = frame
        return True
    return False


def learn(connections: Sequence[ConnFacts]) -> CaptureKnowledge:
    """Collect per-server facts from every connection of a capture."""
    know = CaptureKnowledge()
    for conn in connections:
        know.learn(conn)
    return know
