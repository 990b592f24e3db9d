"""Codecs for the handshake messages tlspcap reads: bytes in, typed values (or DecodeError) out.

Each ``parse_*`` function takes the body of one handshake message (without its 4-byte header)
and returns the value from :mod:`tlspcap.tls.messages`. Structural errors raise
:class:`~tlspcap.errors.DecodeError`; a malformed *known extension* inside an otherwise sound
hello is not fatal: its name is appended to ``problems`` and the raw extension is kept.
"""

from __future__ import annotations

from collections.abc import Callable

from tlspcap.errors import DecodeError
from tlspcap.tls.messages import (
    CertificateMessage,
    CertificateRequest,
    ClientHello,
    Extension,
    ServerHello,
)
from tlspcap.tls.wire import WireReader

HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")
"""ServerHello.random of a HelloRetryRequest (RFC 8446 section 4.1.3)."""

EXT_SERVER_NAME = 0
EXT_SUPPORTED_GROUPS = 10
EXT_EC_POINT_FORMATS = 11
EXT_SIGNATURE_ALGORITHMS = 13
EXT_ALPN = 16
EXT_PRE_SHARED_KEY = 41
EXT_EARLY_DATA = 42
EXT_SUPPORTED_VERSIONS = 43
EXT_KEY_SHARE = 51


def _extensions(r: WireReader) -> tuple[Extension, ...]:
    """Read the optional extensions block that ends a hello."""
    if r.at_end():
        return ()
    block = r.vector(2)
    r.expect_end("extensions")
    out = []
    while not block.at_end():
        ext_type = block.u16()
        out.append(Extension(ext_type, block.opaque(2)))
    return tuple(out)


def _sni(data: bytes) -> str | None:
    names = WireReader(data).vector(2)
    while not names.at_end():
        name_type = names.u8()
        host = names.opaque(2)
        if name_type == 0:
            return host.decode("utf-8", "replace")
    return None


def _alpn(data: bytes) -> tuple[bytes, ...]:
    r = WireReader(data)
    protos = r.vector(2)
    r.expect_end("ALPN")
    out = []
    while not protos.at_end():
        out.append(protos.opaque(1))
    return tuple(out)


def _u16s(data: bytes, length_bytes: int) -> tuple[int, ...]:
    r = WireReader(data)
    values = r.u16_list(length_bytes)
    r.expect_end("list")
    return values


def _u8s(data: bytes) -> tuple[int, ...]:
    r = WireReader(data)
    values = r.u8_list(1)
    r.expect_end("list")
    return values


def _key_share_groups(data: bytes) -> tuple[int, ...]:
    r = WireReader(data)
    shares = r.vector(2)
    r.expect_end("key_share")
    groups = []
    while not shares.at_end():
        groups.append(shares.u16())
        shares.opaque(2)
    return tuple(groups)


_CH_DECODERS: dict[int, tuple[str, Callable[[bytes], object]]] = {
    EXT_SERVER_NAME: ("sni", _sni),
    EXT_SUPPORTED_VERSIONS: ("supported_versions", lambda d: _u16s(d, 1)),
    EXT_ALPN: ("alpn", _alpn),
    EXT_SUPPORTED_GROUPS: ("supported_groups", lambda d: _u16s(d, 2)),
    EXT_SIGNATURE_ALGORITHMS: ("signature_algorithms", lambda d: _u16s(d, 2)),
    EXT_EC_POINT_FORMATS: ("ec_point_formats", _u8s),
    EXT_KEY_SHARE: ("key_share_groups", _key_share_groups),
}


def parse_client_hello(body: bytes, frame: int, problems: list[str]) -> ClientHello:
    """Parse a ClientHello body (RFC 8446 4.1.2 / RFC 5246 7.4.1.2)."""
    r = WireReader(body)
    legacy_version = r.u16()
    random = r.raw(32)
    session_id = r.opaque(1)
    suites = r.u16_list(2)
    compression = r.u8_list(1)
    extensions = _extensions(r)
    decoded: dict[str, object] = {}
    for ext in extensions:
        entry = _CH_DECODERS.get(ext.type)
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
        psk_offered=EXT_PRE_SHARED_KEY in types,
        early_data=EXT_EARLY_DATA in types,
        **decoded,  # type: ignore[arg-type]
    )


def parse_server_hello(body: bytes, frame: int, problems: list[str]) -> ServerHello:
    """Parse a ServerHello or HelloRetryRequest body."""
    r = WireReader(body)
    legacy_version = r.u16()
    random = r.raw(32)
    # TLS 1.3 drafts before -22 had no legacy_session_id and no compression_method.
    early_draft = legacy_version >> 8 == 0x7F and (legacy_version & 0xFF) < 22
    session_id = b"" if early_draft else r.opaque(1)
    suite = r.u16()
    compression = 0 if early_draft else r.u8()
    extensions = _extensions(r)
    hrr = random == HRR_RANDOM
    selected: int | None = None
    alpn: bytes | None = None
    group: int | None = None
    for ext in extensions:
        try:
            if ext.type == EXT_SUPPORTED_VERSIONS and selected is None:
                selected = _single_u16(ext.data)
            elif ext.type == EXT_ALPN and alpn is None:
                protos = _alpn(ext.data)
                alpn = protos[0] if protos else None
            elif ext.type == EXT_KEY_SHARE and group is None:
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
        hello_retry_request=hrr,
    )


def _single_u16(data: bytes) -> int:
    r = WireReader(data)
    value = r.u16()
    r.expect_end("supported_versions")
    return value


def parse_certificate(body: bytes, frame: int, tls13: bool) -> CertificateMessage:
    """Parse a Certificate message: the DER certificates in the order sent."""
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


def parse_certificate_request(body: bytes, frame: int, version: int) -> CertificateRequest:
    """Parse a CertificateRequest; the layout depends on the negotiated ``version``."""
    r = WireReader(body)
    if version >= 0x0304 and version != 0xFFFF:
        r.opaque(1)
        exts = _extensions(r)
        sigalgs: tuple[int, ...] = ()
        for ext in exts:
            if ext.type == EXT_SIGNATURE_ALGORITHMS:
                sigalgs = _u16s(ext.data, 2)
        return CertificateRequest(frame=frame, signature_algorithms=sigalgs)
    types = r.u8_list(1)
    sigalgs = r.u16_list(2) if version >= 0x0303 else ()
    names = r.vector(2)
    r.expect_end("CertificateRequest")
    authorities = []
    while not names.at_end():
        authorities.append(names.opaque(2))
    return CertificateRequest(
        frame=frame,
        certificate_types=types,
        signature_algorithms=sigalgs,
        authorities=tuple(authorities),
    )


def parse_sslv2_client_hello(body: bytes, frame: int) -> ClientHello:
    """Parse an SSLv2 CLIENT-HELLO (the record body, starting with message type 1)."""
    r = WireReader(body)
    if r.u8() != 1:
        raise DecodeError("not an SSLv2 CLIENT-HELLO")
    version = r.u16()
    spec_len, sid_len, challenge_len = r.u16(), r.u16(), r.u16()
    if spec_len % 3:
        raise DecodeError("SSLv2 cipher spec length is not a multiple of 3")
    specs_raw = r.raw(spec_len)
    session_id = r.raw(sid_len)
    challenge = r.raw(challenge_len)
    r.expect_end("SSLv2 CLIENT-HELLO")
    kinds = tuple(int.from_bytes(specs_raw[i : i + 3], "big") for i in range(0, spec_len, 3))
    return ClientHello(
        frame=frame,
        legacy_version=version,
        random=challenge.rjust(32, b"\x00")[-32:],
        session_id=session_id,
        cipher_suites=tuple(k for k in kinds if k <= 0xFFFF),
        compression_methods=(),
        extensions=(),
        sslv2=True,
        sslv2_cipher_kinds=kinds,
    )


def parse_sslv2_server_hello(body: bytes, frame: int) -> ServerHello:
    """Parse an SSLv2 SERVER-HELLO (message type 4)."""
    r = WireReader(body)
    if r.u8() != 4:
        raise DecodeError("not an SSLv2 SERVER-HELLO")
    r.u8()  # session id hit
    r.u8()  # certificate type
    version = r.u16()
    cert_len, spec_len, conn_id_len = r.u16(), r.u16(), r.u16()
    cert = r.raw(cert_len)
    specs = r.raw(spec_len)
    conn_id = r.raw(conn_id_len)
    r.expect_end("SSLv2 SERVER-HELLO")
    first = int.from_bytes(specs[:3], "big") if len(specs) >= 3 else 0
    return ServerHello(
        frame=frame,
        legacy_version=version,
        random=conn_id,
        session_id=b"",
        cipher_suite=first,
        compression_method=0,
        extensions=(),
        sslv2=True,
        sslv2_certificate=cert or None,
    )
