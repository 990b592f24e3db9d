//! The extension module `tlspcap_engine` (filled in by the bindings work).
