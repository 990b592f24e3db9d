"""Cross-check tlspcap's handshake facts against Wireshark's dissection of the same captures.

Every capture of the shared corpus and every fixture is read by tlspcap and by tshark
(:mod:`tshark_facts`); per TCP connection, matched by (client, server) and order, the ClientHellos,
ServerHellos, cleartext alerts and server certificates must agree. The standalone tests at the end
check the tshark side itself against the facts MANIFEST.md states about the corpus.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib
import json
import os
import re
import shutil
import threading
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from tshark_facts import decode_as_args, tshark_connections

REPO_ROOT = Path(__file__).resolve().parents[1]
CORPUS_DIR = REPO_ROOT.parent / "shared" / "corpus"
FIXTURES_DIR = REPO_ROOT / "fixtures"
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".pcap.gz")

#: (capture id, field) -> why tshark 4.0.17 is wrong there. A field is a path as the diff prints it
#: without indexes ("server_hellos.extensions", "alerts", "connections", ...); an entry also covers
#: the fields below it. Each entry must still suppress a difference, else the test fails (stale).
TSHARK_KNOWN_WRONG: dict[tuple[str, str], str] = {
    ("corpus/zeek/tls-fragmented-handshake.pcap", "certificates"): (
        "the server's Certificate message (339,629 bytes, one certificate with thousands of SANs)"
        " spans 21 full 16 KiB handshake records (frames 6-410); tshark 4.0.17 does not reassemble"
        " it and labels each record 'Encrypted Handshake Message' although no ChangeCipherSpec"
        " was sent; reassembling the TCP stream by hand gives one certificate, complete at frame"
        " 410, as tlspcap reports"
    ),
}

CLIENT_HELLO_FIELDS = (
    "frame",
    "legacy_version",
    "supported_versions",
    "cipher_suites",
    "extensions",
    "sni",
    "alpn",
)
SERVER_HELLO_FIELDS = ("frame", "version", "cipher_suite", "extensions", "hello_retry_request")
ALERT_FIELDS = ("frame", "sender", "level", "description")


def _captures(root: Path, prefix: str) -> list[tuple[str, Path]]:
    if not root.is_dir():
        return []
    found = [
        p
        for p in root.rglob("*")
        if p.is_file()
        and p.name.endswith(CAPTURE_SUFFIXES)
        and "degraded" not in p.relative_to(root).parts
    ]
    return [(f"{prefix}/{p.relative_to(root).as_posix()}", p) for p in sorted(found)]


#: Degraded variant kinds tshark reads as they are (fixtures/degraded/MANIFEST.json): every
#: tunnel and the IP fragments (tshark reassembles them and shows the result in the frame that
#: completes the datagram, as tlspcap does). Lossy variants and foreign formats are not here.
CROSSCHECKED_KINDS = frozenset({"tunnel", "fragments"})
#: ... of these fixtures (each tshark run costs ~0.3 s): TLS 1.2 with certificates and a client
#: alert, IPv6, a Linux cooked capture re-framed as Ethernet, and 8 connections on one file.
CROSSCHECKED_SOURCES = frozenset(
    {"expired_curl.pcap", "ipv6_tls13.pcap", "cooked_any_tls12.pcap", "mixed_ports.pcap"}
)

#: tshark arguments a variant needs: tshark dissects VXLAN on UDP 4789 only, and an MPLS payload
#: whose first nibble is 0 as a generic control word (tlspcap: control word and Ethernet).
VARIANT_TSHARK_ARGS: dict[str, tuple[str, ...]] = {
    "vxlan_8472": ("-d", "udp.port==8472,vxlan"),
    "mpls_pseudowire": ("-d", "mpls.label==2002,pwethcw"),
}


def _degraded_captures() -> list[tuple[str, Path]]:
    manifest = FIXTURES_DIR / "degraded" / "MANIFEST.json"
    if not manifest.is_file():
        return []
    doc = json.loads(manifest.read_text())
    return [
        (f"fixtures/degraded/{e['file']}", FIXTURES_DIR / "degraded" / e["file"])
        for e in doc["entries"]
        if doc["variants"][e["variant"]]["kind"] in CROSSCHECKED_KINDS
        and e["source"] in CROSSCHECKED_SOURCES
    ]


def _extra_args(path: Path) -> tuple[str, ...]:
    """tshark arguments for one capture (a degraded variant's, from its directory name)."""
    if path.parent.parent.name == "degraded":
        return VARIANT_TSHARK_ARGS.get(path.parent.name, ())
    return ()


ALL_CAPTURES = (
    _captures(CORPUS_DIR, "corpus") + _captures(FIXTURES_DIR, "fixtures") + _degraded_captures()
)


#: tshark runs started so far, by (capture, its mtime and size, extra arguments): each runs once
#: per session (the stat keeps a capture rewritten meanwhile, e.g. by make fixtures, from being
#: compared with a stale dissection).
_RUNS: dict[tuple[Path, int, int, tuple[str, ...]], Future[list[dict[str, Any]]]] = {}
_RUNS_LOCK = threading.Lock()
#: tshark spends most of its ~0.3 s per file starting up, so the runs the session will need are
#: started ahead in background threads (one per core) while tlspcap works in the main thread.
_POOL = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="tshark")


def _start_tshark(path: Path, extra_args: tuple[str, ...] = ()) -> Future[list[dict[str, Any]]]:
    stat = path.stat()
    key = (path, stat.st_mtime_ns, stat.st_size, extra_args)
    with _RUNS_LOCK:
        run = _RUNS.get(key)
        if run is None:
            run = _RUNS[key] = _POOL.submit(tshark_connections, path, extra_args)
        return run


def _tshark(path: Path, extra_args: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """tshark's view of a capture, computed once per session for each set of arguments."""
    return _start_tshark(path, extra_args).result()


@pytest.fixture(scope="session", autouse=True)
def _prefetch_tshark(request: pytest.FixtureRequest) -> Iterator[None]:
    """Start, in the background, the tshark runs of the selected tests of this module."""
    for item in request.session.items if shutil.which("tshark") else []:
        if getattr(getattr(item, "module", None), "__name__", None) != __name__:
            continue
        params = getattr(getattr(item, "callspec", None), "params", {})
        with contextlib.suppress(OSError):  # a capture gone since collection: its test will say
            path, name = params.get("path"), params.get("name")
            if isinstance(path, Path):
                _start_tshark(path, _extra_args(path))
            elif isinstance(name, str):
                _start_tshark(CORPUS_DIR / name, _manifest_args(name))
    yield
    for run in list(_RUNS.values()):
        run.cancel()


# --- comparison --------------------------------------------------------------------------------


def _cleartext_alerts(conn: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for a in conn.get("alerts", []) if not a.get("encrypted")]


def _has_facts(conn: dict[str, Any]) -> bool:
    return bool(
        conn.get("client_hellos")
        or conn.get("server_hellos")
        or conn.get("certificates")
        or _cleartext_alerts(conn)
    )


def _key(conn: dict[str, Any]) -> tuple[str, str]:
    return (str(conn["client"]), str(conn["server"]))


def _server_port(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


def tshark_view(path: Path, ours: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """tshark's connections, with TLS decoding forced on ports where tlspcap found TLS and tshark
    by its port table did not.

    Forcing TLS on every port tlspcap reports would break tshark's STARTTLS dissectors (with
    ``-d tcp.port==5432,tls`` the PostgreSQL SSLRequest answer is taken for a record header and
    the ServerHello becomes "Continuation Data"), so tshark runs a second time, with decode-as
    for the missing ports only, and only the connections missing from the first run are taken.
    """
    base = _tshark(path, _extra_args(path))
    seen = {_key(c) for c in base if _has_facts(c)}
    missing = {_server_port(c["server"]) for c in ours if _has_facts(c) and _key(c) not in seen}
    if not missing:
        return base
    forced = _tshark(path, _extra_args(path) + tuple(decode_as_args(missing)))
    extra = [c for c in forced if _has_facts(c) and _key(c) not in seen]
    return sorted(base + extra, key=lambda c: int(c["first_frame"]))


def _compare_list(
    field: str,
    ours: list[dict[str, Any]],
    theirs: list[dict[str, Any]],
    keys: tuple[str, ...],
) -> Iterator[tuple[str, str, Any, Any]]:
    """(field path, field without indexes, tlspcap value, tshark value) for each difference."""
    if len(ours) != len(theirs):
        yield f"{field} (count)", field, ours, theirs
        return
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        for k in keys:
            if a.get(k) != b.get(k):
                yield f"{field}[{i}].{k}", f"{field}.{k}", a.get(k), b.get(k)


def _summary(conn: dict[str, Any]) -> str:
    frames = {
        "ClientHello": [h["frame"] for h in conn["client_hellos"]],
        "ServerHello": [h["frame"] for h in conn["server_hellos"]],
        "certificate": [c["frame"] for c in conn["certificates"]],
        "alert": [a["frame"] for a in _cleartext_alerts(conn)],
    }
    return ", ".join(f"{k} at {v}" for k, v in frames.items() if v)


def compare_connections(
    ours_all: list[dict[str, Any]], theirs_all: list[dict[str, Any]]
) -> list[tuple[str, str, str, Any, Any]]:
    """Differences as (connection, field path, field without indexes, tlspcap, tshark)."""
    ours: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    theirs: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for c in ours_all:
        if _has_facts(c):
            ours[_key(c)].append(c)
    for c in theirs_all:
        if _has_facts(c):
            theirs[_key(c)].append(c)
    diffs: list[tuple[str, str, str, Any, Any]] = []
    for key in sorted(set(ours) | set(theirs)):
        a_list, b_list = ours.get(key, []), theirs.get(key, [])
        for n in range(max(len(a_list), len(b_list))):
            name = f"#{n + 1} {key[0]} -> {key[1]}"
            if n >= len(a_list) or n >= len(b_list):
                va = _summary(a_list[n]) if n < len(a_list) else "(no such connection)"
                vb = _summary(b_list[n]) if n < len(b_list) else "(no such connection)"
                diffs.append((name, "connections", "connections", va, vb))
                continue
            a, b = a_list[n], b_list[n]
            checks = (
                ("client_hellos", a["client_hellos"], b["client_hellos"], CLIENT_HELLO_FIELDS),
                ("server_hellos", a["server_hellos"], b["server_hellos"], SERVER_HELLO_FIELDS),
                ("alerts", _cleartext_alerts(a), b["alerts"], ALERT_FIELDS),
                ("certificates", a["certificates"], b["certificates"], ("frame",)),
            )
            for field, x, y, keys in checks:
                for path, bare, va, vb in _compare_list(field, x, y, keys):
                    diffs.append((name, path, bare, va, vb))
    return diffs


def _known_wrong(capture_id: str, bare_field: str) -> tuple[str, str] | None:
    for cap, field in TSHARK_KNOWN_WRONG:
        if cap == capture_id and (bare_field == field or bare_field.startswith(field + ".")):
            return (cap, field)
    return None


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 400 else text[:400] + "..."


@pytest.mark.parametrize(("capture_id", "path"), ALL_CAPTURES, ids=[c for c, _ in ALL_CAPTURES])
def test_tlspcap_agrees_with_tshark(capture_id: str, path: Path, tshark: str) -> None:
    analyze = importlib.import_module("tlspcap.analyze")
    jsonfmt = importlib.import_module("tlspcap.report.jsonfmt")
    ours: list[dict[str, Any]] = jsonfmt.capture_to_dict(analyze.analyze_file(path))["connections"]
    theirs = tshark_view(path, ours)
    used: set[tuple[str, str]] = set()
    lines: list[str] = []
    for conn, field, bare, va, vb in compare_connections(ours, theirs):
        entry = _known_wrong(capture_id, bare)
        if entry is not None:
            used.add(entry)
            continue
        lines.append(f"{capture_id}: connection {conn}: {field}")
        lines.append(f"    tlspcap: {_show(va)}")
        lines.append(f"    tshark:  {_show(vb)}")
    stale = [k for k in TSHARK_KNOWN_WRONG if k[0] == capture_id and k not in used]
    lines += [f"{capture_id}: TSHARK_KNOWN_WRONG entry {k} matches no difference" for k in stale]
    assert not lines, "tlspcap and tshark disagree:\n" + "\n".join(lines)


# --- the tshark side alone, against MANIFEST.md --------------------------------------------------

VERSION_NAMES = {"SSL2": 0x0002, "SSL3": 0x0300, "TLS1.0": 0x0301, "TLS1.1": 0x0302}
VERSION_NAMES |= {"TLS1.2": 0x0303, "TLS1.3": 0x0304}


def _version(name: str) -> int:
    if name in VERSION_NAMES:
        return VERSION_NAMES[name]
    draft = re.fullmatch(r"TLS1\.3-draft(\d+)", name)
    if draft:
        return 0x7F00 | int(draft.group(1))
    return int(name, 16)


@functools.cache
def _manifest() -> tuple[dict[str, dict[str, str]], dict[str, list[str]]]:
    """(row per capture path keyed by column name, decode-as args per capture path)."""
    text = (CORPUS_DIR / "MANIFEST.md").read_text(encoding="utf-8")
    rows: dict[str, dict[str, str]] = {}
    header: list[str] = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if line.startswith("| path |"):
            header = cells
        elif line.startswith("| `") and header:
            row = dict(zip(header, cells, strict=True))
            rows[row["path"].strip("`")] = row
    hints: dict[str, list[str]] = {}
    section = text.split("## Reading these with tshark", 1)[1].split("\n## ", 1)[0]
    for bullet in section.split("\n- "):
        pending: list[str] = []
        for token in re.findall(r"`([^`]+)`", bullet):
            if token.startswith("-d "):
                for name in pending:
                    hints.setdefault(name, []).extend(token.split(" ", 1))
                pending = []
            elif token.endswith(CAPTURE_SUFFIXES):
                pending.append(token)
    return rows, hints


def _manifest_rows() -> list[str]:
    if not (CORPUS_DIR / "MANIFEST.md").is_file():
        return []
    return sorted(_manifest()[0])


def _manifest_args(name: str) -> tuple[str, ...]:
    return tuple(_manifest()[1].get(name, []))


def _corpus_tshark(name: str) -> list[dict[str, Any]]:
    return _tshark(CORPUS_DIR / name, _manifest_args(name))


def test_manifest_parsing(corpus_dir: Path) -> None:
    rows, hints = _manifest()
    assert len(rows) == len(_captures(corpus_dir, "corpus")) == 79
    assert hints["ndpi/tls_port_80.pcapng"] == ["-d", "tcp.port==80,tls"]
    assert hints["zeek/ssl-to-http-server.pcap"] == ["-d", "tcp.port==80,tls"]
    assert hints["wireshark-notes/sslv2.pcapng"] == ["-d", "tcp.port==4433,tls"]
    assert hints["zeek/irc-starttls.pcap"] == ["-d", "tcp.port==6667,tls"]
    assert len(hints) == 4


@pytest.mark.parametrize("name", _manifest_rows())
def test_tshark_facts_match_manifest(name: str, corpus_dir: Path, tshark: str) -> None:
    """Handshake counts, alerts, versions, HRR, SNI and ports as MANIFEST.md states them."""
    row = _manifest()[0][name]
    conns = _corpus_tshark(name)
    chs = [h for c in conns for h in c["client_hellos"]]
    shs = [h for c in conns for h in c["server_hellos"]]
    counts = re.fullmatch(r"(\d+) CH / (\d+) SH", row["TLS handshakes"])
    assert counts, row["TLS handshakes"]
    assert (len(chs), len(shs)) == (int(counts.group(1)), int(counts.group(2)))

    note = row["content note"].split("tshark:", 1)[1]
    items = [i.strip() for i in note.split(";")]
    alerts = [
        (a["sender"], a["level"], a["description"], a["frame"]) for c in conns for a in c["alerts"]
    ]
    stated = [
        ("client" if d == "c2s" else "server", lvl, desc, int(fr))
        for d, lvl, desc, fr in re.findall(r"(c2s|s2c) (\w+) (\w+) \(fr (\d+)\)", note)
    ]
    assert alerts == stated
    for item in items:
        if item.startswith("ver "):
            expected = {_version(v) for v in item[4:].split("/")}
            assert {h["version"] for h in shs if not h["hello_retry_request"]} == expected
        elif item == "no ServerHello":
            assert not shs
        elif item.startswith("SNI "):
            with_sni = sum(1 for h in chs if h["sni"] is not None)
            frac = item[4:]
            named = {"all": len(chs), "none": 0}
            want = named[frac] if frac in named else int(frac.split("/")[0])
            assert with_sni == want, item
        elif item.startswith("port "):  # server ports other than 443
            ports = {_server_port(c["server"]) for c in conns if c["client_hellos"]} - {443}
            listed = {int(p) for p in item[5:].rstrip(".").split(",") if p}
            assert listed <= ports if item.endswith("...") else listed == ports, item
    hrr = sum(1 for h in shs if h["hello_retry_request"])
    hrr_note = re.search(r"(\d+) HRR", note)
    assert hrr == (int(hrr_note.group(1)) if hrr_note else 0)


def test_decode_as_args() -> None:
    assert decode_as_args([4433, 80, 4433]) == [
        "-d",
        "tcp.port==80,tls",
        "-d",
        "tcp.port==4433,tls",
    ]
    assert decode_as_args([]) == []


def test_handshake_failure_alert(corpus_dir: Path, tshark: str) -> None:
    (conn,) = _corpus_tshark("zeek/tls-1.2-handshake-failure.pcap")
    assert len(conn["client_hellos"]) == 1 and conn["server_hellos"] == []
    assert conn["alerts"] == [
        {
            "frame": 6,
            "sender": "server",
            "level": "fatal",
            "description": "handshake_failure",
            "encrypted": False,
        }
    ]


def test_hello_retry_request(corpus_dir: Path, tshark: str) -> None:
    (conn,) = _corpus_tshark("zeek/hrr.pcap")
    assert len(conn["client_hellos"]) == 2
    assert [h["hello_retry_request"] for h in conn["server_hellos"]] == [True, False]
    assert [h["version"] for h in conn["server_hellos"]] == [0x0304, 0x0304]
    assert all(h["supported_versions"] == [0x0304] for h in conn["client_hellos"])
    # ClientHello, HRR, ClientHello, ServerHello: frames in that order.
    frames = [conn["client_hellos"][0]["frame"], conn["server_hellos"][0]["frame"]]
    frames += [conn["client_hellos"][1]["frame"], conn["server_hellos"][1]["frame"]]
    assert frames == sorted(frames)


def test_sslv2_hellos(corpus_dir: Path, tshark: str) -> None:
    (conn,) = _corpus_tshark("zeek/ssl-v2.pcap")
    (ch,) = conn["client_hellos"]
    assert ch["legacy_version"] == 0x0002
    assert ch["cipher_suites"] == []  # only SSL2_* kinds (no 0x00 prefix) are offered
    (sh,) = conn["server_hellos"]
    assert sh["version"] == 0x0002 and sh["extensions"] == []
    assert sh["cipher_suite"] is not None and sh["cipher_suite"] >> 16 != 0  # a 3-byte kind
    assert conn["certificates"] == [{"frame": sh["frame"]}]
    # An SSLv2-format hello of a TLS client: 3-byte kinds 0x00XXXX become the suites 0xXXXX.
    first = _corpus_tshark("zeek/ssl.v3.pcap")[0]["client_hellos"][0]
    assert first["legacy_version"] == 0x0301 and first["extensions"] == []
    assert first["cipher_suites"][:3] == [0x39, 0x38, 0x35] and len(first["cipher_suites"]) == 20


def test_several_messages_in_one_frame(corpus_dir: Path, tshark: str) -> None:
    # Frame 10: ServerHello, Certificate, ServerKeyExchange, CertificateRequest, ServerHelloDone.
    (conn,) = _corpus_tshark("wireshark-notes/mysql-ssl.pcapng")
    assert conn["server"].endswith(":3306")
    assert [h["frame"] for h in conn["server_hellos"]] == [10]
    assert conn["certificates"] and {c["frame"] for c in conn["certificates"]} == {10}


def test_message_spanning_segments(corpus_dir: Path, tshark: str) -> None:
    # MTU 300: the ClientHello is in the frame that completes it, not the first of its segments.
    (conn,) = _corpus_tshark("suricata-verify/tls-client-hello-frag-01.pcap")
    (ch,) = conn["client_hellos"]
    (sh,) = conn["server_hellos"]
    assert ch["sni"] and ch["frame"] > 4
    assert ch["frame"] < sh["frame"] < min(c["frame"] for c in conn["certificates"])


def test_compare_reports_differences(corpus_dir: Path, tshark: str) -> None:
    """The comparison itself: identical views agree; each kind of change is reported."""
    theirs = _corpus_tshark("zeek/tls-early-alert.pcap")
    ours = copy.deepcopy(theirs)
    assert compare_connections(ours, theirs) == []
    ours[0]["client_hellos"][0]["cipher_suites"].reverse()
    ours[0]["server_hellos"][0]["hello_retry_request"] = True
    ours[0]["alerts"][0]["level"] = "fatal"
    ours[0]["alerts"].append({**ours[0]["alerts"][0], "encrypted": True})  # not compared
    ours[0]["certificates"].pop()
    ours.append({**copy.deepcopy(ours[0]), "client": "192.0.2.1:1"})
    paths = [(conn.split(" ")[0], path) for conn, path, *_ in compare_connections(ours, theirs)]
    assert paths == [
        ("#1", "connections"),
        ("#1", "client_hellos[0].cipher_suites"),
        ("#1", "server_hellos[0].hello_retry_request"),
        ("#1", "alerts[0].level"),
        ("#1", "certificates (count)"),
    ]
