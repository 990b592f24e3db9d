"""TLS key logs: the SSLKEYLOGFILE (NSS) format, and pcapng Decryption Secrets Blocks.

A key log line is ``<LABEL> <client_random hex> <secret hex>`` (RFC 9850). The client random
(32 bytes) names the connection; the label names the secret:

* TLS 1.3: ``CLIENT_EARLY_TRAFFIC_SECRET``, ``CLIENT_HANDSHAKE_TRAFFIC_SECRET``,
  ``SERVER_HANDSHAKE_TRAFFIC_SECRET``, ``CLIENT_TRAFFIC_SECRET_0``, ``SERVER_TRAFFIC_SECRET_0``,
  ``EXPORTER_SECRET`` (secrets as long as the suite's hash: 32 or 48 bytes);
* TLS <= 1.2: ``CLIENT_RANDOM`` with the 48-byte master secret.

Lines starting with ``#`` and blank lines are comments. A line that is not of that shape (an
unknown label, a wrong length, bad hex, the ``RSA`` pre-master form) is skipped and counted in
:attr:`KeyLog.skipped`; parsing never raises. When a secret is given twice for the same label
and client random, the first one is kept.

A pcapng Decryption Secrets Block of type ``0x544c534b`` (``TLSK``) carries key log text in this
same format; :meth:`KeyLog.add_secrets_block` takes one.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterable, Iterator, Mapping

TLS13_LABELS = (
    "CLIENT_EARLY_TRAFFIC_SECRET",
    "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
    "SERVER_HANDSHAKE_TRAFFIC_SECRET",
    "CLIENT_TRAFFIC_SECRET_0",
    "SERVER_TRAFFIC_SECRET_0",
    "EXPORTER_SECRET",
)
"""Key log labels of TLS 1.3 secrets."""
CLIENT_RANDOM = "CLIENT_RANDOM"
"""Key log label of a TLS <= 1.2 master secret."""
LABELS = frozenset((*TLS13_LABELS, CLIENT_RANDOM))
"""Every label :func:`parse_keylog` keeps."""
SECRETS_TYPE_TLS = 0x544C534B
"""pcapng Decryption Secrets Block type ``TLSK``: the data is key log text."""

_CLIENT_RANDOM_LEN = 32
_MASTER_SECRET_LEN = 48
_TLS13_SECRET_LENS = (32, 48)


class KeyLog:
    """Secrets by label and client random, as read from key logs and secrets blocks."""

    def __init__(
        self,
        secrets: Mapping[str, Mapping[bytes, bytes]] | None = None,
        base: KeyLog | None = None,
    ) -> None:
        """Start from ``secrets`` (label -> client random -> secret), or empty.

        With a ``base``, this key log is a layer over it: lookups see the base's secrets first,
        then this one's, and what is added goes into this layer only (the base is not copied
        and not modified: a per-file layer for a large ``--keylog`` costs nothing).
        """
        self._base = base
        self.secrets: dict[str, dict[bytes, bytes]] = {}
        """label -> client random -> secret (this layer's own, without the base's)."""
        self.lines = 0
        """Secret lines accepted (duplicates included)."""
        self.comments = 0
        """Comment and blank lines seen."""
        self.skipped = 0
        """Malformed or unsupported lines skipped."""
        self.blocks_ignored = 0
        """Decryption Secrets Blocks of a type other than ``TLSK``."""
        for label, by_random in (secrets or {}).items():
            for client_random, secret in by_random.items():
                self._put(label, client_random, secret)

    def __bool__(self) -> bool:
        """True when any secret is held (cheaper than ``len``)."""
        return any(self.secrets.values()) or bool(self._base)

    def __len__(self) -> int:
        """Number of distinct (label, client random) secrets held (the base's included)."""
        own = sum(len(v) for v in self.secrets.values())
        if self._base is None:
            return own
        shadowed = sum(
            1
            for label, by_random in self.secrets.items()
            for client_random in by_random
            if self._base.get(label, client_random) is not None
        )
        return len(self._base) + own - shadowed

    def __repr__(self) -> str:
        return f"KeyLog({len(self)} secrets, {self.skipped} lines skipped)"

    def get(self, label: str, client_random: bytes) -> bytes | None:
        """The secret of ``label`` for the connection with ``client_random``, if known."""
        if self._base is not None:
            found = self._base.get(label, client_random)
            if found is not None:
                return found
        by_random = self.secrets.get(label)
        return None if by_random is None else by_random.get(client_random)

    def has(self, client_random: bytes) -> bool:
        """Some secret is known for the connection with ``client_random``."""
        if self._base is not None and self._base.has(client_random):
            return True
        return any(client_random in v for v in self.secrets.values())

    def items(self) -> Iterator[tuple[str, bytes, bytes]]:
        """Every ``(label, client random, secret)`` a lookup can return (base first)."""
        if self._base is not None:
            yield from self._base.items()
        for label, by_random in self.secrets.items():
            for client_random, secret in by_random.items():
                if self._base is None or self._base.get(label, client_random) is None:
                    yield label, client_random, secret

    def _put(self, label: str, client_random: bytes, secret: bytes) -> None:
        self.secrets.setdefault(label, {}).setdefault(client_random, secret)

    def add_text(self, text: str) -> int:
        """Read key log text into this key log; return how many secret lines it accepted."""
        accepted = 0
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                self.comments += 1
                continue
            parsed = _parse_line(line)
            if parsed is None:
                self.skipped += 1
                continue
            self._put(*parsed)
            accepted += 1
        self.lines += accepted
        return accepted

    def add_secrets_block(self, secrets_type: int, data: bytes) -> int:
        """Take one pcapng Decryption Secrets Block; return the secret lines it added.

        Only ``TLSK`` blocks (key log text, UTF-8) are read; other types (WireGuard, ZigBee,
        ...) are counted in :attr:`blocks_ignored`.
        """
        if secrets_type != SECRETS_TYPE_TLS:
            self.blocks_ignored += 1
            return 0
        return self.add_text(data.decode("utf-8", errors="replace"))

    def add_secrets_blocks(self, blocks: Iterable[tuple[int, bytes]]) -> int:
        """Take several ``(secrets_type, data)`` blocks; return the secret lines added."""
        return sum(self.add_secrets_block(t, d) for t, d in blocks)

    def merge(self, other: KeyLog) -> KeyLog:
        """A new key log holding both; on a conflict the secret of ``self`` wins."""
        out = KeyLog()
        for label, client_random, secret in (*self.items(), *other.items()):
            out._put(label, client_random, secret)
        out.lines = self.lines + other.lines
        out.comments = self.comments + other.comments
        out.skipped = self.skipped + other.skipped
        out.blocks_ignored = self.blocks_ignored + other.blocks_ignored
        return out

    def copy(self) -> KeyLog:
        """An independent, flat copy (secrets, the base's included, and counters)."""
        return self.merge(KeyLog())


def _parse_line(line: str) -> tuple[str, bytes, bytes] | None:
    """``(label, client_random, secret)`` of one key log line, or None when malformed."""
    parts = line.split()
    if len(parts) != 3 or parts[0] not in LABELS:
        return None
    label, random_hex, secret_hex = parts
    try:
        client_random = binascii.unhexlify(random_hex)
        secret = binascii.unhexlify(secret_hex)
    except (binascii.Error, ValueError):
        return None
    if len(client_random) != _CLIENT_RANDOM_LEN:
        return None
    if label == CLIENT_RANDOM:
        if len(secret) != _MASTER_SECRET_LEN:
            return None
    elif len(secret) not in _TLS13_SECRET_LENS:
        return None
    return label, client_random, secret


def parse_keylog(text: str) -> KeyLog:
    """Parse SSLKEYLOGFILE text; malformed lines are skipped and counted, never raised."""
    keylog = KeyLog()
    keylog.add_text(text)
    return keylog
