"""``icsssl demo``: real handshakes on loopback, reported as ICS does.

Every scenario runs a real peer on 127.0.0.1: icsssl servers with a fresh
self-signed certificate, Python's ``http.server``, and raw sockets that
send plain HTTP or cut a handshake short.  Each side that speaks TLS is an
:class:`icsssl.Connection`, and its report is printed as it came out.
"""

from __future__ import annotations

import dataclasses
import http.server
import socket
import tempfile
import threading
from typing import Callable, Optional, TextIO

from OpenSSL import SSL as _SSL

import icsssl
from icsssl import _certs, _net
from icsssl.connection import Connection

#: Seconds any one step of a scenario may take.
STEP_TIMEOUT = 10.0

LOOPBACK = "127.0.0.1"

ConfigureContext = Callable[[_SSL.Context], None]


@dataclasses.dataclass
class Side:
    """One end of a scenario: a TLS connection, or a raw peer's note."""

    role: str
    connection: Optional[Connection] = None
    note: str = ""


@dataclasses.dataclass
class Outcome:
    """The two ends of one scenario."""

    title: str
    client: Side
    server: Side


class _Thread(threading.Thread):
    """A thread that keeps its target's return value or exception."""

    def __init__(self, target: Callable[[], Side]) -> None:
        super().__init__(daemon=True)
        self._target_function = target
        self.result: Optional[Side] = None
        self.error: Optional[BaseException] = None

    def run(self) -> None:
        try:
            self.result = self._target_function()
        except BaseException as error:  # Reported by the joining thread.
            self.error = error

    def outcome(self, role: str) -> Side:
        self.join(STEP_TIMEOUT * 2)
        if self.is_alive():
            return Side(role, note="did not finish within the time limit")
        if self.error is not None:
            return Side(role, note=f"failed: {self.error!r}")
        assert self.result is not None
        return self.result


def _listener() -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((LOOPBACK, 0))
    listener.listen(8)
    listener.settimeout(STEP_TIMEOUT)
    return listener


def _close_quietly(connection: Connection, sock: socket.socket) -> None:
    if connection.handshake_done and connection.handshake_err_code == 0:
        try:
            connection.shutdown()
        except _SSL.Error:
            pass
    sock.close()


def _tls_server_once(listener: socket.socket, context: _SSL.Context) -> Side:
    """Accept one client and run the server side of its handshake."""
    sock, _ = listener.accept()
    sock.setblocking(False)
    connection = Connection(context, sock)
    connection.set_accept_state()
    try:
        _net.drive_handshake(connection, STEP_TIMEOUT)
    except _SSL.Error:
        pass
    except _net.PeerTimeout:
        connection.handshake_timed_out(STEP_TIMEOUT)
    else:
        # Wait for the client's close_notify, so both reports are final.
        try:
            _net.recv_some(connection, 1024, STEP_TIMEOUT)
        except (_SSL.Error, _net.PeerTimeout):
            pass
    _close_quietly(connection, sock)
    return Side("server", connection)


def _tls_client(port: int, configure: ConfigureContext) -> Side:
    context = _SSL.Context(_SSL.TLS_METHOD)
    configure(context)
    sock = socket.create_connection((LOOPBACK, port), timeout=STEP_TIMEOUT)
    sock.setblocking(False)
    connection = Connection(context, sock)
    connection.set_connect_state()
    connection.set_tlsext_host_name(b"localhost")
    try:
        _net.drive_handshake(connection, STEP_TIMEOUT)
    except _SSL.Error:
        pass
    except _net.PeerTimeout:
        connection.handshake_timed_out(STEP_TIMEOUT)
    _close_quietly(connection, sock)
    return Side("client", connection)


def _raw_client(port: int, payload: bytes, what: str) -> Side:
    """Send *payload* on a plain socket, then read until EOF."""
    with socket.create_connection(
        (LOOPBACK, port), timeout=STEP_TIMEOUT
    ) as sock:
        sock.sendall(payload)
        answer = b""
        try:
            while len(answer) < 4096:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
        except OSError:
            pass
    reply = f"{len(answer)} bytes back" if answer else "no bytes back"
    return Side("client", note=f"raw socket: sent {what}, got {reply}")


def _client_hello() -> bytes:
    """Return the first flight of a default client: its ClientHello."""
    connection = Connection(_SSL.Context(_SSL.TLS_METHOD), None)
    connection.set_connect_state()
    try:
        connection.do_handshake()
    except _SSL.WantReadError:
        pass
    return connection.bio_read(65536)


def _half_hello_client(port: int) -> Side:
    hello = _client_hello()
    half = hello[: len(hello) // 2]
    with socket.create_connection(
        (LOOPBACK, port), timeout=STEP_TIMEOUT
    ) as sock:
        sock.sendall(half)
    return Side(
        "client",
        note=(
            f"raw socket: sent {len(half)} of the {len(hello)} bytes of a "
            "ClientHello, then closed"
        ),
    )


def _hang_up_server(listener: socket.socket) -> Side:
    """Read one ClientHello record, then close without a reply."""
    sock, _ = listener.accept()
    with sock:
        received = b""
        while len(received) < 5 or len(received) < 5 + int.from_bytes(
            received[3:5], "big"
        ):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
            if len(received) > 1 << 17:
                break
    return Side(
        "server",
        note=(
            f"raw socket: read a {len(received)}-byte ClientHello, then closed"
        ),
    )


class _QuietHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        body = b"plain HTTP\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _versions_pinned(version: int, seclevel_zero: bool) -> ConfigureContext:
    def configure(context: _SSL.Context) -> None:
        context.set_min_proto_version(version)
        context.set_max_proto_version(version)
        if seclevel_zero:
            context.set_cipher_list(b"DEFAULT:@SECLEVEL=0")

    return configure


def _tls12_with(cipher: bytes) -> ConfigureContext:
    def configure(context: _SSL.Context) -> None:
        context.set_max_proto_version(_SSL.TLS1_2_VERSION)
        context.set_cipher_list(cipher)

    return configure


def _verify_peer(context: _SSL.Context) -> None:
    context.set_verify(_SSL.VERIFY_PEER)
    context.set_default_verify_paths()


class Demo:
    """The servers of the demo and the scenarios run against them."""

    def __init__(self, folder: str) -> None:
        self.cert, self.key = _certs.write_self_signed(folder)
        self.default_context = self._server_context(legacy=False)
        self.legacy_context = self._server_context(legacy=True)
        self.http = http.server.ThreadingHTTPServer(
            (LOOPBACK, 0), _QuietHandler
        )
        self.http_thread = threading.Thread(
            target=self.http.serve_forever,
            kwargs={"poll_interval": 0.1},
            daemon=True,
        )

    def _server_context(self, legacy: bool) -> _SSL.Context:
        context = _SSL.Context(_SSL.TLS_METHOD)
        context.use_certificate_chain_file(self.cert)
        context.use_privatekey_file(self.key)
        if legacy:
            # Security level 0 lets OpenSSL 3 sign with SHA-1, which
            # TLS 1.0 and 1.1 need.
            context.set_min_proto_version(_SSL.TLS1_VERSION)
            context.set_cipher_list(b"DEFAULT:@SECLEVEL=0")
        return context

    def __enter__(self) -> Demo:
        self.http_thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.http.shutdown()
        self.http.server_close()
        self.http_thread.join(STEP_TIMEOUT)

    def _with_tls_server(
        self,
        title: str,
        client: Callable[[int], Side],
        context: Optional[_SSL.Context] = None,
    ) -> Outcome:
        with _listener() as listener:
            server = _Thread(
                lambda: _tls_server_once(
                    listener, context or self.default_context
                )
            )
            server.start()
            try:
                client_side = client(listener.getsockname()[1])
            except OSError as error:
                client_side = Side("client", note=f"failed: {error!r}")
            return Outcome(title, client_side, server.outcome("server"))

    def scenarios(self) -> list[Callable[[], Outcome]]:
        """Return the scenarios, each a function that runs it."""
        tls = self._with_tls_server
        return [
            lambda: tls(
                "TLS 1.3, default settings",
                lambda port: _tls_client(port, lambda context: None),
            ),
            lambda: tls(
                "TLS 1.2, AES128-GCM-SHA256 (RSA key exchange)",
                lambda port: _tls_client(
                    port, _tls12_with(b"AES128-GCM-SHA256")
                ),
            ),
            lambda: tls(
                "TLS 1.2, ECDHE-RSA-AES128-GCM-SHA256",
                lambda port: _tls_client(
                    port, _tls12_with(b"ECDHE-RSA-AES128-GCM-SHA256")
                ),
            ),
            lambda: tls(
                "TLS 1.1 at security level 0, server allows TLS 1.0+",
                lambda port: _tls_client(
                    port, _versions_pinned(_SSL.TLS1_1_VERSION, True)
                ),
                self.legacy_context,
            ),
            lambda: tls(
                "TLS 1.0 at security level 0, server allows TLS 1.0+",
                lambda port: _tls_client(
                    port, _versions_pinned(_SSL.TLS1_VERSION, True)
                ),
                self.legacy_context,
            ),
            lambda: tls(
                "TLS 1.0-only client, server with default settings",
                lambda port: _tls_client(
                    port, _versions_pinned(_SSL.TLS1_VERSION, True)
                ),
            ),
            lambda: tls(
                "client verifies the self-signed certificate",
                lambda port: _tls_client(port, _verify_peer),
            ),
            lambda: tls(
                "plain HTTP GET sent to the TLS port",
                lambda port: _raw_client(
                    port,
                    b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
                    "GET / HTTP/1.1",
                ),
            ),
            lambda: tls(
                "HTTPS proxy CONNECT sent to the TLS port",
                lambda port: _raw_client(
                    port,
                    b"CONNECT example.com:443 HTTP/1.1\r\n"
                    b"Host: example.com:443\r\n\r\n",
                    "CONNECT example.com:443 HTTP/1.1",
                ),
            ),
            lambda: tls(
                "client closes after half a ClientHello",
                _half_hello_client,
            ),
            self._tls_client_to_http,
            self._server_hangs_up,
        ]

    def _tls_client_to_http(self) -> Outcome:
        port = self.http.server_address[1]
        client = _tls_client(int(port), lambda context: None)
        return Outcome(
            "TLS client sent to the plain HTTP port",
            client,
            Side("server", note="Python http.server, speaking plain HTTP"),
        )

    def _server_hangs_up(self) -> Outcome:
        with _listener() as listener:
            server = _Thread(lambda: _hang_up_server(listener))
            server.start()
            port = listener.getsockname()[1]
            client = _tls_client(port, lambda context: None)
            return Outcome(
                "server closes after reading the ClientHello",
                client,
                server.outcome("server"),
            )


def _format_side(side: Side) -> list[str]:
    label = f"  {side.role:<6}  "
    connection = side.connection
    if connection is None:
        return [label + side.note]
    if not connection.handshake_done:
        return [label + "handshake did not end"]
    return [
        label + connection.SslHandshakeRespMsg,
        " " * len(label)
        + f"ErrCode {connection.ErrCode}, "
        + f"SslHandshakeErr 0x{connection.SslHandshakeErr:08X}",
    ]


def format_outcome(number: int, outcome: Outcome) -> str:
    """Return the printed block of one scenario."""
    lines = [f"[{number}] {outcome.title}"]
    lines += _format_side(outcome.client)
    lines += _format_side(outcome.server)
    return "\n".join(lines)


def run(out: TextIO) -> int:
    """Run every scenario, print each as it ends, and return 0."""
    instances = "one instance" if icsssl.SHARED_OPENSSL else "two instances"
    print(
        f"pyOpenSSL runs on {icsssl.pyopenssl_openssl_version()}; icsssl's "
        f"module on {icsssl.openssl_version()} ({instances})",
        file=out,
    )
    with tempfile.TemporaryDirectory(prefix="icsssl-demo-") as folder:
        with Demo(folder) as demo:
            print(
                "servers on 127.0.0.1: icsssl TLS (self-signed certificate "
                f"for localhost) and plain HTTP on port "
                f"{demo.http.server_address[1]}",
                file=out,
            )
            for number, scenario in enumerate(demo.scenarios(), start=1):
                print("", file=out)
                print(format_outcome(number, scenario()), file=out, flush=True)
    return 0
