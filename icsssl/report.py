"""The handshake report: what was negotiated, or why it failed."""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

from OpenSSL import SSL as _SSL

from icsssl import _pyopenssl, ciphers, diagnosis, messages
from icsssl._openssl import ffi, lib

diagnosis.set_error_formatter(_pyopenssl.error_string)


@dataclasses.dataclass(frozen=True)
class HandshakeReport:
    """The outcome of a finished handshake: what it negotiated, or why it
    failed.

    Field names follow Delphi ICS's ``TSslWSocket`` properties; see
    :class:`Connection` for the ICS spelling of each.
    """

    succeeded: bool
    err_code: int
    error: int
    errors: tuple[int, ...]
    message: str
    kind: str = "ICSSSL_OK"
    ics_message: str = ""
    version: str = ""
    cipher: str = ""
    cipher_description: str = ""
    key_exchange: str = ""
    authentication: str = ""
    encryption: str = ""
    mac: str = ""
    secret_bits: int = 0
    total_bits: int = 0
    group: str = ""

    def as_dict(self) -> dict[str, Any]:
        """Return the report as a dict of str, int and list values."""
        report = dataclasses.asdict(self)
        report["errors"] = list(self.errors)
        return report


def _group_name(connection: _SSL.Connection) -> str:
    """Return the key-exchange group of a finished handshake, or ''."""
    get_group_name = getattr(connection, "get_group_name", None)
    if get_group_name is not None:
        try:
            return get_group_name() or ""
        except NotImplementedError:
            pass  # pyOpenSSL's OpenSSL is older than 3.2.
    if not _pyopenssl.SHARED:
        return ""
    ssl = _pyopenssl.shared_ssl_pointer(connection)
    if lib.ICSSSL_HAS_GET0_GROUP_NAME:
        name = lib.icsssl_get0_group_name(ssl)
    else:
        group = lib.SSL_get_negotiated_group(ssl)
        name = lib.SSL_group_to_name(ssl, group) if group else ffi.NULL
    if name == ffi.NULL:
        return ""
    return str(ffi.string(name).decode("ascii"))


def _describe_cipher(
    connection: _SSL.Connection, name: str
) -> ciphers.CipherDescription | None:
    if _pyopenssl.SHARED:
        ssl = _pyopenssl.shared_ssl_pointer(connection)
        cipher = lib.SSL_get_current_cipher(ssl)
        if cipher == ffi.NULL:
            return None
        return ciphers.describe_pointer(cipher)
    try:
        return ciphers.cipher_description(name)
    except KeyError:
        # NOTE: pyOpenSSL's OpenSSL has a cipher the system one lacks, so
        # the description fields stay empty.
        return None


def _peer_signature(connection: _SSL.Connection) -> str:
    """Return the signature scheme the peer signed the handshake with."""
    if not _pyopenssl.SHARED:
        return (
            "not available: pyOpenSSL runs on another OpenSSL instance than "
            "icsssl's module"
        )
    ssl = _pyopenssl.shared_ssl_pointer(connection)
    kind = ffi.new("int *")
    digest = ffi.new("int *")
    if lib.SSL_get_peer_signature_type_nid(ssl, kind) != 1:
        return ""
    name = lib.OBJ_nid2sn(kind[0])
    text = "" if name == ffi.NULL else ffi.string(name).decode("ascii")
    if lib.SSL_get_peer_signature_nid(ssl, digest) == 1 and digest[0]:
        digest_name = lib.OBJ_nid2sn(digest[0])
        if digest_name != ffi.NULL:
            text += f" with {ffi.string(digest_name).decode('ascii')}"
    return text


def details(
    connection: _SSL.Connection,
    report: HandshakeReport,
    facts: Optional[diagnosis.Facts],
) -> dict[str, Any]:
    """Return the longer report: *report* plus the OpenSSL state, verify
    result, SNI, ALPN and the peer's certificate and signature.  *facts*
    are those of a failed handshake, ``None`` after a success."""
    details = report.as_dict()
    if facts is not None:
        details["state"] = facts.state
        details["verify_result"] = facts.verify_result
        details["verify_text"] = facts.verify_text
        details["server_name"] = facts.server_name
        details["alpn_offered"] = [
            p.decode("ascii", "replace") for p in facts.alpn_offered
        ]
        details["bytes_received"] = len(facts.received)
        if facts.peer_chain:
            leaf = facts.peer_chain[0]
            details["peer_subject"] = leaf.subject
            details["peer_issuer"] = leaf.issuer
            details["peer_not_before"] = leaf.not_before.isoformat()
            details["peer_not_after"] = leaf.not_after.isoformat()
            details["peer_key"] = leaf.key_description
        return details
    details["state"] = _pyopenssl.state_string(connection)
    details["verify_result"], details["verify_text"] = (
        _pyopenssl.verify_result(connection)
    )
    server_name = connection.get_servername()
    details["server_name"] = (
        None if server_name is None else server_name.decode("ascii", "replace")
    )
    details["alpn"] = connection.get_alpn_proto_negotiated().decode(
        "ascii", "replace"
    )
    # pyOpenSSL's own X509, converted by describe_any: it may fail to
    # parse a certificate OpenSSL accepted.
    certificate = connection.get_peer_certificate()
    if certificate is not None:
        from icsssl import _certinfo

        leaf = _certinfo.describe_any(certificate)
        details["peer_subject"] = leaf.subject
        details["peer_issuer"] = leaf.issuer
        details["peer_not_before"] = leaf.not_before.isoformat()
        details["peer_not_after"] = leaf.not_after.isoformat()
        details["peer_key"] = leaf.key_description
    details["peer_signature"] = _peer_signature(connection)
    return details


def success_report(connection: _SSL.Connection) -> HandshakeReport:
    """Return the report of a connection whose handshake succeeded."""
    version = connection.get_protocol_version_name()
    name = connection.get_cipher_name() or ""
    secret_bits, total_bits = _pyopenssl.cipher_bits(connection)
    group = _group_name(connection)
    described = _describe_cipher(connection, name)
    if described is None:
        description = key_exchange = authentication = ""
        encryption = mac = ""
    else:
        description = described.description
        key_exchange = described.key_exchange
        authentication = described.authentication
        encryption = described.encryption
        mac = described.mac
    shown_exchange = key_exchange
    if key_exchange in ("any", "") and group:
        shown_exchange = group
    message = messages.success_message(
        version,
        name,
        shown_exchange or "unknown",
        encryption or "unknown",
        mac or "unknown",
    )
    return HandshakeReport(
        succeeded=True,
        err_code=0,
        error=0,
        errors=(),
        message=message,
        kind="ICSSSL_OK",
        ics_message=message,
        version=version,
        cipher=name,
        cipher_description=description,
        key_exchange=key_exchange,
        authentication=authentication,
        encryption=encryption,
        mac=mac,
        secret_bits=secret_bits,
        total_bits=total_bits,
        group=group,
    )


def failure_report(
    codes: tuple[int, ...], facts: diagnosis.Facts
) -> HandshakeReport:
    """Return the report of a handshake that failed with *codes*."""
    first = codes[0] if codes else 0
    found = diagnosis.diagnose(facts)
    return HandshakeReport(
        succeeded=False,
        err_code=messages.failure_err_code(first),
        error=first,
        errors=codes,
        message=found.message,
        kind=found.name,
        ics_message=found.ics_message,
    )
