"""The HTML report: content of real captures, and capture-derived text that tries to inject markup.

The hostile capture is built by hand: a TLS 1.2 handshake whose ClientHello carries an SNI of
``<script>…</script>`` plus a right-to-left override and ALPN ids that try to break out of an
attribute, and whose server certificate has markup in its subject and SAN. The report must
show that text, inert, and a real browser (headless Chromium) must find no injected element and
run no injected script.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
import signal
import struct
import subprocess
import tempfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tlspcap.analyze import analyze_file
from tlspcap.batch import Settings, analyze_one, build_report
from tlspcap.diagnosis.engine import Options, diagnose_capture
from tlspcap.report.html import clean, esc, ladder_events, render_html, validity_at
from tlspcap.report.summary import totals

REAL = Path(__file__).resolve().parents[1] / "fixtures" / "real"
ROOT_PEM = REAL / "certs" / "root.pem"

EVIL_SNI = "<script>alert(1)</script>\u202eevil.example"
EVIL_ALPN = (
    '"><img src=x onerror=alert(1)>',
    "h2\u202e\u2066x",
    "<img src=x onerror=\"document.title='pwned'\">",
)
EVIL_CN = "<script>document.body.setAttribute('data-pwned','1')</script>\u202e"
EVIL_SAN = "<svg onload=alert(3)>.example"
BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


# ---- building a capture by hand -----------------------------------------------------------
def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _frame(src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int,
           payload: bytes = b"") -> bytes:  # fmt: skip
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    return b"\x02\0\0\0\0\x02" + b"\x02\0\0\0\0\x01" + b"\x08\x00" + ip + tcp


def _handshake(msg_type: int, body: bytes) -> bytes:
    return bytes([msg_type]) + len(body).to_bytes(3, "big") + body


def _record(content_type: int, body: bytes) -> bytes:
    return struct.pack("!BHH", content_type, 0x0303, len(body)) + body


def _vec(data: bytes, width: int) -> bytes:
    return len(data).to_bytes(width, "big") + data


def client_hello(sni: str, alpn: tuple[str, ...]) -> bytes:
    """A TLS 1.2 ClientHello handshake message with the given server_name and ALPN ids."""
    name = sni.encode()
    ext_sni = _vec(b"\x00" + _vec(name, 2), 2)
    ext_alpn = _vec(b"".join(_vec(a.encode(), 1) for a in alpn), 2)
    exts = struct.pack("!HH", 0, len(ext_sni)) + ext_sni
    exts += struct.pack("!HH", 16, len(ext_alpn)) + ext_alpn
    body = b"\x03\x03" + bytes(range(32)) + b"\x00" + _vec(struct.pack("!HH", 0xC02F, 0xC030), 2)
    body += b"\x01\x00" + _vec(exts, 2)
    return _handshake(1, body)


def hostile_certificate(cn: str, san: str) -> bytes:
    """A self-signed certificate (DER) whose subject and SAN carry markup."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def crafted_capture(
    path: Path, sni: str = EVIL_SNI, alpn: tuple[str, ...] = EVIL_ALPN, cert: bytes | None = None
) -> Path:
    """Write a pcap of one TLS 1.2 connection: ClientHello, ServerHello + Certificate +
    ServerHelloDone, then a fatal bad_certificate alert from the client and FINs."""
    c, s = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    cp, sp = 50000, 443
    ch = _record(22, client_hello(sni, alpn))
    sh_body = b"\x03\x03" + bytes(32) + b"\x00" + struct.pack("!HB", 0xC02F, 0) + _vec(b"", 2)
    der = cert if cert is not None else hostile_certificate(EVIL_CN, EVIL_SAN)
    cert_msg = _handshake(11, _vec(_vec(der, 3), 3))
    flight = _record(22, _handshake(2, sh_body) + cert_msg + _handshake(14, b""))
    alert = _record(21, b"\x02\x2a")
    cs, ss = 1000, 5000
    frames = [
        _frame(c, s, cp, sp, cs, 0, 0x02),
        _frame(s, c, sp, cp, ss, cs + 1, 0x12),
        _frame(c, s, cp, sp, cs + 1, ss + 1, 0x10),
        _frame(c, s, cp, sp, cs + 1, ss + 1, 0x18, ch),
        _frame(s, c, sp, cp, ss + 1, cs + 1 + len(ch), 0x18, flight),
        _frame(c, s, cp, sp, cs + 1 + len(ch), ss + 1 + len(flight), 0x18, alert),
        _frame(c, s, cp, sp, cs + 1 + len(ch) + len(alert), ss + 1 + len(flight), 0x11),
        _frame(s, c, sp, cp, ss + 1 + len(flight), cs + 2 + len(ch) + len(alert), 0x11),
    ]
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for i, f in enumerate(frames):
        out.append(struct.pack("<IIII", 1_750_000_000, i * 1000, len(f), len(f)) + f)
    path.write_bytes(b"".join(out))
    return path


def html_for(*paths: Path, ca: Path | None = ROOT_PEM) -> str:
    """The HTML report of some captures, as the CLI renders it."""
    settings = Settings(ca_pem=ca.read_bytes() if ca is not None else None)
    reports = [analyze_one(str(p), settings) for p in paths]
    return render_html(reports, totals(reports))


# ---- real captures ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "cause"),
    [
        ("sni_missing.pcap", "sni_missing"),
        ("cipher_mismatch.pcap", "cipher_mismatch"),
        ("incomplete_chain_curl.pcap", "incomplete_chain"),
        ("expired_curl.pcap", "expired_certificate"),
    ],
)
def test_html_report_of_real_captures(name: str, cause: str) -> None:
    path = REAL / name
    result = analyze_file(path)
    verdicts = diagnose_capture(result, Options())
    failed = [v for v in verdicts if v.outcome == "failed" and v.cause == cause]
    assert failed, f"{name}: expected a {cause} verdict"
    doc = html_for(path)
    assert doc.startswith("<!DOCTYPE html>")
    assert f"FAILED: {cause}" in doc
    for v in failed:
        assert esc(v.summary) in doc
        assert esc(v.fix) in doc
        for e in v.evidence:
            assert esc(e.text) in doc
    # self-contained: no script, no external reference
    assert "<script" not in doc.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", doc)
    assert "<style>" in doc


def test_ladder_has_every_message_with_frame_and_time() -> None:
    result = analyze_file(REAL / "sni_missing.pcap")
    conn = result.connections[1]  # the hello without SNI, answered with unrecognized_name
    events = ladder_events(conn)
    frames = [e["frame"] for e in events]
    assert frames == sorted(frames)
    hello = next(e for e in events if e["label"].startswith("ClientHello"))
    assert hello["sender"] == "client" and hello["frame"] == conn.client_hellos[0].frame
    alert = next(e for e in events if e["kind"] == "alert")
    assert alert["sender"] == "server"
    assert alert["label"] == "Alert fatal unrecognized_name"
    assert alert["frame"] == conn.alerts[0].frame
    assert alert["time"] is not None and alert["time"] > 0
    assert {"FIN (TTL 64)"} <= {e["label"] for e in events if e["kind"] == "tcp"}
    report = build_report(result, diagnose_capture(result, Options()))
    doc = render_html([report], totals([report]))
    assert 'class="alert"' in doc
    assert f"#{alert['frame']}" in doc and f"+{alert['time']:.3f}s" in doc


def test_ladder_shows_the_decisive_packets_of_path_causes() -> None:
    """The RST's TTL next to the SYN/ACK's, each TCP segment of a spread hello, the
    retransmissions of a black hole, and the frames the evidence cites marked."""
    reset = analyze_file(REAL / "middlebox_reset_sni.pcap").connections[1]
    labels = [e["label"] for e in ladder_events(reset)]
    assert "SYN, ACK (TTL 63)" in labels and "RST (TTL 64)" in labels
    large = analyze_file(REAL / "large_client_hello_onerecv.pcap").connections[1]
    parts = [e for e in ladder_events(large) if e["label"].startswith("ClientHello, TCP segment")]
    assert [p["label"] for p in parts] == ["ClientHello, TCP segment 1 of 2 (1448 bytes)"]
    assert parts[0]["frame"] < large.client_hellos[0].frame
    hole = analyze_file(REAL / "path_mtu_blackhole_server_side.pcap").connections[0]
    resent = [e for e in ladder_events(hole) if e["label"].startswith("retransmission")]
    assert resent and all(e["sender"] == "server" for e in resent)
    doc = html_for(REAL / "middlebox_reset_sni.pcap")
    assert "RST (TTL 64)" in doc and "SYN, ACK (TTL 63)" in doc
    assert "\u25c6#25" in doc  # the RST the evidence cites


def test_certificate_chain_with_validity_at_capture_time() -> None:
    doc = html_for(REAL / "expired_curl.pcap")
    assert "Server certificate chain" in doc
    assert ">expired<" in doc  # the leaf, at capture time
    assert ">valid<" in doc  # the intermediate
    cert = {"not_before": "2020-01-01T00:00:00Z", "not_after": "2021-01-01T00:00:00Z"}
    t2020 = datetime.datetime(2020, 6, 1, tzinfo=datetime.UTC).timestamp()
    t2022 = datetime.datetime(2022, 6, 1, tzinfo=datetime.UTC).timestamp()
    t2019 = datetime.datetime(2019, 6, 1, tzinfo=datetime.UTC).timestamp()
    assert validity_at(cert, t2020) == "valid"
    assert validity_at(cert, t2022) == "expired"
    assert validity_at(cert, t2019) == "not yet valid"
    assert validity_at(cert, None) == "unknown"
    assert validity_at(cert, 1e20) == "unknown"  # a hostile timestamp out of datetime's range


# ---- hostile input ------------------------------------------------------------------------
def test_clean_replaces_controls_and_bidi() -> None:
    assert clean("a\u202eb\x1b[31mc\u2066d\nx\u200b") == "a\ufffdb\ufffd[31mc\ufffdd\ufffdx\ufffd"
    assert esc('<a href="x">&') == "&lt;a href=&quot;x&quot;&gt;&amp;"


@pytest.fixture(scope="module")
def hostile_html(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = crafted_capture(tmp_path_factory.mktemp("evil") / "evil.pcap")
    result = analyze_file(path)
    assert len(result.connections) == 1
    ch = result.connections[0].client_hellos[0]
    assert ch.sni == EVIL_SNI  # the capture really carries the payload
    assert tuple(a.decode() for a in ch.alpn) == EVIL_ALPN
    assert result.connections[0].server.certificates
    return html_for(path, ca=None)


def test_hostile_capture_renders_no_markup(hostile_html: str) -> None:
    doc = hostile_html
    lower = doc.lower()
    assert "<script" not in lower
    assert "<img" not in lower
    assert "<svg onload" not in lower
    assert 'onerror="' not in lower and "onerror=alert(1)>" not in lower
    for ch in BIDI:
        assert ch not in doc
    # the payloads are shown, inert
    assert "&lt;script&gt;alert(1)&lt;/script&gt;\ufffdevil.example" in doc
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in doc
    assert "&lt;svg onload=alert(3)&gt;.example" in doc
    assert "document.body.setAttribute(&#x27;data-pwned&#x27;,&#x27;1&#x27;)" in doc
    assert "FAILED:" in doc


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("chromium is not installed (make sysdeps-test)")
    return path


def dump_dom(chromium: str, html_file: Path, timeout: float = 90) -> str:
    """The DOM after load (scripts, if any, have run), as headless Chromium serialises it."""
    with tempfile.TemporaryDirectory() as profile:
        cmd = [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--dump-dom",
            html_file.as_uri(),
        ]
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            pytest.fail("chromium did not finish loading the page (an injected alert() blocking?)")
    assert proc.returncode == 0, err[-2000:]
    return out


def test_chromium_runs_scripts_in_this_setup(tmp_path: Path) -> None:
    """Control: the harness would see an injected script run (so the next test can fail)."""
    chromium = _chromium()
    page = tmp_path / "control.html"
    page.write_text(
        "<!DOCTYPE html><html><head><title>tlspcap report</title></head><body>"
        "<script>document.title='pwned';document.body.setAttribute('data-pwned','1')</script>"
        "</body></html>"
    )
    dom = dump_dom(chromium, page)
    assert "<title>pwned</title>" in dom and 'data-pwned="1"' in dom


def test_hostile_capture_in_headless_chromium(hostile_html: str, tmp_path: Path) -> None:
    chromium = _chromium()
    # Test the escaping on its own: drop the CSP that would also stop scripts.
    doc = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", hostile_html)
    assert "Content-Security-Policy" not in doc
    page = tmp_path / "report.html"
    page.write_text(doc, "utf-8")
    dom = dump_dom(chromium, page)
    assert "<title>tlspcap report</title>" in dom
    assert "<title>pwned</title>" not in dom
    assert 'data-pwned="1"' not in dom
    assert "<script" not in dom.lower()
    assert "<img" not in dom.lower()
    assert "FAILED:" in dom and "Verdict:" in dom
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom


def test_real_report_in_headless_chromium(tmp_path: Path) -> None:
    chromium = _chromium()
    result = analyze_file(REAL / "sni_missing.pcap")
    verdict = next(v for v in diagnose_capture(result, Options()) if v.outcome == "failed")
    page = tmp_path / "sni.html"
    page.write_text(html_for(REAL / "sni_missing.pcap"), "utf-8")
    dom = dump_dom(chromium, page)
    assert "FAILED: sni_missing" in dom
    assert esc(verdict.fix) in dom
    assert "Alert fatal unrecognized_name" in dom
