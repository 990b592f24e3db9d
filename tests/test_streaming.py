"""Streaming analysis: connections retired as they close, diagnosed at once, spooled to disk.

The streaming path (what ``tlspcap analyze`` runs) must give exactly the results of analysing
the whole capture first, while holding only the connections still open.
"""

from __future__ import annotations

import pickle
import random
import weakref
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tlspcap import batch
from tlspcap.analyze import analyze_file
from tlspcap.capture.decode import segment_decoder
from tlspcap.capture.model import TcpSegment
from tlspcap.capture.reader import CaptureReader
from tlspcap.diagnosis.engine import Options, StreamingDiagnosis, Verdict, diagnose_capture
from tlspcap.diagnosis.knowledge import CaptureKnowledge, learn
from tlspcap.facts import spool as spool_module
from tlspcap.facts.collect import collect
from tlspcap.facts.model import ConnFacts
from tlspcap.report import jsonfmt
from tlspcap.report.spool import ConnectionSpool, SpooledConnections
from tlspcap.report.summary import ConnectionReport
from tlspcap.session import TlsSession
from tlspcap.tcp.tracker import IDLE_SECONDS, LINGER_SECONDS, ConnectionTracker

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT / "fixtures" / "real"
CRAFTED = ROOT / "fixtures" / "crafted"
CORPUS = ROOT.parent / "shared" / "corpus"
CA_PEM = (REAL / "certs" / "root.pem").read_bytes()
CAPTURES = sorted(
    p
    for d in (REAL, CRAFTED, CORPUS)
    for p in d.rglob("*")
    if p.name.endswith((".pcap", ".pcapng", ".pcap.gz", ".cap"))
)


def _whole(path: Path, settings: batch.Settings) -> list[object]:
    """The contract dicts from the analyse-then-diagnose path (everything kept in memory)."""
    result = analyze_file(path, settings.keylog)
    verdicts = diagnose_capture(result, batch.options_for(settings))
    return [
        jsonfmt.connection_to_dict(c, v) for c, v in zip(result.connections, verdicts, strict=True)
    ]


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_streaming_gives_the_results_of_the_whole_capture(path: Path, tmp_path: Path) -> None:
    settings = batch.Settings(ca_pem=CA_PEM, formats=frozenset({"json"}))
    spooled = batch.analyze_one(str(path), replace(settings, spool_dir=str(tmp_path)))
    in_memory = batch.analyze_one(str(path), settings)
    assert isinstance(spooled.connections, SpooledConnections)
    assert [c.data for c in spooled.connections] == [c.data for c in in_memory.connections]
    assert [c.data for c in in_memory.connections] == _whole(path, settings)


def test_capture_knowledge_does_not_depend_on_learning_order() -> None:
    result = analyze_file(REAL / "mixed_ports.pcap")
    forward, backward = learn(result.connections), learn(result.connections[::-1])
    assert forward.servers == backward.servers
    assert {c.fingerprint(_sha256()) for c in forward.certificate_list} == {
        c.fingerprint(_sha256()) for c in backward.certificate_list
    }


def _sha256() -> object:
    from cryptography.hazmat.primitives import hashes

    return hashes.SHA256()


def _emitted(path: Path, spool_dir: str | None) -> list[tuple[ConnFacts, Verdict]]:
    out: list[tuple[ConnFacts, Verdict]] = []
    options = batch.options_for(batch.Settings(ca_pem=CA_PEM))
    diagnosis = StreamingDiagnosis(options, lambda c, v: out.append((c, v)), spool_dir)
    result = analyze_file(path, on_connection=diagnosis.add)
    assert diagnosis.deferred > 0
    if spool_dir is not None:  # what waits is on disk, as facts
        assert len(list(Path(spool_dir).glob("facts-*.spool"))) == 1
    diagnosis.finish(result.last_ts)
    assert not list(Path(spool_dir).iterdir()) if spool_dir is not None else True
    return out


@pytest.mark.parametrize("on_disk", [False, True])
def test_verdicts_that_read_capture_wide_facts_wait_for_the_end(
    on_disk: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sni_missing.pcap: the failures cite a later connection's answer (with SNI) to the
    same server, so they are emitted after it, at the end, from facts spooled to disk."""
    monkeypatch.setattr(spool_module, "IN_MEMORY", 0)  # every waiting verdict goes to disk
    waited = _emitted(REAL / "sni_missing.pcap", str(tmp_path) if on_disk else None)
    failed = [c.index for c, v in waited if v.outcome == "failed"]
    established = [c.index for c, v in waited if v.outcome == "established"]
    assert failed and established
    assert [c.index for c, _ in waited] == established + failed  # failures held back
    assert {v.cause for c, v in waited if c.index in failed} == {"sni_missing"}


def test_thousands_of_waiting_verdicts_do_not_change_with_the_capture_size(
    tmp_path: Path,
) -> None:
    """No cap on the verdicts that wait: 3,000 copies of sni_missing.pcap's connections in one
    capture get exactly the verdict each copy gets alone."""
    template = _segments(REAL / "sni_missing.pcap")
    alone = _emitted(REAL / "sni_missing.pcap", None)
    want = {c.index: (v.outcome, v.cause) for c, v in alone}
    per_copy = len(want)
    out: list[tuple[ConnFacts, Verdict]] = []
    options = batch.options_for(batch.Settings(ca_pem=CA_PEM))
    diagnosis = StreamingDiagnosis(options, lambda c, v: out.append((c, v)), str(tmp_path))
    tracker = ConnectionTracker(on_close=lambda c: diagnosis.add(collect(c)))
    copies = 3000 // per_copy
    for seg in _replayed(template, copies, 0.001, by_server=True):
        tracker.feed(seg)
    for conn in tracker.finish():
        diagnosis.add(collect(conn))
    diagnosis.finish(None)
    assert diagnosis.deferred >= 1000
    assert len(out) == copies * per_copy
    for facts, verdict in out:
        assert (verdict.outcome, verdict.cause) == want[facts.index % per_copy]
    assert not any(a.name == "diagnosed_early" for c, _ in out for a in c.anomalies)


# ---- the table holds only what is still open ----------------------------------------------
def _segments(path: Path) -> list[TcpSegment]:
    with path.open("rb") as fh:
        reader = CaptureReader(fh)
        segments = []
        for packet in reader.packets():
            seg = segment_decoder(packet.linktype)(packet)
            if seg is not None:
                segments.append(seg)
    return segments


def _template() -> list[TcpSegment]:
    """The segments of one real, cleanly closed TLS 1.3 connection."""
    segments = _segments(REAL / "tls13_ok_curl_nginx.pcap")
    client_port = segments[0].sport
    return [s for s in segments if client_port in (s.sport, s.dport)]


def _replayed(
    template: list[TcpSegment], copies: int, spacing: float, by_server: bool = False
) -> Iterator[TcpSegment]:
    """``copies`` of the segments, one after another: each copy from its own client port (or,
    ``by_server``, with every address moved to a copy of its own, so each copy has its own
    servers and ports stay as they are)."""
    base = template[0].ts
    client_port = template[0].sport
    frame = 0
    for i in range(copies):
        port = 20000 + i
        for seg in template:
            frame += 1
            if by_server:
                moved = replace(
                    seg,
                    frame=frame,
                    ts=seg.ts - base + i * spacing,
                    src=_moved(seg.src, i),
                    dst=_moved(seg.dst, i),
                )
            else:
                moved = replace(
                    seg,
                    frame=frame,
                    ts=seg.ts - base + i * spacing,
                    sport=port if seg.sport == client_port else seg.sport,
                    dport=port if seg.dport == client_port else seg.dport,
                )
            yield moved


def _moved(addr: bytes, copy: int) -> bytes:
    """``addr`` moved into 10.x.y.z, one /24 per copy, keeping its last byte."""
    return bytes((10, (copy >> 8) & 0xFF, copy & 0xFF, addr[-1]))


@pytest.mark.parametrize("spacing", [LINGER_SECONDS * 1.5, IDLE_SECONDS * 1.2])
def test_closed_and_quiet_connections_are_retired_as_the_capture_goes_on(spacing: float) -> None:
    """1,000 connections one after another (closed both ways, or left open and quiet): each is
    handed over and freed soon after its end, so at most a few sessions are alive at once."""
    template = _template()
    if spacing > IDLE_SECONDS:  # never closed: only the inactivity timeout retires them
        template = [s for s in template if not s.flags & 0x05]
    alive: weakref.WeakSet[TlsSession] = weakref.WeakSet()
    peak = 0

    def factory(endpoints: tuple[tuple[bytes, int], tuple[bytes, int]]) -> TlsSession:
        session = TlsSession(endpoints)
        alive.add(session)
        return session

    idle: list[bool] = []
    diagnosis = StreamingDiagnosis(
        Options(),
        lambda c, v: idle.append(any(a.name == "connection_idle" for a in c.anomalies)),
    )
    tracker = ConnectionTracker(factory, on_close=lambda c: diagnosis.add(collect(c)))
    for seg in _replayed(template, 1000, spacing):
        tracker.feed(seg)
        peak = max(peak, len(alive))
    tracker.finish()
    diagnosis.finish(None)
    assert len(idle) == 1000
    assert peak <= 4, f"{peak} sessions alive at once"
    # retired for being quiet is said (all but the last, which the end of the capture retires)
    assert sum(idle) == (999 if spacing > IDLE_SECONDS else 0)


# ---- the spool ------------------------------------------------------------------------------
def test_spool_reads_back_in_start_order_filters_slices_and_pickles(tmp_path: Path) -> None:
    spool = ConnectionSpool(str(tmp_path))
    for index in (3, 0, 2, 1):  # connections close in another order than they start
        spool.add(index, ConnectionReport(data={"index": index, "s": "é" * index}))
    conns = spool.close()
    assert [c.data["index"] for c in conns] == [0, 1, 2, 3]
    assert len(conns) == 4 and conns[2].data == {"index": 2, "s": "éé"}
    assert [c.data["index"] for c in conns[1:3]] == [1, 2]
    odd = conns.filter(lambda c: c.data["index"] % 2 == 1)
    assert [c.data["index"] for c in odd] == [1, 3]
    again = pickle.loads(pickle.dumps(odd))
    assert [c.data for c in again] == [c.data for c in odd]
    assert list(ConnectionSpool(str(tmp_path)).close()) == []


def test_spool_in_a_missing_directory_is_an_error_for_that_file(tmp_path: Path) -> None:
    settings = batch.Settings(spool_dir=str(tmp_path / "gone"))
    report = batch.analyze_one(str(REAL / "sni_missing.pcap"), settings)
    assert report.error is not None and "cannot create a report spool" in report.error


def test_knowledge_notes_when_it_is_read() -> None:
    know = CaptureKnowledge()
    assert not know.consulted
    _ = know.certificates  # handing the list over is not reading it
    assert not know.consulted
    list(know.certificates)
    assert know.consulted
    know.reads.clear()
    know.server("192.0.2.1:443")
    assert know.consulted


def test_capped_list_survives_pickling() -> None:
    from tlspcap.anomaly import CappedList

    capped: CappedList[int] = CappedList(2)
    capped.extend([1, 2, 3, 4])
    again = pickle.loads(pickle.dumps(capped))
    assert (list(again), again.cap, again.dropped) == ([1, 2], 2, 2)
    again.append(5)
    assert again.dropped == 3


def _verdicts_of(facts: list[ConnFacts], spool_dir: str | None) -> list[object]:
    out: list[object] = []
    diagnosis = StreamingDiagnosis(
        batch.options_for(batch.Settings(ca_pem=CA_PEM)),
        lambda f, v: out.append(jsonfmt.connection_to_dict(f, v)),
        spool_dir,
    )
    for f in facts:
        diagnosis.add(f)
    diagnosis.finish(None)
    return out


def test_no_server_cap_changes_a_verdict(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Past MAX_SERVERS in memory, the least recent server's facts go to a file and come back:
    a large hello's A/B evidence (a smaller hello the same server answered) survives a crowd of
    other servers learnt in between."""
    from tlspcap.diagnosis import knowledge

    ab = analyze_file(REAL / "large_client_hello_onerecv.pcap").connections
    crowd = [
        c
        for p in ("mixed_ports.pcap", "ipv6_tls13.pcap")
        for c in analyze_file(REAL / p).connections
    ]
    assert len(ab) >= 2 and {c.server_endpoint for c in crowd} - {ab[0].server_endpoint}
    facts = [ab[0], *crowd, *ab[1:]]
    reference = _verdicts_of(facts, None)
    assert any(v["cause"] == "large_client_hello" for v in reference)  # type: ignore[index]
    monkeypatch.setattr(knowledge, "MAX_SERVERS", 1)
    assert _verdicts_of(facts, str(tmp_path)) == reference
    assert list(tmp_path.iterdir()) == []  # the spill file is removed at the end


def test_certificate_memory_is_bounded_by_distinct_ders(monkeypatch: pytest.MonkeyPatch) -> None:
    """A capture with ever new certificate bytes (a hostile one may hold millions) stops adding
    to the pool once MAX_SEEN_CERTIFICATES distinct DERs were seen; the servers' facts go on."""
    from tlspcap.diagnosis import knowledge

    conns = [
        c for c in analyze_file(REAL / "mixed_ports.pcap").connections if c.server.certificates
    ]
    assert conns
    monkeypatch.setattr(knowledge, "MAX_SEEN_CERTIFICATES", 3)
    know = CaptureKnowledge()
    for n in range(10):  # the same connection with a different (unparsable) chain each time
        side = conns[0].server
        cert = replace(side.certificates[0], chain=(b"\x30\x03junk-%d" % n,))
        server = replace(side, certificates=(cert,))
        know.learn(replace(conns[0], sides=_with_side(conns[0], server)))
    assert len(know._seen_der) == 3
    know.learn(conns[0])  # a real chain, past the bound: not pooled
    assert know.certificate_list == []
    assert know.servers  # what the connections showed about the server was still learnt


def _with_side(conn: ConnFacts, server: object) -> tuple[object, object]:
    """``conn``'s sides with its server side replaced."""
    sides = list(conn.sides)
    sides[conn.server_dir] = server
    return (sides[0], sides[1])


@given(st.lists(st.integers(0, 50), max_size=40))
def test_spool_start_order_is_a_stable_sort_by_index(indexes: list[int]) -> None:
    from array import array

    from tlspcap.report.spool import _start_order

    expected = sorted(range(len(indexes)), key=indexes.__getitem__)
    assert list(_start_order(array("q", indexes))) == expected


def _streamed(facts: list[ConnFacts], spool_dir: str | None) -> tuple[dict[int, object], int, int]:
    """Contract dicts by connection index from a StreamingDiagnosis fed ``facts`` in that order;
    the number of verdicts that waited, and of those diagnosed again at the end."""
    out: dict[int, object] = {}
    diagnosis = StreamingDiagnosis(
        batch.options_for(batch.Settings(ca_pem=CA_PEM)),
        lambda f, v: out.__setitem__(f.index, jsonfmt.connection_to_dict(f, v)),
        spool_dir,
    )
    for f in facts:
        diagnosis.add(f)
    diagnosis.finish(max((f.last_ts for f in facts), default=None))
    return out, diagnosis.deferred, diagnosis.rediagnosed


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_waiting_verdicts_kept_or_redone_match_the_whole_capture(path: Path) -> None:
    """A waiting verdict is emitted as computed when nothing it read changed, else diagnosed
    again: in any order of the connections, the verdicts are those of the whole capture."""
    result = analyze_file(path)
    facts = result.connections
    whole = diagnose_capture(
        replace(result, last_ts=max((f.last_ts for f in facts), default=None)),
        batch.options_for(batch.Settings(ca_pem=CA_PEM)),
    )
    expected = {
        f.index: jsonfmt.connection_to_dict(f, v) for f, v in zip(facts, whole, strict=True)
    }
    rng = random.Random(path.name)
    for order in (facts, facts[::-1], rng.sample(facts, len(facts))):
        got, _, _ = _streamed(order, None)
        assert got == expected


def test_verdicts_are_redone_only_when_what_they_read_changed() -> None:
    """Of the waiting verdicts of the real fixtures in capture order, most read nothing that
    later connections changed; learnt backwards, the same captures redo more of them."""
    kept = redone = redone_backwards = 0
    for path in sorted(REAL.glob("*.pcap")):
        facts = analyze_file(path).connections
        _, deferred, again = _streamed(facts, None)
        kept += deferred - again
        redone += again
        redone_backwards += _streamed(facts[::-1], None)[2]
    assert kept > 0 and redone > 0
    assert redone_backwards > redone


def test_knowledge_versions_move_only_when_facts_change() -> None:
    from tlspcap.diagnosis import knowledge

    conns = analyze_file(REAL / "mixed_ports.pcap").connections
    tls = next(c for c in conns if c.server_hellos)
    know = CaptureKnowledge()
    know.learn(tls)
    know.reads.clear()
    know.server(tls.server_endpoint)
    _ = len(know.certificates)
    reads = list(know.reads)
    assert [r[0] for r in reads] == [knowledge.SERVER, knowledge.POOL]
    assert know.unchanged(reads)
    know.learn(tls)  # the same connection again: nothing new
    assert know.unchanged(reads)
    later = replace(tls, server_hellos=[replace(tls.server_hellos[0], cipher_suite=0x002F)])
    know.learn(later)  # a cipher suite this server had not chosen before
    assert not know.unchanged(reads)
    know.reads.clear()
    know.read_end()
    assert not know.unchanged(know.reads)  # the capture's end is never known early
