"""One TCP connection's TLS conversation: the per-connection record and the state that fills it.

Theory of operation
-------------------
The packet stage (:mod:`tlspcap.tcp.stream`, or a compiled engine) hands each direction's TLS
records to :meth:`TlsSession.record`, and says when a gap took a direction's record boundaries
(:meth:`TlsSession.records_lost`). Each direction has a
:class:`~tlspcap.tls.handshake.HandshakeAssembler` (joins handshake fragments). Records are
interpreted in light of what the connection has negotiated so far:

* before encryption, handshake records are parsed into messages and alerts are read;
* TLS <= 1.2: a direction is encrypted after its ChangeCipherSpec (with a NULL-encryption suite
  the records stay readable: plaintext plus MAC);
* TLS 1.3: after a (non-retry) ServerHello selecting 1.3, both directions are encrypted;
  ChangeCipherSpec is only the middlebox-compatibility dummy.

Which side is the client is decided by the first message only one side sends (ClientHello,
ServerHello, CertificateRequest, ...), else by the TCP SYN. Everything is recorded by direction
index and rendered with roles at the end.

With a :class:`~tlspcap.keylog.KeyLog` holding secrets for the connection's client random,
encrypted records are decrypted (:mod:`tlspcap.tls.decrypt`) and read like plaintext ones:
handshake messages go through the same assembler and dispatch, alerts are recorded with
``encrypted=True`` and their level and description, application data is counted. The keys of a
direction are looked up at its first encrypted record. TLS 1.3: the handshake traffic secret
until the side's Finished, then its ``*_TRAFFIC_SECRET_0`` (each KeyUpdate moves to the next
secret); without the next secret the rest of the direction stays undecrypted. TLS <= 1.2: the
``CLIENT_RANDOM`` master secret, keys derived again at each ChangeCipherSpec. A record that does
not authenticate is a ``decryption_failed`` anomaly and ends decryption of that direction. A
direction without keys is handled exactly as without a key log (record sizes only).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tlspcap.anomaly import Anomaly, CappedList
from tlspcap.errors import DecodeError
from tlspcap.facts.model import EncryptedRecord, MessageFacts
from tlspcap.keylog import CLIENT_RANDOM, KeyLog
from tlspcap.roles import Roles
from tlspcap.tls import codec
from tlspcap.tls.decrypt import (
    TLS13_SUITES,
    DecryptError,
    Tls12RecordDecryptor,
    Tls13RecordDecryptor,
    tls12_decryptors,
)
from tlspcap.tls.handshake import HandshakeAssembler, HandshakeMessage
from tlspcap.tls.messages import (
    Alert,
    CertificateMessage,
    CertificateRequest,
    CertificateStatus,
    ClientHello,
    KeyExchange,
    ServerHello,
)
from tlspcap.tls.records import (
    CT_ALERT,
    CT_APPLICATION_DATA,
    CT_CHANGE_CIPHER_SPEC,
    CT_HANDSHAKE,
    CT_HEARTBEAT,
    Record,
)
from tlspcap.tls.registry import cipher_name, cipher_properties, handshake_name

HISTORY_LETTERS = {
    0: "H", 1: "C", 2: "S", 3: "V", 4: "T", 5: "E", 8: "O", 11: "X", 12: "K", 13: "R",
    14: "N", 15: "Y", 16: "G", 20: "F", 21: "W", 22: "U", 23: "A", 24: "P", 254: "M",
}  # fmt: skip
"""Zeek ``ssl_history`` letters by handshake type (client upper case, server lower case)."""
MAX_HISTORY = 100
MAX_MESSAGES = 64
"""Handshake messages listed per connection (the hellos and certificates are kept apart)."""
SERVER_ONLY_MESSAGES = frozenset({4, 8, 12, 13, 14, 22})
"""NewSessionTicket, EncryptedExtensions, ServerKeyExchange, CertificateRequest,
ServerHelloDone, CertificateStatus: only a server sends them."""
CLIENT_ONLY_MESSAGES = frozenset({16})
"""ClientKeyExchange."""
MAX_ALERTS = 64
"""Alerts kept per connection (a flood of alert records is counted, not kept)."""
MAX_ENCRYPTED_LOG = 64
"""Encrypted records remembered per connection for size/order heuristics."""
APPLICATION_PREVIEW = 256
"""Bytes of decrypted application data kept per side."""
EXT_ENCRYPT_THEN_MAC = 22
HS_FINISHED = 20
HS_KEY_UPDATE = 24


def is_tls13(version: int) -> bool:
    """TLS 1.3 or one of its drafts (0x7fXX) / Facebook variants (0xfbXX)."""
    return version == 0x0304 or version >> 8 in (0x7F, 0xFB)


def _tls13_decryptable(version: int) -> bool:
    """TLS 1.3 versions whose record protection is RFC 8446's (final, drafts 25-28)."""
    return version == 0x0304 or 0x7F19 <= version <= 0x7F1C


@dataclass(slots=True)
class Side:
    """What one direction of the connection sent."""

    assembler: HandshakeAssembler = field(default_factory=HandshakeAssembler)
    encrypted: bool = False
    """Records from this side are encrypted from here on."""
    ccs_frame: int | None = None
    encrypted_handshake_records: int = 0
    application_records: int = 0
    application_bytes: int = 0
    first_application_frame: int | None = None
    certificates: list[CertificateMessage] = field(default_factory=list)
    last_frame: int | None = None
    """Last frame that carried TLS bytes from this side."""
    decrypted_records: int = 0
    """Encrypted records of this side decrypted with key-log secrets."""
    finished_frame: int | None = None
    """Frame of this side's first Finished message (seen only in plaintext or decrypted)."""
    application_preview: bytes = b""
    """First bytes of the side's decrypted application data (e.g. an HTTP status line)."""


@dataclass(slots=True)
class _Keys:
    """Decryption state of one direction."""

    decryptor: Tls13RecordDecryptor | Tls12RecordDecryptor
    next_secret: bytes | None = None
    """TLS 1.3: the application traffic secret to switch to after this side's Finished."""
    after_finished: bool = False
    """TLS 1.3: the side's Finished was read (KeyUpdate applies from here)."""


class TlsSession(Roles[Side]):
    """Accumulates the TLS facts of one TCP connection (see the module docstring)."""

    def __init__(
        self,
        endpoints: tuple[tuple[bytes, int], tuple[bytes, int]],
        keylog: KeyLog | None = None,
    ) -> None:
        self.endpoints = endpoints
        """(address, port) of direction 0's sender and of direction 1's sender."""
        self.client_dir = 0
        """Direction index of the client (0 = the TCP initiator unless a hello says otherwise)."""
        self.role_from: str | None = None
        """What decided the roles (see :attr:`tlspcap.facts.model.ConnFacts.role_from`);
        None while nothing in the TLS content did."""
        self.sides = (Side(), Side())
        self.client_hellos: list[ClientHello] = []
        self.server_hellos: list[ServerHello] = []
        self.certificate_request: CertificateRequest | None = None
        self.server_hello_done_frame: int | None = None
        self._alerts: CappedList[tuple[int, Alert]] = CappedList(MAX_ALERTS)
        self.encrypted_log: list[EncryptedRecord] = []
        self.letters: list[tuple[int, str]] = []
        """History letters with their sender's direction (the case follows the roles, which
        may be decided only later in a capture that starts mid-handshake)."""
        self.messages: list[MessageFacts] = []
        """Handshake messages read, in order (at most :data:`MAX_MESSAGES`)."""
        self._cert_request_dir: int | None = None
        self._first_certificate_dir: int | None = None
        self.key_exchange: KeyExchange | None = None
        """The ServerKeyExchange's parameters (TLS <= 1.2, DHE and ECDHE)."""
        self.encrypted_extensions_alpn: bytes | None = None
        """The ALPN protocol a TLS 1.3 server selected in EncryptedExtensions (read only
        when decrypted; see :attr:`encrypted_extensions_frame`)."""
        self.encrypted_extensions_frame: int | None = None
        self.certificate_status: CertificateStatus | None = None
        """A stapled OCSP response (TLS <= 1.2 CertificateStatus)."""
        self.renegotiations: list[int | None] = [None, None]
        """Per direction: the frame of the first handshake record sent after that side's own
        application data (a renegotiation), if any."""
        self.anomalies: CappedList[Anomaly] = CappedList()
        self.version: int | None = None
        """Negotiated version (from the last real ServerHello)."""
        self._version13 = False  # is_tls13(self.version), kept with it
        self.cipher: int | None = None
        self._null_cipher = False
        self._last_letter: tuple[int, str] | None = None
        self.now = 0.0
        self._frame = 0
        """Capture time of the segment being fed (set by the TCP layer)."""
        self.frame_times: dict[int, float] = {}
        """Capture time of each frame that completed a handshake message or alert."""
        self.keylog = keylog
        """Secrets to decrypt with (looked up when a direction's first encrypted record comes)."""
        self._keys: list[_Keys | None] = [None, None]
        self._keys_looked_up = [False, False]
        self.skim: Callable[[int], None] = _no_skim
        """Called with a direction whose application-data bodies will never be read again
        (encrypted, no keys): the packet stage may stop keeping them (set by the tracker)."""

    @property
    def decrypted(self) -> bool:
        """The key log had keys for this connection and at least one record was decrypted."""
        return any(s.decrypted_records for s in self.sides)

    @property
    def alerts(self) -> list[Alert]:
        """Every alert in order, with its sender's role."""
        out = []
        for direction, a in self._alerts:
            sender = self.role(direction)
            out.append(a if a.sender == sender else _with_sender(a, sender))
        return out

    @property
    def history(self) -> str:
        """Zeek-style history: client letters upper case, server letters lower case."""
        client = self.client_dir
        return "".join(x if d == client else x.lower() for d, x in self.letters)

    def _certificate_from(self, direction: int) -> None:
        """A Certificate alone does not tell the roles: the client sends one too when asked, and
        a capture may start after the request. It is the tie-breaker of :meth:`finish`."""
        if self._first_certificate_dir is None:
            self._first_certificate_dir = direction

    def _fix_role(self, direction: int, is_client: bool, source: str) -> None:
        if self.role_from is None:
            self.client_dir = direction if is_client else 1 - direction
            self.role_from = source

    # ---- input from the packet stage ---------------------------------------------------
    def record(self, direction: int, record: Record, now: float) -> None:
        """Take one record of a direction (``now``: capture time of the segment that completed
        it); see :mod:`tlspcap.tcp.stream`."""
        side = self.sides[direction]
        self.now = now
        side.last_frame = record.frame
        if (
            record.content_type != CT_APPLICATION_DATA
            or side.first_application_frame is None
            or len(self.encrypted_log) < MAX_ENCRYPTED_LOG
        ):  # bulk data records need no time: keep the table small
            self.frame_times.setdefault(record.frame, now)
        self._record(direction, side, record)

    def explicit_records(self, direction: int) -> int:
        """Application-data records of a direction that must still come one by one through
        :meth:`record` before :meth:`application_run` may count them (the engine's fast
        lane): the first encrypted flight of TLS 1.3, the first application record."""
        side = self.sides[direction]
        first_flight = self._tls13 and not side.encrypted_handshake_records
        return int(first_flight) + int(side.first_application_frame is None)

    def application_run(
        self, direction: int, count: int, size: int, frame: int, now: float
    ) -> None:
        """``count`` skimmed application-data records of ``size`` body bytes in all, the last
        completed at ``frame`` at time ``now``: the same as giving them to :meth:`record` one
        by one once :meth:`explicit_records` is 0 and the encrypted-record log is full."""
        side = self.sides[direction]
        self.now = now
        side.last_frame = self._frame = frame
        side.application_records += count
        side.application_bytes += size
        self._letter(direction, "D", collapse=True)

    def records_lost(self, direction: int, frame: int) -> None:
        """A gap took a direction's record boundaries at ``frame``: a handshake message in
        progress is lost, and so is the record sequence number decryption needs."""
        self.sides[direction].assembler.reset()
        if self._keys[direction] is not None:
            self._keys[direction] = None
            self.anomalies.append(
                Anomaly(
                    "decryption_stopped",
                    frame,
                    f"{self.role(direction)} records were lost from the capture: the "
                    "rest of this direction is left undecrypted",
                )
            )

    def finish(self, stream_anomalies: list[CappedList[Anomaly]] | None = None) -> None:
        """The connection's data has all been fed: merge the anomalies (the packet stage's in
        ``stream_anomalies``), free buffers."""
        if self.role_from is None and self._first_certificate_dir is not None:
            # Nothing else told the roles: the side that sent the first Certificate is the
            # server, unless the other side asked it for one.
            d = self._first_certificate_dir
            self._fix_role(d, self._cert_request_dir not in (None, d), "server_message")
        dropped = self._alerts.dropped + self.anomalies.dropped
        for extra in stream_anomalies or ():
            self.anomalies.extend(extra)
            dropped += extra.dropped
        for side in self.sides:
            self.anomalies.extend(side.assembler.anomalies)
            dropped += side.assembler.anomalies.dropped
            side.assembler.reset()
        self._keys = [None, None]
        self.anomalies.sort(key=lambda a: a.frame or 0)
        if dropped or self.anomalies.dropped:
            # Past the caps, alerts and anomalies are only counted (hostile input is bounded).
            list.append(
                self.anomalies,
                Anomaly(
                    "too_many_events",
                    None,
                    f"{self._alerts.dropped} alerts and "
                    f"{dropped - self._alerts.dropped + self.anomalies.dropped} anomalies beyond "
                    f"the per-connection caps ({MAX_ALERTS} alerts, {self.anomalies.cap} "
                    "anomalies) were counted, not kept",
                ),
            )

    # ---- records -----------------------------------------------------------------------
    def _letter(self, direction: int, letter: str, collapse: bool = False) -> None:
        if collapse and self._last_letter == (direction, letter):
            return
        self._last_letter = (direction, letter)
        if len(self.letters) < MAX_HISTORY:
            self.letters.append((direction, letter))

    def _record(self, direction: int, side: Side, record: Record) -> None:
        self._frame = record.frame
        ct = record.content_type
        # (a skimmed record has no body: its direction has no keys, nothing to decrypt)
        if side.encrypted and record.lost:
            self._skip_encrypted(direction)  # read by its size alone, like a keyless one
        elif (
            side.encrypted
            and not record.skipped
            and not record.sslv2
            and self._decrypt(direction, side, record)
        ):
            return
        if record.sslv2:
            self._sslv2(direction, side, record)
        elif ct == CT_CHANGE_CIPHER_SPEC:
            self._letter(direction, "I")
            if side.ccs_frame is None:
                side.ccs_frame = record.frame
            retry = any(sh.hello_retry_request for sh in self.server_hellos)  # TLS 1.3 anyway
            if (self.version is None and not retry) or (
                self.version is not None and not is_tls13(self.version)
            ):
                # Encrypted from here (with the version unknown, the ServerHello not being in
                # the capture, too: in TLS 1.3 a client's records after its CCS are encrypted
                # as well). New keys from here, and again after a renegotiation.
                side.encrypted = True
                self._keys[direction] = None
                self._keys_looked_up[direction] = False
        elif ct == CT_ALERT:
            self._alert(direction, side, record)
        elif ct == CT_HANDSHAKE and (
            not side.encrypted or (self.version is None and _whole_client_hello(record))
        ):
            # (A ClientHello after a CCS, with no ServerHello in the capture: the TLS 1.3
            # compatibility CCS before the second hello of a HelloRetryRequest not captured.)
            side.encrypted = False
            for msg in side.assembler.feed(record.payload, record.frame, record.lost):
                self._message(direction, side, msg)
        elif ct == CT_HANDSHAKE:
            if not side.encrypted_handshake_records and not self._tls13:
                self._letter(direction, "F")
            elif side.application_records and self.renegotiations[direction] is None:
                self.renegotiations[direction] = record.frame  # a handshake inside the session
            side.encrypted_handshake_records += 1
            self._log_encrypted(direction, record)
        elif ct == CT_APPLICATION_DATA:
            self._application(direction, side, record)
        elif ct == CT_HEARTBEAT:
            self._letter(direction, "B")
        else:
            self.anomalies.append(
                Anomaly("unknown_content_type", record.frame, f"content type {ct}")
            )

    @property
    def _tls13(self) -> bool:
        return self._version13

    def _log_encrypted(self, direction: int, record: Record) -> None:
        if len(self.encrypted_log) < MAX_ENCRYPTED_LOG:
            self.encrypted_log.append(
                EncryptedRecord(direction, record.content_type, record.size, record.frame)
            )

    def _application(self, direction: int, side: Side, record: Record) -> None:
        self._log_encrypted(direction, record)
        if self._tls13 and not side.encrypted_handshake_records:
            # The first encrypted flight of each side in TLS 1.3 is its handshake.
            side.encrypted_handshake_records += 1
            return
        side.application_records += 1
        side.application_bytes += record.size
        if side.first_application_frame is None:
            side.first_application_frame = record.frame
        self._letter(direction, "D", collapse=True)

    def _alert(self, direction: int, side: Side, record: Record) -> None:
        self._letter(direction, "L")
        payload = record.payload
        # TLS 1.3 encrypts alerts inside application_data records: an alert record is clear.
        if side.encrypted and not self._null_cipher and not self._tls13:
            alert = Alert(record.frame, "", None, None, True, record.size)
            self._alerts.append((direction, alert))
            self._log_encrypted(direction, record)
            return
        if side.encrypted:  # NULL cipher: plaintext followed by a MAC
            payload = payload[:2]
        elif len(payload) > 2 and any(level not in (1, 2) for level in payload[::2]):
            # Not alerts in the clear: encrypted under keys negotiated out of the capture's
            # sight (its hellos are not in it).
            alert = Alert(record.frame, "", None, None, True, record.size)
            self._alerts.append((direction, alert))
            self._log_encrypted(direction, record)
            return
        if len(payload) % 2 or not payload:
            self.anomalies.append(
                Anomaly("malformed_alert", record.frame, f"alert record of {len(payload)} bytes")
            )
            return
        for i in range(0, len(payload), 2):
            level, desc = payload[i], payload[i + 1]
            alert = Alert(record.frame, "", level, desc, False, len(record.payload))
            self._alerts.append((direction, alert))

    # ---- handshake messages ------------------------------------------------------------
    def _message(self, direction: int, side: Side, msg: HandshakeMessage) -> None:
        problems: list[str] = []
        try:
            if msg.truncated:
                self._truncated(direction, side, msg, problems)
            else:
                self._dispatch(direction, side, msg, problems)
        except DecodeError as exc:
            self.anomalies.append(
                Anomaly(f"malformed_handshake_{msg.msg_type}", msg.frame, str(exc))
            )
        for name in problems:
            self.anomalies.append(Anomaly(name, msg.frame))

    def _truncated(
        self, direction: int, side: Side, msg: HandshakeMessage, problems: list[str]
    ) -> None:
        """A message the capture holds only the start of: read what it reached, say so."""
        t = msg.msg_type
        self.anomalies.append(
            Anomaly(
                "truncated_handshake_message",
                msg.frame,
                f"{handshake_name(t)}: {len(msg.body)} of {msg.length} bytes "
                "captured; read as far as they go",
            )
        )
        if len(self.messages) < MAX_MESSAGES:
            self.messages.append(MessageFacts(direction, t, msg.frame, msg.length, True))
        if t == 1:
            self._fix_role(direction, True, "client_hello")
            self._letter(direction, "C")
            if len(msg.body) >= 34:
                self.client_hellos.append(
                    codec.parse_client_hello(msg.body, msg.frame, problems, truncated=True)
                )
        elif t == 2:
            self._fix_role(direction, False, "server_hello")
            self._letter(direction, "S")
        elif t == 11:
            self._certificate_from(direction)
            self._letter(direction, "X")
            side.certificates.append(
                codec.parse_certificate(msg.body, msg.frame, self._tls13, truncated=True)
            )
        elif t == 13:
            self._fix_role(direction, False, "certificate_request")
            self._cert_request_dir = direction
            self.certificate_request = CertificateRequest(msg.frame)
            self._letter(direction, "R")
        else:
            if t in SERVER_ONLY_MESSAGES:
                self._fix_role(direction, False, "server_message")
            elif t in CLIENT_ONLY_MESSAGES:
                self._fix_role(direction, True, "client_message")
            self._letter(direction, HISTORY_LETTERS.get(t, "Z"))

    def _dispatch(
        self, direction: int, side: Side, msg: HandshakeMessage, problems: list[str]
    ) -> None:
        t = msg.msg_type
        if len(self.messages) < MAX_MESSAGES:
            self.messages.append(MessageFacts(direction, t, msg.frame, len(msg.body)))
        if t == 1:
            self._fix_role(direction, True, "client_hello")
            self.client_hellos.append(codec.parse_client_hello(msg.body, msg.frame, problems))
            self._letter(direction, "C")
        elif t == 2:
            self._fix_role(direction, False, "server_hello")
            sh = codec.parse_server_hello(msg.body, msg.frame, problems)
            self.server_hellos.append(sh)
            self._letter(direction, "J" if sh.hello_retry_request else "S")
            if not sh.hello_retry_request:
                self._negotiated(sh)
        elif t == 11:
            self._certificate_from(direction)
            cert = codec.parse_certificate(msg.body, msg.frame, self._tls13)
            side.certificates.append(cert)
            self._letter(direction, "X")
        elif t == 13:
            self._fix_role(direction, False, "certificate_request")
            self._cert_request_dir = direction
            self.certificate_request = codec.parse_certificate_request(
                msg.body, msg.frame, self.version or 0x0303
            )
            self._letter(direction, "R")
        else:
            if t in SERVER_ONLY_MESSAGES:
                self._fix_role(direction, False, "server_message")
            elif t in CLIENT_ONLY_MESSAGES:
                self._fix_role(direction, True, "client_message")
            if t == 12 and self.cipher is not None:
                props = cipher_properties(self.cipher)
                if props is not None:
                    self.key_exchange = codec.parse_key_exchange(msg.body, msg.frame, props.kx)
            elif t == 22:
                self.certificate_status = codec.parse_certificate_status(msg.body, msg.frame)
            elif t == 8 and self.encrypted_extensions_frame is None:
                self.encrypted_extensions_frame = msg.frame
                self.encrypted_extensions_alpn = codec.parse_encrypted_extensions_alpn(msg.body)
            if t == 14:
                self.server_hello_done_frame = msg.frame
                self._letter(direction, "N")
            elif t == HS_FINISHED:
                if side.finished_frame is None:
                    side.finished_frame = msg.frame
                self._letter(direction, "F")
            else:
                self._letter(direction, HISTORY_LETTERS.get(t, "Z"))

    def _negotiated(self, sh: ServerHello) -> None:
        self.version = sh.version
        self._version13 = is_tls13(sh.version)
        self.cipher = sh.cipher_suite
        props = cipher_properties(sh.cipher_suite)
        self._null_cipher = props is not None and props.is_null_encryption
        if is_tls13(sh.version):
            for s in self.sides:
                s.encrypted = True

    # ---- decryption with key-log secrets -------------------------------------------------
    def _decrypt(self, direction: int, side: Side, record: Record) -> bool:
        """Decrypt and read an encrypted record; False when it must be read undecrypted."""
        ct = record.content_type
        if self._tls13:
            if ct != CT_APPLICATION_DATA:
                return False
        elif self._null_cipher or ct not in (CT_ALERT, CT_HANDSHAKE, CT_APPLICATION_DATA):
            return False
        keys = self._keys[direction]
        if keys is None:
            if not self._keys_looked_up[direction]:
                self._keys_looked_up[direction] = True
                keys = self._keys[direction] = self._find_keys(direction)
            if keys is None:
                # No keys for good (TLS 1.3 looks them up once; TLS 1.2 again after each
                # ChangeCipherSpec, which an empty key log cannot answer): stop copying bodies.
                if self._tls13 or not self.keylog:
                    self.skim(direction)
                return False
        try:
            inner, plain = keys.decryptor.decrypt(ct, record.version, record.payload)
        except DecryptError as exc:
            self._keys[direction] = None
            self.anomalies.append(
                Anomaly(
                    "decryption_failed",
                    record.frame,
                    f"{self.role(direction)} record {keys.decryptor.seq}: {exc}; "
                    "the rest of this direction is left undecrypted",
                )
            )
            return False
        side.decrypted_records += 1
        self._log_encrypted(direction, record)
        if inner == CT_HANDSHAKE:
            side.encrypted_handshake_records += 1
            for msg in side.assembler.feed(plain, record.frame):
                self._message(direction, side, msg)
                if isinstance(keys.decryptor, Tls13RecordDecryptor):
                    self._tls13_key_change(direction, keys, keys.decryptor, msg.msg_type)
        elif inner == CT_ALERT:
            self._decrypted_alert(direction, record, plain)
        elif inner == CT_APPLICATION_DATA:
            side.application_records += 1
            side.application_bytes += len(plain)
            if side.first_application_frame is None:
                side.first_application_frame = record.frame
            if len(side.application_preview) < APPLICATION_PREVIEW:
                side.application_preview = (side.application_preview + plain)[:APPLICATION_PREVIEW]
            self._letter(direction, "D", collapse=True)
        elif inner == CT_HEARTBEAT:
            self._letter(direction, "B")
        else:
            self.anomalies.append(
                Anomaly("unknown_content_type", record.frame, f"decrypted content type {inner}")
            )
        return True

    def _skip_encrypted(self, direction: int) -> None:
        """An encrypted record the capture cut cannot be opened: step its sequence number, so
        the records after it still decrypt (AEAD nonces depend on nothing else)."""
        if not self._keys_looked_up[direction]:
            self._keys_looked_up[direction] = True
            self._keys[direction] = self._find_keys(direction)
        keys = self._keys[direction]
        if keys is not None:
            keys.decryptor.seq += 1

    def _find_keys(self, direction: int) -> _Keys | None:
        """Keys of a direction from the key log, or None (no key log, no secret, unsupported)."""
        if self.keylog is None or not self.client_hellos or not self.server_hellos:
            return None
        client_random = self.client_hellos[-1].random
        sh = self.server_hellos[-1]
        version, cipher = self.version, self.cipher
        if version is None or cipher is None:
            return None
        is_client = direction == self.client_dir
        if is_tls13(version):
            prefix = "CLIENT" if is_client else "SERVER"
            secret = self.keylog.get(f"{prefix}_HANDSHAKE_TRAFFIC_SECRET", client_random)
            if secret is None:
                return None
            suite = TLS13_SUITES.get(cipher)
            if suite is None or not _tls13_decryptable(version):
                self._unsupported(cipher, version)
                return None
            if len(secret) != suite.hash_length:
                self.anomalies.append(
                    Anomaly(
                        "keylog_secret_mismatch",
                        self._frame,
                        f"{len(secret)}-byte handshake secret for {cipher_name(cipher)}",
                    )
                )
                return None
            app = self.keylog.get(f"{prefix}_TRAFFIC_SECRET_0", client_random)
            return _Keys(Tls13RecordDecryptor(suite, secret), app)
        master = self.keylog.get(CLIENT_RANDOM, client_random)
        if master is None:
            return None
        etm = EXT_ENCRYPT_THEN_MAC in sh.extension_types
        pair = tls12_decryptors(master, client_random, sh.random, cipher, version, etm)
        if pair is None:
            self._unsupported(cipher, version)
            return None
        return _Keys(pair[0] if is_client else pair[1])

    def _unsupported(self, cipher: int, version: int) -> None:
        if any(a.name == "decryption_unsupported" for a in self.anomalies):
            return  # once per connection, not once per direction
        self.anomalies.append(
            Anomaly(
                "decryption_unsupported",
                self._frame,
                f"the key log has secrets for this connection but {cipher_name(cipher)} "
                f"(version 0x{version:04x}) cannot be decrypted",
            )
        )

    def _tls13_key_change(
        self, direction: int, keys: _Keys, decryptor: Tls13RecordDecryptor, msg_type: int
    ) -> None:
        """After a side's Finished its application secret applies; after KeyUpdate the next."""
        if msg_type == HS_FINISHED and not keys.after_finished:
            keys.after_finished = True
            if keys.next_secret is None or len(keys.next_secret) != decryptor.suite.hash_length:
                self._keys[direction] = None  # no application secret: stop here
            else:
                decryptor.rekey(keys.next_secret)
        elif msg_type == HS_KEY_UPDATE and keys.after_finished:
            decryptor.key_update()

    def _decrypted_alert(self, direction: int, record: Record, plain: bytes) -> None:
        self._letter(direction, "L")
        if len(plain) % 2 or not plain:
            self.anomalies.append(
                Anomaly("malformed_alert", record.frame, f"decrypted alert of {len(plain)} bytes")
            )
            return
        for i in range(0, len(plain), 2):
            alert = Alert(record.frame, "", plain[i], plain[i + 1], True, len(record.payload))
            self._alerts.append((direction, alert))

    def _sslv2(self, direction: int, side: Side, record: Record) -> None:
        kind = record.payload[:1]
        try:
            if kind == b"\x01":
                self._fix_role(direction, True, "client_hello")
                self.client_hellos.append(
                    codec.parse_sslv2_client_hello(record.payload, record.frame)
                )
                self._letter(direction, "C")
            elif kind == b"\x04":
                self._fix_role(direction, False, "server_hello")
                sh = codec.parse_sslv2_server_hello(record.payload, record.frame)
                self.server_hellos.append(sh)
                self.version, self.cipher = sh.version, sh.cipher_suite
                self._version13 = False
                self._letter(direction, "S")
                if sh.sslv2_certificate:
                    side.certificates.append(
                        CertificateMessage(record.frame, (sh.sslv2_certificate,))
                    )
            else:
                side.application_records += 1
        except DecodeError as exc:
            self.anomalies.append(Anomaly("malformed_sslv2_hello", record.frame, str(exc)))


def _no_skim(direction: int) -> None:
    """The default :attr:`TlsSession.skim`: nothing to tell."""


def _whole_client_hello(record: Record) -> bool:
    """The record holds exactly one plaintext ClientHello (random bytes almost never do)."""
    body = record.payload
    return (
        len(body) > 38
        and not record.lost
        and body[0] == 1
        and int.from_bytes(body[1:4], "big") == len(body) - 4
        and body[4] == 3
    )


def _with_sender(a: Alert, sender: str) -> Alert:
    return Alert(a.frame, sender, a.level, a.description, a.encrypted, a.length)
