"""``icsssl.Connection``: the handshake report, the callback and pyOpenSSL
behaviour, over memory BIOs and loopback sockets.

Failures are matched on library and reason numbers decoded by OpenSSL's
own macros (``support.library_of``/``reason_of``), never on text.
"""

from __future__ import annotations

import select
import socket
import time
from typing import Any, Optional

import pytest
from OpenSSL import SSL
from OpenSSL._util import lib as peer_lib

import icsssl
import support
from support import (
    ALERT_HANDSHAKE_FAILURE,
    ALERT_UNKNOWN_CA,
    ERR_LIB_SSL,
    IO_TIMEOUT,
    LOOPBACK,
    MAX_HANDSHAKE_ROUNDS,
    SSL_AD_REASON_OFFSET,
    SSL_R_CERTIFICATE_VERIFY_FAILED,
    SSL_R_NO_SHARED_CIPHER,
    SUCCESS_PREFIX,
    bound_blocking,
    check_failure_report,
    check_success_report,
    connect_loopback,
    force_group_p256,
    handshake_in_memory,
    library_of,
    loopback_listener,
    make_client_context,
    make_server_context,
    memory_pair,
    reason_of,
    start_peer,
    transfer,
)

# openssl/sslerr.h: a TLS 1.3 server that requires a client certificate
# and gets none fails with this reason.
SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE = 199

# RFC 8446, section 6: the alert a server sends for a missing client
# certificate.
ALERT_CERTIFICATE_REQUIRED = 116


class CallbackFailed(Exception):
    """Raised by test callbacks to check that exceptions propagate."""


class CallbackRecorder:
    """A handshake-done callback that records each call and what the
    connection reported at that moment."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, connection: icsssl.Connection, err_code: int) -> None:
        self.calls.append(
            {
                "connection": connection,
                "err_code": err_code,
                "handshake_done": connection.handshake_done,
                "error": connection.SslHandshakeErr,
                "message": connection.SslHandshakeRespMsg,
            }
        )


def _attach_recorders(*connections: icsssl.Connection) -> list[CallbackRecorder]:
    recorders = []
    for connection in connections:
        recorder = CallbackRecorder()
        connection.set_handshake_done_callback(recorder)
        recorders.append(recorder)
    return recorders


# -- success ------------------------------------------------------------------


def test_success_report_fields(tls_version, server_context):
    client, server = memory_pair(
        make_client_context(tls_version.number),
        server_context(tls_version.number),
    )
    outcome = handshake_in_memory(client, server)
    assert outcome.client_error is None
    assert outcome.server_error is None
    check_success_report(client, tls_version.name)
    check_success_report(server, tls_version.name)
    assert client.SslCipher == server.SslCipher
    assert client.SslHandshakeRespMsg == server.SslHandshakeRespMsg


def test_tls12_rsa_key_exchange(server_context):
    version = SSL.TLS1_2_VERSION
    client, server = memory_pair(
        make_client_context(version, b"AES128-GCM-SHA256"),
        server_context(version, b"AES128-GCM-SHA256"),
    )
    outcome = handshake_in_memory(client, server)
    assert outcome.client_error is None
    expected = (
        "SSL Connected OK with TLSv1.2, cipher AES128-GCM-SHA256, key "
        "exchange RSA, encryption AESGCM(128), message authentication AEAD"
    )
    assert client.SslHandshakeRespMsg == expected
    assert server.SslHandshakeRespMsg == expected
    check_success_report(client, "TLSv1.2")


def test_tls13_key_exchange_is_group(server_context):
    version = SSL.TLS1_3_VERSION
    client, server = memory_pair(
        make_client_context(version), server_context(version)
    )
    assert handshake_in_memory(client, server).client_error is None
    for connection in (client, server):
        assert connection.SslKeyExchange == "any"
        group = connection.SslGroupName
        assert group != ""
        assert f", key exchange {group}, " in connection.SslHandshakeRespMsg
        # pyOpenSSL 24.3+ on OpenSSL 3.2+ names the group itself.
        get_group_name = getattr(connection, "get_group_name", None)
        if get_group_name is not None:
            try:
                assert group == get_group_name()
            except NotImplementedError:
                pass


@pytest.mark.parametrize("version", [SSL.TLS1_2_VERSION, SSL.TLS1_3_VERSION])
def test_forced_group_name(version, server_context):
    client_context = make_client_context(version)
    server = server_context(version)
    force_group_p256(client_context)
    force_group_p256(server)
    client, server = memory_pair(client_context, server)
    assert handshake_in_memory(client, server).client_error is None
    for connection in (client, server):
        # RFC 8446 names P-256 "secp256r1"; OpenSSL uses the same name.
        assert connection.SslGroupName == "secp256r1"
    if version == SSL.TLS1_3_VERSION:
        assert ", key exchange secp256r1, " in client.SslHandshakeRespMsg
    else:
        assert ", key exchange ECDH, " in client.SslHandshakeRespMsg


def test_verified_handshake_succeeds(ca_signed, tls_version):
    client, server = memory_pair(
        make_client_context(
            tls_version.number, verify=True, ca_path=ca_signed.ca_path
        ),
        make_server_context(
            ca_signed.cert_path, ca_signed.key_path, tls_version.number
        ),
    )
    outcome = handshake_in_memory(client, server)
    assert outcome.client_error is None
    check_success_report(client, tls_version.name)


# -- failures -----------------------------------------------------------------


def _no_shared_cipher_contexts(self_signed) -> tuple[SSL.Context, SSL.Context]:
    version = SSL.TLS1_2_VERSION
    return (
        make_client_context(version, b"AES256-GCM-SHA384"),
        make_server_context(
            self_signed.cert_path,
            self_signed.key_path,
            version,
            b"AES128-GCM-SHA256",
        ),
    )


def _verify_failure_contexts(self_signed) -> tuple[SSL.Context, SSL.Context]:
    # The client trusts no CA, so the self-signed certificate fails.
    return (
        make_client_context(verify=True),
        make_server_context(self_signed.cert_path, self_signed.key_path),
    )


FAILURE_SCENARIOS = {
    "no shared cipher": _no_shared_cipher_contexts,
    "client verify failure": _verify_failure_contexts,
}


def test_no_shared_cipher(self_signed):
    client, server = memory_pair(*_no_shared_cipher_contexts(self_signed))
    outcome = handshake_in_memory(client, server)
    assert isinstance(outcome.server_error, SSL.Error)
    assert isinstance(outcome.client_error, SSL.Error)
    check_failure_report(
        server,
        outcome.server_error,
        SSL_R_NO_SHARED_CIPHER,
        "ICSSSL_NO_SHARED_CIPHER",
    )
    check_failure_report(
        client,
        outcome.client_error,
        SSL_AD_REASON_OFFSET + ALERT_HANDSHAKE_FAILURE,
        "ICSSSL_PEER_HANDSHAKE_FAILURE",
    )


def test_client_verify_failure(self_signed):
    client, server = memory_pair(*_verify_failure_contexts(self_signed))
    outcome = handshake_in_memory(client, server)
    assert isinstance(outcome.client_error, SSL.Error)
    assert isinstance(outcome.server_error, SSL.Error)
    check_failure_report(
        client,
        outcome.client_error,
        SSL_R_CERTIFICATE_VERIFY_FAILED,
        "ICSSSL_CERT_SELF_SIGNED",
    )
    check_failure_report(
        server,
        outcome.server_error,
        SSL_AD_REASON_OFFSET + ALERT_UNKNOWN_CA,
        "ICSSSL_PEER_UNKNOWN_CA",
    )


def _exception_shape(error: Optional[BaseException]) -> Any:
    if error is None:
        return None
    return type(error), error.args


@pytest.mark.parametrize("scenario", sorted(FAILURE_SCENARIOS))
def test_exception_same_as_plain_pyopenssl(scenario, self_signed):
    make_contexts = FAILURE_SCENARIOS[scenario]
    plain = handshake_in_memory(
        *memory_pair(*make_contexts(self_signed), SSL.Connection)
    )
    assert int(peer_lib.ERR_peek_error()) == 0
    ours = handshake_in_memory(
        *memory_pair(*make_contexts(self_signed), icsssl.Connection)
    )
    assert int(peer_lib.ERR_peek_error()) == 0
    assert plain.client_error is not None
    assert plain.server_error is not None
    assert _exception_shape(ours.client_error) == _exception_shape(
        plain.client_error
    )
    assert _exception_shape(ours.server_error) == _exception_shape(
        plain.server_error
    )


def test_verify_callback_exception(self_signed):
    class VerifyRejected(Exception):
        pass

    def reject(*_args: Any) -> bool:
        raise VerifyRejected("certificate rejected by the test")

    def run(connection_class: type) -> tuple[Any, list[int]]:
        client_context = make_client_context()
        client_context.set_verify(SSL.VERIFY_PEER, reject)
        server_context = make_server_context(
            self_signed.cert_path, self_signed.key_path
        )
        client, server = memory_pair(
            client_context, server_context, connection_class
        )
        outcome = handshake_in_memory(client, server)
        # pyOpenSSL drains the queue before it re-raises the callback's
        # exception; collect what is left to compare the two classes.
        left = []
        for _ in range(64):
            code = int(peer_lib.ERR_get_error())
            if code == 0:
                break
            left.append(code)
        return client, outcome.client_error, left

    _, plain_error, plain_left = run(SSL.Connection)
    client, error, left = run(icsssl.Connection)
    assert isinstance(error, VerifyRejected)
    assert _exception_shape(error) == _exception_shape(plain_error)
    assert plain_left == []
    assert left == plain_left
    assert client.handshake_done is True
    support.assert_same_exception(client.handshake_exception, error)
    code = client.SslHandshakeErr
    assert library_of(code) == ERR_LIB_SSL
    assert reason_of(code) == SSL_R_CERTIFICATE_VERIFY_FAILED
    assert client.ErrCode == SSL_R_CERTIFICATE_VERIFY_FAILED
    assert not client.SslHandshakeRespMsg.startswith(SUCCESS_PREFIX)


def test_verify_callback_exception_kind(ca_signed):
    # The certificate is trusted, so only the callback fails the handshake.
    def reject(*_args: Any) -> bool:
        raise CallbackFailed("certificate rejected by the test")

    client_context = make_client_context(ca_path=ca_signed.ca_path)
    client_context.set_verify(SSL.VERIFY_PEER, reject)
    client, server = memory_pair(
        client_context,
        make_server_context(ca_signed.cert_path, ca_signed.key_path),
    )
    try:
        outcome = handshake_in_memory(client, server)
    finally:
        peer_lib.ERR_clear_error()
    assert isinstance(outcome.client_error, CallbackFailed)
    assert client.handshake_report.kind == "ICSSSL_PYTHON_EXCEPTION"


def test_failure_report_has_no_session_fields(self_signed):
    client, server = memory_pair(*_no_shared_cipher_contexts(self_signed))
    handshake_in_memory(client, server)
    for connection in (client, server):
        assert connection.handshake_done is True
        assert connection.SslVersion == ""
        assert connection.SslCipher == ""
        assert connection.SslCipherDesc == ""
        assert not connection.SslHandshakeRespMsg.startswith(SUCCESS_PREFIX)


def test_tls13_missing_client_certificate(self_signed):
    # A TLS 1.3 client finishes its handshake before the server checks the
    # client certificate, so the server's rejection (alert 116) reaches the
    # client's first recv.  icsssl then replaces the client's success
    # report with that failure and calls the callback a second time.
    version = SSL.TLS1_3_VERSION
    server_context = make_server_context(
        self_signed.cert_path, self_signed.key_path, version
    )
    server_context.set_verify(
        SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT,
        lambda *args: bool(args[-1]),
    )
    client, server = memory_pair(make_client_context(version), server_context)
    client_calls, server_calls = _attach_recorders(client, server)
    outcome = handshake_in_memory(client, server)
    assert outcome.client_error is None
    assert isinstance(outcome.server_error, SSL.Error)
    check_failure_report(
        server, outcome.server_error, SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE
    )
    assert [call["err_code"] for call in server_calls.calls] == [
        SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE
    ]
    check_success_report(client, "TLSv1.3")
    assert [call["err_code"] for call in client_calls.calls] == [0]

    with pytest.raises(SSL.Error) as raised:
        client.recv(1024)
    check_failure_report(
        client,
        raised.value,
        SSL_AD_REASON_OFFSET + ALERT_CERTIFICATE_REQUIRED,
        "ICSSSL_PEER_CERTIFICATE_REQUIRED",
    )
    assert [call["err_code"] for call in client_calls.calls] == [
        0,
        SSL_AD_REASON_OFFSET + ALERT_CERTIFICATE_REQUIRED,
    ]
    assert len(server_calls.calls) == 1


# -- the handshake-done callback ---------------------------------------------


def _exchange_data(client: icsssl.Connection, server: icsssl.Connection) -> None:
    client.sendall(b"ping")
    transfer(client, server)
    assert server.recv(1024) == b"ping"
    server.sendall(b"pong")
    transfer(server, client)
    assert client.recv(1024) == b"pong"


def test_callback_once_on_success(tls_version, server_context):
    client, server = memory_pair(
        make_client_context(tls_version.number),
        server_context(tls_version.number),
    )
    client_calls, server_calls = _attach_recorders(client, server)
    assert handshake_in_memory(client, server).client_error is None
    _exchange_data(client, server)
    _exchange_data(client, server)
    for connection, recorder in ((client, client_calls), (server, server_calls)):
        assert len(recorder.calls) == 1
        call = recorder.calls[0]
        assert call["connection"] is connection
        assert call["err_code"] == 0
        assert call["handshake_done"] is True
        assert call["message"] == connection.SslHandshakeRespMsg
        assert call["message"].startswith(SUCCESS_PREFIX)


def test_callback_once_on_failure(self_signed):
    client, server = memory_pair(*_no_shared_cipher_contexts(self_signed))
    client_calls, server_calls = _attach_recorders(client, server)
    outcome = handshake_in_memory(client, server)
    assert outcome.server_error is not None
    for connection, recorder in ((client, client_calls), (server, server_calls)):
        assert len(recorder.calls) == 1
        call = recorder.calls[0]
        assert call["connection"] is connection
        assert call["handshake_done"] is True
        assert call["err_code"] == connection.ErrCode
        assert call["err_code"] == reason_of(connection.SslHandshakeErr)
        assert call["error"] == connection.SslHandshakeErr
    # Later calls that fail again do not report a second handshake.
    with pytest.raises(SSL.Error):
        server.do_handshake()
    assert len(server_calls.calls) == 1


def _raise_from_callback(connection: icsssl.Connection, err_code: int) -> None:
    raise CallbackFailed(f"callback saw err_code {err_code}")


def test_callback_exception_on_success(tls_version, server_context):
    client, server = memory_pair(
        make_client_context(tls_version.number),
        server_context(tls_version.number),
    )
    client.set_handshake_done_callback(_raise_from_callback)
    outcome = handshake_in_memory(client, server)
    assert isinstance(outcome.client_error, CallbackFailed)
    assert outcome.server_error is None
    check_success_report(client, tls_version.name)
    # The handshake is over, so data flows without calling it again.
    _exchange_data(client, server)


def test_callback_exception_on_failure(self_signed):
    plain = handshake_in_memory(
        *memory_pair(*_no_shared_cipher_contexts(self_signed), SSL.Connection)
    )
    client, server = memory_pair(*_no_shared_cipher_contexts(self_signed))
    server.set_handshake_done_callback(_raise_from_callback)
    outcome = handshake_in_memory(client, server)
    assert isinstance(outcome.server_error, CallbackFailed)
    original = outcome.server_error.__context__
    assert isinstance(original, SSL.Error)
    assert _exception_shape(original) == _exception_shape(plain.server_error)
    support.assert_same_exception(server.handshake_exception, original)
    assert reason_of(server.SslHandshakeErr) == SSL_R_NO_SHARED_CIPHER
    # The alert was sent before the callback ran, so the client fails too.
    assert _exception_shape(outcome.client_error) == _exception_shape(
        plain.client_error
    )


def test_callback_setter_validation():
    connection = icsssl.Connection(make_client_context(), None)
    with pytest.raises(TypeError, match="callable"):
        connection.set_handshake_done_callback(42)
    recorder = CallbackRecorder()
    connection.OnSslHandshakeDone = recorder
    assert connection.OnSslHandshakeDone is recorder
    connection.set_handshake_done_callback(None)
    assert connection.OnSslHandshakeDone is None


def test_callback_removed_is_not_called(server_context):
    client, server = memory_pair(make_client_context(), server_context())
    recorder = CallbackRecorder()
    client.set_handshake_done_callback(recorder)
    client.set_handshake_done_callback(None)
    assert handshake_in_memory(client, server).client_error is None
    assert recorder.calls == []


# -- pending handshakes -------------------------------------------------------

REPORT_DEFAULTS = {
    "SslHandshakeErr": 0,
    "SslHandshakeErrors": (),
    "ErrCode": 0,
    "SslHandshakeRespMsg": "",
    "SslCipherDesc": "",
    "SslKeyExchange": "",
    "SslKeyAuth": "",
    "SslEncryption": "",
    "SslMessAuth": "",
    "SslVersion": "",
    "SslCipher": "",
    "SslSecretBits": 0,
    "SslTotalBits": 0,
    "SslGroupName": "",
}

ICS_ALIASES = {
    "SslHandshakeErr": "handshake_error",
    "SslHandshakeErrors": "handshake_errors",
    "ErrCode": "handshake_err_code",
    "SslHandshakeRespMsg": "handshake_resp_msg",
    "SslCipherDesc": "cipher_desc",
    "SslKeyExchange": "key_exchange",
    "SslKeyAuth": "key_auth",
    "SslEncryption": "encryption",
    "SslMessAuth": "mess_auth",
    "SslVersion": "ssl_version",
    "SslCipher": "ssl_cipher",
    "SslSecretBits": "secret_bits",
    "SslTotalBits": "total_bits",
    "SslGroupName": "group_name",
}


def _check_pending(connection: icsssl.Connection) -> None:
    assert connection.handshake_done is False
    assert connection.handshake_report is None
    assert connection.handshake_exception is None
    assert connection.handshake_pid == 0
    for name, empty in REPORT_DEFAULTS.items():
        assert getattr(connection, name) == empty, name
        assert getattr(connection, ICS_ALIASES[name]) == empty, name


def test_properties_empty_before_handshake(server_context):
    client, server = memory_pair(make_client_context(), server_context())
    _check_pending(client)
    _check_pending(server)


@pytest.mark.parametrize("ics_name", sorted(ICS_ALIASES))
def test_ics_names_are_aliases(ics_name):
    ics = getattr(icsssl.Connection, ics_name)
    alias = getattr(icsssl.Connection, ICS_ALIASES[ics_name])
    assert ics is alias


def test_want_read_is_not_failure(server_context):
    client, server = memory_pair(make_client_context(), server_context())
    client_calls, server_calls = _attach_recorders(client, server)
    with pytest.raises(SSL.WantReadError):
        client.do_handshake()
    with pytest.raises(SSL.WantReadError):
        server.do_handshake()
    transfer(client, server)
    with pytest.raises(SSL.WantReadError):
        client.do_handshake()
    _check_pending(client)
    _check_pending(server)
    assert client_calls.calls == []
    assert server_calls.calls == []


def _outcome_of(function: Any) -> tuple:
    try:
        return ("returned", function())
    except Exception as error:
        return ("raised", type(error), error.args)


def test_shutdown_before_handshake(server_context):
    plain = SSL.Connection(make_client_context(), None)
    plain.set_connect_state()
    client, server = memory_pair(make_client_context(), server_context())
    client_calls, = _attach_recorders(client)
    assert _outcome_of(client.shutdown) == _outcome_of(plain.shutdown)
    _check_pending(client)
    assert client_calls.calls == []
    # The handshake still runs afterwards and is reported once.
    assert handshake_in_memory(client, server).client_error is None
    check_success_report(client, client.get_protocol_version_name())
    assert [call["err_code"] for call in client_calls.calls] == [0]


def test_shutdown_during_handshake(server_context):
    plain_client, plain_server = memory_pair(
        make_client_context(), server_context(), SSL.Connection
    )
    client, server = memory_pair(make_client_context(), server_context())
    client_calls, = _attach_recorders(client)
    for connection in (plain_client, client):
        with pytest.raises(SSL.WantReadError):
            connection.do_handshake()
    assert _outcome_of(client.shutdown) == _outcome_of(plain_client.shutdown)
    _check_pending(client)
    assert client_calls.calls == []


def test_shutdown_after_handshake(server_context):
    client, server = memory_pair(make_client_context(), server_context())
    client_calls, = _attach_recorders(client)
    assert handshake_in_memory(client, server).client_error is None
    assert client.shutdown() is False
    transfer(client, server)
    check_success_report(client, client.get_protocol_version_name())
    assert len(client_calls.calls) == 1


# -- implicit handshakes ------------------------------------------------------

WRITE_READ_METHODS = [
    ("send", "recv"),
    ("sendall", "recv_into"),
    ("write", "read"),
]


def _read(connection: icsssl.Connection, method: str) -> bytes:
    if method == "recv_into":
        buffer = bytearray(1024)
        count = connection.recv_into(buffer)
        return bytes(buffer[:count])
    return getattr(connection, method)(1024)


@pytest.mark.parametrize(
    "write_method, read_method",
    WRITE_READ_METHODS,
    ids=[f"{write}-{read}" for write, read in WRITE_READ_METHODS],
)
def test_implicit_handshake(tls_version, server_context, write_method, read_method):
    client, server = memory_pair(
        make_client_context(tls_version.number),
        server_context(tls_version.number),
    )
    client_calls, server_calls = _attach_recorders(client, server)
    sent: Optional[int] = None
    received = b""
    for _ in range(MAX_HANDSHAKE_ROUNDS):
        if sent is None:
            try:
                sent = getattr(client, write_method)(b"ping")
            except SSL.WantReadError:
                assert client.handshake_done is False
        transfer(client, server)
        try:
            received += _read(server, read_method)
        except SSL.WantReadError:
            pass
        transfer(server, client)
        if received == b"ping":
            break
    assert received == b"ping"
    assert sent == 4
    check_success_report(client, tls_version.name)
    check_success_report(server, tls_version.name)
    assert [call["err_code"] for call in client_calls.calls] == [0]
    assert [call["err_code"] for call in server_calls.calls] == [0]


# -- sockets ------------------------------------------------------------------


def test_blocking_socketpair(tls_version, server_context):
    client_socket, server_socket = socket.socketpair()
    try:
        bound_blocking(client_socket)
        bound_blocking(server_socket)
        server = icsssl.Connection(
            server_context(tls_version.number), server_socket
        )
        server.set_accept_state()
        client = icsssl.Connection(
            make_client_context(tls_version.number), client_socket
        )
        client.set_connect_state()
        client_calls, server_calls = _attach_recorders(client, server)

        def serve() -> bytes:
            server.do_handshake()
            data = server.recv(1024)
            server.sendall(data.upper())
            return data

        peer = start_peer(serve)
        client.do_handshake()
        client.sendall(b"ping")
        reply = client.recv(1024)
        assert peer.finish() == b"ping"
        assert reply == b"PING"
        check_success_report(client, tls_version.name)
        check_success_report(server, tls_version.name)
        assert len(client_calls.calls) == 1
        assert len(server_calls.calls) == 1
    finally:
        client_socket.close()
        server_socket.close()


def test_nonblocking_loopback(tls_version, server_context):
    listener = loopback_listener()
    client_socket = socket.create_connection(
        listener.getsockname(), timeout=IO_TIMEOUT
    )
    server_socket, _ = listener.accept()
    listener.close()
    try:
        client_socket.setblocking(False)
        server_socket.setblocking(False)
        client = icsssl.Connection(
            make_client_context(tls_version.number), client_socket
        )
        client.set_connect_state()
        server = icsssl.Connection(
            server_context(tls_version.number), server_socket
        )
        server.set_accept_state()
        client_calls, server_calls = _attach_recorders(client, server)
        pending = {client: client_socket, server: server_socket}
        wants_seen = 0
        deadline = time.monotonic() + IO_TIMEOUT
        while pending:
            remaining = deadline - time.monotonic()
            assert remaining > 0, "non-blocking handshake timed out"
            for connection in list(pending):
                try:
                    connection.do_handshake()
                except (SSL.WantReadError, SSL.WantWriteError):
                    wants_seen += 1
                    assert connection.handshake_done is False
                    continue
                del pending[connection]
            if pending:
                select.select(list(pending.values()), [], [], min(remaining, 0.5))
        assert wants_seen > 0
        check_success_report(client, tls_version.name)
        check_success_report(server, tls_version.name)
        assert len(client_calls.calls) == 1
        assert len(server_calls.calls) == 1
    finally:
        client_socket.close()
        server_socket.close()


def _handshake_with_silent_server(connection_class: type) -> BaseException:
    """Run a blocking client handshake, with a 0.3 s kernel receive
    timeout, against a server that accepts and never responds, and return
    the exception do_handshake raised."""
    listener = loopback_listener()
    client_socket = bound_blocking(
        socket.create_connection(listener.getsockname(), timeout=IO_TIMEOUT),
        timeout=0.3,
    )
    silent_socket, _ = listener.accept()
    listener.close()
    try:
        connection = connection_class(make_client_context(), client_socket)
        connection.set_connect_state()

        def handshake() -> BaseException:
            with pytest.raises(SSL.Error) as raised:
                connection.do_handshake()
            return raised.value

        # A thread, so a handshake that ignores the timeout cannot hang
        # the test: closing the sockets below wakes it up.
        return start_peer(handshake).finish(timeout=3.0)
    finally:
        silent_socket.close()
        client_socket.close()


def test_blocking_client_receive_timeout():
    plain_error = _handshake_with_silent_server(SSL.Connection)
    assert isinstance(plain_error, SSL.WantReadError)
    error = _handshake_with_silent_server(icsssl.Connection)
    assert isinstance(error, SSL.WantReadError)


def test_accept_returns_icsssl_connection(server_context):
    class TaggedConnection(icsssl.Connection):
        pass

    listener = loopback_listener()
    port = listener.getsockname()[1]
    listening = TaggedConnection(server_context(), listener)

    def connect() -> str:
        sock = connect_loopback(port)
        try:
            client = icsssl.Connection(make_client_context(), sock)
            client.set_connect_state()
            client.do_handshake()
            return client.SslHandshakeRespMsg
        finally:
            sock.close()

    peer = start_peer(connect)
    try:
        accepted, address = listening.accept()
        try:
            assert type(accepted) is TaggedConnection
            assert address[0] == LOOPBACK
            _check_pending(accepted)
            bound_blocking(accepted)  # reaches the accepted socket
            recorder, = _attach_recorders(accepted)
            accepted.do_handshake()
            client_message = peer.finish()
            check_success_report(accepted, accepted.get_protocol_version_name())
            assert client_message == accepted.SslHandshakeRespMsg
            assert len(recorder.calls) == 1
        finally:
            accepted.close()
    finally:
        listener.close()


def test_accept_on_memory_connection():
    connection = icsssl.Connection(make_client_context(), None)
    with pytest.raises(TypeError, match="memory-BIO"):
        connection.accept()
