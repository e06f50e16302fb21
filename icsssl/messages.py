"""The one-line handshake messages of Delphi ICS (``SslHandshakeRespMsg``)."""

from __future__ import annotations

from icsssl import errors

CLOSED_UNEXPECTEDLY = "Error, connection closed unexpectedly"
HTTP_REQUEST = "Error, HTTP request, no SSL handshake"
HTTPS_PROXY_REQUEST = "Error, HTTPS proxy request, no SSL handshake"
WRONG_VERSION = "Error, wrong SSL version"
UNKNOWN_PROTOCOL = "Error, unknown SSL protocol"

# ICS's texts for four reasons of ERR_LIB_SSL.  OpenSSL 3 and later no
# longer raise SSL_R_UNKNOWN_PROTOCOL, but ICS logs written with 1.x do.
_SSL_REASON_MESSAGES = {
    errors.SSL_R_HTTP_REQUEST: HTTP_REQUEST,
    errors.SSL_R_HTTPS_PROXY_REQUEST: HTTPS_PROXY_REQUEST,
    errors.SSL_R_WRONG_VERSION_NUMBER: WRONG_VERSION,
    errors.SSL_R_UNKNOWN_PROTOCOL: UNKNOWN_PROTOCOL,
}


def is_unexpected_eof(code: int) -> bool:
    """Return whether *code* is OpenSSL 3's ``unexpected eof while
    reading``, which pyOpenSSL turns into ``SysCallError(-1, ...)``."""
    return (
        code != 0
        and errors.ERR_GET_LIB(code) == errors.ERR_LIB_SSL
        and errors.ERR_GET_REASON(code)
        == errors.SSL_R_UNEXPECTED_EOF_WHILE_READING
    )


def failure_err_code(code: int) -> int:
    """Return ICS's ``ErrCode`` for a handshake that failed with *code*.

    1 means the connection closed with no OpenSSL error, or with the
    unexpected-EOF reason; otherwise it is the reason number of *code*.
    """
    if code == 0 or is_unexpected_eof(code):
        return 1
    return errors.ERR_GET_REASON(code)


def failure_message(code: int, text: str) -> str:
    """Return ``SslHandshakeRespMsg`` for a handshake that failed with
    *code*, whose full OpenSSL string is *text*.

    The choice uses the library and reason numbers only, never *text*,
    because OpenSSL versions word their reasons differently.
    """
    if code == 0 or is_unexpected_eof(code):
        return CLOSED_UNEXPECTEDLY
    if errors.ERR_GET_LIB(code) == errors.ERR_LIB_SSL:
        message = _SSL_REASON_MESSAGES.get(errors.ERR_GET_REASON(code))
        if message is not None:
            return message
    return text


def success_message(
    version: str,
    cipher: str,
    key_exchange: str,
    encryption: str,
    mac: str,
) -> str:
    """Return ICS's ``SSL Connected OK with ...`` line."""
    return (
        f"SSL Connected OK with {version}, cipher {cipher}, key exchange "
        f"{key_exchange}, encryption {encryption}, message authentication "
        f"{mac}"
    )
