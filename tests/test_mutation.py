"""Mutation campaign (issue 6): damaged captures never crash tlspcap and never lose results.

Every capture of the fixtures and of the shared corpus is cut into its pcap records or pcapng
blocks (by a parser written here, independent of tlspcap's), and deterministic mutants are
built from it (seeded by the file name; no clock is involved):

* ``truncate``: the file cut at record/block boundaries (a clean, shorter capture) and at
  offsets inside the next record or block (a truncated capture);
* ``fields``: a length field set to 0 and to its maximum: pcap caplen, pcapng block length and
  EPB captured length, EPB timestamp, IPv4 total length and header length, IPv6 payload length,
  TCP data offset, TLS record length, handshake length, hello vector and extension lengths,
  certificate list and certificate lengths, DER lengths;
* ``flip``: random bytes overwritten, anywhere or inside TCP payloads;
* ``packets``: a packet duplicated, dropped, swapped with the next, a window reversed, a packet
  moved to the end;
* ``gzip``: the compressed stream of a ``.gz`` capture (or a gzip of a plain one) cut short.

Captures shipped with a key log (``X.keylog`` or ``X.keylog.txt``) are analysed with it, so
that mutated records also go through decryption.

Every mutant goes through ``analyze_stream``, ``diagnose_capture`` and both renderers: any
exception fails the test. A file cut after a connection's last packet keeps that connection's
verdict (outcome and cause, when no other connection reaches its server). Where the damage has
an exact meaning, the results must be exactly those of the undamaged part: a file cut inside
record *k*, a record claiming more than 256 KiB, a pcapng block length that is impossible or
over 16 MiB, and a gzip stream cut short must all report the same connections (endpoints,
verdicts, evidence, handshake facts) as the clean file made of the records before *k*, and a
file cut inside a record is ``truncated``. Each failure message names the file and the mutant,
so that it can be rebuilt with :func:`mutants`.

The budget per capture (see ``BUDGET``) keeps the whole module under a minute on two cores;
``TLSPCAP_MUTATION_SCALE=10`` (an integer factor) runs ten times as many mutants.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import random
import struct
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tlspcap.analyze import CAPTURE_SUFFIXES, CaptureResult, analyze_stream
from tlspcap.diagnosis.engine import Verdict, diagnose_capture
from tlspcap.report import jsonfmt, text

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
FIXTURE_DIRS = (ROOT / "fixtures" / "real", ROOT / "fixtures" / "crafted")

SCALE = max(1, int(os.environ.get("TLSPCAP_MUTATION_SCALE", "1")))
BUDGET = {"truncate": 24, "fields": 40, "flip": 24, "packets": 16, "gzip": 6}
"""Mutants per capture and kind (times SCALE); truncation also cuts inside each record."""
SEED = 20260106

PCAP_MAX_CAPLEN = 262144
PCAPNG_MAX_BLOCK = 16 << 20


def capture_files() -> list[Path]:
    """Every capture of the fixtures and of the corpus (when present), sorted."""
    dirs = [*FIXTURE_DIRS, CORPUS]
    files = [
        p
        for d in dirs
        if d.is_dir()
        for p in d.rglob("*")
        if p.is_file() and p.name.lower().endswith(CAPTURE_SUFFIXES)
    ]
    return sorted(files)


def load_keylog(path: Path) -> Any:
    """The key log shipped beside a capture (a ``KeyLog``), or None."""
    for candidate in (path.with_suffix(".keylog"), path.with_name(path.name + ".keylog.txt")):
        if candidate.is_file():
            from tlspcap.keylog import parse_keylog

            return parse_keylog(candidate.read_text("utf-8", errors="replace"))
    return None


def file_id(path: Path) -> str:
    """Short test id: the path below fixtures/ or the corpus."""
    for base in (ROOT / "fixtures", CORPUS):
        if path.is_relative_to(base):
            return str(path.relative_to(base))
    return path.name


# ---- an independent reader of the container -------------------------------------------


@dataclass(frozen=True, slots=True)
class Unit:
    """One pcap record or pcapng block, as bytes of the file."""

    offset: int
    """Offset of the unit in the (decompressed) file."""
    raw: bytes
    order: str
    """``"<"`` or ``">"``: byte order of its header."""
    data_offset: int | None = None
    """Where the packet bytes start inside ``raw`` (None: not a packet)."""
    linktype: int | None = None
    btype: int | None = None
    """pcapng block type (None for pcap records)."""

    @property
    def is_packet(self) -> bool:
        """The unit carries a packet."""
        return self.data_offset is not None


@dataclass(slots=True)
class Layout:
    """A capture split into its header and its units."""

    fmt: str
    """``pcap`` or ``pcapng``."""
    prefix: bytes
    """The pcap file header (empty for pcapng, whose section header is a unit)."""
    units: list[Unit]
    gz: bool = False

    def build(self, units: Sequence[bytes]) -> bytes:
        """The (uncompressed) file made of ``units``."""
        return self.prefix + b"".join(units)

    def raws(self) -> list[bytes]:
        """The units as bytes."""
        return [u.raw for u in self.units]

    @property
    def packet_indexes(self) -> list[int]:
        """Indexes of the units that carry a packet."""
        return [i for i, u in enumerate(self.units) if u.is_packet]


PCAP_MAGICS = {b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">"}
PCAP_MAGICS |= {b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\x3c\x4d": ">"}


def parse_layout(data: bytes) -> Layout | None:
    """Split a pcap or pcapng file into units; None for anything else."""
    gz = data[:2] == b"\x1f\x8b"
    if gz:
        data = gzip.decompress(data)
    order = PCAP_MAGICS.get(data[:4])
    if order is not None:
        (network,) = struct.unpack_from(order + "I", data, 20)
        units = []
        pos = 24
        while pos + 16 <= len(data):
            (caplen,) = struct.unpack_from(order + "I", data, pos + 8)
            if caplen > PCAP_MAX_CAPLEN or pos + 16 + caplen > len(data):
                break
            raw = data[pos : pos + 16 + caplen]
            units.append(Unit(pos, raw, order, 16, network & 0xFFFF))
            pos += 16 + caplen
        return Layout("pcap", data[:24], units, gz)
    if data[:4] == b"\x0a\x0d\x0d\x0a":
        return Layout("pcapng", b"", _pcapng_units(data), gz)
    return None


def _pcapng_units(data: bytes) -> list[Unit]:
    units = []
    links: list[int] = []
    order = "<"
    pos = 0
    while pos + 12 <= len(data):
        if data[pos : pos + 4] == b"\x0a\x0d\x0d\x0a":
            order = "<" if data[pos + 8 : pos + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            links = []
        btype, blen = struct.unpack_from(order + "II", data, pos)
        if blen < 12 or blen % 4 or pos + blen > len(data):
            break
        raw = data[pos : pos + blen]
        start: int | None = None
        link: int | None = None
        if btype == 1 and blen >= 20:
            links.append(struct.unpack_from(order + "H", raw, 8)[0])
        elif btype in (2, 6) and blen >= 32:
            iid = struct.unpack_from(order + ("H" if btype == 2 else "I"), raw, 8)[0]
            if iid < len(links):
                start, link = 28, links[iid]
        elif btype == 3 and blen >= 16 and links:
            start, link = 12, links[0]
        units.append(Unit(pos, raw, order, start, link, btype))
        pos += blen
    return units


# ---- where the length fields are -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Field:
    """A length (or other numeric) field at ``offset`` inside a unit."""

    unit: int
    offset: int
    """Offset inside the unit's raw bytes."""
    width: int
    """Bytes; 0 means the high nibble of one byte (IPv4 IHL, TCP data offset)."""
    order: str
    name: str
    stops_reading: bool = False
    """The maximal value must end reading before this unit (exact prefix results)."""


def container_fields(layout: Layout) -> list[Field]:
    """pcap record / pcapng block fields."""
    out = []
    for i, u in enumerate(layout.units):
        if layout.fmt == "pcap":
            out.append(Field(i, 8, 4, u.order, "pcap caplen", stops_reading=True))
            out.append(Field(i, 12, 4, u.order, "pcap wire length"))
            out.append(Field(i, 0, 4, u.order, "pcap timestamp seconds"))
            continue
        out.append(Field(i, 4, 4, u.order, "pcapng block length", stops_reading=True))
        out.append(Field(i, len(u.raw) - 4, 4, u.order, "pcapng block trailer length"))
        if u.btype == 6:
            out.append(Field(i, 20, 4, u.order, "pcapng EPB captured length"))
            out.append(Field(i, 24, 4, u.order, "pcapng EPB wire length"))
            out.append(Field(i, 12, 4, u.order, "pcapng EPB timestamp high"))
            out.append(Field(i, 8, 4, u.order, "pcapng EPB interface id"))
        elif u.btype == 1:
            out.append(Field(i, 8, 2, u.order, "pcapng IDB link type"))
            out.append(Field(i, 12, 4, u.order, "pcapng IDB snaplen"))
            if len(u.raw) > 20:
                out.append(Field(i, 18, 2, u.order, "pcapng IDB first option length"))
        elif u.btype == 3:
            out.append(Field(i, 8, 4, u.order, "pcapng SPB wire length"))
        elif u.btype == 0x0A and len(u.raw) >= 20:
            out.append(Field(i, 12, 4, u.order, "pcapng DSB secrets length"))
    return out


def ip_offset(linktype: int, d: bytes) -> int | None:
    """Offset of the IP header in a frame of ``linktype`` (None when there is none)."""
    if linktype == 1:
        off, et = 14, int.from_bytes(d[12:14], "big")
        while et in (0x8100, 0x88A8, 0x9100) and len(d) >= off + 4:
            et, off = int.from_bytes(d[off + 2 : off + 4], "big"), off + 4
        return off if et in (0x0800, 0x86DD) else None
    return {0: 4, 108: 4, 113: 16, 276: 20, 12: 0, 14: 0, 101: 0, 228: 0, 229: 0}.get(linktype)


def packet_fields(layout: Layout) -> list[Field]:
    """IP, TCP and TLS fields found in each packet (TLS only where a record starts a segment)."""
    out: list[Field] = []
    for i, u in enumerate(layout.units):
        if u.data_offset is None or u.linktype is None:
            continue
        base = u.data_offset
        d = u.raw[base:]
        ip = ip_offset(u.linktype, d)
        if ip is None or len(d) < ip + 20:
            continue

        def add(off: int, width: int, name: str, i: int = i, base: int = base) -> None:
            out.append(Field(i, base + off, width, ">", name))

        if d[ip] >> 4 == 4:
            ihl = (d[ip] & 15) * 4
            add(ip + 2, 2, "IPv4 total length")
            add(ip, 0, "IPv4 header length")
            if d[ip + 9] != 6:
                continue
            tcp, end = ip + ihl, min(len(d), ip + int.from_bytes(d[ip + 2 : ip + 4], "big"))
        elif d[ip] >> 4 == 6 and len(d) >= ip + 40:
            add(ip + 4, 2, "IPv6 payload length")
            if d[ip + 6] != 6:
                continue
            tcp, end = ip + 40, min(len(d), ip + 40 + int.from_bytes(d[ip + 4 : ip + 6], "big"))
        else:
            continue
        if end < tcp + 20:
            continue
        add(tcp + 12, 0, "TCP data offset")
        payload = tcp + (d[tcp + 12] >> 4) * 4
        _tls_fields(d, payload, end, add)
    return out


def _tls_fields(d: bytes, p: int, end: int, add: Callable[[int, int, str], None]) -> None:
    """Record, handshake, hello and certificate length fields of records starting at ``p``."""
    while p + 5 <= end and 20 <= d[p] <= 24 and d[p + 1] == 3:
        add(p + 3, 2, "TLS record length")
        rec_end = min(end, p + 5 + int.from_bytes(d[p + 3 : p + 5], "big"))
        q = p + 5
        while d[p] == 22 and q + 4 <= rec_end:
            add(q + 1, 3, "handshake length")
            msg_end = min(rec_end, q + 4 + int.from_bytes(d[q + 1 : q + 4], "big"))
            if d[q] in (1, 2):
                _hello_fields(d, q + 4, msg_end, d[q] == 1, add)
            elif d[q] == 11:
                _certificate_fields(d, q + 4, msg_end, add)
            q = msg_end
        p += 5 + int.from_bytes(d[p + 3 : p + 5], "big")


def _hello_fields(
    d: bytes, r: int, end: int, client: bool, add: Callable[[int, int, str], None]
) -> None:
    r += 34
    if r >= end:
        return
    add(r, 1, "hello session id length")
    r += 1 + d[r]
    if client:
        if r + 2 > end:
            return
        add(r, 2, "cipher suites length")
        r += 2 + int.from_bytes(d[r : r + 2], "big")
        if r >= end:
            return
        add(r, 1, "compression methods length")
        r += 1 + d[r]
    else:
        r += 3
    if r + 2 > end:
        return
    add(r, 2, "extensions length")
    r += 2
    while r + 4 <= end:
        ext, n = int.from_bytes(d[r : r + 2], "big"), int.from_bytes(d[r + 2 : r + 4], "big")
        add(r + 2, 2, f"extension {ext} length")
        if ext in (0, 16) and r + 6 <= end:
            add(r + 4, 2, f"extension {ext} list length")
            if ext == 0 and r + 9 <= end:
                add(r + 7, 2, "SNI host name length")
            elif ext == 16 and r + 7 <= end:
                add(r + 6, 1, "ALPN protocol length")
        r += 4 + n


def _certificate_fields(d: bytes, r: int, end: int, add: Callable[[int, int, str], None]) -> None:
    if r + 3 > end:
        return
    add(r, 3, "certificate list length")
    r += 3
    while r + 3 <= end:
        n = int.from_bytes(d[r : r + 3], "big")
        add(r, 3, "certificate length")
        if r + 7 <= end and d[r + 3] == 0x30 and d[r + 4] == 0x82:
            add(r + 5, 2, "certificate DER length")
            if r + 11 <= end and d[r + 7] == 0x30 and d[r + 8] == 0x82:
                add(r + 9, 2, "tbsCertificate DER length")
        r += 3 + n


def set_field(raw: bytes, f: Field, maximal: bool) -> bytes:
    """``raw`` with field ``f`` set to 0 or to its maximum."""
    b = bytearray(raw)
    if f.width == 0:
        b[f.offset] = (0xF0 if maximal else 0x00) | (b[f.offset] & 0x0F)
    else:
        b[f.offset : f.offset + f.width] = (b"\xff" if maximal else b"\x00") * f.width
    return bytes(b)


# ---- mutants ---------------------------------------------------------------------------


@dataclass(slots=True)
class Mutant:
    """A damaged capture and what its analysis must give."""

    name: str
    data: bytes
    prefix_units: int | None = None
    """The results must equal those of the clean file of the first this-many units."""
    truncated: bool = False
    """The result must say ``truncated`` (or carry an error, for a cut gzip header)."""
    prefix_data: bytes | None = None
    """Instead of ``prefix_units``: the exact reference file."""
    ended_before: int | None = None
    """Connections of the whole file that ended at or before this frame keep their verdict."""


def _pick(rng: random.Random, items: Sequence[Any], k: int) -> list[Any]:
    """Up to ``k`` items: all of them when there are few, else an evenly spread sample."""
    if len(items) <= k:
        return list(items)
    return sorted(rng.sample(list(items), k), key=list(items).index)


def _gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=1, mtime=0)


def mutants(layout: Layout, kind: str, rng: random.Random) -> Iterator[Mutant]:
    """The mutants of one kind, built deterministically from ``rng``."""
    raws = layout.raws()
    n = len(raws)
    budget = BUDGET[kind] * SCALE
    wrap: Callable[[bytes], bytes] = _gz if layout.gz else (lambda b: b)
    if kind == "truncate":
        cuts = _pick(rng, range(n + 1), budget)
        for k in cuts:
            frames = sum(1 for u in layout.units[:k] if u.btype in (None, 2, 3, 6))
            yield Mutant(
                f"cut after unit {k}",
                wrap(layout.build(raws[:k])),
                prefix_units=k,
                ended_before=frames,
            )
            if k < n:
                inside = rng.randrange(1, len(raws[k]))
                head = layout.build(raws[:k]) + raws[k][:inside]
                yield Mutant(
                    f"cut inside unit {k} at {inside}", wrap(head), prefix_units=k, truncated=True
                )
    elif kind == "fields":
        fields = container_fields(layout) + packet_fields(layout)
        for f in _pick(rng, fields, budget):
            for maximal in (False, True):
                units = list(raws)
                units[f.unit] = set_field(raws[f.unit], f, maximal)
                value = "max" if maximal else "0"
                exact = f.unit if maximal and f.stops_reading else None
                if f.stops_reading and not maximal and layout.fmt == "pcapng":
                    exact = f.unit  # a block length of 0 is impossible: reading stops too
                yield Mutant(
                    f"unit {f.unit}: {f.name} at +{f.offset} set to {value}",
                    wrap(layout.build(units)),
                    prefix_units=exact,
                )
    elif kind == "flip":
        flat = layout.build(raws)
        payload_spans = [
            (layout.units[i].offset + (layout.units[i].data_offset or 0), len(raws[i]))
            for i in layout.packet_indexes
        ]
        for j in range(budget):
            b = bytearray(flat)
            anywhere = j % 2 == 0 or not payload_spans
            for _ in range(rng.choice((1, 1, 2, 4, 8))):
                if anywhere:
                    pos = rng.randrange(len(b))
                else:
                    start, size = rng.choice(payload_spans)
                    pos = min(len(b) - 1, start + rng.randrange(size))
                b[pos] = rng.randrange(256)
            where = "anywhere" if anywhere else "in packets"
            yield Mutant(f"flip #{j} {where} (seeded)", wrap(bytes(b)))
    elif kind == "packets":
        idx = layout.packet_indexes
        if not idx:
            return
        for j in range(budget):
            units = list(raws)
            op = ("duplicate", "drop", "swap", "reverse", "to_end")[j % 5]
            i = rng.choice(idx)
            k = idx.index(i)
            if op == "duplicate":
                units.insert(i + 1, raws[i])
            elif op == "drop":
                del units[i]
            elif op == "swap" and k + 1 < len(idx):
                a, b2 = idx[k], idx[k + 1]
                units[a], units[b2] = units[b2], units[a]
            elif op == "reverse":
                window = idx[k : k + rng.randrange(3, 7)]
                for a, b2 in zip(window, reversed(window), strict=True):
                    units[a] = raws[b2]
            elif op == "to_end":
                units.append(units.pop(i))
            yield Mutant(f"{op} packet unit {i}", wrap(layout.build(units)))
    elif kind == "gzip":
        plain = layout.build(raws)
        packed = _gz(plain)
        for cut in _pick(rng, range(1, len(packed)), budget):
            head = packed[:cut]
            got = zlib.decompressobj(31).decompress(head)
            whole = sum(1 for u in layout.units if u.offset + len(u.raw) <= len(got))
            yield Mutant(
                f"gzip stream cut at {cut} of {len(packed)} ({len(got)} bytes inflate)",
                head,
                truncated=True,
                prefix_data=layout.build(raws[:whole]) if len(got) >= len(layout.prefix) else b"",
            )


# ---- running one capture through the whole pipeline ------------------------------------


@dataclass(slots=True)
class Outcome:
    """What the pipeline gave for one input."""

    result: CaptureResult
    verdicts: list[Verdict]
    doc: dict[str, Any]
    text: str
    connections: list[Any] = field(default_factory=list)


def run_pipeline(data: bytes, name: str = "mutant", keylog: Any = None) -> Outcome:
    """analyze_stream + diagnose + both renderers; exceptions propagate."""
    stream = io.BytesIO(data)
    result = analyze_stream(stream, name, keylog) if keylog else analyze_stream(stream, name)
    verdicts = diagnose_capture(result)
    doc = json.loads(jsonfmt.render([result], [verdicts]))["captures"][0]
    rendered = text.render_capture(result, verdicts)
    return Outcome(result, verdicts, doc, rendered, doc["connections"])


def check_rendering(out: Outcome) -> str | None:
    """The text report carries no control character but newlines; JSON matches the result."""
    bad = [ch for ch in out.text if ch != "\n" and not (ch.isprintable() or ch == " ")]
    if bad:
        return f"control characters in the text report: {sorted(set(bad))!r}"
    if len(out.connections) != len(out.result.connections):
        return "the JSON document lost connections"
    if out.doc["truncated"] != out.result.truncated:
        return "the JSON document disagrees on truncated"
    return None


def check_mutant(
    m: Mutant,
    reference: Callable[[int], Outcome],
    keylog: Any = None,
    baseline: Sequence[Any] = (),
) -> str | None:
    """None when the mutant behaves; else why not (exceptions propagate to the caller)."""
    out = run_pipeline(m.data, keylog=keylog)
    problem = check_rendering(out)
    if problem:
        return problem
    if m.ended_before is not None:
        problem = kept_verdicts(out.connections, baseline, m.ended_before)
        if problem:
            return problem
    if m.truncated and not (out.result.truncated or out.result.error):
        return "a truncated file is not marked truncated"
    if m.prefix_units is not None or m.prefix_data is not None:
        if m.prefix_data is not None:
            ref = run_pipeline(m.prefix_data, keylog=keylog)
        else:
            assert m.prefix_units is not None
            ref = reference(m.prefix_units)
        if out.result.packets != ref.result.packets:
            return f"{out.result.packets} packets read, the intact part has {ref.result.packets}"
        if out.connections != ref.connections:
            return "connections/verdicts differ from those of the intact part: " + _diff(
                out.connections, ref.connections
            )
    return None


def kept_verdicts(got: Sequence[Any], baseline: Sequence[Any], frames: int) -> str | None:
    """Connections of the whole file that ended within the first ``frames`` frames are still
    there with the same outcome and cause.

    Only connections to a server that no other connection of the file reaches are compared:
    what a server did in a later connection is evidence the diagnosis may use.
    """
    servers = Counter(c["server"] for c in baseline)
    found = {(c["client"], c["server"], c["first_frame"]): c for c in got}
    for c in baseline:
        if c["last_frame"] > frames or servers[c["server"]] > 1:
            continue
        where = f"{c['client']} -> {c['server']} (frames {c['first_frame']}-{c['last_frame']})"
        g = found.get((c["client"], c["server"], c["first_frame"]))
        if g is None:
            return f"connection {where} lost"
        if (g["outcome"], g["cause"]) != (c["outcome"], c["cause"]):
            return (
                f"connection {where} was {c['outcome']}/{c['cause']}, "
                f"is {g['outcome']}/{g['cause']}"
            )
    return None


def _diff(got: list[Any], want: list[Any]) -> str:
    if len(got) != len(want):
        return f"{len(got)} connection(s) instead of {len(want)}"
    for i, (a, b) in enumerate(zip(got, want, strict=True)):
        for key in b:
            if a.get(key) != b.get(key):
                return f"connection {i} {key}: {a.get(key)!r:.200} != {b.get(key)!r:.200}"
    return "?"


KINDS = ("truncate", "fields", "flip", "packets", "gzip")
FILES = capture_files()


def campaign(path: Path, kind: str) -> tuple[int, list[str]]:
    """Run every mutant of one kind for one capture; return the count and the failures."""
    data = path.read_bytes()
    layout = parse_layout(data)
    assert layout is not None, f"{path}: not a capture this test can split"
    assert layout.units, f"{path}: no record found"
    rng = random.Random(f"{SEED}:{file_id(path)}:{kind}")
    wrap = _gz if layout.gz else (lambda b: b)
    keylog = load_keylog(path)
    baseline = run_pipeline(wrap(layout.build(layout.raws())), keylog=keylog).connections
    refs: dict[int, Outcome] = {}

    def reference(k: int) -> Outcome:
        if k not in refs:
            refs[k] = run_pipeline(wrap(layout.build(layout.raws()[:k])), keylog=keylog)
        return refs[k]

    failures: list[str] = []
    count = 0
    for m in mutants(layout, kind, rng):
        count += 1
        try:
            problem = check_mutant(m, reference, keylog, baseline)
        except Exception as exc:  # the point of the campaign: report, keep going
            problem = f"raised {type(exc).__name__}: {exc}"
        if problem:
            failures.append(f"{file_id(path)} [{m.name}]: {problem}")
    return count, failures


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("path", FILES, ids=[file_id(p) for p in FILES])
def test_mutants(path: Path, kind: str) -> None:
    """No mutant of the capture crashes the pipeline or loses the intact part's results."""
    count, failures = campaign(path, kind)
    assert not failures, f"{len(failures)} of {count} mutants failed:\n" + "\n".join(failures[:10])


def test_unmutated_baseline() -> None:
    """Every capture splits into units and runs clean (the campaign's starting point)."""
    assert len(FILES) >= 100 or not CORPUS.is_dir()
    for path in FILES:
        layout = parse_layout(path.read_bytes())
        assert layout is not None and layout.units, path
        out = run_pipeline(path.read_bytes(), str(path), load_keylog(path))
        assert out.result.error is None, (path, out.result.error)
        assert check_rendering(out) is None, path
