"""icsssl against other TLS implementations on 127.0.0.1: ``openssl
s_server``, ``openssl s_client`` and the stdlib ``ssl`` client.

Each peer states what it negotiated, which checks the report
independently of pyOpenSSL.
"""

from __future__ import annotations

import re
import ssl
import warnings
from typing import Any, Optional

import pytest
from OpenSSL import SSL

import icsssl
from support import (
    ERR_LIB_SSL,
    OPENSSL,
    SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM,
    SSL_R_UNSUPPORTED_PROTOCOL,
    accept_bounded,
    check_failure_report,
    check_success_report,
    connect_loopback,
    library_of,
    loopback_listener,
    make_client_context,
    make_server_context,
    openssl_s_client,
    reason_of,
    s_client_output,
    start_peer,
)

pytestmark = pytest.mark.skipif(
    OPENSSL is None, reason="the openssl command is not on PATH"
)

# A default server rejects a TLS 1.0/1.1-only client with one of these
# reasons, each mapped to the kind icsssl reports.  OpenSSL 4.0.3 (the
# wheel) raises 258 "unsupported protocol".  Debian's 3.0.19 raises 118 "no
# suitable signature algorithm" because its security level forbids the
# MD5-SHA1 signatures that those versions need.
OLD_CLIENT_KINDS = {
    SSL_R_UNSUPPORTED_PROTOCOL: "ICSSSL_UNSUPPORTED_PROTOCOL",
    SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM: "ICSSSL_NO_SIGNATURE_ALGORITHM",
}

# s_server -www and s_client print "New, TLSv1.3, Cipher is NAME".
_NEGOTIATED = re.compile(r"^New, (\S+), Cipher is (\S+)$", re.MULTILINE)
_SESSION_PROTOCOL = re.compile(r"^\s*Protocol\s*:\s*(\S+)$", re.MULTILINE)
_SESSION_CIPHER = re.compile(r"^\s*Cipher\s*:\s*(\S+)$", re.MULTILINE)

# Maximum recv calls while reading s_server's status page.
MAX_PAGE_READS = 1000


def _fetch_status_page(port: int, context: SSL.Context) -> tuple[Any, str]:
    """Handshake with s_server -www, request its status page and return
    (connection, page)."""
    sock = connect_loopback(port)
    try:
        connection = icsssl.Connection(context, sock)
        connection.set_connect_state()
        connection.do_handshake()
        connection.sendall(b"GET / HTTP/1.0\r\n\r\n")
        page = b""
        for _ in range(MAX_PAGE_READS):
            try:
                chunk = connection.recv(65536)
            except (SSL.ZeroReturnError, SSL.SysCallError):
                break
            if not chunk:
                break
            page += chunk
        return connection, page.decode("utf-8", "replace")
    finally:
        sock.close()


def test_client_against_s_server(s_server, tls_version):
    connection, page = _fetch_status_page(
        s_server.port, make_client_context(tls_version.number)
    )
    check_success_report(connection, tls_version.name)
    negotiated = _NEGOTIATED.search(page)
    assert negotiated, page[-2000:]
    assert negotiated.group(1) == connection.SslVersion
    assert negotiated.group(2) == connection.SslCipher
    assert _SESSION_PROTOCOL.search(page).group(1) == connection.SslVersion
    assert _SESSION_CIPHER.search(page).group(1) == connection.SslCipher


def test_client_rsa_key_exchange_against_s_server(s_server):
    context = make_client_context(SSL.TLS1_2_VERSION, b"AES128-GCM-SHA256")
    connection, page = _fetch_status_page(s_server.port, context)
    assert connection.SslHandshakeRespMsg == (
        "SSL Connected OK with TLSv1.2, cipher AES128-GCM-SHA256, key "
        "exchange RSA, encryption AESGCM(128), message authentication AEAD"
    )
    assert _NEGOTIATED.search(page).group(2) == "AES128-GCM-SHA256"


S_CLIENT_VERSION_FLAGS = {"TLSv1.2": "-tls1_2", "TLSv1.3": "-tls1_3"}


def _serve_s_client(
    server_context: SSL.Context, log_dir: str, *options: str
) -> tuple[Any, Optional[BaseException], str]:
    """Accept one ``openssl s_client`` with *options*, run the server's
    handshake, close, and return (connection, exception, s_client
    output)."""
    listener = loopback_listener()
    try:
        port = listener.getsockname()[1]
        with openssl_s_client(port, log_dir, *options) as process:
            sock = accept_bounded(listener)
            connection = icsssl.Connection(server_context, sock)
            connection.set_accept_state()
            error: Optional[BaseException] = None
            try:
                connection.do_handshake()
                connection.shutdown()
            except Exception as raised:
                error = raised
            finally:
                sock.close()
            return connection, error, s_client_output(process)
    finally:
        listener.close()


def test_server_against_s_client(server_context, tls_version, tmp_path):
    # -ign_eof keeps s_client connected until the server closes.
    connection, error, output = _serve_s_client(
        server_context(),
        str(tmp_path),
        "-ign_eof",
        S_CLIENT_VERSION_FLAGS[tls_version.name],
    )
    assert error is None, output
    check_success_report(connection, tls_version.name)
    negotiated = _NEGOTIATED.search(output)
    assert negotiated, output
    assert negotiated.group(1) == connection.SslVersion
    assert negotiated.group(2) == connection.SslCipher


STDLIB_VERSIONS = {
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}


def _stdlib_client(port: int, context: ssl.SSLContext) -> Any:
    """Handshake as the stdlib ssl client; return (version, cipher) or
    the ssl.SSLError it raised."""
    with connect_loopback(port) as sock:
        try:
            with context.wrap_socket(sock, server_hostname="localhost") as tls:
                negotiated = tls.version(), tls.cipher()[0]
                # Stay connected until the server's close_notify.
                assert tls.recv(1024) == b""
                return negotiated
        except (ssl.SSLError, ConnectionError) as error:
            return error


def _serve_stdlib_client(
    server_context: SSL.Context, client_context: ssl.SSLContext
) -> tuple[Any, Optional[BaseException], Any]:
    listener = loopback_listener()
    try:
        peer = start_peer(
            _stdlib_client, listener.getsockname()[1], client_context
        )
        sock = accept_bounded(listener)
        connection = icsssl.Connection(server_context, sock)
        connection.set_accept_state()
        error: Optional[BaseException] = None
        try:
            connection.do_handshake()
            connection.shutdown()
        except Exception as raised:
            error = raised
        finally:
            sock.close()
        return connection, error, peer.finish()
    finally:
        listener.close()


def test_server_against_stdlib_client(ca_signed, tls_version):
    client_context = ssl.create_default_context(cafile=ca_signed.ca_path)
    client_context.minimum_version = STDLIB_VERSIONS[tls_version.name]
    client_context.maximum_version = STDLIB_VERSIONS[tls_version.name]
    server_context = make_server_context(ca_signed.cert_path, ca_signed.key_path)
    connection, error, client_result = _serve_stdlib_client(
        server_context, client_context
    )
    assert error is None
    assert client_result == (connection.SslVersion, connection.SslCipher)
    check_success_report(connection, tls_version.name)


def _check_old_client_rejected(connection: Any, error: Any) -> None:
    assert isinstance(error, SSL.Error)
    code = connection.SslHandshakeErr
    assert library_of(code) == ERR_LIB_SSL
    reason = reason_of(code)
    assert reason in OLD_CLIENT_KINDS
    check_failure_report(connection, error, reason, OLD_CLIENT_KINDS[reason])


OLD_VERSIONS = ["TLSv1", "TLSv1_1"]


@pytest.mark.parametrize("version", OLD_VERSIONS)
def test_old_stdlib_client_rejected(server_context, version):
    with warnings.catch_warnings():
        # ssl.TLSVersion.TLSv1 and TLSv1_1 are deprecated since 3.10.
        warnings.simplefilter("ignore", DeprecationWarning)
        client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client_context.check_hostname = False
        client_context.verify_mode = ssl.CERT_NONE
        client_context.minimum_version = getattr(ssl.TLSVersion, version)
        client_context.maximum_version = getattr(ssl.TLSVersion, version)
        # Security level 0 lets the client offer what these versions need.
        client_context.set_ciphers("DEFAULT:@SECLEVEL=0")
    connection, error, client_result = _serve_stdlib_client(
        server_context(), client_context
    )
    _check_old_client_rejected(connection, error)
    assert isinstance(client_result, (ssl.SSLError, ConnectionError))


@pytest.mark.parametrize("flag", ["-tls1", "-tls1_1"])
def test_old_s_client_rejected(server_context, flag, tmp_path):
    connection, error, output = _serve_s_client(
        server_context(), str(tmp_path), flag, "-cipher", "DEFAULT:@SECLEVEL=0"
    )
    _check_old_client_rejected(connection, error)
