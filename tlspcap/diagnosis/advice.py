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
    "alpn_mismatch": (
        "Make the client offer an application protocol the server accepts (HTTP/2 for gRPC), "
        "or enable that protocol on the server (ALPN list, e.g. nginx `http2 on`)."
    ),
    "weak_certificate": (
        "Reissue the certificate with a key and signature current clients accept: RSA 2048 "
        "bits or more (or ECDSA P-256), signed with SHA-256 or better, down the whole chain."
    ),
    "certificate_usage": (
        "Reissue the server certificate for TLS server use: extendedKeyUsage serverAuth, a "
        "keyUsage that allows digitalSignature (and keyEncipherment for RSA key exchange), and "
        "no CA flag on the leaf."
    ),
    "revoked_certificate": (
        "The certificate was revoked: install a new certificate and chain (and stop the server "
        "stapling the old OCSP response)."
    ),
    "legacy_renegotiation": (
        "Patch or upgrade the server's TLS stack so it supports secure renegotiation (RFC "
        "5746); as a stopgap, allow legacy servers on the client (OpenSSL: Options = "
        "UnsafeLegacyServerConnect, SSL_OP_LEGACY_SERVER_CONNECT)."
    ),
    "weak_key_exchange": (
        "Configure the server with a finite-field DH group of 2048 bits or more (or prefer "
        "ECDHE with X25519 or P-256), or stop offering DHE suites."
    ),
    "tls_interception": (
        "A TLS-inspecting proxy answered in the server's place: install the proxy's root CA "
        "in the client's trust store, or have the destination exempted from inspection."
    ),
    "middlebox_reset": (
        "A device on the path (firewall, IPS, proxy) cut the connection: have the network team "
        "allow the destination (SNI, address, category) on it; the evidence shows which "
        "packets did not come from the server."
    ),
    "large_client_hello": (
        "Upgrade the server or the device in front of it so it reads a ClientHello spread over "
        "several TCP segments; meanwhile make the client's hello smaller (Chrome policy "
        "PostQuantumKeyAgreementEnabled=false, Go GODEBUG=tlsmlkem=0, OpenSSL 3.5 Groups "
        "without X25519MLKEM768)."
    ),
    "path_mtu_blackhole": (
        "Full-size packets are lost on the path and the ICMP 'fragmentation needed' that would "
        "say so does not get through: clamp the TCP MSS on the router (iptables TCPMSS "
        "--clamp-mss-to-pmtu) or let ICMP type 3 code 4 / ICMPv6 type 2 pass."
    ),
    "unknown": (
        "The capture does not single out a cause: look at the logs of the side that aborted "
        "around the frames given as evidence."
    ),
}

ACTORS = {
    "client": "client",
    "server": "server",
    "network": "network team (a device on the path)",
}
"""Who ``must_act`` names, in words."""

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
    "alpn_mismatch": "client",
    "weak_certificate": "server",
    "certificate_usage": "server",
    "revoked_certificate": "server",
    "legacy_renegotiation": "server",
    "weak_key_exchange": "server",
    "tls_interception": "client",
    "middlebox_reset": "network",
    "large_client_hello": "server",
    "path_mtu_blackhole": "network",
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
    "alpn_mismatch": "no application protocol both sides accept",
    "weak_certificate": "the client rejected a certificate key or signature it deems too weak",
    "certificate_usage": "the certificate is not allowed for this use",
    "revoked_certificate": "the certificate was revoked",
    "legacy_renegotiation": "the client refuses a server without secure renegotiation",
    "weak_key_exchange": "the client rejected the server's key-exchange parameters",
    "tls_interception": "a TLS-inspecting middlebox answered in the server's place",
    "middlebox_reset": "a device on the path, not the server, cut the connection",
    "large_client_hello": "the server or a device in front of it fails on a ClientHello "
    "spread over several TCP segments",
    "path_mtu_blackhole": "full-size segments are lost on the path",
    "unknown": "the capture does not single out a cause",
}
