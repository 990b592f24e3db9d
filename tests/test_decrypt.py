"""Record decryption: RFC 8448 and PRF vectors, then real captures checked against tshark.

The end-to-end part runs tshark with the same key log (``-o tls.keylog_file:``) and requires
the same decrypted handshake messages (frame, sender, type), the same certificates (DER, in
order) and the same alerts (level and description) as tlspcap reads with its own decryption.
"""

from __future__ import annotations

import hmac
import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305
from feeding import Fed

from tlspcap.analyze import CaptureResult, analyze_file
from tlspcap.keylog import CLIENT_RANDOM, KeyLog, parse_keylog
from tlspcap.session import TlsSession
from tlspcap.tls import codec
from tlspcap.tls.decrypt import (
    TLS13_SUITES,
    DecryptError,
    Tls12RecordDecryptor,
    Tls13RecordDecryptor,
    hkdf_expand_label,
    next_traffic_secret,
    tls12_decryptors,
    tls12_prf,
    tls12_suite,
    traffic_keys,
)
from tlspcap.tls.handshake import HandshakeAssembler, HandshakeMessage

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures"
REAL = FIXTURES / "real"
CORPUS = REPO.parent / "shared" / "corpus"


def h(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


# ---- RFC 8448 section 3, Simple 1-RTT Handshake (TLS_AES_128_GCM_SHA256) --------------------
C_HS = h(
    "b3 ed db 12 6e 06 7f 35 a7 80 b3 ab f4 5e 2d 8f "
    "3b 1a 95 07 38 f5 2e 96 00 74 6a 0e 27 a5 5a 21"
)
S_HS = h(
    "b6 7b 7d 69 0c c1 6c 4e 75 e5 42 13 cb 2d 37 b4 "
    "e9 c9 12 bc de d9 10 5d 42 be fd 59 d3 91 ad 38"
)
C_AP = h(
    "9e 40 64 6c e7 9a 7f 9d c0 5a f8 88 9b ce 65 52 "
    "87 5a fa 0b 06 df 00 87 f7 92 eb b7 c1 75 04 a5"
)
S_AP = h(
    "a1 1a f9 f0 55 31 f8 56 ad 47 11 6b 45 a9 50 32 "
    "82 04 b4 f4 4b fb 6b 3a 4b 4f 1f 3f cb 63 16 43"
)
KEYS = {
    "client handshake": (
        C_HS,
        "db fa a6 93 d1 76 2c 5b 66 6a f5 d9 50 25 8d 01",
        "5b d3 c7 1b 83 6e 0b 76 bb 73 26 5f",
    ),
    "server handshake": (
        S_HS,
        "3f ce 51 60 09 c2 17 27 d0 f2 e4 e8 6e e4 03 bc",
        "5d 31 3e b2 67 12 76 ee 13 00 0b 30",
    ),
    "client application": (
        C_AP,
        "17 42 2d da 59 6e d5 d9 ac d8 90 e3 c6 3f 50 51",
        "5b 78 92 3d ee 08 57 90 33 e5 23 d9",
    ),
    "server application": (
        S_AP,
        "9f 02 28 3b 6c 9c 07 ef c2 6b b9 f2 ac 92 e3 56",
        "cf 78 2b 88 dd 83 54 9a ad f1 e9 84",
    ),
}
SERVER_FLIGHT = h("""
    17 03 03 02 a2 d1 ff 33 4a 56 f5 bf f6 59 4a 07 cc 87 b5 80 23 3f 50 0f 45 e4 89 e7 f3 3a f3 5e
    df 78 69 fc f4 0a a4 0a a2 b8 ea 73 f8 48 a7 ca 07 61 2e f9 f9 45 cb 96 0b 40 68 90 51 23 ea 78
    b1 11 b4 29 ba 91 91 cd 05 d2 a3 89 28 0f 52 61 34 aa dc 7f c7 8c 4b 72 9d f8 28 b5 ec f7 b1 3b
    d9 ae fb 0e 57 f2 71 58 5b 8e a9 bb 35 5c 7c 79 02 07 16 cf b9 b1 18 3e f3 ab 20 e3 7d 57 a6 b9
    d7 47 76 09 ae e6 e1 22 a4 cf 51 42 73 25 25 0c 7d 0e 50 92 89 44 4c 9b 3a 64 8f 1d 71 03 5d 2e
    d6 5b 0e 3c dd 0c ba e8 bf 2d 0b 22 78 12 cb b3 60 98 72 55 cc 74 41 10 c4 53 ba a4 fc d6 10 92
    8d 80 98 10 e4 b7 ed 1a 8f d9 91 f0 6a a6 24 82 04 79 7e 36 a6 a7 3b 70 a2 55 9c 09 ea d6 86 94
    5b a2 46 ab 66 e5 ed d8 04 4b 4c 6d e3 fc f2 a8 94 41 ac 66 27 2f d8 fb 33 0e f8 19 05 79 b3 68
    45 96 c9 60 bd 59 6e ea 52 0a 56 a8 d6 50 f5 63 aa d2 74 09 96 0d ca 63 d3 e6 88 61 1e a5 e2 2f
    44 15 cf 95 38 d5 1a 20 0c 27 03 42 72 96 8a 26 4e d6 54 0c 84 83 8d 89 f7 2c 24 46 1a ad 6d 26
    f5 9e ca ba 9a cb bb 31 7b 66 d9 02 f4 f2 92 a3 6a c1 b6 39 c6 37 ce 34 31 17 b6 59 62 22 45 31
    7b 49 ee da 0c 62 58 f1 00 d7 d9 61 ff b1 38 64 7e 92 ea 33 0f ae ea 6d fa 31 c7 a8 4d c3 bd 7e
    1b 7a 6c 71 78 af 36 87 90 18 e3 f2 52 10 7f 24 3d 24 3d c7 33 9d 56 84 c8 b0 37 8b f3 02 44 da
    8c 87 c8 43 f5 e5 6e b4 c5 e8 28 0a 2b 48 05 2c f9 3b 16 49 9a 66 db 7c ca 71 e4 59 94 26 f7 d4
    61 e6 6f 99 88 2b d8 9f c5 08 00 be cc a6 2d 6c 74 11 6d bd 29 72 fd a1 fa 80 f8 5d f8 81 ed be
    5a 37 66 89 36 b3 35 58 3b 59 91 86 dc 5c 69 18 a3 96 fa 48 a1 81 d6 b6 fa 4f 9d 62 d5 13 af bb
    99 2f 2b 99 2f 67 f8 af e6 7f 76 91 3f a3 88 cb 56 30 c8 ca 01 e0 c6 5d 11 c6 6a 1e 2a c4 c8 59
    77 b7 c7 a6 99 9b bf 10 dc 35 ae 69 f5 51 56 14 63 6c 0b 9b 68 c1 9e d2 e3 1c 0b 3b 66 76 30 38
    eb ba 42 f3 b3 8e dc 03 99 f3 a9 f2 3f aa 63 97 8c 31 7f c9 fa 66 a7 3f 60 f0 50 4d e9 3b 5b 84
    5e 27 55 92 c1 23 35 ee 34 0b bc 4f dd d5 02 78 40 16 e4 b3 be 7e f0 4d da 49 f4 b4 40 a3 0c b5
    d2 af 93 98 28 fd 4a e3 79 4e 44 f9 4d f5 a6 31 ed e4 2c 17 19 bf da bf 02 53 fe 51 75 be 89 8e
    75 0e dc 53 37 0d 2b""")
SERVER_FINISHED = h("""14 00 00 20 9b 9b 14 1d 90 63 37 fb d2 cb dc e7 1d f4 de da 4a b4 2c 30 95
    72 cb 7f ff ee 54 54 b7 8f 07 18""")
CLIENT_FINISHED_RECORD = h("""17 03 03 00 35 75 ec 4d c2 38 cc e6 0b 29 80 44 a7 1e 21 9c 56 cc 77
    b0 51 7f e9 b9 3c 7a 4b fc 44 d8 7f 38 f8 03 38 ac 98 fc 46 de b3 84 bd 1c ae ac ab 68 67 d7 26
    c4 05 46""")
CLIENT_VERIFY_DATA = h("""a8 ec 43 6d 67 76 34 ae 52 5a c1 fc eb e1 1a 03 9e c1 76 94 fa c6 e9 85
    27 b6 42 f2 ed d5 ce 61""")
CLIENT_APP_RECORD = h("""17 03 03 00 43 a2 3f 70 54 b6 2c 94 d0 af fa fe 82 28 ba 55 cb ef ac ea
    42 f9 14 aa 66 bc ab 3f 2b 98 19 a8 a5 b4 6b 39 5b d5 4a 9a 20 44 1e 2b 62 97 4e 1f 5a 62 92 a2
    97 70 14 bd 1e 3d ea e6 3a ee bb 21 69 49 15 e4""")
SERVER_APP_RECORD = h("""17 03 03 00 43 2e 93 7e 11 ef 4a c7 40 e5 38 ad 36 00 5f c4 a4 69 32 fc
    32 25 d0 5f 82 aa 1b 36 e3 0e fa f9 7d 90 e6 df fc 60 2d cb 50 1a 59 a8 fc c4 9c 4b f2 e5 f0 a2
    1c 00 47 c2 ab f3 32 54 0d d0 32 e1 67 c2 95 5d""")
APP_DATA = bytes(range(0x32))
AES128 = TLS13_SUITES[0x1301]


def _open(dec: Tls13RecordDecryptor, record: bytes) -> tuple[int, bytes]:
    return dec.decrypt(record[0], int.from_bytes(record[1:3], "big"), record[5:])


@pytest.mark.parametrize("name", list(KEYS))
def test_rfc8448_traffic_keys(name: str) -> None:
    secret, key, iv = KEYS[name]
    assert traffic_keys(secret, AES128) == (h(key), h(iv))


def test_hkdf_expand_label_info_layout() -> None:
    # RFC 8448 prints the HkdfLabel of the "key" expansion: 00 10 09 "tls13 key" 00.
    secret = S_HS
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

    info = h("00 10 09 74 6c 73 31 33 20 6b 65 79 00")
    direct = HKDFExpand(hashes.SHA256(), 16, info).derive(secret)
    assert hkdf_expand_label(secret, b"key", b"", 16, hashes.SHA256()) == direct


def test_rfc8448_server_flight_decrypts_into_its_messages() -> None:
    dec = Tls13RecordDecryptor(AES128, S_HS)
    inner, plain = _open(dec, SERVER_FLIGHT)
    assert inner == 22
    assert len(plain) == 657 and dec.seq == 1
    messages = HandshakeAssembler().feed(plain, 1)
    assert [m.msg_type for m in messages] == [8, 11, 15, 20]
    assert plain.endswith(SERVER_FINISHED)
    cert = codec.parse_certificate(messages[1].body, 1, tls13=True)
    assert len(cert.chain) == 1 and len(cert.chain[0]) == 0x1B0
    # and sealing it again gives the RFC's bytes
    assert Tls13RecordDecryptor(AES128, S_HS).encrypt(22, plain) == SERVER_FLIGHT


def test_rfc8448_client_finished_and_application_data() -> None:
    client = Tls13RecordDecryptor(AES128, C_HS)
    assert _open(client, CLIENT_FINISHED_RECORD) == (22, b"\x14\x00\x00\x20" + CLIENT_VERIFY_DATA)
    client.rekey(C_AP)
    assert client.seq == 0
    assert _open(client, CLIENT_APP_RECORD) == (23, APP_DATA)
    server = Tls13RecordDecryptor(AES128, S_AP)
    server.seq = 1  # its record 0 is the NewSessionTicket
    assert _open(server, SERVER_APP_RECORD) == (23, APP_DATA)


def test_rfc8448_records_fail_with_wrong_sequence_key_or_bytes() -> None:
    wrong_seq = Tls13RecordDecryptor(AES128, C_AP)
    wrong_seq.seq = 1
    with pytest.raises(DecryptError):
        _open(wrong_seq, CLIENT_APP_RECORD)
    with pytest.raises(DecryptError):
        _open(Tls13RecordDecryptor(AES128, S_AP), CLIENT_APP_RECORD)
    tampered = bytearray(SERVER_FLIGHT)
    tampered[100] ^= 1
    with pytest.raises(DecryptError):
        _open(Tls13RecordDecryptor(AES128, S_HS), bytes(tampered))
    header_changed = b"\x17\x03\x01" + SERVER_FLIGHT[3:]  # the header is authenticated
    with pytest.raises(DecryptError):
        _open(Tls13RecordDecryptor(AES128, S_HS), header_changed)


def test_key_update_secret() -> None:
    # Not in RFC 8448: the "traffic upd" successors of its application secrets, as Botan's
    # TLS 1.3 tests list them (an implementation independent of this one).
    assert next_traffic_secret(C_AP, AES128) == h(
        "fc df cc 72 72 5a ae e4 8b f6 4e 4f d8 b7 49 cd"
        "bd ba b3 9d 90 da 0b 26 e2 24 5c a6 ea 16 72 07"
    )
    assert next_traffic_secret(S_AP, AES128) == h(
        "51 92 1b 8a a3 00 19 76 eb 40 1d 0a 43 19 a8 51"
        "64 16 a6 c5 60 01 a3 57 e5 d1 62 03 1e 84 f9 16"
    )


@pytest.mark.parametrize(
    ("code", "key_len", "tag"),
    [(0x1302, 32, 16), (0x1303, 32, 16), (0x1304, 16, 16), (0x1305, 16, 8)],
)
def test_tls13_suites_padding_and_content_type(code: int, key_len: int, tag: int) -> None:
    suite = TLS13_SUITES[code]
    secret = bytes(range(suite.hash_length))
    key, iv = traffic_keys(secret, suite)
    assert len(key) == key_len and len(iv) == 12
    sealed = Tls13RecordDecryptor(suite, secret).encrypt(21, b"\x02\x2a", padding=7)
    assert len(sealed) == 5 + 2 + 1 + 7 + tag
    dec = Tls13RecordDecryptor(suite, secret)
    assert _open(dec, sealed) == (21, b"\x02\x2a")
    only_padding = Tls13RecordDecryptor(suite, secret).encrypt(0, b"", padding=3)
    with pytest.raises(DecryptError, match="only padding"):
        _open(Tls13RecordDecryptor(suite, secret), only_padding)


# ---- TLS 1.2 ------------------------------------------------------------------------------------
def test_tls12_prf_sha256_vector() -> None:
    # The TLS 1.2 PRF test vector published on the IETF TLS WG list (P_SHA256, 100 bytes).
    out = tls12_prf(
        h("9b be 43 6b a9 40 f0 17 b1 76 52 84 9a 71 db 35"),
        b"test label",
        h("a0 ba 9f 93 6c da 31 18 27 a6 f7 96 ff d5 19 8c"),
        100,
        "sha256",
    )
    assert out == h("""e3 f2 29 ba 72 7b e1 7b 8d 12 26 20 55 7c d4 53 c2 aa b2 1d 07 c3 d4 95
        32 9b 52 d4 e6 1e db 5a 6b 30 17 91 e9 0d 35 c9 c9 a4 6b 4e 14 ba f9 af 0f a0 22 f7 07 7d
        ef 17 ab fd 37 97 c0 56 4b ab 4f bc 91 66 6e 9d ef 9b 97 fc e3 4f 79 67 89 ba a4 80 82 d1
        22 ee 42 c5 a7 2e 5a 51 10 ff f7 01 87 34 7b 66""")


def test_tls12_suite_table() -> None:
    gcm = tls12_suite(0xC030)  # ECDHE_RSA_WITH_AES_256_GCM_SHA384
    assert gcm is not None and (gcm.kind, gcm.key_length, gcm.iv_length, gcm.prf_hash) == (
        "gcm", 32, 4, "sha384"
    )  # fmt: skip
    cbc = tls12_suite(0xC013)  # ECDHE_RSA_WITH_AES_128_CBC_SHA
    assert cbc is not None and (cbc.kind, cbc.mac, cbc.mac_length, cbc.prf_hash) == (
        "cbc", "sha1", 20, "sha256"
    )  # fmt: skip
    chacha = tls12_suite(0xCCA8)
    assert chacha is not None and (chacha.kind, chacha.iv_length) == ("chacha20", 12)
    ccm8 = tls12_suite(0xC0A8)  # PSK_WITH_AES_128_CCM_8
    assert ccm8 is not None and ccm8.kind == "ccm8"
    export = tls12_suite(0x0003)  # RSA_EXPORT_WITH_RC4_40_MD5
    assert export is not None and export.export_key_material == 5
    assert tls12_suite(0x1301) is None  # TLS 1.3 suite
    assert tls12_suite(0x0002) is None  # NULL encryption: nothing to decrypt
    assert tls12_suite(0x0008) is None  # EXPORT DES40: not supported
    assert tls12_decryptors(bytes(48), bytes(32), bytes(32), 0xC030, 0x0302) is None  # GCM < 1.2


def _aad(seq: int, ct: int, length: int) -> bytes:
    return seq.to_bytes(8, "big") + bytes([ct]) + b"\x03\x03" + length.to_bytes(2, "big")


@pytest.mark.parametrize("suite_code", [0xC02F, 0xC0AC, 0xC0AE, 0xCCA8])
def test_tls12_aead_records(suite_code: int) -> None:
    """Records sealed here straight from RFC 5288/6655/7905 open with the decryptors."""
    master, cr, sr = bytes(range(48)), bytes([1]) * 32, bytes([2]) * 32
    pair = tls12_decryptors(master, cr, sr, suite_code, 0x0303)
    assert pair is not None
    suite = pair[1].suite
    # key block order (RFC 5246 6.3): client MAC, server MAC, client key, server key, IVs
    size = 2 * suite.key_length + 2 * suite.iv_length
    block = tls12_prf(master, b"key expansion", sr + cr, size, "sha256")
    s_key = block[suite.key_length : 2 * suite.key_length]
    s_iv = block[2 * suite.key_length + suite.iv_length :]
    server = pair[1]
    for seq, (ct, plain) in enumerate([(22, b"\x14\x00\x00\x0c" + bytes(12)), (21, b"\x01\x00")]):
        aad = _aad(seq, ct, len(plain))
        if suite.kind == "chacha20":
            nonce = (int.from_bytes(s_iv, "big") ^ seq).to_bytes(12, "big")
            payload = ChaCha20Poly1305(s_key).encrypt(nonce, plain, aad)
        else:
            explicit = (0x1122334455667700 + seq).to_bytes(8, "big")
            aead: AESGCM | AESCCM = (
                AESGCM(s_key)
                if suite.kind == "gcm"
                else AESCCM(s_key, 8 if suite.kind == "ccm8" else 16)
            )
            payload = explicit + aead.encrypt(s_iv + explicit, plain, aad)
        assert server.decrypt(ct, 0x0303, payload) == (ct, plain)
    with pytest.raises(DecryptError):
        server.decrypt(21, 0x0303, payload)  # replayed: wrong sequence number


def _cbc_record(
    keys: tuple[bytes, bytes], iv: bytes, seq: int, ct: int, plain: bytes, etm: bool
) -> bytes:
    """An AES-128-CBC/HMAC-SHA1 TLS 1.2 record body built as RFC 5246 6.2.3.2 / RFC 7366 say."""
    key, mac_key = keys
    if etm:
        pad = 16 - (len(plain) + 1) % 16
        padded = plain + bytes([pad]) * (pad + 1)
        enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        body = iv + enc.update(padded) + enc.finalize()
        return body + hmac.digest(mac_key, _aad(seq, ct, len(body)) + body, "sha1")
    mac = hmac.digest(mac_key, _aad(seq, ct, len(plain)) + plain, "sha1")
    data = plain + mac
    pad = 16 - (len(data) + 1) % 16
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return iv + enc.update(data + bytes([pad]) * (pad + 1)) + enc.finalize()


@pytest.mark.parametrize("etm", [False, True])
def test_tls12_cbc_records(etm: bool) -> None:
    key, mac_key = bytes(range(16)), bytes(range(20))
    suite = tls12_suite(0xC013)
    assert suite is not None
    dec = Tls12RecordDecryptor(suite, 0x0303, mac_key, key, b"", encrypt_then_mac=etm)
    first = _cbc_record(
        (key, mac_key), bytes([7]) * 16, 0, 22, b"\x14\x00\x00\x0c" + bytes(12), etm
    )
    assert dec.decrypt(22, 0x0303, first) == (22, b"\x14\x00\x00\x0c" + bytes(12))
    alert = _cbc_record((key, mac_key), bytes([9]) * 16, 1, 21, b"\x02\x28", etm)
    assert dec.decrypt(21, 0x0303, alert) == (21, b"\x02\x28")
    bad = Tls12RecordDecryptor(suite, 0x0303, bytes(20), key, b"", encrypt_then_mac=etm)
    with pytest.raises(DecryptError):
        bad.decrypt(22, 0x0303, first)  # wrong MAC key
    with pytest.raises(DecryptError, match="blocks"):
        Tls12RecordDecryptor(suite, 0x0303, mac_key, key, b"").decrypt(21, 0x0303, bytes(33))


# ---- end to end, against tshark -------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    """A capture, its key log, the extra tshark arguments it needs."""

    name: str
    path: Path
    keylog: Path | None
    tshark_args: tuple[str, ...] = ()


def _cases() -> list[Case]:
    cases = [
        Case(
            "illustrated-tls13",
            CORPUS / "illustrated-tls13" / "capture.pcap",
            CORPUS / "illustrated-tls13" / "capture.pcap.keylog.txt",
        ),
        Case(
            "illustrated-tls12",
            CORPUS / "illustrated-tls12" / "capture.pcap",
            CORPUS / "illustrated-tls12" / "capture.pcap.keylog.txt",
        ),
        Case(
            "tls-works-dump",
            CORPUS / "wireshark-notes" / "tls-works-dump.pcapng",
            CORPUS / "wireshark-notes" / "tls-works-dump.pcapng.keylog.txt",
        ),
        Case("crafted-dsb", FIXTURES / "crafted" / "pcapng_two_interfaces.pcapng", None),
    ]
    manifest = REAL / "MANIFEST.json"
    entries = json.loads(manifest.read_text()) if manifest.exists() else []
    for entry in entries if isinstance(entries, list) else entries["fixtures"]:
        if entry.get("keylog"):
            args = tuple(a for d in entry.get("tshark_decode_as", []) for a in ("-d", d))
            cases.append(Case(entry["file"], REAL / entry["file"], REAL / entry["keylog"], args))
    return cases


CASES = _cases()


@dataclass
class View:
    """What a reader saw: messages, certificates and readable alerts, keyed by frame."""

    messages: set[tuple[int, int, int]]
    """(frame, sender port, handshake type)."""
    certificates: dict[tuple[int, int], list[str]]
    """(frame, sender port) -> DER of each certificate, hex, in order."""
    alerts: set[tuple[int, int, int, int]]
    """(frame, sender port, level, description) of the alerts whose level is known."""


def _ours(case: Case, monkeypatch: pytest.MonkeyPatch) -> tuple[View, CaptureResult]:
    seen: list[tuple[int, int, int]] = []
    original = TlsSession._message

    def spy(self: TlsSession, direction: int, side: Any, msg: HandshakeMessage) -> None:
        seen.append((msg.frame, self.endpoints[direction][1], msg.msg_type))
        original(self, direction, side, msg)

    monkeypatch.setattr(TlsSession, "_message", spy)
    keylog = parse_keylog(case.keylog.read_text()) if case.keylog else None
    result = analyze_file(case.path, keylog=keylog)
    assert result.error is None
    certs: dict[tuple[int, int], list[str]] = {}
    alerts: set[tuple[int, int, int, int]] = set()
    for conn in result.connections:
        s = conn
        for direction, side in enumerate(s.sides):
            port = s.endpoints[direction][1]
            for msg in side.certificates:
                if not msg.chain:
                    continue  # an empty Certificate: tshark lists no certificate field
                certs.setdefault((msg.frame, port), []).extend(c.hex() for c in msg.chain)
        for a in s.alerts:
            if a.level is not None and a.description is not None:
                port = s.endpoints[s.client_dir if a.sender == "client" else s.server_dir][1]
                alerts.add((a.frame, port, a.level, a.description))
    return View(set(seen), certs, alerts), result


def _split(value: str) -> list[str]:
    return [v for v in value.split("|") if v] if value else []


def _theirs(case: Case) -> View:
    args = ["-o", f"tls.keylog_file:{case.keylog}"] if case.keylog else []
    fields = ["frame.number", "tcp.srcport", "tls.handshake.type", "tls.alert_message.level"]
    fields += ["tls.alert_message.desc", "tls.handshake.certificate"]
    cmd = ["tshark", "-n", "-r", str(case.path), "-o", "tcp.reassemble_out_of_order:TRUE"]
    # (not icmp: tshark also dissects the TLS bytes an ICMP error quotes from the packet it
    # answers, as if they had been sent again)
    cmd += [*args, *case.tshark_args, "-Y", "tls and not icmp and not icmpv6", "-T", "fields"]
    cmd += ["-E", "occurrence=a", "-E", "aggregator=|", *(a for f in fields for a in ("-e", f))]
    with tempfile.TemporaryDirectory(prefix="tshark-conf-") as confdir:
        env = {**os.environ, "WIRESHARK_CONFIG_DIR": confdir}
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
    view = View(set(), {}, set())
    for row in out.splitlines():
        frame_s, port_s, types, levels, descs, certs = (row.split("\t") + [""] * 6)[:6]
        frame, port = int(frame_s), int(port_s.split("|")[0])
        view.messages |= {(frame, port, int(t)) for t in _split(types)}
        if _split(certs):
            view.certificates[(frame, port)] = [c.replace(":", "") for c in _split(certs)]
        for level, desc in zip(_split(levels), _split(descs), strict=True):
            view.alerts.add((frame, port, int(level), int(desc)))
    return view


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_decryption_agrees_with_tshark(
    case: Case, tshark: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not case.path.exists() or (case.keylog is not None and not case.keylog.exists()):
        pytest.skip(f"{case.path} or its key log is not present")
    ours, result = _ours(case, monkeypatch)
    theirs = _theirs(case)
    assert sorted(ours.messages) == sorted(theirs.messages)
    assert ours.certificates == theirs.certificates
    assert sorted(ours.alerts) == sorted(theirs.alerts)
    assert any(c.decrypted for c in result.connections)
    for conn in result.connections:
        failed = [a for a in conn.anomalies if a.name.startswith("decryption_")]
        assert not failed, failed


def test_tls13_certificates_and_alerts_from_decryption() -> None:
    """The TLS 1.3 facts the diagnosis needs come out of the decrypted flight."""
    path = CORPUS / "illustrated-tls13" / "capture.pcap"
    if not path.exists():
        pytest.skip("corpus not present")
    plain = analyze_file(path).connections[0]
    assert not plain.decrypted and not plain.server.certificates
    keylog = parse_keylog((path.parent / "capture.pcap.keylog.txt").read_text())
    s = analyze_file(path, keylog=keylog).connections[0]
    assert s.decrypted
    assert [len(m.chain) for m in s.server.certificates] == [1]
    assert s.server.finished_frame == 7 and s.client.finished_frame == 9
    # application data after the Finished messages counts as such (tickets do not)
    assert (s.client.application_records, s.server.application_records) == (1, 1)
    assert s.history.endswith("IFDttd")
    # the encrypted-record log the size heuristics use is kept as without keys
    assert [(r.direction, r.length) for r in s.encrypted_log] == [
        (r.direction, r.length) for r in plain.encrypted_log
    ]


def test_only_server_handshake_secret(tmp_path: Path) -> None:
    """Without the client's secrets its records stay as without keys; the server's are read."""
    path = CORPUS / "illustrated-tls13" / "capture.pcap"
    if not path.exists():
        pytest.skip("corpus not present")
    text = (path.parent / "capture.pcap.keylog.txt").read_text()
    only = "\n".join(ln for ln in text.splitlines() if ln.startswith("SERVER_HANDSHAKE"))
    s = analyze_file(path, keylog=parse_keylog(only)).connections[0]
    assert s.server.decrypted_records == 4 and s.client.decrypted_records == 0
    assert [len(m.chain) for m in s.server.certificates] == [1]
    assert s.server.application_records == 3  # tickets and data: no application secret
    assert not [a for a in s.anomalies if a.name.startswith("decryption_")]


def test_wrong_secret_is_an_anomaly_and_changes_nothing_else() -> None:
    path = FIXTURES / "crafted" / "pcapng_two_interfaces.pcapng"
    plain_alert = (27, "client", None, None, True)
    client_random = bytes(range(32))  # illustrated-tls12's client random
    wrong = KeyLog({CLIENT_RANDOM: {client_random: bytes(48)}})  # beats the file's own DSB
    result = analyze_file(path, keylog=wrong)
    s = next(c for c in result.connections if c.client_hellos[0].frame == 5)
    assert not s.decrypted
    failed = [(a.name, a.frame) for a in s.anomalies if a.name == "decryption_failed"]
    assert failed == [("decryption_failed", 13), ("decryption_failed", 16)]
    assert [(a.frame, a.sender, a.level, a.description, a.encrypted) for a in s.alerts] == [
        plain_alert
    ]
    assert s.client.encrypted_handshake_records == 1 and s.server.encrypted_handshake_records == 1


# ---- the session hook on a synthetic TLS 1.3 conversation ------------------------------------
def _record(ct: int, body: bytes) -> bytes:
    return bytes([ct]) + b"\x03\x03" + len(body).to_bytes(2, "big") + body


def _handshake(msg_type: int, body: bytes) -> bytes:
    return bytes([msg_type]) + len(body).to_bytes(3, "big") + body


def _hellos(client_random: bytes) -> tuple[bytes, bytes]:
    versions = b"\x00\x2b\x00\x03\x02\x03\x04"  # supported_versions: TLS 1.3
    ch = b"\x03\x03" + client_random + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00"
    ch += len(versions).to_bytes(2, "big") + versions
    chosen = b"\x00\x2b\x00\x02\x03\x04"
    sh = b"\x03\x03" + bytes([0x42]) * 32 + b"\x00" + b"\x13\x01" + b"\x00"
    sh += len(chosen).to_bytes(2, "big") + chosen
    return _record(22, _handshake(1, ch)), _record(22, _handshake(2, sh))


def test_session_switches_keys_and_follows_key_update() -> None:
    cr = bytes([0x11]) * 32
    secrets = {n: bytes([i]) * 32 for i, n in enumerate(["CHS", "SHS", "CAP", "SAP"], 1)}
    keylog = KeyLog(
        {
            "CLIENT_HANDSHAKE_TRAFFIC_SECRET": {cr: secrets["CHS"]},
            "SERVER_HANDSHAKE_TRAFFIC_SECRET": {cr: secrets["SHS"]},
            "CLIENT_TRAFFIC_SECRET_0": {cr: secrets["CAP"]},
            "SERVER_TRAFFIC_SECRET_0": {cr: secrets["SAP"]},
        }
    )
    server = Tls13RecordDecryptor(AES128, secrets["SHS"])
    client = Tls13RecordDecryptor(AES128, secrets["CHS"])
    finished = _handshake(20, bytes(32))
    ch, sh = _hellos(cr)
    s = Fed(TlsSession(((b"\x7f\x00\x00\x01", 40000), (b"\x7f\x00\x00\x02", 443)), keylog=keylog))
    s.data(0, (ch, 1))
    s.data(1, (sh + _record(20, b"\x01"), 2))
    # the server flight: EncryptedExtensions, CertificateRequest and Finished split over records
    cert_request = _handshake(13, b"\x00\x00\x08\x00\x0d\x00\x04\x00\x02\x08\x04")
    flight = _handshake(8, b"\x00\x00") + cert_request + finished
    s.data(1, (server.encrypt(22, flight[:10], padding=5), 3))
    s.data(1, (server.encrypt(22, flight[10:]), 4))
    server.rekey(secrets["SAP"])
    # the client: an empty Certificate, Finished, then data and close_notify
    s.data(0, (client.encrypt(22, _handshake(11, b"\x00\x00\x00\x00") + finished), 5))
    client.rekey(secrets["CAP"])
    s.data(0, (client.encrypt(23, b"GET / HTTP/1.1\r\n\r\n"), 6))
    # the server: a ticket, a KeyUpdate, then data and an alert under the next secret
    s.data(1, (server.encrypt(22, _handshake(4, bytes(13))), 7))
    s.data(1, (server.encrypt(22, _handshake(24, b"\x00")), 8))
    server.key_update()
    s.data(1, (server.encrypt(23, b"HTTP/1.1 400 Bad Request\r\n", padding=30), 9))
    s.data(1, (server.encrypt(21, b"\x02\x74"), 10))
    # a client record under a key the client never had: decryption stops there
    s.data(0, (Tls13RecordDecryptor(AES128, bytes(32)).encrypt(21, b"\x01\x00"), 11))
    s.data(0, (client.encrypt(21, b"\x01\x00"), 12))
    s.finish()

    assert s.decrypted
    assert (s.server.decrypted_records, s.client.decrypted_records) == (6, 2)
    assert s.certificate_request is not None and s.certificate_request.frame == 4
    assert s.certificate_request.signature_algorithms == (0x0804,)
    assert [(m.frame, m.chain) for m in s.client.certificates] == [(5, ())]
    assert (s.server.finished_frame, s.client.finished_frame) == (4, 5)
    assert s.history == "CsiorfXFDtpdlD"  # the last two client records: undecrypted
    assert s.server.application_preview == b"HTTP/1.1 400 Bad Request\r\n"
    assert s.client.application_preview == b"GET / HTTP/1.1\r\n\r\n"
    # the client's GET, then its two undecryptable records, counted as without keys
    assert (s.client.application_records, s.server.application_records) == (3, 1)
    assert [(a.frame, a.sender, a.level, a.description, a.encrypted) for a in s.alerts] == [
        (10, "server", 2, 116, True)  # certificate_required; the client's alerts stay opaque
    ]
    assert [(a.name, a.frame) for a in s.anomalies if a.name.startswith("decrypt")] == [
        ("decryption_failed", 11)
    ]
    # the encrypted-record log is the same as without keys
    assert len(s.encrypted_log) == 10


def _fixture_session(name: str, index: int = 0) -> TlsSession:
    path, keylog = REAL / name, REAL / (name.rsplit(".", 1)[0] + ".keylog")
    if not path.exists() or not keylog.exists():
        pytest.skip(f"fixture {name} not present")
    result = analyze_file(path, keylog=parse_keylog(keylog.read_text()))
    return result.connections[index]


def test_fixture_client_certificate_facts_from_decryption() -> None:
    """nginx asks for a client certificate: curl sends none (400 answer), then sends one."""
    first = _fixture_session("client_cert_nginx_400.pcap", 0)
    assert first.decrypted and first.certificate_request is not None
    assert [m.chain for m in first.client.certificates] == [()]
    assert first.server.application_preview.startswith(b"HTTP/1.1 400 ")
    second = _fixture_session("client_cert_nginx_400.pcap", 1)
    assert second.certificate_request is not None
    assert [len(m.chain) for m in second.client.certificates] == [2]
    assert second.server.application_preview.startswith(b"HTTP/1.1 200 ")


def test_fixture_python_client_logs_only_the_server_secret() -> None:
    """A Python client that rejects the certificate logs no secret of its own."""
    s = _fixture_session("expired_python.pcap")
    assert s.server.decrypted_records > 0 and s.client.decrypted_records == 0
    assert [len(m.chain) for m in s.server.certificates] == [2]
    assert s.server.finished_frame is not None
