"""The offset-walking hello and Certificate codecs agree with the WireReader-based originals.

``tlspcap.tls.codec`` walks hellos by offsets for speed. The reference parsers below are the
sequential :class:`WireReader` versions it replaced; on every input (real vectors, truncations,
mutations, appended bytes) both must return equal values and report the same problems, or
raise DecodeError with the same message (the message becomes an anomaly detail in reports).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vectors import (
    CERTIFICATE_REQUEST_TLS13,
    CERTIFICATE_TLS12,
    CERTIFICATE_TLS13,
    CHROME_CLIENT_HELLO,
    DRAFT18_SERVER_HELLO,
    EARLY_DATA_CLIENT_HELLO,
    HRR_SERVER_HELLO,
    ILLUSTRATED13_SERVER_HELLO,
    PSK_CLIENT_HELLO,
    PSK_SERVER_HELLO,
)

from tlspcap.errors import DecodeError
from tlspcap.tls import codec
from tlspcap.tls.messages import (
    CertificateMessage,
    CertificateRequest,
    ClientHello,
    Extension,
    ServerHello,
)
from tlspcap.tls.wire import WireReader

# ---- the reference (sequential reader) parsers ----------------------------------------------


def ref_extensions(r: WireReader) -> tuple[Extension, ...]:
    if r.at_end():
        return ()
    block = r.vector(2)
    r.expect_end("extensions")
    out = []
    while not block.at_end():
        ext_type = block.u16()
        out.append(Extension(ext_type, block.opaque(2)))
    return tuple(out)


def ref_sni(data: bytes) -> str | None:
    names = WireReader(data).vector(2)
    while not names.at_end():
        name_type = names.u8()
        host = names.opaque(2)
        if name_type == 0:
            return host.decode("utf-8", "replace")
    return None


def ref_alpn(data: bytes) -> tuple[bytes, ...]:
    r = WireReader(data)
    protos = r.vector(2)
    r.expect_end("ALPN")
    out = []
    while not protos.at_end():
        out.append(protos.opaque(1))
    return tuple(out)


def ref_u16s(data: bytes, length_bytes: int) -> tuple[int, ...]:
    r = WireReader(data)
    values = r.u16_list(length_bytes)
    r.expect_end("list")
    return values


def ref_u8s(data: bytes) -> tuple[int, ...]:
    r = WireReader(data)
    values = r.u8_list(1)
    r.expect_end("list")
    return values


def ref_key_share_groups(data: bytes) -> tuple[int, ...]:
    r = WireReader(data)
    shares = r.vector(2)
    r.expect_end("key_share")
    groups = []
    while not shares.at_end():
        groups.append(shares.u16())
        shares.opaque(2)
    return tuple(groups)


REF_CH_DECODERS: dict[int, tuple[str, Callable[[bytes], object]]] = {
    0: ("sni", ref_sni),
    43: ("supported_versions", lambda d: ref_u16s(d, 1)),
    16: ("alpn", ref_alpn),
    10: ("supported_groups", lambda d: ref_u16s(d, 2)),
    13: ("signature_algorithms", lambda d: ref_u16s(d, 2)),
    11: ("ec_point_formats", ref_u8s),
    51: ("key_share_groups", ref_key_share_groups),
}


def ref_client_hello(body: bytes, frame: int, problems: list[str]) -> ClientHello:
    r = WireReader(body)
    legacy_version = r.u16()
    random = r.raw(32)
    session_id = r.opaque(1)
    suites = r.u16_list(2)
    compression = r.u8_list(1)
    extensions = ref_extensions(r)
    decoded: dict[str, object] = {}
    for ext in extensions:
        entry = REF_CH_DECODERS.get(ext.type)
        if entry is None or entry[0] in decoded:
            continue
        try:
            decoded[entry[0]] = entry[1](ext.data)
        except DecodeError:
            problems.append(f"malformed_extension_{ext.type}")
    types = {e.type for e in extensions}
    return ClientHello(
        frame=frame,
        legacy_version=legacy_version,
        random=random,
        session_id=session_id,
        cipher_suites=suites,
        compression_methods=compression,
        extensions=extensions,
        psk_offered=41 in types,
        early_data=42 in types,
        **decoded,  # type: ignore[arg-type]
    )


def ref_single_u16(data: bytes) -> int:
    r = WireReader(data)
    value = r.u16()
    r.expect_end("supported_versions")
    return value


def ref_server_hello(body: bytes, frame: int, problems: list[str]) -> ServerHello:
    r = WireReader(body)
    legacy_version = r.u16()
    random = r.raw(32)
    early_draft = legacy_version >> 8 == 0x7F and (legacy_version & 0xFF) < 22
    session_id = b"" if early_draft else r.opaque(1)
    suite = r.u16()
    compression = 0 if early_draft else r.u8()
    extensions = ref_extensions(r)
    selected: int | None = None
    alpn: bytes | None = None
    group: int | None = None
    for ext in extensions:
        try:
            if ext.type == 43 and selected is None:
                selected = ref_single_u16(ext.data)
            elif ext.type == 16 and alpn is None:
                protos = ref_alpn(ext.data)
                alpn = protos[0] if protos else None
            elif ext.type == 51 and group is None:
                group = WireReader(ext.data).u16()
        except DecodeError:
            problems.append(f"malformed_extension_{ext.type}")
    return ServerHello(
        frame=frame,
        legacy_version=legacy_version,
        random=random,
        session_id=session_id,
        cipher_suite=suite,
        compression_method=compression,
        extensions=extensions,
        selected_version=selected,
        alpn=alpn,
        key_share_group=group,
        hello_retry_request=random == codec.HRR_RANDOM,
    )


def ref_certificate(body: bytes, frame: int, tls13: bool) -> CertificateMessage:
    r = WireReader(body)
    context = r.opaque(1) if tls13 else b""
    entries = r.vector(3)
    r.expect_end("Certificate")
    chain = []
    while not entries.at_end():
        chain.append(entries.opaque(3))
        if tls13:
            entries.opaque(2)
    return CertificateMessage(frame=frame, chain=tuple(chain), request_context=context)


def ref_certificate_request13(body: bytes, frame: int) -> CertificateRequest:
    r = WireReader(body)
    r.opaque(1)
    sigalgs: tuple[int, ...] = ()
    for ext in ref_extensions(r):
        if ext.type == 13:
            sigalgs = ref_u16s(ext.data, 2)
    return CertificateRequest(frame=frame, signature_algorithms=sigalgs)


# ---- the comparison -------------------------------------------------------------------------

Parse = Callable[[bytes, list[str]], object]

PAIRS: dict[str, tuple[Parse, Parse]] = {
    "client_hello": (
        lambda b, p: codec.parse_client_hello(b, 3, p),
        lambda b, p: ref_client_hello(b, 3, p),
    ),
    "server_hello": (
        lambda b, p: codec.parse_server_hello(b, 3, p),
        lambda b, p: ref_server_hello(b, 3, p),
    ),
    "certificate12": (
        lambda b, p: codec.parse_certificate(b, 3, False),
        lambda b, p: ref_certificate(b, 3, False),
    ),
    "certificate13": (
        lambda b, p: codec.parse_certificate(b, 3, True),
        lambda b, p: ref_certificate(b, 3, True),
    ),
    "certificate_request13": (
        lambda b, p: codec.parse_certificate_request(b, 3, 0x0304),
        lambda b, p: ref_certificate_request13(b, 3),
    ),
}

VECTORS: list[tuple[str, bytes]] = [
    ("client_hello", CHROME_CLIENT_HELLO),
    ("client_hello", PSK_CLIENT_HELLO),
    ("client_hello", EARLY_DATA_CLIENT_HELLO),
    ("server_hello", PSK_SERVER_HELLO),
    ("server_hello", HRR_SERVER_HELLO),
    ("server_hello", DRAFT18_SERVER_HELLO),
    ("server_hello", ILLUSTRATED13_SERVER_HELLO),
    ("certificate12", CERTIFICATE_TLS12),
    ("certificate13", CERTIFICATE_TLS13),
    ("certificate13", CERTIFICATE_TLS12),
    ("certificate12", CERTIFICATE_TLS13),
    ("certificate_request13", CERTIFICATE_REQUEST_TLS13),
]


def outcome(parse: Parse, data: bytes) -> tuple[object, list[str]]:
    problems: list[str] = []
    try:
        return parse(data, problems), problems
    except DecodeError as exc:
        return f"DecodeError: {exc}", problems


def assert_same(kind: str, data: bytes) -> None:
    fast, ref = PAIRS[kind]
    assert outcome(fast, data) == outcome(ref, data)


@pytest.mark.parametrize(("kind", "vector"), VECTORS)
def test_every_truncation_and_extension(kind: str, vector: bytes) -> None:
    for n in range(len(vector) + 1):
        assert_same(kind, vector[:n])
        assert_same(kind, vector[:n] + b"\x00")
        assert_same(kind, vector[:n] + b"\xff\xff\xff")


@settings(derandomize=True, max_examples=1500, deadline=None)
@given(
    index=st.integers(0, len(VECTORS) - 1),
    flips=st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), min_size=1, max_size=4),
    cut=st.integers(0, 2000),
    suffix=st.binary(max_size=8),
)
def test_mutations(index: int, flips: list[tuple[int, int]], cut: int, suffix: bytes) -> None:
    kind, vector = VECTORS[index]
    data = bytearray(vector)
    for pos, value in flips:
        data[pos % len(data)] = value
    assert_same(kind, bytes(data))
    assert_same(kind, bytes(data[:cut]) + suffix)


@settings(derandomize=True, max_examples=600, deadline=None)
@given(
    kind=st.sampled_from(sorted(PAIRS)),
    data=st.binary(max_size=80),
)
def test_arbitrary_bytes(kind: str, data: bytes) -> None:
    assert_same(kind, data)


def _extension_block(ext_type: int, ext_body: bytes) -> bytes:
    ext = ext_type.to_bytes(2, "big") + len(ext_body).to_bytes(2, "big") + ext_body
    return len(ext).to_bytes(2, "big") + ext


@settings(derandomize=True, max_examples=1500, deadline=None)
@given(
    ext_type=st.sampled_from([0, 10, 11, 13, 16, 41, 42, 43, 51]),
    ext_body=st.one_of(
        st.binary(max_size=12),
        st.lists(st.integers(0, 12), max_size=6).map(
            lambda ns: b"".join(bytes([0, n]) + bytes(range(n)) for n in ns)
        ),
        st.lists(st.integers(0, 6), max_size=6).map(
            lambda ns: b"".join(bytes([n]) + bytes(range(n)) for n in ns)
        ),
    ),
    prefix_len=st.sampled_from([0, 1, 2]),
    slack=st.integers(-2, 2),
)
def test_extension_bodies(ext_type: int, ext_body: bytes, prefix_len: int, slack: int) -> None:
    if prefix_len:
        declared = max(0, len(ext_body) + slack) % (256**prefix_len)
        ext_body = declared.to_bytes(prefix_len, "big") + ext_body
    block = _extension_block(ext_type, ext_body)
    start = b"\x03\x03" + bytes(32) + b"\x00"
    assert_same("client_hello", start + b"\x00\x02\x13\x01\x01\x00" + block)
    assert_same("server_hello", start + b"\x13\x01\x00" + block)
