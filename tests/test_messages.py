"""ICS's failure messages, from real handshakes on 127.0.0.1 where OpenSSL
still raises the reason, and from ``icsssl.messages`` otherwise.

The expected texts are Delphi ICS's ``SslHandshakeRespMsg`` wording.
``handshake_report.ics_message`` is that text, and icsssl's message starts
with it.  The kinds are the cause names listed in docs/messages.md.
"""

from __future__ import annotations

import errno
import http.server
import socket
import struct
from typing import Any, Callable, Optional

import pytest
from OpenSSL import SSL

import icsssl
from icsssl import messages
from support import (
    ERR_LIB_SSL,
    IO_TIMEOUT,
    LOOPBACK,
    SSL_R_HTTP_REQUEST,
    SSL_R_HTTPS_PROXY_REQUEST,
    SSL_R_UNEXPECTED_EOF_WHILE_READING,
    SSL_R_UNKNOWN_PROTOCOL,
    SSL_R_WRONG_VERSION_NUMBER,
    SUCCESS_PREFIX,
    accept_bounded,
    capture_client_hello,
    check_ics_message,
    connect_loopback,
    library_of,
    loopback_listener,
    make_client_context,
    pack_code,
    reason_of,
    recv_until_closed,
    start_peer,
)

HTTP_REQUEST = "Error, HTTP request, no SSL handshake"
HTTPS_PROXY_REQUEST = "Error, HTTPS proxy request, no SSL handshake"
WRONG_VERSION = "Error, wrong SSL version"
CLOSED_UNEXPECTEDLY = "Error, connection closed unexpectedly"

# The TLS record header: type (1 byte), version (2), length (2).
RECORD_HEADER = struct.Struct("!BHH")


def _serve_one_handshake(
    server_context: SSL.Context,
    client: Callable[[int], Any],
    connection_class: type = icsssl.Connection,
) -> tuple[Any, Optional[BaseException], Any]:
    """Accept one loopback client run by *client(port)* in a thread, run
    the server's handshake and return (connection, exception, the
    client's return value)."""
    listener = loopback_listener()
    try:
        peer = start_peer(client, listener.getsockname()[1])
        sock = accept_bounded(listener)
        connection = connection_class(server_context, sock)
        connection.set_accept_state()
        error: Optional[BaseException] = None
        try:
            connection.do_handshake()
        except Exception as raised:
            error = raised
        finally:
            sock.close()
        return connection, error, peer.finish()
    finally:
        listener.close()


def _send_and_close(payload: bytes) -> Callable[[int], bytes]:
    def client(port: int) -> bytes:
        with connect_loopback(port) as sock:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            try:
                return recv_until_closed(sock)
            except ConnectionResetError:
                # The server closed with part of the payload unread, so
                # its kernel sent a reset.
                return b""

    return client


def _check_ssl_reason(connection: icsssl.Connection, reason: int) -> None:
    code = connection.SslHandshakeErr
    assert library_of(code) == ERR_LIB_SSL
    assert reason_of(code) == reason
    assert connection.ErrCode == reason


def test_plain_http_request(server_context):
    connection, error, _ = _serve_one_handshake(
        server_context(), _send_and_close(b"GET / HTTP/1.1\r\n\r\n")
    )
    assert isinstance(error, SSL.Error)
    _check_ssl_reason(connection, SSL_R_HTTP_REQUEST)
    check_ics_message(connection, HTTP_REQUEST, "ICSSSL_HTTP_REQUEST")


def test_https_proxy_request(server_context):
    request = b"CONNECT localhost:443 HTTP/1.1\r\nHost: localhost:443\r\n\r\n"
    connection, error, _ = _serve_one_handshake(
        server_context(), _send_and_close(request)
    )
    assert isinstance(error, SSL.Error)
    _check_ssl_reason(connection, SSL_R_HTTPS_PROXY_REQUEST)
    check_ics_message(
        connection, HTTPS_PROXY_REQUEST, "ICSSSL_HTTPS_PROXY_REQUEST"
    )


class _QuietHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_tls_client_to_plain_http_server():
    server = http.server.HTTPServer((LOOPBACK, 0), _QuietHandler)
    server.timeout = IO_TIMEOUT
    try:
        # handle_request responds to the ClientHello with an HTTP error page.
        peer = start_peer(server.handle_request)
        sock = connect_loopback(server.server_address[1])
        connection = icsssl.Connection(make_client_context(), sock)
        connection.set_connect_state()
        with pytest.raises(SSL.Error):
            connection.do_handshake()
        sock.close()
        peer.finish()
    finally:
        server.server_close()
    _check_ssl_reason(connection, SSL_R_WRONG_VERSION_NUMBER)
    # The kind is not checked here because it depends on when the response
    # arrives (see test_http_response_in_first_call).
    check_ics_message(connection, WRONG_VERSION)


HTTP_RESPONSE = (
    b"HTTP/1.0 400 Bad request\r\nContent-Type: text/html\r\n\r\n"
    b"<!DOCTYPE HTML><html><body>Bad request</body></html>\n"
)


def _tls_client_to_raw_server(respond_during_handshake: bool) -> Any:
    """Run an icsssl client against a raw loopback server that sends
    HTTP_RESPONSE, either before the client's do_handshake or from inside
    its first do_handshake call (an info callback), and return the
    client connection."""
    listener = loopback_listener()
    try:
        sock = connect_loopback(listener.getsockname()[1])
        server_socket = accept_bounded(listener)
    finally:
        listener.close()
    try:
        context = make_client_context()
        if respond_during_handshake:

            def respond(connection: Any, where: int, _result: int) -> None:
                if where & SSL.SSL_CB_HANDSHAKE_START:
                    server_socket.sendall(HTTP_RESPONSE)

            context.set_info_callback(respond)
        else:
            server_socket.sendall(HTTP_RESPONSE)
        connection = icsssl.Connection(context, sock)
        connection.set_connect_state()
        with pytest.raises(SSL.Error):
            connection.do_handshake()
        return connection
    finally:
        sock.close()
        server_socket.close()


def test_http_response_before_handshake():
    connection = _tls_client_to_raw_server(respond_during_handshake=False)
    _check_ssl_reason(connection, SSL_R_WRONG_VERSION_NUMBER)
    check_ics_message(connection, WRONG_VERSION, "ICSSSL_PLAIN_HTTP_SERVER")


def test_http_response_in_first_call():
    connection = _tls_client_to_raw_server(respond_during_handshake=True)
    _check_ssl_reason(connection, SSL_R_WRONG_VERSION_NUMBER)
    check_ics_message(connection, WRONG_VERSION, "ICSSSL_PLAIN_HTTP_SERVER")


def test_half_client_hello_then_close(server_context):
    hello = capture_client_hello()
    assert len(hello) > RECORD_HEADER.size
    connection, error, _ = _serve_one_handshake(
        server_context(), _send_and_close(hello[: len(hello) // 2])
    )
    assert isinstance(error, SSL.SysCallError)
    assert connection.handshake_done is True
    assert connection.ErrCode == 1
    check_ics_message(connection, CLOSED_UNEXPECTEDLY, "ICSSSL_CLOSED_BY_CLIENT")
    code = connection.SslHandshakeErr
    if code:
        assert library_of(code) == ERR_LIB_SSL
        assert reason_of(code) == SSL_R_UNEXPECTED_EOF_WHILE_READING


def test_reset_after_client_hello(server_context):
    hello = capture_client_hello()

    def send_then_reset(port: int) -> None:
        with connect_loopback(port) as sock:
            sock.sendall(hello)
            # Wait for the server's response, then reset the connection.
            assert sock.recv(RECORD_HEADER.size)
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )

    connection, error, _ = _serve_one_handshake(
        server_context(), send_then_reset
    )
    assert isinstance(error, SSL.SysCallError)
    assert error.args[0] == errno.ECONNRESET
    assert connection.SslHandshakeErr == 0
    assert connection.SslHandshakeErrors == ()
    assert connection.ErrCode == 1
    check_ics_message(connection, CLOSED_UNEXPECTEDLY, "ICSSSL_CONNECTION_RESET")


def _read_client_hello_then_close(listener: socket.socket) -> bytes:
    sock = accept_bounded(listener)
    try:
        received = b""
        while len(received) < RECORD_HEADER.size:
            chunk = sock.recv(65536)
            assert chunk, "client closed before its ClientHello"
            received += chunk
        _, _, length = RECORD_HEADER.unpack_from(received)
        while len(received) < RECORD_HEADER.size + length:
            chunk = sock.recv(65536)
            assert chunk, "client closed inside its ClientHello"
            received += chunk
        return received
    finally:
        sock.close()


def _handshake_with_closing_server(connection_class: type) -> tuple[Any, Any]:
    listener = loopback_listener()
    try:
        peer = start_peer(_read_client_hello_then_close, listener)
        sock = connect_loopback(listener.getsockname()[1])
        connection = connection_class(make_client_context(), sock)
        connection.set_connect_state()
        error = None
        try:
            connection.do_handshake()
        except Exception as raised:
            error = raised
        finally:
            sock.close()
        hello = peer.finish()
        assert hello[0] == 0x16  # a handshake record
        return connection, error
    finally:
        listener.close()


def test_server_closes_after_client_hello():
    _, plain_error = _handshake_with_closing_server(SSL.Connection)
    connection, error = _handshake_with_closing_server(icsssl.Connection)
    assert type(error) is type(plain_error)
    assert error.args == plain_error.args
    assert isinstance(error, SSL.SysCallError)
    code = connection.SslHandshakeErr
    assert library_of(code) == ERR_LIB_SSL
    assert reason_of(code) == SSL_R_UNEXPECTED_EOF_WHILE_READING
    assert connection.ErrCode == 1
    check_ics_message(
        connection, CLOSED_UNEXPECTEDLY, "ICSSSL_CLOSED_BEFORE_REPLY"
    )


# -- the table, from icsssl.messages -----------------------------------------

TABLE_ROWS = [
    (SSL_R_HTTP_REQUEST, HTTP_REQUEST),
    (SSL_R_HTTPS_PROXY_REQUEST, HTTPS_PROXY_REQUEST),
    (SSL_R_WRONG_VERSION_NUMBER, WRONG_VERSION),
]


@pytest.mark.parametrize("reason, expected", TABLE_ROWS)
def test_failure_message_table(reason, expected):
    code = pack_code(ERR_LIB_SSL, reason)
    text = icsssl.error_string(code)
    assert messages.failure_message(code, text) == expected
    assert messages.failure_err_code(code) == reason


def test_unknown_protocol_row():
    # OpenSSL 3 no longer raises SSL_R_UNKNOWN_PROTOCOL, but ICS logs from
    # OpenSSL 1.x do, so the row is only reachable through the function.
    code = pack_code(ERR_LIB_SSL, SSL_R_UNKNOWN_PROTOCOL)
    text = icsssl.error_string(code)
    message = messages.failure_message(code, text)
    assert message != text
    assert message.startswith("Error, ")
    assert message not in {
        HTTP_REQUEST,
        HTTPS_PROXY_REQUEST,
        WRONG_VERSION,
        CLOSED_UNEXPECTEDLY,
    }
    assert "protocol" in message.lower()
    assert messages.failure_err_code(code) == SSL_R_UNKNOWN_PROTOCOL


@pytest.mark.parametrize(
    "reason",
    [SSL_R_HTTP_REQUEST, SSL_R_HTTPS_PROXY_REQUEST, SSL_R_UNKNOWN_PROTOCOL,
     SSL_R_WRONG_VERSION_NUMBER, SSL_R_UNEXPECTED_EOF_WHILE_READING],
)
def test_table_only_for_ssl_library(reason):
    # The same reason numbers in another library (6 is ERR_LIB_EVP) are
    # other errors and keep OpenSSL's text.
    code = pack_code(6, reason)
    text = f"error:{code:08X}:lib(6)::reason({reason})"
    assert messages.failure_message(code, text) == text
    assert messages.failure_err_code(code) == reason


def test_closed_unexpectedly_rows():
    eof = pack_code(ERR_LIB_SSL, SSL_R_UNEXPECTED_EOF_WHILE_READING)
    assert messages.failure_message(0, "") == CLOSED_UNEXPECTEDLY
    assert messages.failure_message(eof, "ignored") == CLOSED_UNEXPECTEDLY
    assert messages.failure_err_code(0) == 1
    assert messages.failure_err_code(eof) == 1
    assert messages.is_unexpected_eof(eof) is True
    assert messages.is_unexpected_eof(0) is False
    assert messages.is_unexpected_eof(pack_code(6, 294)) is False


def test_other_reasons_keep_openssl_text():
    code = pack_code(ERR_LIB_SSL, 134)
    text = icsssl.error_string(code)
    assert messages.failure_message(code, text) == text
    assert messages.failure_err_code(code) == 134
    system = 0x80000000 | errno.ECONNRESET
    assert messages.failure_err_code(system) == errno.ECONNRESET


def test_success_message_format():
    message = messages.success_message(
        "TLSv1.3", "TLS_AES_128_GCM_SHA256", "x25519", "AESGCM(128)", "AEAD"
    )
    assert message == (
        "SSL Connected OK with TLSv1.3, cipher TLS_AES_128_GCM_SHA256, key "
        "exchange x25519, encryption AESGCM(128), message authentication AEAD"
    )
    assert message.startswith(SUCCESS_PREFIX)
