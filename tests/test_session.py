"""TlsSession: records to hellos, certificates, alerts, encryption state (tlspcap.session)."""

from __future__ import annotations

import hashlib

from feeding import Fed
from hypothesis import given, settings
from hypothesis import strategies as st
from vectors import (
    CERTIFICATE_REQUEST_TLS12,
    CHROME_CLIENT_HELLO,
    HRR_SERVER_HELLO,
    ILLUSTRATED13_SERVER_HELLO,
    PSK_CLIENT_HELLO,
    PSK_SERVER_HELLO,
    SSLV2_CLIENT_HELLO_RECORD,
    SSLV2_SERVER_HELLO,
    TLS12_CERT_SHA256,
    chunked,
    handshake,
    record,
    sslv2_record,
    tls12_streams,
)

from tlspcap.session import TlsSession
from tlspcap.tcp.reassembly import Gap
from tlspcap.tls.messages import Alert, CertificateMessage

ENDPOINTS = ((b"\x7f\x00\x00\x01", 50000), (b"\x7f\x00\x00\x02", 443))
C, S = 0, 1  # direction indexes: the TCP initiator is the client unless a hello says otherwise

CH = record(22, handshake(1, PSK_CLIENT_HELLO), 0x0301)
CCS = record(20, b"\x01")


def tls12_sh(suite: int) -> bytes:
    """A TLS 1.2 ServerHello record selecting ``suite``, without extensions."""
    body = bytes.fromhex("0303") + bytes(range(32)) + b"\x00" + suite.to_bytes(2, "big") + b"\x00"
    return record(22, handshake(2, body))


def session(*feeds: tuple[int, bytes, int]) -> TlsSession:
    """A session fed (direction, bytes, frame) in order, then finished."""
    s = Fed(TlsSession(ENDPOINTS))
    for direction, data, frame in feeds:
        s.data(direction, (data, frame))
    s.finish()
    return s


def anomalies(s: TlsSession) -> list[tuple[str, int | None]]:
    return [(a.name, a.frame) for a in s.anomalies]


def tls12_feeds() -> list[tuple[int, bytes, int]]:
    """The real TLS 1.2 handshake's segments in capture (frame) order."""
    client, server = tls12_streams()
    feeds = [(C, p, f) for p, f in client.chunks] + [(S, p, f) for p, f in server.chunks]
    return sorted(feeds, key=lambda x: x[2])


# ---- the real TLS 1.2 handshake ----------------------------------------------------------------


def check_tls12(s: TlsSession) -> None:
    assert s.client_dir == C
    assert s.role(C) == "client"
    assert s.role(S) == "server"
    assert [h.frame for h in s.client_hellos] == [4]
    assert [h.frame for h in s.server_hellos] == [6]
    assert (s.version, s.cipher) == (0x0303, 0x0004)
    assert [c.frame for c in s.server.certificates] == [9]
    chain = s.server.certificates[0].chain
    assert tuple(hashlib.sha256(c).hexdigest() for c in chain) == TLS12_CERT_SHA256
    assert s.client.certificates == []
    assert s.server_hello_done_frame == 9
    assert s.certificate_request is None
    assert (s.client.ccs_frame, s.server.ccs_frame) == (11, 13)
    assert s.client.encrypted and s.server.encrypted
    assert (s.client.encrypted_handshake_records, s.server.encrypted_handshake_records) == (1, 1)
    assert (s.client.application_records, s.server.application_records) == (2, 2)
    assert (s.client.first_application_frame, s.server.first_application_frame) == (15, 18)
    assert s.alerts == [Alert(20, "client", None, None, True, 18)]
    assert s.history == "CsxnGIFifDdL"
    assert [(r.direction, r.content_type, r.length, r.frame) for r in s.encrypted_log] == [
        (C, 22, 32, 11),
        (S, 22, 32, 13),
        (C, 23, 31, 15),
        (C, 23, 17, 15),
        (S, 23, 1464, 18),
        (S, 23, 592, 18),
        (C, 21, 18, 20),
    ]
    assert s.is_tls
    assert s.anomalies == []


def test_real_tls12_handshake_as_captured() -> None:
    check_tls12(session(*tls12_feeds()))


def test_real_tls12_handshake_whole_flights() -> None:
    # Each flight delivered in one piece at the frame of its last segment.
    client, server = tls12_streams()
    c, s = client.data, server.data
    feeds = [
        (C, c[:322], 4),
        (S, s[:3927], 9),
        (C, c[322:632], 11),
        (S, s[3927:3970], 13),
        (C, c[632:690], 15),
        (S, s[3970:], 18),
        (C, c[690:], 20),
    ]
    got = session(*feeds)
    assert [h.frame for h in got.server_hellos] == [9]  # completed by the piece of frame 9
    assert [c.frame for c in got.server.certificates] == [9]
    assert got.history == "CsxnGIFifDdL"


@settings(derandomize=True, max_examples=40, deadline=None)
@given(splits=st.lists(st.sets(st.integers(1, 1447), max_size=6).map(sorted), min_size=10))
def test_any_split_of_the_segments_gives_the_same_session(splits: list[list[int]]) -> None:
    feeds = []
    for n, (direction, data, frame) in enumerate(tls12_feeds()):
        cuts = [c for c in splits[n % len(splits)] if c < len(data)]
        feeds += [(direction, piece, frame) for piece in chunked(data, cuts)]
    check_tls12(session(*feeds))


def test_real_tls12_one_byte_at_a_time() -> None:
    feeds = [(d, data[i : i + 1], f) for d, data, f in tls12_feeds() for i in range(len(data))]
    check_tls12(session(*feeds))


def test_trailing_garbage_after_the_handshake() -> None:
    s = session(*tls12_feeds(), (C, b"\x00" * 10, 21), (S, b"\xff" * 8, 22))
    assert [h.frame for h in s.client_hellos] == [4]
    assert s.history == "CsxnGIFifDdL"
    assert anomalies(s) == [("invalid_record_header", 21), ("invalid_record_header", 22)]


# ---- TLS 1.3 -------------------------------------------------------------------------------


def test_tls13_handshake_encrypts_both_sides_after_server_hello() -> None:
    s = session(
        (C, CH, 1),
        (S, record(22, handshake(2, PSK_SERVER_HELLO)) + CCS + record(23, bytes(100)), 2),
        (C, CCS + record(23, bytes(53)), 3),
        (C, record(23, bytes(40)), 4),
        (S, record(23, bytes(30)), 5),
    )
    assert (s.version, s.cipher) == (0x0304, 0x1303)
    assert s.client.encrypted and s.server.encrypted
    assert (s.client.ccs_frame, s.server.ccs_frame) == (3, 2)
    assert s.history == "CsiIDd"
    assert (s.client.encrypted_handshake_records, s.server.encrypted_handshake_records) == (1, 1)
    assert (s.client.application_records, s.server.application_records) == (1, 1)
    assert [(r.direction, r.length, r.frame) for r in s.encrypted_log] == [
        (S, 100, 2),
        (C, 53, 3),
        (C, 40, 4),
        (S, 30, 5),
    ]
    assert s.client_hellos[0].psk_offered
    assert s.anomalies == []


def test_hello_retry_request_then_second_client_hello() -> None:
    s = session(
        (C, record(22, handshake(1, CHROME_CLIENT_HELLO), 0x0301), 1),
        (S, record(22, handshake(2, HRR_SERVER_HELLO)) + CCS, 2),
        (C, CCS + CH, 3),
        (S, record(22, handshake(2, ILLUSTRATED13_SERVER_HELLO)), 4),
    )
    assert [h.frame for h in s.client_hellos] == [1, 3]
    assert [(h.frame, h.hello_retry_request) for h in s.server_hellos] == [(2, True), (4, False)]
    # Zeek's ssl_history for zeek/hrr.pcap is "CjiICs" (shared corpus baseline).
    assert s.history == "CjiICs"
    assert (s.version, s.cipher) == (0x0304, 0x1302)
    assert s.client.encrypted and s.server.encrypted


def test_tls13_alert_record_after_server_hello_is_plaintext() -> None:
    # TLS 1.3 sends every encrypted record as application_data: an alert record is in clear
    # (here the client rejects the ServerHello before it has handshake keys).
    s = session(
        (C, CH, 1),
        (S, record(22, handshake(2, PSK_SERVER_HELLO)), 2),
        (C, record(21, b"\x02\x2f"), 3),
    )
    assert s.alerts == [Alert(3, "client", 2, 47, False, 2)]
    assert s.history == "CsL"


# ---- alerts, roles, anomalies ------------------------------------------------------------------


def test_plaintext_alert_from_the_server() -> None:
    s = session((C, CH, 4), (S, record(21, b"\x02\x28"), 6))
    assert s.alerts == [Alert(6, "server", 2, 40, False, 2)]
    assert s.history == "Cl"
    assert s.server_hellos == []
    assert s.version is None


def test_two_alerts_in_one_record_and_a_malformed_one() -> None:
    # (A first record of two alerts would not be taken for TLS: the server hello comes first.)
    s = session(
        (C, CH, 1),
        (S, tls12_sh(0x002F) + record(21, b"\x01\x70\x02\x28"), 2),
        (S, record(21, b"\x02"), 3),
    )
    assert s.alerts == [Alert(2, "server", 1, 112, False, 4), Alert(2, "server", 2, 40, False, 4)]
    assert anomalies(s) == [("malformed_alert", 3)]


def test_null_cipher_alert_after_ccs_is_readable() -> None:
    s = session(
        (C, CH, 1),
        (S, tls12_sh(0x0001) + record(22, handshake(14, b"")), 2),  # TLS_RSA_WITH_NULL_MD5
        (C, record(22, handshake(16, b"\x00\x02ab")) + CCS, 3),
        (C, record(21, b"\x01\x00" + bytes(16)), 4),  # close_notify + 16-byte MAC
    )
    assert s.client.encrypted
    assert s.alerts == [Alert(4, "client", 1, 0, False, 18)]


def test_encrypted_alert_after_ccs() -> None:
    s = session(
        (C, CH, 1),
        (S, tls12_sh(0xC02F) + record(22, handshake(14, b"")), 2),
        (C, record(22, handshake(16, b"\x00\x02ab")) + CCS + record(22, bytes(40)), 3),
        (S, CCS + record(22, bytes(40)), 4),
        (S, record(21, bytes(26)), 5),
    )
    assert s.history == "CsnGIFifl"
    assert s.alerts == [Alert(5, "server", None, None, True, 26)]
    assert s.anomalies == []


def test_roles_from_the_first_hello_not_the_direction() -> None:
    # The capture starts after the ClientHello: direction 0 is the server.
    s = session((0, tls12_sh(0x002F), 1), (1, record(21, b"\x02\x28"), 2))
    assert s.client_dir == 1
    assert s.server_dir == 0
    assert s.role(0) == "server"
    assert s.alerts == [Alert(2, "client", 2, 40, False, 2)]
    assert s.history == "sL"
    assert s.client is s.sides[1]


def test_client_hello_on_direction_1_makes_it_the_client() -> None:
    s = session((1, CH, 3), (0, record(21, b"\x02\x46"), 4))
    assert s.client_dir == 1
    assert s.alerts == [Alert(4, "server", 2, 70, False, 2)]
    assert s.history == "Cl"


def test_certificate_request_and_client_certificate() -> None:
    cert = handshake(11, bytes.fromhex("000006 000003 300100"))
    s = session(
        (C, CH, 1),
        (
            S,
            tls12_sh(0xC02F)
            + record(22, cert + handshake(13, CERTIFICATE_REQUEST_TLS12) + handshake(14, b"")),
            2,
        ),
        (C, record(22, handshake(11, b"\x00\x00\x00") + handshake(16, b"\x00\x02ab")), 3),
    )
    assert s.certificate_request is not None
    assert s.certificate_request.frame == 2
    assert s.certificate_request.certificate_types == (1, 2, 64)
    assert s.server.certificates == [CertificateMessage(2, (b"\x30\x01\x00",))]
    assert s.client.certificates == [CertificateMessage(3, ())]
    assert s.history == "CsxrnXG"


def test_malformed_client_hello_and_extension_are_anomalies() -> None:
    bad_alpn = CHROME_CLIENT_HELLO.replace(
        bytes.fromhex("0010 000e 000c"), bytes.fromhex("0010 000e 000d")
    )
    s = session(
        (C, record(22, handshake(1, bad_alpn), 0x0301), 1),
        (C, record(22, handshake(1, b"\x03\x03\x00")), 2),
    )
    assert [h.frame for h in s.client_hellos] == [1]
    assert s.client_hellos[0].alpn == ()
    assert anomalies(s) == [("malformed_extension_16", 1), ("malformed_handshake_1", 2)]


def test_heartbeat_and_unknown_content_type() -> None:
    s = session(
        (C, CH, 1),
        (C, record(24, b"\x01\x00\x10" + bytes(16)), 2),
        (S, record(21, b"\x01\x00") + record(25, b"x"), 3),
    )
    assert s.history == "CBl"
    assert anomalies(s) == [("unknown_content_type", 3)]


def test_plaintext_server_answer_is_kept() -> None:
    s = session((C, CH, 4), (S, b"HTTP/1.1 400 Bad Request\r\n\r\n", 6))
    assert s.streams[C].reader.is_tls
    assert not s.streams[S].reader.is_tls
    assert s.streams[S].reader.preamble == b"HTTP/1.1 400 Bad Request\r\n\r\n"
    assert s.history == "C"


# ---- SSLv2 ---------------------------------------------------------------------------------------


def test_sslv2_hellos() -> None:
    s = session((C, SSLV2_CLIENT_HELLO_RECORD, 4), (S, sslv2_record(SSLV2_SERVER_HELLO), 6))
    assert [(h.frame, h.sslv2) for h in s.client_hellos] == [(4, True)]
    assert [(h.frame, h.sslv2) for h in s.server_hellos] == [(6, True)]
    assert (s.version, s.cipher) == (0x0002, 0x0700C0)
    assert s.server.certificates == [CertificateMessage(6, (b"\x30\x02\x05\x00",))]
    assert s.history == "Cs"


def test_malformed_sslv2_hello() -> None:
    body = SSLV2_CLIENT_HELLO_RECORD[2:] + b"\x00"  # one byte too many
    s = session((C, sslv2_record(body), 4))
    assert s.client_hellos == []
    assert anomalies(s) == [("malformed_sslv2_hello", 4)]


# ---- gaps --------------------------------------------------------------------------------------


def test_gap_inside_the_certificate_cuts_it_and_what_follows_is_read_in_step() -> None:
    # gap.pcap in miniature: the second 1448-byte server segment is missing. The gap lies
    # inside the Certificate record, whose header gave its length: the record is cut (nothing
    # is read across the gap) and the records after it are read at their true boundaries.
    _, server = tls12_streams()
    t = Fed(TlsSession(ENDPOINTS))
    t.data(C, (CH, 4))
    t.data(S, (server.data[:1448], 6))
    t.data(S, Gap(1448, 7))
    t.data(S, (server.data[2896:3927], 7))  # rest of Certificate + ServerHelloDone
    t.data(S, (server.data[3927:3970], 13))  # CCS + encrypted Finished
    t.finish()
    assert [h.frame for h in t.server_hellos] == [6]
    (cert,) = t.server.certificates
    assert (cert.frame, cert.chain, cert.truncated) == (7, (), True)  # the leaf was not whole
    assert t.server_hello_done_frame == 7
    assert t.server.ccs_frame == 13
    assert [g.frame for g in t.streams[S].gaps] == [7]
    assert t.history == "Csxnif"
    assert anomalies(t) == [("truncated_handshake_message", 7), ("tcp_gap", 7)]


def test_gap_resets_a_partial_handshake_message() -> None:
    # A Certificate message's first 5 bytes end a record; a gap follows; the reader resyncs on
    # a new ServerHello record, which must not be glued to the stale 5 bytes.
    cert = handshake(11, bytes.fromhex("000006 000003 300100"))
    t = Fed(TlsSession(ENDPOINTS))
    t.data(C, (CH, 1))
    t.data(S, (tls12_sh(0x002F) + record(22, cert[:5]), 2))
    t.data(S, Gap(10, 3))
    t.data(S, (tls12_sh(0x0035), 4))
    t.finish()
    assert [(h.frame, h.cipher_suite) for h in t.server_hellos] == [(2, 0x002F), (4, 0x0035)]
    assert t.server.certificates == []
    assert anomalies(t) == [("tcp_gap", 3), ("record_resync", 4)]


# ---- robustness --------------------------------------------------------------------------------

_piece = st.one_of(
    st.tuples(st.sampled_from([0, 1]), st.binary(max_size=60)),
    st.tuples(st.sampled_from([0, 1]), st.integers(1, 5000)),
)


@settings(derandomize=True, max_examples=250, deadline=None)
@given(pieces=st.lists(_piece, max_size=15), prefix=st.integers(0, 7), cut=st.integers(0, 1500))
def test_arbitrary_pieces_never_raise(
    pieces: list[tuple[int, bytes | int]], prefix: int, cut: int
) -> None:
    t = Fed(TlsSession(ENDPOINTS))
    frame = 0
    # Start from a valid prefix of the real handshake, cut anywhere, then anything at all.
    for direction, data, _ in tls12_feeds()[:prefix]:
        frame += 1
        t.data(direction, (data[:cut], frame))
    for direction, item in pieces:
        frame += 1
        if isinstance(item, int):
            t.data(direction, Gap(item, frame))
        else:
            t.data(direction, (item, frame))
    t.finish()
    for h in t.client_hellos:
        assert 1 <= h.frame <= frame
    for sh in t.server_hellos:
        assert 1 <= sh.frame <= frame
    assert len(t.history) <= 100
