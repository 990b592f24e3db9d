"""Certificate checks done as a client would, at the capture time of the Certificate message.

Never today's date: validity is judged at ``at``, the time the certificate was on the wire.
Nothing here fetches anything (no AIA, no OCSP): a path is built only from the certificates
in the capture and the trust anchors given.
"""

from __future__ import annotations

import functools
import ipaddress
import operator
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from tlspcap.certs import is_ca, load_certificate

MIN_RSA_BITS = 2048
MIN_EC_BITS = 224
WEAK_HASHES = ("md5", "sha1")


@dataclass(frozen=True, slots=True)
class CertFinding:
    """One problem with a presented chain."""

    code: str
    """A CAUSES.md cause code (expired_certificate, hostname_mismatch, incomplete_chain,
    unknown_ca, not_yet_valid_certificate) or a secondary code (weak_key, weak_signature,
    chain_out_of_order, cn_only_certificate, unparsable_certificate, self_signed)."""
    text: str
    index: int | None = None
    """Position of the certificate in the chain as sent (0 = leaf)."""
    frame: int | None = None
    """Frame that shows it, when not the Certificate message's (a ServerKeyExchange, a
    stapled OCSP response, the ServerHello)."""


class TrustStore:
    """Trust anchors, indexed by subject for path building.

    The store also remembers, per chain (the DER certificates as sent), where path building
    from that chain's leaf led: servers send the same chain to every client, and nothing in a
    path depends on the time or the host name.
    """

    def __init__(
        self, roots: Sequence[x509.Certificate], public: Sequence[x509.Certificate] = ()
    ) -> None:
        self._by_subject: dict[bytes, list[x509.Certificate]] = {}
        self._public = frozenset(r.subject.public_bytes() for r in public)
        self.public = list(public)
        """The anchors that are public (Mozilla's) roots, as opposed to a private CA's."""
        self.roots = list(roots)
        """The anchors, in the order given."""
        for root in roots:
            self._by_subject.setdefault(root.subject.public_bytes(), []).append(root)
        self.size = len(roots)
        self._walks: dict[tuple[bytes, ...], _PathWalk] = {}
        self._supplied: dict[
            bytes, tuple[tuple[x509.Certificate, ...], x509.Certificate | None]
        ] = {}

    def issuers_of(self, cert: x509.Certificate) -> list[x509.Certificate]:
        """Anchors whose subject is ``cert``'s issuer."""
        return self._by_subject.get(cert.issuer.public_bytes(), [])

    def public_issuer(self, certs: Sequence[x509.Certificate]) -> bool:
        """True when one of ``certs`` is issued by (or is) a public root of this store."""
        return any(
            c.issuer.public_bytes() in self._public or c.subject.public_bytes() in self._public
            for c in certs
        )

    def contains(self, cert: x509.Certificate) -> bool:
        """True when ``cert`` itself is an anchor."""
        return any(r == cert for r in self._by_subject.get(cert.subject.public_bytes(), []))


def load_pem_roots(pem: bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle (deprecation warnings about old roots silenced)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return list(x509.load_pem_x509_certificates(pem))


@functools.lru_cache(maxsize=4096)
def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """``issuer`` names and signed ``cert`` (legacy signatures checked with the raw key).

    Cached: certificates hash and compare by their DER, so this is keyed by (cert DER, issuer
    DER) and each signature is checked once however many chains carry the pair.
    """
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except InvalidSignature:
        return False
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return _legacy_signed_by(cert, issuer)
    return True


def _legacy_signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Verify signatures ``verify_directly_issued_by`` refuses (SHA-1, MD5, DSA).

    When the key or algorithm cannot be checked at all, the name match is taken as enough:
    path building must not fail on what this library cannot verify.
    """
    try:
        algo = cert.signature_hash_algorithm
        key = issuer.public_key()
        if isinstance(key, rsa.RSAPublicKey) and algo is not None:
            key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), algo)
        elif isinstance(key, ec.EllipticCurvePublicKey) and algo is not None:
            key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(algo))
        elif isinstance(key, dsa.DSAPublicKey) and algo is not None:
            key.verify(cert.signature, cert.tbs_certificate_bytes, algo)
    except InvalidSignature:
        return False
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return True
    return True


@functools.lru_cache(maxsize=4096)
def _label(cert: x509.Certificate) -> str:
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if cns:
        return f"CN={cns[0].value!s}"
    return cert.subject.rfc4514_string() or "(empty subject)"


def _dns_names(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    try:
        san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    except (x509.ExtensionNotFound, ValueError):
        return [], []
    assert isinstance(san, x509.SubjectAlternativeName)
    ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return list(san.get_values_for_type(x509.DNSName)), ips


def _common_names(cert: x509.Certificate) -> list[str]:
    return [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]


def name_matches(pattern: str, host: str) -> bool:
    """RFC 6125 matching: case-insensitive; a wildcard only as the whole left-most label."""
    p = pattern.lower().rstrip(".")
    h = host.lower().rstrip(".")
    if p == h:
        return True
    if not p.startswith("*."):
        return False
    suffix = p[1:]
    if suffix.count(".") < 2:  # "*.com" style wildcards never match
        return False
    head, _, rest = h.partition(".")
    return bool(head) and "." + rest == suffix


def hostname_findings(cert: x509.Certificate, host: str) -> list[CertFinding]:
    """Does ``host`` (a DNS name or an IP literal) match the leaf certificate?"""
    dns, ips = _dns_names(cert)
    try:
        ip = str(ipaddress.ip_address(host))
    except ValueError:
        ip = None
    if ip is not None:
        if ip in ips:
            return []
        return [CertFinding("hostname_mismatch", f"{host} is not among the IP addresses {ips}", 0)]
    if dns:
        if any(name_matches(n, host) for n in dns):
            return []
        shown = ", ".join(dns[:8]) + (" …" if len(dns) > 8 else "")
        return [CertFinding("hostname_mismatch", f"{host} is not in the SAN ({shown})", 0)]
    cns = _common_names(cert)
    if any(name_matches(cn, host) for cn in cns):
        return [
            CertFinding(
                "cn_only_certificate",
                f"{host} matches only the subject CN; clients that ignore the CN reject it",
                0,
            )
        ]
    return [CertFinding("hostname_mismatch", f"{host} matches neither a SAN nor the CN {cns}", 0)]


@functools.lru_cache(maxsize=4096)
def _validity_period(der: bytes) -> tuple[datetime, datetime, x509.Certificate]:
    """notBefore and notAfter (aware UTC) of a parsable certificate, and the certificate."""
    cert = load_certificate(der)
    assert cert is not None
    return cert.not_valid_before_utc, cert.not_valid_after_utc, cert


def _validity(der: bytes, at: datetime, index: int) -> list[CertFinding]:
    """Expired or not yet valid at ``at`` (judged on every call: ``at`` is the capture time)."""
    start, end, cert = _validity_period(der)
    if start <= at <= end:
        return []
    when = at.strftime("%Y-%m-%d %H:%M:%SZ")
    if at > end:
        days = (at - end).days
        return [
            CertFinding(
                "expired_certificate",
                f"{_label(cert)} expired {end:%Y-%m-%d %H:%M:%SZ}, {days} days before the "
                f"capture ({when})",
                index,
            )
        ]
    if at < start:
        return [
            CertFinding(
                "not_yet_valid_certificate",
                f"{_label(cert)} is valid only from {start:%Y-%m-%d %H:%M:%SZ}, after the "
                f"capture ({when})",
                index,
            )
        ]
    return []


@functools.lru_cache(maxsize=4096)
def _strength(der: bytes, index: int) -> tuple[CertFinding, ...]:
    """Weak key and weak signature findings of a certificate (cached: they never change)."""
    cert = load_certificate(der)
    assert cert is not None
    out = []
    try:
        key = cert.public_key()
    except (ValueError, TypeError, UnsupportedAlgorithm):
        key = None
    if isinstance(key, rsa.RSAPublicKey | dsa.DSAPublicKey) and key.key_size < MIN_RSA_BITS:
        kind = "RSA" if isinstance(key, rsa.RSAPublicKey) else "DSA"
        out.append(
            CertFinding(
                "weak_key",
                f"{_label(cert)} has a {key.key_size}-bit {kind} key: OpenSSL clients at "
                f"security level 2 (the default of current distributions), Java and browsers "
                f"need {MIN_RSA_BITS} bits",
                index,
            )
        )
    elif isinstance(key, ec.EllipticCurvePublicKey) and key.key_size < MIN_EC_BITS:
        out.append(
            CertFinding(
                "weak_key",
                f"{_label(cert)} has a {key.key_size}-bit EC key: OpenSSL clients at security "
                f"level 2 need {MIN_EC_BITS} bits",
                index,
            )
        )
    try:
        algo = cert.signature_hash_algorithm
    except (ValueError, TypeError, UnsupportedAlgorithm):
        algo = None
    if isinstance(algo, hashes.HashAlgorithm) and algo.name in WEAK_HASHES:
        out.append(
            CertFinding(
                "weak_signature",
                f"{_label(cert)} is signed with {algo.name.upper().replace('SHA1', 'SHA-1')}, "
                "which OpenSSL 3 clients at their default security level, Java and browsers "
                "refuse",
                index,
            )
        )
    return tuple(out)


@functools.lru_cache(maxsize=4096)
def _usage(leaf_der: bytes) -> tuple[CertFinding, ...]:
    """What the leaf's extensions forbid for a TLS server (cached by DER)."""
    cert = load_certificate(leaf_der)
    assert cert is not None
    out = []
    label = _label(cert)
    try:
        eku = cert.extensions.get_extension_for_oid(ExtensionOID.EXTENDED_KEY_USAGE).value
    except (x509.ExtensionNotFound, ValueError):
        eku = None
    if isinstance(eku, x509.ExtendedKeyUsage):
        usages = set(eku)
        if not usages & {
            ExtendedKeyUsageOID.SERVER_AUTH,
            ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
        }:
            names = ", ".join(sorted(_EKU_NAMES.get(u, u.dotted_string) for u in usages)) or "none"
            out.append(
                CertFinding(
                    "certificate_usage",
                    f"{label} may not serve TLS: its extendedKeyUsage lists {names}, not "
                    "serverAuth",
                    0,
                )
            )
    try:
        ku = cert.extensions.get_extension_for_oid(ExtensionOID.KEY_USAGE).value
    except (x509.ExtensionNotFound, ValueError):
        ku = None
    if isinstance(ku, x509.KeyUsage) and not (ku.digital_signature or ku.key_encipherment):
        out.append(
            CertFinding(
                "certificate_usage",
                f"{label}'s keyUsage allows neither digitalSignature nor keyEncipherment: no TLS "
                "key exchange may use it",
                0,
            )
        )
    if is_ca(cert) and not _self_issued(cert):
        out.append(
            CertFinding(
                "certificate_usage", f"{label} is a CA certificate, sent as the server's", 0
            )
        )
    return tuple(out)


_EKU_NAMES = {
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    ExtendedKeyUsageOID.CODE_SIGNING: "codeSigning",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
    ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
}
APPLE_PUBLIC_DAYS = 398
"""Longest validity Apple accepts for a publicly trusted certificate issued after 2020-09-01."""
APPLE_ANY_DAYS = 825
"""Longest validity Apple accepts for any TLS server certificate issued after 2019-07-01."""


@functools.lru_cache(maxsize=4096)
def _lifetime(leaf_der: bytes, public: bool) -> tuple[CertFinding, ...]:
    """Validity periods longer than Apple's platforms accept (a secondary finding only): 825
    days for any server certificate, 398 for one under a public root (``public``)."""
    start, end, cert = _validity_period(leaf_der)
    days = (end - start).days
    if start >= datetime(2019, 7, 1, tzinfo=start.tzinfo) and days > APPLE_ANY_DAYS:
        limit = f"the {APPLE_ANY_DAYS} days Apple clients accept for any server certificate"
    elif public and start >= datetime(2020, 9, 1, tzinfo=start.tzinfo) and days > APPLE_PUBLIC_DAYS:
        limit = f"the {APPLE_PUBLIC_DAYS} days Apple clients accept for a public one"
    else:
        return ()
    return (
        CertFinding("validity_too_long", f"{_label(cert)} is valid for {days} days, over {limit}"),
    )


def _self_issued(cert: x509.Certificate) -> bool:
    return cert.subject.public_bytes() == cert.issuer.public_bytes()


@functools.lru_cache(maxsize=4096)
def _leaf_hostname_findings(leaf_der: bytes, host: str) -> tuple[CertFinding, ...]:
    """:func:`hostname_findings` of a parsable leaf, cached by (DER, host)."""
    leaf = load_certificate(leaf_der)
    assert leaf is not None
    return tuple(hostname_findings(leaf, host))


def check_chain(
    chain_der: Sequence[bytes],
    at: datetime | None,
    host: str | None,
    store: TrustStore,
    extra: Sequence[x509.Certificate] = (),
    complete: bool = True,
) -> list[CertFinding]:
    """Every finding for a chain as sent, judged at ``at`` against ``store``.

    ``extra`` are certificates seen elsewhere in the capture: they may supply a missing
    intermediate to tell "intermediate missing from this chain" from "untrusted root".
    ``complete`` False: the capture holds only the first certificates of the chain (it cut the
    message), so nothing is said about the path to a root, only about the certificates held.

    Parsed certificates, key/signature strength, the host name check and the path walk are
    cached by DER (and host); validity is judged at ``at`` on every call.
    """
    certs = [load_certificate(d) for d in chain_der]
    findings: list[CertFinding] = []
    for i, c in enumerate(certs):
        if c is None:
            findings.append(CertFinding("unparsable_certificate", "not a valid X.509 DER", i))
    if not certs or certs[0] is None:
        return findings
    parsed_der = tuple(d for d, c in zip(chain_der, certs, strict=True) if c is not None)
    for i, der in enumerate(parsed_der):
        if at is not None:  # None: the capture time is no date (corrupt timestamp)
            findings += _validity(der, at, i)
        findings += _strength(der, i)
    findings += _usage(parsed_der[0])
    held = [c for c in certs if c is not None]
    findings += _lifetime(parsed_der[0], store.public_issuer(held))
    if host:
        findings += _leaf_hostname_findings(parsed_der[0], host)
    if complete:
        findings += _path_findings(parsed_der, store, extra)
    return findings


@dataclass(frozen=True, slots=True)
class _PathWalk:
    """Where building a path from a chain's leaf led, before looking at the rest of the capture."""

    findings: tuple[CertFinding, ...]
    """The path findings when the capture supplies no missing issuer."""
    stuck: int | None
    """Position in the chain of the certificate whose issuer neither the chain nor the anchors
    hold (None: the path reached an anchor or a self-signed certificate)."""
    stuck_depth: int
    """Position of that certificate in the path built (0 = the leaf)."""
    order: tuple[CertFinding, ...]
    """chain_out_of_order, when the chain is not in issuing order."""


_MEMO_SIZE = 4096
"""Most chains (and stuck certificates) a TrustStore remembers; it forgets them all beyond."""
_MEMO_EXTRA = 256
"""Longest list of the capture's other certificates a remembered search may be kept for."""


def _path_findings(
    chain_der: tuple[bytes, ...], store: TrustStore, extra: Sequence[x509.Certificate]
) -> list[CertFinding]:
    """Build a path from the leaf through the presented certificates to an anchor."""
    walk = store._walks.get(chain_der)
    if walk is None:
        if len(store._walks) >= _MEMO_SIZE:
            store._walks.clear()
        chain = [load_certificate(d) for d in chain_der]
        walk = store._walks[chain_der] = _walk(cast(list[x509.Certificate], chain), store)
    if walk.stuck is not None:
        cur = cast(x509.Certificate, load_certificate(chain_der[walk.stuck]))
        missing = _missing_issuer(cur, chain_der[walk.stuck], store, extra)
        if missing is not None:
            text = (
                f"the server did not send {_label(missing)} (the issuer of {_label(cur)}), "
                "seen elsewhere in the capture"
            )
            return [CertFinding("incomplete_chain", text, walk.stuck_depth), *walk.order]
    return [*walk.findings, *walk.order]


def _missing_issuer(
    cur: x509.Certificate, cur_der: bytes, store: TrustStore, extra: Sequence[x509.Certificate]
) -> x509.Certificate | None:
    """The issuer of ``cur`` that ``extra`` (the rest of the capture) holds, when it leads on.

    That is the first certificate of ``extra`` that names and signed ``cur``, provided it is not
    a self-signed root or is itself trusted. Remembered per certificate for the same ``extra``
    (the same certificate objects in the same order): ``extra`` is searched once per stuck
    certificate, not once per connection.
    """
    known = store._supplied.get(cur_der)
    if known is not None:
        seen, result = known
        if len(seen) == len(extra) and all(map(operator.is_, seen, extra)):
            return result
    if len(store._supplied) >= _MEMO_SIZE:
        store._supplied.clear()
    result = None
    issuer_name = cur.issuer
    for cand in extra:
        if cand.subject == issuer_name and _signed_by(cur, cand):
            rooted = store.contains(cand) or any(
                _signed_by(cand, r) for r in store.issuers_of(cand)
            )
            if cand.subject != cand.issuer or rooted:
                result = cand
            break
    if len(extra) <= _MEMO_EXTRA:  # the memo holds a copy of ``extra``: keep it small
        store._supplied[cur_der] = (tuple(extra), result)
    return result


def _walk(chain: list[x509.Certificate], store: TrustStore) -> _PathWalk:
    """Follow issuers from the leaf through ``chain`` to an anchor (no other certificates)."""
    leaf = chain[0]
    out: list[CertFinding] = []
    path = [leaf]
    positions = [0]  # where each certificate of the path (but an anchor) is in the chain
    used = {0}
    out_of_order = False
    stuck: int | None = None
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
            positions.append(nxt)
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
        # Stuck: another certificate of the capture may be the missing issuer (see
        # _missing_issuer); what follows is the finding when none is.
        stuck = positions[-1]
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
    order: tuple[CertFinding, ...] = ()
    if out_of_order or (len(used) < len(chain) and len(path) > 1 and _unused_after(used)):
        order = (
            CertFinding(
                "chain_out_of_order",
                "the certificates are not sent in issuing order (each followed by its issuer)",
            ),
        )
    return _PathWalk(tuple(out), stuck, len(path) - 1, order)


def _unused_after(used: set[int]) -> bool:
    return sorted(used) != list(range(len(used)))
