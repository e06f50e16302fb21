"""Every use of pyOpenSSL's private internals, in one place.

Theory of operation
-------------------

Two OpenSSL instances may live in this process:

* pyOpenSSL's, reached through ``OpenSSL._util.lib`` (cryptography's
  binding).  With the PyPI wheels it is the copy of OpenSSL linked
  statically into cryptography, whose symbols are hidden.  Every ``SSL*``
  of a ``Connection`` belongs to it, and so does the error queue that a
  failing ``SSL_do_handshake`` fills.
* ours, ``icsssl._openssl``, linked against the system ``libssl``.

With Debian's python3-openssl both bindings load the same ``libssl.so.3``
and are one instance.  :data:`SHARED` is True in that case.  It is
decided once, at import, by queueing a marker error in pyOpenSSL's
instance and looking for it in ours.

Rules that follow:

* Error codes of a connection are read from pyOpenSSL's queue, in the
  thread that made the failing call, before pyOpenSSL drains it into
  strings.  :func:`take_errors` drains the queue and queues the same codes
  again, so pyOpenSSL raises exactly the exception it would have raised.
* Texts for those codes come from pyOpenSSL's instance, because OpenSSL
  versions word their reasons differently.
* A pointer of one instance never reaches the other.  Ciphers are looked
  up by name in our instance; :func:`shared_ssl_pointer` hands out an
  ``SSL*`` for our module only when :data:`SHARED` is true.
"""

from __future__ import annotations

import ipaddress
import os
from typing import Any

from OpenSSL import SSL as _SSL
from OpenSSL._util import ffi as peer_ffi
from OpenSSL._util import lib as peer_lib

from icsssl._openssl import ffi, lib

#: The maximum number of errors read from one queue in one go.  OpenSSL
#: keeps at most 16 per thread (ERR_NUM_ERRORS in OpenSSL 3.0's openssl/err.h),
#: so this bound is never reached in practice.
MAX_QUEUED_ERRORS = 64

# A reason no OpenSSL library uses, queued under ERR_LIB_USER to find out
# whether the two bindings share one error queue.
_MARKER_REASON = 0x1C5


#: Version number of the OpenSSL that pyOpenSSL runs on.
VERSION_NUMBER: int = _SSL.OPENSSL_VERSION_NUMBER


def version_text() -> str:
    """Return the version line of the OpenSSL that pyOpenSSL runs on."""
    return _SSL.OpenSSL_version(_SSL.OPENSSL_VERSION).decode("ascii")


if VERSION_NUMBER < 0x30000000:
    raise ImportError(
        "icsssl needs pyOpenSSL running on OpenSSL 3.0 or newer, but it "
        f"runs on {version_text()!r}; upgrade cryptography"
    )


def _unpack(code: int) -> tuple[int, int]:
    # The OpenSSL 3 layout; the import check above rules out older ones.
    if code & 0x80000000:
        return 2, code & 0x7FFFFFFF
    return (code >> 23) & 0xFF, code & 0x7FFFFF


def _detect_shared() -> bool:
    lib.ERR_set_mark()
    peer_lib.ERR_put_error(
        lib.ERR_LIB_USER, 0, _MARKER_REASON, peer_ffi.NULL, 0
    )
    code = lib.ERR_peek_last_error()
    shared = (
        lib.ERR_GET_LIB(code) == lib.ERR_LIB_USER
        and lib.ERR_GET_REASON(code) == _MARKER_REASON
    )
    # In the shared case this also removes the marker.
    lib.ERR_pop_to_mark()
    if not shared:
        # Remove the marker from pyOpenSSL's queue and keep what was there.
        queued = _drain_peer()
        if queued and _unpack(queued[-1]) == (
            lib.ERR_LIB_USER,
            _MARKER_REASON,
        ):
            queued = queued[:-1]
        _requeue_peer(queued)
    return shared


def _drain_peer() -> tuple[int, ...]:
    codes = []
    for _ in range(MAX_QUEUED_ERRORS):
        code = peer_lib.ERR_get_error()
        if code == 0:
            break
        codes.append(code)
    return tuple(codes)


def _requeue_peer(codes: tuple[int, ...]) -> None:
    # ERR_put_error packs (ERR_LIB_SYS, errno) back into the system-error
    # form, so every code comes back unchanged (OpenSSL 3 err_set_error).
    for code in codes:
        library, reason = _unpack(code)
        peer_lib.ERR_put_error(library, 0, reason, peer_ffi.NULL, 0)


def take_errors() -> tuple[int, ...]:
    """Return the codes queued in pyOpenSSL's instance, leaving the queue
    as it was.

    ``ffi.errno`` is kept too: pyOpenSSL reads it after this call to choose
    between ``SysCallError(errno)`` and ``SysCallError(-1, ...)``.
    """
    saved_errno = peer_ffi.errno
    codes = _drain_peer()
    _requeue_peer(codes)
    peer_ffi.errno = saved_errno
    return codes


def queue_is_empty() -> bool:
    """Return whether pyOpenSSL's error queue is empty in this thread,
    keeping ``ffi.errno`` for pyOpenSSL."""
    saved_errno = peer_ffi.errno
    empty: bool = peer_lib.ERR_peek_error() == 0
    peer_ffi.errno = saved_errno
    return empty


def decode_state(pointer: Any) -> str:
    """Return the text behind a :func:`state_if_queue_empty` result, or
    ""."""
    if pointer is None:
        return ""
    return _text(pointer) or ""


def protocol_version(connection: _SSL.Connection) -> int:
    """Return the negotiated protocol as its number (0x0304 is TLS 1.3)."""
    return int(peer_lib.SSL_version(connection._ssl))


def _text(pointer: Any) -> str | None:
    if pointer == peer_ffi.NULL:
        return None
    return peer_ffi.string(pointer).decode("utf-8", "replace")


def library_name(code: int) -> str:
    """Return pyOpenSSL's instance's name for the library of *code*."""
    library, _ = _unpack(code)
    return _text(peer_lib.ERR_lib_error_string(code)) or f"lib({library})"


def reason_text(code: int) -> str:
    """Return pyOpenSSL's instance's text for the reason of *code*."""
    library, reason = _unpack(code)
    if library == 2 and code & 0x80000000:
        return os.strerror(reason)
    text = _text(peer_lib.ERR_reason_error_string(code))
    if text is None:
        # Fall back on our instance, which uses the same reason numbers
        # (its texts may be worded differently).
        own = lib.ERR_reason_error_string(code)
        if own != ffi.NULL:
            return ffi.string(own).decode("utf-8", "replace")
        return f"reason({reason})"
    return text


def error_string(code: int) -> str:
    """Format *code* as ``ERR_error_string_n`` of pyOpenSSL's instance
    would (that function is not in pyOpenSSL's binding)."""
    return f"error:{code:08X}:{library_name(code)}::{reason_text(code)}"


def cipher_bits(connection: _SSL.Connection) -> tuple[int, int]:
    """Return the (secret, total) bits of the connection's cipher."""
    cipher = peer_lib.SSL_get_current_cipher(connection._ssl)
    if cipher == peer_ffi.NULL:
        return 0, 0
    total = peer_ffi.new("int *")
    secret: int = peer_lib.SSL_CIPHER_get_bits(cipher, total)
    return secret, int(total[0])


def state_string(connection: _SSL.Connection) -> str:
    """Return ``SSL_state_string_long`` of the connection."""
    return _text(peer_lib.SSL_state_string_long(connection._ssl)) or ""


def shared_ssl_pointer(connection: _SSL.Connection) -> Any:
    """Return the connection's ``SSL*`` as a pointer of our module.

    :raises RuntimeError: if the instances are separate, because our
        module would then read another library's struct.
    """
    if not SHARED:
        raise RuntimeError(
            "an SSL* of pyOpenSSL's OpenSSL cannot be used by icsssl's "
            "module: the two run on separate OpenSSL instances"
        )
    address = int(peer_ffi.cast("uintptr_t", connection._ssl))
    return ffi.cast("SSL *", address)


def live_connections() -> list[_SSL.Connection]:
    """Return every Connection alive in this process, from the weak map
    pyOpenSSL keeps to find a Connection from its ``SSL*`` in callbacks."""
    return list(_SSL.Connection._reverse_mapping.values())


def state_if_queue_empty(connection: _SSL.Connection) -> Any:
    """Return ``SSL_state_string_long`` as a pointer to OpenSSL's static
    text if pyOpenSSL's error queue is empty in this thread, else None;
    ``ffi.errno`` is kept for pyOpenSSL."""
    saved_errno = peer_ffi.errno
    if peer_lib.ERR_peek_error() != 0:
        peer_ffi.errno = saved_errno
        return None
    pointer = peer_lib.SSL_state_string_long(connection._ssl)
    peer_ffi.errno = saved_errno
    return pointer


def socket_of(connection: _SSL.Connection) -> Any:
    """Return the socket a connection was created with, or ``None``."""
    return connection._socket


def set_verify_host(connection: _SSL.Connection, host: str) -> None:
    """Make certificate verification check *host* (a DNS name or an IP
    address) on the connection, through ``X509_VERIFY_PARAM``."""
    params = peer_lib.SSL_get0_param(connection._ssl)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        try:
            encoded = host.encode("idna")
        except UnicodeError as error:
            raise ValueError(
                f"invalid host name {host!r}: {error}; give a DNS name such "
                "as example.com or an IP address"
            ) from None
        ok = peer_lib.X509_VERIFY_PARAM_set1_host(
            params, encoded, len(encoded)
        )
    else:
        packed = address.packed
        ok = peer_lib.X509_VERIFY_PARAM_set1_ip(params, packed, len(packed))
    if ok != 1:
        peer_lib.ERR_clear_error()
        raise ValueError(f"OpenSSL rejected {host!r} as a host to verify")


def verify_result(connection: _SSL.Connection) -> tuple[int, str]:
    """Return ``SSL_get_verify_result`` and its text."""
    result = int(peer_lib.SSL_get_verify_result(connection._ssl))
    text = _text(peer_lib.X509_verify_cert_error_string(result)) or ""
    return result, text


def trusted_root_count(connection: _SSL.Connection) -> int:
    """Return how many certificates and CRLs the connection's context
    store holds.  A hashed CA directory loads lazily, so its entries only
    count once a lookup has found them."""
    store = peer_lib.SSL_CTX_get_cert_store(connection.get_context()._context)
    if store == peer_ffi.NULL:
        return 0
    objects = peer_lib.X509_STORE_get0_objects(store)
    if objects == peer_ffi.NULL:
        return 0
    return int(peer_lib.sk_X509_OBJECT_num(objects))


def has_own_certificate(connection: _SSL.Connection) -> bool:
    """Return whether the connection has a certificate of its own."""
    return bool(peer_lib.SSL_get_certificate(connection._ssl) != peer_ffi.NULL)


#: True when pyOpenSSL and icsssl's module run on one OpenSSL instance.
SHARED: bool = _detect_shared()
