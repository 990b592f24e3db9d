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
    CertificateStatus,
    ClientHello,
    Extension,
    KeyExchange,
    ServerHello,
)
from tlspcap.tls.wire import WireReader, short_read, trailing, u16_values, vector_end

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


def _extensions_prefix(data: bytes, pos: int) -> tuple[Extension, ...]:
    """The extensions held whole by a hello cut short at ``len(data)`` (see ``truncated``)."""
    end = len(data)
    if pos + 2 > end:
        return ()
    block_end = min(pos + 2 + ((data[pos] << 8) | data[pos + 1]), end)
    out = []
    pos += 2
    while pos + 4 <= block_end:
        stop = pos + 4 + ((data[pos + 2] << 8) | data[pos + 3])
        if stop > block_end:
            break
        out.append(Extension((data[pos] << 8) | data[pos + 1], data[pos + 4 : stop]))
        pos = stop
    return tuple(out)


def _extensions(data: bytes, pos: int, end: int) -> tuple[Extension, ...]:
    """The optional extensions block that runs from ``pos`` to the end (``end``) of a hello."""
    if pos >= end:
        return ()
    block_end = vector_end(data, pos, end, 2)
    if block_end != end:
        raise trailing(end - block_end, "extensions")
    out = []
    pos += 2
    while pos < block_end:
        body = pos + 4
        if body > block_end:  # the 2-byte type, then the 2-byte length
            raise short_read(2, pos if pos + 2 > block_end else pos + 2, block_end)
        stop = body + ((data[pos + 2] << 8) | data[pos + 3])
        if stop > block_end:
            raise short_read(stop - body, body, block_end)
        out.append(Extension((data[pos] << 8) | data[pos + 1], data[body:stop]))
        pos = stop
    return tuple(out)


def _sni(data: bytes) -> str | None:
    names_end = vector_end(data, 0, len(data), 2)
    pos = 2
    while pos < names_end:
        host_end = vector_end(data, pos + 1, names_end, 2)
        if data[pos] == 0:  # host_name
            return data[pos + 3 : host_end].decode("utf-8", "replace")
        pos = host_end
    return None


def _alpn(data: bytes) -> tuple[bytes, ...]:
    end = len(data)
    protos_end = vector_end(data, 0, end, 2)
    if protos_end != end:
        raise trailing(end - protos_end, "ALPN")
    out = []
    pos = 2
    while pos < protos_end:
        stop = vector_end(data, pos, protos_end, 1)
        out.append(data[pos + 1 : stop])
        pos = stop
    return tuple(out)


def _u16s(data: bytes, length_bytes: int) -> tuple[int, ...]:
    end = len(data)
    stop = vector_end(data, 0, end, length_bytes)
    values = u16_values(data, length_bytes, stop)
    if stop != end:
        raise trailing(end - stop, "list")
    return values


def _u8s(data: bytes) -> tuple[int, ...]:
    end = len(data)
    stop = vector_end(data, 0, end, 1)
    if stop != end:
        raise trailing(end - stop, "list")
    return tuple(data[1:stop])


def _key_share_groups(data: bytes) -> tuple[int, ...]:
    end = len(data)
    shares_end = vector_end(data, 0, end, 2)
    if shares_end != end:
        raise trailing(end - shares_end, "key_share")
    groups = []
    pos = 2
    while pos < shares_end:
        if pos + 2 > shares_end:
            raise short_read(2, pos, shares_end)
        groups.append((data[pos] << 8) | data[pos + 1])
        pos = vector_end(data, pos + 2, shares_end, 2)
    return tuple(groups)


def _supported_versions(data: bytes) -> tuple[int, ...]:
    return _u16s(data, 1)


def _u16_list(data: bytes) -> tuple[int, ...]:
    return _u16s(data, 2)


_CH_DECODERS: dict[int, tuple[str, Callable[[bytes], object]]] = {
    EXT_SERVER_NAME: ("sni", _sni),
    EXT_SUPPORTED_VERSIONS: ("supported_versions", _supported_versions),
    EXT_ALPN: ("alpn", _alpn),
    EXT_SUPPORTED_GROUPS: ("supported_groups", _u16_list),
    EXT_SIGNATURE_ALGORITHMS: ("signature_algorithms", _u16_list),
    EXT_EC_POINT_FORMATS: ("ec_point_formats", _u8s),
    EXT_KEY_SHARE: ("key_share_groups", _key_share_groups),
}


def _check_version_and_random(end: int) -> None:
    """The 2-byte version and the 32-byte random every hello starts with are there."""
    if end < 34:
        raise short_read(2, 0, end) if end < 2 else short_read(32, 2, end)


def parse_client_hello(
    body: bytes, frame: int, problems: list[str], truncated: bool = False
) -> ClientHello:
    """Parse a ClientHello body (RFC 8446 4.1.2 / RFC 5246 7.4.1.2).

    ``truncated``: ``body`` is only the first part of the message (the capture cut it); the
    fields it holds whole are read, the first vector it cuts and everything after it are left
    empty, and the result says ``truncated``. Fewer than the 34 bytes of version and random
    still raise :class:`DecodeError`.
    """
    end = len(body)
    _check_version_and_random(end)
    if truncated:
        return _client_hello_prefix(body, frame, problems)
    sid_end = vector_end(body, 34, end, 1)
    suites_end = vector_end(body, sid_end, end, 2)
    suites = u16_values(body, sid_end + 2, suites_end)
    compression_end = vector_end(body, suites_end, end, 1)
    extensions = _extensions(body, compression_end, end)
    return _client_hello(
        body, frame, problems, sid_end, suites, suites_end, compression_end, extensions
    )


def _client_hello_prefix(body: bytes, frame: int, problems: list[str]) -> ClientHello:
    end = len(body)
    sid_end = 35 + body[34] if end > 34 else end + 1
    suites: tuple[int, ...] = ()
    suites_end = compression_end = end + 1
    if sid_end + 2 <= end:
        suites_end = sid_end + 2 + ((body[sid_end] << 8) | body[sid_end + 1])
        if suites_end <= end:
            suites = u16_values(body, sid_end + 2, suites_end)
            if suites_end < end:
                compression_end = suites_end + 1 + body[suites_end]
    extensions = _extensions_prefix(body, compression_end) if compression_end <= end else ()
    return _client_hello(
        body,
        frame,
        problems,
        min(sid_end, end),
        suites,
        min(suites_end, end),
        min(compression_end, end),
        extensions,
        truncated=True,
    )


def _client_hello(
    body: bytes,
    frame: int,
    problems: list[str],
    sid_end: int,
    suites: tuple[int, ...],
    suites_end: int,
    compression_end: int,
    extensions: tuple[Extension, ...],
    truncated: bool = False,
) -> ClientHello:
    decoded: dict[str, object] = {}
    psk_offered = early_data = False
    for ext in extensions:
        ext_type = ext.type
        entry = _CH_DECODERS.get(ext_type)
        if entry is None:
            if ext_type == EXT_PRE_SHARED_KEY:
                psk_offered = True
            elif ext_type == EXT_EARLY_DATA:
                early_data = True
            continue
        if entry[0] in decoded:
            continue
        try:
            decoded[entry[0]] = entry[1](ext.data)
        except DecodeError:
            problems.append(f"malformed_extension_{ext_type}")
    return ClientHello(
        frame=frame,
        legacy_version=(body[0] << 8) | body[1],
        random=body[2:34],
        session_id=body[35:sid_end],
        cipher_suites=suites,
        compression_methods=tuple(body[suites_end + 1 : compression_end]),
        extensions=extensions,
        psk_offered=psk_offered,
        early_data=early_data,
        truncated=truncated,
        **decoded,  # type: ignore[arg-type]
    )


def parse_server_hello(body: bytes, frame: int, problems: list[str]) -> ServerHello:
    """Parse a ServerHello or HelloRetryRequest body."""
    end = len(body)
    _check_version_and_random(end)
    legacy_version = (body[0] << 8) | body[1]
    random = body[2:34]
    # TLS 1.3 drafts before -22 had no legacy_session_id and no compression_method.
    early_draft = legacy_version >> 8 == 0x7F and (legacy_version & 0xFF) < 22
    if early_draft:
        session_id = b""
        pos = 34
    else:
        pos = vector_end(body, 34, end, 1)
        session_id = body[35:pos]
    if pos + 2 > end:
        raise short_read(2, pos, end)
    suite = (body[pos] << 8) | body[pos + 1]
    pos += 2
    compression = 0
    if not early_draft:
        if pos >= end:
            raise short_read(1, pos, end)
        compression = body[pos]
        pos += 1
    extensions = _extensions(body, pos, end)
    selected: int | None = None
    alpn: bytes | None = None
    group: int | None = None
    for ext in extensions:
        data = ext.data
        try:
            if ext.type == EXT_SUPPORTED_VERSIONS and selected is None:
                if len(data) != 2:
                    raise DecodeError("supported_versions is not one 16-bit value")
                selected = (data[0] << 8) | data[1]
            elif ext.type == EXT_ALPN and alpn is None:
                protos = _alpn(data)
                alpn = protos[0] if protos else None
            elif ext.type == EXT_KEY_SHARE and group is None:
                if len(data) < 2:
                    raise DecodeError("key_share without a group")
                group = (data[0] << 8) | data[1]
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
        hello_retry_request=random == HRR_RANDOM,
    )


def parse_certificate(
    body: bytes, frame: int, tls13: bool, truncated: bool = False
) -> CertificateMessage:
    """Parse a Certificate message: the DER certificates in the order sent.

    ``truncated``: ``body`` is only the first part of the message; the certificates it holds
    whole are returned (the leaf first, when it was reached) and the result says so.
    """
    end = len(body)
    pos = 0
    context = b""
    if tls13:
        pos = vector_end(body, 0, end, 1)
        context = body[1:pos]
    if truncated:
        return _certificate_prefix(body, frame, pos, context, tls13)
    entries_end = vector_end(body, pos, end, 3)
    if entries_end != end:
        raise trailing(end - entries_end, "Certificate")
    chain = []
    pos += 3
    while pos < entries_end:
        stop = vector_end(body, pos, entries_end, 3)
        chain.append(body[pos + 3 : stop])
        pos = vector_end(body, stop, entries_end, 2) if tls13 else stop
    return CertificateMessage(frame=frame, chain=tuple(chain), request_context=context)


def _certificate_prefix(
    body: bytes, frame: int, pos: int, context: bytes, tls13: bool
) -> CertificateMessage:
    end = len(body)
    chain = []
    pos += 3
    while pos + 3 <= end:
        stop = pos + 3 + ((body[pos] << 16) | (body[pos + 1] << 8) | body[pos + 2])
        if stop > end:
            break
        chain.append(body[pos + 3 : stop])
        pos = stop
        if tls13:  # the entry's extensions
            if pos + 2 > end:
                break
            pos += 2 + ((body[pos] << 8) | body[pos + 1])
    return CertificateMessage(frame, tuple(chain), context, truncated=True)


def parse_certificate_request(body: bytes, frame: int, version: int) -> CertificateRequest:
    """Parse a CertificateRequest; the layout depends on the negotiated ``version``."""
    if version >= 0x0304 and version != 0xFFFF:
        end = len(body)
        exts = _extensions(body, vector_end(body, 0, end, 1), end)
        sigalgs: tuple[int, ...] = ()
        for ext in exts:
            if ext.type == EXT_SIGNATURE_ALGORITHMS:
                sigalgs = _u16s(ext.data, 2)
        return CertificateRequest(frame=frame, signature_algorithms=sigalgs)
    r = WireReader(body)
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


def parse_key_exchange(body: bytes, frame: int, kx: str) -> KeyExchange | None:
    """The strength facts of a ServerKeyExchange for key exchange ``kx`` (``DHE``/``ECDHE``);
    None for other key exchanges. Only the parameters are read, not the signature."""
    if kx in ("DHE", "DH"):
        end = vector_end(body, 0, len(body), 2)
        p = body[2:end].lstrip(b"\x00")
        bits = len(p) * 8 - (8 - p[0].bit_length()) if p else 0
        return KeyExchange(frame, "DHE", dh_bits=bits)
    if kx in ("ECDHE", "ECDH"):
        if len(body) < 3:
            raise short_read(3, 0, len(body))
        if body[0] != 3:  # only named_curve is in use (explicit curves are deprecated)
            return KeyExchange(frame, "ECDHE")
        return KeyExchange(frame, "ECDHE", curve=(body[1] << 8) | body[2])
    return None


def parse_certificate_status(body: bytes, frame: int) -> CertificateStatus | None:
    """A CertificateStatus message: the stapled OCSP response (None for other status types)."""
    if not body or body[0] != 1:
        return None
    end = vector_end(body, 1, len(body), 3)
    return CertificateStatus(frame, body[4:end])


def parse_encrypted_extensions_alpn(body: bytes) -> bytes | None:
    """The ALPN protocol a TLS 1.3 EncryptedExtensions message selected (None: none)."""
    for ext in _extensions(body, 0, len(body)):
        if ext.type == EXT_ALPN:
            protos = _alpn(ext.data)
            return protos[0] if protos else None
    return None
