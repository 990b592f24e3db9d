"""Typed TLS handshake messages (the values the codecs in :mod:`tlspcap.tls.codec` return)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple


class Extension(NamedTuple):
    """One hello extension as sent: its type and raw body (unknown ones are kept, never dropped)."""

    type: int
    data: bytes


@dataclass(frozen=True, slots=True)
class ClientHello:
    """A ClientHello (or an SSLv2-compatible CLIENT-HELLO, then ``sslv2`` is true)."""

    frame: int
    """Frame that completed the message (as Wireshark shows it)."""
    legacy_version: int
    """``client_version`` / ``legacy_version`` field."""
    random: bytes
    """Client random (32 bytes; SSLv2 challenge left-padded to 32 bytes)."""
    session_id: bytes
    cipher_suites: tuple[int, ...]
    """Offered suites in wire order, GREASE kept (SSLv2: the kinds with a 0x00 prefix)."""
    compression_methods: tuple[int, ...]
    extensions: tuple[Extension, ...]
    """Every extension in wire order, GREASE kept."""
    sni: str | None = None
    """First host_name in server_name, or None when the extension is absent."""
    supported_versions: tuple[int, ...] = ()
    """supported_versions extension values in wire order (empty when absent)."""
    alpn: tuple[bytes, ...] = ()
    """ALPN protocol names offered, raw bytes in wire order."""
    supported_groups: tuple[int, ...] = ()
    signature_algorithms: tuple[int, ...] = ()
    ec_point_formats: tuple[int, ...] = ()
    key_share_groups: tuple[int, ...] = ()
    psk_offered: bool = False
    """A pre_shared_key extension is present (resumption attempt)."""
    early_data: bool = False
    """An early_data extension is present (0-RTT attempt)."""
    sslv2: bool = False
    """Sent in the SSLv2-compatible record format."""
    sslv2_cipher_kinds: tuple[int, ...] = ()
    """SSLv2 3-byte cipher kinds as sent (only for ``sslv2``)."""
    truncated: bool = False
    """The capture holds only the first part of the message (snap length, loss): the fields
    are what that part reached; a list the cut ran into is left empty."""
    extension_types: tuple[int, ...] = field(init=False, repr=False, compare=False)
    """Extension type codes in wire order (derived from ``extensions`` once, when built)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "extension_types", tuple([e.type for e in self.extensions]))

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild, (type(self), _values(self))


@dataclass(frozen=True, slots=True)
class ServerHello:
    """A ServerHello, HelloRetryRequest, or SSLv2 SERVER-HELLO."""

    frame: int
    legacy_version: int
    random: bytes
    session_id: bytes
    cipher_suite: int
    compression_method: int
    extensions: tuple[Extension, ...]
    selected_version: int | None = None
    """Value of the supported_versions extension when present."""
    alpn: bytes | None = None
    """ALPN protocol the server selected."""
    key_share_group: int | None = None
    hello_retry_request: bool = False
    """The random is the HelloRetryRequest magic value (RFC 8446 4.1.3)."""
    sslv2: bool = False
    """An SSLv2 SERVER-HELLO (then ``cipher_suite`` is the first 3-byte cipher kind)."""
    sslv2_certificate: bytes | None = None
    """The certificate an SSLv2 SERVER-HELLO carries."""
    truncated: bool = False
    """The capture holds only the first part of the message (see ClientHello.truncated)."""
    extension_types: tuple[int, ...] = field(init=False, repr=False, compare=False)
    """Extension type codes in wire order (derived from ``extensions`` once, when built)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "extension_types", tuple([e.type for e in self.extensions]))

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild, (type(self), _values(self))

    @property
    def version(self) -> int:
        """The version the server selected (supported_versions when present, else legacy)."""
        return self.selected_version if self.selected_version is not None else self.legacy_version


@dataclass(frozen=True, slots=True)
class CertificateMessage:
    """A Certificate message: the DER chain as sent, in order."""

    frame: int
    chain: tuple[bytes, ...]
    request_context: bytes = b""
    """TLS 1.3 certificate_request_context (empty for TLS <= 1.2)."""
    truncated: bool = False
    """The capture holds only the first part of the message: ``chain`` has the certificates
    that part holds whole (the leaf first, if it was reached)."""


@dataclass(frozen=True, slots=True)
class CertificateRequest:
    """A CertificateRequest (TLS <= 1.2 or 1.3)."""

    frame: int
    certificate_types: tuple[int, ...] = ()
    signature_algorithms: tuple[int, ...] = ()
    authorities: tuple[bytes, ...] = field(default_factory=tuple)
    """Distinguished names of acceptable CAs, DER, as sent."""


class Alert(NamedTuple):
    """An alert record, in the clear or encrypted."""

    frame: int
    sender: str
    """``"client"`` or ``"server"``."""
    level: int | None
    """1 warning, 2 fatal; None when encrypted."""
    description: int | None
    """Alert description code; None when encrypted."""
    encrypted: bool
    length: int
    """Length of the record payload (useful for encrypted alerts)."""


_INIT_FIELDS: dict[type, tuple[str, ...]] = {}


def _values(obj: object) -> tuple[Any, ...]:
    """The ``__init__`` arguments of a frozen dataclass instance, in order (pickling the hellos
    this way is several times faster than the generic slot-by-slot state)."""
    cls = type(obj)
    names = _INIT_FIELDS.get(cls)
    if names is None:
        names = _INIT_FIELDS[cls] = tuple(f.name for f in fields(cls) if f.init)  # type: ignore[arg-type]
    return tuple(getattr(obj, n) for n in names)


def _rebuild(cls: type[Any], values: tuple[Any, ...]) -> Any:
    """Unpickle what :func:`_values` saved."""
    return cls(*values)


@dataclass(frozen=True, slots=True)
class KeyExchange:
    """What a ServerKeyExchange says about the key exchange's strength (TLS <= 1.2)."""

    frame: int
    kind: str
    """``DHE`` (finite-field) or ``ECDHE``."""
    dh_bits: int | None = None
    """Bit length of the DH prime p (finite-field only)."""
    curve: int | None = None
    """Named curve (ECDHE with named_curve only)."""


@dataclass(frozen=True, slots=True)
class CertificateStatus:
    """A stapled OCSP response (CertificateStatus message, status_type ocsp)."""

    frame: int
    response: bytes
    """The DER OCSPResponse."""
