"""Read the first bytes a TLS peer sent: a ClientHello, or something else.

Only what a diagnosis needs is parsed: record and handshake headers, the
ClientHello's versions, groups, key shares, ALPN, SNI and whether it has
``signature_algorithms``.  Every length is checked against the bytes
present, so truncated or hostile input gives a partial result, never an
exception (RFC 8446 section 4.1.2 gives the layout).
"""

from __future__ import annotations

import dataclasses
import re

RECORD_HANDSHAKE = 22
RECORD_ALERT = 21
HANDSHAKE_CLIENT_HELLO = 1
HANDSHAKE_SERVER_HELLO = 2
HANDSHAKE_CERTIFICATE_REQUEST = 13

EXT_SERVER_NAME = 0
EXT_SUPPORTED_GROUPS = 10
EXT_SIGNATURE_ALGORITHMS = 13
EXT_ALPN = 16
EXT_SUPPORTED_VERSIONS = 43
EXT_KEY_SHARE = 51

VERSION_NAMES = {
    0x0300: "SSLv3",
    0x0301: "TLSv1",
    0x0302: "TLSv1.1",
    0x0303: "TLSv1.2",
    0x0304: "TLSv1.3",
}

# IANA "TLS Supported Groups" names, as OpenSSL prints them.
GROUP_NAMES = {
    0x0017: "secp256r1",
    0x0018: "secp384r1",
    0x0019: "secp521r1",
    0x001D: "x25519",
    0x001E: "x448",
    0x001A: "brainpoolP256r1",
    0x001B: "brainpoolP384r1",
    0x001C: "brainpoolP512r1",
    0x0100: "ffdhe2048",
    0x0101: "ffdhe3072",
    0x0102: "ffdhe4096",
    0x0103: "ffdhe6144",
    0x0104: "ffdhe8192",
    0x0200: "MLKEM512",
    0x0201: "MLKEM768",
    0x0202: "MLKEM1024",
    0x11EB: "SecP256r1MLKEM768",
    0x11EC: "X25519MLKEM768",
    0x11ED: "SecP384r1MLKEM1024",
}

#: Groups whose key share makes a ClientHello exceed one TCP segment.
POST_QUANTUM_GROUPS = frozenset(
    {0x0200, 0x0201, 0x0202, 0x11EB, 0x11EC, 0x11ED}
)


def _check_bytes(data: object, name: str = "data") -> bytes:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(
            f"{name} must be bytes received from a peer, got "
            f"{type(data).__name__}"
        )
    return bytes(data)


def _check_number(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"{name} must be between 0 and 0xFFFF, got {value}")
    return value


def version_name(version: int) -> str:
    """Return ``TLSv1.2`` for 0x0303, or the hex value if unknown."""
    _check_number(version, "version")
    return VERSION_NAMES.get(version, f"0x{version:04X}")


def group_name(group: int) -> str:
    """Return the IANA name of a TLS group id, or its hex value."""
    _check_number(group, "group")
    return GROUP_NAMES.get(group, f"0x{group:04X}")


@dataclasses.dataclass(frozen=True)
class ClientHello:
    """The offers of a ClientHello; fields stay empty where the bytes ran
    out."""

    size: int = 0
    legacy_version: int = 0
    versions: tuple[int, ...] = ()
    groups: tuple[int, ...] = ()
    key_shares: tuple[int, ...] = ()
    alpn: tuple[bytes, ...] = ()
    server_name: str = ""
    has_signature_algorithms: bool = False
    complete: bool = False

    @property
    def offered_versions(self) -> tuple[int, ...]:
        """The versions offered: supported_versions, else legacy_version."""
        if self.versions:
            return self.versions
        return (self.legacy_version,) if self.legacy_version else ()


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def remaining(self) -> int:
        return len(self.data) - self.offset

    def take(self, size: int) -> bytes:
        if size < 0 or self.remaining() < size:
            raise _Truncated
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def number(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def vector(self, length_size: int) -> _Reader:
        return _Reader(self.take(self.number(length_size)))


class _Truncated(Exception):
    pass


def is_tls_record(data: bytes) -> bool:
    """Return whether *data* starts like a TLS record (type 20-24,
    version 3.x)."""
    data = _check_bytes(data)
    return len(data) >= 3 and 20 <= data[0] <= 24 and data[1] == 3


def handshake_messages(data: bytes) -> bytes:
    """Return the concatenated bodies of the handshake records at the
    start of *data*, stopping at the first other record."""
    data = _check_bytes(data)
    reader = _Reader(data)
    body = b""
    while reader.remaining() >= 5:
        if reader.data[reader.offset] != RECORD_HANDSHAKE:
            break
        reader.take(3)
        length = reader.number(2)
        available = min(length, reader.remaining())
        body += reader.take(available)
        if available < length:
            break
    return body


def handshake_types(data: bytes) -> tuple[int, ...]:
    """Return the types of the plaintext handshake messages at the start of
    *data*, in order, stopping where the bytes run out."""
    data = _check_bytes(data)
    if not is_tls_record(data):
        return ()
    messages = handshake_messages(data)
    found = []
    offset = 0
    while offset + 4 <= len(messages):
        found.append(messages[offset])
        length = int.from_bytes(messages[offset + 1 : offset + 4], "big")
        offset += 4 + length
    return tuple(found)


def parse_client_hello(data: bytes) -> ClientHello | None:
    """Parse the ClientHello at the start of *data*, a peer's first bytes.

    :return: ``None`` if *data* does not start with a handshake record
        holding a ClientHello.
    """
    data = _check_bytes(data)
    if len(data) < 6 or data[0] != RECORD_HANDSHAKE or data[1] != 3:
        return None
    messages = handshake_messages(data)
    if not messages or messages[0] != HANDSHAKE_CLIENT_HELLO:
        return None
    fields: dict[str, object] = {}
    try:
        reader = _Reader(messages)
        reader.take(1)
        length = reader.number(3)
        fields["size"] = 5 + 4 + length
        body = _Reader(reader.data[reader.offset : reader.offset + length])
        fields["legacy_version"] = body.number(2)
        body.take(32)
        body.vector(1)  # legacy_session_id
        body.vector(2)  # cipher_suites
        body.vector(1)  # legacy_compression_methods
        if body.remaining() == 0:
            fields["complete"] = reader.remaining() >= length
            return ClientHello(**fields)  # type: ignore[arg-type]
        extensions = body.vector(2)
        while extensions.remaining() >= 4:
            kind = extensions.number(2)
            _read_extension(kind, extensions.vector(2), fields)
        fields["complete"] = reader.remaining() >= length
    except _Truncated:
        pass
    return ClientHello(**fields)  # type: ignore[arg-type]


def _read_extension(
    kind: int, data: _Reader, fields: dict[str, object]
) -> None:
    if kind == EXT_SUPPORTED_VERSIONS:
        versions = data.vector(1)
        fields["versions"] = tuple(
            versions.number(2) for _ in range(versions.remaining() // 2)
        )
    elif kind == EXT_SUPPORTED_GROUPS:
        groups = data.vector(2)
        fields["groups"] = tuple(
            groups.number(2) for _ in range(groups.remaining() // 2)
        )
    elif kind == EXT_KEY_SHARE:
        shares = data.vector(2)
        found = []
        while shares.remaining() >= 4:
            found.append(shares.number(2))
            shares.vector(2)
        fields["key_shares"] = tuple(found)
    elif kind == EXT_ALPN:
        names = data.vector(2)
        protocols = []
        while names.remaining() >= 1:
            protocols.append(names.vector(1).data)
        fields["alpn"] = tuple(protocols)
    elif kind == EXT_SERVER_NAME:
        names = data.vector(2)
        if names.remaining() >= 3 and names.number(1) == 0:
            fields["server_name"] = names.vector(2).data.decode(
                "ascii", "replace"
            )
    elif kind == EXT_SIGNATURE_ALGORITHMS:
        fields["has_signature_algorithms"] = True


def record_alert(data: bytes) -> tuple[int, int] | None:
    """Return (level, description) of a plaintext alert record at the start
    of *data*, or ``None``."""
    data = _check_bytes(data)
    if len(data) >= 7 and data[0] == RECORD_ALERT and data[1] == 3:
        return data[5], data[6]
    return None


def server_hello_seen(data: bytes) -> bool:
    """Return whether *data* starts with a ServerHello."""
    data = _check_bytes(data)
    messages = handshake_messages(data) if is_tls_record(data) else b""
    return bool(messages) and messages[0] == HANDSHAKE_SERVER_HELLO


_PRINTABLE = re.compile(rb"[\x20-\x7e]")


def escape(data: bytes, limit: int = 48) -> str:
    """Return *data* as printable ASCII, other bytes as ``\\xNN``, cut at
    *limit* bytes with an ellipsis."""
    data = _check_bytes(data)
    shown = data[:limit]
    text = "".join(
        chr(byte)
        if _PRINTABLE.fullmatch(bytes([byte])) and byte != 0x5C
        else ("\\\\" if byte == 0x5C else f"\\x{byte:02x}")
        for byte in shown
    )
    return text + ("..." if len(data) > limit else "")


def first_line(data: bytes, limit: int = 80) -> str:
    """Return the first line of *data*, escaped, without its line end."""
    data = _check_bytes(data)
    line = data.split(b"\n", 1)[0].rstrip(b"\r")
    return escape(line, limit)
