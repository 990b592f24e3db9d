"""Client and server of a two-sided connection, by direction index (0: the initiator)."""

from __future__ import annotations

from typing import Generic, TypeVar

S = TypeVar("S")


class Roles(Generic[S]):
    """Role lookups for a class with ``client_dir`` and a pair of per-direction ``sides``.

    Shared by the live :class:`~tlspcap.session.TlsSession` and the facts made from it
    (:class:`~tlspcap.facts.model.ConnFacts`), so both name the sides the same way.
    """

    __slots__ = ()
    client_dir: int
    """Direction index of the client."""
    sides: tuple[S, S]
    """Per-direction state, indexed by direction."""

    @property
    def server_dir(self) -> int:
        """Direction index of the server."""
        return 1 - self.client_dir

    def role(self, direction: int) -> str:
        """``"client"`` or ``"server"`` for a direction index."""
        return "client" if direction == self.client_dir else "server"

    @property
    def client(self) -> S:
        """The client's side."""
        return self.sides[self.client_dir]

    @property
    def server(self) -> S:
        """The server's side."""
        return self.sides[self.server_dir]
