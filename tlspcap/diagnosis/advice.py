"""Plain-words explanations and fixes for each cause (what a senior engineer would write)."""

from __future__ import annotations

FIXES: dict[str, str] = {
    "protocol_mismatch": (
        "Make both sides share a TLS version: upgrade the server to TLS 1.2 or later "
        "(preferred), or configure the client to offer a version the server speaks."
    ),
    "cipher_mismatch": (
        "Make the client offer a cipher suite the server accepts (or widen the server's "
        "cipher list). Old Java clients need the unlimited-strength crypto policy for AES-256 "
        "suites."
    ),
    "sni_missing": (
        "Enable SNI in the client (send server_name with the host name); for Java clients check "
        "that jsse.enableSNIExtension is not false and that the URL uses a host name, not an IP."
    ),
    "unrecognized_name": (
        "Connect with a host name the server is configured for, or add that name to the "
        "server's virtual hosts."
    ),
    "hostname_mismatch": (
        "Install a certificate whose SAN covers the requested name, or connect using a name the "
        "certificate has."
    ),
    "incomplete_chain": (
        "Configure the server to send the full chain: leaf first, then each intermediate "
        "(check with `openssl verify -CAfile root.pem -untrusted intermediate.pem leaf.pem`)."
    ),
    "expired_certificate": "Renew the certificate and install the new certificate and chain.",
    "not_yet_valid_certificate": (
        "Install a certificate that is already valid (or fix the clock of the host that issued "
        "or checks it)."
    ),
    "unknown_ca": (
        "Add the issuing CA to the rejecting side's trust store, or use a certificate from a CA "
        "it already trusts."
    ),
    "client_certificate_required": (
        "Configure the client to present a certificate the server trusts (or relax the server's "
        "client-certificate requirement)."
    ),
    "connection_reset": (
        "Look at the logs of the side that reset the connection: a firewall, a load balancer or "
        "the TLS stack dropped it without an alert."
    ),
    "no_server_response": (
        "Check that the server process is listening and healthy, and that nothing in between "
        "drops the ClientHello (firewall, proxy, MTU)."
    ),
    "non_tls_peer": (
        "The port does not speak TLS: use the TLS port (or https vs http), or enable TLS on the "
        "server for this port."
    ),
    "unknown": (
        "The capture does not single out a cause: look at the logs of the side that aborted "
        "around the frames given as evidence."
    ),
}

MUST_ACT: dict[str, str] = {
    "protocol_mismatch": "server",
    "cipher_mismatch": "client",
    "sni_missing": "client",
    "unrecognized_name": "client",
    "hostname_mismatch": "server",
    "incomplete_chain": "server",
    "expired_certificate": "server",
    "not_yet_valid_certificate": "server",
    "unknown_ca": "client",
    "client_certificate_required": "client",
    "connection_reset": "server",
    "no_server_response": "server",
    "non_tls_peer": "client",
}

HEADLINES: dict[str, str] = {
    "protocol_mismatch": "no TLS version both sides accept",
    "cipher_mismatch": "no cipher suite both sides accept",
    "sni_missing": "the server needs SNI and the ClientHello has none",
    "unrecognized_name": "the server does not serve the name the client asked for",
    "hostname_mismatch": "the certificate does not cover the requested name",
    "incomplete_chain": "the server's chain lacks an intermediate certificate",
    "expired_certificate": "a certificate in the chain was expired at capture time",
    "not_yet_valid_certificate": "a certificate in the chain was not yet valid at capture time",
    "unknown_ca": "the chain ends in a CA the peer does not trust",
    "client_certificate_required": "the server wanted a client certificate it did not get or "
    "did not accept",
    "connection_reset": "the connection was reset during the handshake",
    "no_server_response": "the ClientHello got no answer",
    "non_tls_peer": "the peer does not speak TLS",
    "unknown": "the capture does not single out a cause",
}
