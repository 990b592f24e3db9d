"""Certificate checks at a chosen time: validity, RFC 6125 names, chain order and trust."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tlspcap.diagnosis.certcheck import TrustStore, check_chain, name_matches

AT = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
KEY = ec.generate_private_key(ec.SECP256R1())


def _cert(
    cn: str,
    issuer: x509.Certificate | None = None,
    *,
    ca: bool = False,
    san: list[x509.GeneralName] | None = None,
    start: datetime = AT - timedelta(days=10),
    end: datetime = AT + timedelta(days=10),
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    b = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(KEY.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return b.sign(KEY, hashes.SHA256())


def _der(*certs: x509.Certificate) -> list[bytes]:
    return [c.public_bytes(serialization.Encoding.DER) for c in certs]


ROOT = _cert("Test Root", ca=True)
INTER = _cert("Test Intermediate", ROOT, ca=True)
LEAF = _cert("leaf", INTER, san=[x509.DNSName("api.example.test")])
STORE = TrustStore([ROOT])


def codes(findings: list[object]) -> set[str]:
    return {f.code for f in findings}  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("pattern", "host", "ok"),
    [
        ("api.example.test", "API.Example.Test.", True),
        ("*.example.test", "api.example.test", True),
        ("*.example.test", "a.b.example.test", False),  # one label only
        ("*.example.test", "example.test", False),
        ("*.test", "example.test", False),  # no wildcard over a public-suffix-like label
        ("api*.example.test", "api1.example.test", False),  # partial wildcards not honoured
    ],
)
def test_rfc6125_names(pattern: str, host: str, ok: bool) -> None:
    assert name_matches(pattern, host) is ok


def test_good_chain_has_no_finding() -> None:
    assert check_chain(_der(LEAF, INTER), AT, "api.example.test", STORE) == []


def test_validity_is_judged_at_the_given_time_not_today() -> None:
    later = AT + timedelta(days=30)
    assert "expired_certificate" in codes(check_chain(_der(LEAF, INTER), later, None, STORE))
    earlier = AT - timedelta(days=30)
    assert "not_yet_valid_certificate" in codes(
        check_chain(_der(LEAF, INTER), earlier, None, STORE)
    )
    assert "expired_certificate" not in codes(check_chain(_der(LEAF, INTER), None, None, STORE))


def test_hostname_mismatch_and_ip_names() -> None:
    assert codes(check_chain(_der(LEAF, INTER), AT, "other.example.test", STORE)) == {
        "hostname_mismatch"
    }
    ip_leaf = _cert("ip", INTER, san=[x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    assert check_chain(_der(ip_leaf, INTER), AT, "127.0.0.1", STORE) == []
    assert "hostname_mismatch" in codes(check_chain(_der(ip_leaf, INTER), AT, "127.0.0.2", STORE))


def test_cn_only_certificate_is_flagged() -> None:
    cn_leaf = _cert("api.example.test", INTER)
    assert codes(check_chain(_der(cn_leaf, INTER), AT, "api.example.test", STORE)) == {
        "cn_only_certificate"
    }


def test_missing_intermediate_versus_untrusted_root() -> None:
    assert codes(check_chain(_der(LEAF), AT, None, STORE)) == {"incomplete_chain"}
    # the intermediate seen elsewhere in the capture names what is missing
    found = check_chain(_der(LEAF), AT, None, STORE, extra=[INTER])
    assert codes(found) == {"incomplete_chain"}
    assert "Test Intermediate" in found[0].text
    # an intermediate sent, its root not trusted: unknown_ca, not incomplete_chain
    assert codes(check_chain(_der(LEAF, INTER), AT, None, TrustStore([]))) == {"unknown_ca"}


def test_self_signed_leaf() -> None:
    selfie = _cert("api.example.test", san=[x509.DNSName("api.example.test")])
    assert codes(check_chain(_der(selfie), AT, "api.example.test", STORE)) == {
        "unknown_ca",
        "self_signed",
    }


def test_chain_out_of_order() -> None:
    mid = _cert("Second Intermediate", INTER, ca=True)
    leaf = _cert("leaf2", mid, san=[x509.DNSName("x.example.test")])
    assert "chain_out_of_order" in codes(check_chain(_der(leaf, INTER, mid), AT, None, STORE))
    assert check_chain(_der(leaf, mid, INTER), AT, None, STORE) == []


def test_unparsable_certificate() -> None:
    assert codes(check_chain([b"\x30\x03\x02\x01\x00"], AT, None, STORE)) == {
        "unparsable_certificate"
    }
