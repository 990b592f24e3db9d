"""What would settle a verdict the capture leaves open: a fuller capture, a key log, an option.

Each suggestion comes from a fact the verdict lacked (one side missing, a late start, a snap
length, loss, an encrypted certificate, an ambiguous alert), with the exact command where there
is one. Suggestions are given for every verdict that is not established and not proven.
"""

from __future__ import annotations

from tlspcap.diagnosis.model import ESTABLISHED, INCOMPLETE, PROOF, Settle, Verdict
from tlspcap.diagnosis.sides import data_proved, records_lost, seen, starts_late
from tlspcap.facts.model import ConnFacts
from tlspcap.session import is_tls13


def tcpdump(f: ConnFacts, extra: str = "") -> str:
    """The capture command for this connection's server, to run on the client host."""
    host, _, port = f.server_endpoint.rpartition(":")
    host = host.strip("[]")
    return f"tcpdump -i any -s 0{extra} -w ticket.pcap host {host} and port {port}"


def _acked_unseen(f: ConnFacts) -> bool:
    """A side's peer acknowledged bytes of it that the capture does not hold (lost at its end)."""
    for sender, side in (("client", f.client), ("server", f.server)):
        if seen(side) and (data_proved(f, sender) or 0) > side.wire_bytes:
            return True
    return False


def settle(f: ConnFacts, v: Verdict) -> list[Settle]:
    """What would settle ``v`` (empty when it is established or proven)."""
    if v.outcome == ESTABLISHED or (v.confidence == PROOF and v.outcome != INCOMPLETE):
        return []
    out: list[Settle] = []
    if not seen(f.client) or not seen(f.server):
        missing = "client" if not seen(f.client) else "server"
        out.append(
            Settle(
                f"a capture of both directions (this one holds no packet from the {missing}), "
                "taken on the client host",
                tcpdump(f),
            )
        )
    elif starts_late(f) and not f.client_hellos:
        out.append(
            Settle(
                "a capture started before the connection (this one begins after its "
                "ClientHello): start tcpdump, then reproduce",
                tcpdump(f),
            )
        )
    if f.role_from == "first_packet":
        out.append(
            Settle(
                "a capture that includes the TCP handshake, which tells client from server",
                tcpdump(f),
            )
        )
    if any(s.snaplen_missing for s in f.sides):
        out.append(
            Settle(
                "a capture of whole packets (this one was cut by its snap length)",
                tcpdump(f),
            )
        )
    if records_lost(f) is not None or _acked_unseen(f):
        out.append(
            Settle(
                "a capture without loss: on the client host, with a larger capture buffer",
                tcpdump(f, " -B 16384"),
            )
        )
    tls13 = f.version is not None and is_tls13(f.version)
    if tls13 and not f.decrypted and not f.server.certificates and v.cause == "unknown":
        out.append(
            Settle(
                "the client's TLS key log: with it tlspcap decrypts the TLS 1.3 handshake and "
                "checks the certificate (curl, Firefox, Chrome and Python read SSLKEYLOGFILE)",
                "SSLKEYLOGFILE=$PWD/keys.log <client command>; "
                "tlspcap analyze --keylog keys.log ticket.pcap",
            )
        )
    if any(x.code in ("cipher_mismatch", "protocol_mismatch") for x in v.secondary):
        out.append(
            Settle(
                "the server's configuration, given to tlspcap, or a capture of a client that "
                "succeeds with the same server",
                "tlspcap analyze --server-protocols TLSv1.2,TLSv1.3 --server-ciphers "
                "'<the server's cipher string>' ticket.pcap",
            )
        )
    if v.cause == "unknown" and v.gave_up == "server" and seen(f.server):
        out.append(Settle("the server's log for this connection, at the time of the abort"))
    elif v.cause == "unknown" and v.gave_up == "client" and not out:
        out.append(
            Settle("the client's error message or log (for example curl -v, or the exception)")
        )
    return _unique(out)


def _unique(items: list[Settle]) -> list[Settle]:
    seen_texts: set[str] = set()
    out = []
    for item in items:
        if item.text not in seen_texts:
            seen_texts.add(item.text)
            out.append(item)
    return out
