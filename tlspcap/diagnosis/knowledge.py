"""What a capture as a whole tells about each server (cross-connection evidence)."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from tlspcap.certs import load_certificate
from tlspcap.diagnosis.path import hello_segments
from tlspcap.diagnosis.serverspill import ServerSpill
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
    answered_hellos: list[tuple[int, int, int]] = field(default_factory=list)
    """ClientHellos the server answered with a ServerHello: (hello length, TCP segments it took,
    frame of the ServerHello), the smallest few (at most :data:`MAX_HELLOS`)."""
    version: int = field(default=0, compare=False)
    """How many times the facts above changed (see :data:`Read`)."""

    def state(self) -> tuple[object, ...]:
        """The facts above as one comparable value."""
        return (
            tuple(self.versions.items()),
            tuple(self.ciphers.items()),
            tuple(self.answered_sni.items()),
            self.answered_without_sni,
            tuple(self.answered_hellos),
        )


Read = tuple[int, object, int]
"""One capture-wide fact a diagnosis read: (what, which, its version then). What: :data:`SERVER`
(which: the server's key; version: :attr:`ServerFacts.version`), :data:`KEY_NAMES` (the leaf
key's digest; the times its names changed), :data:`POOL` (the certificates seen: how many
there were), :data:`END` (the capture's end, unknown until it comes: always stale)."""
SERVER, KEY_NAMES, POOL, END = range(4)


def _answer(s: ConnFacts, hello_frame: int) -> int | None:
    """Frame of the server's answer to the ClientHello in ``hello_frame``: its ServerHello, or
    (that lost) the first TLS bytes it sent after the hello (None: no answer in the capture)."""
    sh = next((h.frame for h in s.server_hellos if not h.hello_retry_request), None)
    if sh is not None:
        return sh
    server = s.server
    if (
        server.is_tls
        and server.first_data_frame is not None
        and server.first_data_frame > hello_frame
    ):
        return server.first_data_frame
    return None


class _Watched(Sequence[x509.Certificate]):
    """The capture's certificates, noting in their knowledge object when they are looked at."""

    def __init__(self, owner: CaptureKnowledge) -> None:
        self._owner = owner

    def __len__(self) -> int:
        self._owner.read_pool()
        return len(self._owner.certificate_list)

    @overload
    def __getitem__(self, i: int) -> x509.Certificate: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[x509.Certificate]: ...
    def __getitem__(self, i: int | slice) -> x509.Certificate | Sequence[x509.Certificate]:
        self._owner.read_pool()
        return self._owner.certificate_list[i]

    def __iter__(self) -> Iterator[x509.Certificate]:
        self._owner.read_pool()
        return iter(self._owner.certificate_list)


MAX_SERVERS = 5_000
"""Servers whose facts are kept in memory; past this the one learnt about least recently moves
to a file in the spool directory (:mod:`tlspcap.diagnosis.serverspill`) and comes back when it
is needed. Without a spool directory (tests, small programs) all stay in memory."""
MAX_HELLOS = 8
"""Answered ClientHellos remembered per server (the smallest are kept)."""
MAX_KEYS = 10_000
"""Server public keys whose names are remembered (to see one key serve many names)."""
MAX_NAMES_PER_KEY = 32
MAX_CERTIFICATES = 10_000
"""Distinct certificates kept per capture to supply missing intermediates (a capture rarely
holds more than a few hundred)."""
MAX_SEEN_CERTIFICATES = 4 * MAX_CERTIFICATES
"""Distinct certificate DERs (parsable or not) remembered by hash, so that each is parsed once;
past this, certificates are no longer added to the pool (a hostile capture may hold millions)."""


class CaptureKnowledge:
    """Cross-connection facts of one capture, learnt one connection at a time.

    Connections may be learnt in any order (e.g. as they close): every fact keeps the earliest
    frame that shows it. Every read of the facts by a diagnosis (:meth:`server`,
    :meth:`names_for_key`, :attr:`certificates`, the capture's end) is noted in :attr:`reads`
    (so :attr:`consulted`), so a streaming caller can tell which verdicts may change once later
    connections are learnt, and at the end whether they did.
    """

    def __init__(self, spool_dir: str | None = None) -> None:
        """Servers past :data:`MAX_SERVERS` go to a file in ``spool_dir`` (kept in memory when
        it is None); :meth:`close` removes the file."""
        self.servers: dict[str, ServerFacts] = {}
        """The servers in memory, the one learnt about least recently first."""
        self._spill = None if spool_dir is None else ServerSpill(spool_dir)
        self.certificate_list: list[x509.Certificate] = []
        """Every parsable certificate seen (up to :data:`MAX_CERTIFICATES`), unwatched."""
        self._seen_der: set[bytes] = set()
        self.key_names: dict[bytes, dict[str, int]] = {}
        """Leaf public key (SHA-256 of its SubjectPublicKeyInfo) -> SNI names it served ->
        frame of the first Certificate showing it."""
        self._key_versions: dict[bytes, int] = {}
        """Leaf key digest -> times its names in :attr:`key_names` changed."""
        self.reads: list[Read] = []
        """What the diagnoses read since the caller last cleared it (see :meth:`unchanged`)."""

    @property
    def consulted(self) -> bool:
        """Whether a diagnosis read the facts since :attr:`reads` was last cleared."""
        return bool(self.reads)

    @property
    def certificates(self) -> Sequence[x509.Certificate]:
        """Every parsable certificate seen in the capture (to supply missing intermediates)."""
        return _Watched(self)

    def server(self, key: str) -> ServerFacts:
        """Facts about ``key`` (empty when the server was seen nowhere else)."""
        facts = self._stored(key) or ServerFacts()
        self.reads.append((SERVER, key, facts.version))
        return facts

    def read_pool(self) -> None:
        """Note that a diagnosis reads the certificates seen (:attr:`certificates` does)."""
        self.reads.append((POOL, None, len(self.certificate_list)))

    def read_end(self) -> None:
        """Note that a diagnosis read the capture's end."""
        self.reads.append((END, None, 0))

    def unchanged(self, reads: Sequence[Read]) -> bool:
        """Whether every fact in ``reads`` is still what it was when read: a verdict computed
        from them would come out the same now (the capture's end always counts as changed)."""
        for what, which, version in reads:
            if what == SERVER:
                facts = self._stored(str(which))
                now = 0 if facts is None else facts.version
            elif what == KEY_NAMES:
                now = self._key_versions.get(which, 0) if isinstance(which, bytes) else -1
            elif what == POOL:
                now = len(self.certificate_list)
            else:
                return False
            if now != version:
                return False
        return True

    def _stored(self, key: str) -> ServerFacts | None:
        facts = self.servers.get(key)
        if facts is None and self._spill is not None:
            facts = self._spill.get(key)
        return facts

    def close(self) -> None:
        """Remove the spill file, if any (the knowledge is not used afterwards)."""
        if self._spill is not None:
            self._spill.close()

    def _take(self, key: str) -> ServerFacts:
        """The facts of ``key`` to update, now the most recently learnt in memory."""
        facts = self.servers.pop(key, None)
        if facts is None and self._spill is not None:
            facts = self._spill.get(key)
        if facts is None:
            facts = ServerFacts()
        self.servers[key] = facts
        if self._spill is not None and len(self.servers) > MAX_SERVERS:
            oldest = next(iter(self.servers))
            self._spill.put(oldest, self.servers.pop(oldest))
        return facts

    def names_for_key(self, digest: bytes) -> dict[str, int]:
        """The SNI names the leaf key ``digest`` served in this capture (read: noted)."""
        self.reads.append((KEY_NAMES, digest, self._key_versions.get(digest, 0)))
        return self.key_names.get(digest, {})

    def learn(self, s: ConnFacts) -> None:
        """Add one connection's facts."""
        facts = self._take(s.server_endpoint)
        before = facts.state()
        self._learn_server(s, facts)
        if facts.state() != before:
            facts.version += 1
        self._learn_key(s)
        self._learn_certificates(s)

    def _learn_server(self, s: ConnFacts, facts: ServerFacts) -> None:
        """What the connection shows about its server."""
        sni = s.client_hellos[-1].sni if s.client_hellos else None
        for sh in s.server_hellos:
            if sh.hello_retry_request:
                continue
            _earliest(facts.versions, sh.version, sh.frame)
            _earliest(facts.ciphers, sh.cipher_suite, sh.frame)
            if sni:
                if _earliest(facts.answered_sni, sni, sh.frame):
                    first = next(iter(facts.answered_sni))
                    if facts.answered_sni[first] > sh.frame:  # keep the earliest answered first
                        facts.answered_sni = {sni: sh.frame, **facts.answered_sni}
            elif s.client_hellos and (
                facts.answered_without_sni is None or sh.frame < facts.answered_without_sni
            ):
                facts.answered_without_sni = sh.frame
        hello = next(
            (m for m in s.messages if m.direction == s.client_dir and m.msg_type == 1), None
        )
        answer = _answer(s, hello.frame) if hello is not None else None
        if hello is not None and answer is not None:
            segments = len(hello_segments(s, hello.frame)) or 1
            entry = (hello.length, segments, answer)
            if entry not in facts.answered_hellos:
                facts.answered_hellos.append(entry)
                facts.answered_hellos.sort()
                del facts.answered_hellos[MAX_HELLOS:]

    def _learn_certificates(self, s: ConnFacts) -> None:
        """Add the connection's certificates to the pool."""
        for side in s.sides:
            for msg in side.certificates:
                for der in msg.chain:
                    if len(self._seen_der) >= MAX_SEEN_CERTIFICATES:
                        return  # the pool is as full as it gets
                    digest = hashlib.sha256(der).digest()
                    if digest in self._seen_der:
                        continue
                    self._seen_der.add(digest)
                    if len(self.certificate_list) < MAX_CERTIFICATES:
                        cert = load_certificate(der)
                        if cert is not None:
                            self.certificate_list.append(cert)

    def _learn_key(self, s: ConnFacts) -> None:
        """Remember which names the server's leaf key served (a proxy mints one leaf per name,
        often with one key for all of them)."""
        certs = s.server.certificates
        sni = s.client_hellos[-1].sni if s.client_hellos else None
        if not certs or not certs[0].chain or not sni:
            return
        digest = key_digest(certs[0].chain[0])
        if digest is None:
            return
        names = self.key_names.get(digest)
        if names is None:
            if len(self.key_names) >= MAX_KEYS:
                return
            names = self.key_names[digest] = {}
        frame = certs[0].frame
        if (sni in names and frame < names[sni]) or (
            sni not in names and len(names) < MAX_NAMES_PER_KEY
        ):
            names[sni] = frame
            self._key_versions[digest] = self._key_versions.get(digest, 0) + 1


@functools.lru_cache(maxsize=4096)
def key_digest(der: bytes) -> bytes | None:
    """SHA-256 of a certificate's SubjectPublicKeyInfo (None when it cannot be read)."""
    cert = load_certificate(der)
    if cert is None:
        return None
    try:
        spki = cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return None
    return hashlib.sha256(spki).digest()


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
