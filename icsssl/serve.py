"""``icsssl serve``: a TLS server that shows each client its own report.

Each client gets a thread.  After the handshake the server replies to an
HTTP ``GET`` with a small page of that client's report, and anything else is
echoed back until the client closes or stays idle for the timeout.  One
line per client goes to standard output: its address and
``SslHandshakeRespMsg``.
"""

from __future__ import annotations

import argparse
import html
import os
import socket
import sys
import tempfile
import threading
from typing import Any, Optional

from OpenSSL import SSL as _SSL

from icsssl import _certs, _net
from icsssl.connection import Connection
from icsssl.context import Context

#: The maximum number of bytes of one client's data read and echoed.
MAX_ECHO_BYTES = 1 << 20

HTTP_METHODS = (b"GET ", b"HEAD ")


def _page(connection: Connection, address: str) -> bytes:
    report = connection.handshake_report
    rows = (
        ""
        if report is None
        else "".join(
            f"<tr><th>{html.escape(name)}</th><td>{html.escape(str(value))}</td></tr>\n"
            for name, value in report.as_dict().items()
        )
    )
    body = (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        "<title>icsssl handshake report</title></head><body>\n"
        f"<h1>Your handshake, {html.escape(address)}</h1>\n"
        f"<p>{html.escape(connection.SslHandshakeRespMsg)}</p>\n"
        f"<table>\n{rows}</table>\n</body></html>\n"
    ).encode("utf-8")
    head = (
        "HTTP/1.1 200 OK\r\n"
        "Content-Type: text/html; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode("ascii")
    return head + body


def _answer(connection: Connection, address: str, timeout: float) -> None:
    first = _net.recv_some(connection, 65536, timeout)
    if first.startswith(HTTP_METHODS):
        request = first
        while b"\r\n\r\n" not in request and len(request) < 65536:
            more = _net.recv_some(connection, 65536, timeout)
            if not more:
                break
            request += more
        page = _page(connection, address)
        if first.startswith(b"HEAD "):
            page = page.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
        _net.sendall(connection, page, timeout)
        return
    echoed = 0
    data = first
    while data and echoed < MAX_ECHO_BYTES:
        _net.sendall(connection, data, timeout)
        echoed += len(data)
        data = _net.recv_some(connection, 65536, timeout)


def _serve_client(
    context: _SSL.Context,
    sock: socket.socket,
    peer: Any,
    timeout: float,
    output_lock: threading.Lock,
) -> None:
    address = f"{peer[0]}:{peer[1]}"
    sock.setblocking(False)
    connection = Connection(context, sock)
    connection.set_accept_state()
    try:
        try:
            _net.drive_handshake(connection, timeout)
        except _SSL.Error:
            pass
        except _net.PeerTimeout:
            connection.handshake_timed_out(timeout)
        with output_lock:
            print(f"{address}  {connection.SslHandshakeRespMsg}", flush=True)
        if connection.ErrCode == 0:
            try:
                _answer(connection, address, timeout)
                connection.shutdown()
            except (_SSL.Error, _net.PeerTimeout, OSError):
                pass
    finally:
        sock.close()


def serve(
    host: str,
    port: int,
    cert: Optional[str],
    key: Optional[str],
    timeout: float,
    max_clients: Optional[int],
) -> int:
    """Serve until interrupted, or until *max_clients* have connected."""
    with tempfile.TemporaryDirectory(prefix="icsssl-serve-") as folder:
        note = ""
        if cert is None:
            cert, key = _certs.write_self_signed(folder)
            note = " (fresh self-signed certificate for localhost)"
        # icsssl's Context names the file and the cause of a bad pair.
        context = Context(_SSL.TLS_METHOD)
        context.use_certificate_chain_file(cert)
        context.use_privatekey_file(key or cert)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as listener:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((host, port))
            listener.listen(64)
            # Wake up twice a second so Ctrl-C is handled promptly.
            listener.settimeout(0.5)
            bound = listener.getsockname()
            shown = f"[{bound[0]}]" if family == socket.AF_INET6 else bound[0]
            print(
                f"icsssl serve: listening on https://{shown}:{bound[1]}/{note}",
                flush=True,
            )
            return _accept_loop(listener, context, timeout, max_clients)


def _accept_loop(
    listener: socket.socket,
    context: _SSL.Context,
    timeout: float,
    max_clients: Optional[int],
) -> int:
    output_lock = threading.Lock()
    workers: list[threading.Thread] = []
    served = 0
    try:
        while max_clients is None or served < max_clients:
            try:
                sock, peer = listener.accept()
            except socket.timeout:
                continue
            served += 1
            worker = threading.Thread(
                target=_serve_client,
                args=(context, sock, peer, timeout, output_lock),
                daemon=True,
            )
            worker.start()
            workers = [thread for thread in workers if thread.is_alive()]
            workers.append(worker)
    except KeyboardInterrupt:
        # Clients still connected are dropped: their threads are daemons.
        busy = sum(1 for worker in workers if worker.is_alive())
        print(
            f"icsssl serve: interrupted, stopping ({busy} client "
            "connections dropped)",
            flush=True,
        )
    else:
        for worker in workers:
            worker.join(timeout)
    noun = "client" if served == 1 else "clients"
    print(f"icsssl serve: stopped after {served} {noun}", flush=True)
    return 0


def run(arguments: argparse.Namespace) -> int:
    """Check the arguments of ``icsssl serve`` and run the server."""
    problem = None
    if (arguments.cert is None) != (arguments.key is None):
        problem = "give both --cert and --key, or neither"
    elif not 0 <= arguments.port <= 65535:
        problem = f"invalid --port {arguments.port}: use 0 to 65535"
    elif not arguments.timeout > 0:
        problem = (
            f"invalid --timeout {arguments.timeout!r}: use seconds above 0"
        )
    elif arguments.max_clients is not None and arguments.max_clients < 1:
        problem = (
            f"invalid --max-clients {arguments.max_clients}: use 1 or more"
        )
    else:
        for path in (arguments.cert, arguments.key):
            if path is not None and not os.path.isfile(path):
                problem = f"file not found: {path!r}"
    if problem is not None:
        print(f"icsssl serve: {problem}", file=sys.stderr)
        return 2
    try:
        return serve(
            arguments.host,
            arguments.port,
            arguments.cert,
            arguments.key,
            arguments.timeout,
            arguments.max_clients,
        )
    except (OSError, _SSL.Error) as error:
        print(f"icsssl serve: cannot start: {error}", file=sys.stderr)
        return 1


def add_parser(commands: Any) -> None:
    """Add the ``serve`` command to the ``icsssl`` parser."""
    parser = commands.add_parser(
        "serve",
        help="run a TLS server that shows each client its handshake report",
        description=(
            "Accept TLS clients, log one line per client (address and "
            "handshake message), answer an HTTP GET with a page of that "
            "client's report and echo anything else.  Ctrl-C stops it."
        ),
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=8443,
        help="TCP port, 0 for any free one (default 8443)",
    )
    parser.add_argument("--cert", metavar="FILE", help="PEM certificate chain")
    parser.add_argument("--key", metavar="FILE", help="PEM private key")
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="idle limit per client (default 30)",
    )
    parser.add_argument(
        "--max-clients",
        type=int,
        metavar="N",
        help="stop after N clients (default: serve until Ctrl-C)",
    )
    parser.set_defaults(handler=run)
