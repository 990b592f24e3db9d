"""Foreign capture formats: recognised by magic (tlspcap.capture.formats), converted with
Wireshark's editcap when it is installed (tlspcap.convert), else reported with the command.

The foreign files are the degraded variants written by fixtures/gen/make_degraded.py (editcap
-F for most, ERF by the script). "Without editcap" runs with PATH pointing at an empty
directory.
"""

from __future__ import annotations

import gzip
import io
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tlspcap import convert
from tlspcap.analyze import CaptureResult, analyze_file, find_captures
from tlspcap.capture import formats
from tlspcap.capture.formats import ForeignFormatError, conversion_command, identify
from tlspcap.capture.reader import CaptureReader
from tlspcap.diagnosis.engine import diagnose_capture
from tlspcap.report.jsonfmt import capture_to_dict

ROOT = Path(__file__).resolve().parents[1]
DEGRADED = ROOT / "fixtures" / "degraded"
REAL = ROOT / "fixtures" / "real"
SNOOP = DEGRADED / "snoop" / "expired_curl.snoop"
NETMON2 = DEGRADED / "netmon2" / "expired_curl.cap"


def _alerts(result: CaptureResult) -> list[list[object]]:
    """Every connection's alerts as the JSON report gives them: frame, sender, level, name."""
    doc = capture_to_dict(result, diagnose_capture(result))
    return [
        [a["frame"], a["sender"], a["level"], a["description"]]
        for c in doc["connections"]
        for a in c["alerts"]
    ]


needs_editcap = pytest.mark.skipif(shutil.which("editcap") is None, reason="editcap not installed")


@pytest.fixture
def no_editcap(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """PATH holds only an empty directory: editcap cannot be found."""
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


# ---- identification ------------------------------------------------------------------------

MAGIC_FILES = [
    ("snoop/expired_curl.snoop", "Sun snoop"),
    ("netmon1/expired_curl.cap", "Microsoft Network Monitor 1.x"),
    ("netmon2/expired_curl.cap", "Microsoft Network Monitor 2.x"),
    ("ngsniffer/expired_curl.enc", "Sniffer (DOS)"),
    ("netxray/expired_curl.cap", "NetXray / Sniffer (Windows)"),
    ("5views/expired_curl.5vw", "InfoVista 5View"),
    ("visual/expired_curl.cap", "Visual Networks traffic capture"),
    ("erf/expired_curl.erf", "Endace ERF"),
]


@pytest.mark.parametrize(("name", "fmt"), MAGIC_FILES)
def test_written_files_are_identified(name: str, fmt: str) -> None:
    head = (DEGRADED / name).read_bytes()[: formats.HEAD_SIZE]
    found = identify(head)
    assert found is not None and found.name == fmt and found.convertible


@pytest.mark.parametrize(
    ("head", "fmt"),
    [
        (b"TRSNIFF data    \x1a" + bytes(20), "Sniffer (DOS)"),
        (b"\x00\x00\x02\x00\x12\x05\x00\x10" + bytes(20), "Tektronix K12xx (.rf5)"),
        (b"\x01\x10\x4c\x00\x01\x05Trace Display", "Novell LANalyzer"),
        (b"ObserverPktBufferVersion=15.00\0\0", "Viavi (Network Instruments) Observer"),
        (b"\x54\x52\x00\x64\x00" + bytes(20), "HP-UX nettl"),
        (b"\x7fver" + bytes(20), "Savvius *Peek tagged"),
        (b"iptrace 2.0" + bytes(20), "AIX iptrace 2.0"),
        (b"btsnoop\0" + bytes(8), "btsnoop (Bluetooth HCI)"),
        (b"\xa1\xb2\xcd\x34" + bytes(20), "modified pcap (Alexey Kuznetsov's patched libpcap)"),
        (bytes(40) + b"NetScaler V20 Performance Data" + bytes(40), "NetScaler trace"),
        (bytes(8) + b"Netscaler V35 Performance Data", "NetScaler trace"),
        (b"\x28\xb5\x2f\xfd" + bytes(10), "zstd-compressed"),
    ],
)
def test_magic_numbers(head: bytes, fmt: str) -> None:
    found = identify(head)
    assert found is not None and found.name == fmt


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"GET / HTTP/1.1\r\nHost: example\r\n\r\n" * 20,
        bytes(100),
        bytes(range(256)) * 4,
        b"\xff" * 64,
    ],
)
def test_unknown_data_is_not_a_format(head: bytes) -> None:
    assert identify(head) is None


def test_erf_heuristic_wants_chained_plausible_records() -> None:
    good = (DEGRADED / "erf" / "expired_curl.erf").read_bytes()[: formats.HEAD_SIZE]
    assert identify(good) == formats.ERF
    bad_type = bytearray(good)
    bad_type[8] = 0x70  # record type 112: not an ERF type
    assert identify(bytes(bad_type)) is None
    first_len = int.from_bytes(good[10:12], "big")
    broken_chain = bytearray(good)
    broken_chain[first_len + 8] = 0x7F  # the second record's type
    assert identify(bytes(broken_chain)) is None
    old = bytearray(good)
    old[4:8] = (100).to_bytes(4, "little")  # 1970: not a plausible capture time
    assert identify(bytes(old)) is None


def test_reader_raises_the_format_error() -> None:
    with pytest.raises(ForeignFormatError) as info:
        CaptureReader(io.BytesIO(NETMON2.read_bytes()))
    assert info.value.format.name == "Microsoft Network Monitor 2.x" and info.value.offset == 0
    assert str(info.value) == (
        "Microsoft Network Monitor 2.x capture: tlspcap reads pcap and pcapng; convert it with "
        "Wireshark's editcap: editcap -F pcapng IN OUT.pcapng"
    )
    with pytest.raises(ForeignFormatError, match=r"inside gzip$"):
        CaptureReader(io.BytesIO(gzip.compress(NETMON2.read_bytes())))


def _packets(blob: bytes) -> list[tuple[int, float, int, bytes, int]]:
    reader = CaptureReader(io.BytesIO(blob))
    return [(p.frame, p.ts, p.linktype, p.data, p.orig_len) for p in reader.packets()]


@pytest.mark.parametrize("source", ["expired_curl.pcap", "mixed_ports.pcap"])
def test_snoop_is_read_natively(source: str) -> None:
    """Version 2 Ethernet snoop: the same packets as the pcap it was written from."""
    snoop = (DEGRADED / "snoop" / source).with_suffix(".snoop").read_bytes()
    reader = CaptureReader(io.BytesIO(snoop))
    assert reader.format == "snoop" and not reader.truncated
    assert _packets(snoop) == _packets((REAL / source).read_bytes())
    gz = (DEGRADED / "snoop_gzip" / source).with_suffix(".snoop.gz").read_bytes()
    assert CaptureReader(io.BytesIO(gz)).format == "snoop+gzip"
    assert _packets(gz) == _packets(snoop)


def test_snoop_without_any_process(no_editcap: None) -> None:
    result = analyze_file(SNOOP)
    assert result.error is None and result.format == "snoop" and result.connections


@pytest.mark.parametrize(
    ("cut", "anomaly"),
    [(16 + 10, "truncated_record"), (16 + 24 + 10, "truncated_record")],
)
def test_snoop_cut_short(cut: int, anomaly: str) -> None:
    reader = CaptureReader(io.BytesIO(SNOOP.read_bytes()[:cut]))
    assert list(reader.packets()) == [] and reader.truncated
    assert [a.name for a in reader.anomalies] == [anomaly]


@pytest.mark.parametrize(
    "record",
    [
        struct.pack(">IIIIII", 60, 300000, 300024, 0, 0, 0),  # over the 256 KiB record bound
        struct.pack(">IIIIII", 60, 60, 70, 0, 0, 0),  # record shorter than its data
        struct.pack(">IIIIII", 60, 60, 60 + 24 + 5000, 0, 0, 0),  # 5,000 bytes of padding
    ],
)
def test_snoop_bad_record_lengths_stop_reading(record: bytes) -> None:
    blob = SNOOP.read_bytes()
    first_len = int.from_bytes(blob[16 + 8 : 16 + 12], "big")
    damaged = blob[: 16 + first_len] + record + bytes(100)
    reader = CaptureReader(io.BytesIO(damaged))
    assert len(list(reader.packets())) == 1
    [bad] = reader.anomalies
    assert bad.name == "bad_record" and bad.frame == 2


@needs_editcap
def test_other_snoop_files_are_converted(tmp_path: Path) -> None:
    """Datalink 0 (IEEE 802.3) is not read natively; editcap reads it as Ethernet."""
    blob = bytearray(SNOOP.read_bytes())
    struct.pack_into(">I", blob, 12, 0)
    with pytest.raises(ForeignFormatError):
        CaptureReader(io.BytesIO(bytes(blob)))
    path = tmp_path / "dl0.snoop"
    path.write_bytes(bytes(blob))
    result = analyze_file(path)
    assert result.error is None and result.format == "Sun snoop (converted by editcap)"
    assert _alerts(result) == [[10, "client", "fatal", "certificate_expired"]]


def test_conversion_command_quotes_the_path() -> None:
    assert conversion_command("a/b.snoop") == "editcap -F pcapng a/b.snoop a/b.pcapng"
    assert (
        conversion_command("my trace.cap.gz")
        == "editcap -F pcapng 'my trace.cap.gz' 'my trace.pcapng'"
    )
    assert conversion_command(None) == "editcap -F pcapng IN OUT.pcapng"


def test_directories_pick_up_foreign_suffixes() -> None:
    files, _ = find_captures([DEGRADED / "snoop", DEGRADED / "erf", DEGRADED / "5views"])
    assert SNOOP in files and DEGRADED / "erf" / "expired_curl.erf" in files


# ---- conversion ----------------------------------------------------------------------------


CONVERTED = [n for n, _ in MAGIC_FILES if not n.startswith("snoop/")]


@needs_editcap
@pytest.mark.parametrize("name", CONVERTED)
def test_converted_with_editcap(name: str) -> None:
    result = analyze_file(DEGRADED / name)
    clean = analyze_file(REAL / "expired_curl.pcap")
    assert result.error is None, result.error
    fmt = dict(MAGIC_FILES)[name]
    assert result.format == f"{fmt} (converted by editcap)"
    first = result.anomalies[0]
    assert first.name == "converted_format" and first.frame is None
    assert first.detail.startswith(f"{fmt} capture: converted to pcapng by Wireshark's editcap")
    assert result.packets == clean.packets and result.file == str(DEGRADED / name)
    assert _alerts(result) == _alerts(clean) == [[10, "client", "fatal", "certificate_expired"]]


@needs_editcap
def test_gzip_compressed_foreign_file_is_converted(tmp_path: Path) -> None:
    path = tmp_path / "trace.cap.gz"
    path.write_bytes(gzip.compress(NETMON2.read_bytes()))
    result = analyze_file(path)
    name = "Microsoft Network Monitor 2.x"
    assert result.error is None and result.format == f"{name} (converted by editcap)"
    assert result.anomalies[0].detail.startswith(f"{name} capture inside gzip: converted")


def test_without_editcap_the_error_names_the_format_and_the_command(no_editcap: None) -> None:
    result = analyze_file(NETMON2)
    assert result.connections == [] and result.packets == 0
    assert result.error == (
        "Microsoft Network Monitor 2.x capture: tlspcap reads pcap and pcapng; convert it with "
        f"Wireshark's editcap (editcap is not installed): editcap -F pcapng {NETMON2} "
        f"{NETMON2.with_suffix('.pcapng')}"
    )


def test_compressed_files_say_how_to_decompress(tmp_path: Path) -> None:
    path = tmp_path / "trace.pcap.zst"
    path.write_bytes(b"\x28\xb5\x2f\xfd" + bytes(50))
    result = analyze_file(path)
    assert result.error == f"zstd-compressed file: decompress it: zstd -d {path}, then analyse that"


@needs_editcap
def test_editcap_failure_is_the_file_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.snoop"
    path.write_bytes(b"snoop\0\0\0" + struct.pack(">II", 99, 4) + bytes(30))  # version 99
    result = analyze_file(path)
    assert result.error is not None
    assert result.error.startswith("Sun snoop capture: tlspcap reads pcap and pcapng; convert it")
    assert "(editcap failed with exit status 2: The file " in result.error
    assert "(snoop: version 99 unsupported)" in result.error


@needs_editcap
def test_output_bound_stops_the_conversion(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(convert, "MAX_CONVERTED_BYTES", 1000)
    result = analyze_file(NETMON2)
    assert result.error is not None and result.connections == []
    assert "(editcap's pcapng copy passed 1000 bytes (the bound: 16 times the file, at most " in (
        result.error
    )
    assert "1000); conversion stopped): editcap -F pcapng " in result.error


def test_converted_limit() -> None:
    assert convert.converted_limit(10) == 16 << 20  # at least 1 MiB times the ratio
    assert convert.converted_limit(100 << 20) == 1600 << 20
    assert convert.converted_limit(1 << 40) == convert.MAX_CONVERTED_BYTES


@needs_editcap
@pytest.mark.parametrize("path", [NETMON2, Path("broken")], ids=["converted", "failed"])
def test_the_private_directory_is_removed(
    path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    if path.name == "broken":
        path = tmp_path / "broken.snoop"
        path.write_bytes(b"snoop\0\0\0" + bytes(40))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    seen: list[str] = []
    real = convert.converted

    def spy(p: Path) -> Any:
        seen.append(str(list(scratch.iterdir())))
        return real(p)

    monkeypatch.setattr(convert, "converted", spy)
    analyze_file(path)
    assert seen and list(scratch.iterdir()) == []


@needs_editcap
def test_only_editcap_is_started_and_only_for_foreign_formats(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started: list[list[str]] = []
    real = subprocess.Popen

    def record(args: list[str], *a: Any, **kw: Any) -> Any:
        started.append(list(args))
        return real(args, *a, **kw)

    monkeypatch.setattr(subprocess, "Popen", record)
    analyze_file(REAL / "expired_curl.pcap")
    analyze_file(REAL / "pcapng_tls13.pcapng")
    analyze_file(SNOOP)
    assert started == []
    analyze_file(NETMON2)
    [args] = started
    assert Path(args[0]).name == "editcap" and args[1:5] == ["-F", "pcapng", "--", str(NETMON2)]
    assert args[5].endswith("/converted.pcapng")
