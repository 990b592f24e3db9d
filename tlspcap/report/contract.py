"""Contract-shaped facts of one connection (the dicts the JSON document is made of).

Field names here are the public contract of ../shared/CAUSES.md; other formats render from these
same dicts so that every report says the same thing.
"""

from __future__ import annotations

import functools
from typing import Any

from tlspcap.certs import cert_info, iso_utc
from tlspcap.facts.model import ConnFacts
from tlspcap.tls import fingerprint
from tlspcap.tls.messages import Alert, ClientHello, ServerHello
from tlspcap.tls.registry import alert_level_name, alert_name

Json = dict[str, Any]


def alpn_text(value: bytes) -> str:
    """An ALPN protocol id as text (bytes that are not UTF-8 are escaped, not lost)."""
    return value.decode("utf-8", "backslashreplace")


def client_hello_facts(ch: ClientHello) -> Json:
    """The contract's ``client_hellos[]`` entry."""
    ja3_text = fingerprint.ja3_string(ch)
    return {
        "frame": ch.frame,
        "legacy_version": ch.legacy_version,
        "supported_versions": list(ch.supported_versions),
        "cipher_suites": list(ch.cipher_suites),
        "extensions": list(ch.extension_types),
        "sni": ch.sni,
        "alpn": [alpn_text(a) for a in ch.alpn],
        "sslv2_format": ch.sslv2,
        "truncated": ch.truncated,
        # A hello the capture cut has no fingerprint: its lists may stop short.
        "ja3": None if ch.truncated else fingerprint.ja3_of_string(ja3_text),
        "ja3_string": None if ch.truncated else ja3_text,
        "ja4": None if ch.truncated else fingerprint.ja4(ch),
    }


def server_hello_facts(sh: ServerHello) -> Json:
    """The contract's ``server_hellos[]`` entry."""
    return {
        "frame": sh.frame,
        "version": sh.version,
        "legacy_version": sh.legacy_version,
        "cipher_suite": sh.cipher_suite,
        "extensions": list(sh.extension_types),
        "hello_retry_request": sh.hello_retry_request,
        "alpn": alpn_text(sh.alpn) if sh.alpn is not None else None,
        "ja3s": fingerprint.ja3s(sh),
    }


def alert_facts(alert: Alert) -> Json:
    """The contract's ``alerts[]`` entry."""
    return {
        "frame": alert.frame,
        "sender": alert.sender,
        "level": alert_level_name(alert.level) if alert.level is not None else None,
        "description": alert_name(alert.description) if alert.description is not None else None,
        "encrypted": alert.encrypted,
    }


def certificate_facts(session: ConnFacts, side: str) -> list[Json]:
    """The chain a side sent, as ``certificates[]`` entries (every Certificate message)."""
    chain_owner = session.server if side == "server" else session.client
    out = []
    for msg in chain_owner.certificates:
        for der in msg.chain:
            entry = {"frame": msg.frame, **_certificate_entry(der)}
            entry["san"] = list(entry["san"])
            out.append(entry)
    return out


@functools.lru_cache(maxsize=4096)
def _certificate_entry(der: bytes) -> Json:
    """A ``certificates[]`` entry but its frame, by DER (a server sends the same certificate to
    every client). Callers copy it: the cached dict is never handed out."""
    info = cert_info(der, 0)
    return {
        "subject": info.subject,
        "issuer": info.issuer,
        "san": info.san,
        "not_before": iso_utc(info.not_before),
        "not_after": iso_utc(info.not_after),
        "sha256": info.sha256,
        "error": info.error,
    }


def endpoints(conn: ConnFacts) -> tuple[str, str]:
    """``(client, server)`` as ``ip:port`` strings."""
    return conn.client_endpoint, conn.server_endpoint
