"""What encrypted TLS 1.3 records say without keys: sizes and order.

An AEAD record carrying an alert is 2 bytes of alert, 1 byte of inner content type and a 16-byte
tag: 19 bytes (11 with CCM_8), a little more if the sender pads. A client Finished is 4 + 32
(or 48) bytes plus 17: 53 (or 69). A client flight larger than its Finished carries a Certificate
(empty or not): the server asked for a client certificate.
"""

from __future__ import annotations

from dataclasses import dataclass

from tlspcap.facts.model import ConnFacts, EncryptedRecord
from tlspcap.tls.records import CT_APPLICATION_DATA

ALERT_SIZED = 24
"""Largest encrypted record taken for an alert."""
EMPTY_CERTIFICATE_RECORD = (25, 17)
"""An encrypted empty client Certificate: 8 bytes + type + a 16-byte (or CCM_8 8-byte) tag."""


@dataclass(frozen=True, slots=True)
class Tls13View:
    """The encrypted part of a TLS 1.3 connection, as far as sizes tell."""

    server_flight: list[EncryptedRecord]
    """Server records before the client's first encrypted record."""
    client_flight: list[EncryptedRecord]
    """Client records before the server's next record (its Finished, maybe a Certificate)."""
    after: list[EncryptedRecord]
    """Everything later."""

    @property
    def client_rejected(self) -> EncryptedRecord | None:
        """The client's first encrypted record, when it is alert-sized (an alert, not Finished)."""
        if self.client_flight and self.client_flight[0].length <= ALERT_SIZED:
            return self.client_flight[0]
        return None

    @property
    def finished(self) -> bool:
        """The client's first encrypted record is larger than an alert: its Finished (flight)."""
        return bool(self.client_flight) and self.client_flight[0].length > ALERT_SIZED

    def client_sent_certificate(self, finished_sizes: frozenset[int]) -> bool:
        """The client's first record is not a bare Finished: it carries a Certificate message.

        Handshake messages may share a record but never share one with application data, so a
        first record of another size than Finished holds a (possibly empty) Certificate.
        """
        return self.finished and self.client_flight[0].length not in finished_sizes


def tls13_view(session: ConnFacts) -> Tls13View:
    """Split the encrypted records after the ServerHello into flights."""
    log = [r for r in session.encrypted_log if r.content_type == CT_APPLICATION_DATA]
    server, client = session.server_dir, session.client_dir
    i = 0
    server_flight: list[EncryptedRecord] = []
    while i < len(log) and log[i].direction == server:
        server_flight.append(log[i])
        i += 1
    client_flight: list[EncryptedRecord] = []
    while i < len(log) and log[i].direction == client:
        client_flight.append(log[i])
        i += 1
    return Tls13View(server_flight, client_flight, log[i:])


FINISHED_SIZES = frozenset({53, 69})
"""Encrypted Finished record sizes: SHA-256 suites, and TLS_AES_256_GCM_SHA384."""


def finished_record_sizes(cipher: int | None) -> frozenset[int]:
    """Sizes an encrypted client Finished record can have for a TLS 1.3 suite (either size
    when the suite is not known, its ServerHello not being readable)."""
    if cipher is None:
        return FINISHED_SIZES
    return frozenset({69 if cipher == 0x1302 else 53})
