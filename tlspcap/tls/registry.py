"""Names for every TLS registry value tlspcap may meet, and cipher suite properties.

The tables are plain ``dict[int, str]`` (the data lives in :mod:`tlspcap.tls._tables` and
:mod:`tlspcap.tls._ciphers`); every lookup here is one dict get and never raises. A value no
table names renders as ``unknown-0x`` followed by the value in lowercase hex, zero-padded to
the registry's width, one fixed format per registry:

* 16-bit registries (versions, cipher suites, extensions, groups, signature schemes):
  ``unknown-0x%04x``; GREASE values (RFC 8701: 0x0a0a, 0x1a1a ... 0xfafa) render as ``GREASE``.
* 8-bit registries (content types, handshake types, alert levels and descriptions):
  ``unknown-0x%02x``.
* SSLv2 3-byte cipher kinds: ``unknown-0x%06x``.

Names are IANA's; where IANA assigns nothing they are what Wireshark prints. Known differences
from Wireshark 4.0 are listed (with reasons) in ``tests/test_registry.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tlspcap.tls._ciphers import CIPHER_SUITES, SSLV2_CIPHER_KINDS
from tlspcap.tls._tables import (
    ALERT_DESCRIPTIONS,
    ALERT_LEVELS,
    CONTENT_TYPES,
    EXTENSIONS,
    GROUPS,
    HANDSHAKE_TYPES,
    SIGNATURE_SCHEMES,
    VERSIONS,
)

__all__ = [
    "ALERT_DESCRIPTIONS",
    "ALERT_LEVELS",
    "CIPHER_SUITES",
    "CONTENT_TYPES",
    "EXTENSIONS",
    "GREASE_VALUES",
    "GROUPS",
    "HANDSHAKE_TYPES",
    "SIGNATURE_SCHEMES",
    "SSLV2_CIPHER_KINDS",
    "VERSIONS",
    "CipherProps",
    "alert_level_name",
    "alert_name",
    "cipher_name",
    "cipher_properties",
    "content_type_name",
    "extension_name",
    "group_name",
    "handshake_name",
    "is_grease",
    "name",
    "sigalg_name",
    "sslv2_cipher_name",
    "version_name",
]

GREASE_VALUES: frozenset[int] = frozenset((n << 12) | 0x0A00 | (n << 4) | 0x0A for n in range(16))
"""The sixteen RFC 8701 GREASE values 0x0a0a, 0x1a1a ... 0xfafa."""


def is_grease(value: int) -> bool:
    """True for an RFC 8701 GREASE value: two equal bytes whose low nibble is 0xa."""
    return value in GREASE_VALUES


def name(table: Mapping[int, str], value: int, width: int = 4) -> str:
    """Name of ``value`` in ``table``, else ``GREASE`` (16-bit tables only) or ``unknown-0x…``.

    ``width`` is the number of hex digits of the unknown rendering: 4 for 16-bit registries, 2 for
    8-bit ones, 6 for SSLv2 cipher kinds.
    """
    found = table.get(value)
    if found is not None:
        return found
    if width == 4 and value in GREASE_VALUES:
        return "GREASE"
    return f"unknown-0x{value:0{width}x}"


def cipher_name(v: int) -> str:
    """IANA name of a TLS cipher suite (``unknown-0x%04x`` / ``GREASE`` otherwise)."""
    return name(CIPHER_SUITES, v)


def sslv2_cipher_name(v: int) -> str:
    """Name of an SSLv2 3-byte cipher kind; a 0x00-prefixed kind is the TLS suite it carries."""
    found = SSLV2_CIPHER_KINDS.get(v)
    if found is not None:
        return found
    if 0 <= v <= 0xFFFF:
        return name(CIPHER_SUITES, v, 6)
    return f"unknown-0x{v:06x}"


def version_name(v: int) -> str:
    """Protocol version as Wireshark prints it, e.g. ``TLS 1.2`` or ``TLS 1.3 (draft 23)``."""
    return name(VERSIONS, v)


def alert_name(v: int) -> str:
    """Alert description, RFC snake_case (``handshake_failure``); ``unknown-0x%02x`` otherwise."""
    return name(ALERT_DESCRIPTIONS, v, 2)


def alert_level_name(v: int) -> str:
    """Alert level: ``warning`` or ``fatal`` (``unknown-0x%02x`` otherwise)."""
    return name(ALERT_LEVELS, v, 2)


def extension_name(v: int) -> str:
    """Hello extension type name, e.g. ``server_name`` or ``encrypted_client_hello``."""
    return name(EXTENSIONS, v)


def group_name(v: int) -> str:
    """Supported group name, e.g. ``x25519`` or ``X25519MLKEM768``."""
    return name(GROUPS, v)


def sigalg_name(v: int) -> str:
    """Signature scheme name, e.g. ``rsa_pss_rsae_sha256``; TLS 1.2 pairs like ``dsa_sha1``."""
    return name(SIGNATURE_SCHEMES, v)


def handshake_name(v: int) -> str:
    """Handshake message type, RFC snake_case (``client_hello``); ``unknown-0x%02x`` otherwise."""
    return name(HANDSHAKE_TYPES, v, 2)


def content_type_name(v: int) -> str:
    """Record content type, RFC snake_case (``handshake``); ``unknown-0x%02x`` otherwise."""
    return name(CONTENT_TYPES, v, 2)


@dataclass(frozen=True, slots=True)
class CipherProps:
    """What a cipher suite's name says about it (derived by parsing the name).

    For ``TLS_<KX>_WITH_<ENC>_<MAC>`` suites the fields are the name's parts with any
    ``EXPORT``/``EXPORT1024``/``FIPS`` marker removed from ``kx``. TLS 1.3 suites
    (``TLS_<ENC>_<HASH>``) have ``kx`` and ``auth`` ``TLS13``. GM/T suites (``ECC_SM4_CBC_SM3``)
    take ``kx`` from the first word.
    """

    kx: str
    """Key exchange: ``RSA``, ``DH``, ``DHE``, ``ECDH``, ``ECDHE``, ``PSK``, ``SRP``, ``KRB5``,
    ``TLS13``, ``NULL`` ..."""
    auth: str
    """Authentication: ``RSA``, ``DSS``, ``ECDSA``, ``PSK``, ``anon``, ``NULL``, ``TLS13`` ..."""
    enc: str
    """Bulk cipher as named: ``AES_128_GCM``, ``RC4_40``, ``3DES_EDE_CBC``, ``NULL`` ..."""
    mac: str
    """MAC (or, for AEAD suites, PRF hash) as named: ``SHA``, ``SHA256``, ``MD5``; ``AEAD`` when the
    name has none (``AES_128_CCM``); ``NULL`` for TLS_NULL_WITH_NULL_NULL."""
    is_null_encryption: bool
    """No encryption: records after ChangeCipherSpec are readable plaintext followed by a MAC."""
    is_export: bool
    """An export-grade suite (``EXPORT`` or ``EXPORT1024`` in the name)."""
    is_anonymous: bool
    """The server is not authenticated (``anon`` or NULL authentication)."""
    is_weak: bool
    """NULL, export, anonymous, RC4, RC2, (3)DES, IDEA, Fortezza, or an MD5 MAC."""
    is_aead: bool
    """The bulk cipher is an AEAD (GCM, CCM, ChaCha20-Poly1305, MGM, AEGIS)."""
    mac_length: int
    """Bytes of the per-record MAC (MD5 16, SHA 20, SHA256 32, SHA384 48); 0 for AEAD suites."""


_MAC_TOKENS: dict[str, int] = {
    "MD5": 16,
    "SHA": 20,
    "SHA1": 20,
    "SHA256": 32,
    "SHA384": 48,
    "SHA512": 64,
    "SM3": 32,
    "GOSTR3411": 32,
    "IMIT": 4,
    "OMAC": 8,  # Magma (64-bit block); Kuznyechik's OMAC is 16, set below
}
_PAIR_KX = frozenset({"DH", "DHE", "ECDH", "ECDHE", "RSA"})
_GMT_AUTH = {"ECDHE": "SM2", "ECC": "SM2", "IBSDH": "IBC", "IBC": "IBC", "RSA": "RSA"}
_AEAD_MARKERS = ("GCM", "CCM", "CHACHA20_POLY1305", "MGM", "AEGIS")
_WEAK_MARKERS = ("RC4", "RC2", "DES", "IDEA", "FORTEZZA")


def _split_kx(kx_part: str) -> tuple[str, str]:
    """Split the part before ``_WITH_`` into (key exchange, authentication)."""
    tokens = [t for t in kx_part.split("_") if t not in ("EXPORT", "EXPORT1024", "FIPS")]
    if tokens == ["PSK", "DHE"]:  # RFC 6655 spells 0xc0aa/0xc0ab TLS_PSK_DHE_WITH_...
        tokens = ["DHE", "PSK"]
    if tokens[0] == "SRP":  # SRP_SHA, SRP_SHA_RSA, SRP_SHA_DSS
        return "SRP", tokens[2] if len(tokens) > 2 else "SRP"
    if len(tokens) == 2 and tokens[0] in _PAIR_KX | {"PSK"}:
        return tokens[0], tokens[1]
    whole = "_".join(tokens)
    return whole, whole


def _parse_suite(suite: str) -> CipherProps | None:
    """Properties of one suite from its name; None for signalling values (SCSV)."""
    if suite.endswith("_SCSV"):
        return None
    suite = suite.removesuffix("_OLD")
    if suite.startswith(("TLS_", "SSL_")):
        body = suite[4:]
        if "_WITH_" in body:
            kx_part, cipher_part = body.split("_WITH_", 1)
            kx, auth = _split_kx(kx_part)
        else:
            kx, auth, cipher_part = "TLS13", "TLS13", body
    else:  # GM/T 0024 suites: ECC_SM4_CBC_SM3
        kx, _, cipher_part = suite.partition("_")
        auth = _GMT_AUTH.get(kx, kx)
    tokens = cipher_part.split("_")
    if len(tokens) > 1 and tokens[-1] in _MAC_TOKENS:
        enc, mac = "_".join(tokens[:-1]), tokens[-1]
    elif cipher_part == "NULL_NULL":
        enc, mac = "NULL", "NULL"
    else:
        enc, mac = cipher_part, "AEAD"
    if enc in _MAC_TOKENS:  # integrity-only TLS 1.3 suites (RFC 9150): TLS_SHA256_SHA256
        enc = "NULL"
    is_aead = any(m in enc for m in _AEAD_MARKERS)
    if is_aead or mac == "NULL":
        mac_length = 0
    elif mac == "OMAC" and enc.startswith("KUZNYECHIK"):
        mac_length = 16
    else:
        mac_length = _MAC_TOKENS[mac]
    is_null = enc == "NULL"
    is_export = "EXPORT" in suite
    is_anon = auth in ("anon", "NULL")
    is_weak = (
        is_null or is_export or is_anon or mac == "MD5" or any(m in enc for m in _WEAK_MARKERS)
    )
    return CipherProps(
        kx=kx,
        auth=auth,
        enc=enc,
        mac=mac,
        is_null_encryption=is_null,
        is_export=is_export,
        is_anonymous=is_anon,
        is_weak=is_weak,
        is_aead=is_aead,
        mac_length=mac_length,
    )


_PROPS: dict[int, CipherProps] = {
    code: props
    for code, suite in CIPHER_SUITES.items()
    if (props := _parse_suite(suite)) is not None
}


def cipher_properties(v: int) -> CipherProps | None:
    """Properties of cipher suite ``v``; None for unknown, GREASE and SCSV values."""
    return _PROPS.get(v)
