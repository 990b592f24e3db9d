"""TLS record layer, handshake reassembly, message codecs and registries."""
