"""The diagnosis options a user gives (files and strings) turned into worker settings.

The command line reads the option files from paths and ``tlspcap serve`` from uploads; both hand
their contents here, so the same options give the same :class:`~tlspcap.batch.Settings` (and so
the same verdicts) whichever way they came in.
"""

from __future__ import annotations

from dataclasses import dataclass

from tlspcap.batch import Settings
from tlspcap.diagnosis.certcheck import load_pem_roots
from tlspcap.errors import TlspcapError
from tlspcap.keylog import parse_keylog
from tlspcap.serverconf import expand_cipher_string, parse_nginx_conf, parse_protocols


@dataclass(frozen=True, slots=True)
class OptionFile:
    """The content of an option's file, and how to name it in an error message."""

    label: str
    """E.g. ``--ca-bundle roots.pem`` on the command line, ``ca_bundle`` for an upload."""
    data: bytes


def build_settings(
    ca_bundle: OptionFile | None = None,
    host: str | None = None,
    server_ciphers: str | None = None,
    server_protocols: str | None = None,
    nginx_conf: OptionFile | None = None,
    keylog: OptionFile | None = None,
) -> Settings:
    """Check the options and turn the server knowledge into worker settings.

    Raises :class:`TlspcapError` (or ``ValueError``) with a message naming the option when one
    is unusable: a CA bundle without a certificate, a key log without a secret, an unknown
    protocol, a cipher string OpenSSL refuses.
    """
    ca_pem = None
    if ca_bundle is not None:
        ca_pem = ca_bundle.data
        try:
            roots = load_pem_roots(ca_pem)
        except ValueError:  # cryptography's words for text that is not PEM
            roots = []
        if not roots:
            raise TlspcapError(f"{ca_bundle.label}: no PEM certificate in it")
    protocols: frozenset[int] | None = None
    ciphers: frozenset[int] | None = None
    if nginx_conf is not None:
        protocols, ciphers = parse_nginx_conf(nginx_conf.data.decode("utf-8", errors="replace"))
    if server_ciphers is not None:
        ciphers = expand_cipher_string(server_ciphers)
    if server_protocols is not None:
        protocols = parse_protocols(server_protocols)
    kl = None
    if keylog is not None:
        kl = parse_keylog(keylog.data.decode("utf-8", errors="replace"))
        if not len(kl):
            raise TlspcapError(f"{keylog.label}: no TLS secret in it ({kl.skipped} lines skipped)")
    return Settings(
        ca_pem=ca_pem,
        host=host,
        server_ciphers=ciphers,
        server_protocols=protocols,
        keylog=kl,
    )
