"""The issue-12 rules beyond their fixtures: one signal stays a secondary finding, the names
that identify an inspection product (and those that must not), Apple's validity caps."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tlspcap.analyze import analyze_file
from tlspcap.diagnosis.certcheck import TrustStore, _lifetime, load_pem_roots
from tlspcap.diagnosis.engine import Options, diagnose_capture
from tlspcap.diagnosis.inspection import match_product
from tlspcap.report.jsonfmt import capture_to_dict

scapy = pytest.importorskip("scapy.all")

REAL = Path(__file__).resolve().parents[1] / "fixtures" / "real"
TRUST = TrustStore(load_pem_roots((REAL / "certs" / "root.pem").read_bytes()))


def _verdicts(path: Path) -> list[dict[str, Any]]:
    result = analyze_file(path)
    doc = capture_to_dict(result, diagnose_capture(result, Options(trust=TRUST)))
    return list(doc["connections"])


def _rewrite_rst(src: Path, dst: Path, **fields: int) -> None:
    """Copy a capture, setting IP fields of every RST (checksums recomputed)."""
    packets = scapy.rdpcap(str(src))
    for p in packets:
        if p.haslayer(scapy.TCP) and p[scapy.TCP].flags.R:
            for name, value in fields.items():
                setattr(p[scapy.IP], name, value)
            del p[scapy.IP].chksum
            del p[scapy.TCP].chksum
    scapy.wrpcap(str(dst), packets)


def test_injected_rst_with_two_signals_is_the_cause() -> None:
    blocked = [v for v in _verdicts(REAL / "middlebox_reset_sni.pcap") if v["outcome"] == "failed"]
    assert [v["cause"] for v in blocked] == ["middlebox_reset", "middlebox_reset"]
    assert all(v["must_act"] == "network" for v in blocked)


def test_one_signal_is_only_a_possible_finding(tmp_path: Path) -> None:
    """The injected RST given the server's TTL keeps one signal (no timestamps, window 0):
    the cause stays connection_reset, with middlebox_reset as a possible secondary finding."""
    one = tmp_path / "one_signal.pcap"
    _rewrite_rst(REAL / "middlebox_reset_sni.pcap", one, ttl=63)
    for v in (v for v in _verdicts(one) if v["outcome"] == "failed"):
        assert v["cause"] == "connection_reset", v["evidence"]
        [finding] = [s for s in v["secondary"] if s["code"] == "middlebox_reset"]
        assert finding["text"].startswith("possible (one signal)")


def test_the_servers_own_rst_with_another_ttl_is_one_signal(tmp_path: Path) -> None:
    """A server's own RST (timestamps, a window) that only differs in TTL: one signal."""
    odd = tmp_path / "ttl_only.pcap"
    _rewrite_rst(REAL / "connection_reset_server_control.pcap", odd, ttl=64)
    for v in _verdicts(odd):
        assert v["cause"] == "connection_reset", v["evidence"]
        assert [s["code"] for s in v["secondary"]] == ["middlebox_reset"]
    for v in _verdicts(REAL / "connection_reset_server_control.pcap"):
        assert v["cause"] == "connection_reset" and not v["secondary"]


@pytest.mark.parametrize(
    ("issuer", "product"),
    [
        ("CN=Zscaler Intermediate Root CA (zscaler.net),OU=Zscaler Inc.,O=Zscaler Inc.", "Zscaler"),
        ("CN=FortiGate CA,O=Fortinet,C=US", "Fortinet FortiGate"),
        ("CN=mitmproxy,O=mitmproxy", "mitmproxy"),
        ("CN=ca.acme.goskope.com,O=Acme", "Netskope"),
        ("CN=ESET SSL Filter CA,O=ESET spol. s r. o.", "ESET"),
    ],
)
def test_inspection_products_by_their_ca_names(issuer: str, product: str) -> None:
    found = match_product(issuer)
    assert found is not None and found.name.startswith(product)


@pytest.mark.parametrize(
    "issuer",
    [
        "CN=Acme Corp Internal Root CA,O=Acme Corp",
        "CN=R11,O=Let's Encrypt,C=US",
        "CN=DigiCert Global G2 TLS RSA SHA256 2020 CA1,O=DigiCert Inc,C=US",
        "CN=Untrusted Root,O=Example",  # a generic word is no product's name
    ],
)
def test_private_and_public_cas_name_no_product(issuer: str) -> None:
    assert match_product(issuer) is None


def _leaf(days: int, start: datetime.datetime) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x.example.test")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


START = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def test_the_398_day_cap_is_for_public_cas_only() -> None:
    two_years = _leaf(731, START)
    assert _lifetime(two_years, public=False) == ()
    [finding] = _lifetime(two_years, public=True)
    assert finding.code == "validity_too_long" and "398 days" in finding.text
    assert _lifetime(_leaf(397, START), public=True) == ()


def test_the_825_day_cap_is_for_every_certificate() -> None:
    [finding] = _lifetime(_leaf(900, START), public=False)
    assert "825 days" in finding.text
    assert _lifetime(_leaf(900, datetime.datetime(2019, 1, 1, tzinfo=datetime.UTC)), False) == ()
