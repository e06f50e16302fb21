"""The catalogue of handshake outcomes icsssl distinguishes.

Each kind has a stable name (``ICSSSL_...``), the cause in a sentence and
what the user can do; ``docs/messages.md`` is generated from it.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Kind:
    """One entry of the catalogue: an outcome icsssl distinguishes."""

    name: str
    cause: str
    action: str


CATALOGUE: dict[str, Kind] = {}


def register(name: str, cause: str, action: str) -> str:
    """Add a kind to :data:`CATALOGUE` and return its name."""
    CATALOGUE[name] = Kind(name, cause, action)
    return name


OK = register("ICSSSL_OK", "The handshake completed.", "Nothing.")
HTTP_REQUEST = register(
    "ICSSSL_HTTP_REQUEST",
    "A client sent a plain HTTP request to a TLS port.",
    "Use https:// in the client, or send plain HTTP to the plain port.",
)
HTTPS_PROXY_REQUEST = register(
    "ICSSSL_HTTPS_PROXY_REQUEST",
    "A client sent an HTTP CONNECT request meant for a proxy.",
    "Point the client's proxy setting at a proxy, not at this server.",
)
PLAIN_HTTP_SERVER = register(
    "ICSSSL_PLAIN_HTTP_SERVER",
    "The server answered the ClientHello in plain HTTP.",
    "Use http:// or the server's TLS port.",
)
SMTP_SERVER = register(
    "ICSSSL_SMTP_SERVER",
    "The server sent an SMTP greeting: the port speaks plain SMTP.",
    "Use STARTTLS on this port, or the implicit-TLS port 465.",
)
FTP_SERVER = register(
    "ICSSSL_FTP_SERVER",
    "The server sent an FTP greeting: the port speaks plain FTP.",
    "Use AUTH TLS (explicit FTPS) on this port, or port 990.",
)
POP3_SERVER = register(
    "ICSSSL_POP3_SERVER",
    "The server sent a POP3 greeting.",
    "Use STLS on this port, or the implicit-TLS port 995.",
)
IMAP_SERVER = register(
    "ICSSSL_IMAP_SERVER",
    "The server sent an IMAP greeting.",
    "Use STARTTLS on this port, or the implicit-TLS port 993.",
)
SSH_SERVER = register(
    "ICSSSL_SSH_SERVER",
    "The server sent an SSH banner.",
    "This port runs SSH; connect with an SSH client or change the port.",
)
NOT_TLS = register(
    "ICSSSL_NOT_TLS",
    "The peer sent bytes that are not a TLS record.",
    "Check the port and the protocol the peer speaks there.",
)
PROTOCOL_VERSION_REJECTED = register(
    "ICSSSL_PROTOCOL_VERSION_REJECTED",
    "The peer accepts none of the TLS versions this side offered.",
    "Allow a version both sides support (set_min_proto_version).",
)
UNSUPPORTED_PROTOCOL = register(
    "ICSSSL_UNSUPPORTED_PROTOCOL",
    "This side accepts none of the TLS versions the peer offered.",
    "Upgrade the peer, or lower this side's minimum version.",
)
LEGACY_VERSION_INTERNAL_ERROR = register(
    "ICSSSL_LEGACY_VERSION_INTERNAL_ERROR",
    "An OpenSSL 3 server sent internal_error (alert 80) to a TLS 1.0/1.1 "
    "client: at its security level it has no signature algorithm left for "
    "those versions.",
    "Use TLS 1.2 or later; the server needs @SECLEVEL=0 to allow TLS 1.0.",
)
NO_SHARED_CIPHER = register(
    "ICSSSL_NO_SHARED_CIPHER",
    "This server has no cipher suite in common with the client's list.",
    "Compare the cipher lists of both sides (openssl ciphers -v).",
)
PEER_HANDSHAKE_FAILURE = register(
    "ICSSSL_PEER_HANDSHAKE_FAILURE",
    "The peer refused the handshake with alert 40, most often because no "
    "cipher suite, group or signature algorithm is common to both sides.",
    "Compare what this side offered with what the peer accepts.",
)
NO_SHARED_GROUP = register(
    "ICSSSL_NO_SHARED_GROUP",
    "No key-exchange group is common to both sides.",
    "Offer a group the peer supports (x25519, secp256r1).",
)
NO_SIGNATURE_ALGORITHM = register(
    "ICSSSL_NO_SIGNATURE_ALGORITHM",
    "No signature algorithm is common to both sides; a TLS 1.2 client that "
    "sends no signature_algorithms leaves only SHA-1, which OpenSSL 3 "
    "refuses at its default security level.",
    "Update the client, or lower the server's security level.",
)
CERT_SELF_SIGNED = register(
    "ICSSSL_CERT_SELF_SIGNED",
    "The peer's certificate is self-signed and not trusted here.",
    "Trust that certificate explicitly (load_verify_locations), or give "
    "the server a certificate from a trusted CA.",
)
CERT_NO_TRUSTED_ROOTS = register(
    "ICSSSL_CERT_NO_TRUSTED_ROOTS",
    "The context trusts no certificate at all, so no chain can verify.",
    "Call set_default_verify_paths() or load_verify_locations().",
)
CERT_CHAIN_INCOMPLETE = register(
    "ICSSSL_CERT_CHAIN_INCOMPLETE",
    "The peer sent its certificate without the intermediate CA that "
    "links it to a trusted root.",
    "Configure the server with its full chain (use_certificate_chain_file).",
)
CERT_UNKNOWN_ISSUER = register(
    "ICSSSL_CERT_UNKNOWN_ISSUER",
    "The chain leads to a CA that is not trusted here (a private CA).",
    "Trust that CA (load_verify_locations with its certificate).",
)
CERT_SELF_SIGNED_IN_CHAIN = register(
    "ICSSSL_CERT_SELF_SIGNED_IN_CHAIN",
    "The peer sent a chain ending in a root CA that is not trusted here.",
    "Trust that root CA, if it is meant to be trusted.",
)
CERT_EXPIRED = register(
    "ICSSSL_CERT_EXPIRED",
    "A certificate of the peer's chain has expired.",
    "Renew it; check this computer's clock if the date looks wrong.",
)
CERT_NOT_YET_VALID = register(
    "ICSSSL_CERT_NOT_YET_VALID",
    "A certificate of the peer's chain is not valid yet.",
    "Check this computer's clock, or wait for the certificate's start date.",
)
CERT_HOSTNAME_MISMATCH = register(
    "ICSSSL_CERT_HOSTNAME_MISMATCH",
    "The peer's certificate is not for the name or address asked for.",
    "Connect with a name on the certificate, or reissue it with this name "
    "in subjectAltName.",
)
CERT_KEY_TOO_WEAK = register(
    "ICSSSL_CERT_KEY_TOO_WEAK",
    "A key in the peer's chain is too small for the security level.",
    "Reissue with RSA 2048 or larger, or EC P-256 or larger.",
)
CERT_DIGEST_TOO_WEAK = register(
    "ICSSSL_CERT_DIGEST_TOO_WEAK",
    "A certificate of the peer's chain is signed with SHA-1 or MD5 "
    "(verify 68).",
    "Reissue it with SHA-256.",
)
CERT_STRICT_CHECK = register(
    "ICSSSL_CERT_STRICT_CHECK",
    "A certificate breaks a strict RFC 5280 rule (verify 85-92), checked "
    "under X509_V_FLAG_X509_STRICT.",
    "Reissue the certificate with the named extension fixed.",
)
CERT_VERIFY_FAILED = register(
    "ICSSSL_CERT_VERIFY_FAILED",
    "Certificate verification failed for another reason; the message "
    "gives OpenSSL's verify code and text.",
    "Look the verify code up in `man openssl-verify`.",
)
PEER_UNKNOWN_CA = register(
    "ICSSSL_PEER_UNKNOWN_CA",
    "The peer does not trust the CA of this side's certificate (alert 48).",
    "Install this side's CA in the peer's trust store.",
)
PEER_BAD_CERTIFICATE = register(
    "ICSSSL_PEER_BAD_CERTIFICATE",
    "The peer rejected this side's certificate as bad (alert 42).",
    "Check this side's certificate and chain.",
)
PEER_UNSUPPORTED_CERTIFICATE = register(
    "ICSSSL_PEER_UNSUPPORTED_CERTIFICATE",
    "The peer rejected this side's certificate for its use (alert 43), "
    "usually keyUsage or extendedKeyUsage.",
    "Reissue with the key usage the role needs (clientAuth for clients).",
)
PEER_CERTIFICATE_EXPIRED = register(
    "ICSSSL_PEER_CERTIFICATE_EXPIRED",
    "The peer says this side's certificate has expired (alert 45).",
    "Renew the certificate.",
)
PEER_CERTIFICATE_UNKNOWN = register(
    "ICSSSL_PEER_CERTIFICATE_UNKNOWN",
    "The peer rejected this side's certificate (alert 46).",
    "Check the certificate against the peer's requirements.",
)
PEER_CERTIFICATE_REQUIRED = register(
    "ICSSSL_PEER_CERTIFICATE_REQUIRED",
    "The server requires a client certificate and none was sent "
    "(alert 116, or 40 before TLS 1.3).",
    "Configure a client certificate (use_certificate, use_privatekey).",
)
CLOSED_BEFORE_REPLY = register(
    "ICSSSL_CLOSED_BEFORE_REPLY",
    "The peer closed the connection before sending any byte.",
    "Check the peer's log; it may reject this client or this protocol.",
)
LOCAL_SOCKET_CLOSED = register(
    "ICSSSL_LOCAL_SOCKET_CLOSED",
    "This side's own socket was closed while the handshake was pending "
    "(EBADF).",
    "Keep the socket open until the handshake has ended.",
)
CONNECTION_RESET = register(
    "ICSSSL_CONNECTION_RESET",
    "The peer, or something between, reset the connection.",
    "Check firewalls and the peer's log.",
)
CLOSED_MID_HANDSHAKE = register(
    "ICSSSL_CLOSED_MID_HANDSHAKE",
    "The peer closed the connection after its first flight.",
    "Check the peer's log for why it gave up.",
)
CLOSED_BY_CLIENT = register(
    "ICSSSL_CLOSED_BY_CLIENT",
    "The client closed the connection before finishing its ClientHello "
    "or the handshake.",
    "Check the client: it may have timed out or rejected this server.",
)
LARGE_HELLO_DROPPED = register(
    "ICSSSL_LARGE_CLIENT_HELLO_DROPPED",
    "The connection was reset or closed right after a ClientHello larger "
    "than one packet, with no byte back: typical of a middlebox that "
    "cannot handle the post-quantum key share.",
    "Retry with classical groups only (x25519:secp256r1) to confirm.",
)
HANDSHAKE_TIMEOUT = register(
    "ICSSSL_HANDSHAKE_TIMEOUT",
    "The peer did not finish the handshake in the time the caller allowed "
    "(Connection.handshake_timed_out).",
    "Check that the peer speaks TLS on that port and is not overloaded.",
)
DH_KEY_TOO_SMALL = register(
    "ICSSSL_DH_KEY_TOO_SMALL",
    "The server's Diffie-Hellman key is too small for the security level.",
    "Use ECDHE suites, or give the server 2048-bit DH parameters.",
)
UNSAFE_RENEGOTIATION = register(
    "ICSSSL_UNSAFE_LEGACY_RENEGOTIATION",
    "The peer does not support secure renegotiation (RFC 5746).",
    "Upgrade the peer; OP_LEGACY_SERVER_CONNECT allows it at a risk.",
)
NO_APPLICATION_PROTOCOL = register(
    "ICSSSL_NO_APPLICATION_PROTOCOL",
    "No ALPN protocol is common to both sides (alert 120).",
    "Offer a protocol the server supports (set_alpn_protos).",
)
UNRECOGNIZED_NAME = register(
    "ICSSSL_UNRECOGNIZED_NAME",
    "The server does not serve the name sent in SNI, or needs one "
    "(alert 112).",
    "Send the server's host name with set_tlsext_host_name.",
)
BAD_RECORD = register(
    "ICSSSL_BAD_RECORD",
    "The peer sent a malformed or oversized TLS record.",
    "Check what is on the other end; the first bytes are shown.",
)
FORKED_CONNECTION = register(
    "ICSSSL_FORKED_CONNECTION",
    "The connection is used in another process than the one that made "
    "its handshake; both processes share the TLS state, so records fail "
    "their MAC.",
    "Open TLS connections after fork(), one per process.",
)
BAD_RECORD_MAC = register(
    "ICSSSL_BAD_RECORD_MAC",
    "A record failed its integrity check: data was altered in transit.",
    "Check for middleboxes that modify traffic.",
)
OWN_CERTIFICATE_PROBLEM = register(
    "ICSSSL_OWN_CERTIFICATE_PROBLEM",
    "This side's certificate or key cannot be used.",
    "Fix the files named in the message.",
)
ALERT_RECEIVED = register(
    "ICSSSL_ALERT_RECEIVED",
    "The peer sent a fatal alert not listed above; the message names it.",
    "Look up the alert in RFC 8446 section 6.2.",
)
UNKNOWN_PROTOCOL = register(
    "ICSSSL_UNKNOWN_PROTOCOL",
    "OpenSSL 1.x and LibreSSL: the peer's first bytes match no protocol.",
    "Check the port and the protocol the peer speaks there.",
)
CLOSED_UNEXPECTEDLY = register(
    "ICSSSL_CLOSED_UNEXPECTEDLY",
    "The peer sent close_notify during the handshake.",
    "Check the peer's log.",
)
PYTHON_EXCEPTION = register(
    "ICSSSL_PYTHON_EXCEPTION",
    "A Python callback (verify, ALPN, ...) raised and ended the handshake.",
    "See the exception in handshake_exception.",
)
OPENSSL_ERROR = register(
    "ICSSSL_OPENSSL_ERROR",
    "An OpenSSL error with no more specific rule; the message is OpenSSL's "
    "string.",
    "Search for the reason text.",
)
