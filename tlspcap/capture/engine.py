"""The choice of packet stage, and the Python side of the compiled one.

tlspcap reads captures on one of two paths that give the same results:

* ``rust``: the compiled engine (the optional extension module ``tlspcap_engine``, built from
  ``engine/`` by maturin) reads the file and decodes every packet to TCP segments;
* ``python``: :class:`~tlspcap.capture.reader.CaptureReader` and
  :class:`~tlspcap.capture.decode.PacketDecoder` do the same in pure Python. It is the fallback
  when the engine is not installed, and the reference the engine is tested against.

``TLSPCAP_ENGINE=rust`` or ``TLSPCAP_ENGINE=python`` forces one; by default the engine is used
when it is installed. Everything after the segments (TCP tracking, TLS, diagnosis, reports) is
the same code on both paths.
"""

from __future__ import annotations

import gzip
import importlib
import os
import typing
from collections.abc import Iterator
from types import ModuleType

from tlspcap.anomaly import Anomaly
from tlspcap.capture import formats
from tlspcap.capture.model import IcmpError, TcpSegment
from tlspcap.capture.reader import GZIP_MAGIC, CountingStream, read_exactly
from tlspcap.errors import CaptureError, TlspcapError

ENV = "TLSPCAP_ENGINE"
"""The environment variable that forces a path: ``rust`` or ``python``."""
PATHS = ("rust", "python")


class EngineError(TlspcapError):
    """The engine was asked for but cannot be used, or it failed on a file (a panic)."""


def _module() -> ModuleType | None:
    try:
        return importlib.import_module("tlspcap_engine")
    except ImportError:
        return None


_ENGINE = _module()


def available() -> bool:
    """The compiled engine is installed."""
    return _ENGINE is not None


def selected() -> str:
    """The path in use: ``rust`` or ``python`` (see the module docstring).

    Raises :class:`EngineError` when ``TLSPCAP_ENGINE`` names an unknown path, or ``rust``
    while the engine is not installed.
    """
    wanted = os.environ.get(ENV, "").strip().lower()
    if wanted and wanted not in PATHS:
        raise EngineError(f"{ENV}={wanted!r}: use one of {', '.join(PATHS)}")
    if wanted == "python":
        return "python"
    if _ENGINE is None:
        if wanted == "rust":
            raise EngineError(
                f"{ENV}=rust but the engine is not installed "
                "(build it with `make engine`, or `pip install ./engine`)"
            )
        return "python"
    return "rust"


def describe() -> str:
    """One line for ``tlspcap --version``: the path in use and why."""
    try:
        path = selected()
    except EngineError as exc:
        return f"packet engine: error: {exc}"
    if path == "rust":
        return f"packet engine: rust (tlspcap_engine {_ENGINE.__version__})"  # type: ignore[union-attr]
    why = "forced by TLSPCAP_ENGINE" if _ENGINE is not None else "the engine is not installed"
    return f"packet engine: python ({why})"


Item = TcpSegment | IcmpError | tuple[typing.Any, ...]
Offer = tuple[typing.Any, ...]
"""A connection for the fast lane (see :mod:`tlspcap.tcp.lane`)."""
Summary = tuple[typing.Any, ...]
"""What the fast lane absorbed of one connection (see :mod:`tlspcap.tcp.lane`)."""


def _is_panic(exc: BaseException) -> bool:
    return type(exc).__name__ == "PanicException"


class EngineCapture:
    """A capture read and decoded by the engine: what ``CaptureReader`` and ``PacketDecoder``
    give on the pure path, as a stream of items (see :meth:`items`).

    The constructor raises :class:`CaptureError` (or
    :class:`~tlspcap.capture.formats.ForeignFormatError`) exactly where ``CaptureReader`` does.
    """

    def __init__(self, stream: typing.BinaryIO, progress_every: int) -> None:
        """Sniff gzip, then open the stream in the engine; progress is reported before every
        packet whose frame number is a multiple of ``progress_every``."""
        assert _ENGINE is not None
        try:
            prefix = read_exactly(stream, 4)
        except OSError as exc:
            raise CaptureError(f"cannot read the stream: {exc}", offset=0) from exc
        self._counter: CountingStream | None = None
        inside = ""
        read: typing.Callable[[int], bytes] = stream.read
        if prefix[:2] == GZIP_MAGIC:
            self._counter = CountingStream(prefix, stream)
            read = gzip.GzipFile(fileobj=self._counter, mode="rb").read1
            prefix, inside = b"", " inside gzip"
        try:
            self._capture = _ENGINE.Capture(
                read, prefix, inside, TcpSegment, IcmpError, progress_every, self._counter
            )
        except _ENGINE.OpenFailure as exc:
            raise _open_error(exc.args) from None
        except BaseException as exc:
            if _is_panic(exc):
                raise EngineError(f"the packet engine failed: {exc}") from None
            raise
        self.format: str = self._capture.format
        """As :attr:`CaptureReader.format`."""
        self.batch_items: int = _ENGINE.BATCH
        """Items in one batch at most (segments among them that open a connection, too)."""

    def items(self, before_batch: typing.Callable[[], None] | None = None) -> Iterator[Item]:
        """Segments, ICMP errors, ``("progress", bytes_read, frame)`` (see the constructor)
        and ``("secret", type, data)`` for each Decryption Secrets Block before the packet
        that follows it, in capture order; ``("lane", summary)`` for each connection the fast
        lane releases (:mod:`tlspcap.tcp.lane`), whose ``before_batch`` runs between batches
        (the only moment the engine may be given connections: it reads a batch ahead)."""
        capture = self._capture
        while True:
            if before_batch is not None:
                before_batch()
            try:
                batch = capture.next_batch()
            except BaseException as exc:
                if _is_panic(exc):
                    raise EngineError(f"the packet engine failed: {exc}") from None
                raise
            if batch is None:
                return
            yield from batch

    def lane_offer(
        self, next_sweep: float, sweep_seconds: float, max_record: int, offers: list[Offer]
    ) -> None:
        """Hold connections in the fast lane (the tuples of :mod:`tlspcap.tcp.lane`)."""
        self._capture.lane_offer(next_sweep, sweep_seconds, max_record, offers)

    def lane_release(self) -> list[Summary]:
        """Release every connection the fast lane holds: their summaries."""
        return typing.cast(list[Summary], self._capture.lane_release())

    @property
    def packets(self) -> int:
        """Packet records read."""
        return int(self._capture.packets)

    @property
    def first_ts(self) -> float | None:
        """Time of the first packet."""
        return typing.cast(float | None, self._capture.first_ts)

    @property
    def last_ts(self) -> float | None:
        """Time of the last packet."""
        return typing.cast(float | None, self._capture.last_ts)

    @property
    def truncated(self) -> bool:
        """As :attr:`CaptureReader.truncated`."""
        return bool(self._capture.truncated)

    def reader_anomalies(self) -> list[Anomaly]:
        """As :attr:`CaptureReader.anomalies`."""
        return [Anomaly(*a) for a in self._capture.reader_anomalies()]

    def decoder_anomalies(self) -> list[Anomaly]:
        """As :meth:`PacketDecoder.anomalies` after :meth:`PacketDecoder.finish`."""
        return [Anomaly(*a) for a in self._capture.decoder_anomalies()]

    def secrets(self) -> list[tuple[int, bytes]]:
        """As :attr:`CaptureReader.secrets`."""
        return typing.cast(list[tuple[int, bytes]], self._capture.secrets())


def _open_error(args: tuple[typing.Any, ...]) -> CaptureError:
    """The exception ``CaptureReader`` raises for the engine's ``OpenFailure`` arguments."""
    kind = args[0]
    if kind == "snoop":
        return formats.ForeignFormatError(formats.SNOOP, args[1])
    if kind == "unrecognised":
        _, head, inside, reason = args
        foreign = formats.identify(head)
        if foreign is not None:
            return formats.ForeignFormatError(foreign, inside)
        return CaptureError(reason, offset=0)
    return CaptureError(args[1], offset=args[2])


def scan(path: str) -> tuple[int, int, int]:
    """The engine's bare read+decode loop over a plain capture file: ``(packets, segments,
    payload bytes)`` (the benchmark's floor; opens the file itself)."""
    if _ENGINE is None:
        raise EngineError("the engine is not installed")
    return typing.cast(tuple[int, int, int], _ENGINE.scan(path))
