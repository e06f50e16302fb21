"""Name the real cause of a failed handshake.

:func:`diagnose` turns what a connection recorded (:class:`Facts`) into a
:class:`Diagnosis`: a stable name such as ``ICSSSL_PLAIN_HTTP_SERVER`` and
a message that starts with ICS's text (or OpenSSL's string where ICS has no
text) and adds the cause after a colon.

Decisions use library and reason numbers, the X509 verify result, alert
numbers and the bytes the peer sent, never OpenSSL's wording, which
differs between versions.  One failure can queue several codes, so
:func:`telling_code` picks the one that names the cause: OpenSSL 4 queues
``record layer failure`` after the real reason, and a decryption failure
queues many.
"""

from __future__ import annotations

import dataclasses
import datetime
import errno
import re
from typing import Callable, Optional, Sequence

from icsssl import errors, messages, tlswire
from icsssl.catalogue import (  # noqa: F401 - names of the kinds
    CATALOGUE,
    Kind,
    OK,
    HTTP_REQUEST,
    HTTPS_PROXY_REQUEST,
    PLAIN_HTTP_SERVER,
    SMTP_SERVER,
    FTP_SERVER,
    POP3_SERVER,
    IMAP_SERVER,
    SSH_SERVER,
    NOT_TLS,
    PROTOCOL_VERSION_REJECTED,
    UNSUPPORTED_PROTOCOL,
    LEGACY_VERSION_INTERNAL_ERROR,
    NO_SHARED_CIPHER,
    PEER_HANDSHAKE_FAILURE,
    NO_SHARED_GROUP,
    NO_SIGNATURE_ALGORITHM,
    CERT_SELF_SIGNED,
    CERT_NO_TRUSTED_ROOTS,
    CERT_CHAIN_INCOMPLETE,
    CERT_UNKNOWN_ISSUER,
    CERT_SELF_SIGNED_IN_CHAIN,
    CERT_EXPIRED,
    CERT_NOT_YET_VALID,
    CERT_HOSTNAME_MISMATCH,
    CERT_KEY_TOO_WEAK,
    CERT_DIGEST_TOO_WEAK,
    CERT_STRICT_CHECK,
    CERT_VERIFY_FAILED,
    PEER_UNKNOWN_CA,
    PEER_BAD_CERTIFICATE,
    PEER_UNSUPPORTED_CERTIFICATE,
    PEER_CERTIFICATE_EXPIRED,
    PEER_CERTIFICATE_UNKNOWN,
    PEER_CERTIFICATE_REQUIRED,
    CLOSED_BEFORE_REPLY,
    CONNECTION_RESET,
    CLOSED_MID_HANDSHAKE,
    CLOSED_BY_CLIENT,
    LARGE_HELLO_DROPPED,
    HANDSHAKE_TIMEOUT,
    DH_KEY_TOO_SMALL,
    UNSAFE_RENEGOTIATION,
    NO_APPLICATION_PROTOCOL,
    UNRECOGNIZED_NAME,
    BAD_RECORD,
    FORKED_CONNECTION,
    LOCAL_SOCKET_CLOSED,
    BAD_RECORD_MAC,
    OWN_CERTIFICATE_PROBLEM,
    ALERT_RECEIVED,
    UNKNOWN_PROTOCOL,
    CLOSED_UNEXPECTEDLY,
    PYTHON_EXCEPTION,
    OPENSSL_ERROR,
)

# Reasons of ERR_LIB_SSL (openssl/sslerr.h, the same numbers in 3.0-4.0).
R_NO_SUITABLE_KEY_SHARE = 101
R_BAD_PACKET_LENGTH = 115
R_NO_SUITABLE_SIGNATURE_ALGORITHM = 118
R_CERTIFICATE_VERIFY_FAILED = 134
R_DATA_LENGTH_TOO_LONG = 146
R_DECRYPTION_FAILED = 147
R_ENCRYPTED_LENGTH_TOO_LONG = 150
R_HTTPS_PROXY_REQUEST = 155
R_HTTP_REQUEST = 156
R_LENGTH_MISMATCH = 159
R_NO_SHARED_CIPHER = 193
R_PACKET_LENGTH_TOO_LONG = 198
R_UNEXPECTED_MESSAGE = 244
R_UNEXPECTED_RECORD = 245
R_UNKNOWN_PROTOCOL = 252
R_UNSUPPORTED_PROTOCOL = 258
R_WRONG_VERSION_NUMBER = 267
R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC = 281
R_UNEXPECTED_EOF = 294
R_RECORD_LAYER_FAILURE = 313
R_UNSAFE_LEGACY_RENEGOTIATION = 338
R_NO_SHARED_SIGNATURE_ALGORITHMS = 376
R_DH_KEY_TOO_SMALL = 394
R_CA_KEY_TOO_SMALL = 397
R_CA_MD_TOO_WEAK = 398
R_EE_KEY_TOO_SMALL = 399
R_NO_SHARED_GROUPS = 410
R_ALERT_BASE = 1000

# TLS alert descriptions (RFC 8446 section 6, RFC 5246 section 7.2).
ALERT_NAMES = {
    0: "close_notify",
    10: "unexpected_message",
    20: "bad_record_mac",
    21: "decryption_failed",
    22: "record_overflow",
    30: "decompression_failure",
    40: "handshake_failure",
    41: "no_certificate",
    42: "bad_certificate",
    43: "unsupported_certificate",
    44: "certificate_revoked",
    45: "certificate_expired",
    46: "certificate_unknown",
    47: "illegal_parameter",
    48: "unknown_ca",
    49: "access_denied",
    50: "decode_error",
    51: "decrypt_error",
    60: "export_restriction",
    70: "protocol_version",
    71: "insufficient_security",
    80: "internal_error",
    86: "inappropriate_fallback",
    90: "user_canceled",
    100: "no_renegotiation",
    109: "missing_extension",
    110: "unsupported_extension",
    111: "certificate_unobtainable",
    112: "unrecognized_name",
    113: "bad_certificate_status_response",
    114: "bad_certificate_hash_value",
    115: "unknown_psk_identity",
    116: "certificate_required",
    120: "no_application_protocol",
}

# X509 verify results (openssl/x509_vfy.h).
V_UNABLE_TO_GET_ISSUER_CERT = 2
V_CERT_NOT_YET_VALID = 9
V_CERT_HAS_EXPIRED = 10
V_DEPTH_ZERO_SELF_SIGNED_CERT = 18
V_SELF_SIGNED_CERT_IN_CHAIN = 19
V_UNABLE_TO_GET_ISSUER_CERT_LOCALLY = 20
V_UNABLE_TO_VERIFY_LEAF_SIGNATURE = 21
V_HOSTNAME_MISMATCH = 62
V_IP_ADDRESS_MISMATCH = 64
V_EE_KEY_TOO_SMALL = 66
V_CA_KEY_TOO_SMALL = 67
V_CA_MD_TOO_WEAK = 68

# The strict RFC 5280 checks of X509_V_FLAG_X509_STRICT (verify 85-92).
STRICT_CHECKS = {
    85: "has no Authority Key Identifier extension",
    86: "has no Subject Key Identifier extension",
    87: "has an empty subjectAltName",
    88: "has an empty subject but a non-critical subjectAltName",
    89: "is a CA whose basicConstraints is not critical",
    90: "marks its Authority Key Identifier critical",
    91: "marks its Subject Key Identifier critical",
    92: "is a CA certificate without a keyUsage extension",
}

#: A clock this far off the certificate's dates is more likely wrong than
#: the certificate.
CLOCK_HINT_AFTER = datetime.timedelta(days=365)

#: Above this size a ClientHello no longer fits one TCP segment of a
#: typical 1500-byte MTU path.
LARGE_CLIENT_HELLO = 1400


@dataclasses.dataclass(frozen=True)
class PeerCertificate:
    """The facts of one certificate the peer sent, taken with
    cryptography's x509 API."""

    subject: str
    issuer: str
    not_before: datetime.datetime
    not_after: datetime.datetime
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    has_subject_alt_name: bool = False
    common_name: str = ""
    self_signed: bool = False
    key_description: str = ""
    signature_hash: str = ""
    missing_extensions: tuple[int, ...] = ()


@dataclasses.dataclass(frozen=True)
class Facts:
    """The facts a connection recorded when its handshake failed."""

    role: str = ""
    codes: tuple[int, ...] = ()
    exception: Optional[BaseException] = None
    errno: int = 0
    received: bytes = b""
    received_tail: bytes = b""
    received_windows: tuple[bytes, ...] = ()
    certificate_authorities_requested: int = 0
    received_any: bool = False
    sent: bytes = b""
    client_hello_size: int = 0
    server_name: Optional[str] = None
    host: Optional[str] = None
    alpn_offered: tuple[bytes, ...] = ()
    verify_result: int = 0
    verify_text: str = ""
    peer_chain: tuple[PeerCertificate, ...] = ()
    trusted_roots: int = -1
    sent_client_certificate: bool = False
    own_certificate_problem: str = ""
    handshake_pid: int = 0
    current_pid: int = 0
    after_handshake: bool = False
    state: str = ""
    now: Optional[datetime.datetime] = None


@dataclasses.dataclass(frozen=True)
class Diagnosis:
    """The name and message of a handshake outcome."""

    name: str
    message: str
    ics_message: str
    code: int


def _library(code: int) -> int:
    return errors.ERR_GET_LIB(code)


def _reason(code: int) -> int:
    return errors.ERR_GET_REASON(code)


def telling_code(codes: Sequence[int]) -> int:
    """Return the queued code that names the cause of the failure.

    That is the first SSL-library code other than the ``record layer
    failure`` that OpenSSL 4 appends; else the first code; else 0.
    """
    for code in codes:
        if (
            _library(code) == errors.ERR_LIB_SSL
            and _reason(code) != R_RECORD_LAYER_FAILURE
        ):
            return code
    return codes[0] if codes else 0


def _quote(data: bytes) -> str:
    return f'"{tlswire.first_line(data)}"'


def _sent_by_peer(facts: Facts) -> str:
    peer = "server" if facts.role == "client" else "client"
    return peer


def _recognise_plaintext(data: bytes) -> tuple[str, str]:
    """Name what a non-TLS peer sent: (kind, description)."""
    line = data.split(b"\n", 1)[0]
    if data.startswith(b"HTTP/"):
        return (
            PLAIN_HTTP_SERVER,
            f"the server answered in plain HTTP ({_quote(data)})",
        )
    if data[:64].lstrip().lower().startswith((b"<!doctype html", b"<html")):
        # An HTTP/0.9-style reply: a server that took the ClientHello for a
        # request line without a version sends the page alone.
        return PLAIN_HTTP_SERVER, (
            "the server answered in plain HTTP with an HTML page "
            f"({_quote(data.lstrip())})"
        )
    if data.startswith(b"SSH-"):
        return SSH_SERVER, f"the server sent an SSH banner ({_quote(data)})"
    if data.startswith(b"+OK"):
        return POP3_SERVER, f"the server sent a POP3 greeting ({_quote(data)})"
    if data.startswith(b"* OK") or data.startswith(b"* PREAUTH"):
        return (
            IMAP_SERVER,
            f"the server sent an IMAP greeting ({_quote(data)})",
        )
    if line[:4] in (b"220 ", b"220-"):
        upper = line.upper()
        if b"FTP" in upper and b"SMTP" not in upper:
            return (
                FTP_SERVER,
                f"the server sent an FTP greeting ({_quote(data)})",
            )
        return (
            SMTP_SERVER,
            f"the server sent an SMTP greeting ({_quote(data)})",
        )
    if line[:4] in (b"421 ", b"554 "):
        return SMTP_SERVER, f"the server sent an SMTP refusal ({_quote(data)})"
    return NOT_TLS, f"the peer sent bytes that are not TLS ({_quote(data)})"


_HTTP_STATUS_TAIL = re.compile(rb"^\d\.\d \d{3}[ \r\n]")
# "SSH-2" is the five bytes OpenSSL took, so the tail starts at ".0-".
_SSH_TAIL = re.compile(rb"^\.\d+-")

# Words a plain-text greeting line usually carries, checked in this order.
_GREETING_WORDS = (
    (b"ESMTP", SMTP_SERVER, "an SMTP greeting"),
    (b"SMTP", SMTP_SERVER, "an SMTP greeting"),
    (b"FTP", FTP_SERVER, "an FTP greeting"),
    (b"POP3", POP3_SERVER, "a POP3 greeting"),
    (b"IMAP", IMAP_SERVER, "an IMAP greeting"),
)


def _recognise_tail(tail: bytes) -> tuple[str, str]:
    """Name what a non-TLS peer sent from its bytes after the first five,
    which OpenSSL consumed as a record header before rejecting it."""
    # NOTE: a greeting whose telling word lies in those five bytes, such
    # as POP3's "+OK Dovecot ready.", is reported as ICSSSL_NOT_TLS.
    shown = f'"...{tlswire.first_line(tail)}"'
    if _HTTP_STATUS_TAIL.match(tail):
        return PLAIN_HTTP_SERVER, (
            "the server answered in plain HTTP "
            f'("HTTP/{tlswire.first_line(tail)}")'
        )
    if _SSH_TAIL.match(tail):
        return SSH_SERVER, (
            "the server sent an SSH banner "
            f'("SSH-2{tlswire.first_line(tail)}")'
        )
    if b"<html" in tail[:256].lower() or tail.lower().startswith(b"type html"):
        return PLAIN_HTTP_SERVER, (
            f"the server answered in plain HTTP with an HTML page ({shown})"
        )
    line = tail.split(b"\n", 1)[0].upper()
    for word, kind, what in _GREETING_WORDS:
        if word in line:
            return kind, f"the server sent {what} ({shown})"
    return NOT_TLS, f"the peer sent bytes that are not TLS ({shown})"


_HTTP_METHODS = (
    b"GET",
    b"HEAD",
    b"POST",
    b"PUT",
    b"DELETE",
    b"PATCH",
    b"OPTIONS",
    b"TRACE",
)


def _http_method(data: bytes) -> Optional[bytes]:
    for method in _HTTP_METHODS + (b"CONNECT",):
        if data.startswith(method + b" "):
            return method
    return None


def _versions(versions: Sequence[int]) -> str:
    names = [tlswire.version_name(version) for version in versions]
    return ", ".join(names) if names else "unknown"


def _chain_entry(facts: Facts, depth: int) -> str:
    if 0 <= depth < len(facts.peer_chain):
        return f"depth {depth}, {facts.peer_chain[depth].subject}"
    return f"depth {depth}"


def _utc(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _first_expired(facts: Facts, now: datetime.datetime) -> int:
    for depth, certificate in enumerate(facts.peer_chain):
        if certificate.not_after < now:
            return depth
    return 0


def _first_not_yet_valid(facts: Facts, now: datetime.datetime) -> int:
    for depth, certificate in enumerate(facts.peer_chain):
        if certificate.not_before > now:
            return depth
    return 0


def _verify_detail(facts: Facts) -> tuple[str, str]:
    """Return (kind, detail) for a verification failure."""
    result = facts.verify_result
    now = facts.now or datetime.datetime.now(datetime.timezone.utc)
    chain = facts.peer_chain
    label = f"verify error {result} ({facts.verify_text})"
    if result == V_DEPTH_ZERO_SELF_SIGNED_CERT:
        return CERT_SELF_SIGNED, (
            f"{label}: the {_sent_by_peer(facts)}'s certificate "
            f"({_chain_entry(facts, 0)}) is self-signed and not trusted here"
        )
    if result in (
        V_UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
        V_UNABLE_TO_GET_ISSUER_CERT,
        V_UNABLE_TO_VERIFY_LEAF_SIGNATURE,
    ):
        top = len(chain) - 1
        if facts.trusted_roots == 0:
            return CERT_NO_TRUSTED_ROOTS, (
                f"{label}: this side trusts no CA at all (no roots loaded, "
                "set_default_verify_paths() or load_verify_locations() was "
                "not called, or a CA directory holds no matching hash)"
            )
        issuer = chain[top].issuer if chain else "unknown"
        if len(chain) == 1:
            return CERT_CHAIN_INCOMPLETE, (
                f"{label}: the {_sent_by_peer(facts)} sent only its own "
                f"certificate ({_chain_entry(facts, 0)}), and its issuer "
                f"({issuer}) is not trusted here: an intermediate CA "
                "certificate is missing from the chain, or the issuer is a "
                "private CA"
            )
        return CERT_UNKNOWN_ISSUER, (
            f"{label}: the chain ends at {_chain_entry(facts, top)}, whose "
            f"issuer ({issuer}) is not trusted here"
        )
    if result == V_SELF_SIGNED_CERT_IN_CHAIN:
        top = len(chain) - 1
        return CERT_SELF_SIGNED_IN_CHAIN, (
            f"{label}: the chain ends in a root CA that is not trusted here "
            f"({_chain_entry(facts, max(top, 0))})"
        )
    if result == V_CERT_HAS_EXPIRED:
        depth = _first_expired(facts, now)
        detail = f"{label}: the certificate at {_chain_entry(facts, depth)}"
        if depth < len(chain):
            expired = chain[depth].not_after
            detail += f" expired on {_utc(expired)}"
            if now - expired > CLOCK_HINT_AFTER:
                detail += (
                    "; if that date looks right, check this computer's clock"
                )
        else:
            detail += " has expired"
        return CERT_EXPIRED, detail
    if result == V_CERT_NOT_YET_VALID:
        depth = _first_not_yet_valid(facts, now)
        detail = f"{label}: the certificate at {_chain_entry(facts, depth)}"
        if depth < len(chain):
            certificate = chain[depth]
            detail += (
                f" is valid from {_utc(certificate.not_before)} to "
                f"{_utc(certificate.not_after)}, and this computer's clock "
                f"says {_utc(now)}"
            )
            if certificate.not_before - now > CLOCK_HINT_AFTER:
                detail += "; this computer's clock is probably wrong"
        else:
            detail += " is not valid yet"
        return CERT_NOT_YET_VALID, detail
    if result in (V_HOSTNAME_MISMATCH, V_IP_ADDRESS_MISMATCH):
        asked = facts.host or facts.server_name or "unknown"
        detail = f"{label}: asked for {asked!r}"
        if chain:
            leaf = chain[0]
            names = list(leaf.dns_names) + list(leaf.ip_addresses)
            if leaf.has_subject_alt_name:
                detail += (
                    f", the certificate is for {', '.join(names) or 'no name'}"
                )
            else:
                detail += (
                    f", the certificate has no subjectAltName and only the "
                    f"Common Name {leaf.common_name!r}, which modern clients "
                    "ignore"
                )
        return CERT_HOSTNAME_MISMATCH, detail
    if result in (V_EE_KEY_TOO_SMALL, V_CA_KEY_TOO_SMALL):
        depth = 0 if result == V_EE_KEY_TOO_SMALL else max(len(chain) - 1, 1)
        key = chain[depth].key_description if depth < len(chain) else ""
        return CERT_KEY_TOO_WEAK, (
            f"{label}: the key of {_chain_entry(facts, depth)}"
            + (f" ({key})" if key else "")
            + " is too small for this side's security level"
        )
    if result == V_CA_MD_TOO_WEAK:
        weak = [
            depth
            for depth, certificate in enumerate(chain)
            if certificate.signature_hash.lower() in ("sha1", "md5")
        ]
        depth = weak[0] if weak else 0
        digest = chain[depth].signature_hash if depth < len(chain) else ""
        return CERT_DIGEST_TOO_WEAK, (
            f"{label}: {_chain_entry(facts, depth)} is signed with "
            f"{digest.upper() or 'a weak digest'}, refused at this security "
            "level"
        )
    if result in STRICT_CHECKS:
        holders = [
            depth
            for depth, certificate in enumerate(chain)
            if result in certificate.missing_extensions
        ]
        where = (
            _chain_entry(facts, holders[0])
            if holders
            else "a certificate of the chain"
        )
        return CERT_STRICT_CHECK, f"{label}: {where} {STRICT_CHECKS[result]}"
    return CERT_VERIFY_FAILED, label


def _alert_name(alert: int) -> str:
    return ALERT_NAMES.get(alert, "unassigned")


_CERTIFICATE_ALERTS = {
    42: PEER_BAD_CERTIFICATE,
    43: PEER_UNSUPPORTED_CERTIFICATE,
    45: PEER_CERTIFICATE_EXPIRED,
    46: PEER_CERTIFICATE_UNKNOWN,
    48: PEER_UNKNOWN_CA,
    116: PEER_CERTIFICATE_REQUIRED,
}


def _peer_sent(facts: Facts, message_type: int) -> bool:
    """Return whether a plaintext handshake message of *message_type* is
    in what the peer sent, as far as it was seen."""
    windows = (facts.received,) + facts.received_windows
    return any(
        message_type in tlswire.handshake_types(window) for window in windows
    )


def _alert_detail(facts: Facts, alert: int) -> tuple[str, str]:
    peer = _sent_by_peer(facts)
    named = f"the {peer} sent alert {alert} ({_alert_name(alert)})"
    if (
        alert == 40
        and facts.role == "client"
        and not facts.sent_client_certificate
        and (
            facts.certificate_authorities_requested > 0
            or _peer_sent(facts, tlswire.HANDSHAKE_CERTIFICATE_REQUEST)
        )
    ):
        # Before TLS 1.3 a server that asked for a certificate and got none
        # sends alert 40.  The request shows as the CA names it listed, or
        # as its plaintext CertificateRequest in the bytes seen.
        return PEER_CERTIFICATE_REQUIRED, (
            f"{named}: it asked for a client certificate and this side "
            "sent none"
        )
    if alert in _CERTIFICATE_ALERTS:
        kind = _CERTIFICATE_ALERTS[alert]
        if alert == 116:
            return (
                PEER_CERTIFICATE_REQUIRED,
                f"{named}: it requires a client certificate and this side "
                "sent none",
            )
        what = (
            "this side's certificate"
            if facts.sent_client_certificate or facts.role == "server"
            else "this side's certificate (none was sent)"
        )
        if facts.own_certificate_problem:
            what += f"; checked here: {facts.own_certificate_problem}"
        return kind, f"{named}: it rejected {what}"
    if alert == 70:
        offered = _offered_versions(facts)
        return (
            PROTOCOL_VERSION_REJECTED,
            f"{named}: it accepts none of the versions this side offered "
            f"({offered})",
        )
    if alert == 80 and _offered_only_legacy(facts):
        return LEGACY_VERSION_INTERNAL_ERROR, (
            f"{named}: this side offered only {_offered_versions(facts)}, and "
            "an OpenSSL 3 server has no signature algorithm for those "
            "versions at its default security level"
        )
    if alert == 40:
        hello = _own_hello(facts)
        offered = ""
        if hello is not None and hello.groups:
            names = ", ".join(
                tlswire.group_name(group) for group in hello.groups
            )
            offered = f"; this side offered groups {names}"
        return PEER_HANDSHAKE_FAILURE, (
            f"{named}: the {peer} refused the handshake, most often because "
            f"no cipher suite, group or signature algorithm is shared{offered}"
        )
    if alert == 120:
        offered = (
            ", ".join(p.decode("ascii", "replace") for p in facts.alpn_offered)
            or "none"
        )
        return (
            NO_APPLICATION_PROTOCOL,
            f"{named}: no ALPN protocol in common; this side offered "
            f"{offered}",
        )
    if alert == 112:
        if facts.server_name:
            sent = f"this side sent the name {facts.server_name!r}"
        else:
            # SNI carries host names only, so a client that connects to an
            # IP address sends none; so does one that never called
            # set_tlsext_host_name.
            sent = (
                "this side sent no name: none is sent when connecting to an "
                "IP address, otherwise call set_tlsext_host_name"
            )
        return (
            UNRECOGNIZED_NAME,
            f"{named}: the server does not serve that name; {sent}",
        )
    if (
        alert == 20
        and facts.current_pid
        and facts.handshake_pid
        and facts.current_pid != facts.handshake_pid
    ):
        return FORKED_CONNECTION, _forked(facts)
    return ALERT_RECEIVED, named


def _forked(facts: Facts) -> str:
    return (
        f"the handshake ran in process {facts.handshake_pid} and the "
        f"connection is now used in process {facts.current_pid} "
        "(inherited across fork()), so both processes use the same TLS "
        "keys and sequence numbers"
    )


def _own_hello(facts: Facts) -> Optional[tlswire.ClientHello]:
    if facts.role == "client" and facts.sent:
        return tlswire.parse_client_hello(facts.sent)
    return None


def _peer_hello(facts: Facts) -> Optional[tlswire.ClientHello]:
    if facts.role == "server" and facts.received:
        return tlswire.parse_client_hello(facts.received)
    return None


def _offered_versions(facts: Facts) -> str:
    hello = _own_hello(facts) if facts.role == "client" else _peer_hello(facts)
    if hello is None:
        return "unknown"
    return _versions(hello.offered_versions)


def _offered_only_legacy(facts: Facts) -> bool:
    hello = _own_hello(facts)
    if hello is None:
        return False
    versions = hello.offered_versions
    return bool(versions) and max(versions) < 0x0303


def _closed(facts: Facts) -> tuple[str, str]:
    """Return (kind, detail) for a connection that ended without an
    OpenSSL error other than unexpected EOF."""
    reset = facts.errno in (errno.ECONNRESET, errno.EPIPE)
    if facts.errno == errno.EBADF:
        return LOCAL_SOCKET_CLOSED, (
            "this side's socket was closed (EBADF) while the handshake was "
            "pending"
        )
    if _is_close_notify(facts.exception):
        return CLOSED_UNEXPECTEDLY, (
            f"the {_sent_by_peer(facts)} sent close_notify during the "
            "handshake"
        )
    if facts.role == "server":
        hello = _peer_hello(facts)
        if facts.received_any and hello is not None and not hello.complete:
            return CLOSED_BY_CLIENT, (
                "the client closed the connection after "
                f"{len(facts.received)} "
                f"bytes of a {hello.size}-byte ClientHello"
            )
        if reset:
            return (
                CONNECTION_RESET,
                "the client reset the connection during the handshake",
            )
        if not facts.received_any:
            return (
                CLOSED_BY_CLIENT,
                "the client closed the connection without sending a byte",
            )
        return (
            CLOSED_BY_CLIENT,
            "the client closed the connection during the handshake",
        )
    hello_size = facts.client_hello_size or (
        len(facts.sent) if facts.sent else 0
    )
    hello = _own_hello(facts)
    if not facts.received_any:
        if (
            reset
            and hello_size > LARGE_CLIENT_HELLO
            and hello is not None
            and any(
                group in tlswire.POST_QUANTUM_GROUPS
                for group in hello.key_shares
            )
        ):
            shares = ", ".join(tlswire.group_name(g) for g in hello.key_shares)
            return LARGE_HELLO_DROPPED, (
                f"the connection was reset right after a {hello_size}-byte "
                f"ClientHello (key shares {shares}), larger than one packet, "
                "with no byte from the server; a middlebox may drop it: "
                "retry with classical groups (x25519, secp256r1) to confirm"
            )
        if reset:
            return (
                CONNECTION_RESET,
                "the server reset the connection before answering",
            )
        return (
            CLOSED_BEFORE_REPLY,
            "the server closed the connection before sending any byte",
        )
    if reset:
        return (
            CONNECTION_RESET,
            "the server reset the connection during the handshake",
        )
    return (
        CLOSED_MID_HANDSHAKE,
        "the server closed the connection after its first flight",
    )


def diagnose(facts: Facts) -> Diagnosis:
    """Return the name and message of a failed handshake."""
    code = telling_code(facts.codes)
    first = facts.codes[0] if facts.codes else 0
    ics = (
        messages.failure_message(first, _openssl_string(first))
        if first
        else messages.CLOSED_UNEXPECTEDLY
    )
    kind, message = _classify(facts, code)
    if first and not message.startswith(ics):
        # The telling code is not the first one queued, but ICS's text
        # (the first code's string) must stay the start of the message.
        telling = _openssl_string(code)
        if message.startswith(telling):
            message = ics + message[len(telling) :]
        else:
            message = _prefixed(ics, message)
    return Diagnosis(kind, message, ics, code)


_openssl_string: Callable[[int], str] = errors.error_string


def set_error_formatter(formatter: Callable[[int], str]) -> None:
    """Set how codes are turned into OpenSSL strings (the instance that
    queued them decides)."""
    global _openssl_string
    _openssl_string = formatter


def _prefixed(prefix: str, detail: str) -> str:
    return f"{prefix}: {detail}" if detail else prefix


def _timed_out(facts: Facts) -> tuple[str, str]:
    hello = _own_hello(facts)
    size = facts.client_hello_size
    waited = str(facts.exception)
    if (
        facts.role == "client"
        and not facts.received_any
        and hello is not None
        and size > LARGE_CLIENT_HELLO
        and any(g in tlswire.POST_QUANTUM_GROUPS for g in hello.key_shares)
    ):
        shares = ", ".join(tlswire.group_name(g) for g in hello.key_shares)
        return LARGE_HELLO_DROPPED, (
            f"{waited}: a {size}-byte ClientHello (key shares {shares}), "
            "larger than one packet, was left unanswered; a middlebox may "
            "drop it: retry with classical groups (x25519, secp256r1) to "
            "confirm"
        )
    if not facts.received_any:
        return HANDSHAKE_TIMEOUT, f"{waited}, and the peer sent no byte"
    return HANDSHAKE_TIMEOUT, f"{waited}; the peer went silent mid-handshake"


Rule = Callable[[Facts, str], tuple[str, str]]


def _classify(facts: Facts, code: int) -> tuple[str, str]:
    exception = facts.exception
    if isinstance(exception, TimeoutError) and not facts.codes:
        kind, detail = _timed_out(facts)
        return kind, _prefixed(messages.CLOSED_UNEXPECTEDLY, detail)
    if exception is not None and _is_python_error(exception):
        return _python_exception(exception, code)
    if code == 0 or messages.is_unexpected_eof(code):
        if _forked_process(facts):
            detail = _forked(facts)
        else:
            kind, detail = _closed(facts)
            return kind, _prefixed(messages.CLOSED_UNEXPECTEDLY, detail)
        return FORKED_CONNECTION, _prefixed(
            messages.CLOSED_UNEXPECTEDLY, detail
        )
    text = _openssl_string(code)
    if _library(code) != errors.ERR_LIB_SSL:
        return OPENSSL_ERROR, text
    reason = _reason(code)
    plain = _plain_request(facts, reason)
    if plain is not None:
        return plain
    if reason in _RECORD_REASONS:
        return _bad_first_record(facts, reason, text)
    if reason >= R_ALERT_BASE:
        kind, detail = _alert_detail(facts, reason - R_ALERT_BASE)
        return kind, _prefixed(text, detail)
    rule = _REASON_RULES.get(reason)
    if rule is None:
        return OPENSSL_ERROR, text
    kind, detail = rule(facts, text)
    return kind, _prefixed(text, detail)


def _python_exception(exception: BaseException, code: int) -> tuple[str, str]:
    # pyOpenSSL re-raises a callback's exception before it looks at the
    # queue, which may still hold the failure it caused (a verify callback
    # that raises leaves "certificate verify failed").
    raised = f"{type(exception).__name__}: {exception}"
    if code == 0:
        return PYTHON_EXCEPTION, f"Error, {raised}"
    return PYTHON_EXCEPTION, _prefixed(
        _openssl_string(code), f"a Python callback raised {raised}"
    )


def _forked_process(facts: Facts) -> bool:
    return bool(
        facts.current_pid
        and facts.handshake_pid
        and facts.current_pid != facts.handshake_pid
    )


def _plain_request(facts: Facts, reason: int) -> Optional[tuple[str, str]]:
    """Name a plain HTTP request sent to this server's TLS port.

    The bytes decide over the reason, because OpenSSL 3.0 reports OPTIONS
    as a wrong version number.
    """
    if facts.role == "client":
        return None  # a server cannot send this client an HTTP request
    method = _http_method(facts.received)
    if method == b"CONNECT" or reason == R_HTTPS_PROXY_REQUEST:
        shown = f" ({_quote(facts.received)})" if method else ""
        return HTTPS_PROXY_REQUEST, _prefixed(
            messages.HTTPS_PROXY_REQUEST,
            f"the client sent an HTTP CONNECT request meant for a proxy"
            f"{shown}",
        )
    if method is None and reason != R_HTTP_REQUEST:
        return None
    if method is None:
        detail = "the client sent a plain HTTP request"
    else:
        detail = (
            f"the client sent a plain HTTP {method.decode()} request "
            f"({_quote(facts.received)})"
        )
    return HTTP_REQUEST, _prefixed(messages.HTTP_REQUEST, detail)


_RECORD_REASONS = frozenset(
    {
        R_DATA_LENGTH_TOO_LONG,
        R_ENCRYPTED_LENGTH_TOO_LONG,
        R_WRONG_VERSION_NUMBER,
        R_UNKNOWN_PROTOCOL,
        R_PACKET_LENGTH_TOO_LONG,
        R_BAD_PACKET_LENGTH,
        R_RECORD_LAYER_FAILURE,
    }
)


def _bad_first_record(facts: Facts, reason: int, text: str) -> tuple[str, str]:
    """Name a peer whose first record OpenSSL rejected."""
    if reason == R_WRONG_VERSION_NUMBER:
        prefix = messages.WRONG_VERSION
    elif reason == R_UNKNOWN_PROTOCOL:
        prefix = messages.UNKNOWN_PROTOCOL
    else:
        prefix = text
    received = facts.received
    if facts.role == "server" and received:
        if not tlswire.is_tls_record(received):
            # Greetings and HTTP responses come from servers; from a client
            # they are just bytes that are not TLS.
            return NOT_TLS, _prefixed(
                prefix,
                f"the client sent bytes that are not TLS ({_quote(received)})",
            )
    elif received and not tlswire.is_tls_record(received):
        kind, detail = _recognise_plaintext(received)
        return kind, _prefixed(prefix, detail)
    elif not received and facts.received_tail:
        kind, detail = _recognise_tail(facts.received_tail)
        return kind, _prefixed(prefix, detail)
    if reason == R_UNKNOWN_PROTOCOL:
        return UNKNOWN_PROTOCOL, prefix
    if reason == R_WRONG_VERSION_NUMBER:
        hello = _peer_hello(facts)
        if hello is not None:
            offered = _versions(hello.offered_versions)
            return UNSUPPORTED_PROTOCOL, _prefixed(
                prefix, f"the client offered {offered}"
            )
        return NOT_TLS, _prefixed(
            prefix, "the peer's record has a version this side does not accept"
        )
    return BAD_RECORD, _prefixed(
        prefix, f"the {_sent_by_peer(facts)} sent a malformed TLS record"
    )


def _verify_failed(facts: Facts, text: str) -> tuple[str, str]:
    if not facts.verify_result:
        return CERT_VERIFY_FAILED, "the verify result was not recorded"
    return _verify_detail(facts)


def _unsupported_protocol(facts: Facts, text: str) -> tuple[str, str]:
    hello = _peer_hello(facts)
    if facts.role == "server" and hello is not None:
        offered = _versions(hello.offered_versions)
        return UNSUPPORTED_PROTOCOL, (
            f"the client offered only {offered}, which this server does not "
            "accept"
        )
    return UNSUPPORTED_PROTOCOL, (
        "the peer chose a version this side does not accept"
    )


def _no_shared_cipher(facts: Facts, text: str) -> tuple[str, str]:
    return NO_SHARED_CIPHER, (
        "this server shares no cipher suite with the client, so it refused "
        "the handshake"
    )


def _no_shared_group(facts: Facts, text: str) -> tuple[str, str]:
    hello = _peer_hello(facts)
    offered = "unknown"
    if hello is not None:
        offered = ", ".join(tlswire.group_name(g) for g in hello.groups)
    return NO_SHARED_GROUP, (
        f"no key-exchange group in common; the client offered {offered}"
    )


def _no_signature_algorithm(facts: Facts, text: str) -> tuple[str, str]:
    hello = _peer_hello(facts)
    extra = ""
    if hello is not None and not hello.has_signature_algorithms:
        extra = (
            "; the client sent no signature_algorithms extension, which "
            "leaves only SHA-1"
        )
    return NO_SIGNATURE_ALGORITHM, f"no signature algorithm in common{extra}"


def _dh_key_too_small(facts: Facts, text: str) -> tuple[str, str]:
    return DH_KEY_TOO_SMALL, (
        "the server's Diffie-Hellman key is smaller than this side's "
        "security level allows"
    )


def _unsafe_renegotiation(facts: Facts, text: str) -> tuple[str, str]:
    return UNSAFE_RENEGOTIATION, (
        "the peer does not support secure renegotiation (RFC 5746)"
    )


def _bad_record_mac(facts: Facts, text: str) -> tuple[str, str]:
    if _forked_process(facts):
        return FORKED_CONNECTION, _forked(facts)
    return BAD_RECORD_MAC, "a record failed its integrity check"


def _own_certificate(facts: Facts, text: str) -> tuple[str, str]:
    return OWN_CERTIFICATE_PROBLEM, (
        facts.own_certificate_problem
        or "this side's certificate is too weak for its security level"
    )


def _out_of_order(facts: Facts, text: str) -> tuple[str, str]:
    return BAD_RECORD, (
        f"the {_sent_by_peer(facts)} sent a message out of order or malformed"
    )


_REASON_RULES: dict[int, Rule] = {
    R_CERTIFICATE_VERIFY_FAILED: _verify_failed,
    R_UNSUPPORTED_PROTOCOL: _unsupported_protocol,
    R_NO_SHARED_CIPHER: _no_shared_cipher,
    R_NO_SUITABLE_KEY_SHARE: _no_shared_group,
    R_NO_SHARED_GROUPS: _no_shared_group,
    R_NO_SUITABLE_SIGNATURE_ALGORITHM: _no_signature_algorithm,
    R_NO_SHARED_SIGNATURE_ALGORITHMS: _no_signature_algorithm,
    R_DH_KEY_TOO_SMALL: _dh_key_too_small,
    R_UNSAFE_LEGACY_RENEGOTIATION: _unsafe_renegotiation,
    R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC: _bad_record_mac,
    R_DECRYPTION_FAILED: _bad_record_mac,
    R_EE_KEY_TOO_SMALL: _own_certificate,
    R_CA_KEY_TOO_SMALL: _own_certificate,
    R_CA_MD_TOO_WEAK: _own_certificate,
    R_UNEXPECTED_MESSAGE: _out_of_order,
    R_UNEXPECTED_RECORD: _out_of_order,
    R_LENGTH_MISMATCH: _out_of_order,
}


def _is_close_notify(exception: Optional[BaseException]) -> bool:
    from OpenSSL import SSL as _SSL

    return isinstance(exception, _SSL.ZeroReturnError)


def _is_python_error(exception: BaseException) -> bool:
    from OpenSSL import SSL as _SSL

    return not isinstance(
        exception, (_SSL.SysCallError, _SSL.ZeroReturnError, _SSL.Error)
    )
