"""Gather the facts a diagnosis needs from a connection whose handshake
failed.

This runs when the report is first read, not when the handshake fails:
parsing the peer's chain or rebuilding a ClientHello costs more than a
rejected handshake itself.  What could change by then (the exception,
the bytes seen, the OpenSSL state) was kept at the failure.
"""

from __future__ import annotations

import datetime
from typing import Any, Optional

from OpenSSL import SSL as _SSL

from icsssl import _certinfo, _pyopenssl, diagnosis, tlswire
from icsssl._openssl import lib

#: The maximum number of bytes of a rebuilt ClientHello that are read.
MAX_HELLO_BYTES = 16384


def build(connection: Any, failure: Any) -> diagnosis.Facts:
    """Return the :class:`~icsssl.diagnosis.Facts` of *failure*, a failed
    handshake of *connection* (an :class:`icsssl.Connection`)."""
    role = connection._ics_role
    verify_result, verify_text = _pyopenssl.verify_result(connection)
    sent = connection._ics_sent
    if role == "client" and not sent:
        sent = rebuild_client_hello(connection)
    hello = tlswire.parse_client_hello(sent) if sent else None
    return diagnosis.Facts(
        role=role,
        codes=failure.codes,
        exception=failure.exception,
        errno=failure.errno,
        received=connection._ics_received,
        received_tail=connection._ics_received_tail,
        received_any=connection._ics_received_any,
        certificate_authorities_requested=(
            len(connection.get_client_ca_list()) if role == "client" else 0
        ),
        sent=sent,
        client_hello_size=hello.size if hello is not None else 0,
        server_name=connection._ics_server_name,
        host=connection._ics_verify_host or connection._ics_server_name,
        alpn_offered=connection._ics_alpn,
        verify_result=verify_result,
        verify_text=verify_text,
        peer_chain=peer_chain(connection) if verify_result else (),
        trusted_roots=_pyopenssl.trusted_root_count(connection),
        sent_client_certificate=(
            role == "client" and _pyopenssl.has_own_certificate(connection)
        ),
        own_certificate_problem=own_certificate_problem(connection),
        handshake_pid=failure.handshake_pid,
        current_pid=failure.current_pid,
        after_handshake=failure.after_handshake,
        state=failure.state,
    )


def peer_chain(connection: Any) -> tuple[diagnosis.PeerCertificate, ...]:
    """Describe the certificates the peer sent, leaf first."""
    try:
        chain = connection.get_peer_cert_chain()
    except _SSL.Error:
        return ()
    return tuple(
        _certinfo.describe_any(certificate) for certificate in chain or ()
    )


def own_certificate_problem(connection: Any) -> str:
    """Return what a peer may reject in this side's certificates, or ""."""
    try:
        return _own_certificate_problem(connection)
    except Exception:  # noqa: BLE001 - a certificate cryptography rejects
        return ""


def _own_certificate_problem(connection: Any) -> str:
    now = datetime.datetime.now(datetime.timezone.utc)
    role = connection._ics_role
    loaded_chain = getattr(connection.get_context(), "loaded_chain", None)
    if loaded_chain is not None:
        chain = loaded_chain()
        problems = []
        if chain:
            problems.append(
                _certinfo.own_certificate_problems(chain[0], role, now)
            )
        problems += [
            _certinfo.weak_issuer_problems(issuer) for issuer in chain[1:]
        ]
        return "; ".join(problem for problem in problems if problem)
    # NOTE: with pyOpenSSL's own Context only the leaf can be checked;
    # certificates added with add_extra_chain_cert are not visible here.
    try:
        certificate = connection.get_certificate(as_cryptography=True)
    except TypeError:
        # pyOpenSSL before 24.3 returns its own X509 only.
        legacy = connection.get_certificate()
        certificate = None if legacy is None else legacy.to_cryptography()
    if certificate is None:
        return ""
    return _certinfo.own_certificate_problems(certificate, role, now)


def _ignore_info(connection: Any, where: int, value: int) -> None:
    pass


def _silence_info_callback(connection: _SSL.Connection) -> bool:
    """Give *connection* an info callback that does nothing, so the
    context's callback does not see it.  Return whether that worked."""
    set_info_callback = getattr(connection, "set_info_callback", None)
    if set_info_callback is not None:
        set_info_callback(_ignore_info)
        return True
    if _pyopenssl.SHARED:
        lib.icsssl_silence_info_callback(
            _pyopenssl.shared_ssl_pointer(connection)
        )
        return True
    return False


def rebuild_client_hello(connection: Any) -> bytes:
    """Return a ClientHello made with *connection*'s context and settings,
    for a socket-mode client whose own went unseen.

    It offers the same versions, groups, key shares, SNI and ALPN, so it
    has the size of the one sent, give or take random padding.
    """
    twin = _SSL.Connection(connection.get_context(), None)
    if not _silence_info_callback(twin):
        # NOTE: without a way to mute the context's info callback the
        # application would see this connection, so none is built.
        return b""
    twin.set_connect_state()
    server_name: Optional[str] = connection._ics_server_name
    if server_name:
        twin.set_tlsext_host_name(server_name.encode("ascii", "replace"))
    if connection._ics_alpn:
        twin.set_alpn_protos(list(connection._ics_alpn))
    try:
        twin.do_handshake()
    except _SSL.WantReadError:
        pass
    except _SSL.Error:
        return b""
    return bytes(twin.bio_read(MAX_HELLO_BYTES))
