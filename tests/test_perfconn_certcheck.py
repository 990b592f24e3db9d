"""check_chain with its caches (parsed DER, strength, host names, path walks per TrustStore,
the capture's missing issuers) gives what the uncached check gave, call after call.

The reference below is check_chain as it was before the caches; both run on random chains
(order, gaps, garbage DER, untrusted roots, self-signed leaves, weak keys), capture times,
host names and ``extra`` lists, with the stores kept warm across examples.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from tlspcap.certs import is_ca, load_certificate
from tlspcap.diagnosis.certcheck import (
    MIN_EC_BITS,
    MIN_RSA_BITS,
    WEAK_HASHES,
    CertFinding,
    TrustStore,
    _label,
    _lifetime,
    _signed_by,
    _unused_after,
    _usage,
    check_chain,
    hostname_findings,
)

# ---- the reference: check_chain without caches ------------------------------------------------


def ref_validity(cert: x509.Certificate, at: datetime, index: int) -> list[CertFinding]:
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    when = at.strftime("%Y-%m-%d %H:%M:%SZ")
    if at > end:
        days = (at - end).days
        text = (
            f"{_label(cert)} expired {end:%Y-%m-%d %H:%M:%SZ}, {days} days before the "
            f"capture ({when})"
        )
        return [CertFinding("expired_certificate", text, index)]
    if at < start:
        text = (
            f"{_label(cert)} is valid only from {start:%Y-%m-%d %H:%M:%SZ}, after the "
            f"capture ({when})"
        )
        return [CertFinding("not_yet_valid_certificate", text, index)]
    return []


def ref_strength(cert: x509.Certificate, index: int) -> list[CertFinding]:
    out = []
    try:
        key = cert.public_key()
    except (ValueError, TypeError, UnsupportedAlgorithm):
        key = None
    if isinstance(key, rsa.RSAPublicKey | dsa.DSAPublicKey) and key.key_size < MIN_RSA_BITS:
        kind = "RSA" if isinstance(key, rsa.RSAPublicKey) else "DSA"
        text = (
            f"{_label(cert)} has a {key.key_size}-bit {kind} key: OpenSSL clients at security "
            f"level 2 (the default of current distributions), Java and browsers need "
            f"{MIN_RSA_BITS} bits"
        )
        out.append(CertFinding("weak_key", text, index))
    elif isinstance(key, ec.EllipticCurvePublicKey) and key.key_size < MIN_EC_BITS:
        text = (
            f"{_label(cert)} has a {key.key_size}-bit EC key: OpenSSL clients at security level "
            f"2 need {MIN_EC_BITS} bits"
        )
        out.append(CertFinding("weak_key", text, index))
    try:
        algo = cert.signature_hash_algorithm
    except (ValueError, TypeError, UnsupportedAlgorithm):
        algo = None
    if isinstance(algo, hashes.HashAlgorithm) and algo.name in WEAK_HASHES:
        name = algo.name.upper().replace("SHA1", "SHA-1")
        text = (
            f"{_label(cert)} is signed with {name}, which OpenSSL 3 clients at their default "
            "security level, Java and browsers refuse"
        )
        out.append(CertFinding("weak_signature", text, index))
    return out


def ref_check_chain(
    chain_der: Sequence[bytes],
    at: datetime | None,
    host: str | None,
    store: TrustStore,
    extra: Sequence[x509.Certificate] = (),
) -> list[CertFinding]:
    certs = [load_certificate(d) for d in chain_der]
    findings: list[CertFinding] = []
    for i, c in enumerate(certs):
        if c is None:
            findings.append(CertFinding("unparsable_certificate", "not a valid X.509 DER", i))
    parsed = [c for c in certs if c is not None]
    if not parsed or certs[0] is None:
        return findings
    leaf = parsed[0]
    for i, c in enumerate(parsed):
        if at is not None:
            findings += ref_validity(c, at, i)
        findings += ref_strength(c, i)
    leaf_der = next(d for d, c in zip(chain_der, certs, strict=True) if c is not None)
    findings += _usage.__wrapped__(leaf_der)  # not what this test holds to the reference
    findings += _lifetime(leaf_der, store.public_issuer(parsed))
    if host:
        findings += hostname_findings(leaf, host)
    findings += ref_path_findings(parsed, store, extra)
    return findings


def ref_path_findings(
    chain: list[x509.Certificate], store: TrustStore, extra: Sequence[x509.Certificate]
) -> list[CertFinding]:
    leaf = chain[0]
    out: list[CertFinding] = []
    path = [leaf]
    used = {0}
    out_of_order = False
    while True:
        cur = path[-1]
        if store.contains(cur):
            break
        anchors = [r for r in store.issuers_of(cur) if _signed_by(cur, r)]
        if anchors:
            path.append(anchors[0])
            break
        nxt = None
        for i, cand in enumerate(chain):
            if i not in used and cand.subject == cur.issuer and _signed_by(cur, cand):
                nxt = i
                break
        if nxt is not None:
            if nxt != len(path):
                out_of_order = True
            used.add(nxt)
            path.append(chain[nxt])
            continue
        if cur.subject == cur.issuer and _signed_by(cur, cur):
            what = "the leaf itself is self-signed" if cur is leaf else f"root {_label(cur)}"
            out.append(
                CertFinding(
                    "unknown_ca",
                    f"the chain ends at {what}, which is not a trusted root",
                    len(path) - 1,
                )
            )
            if cur is leaf:
                out.append(CertFinding("self_signed", f"{_label(leaf)} is self-signed", 0))
            break
        found = [c for c in extra if c.subject == cur.issuer and _signed_by(cur, c)]
        if found:
            missing = found[0]
            rooted = store.contains(missing) or any(
                _signed_by(missing, r) for r in store.issuers_of(missing)
            )
            if missing.subject != missing.issuer or rooted:
                out.append(
                    CertFinding(
                        "incomplete_chain",
                        f"the server did not send {_label(missing)} (the issuer of {_label(cur)}), "
                        "seen elsewhere in the capture",
                        len(path) - 1,
                    )
                )
                break
        issuer = cur.issuer.rfc4514_string()
        if cur is leaf or not is_ca(cur):
            out.append(
                CertFinding(
                    "incomplete_chain",
                    f"the server sent {len(chain)} certificate(s) and none for the issuer of "
                    f"{_label(cur)} ({issuer}): an intermediate is missing, or {issuer} is a "
                    "private CA the client would have to trust",
                    len(path) - 1,
                )
            )
        else:
            out.append(
                CertFinding(
                    "unknown_ca",
                    f"the chain ends at {_label(cur)}, issued by {issuer}, which is not a trusted "
                    "root",
                    len(path) - 1,
                )
            )
        break
    if out_of_order or (len(used) < len(chain) and len(path) > 1 and _unused_after(used)):
        out.append(
            CertFinding(
                "chain_out_of_order",
                "the certificates are not sent in issuing order (each followed by its issuer)",
            )
        )
    return out


# ---- a pool of certificates -------------------------------------------------------------------

AT = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
KEY = ec.generate_private_key(ec.SECP256R1())
WEAK_KEY = rsa.generate_private_key(public_exponent=65537, key_size=1024)


def _cert(
    cn: str,
    issuer: x509.Certificate | None = None,
    *,
    ca: bool = False,
    san: str | None = None,
    days: tuple[int, int] = (-10, 10),
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = KEY,
    algo: hashes.HashAlgorithm | None = None,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    b = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(AT + timedelta(days=days[0]))
        .not_valid_after(AT + timedelta(days=days[1]))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False)
    return b.sign(KEY, algo or hashes.SHA256())


ROOT = _cert("Root", ca=True)
INTER = _cert("Inter", ROOT, ca=True)
MID = _cert("Mid", INTER, ca=True)
OTHER_ROOT = _cert("Other Root", ca=True)
OTHER_INTER = _cert("Other Inter", OTHER_ROOT, ca=True)
POOL = [
    ROOT,
    INTER,
    MID,
    OTHER_ROOT,
    OTHER_INTER,
    _cert("leaf", INTER, san="api.example.test"),
    _cert("leaf2", MID, san="*.example.test"),
    _cert("leaf3", OTHER_INTER, san="api.example.test"),
    _cert("api.example.test"),  # self-signed, CN only
    _cert("old", INTER, san="api.example.test", days=(-400, -30)),
    _cert("young", MID, san="api.example.test", days=(30, 400)),
    _cert("weak", INTER, san="api.example.test", key=WEAK_KEY),
    _cert("Lone Inter", OTHER_ROOT, ca=True, algo=hashes.SHA384()),
]
DER = [c.public_bytes(serialization.Encoding.DER) for c in POOL] + [b"\x30\x03\x02\x01\x00"]
STORES = [TrustStore([ROOT]), TrustStore([]), TrustStore([OTHER_ROOT, ROOT])]
TIMES = [AT, AT + timedelta(days=20), AT - timedelta(days=20), AT - timedelta(days=300), None]
HOSTS = [None, "", "api.example.test", "x.example.test", "other.test", "127.0.0.1"]


@settings(derandomize=True, max_examples=1500, deadline=None)
@given(
    chain=st.lists(st.integers(0, len(DER) - 1), min_size=0, max_size=4),
    at=st.sampled_from(TIMES),
    host=st.sampled_from(HOSTS),
    store=st.integers(0, len(STORES) - 1),
    extra=st.lists(st.integers(0, len(POOL) - 1), max_size=5),
)
def test_cached_check_chain_is_the_uncached_one(
    chain: list[int], at: datetime | None, host: str | None, store: int, extra: list[int]
) -> None:
    chain_der = [DER[i] for i in chain]
    extra_certs = [POOL[i] for i in extra]
    expected = ref_check_chain(chain_der, at, host, STORES[store], extra_certs)
    assert check_chain(chain_der, at, host, STORES[store], extra_certs) == expected
    assert check_chain(chain_der, at, host, STORES[store], extra_certs) == expected  # warm


def test_extra_list_changed_in_place_is_seen() -> None:
    store = TrustStore([ROOT])
    leaf = POOL[5]
    chain = [DER[5]]
    extra: list[x509.Certificate] = [leaf]
    first = check_chain(chain, AT, None, store, extra)
    assert first == ref_check_chain(chain, AT, None, store, extra)
    assert "Inter" not in first[0].text.split("(")[0]
    extra.append(INTER)
    second = check_chain(chain, AT, None, store, extra)
    assert second == ref_check_chain(chain, AT, None, store, extra)
    assert "the server did not send CN=Inter" in second[0].text
    extra[1] = MID  # same length, other certificate
    assert check_chain(chain, AT, None, store, extra) == ref_check_chain(
        chain, AT, None, store, extra
    )


def test_missing_issuer_of_an_intermediate() -> None:
    store = TrustStore([ROOT])
    for chain in ([DER[6], DER[2]], [DER[2]], [DER[6], DER[2], DER[9]]):
        for extra in ([INTER], [POOL[4], INTER], [OTHER_ROOT], []):
            got = check_chain(chain, AT, "x.example.test", store, extra)
            assert got == ref_check_chain(chain, AT, "x.example.test", store, extra)
    found = check_chain([DER[6], DER[2]], AT, None, store, [INTER])
    assert [(f.code, f.index) for f in found] == [("incomplete_chain", 1)]
