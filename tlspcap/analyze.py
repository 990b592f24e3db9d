"""The one place that opens capture files: a file in, a :class:`CaptureResult` out.

Everything below this module works on bytes and typed values; the CLI renders the results.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import BinaryIO

from tlspcap import convert
from tlspcap.anomaly import Anomaly, CappedList
from tlspcap.capture import engine
from tlspcap.capture.decode import PacketDecoder
from tlspcap.capture.engine import EngineCapture
from tlspcap.capture.formats import ForeignFormatError, unreadable_message
from tlspcap.capture.model import IcmpError, Packet, TcpSegment
from tlspcap.capture.reader import CaptureReader
from tlspcap.errors import CaptureError, OutputError
from tlspcap.facts.collect import collect
from tlspcap.facts.model import ConnFacts
from tlspcap.keylog import KeyLog
from tlspcap.session import TlsSession
from tlspcap.tcp.lane import FastLane
from tlspcap.tcp.tracker import ConnectionTracker, TcpConnection

Decoder = Callable[[Packet], TcpSegment | None]
ReadProgress = Callable[[int, int], None]
"""Hears (bytes read, packets read) of the file being analysed."""

PROGRESS_PACKETS = 65536
"""Packets between two progress reports."""

MAX_ICMP_ERRORS = 1000
"""ICMP/ICMPv6 errors quoting TCP kept per capture (:attr:`CaptureResult.icmp_errors`)."""


def _icmp_list() -> CappedList[IcmpError]:
    return CappedList(MAX_ICMP_ERRORS)


@dataclass(slots=True)
class CaptureResult:
    """Everything tlspcap learned from one capture file."""

    file: str
    """The path as given."""
    error: str | None = None
    """Why the file could not be read (None when it was)."""
    format: str | None = None
    """Capture format, e.g. ``pcap``, ``pcapng+gzip``."""
    packets: int = 0
    truncated: bool = False
    """The file ended in the middle of a record: results are partial."""
    connections: list[ConnFacts] = field(default_factory=list)
    """The facts of each TCP connection that carried TLS, in the order they started (empty when
    they were handed to an ``on_connection`` callback instead)."""
    anomalies: list[Anomaly] = field(default_factory=list)
    """File-level anomalies (capture format, link types, tracker)."""
    first_ts: float | None = None
    last_ts: float | None = None
    secrets: list[tuple[int, bytes]] = field(default_factory=list)
    """pcapng Decryption Secrets Blocks found in the file."""
    keylog_secrets: int = 0
    """Secrets the connections could be decrypted with (given key log plus the file's DSBs)."""
    icmp_errors: CappedList[IcmpError] = field(default_factory=_icmp_list)
    """ICMP/ICMPv6 errors that quote a TCP header, in capture order (the first
    :data:`MAX_ICMP_ERRORS`; ``icmp_errors.dropped`` counts the others)."""


def analyze_stream(
    stream: BinaryIO,
    name: str,
    keylog: KeyLog | None = None,
    on_connection: Callable[[ConnFacts], None] | None = None,
    on_progress: ReadProgress | None = None,
) -> CaptureResult:
    """Analyse a capture held in a binary stream.

    ``keylog`` (e.g. from ``--keylog``) decrypts the connections it has secrets for; the TLS key
    log text of the file's own pcapng Decryption Secrets Blocks is added to it as the blocks are
    read (for this file only: ``keylog`` itself is not modified).

    With ``on_connection``, each TLS connection's facts are handed over as soon as it is over
    (closed, quiet, evicted, or at the end of the capture: see :mod:`tlspcap.tcp.tracker`) and
    are not kept: memory stays bounded whatever the capture's size. ``on_progress`` is called with
    the bytes and the packets read so far every :data:`PROGRESS_PACKETS` packets.
    """
    try:
        reader = open_capture(stream)
    except CaptureError as exc:
        return CaptureResult(file=name, error=str(exc))
    return _analyze(reader, name, keylog, on_connection, on_progress)


@dataclass(slots=True)
class _Stage:
    """What a packet stage reports about the file besides the segments it fed the tracker."""

    packets: int = 0
    first_ts: float | None = None
    last_ts: float | None = None
    reader_anomalies: list[Anomaly] = field(default_factory=list)
    decoder_anomalies: list[Anomaly] = field(default_factory=list)
    truncated: bool = False
    secrets: list[tuple[int, bytes]] = field(default_factory=list)


Icmp = Callable[[IcmpError], None]


def _python_stage(
    reader: CaptureReader,
    tracker: ConnectionTracker,
    icmp: Icmp,
    secrets: KeyLog,
    on_progress: ReadProgress | None,
) -> _Stage:
    """The pure-Python packet stage: read, decode and feed every packet to the tracker."""
    stage = _Stage()
    secrets_used = 0
    capture_decoder = PacketDecoder(on_icmp=icmp)  # one per capture: fragments
    decoders: dict[int, Decoder] = {}  # the reader yields only packets of decodable link types
    for packet in reader.packets():
        if on_progress is not None and not packet.frame % PROGRESS_PACKETS:
            on_progress(reader.bytes_read, packet.frame)
        if len(reader.secrets) > secrets_used:  # DSBs come before the packets they unlock
            secrets.add_secrets_blocks(reader.secrets[secrets_used:])
            secrets_used = len(reader.secrets)
        stage.packets += 1
        if stage.first_ts is None:
            stage.first_ts = packet.ts
        stage.last_ts = packet.ts
        decoder = decoders.get(packet.linktype)
        if decoder is None:
            decoder = decoders[packet.linktype] = capture_decoder.for_linktype(packet.linktype)
        segment = decoder(packet)
        if segment is not None:
            tracker.feed(segment)
    capture_decoder.finish()
    stage.reader_anomalies = reader.anomalies
    stage.decoder_anomalies = capture_decoder.anomalies()
    stage.truncated = reader.truncated
    stage.secrets = list(reader.secrets)
    return stage


def _engine_stage(
    capture: EngineCapture,
    tracker: ConnectionTracker,
    icmp: Icmp,
    secrets: KeyLog,
    on_progress: ReadProgress | None,
) -> _Stage:
    """The compiled packet stage: the engine reads and decodes, Python tracks the segments
    (the engine counts the settled connections' bulk itself: :mod:`tlspcap.tcp.lane`)."""
    feed = tracker.feed
    lane = FastLane(tracker, capture)
    touch = lane.touched.add
    for item in capture.items(lane.boundary):
        if type(item) is TcpSegment:
            feed(item)
            touch((item.src, item.sport, item.dst, item.dport))
        elif type(item) is IcmpError:
            icmp(item)
        elif isinstance(item, tuple):
            if item[0] == "lane":
                lane.apply(item[1])
            elif item[0] == "progress":
                if on_progress is not None:
                    on_progress(item[1], item[2])
            else:  # ("secret", type, data): a DSB, before the packet that follows it
                secrets.add_secrets_block(item[1], item[2])
    return _Stage(
        packets=capture.packets,
        first_ts=capture.first_ts,
        last_ts=capture.last_ts,
        reader_anomalies=capture.reader_anomalies(),
        decoder_anomalies=capture.decoder_anomalies(),
        truncated=capture.truncated,
        secrets=capture.secrets(),
    )


def _analyze(
    reader: CaptureReader | EngineCapture,
    name: str,
    keylog: KeyLog | None,
    on_connection: Callable[[ConnFacts], None] | None,
    on_progress: ReadProgress | None,
) -> CaptureResult:
    """Read, decode and track every packet of an open capture (see :func:`analyze_stream`)."""
    result = CaptureResult(file=name)
    result.format = reader.format
    secrets = KeyLog(base=keylog)  # a layer for this file's DSBs
    on_close = None if on_connection is None else partial(_hand_over, on_connection)
    tracker = ConnectionTracker(partial(TlsSession, keylog=secrets), on_close=on_close)

    def icmp(error: IcmpError) -> None:
        result.icmp_errors.append(error)
        tracker.icmp(error)  # evidence for the connection it quotes

    if isinstance(reader, EngineCapture):
        stage = _engine_stage(reader, tracker, icmp, secrets, on_progress)
    else:
        stage = _python_stage(reader, tracker, icmp, secrets, on_progress)
    result.packets = stage.packets
    result.first_ts = stage.first_ts
    result.last_ts = stage.last_ts
    result.connections = [collect(c) for c in tracker.finish()]
    result.anomalies = (
        stage.reader_anomalies + stage.decoder_anomalies + tracker.anomalies + result.anomalies
    )
    result.truncated = stage.truncated
    result.secrets = stage.secrets
    result.keylog_secrets = len(secrets)
    skipped = [a.detail for a in stage.reader_anomalies if a.name == "unsupported_linktype"]
    if not result.packets and skipped:
        # Every packet was on an interface tlspcap cannot decode: an error, not an empty result.
        result.error = "; ".join(skipped)
    return result


def open_capture(stream: BinaryIO) -> CaptureReader | EngineCapture:
    """Open a capture stream on the packet stage in use (:func:`tlspcap.capture.engine.selected`).

    Raises :class:`CaptureError` (a :class:`ForeignFormatError` for a format ``editcap``
    converts) when the stream is not a capture tlspcap reads; both paths raise the same.
    """
    if engine.selected() == "rust":
        return EngineCapture(stream, PROGRESS_PACKETS)
    return CaptureReader(stream)


def _hand_over(on_connection: Callable[[ConnFacts], None], conn: TcpConnection) -> None:
    """Give a retired connection's facts to ``on_connection`` (the connection is then dropped)."""
    on_connection(collect(conn))


def analyze_file(
    path: Path,
    keylog: KeyLog | None = None,
    on_connection: Callable[[ConnFacts], None] | None = None,
    on_progress: ReadProgress | None = None,
    name: str | None = None,
) -> CaptureResult:
    """Analyse one capture file; an unreadable file gives a result with ``error`` set.

    The optional arguments are :func:`analyze_stream`'s, and ``name``: the file's name in the
    results when it is not ``path`` itself (a cluster worker opens the absolute path of a file
    the user named relative to the client's directory). An :class:`OutputError` raised by a
    callback becomes the file's ``error``; any other exception an internal error of the file.
    """
    name = str(path) if name is None else name
    try:
        with path.open("rb") as stream:
            try:
                reader = open_capture(stream)
            except ForeignFormatError as exc:
                foreign = exc  # converted below, once this file is closed
            except CaptureError as exc:
                return CaptureResult(file=name, error=str(exc))
            else:
                return _analyze(reader, name, keylog, on_connection, on_progress)
        return _analyze_foreign(path, name, foreign, keylog, on_connection, on_progress)
    except OSError as exc:
        return CaptureResult(file=name, error=f"cannot read file: {exc.strerror or exc}")
    except OutputError as exc:
        return CaptureResult(file=name, error=str(exc))
    except Exception as exc:  # a tlspcap bug: report it for this file, keep the others going
        return CaptureResult(
            file=name,
            error=f"internal error ({type(exc).__name__}: {exc}); please report this as a bug "
            "with the capture attached",
        )


def _analyze_foreign(
    path: Path,
    name: str,
    foreign: ForeignFormatError,
    keylog: KeyLog | None,
    on_connection: Callable[[ConnFacts], None] | None,
    on_progress: ReadProgress | None,
) -> CaptureResult:
    """Analyse a capture in a format Wireshark reads: a pcapng copy made by ``editcap`` (see
    :mod:`tlspcap.convert`), or an error naming the format and the command that converts it."""
    fmt = foreign.format
    if not fmt.convertible:
        return CaptureResult(file=name, error=unreadable_message(fmt, name))
    try:
        with convert.converted(path) as copy, copy.open("rb") as stream:
            result = _analyze(open_capture(stream), name, keylog, on_connection, on_progress)
    except convert.ConversionError as exc:
        return CaptureResult(file=name, error=unreadable_message(fmt, name, str(exc)))
    except CaptureError as exc:
        return CaptureResult(file=name, error=f"{fmt.name} converted by editcap: {exc}")
    result.format = f"{fmt.name} (converted by editcap)"
    result.anomalies.insert(
        0,
        Anomaly(
            "converted_format",
            None,
            f"{fmt.name} capture{foreign.inside}: converted to pcapng by Wireshark's editcap "
            "for the analysis (frame numbers are the ones Wireshark shows for the file)",
        ),
    )
    return result


CAPTURE_SUFFIXES = (
    ".pcap",
    ".pcapng",
    ".cap",
    ".pcap.gz",
    ".pcapng.gz",
    ".cap.gz",
    ".snoop",
    ".erf",
    ".5vw",
    ".rf5",
    ".trc",
    ".enc",
    ".bfr",
    ".tr1",
)


def find_captures(paths: list[Path]) -> tuple[list[Path], int]:
    """Expand directories into the capture files they hold; also count the files skipped."""
    files: list[Path] = []
    skipped = 0
    for path in paths:
        if path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                if child.name.lower().endswith(CAPTURE_SUFFIXES):
                    files.append(child)
                else:
                    skipped += 1
        else:
            files.append(path)
    return files, skipped
