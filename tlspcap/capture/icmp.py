"""ICMP and ICMPv6 error messages that quote a TCP segment.

An error message (RFC 792 / RFC 4443) quotes the IP header of the packet that caused it and at
least the first 8 bytes of its payload: for TCP, the ports and the sequence number. Routers send
them when a packet cannot be delivered (destination unreachable, fragmentation needed with the
next-hop MTU, packet too big), expires (time exceeded) or is refused (parameter problem).
:func:`parse_icmp_error` reads one; the decoder turns it into a
:class:`~tlspcap.capture.model.IcmpError`.
"""

from __future__ import annotations

from typing import NamedTuple

ICMP4_ERRORS = frozenset({3, 4, 5, 11, 12})
"""ICMP types that quote the offending packet: unreachable, source quench, redirect, time
exceeded, parameter problem."""
ICMP6_ERRORS = frozenset({1, 2, 3, 4})
"""ICMPv6 error types: unreachable, packet too big, time exceeded, parameter problem."""

_IPV6_EXT_8 = frozenset({0, 43, 60, 135, 139, 140})
_MAX_EXTENSIONS = 8


class QuotedTcp(NamedTuple):
    """What an ICMP error says about the TCP segment it quotes."""

    icmp_type: int
    code: int
    mtu: int | None
    src: bytes
    sport: int
    dst: bytes
    dport: int
    seq: int


def _u16(d: bytes, i: int) -> int:
    return (d[i] << 8) | d[i + 1]


def _u32(d: bytes, i: int) -> int:
    return (d[i] << 24) | (d[i + 1] << 16) | (d[i + 2] << 8) | d[i + 3]


def parse_icmp_error(d: bytes, off: int, end: int, version: int) -> QuotedTcp | None:
    """Read the ICMP (``version`` 4) or ICMPv6 (6) message at ``d[off:end]``.

    Returns ``None`` unless it is an error message quoting an IP header and at least 8 bytes of
    a TCP header (a quoted UDP packet, an echo, a truncated quote all give ``None``).
    """
    n = min(len(d), end)
    if off + 8 > n:
        return None
    icmp_type, code = d[off], d[off + 1]
    q = off + 8
    if version == 4:
        if icmp_type not in ICMP4_ERRORS or q + 20 > n:
            return None
        mtu = _u16(d, off + 6) if icmp_type == 3 and code == 4 else None
        vihl = d[q]
        ihl = (vihl & 15) << 2
        if vihl >> 4 != 4 or ihl < 20 or d[q + 9] != 6 or _u16(d, q + 6) & 0x1FFF:
            return None
        src, dst, t = d[q + 12 : q + 16], d[q + 16 : q + 20], q + ihl
    else:
        if icmp_type not in ICMP6_ERRORS or q + 40 > n or d[q] >> 4 != 6:
            return None
        mtu = _u32(d, off + 4) if icmp_type == 2 else None
        nh, src, dst, t = d[q + 6], d[q + 8 : q + 24], d[q + 24 : q + 40], q + 40
        for _ in range(_MAX_EXTENSIONS):
            if nh == 6 or t + 8 > n:
                break
            if nh in _IPV6_EXT_8:
                step = (d[t + 1] + 1) << 3
            elif nh == 44 and not _u16(d, t + 2) & 0xFFF8:  # first fragment: TCP follows
                step = 8
            elif nh == 51:
                step = (d[t + 1] + 2) << 2
            else:
                return None
            nh, t = d[t], t + step
        if nh != 6:
            return None
    if t + 8 > n:
        return None
    return QuotedTcp(icmp_type, code, mtu, src, _u16(d, t), dst, _u16(d, t + 2), _u32(d, t + 4))
