"""Bad arguments to every public function and property of icsssl.

Each call gets a negative, too large or huge number, the wrong type,
``None``, an empty string, bytes for str (or the reverse) or an unknown
cipher name.  It must raise TypeError or ValueError (KeyError for an
unknown cipher) whose message names the value or its type, and never
crash the interpreter or return a wrong result.  Methods that only pass
arguments on to pyOpenSSL must raise what pyOpenSSL raises.

A Connection whose socket was closed, and the report read before and
after the close, must behave as pyOpenSSL does: an ``SSL.Error`` and a
consistent report, no crash.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import socket
import subprocess
import sys
from typing import Any, Callable, Optional

import pytest
from OpenSSL import SSL, crypto

import icsssl
from icsssl import ciphers, errors, legacy, tlswire
from support import (
    IO_TIMEOUT,
    MAX_HANDSHAKE_ROUNDS,
    make_client_context,
    make_server_context,
)

HUGE = 10**30


@dataclasses.dataclass(frozen=True)
class BadCall:
    """A call that must raise *raises* with *named* in its message."""

    id: str
    function: Callable[..., Any]
    args: tuple[Any, ...]
    raises: Any
    named: Optional[str]
    bug: Optional[str] = None


def _param(call: BadCall) -> Any:
    marks = []
    if call.bug:
        marks.append(pytest.mark.xfail(strict=True, reason=call.bug))
    return pytest.param(call, id=call.id, marks=marks)


def _check(call: BadCall) -> None:
    with pytest.raises(call.raises) as caught:
        call.function(*call.args)
    if call.named is not None:
        assert call.named in str(caught.value)


# -- packed error codes -------------------------------------------------------

CODE_FUNCTIONS = {
    "ERR_GET_LIB": icsssl.ERR_GET_LIB,
    "ERR_GET_FUNC": icsssl.ERR_GET_FUNC,
    "ERR_GET_REASON": icsssl.ERR_GET_REASON,
    "ERR_SYSTEM_ERROR": icsssl.ERR_SYSTEM_ERROR,
    "Ics_Ssl_ERR_GET_LIB": icsssl.Ics_Ssl_ERR_GET_LIB,
    "Ics_Ssl_ERR_GET_FUNC": icsssl.Ics_Ssl_ERR_GET_FUNC,
    "Ics_Ssl_ERR_GET_REASON": icsssl.Ics_Ssl_ERR_GET_REASON,
    "error_string": icsssl.error_string,
    "lib_error_string": icsssl.lib_error_string,
    "reason_error_string": icsssl.reason_error_string,
    "decode": icsssl.decode,
    "errors.check_code": errors.check_code,
}

BAD_CODES = [
    (-1, ValueError, "-1"),
    (0x100000000, ValueError, "4294967296"),
    (HUGE, ValueError, str(HUGE)),
    (-HUGE, ValueError, str(-HUGE)),
    (True, TypeError, "bool"),
    (False, TypeError, "bool"),
    (None, TypeError, "NoneType"),
    (1.0, TypeError, "float"),
    ("0x0A00010B", TypeError, "'0x0A00010B'"),
    (b"\x0a\x00\x01\x0b", TypeError, "bytes"),
    ("", TypeError, "''"),
    ([1], TypeError, "list"),
]

CODE_CALLS = [
    BadCall(f"{name}-{value!r}", function, (value,), raises, named)
    for name, function in CODE_FUNCTIONS.items()
    for value, raises, named in BAD_CODES
]


@pytest.mark.parametrize("call", [_param(c) for c in CODE_CALLS])
def test_code_functions_reject(call):
    _check(call)


@pytest.mark.parametrize(
    "function", list(CODE_FUNCTIONS.values()), ids=list(CODE_FUNCTIONS)
)
@pytest.mark.parametrize("code", [0, 0x0A00010B, 0x80000068, 0xFFFFFFFF])
def test_code_functions_accept_bounds(function, code):
    function(code)


def test_decoders_agree_with_openssl_macros():
    # Correct results at the edges, by OpenSSL's own macros.
    for code in (0, 1, 0x7FFFFF, 0x800000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF):
        assert icsssl.ERR_GET_LIB(code) == int(icsssl.lib.ERR_GET_LIB(code))
        assert icsssl.ERR_GET_REASON(code) == int(
            icsssl.lib.ERR_GET_REASON(code)
        )
        assert icsssl.ERR_SYSTEM_ERROR(code) == bool(
            icsssl.lib.ERR_SYSTEM_ERROR(code)
        )
        assert icsssl.ERR_GET_FUNC(code) == 0


# -- ciphers --------------------------------------------------------------------


CIPHER_CALLS = [
    BadCall(
        "unknown-name",
        icsssl.cipher_description,
        ("NO-SUCH-CIPHER",),
        KeyError,
        "NO-SUCH-CIPHER",
    ),
    BadCall("empty-name", icsssl.cipher_description, ("",), KeyError, "''"),
    BadCall(
        "padded-name",
        icsssl.cipher_description,
        (" AES128-SHA",),
        KeyError,
        "' AES128-SHA'",
    ),
    BadCall(
        "lowercase-name",
        icsssl.cipher_description,
        ("aes128-gcm-sha256",),
        KeyError,
        "aes128-gcm-sha256",
    ),
    BadCall(
        "negative-id", icsssl.cipher_description, (-1,), ValueError, "-0x1"
    ),
    BadCall(
        "id-too-large",
        icsssl.cipher_description,
        (0x10000,),
        ValueError,
        "0x10000",
    ),
    BadCall(
        "huge-id", icsssl.cipher_description, (HUGE,), ValueError, f"{HUGE:#x}"
    ),
    BadCall(
        "unknown-id", icsssl.cipher_description, (0xFEFE,), KeyError, "0xfefe"
    ),
    BadCall(
        "bytes-name",
        icsssl.cipher_description,
        (b"AES128-SHA",),
        TypeError,
        "b'AES128-SHA'",
    ),
    BadCall("none", icsssl.cipher_description, (None,), TypeError, "NoneType"),
    BadCall("bool", icsssl.cipher_description, (True,), TypeError, "bool"),
    BadCall("float", icsssl.cipher_description, (1.0,), TypeError, "float"),
    BadCall(
        "description-empty", icsssl.parse_description, ("",), ValueError, "''"
    ),
    BadCall(
        "description-one-word",
        icsssl.parse_description,
        ("AES128",),
        ValueError,
        "'AES128'",
    ),
    BadCall(
        "description-bad-word",
        icsssl.parse_description,
        ("AES128 TLSv1.2 Kx",),
        ValueError,
        "'Kx'",
    ),
    BadCall(
        "description-none",
        icsssl.parse_description,
        (None,),
        TypeError,
        "NoneType",
    ),
    BadCall(
        "description-int",
        icsssl.parse_description,
        (5,),
        TypeError,
        "int",
    ),
    BadCall(
        "description-bytes",
        icsssl.parse_description,
        (b"AES128-SHA TLSv1.2",),
        TypeError,
        "bytes",
    ),
    BadCall(
        "describe-pointer-str",
        ciphers.describe_pointer,
        ("x",),
        TypeError,
        "str",
    ),
    BadCall("all-ciphers-argument", icsssl.all_ciphers, (1,), TypeError, None),
]


@pytest.mark.parametrize("call", [_param(c) for c in CIPHER_CALLS])
def test_cipher_functions_reject(call):
    _check(call)


def test_cipher_lookups_agree():
    # Correct results: a name, its standard name and its id give one cipher.
    by_name = icsssl.cipher_description("AES128-GCM-SHA256")
    assert icsssl.cipher_description(by_name.standard_name) == by_name
    assert icsssl.cipher_description(by_name.protocol_id) == by_name
    assert by_name.protocol_id == 0x009C




@pytest.mark.parametrize(
    "argument",
    [
        pytest.param(
            "icsssl.ffi.NULL",
        ),
        "None",
        "icsssl.ffi.new('int *')",
    ],
)
def test_describe_pointer_null(argument):
    # Run in a child process, because the failure is a crash.
    script = (
        "import icsssl\n"
        "from icsssl import ciphers\n"
        "try:\n"
        f"    ciphers.describe_pointer({argument})\n"
        "except (TypeError, ValueError) as error:\n"
        "    print(type(error).__name__)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=IO_TIMEOUT * 3,
        check=False,
        cwd=os.path.dirname(os.path.dirname(icsssl.__file__)),
    )
    assert completed.returncode == 0, (
        f"exit status {completed.returncode}: {completed.stderr[-500:]}"
    )
    assert completed.stdout.strip() in ("TypeError", "ValueError")


# -- decode_code and the legacy tables --------------------------------------------


DECODE_CALLS = [
    BadCall("negative", icsssl.decode_code, (-1,), ValueError, "-1"),
    BadCall(
        "too-large",
        icsssl.decode_code,
        (0x100000000,),
        ValueError,
        "4294967296",
    ),
    BadCall("huge", icsssl.decode_code, (HUGE,), ValueError, str(HUGE)),
    BadCall("empty", icsssl.decode_code, ("",), ValueError, "''"),
    BadCall("blank", icsssl.decode_code, ("   ",), ValueError, "'   '"),
    BadCall("not-hex", icsssl.decode_code, ("zz",), ValueError, "'zz'"),
    BadCall("prefix-only", icsssl.decode_code, ("0x",), ValueError, "'0x'"),
    BadCall(
        "delphi-prefix-only", icsssl.decode_code, ("$",), ValueError, "'$'"
    ),
    BadCall(
        "error-prefix-only",
        icsssl.decode_code,
        ("error:",),
        ValueError,
        "'error:'",
    ),
    BadCall(
        "nine-digits",
        icsssl.decode_code,
        ("1" * 9,),
        ValueError,
        "'111111111'",
    ),
    BadCall("negative-text", icsssl.decode_code, ("-1",), ValueError, "'-1'"),
    BadCall(
        "arabic-digits",
        icsssl.decode_code,
        ("\u0663",),
        ValueError,
        "'\u0663'",
    ),
    BadCall(
        "bytes", icsssl.decode_code, (b"1408A10B",), TypeError, "b'1408A10B'"
    ),
    BadCall("none", icsssl.decode_code, (None,), TypeError, "NoneType"),
    BadCall("bool", icsssl.decode_code, (True,), TypeError, "bool"),
    BadCall("float", icsssl.decode_code, (1.0,), TypeError, "float"),
    BadCall(
        "layout-int", icsssl.decode_code, (0x1408A10B, 3), TypeError, "got 3"
    ),
    BadCall(
        "layout-empty",
        icsssl.decode_code,
        (0x1408A10B, ""),
        ValueError,
        "got ''",
    ),
    BadCall(
        "layout-unknown",
        icsssl.decode_code,
        (0x1408A10B, "1.1.0"),
        ValueError,
        "'1.1.0'",
    ),
    BadCall(
        "layout-bytes",
        icsssl.decode_code,
        (0x1408A10B, b"3"),
        TypeError,
        "b'3'",
    ),
    BadCall(
        "ambiguous",
        icsssl.decode_code,
        (0x1408010B,),
        ValueError,
        "0x1408010B",
    ),
    BadCall("check-layout", legacy.check_layout, ("4",), ValueError, "'4'"),
    BadCall("parse-code-list", legacy.parse_code, ([1],), TypeError, "list"),
    BadCall(
        "legacy-problems-version",
        legacy.legacy_problems,
        (0x1408A10B, "1.1.0"),
        ValueError,
        "'1.1.0'",
    ),
    BadCall(
        "legacy-problems-negative",
        legacy.legacy_problems,
        (-1, "1.0.2"),
        ValueError,
        "-1",
    ),
    BadCall(
        "openssl3-problems-negative",
        legacy.openssl3_problems,
        (-1,),
        ValueError,
        "-1",
    ),
    BadCall(
        "openssl3-problems-huge",
        legacy.openssl3_problems,
        (HUGE,),
        ValueError,
        str(HUGE),
    ),
]


@pytest.mark.parametrize("call", [_param(c) for c in DECODE_CALLS])
def test_decode_functions_reject(call):
    _check(call)


def test_decode_code_edges_decode():
    # Correct results at the edges of the accepted range.
    assert icsssl.decode_code(0, "3").code == 0
    top = icsssl.decode_code("0xFFFFFFFF", "3")
    assert top.code == 0xFFFFFFFF
    assert top.library == int(icsssl.lib.ERR_GET_LIB(0xFFFFFFFF))
    assert top.reason == int(icsssl.lib.ERR_GET_REASON(0xFFFFFFFF))
    assert icsssl.decode_code("  $1408A10B ").code == 0x1408A10B
    assert icsssl.decode_code("1408a10b").code == 0x1408A10B


# -- tlswire parsers -----------------------------------------------------------------


HELLO_AS_TEXT = "\x16\x03\x01\x00\x04\x01\x00\x00\x00"

TLSWIRE_CALLS = [
    BadCall(
        "parse-none",
        tlswire.parse_client_hello,
        (None,),
        TypeError,
        "NoneType",
    ),
    BadCall("parse-int", tlswire.parse_client_hello, (5,), TypeError, "int"),
    BadCall(
        "parse-str",
        tlswire.parse_client_hello,
        (HELLO_AS_TEXT,),
        TypeError,
        "str",
    ),
    BadCall(
        "messages-str",
        tlswire.handshake_messages,
        (HELLO_AS_TEXT,),
        TypeError,
        "str",
    ),
    BadCall(
        "alert-str",
        tlswire.record_alert,
        ("\x15\x03\x03\x00\x02\x02\x28",),
        TypeError,
        "str",
    ),
    BadCall(
        "is-record-str",
        tlswire.is_tls_record,
        (HELLO_AS_TEXT,),
        TypeError,
        "str",
    ),
    BadCall(
        "version-name-negative",
        tlswire.version_name,
        (-1,),
        ValueError,
        "-1",
    ),
    BadCall(
        "group-name-negative",
        tlswire.group_name,
        (-1,),
        ValueError,
        "-1",
    ),
]


@pytest.mark.parametrize("call", [_param(c) for c in TLSWIRE_CALLS])
def test_tlswire_rejects(call):
    _check(call)


@pytest.mark.parametrize(
    "data", [b"", b"\x16", b"\x16\x03\x01\x00", b"\x16\x03\x01\xff\xff\x01"]
)
def test_tlswire_short_input(data):
    assert tlswire.parse_client_hello(data) is None or not (
        tlswire.parse_client_hello(data).complete
    )
    assert tlswire.record_alert(data) is None
    assert tlswire.server_hello_seen(data) is False


# -- Context loaders ------------------------------------------------------------------

LOADERS = (
    "use_certificate_file",
    "use_privatekey_file",
    "use_certificate_chain_file",
)


def _fresh_context() -> icsssl.Context:
    return icsssl.Context(SSL.TLS_METHOD)


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize(
    "path, raises, named",
    [
        (None, TypeError, "NoneType"),
        (1.5, TypeError, "float"),
        ("", icsssl.CertificateLoadError, "''"),
        (
            "/nonexistent/icsssl-test.pem",
            icsssl.CertificateLoadError,
            "'/nonexistent/icsssl-test.pem'",
        ),
        (
            b"/nonexistent/icsssl-test.pem",
            icsssl.CertificateLoadError,
            "'/nonexistent/icsssl-test.pem'",
        ),
        ("/", icsssl.CertificateLoadError, "'/'"),
    ],
    ids=[
        "none",
        "float",
        "empty",
        "missing-str",
        "missing-bytes",
        "directory",
    ],
)
def test_loaders_reject_bad_paths(loader, path, raises, named):
    with pytest.raises(raises) as caught:
        getattr(_fresh_context(), loader)(path)
    assert named in str(caught.value)


@pytest.mark.parametrize("loader", LOADERS)
def test_loaders_name_path_with_nul(loader):
    with pytest.raises((ValueError, icsssl.CertificateLoadError)) as caught:
        getattr(_fresh_context(), loader)("cert\x00.pem")
    assert "cert\\x00.pem" in str(caught.value)


@pytest.mark.parametrize("loader", LOADERS)
def test_loaders_leave_descriptor_open(loader, self_signed):
    descriptor = os.open(self_signed.cert_path, os.O_RDONLY)
    try:
        with pytest.raises(TypeError):
            getattr(_fresh_context(), loader)(descriptor)
        os.fstat(descriptor)  # raises EBADF if the loader closed it
    finally:
        try:
            os.close(descriptor)
        except OSError:
            pass


def test_pyopenssl_loader_leaves_descriptor_open(self_signed):
    # What icsssl.Context should match.
    descriptor = os.open(self_signed.cert_path, os.O_RDONLY)
    try:
        with pytest.raises(TypeError):
            SSL.Context(SSL.TLS_METHOD).use_certificate_file(descriptor)
        os.fstat(descriptor)
    finally:
        os.close(descriptor)


def _write_version_3_certificate(cert_path: str, folder: str) -> str:
    """Copy *cert_path* with its version field set to 3, which OpenSSL
    loads and cryptography rejects with InvalidVersion."""
    with open(cert_path, "rb") as handle:
        loaded = crypto.load_certificate(crypto.FILETYPE_PEM, handle.read())
    der = bytearray(crypto.dump_certificate(crypto.FILETYPE_ASN1, loaded))
    at = der.index(b"\xa0\x03\x02\x01\x02")  # version [0] INTEGER 2
    der[at + 4] = 3
    odd = crypto.load_certificate(crypto.FILETYPE_ASN1, bytes(der))
    path = os.path.join(folder, "version-3.crt")
    with open(path, "wb") as handle:
        handle.write(crypto.dump_certificate(crypto.FILETYPE_PEM, odd))
    return path


@pytest.mark.parametrize(
    "loader", ["use_certificate_file", "use_certificate_chain_file"]
)
def test_loader_takes_certificate_openssl_takes(loader, self_signed, tmp_path):
    odd_path = _write_version_3_certificate(
        self_signed.cert_path, str(tmp_path)
    )
    reference = SSL.Context(SSL.TLS_METHOD)
    getattr(reference, loader)(odd_path)  # pyOpenSSL loads it
    context = _fresh_context()
    try:
        getattr(context, loader)(odd_path)
    except icsssl.CertificateLoadError as error:
        assert odd_path in str(error)


@pytest.mark.parametrize(
    "method, raises",
    [
        ("TLS", TypeError),
        (None, TypeError),
        (-1, ValueError),
        (HUGE, (ValueError, OverflowError)),
    ],
    ids=["str", "none", "negative", "huge"],
)
def test_context_rejects_bad_method(method, raises):
    # As pyOpenSSL's Context does.
    with pytest.raises(raises):
        SSL.Context(method)
    with pytest.raises(raises):
        icsssl.Context(method)


# -- Connection methods ---------------------------------------------------------------


@pytest.fixture
def memory_connection() -> icsssl.Connection:
    connection = icsssl.Connection(make_client_context(), None)
    connection.set_connect_state()
    return connection



CONNECTION_CALLS = [
    (
        "verify-hostname-none",
        "set_verify_hostname",
        (None,),
        TypeError,
        "NoneType",
        None,
    ),
    (
        "verify-hostname-bytes",
        "set_verify_hostname",
        (b"localhost",),
        TypeError,
        "bytes",
        None,
    ),
    (
        "verify-hostname-int",
        "set_verify_hostname",
        (5,),
        TypeError,
        "int",
        None,
    ),
    (
        "verify-hostname-empty",
        "set_verify_hostname",
        ("",),
        ValueError,
        "empty",
        None,
    ),
    (
        "verify-hostname-nul",
        "set_verify_hostname",
        ("a\x00b",),
        ValueError,
        "'a\\x00b'",
        None,
    ),
    (
        "verify-hostname-empty-label",
        "set_verify_hostname",
        ("a..b",),
        ValueError,
        "'a..b'",
        None,
    ),
    (
        "verify-hostname-long-label",
        "set_verify_hostname",
        ("x" * 64 + ".test",),
        ValueError,
        "x" * 64,
        None,
    ),
    ("timed-out-zero", "handshake_timed_out", (0,), ValueError, "0", None),
    (
        "timed-out-negative",
        "handshake_timed_out",
        (-1.5,),
        ValueError,
        "-1.5",
        None,
    ),
    (
        "timed-out-nan",
        "handshake_timed_out",
        (float("nan"),),
        ValueError,
        "nan",
        None,
    ),
    ("timed-out-str", "handshake_timed_out", ("1",), TypeError, "str", None),
    (
        "timed-out-bool",
        "handshake_timed_out",
        (True,),
        TypeError,
        "bool",
        None,
    ),
    (
        "timed-out-none",
        "handshake_timed_out",
        (None,),
        TypeError,
        "NoneType",
        None,
    ),
    (
        "callback-int",
        "set_handshake_done_callback",
        (5,),
        TypeError,
        "int",
        None,
    ),
    (
        "callback-str",
        "set_handshake_done_callback",
        ("print",),
        TypeError,
        "str",
        None,
    ),
    ("accept-memory-bio", "accept", (), TypeError, "memory-BIO", None),
    # Passed on to pyOpenSSL, which raises without naming the value.
    (
        "host-name-str",
        "set_tlsext_host_name",
        ("localhost",),
        TypeError,
        None,
        None,
    ),
    ("host-name-none", "set_tlsext_host_name", (None,), TypeError, None, None),
    ("alpn-str-items", "set_alpn_protos", (["h2"],), TypeError, None, None),
    ("alpn-empty", "set_alpn_protos", ([],), ValueError, None, None),
]


@pytest.mark.parametrize(
    "name, method, args, raises, named",
    [
        pytest.param(
            *row[:5],
            id=row[0],
            marks=[pytest.mark.xfail(strict=True, reason=row[5])]
            if row[5]
            else [],
        )
        for row in CONNECTION_CALLS
    ],
)
def test_connection_methods_reject(
    memory_connection, name, method, args, raises, named
):
    with pytest.raises(raises) as caught:
        getattr(memory_connection, method)(*args)
    if named is not None:
        assert named in str(caught.value)
    # A rejected argument changes nothing.
    assert memory_connection.handshake_done is False
    assert memory_connection.OnSslHandshakeDone is None


def test_callback_property_rejects(memory_connection):
    with pytest.raises(TypeError, match="int"):
        memory_connection.OnSslHandshakeDone = 5
    assert memory_connection.OnSslHandshakeDone is None


@pytest.mark.parametrize(
    "context, sock, raises",
    [
        ("context", None, TypeError),
        (None, None, TypeError),
        (make_client_context, "socket", TypeError),
    ],
    ids=["context-str", "context-none", "socket-str"],
)
def test_connection_constructor_rejects(context, sock, raises):
    real_context = context() if callable(context) else context
    with pytest.raises(raises):
        icsssl.Connection(real_context, sock)


EMPTY_REPORT = {
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
    "handshake_done": False,
    "handshake_pid": 0,
    "handshake_exception": None,
    "handshake_report": None,
    "handshake_details": {},
}


def test_report_empty_before_handshake(memory_connection):
    for name, empty in EMPTY_REPORT.items():
        assert getattr(memory_connection, name) == empty, name


# -- a Connection whose socket was closed ------------------------------------------


def _check_consistent_failure(connection: icsssl.Connection) -> None:
    report = connection.handshake_report
    assert report is not None
    assert report.succeeded is False
    assert connection.ErrCode != 0
    errors_ = connection.SslHandshakeErrors
    assert connection.SslHandshakeErr == (errors_[0] if errors_ else 0)
    assert connection.SslHandshakeRespMsg
    assert report.kind in icsssl.CATALOGUE
    assert isinstance(connection.handshake_details, dict)


def _closed_connection(
    role: str, timeout: Optional[float]
) -> tuple[icsssl.Connection, socket.socket]:
    """Return a Connection whose socket was closed, and its former peer."""
    ours, peer = socket.socketpair()
    connection = icsssl.Connection(make_client_context(), ours)
    if role == "client":
        connection.set_connect_state()
    else:
        connection.set_accept_state()
    ours.settimeout(timeout)
    descriptor = ours.fileno()
    for name, empty in EMPTY_REPORT.items():
        assert getattr(connection, name) == empty, name
    ours.close()
    # OpenSSL keeps the old descriptor number, which must not have
    # been handed to another file in between.
    with pytest.raises(OSError) as caught:
        os.fstat(descriptor)
    assert caught.value.errno == errno.EBADF
    return connection, peer






def _closed_param(role: str, timeout: Optional[float], name: str) -> Any:
    return pytest.param(role, timeout, id=name)


@pytest.mark.parametrize(
    "role, timeout",
    [
        _closed_param("client", None, "blocking-client"),
        _closed_param("client", 0.0, "non-blocking-client"),
        _closed_param("server", None, "blocking-server"),
        _closed_param("server", 0.0, "non-blocking-server"),
    ],
)
def test_handshake_after_close(role, timeout):
    connection, peer = _closed_connection(role, timeout)
    calls = []
    connection.set_handshake_done_callback(
        lambda conn, code: calls.append((conn, code))
    )
    try:
        with pytest.raises(SSL.Error):
            connection.do_handshake()
        assert calls == [(connection, connection.ErrCode)]
        _check_consistent_failure(connection)
        assert connection.ErrCode == 1
        # Later calls fail as pyOpenSSL's do, without a second callback.
        for method, args in (("send", (b"x",)), ("recv", (16,))):
            with pytest.raises(SSL.Error):
                getattr(connection, method)(*args)
        assert len(calls) == 1
    finally:
        peer.close()


@pytest.mark.parametrize("role", ["client", "server"])
def test_closed_socket_not_blamed_on_peer(role):
    connection, peer = _closed_connection(role, 0.0)
    try:
        with pytest.raises(SSL.SysCallError) as caught:
            connection.do_handshake()
        assert caught.value.args[0] == errno.EBADF
        peer_kinds = {
            icsssl.CATALOGUE[name].name
            for name in (
                "ICSSSL_CLOSED_BY_CLIENT",
                "ICSSSL_CLOSED_BEFORE_REPLY",
                "ICSSSL_CLOSED_MID_HANDSHAKE",
                "ICSSSL_CONNECTION_RESET",
            )
        }
        assert connection.handshake_report.kind not in peer_kinds
    finally:
        peer.close()


def _socket_handshake(
    client: icsssl.Connection, server: icsssl.Connection
) -> None:
    """Run both sides' handshakes over non-blocking sockets in this
    thread."""
    pending = {"client": client, "server": server}
    for _ in range(MAX_HANDSHAKE_ROUNDS):
        for name, connection in list(pending.items()):
            try:
                connection.do_handshake()
            except SSL.WantReadError:
                continue
            del pending[name]
        if not pending:
            return
    raise AssertionError(f"handshake unfinished: {sorted(pending)}")


def test_report_read_after_close(self_signed):
    client_socket, server_socket = socket.socketpair()
    client_socket.setblocking(False)
    server_socket.setblocking(False)
    client = icsssl.Connection(make_client_context(), client_socket)
    client.set_connect_state()
    server = icsssl.Connection(
        make_server_context(self_signed.cert_path, self_signed.key_path),
        server_socket,
    )
    server.set_accept_state()
    _socket_handshake(client, server)
    version = client.get_protocol_version_name()
    cipher = client.get_cipher_name()
    client_socket.close()
    server_socket.close()
    # The report is built on first read, here after the close.
    for connection in (client, server):
        report = connection.handshake_report
        assert report is not None
        assert report.succeeded is True
        assert connection.ErrCode == 0
        assert connection.SslVersion == version
        assert connection.SslCipher == cipher
        assert connection.SslHandshakeRespMsg.startswith("SSL Connected OK")
        assert isinstance(connection.handshake_details, dict)
        # A late timeout changes nothing once the handshake has ended.
        connection.handshake_timed_out(1.0)
        assert connection.handshake_report is report
