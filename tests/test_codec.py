"""Handshake message codecs (tlspcap.tls.codec) on real and hand-annotated vectors."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from hypothesis import given, settings
from hypothesis import strategies as st
from vectors import (
    CERTIFICATE_REQUEST_SSL3,
    CERTIFICATE_REQUEST_TLS12,
    CERTIFICATE_REQUEST_TLS13,
    CERTIFICATE_TLS12,
    CERTIFICATE_TLS13,
    CHROME_CH_EXTENSION_TYPES,
    CHROME_CH_EXTENSIONS_START,
    CHROME_CH_RANDOM,
    CHROME_CH_SESSION_ID,
    CHROME_CH_SIGALGS,
    CHROME_CH_SUITES,
    CHROME_CLIENT_HELLO,
    DRAFT18_SERVER_HELLO,
    EARLY_DATA_CLIENT_HELLO,
    HRR_SERVER_HELLO,
    ILLUSTRATED13_SERVER_HELLO,
    PSK_CH_EXTENSION_TYPES,
    PSK_CLIENT_HELLO,
    PSK_SERVER_HELLO,
    SSL3_AUTHORITY,
    SSLV2_CHALLENGE,
    SSLV2_CLIENT_HELLO_RECORD,
    SSLV2_KINDS,
    SSLV2_SERVER_HELLO,
    TLS12_CERT_LENGTHS,
    TLS12_CERT_SHA256,
    TLS12_REQUEST_SIGALGS,
    plaintext_handshake,
    read_streams,
    split_messages,
    split_records,
    tls12_streams,
)

from tlspcap.errors import DecodeError
from tlspcap.tls import codec
from tlspcap.tls.messages import ClientHello, Extension, ServerHello

SSLV2_CLIENT_HELLO = SSLV2_CLIENT_HELLO_RECORD[2:]


def ch(body: bytes, problems: list[str] | None = None) -> ClientHello:
    return codec.parse_client_hello(body, 4, [] if problems is None else problems)


def sh(body: bytes, problems: list[str] | None = None) -> ServerHello:
    return codec.parse_server_hello(body, 6, [] if problems is None else problems)


def tls12_message(msg_type: int) -> bytes:
    """Body of the first message of ``msg_type`` in the real TLS 1.2 handshake."""
    for stream in tls12_streams():
        for t, body, _ in split_messages(plaintext_handshake(stream)):
            if t == msg_type:
                return body
    raise LookupError(msg_type)


# ---- ClientHello ---------------------------------------------------------------------------------


def test_chrome_client_hello_every_field() -> None:
    problems: list[str] = []
    hello = codec.parse_client_hello(CHROME_CLIENT_HELLO, 4, problems)
    assert problems == []
    assert hello.frame == 4
    assert hello.legacy_version == 0x0303
    assert hello.random == CHROME_CH_RANDOM
    assert hello.session_id == CHROME_CH_SESSION_ID
    assert hello.cipher_suites == CHROME_CH_SUITES
    assert hello.cipher_suites[0] == 0x1A1A  # GREASE kept, in place
    assert hello.compression_methods == (0,)
    assert hello.extension_types == CHROME_CH_EXTENSION_TYPES
    assert hello.extensions[0] == Extension(0x2A2A, b"")
    assert hello.extensions[1] == Extension(0xFF01, b"\x00")
    assert hello.extensions[15] == Extension(0xEAEA, b"\x00")
    assert hello.extensions[16] == Extension(21, bytes(204))
    assert hello.sni == "apis.google.com"
    assert hello.alpn == (b"h2", b"http/1.1")
    assert hello.supported_versions == (0x3A3A, 0x7F17, 0x0303, 0x0302, 0x0301)
    assert hello.supported_groups == (0x2A2A, 0x001D, 0x0017, 0x0018)
    assert hello.signature_algorithms == CHROME_CH_SIGALGS
    assert hello.ec_point_formats == (0,)
    assert hello.key_share_groups == (0x2A2A, 0x001D)
    assert hello.psk_offered is False
    assert hello.early_data is False
    assert hello.sslv2 is False
    assert hello.sslv2_cipher_kinds == ()


def test_psk_client_hello() -> None:
    hello = ch(PSK_CLIENT_HELLO)
    assert hello.legacy_version == 0x0303
    assert hello.session_id == bytes.fromhex(
        "47842bdf2e7f78998c7543fd4ca8562e3ce6af1e89a987dc569ba332abfddb9f"
    )
    assert len(hello.cipher_suites) == 57
    assert hello.cipher_suites[:4] == (0x1302, 0x1303, 0x1301, 0xC02C)
    assert hello.cipher_suites[-1] == 0x00FF
    assert hello.extension_types == PSK_CH_EXTENSION_TYPES
    assert hello.extensions[-1].type == 41  # pre_shared_key must come last (RFC 8446 4.2.11)
    assert hello.sni is None
    assert hello.alpn == ()
    assert hello.supported_versions == (0x0304, 0x0303, 0x0302, 0x0301)
    assert hello.supported_groups == (0x001D, 0x0017, 0x001E, 0x0019, 0x0018)
    assert len(hello.signature_algorithms) == 23
    assert hello.signature_algorithms[:3] == (0x0403, 0x0503, 0x0603)
    assert hello.signature_algorithms[-1] == 0x0602
    assert hello.ec_point_formats == (0, 1, 2)
    assert hello.key_share_groups == (0x001D,)
    assert hello.psk_offered is True
    assert hello.early_data is False


def test_early_data_client_hello_draft19() -> None:
    hello = ch(EARLY_DATA_CLIENT_HELLO)
    assert hello.session_id == b""
    assert len(hello.cipher_suites) == 31
    assert hello.extension_types == (11, 10, 35, 13, 22, 23, 43, 45, 40, 42, 41)
    assert hello.supported_versions == (0x7F13, 0x0303, 0x0302, 0x0301)
    assert hello.psk_offered is True
    assert hello.early_data is True
    assert hello.key_share_groups == ()  # draft key_share (40) is not RFC 8446's 51
    assert hello.ec_point_formats == (0, 1, 2)


def test_tls12_client_hello_from_the_stream() -> None:
    hello = ch(tls12_message(1))
    assert hello.legacy_version == 0x0303
    assert len(hello.cipher_suites) == 80  # tshark: cipher_suites_length 160
    assert hello.session_id == b""
    assert hello.extension_types == (11, 10, 35, 13, 15)


def test_client_hello_without_extensions() -> None:
    body = bytes.fromhex("0301") + bytes(32) + bytes.fromhex("00 0004 0005 0004 01 00")
    hello = ch(body)
    assert hello.legacy_version == 0x0301
    assert hello.cipher_suites == (0x0005, 0x0004)
    assert hello.extensions == ()
    assert hello.sni is None
    assert hello.supported_versions == ()


def test_client_hello_with_empty_extension_block() -> None:
    body = bytes.fromhex("0303") + bytes(32) + bytes.fromhex("00 0002 002f 01 00 0000")
    assert ch(body).extensions == ()


def test_duplicate_extension_first_one_is_decoded() -> None:
    sni_a = bytes.fromhex("0000 0006 0004 00 0001 61")
    sni_b = bytes.fromhex("0000 0006 0004 00 0001 62")
    exts = sni_a + sni_b
    body = (
        bytes.fromhex("0303")
        + bytes(32)
        + bytes.fromhex("00 0002 002f 01 00")
        + len(exts).to_bytes(2, "big")
        + exts
    )
    hello = ch(body)
    assert hello.sni == "a"
    assert hello.extension_types == (0, 0)


# ---- malformed extensions: a problem, not a failure -------------------------------------------


def _chrome_with(old: str, new: str) -> bytes:
    old_b, new_b = bytes.fromhex(old), bytes.fromhex(new)
    assert len(old_b) == len(new_b)
    assert CHROME_CLIENT_HELLO.count(old_b) == 1
    return CHROME_CLIENT_HELLO.replace(old_b, new_b)


def test_malformed_alpn_is_a_problem_and_the_hello_is_kept() -> None:
    body = _chrome_with("0010 000e 000c 02 6832", "0010 000e 000d 02 6832")
    problems: list[str] = []
    hello = ch(body, problems)
    assert problems == ["malformed_extension_16"]
    assert hello.alpn == ()
    assert hello.extensions[8] == Extension(16, bytes.fromhex("000d 02 6832 08 687474702f312e31"))
    assert hello.sni == "apis.google.com"  # the rest is decoded as usual
    assert hello.cipher_suites == CHROME_CH_SUITES


def test_several_malformed_extensions_each_give_a_problem_in_order() -> None:
    body = _chrome_with("0000 0014 0012 00 000f", "0000 0014 0012 00 0010")  # host too long
    body = body.replace(bytes.fromhex("002b 000b 0a 3a3a"), bytes.fromhex("002b 000b 09 3a3a"))
    body = body.replace(bytes.fromhex("0033 002b 0029"), bytes.fromhex("0033 002b 002a"))
    problems: list[str] = []
    hello = ch(body, problems)
    assert problems == ["malformed_extension_0", "malformed_extension_51", "malformed_extension_43"]
    assert hello.sni is None
    assert hello.key_share_groups == ()
    assert hello.supported_versions == ()
    assert hello.supported_groups == (0x2A2A, 0x001D, 0x0017, 0x0018)


def test_malformed_groups_sigalgs_and_point_formats() -> None:
    body = _chrome_with("000a 000a 0008 2a2a", "000a 000a 0007 2a2a")
    body = body.replace(bytes.fromhex("000d 0014 0012"), bytes.fromhex("000d 0014 0011"))
    body = body.replace(bytes.fromhex("000b 0002 01 00"), bytes.fromhex("000b 0002 02 00"))
    problems: list[str] = []
    hello = ch(body, problems)
    assert problems == [
        "malformed_extension_13",
        "malformed_extension_11",
        "malformed_extension_10",
    ]
    assert (hello.supported_groups, hello.signature_algorithms, hello.ec_point_formats) == (
        (),
        (),
        (),
    )


def test_structural_errors_are_decode_errors() -> None:
    with pytest.raises(DecodeError):
        ch(CHROME_CLIENT_HELLO + b"\x00")  # a byte after the extensions block
    start = CHROME_CH_EXTENSIONS_START
    bad_len = CHROME_CLIENT_HELLO[:start] + b"\x01\x92" + CHROME_CLIENT_HELLO[start + 2 :]
    with pytest.raises(DecodeError):
        ch(bad_len)  # extensions block longer than the message
    odd_suites = bytearray(CHROME_CLIENT_HELLO)
    odd_suites[67:69] = b"\x00\x21"
    with pytest.raises(DecodeError):
        ch(bytes(odd_suites))


# ---- ServerHello ---------------------------------------------------------------------------------


def test_tls13_server_hello_with_psk() -> None:
    hello = sh(PSK_SERVER_HELLO)
    assert hello.frame == 6
    assert hello.legacy_version == 0x0303
    assert hello.selected_version == 0x0304
    assert hello.version == 0x0304
    assert hello.random[:4] == bytes.fromhex("b5c382fe")
    assert hello.session_id[:4] == bytes.fromhex("47842bdf")
    assert hello.cipher_suite == 0x1303
    assert hello.compression_method == 0
    assert hello.extension_types == (43, 51, 41)
    assert hello.key_share_group == 0x001D
    assert hello.alpn is None
    assert hello.hello_retry_request is False


def test_illustrated_tls13_server_hello() -> None:
    hello = sh(ILLUSTRATED13_SERVER_HELLO)
    assert hello.random == bytes(range(0x70, 0x90))
    assert hello.session_id == bytes(range(0xE0, 0x100))
    assert (hello.version, hello.cipher_suite, hello.key_share_group) == (0x0304, 0x1302, 0x1D)


def test_hello_retry_request() -> None:
    hello = sh(HRR_SERVER_HELLO)
    assert hello.hello_retry_request is True
    assert hello.random == codec.HRR_RANDOM
    assert hello.selected_version == 0x0304
    assert hello.cipher_suite == 0x1302
    assert hello.key_share_group == 0x0017
    assert hello.extension_types == (43, 51)


def test_draft18_server_hello_has_no_session_id_or_compression() -> None:
    hello = sh(DRAFT18_SERVER_HELLO)
    assert hello.legacy_version == 0x7F12
    assert hello.version == 0x7F12
    assert hello.selected_version is None
    assert hello.random[:4] == bytes.fromhex("3ef1609f")
    assert hello.session_id == b""
    assert hello.compression_method == 0
    assert hello.cipher_suite == 0x1301
    assert hello.extension_types == (40,)
    assert hello.key_share_group is None
    assert hello.hello_retry_request is False


def test_draft22_and_later_use_the_tls12_layout() -> None:
    # From draft 22 on, the legacy_version is 0x0303 and the draft number moves to
    # supported_versions.
    body = bytes.fromhex("0303") + bytes(32) + bytes.fromhex("00 1301 00 0006 002b 0002 7f17")
    hello = sh(body)
    assert hello.selected_version == 0x7F17
    assert hello.cipher_suite == 0x1301


def test_tls12_server_hello_from_the_stream() -> None:
    hello = sh(tls12_message(2))
    assert hello.legacy_version == 0x0303
    assert hello.version == 0x0303
    assert hello.session_id == bytes.fromhex(
        "fa283db6334ef9973bf89aaa913c784c3d4fd57a954864a5aef82a01aae807cf"
    )
    assert hello.cipher_suite == 0x0004
    assert hello.extensions == (Extension(0xFF01, b"\x00"),)
    assert hello.selected_version is None


def test_server_hello_alpn() -> None:
    body = (
        bytes.fromhex("0303") + bytes(32) + bytes.fromhex("00 c02f 00 0009 0010 0005 0003 02 6832")
    )
    hello = sh(body)
    assert hello.alpn == b"h2"


def test_server_hello_malformed_extensions_are_problems() -> None:
    body = (
        bytes.fromhex("0303")
        + bytes(32)
        + bytes.fromhex("00 1301 00 0010 002b 0003 030400 0033 0001 00 0010 0000")
    )
    problems: list[str] = []
    hello = sh(body, problems)
    assert problems == [
        "malformed_extension_43",
        "malformed_extension_51",
        "malformed_extension_16",
    ]
    assert hello.selected_version is None
    assert hello.version == 0x0303
    assert hello.key_share_group is None
    assert hello.alpn is None


# ---- Certificate ---------------------------------------------------------------------------------


def test_certificate_tls12_layout() -> None:
    cert = codec.parse_certificate(CERTIFICATE_TLS12, 9, tls13=False)
    assert cert.frame == 9
    assert cert.chain == (b"\x30\x01\x00", b"\x30\x01\x02")
    assert cert.request_context == b""


def test_certificate_tls13_layout() -> None:
    cert = codec.parse_certificate(CERTIFICATE_TLS13, 9, tls13=True)
    assert cert.chain == (b"\x30\x01\x00", b"\x30\x02\x05\x00")
    assert cert.request_context == b"\xab\xcd"


def test_certificate_layouts_are_not_interchangeable() -> None:
    with pytest.raises(DecodeError):
        codec.parse_certificate(CERTIFICATE_TLS13, 1, tls13=False)
    with pytest.raises(DecodeError):
        codec.parse_certificate(CERTIFICATE_TLS12, 1, tls13=True)


def test_empty_certificate_messages() -> None:
    assert codec.parse_certificate(b"\x00\x00\x00", 1, tls13=False).chain == ()
    assert codec.parse_certificate(b"\x00\x00\x00\x00", 1, tls13=True).chain == ()


def test_real_certificate_chain_matches_zeek_fingerprints() -> None:
    cert = codec.parse_certificate(tls12_message(11), 9, tls13=False)
    assert tuple(len(c) for c in cert.chain) == TLS12_CERT_LENGTHS
    assert tuple(hashlib.sha256(c).hexdigest() for c in cert.chain) == TLS12_CERT_SHA256


# ---- CertificateRequest --------------------------------------------------------------------------


@pytest.mark.parametrize("version", [0x0300, 0x0301, 0x0302])
def test_certificate_request_ssl3_tls10_layout(version: int) -> None:
    req = codec.parse_certificate_request(CERTIFICATE_REQUEST_SSL3, 7, version)
    assert req.frame == 7
    assert req.certificate_types == (1, 2)
    assert req.signature_algorithms == ()
    assert req.authorities == (SSL3_AUTHORITY,)
    assert req.authorities[0][:2] == b"\x30\x27"  # a DER SEQUENCE of 39 bytes


def test_certificate_request_tls12_layout() -> None:
    req = codec.parse_certificate_request(CERTIFICATE_REQUEST_TLS12, 11, 0x0303)
    assert req.certificate_types == (1, 2, 64)
    assert req.signature_algorithms == TLS12_REQUEST_SIGALGS
    assert req.authorities == ()


@pytest.mark.parametrize("version", [0x0304, 0x7F1C])
def test_certificate_request_tls13_layout(version: int) -> None:
    req = codec.parse_certificate_request(CERTIFICATE_REQUEST_TLS13, 12, version)
    assert req.signature_algorithms == (0x0403, 0x0804, 0x0401)
    assert req.certificate_types == ()


def test_certificate_request_layout_depends_on_version() -> None:
    with pytest.raises(DecodeError):
        codec.parse_certificate_request(CERTIFICATE_REQUEST_SSL3, 1, 0x0303)
    with pytest.raises(DecodeError):
        codec.parse_certificate_request(CERTIFICATE_REQUEST_TLS12, 1, 0x0301)


# ---- SSLv2 ---------------------------------------------------------------------------------------


def test_sslv2_client_hello() -> None:
    hello = codec.parse_sslv2_client_hello(SSLV2_CLIENT_HELLO, 4)
    assert hello.frame == 4
    assert hello.sslv2 is True
    assert hello.legacy_version == 0x0002
    assert hello.sslv2_cipher_kinds == SSLV2_KINDS
    assert hello.cipher_suites == ()  # none of these kinds is a TLS suite (0x00XXXX)
    assert hello.session_id == b""
    assert hello.random == bytes(16) + SSLV2_CHALLENGE
    assert hello.compression_methods == ()
    assert hello.extensions == ()


def test_sslv2_compatible_client_hello_offering_tls() -> None:
    challenge = bytes(range(32))
    body = bytes.fromhex("01 0301 0009 0000 0020 010080 000004 00002f") + challenge
    hello = codec.parse_sslv2_client_hello(body, 1)
    assert hello.legacy_version == 0x0301
    assert hello.sslv2_cipher_kinds == (0x010080, 0x000004, 0x00002F)
    assert hello.cipher_suites == (0x0004, 0x002F)
    assert hello.random == challenge


@pytest.mark.parametrize(
    "body",
    [
        bytes.fromhex("04 0002 0003 0000 0010 010080") + bytes(16),  # wrong message type
        bytes.fromhex("01 0002 0004 0000 0010 01008000") + bytes(16),  # specs not 3-byte kinds
        SSLV2_CLIENT_HELLO + b"\x00",  # trailing byte
    ],
)
def test_sslv2_client_hello_errors(body: bytes) -> None:
    with pytest.raises(DecodeError):
        codec.parse_sslv2_client_hello(body, 1)


def test_sslv2_server_hello() -> None:
    hello = codec.parse_sslv2_server_hello(SSLV2_SERVER_HELLO, 6)
    assert hello.frame == 6
    assert hello.sslv2 is True
    assert hello.legacy_version == 0x0002
    assert hello.version == 0x0002
    assert hello.cipher_suite == 0x0700C0
    assert hello.random == bytes(range(16))
    assert hello.sslv2_certificate == b"\x30\x02\x05\x00"


def test_sslv2_server_hello_wrong_type() -> None:
    with pytest.raises(DecodeError):
        codec.parse_sslv2_server_hello(b"\x01" + SSLV2_SERVER_HELLO[1:], 1)


def test_sslv2_server_hello_trailing_bytes_are_an_error() -> None:
    # BUG: parse_sslv2_client_hello rejects bytes after the message (expect_end), but
    # parse_sslv2_server_hello silently ignores them.
    with pytest.raises(DecodeError):
        codec.parse_sslv2_server_hello(SSLV2_SERVER_HELLO + b"\x00", 1)


def test_real_sslv2_server_hello(corpus_dir: Path) -> None:
    path = corpus_dir / "zeek" / "ssl-v2.pcap"
    streams = read_streams(path)
    server = streams[("91.227.4.92:443", "192.168.4.149:59062")]
    length = int.from_bytes(server.data[:2], "big") & 0x7FFF
    hello = codec.parse_sslv2_server_hello(server.data[2 : 2 + length], 6)
    assert hello.cipher_suite == 0x0700C0
    assert hello.random == bytes.fromhex("b01a19a135e793cebecd5204d9e0c699")
    assert hello.sslv2_certificate is not None
    assert len(hello.sslv2_certificate) == 903
    cert = x509.load_der_x509_certificate(hello.sslv2_certificate)
    assert cert.serial_number == 0x4EB6F269


# ---- truncation and fuzzing ----------------------------------------------------------------

Parser = Callable[[bytes], object]

PARSERS: dict[str, tuple[Parser, bytes, set[int]]] = {
    # name: (parser, vector, prefix lengths that are themselves complete messages)
    "chrome_ch": (ch, CHROME_CLIENT_HELLO, {CHROME_CH_EXTENSIONS_START}),
    "psk_ch": (ch, PSK_CLIENT_HELLO, {2 + 32 + 33 + 2 + 114 + 2}),
    "early_ch": (ch, EARLY_DATA_CLIENT_HELLO, {2 + 32 + 1 + 2 + 62 + 2}),
    "psk_sh": (sh, PSK_SERVER_HELLO, {2 + 32 + 33 + 2 + 1}),
    "hrr": (sh, HRR_SERVER_HELLO, {2 + 32 + 33 + 2 + 1}),
    "draft18_sh": (sh, DRAFT18_SERVER_HELLO, {2 + 32 + 2}),
    "illustrated_sh": (sh, ILLUSTRATED13_SERVER_HELLO, {2 + 32 + 33 + 2 + 1}),
    "cert12": (lambda b: codec.parse_certificate(b, 1, False), CERTIFICATE_TLS12, set()),
    "cert13": (lambda b: codec.parse_certificate(b, 1, True), CERTIFICATE_TLS13, set()),
    "certreq_ssl3": (
        lambda b: codec.parse_certificate_request(b, 1, 0x0300),
        CERTIFICATE_REQUEST_SSL3,
        set(),
    ),
    "certreq12": (
        lambda b: codec.parse_certificate_request(b, 1, 0x0303),
        CERTIFICATE_REQUEST_TLS12,
        set(),
    ),
    "certreq13": (
        lambda b: codec.parse_certificate_request(b, 1, 0x0304),
        CERTIFICATE_REQUEST_TLS13,
        {1},
    ),
    "sslv2_ch": (lambda b: codec.parse_sslv2_client_hello(b, 1), SSLV2_CLIENT_HELLO, set()),
    "sslv2_sh": (lambda b: codec.parse_sslv2_server_hello(b, 1), SSLV2_SERVER_HELLO, set()),
}


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_truncated_at_every_length_is_a_decode_error(name: str) -> None:
    parse, vector, complete = PARSERS[name]
    parse(vector)
    for n in range(len(vector)):
        if n in complete:
            parse(vector[:n])
            continue
        with pytest.raises(DecodeError):
            parse(vector[:n])


@settings(derandomize=True, max_examples=400, deadline=None)
@given(
    name=st.sampled_from(sorted(PARSERS)),
    cut=st.integers(0, 600),
    suffix=st.binary(max_size=40),
)
def test_prefix_plus_arbitrary_bytes_is_a_value_or_decode_error(
    name: str, cut: int, suffix: bytes
) -> None:
    parse, vector, _ = PARSERS[name]
    with contextlib.suppress(DecodeError):
        parse(vector[:cut] + suffix)


@settings(derandomize=True, max_examples=400, deadline=None)
@given(
    name=st.sampled_from(sorted(PARSERS)),
    flips=st.lists(st.tuples(st.integers(0, 600), st.integers(0, 255)), min_size=1, max_size=4),
)
def test_mutated_vectors_are_a_value_or_decode_error(
    name: str, flips: list[tuple[int, int]]
) -> None:
    parse, vector, _ = PARSERS[name]
    data = bytearray(vector)
    for pos, value in flips:
        data[pos % len(data)] = value
    with contextlib.suppress(DecodeError):
        parse(bytes(data))


def test_streams_helper_sanity() -> None:
    # The records the fuzzers start from really are the ones in the capture.
    client, _ = tls12_streams()
    assert split_records(client.data)[0].payload[4:] == tls12_message(1)
