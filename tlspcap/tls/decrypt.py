"""TLS record decryption from key-log secrets (sans I/O).

TLS 1.3 (RFC 8446): a traffic secret gives a key and an IV through HKDF-Expand-Label
(section 7.1, 7.3); each record is opened with the AEAD under ``nonce = iv XOR seq`` (the 64-bit
record sequence number, left-padded) and ``AAD = the 5-byte record header``. The plaintext is the
TLSInnerPlaintext: content, the real content type, then zero padding. A new secret (the
application secret after Finished, the next one after KeyUpdate) restarts ``seq`` at 0.

TLS 1.0-1.2 (RFC 2246, 4346, 5246): the master secret of a ``CLIENT_RANDOM`` key-log line gives
the key block ``PRF(master, "key expansion", server_random + client_random)``, cut into the MAC
keys, the write keys and the IVs of both sides. The PRF is P_MD5 XOR P_SHA1 before TLS 1.2,
P_SHA256 in TLS 1.2 (P_SHA384 for ``_SHA384`` suites). Supported bulk ciphers: AES-GCM and
AES-CCM(_8) (4-byte implicit salt + 8-byte explicit nonce, RFC 5288/6655), ChaCha20-Poly1305
(RFC 7905), AES/Camellia/3DES in CBC mode with HMAC (explicit IV from TLS 1.1, chained IV in
TLS 1.0; MAC-then-encrypt, or encrypt-then-MAC when RFC 7366 was negotiated) and RC4, including
the export RC4_40/RC4_56 suites (5 or 7 key bytes expanded as RFC 2246 section 6.3 says, with the
negotiated version's PRF, as Wireshark does). Block-cipher export suites and SSL 3.0 are not
supported.

Every decryptor raises :class:`DecryptError` when a record does not authenticate (wrong key,
wrong sequence, corrupt data); the caller then stops decrypting that direction.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4, Camellia, TripleDES
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import (
    BlockCipherAlgorithm,
    Cipher,
    CipherContext,
    algorithms,
    modes,
)
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from tlspcap.tls.registry import cipher_properties

__all__ = [
    "TLS12_AEAD_EXPLICIT_NONCE",
    "TLS13_SUITES",
    "DecryptError",
    "RecordDecryptor",
    "Tls12RecordDecryptor",
    "Tls12Suite",
    "Tls13RecordDecryptor",
    "Tls13Suite",
    "hkdf_expand_label",
    "next_traffic_secret",
    "tls12_decryptors",
    "tls12_key_block",
    "tls12_prf",
    "tls12_suite",
    "traffic_keys",
]

_Aead = AESGCM | AESCCM | ChaCha20Poly1305


class DecryptError(Exception):
    """A record could not be decrypted: bad tag, bad MAC, bad padding or bad length."""


class RecordDecryptor(Protocol):
    """Decrypts the records of one direction, in order."""

    seq: int
    """Sequence number of the next record."""

    def decrypt(self, content_type: int, version: int, payload: bytes) -> tuple[int, bytes]:
        """Decrypt one record (header fields and body); return (real content type, plaintext)."""
        ...


# ---- TLS 1.3 ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Tls13Suite:
    """The parameters of a TLS 1.3 cipher suite."""

    code: int
    aead: str
    """``gcm``, ``chacha20``, ``ccm`` or ``ccm8``."""
    key_length: int
    hash: str
    """``sha256`` or ``sha384``: the HKDF hash."""

    @property
    def hash_length(self) -> int:
        """Length of the suite's hash (and of its traffic secrets)."""
        return 48 if self.hash == "sha384" else 32

    @property
    def tag_length(self) -> int:
        """AEAD tag length."""
        return 8 if self.aead == "ccm8" else 16

    def hash_algorithm(self) -> hashes.HashAlgorithm:
        """The suite's hash for ``cryptography``."""
        return hashes.SHA384() if self.hash == "sha384" else hashes.SHA256()


TLS13_SUITES: dict[int, Tls13Suite] = {
    0x1301: Tls13Suite(0x1301, "gcm", 16, "sha256"),
    0x1302: Tls13Suite(0x1302, "gcm", 32, "sha384"),
    0x1303: Tls13Suite(0x1303, "chacha20", 32, "sha256"),
    0x1304: Tls13Suite(0x1304, "ccm", 16, "sha256"),
    0x1305: Tls13Suite(0x1305, "ccm8", 16, "sha256"),
}
"""TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256,
TLS_AES_128_CCM_SHA256, TLS_AES_128_CCM_8_SHA256."""
TLS13_IV_LENGTH = 12


def hkdf_expand_label(
    secret: bytes, label: bytes, context: bytes, length: int, hash_alg: hashes.HashAlgorithm
) -> bytes:
    """HKDF-Expand-Label of RFC 8446 section 7.1 (the ``tls13 `` prefix is added here)."""
    full = b"tls13 " + label
    info = length.to_bytes(2, "big") + bytes([len(full)]) + full + bytes([len(context)]) + context
    return HKDFExpand(hash_alg, length, info).derive(secret)


def traffic_keys(secret: bytes, suite: Tls13Suite) -> tuple[bytes, bytes]:
    """The (key, iv) of a TLS 1.3 traffic secret (RFC 8446 section 7.3)."""
    alg = suite.hash_algorithm()
    key = hkdf_expand_label(secret, b"key", b"", suite.key_length, alg)
    iv = hkdf_expand_label(secret, b"iv", b"", TLS13_IV_LENGTH, alg)
    return key, iv


def next_traffic_secret(secret: bytes, suite: Tls13Suite) -> bytes:
    """The traffic secret after a KeyUpdate (RFC 8446 section 7.2)."""
    return hkdf_expand_label(secret, b"traffic upd", b"", suite.hash_length, suite.hash_algorithm())


def _aead(kind: str, key: bytes) -> _Aead:
    if kind == "gcm":
        return AESGCM(key)
    if kind == "chacha20":
        return ChaCha20Poly1305(key)
    return AESCCM(key, tag_length=8 if kind == "ccm8" else 16)


def _xor_seq(iv: bytes, seq: int) -> bytes:
    return (int.from_bytes(iv, "big") ^ seq).to_bytes(len(iv), "big")


class Tls13RecordDecryptor:
    """Opens the TLS 1.3 records of one direction under one traffic secret at a time."""

    def __init__(self, suite: Tls13Suite, secret: bytes) -> None:
        """Start with ``secret`` (sequence number 0)."""
        self.suite = suite
        self.seq = 0
        self.secret = secret
        self._aead, self._iv = self._keys(secret)

    def _keys(self, secret: bytes) -> tuple[_Aead, bytes]:
        key, iv = traffic_keys(secret, self.suite)
        return _aead(self.suite.aead, key), iv

    def rekey(self, secret: bytes) -> None:
        """Switch to a new traffic secret; the sequence number restarts at 0."""
        self.secret = secret
        self._aead, self._iv = self._keys(secret)
        self.seq = 0

    def key_update(self) -> None:
        """Move to the next traffic secret (the sender sent a KeyUpdate)."""
        self.rekey(next_traffic_secret(self.secret, self.suite))

    def decrypt(self, content_type: int, version: int, payload: bytes) -> tuple[int, bytes]:
        """Open one TLSCiphertext; return (inner content type, content without padding)."""
        header = (
            bytes([content_type]) + version.to_bytes(2, "big") + len(payload).to_bytes(2, "big")
        )
        try:
            inner = self._aead.decrypt(_xor_seq(self._iv, self.seq), payload, header)
        except (InvalidTag, ValueError) as exc:
            raise DecryptError(
                f"record {self.seq} does not authenticate ({type(exc).__name__})"
            ) from exc
        self.seq += 1
        stripped = inner.rstrip(b"\x00")
        if not stripped:
            raise DecryptError("decrypted record holds only padding (no content type)")
        return stripped[-1], stripped[:-1]

    def encrypt(self, content_type: int, content: bytes, padding: int = 0) -> bytes:
        """Seal a TLSInnerPlaintext into a whole record (header included); for tests."""
        inner = content + bytes([content_type]) + bytes(padding)
        length = len(inner) + self.suite.tag_length
        header = b"\x17\x03\x03" + length.to_bytes(2, "big")
        body = self._aead.encrypt(_xor_seq(self._iv, self.seq), inner, header)
        self.seq += 1
        return header + body


# ---- TLS 1.0 - 1.2 ------------------------------------------------------------------------
TLS12_AEAD_EXPLICIT_NONCE = 8
"""Bytes of explicit nonce in front of a GCM/CCM record (RFC 5288, RFC 6655)."""

_MAC_HASHES: dict[str, str] = {"MD5": "md5", "SHA": "sha1", "SHA256": "sha256", "SHA384": "sha384"}
_BLOCK_CIPHERS: dict[str, tuple[Callable[[bytes], BlockCipherAlgorithm], int, int]] = {
    "AES_128_CBC": (algorithms.AES, 16, 16),
    "AES_256_CBC": (algorithms.AES, 32, 16),
    "CAMELLIA_128_CBC": (Camellia, 16, 16),
    "CAMELLIA_256_CBC": (Camellia, 32, 16),
    "3DES_EDE_CBC": (TripleDES, 24, 8),
}
"""Bulk cipher name -> (algorithm, key length, block size)."""
_AEAD_CIPHERS: dict[str, tuple[str, int]] = {
    "AES_128_GCM": ("gcm", 16),
    "AES_256_GCM": ("gcm", 32),
    "AES_128_CCM": ("ccm", 16),
    "AES_256_CCM": ("ccm", 32),
    "AES_128_CCM_8": ("ccm8", 16),
    "AES_256_CCM_8": ("ccm8", 32),
    "CHACHA20_POLY1305": ("chacha20", 32),
}
"""Bulk AEAD name -> (kind, key length)."""


@dataclass(frozen=True, slots=True)
class Tls12Suite:
    """The record-protection parameters of a TLS 1.0-1.2 cipher suite."""

    code: int
    kind: str
    """``gcm``, ``ccm``, ``ccm8``, ``chacha20`` (AEAD), ``cbc`` or ``stream`` (RC4)."""
    cipher: str
    """Bulk cipher as named in the suite: ``AES_128_GCM``, ``AES_256_CBC``, ``RC4_128`` ..."""
    key_length: int
    iv_length: int
    """Implicit IV bytes from the key block: 4 (GCM/CCM), 12 (ChaCha20), the block size (CBC)."""
    mac: str
    """HMAC hash for CBC and stream suites (``md5``, ``sha1``, ``sha256``, ``sha384``); empty
    for AEAD suites."""
    prf_hash: str
    """The TLS 1.2 PRF hash: ``sha384`` for ``_SHA384`` suites, else ``sha256``."""
    block_size: int = 0
    export_key_material: int = 0
    """Export suites: write-key bytes in the key block (expanded to ``key_length``); else 0."""

    @property
    def mac_length(self) -> int:
        """HMAC output length (0 for AEAD suites)."""
        return hashlib.new(self.mac).digest_size if self.mac else 0

    @property
    def aead(self) -> bool:
        """An AEAD suite."""
        return self.kind in ("gcm", "ccm", "ccm8", "chacha20")


def tls12_suite(code: int) -> Tls12Suite | None:
    """Record-protection parameters of a TLS <= 1.2 suite; None when not supported here."""
    props = cipher_properties(code)
    if props is None or props.kx == "TLS13" or props.is_null_encryption:
        return None
    prf = "sha384" if props.mac == "SHA384" else "sha256"
    if props.is_export:
        material = {"RC4_40": 5, "RC4_56": 7}.get(props.enc)
        mac = _MAC_HASHES.get(props.mac)
        if material is None or mac is None:
            return None
        return Tls12Suite(code, "stream", props.enc, 16, 0, mac, prf, 0, material)
    if props.enc in _AEAD_CIPHERS:
        kind, key_length = _AEAD_CIPHERS[props.enc]
        iv_length = 12 if kind == "chacha20" else 4
        return Tls12Suite(code, kind, props.enc, key_length, iv_length, "", prf)
    mac = _MAC_HASHES.get(props.mac)
    if mac is None:
        return None
    if props.enc in _BLOCK_CIPHERS:
        _, key_length, block = _BLOCK_CIPHERS[props.enc]
        return Tls12Suite(code, "cbc", props.enc, key_length, block, mac, prf, block)
    if props.enc == "RC4_128":
        return Tls12Suite(code, "stream", props.enc, 16, 0, mac, prf)
    return None


def _p_hash(hash_name: str, secret: bytes, seed: bytes, length: int) -> bytes:
    out = bytearray()
    a = seed
    while len(out) < length:
        a = hmac.digest(secret, a, hash_name)
        out += hmac.digest(secret, a + seed, hash_name)
    return bytes(out[:length])


def tls12_prf(
    secret: bytes, label: bytes, seed: bytes, length: int, hash_name: str | None
) -> bytes:
    """The TLS PRF: P_<hash_name> (TLS 1.2), or P_MD5 XOR P_SHA1 when ``hash_name`` is None."""
    if hash_name is not None:
        return _p_hash(hash_name, secret, label + seed, length)
    half = (len(secret) + 1) // 2
    md5 = _p_hash("md5", secret[:half], label + seed, length)
    sha1 = _p_hash("sha1", secret[len(secret) - half :], label + seed, length)
    return bytes(x ^ y for x, y in zip(md5, sha1, strict=True))


def tls12_key_block(
    master_secret: bytes,
    client_random: bytes,
    server_random: bytes,
    suite: Tls12Suite,
    version: int,
) -> tuple[bytes, bytes, bytes, bytes, bytes, bytes]:
    """(client MAC key, server MAC key, client key, server key, client IV, server IV)."""
    mac_len = suite.mac_length
    key_len = suite.export_key_material or suite.key_length
    sizes = (mac_len, mac_len, key_len, key_len, suite.iv_length, suite.iv_length)
    hash_name = suite.prf_hash if version >= 0x0303 else None
    block = tls12_prf(
        master_secret, b"key expansion", server_random + client_random, sum(sizes), hash_name
    )
    parts: list[bytes] = []
    at = 0
    for size in sizes:
        parts.append(block[at : at + size])
        at += size
    if suite.export_key_material:
        randoms = client_random + server_random
        for i, label in ((2, b"client write key"), (3, b"server write key")):
            parts[i] = tls12_prf(parts[i], label, randoms, suite.key_length, hash_name)
    return parts[0], parts[1], parts[2], parts[3], parts[4], parts[5]


class Tls12RecordDecryptor:
    """Opens the TLS 1.0-1.2 records of one direction (one set of keys)."""

    def __init__(
        self,
        suite: Tls12Suite,
        version: int,
        mac_key: bytes,
        key: bytes,
        iv: bytes,
        encrypt_then_mac: bool = False,
    ) -> None:
        """Keys of one direction; ``version`` is the negotiated protocol version."""
        self.suite = suite
        self.version = version
        self.seq = 0
        self._mac_key = mac_key
        self._iv = iv
        self._etm = encrypt_then_mac and suite.kind == "cbc"
        self._aead: _Aead | None = _aead(suite.kind, key) if suite.aead else None
        self._key = key
        self._stream: CipherContext | None = None
        if suite.kind == "stream":
            self._stream = Cipher(ARC4(key), mode=None).decryptor()

    def decrypt(self, content_type: int, version: int, payload: bytes) -> tuple[int, bytes]:
        """Open one record; return (content type, plaintext)."""
        kind = self.suite.kind
        if self._aead is not None:
            plain = self._open_aead(content_type, version, payload)
        elif kind == "cbc":
            plain = self._open_cbc(content_type, version, payload)
        else:
            plain = self._open_stream(content_type, version, payload)
        self.seq += 1
        return content_type, plain

    def _aad(self, content_type: int, version: int, length: int) -> bytes:
        return (
            self.seq.to_bytes(8, "big")
            + bytes([content_type])
            + version.to_bytes(2, "big")
            + length.to_bytes(2, "big")
        )

    def _open_aead(self, content_type: int, version: int, payload: bytes) -> bytes:
        assert self._aead is not None
        tag = 8 if self.suite.kind == "ccm8" else 16
        if self.suite.kind == "chacha20":
            nonce, body = _xor_seq(self._iv, self.seq), payload
        else:
            explicit = payload[:TLS12_AEAD_EXPLICIT_NONCE]
            nonce, body = self._iv + explicit, payload[TLS12_AEAD_EXPLICIT_NONCE:]
        if len(body) < tag:
            raise DecryptError(f"record of {len(payload)} bytes is shorter than its tag")
        aad = self._aad(content_type, version, len(body) - tag)
        try:
            return self._aead.decrypt(nonce, body, aad)
        except (InvalidTag, ValueError) as exc:
            raise DecryptError(
                f"record {self.seq} does not authenticate ({type(exc).__name__})"
            ) from exc

    def _mac(self, content_type: int, version: int, data: bytes) -> bytes:
        msg = self._aad(content_type, version, len(data)) + data
        return hmac.digest(self._mac_key, msg, self.suite.mac)

    def _open_cbc(self, content_type: int, version: int, payload: bytes) -> bytes:
        block, mac_len = self.suite.block_size, self.suite.mac_length
        explicit_iv = self.version >= 0x0302
        if self._etm:
            if len(payload) < mac_len:
                raise DecryptError(f"record of {len(payload)} bytes is shorter than its MAC")
            payload, mac = payload[:-mac_len], payload[-mac_len:]
            if not hmac.compare_digest(mac, self._mac(content_type, version, payload)):
                raise DecryptError(f"record {self.seq}: bad MAC (encrypt-then-MAC)")
        if not payload or len(payload) % block or (explicit_iv and len(payload) < 2 * block):
            raise DecryptError(f"record of {len(payload)} bytes is not whole cipher blocks")
        if explicit_iv:
            iv, body = payload[:block], payload[block:]
        else:
            iv, body = self._iv, payload
            self._iv = payload[-block:]
        algorithm, _, _ = _BLOCK_CIPHERS[self.suite.cipher]
        dec = Cipher(algorithm(self._key), modes.CBC(iv)).decryptor()
        plain = dec.update(body) + dec.finalize()
        pad = plain[-1]
        need = pad + 1 + (0 if self._etm else mac_len)
        if need > len(plain) or plain[-pad - 1 :] != bytes([pad]) * (pad + 1):
            raise DecryptError(f"record {self.seq}: bad CBC padding")
        plain = plain[: -pad - 1]
        if self._etm:
            return plain
        content, mac = plain[:-mac_len], plain[-mac_len:]
        if not hmac.compare_digest(mac, self._mac(content_type, version, content)):
            raise DecryptError(f"record {self.seq}: bad MAC")
        return content

    def _open_stream(self, content_type: int, version: int, payload: bytes) -> bytes:
        assert self._stream is not None
        mac_len = self.suite.mac_length
        if len(payload) < mac_len:
            raise DecryptError(f"record of {len(payload)} bytes is shorter than its MAC")
        plain = self._stream.update(payload)
        content, mac = plain[:-mac_len], plain[-mac_len:]
        if not hmac.compare_digest(mac, self._mac(content_type, version, content)):
            raise DecryptError(f"record {self.seq}: bad MAC")
        return content


def tls12_decryptors(
    master_secret: bytes,
    client_random: bytes,
    server_random: bytes,
    cipher_suite: int,
    version: int,
    encrypt_then_mac: bool = False,
) -> tuple[Tls12RecordDecryptor, Tls12RecordDecryptor] | None:
    """(client-to-server, server-to-client) decryptors; None for an unsupported suite/version."""
    suite = tls12_suite(cipher_suite)
    if suite is None or not 0x0301 <= version <= 0x0303:
        return None
    if suite.aead and version < 0x0303:
        return None
    c_mac, s_mac, c_key, s_key, c_iv, s_iv = tls12_key_block(
        master_secret, client_random, server_random, suite, version
    )
    return (
        Tls12RecordDecryptor(suite, version, c_mac, c_key, c_iv, encrypt_then_mac),
        Tls12RecordDecryptor(suite, version, s_mac, s_key, s_iv, encrypt_then_mac),
    )
