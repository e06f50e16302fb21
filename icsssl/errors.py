"""Packed OpenSSL error codes: decoders and the system instance's queue.

OpenSSL 3.0 and later pack an error as follows (``openssl/err.h``):

* bit 31 set: a system error; the library is ``ERR_LIB_SYS`` (2) and the
  reason is the ``errno`` value in bits 0-30;
* otherwise the library is bits 23-30 and the reason bits 0-22.  There is
  no function field any more, so :func:`ERR_GET_FUNC` returns 0.

OpenSSL 1.0 and 1.1 used another layout: library in bits 24-31, function
in bits 12-23, reason in bits 0-11.  ``0x1408A10B`` (1.x) and
``0x0A00010B`` (3.x) are the same failure.  Delphi ICS's
``Ics_Ssl_ERR_GET_LIB`` and friends decode with the 1.x layout on every
OpenSSL, so they report library 10 for ``0x0A00010B``; the functions here
use the layout of the OpenSSL that icsssl runs on.
"""

from __future__ import annotations

import dataclasses
import errno as _errno

from icsssl import _pyopenssl
from icsssl._openssl import ffi, lib

ERR_LIB_SYS = 2
ERR_LIB_SSL = 20
ERR_SYSTEM_FLAG = 0x80000000

#: The largest packed code: codes are unsigned 32-bit values.
MAX_CODE = 0xFFFFFFFF

# Reasons of ERR_LIB_SSL named by the handshake messages (openssl/sslerr.h).
SSL_R_HTTPS_PROXY_REQUEST = 155
SSL_R_HTTP_REQUEST = 156
SSL_R_UNKNOWN_PROTOCOL = 252
SSL_R_WRONG_VERSION_NUMBER = 267
SSL_R_UNEXPECTED_EOF_WHILE_READING = 294


def check_code(code: object, name: str = "code") -> int:
    """Return *code* if it is a packed error code, else raise.

    :raises TypeError: if *code* is not an ``int`` (``bool`` included).
    :raises ValueError: if *code* is outside 0..0xFFFFFFFF.
    """
    if isinstance(code, bool) or not isinstance(code, int):
        raise TypeError(
            f"{name} must be an int between 0 and 0xFFFFFFFF, "
            f"got {type(code).__name__} {code!r}"
        )
    if not 0 <= code <= MAX_CODE:
        raise ValueError(
            f"{name} must be an int between 0 and 0xFFFFFFFF, got {code!r}"
        )
    return code


def ERR_SYSTEM_ERROR(code: int) -> bool:
    """Return whether *code* is a system error (``errno`` in the reason)."""
    return bool(check_code(code) & ERR_SYSTEM_FLAG)


def ERR_GET_LIB(code: int) -> int:
    """Return the library number of *code* (``ERR_LIB_SSL`` is 20)."""
    if check_code(code) & ERR_SYSTEM_FLAG:
        return ERR_LIB_SYS
    return (code >> 23) & 0xFF


def ERR_GET_FUNC(code: int) -> int:
    """Return the function number of *code*: always 0 on OpenSSL 3."""
    check_code(code)
    return 0


def ERR_GET_REASON(code: int) -> int:
    """Return the reason number of *code*, the ``errno`` for system
    errors."""
    if check_code(code) & ERR_SYSTEM_FLAG:
        return code & 0x7FFFFFFF
    return code & 0x7FFFFF


# The names Delphi ICS code uses, decoding the running OpenSSL's layout.
Ics_Ssl_ERR_GET_LIB = ERR_GET_LIB
Ics_Ssl_ERR_GET_FUNC = ERR_GET_FUNC
Ics_Ssl_ERR_GET_REASON = ERR_GET_REASON


def _string(pointer: object) -> str | None:
    if pointer == ffi.NULL:
        return None
    return ffi.string(pointer).decode("utf-8", "replace")  # type: ignore


def error_string(code: int) -> str:
    """Return ``ERR_error_string_n`` of the system OpenSSL for *code*."""
    check_code(code)
    buffer = ffi.new("char[]", 256)
    lib.ERR_error_string_n(code, buffer, len(buffer))
    return ffi.string(buffer).decode("utf-8", "replace")


def lib_error_string(code: int) -> str | None:
    """Return the system OpenSSL's library name of *code*, or ``None``."""
    return _string(lib.ERR_lib_error_string(check_code(code)))


def reason_error_string(code: int) -> str | None:
    """Return the system OpenSSL's reason text of *code*, or ``None``."""
    return _string(lib.ERR_reason_error_string(check_code(code)))


def err_get_error() -> int:
    """Remove and return the oldest code of this thread's queue in the
    system OpenSSL, or 0 if it is empty."""
    return int(lib.ERR_get_error())


def err_peek_error() -> int:
    """Return the oldest queued code of the system OpenSSL, or 0."""
    return int(lib.ERR_peek_error())


def err_peek_last_error() -> int:
    """Return the newest queued code of the system OpenSSL, or 0."""
    return int(lib.ERR_peek_last_error())


def err_clear_error() -> None:
    """Empty this thread's error queue in the system OpenSSL."""
    lib.ERR_clear_error()


@dataclasses.dataclass(frozen=True)
class ErrorRecord:
    """One packed OpenSSL error code, decoded.

    The texts come from the OpenSSL instance that queued the code.
    """

    code: int
    library: int
    reason: int
    library_name: str
    reason_text: str
    text: str

    @property
    def is_system_error(self) -> bool:
        """Whether the reason is an ``errno`` value."""
        return bool(self.code & ERR_SYSTEM_FLAG)

    @property
    def errno_name(self) -> str | None:
        """The ``errno`` symbol (``ECONNRESET``) of a system error."""
        if not self.is_system_error:
            return None
        return _errno.errorcode.get(self.reason)


def decode(code: int) -> ErrorRecord:
    """Decode a code queued by pyOpenSSL's OpenSSL instance."""
    check_code(code)
    return ErrorRecord(
        code=code,
        library=ERR_GET_LIB(code),
        reason=ERR_GET_REASON(code),
        library_name=_pyopenssl.library_name(code),
        reason_text=_pyopenssl.reason_text(code),
        text=_pyopenssl.error_string(code),
    )
