"""The fingerprint fast paths (cached list hashes, ja4_hashes, ja3_of_string) agree with the
straightforward definitions they replaced, on random hellos with GREASE, SNI, ALPN and DTLS."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from hypothesis import given, settings
from hypothesis import strategies as st

from tlspcap.stacks import KNOWN, likely_stack
from tlspcap.tls import fingerprint
from tlspcap.tls.messages import ClientHello, Extension, ServerHello

GREASE = sorted(fingerprint.GREASE_VALUES)

# ---- the reference definitions (the code before the fast paths) ----------------------------


def ref_no_grease(values: Iterable[int]) -> list[int]:
    return [v for v in values if v not in fingerprint.GREASE_VALUES]


def ref_dashed(values: Iterable[int]) -> str:
    return "-".join(str(v) for v in values)


def ref_ja3_string(ch: ClientHello) -> str:
    ciphers = ch.sslv2_cipher_kinds if ch.sslv2 and ch.sslv2_cipher_kinds else ch.cipher_suites
    types = tuple(e.type for e in ch.extensions)
    return ",".join(
        (
            str(ch.legacy_version),
            ref_dashed(ref_no_grease(ciphers)),
            ref_dashed(ref_no_grease(types)),
            ref_dashed(ref_no_grease(ch.supported_groups)),
            ref_dashed(ref_no_grease(ch.ec_point_formats)),
        )
    )


def ref_rank(version: int) -> int:
    if 0xFE00 <= version <= 0xFEFF:
        return 0x10000 + (0xFFFF - version)
    return version


VERSIONS = {0x0304: "13", 0x0303: "12", 0x0302: "11", 0x0301: "10", 0x0300: "s3", 0x0002: "s2",
            0xFEFF: "d1", 0xFEFD: "d2", 0xFEFC: "d3"}  # fmt: skip


def ref_alnum(b: int) -> bool:
    return 0x30 <= b <= 0x39 or 0x41 <= b <= 0x5A or 0x61 <= b <= 0x7A


def ref_alpn(alpn: tuple[bytes, ...]) -> str:
    if not alpn or not alpn[0]:
        return "00"
    v = alpn[0]
    if ref_alnum(v[0]) and ref_alnum(v[-1]):
        return chr(v[0]) + chr(v[-1])
    h = v.hex()
    return h[0] + h[-1]


def ref_hex(values: Iterable[int]) -> str:
    return ",".join(f"{v:04x}" for v in values)


def ref_parts(ch: ClientHello, transport: str, original: bool) -> tuple[str, str, str, str]:
    types = tuple(e.type for e in ch.extensions)
    ciphers = ref_no_grease(ch.cipher_suites)
    extensions = ref_no_grease(types)
    offered = ref_no_grease(ch.supported_versions)
    version = max(offered, key=ref_rank) if 43 in types and offered else ch.legacy_version
    a = (
        f"{transport}{VERSIONS.get(version, '00')}{'d' if 0 in extensions else 'i'}"
        f"{min(len(ciphers), 99):02d}{min(len(extensions), 99):02d}{ref_alpn(ch.alpn)}"
    )
    if original:
        cl, el = ref_hex(ciphers), ref_hex(extensions)
    else:
        cl = ref_hex(sorted(ciphers))
        el = ref_hex(sorted(e for e in extensions if e not in (0, 16)))
    return a, cl, el, ref_hex(ref_no_grease(ch.signature_algorithms))


def ref_h12(text: str) -> str:
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:12]


def ref_ja4(ch: ClientHello, transport: str, original: bool) -> str:
    a, cl, el, sa = ref_parts(ch, transport, original)
    b = ref_h12(cl) if cl else "000000000000"
    c = ref_h12(f"{el}_{sa}" if sa else el) if el else "000000000000"
    return f"{a}_{b}_{c}"


def ref_ja4_raw(ch: ClientHello, transport: str, original: bool) -> str:
    a, cl, el, sa = ref_parts(ch, transport, original)
    return f"{a}_{cl}_{f'{el}_{sa}' if sa else el}"


# ---- random hellos ----------------------------------------------------------------------------

u16 = st.one_of(st.sampled_from(GREASE), st.sampled_from([0, 16, 43, 13, 10, 0x1301, 0x2F]),
                st.integers(0, 0xFFFF))  # fmt: skip
lists = st.lists(u16, max_size=12).map(tuple)
versions = st.lists(
    st.one_of(st.sampled_from([*VERSIONS, *GREASE, 0x7F17]), st.integers(0, 0xFFFF)), max_size=4
).map(tuple)


@st.composite
def hellos(draw: st.DrawFn) -> ClientHello:
    sslv2 = draw(st.booleans())
    kinds = draw(st.lists(st.integers(0, 0xFFFFFF), max_size=5).map(tuple)) if sslv2 else ()
    return ClientHello(
        frame=1,
        legacy_version=draw(st.sampled_from([0x0303, 0x0301, 0x0002, 0xFEFD, 0x1234])),
        random=bytes(32),
        session_id=b"",
        cipher_suites=draw(lists),
        compression_methods=(0,),
        extensions=tuple(Extension(t, b"") for t in draw(lists)),
        supported_versions=draw(versions),
        alpn=draw(st.lists(st.binary(max_size=4), max_size=2).map(tuple)),
        supported_groups=draw(lists),
        signature_algorithms=draw(lists),
        ec_point_formats=draw(st.lists(st.integers(0, 255), max_size=3).map(tuple)),
        sslv2=sslv2,
        sslv2_cipher_kinds=kinds,
    )


@settings(derandomize=True, max_examples=1500, deadline=None)
@given(ch=hellos(), transport=st.sampled_from("tqd"), original=st.booleans())
def test_client_fingerprints_match_the_definitions(
    ch: ClientHello, transport: str, original: bool
) -> None:
    text = fingerprint.ja3_string(ch)
    assert text == ref_ja3_string(ch)
    expected_ja3 = hashlib.md5(text.encode()).hexdigest()
    assert fingerprint.ja3(ch) == fingerprint.ja3_of_string(text) == expected_ja3
    assert fingerprint.ja4(ch, transport, original_order=original) == ref_ja4(
        ch, transport, original
    )
    assert fingerprint.ja4_raw(ch, original, transport=transport) == ref_ja4_raw(
        ch, transport, original
    )
    assert list(fingerprint.ja4_hashes(ch)) == ref_ja4(ch, "t", False).split("_")[1:]
    assert ch.extension_types == tuple(e.type for e in ch.extensions)


@settings(derandomize=True, max_examples=300, deadline=None)
@given(ch=hellos())
def test_likely_stack_matches_the_table_on_ja4(ch: ClientHello) -> None:
    _, b, c = ref_ja4(ch, "t", False).split("_")
    expected = next((s for kb, kc, s in KNOWN if b == kb and (kc is None or c == kc)), None)
    assert likely_stack(ch) == expected


@settings(derandomize=True, max_examples=300, deadline=None)
@given(types=lists, suite=st.integers(0, 0xFFFF))
def test_ja3s(types: tuple[int, ...], suite: int) -> None:
    sh = ServerHello(1, 0x0303, bytes(32), b"", suite, 0, tuple(Extension(t, b"") for t in types))
    text = f"771,{suite},{ref_dashed(types)}"
    assert fingerprint.ja3s_string(sh) == text
    assert fingerprint.ja3s(sh) == hashlib.md5(text.encode()).hexdigest()
    assert sh.extension_types == types
