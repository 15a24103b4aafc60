"""Happens-before edges of messages through multiprocessing.connection (pipes and sockets)."""

from __future__ import annotations

from typing import Any

from .hooks_base import acquired_after, acquired_if_true, patch, released_before

__all__ = ["WIRE", "patch_connection"]


class _Wire:
    """The clock of every message sent through a multiprocessing Connection."""


# One clock for all of this process's pipes and sockets: a message may come
# back on another Connection than the one it left by (a request down one pipe
# to a child process, the reply up another), so the sender and the receiver
# share no object. A send releases it, a receive acquires it. Coarser than
# per message; it can only hide races, never invent one. Made once, never
# replaced; the detector keeps its clock, under that clock's own lock.
WIRE = _Wire()


def _sending(D: Any, _connection: Any) -> None:
    D.release(WIRE)


def _received(D: Any, _connection: Any) -> None:
    D.acquire(WIRE)


def patch_connection(connection: Any) -> None:
    """Patch multiprocessing.connection, once it is imported (see hooks._AfterImport)."""
    base = connection._ConnectionBase
    for name in ("send", "send_bytes"):
        patch(base, name, released_before(_sending))
    for name in ("recv", "recv_bytes", "recv_bytes_into"):
        patch(base, name, acquired_after(_received))
    # A poll() that found a message waiting has, in effect, received it.
    patch(base, "poll", acquired_if_true(_received))
