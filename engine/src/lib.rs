//! tlspcap's compiled packet stage.
//!
//! [`reader`] reads pcap, pcapng and snoop files into raw packet records, [`decode`] turns them
//! into TCP segments and ICMP errors (link layers, tunnels, IP fragments, snap length). Both are
//! line-by-line ports of `tlspcap.capture`: the pure-Python path is the reference, and the
//! differential tests (`tests/test_engine.py`) hold the engine to byte-identical results.
//! With the `python` feature, `py` exposes them as the extension module `tlspcap_engine`.

pub mod decode;
pub mod linktypes;
pub mod model;
pub mod reader;

#[cfg(feature = "python")]
mod py;
