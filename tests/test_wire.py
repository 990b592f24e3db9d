"""WireReader: bounds-checked big-endian reads (tlspcap.tls.wire)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tlspcap.errors import DecodeError
from tlspcap.tls.wire import WireReader


def test_integers_are_big_endian_and_advance() -> None:
    r = WireReader(bytes.fromhex("01 0203 040506 0708090a 0b"))
    assert r.u8() == 0x01
    assert r.u16() == 0x0203
    assert r.u24() == 0x040506
    assert r.uint(4) == 0x0708090A
    assert r.remaining == 1
    assert not r.at_end()
    assert r.u8() == 0x0B
    assert r.at_end()
    assert r.remaining == 0
    r.expect_end("everything")


def test_short_read_is_decode_error_and_does_not_advance() -> None:
    r = WireReader(b"\x01\x02\x03")
    assert r.u8() == 1
    with pytest.raises(DecodeError, match="need 4 bytes at offset 1, only 2 left"):
        r.uint(4)
    assert r.remaining == 2
    assert r.u16() == 0x0203


def test_raw_rest_and_zero_length_reads() -> None:
    r = WireReader(b"abcdef")
    assert r.raw(0) == b""
    assert r.raw(2) == b"ab"
    assert r.rest() == b"cdef"
    assert r.rest() == b""
    assert r.at_end()
    with pytest.raises(DecodeError):
        r.u8()


def test_expect_end_reports_leftover_bytes() -> None:
    r = WireReader(b"\x00\x01\x02")
    r.u8()
    with pytest.raises(DecodeError, match="2 trailing bytes after thing"):
        r.expect_end("thing")


def test_opaque_reads_length_prefixed_bodies() -> None:
    r = WireReader(bytes.fromhex("03 616263 0002 6869 000001 7a"))
    assert r.opaque(1) == b"abc"
    assert r.opaque(2) == b"hi"
    assert r.opaque(3) == b"z"
    assert r.at_end()


def test_opaque_longer_than_data_is_decode_error() -> None:
    with pytest.raises(DecodeError):
        WireReader(bytes.fromhex("05 6162")).opaque(1)


def test_vector_is_limited_to_its_body() -> None:
    # A 2-byte vector followed by more data: the sub-reader must not read past its end.
    r = WireReader(bytes.fromhex("0002 aabb ccdd"))
    v = r.vector(2)
    assert v.remaining == 2
    assert v.u16() == 0xAABB
    assert v.at_end()
    with pytest.raises(DecodeError):
        v.u8()
    assert r.remaining == 2
    assert r.u16() == 0xCCDD


def test_nested_vectors() -> None:
    r = WireReader(bytes.fromhex("0005 02 0102 01 03 ff"))
    outer = r.vector(2)
    assert outer.vector(1).rest() == b"\x01\x02"
    inner = outer.vector(1)
    assert inner.u8() == 3
    assert outer.at_end()
    assert r.u8() == 0xFF


def test_vector_with_start_and_end_window() -> None:
    r = WireReader(b"0123456789", start=2, end=5)
    assert r.remaining == 3
    assert r.rest() == b"234"
    with pytest.raises(DecodeError):
        r.u8()


def test_u16_list() -> None:
    assert WireReader(bytes.fromhex("0006 1301 1302 1303")).u16_list(2) == (0x1301, 0x1302, 0x1303)
    assert WireReader(bytes.fromhex("04 0403 0804")).u16_list(1) == (0x0403, 0x0804)
    assert WireReader(bytes.fromhex("0000")).u16_list(2) == ()


def test_u16_list_odd_length_is_decode_error() -> None:
    with pytest.raises(DecodeError, match="odd length"):
        WireReader(bytes.fromhex("0003 130113")).u16_list(2)


def test_u8_list() -> None:
    assert WireReader(bytes.fromhex("03 000102")).u8_list(1) == (0, 1, 2)
    assert WireReader(bytes.fromhex("00")).u8_list(1) == ()


_OPS = st.sampled_from(["u8", "u16", "u24", "raw3", "rest", "opaque1", "opaque2", "vector2",
                        "u16_list1", "u8_list1"])  # fmt: skip


@settings(derandomize=True, max_examples=300, deadline=None)
@given(data=st.binary(max_size=40), ops=st.lists(_OPS, max_size=12))
def test_any_sequence_of_reads_is_value_or_decode_error(data: bytes, ops: list[str]) -> None:
    r = WireReader(data)
    consumed = 0
    for op in ops:
        before = r.remaining
        try:
            if op == "raw3":
                r.raw(3)
            elif op == "opaque1":
                r.opaque(1)
            elif op == "opaque2":
                r.opaque(2)
            elif op == "vector2":
                r.vector(2)
            elif op == "u16_list1":
                r.u16_list(1)
            elif op == "u8_list1":
                r.u8_list(1)
            else:
                getattr(r, op)()
        except DecodeError:
            pass
        assert 0 <= r.remaining <= before
        consumed += before - r.remaining
    assert consumed + r.remaining == len(data)
