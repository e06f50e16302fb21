"""Peers and certificates for the handshake-diagnosis tests.

Everything here runs on loopback (127.0.0.1) and is bounded: sockets get
kernel timeouts from ``support.bound_blocking``, threads are joined within
``support.IO_TIMEOUT`` and subprocesses are always terminated.
Certificates are made with cryptography's x509 API, except SHA-1 signed
ones: cryptography 42 and later refuse to sign with SHA-1, so the
``openssl`` command signs those.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime
import ipaddress
import os
import select
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, Callable, Self

import support
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from OpenSSL import SSL, crypto
from support import IO_TIMEOUT, LOOPBACK

import icsssl

RECORD_HEADER = struct.Struct("!BHH")
RECORD_HANDSHAKE = 22
RECORD_ALERT = 21
HANDSHAKE_SERVER_HELLO = 2
RECORD_CHANGE_CIPHER_SPEC = 20
RECORD_APPLICATION_DATA = 23
EXTENSION_RENEGOTIATION_INFO = 0xFF01
EXTENSION_KEY_SHARE = 51

#: IANA "TLS Supported Groups": the hybrid post-quantum groups, whose key
#: shares are 1100 bytes or more.
POST_QUANTUM_GROUPS = frozenset({0x11EB, 0x11EC, 0x11ED})

#: The maximum number of records read from one TLS 1.2 client flight.
MAX_FLIGHT_RECORDS = 16

#: The largest TLS record a peer may send (RFC 8446 section 5.1: 2^14
#: bytes of plaintext plus 256 of expansion).
MAX_RECORD_LENGTH = 2**14 + 256

#: The 1024-bit MODP group of RFC 2409 section 6.2 ("Oakley group 2"),
#: generator 2.
RFC2409_GROUP2_PRIME = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD1"
    "29024E088A67CC74020BBEA63B139B22514A08798E3404DD"
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245"
    "E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381"
    "FFFFFFFFFFFFFFFF",
    16,
)


def utc_now() -> datetime.datetime:
    """Return the current UTC time, cut to whole seconds as X.509 stores
    it."""
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def x509_time(moment: datetime.datetime) -> str:
    """Return *moment* as ``YYYY-MM-DD HH:MM:SS``."""
    return moment.strftime("%Y-%m-%d %H:%M:%S")


# -- certificates ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Issued:
    """A certificate, its private key and their PEM files."""

    certificate: x509.Certificate
    key: rsa.RSAPrivateKey
    cert_path: str
    key_path: str

    @property
    def subject(self) -> str:
        """The subject as RFC 4514 text, e.g. ``CN=leaf.example``."""
        return self.certificate.subject.rfc4514_string()

    @property
    def issuer(self) -> str:
        """The issuer as RFC 4514 text."""
        return self.certificate.issuer.rfc4514_string()

    @property
    def not_before(self) -> datetime.datetime:
        """The start of validity, in UTC."""
        return _utc_field(self.certificate, "not_valid_before")

    @property
    def not_after(self) -> datetime.datetime:
        """The end of validity, in UTC."""
        return _utc_field(self.certificate, "not_valid_after")

    def pem(self) -> bytes:
        """Return the certificate in PEM."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)


def _utc_field(certificate: x509.Certificate, name: str) -> datetime.datetime:
    value = getattr(certificate, f"{name}_utc", None)
    if value is None:  # cryptography before 42 has naive UTC properties
        value = getattr(certificate, name).replace(
            tzinfo=datetime.timezone.utc
        )
    return value  # type: ignore[no-any-return]


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _san(names: Sequence[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


_CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)

#: The names a leaf certificate is for, unless a test gives others.
DEFAULT_NAMES = ("localhost", LOOPBACK)


class CertificateFactory:
    """Issue certificates into one folder, each with a fresh RSA key.

    Defaults follow RFC 5280 closely enough to pass OpenSSL's
    ``X509_V_FLAG_X509_STRICT`` checks: a CA has a critical
    basicConstraints, keyUsage and a Subject Key Identifier, and every
    certificate that is not self-signed has an Authority Key Identifier.
    """

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self._count = 0

    def _stem(self, common_name: str) -> str:
        self._count += 1
        safe = "".join(c if c.isalnum() else "-" for c in common_name)
        return os.path.join(self.folder, f"{self._count:02d}-{safe}")

    def issue(
        self,
        common_name: str,
        issuer: Issued | None = None,
        *,
        ca: bool = False,
        path_length: int | None = None,
        key_bits: int = 2048,
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
        names: Sequence[str] | None = DEFAULT_NAMES,
        key_usage: bool | None = None,
        authority_key_id: bool = True,
        extended_key_usage: Sequence[x509.ObjectIdentifier] | None = None,
        basic_constraints_critical: bool = True,
    ) -> Issued:
        """Issue a certificate signed by *issuer* (self-signed if None).

        :param names: subjectAltName entries (DNS names or IP addresses);
            ``None`` leaves the extension out, so only the Common Name
            names the holder.  CA certificates never get one.
        :param key_usage: whether to add keyUsage; by default only CAs
            get it.
        """
        now = utc_now()
        key = rsa.generate_private_key(
            public_exponent=65537, key_size=key_bits
        )
        subject = _name(common_name)
        signing_key = key if issuer is None else issuer.key
        issuer_name = subject if issuer is None else issuer.certificate.subject
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - datetime.timedelta(days=1))
            .not_valid_after(not_after or now + datetime.timedelta(days=30))
            .add_extension(
                x509.BasicConstraints(
                    ca=ca, path_length=path_length if ca else None
                ),
                critical=basic_constraints_critical,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                critical=False,
            )
        )
        if issuer is not None and authority_key_id:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    issuer.key.public_key()
                ),
                critical=False,
            )
        if key_usage if key_usage is not None else ca:
            builder = builder.add_extension(_CA_KEY_USAGE, critical=True)
        if not ca and names is not None:
            builder = builder.add_extension(_san(names), critical=False)
        if extended_key_usage is not None:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage(list(extended_key_usage)), critical=False
            )
        certificate = builder.sign(signing_key, hashes.SHA256())
        return self._write(common_name, certificate, key)

    def issue_sha1(
        self, common_name: str, issuer: Issued, **options: Any
    ) -> Issued:
        """Issue a certificate like :meth:`issue` but signed with SHA-1.

        ``openssl x509 -CA`` re-signs a self-signed certificate: it keeps
        the subject, dates and extensions, sets the issuer and adds an
        Authority Key Identifier from the CA.
        """
        draft = self.issue(common_name, None, **options)
        extensions = os.path.join(self.folder, "authority-key-id.cnf")
        with open(extensions, "w", encoding="ascii") as handle:
            handle.write("[aki]\nauthorityKeyIdentifier = keyid:always\n")
        cert_path = self._stem(f"{common_name}-sha1") + ".crt"
        run_openssl(
            "x509",
            "-in",
            draft.cert_path,
            "-CA",
            issuer.cert_path,
            "-CAkey",
            issuer.key_path,
            "-CAcreateserial",
            "-sha1",
            "-preserve_dates",
            "-extfile",
            extensions,
            "-extensions",
            "aki",
            "-out",
            cert_path,
        )
        with open(cert_path, "rb") as handle:
            certificate = x509.load_pem_x509_certificate(handle.read())
        return Issued(certificate, draft.key, cert_path, draft.key_path)

    def _write(
        self,
        common_name: str,
        certificate: x509.Certificate,
        key: rsa.RSAPrivateKey,
    ) -> Issued:
        stem = self._stem(common_name)
        cert_path, key_path = stem + ".crt", stem + ".key"
        with open(cert_path, "wb") as handle:
            handle.write(certificate.public_bytes(serialization.Encoding.PEM))
        with open(key_path, "wb") as handle:
            handle.write(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
        return Issued(certificate, key, cert_path, key_path)

    def dh_parameters_1024(self) -> str:
        """Write the 1024-bit RFC 2409 group as PEM DH parameters and
        return the path.

        The DER is built here (PKCS #3 DHParameter: a SEQUENCE of prime
        and generator) because cryptography 50 deprecates finite-field
        DH.
        """
        parameters = _der_sequence(
            _der_integer(RFC2409_GROUP2_PRIME) + _der_integer(2)
        )
        encoded = base64.encodebytes(parameters).decode("ascii")
        path = os.path.join(self.folder, "dh1024.pem")
        with open(path, "w", encoding="ascii") as handle:
            handle.write("-----BEGIN DH PARAMETERS-----\n")
            handle.write(encoded)
            handle.write("-----END DH PARAMETERS-----\n")
        return path


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    encoded = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(encoded)]) + encoded


def _der_integer(value: int) -> bytes:
    # One more byte than the bits need keeps the sign bit clear.
    content = value.to_bytes(value.bit_length() // 8 + 1, "big")
    return b"\x02" + _der_length(len(content)) + content


def _der_sequence(content: bytes) -> bytes:
    return b"\x30" + _der_length(len(content)) + content


def run_openssl(*arguments: str) -> str:
    """Run the ``openssl`` command with *arguments* and return its
    output; raise if it fails or takes longer than ``IO_TIMEOUT``."""
    assert support.OPENSSL is not None, "the openssl command is not on PATH"
    completed = subprocess.run(
        [support.OPENSSL, *arguments],
        capture_output=True,
        text=True,
        timeout=IO_TIMEOUT,
        check=False,
    )
    assert completed.returncode == 0, (
        f"openssl {' '.join(arguments)} failed: {completed.stderr}"
    )
    return completed.stdout


CLIENT_AUTH = [ExtendedKeyUsageOID.CLIENT_AUTH]
SERVER_AUTH = [ExtendedKeyUsageOID.SERVER_AUTH]


# -- contexts -------------------------------------------------------------------


def load_certificate(path: str) -> crypto.X509:
    """Load a PEM certificate as pyOpenSSL's X509, which every pyOpenSSL
    version takes."""
    with open(path, "rb") as handle:
        return crypto.load_certificate(crypto.FILETYPE_PEM, handle.read())


def server_context(
    leaf: Issued,
    chain: Sequence[Issued] = (),
    *,
    ciphers: bytes | None = None,
    version: int | None = None,
    min_version: int | None = None,
    context_class: type = SSL.Context,
) -> SSL.Context:
    """Return a server context presenting *leaf* followed by *chain*.

    The cipher list is set before the certificate is loaded, so a
    ``@SECLEVEL=0`` in it lets the context load a weak certificate.
    *context_class* is pyOpenSSL's Context or ``icsssl.Context``.
    """
    context = context_class(SSL.TLS_METHOD)
    if ciphers is not None:
        context.set_cipher_list(ciphers)
    if version is not None:
        context.set_min_proto_version(version)
        context.set_max_proto_version(version)
    if min_version is not None:
        context.set_min_proto_version(min_version)
    context.use_certificate_file(leaf.cert_path)
    context.use_privatekey_file(leaf.key_path)
    for issued in chain:
        try:
            # pyOpenSSL 24.3 and later take cryptography's certificate.
            context.add_extra_chain_cert(issued.certificate)
        except TypeError:
            context.add_extra_chain_cert(load_certificate(issued.cert_path))
    return context


def accept_all(
    _connection: Any, _certificate: Any, _errno: int, _depth: int, ok: int
) -> bool:
    """A verify callback that keeps OpenSSL's own verdict."""
    return bool(ok)


def client_context(
    *,
    trusted: Sequence[Issued] = (),
    verify: bool = True,
    ciphers: bytes | None = None,
    version: int | None = None,
    certificate: Issued | None = None,
) -> SSL.Context:
    """Return a client context that trusts exactly *trusted* (nothing
    else: no default paths) and, with *verify*, checks the server."""
    context = SSL.Context(SSL.TLS_METHOD)
    if ciphers is not None:
        context.set_cipher_list(ciphers)
    if version is not None:
        context.set_min_proto_version(version)
        context.set_max_proto_version(version)
    for issued in trusted:
        context.load_verify_locations(issued.cert_path)
    if verify:
        context.set_verify(SSL.VERIFY_PEER, accept_all)
    if certificate is not None:
        context.use_certificate_file(certificate.cert_path)
        context.use_privatekey_file(certificate.key_path)
    return context


# -- raw peers --------------------------------------------------------------------


def recv_record(sock: socket.socket) -> bytes:
    """Read one whole TLS record (or what arrives before the peer closes)
    from a bounded blocking socket."""
    received = b""
    needed = RECORD_HEADER.size
    for _ in range(MAX_RECORD_LENGTH):
        if len(received) >= needed:
            break
        chunk = sock.recv(needed - len(received))
        if not chunk:
            break
        received += chunk
        if len(received) == RECORD_HEADER.size:
            _, _, length = RECORD_HEADER.unpack(received)
            needed = RECORD_HEADER.size + length
    return received


def read_client_flight(sock: socket.socket) -> bytes:
    """Read a TLS 1.2 client's second flight: records up to and including
    the one after ChangeCipherSpec (the encrypted Finished).  Reading it
    all lets the socket close with a FIN: Linux sends a RST when unread
    data is left."""
    flight = b""
    after_change_cipher_spec = False
    for _ in range(MAX_FLIGHT_RECORDS):
        record = recv_record(sock)
        flight += record
        if len(record) < RECORD_HEADER.size or after_change_cipher_spec:
            break
        after_change_cipher_spec = record[0] == RECORD_CHANGE_CIPHER_SPEC
    return flight


def wait_for_close(sock: socket.socket) -> bytes:
    """Read until the peer closes or resets (at most 1 MiB) and return
    what came; raise if the socket's kernel timeout expires first."""
    try:
        return support.recv_until_closed(sock)
    except ConnectionResetError:
        return b""
    except BlockingIOError as error:
        raise AssertionError(
            f"the peer did not close within {IO_TIMEOUT} s"
        ) from error


def reset(sock: socket.socket) -> None:
    """Close *sock* with a TCP RST instead of a FIN (``SO_LINGER`` 0)."""
    sock.setsockopt(
        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
    )
    sock.close()


class RawServer:
    """A one-connection TCP server on 127.0.0.1 whose thread runs
    ``handler(sock)`` and keeps its return value.

    Use as a context manager; leaving the block closes the listener and
    joins the thread, re-raising its exception unless the block raised.
    """

    def __init__(self, handler: Callable[[socket.socket], Any]) -> None:
        self._handler = handler
        self.listener = support.loopback_listener()
        self.port = int(self.listener.getsockname()[1])
        self.thread = support.start_peer(self._serve)

    def _serve(self) -> Any:
        sock = support.accept_bounded(self.listener)
        try:
            return self._handler(sock)
        finally:
            sock.close()

    def result(self) -> Any:
        """Wait for the handler and return what it returned."""
        return self.thread.finish()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        # shutdown() wakes an accept() still waiting in the thread.
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        if kind is None:
            self.thread.finish()
        else:
            self.thread.join(IO_TIMEOUT)


def greeting_handler(banner: bytes) -> Callable[[socket.socket], bytes]:
    """Return a handler that sends *banner* as soon as a client connects,
    as SMTP, FTP, POP3, IMAP and SSH servers do, then reads until the
    client closes and returns what it read."""

    def greet(sock: socket.socket) -> bytes:
        sock.sendall(banner)
        return wait_for_close(sock)

    return greet


def reply_handler(
    reply: bytes, gate: threading.Event | None = None
) -> Callable[[socket.socket], bytes]:
    """Return a handler that sends *reply* to the ClientHello.

    The handler reads the ClientHello's first record, waits for *gate* if
    given, sends *reply*, closes its sending side and waits for the
    client to close.  It returns the record.
    """

    def respond(sock: socket.socket) -> bytes:
        hello = recv_record(sock)
        if gate is not None:
            assert gate.wait(IO_TIMEOUT), "the client never waited"
        sock.sendall(reply)
        sock.shutdown(socket.SHUT_WR)
        wait_for_close(sock)
        return hello

    return respond


def flight_handler(
    flight: bytes, gate: threading.Event, ending: str
) -> Callable[[socket.socket], bytes]:
    """Return a handler that replays a server's first *flight*.

    The handler reads the ClientHello's first record, waits for *gate*,
    sends *flight* and reads the client's next TLS 1.2 flight.  Then it
    ends the connection: ``close`` sends a FIN, ``reset`` a RST.  It
    returns the client's flight.
    """

    def replay(sock: socket.socket) -> bytes:
        recv_record(sock)
        assert gate.wait(IO_TIMEOUT), "the client never waited"
        sock.sendall(flight)
        client_flight = read_client_flight(sock)
        if ending == "reset":
            reset(sock)
        return client_flight

    return replay


def read_hello_then_close(sock: socket.socket) -> bytes:
    """Read the ClientHello's first record, then close with a FIN."""
    return recv_record(sock)


def silent_handler(sock: socket.socket) -> bytes:
    """Read the ClientHello's first record, send nothing and wait for the
    client to close; return the record."""
    hello = recv_record(sock)
    wait_for_close(sock)
    return hello


def corrupting_handler(
    context: SSL.Context,
) -> Callable[[socket.socket], BaseException | None]:
    """Return a handler that runs a real TLS 1.3 server over memory BIOs.

    The handler flips one bit in the first encrypted record the server
    sends, as a faulty middlebox would.  It returns the server's handshake
    exception.
    """

    def serve(sock: socket.socket) -> BaseException | None:
        server = SSL.Connection(context, None)
        server.set_accept_state()
        corrupted = False
        for _ in range(support.MAX_HANDSHAKE_ROUNDS):
            data = sock.recv(65536)
            if not data:
                return None
            server.bio_write(data)
            try:
                server.do_handshake()
            except SSL.WantReadError:
                pass
            except SSL.Error as error:
                return error
            outgoing = b""
            for _ in range(support.MAX_BIO_READS):
                try:
                    chunk = server.bio_read(65536)
                except SSL.WantReadError:
                    break
                outgoing += chunk
            if not corrupted:
                outgoing, corrupted = _flip_first_encrypted(outgoing)
            sock.sendall(outgoing)
        raise AssertionError("the client kept the handshake going")

    return serve


def _flip_first_encrypted(data: bytes) -> tuple[bytes, bool]:
    """Flip the last bit of the first application-data record in *data*
    (in TLS 1.3 the first encrypted handshake record)."""
    offset = 0
    for record in split_records(data):
        if record[0] == RECORD_APPLICATION_DATA:
            end = offset + len(record) - 1
            flipped = data[:end] + bytes([data[end] ^ 1]) + data[end + 1 :]
            return flipped, True
        offset += len(record)
    return data, False


def wait_readable(sock: socket.socket, timeout: float = IO_TIMEOUT) -> None:
    """Wait until *sock* has data (or EOF) to read; raise after
    *timeout*."""
    readable, _, _ = select.select([sock], [], [], timeout)
    assert readable, f"no data from the peer within {timeout} s"


# -- driving icsssl connections ---------------------------------------------------


@dataclasses.dataclass
class Outcome:
    """An icsssl connection after its handshake, what the handshake
    raised, and what the step after a successful handshake raised."""

    connection: icsssl.Connection
    error: BaseException | None
    later_error: BaseException | None = None


def handshake_blocking(
    connection: icsssl.Connection,
) -> BaseException | None:
    """Run ``do_handshake`` once on a blocking socket; return what it
    raised."""
    try:
        connection.do_handshake()
    except Exception as error:  # noqa: BLE001 - the test inspects it
        return error
    return None


def handshake_nonblocking(
    connection: icsssl.Connection,
    sock: socket.socket,
    on_first_wait: Callable[[], None] | None = None,
    timeout: float = IO_TIMEOUT,
) -> BaseException | None:
    """Drive ``do_handshake`` on a non-blocking socket until it ends,
    waiting for readiness with ``select``; raise after *timeout*.

    *on_first_wait* is called once, when the first call has sent the
    ClientHello and wants to read.  A peer that it starts replies while
    the client waits, never while OpenSSL is inside ``do_handshake``.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        remaining = max(0.0, deadline - time.monotonic())
        try:
            connection.do_handshake()
            return None
        except SSL.WantReadError:
            if on_first_wait is not None:
                on_first_wait()
                on_first_wait = None
            select.select([sock], [], [], remaining)
        except SSL.WantWriteError:
            select.select([], [sock], [], remaining)
        except Exception as error:  # noqa: BLE001 - the test inspects it
            return error
    raise AssertionError(f"handshake still pending after {timeout} s")


def _flush_bio(connection: icsssl.Connection, sock: socket.socket) -> None:
    for _ in range(support.MAX_BIO_READS):
        try:
            data = connection.bio_read(65536)
        except SSL.WantReadError:
            return
        if not data:
            return
        try:
            sock.sendall(data)
        except OSError:
            return  # the peer is gone, which the next read reports
    raise AssertionError("memory BIO still had data after many reads")


def handshake_memory_bio(
    connection: icsssl.Connection,
    sock: socket.socket,
    timeout: float = IO_TIMEOUT,
) -> BaseException | None:
    """Run the handshake of a memory-BIO connection, carrying its bytes
    over *sock* (a bounded blocking socket) until it ends; raise after
    *timeout*.  A peer's EOF becomes ``bio_shutdown``, as an application
    that pumps bytes itself would do."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            connection.do_handshake()
            _flush_bio(connection, sock)
            return None
        except SSL.WantReadError:
            _flush_bio(connection, sock)
        except Exception as error:  # noqa: BLE001 - the test inspects it
            _flush_bio(connection, sock)
            return error
        readable, _, _ = select.select(
            [sock], [], [], max(0.0, deadline - time.monotonic())
        )
        if not readable:
            continue
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if data:
            connection.bio_write(data)
        else:
            connection.bio_shutdown()
    raise AssertionError(
        f"memory-BIO handshake still pending after {timeout} s"
    )


def connect_client(
    context: SSL.Context,
    port: int,
    *,
    mode: str = "blocking",
    server_name: bytes | None = None,
    alpn: list[bytes] | None = None,
    verify_hostname: str | None = None,
    before_handshake: Callable[[socket.socket], None] | None = None,
    on_first_wait: Callable[[], None] | None = None,
    prepare: Callable[[icsssl.Connection], None] | None = None,
    after_handshake: Callable[[icsssl.Connection], Any] | None = None,
) -> Outcome:
    """Connect an icsssl client to 127.0.0.1:*port* and run its handshake.

    :param mode: ``blocking`` (``do_handshake`` on a blocking socket),
        ``nonblocking`` (a non-blocking socket and ``select``) or
        ``memory`` (a memory-BIO connection whose bytes the test carries
        over the socket).
    :param before_handshake: called with the socket once it is
        connected, before the first handshake step.
    :param on_first_wait: in ``nonblocking`` mode, called once when the
        client first waits for the server (see
        :func:`handshake_nonblocking`).
    :param prepare: called with the connection before the handshake.
    :param after_handshake: called with the connection after a
        successful handshake, while the socket is still open; what it
        raises is kept in :attr:`Outcome.later_error`.
    """
    sock = support.connect_loopback(port)
    try:
        if before_handshake is not None:
            before_handshake(sock)
        connection = icsssl.Connection(
            context, None if mode == "memory" else sock
        )
        connection.set_connect_state()
        if server_name is not None:
            connection.set_tlsext_host_name(server_name)
        if alpn is not None:
            connection.set_alpn_protos(alpn)
        if verify_hostname is not None:
            connection.set_verify_hostname(verify_hostname)
        if prepare is not None:
            prepare(connection)
        if mode == "blocking":
            error = handshake_blocking(connection)
        elif mode == "nonblocking":
            sock.setblocking(False)
            error = handshake_nonblocking(connection, sock, on_first_wait)
        elif mode == "memory":
            error = handshake_memory_bio(connection, sock)
        else:
            raise ValueError(f"unknown mode {mode!r}")
        outcome = Outcome(connection, error)
        if error is None and after_handshake is not None:
            try:
                after_handshake(connection)
            except Exception as later:  # noqa: BLE001 - the test inspects it
                outcome.later_error = later
        return outcome
    finally:
        sock.close()


@contextlib.contextmanager
def tls_server(
    context: SSL.Context,
    *,
    mode: str = "blocking",
    before_handshake: Callable[[socket.socket], None] | None = None,
    after_handshake: Callable[[icsssl.Connection], Any] | None = None,
) -> Iterator[tuple[int, support.PeerThread]]:
    """Serve one icsssl server connection on 127.0.0.1 in a thread.

    Yields ``(port, thread)``; ``thread.finish()`` returns the server's
    :class:`Outcome`.  *before_handshake* is called with the accepted
    socket first; with *after_handshake*, a successful handshake is
    followed by that call (to send data, read, close).
    """

    def serve(sock: socket.socket) -> Outcome:
        if before_handshake is not None:
            before_handshake(sock)
        connection = icsssl.Connection(
            context, None if mode == "memory" else sock
        )
        connection.set_accept_state()
        if mode == "blocking":
            error = handshake_blocking(connection)
        elif mode == "nonblocking":
            sock.setblocking(False)
            error = handshake_nonblocking(connection, sock)
        elif mode == "memory":
            error = handshake_memory_bio(connection, sock)
        else:
            raise ValueError(f"unknown mode {mode!r}")
        outcome = Outcome(connection, error)
        if error is None and after_handshake is not None:
            try:
                after_handshake(connection)
            except Exception as later:  # noqa: BLE001 - the test inspects it
                outcome.later_error = later
        return outcome

    with RawServer(serve) as server:
        yield server.port, server.thread


# -- TLS records ------------------------------------------------------------------


def split_records(data: bytes) -> list[bytes]:
    """Split *data* into whole TLS records (header included)."""
    records = []
    offset = 0
    for _ in range(len(data)):
        if offset + RECORD_HEADER.size > len(data):
            break
        _, _, length = RECORD_HEADER.unpack_from(data, offset)
        end = offset + RECORD_HEADER.size + length
        records.append(data[offset:end])
        offset = end
    return records


def server_first_flight(
    client_context: SSL.Context, server_context: SSL.Context
) -> bytes:
    """Return the first flight a memory-BIO server sends in reply to a
    ClientHello of *client_context*."""
    client = SSL.Connection(client_context, None)
    client.set_connect_state()
    server = SSL.Connection(server_context, None)
    server.set_accept_state()
    with contextlib.suppress(SSL.WantReadError):
        client.do_handshake()
    support.transfer(client, server)
    with contextlib.suppress(SSL.WantReadError):
        server.do_handshake()
    flight = b""
    for _ in range(support.MAX_BIO_READS):
        try:
            data = server.bio_read(65536)
        except SSL.WantReadError:
            break
        if not data:
            break
        flight += data
    return flight


def without_extension(server_hello_record: bytes, extension: int) -> bytes:
    """Return a ServerHello record with *extension* removed and every
    length fixed (RFC 5246 section 7.4.1.3 layout)."""
    body = server_hello_record[RECORD_HEADER.size :]
    assert body[0] == HANDSHAKE_SERVER_HELLO, "not a ServerHello record"
    offset = 4 + 2 + 32  # handshake header, version, random
    session_id_length = body[offset]
    offset += 1 + session_id_length + 2 + 1  # session id, cipher, compression
    prefix = body[4:offset]

    (extensions_length,) = struct.unpack_from("!H", body, offset)
    extensions = body[offset + 2 : offset + 2 + extensions_length]
    remaining = b""
    position = 0
    found = False
    for _ in range(len(extensions)):
        if position + 4 > len(extensions):
            break
        kind, length = struct.unpack_from("!HH", extensions, position)
        entry = extensions[position : position + 4 + length]
        position += 4 + length
        if kind == extension:
            found = True
        else:
            remaining += entry
    assert found, f"extension {extension:#06x} not in the ServerHello"

    hello = prefix + struct.pack("!H", len(remaining)) + remaining
    message = (
        bytes([HANDSHAKE_SERVER_HELLO]) + len(hello).to_bytes(3, "big") + hello
    )
    content_type, version, _ = RECORD_HEADER.unpack_from(server_hello_record)
    return RECORD_HEADER.pack(content_type, version, len(message)) + message


def tls12_client_hello(
    cipher_suites: Sequence[int],
    groups: Sequence[int] = (0x001D, 0x0017),
    signature_algorithms: Sequence[int] = (),
) -> bytes:
    """Build a TLS 1.2 ClientHello record by hand (RFC 5246 section
    7.4.1.2), with supported_groups, ec_point_formats and
    extended_master_secret, and signature_algorithms only when
    *signature_algorithms* is not empty.

    The renegotiation_info signalling suite (0x00FF) is appended to the
    cipher suites, so the hello signals RFC 5746 support.
    """
    suites = list(cipher_suites) + [0x00FF]
    group_list = struct.pack(f"!{len(groups)}H", *groups)
    extensions = [
        (10, struct.pack("!H", len(group_list)) + group_list),
        (11, b"\x01\x00"),  # ec_point_formats: uncompressed
        (23, b""),  # extended_master_secret
    ]
    if signature_algorithms:
        schemes = struct.pack(
            f"!{len(signature_algorithms)}H", *signature_algorithms
        )
        extensions.append((13, struct.pack("!H", len(schemes)) + schemes))
    encoded = b"".join(
        struct.pack("!HH", kind, len(data)) + data for kind, data in extensions
    )
    body = (
        b"\x03\x03"
        + os.urandom(32)
        + b"\x00"  # empty session id
        + struct.pack(f"!H{len(suites)}H", 2 * len(suites), *suites)
        + b"\x01\x00"  # compression: null only
        + struct.pack("!H", len(encoded))
        + encoded
    )
    message = b"\x01" + len(body).to_bytes(3, "big") + body
    return RECORD_HEADER.pack(RECORD_HANDSHAKE, 0x0301, len(message)) + message


def client_hello_key_shares(record: bytes) -> list[int]:
    """Return the groups of the key_share extension of a ClientHello
    record (RFC 8446 section 4.2.8), or [] if it has none."""
    body = record[RECORD_HEADER.size + 4 :]
    offset = 2 + 32  # legacy_version, random
    offset += 1 + body[offset]  # legacy_session_id
    (length,) = struct.unpack_from("!H", body, offset)
    offset += 2 + length  # cipher_suites
    offset += 1 + body[offset]  # legacy_compression_methods
    (extensions_length,) = struct.unpack_from("!H", body, offset)
    offset += 2
    end = offset + extensions_length
    for _ in range(extensions_length):
        if offset + 4 > end:
            break
        kind, length = struct.unpack_from("!HH", body, offset)
        data = body[offset + 4 : offset + 4 + length]
        offset += 4 + length
        if kind != EXTENSION_KEY_SHARE:
            continue
        groups = []
        position = 2  # client_shares length
        for _ in range(len(data)):
            if position + 4 > len(data):
                break
            group, share_length = struct.unpack_from("!HH", data, position)
            groups.append(group)
            position += 4 + share_length
        return groups
    return []
