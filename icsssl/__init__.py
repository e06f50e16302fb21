"""Delphi ICS's TLS handshake report for pyOpenSSL.

``icsssl.Connection`` is pyOpenSSL's ``Connection`` plus the packed OpenSSL
error code of a failed handshake (``SslHandshakeErr``), ICS's one-line
result (``SslHandshakeRespMsg``) and the negotiated cipher's description
(``SslCipherDesc``, ``SslEncryption``, ``SslKeyExchange``, ...).
``from icsssl import SSL`` is a drop-in for ``from OpenSSL import SSL``.

The functions here wrap the system OpenSSL that icsssl's cffi module links
(``icsssl._openssl``, whose raw ``ffi`` and ``lib`` stay importable).
pyOpenSSL may run on another OpenSSL instance; :data:`SHARED_OPENSSL`
is True when both use one instance.
"""

from __future__ import annotations

try:
    from icsssl._openssl import ffi, lib
except ImportError as error:  # pragma: no cover - depends on the install
    raise ImportError(
        "icsssl's compiled module icsssl._openssl is missing from "
        f"{__path__[0]!r}: this is a source tree that was not built. "
        "Install with `pip install .` and run from outside the source tree, "
        "or build it in place with `pip install -e .`"
    ) from error

from icsssl import _pyopenssl
from icsssl.ciphers import (
    CipherDescription,
    all_ciphers,
    cipher_description,
    parse_description,
)
from icsssl.connection import Connection
from icsssl.errors import (
    ERR_GET_FUNC,
    ERR_GET_LIB,
    ERR_GET_REASON,
    ERR_SYSTEM_ERROR,
    ErrorRecord,
    Ics_Ssl_ERR_GET_FUNC,
    Ics_Ssl_ERR_GET_LIB,
    Ics_Ssl_ERR_GET_REASON,
    decode,
    err_clear_error,
    err_get_error,
    err_peek_error,
    err_peek_last_error,
    error_string,
    lib_error_string,
    reason_error_string,
)

__version__ = "0.1.0"

#: True when pyOpenSSL runs on the same OpenSSL instance as icsssl's cffi
#: module (Debian's python3-openssl), False when it runs on the copy inside
#: cryptography's wheel.  Measured at import by a marker error.
SHARED_OPENSSL: bool = _pyopenssl.SHARED

lib.OPENSSL_init_ssl(
    lib.OPENSSL_INIT_LOAD_SSL_STRINGS | lib.OPENSSL_INIT_LOAD_CRYPTO_STRINGS,
    ffi.NULL,
)


# Names loaded on first use, to keep "import icsssl" close to the cost of
# "import OpenSSL.SSL": the 1.x code tables are large, and the report,
# diagnosis and Context modules are needed only once a handshake ends or
# a certificate file is loaded.
_LAZY = {
    "decode_code": "icsssl.legacy",
    "DecodedError": "icsssl.legacy",
    "HandshakeReport": "icsssl.report",
    "CATALOGUE": "icsssl.catalogue",
    "Context": "icsssl.context",
    "CertificateLoadError": "icsssl.context",
}

# "from OpenSSL import SSL, crypto" becomes "from icsssl import SSL, crypto".
_MODULES = {"crypto": "OpenSSL.crypto"}


def __getattr__(name: str) -> object:
    import importlib

    if name in _MODULES:
        return importlib.import_module(_MODULES[name])
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'icsssl' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def openssl_version() -> str:
    """Return the version line of the OpenSSL icsssl's module runs on."""
    return ffi.string(lib.OpenSSL_version(lib.OPENSSL_VERSION)).decode()


def openssl_build_version() -> int:
    """Return ``OPENSSL_VERSION_NUMBER`` of the headers icsssl was built
    against."""
    return int(lib.OPENSSL_VERSION_NUMBER)


def pyopenssl_openssl_version() -> str:
    """Return the version line of the OpenSSL pyOpenSSL runs on."""
    return _pyopenssl.version_text()


__all__ = [
    "SHARED_OPENSSL",
    "CATALOGUE",
    "CertificateLoadError",
    "CipherDescription",
    "Connection",
    "Context",
    "ERR_GET_FUNC",
    "ERR_GET_LIB",
    "ERR_GET_REASON",
    "ERR_SYSTEM_ERROR",
    "ErrorRecord",
    "HandshakeReport",
    "Ics_Ssl_ERR_GET_FUNC",
    "Ics_Ssl_ERR_GET_LIB",
    "Ics_Ssl_ERR_GET_REASON",
    "all_ciphers",
    "cipher_description",
    "decode",
    "decode_code",
    "err_clear_error",
    "err_get_error",
    "err_peek_error",
    "err_peek_last_error",
    "error_string",
    "ffi",
    "lib",
    "lib_error_string",
    "openssl_build_version",
    "openssl_version",
    "parse_description",
    "pyopenssl_openssl_version",
    "reason_error_string",
]
