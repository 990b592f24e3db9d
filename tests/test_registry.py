"""Tests for tlspcap.tls.registry: names against Wireshark (tshark), GREASE, unknowns, properties.

Two Wireshark cross-checks:

* the whole value tables tshark ships (``tshark -G values``) against ours, code by code;
* every cipher suite, SSLv2 cipher kind, extension, group, signature algorithm and version that
  tshark prints (``-V``) for the hellos in the shared corpus against ours.

Where our name deliberately differs from what Wireshark 4.0 prints, the difference is listed below
with its reason; each listed difference is itself checked, so a stale entry fails too.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tlspcap.tls import registry as r

TSHARK = shutil.which("tshark")
CORPUS = Path("/work/shared/corpus")
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark not installed (make sysdeps-test)")

# --- Known differences from Wireshark 4.0: code -> (tshark's name, reason). -------------------

CIPHER_DIFFS = {
    0xCC13: ("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "pre-RFC 7905 codepoint, _OLD suffix"),
    0xCC14: ("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "pre-RFC 7905 codepoint, _OLD"),
    0xCC15: ("TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "pre-RFC 7905 codepoint, _OLD suffix"),
}
EXTENSION_DIFFS = {
    0x0022: ("delegated_credentials", "IANA / RFC 9345 name is delegated_credential"),
}
GROUP_DIFFS = {
    0x0200: ("frodo640aes", "Open Quantum Safe experiment; IANA assigned it to MLKEM512"),
    0x0201: ("frodo640shake", "Open Quantum Safe experiment; IANA assigned it to MLKEM768"),
    0x0202: ("frodo976aes", "Open Quantum Safe experiment; IANA assigned it to MLKEM1024"),
}
#: tshark names a TLS 1.2 (hash, signature) pair without an RFC 8446 name "<HASH> <SIG>".
SIGALG_DIFFS = {
    0x0101: ("MD5 RSA", "tshark composes hash+sig; ours follows RFC 8446 style"),
    0x0102: ("MD5 DSA", "tshark composes hash+sig; ours follows RFC 8446 style"),
    0x0103: ("MD5 ECDSA", "tshark composes hash+sig; ours follows RFC 8446 style"),
    0x0202: ("SHA1 DSA", "tshark composes hash+sig; RFC 8446 reserves it as dsa_sha1"),
    0x0301: ("SHA224 RSA", "tshark composes hash+sig; ours follows RFC 8446 style"),
    0x0302: ("SHA224 DSA", "tshark composes hash+sig; ours follows RFC 8446 style"),
    0x0303: ("SHA224 ECDSA", "tshark composes hash+sig; ours follows RFC 8446 style"),
    0x0402: ("SHA256 DSA", "tshark composes hash+sig; RFC 8446 reserves it as dsa_sha256"),
    0x0502: ("SHA384 DSA", "tshark composes hash+sig; RFC 8446 reserves it as dsa_sha384"),
    0x0602: ("SHA512 DSA", "tshark composes hash+sig; RFC 8446 reserves it as dsa_sha512"),
}
#: tshark's Title Case labels, snake_cased, that still differ from the IANA names we use.
HANDSHAKE_DIFFS = {
    21: ("client_certificate_url", "IANA / RFC 6066 name is certificate_url"),
    67: ("encrypted_extensions", "NPN's NextProtocol message (draft-agl-tls-nextprotoneg)"),
}
CONTENT_TYPE_DIFFS = {
    25: ("connection_id", "IANA / RFC 9146 name is tls12_cid"),
}
#: Codepoints tshark 4.0 predates (it prints Unknown): ours must name them.
NEWER_THAN_TSHARK = {
    "extension": {0xFE0D, 0xFD00, 0x44CD},
    "group": {0x11EB, 0x11EC, 0x11ED, 0x6399, 0x639A},
}

# --- tshark -G values ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def ws_values() -> dict[str, list[dict[int, str]]]:
    """``tshark -G values``: per field, its value tables (a field may carry several)."""
    if TSHARK is None:
        pytest.skip("tshark not installed")
    out = subprocess.run(
        [TSHARK, "-G", "values"], capture_output=True, text=True, check=True
    ).stdout
    tables: dict[str, list[dict[int, str]]] = {}
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) != 4 or parts[0] != "V" or not parts[1].startswith("tls."):
            continue
        field, value, label = parts[1], int(parts[2], 0), parts[3]
        blocks = tables.setdefault(field, [{}])
        if value in blocks[-1]:
            blocks.append({})
        blocks[-1][value] = label
    return tables


def _snake(label: str) -> str:
    return label.lower().replace(" ", "_")


def _check_table(
    theirs: dict[int, str],
    ours: Callable[[int], str],
    diffs: dict[int, tuple[str, str]],
    normalise: Callable[[str], str] = lambda s: s,
) -> int:
    """Assert ours == tshark's name for every code tshark names; returns codes compared."""
    bad = []
    for code, label in sorted(theirs.items()):
        want = "GREASE" if label == "Reserved (GREASE)" else normalise(label)
        got = ours(code)
        if code in diffs:
            assert want == diffs[code][0], f"stale difference 0x{code:04x}: tshark says {label}"
            assert got != want, f"0x{code:04x} listed as a difference but names agree"
        elif got != want:
            bad.append(f"0x{code:04x}: ours {got!r}, tshark {want!r}")
    assert not bad, "\n".join(bad)
    return len(theirs)


@needs_tshark
def test_cipher_suites_match_wireshark_table(ws_values: dict[str, list[dict[int, str]]]) -> None:
    (table,) = ws_values["tls.handshake.ciphersuite"]
    assert _check_table(table, r.cipher_name, CIPHER_DIFFS) > 400


@needs_tshark
def test_sslv2_cipher_specs_match_wireshark_table(
    ws_values: dict[str, list[dict[int, str]]],
) -> None:
    (table,) = ws_values["tls.handshake.cipherspec"]
    assert _check_table(table, r.sslv2_cipher_name, CIPHER_DIFFS) > 250
    assert set(r.SSLV2_CIPHER_KINDS) == {v for v in table if v > 0xFFFF or v not in r.CIPHER_SUITES}


@needs_tshark
def test_extensions_match_wireshark_table(ws_values: dict[str, list[dict[int, str]]]) -> None:
    (table,) = ws_values["tls.handshake.extension.type"]
    assert _check_table(table, r.extension_name, EXTENSION_DIFFS) > 60


@needs_tshark
def test_groups_match_wireshark_table(ws_values: dict[str, list[dict[int, str]]]) -> None:
    (table,) = ws_values["tls.handshake.extensions_supported_group"]
    assert _check_table(table, r.group_name, GROUP_DIFFS) > 130


@needs_tshark
def test_sigalgs_match_wireshark_table(ws_values: dict[str, list[dict[int, str]]]) -> None:
    (table,) = ws_values["tls.handshake.sig_hash_alg"]
    assert _check_table(table, r.sigalg_name, SIGALG_DIFFS) > 50


@needs_tshark
def test_versions_match_wireshark_table(ws_values: dict[str, list[dict[int, str]]]) -> None:
    for table in ws_values["tls.record.version"] + ws_values["tls.handshake.version"]:
        assert _check_table(table, r.version_name, {}) > 40


@needs_tshark
def test_alerts_handshakes_content_types_match_wireshark(
    ws_values: dict[str, list[dict[int, str]]],
) -> None:
    (alerts,) = ws_values["tls.alert_message.desc"]
    assert _check_table(alerts, r.alert_name, {}, _snake) > 30
    (levels,) = ws_values["tls.alert_message.level"]
    assert _check_table(levels, r.alert_level_name, {}, _snake) == 2
    # tls.handshake.type carries the SSLv2 message types too; take the TLS table.
    (hs,) = [t for t in ws_values["tls.handshake.type"] if t.get(20) == "Finished"]
    assert _check_table(hs, r.handshake_name, HANDSHAKE_DIFFS, _snake) > 20
    (ct,) = ws_values["tls.record.content_type"]
    assert _check_table(ct, r.content_type_name, CONTENT_TYPE_DIFFS, _snake) == 6


# --- tshark -V over the corpus --------------------------------------------------------------

#: Decode-as hints from the corpus MANIFEST.md (tshark finds TLS by port).
DECODE_AS = {
    "tls_port_80.pcapng": ["-d", "tcp.port==80,tls"],
    "ssl-to-http-server.pcap": ["-d", "tcp.port==80,tls"],
    "sslv2.pcapng": ["-d", "tcp.port==4433,tls"],
    "irc-starttls.pcap": ["-d", "tcp.port==6667,tls"],
}
_LINE = re.compile(
    r"^\s+(?P<kind>Cipher Suite|Cipher Spec|Supported Group|Signature Algorithm|"
    r"Supported Version|Version): (?P<label>.+) \(0x(?P<code>[0-9a-f]{4}|[0-9a-f]{6})\)$"
)
_EXT_TYPE = re.compile(r"^\s+Type: (?P<label>.+) \((?P<code>\d+)\)$")
_KIND = {
    "Cipher Suite": "cipher",
    "Cipher Spec": "sslv2",
    "Supported Group": "group",
    "Signature Algorithm": "sigalg",
    "Supported Version": "version",
    "Version": "version",
}


def _tshark_hellos(path: Path) -> str:
    assert TSHARK is not None
    ooo = "FALSE" if path.name == "tcp-fastopen-10-syn-data-ignore.pcap" else "TRUE"
    cmd = [TSHARK, "-n", "-r", str(path), "-o", f"tcp.reassemble_out_of_order:{ooo}"]
    cmd += DECODE_AS.get(path.name, [])
    cmd += ["-V", "-Y", "tls.handshake.type == 1 || tls.handshake.type == 2"]
    return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout


@pytest.fixture(scope="module")
def corpus_names() -> dict[str, dict[int, set[str]]]:
    """Per registry, every code tshark printed for a corpus hello and the labels it used."""
    if TSHARK is None:
        pytest.skip("tshark not installed")
    files = sorted(p for p in CORPUS.rglob("*") if p.suffix in (".pcap", ".pcapng"))
    if not files:
        pytest.skip(f"no corpus at {CORPUS}")
    seen: dict[str, dict[int, set[str]]] = {k: {} for k in ("extension", *set(_KIND.values()))}
    with ThreadPoolExecutor(max_workers=4) as pool:
        outputs = list(pool.map(_tshark_hellos, files))
    for out in outputs:
        lines = out.splitlines()
        for i, line in enumerate(lines):
            m = _LINE.match(line)
            if m:
                kind = _KIND[m["kind"]]
                seen[kind].setdefault(int(m["code"], 16), set()).add(m["label"])
            elif line.lstrip().startswith("Extension: ") and i + 1 < len(lines):
                t = _EXT_TYPE.match(lines[i + 1])
                if t:
                    seen["extension"].setdefault(int(t["code"]), set()).add(t["label"])
    return seen


def _check_corpus(
    seen: dict[int, set[str]],
    ours: Callable[[int], str],
    diffs: dict[int, tuple[str, str]],
    newer: Collection[int] = (),
    unknown_prefix: str = "Unknown",
) -> None:
    bad = []
    for code, labels in sorted(seen.items()):
        assert len(labels) == 1, f"tshark used several names for 0x{code:04x}: {labels}"
        (label,) = labels
        got = ours(code)
        if code in diffs:
            want_diff = diffs[code][0]
            if label != want_diff or got == label:
                bad.append(f"stale difference 0x{code:04x}: tshark {label!r}, ours {got!r}")
        elif label == "Reserved (GREASE)":
            if got != "GREASE":
                bad.append(f"0x{code:04x}: GREASE, ours {got!r}")
        elif label.startswith(unknown_prefix):
            if code in newer:
                if got.startswith("unknown-"):
                    bad.append(f"0x{code:04x}: newer than tshark but unnamed")
            elif not got.startswith("unknown-"):
                bad.append(f"0x{code:04x}: tshark {label!r} but ours {got!r}")
        elif got != label:
            bad.append(f"0x{code:04x}: ours {got!r}, tshark {label!r}")
    assert not bad, "\n".join(bad)


@needs_tshark
def test_corpus_cipher_suites_match_tshark(corpus_names: dict[str, dict[int, set[str]]]) -> None:
    seen = corpus_names["cipher"]
    assert len(seen) > 150, "corpus should offer well over 150 distinct suites"
    assert 0xCC13 in seen  # the one listed difference is exercised by the corpus
    _check_corpus(seen, r.cipher_name, CIPHER_DIFFS)


@needs_tshark
def test_corpus_sslv2_cipher_specs_match_tshark(
    corpus_names: dict[str, dict[int, set[str]]],
) -> None:
    seen = corpus_names["sslv2"]
    assert 0x0700C0 in seen and 0x00FEFF in seen
    _check_corpus(seen, r.sslv2_cipher_name, {})


@needs_tshark
def test_corpus_extensions_match_tshark(corpus_names: dict[str, dict[int, set[str]]]) -> None:
    seen = corpus_names["extension"]
    assert len(seen) > 40
    assert 0xFE0D in seen  # ECH, which tshark 4.0 cannot name
    _check_corpus(seen, r.extension_name, EXTENSION_DIFFS, NEWER_THAN_TSHARK["extension"])


@needs_tshark
def test_corpus_groups_sigalgs_versions_match_tshark(
    corpus_names: dict[str, dict[int, set[str]]],
) -> None:
    groups, sigalgs, versions = (corpus_names[k] for k in ("group", "sigalg", "version"))
    assert len(groups) > 40 and len(sigalgs) > 25 and len(versions) > 20
    assert 0x11EC in groups  # X25519MLKEM768, which tshark 4.0 cannot name
    _check_corpus(groups, r.group_name, GROUP_DIFFS, NEWER_THAN_TSHARK["group"])
    _check_corpus(sigalgs, r.sigalg_name, SIGALG_DIFFS, unknown_prefix="Unknown Unknown")
    _check_corpus(versions, r.version_name, {})


# --- unit tests -----------------------------------------------------------------------------


def test_is_grease() -> None:
    grease = [0x0A0A + 0x1010 * i for i in range(16)]
    assert grease[-1] == 0xFAFA
    assert all(r.is_grease(v) for v in grease)
    assert sum(r.is_grease(v) for v in range(0x10000)) == 16
    for v in (0x0A0B, 0x0A1A, 0x1A0A, 0xAAAB, 0x00, 0x0A, 0x1301, 0xFAFB, 0x10A0A):
        assert not r.is_grease(v)


def test_unknown_rendering() -> None:
    assert r.cipher_name(0xFF85) == "unknown-0xff85"
    assert r.cipher_name(0x0A0A) == "GREASE"
    assert r.version_name(0xDADA) == "GREASE"
    assert r.extension_name(0x0F0F) == "unknown-0x0f0f"
    assert r.group_name(0x3A3A) == "GREASE"
    assert r.sigalg_name(0xEDED) == "unknown-0xeded"
    assert r.alert_name(0xFF) == "unknown-0xff"
    assert r.alert_name(0x0A) == "unexpected_message"
    assert r.alert_level_name(3) == "unknown-0x03"
    assert r.handshake_name(7) == "unknown-0x07"
    assert r.content_type_name(0x17) == "application_data"
    assert r.content_type_name(0x80) == "unknown-0x80"
    assert r.sslv2_cipher_name(0x090080) == "unknown-0x090080"
    assert r.sslv2_cipher_name(0x00002F) == "TLS_RSA_WITH_AES_128_CBC_SHA"
    # GREASE is only a 16-bit notion: an 8-bit table given width 2 never says GREASE.
    assert r.name(r.HANDSHAKE_TYPES, 0x0A0A, 2) == "unknown-0xa0a"
    assert r.name({}, 5, 4) == "unknown-0x0005"


def test_well_known_names() -> None:
    assert r.cipher_name(0x1301) == "TLS_AES_128_GCM_SHA256"
    assert r.cipher_name(0xC02F) == "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
    assert r.cipher_name(0x00FF) == "TLS_EMPTY_RENEGOTIATION_INFO_SCSV"
    assert r.cipher_name(0x5600) == "TLS_FALLBACK_SCSV"
    assert r.cipher_name(0x00C6) == "TLS_SM4_GCM_SM3"
    assert r.cipher_name(0xCCA8) == "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"
    assert r.version_name(0x0304) == "TLS 1.3" and r.version_name(0x7F17) == "TLS 1.3 (draft 23)"
    assert r.version_name(0xFEFC) == "DTLS 1.3" and r.version_name(0x0002) == "SSL 2.0"
    assert r.extension_name(0xFF01) == "renegotiation_info"
    assert r.extension_name(0xFE0D) == "encrypted_client_hello"
    assert r.extension_name(0x3374) == "next_protocol_negotiation"
    assert r.group_name(0x11EC) == "X25519MLKEM768" and r.group_name(0x001D) == "x25519"
    assert r.sigalg_name(0x0804) == "rsa_pss_rsae_sha256" and r.sigalg_name(0x0904) == "mldsa44"
    assert r.handshake_name(6) == "hello_retry_request" and r.handshake_name(254) == "message_hash"
    assert r.alert_name(40) == "handshake_failure" and r.alert_name(121) == "ech_required"
    assert r.content_type_name(25) == "tls12_cid" and r.content_type_name(26) == "ack"


def test_table_sizes() -> None:
    assert len(r.CIPHER_SUITES) > 400
    assert not any(r.is_grease(v) for v in r.CIPHER_SUITES)
    assert len(r.ALERT_DESCRIPTIONS) == 38
    # Two names are used twice: Netscape FIPS 0xfefe = 0xffe1 and 0xfeff = 0xffe0.
    assert len(set(r.CIPHER_SUITES.values())) == len(r.CIPHER_SUITES) - 2


def _props(code: int) -> r.CipherProps:
    props = r.cipher_properties(code)
    assert props is not None, hex(code)
    return props


def test_cipher_properties_common_suites() -> None:
    p = _props(0xC02F)  # TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
    assert (p.kx, p.auth, p.enc, p.mac) == ("ECDHE", "RSA", "AES_128_GCM", "SHA256")
    assert p.is_aead and not p.is_weak and p.mac_length == 0
    p = _props(0x1303)  # TLS_CHACHA20_POLY1305_SHA256
    assert (p.kx, p.auth, p.enc, p.is_aead) == ("TLS13", "TLS13", "CHACHA20_POLY1305", True)
    p = _props(0x002F)  # TLS_RSA_WITH_AES_128_CBC_SHA
    assert (p.kx, p.enc, p.mac, p.mac_length, p.is_weak) == ("RSA", "AES_128_CBC", "SHA", 20, False)
    p = _props(0xC0AC)  # TLS_ECDHE_ECDSA_WITH_AES_128_CCM: no hash in the name
    assert (p.auth, p.enc, p.mac, p.is_aead) == ("ECDSA", "AES_128_CCM", "AEAD", True)
    p = _props(0xC0AA)  # TLS_PSK_DHE_WITH_AES_128_CCM_8 (RFC 6655 word order)
    assert (p.kx, p.auth) == ("DHE", "PSK")
    p = _props(0xC01E)  # TLS_SRP_SHA_RSA_WITH_AES_128_CBC_SHA
    assert (p.kx, p.auth) == ("SRP", "RSA")


def test_cipher_properties_null_and_weak() -> None:
    expected_mac = {0x0001: 16, 0x0002: 20, 0x003B: 32, 0x00B1: 48, 0xC0B4: 32, 0xC0B5: 48}
    for code, mac_length in expected_mac.items():
        p = _props(code)
        assert p.is_null_encryption and p.is_weak and not p.is_aead, r.cipher_name(code)
        assert p.mac_length == mac_length, r.cipher_name(code)
    p = _props(0x0000)  # TLS_NULL_WITH_NULL_NULL
    assert p.is_null_encryption and p.is_anonymous and p.mac_length == 0
    p = _props(0x0003)  # TLS_RSA_EXPORT_WITH_RC4_40_MD5
    assert p.is_export and p.is_weak and (p.kx, p.enc, p.mac) == ("RSA", "RC4_40", "MD5")
    p = _props(0x0063)  # TLS_DHE_DSS_EXPORT1024_WITH_DES_CBC_SHA
    assert p.is_export and (p.kx, p.auth, p.enc) == ("DHE", "DSS", "DES_CBC")
    p = _props(0x00A6)  # TLS_DH_anon_WITH_AES_128_GCM_SHA256: strong cipher, no authentication
    assert p.is_anonymous and p.is_weak and p.is_aead and p.auth == "anon"
    assert _props(0x000A).is_weak  # 3DES
    assert _props(0x0005).is_weak  # RC4
    assert _props(0x0007).is_weak  # IDEA
    assert not _props(0xC030).is_weak and not _props(0x009C).is_weak


def test_cipher_properties_none_for_non_suites() -> None:
    for code in (0x00FF, 0x5600, 0x0A0A, 0xFF85, 0x1A1A):
        assert r.cipher_properties(code) is None
    named = [c for c in r.CIPHER_SUITES if r.cipher_properties(c) is not None]
    assert len(named) == len(r.CIPHER_SUITES) - 2  # only the two SCSVs lack properties
