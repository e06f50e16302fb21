"""Packed error codes: decoders against OpenSSL's C macros, and texts.

The expected values come from the ``ERR_GET_LIB``, ``ERR_GET_REASON`` and
``ERR_SYSTEM_ERROR`` macros of the system OpenSSL headers (compiled into
``icsssl.lib``), from the documented OpenSSL 3 layout and from the
``openssl errstr`` command.
"""

from __future__ import annotations

import errno
import os
import subprocess

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from OpenSSL import SSL
from OpenSSL._util import ffi as peer_ffi
from OpenSSL._util import lib as peer_lib

import icsssl
from icsssl import errors
from support import IO_TIMEOUT, OPENSSL, openssl_binary_version, pack_code

MAX_CODE = 0xFFFFFFFF

DECODERS = [
    (icsssl.ERR_GET_LIB, icsssl.lib.ERR_GET_LIB),
    (icsssl.Ics_Ssl_ERR_GET_LIB, icsssl.lib.ERR_GET_LIB),
    (icsssl.ERR_GET_REASON, icsssl.lib.ERR_GET_REASON),
    (icsssl.Ics_Ssl_ERR_GET_REASON, icsssl.lib.ERR_GET_REASON),
]

# Codes seen in handshakes, system errors and the edges of the layout.
SAMPLE_CODES = [
    0,
    1,
    0x0A000086,
    0x0A00009B,
    0x0A00009C,
    0x0A0000C1,
    0x0A00010B,
    0x0A000126,
    0x0A000410,
    0x0A000418,
    0x0A040100,
    0x1408A10B,
    0x7FFFFFFF,
    0x80000000,
    0x80000068,
    0xFFFFFFFF,
]


def _c_system_error(code: int) -> bool:
    return bool(icsssl.lib.ERR_SYSTEM_ERROR(code))


@settings(max_examples=2000, deadline=None)
@given(st.integers(min_value=0, max_value=MAX_CODE))
@example(0)
@example(0x7FFFFFFF)
@example(0x80000000)
@example(MAX_CODE)
def test_decoders_match_c_macros(code):
    for python_decoder, c_macro in DECODERS:
        assert python_decoder(code) == c_macro(code), python_decoder.__name__
    assert icsssl.ERR_SYSTEM_ERROR(code) is _c_system_error(code)
    assert icsssl.ERR_GET_FUNC(code) == 0
    assert icsssl.Ics_Ssl_ERR_GET_FUNC(code) == 0


@pytest.mark.parametrize("code", SAMPLE_CODES, ids=lambda code: f"{code:#010x}")
def test_decoders_follow_openssl3_layout(code):
    # openssl/err.h (3.0): bit 31 flags a system error whose reason is the
    # errno in bits 0-30; otherwise library = bits 23-30, reason = 0-22.
    if code & 0x80000000:
        library, reason = 2, code & 0x7FFFFFFF
    else:
        library, reason = (code >> 23) & 0xFF, code & 0x7FFFFF
    assert icsssl.ERR_GET_LIB(code) == library
    assert icsssl.ERR_GET_REASON(code) == reason
    assert icsssl.lib.ERR_GET_LIB(code) == library
    assert icsssl.lib.ERR_GET_REASON(code) == reason


def test_openssl1_code_decodes_with_3x_layout():
    # 0x1408A10B is "wrong version number" packed by OpenSSL 1.x (library
    # in bits 24-31).  Decoded with the 3.x layout it is another library.
    code = 0x1408A10B
    library_3x = (code >> 23) & 0xFF
    reason_3x = code & 0x7FFFFF
    library_1x = (code >> 24) & 0xFF
    assert icsssl.Ics_Ssl_ERR_GET_LIB(code) == library_3x
    assert icsssl.Ics_Ssl_ERR_GET_REASON(code) == reason_3x
    assert icsssl.Ics_Ssl_ERR_GET_LIB(code) == icsssl.lib.ERR_GET_LIB(code)
    assert library_3x != library_1x


def test_openssl3_code_not_decoded_as_1x():
    # The same failure packed by OpenSSL 3: SSL library 20, reason 267.
    # The 1.x layout would wrongly give library 10.
    code = 0x0A00010B
    assert icsssl.Ics_Ssl_ERR_GET_LIB(code) == 20
    assert icsssl.Ics_Ssl_ERR_GET_REASON(code) == 267
    assert icsssl.Ics_Ssl_ERR_GET_LIB(code) != (code >> 24) & 0xFF


def test_system_error_code():
    code = 0x80000000 | errno.ECONNRESET
    assert icsssl.ERR_SYSTEM_ERROR(code) is True
    assert icsssl.ERR_GET_LIB(code) == 2
    assert icsssl.ERR_GET_REASON(code) == errno.ECONNRESET
    assert icsssl.ERR_SYSTEM_ERROR(pack_code(20, 134)) is False


CHECKED_FUNCTIONS = [
    icsssl.ERR_GET_LIB,
    icsssl.ERR_GET_FUNC,
    icsssl.ERR_GET_REASON,
    icsssl.ERR_SYSTEM_ERROR,
    icsssl.Ics_Ssl_ERR_GET_LIB,
    icsssl.Ics_Ssl_ERR_GET_FUNC,
    icsssl.Ics_Ssl_ERR_GET_REASON,
    icsssl.error_string,
    icsssl.lib_error_string,
    icsssl.reason_error_string,
    icsssl.decode,
]

BAD_CODES = [
    (-1, ValueError),
    (2**32, ValueError),
    (1.5, TypeError),
    ("1", TypeError),
    (True, TypeError),
    (None, TypeError),
]


@pytest.mark.parametrize(
    "function", CHECKED_FUNCTIONS, ids=lambda function: function.__name__
)
@pytest.mark.parametrize(
    "value, exception", BAD_CODES, ids=[repr(value) for value, _ in BAD_CODES]
)
def test_bad_code_rejected(function, value, exception):
    with pytest.raises(exception) as raised:
        function(value)
    assert repr(value) in str(raised.value)


@pytest.fixture(scope="module")
def errstr_lines() -> dict[int, str]:
    """``openssl errstr`` output for SAMPLE_CODES, by code."""
    if OPENSSL is None:
        pytest.skip("the openssl command is not on PATH")
    if openssl_binary_version() != icsssl.openssl_version():
        pytest.skip(
            "the openssl command runs on another OpenSSL than icsssl's "
            "module, so its texts may differ"
        )
    nonzero = [code for code in SAMPLE_CODES if code]
    output = subprocess.run(
        [OPENSSL, "errstr", *(f"{code:08X}" for code in nonzero)],
        capture_output=True,
        text=True,
        timeout=IO_TIMEOUT,
        check=True,
    ).stdout.splitlines()
    assert len(output) == len(nonzero), output
    return dict(zip(nonzero, output))


@pytest.mark.parametrize(
    "code", [code for code in SAMPLE_CODES if code], ids=lambda c: f"{c:#010x}"
)
def test_error_string_matches_errstr(code, errstr_lines):
    text = icsssl.error_string(code)
    assert text == errstr_lines[code]
    assert text.startswith(f"error:{code:08X}:")


@pytest.mark.parametrize("code", [0x0A000086, 0x0A00010B, 0x0A0000C1])
def test_library_and_reason_strings(code, errstr_lines):
    # errstr prints error:CODE:LIBRARY:FUNCTION:REASON, FUNCTION empty on 3.x.
    _, _, library, function, reason = errstr_lines[code].split(":", 4)
    assert function == ""
    assert icsssl.lib_error_string(code) == library
    assert icsssl.reason_error_string(code) == reason


def test_unknown_reason_string_is_none():
    assert icsssl.reason_error_string(pack_code(20, 0x7FFF00)) is None


def test_queue_functions_of_system_instance():
    icsssl.err_clear_error()
    try:
        first = int(icsssl.lib.icsssl_push_error(128, 0x1B1))
        second = int(icsssl.lib.icsssl_push_error(128, 0x1B2))
        assert first == pack_code(128, 0x1B1)
        assert second == pack_code(128, 0x1B2)
        assert icsssl.err_peek_error() == first
        assert icsssl.err_peek_last_error() == second
        assert icsssl.err_get_error() == first
        assert icsssl.err_get_error() == second
        assert icsssl.err_get_error() == 0
        icsssl.lib.icsssl_push_error(128, 0x1B3)
        icsssl.err_clear_error()
        assert icsssl.err_peek_error() == 0
    finally:
        icsssl.err_clear_error()


def _pyopenssl_text(pointer) -> str:
    return peer_ffi.string(pointer).decode()


def test_decode_uses_pyopenssl_texts():
    # Creating a context makes pyOpenSSL's instance load its SSL reason
    # strings (OPENSSL_init_ssl), as any real connection would.
    SSL.Context(SSL.TLS_METHOD)
    code = pack_code(20, 134)
    record = icsssl.decode(code)
    assert record.code == code
    assert record.library == 20
    assert record.reason == 134
    assert record.library_name == _pyopenssl_text(
        peer_lib.ERR_lib_error_string(code)
    )
    assert record.reason_text == _pyopenssl_text(
        peer_lib.ERR_reason_error_string(code)
    )
    assert record.text == (
        f"error:{code:08X}:{record.library_name}::{record.reason_text}"
    )
    assert record.is_system_error is False
    assert record.errno_name is None


def test_decode_system_error():
    code = 0x80000000 | errno.ECONNRESET
    record = icsssl.decode(code)
    assert record.library == 2
    assert record.reason == errno.ECONNRESET
    assert record.is_system_error is True
    assert record.errno_name == errno.errorcode[errno.ECONNRESET]
    assert record.reason_text == os.strerror(errno.ECONNRESET)
    assert record.text.startswith(f"error:{code:08X}:")


def test_check_code_names_parameter():
    with pytest.raises(TypeError, match="my_code must be an int"):
        errors.check_code("x", name="my_code")
    assert errors.check_code(MAX_CODE) == MAX_CODE
