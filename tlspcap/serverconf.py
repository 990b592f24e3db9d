"""Server-side knowledge a user can supply: OpenSSL cipher strings, protocol lists, nginx config.

Given, these turn the diagnosis's inferences into certainties ("the server accepts none of the
offered suites" instead of "the server chose other suites for other clients").
"""

from __future__ import annotations

import re
import ssl

from tlspcap.errors import TlspcapError

PROTOCOL_NAMES = {
    "sslv2": 0x0002,
    "sslv3": 0x0300,
    "tlsv1": 0x0301,
    "tlsv1.0": 0x0301,
    "tlsv1.1": 0x0302,
    "tlsv1.2": 0x0303,
    "tlsv1.3": 0x0304,
}
TLS13_SUITES = frozenset({0x1301, 0x1302, 0x1303, 0x1304, 0x1305})


def expand_cipher_string(spec: str) -> frozenset[int]:
    """Cipher suite codes an OpenSSL cipher string selects (with the local OpenSSL).

    The TLS 1.3 suites OpenSSL enables by default are left out: a cipher string configures
    TLS <= 1.2 only (``ssl_ciphers`` in nginx, ``-cipher`` in s_server).
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.set_ciphers(spec)
    except ssl.SSLError as exc:
        raise TlspcapError(f"OpenSSL does not accept the cipher string {spec!r}: {exc}") from None
    codes = {int(c["id"]) & 0xFFFF for c in ctx.get_ciphers()}
    return frozenset(codes - TLS13_SUITES)


def parse_protocols(spec: str) -> frozenset[int]:
    """``TLSv1.2,TLSv1.3`` (commas or spaces) as version codes."""
    out = set()
    for word in re.split(r"[\s,]+", spec.strip()):
        if not word:
            continue
        code = PROTOCOL_NAMES.get(word.lower())
        if code is None:
            known = ", ".join(sorted({k for k in PROTOCOL_NAMES if "." in k or k == "sslv3"}))
            raise TlspcapError(f"unknown protocol {word!r} (known: {known})")
        out.add(code)
    return frozenset(out)


_DIRECTIVE = re.compile(r"(?:^|[;{}\s])(ssl_protocols|ssl_ciphers)\s+([^;{}]+);")


def parse_nginx_conf(text: str) -> tuple[frozenset[int] | None, frozenset[int] | None]:
    """``(protocols, ciphers)`` from nginx ``ssl_protocols`` / ``ssl_ciphers`` directives.

    Every occurrence is merged (a config may set them per server block); None where the
    directive is absent (nginx's defaults then apply and are not guessed here).
    """
    text = re.sub(r"#.*", "", text)
    protocols: set[int] = set()
    ciphers: set[int] = set()
    seen_p = seen_c = False
    for name, value in _DIRECTIVE.findall(text):
        value = value.strip().strip("'\"")
        if name == "ssl_protocols":
            seen_p = True
            protocols |= parse_protocols(value)
        else:
            seen_c = True
            ciphers |= expand_cipher_string(value)
    return (frozenset(protocols) if seen_p else None, frozenset(ciphers) if seen_c else None)
