"""The same TLS work done through icsssl, pyOpenSSL and stdlib ``ssl``.

Each contender builds its contexts from the same certificate files and
runs the same steps.  These are a full handshake between a client and a
server on memory BIOs, bulk transfer on such a pair, a server rejecting
a plain HTTP request, and both ends of a handshake over a connected
socket.  Clients verify the server's chain against the benchmark CA and
do not check the host name, because pyOpenSSL alone does not.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any, Callable

from certificates import CertificateFiles
from OpenSSL import SSL

import icsssl

VERSIONS = ("1.2", "1.3")

HTTP_REQUEST = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"

#: Bytes requested from ``bio_read`` or ``MemoryBIO.read`` at once.  A 64 KiB
#: write makes four 16 KiB records plus their headers, which fit.
BIO_READ_SIZE = 128 * 1024

#: Bytes requested from one ``recv``.  A TLS record carries at most
#: 16 KiB.
RECV_SIZE = 16 * 1024

# A handshake takes 3 (TLS 1.3) or 4 (TLS 1.2) client steps, so more
# means something is wrong.
MAX_HANDSHAKE_STEPS = 10

# Generous bounds on the loops that wait for a peer's bytes.
MAX_RECV_CALLS_PER_WRITE = 64
SOCKET_TIMEOUT_SECONDS = 10

# The client tells the server how many bulk bytes follow the handshake in
# an 8-byte big-endian header, and the server replies with one byte once
# it has read them.  Handshake-only runs send a length of 0.
LENGTH_HEADER_BYTES = 8
DONE_BYTE = b"y"

_PYOPENSSL_VERSIONS = {
    "1.2": SSL.TLS1_2_VERSION,
    "1.3": SSL.TLS1_3_VERSION,
}
_STDLIB_VERSIONS = {
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}
_PROTOCOL_NAMES = {"1.2": "TLSv1.2", "1.3": "TLSv1.3"}


def set_socket_options(sock: socket.socket, client: bool) -> None:
    """Prepare a connected loopback socket the same way for every
    contender.

    Nagle's algorithm is off, because it delays the small flights of a
    handshake.  Kernel timeouts bound every blocking call.  A client
    closes with a reset (linger 0), so thousands of connections leave no
    TIME_WAIT sockets behind.
    """
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    timeval = SOCKET_TIMEOUT_SECONDS.to_bytes(8, "little") + bytes(8)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
    if client:
        linger = (1).to_bytes(4, "little") + (0).to_bytes(4, "little")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)


def connect(port: int) -> socket.socket:
    """Return a blocking TCP socket connected to 127.0.0.1:*port*."""
    sock = socket.create_connection(
        ("127.0.0.1", port), timeout=SOCKET_TIMEOUT_SECONDS
    )
    sock.settimeout(None)
    set_socket_options(sock, client=True)
    return sock


def _read_exactly(recv: Callable[[int], bytes], size: int) -> bytes:
    data = b""
    for _ in range(size):
        if len(data) >= size:
            break
        chunk = recv(size - len(data))
        if not chunk:
            raise ConnectionError(
                f"peer closed after {len(data)} of {size} bytes"
            )
        data += chunk
    return data


def _drain(recv: Callable[[int], bytes], size: int) -> None:
    """Read and drop *size* bytes."""
    remaining = size
    max_calls = size // 1024 + MAX_RECV_CALLS_PER_WRITE
    for _ in range(max_calls):
        if remaining <= 0:
            return
        chunk = recv(min(RECV_SIZE, remaining))
        if not chunk:
            raise ConnectionError(f"peer closed with {remaining} bytes due")
        remaining -= len(chunk)
    raise RuntimeError(f"{size} bytes took more than {max_calls} reads")


class PyOpenSSLContender:
    """A contender built on pyOpenSSL's API: pyOpenSSL itself, or icsssl
    with its own ``Connection`` and ``Context`` classes."""

    def __init__(
        self,
        label: str,
        connection_class: type[SSL.Connection],
        context_class: type[SSL.Context],
    ) -> None:
        self.label = label
        self.connection_class = connection_class
        self.context_class = context_class

    # -- contexts -------------------------------------------------------

    def server_context(self, files: CertificateFiles) -> Any:
        """Return a server context with the benchmark certificate."""
        context = self.context_class(SSL.TLS_METHOD)
        context.use_certificate_file(files.server_certificate)
        context.use_privatekey_file(files.server_key)
        context.check_privatekey()
        return context

    def client_context(self, files: CertificateFiles, version: str) -> Any:
        """Return a client context limited to TLS *version* that verifies
        the server's chain."""
        context = self.context_class(SSL.TLS_METHOD)
        context.set_min_proto_version(_PYOPENSSL_VERSIONS[version])
        context.set_max_proto_version(_PYOPENSSL_VERSIONS[version])
        context.set_verify(SSL.VERIFY_PEER)
        context.load_verify_locations(files.ca_certificate)
        return context

    # -- memory BIOs ----------------------------------------------------

    @staticmethod
    def _pump(source: SSL.Connection, target: SSL.Connection) -> None:
        try:
            data = source.bio_read(BIO_READ_SIZE)
        except SSL.WantReadError:
            return
        target.bio_write(data)

    def handshake_in_memory(
        self, client_context: Any, server_context: Any
    ) -> tuple[SSL.Connection, SSL.Connection]:
        """Run one full handshake between a new client and server on
        memory BIOs and return both connections."""
        client = self.connection_class(client_context, None)
        client.set_connect_state()
        server = self.connection_class(server_context, None)
        server.set_accept_state()
        client_done = server_done = False
        for _ in range(MAX_HANDSHAKE_STEPS):
            if not client_done:
                try:
                    client.do_handshake()
                    client_done = True
                except SSL.WantReadError:
                    pass
            self._pump(client, server)
            if not server_done:
                try:
                    server.do_handshake()
                    server_done = True
                except SSL.WantReadError:
                    pass
            self._pump(server, client)
            if client_done and server_done:
                return client, server
        raise RuntimeError(
            f"{self.label}: handshake unfinished after "
            f"{MAX_HANDSHAKE_STEPS} steps"
        )

    def transfer_in_memory(
        self,
        writer: SSL.Connection,
        reader: SSL.Connection,
        chunk: bytes,
        count: int,
    ) -> None:
        """Send *chunk* *count* times from *writer* to *reader*, moving
        the records after each write and reading them all."""
        for _ in range(count):
            # pyOpenSSL sets SSL_MODE_ENABLE_PARTIAL_WRITE, so send()
            # would stop after one record; sendall() writes them all.
            writer.sendall(chunk)
            self._pump(writer, reader)
            _drain(reader.recv, len(chunk))

    def reject_http_requests(self, server_context: Any, count: int) -> int:
        """Feed a plain HTTP request to *count* new server connections
        and return how many handshakes failed."""
        failures = 0
        for _ in range(count):
            server = self.connection_class(server_context, None)
            server.set_accept_state()
            server.bio_write(HTTP_REQUEST)
            try:
                server.do_handshake()
            except SSL.Error:
                failures += 1
        return failures

    @staticmethod
    def negotiated(connection: SSL.Connection) -> dict[str, str]:
        """Return the protocol, cipher and group of a finished
        connection."""
        get_group_name = getattr(connection, "get_group_name", None)
        return {
            "protocol": connection.get_protocol_version_name(),
            "cipher": connection.get_cipher_name() or "",
            "group": (get_group_name() or "") if get_group_name else "",
        }

    # -- sockets --------------------------------------------------------

    def serve(self, server_context: Any, sock: socket.socket) -> None:
        """Run the server side of one exchange on an accepted socket."""
        try:
            connection = self.connection_class(server_context, sock)
            connection.set_accept_state()
            connection.do_handshake()
            header = _read_exactly(connection.recv, LENGTH_HEADER_BYTES)
            _drain(connection.recv, int.from_bytes(header, "big"))
            connection.sendall(DONE_BYTE)
        finally:
            sock.close()

    def exchange(
        self, client_context: Any, port: int, chunk: bytes, count: int
    ) -> None:
        """Connect to *port*, run the handshake, send *chunk* *count*
        times and wait for the server's final byte."""
        sock = connect(port)
        try:
            connection = self.connection_class(client_context, sock)
            connection.set_connect_state()
            connection.do_handshake()
            connection.sendall((len(chunk) * count).to_bytes(8, "big"))
            for _ in range(count):
                connection.sendall(chunk)
            if connection.recv(1) != DONE_BYTE:
                raise ConnectionError("server did not confirm the exchange")
        finally:
            sock.close()


class StdlibContender:
    """stdlib ``ssl``: ``SSLObject`` with ``MemoryBIO`` in memory, and
    ``SSLSocket`` over sockets."""

    label = "stdlib ssl"

    def server_context(self, files: CertificateFiles) -> ssl.SSLContext:
        """Return a server context with the benchmark certificate."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(files.server_certificate, files.server_key)
        return context

    def client_context(
        self, files: CertificateFiles, version: str
    ) -> ssl.SSLContext:
        """Return a client context limited to TLS *version* that verifies
        the server's chain."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(files.ca_certificate)
        context.minimum_version = _STDLIB_VERSIONS[version]
        context.maximum_version = _STDLIB_VERSIONS[version]
        return context

    # -- memory BIOs ----------------------------------------------------

    @staticmethod
    def _pump(source: ssl.MemoryBIO, target: ssl.MemoryBIO) -> None:
        data = source.read()
        if data:
            target.write(data)

    def handshake_in_memory(
        self, client_context: ssl.SSLContext, server_context: ssl.SSLContext
    ) -> tuple[Any, Any]:
        """Run one full handshake between a new client and server on
        memory BIOs and return both ``(SSLObject, incoming, outgoing)``
        triples."""
        client_in, client_out = ssl.MemoryBIO(), ssl.MemoryBIO()
        server_in, server_out = ssl.MemoryBIO(), ssl.MemoryBIO()
        client = client_context.wrap_bio(client_in, client_out)
        server = server_context.wrap_bio(
            server_in, server_out, server_side=True
        )
        client_done = server_done = False
        for _ in range(MAX_HANDSHAKE_STEPS):
            if not client_done:
                try:
                    client.do_handshake()
                    client_done = True
                except ssl.SSLWantReadError:
                    pass
            self._pump(client_out, server_in)
            if not server_done:
                try:
                    server.do_handshake()
                    server_done = True
                except ssl.SSLWantReadError:
                    pass
            self._pump(server_out, client_in)
            if client_done and server_done:
                return (
                    (client, client_in, client_out),
                    (server, server_in, server_out),
                )
        raise RuntimeError(
            f"{self.label}: handshake unfinished after "
            f"{MAX_HANDSHAKE_STEPS} steps"
        )

    def transfer_in_memory(
        self, writer: Any, reader: Any, chunk: bytes, count: int
    ) -> None:
        """Send *chunk* *count* times from *writer* to *reader*, moving
        the records after each write and reading them all."""
        writer_object, _, writer_out = writer
        reader_object, reader_in, _ = reader
        for _ in range(count):
            written = writer_object.write(chunk)
            if written != len(chunk):
                raise RuntimeError(
                    f"SSLObject.write wrote {written} of {len(chunk)} bytes"
                )
            self._pump(writer_out, reader_in)
            _drain(reader_object.read, len(chunk))

    @staticmethod
    def negotiated(connection: Any) -> dict[str, str]:
        """Return the protocol and cipher of a finished connection
        (Python 3.11's ``ssl`` cannot name the group)."""
        ssl_object = connection[0]
        return {
            "protocol": ssl_object.version() or "",
            "cipher": ssl_object.cipher()[0],
            "group": "",
        }

    # -- sockets --------------------------------------------------------

    def serve(
        self, server_context: ssl.SSLContext, sock: socket.socket
    ) -> None:
        """Run the server side of one exchange on an accepted socket."""
        try:
            wrapped = server_context.wrap_socket(
                sock, server_side=True, do_handshake_on_connect=False
            )
        except BaseException:
            sock.close()
            raise
        # wrap_socket took over the file descriptor from sock.
        with wrapped:
            wrapped.do_handshake()
            header = _read_exactly(wrapped.recv, LENGTH_HEADER_BYTES)
            _drain(wrapped.recv, int.from_bytes(header, "big"))
            wrapped.sendall(DONE_BYTE)

    def exchange(
        self,
        client_context: ssl.SSLContext,
        port: int,
        chunk: bytes,
        count: int,
    ) -> None:
        """Connect to *port*, run the handshake, send *chunk* *count*
        times and wait for the server's final byte."""
        sock = connect(port)
        try:
            wrapped = client_context.wrap_socket(
                sock, do_handshake_on_connect=False
            )
        except BaseException:
            sock.close()
            raise
        with wrapped:
            wrapped.do_handshake()
            wrapped.sendall((len(chunk) * count).to_bytes(8, "big"))
            for _ in range(count):
                wrapped.sendall(chunk)
            if wrapped.recv(1) != DONE_BYTE:
                raise ConnectionError("server did not confirm the exchange")


ICSSSL = PyOpenSSLContender("icsssl", icsssl.Connection, icsssl.Context)
PYOPENSSL = PyOpenSSLContender("pyOpenSSL", SSL.Connection, SSL.Context)
# The same code as PYOPENSSL under another label: the ratio of the two
# shows how far the machine's noise alone moves a ratio.
PYOPENSSL_AGAIN = PyOpenSSLContender(
    "pyOpenSSL (A/A)", SSL.Connection, SSL.Context
)
STDLIB = StdlibContender()

CONTENDERS: dict[str, Any] = {
    contender.label: contender
    for contender in (ICSSSL, PYOPENSSL, PYOPENSSL_AGAIN, STDLIB)
}


def check_protocol(
    label: str, negotiated: dict[str, str], version: str
) -> None:
    """Raise if a handshake negotiated another version than requested."""
    expected = _PROTOCOL_NAMES[version]
    if negotiated["protocol"] != expected:
        raise RuntimeError(
            f"{label}: negotiated {negotiated['protocol']!r}, expected "
            f"{expected!r}"
        )
