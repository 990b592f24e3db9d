"""tlspcap: explain, connection by connection, why TLS handshakes in a packet capture failed."""

__version__ = "0.1.0"
