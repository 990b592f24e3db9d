"""Server knowledge given by the user: cipher strings, protocol lists, nginx configs, and how
they turn the diagnosis's inferences into certainties."""

from __future__ import annotations

from pathlib import Path

import pytest

from tlspcap.analyze import analyze_file
from tlspcap.diagnosis.engine import Options, diagnose_capture
from tlspcap.errors import TlspcapError
from tlspcap.serverconf import expand_cipher_string, parse_nginx_conf, parse_protocols

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
HANDSHAKE_FAILURE = CORPUS / "zeek" / "tls-1.2-handshake-failure.pcap"
needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason="needs ../shared/corpus")


def test_expand_cipher_string_uses_local_openssl() -> None:
    assert expand_cipher_string("AES256-SHA") == frozenset({0x0035})
    high = expand_cipher_string("ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384")
    assert high == frozenset({0xC02F, 0xC030})
    # a cipher string configures TLS <= 1.2 only: no TLS 1.3 suite leaks in
    assert not expand_cipher_string("HIGH") & {0x1301, 0x1302, 0x1303}


def test_bad_cipher_string_is_a_clear_error() -> None:
    with pytest.raises(TlspcapError, match="does not accept"):
        expand_cipher_string("NO-SUCH-CIPHER")


def test_parse_protocols() -> None:
    assert parse_protocols("TLSv1.2,TLSv1.3") == frozenset({0x0303, 0x0304})
    assert parse_protocols(" tlsv1  TLSv1.1 ") == frozenset({0x0301, 0x0302})
    with pytest.raises(TlspcapError, match="unknown protocol"):
        parse_protocols("TLSv9")


def test_parse_nginx_conf_merges_blocks_and_ignores_comments() -> None:
    conf = """
    # ssl_protocols SSLv3;
    server { listen 443 ssl; ssl_protocols TLSv1.2;
      ssl_ciphers 'AES256-SHA'; }
    server { ssl_protocols TLSv1.3; }
    """
    protocols, ciphers = parse_nginx_conf(conf)
    assert protocols == frozenset({0x0303, 0x0304})
    assert ciphers == frozenset({0x0035})
    assert parse_nginx_conf("events {}") == (None, None)


@needs_corpus
def test_configured_ciphers_turn_ambiguity_into_cipher_mismatch() -> None:
    """A bare handshake_failure to a hello without SNI: SNI first, unless the ciphers prove it."""
    result = analyze_file(HANDSHAKE_FAILURE)
    (guess,) = diagnose_capture(result, Options())
    assert guess.cause == "sni_missing"
    assert any(f.code == "cipher_mismatch" for f in guess.secondary)
    (proof,) = diagnose_capture(result, Options(server_ciphers=expand_cipher_string("AES256-SHA")))
    assert proof.cause == "cipher_mismatch"
    assert any("configured list" in e.text for e in proof.evidence)


@needs_corpus
def test_configured_protocols_prove_a_protocol_mismatch() -> None:
    result = analyze_file(HANDSHAKE_FAILURE)  # the client offers TLS 1.2 only
    (v,) = diagnose_capture(result, Options(server_protocols=frozenset({0x0304})))
    assert v.cause == "protocol_mismatch"
    assert v.must_act == "client"  # the client offers less than the server requires
