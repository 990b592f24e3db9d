#!/usr/bin/env python3
"""Atheris (libFuzzer) harness: any bytes through analyze_stream, diagnose and both renderers.

Two modes (see fuzz/README.md):

* raw (default): the fuzz input is the capture file itself. Seed it with real captures.
* ``--seed-pcap FILE``: the fuzz input is an edit script applied to the records of a pcap seed
  (overwrite, insert, cut, set a length field to 0/max, duplicate, drop, move a record); the
  file is then rebuilt with consistent record lengths (and gzip-wrapped on request), so that
  the fuzzer spends its time in the TCP, TLS, certificate and diagnosis code, not in the pcap
  header checks.

Any exception escaping the pipeline is a crash: libFuzzer stops and writes the input to
``crash-<sha1>``. Replay one with ``python fuzz/fuzz_analyze.py [--seed-pcap FILE] crash-...``.
"""

from __future__ import annotations

import gzip
import io
import struct
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import atheris  # type: ignore[import-untyped,import-not-found,unused-ignore]

with atheris.instrument_imports(include=["tlspcap"]):
    from tlspcap.analyze import analyze_stream
    from tlspcap.diagnosis.engine import default_trust, diagnose_capture
    from tlspcap.report import jsonfmt, text


def run_pipeline(data: bytes) -> None:
    """The whole pipeline on one input; exceptions propagate (they are the findings)."""
    result = analyze_stream(io.BytesIO(data), "fuzz.pcap")
    verdicts = diagnose_capture(result)
    jsonfmt.render([result], [verdicts])
    report = text.render_capture(result, verdicts)
    bad = {ch for ch in report if ch != "\n" and not (ch.isprintable() or ch == " ")}
    if bad:
        raise AssertionError(f"control characters in the text report: {sorted(bad)!r}")


# ---- seed mode: an edit script over the records of a pcap ------------------------------


class PcapSeed:
    """A little-endian or big-endian pcap split into its header and record payloads."""

    def __init__(self, data: bytes) -> None:
        order = {b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">"}.get(data[:4])
        if order is None:
            order = {b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\x3c\x4d": ">"}.get(data[:4])
        if order is None:
            raise SystemExit("--seed-pcap needs a pcap file (not pcapng, not gzip)")
        self.order = order
        self.header = data[:24]
        self.records: list[tuple[bytes, bytes]] = []  # (timestamps, packet bytes)
        pos = 24
        while pos + 16 <= len(data):
            (caplen,) = struct.unpack_from(order + "I", data, pos + 8)
            self.records.append((data[pos : pos + 8], data[pos + 16 : pos + 16 + caplen]))
            pos += 16 + caplen
        if not self.records:
            raise SystemExit("--seed-pcap: the seed holds no record")

    def build(self, records: list[tuple[bytes, bytes]]) -> bytes:
        """The pcap file of ``records``, with caplen = wire length = len(data)."""
        parts = [self.header]
        for ts, d in records:
            parts.append(ts + struct.pack(self.order + "II", len(d), len(d)) + d)
        return b"".join(parts)


def _edit(fdp: Any, data: bytes) -> bytes:
    """One edit of a record's bytes, chosen by the fuzzer."""
    op: int = fdp.ConsumeIntInRange(0, 4)
    at: int = fdp.ConsumeIntInRange(0, max(0, len(data) - 1))
    if op == 0:  # overwrite
        chunk = bytes(fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 8)))
        return data[:at] + chunk + data[at + len(chunk) :]
    if op == 1:  # insert
        return data[:at] + bytes(fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 64))) + data[at:]
    if op == 2:  # cut here
        return data[:at]
    width: int = fdp.ConsumeIntInRange(1, 3)  # a big-endian length field: 0, max or any
    value = int(fdp.PickValueInList([0, (1 << (8 * width)) - 1, fdp.ConsumeInt(width)]))
    field = (value % (1 << (8 * width))).to_bytes(width, "big")
    if op == 4:
        field = (1 << (8 * width) - 1).to_bytes(width, "big")  # just the high bit
    return data[:at] + field + data[at + width :]


def mutate_seed(seed: PcapSeed, raw: bytes) -> bytes:
    """Apply the edit script encoded in ``raw`` to the seed's records."""
    fdp = atheris.FuzzedDataProvider(raw)
    records = list(seed.records)
    for _ in range(fdp.ConsumeIntInRange(1, 8)):
        if not records:
            break
        i = fdp.ConsumeIntInRange(0, len(records) - 1)
        kind = fdp.ConsumeIntInRange(0, 9)
        if kind <= 5:
            ts, d = records[i]
            records[i] = (ts, _edit(fdp, d))
        elif kind == 6:
            records.insert(i + 1, records[i])
        elif kind == 7:
            del records[i]
        elif kind == 8:
            records.append(records.pop(i))
        else:
            j = fdp.ConsumeIntInRange(0, len(records) - 1)
            records[i], records[j] = records[j], records[i]
    out = seed.build(records)
    if fdp.ConsumeIntInRange(0, 15) == 0:  # sometimes gzip, sometimes cut the file too
        out = gzip.compress(out, compresslevel=1, mtime=0)
    if fdp.ConsumeIntInRange(0, 7) == 0:
        out = out[: fdp.ConsumeIntInRange(0, len(out))]
    return out


def make_target(argv: list[str]) -> tuple[Callable[[bytes], None], list[str]]:
    """The fuzz target for the mode in ``argv``, and the arguments left for libFuzzer."""
    if "--seed-pcap" in argv:
        k = argv.index("--seed-pcap")
        seed = PcapSeed(Path(argv[k + 1]).read_bytes())
        rest = argv[:k] + argv[k + 2 :]
        return (lambda raw: run_pipeline(mutate_seed(seed, raw))), rest
    return run_pipeline, argv


def main() -> None:
    """Run libFuzzer (see fuzz/README.md for the flags)."""
    target, args = make_target(sys.argv)
    default_trust()  # load the trust store once, before fuzzing starts
    atheris.Setup(args, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
