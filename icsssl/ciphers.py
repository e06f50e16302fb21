"""Cipher descriptions from the system OpenSSL (``SSL_CIPHER_description``).

A negotiated cipher's ``SSL_CIPHER*`` belongs to pyOpenSSL's OpenSSL
instance, which may not be ours, so ciphers are found here by name or id
in a table of every cipher our libssl implements.  The table is built on first
use (about 65,000 ``SSL_CIPHER_find`` calls in C, a few milliseconds).
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from icsssl._openssl import ffi, lib


@dataclasses.dataclass(frozen=True)
class CipherDescription:
    """A cipher suite as ``SSL_CIPHER_description`` describes it.

    ``key_exchange``, ``authentication``, ``encryption`` and ``mac`` are
    the ``Kx=``, ``Au=``, ``Enc=`` and ``Mac=`` fields; ICS calls them
    ``SslKeyExchange``, ``SslKeyAuth``, ``SslEncryption`` and
    ``SslMessAuth``.  TLS 1.3 suites have ``any`` in the first two.
    """

    name: str
    standard_name: str
    protocol_id: int
    version: str
    key_exchange: str
    authentication: str
    encryption: str
    mac: str
    secret_bits: int
    total_bits: int
    description: str


def parse_description(text: str) -> dict[str, str]:
    """Split an ``SSL_CIPHER_description`` line into its fields.

    Returns a dict with ``name`` and ``version`` (the first two words) and
    one entry per ``Key=value`` word, keyed by ``Key``.

    :raises ValueError: if *text* does not have that shape.
    """
    if not isinstance(text, str):
        raise TypeError(
            "text must be an SSL_CIPHER_description line (str), got "
            f"{type(text).__name__}"
        )
    words = text.split()
    if len(words) < 2:
        raise ValueError(
            f"not an SSL_CIPHER_description line: {text!r}; expected "
            "'NAME VERSION Kx=... Au=... Enc=... Mac=...'"
        )
    fields = {"name": words[0], "version": words[1]}
    for word in words[2:]:
        key, separator, value = word.partition("=")
        if not separator:
            raise ValueError(
                f"not an SSL_CIPHER_description line: {text!r}; the word "
                f"{word!r} is not Key=value"
            )
        fields[key] = value
    return fields


def _string(pointer: Any) -> str:
    if pointer == ffi.NULL:
        return ""
    return str(ffi.string(pointer).decode("ascii"))


def _describe(cipher: Any) -> CipherDescription:
    buffer = ffi.new("char[]", 256)
    lib.SSL_CIPHER_description(cipher, buffer, len(buffer))
    line = ffi.string(buffer).decode("ascii").rstrip("\n")
    fields = parse_description(line)
    total = ffi.new("int *")
    secret = lib.SSL_CIPHER_get_bits(cipher, total)
    return CipherDescription(
        name=_string(lib.SSL_CIPHER_get_name(cipher)),
        standard_name=_string(lib.SSL_CIPHER_standard_name(cipher)),
        protocol_id=int(lib.SSL_CIPHER_get_protocol_id(cipher)),
        version=fields["version"],
        key_exchange=fields.get("Kx", ""),
        authentication=fields.get("Au", ""),
        encryption=fields.get("Enc", ""),
        mac=fields.get("Mac", ""),
        secret_bits=int(secret),
        total_bits=int(total[0]),
        description=line,
    )


class _CipherTable:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_key: dict[object, CipherDescription] | None = None

    def lookup(self) -> dict[object, CipherDescription]:
        table = self._by_key
        if table is None:
            with self._lock:
                if self._by_key is None:
                    self._by_key = self._build()
                table = self._by_key
        return table

    @staticmethod
    def _build() -> dict[object, CipherDescription]:
        # Errors raised while building are dropped by popping to this mark,
        # which keeps the ones the caller had queued.
        lib.ERR_set_mark()
        context = lib.SSL_CTX_new(lib.TLS_method())
        if context == ffi.NULL:
            lib.ERR_pop_to_mark()
            raise RuntimeError("SSL_CTX_new failed in the system OpenSSL")
        ssl = lib.SSL_new(context)
        try:
            if ssl == ffi.NULL:
                raise RuntimeError("SSL_new failed in the system OpenSSL")
            found = ffi.new("const SSL_CIPHER *[]", 1024)
            count = lib.icsssl_all_ciphers(ssl, found, len(found))
            table: dict[object, CipherDescription] = {}
            for index in range(count):
                cipher = _describe(found[index])
                table[cipher.name] = cipher
                if cipher.standard_name:
                    table[cipher.standard_name] = cipher
                table[cipher.protocol_id] = cipher
            return table
        finally:
            lib.SSL_free(ssl)
            lib.SSL_CTX_free(context)
            lib.ERR_pop_to_mark()


_TABLE = _CipherTable()


def cipher_description(cipher: str | int) -> CipherDescription:
    """Describe a cipher suite known to the system OpenSSL.

    :param cipher: the OpenSSL name (``ECDHE-RSA-AES128-GCM-SHA256``), the
        standard name (``TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256``) or the
        two-byte IANA id (``0xC02F``).
    :raises KeyError: if the system OpenSSL has no such cipher.
    :raises TypeError: if *cipher* is neither a str nor an int.
    """
    if isinstance(cipher, bool) or not isinstance(cipher, (str, int)):
        raise TypeError(
            "cipher must be a name (str) or a two-byte IANA id (int), got "
            f"{type(cipher).__name__} {cipher!r}"
        )
    if isinstance(cipher, int) and not 0 <= cipher <= 0xFFFF:
        raise ValueError(
            f"cipher id must be between 0 and 0xFFFF, got {cipher:#x}"
        )
    try:
        return _TABLE.lookup()[cipher]
    except KeyError:
        shown = cipher if isinstance(cipher, str) else f"{cipher:#06x}"
        raise KeyError(
            f"the system OpenSSL has no cipher {shown!r}; `openssl ciphers "
            "-V ALL:COMPLEMENTOFALL` lists the ones it has"
        ) from None


def all_ciphers() -> list[CipherDescription]:
    """Return every cipher suite the system OpenSSL implements, by IANA
    id."""
    table = _TABLE.lookup()
    ids = sorted(key for key in table if isinstance(key, int))
    return [table[key] for key in ids]


def describe_pointer(cipher: Any) -> CipherDescription:
    """Describe an ``SSL_CIPHER*`` of our module's instance.

    :raises ValueError: if *cipher* is NULL.
    """
    if cipher == ffi.NULL:
        raise ValueError("cipher is a NULL SSL_CIPHER pointer")
    return _describe(cipher)
