"""Input generators and outcome checks for fuzzing icsssl handshakes.

Used by ``tests/test_fuzz.py`` (hypothesis, with shrinking) and by
``benchmarks/fuzz_long.py`` (a seeded ``random.Random``, no shrinking), so
both runs feed the same kinds of input and apply the same checks.

A case drives one icsssl ``Connection`` over memory BIOs.  It writes the
input with ``bio_write`` (in one piece or in chunks, one ``do_handshake``
after each), then signals EOF with ``bio_shutdown()`` and calls
``do_handshake`` once more.  Every case therefore ends in a completed
handshake or a failure within ``len(chunks) + 1`` calls.

Rule for a connection left waiting (``WantReadError``, "pending"):

* After EOF, pending is a failure of the check.
* Before EOF, an input that is a prefix of a flight valid for that
  connection (the empty input included) must leave it pending, never
  failed, because the peer may still send the rest.
* Before EOF, any other input may leave it pending or failed: OpenSSL
  checks a record only once all of it has arrived, so a damaged record
  whose length field points past the input waits for more bytes.

Error codes are decoded with OpenSSL's own ``ERR_GET_LIB`` and
``ERR_GET_REASON`` macros, compiled into ``icsssl.lib``, never with the
Python decoders under test.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import random
import traceback
from typing import Any, Callable, Optional, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from OpenSSL import SSL, crypto
from OpenSSL._util import lib as peer_lib

import icsssl
from icsssl import diagnosis, tlswire

ERR_LIB_SSL = 20
SSL_R_UNEXPECTED_EOF_WHILE_READING = 294  # 0x126, openssl/sslerr.h

#: Maximum pieces one input is written in.  Each piece costs one
#: ``do_handshake`` call, and EOF one more.
MAX_CHUNKS = 8

#: Maximum length of random inputs and of bytes inserted by a mutation.
MAX_RANDOM_BYTES = 2048

#: Maximum mutations applied to one flight.
MAX_MUTATIONS = 4

#: Maximum records a flight is split into when a mutation looks for one.
MAX_RECORDS = 64

#: Maximum ``bio_read`` calls when draining a memory BIO.
MAX_BIO_READS = 256

SUCCESS_PREFIX = "SSL Connected OK"

# -- the inputs -----------------------------------------------------------

#: What a mutation does to a flight.  ``position`` and ``value`` are any
#: integers, which each operation reduces to the flight's size.
OPERATIONS = (
    "truncate",
    "flip_bit",
    "set_byte",
    "insert_bytes",
    "delete_bytes",
    "record_length",
    "handshake_length",
    "record_type",
    "record_version",
    "duplicate_record",
    "drop_record",
    "swap_records",
    "splice",
    "append_random",
)

#: Values a length or byte is set to by ``set_byte``, ``record_length``
#: and ``handshake_length``: the boundaries OpenSSL's parsers check.
BOUNDARY_VALUES = (
    0,
    1,
    2,
    3,
    4,
    5,
    0x7F,
    0x80,
    0xFF,
    0x100,
    0x3FFF,
    0x4000,
    0x4001,
    0x4100,
    0x4140,
    0x7FFF,
    0xFFFF,
    0xFFFFFF,
)

#: Non-TLS first bytes that a TLS endpoint meets in practice.
PLAINTEXT_STARTS = (
    b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    b"CONNECT localhost:443 HTTP/1.1\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\n\r\n",
    b"POST / HTTP/1.0\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
    b"<!DOCTYPE html><html></html>",
    b"220 mail.example ESMTP ready\r\n",
    b"220 ftp.example FTP server ready\r\n",
    b"+OK POP3 ready\r\n",
    b"* OK IMAP4rev1 ready\r\n",
    b"SSH-2.0-OpenSSH_9.2\r\n",
    b"\x80\x2e\x01\x00\x02\x00\x15\x00\x00\x00\x10",  # SSLv2 header
    b"\x15\x03\x03\x00\x02\x02\x28",  # fatal handshake_failure alert
    b"\x15\x03\x03\x00\x02\x01\x00",  # close_notify alert
    b"\x14\x03\x03\x00\x01\x01",  # ChangeCipherSpec
    b"\x17\x03\x03\x00\x05hello",  # application data
)


@dataclasses.dataclass(frozen=True)
class Mutation:
    """One change to a flight, as listed in :data:`OPERATIONS`."""

    operation: str
    position: int
    value: int


@dataclasses.dataclass(frozen=True)
class Case:
    """One fuzz input and how it is delivered.

    ``target`` is the side under test (``"server"`` or ``"client"``).
    ``source`` names the bytes that are mutated:

    * ``random``: ``data`` itself;
    * ``plaintext``: ``data`` itself (a non-TLS start, maybe mutated);
    * ``client_hello``: a captured ClientHello, valid for any server;
    * ``server_flight``: a captured server reply, replayed to a new client
      (valid only for the client whose ClientHello it replies to);
    * ``live_server_flight``: a server's reply to this very client;
    * ``live_client_finish``: this client's second flight, to the server
      that replied to its ClientHello.

    ``profile`` picks the contexts (see :func:`make_contexts`).  The
    flight is cut into pieces of the sizes in ``chunks`` (the rest goes
    in the last piece).
    """

    target: str
    source: str
    profile: str
    data: bytes = b""
    mutations: tuple[Mutation, ...] = ()
    chunks: tuple[int, ...] = ()


SOURCES = (
    "random",
    "plaintext",
    "client_hello",
    "server_flight",
    "live_server_flight",
    "live_client_finish",
)

#: Context pairs: the client's and the server's settings.
PROFILES = ("default", "tls12", "tls13", "verify", "client_cert")

#: Profiles whose handshake succeeds when no byte is changed.
SUCCEEDING_PROFILES = ("default", "tls12", "tls13")


def _split_records(data: bytes) -> list[tuple[int, int]]:
    """Return (offset, end) of each record in *data*, following the
    length fields.  The last one may run past the end."""
    records = []
    offset = 0
    while offset + 5 <= len(data) and len(records) < MAX_RECORDS:
        length = int.from_bytes(data[offset + 3 : offset + 5], "big")
        end = offset + 5 + length
        records.append((offset, min(end, len(data))))
        offset = end
    return records


def _pick(items: Sequence[Any], index: int) -> Any:
    return items[index % len(items)]


def _random_bytes(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


#: Operations that change one record, found by following length fields.
RECORD_OPERATIONS = frozenset(
    {
        "record_length",
        "handshake_length",
        "record_type",
        "record_version",
        "duplicate_record",
        "drop_record",
        "swap_records",
    }
)


def apply_mutation(
    data: bytes, mutation: Mutation, donors: Sequence[bytes]
) -> bytes:
    """Return *data* changed by *mutation*.  *donors* are other flights
    that ``splice`` takes bytes from."""
    if mutation.operation in RECORD_OPERATIONS:
        return _mutate_record(data, mutation)
    return _mutate_bytes(data, mutation, donors)


def _mutate_bytes(
    data: bytes, mutation: Mutation, donors: Sequence[bytes]
) -> bytes:
    operation = mutation.operation
    position = mutation.position
    value = mutation.value
    size = len(data)
    if operation == "truncate":
        return data[: position % (size + 1)]
    if operation == "append_random":
        return data + _random_bytes(value, position % 64 + 1)
    if operation == "insert_bytes":
        at = position % (size + 1)
        inserted = _random_bytes(value, value % 16 + 1)
        return data[:at] + inserted + data[at:]
    if operation == "splice":
        donor = _pick(donors, value) if donors else b""
        cut = position % (size + 1)
        donor_cut = (value >> 8) % (len(donor) + 1)
        return data[:cut] + donor[donor_cut:]

    if size == 0:
        return data
    changed = bytearray(data)
    if operation == "flip_bit":
        changed[position % size] ^= 1 << (value % 8)
        return bytes(changed)
    if operation == "set_byte":
        changed[position % size] = _pick(BOUNDARY_VALUES, value) & 0xFF
        return bytes(changed)
    if operation == "delete_bytes":
        at = position % size
        return data[:at] + data[at + value % 16 + 1 :]
    raise ValueError(f"unknown mutation operation {operation!r}")


def _mutate_record(data: bytes, mutation: Mutation) -> bytes:
    operation = mutation.operation
    value = mutation.value
    records = _split_records(data)
    if not records:
        return data
    start, end = _pick(records, mutation.position)
    changed = bytearray(data)

    # A record header is type (1 byte), version (2), length (2), and a
    # handshake header inside it is type (1), length (3).
    if operation == "record_length":
        length = _pick(BOUNDARY_VALUES, value) & 0xFFFF
        changed[start + 3 : start + 5] = length.to_bytes(2, "big")
        return bytes(changed)
    if operation == "handshake_length":
        if end - start < 9:
            return data
        length = _pick(BOUNDARY_VALUES, value) & 0xFFFFFF
        changed[start + 6 : start + 9] = length.to_bytes(3, "big")
        return bytes(changed)
    if operation == "record_type":
        changed[start] = _pick((20, 21, 22, 23, 24, 0, 0x80, 0xFF), value)
        return bytes(changed)
    if operation == "record_version":
        changed[start + 1] = _pick((3, 2, 0, 0xFE, 0xFF), value)
        changed[start + 2] = _pick((1, 3, 4, 0, 0xFF), value >> 4)
        return bytes(changed)

    if operation == "duplicate_record":
        return data[:end] + data[start:end] + data[end:]
    if operation == "drop_record":
        return data[:start] + data[end:]
    # swap_records
    other_start, other_end = _pick(records, value)
    if other_start <= start:
        return data
    return (
        data[:start]
        + data[other_start:other_end]
        + data[end:other_start]
        + data[start:end]
        + data[other_end:]
    )


def apply_mutations(
    data: bytes, mutations: Sequence[Mutation], donors: Sequence[bytes]
) -> bytes:
    """Return *data* changed by each of *mutations* in turn."""
    for mutation in mutations:
        data = apply_mutation(data, mutation, donors)
    return data


def split_chunks(data: bytes, chunks: Sequence[int]) -> list[bytes]:
    """Cut *data* into pieces of the sizes in *chunks* (at most
    :data:`MAX_CHUNKS` pieces).  The rest of *data* is the last piece."""
    pieces = []
    offset = 0
    for size in chunks[: MAX_CHUNKS - 1]:
        if offset >= len(data):
            break
        pieces.append(data[offset : offset + max(size, 1)])
        offset += max(size, 1)
    pieces.append(data[offset:])
    return pieces


def random_mutation(rng: random.Random) -> Mutation:
    """Return a mutation drawn from *rng*."""
    return Mutation(
        rng.choice(OPERATIONS),
        rng.randrange(1 << 16),
        rng.randrange(1 << 24),
    )


def random_case(rng: random.Random) -> Case:
    """Return a case drawn from *rng*: every source, target and profile,
    with up to :data:`MAX_MUTATIONS` mutations and chunked delivery."""
    source = rng.choice(SOURCES)
    profile = rng.choice(PROFILES)
    data = b""
    if source == "random":
        target = rng.choice(("server", "client"))
        data = rng.randbytes(rng.randrange(MAX_RANDOM_BYTES))
        if rng.random() < 0.5 and data:
            # Start like a TLS record so more of the input reaches the
            # record layer's checks.
            header = bytes((rng.choice((20, 21, 22, 23)), 3, rng.randrange(5)))
            data = header + data
    elif source == "plaintext":
        target = rng.choice(("server", "client"))
        data = rng.choice(PLAINTEXT_STARTS)
    elif source in ("client_hello", "live_client_finish"):
        target = "server"
    else:
        target = "client"
    mutations = tuple(
        random_mutation(rng) for _ in range(rng.randrange(MAX_MUTATIONS + 1))
    )
    chunks: tuple[int, ...] = ()
    if rng.random() < 0.3:
        chunks = tuple(
            rng.choice((1, 2, 4, 5, 6, 64, 512))
            for _ in range(rng.randrange(1, MAX_CHUNKS))
        )
    return Case(target, source, profile, data, mutations, chunks)


# -- certificates and contexts --------------------------------------------


def write_certificate(folder: str) -> tuple[str, str]:
    """Write a self-signed RSA-2048 certificate for localhost and its key
    as PEM files in *folder*, and return their paths.

    PEM files, because pyOpenSSL 23 cannot take cryptography objects.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost")]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path = os.path.join(folder, "fuzz-server.crt")
    key_path = os.path.join(folder, "fuzz-server.key")
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
    return cert_path, key_path


def _pin_version(context: SSL.Context, version: Optional[int]) -> None:
    if version is not None:
        context.set_min_proto_version(version)
        context.set_max_proto_version(version)


def make_contexts(
    cert_path: str, key_path: str
) -> dict[str, tuple[SSL.Context, SSL.Context]]:
    """Return (client context, server context) for each of
    :data:`PROFILES`.

    ``verify``: the client verifies the self-signed server certificate
    and fails.  ``client_cert``: the server requires a client
    certificate, which the client does not have.
    """
    contexts = {}
    for profile in PROFILES:
        version = {
            "tls12": SSL.TLS1_2_VERSION,
            "tls13": SSL.TLS1_3_VERSION,
        }.get(profile)
        client = icsssl.Context(SSL.TLS_METHOD)
        server = icsssl.Context(SSL.TLS_METHOD)
        server.use_certificate_file(cert_path)
        server.use_privatekey_file(key_path)
        _pin_version(client, version)
        _pin_version(server, version)
        if profile == "verify":
            client.set_verify(SSL.VERIFY_PEER, lambda *args: bool(args[-1]))
        if profile == "client_cert":
            server.set_verify(
                SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT,
                lambda *args: bool(args[-1]),
            )
        contexts[profile] = (client, server)
    return contexts


# -- memory-BIO plumbing --------------------------------------------------


def drain(connection: SSL.Connection) -> bytes:
    """Return every byte queued in *connection*'s outgoing memory BIO."""
    output = b""
    for _ in range(MAX_BIO_READS):
        try:
            data = connection.bio_read(65536)
        except SSL.WantReadError:
            return output
        if not data:
            return output
        output += data
    raise AssertionError(
        f"memory BIO still had data after {MAX_BIO_READS} reads"
    )


def step(connection: SSL.Connection) -> Optional[BaseException]:
    """Call ``do_handshake`` once.  Return None if it completed, the
    ``WantReadError`` if it waits, or the exception it failed with."""
    try:
        connection.do_handshake()
    except SSL.WantReadError as error:
        return error
    except SSL.Error as error:
        return error
    return None


def new_client(context: SSL.Context) -> icsssl.Connection:
    client = icsssl.Connection(context, None)
    client.set_connect_state()
    client.set_tlsext_host_name(b"localhost")
    return client


def new_server(context: SSL.Context) -> icsssl.Connection:
    server = icsssl.Connection(context, None)
    server.set_accept_state()
    return server


def client_hello(client: SSL.Connection) -> bytes:
    """Start *client*'s handshake and return its ClientHello."""
    error = step(client)
    if not isinstance(error, SSL.WantReadError):
        raise AssertionError(f"client did not wait for the server: {error!r}")
    return drain(client)


@dataclasses.dataclass(frozen=True)
class Flights:
    """Real flights captured once per profile, the bases of mutations."""

    client_hellos: dict[str, bytes]
    server_flights: dict[str, bytes]

    def donors(self) -> list[bytes]:
        """Every captured flight, for ``splice``."""
        return (
            list(self.client_hellos.values())
            + list(self.server_flights.values())
            + list(PLAINTEXT_STARTS)
        )


def capture_flights(
    contexts: dict[str, tuple[SSL.Context, SSL.Context]],
) -> Flights:
    """Capture a ClientHello and the server's reply for each profile."""
    hellos = {}
    replies = {}
    for profile, (client_context, server_context) in contexts.items():
        client = new_client(client_context)
        server = new_server(server_context)
        hello = client_hello(client)
        server.bio_write(hello)
        error = step(server)
        if not isinstance(error, SSL.WantReadError):
            raise AssertionError(f"{profile} server did not answer: {error!r}")
        hellos[profile] = hello
        replies[profile] = drain(server)
    return Flights(hellos, replies)


# -- running a case -------------------------------------------------------


@dataclasses.dataclass
class Outcome:
    """How a case ended.

    ``stage`` is ``done`` (completed before EOF), ``failed`` (failed
    before EOF) or ``failed_at_eof`` (pending until EOF, then failed).
    """

    stage: str
    kind: str
    err_code: int
    input_size: int
    prefix_of_valid_flight: bool
    role_mismatch: bool


def peer_certificate_unparsable(connection: SSL.Connection) -> bool:
    """Return whether the peer sent a certificate that cryptography cannot
    parse, or whose names or extensions it cannot read."""
    chain = list(connection.get_peer_cert_chain() or [])
    leaf = connection.get_peer_certificate()
    if leaf is not None:
        chain.append(leaf)
    for certificate in chain:
        der = crypto.dump_certificate(crypto.FILETYPE_ASN1, certificate)
        try:
            parsed = x509.load_der_x509_certificate(der)
            parsed.subject.rfc4514_string()
            parsed.issuer.rfc4514_string()
            list(parsed.extensions)
        except Exception:
            return True
    return False


class CheckFailed(AssertionError):
    """A case broke a rule, which the message names with the case."""


def expected_err_code(first_code: int) -> int:
    """Return ICS's ErrCode for a failure whose first code is
    *first_code*, decoded with OpenSSL's macros."""
    if first_code == 0:
        return 1
    library = int(icsssl.lib.ERR_GET_LIB(first_code))
    reason = int(icsssl.lib.ERR_GET_REASON(first_code))
    if library == ERR_LIB_SSL and reason == SSL_R_UNEXPECTED_EOF_WHILE_READING:
        return 1
    return reason


class _Recorder:
    """A handshake-done callback that records its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, int]] = []

    def __call__(self, connection: Any, err_code: int) -> None:
        self.calls.append((connection, err_code))


def _require(condition: bool, rule: str, case: Case, detail: Any = "") -> None:
    if not condition:
        raise CheckFailed(f"{rule}: {detail!r}\ncase: {case!r}")


def check_ended(
    connection: icsssl.Connection,
    recorder: _Recorder,
    succeeded: bool,
    case: Case,
) -> str:
    """Check the report of an ended handshake and return its kind."""
    report = connection.handshake_report
    _require(report is not None, "no report after the handshake ended", case)
    _require(connection.handshake_done, "handshake_done is False", case)
    _require(
        report.kind in diagnosis.CATALOGUE,
        "kind not in icsssl.diagnosis.CATALOGUE",
        case,
        report.kind,
    )
    _require(bool(report.kind), "empty kind", case)
    message = connection.SslHandshakeRespMsg
    _require(isinstance(message, str) and bool(message), "empty message", case)
    errors = connection.SslHandshakeErrors
    first = connection.SslHandshakeErr

    if succeeded:
        _require(report.succeeded, "report says failed after success", case)
        _require(
            connection.ErrCode == 0,
            "ErrCode of a success",
            case,
            connection.ErrCode,
        )
        _require(
            first == 0 and errors == (), "codes after success", case, errors
        )
        _require(
            message.startswith(SUCCESS_PREFIX),
            "success message",
            case,
            message,
        )
        _require(
            report.kind == diagnosis.OK, "kind of a success", case, report.kind
        )
    else:
        _require(not report.succeeded, "report says succeeded", case)
        _require(connection.ErrCode != 0, "ErrCode 0 after a failure", case)
        expected_first = errors[0] if errors else 0
        _require(
            first == expected_first,
            "SslHandshakeErr is not SslHandshakeErrors[0] (or 0)",
            case,
            (first, errors),
        )
        _require(
            connection.ErrCode == expected_err_code(expected_first),
            "ErrCode does not follow the first code",
            case,
            (connection.ErrCode, hex(expected_first)),
        )
        _require(
            report.err_code == connection.ErrCode,
            "report.err_code differs from ErrCode",
            case,
        )
        _require(
            not message.startswith(SUCCESS_PREFIX),
            "success message after a failure",
            case,
            message,
        )
        _require(report.kind != diagnosis.OK, "kind OK after a failure", case)

    _require(
        len(recorder.calls) == 1,
        "callback not called exactly once",
        case,
        len(recorder.calls),
    )
    called_with, err_code = recorder.calls[0]
    _require(
        called_with is connection, "callback got another connection", case
    )
    _require(
        err_code == connection.ErrCode,
        "callback err_code",
        case,
        (err_code, connection.ErrCode),
    )

    details = connection.handshake_details
    _require(
        isinstance(details, dict) and details.get("kind") == report.kind,
        "handshake_details disagrees with the report",
        case,
    )
    report.as_dict()
    return report.kind


#: Kinds that describe a server's bytes or behaviour, so only a client's
#: diagnosis can be one of them.
SERVER_PEER_KINDS = frozenset(
    {
        diagnosis.PLAIN_HTTP_SERVER,
        diagnosis.SMTP_SERVER,
        diagnosis.FTP_SERVER,
        diagnosis.POP3_SERVER,
        diagnosis.IMAP_SERVER,
        diagnosis.SSH_SERVER,
        diagnosis.CLOSED_BEFORE_REPLY,
        diagnosis.CLOSED_MID_HANDSHAKE,
        diagnosis.LARGE_HELLO_DROPPED,
    }
)

#: Kinds that describe a client's bytes or behaviour, so only a server's
#: diagnosis can be one of them.
CLIENT_PEER_KINDS = frozenset(
    {
        diagnosis.HTTP_REQUEST,
        diagnosis.HTTPS_PROXY_REQUEST,
        diagnosis.CLOSED_BY_CLIENT,
    }
)


def role_mismatch(role: str, kind: str) -> bool:
    """Return whether *kind* describes the wrong peer for a connection in
    *role* (``"client"`` or ``"server"``)."""
    if role == "server":
        return kind in SERVER_PEER_KINDS
    return kind in CLIENT_PEER_KINDS


def check_queues_empty(case: Case) -> None:
    """Check that no error code is left in either OpenSSL instance."""
    left_pyopenssl = int(peer_lib.ERR_peek_error())
    left_icsssl = int(icsssl.lib.ERR_peek_error())
    peer_lib.ERR_clear_error()
    icsssl.lib.ERR_clear_error()
    _require(
        left_pyopenssl == 0,
        "code left in pyOpenSSL's queue",
        case,
        hex(left_pyopenssl),
    )
    _require(
        left_icsssl == 0, "code left in icsssl's queue", case, hex(left_icsssl)
    )


def _build_input(
    case: Case,
    contexts: dict[str, tuple[SSL.Context, SSL.Context]],
    flights: Flights,
    donors: Sequence[bytes],
) -> tuple[icsssl.Connection, bytes, Optional[bytes]]:
    """Return the connection under test, its input and the valid flight
    the input was made from (None when no valid flight exists)."""
    client_context, server_context = contexts[case.profile]
    valid: Optional[bytes] = None
    if case.source in ("random", "plaintext"):
        base = case.data
    elif case.source == "client_hello":
        base = valid = flights.client_hellos[case.profile]
    elif case.source == "server_flight":
        base = flights.server_flights[case.profile]
    else:
        client = new_client(client_context)
        server = new_server(server_context)
        server.bio_write(client_hello(client))
        error = step(server)
        _require(
            isinstance(error, SSL.WantReadError),
            "live server did not answer the ClientHello",
            case,
            error,
        )
        reply = drain(server)
        # Under "verify" and "client_cert" the peer itself rejects the
        # flight, so a prefix of it may already fail.
        succeeds = case.profile in SUCCEEDING_PROFILES
        if case.source == "live_server_flight":
            mutated = apply_mutations(reply, case.mutations, donors)
            return client, mutated, reply if succeeds else None
        client.bio_write(reply)
        error = step(client)
        finish = drain(client)
        if succeeds:
            _require(
                error is None or isinstance(error, SSL.WantReadError),
                "live client failed on a valid server flight",
                case,
                error,
            )
        mutated = apply_mutations(finish, case.mutations, donors)
        return server, mutated, finish if succeeds else None
    if case.target == "server":
        connection = new_server(server_context)
    else:
        connection = new_client(client_context)
        client_hello(connection)
    return connection, apply_mutations(base, case.mutations, donors), valid


def run_case(
    case: Case,
    contexts: dict[str, tuple[SSL.Context, SSL.Context]],
    flights: Flights,
    donors: Optional[Sequence[bytes]] = None,
) -> Outcome:
    """Run *case* and check every rule.  Raise :class:`CheckFailed` on a
    broken rule, or the exception a call raised that it may not raise."""
    if donors is None:
        donors = flights.donors()
    connection, data, valid = _build_input(case, contexts, flights, donors)
    try:
        return _run(case, connection, data, valid)
    except CheckFailed as error:
        raise CheckFailed(f"{error}\ninput: {data.hex()}") from None


def _run(
    case: Case,
    connection: icsssl.Connection,
    data: bytes,
    valid: Optional[bytes],
) -> Outcome:
    recorder = _Recorder()
    connection.set_handshake_done_callback(recorder)
    prefix = valid is not None and valid.startswith(data)
    strict_prefix = prefix and len(data) < len(valid)
    pieces = split_chunks(data, case.chunks)

    result: Optional[BaseException] = SSL.WantReadError()
    for piece in pieces:
        if piece:
            connection.bio_write(piece)
        result = step(connection)
        drain(connection)
        if not isinstance(result, SSL.WantReadError):
            break
        _require(
            not connection.handshake_done and not recorder.calls,
            "pending connection reported as ended",
            case,
        )
        _require(
            connection.handshake_report is None and connection.ErrCode == 0,
            "pending connection has a report",
            case,
        )

    if strict_prefix:
        _require(
            isinstance(result, SSL.WantReadError),
            "a prefix of a valid flight did not leave it pending",
            case,
            result,
        )
    if prefix:
        # The whole valid flight, in any pieces, completes the handshake
        # or leaves it waiting for the peer's next flight.
        _require(
            result is None or isinstance(result, SSL.WantReadError),
            "a valid flight failed the handshake",
            case,
            result,
        )

    if result is None:
        stage = "done"
    elif not isinstance(result, SSL.WantReadError):
        stage = "failed"
    else:
        connection.bio_shutdown()
        result = step(connection)
        drain(connection)
        _require(
            not isinstance(result, SSL.WantReadError),
            "still pending after EOF",
            case,
        )
        stage = "done" if result is None else "failed_at_eof"

    kind = check_ended(connection, recorder, stage == "done", case)
    if stage == "failed_at_eof" and strict_prefix:
        _require(
            connection.ErrCode == 1,
            "EOF after a valid prefix is not ErrCode 1",
            case,
            connection.ErrCode,
        )
    check_parsers(data)
    check_queues_empty(case)
    return Outcome(
        stage,
        kind,
        connection.ErrCode,
        len(data),
        prefix,
        role_mismatch(case.target, kind),
    )


# -- the parsers ----------------------------------------------------------


def check_parsers(data: bytes) -> None:
    """Feed *data* to the tlswire parsers, which take hostile input:
    each must return, never raise."""
    hello = tlswire.parse_client_hello(data)
    if hello is not None:
        assert isinstance(hello, tlswire.ClientHello), hello
        hello.offered_versions
    tlswire.handshake_messages(data)
    tlswire.record_alert(data)
    tlswire.server_hello_seen(data)
    tlswire.is_tls_record(data)
    tlswire.first_line(data)
    tlswire.escape(data)


def check_decode_code(value: Any, layout: Any = None) -> Optional[Any]:
    """Call ``icsssl.decode_code`` and return its result, or None when it
    raised TypeError or ValueError, the only exceptions it may raise."""
    try:
        decoded = icsssl.decode_code(value, layout)
    except (TypeError, ValueError):
        return None
    if isinstance(value, int):
        assert decoded.code == value, (decoded, value)
    str(decoded)
    return decoded


def describe_failure(case: Case, error: BaseException) -> str:
    """Return a report of a case that broke a rule or raised."""
    return f"{type(error).__name__}: {error}\ncase: {case!r}\n" + "".join(
        traceback.format_exception(error)
    )


Runner = Callable[[Case], Outcome]
