"""Link-layer header type numbers (LINKTYPE_* of tcpdump.org) and their names.

Only the types in :data:`SUPPORTED` can be decoded down to TCP; the others are named so that an
error or an anomaly can say what the capture holds (e.g. ``105 (IEEE802_11)``).
"""

from __future__ import annotations

NULL = 0
"""BSD loopback: 4-byte address family in the byte order of the capturing host."""
ETHERNET = 1
"""Ethernet II (and 802.3), possibly with 802.1Q / 802.1ad VLAN tags."""
DLT_RAW_12 = 12
"""Raw IP as DLT_RAW is numbered on most systems (some files carry it instead of 101)."""
DLT_RAW_14 = 14
"""Raw IP as DLT_RAW is numbered on OpenBSD."""
RAW = 101
"""Raw IPv4 or IPv6, told apart by the version nibble."""
LOOP = 108
"""OpenBSD loopback: like NULL, but the address family is always big-endian."""
LINUX_SLL = 113
"""Linux cooked capture v1 (``tcpdump -i any``): 16-byte pseudo header."""
ERF = 197
"""Endace ERF records (what ``editcap`` makes of an ERF file): ERF header, then the frame."""
IPV4 = 228
"""Raw IPv4 only."""
IPV6 = 229
"""Raw IPv6 only."""
LINUX_SLL2 = 276
"""Linux cooked capture v2: 20-byte pseudo header."""

SUPPORTED: frozenset[int] = frozenset(
    {NULL, ETHERNET, DLT_RAW_12, DLT_RAW_14, RAW, LOOP, LINUX_SLL, ERF, IPV4, IPV6, LINUX_SLL2}
)
"""Link types :func:`tlspcap.capture.decode.segment_decoder` can decode."""

_NAMES: dict[int, str] = {
    NULL: "NULL",
    ETHERNET: "ETHERNET",
    3: "AX25",
    6: "IEEE802_5",
    7: "ARCNET_BSD",
    8: "SLIP",
    9: "PPP",
    10: "FDDI",
    DLT_RAW_12: "RAW",
    DLT_RAW_14: "RAW",
    50: "PPP_HDLC",
    51: "PPP_ETHER",
    100: "ATM_RFC1483",
    RAW: "RAW",
    104: "C_HDLC",
    105: "IEEE802_11",
    107: "FRELAY",
    LOOP: "LOOP",
    LINUX_SLL: "LINUX_SLL",
    117: "PFLOG",
    119: "IEEE802_11_PRISM",
    122: "IP_OVER_FC",
    127: "IEEE802_11_RADIOTAP",
    143: "DOCSIS",
    163: "IEEE802_11_AVS",
    187: "BLUETOOTH_HCI_H4",
    189: "USB_LINUX",
    192: "PPI",
    195: "IEEE802_15_4_WITHFCS",
    ERF: "ERF",
    201: "BLUETOOTH_HCI_H4_WITH_PHDR",
    215: "IEEE802_15_4_NONASK_PHY",
    220: "USB_LINUX_MMAPPED",
    226: "IPNET",
    IPV4: "IPV4",
    IPV6: "IPV6",
    230: "IEEE802_15_4_NOFCS",
    231: "DBUS",
    239: "NFLOG",
    240: "NETANALYZER",
    241: "NETANALYZER_TRANSPARENT",
    243: "MPEG_2_TS",
    249: "USBPCAP",
    251: "BLUETOOTH_LE_LL",
    252: "WIRESHARK_UPPER_PDU",
    253: "NETLINK",
    254: "BLUETOOTH_LINUX_MONITOR",
    LINUX_SLL2: "LINUX_SLL2",
}


def linktype_name(linktype: int) -> str:
    """Return the LINKTYPE_ name of ``linktype`` without its prefix, or ``"UNKNOWN"``."""
    if 147 <= linktype <= 162:
        return f"USER{linktype - 147}"
    return _NAMES.get(linktype, "UNKNOWN")


def describe(linktype: int) -> str:
    """Render a link type for messages, e.g. ``"105 (IEEE802_11)"``."""
    return f"{linktype} ({linktype_name(linktype)})"


def unsupported_message(linktype: int) -> str:
    """The message used wherever a link type cannot be decoded."""
    return f"unsupported link type {describe(linktype)}"
