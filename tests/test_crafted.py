"""analyze_file on the crafted captures against their ground truth (fixtures/crafted/expected.json).

expected.json is ground truth by construction (byte ranges per frame, checked against tshark);
see fixtures/crafted/README.md. Connections are matched by (client, server) endpoints in start
order. Where the ground truth leaves room (what a reader sees after a capture gap), only what
must hold is asserted.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest
from vectors import CRAFTED_DIR, load_expected

from tlspcap.analyze import CaptureResult, analyze_file
from tlspcap.capture.model import format_endpoint
from tlspcap.session import TlsSession
from tlspcap.tcp.tracker import TcpConnection

EXPECTED: dict[str, Any] = load_expected()["captures"]
NAMES = sorted(EXPECTED)


@functools.cache
def analyzed(name: str) -> CaptureResult:
    return analyze_file(CRAFTED_DIR / name)


def pairs(name: str) -> list[tuple[TcpConnection, dict[str, Any]]]:
    """(connection, expected connection) in start order, after checking the endpoints match."""
    result = analyzed(name)
    exp = EXPECTED[name]["connections"]
    got = [
        (
            format_endpoint(*c.endpoints[c.client_dir]),
            format_endpoint(*c.endpoints[c.server_dir]),
        )
        for c in result.connections
    ]
    assert got == [(e["client"], e["server"]) for e in exp]
    return list(zip(result.connections, exp, strict=True))


def snaplen_frames(s: TlsSession) -> set[int]:
    return {a.frame for a in s.anomalies if a.name == "snaplen_truncated" and a.frame is not None}


def test_every_capture_is_covered() -> None:
    files = sorted(p.name for p in CRAFTED_DIR.iterdir() if p.name.endswith((".pcap", ".gz", "ng")))
    assert files == NAMES
    assert len(NAMES) == 22


@pytest.mark.parametrize("name", NAMES)
def test_file_level_facts(name: str) -> None:
    exp = EXPECTED[name]
    result = analyzed(name)
    assert result.error is None
    assert result.packets == exp["packets"]
    assert result.truncated == bool(exp["truncated"])
    assert result.format is not None
    assert result.format.startswith(exp["format"])
    assert result.format.endswith("+gzip") == exp["gzip"]


@pytest.mark.parametrize("name", NAMES)
def test_connections_by_endpoints(name: str) -> None:
    for conn, exp in pairs(name):
        assert conn.first_frame == exp["first_frame"]
        assert conn.last_frame == exp["last_frame"]
        assert conn.packets == exp["packets"]
        assert conn.syn_frame == exp["syn_frame"]


@pytest.mark.parametrize("name", NAMES)
def test_hello_frames(name: str) -> None:
    for conn, exp in pairs(name):
        s = conn
        assert [h.frame for h in s.client_hellos] == exp["client_hello_frames"]
        assert [h.frame for h in s.server_hellos] == exp["server_hello_frames"]
        if exp["server_hello_frames"]:
            assert s.version == int(exp["server_hello_version"], 16)
            assert s.cipher == int(exp["cipher_suite"], 16)
        else:
            assert s.version is None


@pytest.mark.parametrize("name", NAMES)
def test_handshake_message_frames(name: str) -> None:
    # The session records the frames of ClientHello, ServerHello, Certificate and
    # ServerHelloDone messages; compare those with the ground truth.
    for conn, exp in pairs(name):
        s = conn
        want = {
            (m["sender"], m["type"], m["frame"])
            for m in exp["handshake_messages"]
            if m["type"] in (1, 2, 11, 14)
        }
        got = {("client", 1, h.frame) for h in s.client_hellos}
        got |= {("server", 2, h.frame) for h in s.server_hellos if not h.sslv2}
        got |= {("server", 11, c.frame) for c in s.server.certificates if not c.truncated}
        got |= {("client", 11, c.frame) for c in s.client.certificates if not c.truncated}
        if s.server_hello_done_frame is not None:
            got.add(("server", 14, s.server_hello_done_frame))
        for gap in exp["gaps"]:  # read after a hole, no earlier than the bytes allow
            sender = "server" if gap["direction"] == "server_to_client" else "client"
            for entry in gap["readable_after_gap"]:
                if entry["kind"] != "handshake" or entry["type"] not in (1, 2, 11, 14):
                    continue
                (late,) = [g for g in got if g[:2] == (sender, entry["type"])]
                assert late[2] >= entry["frame_min"]
                got.discard(late)
        assert got == want


@pytest.mark.parametrize("name", NAMES)
def test_server_certificates(name: str) -> None:
    for conn, exp in pairs(name):
        certs = conn.server.certificates
        count = len(certs[0].chain) if certs and not certs[0].truncated else None
        assert count == exp["server_certificates"]
        cut = [g["record_cut_by_gap"] for g in exp["gaps"] if g["record_cut_by_gap"]]
        if cut == [{"kind": "handshake", "type": 11}]:  # read as far as the hole
            assert certs and certs[0].truncated


@pytest.mark.parametrize("name", NAMES)
def test_alerts(name: str) -> None:
    for conn, exp in pairs(name):
        alerts = conn.alerts
        plain = [(a.frame, a.sender, a.level, a.description) for a in alerts if not a.encrypted]
        assert plain == [
            (a["frame"], a["sender"], a["level_code"], a["description_code"]) for a in exp["alerts"]
        ]
        encrypted = [(a.frame, a.sender) for a in alerts if a.encrypted]
        assert encrypted == [(a["frame"], a["sender"]) for a in exp["encrypted_alerts"]]


@pytest.mark.parametrize("name", NAMES)
def test_encrypted_finished(name: str) -> None:
    for conn, exp in pairs(name):
        s = conn
        firsts = []
        for direction in (s.client_dir, s.server_dir):
            logged = [r for r in s.encrypted_log if r.direction == direction]
            if logged and logged[0].content_type == 22:
                firsts.append((logged[0].frame, s.role(direction)))
        want = [(f["frame"], f["sender"]) for f in exp["encrypted_finished"]]
        for gap in exp["gaps"]:  # an encrypted Finished read after a hole
            sender = "server" if gap["direction"] == "server_to_client" else "client"
            for entry in gap["readable_after_gap"]:
                if entry["kind"] == "encrypted_handshake":
                    (late,) = [x for x in firsts if x[1] == sender and x not in want]
                    assert late[0] >= entry["frame_min"]
                    want.append(late)
        assert sorted(firsts) == sorted(want)


@pytest.mark.parametrize("name", NAMES)
def test_snaplen_cuts(name: str) -> None:
    for conn, exp in pairs(name):
        # One anomaly per direction, at the first frame the snap length cut.
        cut = exp["payload_cut_by_snaplen_frames"]
        assert sorted(snaplen_frames(conn)) == (sorted({min(cut)}) if cut else [])


@pytest.mark.parametrize("name", NAMES)
def test_gaps(name: str) -> None:
    for conn, exp in pairs(name):
        s = conn
        cut = snaplen_frames(s)
        gaps = [a for a in s.anomalies if a.name == "tcp_gap" and a.frame not in cut]
        if not exp["gaps"]:
            assert gaps == []
            continue
        # gap.pcap: server -> client bytes [1448, 2896) of the stream are missing. The ground
        # truth fixes the hole, not the frame at which a reader notices it, nor what a reader
        # that resynchronises may find later: check what must hold.
        (want,) = exp["gaps"]
        assert want["direction"] == "server_to_client"
        assert len(gaps) == 1
        assert gaps[0].detail.startswith(f"{want['missing_bytes']} bytes missing")
        assert gaps[0].frame is not None
        assert gaps[0].frame >= want["first_frame_after_gap"]
        assert s.client.gap_frames == []
        assert s.server.gap_frames == [gaps[0].frame]
        # Nothing is read across the gap: the Certificate it cuts is read as far as the gap
        # (no certificate whole), the records after it at their true boundaries; the client
        # side is unaffected.
        assert want["record_cut_by_gap"] == {"kind": "handshake", "type": 11}
        (cert,) = s.server.certificates
        assert cert.truncated and cert.chain == ()
        assert not any(a.name == "record_lost_in_gap" for a in s.anomalies)
        readable = {e["type"]: e["frame_min"] for e in want["readable_after_gap"] if "type" in e}
        assert s.server_hello_done_frame is not None
        assert s.server_hello_done_frame >= readable[14]
        assert [h.frame for h in s.server_hellos] == exp["server_hello_frames"]
        assert [h.frame for h in s.client_hellos] == exp["client_hello_frames"]
