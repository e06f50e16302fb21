"""``from icsssl import SSL`` as a drop-in for ``from OpenSSL import SSL``."""

from __future__ import annotations

import pathlib
import types

import OpenSSL.SSL
import pytest

import icsssl
import icsssl.SSL
from support import ERR_LIB_SSL, SSL_R_CERTIFICATE_VERIFY_FAILED, library_of, reason_of

PUBLIC_NAMES = sorted(
    name for name in dir(OpenSSL.SSL) if not name.startswith("_")
)

PROGRAM_PATH = pathlib.Path(__file__).with_name("pyopenssl_echo.py")
PYOPENSSL_IMPORT = "from OpenSSL import SSL\n"
MESSAGES = [b"hello", b"x" * 50_000, b"bye"]


def test_public_names_present():
    missing = [name for name in PUBLIC_NAMES if not hasattr(icsssl.SSL, name)]
    assert missing == []


# The names icsssl.SSL replaces with its own subclasses.
REPLACED = {"Connection": icsssl.Connection, "Context": icsssl.Context}


@pytest.mark.parametrize("name", PUBLIC_NAMES)
def test_public_name_is_same_object(name):
    ours = getattr(icsssl.SSL, name)
    if name in REPLACED:
        assert ours is REPLACED[name]
        assert issubclass(ours, getattr(OpenSSL.SSL, name))
    else:
        assert ours is getattr(OpenSSL.SSL, name)


def test_added_error_is_ssl_error():
    assert issubclass(icsssl.SSL.CertificateLoadError, OpenSSL.SSL.Error)


def test_all_covers_pyopenssl_all():
    parent_all = set(getattr(OpenSSL.SSL, "__all__", []))
    assert parent_all <= set(icsssl.SSL.__all__)
    assert set(REPLACED) <= set(icsssl.SSL.__all__)


def test_star_import():
    namespace: dict = {}
    exec("from icsssl.SSL import *", namespace)
    assert namespace["Connection"] is icsssl.Connection
    assert namespace["Context"] is icsssl.Context
    assert namespace["Error"] is OpenSSL.SSL.Error
    assert namespace["WantReadError"] is OpenSSL.SSL.WantReadError


def _load_program(import_line: str) -> types.ModuleType:
    """Load pyopenssl_echo.py with its pyOpenSSL import replaced by
    *import_line*."""
    source = PROGRAM_PATH.read_text()
    assert source.count(PYOPENSSL_IMPORT) == 1
    module = types.ModuleType("pyopenssl_echo_variant")
    module.__file__ = str(PROGRAM_PATH)
    code = compile(
        source.replace(PYOPENSSL_IMPORT, import_line + "\n"),
        str(PROGRAM_PATH),
        "exec",
    )
    exec(code, module.__dict__)
    return module


@pytest.fixture(scope="module")
def programs() -> dict[str, types.ModuleType]:
    return {
        "pyOpenSSL": _load_program(PYOPENSSL_IMPORT.strip()),
        "icsssl": _load_program("from icsssl import SSL"),
    }


def test_program_echo_unchanged(programs, self_signed):
    plain = programs["pyOpenSSL"].echo(
        self_signed.cert_path, self_signed.key_path, MESSAGES
    )
    ours = programs["icsssl"].echo(
        self_signed.cert_path, self_signed.key_path, MESSAGES
    )
    assert plain["client"] == MESSAGES
    assert ours["client"] == plain["client"]
    assert ours["server"] == plain["server"] == "closed by client"
    assert type(plain["client_connection"]) is OpenSSL.SSL.Connection
    assert type(ours["client_connection"]) is icsssl.Connection
    assert type(ours["server_connection"]) is icsssl.Connection
    assert type(ours["client_connection"].get_context()) is icsssl.Context
    for side in ("client_connection", "server_connection"):
        connection = ours[side]
        assert connection.ErrCode == 0
        assert connection.SslVersion == connection.get_protocol_version_name()
        assert connection.SslHandshakeRespMsg.startswith("SSL Connected OK")


def test_program_error_handling_unchanged(programs, self_signed):
    plain = programs["pyOpenSSL"].echo(
        self_signed.cert_path, self_signed.key_path, MESSAGES, verify_server=True
    )
    ours = programs["icsssl"].echo(
        self_signed.cert_path, self_signed.key_path, MESSAGES, verify_server=True
    )
    assert plain["client"].startswith("client error: Error ")
    assert ours["client"] == plain["client"]
    assert ours["server"] == plain["server"]
    code = ours["client_connection"].SslHandshakeErr
    assert library_of(code) == ERR_LIB_SSL
    assert reason_of(code) == SSL_R_CERTIFICATE_VERIFY_FAILED
