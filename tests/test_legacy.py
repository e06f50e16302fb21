"""Tests of icsssl.legacy, its generated tables and their generator.

Expected numbers and strings were read by hand from the OpenSSL 1.0.2s
and 1.1.1r sources: ssl/ssl.h, include/openssl/sslerr.h, ssl/ssl_err.c,
crypto/pem/pem_err.c and crypto/err/err.c.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import importlib.util
import json
import pathlib
import shutil
import subprocess
import sys

import pytest

from icsssl import _legacy_codes as tables
from icsssl import errors, legacy
from icsssl.legacy import DecodedError, decode_code

REPOSITORY = pathlib.Path(__file__).resolve().parent.parent
GENERATOR = REPOSITORY / "tools" / "gen_legacy_codes.py"


# --- Generated tables ------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "key", "macro", "string"),
    [
        (
            "1.0.2",
            (20, 138),
            "SSL_F_SSL3_GET_CLIENT_HELLO",
            "ssl3_get_client_hello",
        ),
        ("1.0.2", (20, 143), "SSL_F_SSL3_GET_RECORD", "SSL3_GET_RECORD"),
        ("1.0.2", (20, 148), "SSL_F_SSL3_READ_BYTES", "ssl3_read_bytes"),
        ("1.0.2", (20, 159), "SSL_F_SSL3_WRITE_PENDING", "ssl3_write_pending"),
        ("1.1.1", (20, 143), "SSL_F_SSL3_GET_RECORD", "ssl3_get_record"),
        ("1.1.1", (20, 148), "SSL_F_SSL3_READ_BYTES", "ssl3_read_bytes"),
        ("1.1.1", (20, 159), "SSL_F_SSL3_WRITE_PENDING", "ssl3_write_pending"),
        ("1.0.2", (9, 109), "PEM_F_PEM_READ_BIO", "PEM_read_bio"),
        ("1.1.1", (2, 1), "SYS_F_FOPEN", "fopen"),
    ],
)
def test_function_table_entries(version, key, macro, string):
    assert tables.FUNCTIONS[version][key] == (macro, string)


def test_function_138_only_in_1_0_2():
    assert (20, 138) in tables.FUNCTIONS["1.0.2"]
    assert (20, 138) not in tables.FUNCTIONS["1.1.1"]


def test_function_renumbered_in_1_1_1():
    assert (
        tables.FUNCTIONS["1.0.2"][(20, 285)][0] == "SSL_F_SSL3_HANDSHAKE_MAC"
    )
    assert (
        tables.FUNCTIONS["1.1.1"][(20, 285)][0]
        == "SSL_F_SSL3_FINAL_FINISH_MAC"
    )


@pytest.mark.parametrize("version", legacy.LEGACY_VERSIONS)
@pytest.mark.parametrize(
    ("key", "macro", "string"),
    [
        ((20, 127), "SSL_R_BAD_WRITE_RETRY", "bad write retry"),
        ((20, 156), "SSL_R_HTTP_REQUEST", "http request"),
        ((20, 252), "SSL_R_UNKNOWN_PROTOCOL", "unknown protocol"),
        ((20, 267), "SSL_R_WRONG_VERSION_NUMBER", "wrong version number"),
        (
            (20, 1040),
            "SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE",
            "sslv3 alert handshake failure",
        ),
        ((20, 1048), "SSL_R_TLSV1_ALERT_UNKNOWN_CA", "tlsv1 alert unknown ca"),
        ((9, 108), "PEM_R_NO_START_LINE", "no start line"),
        ((0, 65), "ERR_R_MALLOC_FAILURE", "malloc failure"),
        ((0, 68), "ERR_R_INTERNAL_ERROR", "internal error"),
    ],
)
def test_reason_table_entries(version, key, macro, string):
    assert tables.REASONS[version][key] == (macro, string)


@pytest.mark.parametrize("version", legacy.LEGACY_VERSIONS)
@pytest.mark.parametrize(
    ("library", "name"),
    [
        (2, "system library"),
        (6, "digital envelope routines"),
        (9, "PEM routines"),
        (11, "x509 certificate routines"),
        (20, "SSL routines"),
        (34, "X509 V3 routines"),
    ],
)
def test_library_names(version, library, name):
    assert tables.LIBRARIES[version][library][1] == name


def test_ui_library_name_only_in_1_1_1():
    assert tables.LIBRARIES["1.0.2"][40] == ("ERR_LIB_UI", None)
    assert tables.LIBRARIES["1.1.1"][40] == ("ERR_LIB_UI", "UI routines")


@pytest.mark.parametrize("version", legacy.LEGACY_VERSIONS)
def test_ssl_tables_are_complete(version):
    functions = [key for key in tables.FUNCTIONS[version] if key[0] == 20]
    reasons = [key for key in tables.REASONS[version] if key[0] == 20]
    # 1.0.2s defines 236 SSL_F_ and 327 SSL_R_ codes, 1.1.1r 428 and 317.
    assert len(functions) >= 230
    assert len(reasons) >= 310


def test_ssl_reasons_match_errors_module():
    for number in (
        errors.SSL_R_HTTPS_PROXY_REQUEST,
        errors.SSL_R_HTTP_REQUEST,
        errors.SSL_R_UNKNOWN_PROTOCOL,
        errors.SSL_R_WRONG_VERSION_NUMBER,
    ):
        assert (20, number) in tables.REASONS["1.1.1"]


@pytest.mark.parametrize("reason", [156, 252, 267, 1040, 1048])
def test_reason_numbers_kept_in_openssl3(reason):
    # OpenSSL 3 kept the 1.1.1 SSL reason numbers, so the running OpenSSL
    # words them as the 1.1.1 table does.
    running = errors.reason_error_string((20 << 23) | reason)
    assert running == tables.REASONS["1.1.1"][(20, reason)][1]


def test_openssl3_libraries_and_common_reasons():
    assert tables.OPENSSL3_LIBRARIES[20] == "ERR_LIB_SSL"
    assert tables.OPENSSL3_LIBRARIES[57] == "ERR_LIB_PROV"
    assert 12 not in tables.OPENSSL3_LIBRARIES
    fatal_common = legacy.ERR_RFLAG_FATAL | legacy.ERR_RFLAG_COMMON
    assert tables.OPENSSL3_COMMON_REASONS[256 | fatal_common] == (
        "ERR_R_MALLOC_FAILURE"
    )


# --- Decoding with an inferred layout --------------------------------------


def test_decode_1408a10b():
    decoded = decode_code("1408A10B")
    assert decoded.code == 0x1408A10B
    assert decoded.versions == ("1.0.2",)
    assert decoded.inferred
    assert decoded.layout == "OpenSSL 1.0.2 layout, inferred"
    assert decoded.library == 20
    assert decoded.library_name == "SSL routines"
    assert decoded.function == 138
    assert decoded.function_name == "SSL3_GET_CLIENT_HELLO"
    assert decoded.function_string == "ssl3_get_client_hello"
    assert decoded.reason == 267
    assert decoded.reason_name == "SSL_R_WRONG_VERSION_NUMBER"
    assert decoded.reason_text == "wrong version number"
    assert decoded.alert is None
    assert not decoded.fatal
    assert "1.1.1 does not fit" in decoded.basis
    assert "OpenSSL 3 does not fit" in decoded.basis


@pytest.mark.parametrize(
    "value",
    [0x1408A10B, "0x1408A10B", "0X1408a10b", "$1408A10B", " 1408a10b\n"],
)
def test_decode_input_forms(value):
    assert decode_code(value) == decode_code("1408A10B")


def test_decode_1409f07f():
    decoded = decode_code("1409F07F")
    assert decoded.versions == ("1.0.2", "1.1.1")
    assert decoded.layout == "OpenSSL 1.0.2/1.1.1 layout, inferred"
    assert decoded.function == 159
    assert decoded.function_name == "SSL3_WRITE_PENDING"
    assert decoded.reason == 127
    assert decoded.reason_text == "bad write retry"


def test_decode_alert_14094418():
    decoded = decode_code(0x14094418)
    assert decoded.function_name == "SSL3_READ_BYTES"
    assert decoded.function_string == "ssl3_read_bytes"
    assert decoded.reason == 1048
    assert decoded.reason_text == "tlsv1 alert unknown ca"
    assert decoded.alert == 48


def test_decode_pem_no_start_line():
    decoded = decode_code("0906D06C")
    assert decoded.library_name == "PEM routines"
    assert decoded.function_name == "PEM_READ_BIO"
    assert decoded.reason_text == "no start line"


def test_decode_function_names_that_differ():
    decoded = decode_code("1411D044")
    assert decoded.versions == ("1.0.2", "1.1.1")
    assert decoded.function_name == (
        "SSL3_HANDSHAKE_MAC (1.0.2) / SSL3_FINAL_FINISH_MAC (1.1.1)"
    )
    assert decoded.function_string == (
        "ssl3_handshake_mac (1.0.2) / ssl3_final_finish_mac (1.1.1)"
    )
    assert decoded.reason_text == "internal error"
    assert decoded.fatal


def test_decode_function_strings_that_differ():
    decoded = decode_code("1408F10B")
    assert decoded.function_name == "SSL3_GET_RECORD"
    assert decoded.function_string == (
        "SSL3_GET_RECORD (1.0.2) / ssl3_get_record (1.1.1)"
    )


def test_decode_openssl3_code():
    decoded = decode_code("0x0A00010B")
    assert decoded.versions == ("3",)
    assert decoded.layout == "OpenSSL 3 layout, inferred"
    assert decoded.library == 20
    assert decoded.library_name == "SSL routines"
    assert decoded.function == 0
    assert decoded.function_name == ""
    assert decoded.function_string == ""
    assert decoded.reason == 267
    assert decoded.reason_text == "wrong version number"
    assert "1.0.2 does not fit" in decoded.basis


def test_decode_openssl3_alert():
    decoded = decode_code((20 << 23) | 1048)
    assert decoded.versions == ("3",)
    assert decoded.alert == 48
    assert decoded.reason_text == "tlsv1 alert unknown ca"


def test_decode_openssl3_common_fatal_reason():
    flags = legacy.ERR_RFLAG_FATAL | legacy.ERR_RFLAG_COMMON
    decoded = decode_code((20 << 23) | flags | 256)
    assert decoded.versions == ("3",)
    assert decoded.reason_name == "ERR_R_MALLOC_FAILURE"
    assert decoded.reason_text == "malloc failure"
    assert decoded.fatal


def test_decode_openssl3_system_error():
    decoded = decode_code(0x80000000 | errno.ECONNRESET)
    assert decoded.versions == ("3",)
    assert decoded.library == 2
    assert decoded.library_name == "system library"
    assert decoded.reason == errno.ECONNRESET
    assert decoded.reason_name == "ECONNRESET"
    assert decoded.alert is None
    assert not decoded.fatal


def test_decode_legacy_fatal_common_reason():
    decoded = decode_code("140C0041")
    assert decoded.function_name == "SSL_SET_FD"
    assert decoded.reason_name == "ERR_R_MALLOC_FAILURE"
    assert decoded.fatal


# --- error: strings ---------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        (
            "error:1408A10B:SSL routines:SSL3_GET_CLIENT_HELLO:"
            "wrong version number"
        ),
        (
            "error:1408A10B:SSL routines:ssl3_get_client_hello:"
            "wrong version number"
        ),
        (
            "140735:error:1408A10B:SSL routines:SSL3_GET_CLIENT_HELLO:"
            "wrong version number:s3_srvr.c:1000:"
        ),
        "error:1408A10B:SSL routines:func(138):wrong version number",
        "error:1408A10B",
    ],
)
def test_error_string_legacy(text):
    decoded = decode_code(text)
    assert decoded.versions == ("1.0.2",)
    assert decoded.function_name == "SSL3_GET_CLIENT_HELLO"


@pytest.mark.parametrize(
    "text",
    [
        "error:0A00010B:SSL routines::wrong version number",
        (
            "40E7D3A2E27F0000:error:0A00010B:SSL routines:ssl3_get_record:"
            "wrong version number:../ssl/record/ssl3_record.c:354:"
        ),
    ],
)
def test_error_string_openssl3(text):
    decoded = decode_code(text)
    assert decoded.versions == ("3",)
    assert decoded.reason_text == "wrong version number"


def test_error_string_selects_release():
    decoded = decode_code(
        "error:1408F10B:SSL routines:ssl3_get_record:wrong version number"
    )
    assert decoded.versions == ("1.1.1",)
    assert "OpenSSL 1.1.1 name of function 143" in decoded.basis


def test_error_string_resolves_ambiguity():
    as_legacy = decode_code(
        "error:1408010B:SSL routines:ssl3_accept:wrong version number"
    )
    as_openssl3 = decode_code("error:1408010B:UI routines::missing asn1 eos")
    assert as_legacy.versions == ("1.0.2",)
    assert as_legacy.function_name == "SSL3_ACCEPT"
    assert as_openssl3.versions == ("3",)
    assert as_openssl3.library_name == "UI routines"


def test_error_string_contradicting_code():
    # An empty function field rules out 1.x, but 0x1408A10B is no 3.x code.
    with pytest.raises(ValueError, match="fits no layout") as raised:
        decode_code("error:1408A10B:SSL routines::wrong version number")
    assert "empty function field" in str(raised.value)


# --- Ambiguity and explicit layouts ----------------------------------------


def test_ambiguous_code_raises():
    # 1.0.2: SSL routines, SSL3_ACCEPT, wrong version number.
    # 3.x: UI routines, common reason ERR_R_MISSING_ASN1_EOS.
    with pytest.raises(ValueError) as raised:
        decode_code("1408010B")
    message = str(raised.value)
    assert "0x1408010B is ambiguous" in message
    assert "SSL3_ACCEPT" in message
    assert "UI routines" in message
    assert "layout=" in message
    assert "--layout" in message


def test_ambiguous_code_with_layout():
    as_legacy = decode_code("1408010B", layout="1.0.2")
    as_openssl3 = decode_code("1408010B", layout="3")
    assert as_legacy.function_name == "SSL3_ACCEPT"
    assert as_legacy.layout == "OpenSSL 1.0.2 layout, given"
    assert not as_legacy.inferred
    assert as_legacy.basis == ""
    assert as_openssl3.library == 40
    assert as_openssl3.reason_name == "ERR_R_MISSING_ASN1_EOS"
    assert as_openssl3.layout == "OpenSSL 3 layout, given"


def test_zero_fits_no_layout():
    with pytest.raises(ValueError, match="0x00000000 fits no layout"):
        decode_code(0)


def test_given_layout_without_function():
    decoded = decode_code("1408A10B", layout="1.1.1")
    assert decoded.versions == ("1.1.1",)
    assert decoded.function_name == "func(138)"
    assert decoded.function_string == "func(138)"
    assert decoded.reason_text == "wrong version number"


def test_given_layout_3_for_legacy_code():
    decoded = decode_code("1408A10B", layout="3")
    assert decoded.library == 40
    assert decoded.function_name == ""
    assert decoded.reason == 0x08A10B
    assert decoded.reason_text == f"reason({0x08A10B})"


def test_problem_functions():
    assert legacy.legacy_problems(0x1408A10B, "1.0.2") == []
    assert legacy.legacy_problems(0x1408A10B, "1.1.1") == [
        "it defines no function 138 in library 20 (SSL routines)"
    ]
    assert legacy.openssl3_problems(0x0A00010B) == []
    assert legacy.openssl3_problems(0x80000068) == []
    assert legacy.openssl3_problems(0x1408A10B) != []


# --- Invalid input ----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (-1, "got -1"),
        (0x100000000, "got 4294967296"),
        ("123456789", "larger than 0xFFFFFFFF"),
        ("xyz", "invalid code 'xyz'"),
        ("", "invalid code ''"),
        ("0x", "invalid code '0x'"),
        ("error:", "invalid code 'error:'"),
    ],
)
def test_invalid_code_values(value, expected):
    with pytest.raises(ValueError) as raised:
        decode_code(value)
    assert expected in str(raised.value)


@pytest.mark.parametrize("value", [1.5, True, b"1408A10B", None, [0x1408A10B]])
def test_invalid_code_types(value):
    with pytest.raises(TypeError) as raised:
        decode_code(value)  # type: ignore[arg-type]
    assert type(value).__name__ in str(raised.value)


def test_invalid_layout_value():
    with pytest.raises(ValueError) as raised:
        decode_code("1408A10B", layout="1.1")
    assert "'1.1'" in str(raised.value)
    assert "'1.0.2', '1.1.1', '3'" in str(raised.value)


def test_invalid_layout_type():
    with pytest.raises(TypeError, match="got 3"):
        decode_code("1408A10B", layout=3)  # type: ignore[arg-type]


# --- DecodedError -----------------------------------------------------------


def test_str_is_one_line():
    text = str(decode_code("1408A10B"))
    assert "\n" not in text
    assert text == (
        "0x1408A10B: SSL routines, SSL3_GET_CLIENT_HELLO, wrong version "
        "number [OpenSSL 1.0.2 layout, inferred]"
    )


def test_str_of_openssl3_alert():
    text = str(decode_code((20 << 23) | 1048, layout="3"))
    assert text == (
        "0x0A000418: SSL routines, tlsv1 alert unknown ca (TLS alert 48) "
        "[OpenSSL 3 layout, given]"
    )


def test_decoded_error_is_frozen():
    decoded = decode_code("1408A10B")
    with pytest.raises(dataclasses.FrozenInstanceError):
        decoded.reason = 0  # type: ignore[misc]
    assert isinstance(decoded, DecodedError)


# --- Command line -----------------------------------------------------------


def test_cli_decode_text(capsys):
    assert legacy.main(["1408A10B"]) == 0
    output = capsys.readouterr().out
    assert "SSL routines" in output
    assert "SSL3_GET_CLIENT_HELLO" in output
    assert "wrong version number" in output
    assert "OpenSSL 1.0.2 layout, inferred" in output


def test_cli_decode_json(capsys):
    assert legacy.main(["--json", "14094418"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["code_hex"] == "0x14094418"
    assert result["function_name"] == "SSL3_READ_BYTES"
    assert result["alert"] == 48
    assert result["versions"] == ["1.0.2", "1.1.1"]


def test_cli_decode_with_layout(capsys):
    assert legacy.main(["--layout", "3", "0A00010B"]) == 0
    output = capsys.readouterr().out
    assert "OpenSSL 3 layout, given" in output
    assert "function" not in output


def test_cli_ambiguous_exits_2(capsys):
    assert legacy.main(["1408010B"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "icsssl decode: code 0x1408010B is ambiguous" in captured.err
    assert "--layout" in captured.err


def test_cli_invalid_code_exits_2(capsys):
    assert legacy.main(["not-hex"]) == 2
    assert "invalid code 'not-hex'" in capsys.readouterr().err


def test_cli_invalid_layout_exits_2(capsys):
    with pytest.raises(SystemExit) as raised:
        legacy.main(["--layout", "2", "1408A10B"])
    assert raised.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_add_parser_subcommand(capsys):
    parser = argparse.ArgumentParser(prog="icsssl")
    commands = parser.add_subparsers(dest="command")
    legacy.add_parser(commands)
    arguments = parser.parse_args(["decode", "--layout", "1.0.2", "1409F07F"])
    assert arguments.handler is legacy.run_decode
    assert arguments.handler(arguments) == 0
    output = capsys.readouterr().out
    assert "SSL3_WRITE_PENDING" in output
    assert "OpenSSL 1.0.2 layout, given" in output


def test_module_entry_point(tmp_path):
    # Run outside the checkout, so that -m imports the installed icsssl
    # and not an unbuilt source tree.
    result = subprocess.run(
        [sys.executable, "-m", "icsssl.legacy", "0x1408A10B"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "SSL3_GET_CLIENT_HELLO" in result.stdout


# --- Generator --------------------------------------------------------------

# Small source trees in the shape of OpenSSL 1.0.2 and 1.1.1, with made-up
# entries that exercise the parser: expressions, casts, comments, entries
# split over lines and strings split into adjacent literals.

_ERR_H = """
# define ERR_LIB_NONE            1
# define ERR_LIB_SYS             2
# define ERR_LIB_SSL             20
/* # define ERR_LIB_SSL23       21 */
# define ERR_LIB_USER            128
# define SYS_F_FOPEN             1
# define ERR_R_SSL_LIB   ERR_LIB_SSL/* 20 */
# define ERR_R_FATAL                             64
# define ERR_R_MALLOC_FAILURE                    (1|ERR_R_FATAL)
"""

_ERR_C = """
static ERR_STRING_DATA ERR_str_libraries[] = {
    {ERR_PACK(ERR_LIB_SYS, 0, 0), "system library"},
    {ERR_PACK(ERR_LIB_SSL, 0, 0), "SSL routines"},
    {0, NULL},
};

static ERR_STRING_DATA ERR_str_functs[] = {
    {ERR_PACK(0, SYS_F_FOPEN, 0), "fopen"},
    {0, NULL},
};

static ERR_STRING_DATA ERR_str_reasons[] = {
    {ERR_R_SSL_LIB, "SSL lib"},
    {ERR_R_MALLOC_FAILURE, "malloc failure"},
    {0, NULL},
};
"""

_SSL_CODES = """
# define SSL_F_FIRST_FUNCTION                             138
# define SSL_F_NO_STRING                                  200
# define SSL_R_FIRST_REASON                               267
# define SSL_R_ALERT_REASON                               (1000 + 48)
"""

_SSL_ERR_C_1_0_2 = """
# define ERR_FUNC(func) ERR_PACK(ERR_LIB_SSL,func,0)
# define ERR_REASON(reason) ERR_PACK(ERR_LIB_SSL,0,reason)

static ERR_STRING_DATA SSL_str_functs[] = {
    {ERR_FUNC(SSL_F_FIRST_FUNCTION), "first_function"},
    {ERR_FUNC(SSL_F_UNDEFINED_MACRO), "skipped"},
    {0, NULL}
};

static ERR_STRING_DATA SSL_str_reasons[] = {
    {ERR_REASON(SSL_R_FIRST_REASON), "first reason"},
    {ERR_REASON(SSL_R_ALERT_REASON),
     "alert " "reason"},
    {0, NULL}
};
"""

_SSL_ERR_C_1_1_1 = """
static const ERR_STRING_DATA SSL_str_functs[] = {
    {ERR_PACK(ERR_LIB_SSL, SSL_F_FIRST_FUNCTION, 0),
     "first_function_111"},
    {0, NULL}
};

static const ERR_STRING_DATA SSL_str_reasons[] = {
    {ERR_PACK(ERR_LIB_SSL, 0, SSL_R_FIRST_REASON), "first reason"},
    {ERR_PACK(ERR_LIB_SSL, 0, SSL_R_ALERT_REASON), "alert reason"},
    {0, NULL}
};
"""

_OPENSSL3_ERR_H = """
#define ERR_LIB_SYS 2
#define ERR_LIB_SSL 20
#define ERR_LIB_USER 128
#define ERR_LIB_OFFSET 23L
#define ERR_RFLAGS_OFFSET 18L
#define ERR_RFLAG_FATAL (0x1 << ERR_RFLAGS_OFFSET)
#define ERR_RFLAG_COMMON (0x2 << ERR_RFLAGS_OFFSET)
#define ERR_R_SSL_LIB (ERR_LIB_SSL /* 20 */ | ERR_RFLAG_COMMON)
#define ERR_R_FATAL (ERR_RFLAG_FATAL | ERR_RFLAG_COMMON)
#define ERR_R_MALLOC_FAILURE (256 | ERR_R_FATAL)
"""


def _write_tree(root: pathlib.Path, files: dict[str, str]) -> pathlib.Path:
    for path, text in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return root


# 1.0.2 defines a -fips version text first; the generator takes the last.
_OPENSSLV_H_1_0_2 = """
#  define OPENSSL_VERSION_TEXT    "OpenSSL 1.0.2zz-fips  1 Jan 2030"
#  define OPENSSL_VERSION_TEXT    "OpenSSL 1.0.2zz  1 Jan 2030"
"""

_OPENSSLV_H_1_1_1 = """
# define OPENSSL_VERSION_TEXT    "OpenSSL 1.1.1zz  1 Jan 2030"
"""


def _legacy_trees(tmp_path: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    tree_102 = _write_tree(
        tmp_path / "openssl-1.0.2",
        {
            "crypto/err/openssl.ec": (
                "L ERR NONE NONE\nL SSL ssl/ssl.h ssl/ssl_err.c\n"
            ),
            "crypto/err/err.h": _ERR_H,
            "crypto/err/err.c": _ERR_C,
            "crypto/opensslv.h": _OPENSSLV_H_1_0_2,
            "ssl/ssl.h": _SSL_CODES,
            "ssl/ssl_err.c": _SSL_ERR_C_1_0_2,
        },
    )
    # 1.1.1 keeps the codes of ssl.h in sslerr.h; ssl.h itself is absent.
    tree_111 = _write_tree(
        tmp_path / "openssl-1.1.1",
        {
            "crypto/err/openssl.ec": (
                "L SSL include/openssl/ssl.h ssl/ssl_err.c\n"
            ),
            "include/openssl/err.h": _ERR_H,
            "crypto/err/err.c": _ERR_C,
            "include/openssl/opensslv.h": _OPENSSLV_H_1_1_1,
            "include/openssl/sslerr.h": _SSL_CODES,
            "ssl/ssl_err.c": _SSL_ERR_C_1_1_1,
        },
    )
    return tree_102, tree_111


def _load_generator():
    spec = importlib.util.spec_from_file_location(
        "gen_legacy_codes", GENERATOR
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load_generated(path: pathlib.Path):
    spec = importlib.util.spec_from_file_location("generated_codes", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _generate(tmp_path: pathlib.Path, source_102: str, source_111: str):
    err_h = _write_tree(tmp_path / "openssl3", {"err.h": _OPENSSL3_ERR_H})
    output = tmp_path / "generated.py"
    status = _load_generator().main(
        [
            "--openssl-1.0.2",
            source_102,
            "--openssl-1.1.1",
            source_111,
            "--openssl-3-err-h",
            str(err_h / "err.h"),
            "--output",
            str(output),
        ]
    )
    assert status == 0
    return _load_generated(output)


def test_generator_parses_trees(tmp_path):
    tree_102, tree_111 = _legacy_trees(tmp_path)
    generated = _generate(tmp_path, str(tree_102), str(tree_111))
    assert generated.RELEASES == {
        "1.0.2": "OpenSSL 1.0.2zz 1 Jan 2030",
        "1.1.1": "OpenSSL 1.1.1zz 1 Jan 2030",
    }

    functions = generated.FUNCTIONS["1.0.2"]
    assert functions[(20, 138)] == ("SSL_F_FIRST_FUNCTION", "first_function")
    assert functions[(20, 200)] == ("SSL_F_NO_STRING", None)
    assert functions[(2, 1)] == ("SYS_F_FOPEN", "fopen")

    reasons = generated.REASONS["1.0.2"]
    assert reasons[(20, 267)] == ("SSL_R_FIRST_REASON", "first reason")
    assert reasons[(20, 1048)] == ("SSL_R_ALERT_REASON", "alert reason")
    assert reasons[(0, 65)] == ("ERR_R_MALLOC_FAILURE", "malloc failure")
    assert reasons[(0, 20)] == ("ERR_R_SSL_LIB", "SSL lib")

    libraries = generated.LIBRARIES["1.0.2"]
    assert libraries[20] == ("ERR_LIB_SSL", "SSL routines")
    assert libraries[1] == ("ERR_LIB_NONE", None)
    assert 21 not in libraries
    assert 128 not in libraries

    assert generated.FUNCTIONS["1.1.1"][(20, 138)] == (
        "SSL_F_FIRST_FUNCTION",
        "first_function_111",
    )

    assert generated.OPENSSL3_LIBRARIES == {
        2: "ERR_LIB_SYS",
        20: "ERR_LIB_SSL",
    }
    assert generated.OPENSSL3_COMMON_REASONS == {
        (2 << 18) | 20: "ERR_R_SSL_LIB",
        (3 << 18) | 256: "ERR_R_MALLOC_FAILURE",
    }


def test_generator_rejects_wrong_release(tmp_path):
    tree_102, tree_111 = _legacy_trees(tmp_path)
    (tree_102 / "crypto/opensslv.h").write_text(
        '# define OPENSSL_VERSION_TEXT "OpenSSL 1.0.1u  22 Sep 2016"\n'
    )
    with pytest.raises(SystemExit) as raised:
        _generate(tmp_path, str(tree_102), str(tree_111))
    assert "is 'OpenSSL 1.0.1u 22 Sep 2016', not OpenSSL 1.0.2" in str(
        raised.value
    )


def test_generator_reports_missing_file(tmp_path):
    tree_102, tree_111 = _legacy_trees(tmp_path)
    (tree_111 / "crypto/err/openssl.ec").unlink()
    with pytest.raises(SystemExit) as raised:
        _generate(tmp_path, str(tree_102), str(tree_111))
    assert "crypto/err/openssl.ec not found" in str(raised.value)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_generator_reads_git_commit(tmp_path):
    tree_102, tree_111 = _legacy_trees(tmp_path)
    repository = tmp_path / "repository"
    shutil.copytree(tree_111, repository / "sub" / "dir")
    git = ["git", "-C", str(repository)]
    subprocess.run(git + ["init", "-q"], check=True)
    subprocess.run(git + ["add", "."], check=True)
    subprocess.run(
        git
        + [
            "-c",
            "user.name=test",
            "-c",
            "user.email=test@example.invalid",
            "commit",
            "-q",
            "-m",
            "tree",
        ],
        check=True,
    )
    generated = _generate(
        tmp_path, str(tree_102), f"{repository}@HEAD:sub/dir"
    )
    assert generated.RELEASES["1.1.1"] == "OpenSSL 1.1.1zz 1 Jan 2030"
    assert generated.REASONS["1.1.1"][(20, 267)][1] == "first reason"
