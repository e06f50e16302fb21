"""Socket helpers for the command line: bounded handshakes and reads."""

from __future__ import annotations

import select
import time

from OpenSSL import SSL as _SSL


class PeerTimeout(Exception):
    """The peer sent nothing before the time limit."""


def drive_handshake(connection: _SSL.Connection, timeout: float) -> None:
    """Run the handshake of a connection on a non-blocking socket.

    Exceptions of ``do_handshake`` other than WantRead/WantWrite
    propagate.

    :raises PeerTimeout: if it has not ended after *timeout* seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            connection.do_handshake()
            return
        except _SSL.WantReadError:
            wait_for(connection, deadline, write=False)
        except _SSL.WantWriteError:
            wait_for(connection, deadline, write=True)


def wait_for(
    connection: _SSL.Connection, deadline: float, write: bool
) -> None:
    """Wait until the connection's socket is readable (or writable)."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise PeerTimeout("timed out waiting for the peer")
    sockets = [connection]
    readable, writable, _ = select.select(
        [] if write else sockets, sockets if write else [], [], remaining
    )
    if not readable and not writable:
        raise PeerTimeout("timed out waiting for the peer")


def recv_some(connection: _SSL.Connection, size: int, timeout: float) -> bytes:
    """Return up to *size* bytes of application data, ``b""`` at EOF.

    :raises PeerTimeout: if nothing arrives within *timeout* seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return connection.recv(size)
        except _SSL.WantReadError:
            wait_for(connection, deadline, write=False)
        except _SSL.WantWriteError:
            wait_for(connection, deadline, write=True)
        except (_SSL.ZeroReturnError, _SSL.SysCallError):
            return b""


def sendall(connection: _SSL.Connection, data: bytes, timeout: float) -> None:
    """Send all of *data* on a non-blocking connection."""
    deadline = time.monotonic() + timeout
    view = memoryview(data)
    while view:
        try:
            sent = connection.send(view)
        except _SSL.WantReadError:
            wait_for(connection, deadline, write=False)
        except _SSL.WantWriteError:
            wait_for(connection, deadline, write=True)
        else:
            view = view[sent:]
