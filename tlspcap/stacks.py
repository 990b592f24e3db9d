"""Naming the likely client stack from its JA4 fingerprint (a small, documented table).

The table is built from ClientHellos whose stack is known: the real-stack fixtures (their
MANIFEST.json names each client, OpenJDK 17 among them) and the public corpus (Zeek's OpenJDK
25 and Chrome 125 traces). It matches on JA4's cipher hash (``b``, the sorted cipher list: a
stack's default configuration) and, where stacks share a cipher list, on the extension hash
(``c``). A client run with a restricted cipher list has another fingerprint and stays unnamed.
A match is a hint for the support engineer ("looks like a Java client"), never evidence.
"""

from __future__ import annotations

from dataclasses import dataclass

from tlspcap.tls.fingerprint import ja4_hashes
from tlspcap.tls.messages import ClientHello


@dataclass(frozen=True, slots=True)
class StackHint:
    """A stack a fingerprint points to, and where to look in it."""

    name: str
    hint: str = ""
    """A configuration knob worth checking when a handshake fails."""


JAVA = StackHint(
    "Java (OpenJDK JSSE)",
    "jsse.enableSNIExtension, jdk.tls.client.protocols, the truststore (cacerts)",
)

# (JA4 cipher hash, JA4 extension hash or None for any) -> stack; the first match wins.
KNOWN: tuple[tuple[str, str | None, StackHint], ...] = (
    ("e8f1e7e78f70", "b26ce05bbdd6", StackHint("curl (OpenSSL 3.x)", "curl -v shows the error")),
    ("d943125447b4", "a44c6288192a", StackHint("curl (OpenSSL 3.x), TLS 1.2 only")),
    ("e8f1e7e78f70", None, StackHint("OpenSSL 3.x client (openssl s_client or an app using it)")),
    ("85036bcba153", None, StackHint("Python ssl (OpenSSL 3.x)", "ssl.SSLContext settings")),
    ("723694b0fccc", None, StackHint("GnuTLS client", "the GnuTLS priority string")),
    ("1d947a95fc68", None, JAVA),  # OpenJDK 25 (Zeek's trace)
    ("db35923f8641", None, JAVA),  # OpenJDK 17 (fixtures/real/java_no_sni.pcap)
    ("8daaf6152771", None, StackHint("Chrome or another Chromium-based browser (BoringSSL)")),
)


def likely_stack(ch: ClientHello) -> StackHint | None:
    """The stack a ClientHello's JA4 points to, when the table knows it (never for a hello the
    capture cut: its lists may stop short)."""
    if ch.truncated:
        return None
    cipher_hash, extension_hash = ja4_hashes(ch)
    for b, c, stack in KNOWN:
        if cipher_hash == b and (c is None or extension_hash == c):
            return stack
    return None
