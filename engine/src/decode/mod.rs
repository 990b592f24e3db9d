//! Packet decoding: the port of `tlspcap.capture.decode`, `layers`, `linktypes`, `tunnels`,
//! `fragments`, `icmp` and `tally`. OWNER: helper "decode" fills this in; the public API below
//! is fixed (the bindings in `py.rs` use it).

use crate::model::{Anomaly, Decoded, RawPacket};

/// One per capture (IP fragments are reassembled across packets); the twin of `PacketDecoder`.
pub struct PacketDecoder {
    _private: (),
}

impl PacketDecoder {
    pub fn new() -> Self {
        todo!()
    }

    /// Decode one packet of a supported link type, appending what it yields to `out` (at most
    /// one segment; ICMP errors first, in the order Python's `on_icmp` hears them). Never
    /// panics on any input.
    pub fn decode(&mut self, _packet: &RawPacket<'_>, _out: &mut Vec<Decoded>) {
        todo!()
    }

    /// End of capture (`PacketDecoder.finish`).
    pub fn finish(&mut self) {
        todo!()
    }

    /// The file anomalies, exactly as `PacketDecoder.anomalies()` returns them.
    pub fn anomalies(&self) -> Vec<Anomaly> {
        todo!()
    }
}

impl Default for PacketDecoder {
    fn default() -> Self {
        Self::new()
    }
}
