"""The compiled packet stage against the pure-Python one: the same values, the same JSON.

Two levels, on every fixture (real, crafted, degraded), every capture of the shared corpus, and
hypothesis-made inputs:

* the packet stage itself: every segment, ICMP error, progress and secret item, the anomalies,
  the counters and the open errors of ``EngineCapture`` equal what ``CaptureReader`` and
  ``PacketDecoder`` give;
* the whole analysis: the JSON of the diagnosed capture is byte-identical on both paths.

Where the engine is not built these tests are skipped, unless ``TLSPCAP_REQUIRE_ENGINE=1`` (set
by ``make test`` when cargo is present), which makes a missing engine a failure.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tlspcap.analyze import PROGRESS_PACKETS, analyze_file, analyze_stream
from tlspcap.capture import engine
from tlspcap.capture.decode import PacketDecoder
from tlspcap.capture.model import IcmpError, TcpSegment
from tlspcap.capture.reader import CaptureReader
from tlspcap.diagnosis.certcheck import TrustStore, load_pem_roots
from tlspcap.diagnosis.engine import Options, diagnose_capture
from tlspcap.errors import CaptureError
from tlspcap.report.jsonfmt import capture_to_dict

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"
CORPUS = ROOT.parent / "shared" / "corpus"
SUFFIXES = (".pcap", ".pcapng", ".pcap.gz", ".pcapng.gz", ".cap", ".snoop")


def _captures(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name.endswith(SUFFIXES))


FIXTURE_FILES = _captures(FIXTURES)
CORPUS_FILES = _captures(CORPUS)
SMALL = [p for p in FIXTURE_FILES if p.stat().st_size < 40_000 and "degraded" not in p.parts]

if not engine.available():
    if os.environ.get("TLSPCAP_REQUIRE_ENGINE") == "1":
        pytest.fail("TLSPCAP_REQUIRE_ENGINE=1 but tlspcap_engine is not importable", pytrace=False)
    pytest.skip("the engine is not built (make engine)", allow_module_level=True)


def _ids(paths: list[Path], root: Path) -> list[str]:
    return [str(p.relative_to(root)) for p in paths]


# ---- the packet stage ---------------------------------------------------------------------


def _value(item: Any) -> Any:
    """A comparable form of one item: floats by their exact bits."""
    if isinstance(item, TcpSegment | IcmpError):
        fields = dataclasses.astuple(item)
        return (type(item).__name__, *(f.hex() if isinstance(f, float) else f for f in fields))
    return item


def _python_stage(data: bytes) -> dict[str, Any]:
    """What the pure path's reader and decoder give for a capture, as analyze.py drives them."""
    try:
        reader = CaptureReader(io.BytesIO(data))
    except CaptureError as exc:
        return {"error": (type(exc).__name__, str(exc), exc.offset)}
    items: list[Any] = []
    decoder = PacketDecoder(on_icmp=lambda e: items.append(_value(e)))
    used = 0
    packets = 0
    first = last = None
    for packet in reader.packets():
        if not packet.frame % PROGRESS_PACKETS:
            items.append(("progress", reader.bytes_read, packet.frame))
        if len(reader.secrets) > used:
            items.extend(("secret", t, d) for t, d in reader.secrets[used:])
            used = len(reader.secrets)
        packets += 1
        first = packet.ts if first is None else first
        last = packet.ts
        segment = decoder.for_linktype(packet.linktype)(packet)
        if segment is not None:
            items.append(_value(segment))
    decoder.finish()
    return {
        "format": reader.format,
        "items": items,
        "packets": packets,
        "ts": (None if first is None else first.hex(), None if last is None else last.hex()),
        "anomalies": reader.anomalies + decoder.anomalies(),
        "truncated": reader.truncated,
        "secrets": list(reader.secrets),
    }


def _engine_stage(data: bytes) -> dict[str, Any]:
    """The same, read by the engine."""
    try:
        capture = engine.EngineCapture(io.BytesIO(data), PROGRESS_PACKETS)
    except CaptureError as exc:
        return {"error": (type(exc).__name__, str(exc), exc.offset)}
    items = [_value(i) for i in capture.items()]
    first, last = capture.first_ts, capture.last_ts
    return {
        "format": capture.format,
        "items": items,
        "packets": capture.packets,
        "ts": (None if first is None else first.hex(), None if last is None else last.hex()),
        "anomalies": capture.reader_anomalies() + capture.decoder_anomalies(),
        "truncated": capture.truncated,
        "secrets": capture.secrets(),
    }


def _assert_same_stage(data: bytes) -> None:
    want, got = _python_stage(data), _engine_stage(data)
    assert got.keys() == want.keys()
    for key in want:
        if key == "items":
            assert len(got[key]) == len(want[key])
            for n, (g, w) in enumerate(zip(got[key], want[key], strict=True)):
                assert g == w, f"item {n}"
        else:
            assert got[key] == want[key], key


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=_ids(FIXTURE_FILES, FIXTURES))
def test_fixture_packet_stage(path: Path) -> None:
    _assert_same_stage(path.read_bytes())


@pytest.mark.skipif(not CORPUS_FILES, reason="the shared corpus is not beside the repository")
@pytest.mark.parametrize("path", CORPUS_FILES, ids=_ids(CORPUS_FILES, CORPUS))
def test_corpus_packet_stage(path: Path) -> None:
    _assert_same_stage(path.read_bytes())


# ---- the whole analysis -------------------------------------------------------------------


def _trust() -> TrustStore:
    return TrustStore(load_pem_roots((FIXTURES / "real" / "certs" / "root.pem").read_bytes()))


TRUST = _trust()


def _json(path: Path, monkeypatch: pytest.MonkeyPatch, which: str) -> str:
    monkeypatch.setenv(engine.ENV, which)
    result = analyze_file(path)
    doc = capture_to_dict(result, diagnose_capture(result, Options(trust=TRUST)))
    return json.dumps(doc, indent=1, sort_keys=True)


ALL_IDS = _ids(FIXTURE_FILES, FIXTURES) + _ids(CORPUS_FILES, CORPUS)


@pytest.mark.parametrize("path", FIXTURE_FILES + CORPUS_FILES, ids=ALL_IDS)
def test_json_is_byte_identical(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    python = _json(path, monkeypatch, "python")
    rust = _json(path, monkeypatch, "rust")
    assert rust == python


# ---- hypothesis-made inputs ---------------------------------------------------------------

_edits = st.lists(
    st.tuples(st.integers(min_value=0, max_value=1 << 20), st.integers(0, 255)), max_size=12
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    source=st.sampled_from(SMALL),
    edits=_edits,
    cut=st.one_of(st.none(), st.integers(min_value=0, max_value=1 << 20)),
)
def test_mutated_fixtures_agree(
    source: Path, edits: list[tuple[int, int]], cut: int | None
) -> None:
    data = bytearray(source.read_bytes())
    if source.name.endswith(".gz"):
        data = bytearray(gzip.decompress(bytes(data)))
    for offset, value in edits:
        data[offset % len(data)] = value
    if cut is not None:
        del data[cut % (len(data) + 1) :]
    _assert_same_stage(bytes(data))


_MAGICS = [
    b"\xd4\xc3\xb2\xa1",
    b"\xa1\xb2\xc3\xd4",
    b"\x4d\x3c\xb2\xa1",
    b"\x0a\x0d\x0d\x0a",
    b"snoop\x00\x00\x00",
    b"\x1f\x8b",
    b"",
]


@settings(max_examples=300, deadline=None)
@given(magic=st.sampled_from(_MAGICS), rest=st.binary(max_size=600))
def test_random_bytes_agree(magic: bytes, rest: bytes) -> None:
    _assert_same_stage(magic + rest)


@settings(max_examples=40, deadline=None)
@given(source=st.sampled_from(SMALL), level=st.integers(1, 9), cut=st.integers(0, 400))
def test_gzip_streams_agree(source: Path, level: int, cut: int) -> None:
    """gzip is Python's on both paths: whole, cut short, or with a corrupt tail."""
    raw = source.read_bytes()
    if not source.name.endswith(".gz"):
        raw = gzip.compress(raw, compresslevel=level)
    _assert_same_stage(raw)
    _assert_same_stage(raw[: max(0, len(raw) - cut)])
    _assert_same_stage(raw[:-8] + b"\x00" * 8)


def _pcap(frames: list[bytes]) -> bytes:
    """A little-endian microsecond pcap of Ethernet frames, one per second."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for n, frame in enumerate(frames):
        out.append(struct.pack("<IIII", n, 0, len(frame), len(frame)) + frame)
    return b"".join(out)


def _eth_ipv4(proto: int, l4: bytes) -> bytes:
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, 0, 64, proto, 0,
                     bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))  # fmt: skip
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + l4


def test_a_long_run_without_tcp_is_read_through() -> None:
    """Batches also end after a bounded number of packets (Python gets control back): one
    that yields nothing is not the end of the capture."""
    udp = _eth_ipv4(17, struct.pack("!HHHH", 5353, 5353, 12, 0) + b"dns!")
    syn = _eth_ipv4(6, struct.pack("!HHIIBBHHH", 40000, 443, 1, 0, 0x50, 0x02, 1024, 0, 0))
    data = _pcap([udp] * 40_000 + [syn])
    _assert_same_stage(data)
    stage = _engine_stage(data)
    assert stage["packets"] == 40_001 and stage["items"][-1][0] == "TcpSegment"


# ---- the choice of path, the fallback and failures ------------------------------------------


LARGEST = [
    max((p for p in FIXTURE_FILES if p.name.endswith(".gz") == gz), key=lambda p: p.stat().st_size)
    for gz in (False, True)
]


@pytest.mark.parametrize("path", LARGEST, ids=lambda p: p.name)
def test_progress_and_stream_analysis_agree(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """analyze_stream hears the same progress (for gzip: compressed bytes read, at the same
    packets) and gives the same facts on both paths."""
    monkeypatch.setattr("tlspcap.analyze.PROGRESS_PACKETS", 7)
    heard: dict[str, list[tuple[int, int]]] = {}
    facts: dict[str, list[Any]] = {}
    for which in engine.PATHS:
        monkeypatch.setenv(engine.ENV, which)
        calls: list[tuple[int, int]] = []
        with path.open("rb") as stream:
            result = analyze_stream(
                stream, path.name, on_progress=lambda b, f, calls=calls: calls.append((b, f))
            )
        heard[which] = calls
        facts[which] = [repr(c) for c in result.connections]
    assert heard["rust"] == heard["python"] and len(heard["rust"]) >= 3
    assert facts["rust"] == facts["python"]


def test_forced_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(engine.ENV, "rust")
    assert engine.selected() == "rust" and "rust (tlspcap_engine" in engine.describe()
    monkeypatch.setenv(engine.ENV, "python")
    assert engine.selected() == "python" and "forced" in engine.describe()
    monkeypatch.delenv(engine.ENV)
    assert engine.selected() == "rust"


def test_fallback_without_the_engine() -> None:
    """With the extension not importable, tlspcap runs on the pure path and says so; forcing
    the engine is then an error of the run."""
    blocker = (
        "import sys; sys.modules['tlspcap_engine'] = None; "
        "from tlspcap.cli import main; sys.argv[0] = 'tlspcap'; main()"
    )
    fixture = FIXTURES / "real"
    env = {k: v for k, v in os.environ.items() if k != engine.ENV}
    version = subprocess.run(
        [sys.executable, "-c", blocker, "--version"], capture_output=True, text=True, env=env
    )
    assert "packet engine: python (the engine is not installed)" in version.stdout
    pure = subprocess.run(
        [sys.executable, "-c", blocker, "analyze", "--format", "json", str(fixture)],
        capture_output=True,
        text=True,
        env=env,
    )
    compiled = subprocess.run(
        [sys.executable, "-m", "tlspcap", "analyze", "--format", "json", str(fixture)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert pure.returncode == compiled.returncode == 1
    assert pure.stdout == compiled.stdout and pure.stdout.startswith("{")
    forced = subprocess.run(
        [sys.executable, "-c", blocker, "analyze", str(fixture)],
        capture_output=True,
        text=True,
        env={**env, engine.ENV: "rust"},
    )
    assert forced.returncode == 2
    assert "TLSPCAP_ENGINE=rust but the engine is not installed" in forced.stderr


def test_a_panic_is_that_files_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A panic inside the engine ends that file with an error; the process and the other files
    go on."""
    import tlspcap_engine

    real = tlspcap_engine.Capture

    class Panicking:
        def __init__(self, *args: Any) -> None:
            self._inner = real(*args)
            self.format = self._inner.format

        def next_batch(self) -> Any:
            tlspcap_engine._panic("planted by the test")

    monkeypatch.setattr(tlspcap_engine, "Capture", Panicking)
    monkeypatch.setenv(engine.ENV, "rust")
    path = next(p for p in FIXTURE_FILES if p.parent.name == "real")
    result = analyze_file(path)
    assert result.error is not None
    assert "EngineError" in result.error and "planted by the test" in result.error
    monkeypatch.setattr(tlspcap_engine, "Capture", real)
    assert analyze_file(path).error is None


def test_engine_scan_counts_what_python_decodes() -> None:
    """The bare loop (the benchmark's floor) reads and decodes the same packets."""
    path = max((p for p in FIXTURE_FILES if p.suffix == ".pcap"), key=lambda p: p.stat().st_size)
    stage = _python_stage(path.read_bytes())
    segments = [i for i in stage["items"] if i[0] == "TcpSegment"]
    packets, count, payload = engine.scan(str(path))
    assert packets == stage["packets"]
    assert count == len(segments)
    assert payload == sum(len(s[10]) for s in segments)
