"""Real TLS bytes and small helpers shared by the reader and codec tests.

Hand-annotated vectors (tlslite style: one field per line) were copied byte for byte from public
captures in the shared corpus (``/work/shared/corpus``, see its MANIFEST.md); the source of each
is named above it. A few structures that never appear in the clear on the wire (TLS 1.3
Certificate and CertificateRequest, which are encrypted) are built by hand and say so.

Whole handshakes come from ``fixtures/crafted/pcap_nanosec_bigendian.pcap`` (shipped in the
repository; its TLS bytes are the zeek ``tls1.2.pcap`` handshake, see fixtures/crafted/README.md).
:func:`read_streams` rebuilds each direction with a deliberately naive reassembler of its own
(sort by sequence number, require contiguity) so the tests do not depend on tlspcap's.
"""

from __future__ import annotations

import functools
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tlspcap.capture.decode import decode_segment
from tlspcap.capture.model import SYN, format_endpoint
from tlspcap.capture.reader import CaptureReader

REPO_ROOT = Path(__file__).resolve().parents[1]
CRAFTED_DIR = REPO_ROOT / "fixtures" / "crafted"
EXPECTED_JSON = CRAFTED_DIR / "expected.json"
CORPUS_DIR = REPO_ROOT.parent / "shared" / "corpus"

Chunk = tuple[bytes, int]
"""Contiguous stream bytes and the frame that carried them."""


def load_expected() -> dict[str, Any]:
    """The ground truth of the crafted captures."""
    data: dict[str, Any] = json.loads(EXPECTED_JSON.read_text())
    return data


# ---- whole streams -------------------------------------------------------------------------


@dataclass(frozen=True)
class Stream:
    """One direction of a TCP connection: its bytes and the segments that carried them."""

    src: str
    dst: str
    data: bytes
    chunks: tuple[Chunk, ...]
    """Segment payloads in stream order, with their frame numbers."""
    isn: int
    """Sequence number of the first payload byte."""

    def frame_at(self, offset: int) -> int:
        """Frame of the segment that carried stream byte ``offset``."""
        end = 0
        for payload, frame in self.chunks:
            end += len(payload)
            if offset < end:
                return frame
        raise IndexError(offset)


def read_streams(path: Path) -> dict[tuple[str, str], Stream]:
    """Every direction of every connection in a capture, keyed by (src, dst) ``ip:port``.

    Segments are ordered by sequence number; exact duplicates are dropped and any hole or
    overlap is an AssertionError (use only on captures without them).
    """
    segs: dict[tuple[str, str], dict[int, Chunk]] = {}
    with path.open("rb") as f:
        for packet in CaptureReader(f).packets():
            seg = decode_segment(packet)
            if seg is None or not seg.payload:
                continue
            key = (format_endpoint(seg.src, seg.sport), format_endpoint(seg.dst, seg.dport))
            seq = (seg.seq + (1 if seg.flags & SYN else 0)) & 0xFFFFFFFF
            segs.setdefault(key, {}).setdefault(seq, (seg.payload, packet.frame))
    out = {}
    for key, by_seq in segs.items():
        first = min(by_seq)
        nxt = first
        chunks = []
        for seq in sorted(by_seq):
            payload, frame = by_seq[seq]
            assert seq == nxt, f"hole or overlap at {seq} in {key}"
            chunks.append((payload, frame))
            nxt = seq + len(payload)
        data = b"".join(p for p, _ in chunks)
        out[key] = Stream(key[0], key[1], data, tuple(chunks), first)
    return out


TLS12_CAPTURE = CRAFTED_DIR / "pcap_nanosec_bigendian.pcap"
TLS12_CLIENT = "127.0.0.1:60071"
TLS12_SERVER = "127.0.0.2:443"


@functools.cache
def tls12_streams() -> tuple[Stream, Stream]:
    """(client, server) directions of the TLS 1.2 RC4-MD5 handshake (zeek tls1.2.pcap bytes).

    Client: CH (frame 4) | CKE, CCS, encrypted Finished (11) | 2 app data (15) | encrypted
    alert (20). Server: SH + Certificate(3) + SHD over frames 6, 7, 9 | CCS + encrypted Finished
    (13) | 2 app data records (17, 18).
    """
    streams = read_streams(TLS12_CAPTURE)
    return streams[(TLS12_CLIENT, TLS12_SERVER)], streams[(TLS12_SERVER, TLS12_CLIENT)]


TLS12_CERT_SHA256 = (
    # cert_chain_fps of /work/shared/corpus/zeek/tls1.2.pcap.zeek.ssl.log (Zeek's own baseline)
    "95cb443934beda97627688546191ab1d3989a835592cebdd2434f9ad41324ce1",
    "7363593d116aafcf804b974465546e1f02ed74b52db529ba7520345e5fed1ed4",
    "687fa451382278fff0c8b11f8d43d576671c6eb2bceab413fb83d965d06d2ff2",
)
TLS12_CERT_LENGTHS = (1449, 1280, 1082)


# ---- independent, naive parsers (oracles) --------------------------------------------------


@dataclass(frozen=True)
class RawRecord:
    """A TLS record found by :func:`split_records`."""

    content_type: int
    version: int
    payload: bytes
    end: int
    """Stream offset just after the record's last byte."""


def split_records(data: bytes) -> list[RawRecord]:
    """Cut 5-byte-header TLS records; the input must be whole records."""
    out = []
    i = 0
    while i < len(data):
        length = int.from_bytes(data[i + 3 : i + 5], "big")
        end = i + 5 + length
        assert end <= len(data), "partial record"
        version = int.from_bytes(data[i + 1 : i + 3], "big")
        out.append(RawRecord(data[i], version, data[i + 5 : end], end))
        i = end
    return out


def split_messages(data: bytes) -> list[tuple[int, bytes, int]]:
    """Cut handshake messages: (type, body, end offset); the input must be whole messages."""
    out = []
    i = 0
    while i < len(data):
        length = int.from_bytes(data[i + 1 : i + 4], "big")
        end = i + 4 + length
        assert end <= len(data), "partial message"
        out.append((data[i], data[i + 4 : end], end))
        i = end
    return out


def plaintext_handshake(stream: Stream) -> bytes:
    """Concatenated payloads of the handshake records sent before ChangeCipherSpec."""
    parts = []
    for rec in split_records(stream.data):
        if rec.content_type == 20:
            break
        if rec.content_type == 22:
            parts.append(rec.payload)
    return b"".join(parts)


# ---- builders --------------------------------------------------------------------------------


def record(content_type: int, payload: bytes, version: int = 0x0303) -> bytes:
    """A TLS record with a 5-byte header."""
    return (
        bytes([content_type])
        + version.to_bytes(2, "big")
        + len(payload).to_bytes(2, "big")
        + (payload)
    )


def handshake(msg_type: int, body: bytes) -> bytes:
    """A handshake message with its 4-byte header."""
    return bytes([msg_type]) + len(body).to_bytes(3, "big") + body


def sslv2_record(body: bytes) -> bytes:
    """An SSLv2 record with a 2-byte header."""
    return (0x8000 | len(body)).to_bytes(2, "big") + body


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    """Split ``data`` at the (sorted, distinct, interior) offsets ``cuts``."""
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


# ---- ClientHello vectors ----------------------------------------------------------------------

# Chrome 65 to apis.google.com: /work/shared/corpus/ja3/ssl-chrome.pcap frame 4 (salesforce/ja3,
# BSD-3-Clause). Handshake body (508 bytes) without the 4-byte header.
CHROME_CH_RANDOM = bytes.fromhex("a06ccdc0ee6c99d4840b07718c59f40d29cc9cfc0b57abe8a337bb566ec70d22")
CHROME_CH_SESSION_ID = bytes.fromhex(
    "91fc6f41645951e0ef6767157ba3678b7312da41aa04190330788bfdd1ff2d8a"
)
CHROME_CH_X25519_SHARE = bytes.fromhex(
    "82adf0a076a22e42d33e2b700742f88edc5e2affefccdacd0cbcd1050aff3c68"
)
CHROME_CLIENT_HELLO = (
    bytes.fromhex(
        "0303"  # legacy_version TLS 1.2
    )
    + CHROME_CH_RANDOM  # random
    + b"\x20"  # session_id length 32
    + CHROME_CH_SESSION_ID
    + bytes.fromhex(
        "0022"  # cipher_suites length 34 (17 suites)
        "1a1a"  # GREASE
        "1301 1302 1303"  # TLS_AES_128_GCM_SHA256, _256_GCM_SHA384, CHACHA20_POLY1305
        "c02b c02f c02c c030"  # ECDHE-{ECDSA,RSA}-AES{128,256}-GCM
        "cca9 cca8"  # ECDHE-{ECDSA,RSA}-CHACHA20-POLY1305
        "c013 c014"  # ECDHE-RSA-AES{128,256}-CBC-SHA
        "009c 009d 002f 0035 000a"  # RSA-AES-GCM x2, RSA-AES-CBC x2, 3DES
        "01 00"  # compression_methods: [null]
        "0191"  # extensions length 401
        "2a2a 0000"  # GREASE, empty
        "ff01 0001 00"  # renegotiation_info, empty renegotiated_connection
        "0000 0014"  # server_name, 20 bytes
        "0012 00 000f 617069732e676f6f676c652e636f6d"  # list(18): host_name apis.google.com
        "0017 0000"  # extended_master_secret
        "0023 0000"  # session_ticket, empty
        "000d 0014 0012"  # signature_algorithms, list of 9
        "0403 0804 0401 0503 0805 0501 0806 0601 0201"
        "0005 0005 0100000000"  # status_request: OCSP, no responders, no extensions
        "0012 0000"  # signed_certificate_timestamp
        "0010 000e 000c"  # ALPN, list of 12 bytes
        "02 6832"  # "h2"
        "08 687474702f312e31"  # "http/1.1"
        "7550 0000"  # channel_id (30032)
        "000b 0002 01 00"  # ec_point_formats: [uncompressed]
        "0033 002b 0029"  # key_share, client_shares of 41 bytes
        "2a2a 0001 00"  # GREASE group, 1-byte share
        "001d 0020"  # x25519, 32-byte share
    )
    + CHROME_CH_X25519_SHARE
    + bytes.fromhex(
        "002d 0002 01 01"  # psk_key_exchange_modes: [psk_dhe_ke]
        "002b 000b 0a"  # supported_versions, 10 bytes
        "3a3a 7f17 0303 0302 0301"  # GREASE, TLS 1.3 draft 23, 1.2, 1.1, 1.0
        "000a 000a 0008"  # supported_groups, list of 4
        "2a2a 001d 0017 0018"  # GREASE, x25519, secp256r1, secp384r1
        "eaea 0001 00"  # GREASE extension with one 0 byte
        "0015 00cc"  # padding, 204 bytes
    )
    + bytes(204)
)
CHROME_CH_SUITES = (
    0x1A1A, 0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8, 0xC013,
    0xC014, 0x009C, 0x009D, 0x002F, 0x0035, 0x000A,
)  # fmt: skip
CHROME_CH_EXTENSION_TYPES = (
    0x2A2A, 0xFF01, 0, 23, 35, 13, 5, 18, 16, 30032, 11, 51, 45, 43, 10, 0xEAEA, 21,
)  # fmt: skip
CHROME_CH_SIGALGS = (0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601, 0x0201)
CHROME_CH_EXTENSIONS_START = 2 + 32 + 1 + 32 + 2 + 34 + 2
"""Offset of the 2-byte extensions length in CHROME_CLIENT_HELLO."""

# TLS 1.3 PSK resumption: /work/shared/corpus/zeek/tls13_psk_succesfull.pcap frame 4 (zeek,
# BSD-3-Clause). Offers pre_shared_key (identity "Client_identity"), no early_data.
PSK_CLIENT_HELLO = bytes.fromhex(
    "0303"  # legacy_version
    "f7e7795859fd976861b6dfa449b31972eacbba98bfe1753be334990f561f218b"  # random
    "20 47842bdf2e7f78998c7543fd4ca8562e3ce6af1e89a987dc569ba332abfddb9f"  # session_id
    "0072"  # cipher_suites, 57 suites
    "130213031301c02cc030009fcca9cca8ccaac02bc02f009ec024c028006bc023c0270067c00ac0140039"
    "c009c013003300ad00abccaeccadccac009d00a9ccab00ac00aa009c00a8003d003cc038c03600b700b3"
    "00950091003500af008dc037c03500b600b200940090002f00ae008c00ff"
    "01 00"  # compression_methods: [null]
    "00d3"  # extensions length 211
    "000b 0004 03 000102"  # ec_point_formats: uncompressed, ansiX962 prime, char2
    "000a 000c 000a 001d 0017 001e 0019 0018"  # supported_groups
    "0023 0000"  # session_ticket
    "0016 0000"  # encrypt_then_mac
    "0017 0000"  # extended_master_secret
    "000d 0030 002e"  # signature_algorithms, 23 of them
    "0403 0503 0603 0807 0808 0809 080a 080b 0804 0805 0806 0401"
    "0501 0601 0303 0203 0301 0201 0302 0202 0402 0502 0602"
    "002b 0009 08 0304 0303 0302 0301"  # supported_versions: 1.3, 1.2, 1.1, 1.0
    "002d 0002 01 01"  # psk_key_exchange_modes: [psk_dhe_ke]
    "0033 0026 0024 001d 0020"  # key_share: x25519
    "06842c191a9ad3c9002f2e72bb18a78c4251a06f2a6ce07f740e6cc1b5ed316d"
    "0029 003a"  # pre_shared_key, 58 bytes
    "0015 000f 436c69656e745f6964656e74697479 00000000"  # identity "Client_identity", age 0
    "0021 20 db6d37b6b9a3b23943b5a3a45c3895946f8d27d7999152eacba8329c622465e9"  # binder
)
PSK_CH_EXTENSION_TYPES = (11, 10, 35, 22, 23, 13, 43, 45, 51, 41)

# TLS 1.3 draft-19 0-RTT resumption: /work/shared/corpus/zeek/tls-13draft19-early-data.pcap
# frame 25 (zeek, BSD-3-Clause). Draft code points: key_share is 40 (not 51); pre_shared_key 41
# and early_data 42 kept their numbers in RFC 8446.
EARLY_DATA_CLIENT_HELLO = bytes.fromhex(
    "0303"  # legacy_version
    "684befd83b0376b17055b248668d3202bbe8a9b9302febe93ffe3b6acfa16438"  # random
    "00"  # empty session_id
    "003e"  # 31 cipher suites
    "c02cc030009fcca9cca8ccaac02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033"
    "009d009c130213031301003d003c0035002f00ff"
    "01 00"  # compression_methods: [null]
    "0177"  # extensions length 375
    "000b 0004 03000102"  # ec_point_formats
    "000a 000a 0008 001d 0017 0019 0018"  # supported_groups
    "0023 0000"  # session_ticket
    "000d 0020 001e"  # signature_algorithms, 15 of them
    "040305030603080408050806040105010601020302010202040205020602"
    "0016 0000"  # encrypt_then_mac
    "0017 0000"  # extended_master_secret
    "002b 0009 08 7f13 0303 0302 0301"  # supported_versions: draft 19, 1.2-1.0
    "002d 0003 02 0100"  # psk_key_exchange_modes: psk_dhe_ke, psk_ke
    "0028 0026 0024 001d 0020"  # key_share (draft code 40): x25519
    "4a439fb833a0825dcdc75bc05148a405625539e4982726670a2d20d5eaab3d25"
    "002a 0000"  # early_data
    "0029 00eb"  # pre_shared_key, 235 bytes: one 176-byte ticket identity and a binder
    "00b6 00b0"
    "01f38812aeeb1301ed5dcf0b8fadf2c1499f2dfae1989fb78240814f720ebefca3bc8f0386f18eaed7e5a2"
    "eef3deb7a5f65ceb185e4943506d217c09e04e45e80fdaf8f2a87384173ee5d9211909fedba83705d7d036"
    "4a47ebadf9f8133f23dce74aad14bf532e98d8d27201efc50c5fdfc95b37a76ca7a0b5da831610a1dbe23c"
    "6afe4e3d7555d3f35b0231b1ffccbb5a1dab143dca8007216406bec690949253cf758e925f2fc9f048f3d0"
    "faebb626"
    "545f6d35"  # obfuscated_ticket_age
    "0031 30"  # binders: one of 48 bytes
    "dc4a24004c1287923977456564bdf6cb340469703595e258ca5b4b787dad4859aeabed7ab3ca4b3da00945"
    "520a8d4fe4"
)

# ---- ServerHello vectors ----------------------------------------------------------------------

# The server's answer to PSK_CLIENT_HELLO (frame 6 of the same capture).
PSK_SERVER_HELLO = bytes.fromhex(
    "0303"  # legacy_version
    "b5c382fec724ef8cd7cbf7a8bccd28d6c0c4c764265fd8fa5f91280e0f0d847d"  # random
    "20 47842bdf2e7f78998c7543fd4ca8562e3ce6af1e89a987dc569ba332abfddb9f"  # echoed session id
    "1303"  # TLS_CHACHA20_POLY1305_SHA256
    "00"  # compression null
    "0034"  # extensions length 52
    "002b 0002 0304"  # supported_versions: TLS 1.3
    "0033 0024 001d 0020"  # key_share: x25519
    "05943475c0f2ad77f5a4d7b349a75a29a027927e4f7fde8323dbc536a1930b0e"
    "0029 0002 0000"  # pre_shared_key: selected identity 0
)

# HelloRetryRequest: /work/shared/corpus/zeek/hrr.pcap frame 6 (zeek, BSD-3-Clause).
HRR_SERVER_HELLO = bytes.fromhex(
    "0303"  # legacy_version
    "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c"  # the HRR random
    "20 1a6bb8368add0e28015bd6cced648236f49e2407f19653ac1fdd1ffa48bfaecd"  # session id
    "1302"  # TLS_AES_256_GCM_SHA384
    "00"  # compression null
    "000c"  # extensions length 12
    "002b 0002 0304"  # supported_versions: TLS 1.3
    "0033 0002 0017"  # key_share: selected_group secp256r1 (no key)
)

# TLS 1.3 draft-18 ServerHello: /work/shared/corpus/arkime/tls13.pcap frame 6 (arkime,
# Apache-2.0). Drafts before -22 have no legacy_session_id_echo and no compression_method.
DRAFT18_SERVER_HELLO = bytes.fromhex(
    "7f12"  # server_version: TLS 1.3 draft 18
    "3ef1609fd3f4fa8668aac5822d500fb0639b22671d0fb7258597355795511bf6"  # random
    "1301"  # TLS_AES_128_GCM_SHA256
    "0028"  # extensions length 40
    "0028 0024 001d 0020"  # key_share (draft code 40): x25519
    "ae0e282a3b7a463e71064ecbaf671586e979b0edbebf7a4735c31678c70f660c"
)

# The Illustrated TLS 1.3 Connection: /work/shared/corpus/illustrated-tls13/capture.pcap frame 7
# (syncsynchalt/illustrated-tls13, MIT).
ILLUSTRATED13_SERVER_HELLO = bytes.fromhex(
    "0303"  # legacy_version
    "707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f"  # random
    "20 e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"  # session id
    "1302"  # TLS_AES_256_GCM_SHA384
    "00"  # compression null
    "002e"  # extensions length 46
    "002b 0002 0304"  # supported_versions: TLS 1.3
    "0033 0024 001d 0020"  # key_share: x25519
    "9fd7ad6dcff4298dd3f96d5b1b2af910a0535b1488d7f8fabb349a982880b615"
)

# ---- Certificate / CertificateRequest ------------------------------------------------------------

# Built by hand (TLS 1.2 layout): two fake "certificates" so every length prefix is visible.
CERTIFICATE_TLS12 = bytes.fromhex(
    "00000c"  # certificate_list length 12
    "000003 300100"  # ASN.1Cert 1
    "000003 300102"  # ASN.1Cert 2
)

# Built by hand (TLS 1.3 layout, RFC 8446 4.4.2): request context, CertificateEntry with
# extensions. (Real TLS 1.3 Certificate messages are encrypted on the wire.)
CERTIFICATE_TLS13 = bytes.fromhex(
    "02 abcd"  # certificate_request_context
    "000016"  # certificate_list length 22
    "000003 300100"  # cert_data 1
    "0005 0005 0001 01"  # extensions: status_request with 1 byte (opaque here)
    "000004 30020500"  # cert_data 2
    "0000"  # no extensions
)

# SSL 3.0 CertificateRequest (same layout as TLS 1.0/1.1): /work/shared/corpus/arkime/
# ssl-selfsign.pcap frame 7 (arkime, Apache-2.0).
CERTIFICATE_REQUEST_SSL3 = bytes.fromhex(
    "02 01 02"  # certificate_types: rsa_sign, dss_sign
    "002b"  # certificate_authorities length 43
    "0029"  # one DistinguishedName of 41 bytes: CN=MO, O=LO, C=CH
    "3027310b3009060355040313024d4f310b3009060355040a13024c4f310b3009060355040613024348"
)
SSL3_AUTHORITY = CERTIFICATE_REQUEST_SSL3[7:]

# TLS 1.2 CertificateRequest: /work/shared/corpus/zeek/client-certificate.pcap frame 11 (zeek,
# BSD-3-Clause).
CERTIFICATE_REQUEST_TLS12 = bytes.fromhex(
    "03 01 02 40"  # certificate_types: rsa_sign, dss_sign, ecdsa_sign
    "0028"  # supported_signature_algorithms, 20 of them
    "0403 0503 0603 0807 0808 0809 080a 080b 0804 0805"
    "0806 0401 0501 0601 0303 0301 0302 0402 0502 0602"
    "0000"  # no certificate_authorities
)
TLS12_REQUEST_SIGALGS = (
    0x0403, 0x0503, 0x0603, 0x0807, 0x0808, 0x0809, 0x080A, 0x080B, 0x0804, 0x0805,
    0x0806, 0x0401, 0x0501, 0x0601, 0x0303, 0x0301, 0x0302, 0x0402, 0x0502, 0x0602,
)  # fmt: skip

# Built by hand (TLS 1.3 layout, RFC 8446 4.3.2).
CERTIFICATE_REQUEST_TLS13 = bytes.fromhex(
    "00"  # empty certificate_request_context
    "0016"  # extensions length 22
    "000d 0008 0006 0403 0804 0401"  # signature_algorithms
    "002f 0006 0004 0002 3000"  # certificate_authorities: one (fake) 2-byte name
)

# ---- SSLv2 ------------------------------------------------------------------------------------

# SSLv2 CLIENT-HELLO record (2-byte header): /work/shared/corpus/zeek/ssl-v2.pcap frame 4 (zeek,
# BSD-3-Clause).
SSLV2_CLIENT_HELLO_RECORD = bytes.fromhex(
    "802e"  # 2-byte record header, length 46
    "01"  # msg_type CLIENT-HELLO
    "0002"  # version SSL 2.0
    "0015"  # cipher_specs length 21 (7 kinds)
    "0000"  # session_id length 0
    "0010"  # challenge length 16
    "0700c0"  # SSL2_DES_192_EDE3_CBC_WITH_MD5
    "050080"  # SSL2_IDEA_128_CBC_WITH_MD5
    "030080"  # SSL2_RC2_128_CBC_WITH_MD5
    "010080"  # SSL2_RC4_128_WITH_MD5
    "060040"  # SSL2_DES_64_CBC_WITH_MD5
    "040080"  # SSL2_RC2_128_CBC_EXPORT40_WITH_MD5
    "020080"  # SSL2_RC4_128_EXPORT40_WITH_MD5
    "1c30e2b12f4c04525476f280c07abee5"  # challenge
)
SSLV2_KINDS = (0x0700C0, 0x050080, 0x030080, 0x010080, 0x060040, 0x040080, 0x020080)
SSLV2_CHALLENGE = bytes.fromhex("1c30e2b12f4c04525476f280c07abee5")

# The client's next record in the same capture (frame 8 starts with it): CLIENT-MASTER-KEY,
# 2-byte header, first 12 bytes shown in full, the encrypted key data elided to its length.
SSLV2_CLIENT_MASTER_KEY_HEAD = bytes.fromhex(
    "8112"  # 2-byte header, length 274
    "02"  # CLIENT-MASTER-KEY
    "0700c0"  # cipher kind
    "0000"  # clear key length 0
    "0100"  # encrypted key length 256
    "0008"  # key arg length 8
)

# The client's first encrypted record in the same capture (frame 10): an SSLv2 record with a
# 3-byte header (MSB of the first byte clear: length 0x28 = 40, 7 of them padding).
SSLV2_ENCRYPTED_3BYTE_RECORD = bytes.fromhex(
    "0028 073edf91c840854389be2ff9dbcf9045767af7e7bb69d2014d15efc59056aa888452db6732af4f3269"
)

# Built by hand: an SSLv2 SERVER-HELLO with a tiny stand-in certificate.
SSLV2_SERVER_HELLO = bytes.fromhex(
    "04"  # msg_type SERVER-HELLO
    "00"  # session_id_hit
    "01"  # certificate_type X.509
    "0002"  # server_version SSL 2.0
    "0004"  # certificate length 4
    "0006"  # cipher_specs length 6
    "0010"  # connection_id length 16
    "30020500"  # "certificate"
    "0700c0 010080"  # cipher kinds
    "000102030405060708090a0b0c0d0e0f"  # connection_id
)
