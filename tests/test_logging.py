"""Debug logging of captured OpenSSL errors on the ``icsssl`` logger."""

from __future__ import annotations

import logging
import socket

import pytest

import icsssl
import support
from icsssl import SSL


def test_library_configures_no_handler() -> None:
    logger = logging.getLogger("icsssl")
    assert logger.handlers == []


def test_memory_failure_logs_every_code(self_signed, caplog) -> None:
    server_context = support.make_server_context(
        self_signed.cert_path, self_signed.key_path
    )
    client_context = support.make_client_context(verify=True)
    client, server = support.memory_pair(client_context, server_context)
    with caplog.at_level(logging.DEBUG, logger="icsssl"):
        support.handshake_in_memory(client, server)
    assert client.ErrCode != 0
    records = [r for r in caplog.records if r.name == "icsssl"]
    logged = "\n".join(record.getMessage() for record in records)
    for code in client.SslHandshakeErrors + server.SslHandshakeErrors:
        assert f"error:{code:08X}:" in logged
    assert all(record.levelno == logging.DEBUG for record in records)
    assert "memory BIO peer" in logged


def test_socket_failure_names_peer_address(self_signed, caplog) -> None:
    server_context = support.make_server_context(
        self_signed.cert_path, self_signed.key_path
    )
    with socket.create_server((support.LOOPBACK, 0)) as listener:
        listener.settimeout(support.IO_TIMEOUT)
        with socket.create_connection(
            listener.getsockname(), support.IO_TIMEOUT
        ) as client:
            accepted, _ = listener.accept()
            with accepted:
                server = icsssl.Connection(server_context, accepted)
                server.set_accept_state()
                client.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
                with caplog.at_level(logging.DEBUG, logger="icsssl"):
                    with pytest.raises(SSL.Error):
                        server.do_handshake()
            client_port = client.getsockname()[1]
    code = server.SslHandshakeErr
    assert code != 0
    messages = [r.getMessage() for r in caplog.records if r.name == "icsssl"]
    assert any(f"error:{code:08X}:" in message for message in messages)
    assert any(str(client_port) in message for message in messages)


def test_silent_without_debug_level(self_signed, caplog) -> None:
    server_context = support.make_server_context(
        self_signed.cert_path, self_signed.key_path
    )
    client, server = support.memory_pair(
        support.make_client_context(verify=True), server_context
    )
    with caplog.at_level(logging.INFO, logger="icsssl"):
        support.handshake_in_memory(client, server)
    assert client.ErrCode != 0
    assert [r for r in caplog.records if r.name == "icsssl"] == []
