"""Generate a large, realistic benchmark capture from the real fixtures, with its truth.

Usage: ``python bench/gen.py --size 1GB --format pcap --out bench/out/bench-1GB.pcap``

Every TLS connection in the output replays a real handshake: each fixture of ``fixtures/real``
is a *template*, read with tlspcap's own reader and decoder; an *instance* replays all of a
template's TCP segments (payloads, flags, relative timing) at fresh private addresses
(``10.T.x.y`` servers and ``10.(128+T).x.y`` clients for template ``T``, ``fd00::/8`` for the
IPv6 template; server ports become 443, except 587 for STARTTLS), with random initial sequence
numbers. On top of that:

* connections whose handshake was established carry bulk application-data records (lognormal
  sizes, mostly server to client) before their close, acknowledged every second segment;
* payload segments are retransmitted (1 %) and swapped with their successor (0.5 %);
* DNS queries/answers over UDP and plain HTTP/1.1 connections are mixed in as noise.

The truth goes to a sidecar ``<out>.truth.json``: TLS connections per outcome and per cause.
Each template's verdicts are tlspcap's diagnosis (with ``--ca-bundle``) of a clean replay of
one instance of every template (the *calibration* capture, built in memory): the same context
as the big file, since a capture-wide certificate pool can supply a missing intermediate. The
verdicts of each fixture analysed on its own are recorded too, and templates whose verdict
depends on that context are listed under ``context_sensitive``.

The output is streamed (bounded memory whatever ``--size``): instances are merged in time
order from lazy per-instance packet generators. Same arguments and fixtures, same bytes. The
output is reused when its sidecar says it was made from the same arguments and fixtures.
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import io
import json
import math
import random
import struct
import sys
import time
from collections import Counter
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from tlspcap.analyze import CaptureResult, analyze_file, analyze_stream
from tlspcap.capture.decode import segment_decoder
from tlspcap.capture.model import ACK, FIN, PSH, RST, SYN
from tlspcap.capture.reader import CaptureReader
from tlspcap.diagnosis.certcheck import TrustStore, load_pem_roots
from tlspcap.diagnosis.engine import Options, default_trust, diagnose_capture

GENERATOR_VERSION = 2
"""Bump when the output for the same arguments changes (invalidates cached files)."""

REPO = Path(__file__).resolve().parent.parent
DEFAULT_FIXTURES = REPO / "fixtures" / "real"
DEFAULT_CA = DEFAULT_FIXTURES / "certs" / "root.pem"

MSS = 1448
LINK_RATE = 125_000_000  # bytes/s a bulk transfer runs at (1 Gbit/s)
MEAN_SPAWN_US = 40_000  # mean time between TLS instances
BULK_MEDIAN = 20_000  # lognormal bulk size per established connection (server->client)
BULK_SIGMA = 1.5
BULK_MAX = 16 << 20
DNS_PER_INSTANCE = 7.0  # mean DNS query/answer pairs per TLS instance
HTTP_PER_INSTANCE = 0.35  # mean plain HTTP connections per TLS instance
P_RETRANSMIT = 0.01
P_REORDER = 0.005
POOL_SIZE = 1 << 20

Endpoint = tuple[bytes, int]
Pkt = tuple[int, int, bool, bytes]
"""One generated packet: (time in microseconds, flow id, movable, Ethernet frame). A movable
packet carries payload without SYN/FIN/RST and may be retransmitted or reordered."""

_ETH4 = bytes.fromhex("0200000000020200000000010800")
_ETH6 = bytes.fromhex("02000000000202000000000186dd")
_IP4 = struct.Struct("!BBHHHBBH4s4s")
_IP4_WORDS = struct.Struct("!10H")
_IP6 = struct.Struct("!IHBB16s16s")
_TCP = struct.Struct("!HHIIBBHHH")
_UDP = struct.Struct("!HHHH")
_M32 = 0xFFFFFFFF


# ---- frames -----------------------------------------------------------------------------------
class FrameBuilder:
    """Builds Ethernet/IP frames; keeps the IPv4 identification counter."""

    def __init__(self) -> None:
        self._ipid = 0

    def ip(self, src: bytes, dst: bytes, proto: int, body: bytes) -> bytes:
        """An Ethernet frame carrying ``body`` in IPv4 (4-byte addresses) or IPv6."""
        if len(src) == 16:
            return _ETH6 + _IP6.pack(0x60000000, len(body), proto, 64, src, dst) + body
        self._ipid = (self._ipid + 1) & 0xFFFF
        hdr = _IP4.pack(0x45, 0, 20 + len(body), self._ipid, 0x4000, 64, proto, 0, src, dst)
        s = sum(_IP4_WORDS.unpack(hdr))
        s = (s & 0xFFFF) + (s >> 16)
        s = (s & 0xFFFF) + (s >> 16)
        return _ETH4 + hdr[:10] + struct.pack("!H", ~s & 0xFFFF) + hdr[12:] + body

    def tcp(
        self, src: Endpoint, dst: Endpoint, seq: int, ack: int, flags: int, payload: bytes
    ) -> bytes:
        """A TCP segment (no options, checksum left 0 as with offloading NICs)."""
        hdr = _TCP.pack(src[1], dst[1], seq & _M32, ack & _M32, 0x50, flags, 65535, 0, 0)
        return self.ip(src[0], dst[0], 6, hdr + payload)

    def udp(self, src: Endpoint, dst: Endpoint, payload: bytes) -> bytes:
        """A UDP datagram (checksum 0: none, allowed over IPv4)."""
        return self.ip(src[0], dst[0], 17, _UDP.pack(src[1], dst[1], 8 + len(payload), 0) + payload)


# ---- writers ----------------------------------------------------------------------------------
class CaptureWriter:
    """Streams packets to a pcap (microseconds) or pcapng file of Ethernet frames."""

    def __init__(self, fh: BinaryIO, fmt: str) -> None:
        self._fh = fh
        self._ng = fmt == "pcapng"
        self.bytes = 0
        """Bytes written so far."""
        self.packets = 0
        """Packets written so far."""
        if self._ng:
            shb = struct.pack("<IIIHHq", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1) + struct.pack(
                "<I", 28
            )
            idb = struct.pack("<IIHHII", 1, 20, 1, 0, 262144, 20)
            self._out(shb + idb)
        else:
            self._out(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))

    def _out(self, data: bytes) -> None:
        self._fh.write(data)
        self.bytes += len(data)

    def write(self, ts_us: int, frame: bytes) -> None:
        """Append one packet captured at ``ts_us`` microseconds since the epoch."""
        n = len(frame)
        self.packets += 1
        if self._ng:
            pad = -n & 3
            blen = 32 + n + pad
            head = struct.pack("<IIIIIII", 6, blen, 0, ts_us >> 32, ts_us & _M32, n, n)
            self._out(head + frame + b"\0" * pad + struct.pack("<I", blen))
        else:
            sec, usec = divmod(ts_us, 1_000_000)
            self._out(struct.pack("<IIII", sec, usec, n, n) + frame)


# ---- templates --------------------------------------------------------------------------------
@dataclass(slots=True)
class TplPacket:
    """One TCP segment of a fixture, relative to its template."""

    dt: int
    """Microseconds since the template's first packet."""
    conn: int
    direction: int
    """0: client to server, 1: server to client."""
    seq: int
    ack: int
    flags: int
    payload: bytes


@dataclass(slots=True)
class TplConn:
    """One TCP connection of a fixture."""

    client: Endpoint
    server: Endpoint
    server_slot: int
    isolated: tuple[str, str | None] | None
    """Verdict when the fixture is analysed alone (None: not a TLS connection)."""
    bulk_at: int = -1
    """Index of the template packet before which bulk data goes (-1: no bulk)."""
    record_version: bytes = b"\x03\x03"


@dataclass(slots=True)
class Template:
    """A fixture file ready to be replayed."""

    index: int
    name: str
    v6: bool
    servers: list[Endpoint]
    new_ports: list[int]
    conns: list[TplConn]
    packets: list[TplPacket]
    weight: float
    start_us: int
    """Capture time of the fixture's first packet (µs)."""
    verdicts: list[tuple[str, str | None]] = field(default_factory=list)
    """Calibrated verdicts of its TLS connections, in the order tlspcap reports them."""
    bulk_before: dict[int, list[int]] = field(default_factory=dict)


def _verdict_counts(result: CaptureResult, opts: Options) -> list[tuple[str, str | None, str]]:
    """(outcome, cause, server endpoint) of every TLS connection of an analysed capture."""
    out = []
    for conn, v in zip(result.connections, diagnose_capture(result, opts), strict=True):
        out.append((v.outcome, v.cause, conn.server_endpoint))
    return out


def load_template(index: int, path: Path, opts: Options) -> Template:
    """Read a fixture: its TCP segments, connections, servers and isolated verdicts."""
    result = analyze_file(path)
    if result.error:
        raise SystemExit(f"gen: {path}: {result.error}")
    verdicts = diagnose_capture(result, opts)
    servers_of: dict[frozenset[Endpoint], tuple[Endpoint, tuple[str, str | None]]] = {}
    for conn, v in zip(result.connections, verdicts, strict=True):
        key = frozenset(conn.endpoints)
        servers_of[key] = (conn.endpoints[conn.server_dir], (v.outcome, v.cause))
    segs = []
    with path.open("rb") as fh:
        reader = CaptureReader(fh)
        for p in reader.packets():
            seg = segment_decoder(p.linktype)(p)
            if seg is not None:
                segs.append(seg)
    if not segs:
        raise SystemExit(f"gen: {path}: no TCP segments")
    t0 = segs[0].ts
    conns: list[TplConn] = []
    conn_of: dict[frozenset[Endpoint], int] = {}
    servers: list[Endpoint] = []
    packets: list[TplPacket] = []
    for seg in segs:
        a, b = (seg.src, seg.sport), (seg.dst, seg.dport)
        key = frozenset((a, b))
        ci = conn_of.get(key)
        if ci is None:
            if key in servers_of:
                server, isolated = servers_of[key]
            else:  # not TLS: the SYN's receiver, else the lower port, is the server
                syn_only = seg.flags & SYN and not seg.flags & ACK
                server = b if syn_only or (not seg.flags & SYN and b[1] < a[1]) else a
                isolated = None
            client = a if server == b else b
            if server not in servers:
                servers.append(server)
            ci = conn_of[key] = len(conns)
            conns.append(TplConn(client, server, servers.index(server), isolated))
        c = conns[ci]
        direction = 0 if a == c.client else 1
        dt = round((seg.ts - t0) * 1_000_000)
        packets.append(TplPacket(dt, ci, direction, seg.seq, seg.ack, seg.flags, seg.payload))
    clients = {c.client for c in conns}
    if len({port for _, port in clients}) != len(clients) or clients & set(servers):
        raise SystemExit(f"gen: {path}: client endpoints cannot be remapped to one address")
    _place_bulk(conns, packets)
    established = sum(1 for c in conns if c.isolated and c.isolated[0] == "established")
    tls = sum(1 for c in conns if c.isolated)
    weight = 1.0 + 2.0 * (established / tls if tls else 0.0)
    t = Template(
        index,
        path.name,
        len(servers[0][0]) == 16,
        servers,
        [587 if port in (25, 587) else 443 for _, port in servers],
        conns,
        packets,
        weight,
        round(t0 * 1_000_000),
    )
    for ci, c in enumerate(conns):
        if c.bulk_at >= 0:
            t.bulk_before.setdefault(c.bulk_at, []).append(ci)
    return t


def _place_bulk(conns: list[TplConn], packets: list[TplPacket]) -> None:
    """Choose where each established connection's bulk data goes: before its first FIN or
    RST, or before a clear alert once both sides have sent application-data records."""
    for ci, c in enumerate(conns):
        if not c.isolated or c.isolated[0] != "established":
            continue
        app_seen = [False, False]
        last = -1
        at = -1
        for i, p in enumerate(packets):
            if p.conn != ci:
                continue
            last = i
            if p.flags & (FIN | RST) or (p.payload[:2] == b"\x15\x03" and all(app_seen)):
                at = i
                break
            if p.payload[:2] == b"\x17\x03":
                app_seen[p.direction] = True
                c.record_version = p.payload[1:3]
        c.bulk_at = at if at >= 0 else last + 1


def fixtures_digest(paths: list[Path], ca: Path) -> str:
    """SHA-256 over the fixture files and the CA bundle (the cache key's input)."""
    h = hashlib.sha256()
    for p in [*paths, ca]:
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


# ---- instances --------------------------------------------------------------------------------
def _v4(a: int, b: int, k: int) -> bytes:
    return bytes((a, b, (k >> 8) & 0xFF, k & 0xFF))


def _v6(group: int, k: int) -> bytes:
    return b"\xfd\x00" + b"\0" * 4 + group.to_bytes(2, "big") + b"\0" * 4 + k.to_bytes(4, "big")


def instance_addresses(tpl: Template, n: int) -> tuple[bytes, list[bytes]]:
    """Client address and server addresses of instance ``n`` of a template."""
    base = n * len(tpl.servers) + 1
    if base + len(tpl.servers) > 0xFFFF:
        raise SystemExit(f"gen: too many instances of {tpl.name} for its address block")
    if tpl.v6:
        return _v6(128 + tpl.index, n + 1), [
            _v6(tpl.index, base + s) for s in range(len(tpl.servers))
        ]
    return _v4(10, 128 + tpl.index, n + 1), [
        _v4(10, tpl.index, base + s) for s in range(len(tpl.servers))
    ]


class Pool:
    """Deterministic pseudo-random bytes standing in for ciphertext and bodies."""

    def __init__(self, rng: random.Random) -> None:
        self._data = rng.randbytes(POOL_SIZE + 65536)
        self._rng = rng

    def take(self, n: int) -> bytes:
        """``n`` bytes (``n`` <= 65536) from a random place of the pool."""
        off = self._rng.randrange(POOL_SIZE)
        return self._data[off : off + n]


@dataclass(slots=True)
class Stats:
    """What the generator put in the file, beyond the verdicts."""

    instances: Counter[str] = field(default_factory=Counter)
    bulk_bytes: int = 0
    bulk_records: int = 0
    bulk_connections: int = 0
    retransmissions: int = 0
    reordered: int = 0
    dns_packets: int = 0
    http_connections: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters, for the sidecar."""
        return {
            "bulk_connections": self.bulk_connections,
            "bulk_records": self.bulk_records,
            "bulk_bytes": self.bulk_bytes,
            "retransmissions": self.retransmissions,
            "reordered": self.reordered,
            "dns_packets": self.dns_packets,
            "http_connections": self.http_connections,
        }


def tls_instance(
    tpl: Template,
    n: int,
    start: int,
    rng: random.Random,
    pool: Pool,
    fb: FrameBuilder,
    stats: Stats,
    bulk: bool = True,
) -> Iterator[Pkt]:
    """Replay a template's packets at instance ``n``'s addresses from ``start`` (µs)."""
    cip, sips = instance_addresses(tpl, n)
    ends: list[tuple[Endpoint, Endpoint]] = []
    for c in tpl.conns:
        ends.append(((cip, c.client[1]), (sips[c.server_slot], tpl.new_ports[c.server_slot])))
    delta = [(rng.getrandbits(32), rng.getrandbits(32)) for _ in tpl.conns]
    shift = [[0, 0] for _ in tpl.conns]
    nxt = [[-1, -1] for _ in tpl.conns]  # next sequence number by direction (-1: unknown)
    extra = 0
    npk = len(tpl.packets)
    for i in range(npk + 1):
        if bulk and i in tpl.bulk_before:
            t = start + extra + (tpl.packets[i].dt if i < npk else tpl.packets[-1].dt)
            for ci in tpl.bulk_before[i]:
                cli, srv = ends[ci]
                size = min(BULK_MAX, int(rng.lognormvariate(math.log(BULK_MEDIAN), BULK_SIGMA)))
                ver = tpl.conns[ci].record_version
                before = list(nxt[ci])
                end = yield from bulk_transfer(
                    cli, srv, nxt[ci], t, size, ver, 2 * ci, rng, pool, fb, stats
                )
                # The bulk moved both sequence spaces on; later segments follow it.
                shift[ci] = [(nxt[ci][d] - before[d]) & _M32 for d in (0, 1)]
                extra += end - t
                t = end
        if i == npk:
            break
        p = tpl.packets[i]
        ci, d = p.conn, p.direction
        sh = shift[ci]
        seq = (p.seq + delta[ci][d] + sh[d]) & _M32
        ack = (p.ack + delta[ci][1 - d] + sh[1 - d]) & _M32 if p.flags & ACK else p.ack
        src, dst = ends[ci] if d == 0 else ends[ci][::-1]
        frame = fb.tcp(src, dst, seq, ack, p.flags, p.payload)
        length = len(p.payload) + (1 if p.flags & SYN else 0) + (1 if p.flags & FIN else 0)
        end_seq = (seq + length) & _M32
        if nxt[ci][d] < 0 or (length and ((end_seq - nxt[ci][d]) & _M32) < 0x80000000):
            nxt[ci][d] = end_seq
        if nxt[ci][1 - d] < 0 and p.flags & ACK:
            nxt[ci][1 - d] = ack
        movable = bool(p.payload) and not p.flags & (SYN | FIN | RST)
        yield (start + extra + p.dt, 2 * ci + d, movable, frame)


def bulk_transfer(
    cli: Endpoint,
    srv: Endpoint,
    nxt: list[int],
    t: int,
    size: int,
    version: bytes,
    flow: int,
    rng: random.Random,
    pool: Pool,
    fb: FrameBuilder,
    stats: Stats,
) -> Generator[Pkt, None, int]:
    """Request/response exchanges of application-data records totalling ``size`` bytes from
    the server; ``nxt`` holds both directions' next sequence numbers and is advanced."""
    stats.bulk_connections += 1
    left = max(size, 1)
    while left > 0:
        t += rng.randrange(50, 2000)
        req = [rng.randrange(60, 1400)]
        t = yield from _send(cli, srv, nxt, 0, req, t, version, flow, pool, fb, stats)
        t += rng.randrange(100, 3000)
        chunk = min(left, int(rng.expovariate(1 / 200_000)) + 200)
        left -= chunk
        sizes = [16384] * (chunk // 16384) + ([chunk % 16384] if chunk % 16384 else [])
        t = yield from _send(srv, cli, nxt, 1, sizes, t, version, flow + 1, pool, fb, stats)
    return t


def _send(
    src: Endpoint,
    dst: Endpoint,
    nxt: list[int],
    d: int,
    plain_sizes: list[int],
    t: int,
    version: bytes,
    flow: int,
    pool: Pool,
    fb: FrameBuilder,
    stats: Stats,
) -> Generator[Pkt, None, int]:
    """Send records (AEAD-sized: plaintext + 24) in MSS segments; the peer ACKs every other."""
    buf = bytearray()
    for n in plain_sizes:
        body = n + 24
        buf += b"\x17" + version + body.to_bytes(2, "big") + pool.take(body)
        stats.bulk_records += 1
        stats.bulk_bytes += body + 5
    view = bytes(buf)
    step = max(1, MSS * 1_000_000 // LINK_RATE)
    for k, off in enumerate(range(0, len(view), MSS)):
        seg = view[off : off + MSS]
        yield (t, flow, True, fb.tcp(src, dst, nxt[d], nxt[1 - d], ACK | PSH, seg))
        nxt[d] = (nxt[d] + len(seg)) & _M32
        t += step
        if k % 2 or off + MSS >= len(view):
            yield (t, flow ^ 1, False, fb.tcp(dst, src, nxt[1 - d], nxt[d], ACK, b""))
            t += 1
    return t


def perturb(stream: Iterator[Pkt], rng: random.Random, stats: Stats) -> Iterator[tuple[int, bytes]]:
    """Retransmit movable packets (the copy follows the next packet) and swap a movable packet
    with the next one of the same flow; times stay in order."""
    prev: Pkt | None = None
    dup: bytes | None = None
    for cur in stream:
        if prev is None:
            prev = cur
            continue
        if prev[2] and cur[2] and prev[1] == cur[1] and rng.random() < P_REORDER:
            stats.reordered += 1
            yield prev[0], cur[3]
            if dup is not None:
                yield prev[0], dup
                dup = None
            yield cur[0], prev[3]
            prev = None
            continue
        yield prev[0], prev[3]
        if dup is not None:
            yield prev[0], dup
            dup = None
        if prev[2] and rng.random() < P_RETRANSMIT:
            stats.retransmissions += 1
            dup = prev[3]
        prev = cur
    if prev is not None:
        yield prev[0], prev[3]
        if dup is not None:
            yield prev[0], dup


# ---- noise ------------------------------------------------------------------------------------
def dns_pair(
    n: int, start: int, rng: random.Random, fb: FrameBuilder, stats: Stats
) -> Iterator[Pkt]:
    """A DNS A query and its answer."""
    cli = (_v4(10, 240, n % 60000 + 1), rng.randrange(1024, 65535))
    srv = (bytes((10, 253, 0, 53)), 53)
    qid = rng.getrandbits(16)
    name = (
        b"".join(
            bytes((len(p),)) + p
            for p in (f"host{rng.randrange(100000)}".encode(), b"example", b"test")
        )
        + b"\0"
    )
    q = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + name + b"\0\x01\0\x01"
    a = (
        struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0)
        + name
        + b"\0\x01\0\x01"
        + b"\xc0\x0c\0\x01\0\x01"
        + struct.pack("!IH", 300, 4)
        + _v4(10, 250, rng.randrange(1, 60000))
    )
    stats.dns_packets += 2
    yield (start, -1, False, fb.udp(cli, srv, q))
    yield (start + rng.randrange(200, 30000), -1, False, fb.udp(srv, cli, a))


_WORDS = (
    b"lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt "
    b'ut labore et dolore magna aliqua <p> <div class="row"> </div> </p> <a href="/x"> '
)


def http_conn(
    n: int, start: int, rng: random.Random, fb: FrameBuilder, stats: Stats
) -> Iterator[Pkt]:
    """A plain HTTP/1.1 GET with a text response, opened and closed properly."""
    stats.http_connections += 1
    cli = (_v4(10, 241, n % 60000 + 1), rng.randrange(1024, 65535))
    srv = (_v4(10, 250, rng.randrange(1, 60000)), 80)
    c, s = rng.getrandbits(32), rng.getrandbits(32)
    t = start
    rtt = rng.randrange(100, 5000)
    yield (t, 0, False, fb.tcp(cli, srv, c, 0, SYN, b""))
    t += rtt
    yield (t, 1, False, fb.tcp(srv, cli, s, c + 1, SYN | ACK, b""))
    t += rtt
    c += 1
    s += 1
    yield (t, 0, False, fb.tcp(cli, srv, c, s, ACK, b""))
    req = f"GET /page/{rng.randrange(10**6)} HTTP/1.1\r\nHost: www.example.test\r\n\r\n".encode()
    yield (t + 5, 0, True, fb.tcp(cli, srv, c, s, ACK | PSH, req))
    c += len(req)
    t += rtt
    size = int(rng.expovariate(1 / 12_000)) + 100
    body = (_WORDS * (size // len(_WORDS) + 1))[:size]
    resp = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n" % size
    data = resp + body
    nxt = [c, s]
    t = yield from _plain(srv, cli, nxt, 1, data, t, fb)
    c, s = nxt
    yield (t, 1, False, fb.tcp(srv, cli, s, c, FIN | ACK, b""))
    t += rtt
    yield (t, 0, False, fb.tcp(cli, srv, c, s + 1, FIN | ACK, b""))
    t += rtt
    yield (t, 1, False, fb.tcp(srv, cli, s + 1, c + 1, ACK, b""))


def _plain(
    src: Endpoint, dst: Endpoint, nxt: list[int], d: int, data: bytes, t: int, fb: FrameBuilder
) -> Generator[Pkt, None, int]:
    """Send ``data`` in MSS segments, the peer ACKing every other one."""
    for k, off in enumerate(range(0, len(data), MSS)):
        seg = data[off : off + MSS]
        yield (t, d, True, fb.tcp(src, dst, nxt[d], nxt[1 - d], ACK | PSH, seg))
        nxt[d] = (nxt[d] + len(seg)) & _M32
        t += 12
        if k % 2 or off + MSS >= len(data):
            yield (t, 1 - d, False, fb.tcp(dst, src, nxt[1 - d], nxt[d], ACK, b""))
            t += 1
    return t


# ---- the whole file ---------------------------------------------------------------------------
def _merge_until(
    heap: list[tuple[int, int, bytes, Iterator[tuple[int, bytes]]]],
    limit: int | None,
    writer: CaptureWriter,
) -> None:
    """Write queued packets with time <= ``limit`` (all when None), in time order."""
    while heap and (limit is None or heap[0][0] <= limit):
        ts, tie, frame, it = heap[0]
        writer.write(ts, frame)
        nxt = next(it, None)
        if nxt is None:
            heapq.heappop(heap)
        else:
            heapq.heapreplace(heap, (nxt[0], tie, nxt[1], it))


def generate(
    templates: list[Template], size: int, out: BinaryIO, fmt: str, seed: int, t0: int
) -> tuple[CaptureWriter, Stats]:
    """Write a capture of about ``size`` bytes; return the writer (counts) and the stats."""
    rng = random.Random(seed)
    pool = Pool(rng)
    fb = FrameBuilder()
    stats = Stats()
    writer = CaptureWriter(out, fmt)
    heap: list[tuple[int, int, bytes, Iterator[tuple[int, bytes]]]] = []
    counter = 0
    used: Counter[int] = Counter()
    weights = [t.weight for t in templates]
    t = t0
    spawned = 0
    noise = 0

    def add(stream: Iterator[Pkt]) -> None:
        nonlocal counter
        it = perturb(stream, rng, stats)
        first = next(it, None)
        if first is not None:
            counter += 1
            heapq.heappush(heap, (first[0], counter, first[1], it))

    while writer.bytes < size:
        # Every template once first, so that even a tiny file has the calibration's context.
        tpl = templates[spawned] if spawned < len(templates) else rng.choices(templates, weights)[0]
        spawned += 1
        n = used[tpl.index]
        used[tpl.index] += 1
        stats.instances[tpl.name] += 1
        add(tls_instance(tpl, n, t, rng, pool, fb, stats))
        for _ in range(_poisson(rng, DNS_PER_INSTANCE)):
            noise += 1
            add(dns_pair(noise, t + rng.randrange(MEAN_SPAWN_US), rng, fb, stats))
        for _ in range(_poisson(rng, HTTP_PER_INSTANCE)):
            noise += 1
            add(http_conn(noise, t + rng.randrange(MEAN_SPAWN_US), rng, fb, stats))
        t += int(rng.expovariate(1 / MEAN_SPAWN_US)) + 1
        _merge_until(heap, t, writer)
    _merge_until(heap, None, writer)
    return writer, stats


def _poisson(rng: random.Random, lam: float) -> int:
    """A Poisson-distributed count (Knuth's method, small means)."""
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def calibrate(templates: list[Template], opts: Options, seed: int, t0: int) -> None:
    """Fill each template's verdicts from a clean replay of one instance of every template."""
    rng = random.Random(seed ^ 0x5EED)
    pool = Pool(rng)
    fb = FrameBuilder()
    stats = Stats()
    buf = io.BytesIO()
    writer = CaptureWriter(buf, "pcap")
    t = t0
    for tpl in templates:
        for ts, _flow, _mov, frame in tls_instance(tpl, 0, t, rng, pool, fb, stats, bulk=False):
            writer.write(ts, frame)
            t = max(t, ts)
        t += 1_000_000
    buf.seek(0)
    result = analyze_stream(buf, "calibration")
    for tpl in templates:
        tpl.verdicts = []
    # Group the calibration's verdicts by template (one entry per TLS connection).
    for outcome, cause, server in _verdict_counts(result, opts):
        owner = template_of(server, templates)
        if owner is not None:
            owner.verdicts.append((outcome, cause))


def template_of(server: str, templates: list[Template]) -> Template | None:
    """The template a generated server endpoint (``10.T.x.y:port`` or IPv6) belongs to."""
    return {t.index: t for t in templates}.get(template_index(server))


def template_index(server: str) -> int:
    """The template number encoded in a generated server address (0 if none)."""
    if server.startswith("[fd00:"):
        import ipaddress

        addr = ipaddress.IPv6Address(server[1 : server.index("]")]).packed
        return int.from_bytes(addr[6:8], "big")
    parts = server.split(".")
    if len(parts) == 4 and parts[0] == "10":
        return int(parts[1])
    return 0


def load_options(ca: Path) -> Options:
    """Diagnosis options as ``tlspcap analyze --ca-bundle ca`` sets them."""
    return Options(trust=TrustStore(load_pem_roots(ca.read_bytes()) + default_trust().roots))


def parse_size(text: str) -> int:
    """``100MB``, ``1GB``, ``512KB``, ``1.5GB`` or bytes (decimal units)."""
    t = text.strip().upper().removesuffix("B")
    for suffix, mult in (("K", 10**3), ("M", 10**6), ("G", 10**9)):
        if t.endswith(suffix):
            return int(float(t[:-1]) * mult)
    return int(t)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--size", default="100MB", help="approximate file size (100MB, 1GB, ...)")
    ap.add_argument("--format", choices=("pcap", "pcapng"), default="pcap")
    ap.add_argument("--out", type=Path, help="output file (default bench/out/bench-SIZE.EXT)")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--fixtures", type=Path, default=DEFAULT_FIXTURES)
    ap.add_argument("--ca-bundle", type=Path, default=DEFAULT_CA)
    ap.add_argument("--force", action="store_true", help="regenerate even if cached")
    args = ap.parse_args(argv)
    size = parse_size(args.size)
    out: Path = args.out or REPO / "bench" / "out" / f"bench-{args.size}.{args.format}"
    sidecar = out.with_name(out.name + ".truth.json")
    paths = sorted(p for p in args.fixtures.iterdir() if p.suffix in (".pcap", ".pcapng"))
    opts = load_options(args.ca_bundle)
    templates = [load_template(i + 1, p, opts) for i, p in enumerate(paths)]
    if len(templates) > 110:
        raise SystemExit("gen: too many templates for the address plan")
    t0 = min(t.start_us for t in templates)
    calibrate(templates, opts, args.seed, t0)
    # The bytes depend on the fixtures, the arguments and the isolated verdicts (which
    # connections get bulk data); the truth also on the calibrated ones, recomputed each time.
    isolated = [[list(c.isolated) for c in t.conns if c.isolated] for t in templates]
    key = {
        "version": GENERATOR_VERSION,
        "size": size,
        "format": args.format,
        "seed": args.seed,
        "fixtures": fixtures_digest(paths, args.ca_bundle),
        "isolated": hashlib.sha256(json.dumps(isolated).encode()).hexdigest(),
    }
    if not args.force and out.exists() and sidecar.exists():
        try:
            old = json.loads(sidecar.read_text())
        except ValueError:
            old = {}
        if old.get("key") == key and old.get("bytes") == out.stat().st_size:
            truth = build_truth(templates, old["instances"], old["stats"], old, key, out)
            if truth != old:
                sidecar.write_text(json.dumps(truth, indent=2) + "\n")
                print(f"gen: {out} is up to date; truth refreshed", file=sys.stderr)
            else:
                print(f"gen: {out} is up to date ({old['bytes']} bytes)", file=sys.stderr)
            return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    started = time.perf_counter()
    with tmp.open("wb", buffering=1 << 20) as fh:
        writer, stats = generate(templates, size, fh, args.format, args.seed, t0)
    tmp.replace(out)
    counts = {"bytes": writer.bytes, "packets": writer.packets}
    truth = build_truth(templates, dict(stats.instances), stats.as_dict(), counts, key, out)
    sidecar.write_text(json.dumps(truth, indent=2) + "\n")
    took = time.perf_counter() - started
    print(
        f"gen: wrote {out} ({writer.bytes / 1e6:.1f} MB, {writer.packets} packets, "
        f"{truth['tls_connections']} TLS connections) in {took:.1f} s",
        file=sys.stderr,
    )
    return 0


def build_truth(
    templates: list[Template],
    instances: dict[str, int],
    stats: dict[str, int],
    counts: dict[str, Any],
    key: dict[str, object],
    out: Path,
) -> dict[str, Any]:
    """The sidecar document: ``instances`` per template name, ``counts`` holds the file's
    ``bytes`` and ``packets``."""
    outcomes: Counter[str] = Counter()
    causes: dict[str, Counter[str]] = {}
    rows = []
    sensitive = []
    for tpl in templates:
        n = instances.get(tpl.name, 0)
        isolated = [c.isolated for c in tpl.conns if c.isolated is not None]
        if sorted(map(str, isolated)) != sorted(map(str, tpl.verdicts)):
            sensitive.append(tpl.name)
        for outcome, cause in tpl.verdicts:
            outcomes[outcome] += n
            causes.setdefault(outcome, Counter())[str(cause)] += n
        rows.append(
            {
                "index": tpl.index,
                "name": tpl.name,
                "instances": n,
                "verdicts": [list(v) for v in tpl.verdicts],
                "isolated_verdicts": [list(v) for v in isolated],
            }
        )
    return {
        "key": key,
        "file": out.name,
        "bytes": counts["bytes"],
        "packets": counts["packets"],
        "tls_connections": sum(outcomes.values()),
        "outcomes": dict(sorted(outcomes.items())),
        "causes": {o: dict(sorted(c.items())) for o, c in sorted(causes.items())},
        "failed_causes": dict(sorted(causes.get("failed", Counter()).items())),
        "context_sensitive": sensitive,
        "instances": dict(sorted(instances.items())),
        "stats": stats,
        "templates": rows,
    }


if __name__ == "__main__":
    sys.exit(main())
