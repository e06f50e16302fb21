"""Helpers shared by the icsssl tests.

Error codes are decoded with OpenSSL's own ``ERR_GET_LIB`` and
``ERR_GET_REASON`` macros (compiled into ``icsssl.lib``), never with the
Python decoders under test.  Every network helper binds to 127.0.0.1 and
is bounded by :data:`IO_TIMEOUT`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import threading
import time
from typing import Any, Callable, Iterator, Optional

from OpenSSL import SSL

import icsssl

#: Maximum time in seconds for one network step of a test (a handshake, a
#: thread join, a subprocess run).
IO_TIMEOUT = 10.0

#: Maximum rounds of a memory-BIO handshake.  TLS 1.2 needs 4 flights and
#: TLS 1.3 needs 3, so reaching this bound means the handshake is stuck.
MAX_HANDSHAKE_ROUNDS = 50

#: Maximum ``bio_read`` calls when draining one memory BIO.
MAX_BIO_READS = 1000

LOOPBACK = "127.0.0.1"

ERR_LIB_SSL = 20

# openssl/ssl.h: SSL reasons 1000-1255 are alerts received from the
# peer, reason = SSL_AD_REASON_OFFSET + alert number.
SSL_AD_REASON_OFFSET = 1000

# Reasons of ERR_LIB_SSL from openssl/sslerr.h of OpenSSL 3.0.19.  The
# handshakes in these tests get the same numbers from OpenSSL 4.0.3.
SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM = 118
SSL_R_CERTIFICATE_VERIFY_FAILED = 134
SSL_R_HTTPS_PROXY_REQUEST = 155
SSL_R_HTTP_REQUEST = 156
SSL_R_NO_SHARED_CIPHER = 193
SSL_R_UNKNOWN_PROTOCOL = 252
SSL_R_UNSUPPORTED_PROTOCOL = 258
SSL_R_WRONG_VERSION_NUMBER = 267
SSL_R_UNEXPECTED_EOF_WHILE_READING = 294

# TLS alert numbers (RFC 8446, section 6).
ALERT_HANDSHAKE_FAILURE = 40
ALERT_UNKNOWN_CA = 48

#: Version names returned by ``get_protocol_version_name()``.
VERSION_NAMES = {
    SSL.TLS1_2_VERSION: "TLSv1.2",
    SSL.TLS1_3_VERSION: "TLSv1.3",
}

SUCCESS_PREFIX = "SSL Connected OK"


def library_of(code: int) -> int:
    """Return the library of *code* by OpenSSL's ``ERR_GET_LIB`` macro."""
    return int(icsssl.lib.ERR_GET_LIB(code))


def reason_of(code: int) -> int:
    """Return the reason of *code* by OpenSSL's ``ERR_GET_REASON`` macro."""
    return int(icsssl.lib.ERR_GET_REASON(code))


def pack_code(library: int, reason: int) -> int:
    """Pack a non-system error code in the OpenSSL 3 layout."""
    return (library << 23) | reason


def expected_success_message(
    version: str, cipher: str, key_exchange: str, encryption: str, mac: str
) -> str:
    """Build ICS's success line from its five fields."""
    return (
        f"SSL Connected OK with {version}, cipher {cipher}, key exchange "
        f"{key_exchange}, encryption {encryption}, message authentication "
        f"{mac}"
    )


def description_fields(line: str) -> dict[str, str]:
    """Split an ``SSL_CIPHER_description`` line into name, version and its
    ``Key=value`` words, independently of ``icsssl.parse_description``."""
    words = line.split()
    fields = {"name": words[0], "version": words[1]}
    for word in words[2:]:
        key, value = word.split("=", 1)
        fields[key] = value
    return fields


def error_string_from_exception(
    code: int, error: SSL.Error, index: int = 0
) -> str:
    """Build ``ERR_error_string_n``'s ``error:%08X:lib::reason`` line for
    *code* from the strings pyOpenSSL put into *error* for its *index*-th
    queued code (pyOpenSSL reads them from its own OpenSSL instance)."""
    library, _function, reason = error.args[0][index]
    return f"error:{code:08X}:{library}::{reason}"


# -- report checks -----------------------------------------------------------


def _expected_key_exchange(connection: Any, kx_field: str) -> str:
    # TLS 1.3 suites have Kx=any, so ICS shows the negotiated group.
    if kx_field == "any" and connection.SslGroupName:
        return connection.SslGroupName
    return kx_field


def check_success_report(connection: Any, version_name: str) -> None:
    """Assert every field of a successful handshake's report."""
    assert connection.handshake_done is True
    assert connection.ErrCode == 0
    assert connection.handshake_err_code == 0
    assert connection.SslHandshakeErr == 0
    assert connection.SslHandshakeErrors == ()
    assert connection.handshake_exception is None
    assert connection.handshake_pid == os.getpid()
    assert connection.handshake_report is not None
    assert connection.handshake_report.succeeded is True

    version = connection.get_protocol_version_name()
    cipher = connection.get_cipher_name()
    assert version == version_name
    assert connection.SslVersion == version
    assert connection.SslCipher == cipher

    description = connection.SslCipherDesc
    assert description.startswith(cipher + " ")
    fields = description_fields(description)
    assert fields["name"] == cipher
    assert fields["version"] == version
    described = icsssl.cipher_description(cipher)
    assert description == described.description
    assert connection.SslKeyExchange == fields["Kx"]
    assert connection.SslKeyAuth == fields["Au"]
    assert connection.SslEncryption == fields["Enc"]
    assert connection.SslMessAuth == fields["Mac"]
    assert connection.SslKeyExchange == described.key_exchange
    assert connection.SslKeyAuth == described.authentication
    assert connection.SslEncryption == described.encryption
    assert connection.SslMessAuth == described.mac
    assert connection.SslSecretBits == connection.get_cipher_bits()
    assert connection.SslTotalBits == described.total_bits

    expected = expected_success_message(
        version,
        cipher,
        _expected_key_exchange(connection, fields["Kx"]),
        fields["Enc"],
        fields["Mac"],
    )
    assert connection.SslHandshakeRespMsg == expected
    assert connection.handshake_report.ics_message == expected
    assert connection.handshake_report.kind == "ICSSSL_OK"


def check_ics_message(
    connection: Any, ics_text: str, kind: Optional[str] = None
) -> None:
    """Assert that a failed handshake's ICS message is *ics_text*.

    ``SslHandshakeRespMsg`` is ICS's text, optionally followed by ": " and
    the cause icsssl found; ``handshake_report.ics_message`` is ICS's text
    alone.  *kind*, if given, is the expected ``handshake_report.kind``
    (the names listed in docs/messages.md).
    """
    report = connection.handshake_report
    assert report is not None
    assert report.succeeded is False
    assert report.ics_message == ics_text
    message = connection.SslHandshakeRespMsg
    assert message == ics_text or message.startswith(ics_text + ": ")
    assert not message.startswith(SUCCESS_PREFIX)
    if kind is not None:
        assert report.kind == kind


def check_failure_report(
    connection: Any,
    error: BaseException,
    reason: int,
    kind: Optional[str] = None,
) -> None:
    """Assert the report of a handshake that failed with an OpenSSL code
    of ERR_LIB_SSL and *reason*, for which ICS has no text of its own, so
    the ICS message is OpenSSL's ``error:%08X:...`` string."""
    code = connection.SslHandshakeErr
    assert library_of(code) == ERR_LIB_SSL
    assert reason_of(code) == reason
    assert connection.SslHandshakeErrors[0] == code
    assert len(connection.SslHandshakeErrors) == len(error.args[0])
    assert connection.ErrCode == reason
    assert connection.handshake_done is True
    assert_same_exception(connection.handshake_exception, error)
    assert connection.SslHandshakeRespMsg.startswith(f"error:{code:08X}:")
    check_ics_message(connection, error_string_from_exception(code, error), kind)


# -- contexts -----------------------------------------------------------------


def make_server_context(
    cert_path: str,
    key_path: str,
    version: Optional[int] = None,
    ciphers: Optional[bytes] = None,
) -> SSL.Context:
    """Return a server context with a certificate, optionally pinned to one
    protocol version and cipher list."""
    context = SSL.Context(SSL.TLS_METHOD)
    context.use_certificate_file(cert_path)
    context.use_privatekey_file(key_path)
    _restrict(context, version, ciphers)
    return context


def make_client_context(
    version: Optional[int] = None,
    ciphers: Optional[bytes] = None,
    verify: bool = False,
    ca_path: Optional[str] = None,
) -> SSL.Context:
    """Return a client context; with *verify* it checks the server's
    certificate against *ca_path* (or against nothing)."""
    context = SSL.Context(SSL.TLS_METHOD)
    _restrict(context, version, ciphers)
    if ca_path is not None:
        context.load_verify_locations(ca_path)
    if verify:
        context.set_verify(SSL.VERIFY_PEER, lambda *args: bool(args[-1]))
    return context


def _restrict(
    context: SSL.Context, version: Optional[int], ciphers: Optional[bytes]
) -> None:
    if version is not None:
        context.set_min_proto_version(version)
        context.set_max_proto_version(version)
    if ciphers is not None:
        context.set_cipher_list(ciphers)


def force_group_p256(context: SSL.Context) -> None:
    """Limit key exchange to the P-256 group (TLS name ``secp256r1``)."""
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        # pyOpenSSL 24.3 and later take a cryptography curve.
        context.set_tmp_ecdh(ec.SECP256R1())
    except (TypeError, AttributeError):
        import warnings

        from OpenSSL import crypto

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context.set_tmp_ecdh(crypto.get_elliptic_curve("prime256v1"))


# -- memory-BIO handshakes ----------------------------------------------------


@dataclasses.dataclass
class HandshakeOutcome:
    """The exception each side's ``do_handshake`` ended with, if any."""

    client_error: Optional[BaseException] = None
    server_error: Optional[BaseException] = None


def memory_pair(
    client_context: SSL.Context,
    server_context: SSL.Context,
    connection_class: type = icsssl.Connection,
) -> tuple[Any, Any]:
    """Return a (client, server) pair of memory-BIO connections."""
    client = connection_class(client_context, None)
    client.set_connect_state()
    server = connection_class(server_context, None)
    server.set_accept_state()
    return client, server


def transfer(source: Any, destination: Any) -> int:
    """Move every byte queued in *source*'s outgoing memory BIO into
    *destination* and return the number of bytes moved."""
    moved = 0
    for _ in range(MAX_BIO_READS):
        try:
            data = source.bio_read(65536)
        except SSL.WantReadError:
            return moved
        if not data:
            return moved
        destination.bio_write(data)
        moved += len(data)
    raise AssertionError(f"memory BIO still had data after {MAX_BIO_READS} reads")


def handshake_in_memory(
    client: Any, server: Any, max_rounds: int = MAX_HANDSHAKE_ROUNDS
) -> HandshakeOutcome:
    """Run ``do_handshake`` on both sides until each succeeds or raises.

    A side that fails still sends what it queued (its alert), so the
    peer receives the alert as it would over a socket.
    """
    outcome = HandshakeOutcome()
    pending = {"client", "server"}
    sides = (("client", client, server), ("server", server, client))
    for _ in range(max_rounds):
        for side, connection, peer in sides:
            if side in pending:
                try:
                    connection.do_handshake()
                    pending.discard(side)
                except SSL.WantReadError:
                    pass
                except Exception as error:
                    setattr(outcome, f"{side}_error", error)
                    pending.discard(side)
            transfer(connection, peer)
        if not pending:
            return outcome
    raise AssertionError(
        f"handshake unfinished after {max_rounds} rounds; still waiting: "
        f"{sorted(pending)}"
    )


def capture_client_hello(context: Optional[SSL.Context] = None) -> bytes:
    """Return the bytes of a real ClientHello from a memory-BIO client."""
    client = SSL.Connection(context or SSL.Context(SSL.TLS_METHOD), None)
    client.set_connect_state()
    try:
        client.do_handshake()
    except SSL.WantReadError:
        pass
    return client.bio_read(65536)


# -- sockets and threads ------------------------------------------------------


def bound_blocking(sock: socket.socket, timeout: float = IO_TIMEOUT) -> socket.socket:
    """Put *sock* in blocking mode with kernel send and receive timeouts.

    pyOpenSSL needs a blocking socket for blocking calls (a Python-level
    timeout makes the socket non-blocking underneath), and the kernel
    timeouts (Linux ``struct timeval``) turn a hang into an error.
    """
    sock.settimeout(None)
    seconds = int(timeout)
    microseconds = int((timeout - seconds) * 1_000_000)
    value = struct.pack("ll", seconds, microseconds)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)
    return sock


def loopback_listener() -> socket.socket:
    """Return a TCP socket listening on an ephemeral 127.0.0.1 port."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((LOOPBACK, 0))
    listener.listen(4)
    listener.settimeout(IO_TIMEOUT)
    return listener


def connect_loopback(port: int) -> socket.socket:
    """Return a blocking, kernel-bounded TCP connection to 127.0.0.1."""
    sock = socket.create_connection((LOOPBACK, port), timeout=IO_TIMEOUT)
    return bound_blocking(sock)


def accept_bounded(listener: socket.socket) -> socket.socket:
    """Accept one client (within :data:`IO_TIMEOUT`) as a bounded blocking
    socket."""
    sock, _address = listener.accept()
    return bound_blocking(sock)


def recv_until_closed(sock: socket.socket, limit: int = 1 << 20) -> bytes:
    """Read from a plain socket until the peer closes or *limit* bytes."""
    received = bytearray()
    while len(received) < limit:
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    return bytes(received)


class PeerThread(threading.Thread):
    """A daemon thread that keeps its target's return value or exception."""

    def __init__(self, target: Callable[..., Any], *args: Any) -> None:
        super().__init__(daemon=True, name=getattr(target, "__name__", "peer"))
        self._function = target
        self._arguments = args
        self.result: Any = None
        self.error: Optional[BaseException] = None

    def run(self) -> None:
        try:
            self.result = self._function(*self._arguments)
        except BaseException as error:  # handed to the test by finish()
            self.error = error

    def finish(self, timeout: float = IO_TIMEOUT) -> Any:
        """Join within *timeout*, then return the result or re-raise."""
        self.join(timeout)
        if self.is_alive():
            raise AssertionError(
                f"peer thread {self.name!r} still running after {timeout} s"
            )
        if self.error is not None:
            raise self.error
        return self.result


def start_peer(target: Callable[..., Any], *args: Any) -> PeerThread:
    """Start *target* in a :class:`PeerThread` and return the thread."""
    thread = PeerThread(target, *args)
    thread.start()
    return thread


# -- openssl command-line peers -----------------------------------------------

OPENSSL = shutil.which("openssl")


def openssl_binary_version() -> str:
    """Return the library version line of the ``openssl`` command."""
    assert OPENSSL is not None, "the openssl command is not on PATH"
    output = subprocess.run(
        [OPENSSL, "version"],
        capture_output=True,
        text=True,
        timeout=IO_TIMEOUT,
        check=True,
    ).stdout
    # "OpenSSL 3.0.19 27 Jan 2026 (Library: OpenSSL 3.0.19 27 Jan 2026)"
    match = re.search(r"\(Library: (.*)\)", output)
    return (match.group(1) if match else output).strip()


def stop_process(process: subprocess.Popen) -> None:
    """Terminate *process*, killing it if it has not exited in 5 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def free_loopback_port() -> int:
    """Return a TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


@dataclasses.dataclass
class OpenSSLServer:
    """A running ``openssl s_server`` and the file its output goes to."""

    port: int
    process: subprocess.Popen
    log_path: str

    def log(self) -> str:
        with open(self.log_path, "rb") as handle:
            return handle.read().decode("utf-8", "replace")


def _wait_until_listening(
    process: subprocess.Popen, port: int, deadline: float
) -> bool:
    """Connect to *port* until it accepts (True) or *process* exits
    (False); raise at *deadline*."""
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with socket.create_connection((LOOPBACK, port), timeout=1.0):
                return True
        except OSError:
            pass
        # Pause between attempts, ending at once if s_server exits.
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=0.05)
    raise AssertionError(
        f"openssl s_server did not accept connections on port {port} "
        f"within {IO_TIMEOUT} s"
    )


@contextlib.contextmanager
def openssl_s_server(
    cert_path: str, key_path: str, log_dir: str, *options: str
) -> Iterator[OpenSSLServer]:
    """Run ``openssl s_server`` on a free 127.0.0.1 port until the block
    ends, then terminate it.

    Readiness is a successful TCP connection (s_server serves clients one
    after another, so the probe only costs it one failed handshake).  If
    another process took the port first, s_server exits and the next of 3
    attempts uses another port.
    """
    assert OPENSSL is not None, "the openssl command is not on PATH"
    deadline = time.monotonic() + IO_TIMEOUT
    for attempt in range(3):
        port = free_loopback_port()
        log_path = os.path.join(log_dir, f"s_server-{port}-{attempt}.log")
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [
                    OPENSSL,
                    "s_server",
                    "-accept",
                    f"{LOOPBACK}:{port}",
                    "-cert",
                    cert_path,
                    "-key",
                    key_path,
                    *options,
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            listening = _wait_until_listening(process, port, deadline)
            if listening:
                yield OpenSSLServer(port, process, log_path)
                return
        finally:
            stop_process(process)
    raise AssertionError("openssl s_server exited before listening, 3 times")


@contextlib.contextmanager
def openssl_s_client(
    port: int, log_dir: str, *options: str
) -> Iterator[subprocess.Popen]:
    """Run ``openssl s_client`` against 127.0.0.1:*port* until the block
    ends, then terminate it.  Its output goes to ``s_client.log`` in
    *log_dir*; read it with :func:`s_client_output`."""
    assert OPENSSL is not None, "the openssl command is not on PATH"
    log_path = os.path.join(log_dir, "s_client.log")
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [OPENSSL, "s_client", "-connect", f"{LOOPBACK}:{port}", *options],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    process.log_path = log_path  # type: ignore[attr-defined]
    try:
        yield process
    finally:
        stop_process(process)


def s_client_output(process: subprocess.Popen) -> str:
    """Wait for s_client to exit (within :data:`IO_TIMEOUT`) and return
    its output."""
    process.wait(timeout=IO_TIMEOUT)
    with open(process.log_path, "rb") as handle:  # type: ignore[attr-defined]
        return handle.read().decode("utf-8", "replace")


def record_kind(kind: str, message: str) -> None:
    """Append the running test, *kind* and *message* to the file named by
    ``ICSSSL_RECORD_KINDS``, if set.  tools/gen_messages_doc.py reads that
    file to show a real message for each kind."""
    path = os.environ.get("ICSSSL_RECORD_KINDS")
    if not path:
        return
    test = os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0]
    with open(path, "a", encoding="utf-8") as handle:
        entry = {"test": test, "kind": kind, "message": message}
        handle.write(json.dumps(entry) + "\n")


def assert_same_exception(kept: Any, raised: BaseException) -> None:
    """Assert that *kept*, a connection's ``handshake_exception``, is a
    copy of *raised* without its traceback (the copy keeps the connection
    out of a reference cycle through the traceback's frames)."""
    assert type(kept) is type(raised)
    assert kept.args == raised.args
    assert kept.__traceback__ is None
