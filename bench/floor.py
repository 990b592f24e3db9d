"""A floor for CPython: read a classic pcap, decode Ethernet/IPv4/TCP to segments, nothing else.

Usage: ``python bench/floor.py bench/out/bench-1GB.pcap``. One fused loop (record headers and the
common Ethernet/IPv4/TCP case in one ``struct`` call each, a ``TcpSegment`` per TCP packet, no
tracker, no TLS): what any pure-Python analyzer pays before it looks at a single connection.
Prints packets, TCP segments and the CPU seconds taken. Little-endian microsecond pcap only.
"""

from __future__ import annotations

import struct
import sys
import time
from pathlib import Path

from tlspcap.capture.model import TcpSegment

_ETH_IPV4_TCP = struct.Struct("!HBxHHHxBxx4s4sHHIIBB").unpack_from
_RECORD = struct.Struct("<IIII").unpack_from


def floor(path: Path) -> tuple[int, int, float]:
    """(packets, TCP segments over untagged IPv4, CPU seconds) for one pass over ``path``."""
    start = time.process_time()
    frame = segments = 0
    with path.open("rb", buffering=0) as fh:
        if fh.read(4) != b"\xd4\xc3\xb2\xa1":
            raise SystemExit(f"{path}: not a little-endian microsecond pcap")
        fh.read(20)
        buf, pos = b"", 0
        while chunk := fh.read(1 << 20):
            buf, pos = buf[pos:] + chunk, 0
            end = len(buf)
            while end - pos >= 16:
                sec, usec, caplen, _wirelen = _RECORD(buf, pos)
                stop = pos + 16 + caplen
                if stop > end:
                    break
                frame += 1
                d = pos + 16
                if caplen >= 54:
                    (
                        et,
                        vihl,
                        total,
                        _id,
                        frag,
                        proto,
                        src,
                        dst,
                        sport,
                        dport,
                        seq,
                        ack,
                        doff,
                        fl,
                    ) = _ETH_IPV4_TCP(buf, d + 12)
                    if et == 0x0800 and vihl == 0x45 and proto == 6 and not frag & 0x3FFF:
                        first = d + 34 + ((doff >> 4) << 2)
                        payload = buf[first : d + 14 + total]
                        TcpSegment(
                            frame, sec + usec / 1e6, src, sport, dst, dport, seq, ack, fl, payload
                        )
                        segments += 1
                pos = stop
    return frame, segments, time.process_time() - start


if __name__ == "__main__":
    packets, segs, cpu = floor(Path(sys.argv[1]))
    print(f"{packets} packets, {segs} TCP segments, {cpu:.2f} s CPU")
