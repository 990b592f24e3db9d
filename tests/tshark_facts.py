"""Handshake facts per TCP connection as Wireshark's tshark dissects them (test oracle).

tshark is run once per capture with ``-T pdml``: PDML keeps the protocol tree in order, so a frame
holding several records, a record holding several handshake messages, and a message reassembled
from several TCP segments (shown in the frame that completes it) all keep their structure. Only
numeric values are read (the ``value`` hex attribute or the numeric ``show``), never display names.

The result mirrors the subset of tlspcap's JSON (see /work/shared/CAUSES.md) that tshark can also
see: per connection ``client``/``server`` (``"ip:port"``, IPv6 as ``"[addr]:port"``),
``client_hellos``, ``server_hellos``, cleartext ``alerts`` and the server ``certificates`` (one
``{"frame": N}`` per certificate, no details).

Conventions, chosen to match what tlspcap's parser does:

* client = the sender of the first ClientHello; without one, the receiver of the first
  server-side handshake message; without that, the sender of the SYN; else the sender of the first
  TLS record.
* SSLv2 CLIENT-HELLO (also the SSLv2-compatible hello of SSL 3 / TLS clients): ``legacy_version``
  is the hello's version field; ``cipher_suites`` keeps only the 3-byte cipher kinds whose first
  byte is 0x00, as their low two bytes (the TLS suite they stand for); no extensions, SNI, ALPN or
  supported_versions.
* SSLv2 SERVER-HELLO: ``version`` is its version field, ``cipher_suite`` the first 3-byte cipher
  kind it lists (as a 24-bit integer), no extensions; the certificate it carries counts as one
  server certificate at the same frame.
* ``hello_retry_request`` is true when the ServerHello random is the RFC 8446 magic value (the
  numeric test, not tshark's "Hello Retry Request" label). Draft-era HRR messages (type 6) are not
  ServerHellos and are skipped.
* Alerts: only those tshark decodes (it shows a level and a description); "Encrypted Alert" is
  left out. Level and description are mapped from their numeric codes to IANA names (``None`` for
  a code IANA does not name).
* Records tshark could only read by decrypting them (a pcapng Decryption Secrets Block is enough
  for tshark to decrypt) are skipped: a TLS 1.3 record with an opaque type, and, once a
  ServerHello chose SSL 3 to TLS 1.2 with a suite that encrypts (not a NULL one), every record a
  side sends after its ChangeCipherSpec. Only cleartext facts are reported. (With no ServerHello
  seen, a ChangeCipherSpec encrypts nothing: TLS 1.3 clients send one before a second
  ClientHello.)
* SNI and ALPN strings are decoded from the raw bytes as UTF-8, undecodable bytes replaced by
  U+FFFD in the SNI and escaped as ``\\xNN`` in ALPN names (as tlspcap's JSON does).
"""

from __future__ import annotations

import io
import os
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tlspcap.tls.registry import alert_level_name, alert_name

TSHARK = os.environ.get("TSHARK", "tshark")

#: Captures that tshark misreads with out-of-order reassembly on (MANIFEST.md): TCP Fast Open data
#: carried in a SYN is dropped as out-of-order and the ClientHello is lost.
REASSEMBLE_OUT_OF_ORDER_OFF = frozenset({"tcp-fastopen-10-syn-data-ignore.pcap"})

#: RFC 8446 section 4.1.3: the ServerHello.random of a HelloRetryRequest.
HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")

# Alert names: the registry's, so unknown codes render alike on both sides (numbers come
# from tshark).

_CHANGE_CIPHER_SPEC = 20
#: SSL 3.0 to TLS 1.2: versions in which ChangeCipherSpec starts encryption.
_PRE_TLS13 = frozenset({0x0300, 0x0301, 0x0302, 0x0303})
#: IANA cipher suites with NULL bulk encryption (records stay readable after ChangeCipherSpec).
NULL_CIPHER_SUITES = frozenset(
    {0x0000, 0x0001, 0x0002, 0x001C, 0x002C, 0x002D, 0x002E, 0x003B, 0x0082, 0x0083}
    | {0x00B0, 0x00B1, 0x00B4, 0x00B5, 0x00B8, 0x00B9, 0xC001, 0xC006, 0xC00B, 0xC010}
    | {0xC015, 0xC039, 0xC03A, 0xC03B, 0xC0B4, 0xC0B5}
)
# Handshake types (RFC 8446 / RFC 5246), SSLv2 message types.
_CLIENT_HELLO = 1
_SERVER_HELLO = 2
_CERTIFICATE = 11
#: Handshake messages only a server sends (used to tell the client when no ClientHello was seen).
_SERVER_ONLY_TYPES = frozenset({2, 4, 6, 8, 11, 12, 13, 14})
_SSL2_CLIENT_HELLO = 1
_SSL2_SERVER_HELLO = 4

_EXT_SERVER_NAME = 0
_EXT_ALPN = 16
_EXT_SUPPORTED_VERSIONS = 43


def decode_as_args(server_ports: Iterable[int]) -> list[str]:
    """``-d tcp.port==P,tls`` for each port: make tshark dissect those streams as TLS."""
    args: list[str] = []
    for port in sorted(set(server_ports)):
        args += ["-d", f"tcp.port=={port},tls"]
    return args


def tshark_command(path: Path, extra_args: Sequence[str] = ()) -> list[str]:
    """The tshark command line :func:`tshark_connections` runs."""
    ooo = "FALSE" if path.name in REASSEMBLE_OUT_OF_ORDER_OFF else "TRUE"
    return [
        TSHARK,
        "-n",
        "-r",
        str(path),
        "-o",
        f"tcp.reassemble_out_of_order:{ooo}",
        *extra_args,
        "-Y",
        "tls or (tcp.flags.syn == 1 and tcp.flags.ack == 0)",
        "-T",
        "pdml",
        "-J",
        "ip ipv6 tcp tls",
    ]


def run_tshark_pdml(path: Path, extra_args: Sequence[str] = ()) -> bytes:
    """Run tshark with default preferences (an empty config dir) and return the PDML."""
    with tempfile.TemporaryDirectory(prefix="tshark-conf-") as confdir:
        env = {**os.environ, "WIRESHARK_CONFIG_DIR": confdir}
        proc = subprocess.run(
            tshark_command(path, extra_args), capture_output=True, env=env, check=False
        )
    if proc.returncode != 0 and not proc.stdout.rstrip().endswith(b"</pdml>"):
        raise RuntimeError(f"tshark failed on {path}: {proc.stderr.decode(errors='replace')}")
    return proc.stdout


def tshark_connections(path: Path, extra_args: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Per TCP connection in which tshark dissected TLS, the handshake facts (module docstring).

    Connections are in the order of their first SYN or TLS frame; each dict also carries
    ``first_frame`` and tshark's ``stream`` index.
    """
    return parse_pdml(run_tshark_pdml(path, extra_args))


# --- PDML parsing -----------------------------------------------------------------------------


@dataclass
class _Event:
    """One fact, before the client side of its connection is known."""

    kind: str  # "client_hello", "server_hello", "certificates", "alert", "server_side"
    frame: int
    src: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Stream:
    first_frame: int
    endpoints: tuple[str, str]
    syn_src: str | None = None
    first_tls_src: str | None = None
    events: list[_Event] = field(default_factory=list)
    ccs_from: set[str] = field(default_factory=set)
    """Endpoints that sent a ChangeCipherSpec."""
    ciphers_on: bool = False
    """The last ServerHello selected SSL 3 to TLS 1.2 with a suite that encrypts: records a side
    sends after its ChangeCipherSpec are then encrypted. (TLS 1.3 records are encrypted behind an
    opaque type and its ChangeCipherSpec is a dummy; NULL suites leave records readable.)"""

    def encrypted(self, record: ET.Element, src: str) -> bool:
        """Whether tshark can only have read the record by decrypting it (keys from a pcapng
        Decryption Secrets Block, or a key log): such records are not cleartext facts."""
        if next(_children(record, "tls.record.opaque_type"), None) is not None:
            return True
        return src in self.ccs_from and self.ciphers_on


def _endpoint(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def _children(elem: ET.Element, name: str) -> Iterator[ET.Element]:
    return (c for c in elem if c.get("name") == name)


def _first(elem: ET.Element, name: str) -> ET.Element | None:
    """First descendant (depth-first, document order) with that field name."""
    for c in elem.iter():
        if c is not elem and c.get("name") == name:
            return c
    return None


def _int(elem: ET.Element) -> int:
    """A field's numeric value: its hex ``value`` when present, else its ``show`` (0x.. or dec)."""
    value = elem.get("value")
    if value:
        return int(value, 16)
    show = elem.get("show", "")
    return int(show, 0)


def _raw(elem: ET.Element) -> bytes:
    return bytes.fromhex(elem.get("value", ""))


def _text(elem: ET.Element, errors: str = "replace") -> str:
    return _raw(elem).decode("utf-8", errors=errors)


def _extensions(handshake: ET.Element) -> list[tuple[int, ET.Element]]:
    """(type, element) of each extension, in wire order."""
    out: list[tuple[int, ET.Element]] = []
    for c in handshake:
        etype = next(_children(c, "tls.handshake.extension.type"), None)
        if etype is not None:
            out.append((_int(etype), c))
    return out


def _client_hello(hs: ET.Element, frame: int) -> dict[str, Any]:
    exts = _extensions(hs)
    suites_elem = next(_children(hs, "tls.handshake.ciphersuites"), None)
    suites = (
        [_int(s) for s in _children(suites_elem, "tls.handshake.ciphersuite")]
        if suites_elem is not None
        else []
    )
    sni: str | None = None
    alpn: list[str] = []
    versions: list[int] = []
    for etype, ext in exts:
        if etype == _EXT_SERVER_NAME and sni is None:
            name = _first(ext, "tls.handshake.extensions_server_name")
            if name is not None:
                sni = _text(name)
        elif etype == _EXT_ALPN and not alpn:
            alpn = [
                _text(a, "backslashreplace")
                for a in ext.iter()
                if a.get("name") == "tls.handshake.extensions_alpn_str"
            ]
        elif etype == _EXT_SUPPORTED_VERSIONS and not versions:
            versions = [
                _int(v)
                for v in ext.iter()
                if v.get("name") == "tls.handshake.extensions.supported_version"
            ]
    version = next(_children(hs, "tls.handshake.version"))
    return {
        "frame": frame,
        "legacy_version": _int(version),
        "supported_versions": versions,
        "cipher_suites": suites,
        "extensions": [t for t, _ in exts],
        "sni": sni,
        "alpn": alpn,
    }


def _server_hello(hs: ET.Element, frame: int) -> dict[str, Any]:
    exts = _extensions(hs)
    version = _int(next(_children(hs, "tls.handshake.version")))
    for etype, ext in exts:
        if etype == _EXT_SUPPORTED_VERSIONS:
            selected = _first(ext, "tls.handshake.extensions.supported_version")
            if selected is not None:
                version = _int(selected)
            break
    random = next(_children(hs, "tls.handshake.random"), None)
    suite = next(_children(hs, "tls.handshake.ciphersuite"))
    return {
        "frame": frame,
        "version": version,
        "cipher_suite": _int(suite),
        "extensions": [t for t, _ in exts],
        "hello_retry_request": random is not None and _raw(random) == HRR_RANDOM,
    }


def _sslv2_specs(record: ET.Element) -> list[int]:
    specs = next(_children(record, "tls.handshake.ciphersuites"), None)
    if specs is None:
        return []
    return [_int(s) for s in _children(specs, "tls.handshake.cipherspec")]


def _sslv2_events(record: ET.Element, frame: int, src: str) -> list[_Event]:
    mtype = _int(next(_children(record, "tls.handshake.type")))
    if mtype == _SSL2_CLIENT_HELLO:
        specs = _sslv2_specs(record)
        hello = {
            "frame": frame,
            "legacy_version": _int(next(_children(record, "tls.handshake.version"))),
            "supported_versions": [],
            "cipher_suites": [s & 0xFFFF for s in specs if s >> 16 == 0],
            "extensions": [],
            "sni": None,
            "alpn": [],
        }
        return [_Event("client_hello", frame, src, hello)]
    if mtype == _SSL2_SERVER_HELLO:
        specs = _sslv2_specs(record)
        hello = {
            "frame": frame,
            "version": _int(next(_children(record, "tls.handshake.version"))),
            "cipher_suite": specs[0] if specs else None,
            "extensions": [],
            "hello_retry_request": False,
        }
        events = [_Event("server_hello", frame, src, hello)]
        cert_len = next(_children(record, "tls.handshake.certificate_length"), None)
        if cert_len is not None and _int(cert_len) > 0:
            events.append(_Event("certificates", frame, src, {"count": 1}))
        return events
    return []


def _record_events(record: ET.Element, frame: int, src: str) -> list[_Event]:
    if next(_children(record, "tls.handshake.type"), None) is not None:
        return _sslv2_events(record, frame, src)
    events: list[_Event] = []
    for hs in _children(record, "tls.handshake"):
        htype_elem = next(_children(hs, "tls.handshake.type"), None)
        if htype_elem is None:  # "Encrypted Handshake Message"
            continue
        htype = _int(htype_elem)
        if htype in _SERVER_ONLY_TYPES:
            events.append(_Event("server_side", frame, src))
        if htype == _CLIENT_HELLO:
            events.append(_Event("client_hello", frame, src, _client_hello(hs, frame)))
        elif htype == _SERVER_HELLO:
            events.append(_Event("server_hello", frame, src, _server_hello(hs, frame)))
        elif htype == _CERTIFICATE:
            certs = next(_children(hs, "tls.handshake.certificates"), None)
            count = (
                sum(1 for _ in _children(certs, "tls.handshake.certificate"))
                if certs is not None
                else 0
            )
            events.append(_Event("certificates", frame, src, {"count": count}))
    for alert in _children(record, "tls.alert_message"):
        level = next(_children(alert, "tls.alert_message.level"), None)
        desc = next(_children(alert, "tls.alert_message.desc"), None)
        if level is None or desc is None:  # "Encrypted Alert"
            continue
        events.append(
            _Event(
                "alert",
                frame,
                src,
                {
                    "level": alert_level_name(_int(level)),
                    "description": alert_name(_int(desc)),
                },
            )
        )
    return events


def _packet(pkt: ET.Element, streams: dict[int, _Stream]) -> None:
    frame = 0
    src_addr = dst_addr = ""
    tcp: ET.Element | None = None
    for proto in pkt:
        name = proto.get("name")
        if name == "geninfo":
            num = next(_children(proto, "num"), None)
            frame = int(num.get("show", "0")) if num is not None else 0
        elif name in ("ip", "ipv6"):
            src = next(_children(proto, f"{name}.src"), None)
            dst = next(_children(proto, f"{name}.dst"), None)
            if src is not None and dst is not None:
                src_addr, dst_addr = src.get("show", ""), dst.get("show", "")
        elif name == "tcp":
            tcp = proto
        elif name == "tls" and tcp is not None:
            stream, src_ep = _stream_of(tcp, frame, src_addr, dst_addr, streams)
            if stream.first_tls_src is None:
                stream.first_tls_src = src_ep
            for record in _children(proto, "tls.record"):
                if stream.encrypted(record, src_ep):
                    continue
                events = _record_events(record, frame, src_ep)
                stream.events.extend(events)
                for ev in events:
                    if ev.kind == "server_hello":
                        stream.ciphers_on = (
                            ev.data["version"] in _PRE_TLS13
                            and ev.data["cipher_suite"] not in NULL_CIPHER_SUITES
                        )
                ctype = next(_children(record, "tls.record.content_type"), None)
                if ctype is not None and _int(ctype) == _CHANGE_CIPHER_SPEC:
                    stream.ccs_from.add(src_ep)
    if tcp is not None:
        stream, src_ep = _stream_of(tcp, frame, src_addr, dst_addr, streams)
        syn = _first(tcp, "tcp.flags.syn")
        ack = _first(tcp, "tcp.flags.ack")
        is_syn = syn is not None and ack is not None and syn.get("show") == "1"
        if is_syn and ack is not None and ack.get("show") == "0" and stream.syn_src is None:
            stream.syn_src = src_ep


def _stream_of(
    tcp: ET.Element, frame: int, src_addr: str, dst_addr: str, streams: dict[int, _Stream]
) -> tuple[_Stream, str]:
    sport = int(next(_children(tcp, "tcp.srcport")).get("show", "0"))
    dport = int(next(_children(tcp, "tcp.dstport")).get("show", "0"))
    index = int(next(_children(tcp, "tcp.stream")).get("show", "0"))
    src_ep, dst_ep = _endpoint(src_addr, sport), _endpoint(dst_addr, dport)
    stream = streams.get(index)
    if stream is None:
        stream = streams[index] = _Stream(first_frame=frame, endpoints=(src_ep, dst_ep))
    return stream, src_ep


def _client_of(stream: _Stream) -> str | None:
    for ev in stream.events:
        if ev.kind == "client_hello":
            return ev.src
    a, b = stream.endpoints
    for ev in stream.events:
        if ev.kind == "server_side":
            return b if ev.src == a else a
    return stream.syn_src or stream.first_tls_src


def _connection(stream: _Stream, index: int) -> dict[str, Any] | None:
    client = _client_of(stream)
    if client is None:  # a SYN and no TLS at all
        return None
    a, b = stream.endpoints
    server = b if client == a else a
    conn: dict[str, Any] = {
        "client": client,
        "server": server,
        "stream": index,
        "first_frame": stream.first_frame,
        "client_hellos": [],
        "server_hellos": [],
        "certificates": [],
        "alerts": [],
    }
    for ev in stream.events:
        from_client = ev.src == client
        if ev.kind == "client_hello" and from_client:
            conn["client_hellos"].append(ev.data)
        elif ev.kind == "server_hello" and not from_client:
            conn["server_hellos"].append(ev.data)
        elif ev.kind == "certificates" and not from_client:
            conn["certificates"] += [{"frame": ev.frame}] * ev.data["count"]
        elif ev.kind == "alert":
            conn["alerts"].append(
                {
                    "frame": ev.frame,
                    "sender": "client" if from_client else "server",
                    **ev.data,
                    "encrypted": False,
                }
            )
    return conn


def parse_pdml(pdml: bytes) -> list[dict[str, Any]]:
    """Connections from tshark PDML output (see :func:`tshark_connections`)."""
    streams: dict[int, _Stream] = {}
    for _, elem in ET.iterparse(io.BytesIO(pdml), events=("end",)):
        if elem.tag == "packet":
            _packet(elem, streams)
            elem.clear()
    conns = [_connection(s, i) for i, s in streams.items()]
    return sorted((c for c in conns if c is not None), key=lambda c: int(c["first_frame"]))
