"""Client and server hello fingerprints: JA3, JA3S and JA4 (TLS client only).

JA3 and JA3S follow the salesforce/ja3 README and its reference implementations (``python/ja3.py``
and the Zeek ``ja3.zeek`` / ``ja3s.zeek`` scripts), all BSD-3-Clause. JA4 follows
``technical_details/JA4.md`` of FoxIO-LLC/ja4; only JA4 (the TLS client fingerprint, BSD-3-Clause)
is implemented here. JA4S, JA4H, JA4X and the other JA4+ methods are under the FoxIO License and
are deliberately absent.

Choices where the specifications leave room (each is documented at the function that makes it):

* GREASE (RFC 8701) values are the sixteen ``0x?A?A`` code points. JA3 drops them from every list;
  JA3S keeps the server's lists as sent, like both reference implementations; JA4 drops them
  everywhere, signature algorithms included (FoxIO-LLC/ja4#60).
* SSLv2 CLIENT-HELLOs: JA3 uses the 3-byte cipher kinds as decimal numbers, as Zeek (and so the
  JA3 Zeek script) does; JA4 counts and hashes only the kinds that are TLS cipher suites
  (``0x00XXXX``), since JA4 cipher codes are 4 hex digits.
* JA4 ALPN: the current rule of JA4.md (the first and last hex digit of the value when its first or
  last byte is not an ASCII letter or digit). The reference tools at commit 0e54bc8 still print
  ``9`` for a non-ASCII character instead (FoxIO-LLC/ja4#326).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from tlspcap.tls.messages import ClientHello, ServerHello
from tlspcap.tls.registry import GREASE_VALUES, is_grease

__all__ = [
    "GREASE_VALUES",
    "is_grease",
    "ja3",
    "ja3_of_string",
    "ja3_string",
    "ja3s",
    "ja3s_string",
    "ja4",
    "ja4_hashes",
    "ja4_raw",
]


_EXT_SERVER_NAME = 0x0000
_EXT_ALPN = 0x0010
_EXT_SUPPORTED_VERSIONS = 0x002B

_JA4_VERSIONS: dict[int, str] = {
    0x0304: "13",
    0x0303: "12",
    0x0302: "11",
    0x0301: "10",
    0x0300: "s3",
    0x0002: "s2",
    0xFEFF: "d1",
    0xFEFD: "d2",
    0xFEFC: "d3",
}
"""JA4.md "TLS and DTLS Version" table; anything else is ``00``."""

_JA4_TRANSPORTS = frozenset({"t", "q", "d"})
_EMPTY_HASH = "000000000000"
_SNI_AND_ALPN = (_EXT_SERVER_NAME, _EXT_ALPN)


def _no_grease(values: Sequence[int]) -> Sequence[int]:
    """``values`` without GREASE (``values`` itself when it has none, the common case)."""
    if GREASE_VALUES.isdisjoint(values):
        return values
    return [v for v in values if v not in GREASE_VALUES]


def _dashed(values: Iterable[int]) -> str:
    return "-".join(map(str, values))


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("ascii"), usedforsecurity=False).hexdigest()


def ja3_string(ch: ClientHello) -> str:
    """The JA3 string: ``SSLVersion,Ciphers,Extensions,EllipticCurves,EllipticCurvePointFormats``.

    Every value is decimal, values within a field are joined with ``-``, and GREASE values are left
    out of every field. The version is the ClientHello ``legacy_version`` (never
    supported_versions). Empty fields stay empty (``769,4-5,,,``).

    For an SSLv2 CLIENT-HELLO the cipher field lists the 3-byte cipher kinds as numbers, which is
    what the JA3 Zeek script gets from Zeek; the salesforce Python script ignores SSLv2 records.
    """
    ciphers = ch.sslv2_cipher_kinds if ch.sslv2 and ch.sslv2_cipher_kinds else ch.cipher_suites
    return (
        f"{ch.legacy_version},{_dashed(_no_grease(ciphers))},"
        f"{_dashed(_no_grease(ch.extension_types))},{_dashed(_no_grease(ch.supported_groups))},"
        f"{_dashed(_no_grease(ch.ec_point_formats))}"
    )


def ja3_of_string(text: str) -> str:
    """The JA3 (or JA3S) fingerprint of an already built JA3 (JA3S) string: its MD5, lowercase hex.

    For callers that report both the string and the hash, so the string is built once.
    """
    return _md5(text)


def ja3(ch: ClientHello) -> str:
    """The JA3 fingerprint: lowercase hex MD5 of :func:`ja3_string`."""
    return _md5(ja3_string(ch))


def ja3s_string(sh: ServerHello) -> str:
    """The JA3S string: ``SSLVersion,Cipher,Extensions`` (decimal, extensions joined with ``-``).

    The version is the ServerHello ``legacy_version`` field (0x0303 for TLS 1.3). Extensions are
    listed as sent: neither reference implementation (``ja3s.py``, ``ja3s.zeek``) drops GREASE
    on the server side, and RFC 8701 servers do not send it in a ServerHello.
    """
    return f"{sh.legacy_version},{sh.cipher_suite},{_dashed(sh.extension_types)}"


def ja3s(sh: ServerHello) -> str:
    """The JA3S fingerprint: lowercase hex MD5 of :func:`ja3s_string`."""
    return _md5(ja3s_string(sh))


def _version_rank(version: int) -> int:
    # DTLS versions count down (DTLS 1.3 = 0xfefc < DTLS 1.2 = 0xfefd), so rank them by their
    # complement; TLS versions (and unknown values such as TLS 1.3 drafts, 0x7fxx) rank by value.
    if 0xFE00 <= version <= 0xFEFF:
        return 0x10000 + (0xFFFF - version)
    return version


def _ja4_version(ch: ClientHello, extension_types: Sequence[int]) -> str:
    offered = _no_grease(ch.supported_versions)
    if offered and _EXT_SUPPORTED_VERSIONS in extension_types:
        version = max(offered, key=_version_rank)
    else:
        version = ch.legacy_version
    return _JA4_VERSIONS.get(version, "00")


def _is_alnum(byte: int) -> bool:
    return 0x30 <= byte <= 0x39 or 0x41 <= byte <= 0x5A or 0x61 <= byte <= 0x7A


def _ja4_alpn(alpn: tuple[bytes, ...]) -> str:
    if not alpn or not alpn[0]:
        return "00"
    value = alpn[0]
    first, last = value[0], value[-1]
    if _is_alnum(first) and _is_alnum(last):
        return chr(first) + chr(last)
    hexed = value.hex()
    return hexed[0] + hexed[-1]


def _hex_list(values: Iterable[int]) -> str:
    return ",".join(map("{:04x}".format, values))


def _hash12(text: str) -> str:
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:12]


def _ext_section(extension_list: str, sigalgs: str) -> str:
    return f"{extension_list}_{sigalgs}" if sigalgs else extension_list


@dataclass(frozen=True, slots=True)
class _Ja4Lists:
    """JA4 part a and the three lists parts b and c are made of (GREASE removed)."""

    part_a: str
    ciphers: tuple[int, ...]
    """Sorted, or in wire order for JA4_o."""
    extensions: tuple[int, ...]
    """Sorted without SNI and ALPN, or in wire order with them for JA4_o."""
    sigalgs: tuple[int, ...]
    """Always in wire order."""


def _ja4_lists(ch: ClientHello, transport: str, original_order: bool) -> _Ja4Lists:
    if transport not in _JA4_TRANSPORTS:
        raise ValueError(f"JA4 transport must be 't', 'q' or 'd', not {transport!r}")
    ciphers = _no_grease(ch.cipher_suites)
    all_types = ch.extension_types
    extensions = _no_grease(all_types)
    sni = "d" if _EXT_SERVER_NAME in extensions else "i"
    part_a = (
        f"{transport}{_ja4_version(ch, all_types)}{sni}{min(len(ciphers), 99):02d}"
        f"{min(len(extensions), 99):02d}{_ja4_alpn(ch.alpn)}"
    )
    if original_order:
        cipher_list = tuple(ciphers)
        extension_list = tuple(extensions)
    else:
        cipher_list = tuple(sorted(ciphers))
        extension_list = tuple(sorted(e for e in extensions if e not in _SNI_AND_ALPN))
    return _Ja4Lists(
        part_a, cipher_list, extension_list, tuple(_no_grease(ch.signature_algorithms))
    )


@lru_cache(maxsize=1024)
def _cipher_hash(ciphers: tuple[int, ...]) -> str:
    """JA4 part b of a (sorted or ordered) cipher list; many clients share one list."""
    return _hash12(_hex_list(ciphers)) if ciphers else _EMPTY_HASH


@lru_cache(maxsize=1024)
def _extension_hash(extensions: tuple[int, ...], sigalgs: tuple[int, ...]) -> str:
    """JA4 part c of an extension list and signature algorithms; many clients share them."""
    if not extensions:
        return _EMPTY_HASH
    return _hash12(_ext_section(_hex_list(extensions), _hex_list(sigalgs)))


def ja4(ch: ClientHello, transport: str = "t", *, original_order: bool = False) -> str:
    """The JA4 fingerprint of a ClientHello, e.g. ``t13d1516h2_8daaf6152771_e5627efa2ab1``.

    ``transport`` is ``"t"`` (TLS over TCP), ``"q"`` (QUIC) or ``"d"`` (DTLS). With
    ``original_order`` the result is JA4_o: ciphers and extensions keep their wire order and
    SNI/ALPN stay in the extension list.

    Part a: transport; version (highest non-GREASE supported_versions value when that extension
    is present, else ``legacy_version``; 13/12/11/10/s3/s2/d1/d2/d3, otherwise ``00``); ``d``
    when a server_name extension is present, else ``i``; non-GREASE cipher and extension counts
    (two digits, at most 99; SNI and ALPN counted); first and last character of the first ALPN
    value (``00`` when there is none or it is empty; the first and last hex digit of the value
    when its first or last byte is not an ASCII letter or digit). Part b: first 12 hex digits of
    the SHA-256 of the sorted 4-hex-digit cipher list. Part c: the same of the sorted extension
    list without SNI (0000) and ALPN (0010), then ``_`` and the signature algorithms in wire
    order (no ``_`` when there are none). GREASE is ignored everywhere; an empty list hashes to
    ``000000000000``. The supported_versions "highest" value ranks DTLS versions by protocol
    version (DTLS 1.3, 0xfefc, above DTLS 1.2, 0xfefd).
    """
    lists = _ja4_lists(ch, transport, original_order)
    return (
        f"{lists.part_a}_{_cipher_hash(lists.ciphers)}_"
        f"{_extension_hash(lists.extensions, lists.sigalgs)}"
    )


def ja4_hashes(ch: ClientHello) -> tuple[str, str]:
    """JA4 parts b and c (the cipher hash and the extension hash) of a TLS ClientHello.

    The same values as ``ja4(ch).split("_")[1:]``, without building part a.
    """
    ciphers = _no_grease(ch.cipher_suites)
    extensions = sorted(e for e in _no_grease(ch.extension_types) if e not in _SNI_AND_ALPN)
    sigalgs = _no_grease(ch.signature_algorithms)
    return (
        _cipher_hash(tuple(sorted(ciphers))),
        _extension_hash(tuple(extensions), tuple(sigalgs)),
    )


def ja4_raw(ch: ClientHello, original_order: bool = False, *, transport: str = "t") -> str:
    """The raw (unhashed) JA4: JA4_r, or JA4_ro with ``original_order``.

    Same parts as :func:`ja4`, with the lists in place of their hashes, e.g.
    ``t13d1516h2_002f,0035,..._0005,000a,..._0403,0804,...``. An empty list leaves its section
    empty. JA4_ro keeps wire order and includes SNI (0000) and ALPN (0010), per JA4.md.
    """
    lists = _ja4_lists(ch, transport, original_order)
    return (
        f"{lists.part_a}_{_hex_list(lists.ciphers)}_"
        f"{_ext_section(_hex_list(lists.extensions), _hex_list(lists.sigalgs))}"
    )
