"""A small pyOpenSSL program: a TLS echo server and client on 127.0.0.1.

It is written the usual way for pyOpenSSL (non-blocking sockets, loops
on ``WantReadError``, ``except SSL.Error``).  ``test_dropin.py`` runs it
as written and with its import line changed to ``from icsssl import SSL``.
"""

from __future__ import annotations

import select
import socket
import threading
import time

from OpenSSL import SSL

#: Maximum seconds the whole exchange may take.
TIMEOUT = 10.0


def call(function, connection, deadline, *args):
    """Call a method of a non-blocking connection again until it stops
    raising WantReadError or WantWriteError, or the deadline passes."""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"{function.__name__} timed out")
        try:
            return function(*args)
        except SSL.WantReadError:
            select.select([connection], [], [], remaining)
        except SSL.WantWriteError:
            select.select([], [connection], [], remaining)


def serve_one(listening, deadline, result):
    """Accept one client and echo what it sends until it closes."""
    connection, _ = listening.accept()
    result["server_connection"] = connection
    connection.setblocking(False)
    try:
        call(connection.do_handshake, connection, deadline)
        while True:
            try:
                data = call(connection.recv, connection, deadline, 4096)
            except SSL.ZeroReturnError:
                result["server"] = "closed by client"
                return
            call(connection.sendall, connection, deadline, data)
    except SSL.Error as error:
        result["server"] = f"server error: {type(error).__name__} {error.args}"
    finally:
        connection.close()


def echo(cert_path, key_path, messages, verify_server=False):
    """Send each message through a TLS echo server and return a dict with
    the replies (or the client's error), the server's outcome and both
    connections."""
    deadline = time.monotonic() + TIMEOUT
    server_context = SSL.Context(SSL.TLS_METHOD)
    server_context.use_certificate_file(cert_path)
    server_context.use_privatekey_file(key_path)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(TIMEOUT)
    listening = SSL.Connection(server_context, listener)

    result = {}
    server_thread = threading.Thread(
        target=serve_one, args=(listening, deadline, result), daemon=True
    )
    server_thread.start()

    client_context = SSL.Context(SSL.TLS_METHOD)
    if verify_server:
        client_context.set_verify(SSL.VERIFY_PEER, lambda *args: bool(args[-1]))
    sock = socket.create_connection(listener.getsockname(), timeout=TIMEOUT)
    client = SSL.Connection(client_context, sock)
    client.set_connect_state()
    client.setblocking(False)
    result["client_connection"] = client
    try:
        call(client.do_handshake, client, deadline)
        replies = []
        for message in messages:
            call(client.sendall, client, deadline, message)
            reply = b""
            while len(reply) < len(message):
                reply += call(client.recv, client, deadline, 4096)
            replies.append(reply)
        client.shutdown()
        result["client"] = replies
    except SSL.Error as error:
        result["client"] = f"client error: {type(error).__name__} {error.args}"
    finally:
        client.close()
    server_thread.join(TIMEOUT)
    listener.close()
    if server_thread.is_alive():
        raise TimeoutError("the echo server did not finish")
    return result
