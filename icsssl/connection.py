"""``icsssl.Connection``: pyOpenSSL's Connection with ICS's handshake report.

How the codes are caught
------------------------

Every pyOpenSSL call that can run the handshake (``do_handshake``,
``send``, ``sendall``, ``recv``, ``recv_into``, ``read``, ``write``) ends in
``Connection._raise_ssl_error(ssl, result)``, which turns a failure into an
exception and drains OpenSSL's error queue into strings.  While a handshake
is pending, each connection shadows that method with an instance attribute
(:meth:`Connection._watch_handshake`), which reads the packed codes first
and then calls pyOpenSSL's method unchanged.  Once the handshake has
succeeded or failed the attribute is deleted, so reads and writes after
the handshake cost exactly what they cost in pyOpenSSL.

A positive result from any of those calls means the handshake completed:
``SSL_do_handshake`` returns 1 only then, and ``SSL_read``/``SSL_write``
move application data only after it.

What the diagnosis needs besides the codes
------------------------------------------

While the handshake is pending, ``bio_write`` and ``bio_read`` of a
memory-BIO connection are shadowed the same way to keep the first bytes
each side sent, and ``do_handshake`` on a socket peeks (``MSG_PEEK``) at
the peer's first bytes before OpenSSL reads them.  The costly facts (the
peer's chain, a rebuilt ClientHello) are gathered only when the report is
read.

Exceptions to "nothing after the handshake": a TLS 1.3 client keeps the
watch until it first reads application data, because the server's
verdict on the client's certificate arrives after ``do_handshake``
returned; and in a child process after ``fork()`` every finished
connection is watched the same way, to name a record that fails its MAC
because two processes share one TLS state.
"""

from __future__ import annotations

import dataclasses
import datetime
import errno
import ipaddress
import logging
import os
import select
import socket as _socket
import struct
import weakref
from typing import Any, Callable, Optional

from OpenSSL import SSL as _SSL

from icsssl import _certinfo, _pyopenssl, ciphers, diagnosis, messages
from icsssl._openssl import ffi, lib

HandshakeDoneCallback = Callable[["Connection", int], None]

_log = logging.getLogger("icsssl")

_NOT_FAILURES = (
    _pyopenssl.SSL_ERROR_WANT_READ,
    _pyopenssl.SSL_ERROR_WANT_WRITE,
    _pyopenssl.SSL_ERROR_WANT_X509_LOOKUP,
)


#: How many bytes of each direction's start are kept for the diagnosis.
MAX_CAPTURED_BYTES = 4096

#: How many looks at the peer's unread bytes one handshake keeps.
MAX_WINDOWS = 8

diagnosis.set_error_formatter(_pyopenssl.error_string)


@dataclasses.dataclass(frozen=True)
class _Failure:
    codes: tuple[int, ...]
    exception: BaseException
    facts: diagnosis.Facts


@dataclasses.dataclass(frozen=True)
class HandshakeReport:
    """What a finished handshake negotiated, or why it failed.

    Field names follow Delphi ICS's ``TSslWSocket`` properties; see
    :class:`Connection` for the ICS spelling of each.
    """

    succeeded: bool
    err_code: int
    error: int
    errors: tuple[int, ...]
    message: str
    kind: str = diagnosis.OK
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


# Alerts by which a server rejects a client's certificate, or its absence
# (RFC 8446 section 6.2), as reasons of ERR_LIB_SSL.
_LATE_REJECTION_REASONS = frozenset(
    1000 + alert for alert in (40, 42, 43, 44, 45, 46, 48, 49, 116)
)


def _is_late_rejection(
    codes: tuple[int, ...], exception: BaseException, connection: Any
) -> bool:
    """Return whether the first failing read or write of a TLS 1.3 client
    is the server rejecting the handshake."""
    if isinstance(exception, _SSL.ZeroReturnError):
        return False  # a clean close_notify
    for code in codes:
        if (
            diagnosis.errors.ERR_GET_LIB(code) == diagnosis.errors.ERR_LIB_SSL
            and diagnosis.errors.ERR_GET_REASON(code)
            in _LATE_REJECTION_REASONS
        ):
            return True
    closed_by_peer = any(messages.is_unexpected_eof(code) for code in codes)
    if isinstance(exception, _SSL.SysCallError) and exception.args:
        # -1 is pyOpenSSL's unexpected EOF; an errno such as EBADF means
        # this side closed its own socket.
        closed_by_peer = closed_by_peer or exception.args[0] in (
            -1,
            errno.ECONNRESET,
            errno.EPIPE,
        )
    return closed_by_peer and _pyopenssl.has_own_certificate(connection)


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


def _readable_without_error(sock: Any, wait: bool) -> bool:
    """Return whether *sock* has bytes to peek at and no pending error.

    A recv() would report a pending error such as ECONNRESET, and Linux
    reports it only once, so OpenSSL would then see a plain EOF; poll()
    shows the error without clearing it.  With *wait*, block until the
    socket is readable or failed, as OpenSSL's own read would.
    """
    if not hasattr(select, "poll"):
        return False
    poller = select.poll()
    poller.register(sock, select.POLLIN | select.POLLERR | select.POLLHUP)
    try:
        events = poller.poll(None if wait else 0)
    except (OSError, ValueError):
        return False
    if not events:
        return False
    mask = events[0][1]
    return bool(mask & select.POLLIN) and not mask & (
        select.POLLERR | select.POLLNVAL
    )


def _kernel_timeout(sock: Any, option: int) -> Optional[float]:
    """Return a socket's SO_RCVTIMEO or SO_SNDTIMEO in seconds, or None
    when it has none."""
    raw = sock.getsockopt(_socket.SOL_SOCKET, option, struct.calcsize("ll"))
    seconds, microseconds = struct.unpack("ll", raw)
    if seconds == 0 and microseconds == 0:
        return None
    return seconds + microseconds / 1e6


def _is_bad_mac(codes: tuple[int, ...]) -> bool:
    """Return whether *codes* say a record failed its integrity check,
    here or at the peer (alert 20)."""
    reasons = {
        diagnosis.R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC,
        diagnosis.R_DECRYPTION_FAILED,
        diagnosis.R_ALERT_BASE + 20,
    }
    return any(
        diagnosis.errors.ERR_GET_LIB(code) == diagnosis.errors.ERR_LIB_SSL
        and diagnosis.errors.ERR_GET_REASON(code) in reasons
        for code in codes
    )


# Connections whose handshake succeeded.  In a child process after fork()
# each of them is watched until it reads data, so that a record failing
# its MAC because parent and child share the TLS state is reported as such.
_FINISHED: "weakref.WeakSet[Connection]" = weakref.WeakSet()


def _watch_in_child() -> None:
    for connection in list(_FINISHED):
        connection._watch_first_exchange(forked=True)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_watch_in_child)


def _client_hello_size(sent: bytes) -> int:
    from icsssl import tlswire

    hello = tlswire.parse_client_hello(sent)
    return hello.size if hello is not None else 0


def _is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


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


def _details(
    connection: _SSL.Connection, report: HandshakeReport
) -> dict[str, Any]:
    details = report.as_dict()
    failure = getattr(connection, "_ics_failure", None)
    if failure is not None:
        facts = failure.facts
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
        leaf = _certinfo.describe_any(certificate)
        details["peer_subject"] = leaf.subject
        details["peer_issuer"] = leaf.issuer
        details["peer_not_before"] = leaf.not_before.isoformat()
        details["peer_not_after"] = leaf.not_after.isoformat()
        details["peer_key"] = leaf.key_description
    details["peer_signature"] = _peer_signature(connection)
    return details


def _success_report(connection: _SSL.Connection) -> HandshakeReport:
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
        kind=diagnosis.OK,
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


def _failure_report(failure: _Failure) -> HandshakeReport:
    first = failure.codes[0] if failure.codes else 0
    found = diagnosis.diagnose(failure.facts)
    return HandshakeReport(
        succeeded=False,
        err_code=messages.failure_err_code(first),
        error=first,
        errors=failure.codes,
        message=found.message,
        kind=found.name,
        ics_message=found.ics_message,
    )


class Connection(_SSL.Connection):
    """pyOpenSSL's :class:`OpenSSL.SSL.Connection` with the handshake
    report of Delphi ICS.

    Every method of the parent works unchanged and raises the same
    exceptions.  The report properties are empty (``""`` or 0) until the
    handshake ends, then describe the negotiated session or the failure.
    Each has its ICS name and a snake_case alias:

    ======================  ====================  =========================
    ICS name                alias                 value
    ======================  ====================  =========================
    SslHandshakeErr         handshake_error       first packed code, or 0
    SslHandshakeErrors      handshake_errors      every queued code
    ErrCode                 handshake_err_code    0 success, 1 closed
                                                  unexpectedly, else the
                                                  reason of SslHandshakeErr
    SslHandshakeRespMsg     handshake_resp_msg    the one-line message
    SslCipherDesc           cipher_desc           SSL_CIPHER_description
    SslKeyExchange          key_exchange          its ``Kx=`` field
    SslKeyAuth              key_auth              its ``Au=`` field
    SslEncryption           encryption            its ``Enc=`` field
    SslMessAuth             mess_auth             its ``Mac=`` field
    SslVersion              ssl_version           ``TLSv1.3``
    SslCipher               ssl_cipher            OpenSSL cipher name
    SslSecretBits           secret_bits           secret key bits
    SslTotalBits            total_bits            algorithm bits
    SslGroupName            group_name            key-exchange group
    ======================  ====================  =========================
    """

    def __init__(
        self, context: _SSL.Context, socket: Any | None = None
    ) -> None:
        super().__init__(context, socket)
        self._ics_callback: Optional[HandshakeDoneCallback] = None
        self._ics_role = ""
        self._ics_server_name: Optional[str] = None
        self._ics_verify_host: Optional[str] = None
        self._ics_alpn: tuple[bytes, ...] = ()
        self._start_watching()

    # -- handshake tracking -------------------------------------------------

    def _start_watching(self) -> None:
        self._ics_failure: Optional[_Failure] = None
        self._ics_finished = False
        self._ics_report: Optional[HandshakeReport] = None
        self._ics_pid = 0
        self._ics_received = b""
        self._ics_received_any = False
        self._ics_received_tail = b""
        self._ics_windows: list[bytes] = []
        self._ics_sent = b""
        self._ics_after_handshake = False
        self._ics_state = ""
        # These shadow the class methods until the handshake ends; see the
        # module docstring.
        self._raise_ssl_error = self._watch_handshake
        if _pyopenssl.socket_of(self) is None:
            self.bio_write = self._capture_bio_write
            self.bio_read = self._capture_bio_read

    def _stop_watching(self) -> None:
        for name in ("_raise_ssl_error", "bio_write", "bio_read"):
            self.__dict__.pop(name, None)

    def _capture_bio_write(self, buf: Any) -> int:
        if len(self._ics_received) < MAX_CAPTURED_BYTES:
            data = bytes(buf)
            self._ics_received += data[
                : MAX_CAPTURED_BYTES - len(self._ics_received)
            ]
            self._ics_received_any = self._ics_received_any or bool(data)
        return _SSL.Connection.bio_write(self, buf)

    def _capture_bio_read(self, bufsiz: int) -> bytes:
        data = _SSL.Connection.bio_read(self, bufsiz)
        if len(self._ics_sent) < MAX_CAPTURED_BYTES:
            self._ics_sent += data[: MAX_CAPTURED_BYTES - len(self._ics_sent)]
        return data

    def _peek_socket(self, wait: bool) -> None:
        """Keep the bytes the peer sent that OpenSSL has not read yet,
        read from the socket without taking them from OpenSSL.

        The first window is the peer's first bytes; later windows start
        where OpenSSL stopped reading, usually at a record boundary.
        """
        if len(self._ics_windows) >= MAX_WINDOWS:
            return
        sock = _pyopenssl.socket_of(self)
        if sock is None:
            return
        if not _readable_without_error(sock, wait):
            return
        try:
            data = sock.recv(
                MAX_CAPTURED_BYTES, _socket.MSG_PEEK | _socket.MSG_DONTWAIT
            )
        except OSError:
            return
        if not data:
            return
        if not self._ics_received:
            self._ics_received = data
        elif self._ics_windows and self._ics_windows[-1] == data:
            return  # OpenSSL has read nothing since the last look.
        self._ics_windows.append(data)
        self._ics_received_any = True

    def _peek_unread_tail(self) -> None:
        """Keep what the peer sent after the record header OpenSSL read,
        when its first bytes went unseen.

        OpenSSL reads a record's 5-byte header before checking it, so on a
        rejected header the rest of the peer's bytes are still unread.
        """
        sock = _pyopenssl.socket_of(self)
        if sock is None:
            return
        try:
            tail = sock.recv(
                MAX_CAPTURED_BYTES, _socket.MSG_PEEK | _socket.MSG_DONTWAIT
            )
        except OSError:
            return
        if tail:
            self._ics_received_tail = tail
            self._ics_received_any = True

    def _watch_handshake(self, ssl: Any, result: int) -> None:
        parent = _SSL.Connection._raise_ssl_error
        if result > 0:
            parent(self, ssl, result)
            self._finish(None)
            return
        if _pyopenssl.ssl_error_kind(self, result) in _NOT_FAILURES:
            # OpenSSL says "error" once a handshake failed, so the state
            # where it stopped is kept from the last step that went well.
            self._ics_state = _pyopenssl.state_string(self)
            parent(self, ssl, result)
            return
        codes = _pyopenssl.take_errors()
        try:
            parent(self, ssl, result)
        except BaseException as exception:
            if not self._ics_received:
                self._peek_unread_tail()
            try:
                facts = self._collect_facts(codes, exception)
            except Exception:  # noqa: BLE001 - never mask the real error
                _log.exception("icsssl could not collect handshake facts")
                facts = diagnosis.Facts(
                    role=self._ics_role, codes=codes, exception=exception
                )
            # A callback exception raised here is chained to this one.
            self._finish(_Failure(codes, exception, facts))
            raise
        # SSL_get_error said SSL_ERROR_NONE for a result <= 0: nothing to
        # report, and the handshake goes on.

    def _collect_facts(
        self, codes: tuple[int, ...], exception: BaseException
    ) -> diagnosis.Facts:
        error_number = 0
        if isinstance(exception, _SSL.SysCallError) and exception.args:
            first = exception.args[0]
            error_number = first if isinstance(first, int) and first > 0 else 0
        verify_result, verify_text = _pyopenssl.verify_result(self)
        host = self._ics_verify_host or self._ics_server_name
        sent = self._ics_sent
        # The peer chain and a rebuilt ClientHello cost more than a
        # rejected handshake itself; _complete_facts adds them when the
        # report is read.
        return diagnosis.Facts(
            role=self._ics_role,
            codes=codes,
            exception=exception,
            errno=error_number,
            received=self._ics_received,
            received_tail=self._ics_received_tail,
            received_windows=tuple(self._ics_windows),
            certificate_authorities_requested=(
                len(self.get_client_ca_list())
                if self._ics_role == "client"
                else 0
            ),
            received_any=self._ics_received_any,
            sent=sent,
            client_hello_size=_client_hello_size(sent),
            server_name=self._ics_server_name,
            host=host,
            host_is_ip=_is_ip_address(self._peer_host()),
            alpn_offered=self._ics_alpn,
            verify_result=verify_result,
            verify_text=verify_text,
            trusted_roots=_pyopenssl.trusted_root_count(self),
            sent_client_certificate=(
                self._ics_role == "client"
                and _pyopenssl.has_own_certificate(self)
            ),
            handshake_pid=self._ics_pid or os.getpid(),
            current_pid=os.getpid(),
            after_handshake=self._ics_after_handshake,
            state=self._failure_state(),
        )

    def _complete_facts(self, facts: diagnosis.Facts) -> diagnosis.Facts:
        changes: dict[str, Any] = {}
        if facts.verify_result and not facts.peer_chain:
            changes["peer_chain"] = self._peer_chain()
        if not facts.own_certificate_problem:
            problem = self._own_certificate_problem()
            if problem:
                changes["own_certificate_problem"] = problem
        if facts.role == "client" and not facts.sent:
            sent = self._rebuild_client_hello()
            changes["sent"] = sent
            changes["client_hello_size"] = _client_hello_size(sent)
        if not changes:
            return facts
        return dataclasses.replace(facts, **changes)

    def _own_certificate_problem(self) -> str:
        now = datetime.datetime.now(datetime.timezone.utc)
        loaded_chain = getattr(self.get_context(), "loaded_chain", None)
        if loaded_chain is not None:
            chain = loaded_chain()
            problems = []
            if chain:
                problems.append(
                    _certinfo.own_certificate_problems(
                        chain[0], self._ics_role, now
                    )
                )
            problems += [
                _certinfo.weak_issuer_problems(issuer) for issuer in chain[1:]
            ]
            return "; ".join(problem for problem in problems if problem)
        try:
            certificate = self.get_certificate(as_cryptography=True)
        except TypeError:
            # pyOpenSSL before 24.3 returns its own X509 only.
            legacy = self.get_certificate()
            certificate = None if legacy is None else legacy.to_cryptography()
        if certificate is None:
            return ""
        return _certinfo.own_certificate_problems(
            certificate, self._ics_role, now
        )

    def _failure_state(self) -> str:
        state = _pyopenssl.state_string(self)
        if self._ics_state and self._ics_state != state:
            return f"{state} (after: {self._ics_state})"
        return state

    def _rebuild_client_hello(self) -> bytes:
        """Return a ClientHello made with this connection's context and
        settings, for a socket-mode client whose own went unseen.

        It offers the same versions, groups, key shares, SNI and ALPN, so
        it has the size of the one sent, give or take random padding.
        """
        twin = _SSL.Connection(self.get_context(), None)
        if not _silence_info_callback(twin):
            # NOTE: without a way to mute the context's info callback the
            # application would see this connection, so none is built.
            return b""
        twin.set_connect_state()
        if self._ics_server_name:
            twin.set_tlsext_host_name(self._ics_server_name.encode("ascii"))
        if self._ics_alpn:
            twin.set_alpn_protos(list(self._ics_alpn))
        try:
            twin.do_handshake()
        except _SSL.WantReadError:
            pass
        except _SSL.Error:
            return b""
        return twin.bio_read(MAX_CAPTURED_BYTES * 4)

    def _peer_chain(self) -> tuple[diagnosis.PeerCertificate, ...]:
        try:
            chain = self.get_peer_cert_chain()
        except _SSL.Error:
            return ()
        return tuple(
            _certinfo.describe_any(certificate) for certificate in chain or ()
        )

    def _peer_host(self) -> str:
        sock = _pyopenssl.socket_of(self)
        if sock is None:
            return ""
        try:
            return str(sock.getpeername()[0])
        except (OSError, IndexError, TypeError):
            return ""

    def _finish(self, failure: Optional[_Failure]) -> None:
        self._stop_watching()
        self._ics_failure = failure
        self._ics_finished = True
        self._ics_report = None
        if not self._ics_after_handshake:
            self._ics_pid = os.getpid()
        if failure is None:
            _FINISHED.add(self)
            if self._ics_role == "client":
                self._watch_first_exchange()
        if failure is not None and _log.isEnabledFor(logging.DEBUG):
            self._log_failure(failure)
        callback = self._ics_callback
        if callback is not None:
            callback(self, self.handshake_err_code)

    # -- TLS 1.3: the server's verdict on our certificate comes late -------
    #
    # A TLS 1.3 client finishes its handshake before the server has read
    # the client's certificate, so a rejection (an alert, a reset or an
    # EOF, depending on timing) reaches the first read or write after it.
    # Until the first application data is read, such a failure is still
    # reported as this handshake's.

    def _watch_first_exchange(self, forked: bool = False) -> None:
        if not forked and self.get_protocol_version_name() != "TLSv1.3":
            return
        self._raise_ssl_error = self._watch_after_handshake
        self.recv = self._recv_watched
        self.recv_into = self._recv_into_watched
        self.read = self._recv_watched

    def _stop_first_exchange(self) -> None:
        for name in ("_raise_ssl_error", "recv", "recv_into", "read"):
            self.__dict__.pop(name, None)

    def _recv_watched(self, bufsiz: int, flags: Optional[int] = None) -> bytes:
        data = _SSL.Connection.recv(self, bufsiz, flags)
        if data:
            self._stop_first_exchange()
        return data

    def _recv_into_watched(
        self,
        buffer: Any,
        nbytes: Optional[int] = None,
        flags: Optional[int] = None,
    ) -> int:
        count = _SSL.Connection.recv_into(self, buffer, nbytes, flags)
        if count:
            self._stop_first_exchange()
        return count

    def _watch_after_handshake(self, ssl: Any, result: int) -> None:
        parent = _SSL.Connection._raise_ssl_error
        if (
            result > 0
            or _pyopenssl.ssl_error_kind(self, result) in _NOT_FAILURES
        ):
            parent(self, ssl, result)
            return
        codes = _pyopenssl.take_errors()
        try:
            parent(self, ssl, result)
        except BaseException as exception:
            self._stop_first_exchange()
            forked = self._ics_pid != os.getpid() and _is_bad_mac(codes)
            if forked or _is_late_rejection(codes, exception, self):
                self._ics_after_handshake = True
                try:
                    facts = self._collect_facts(codes, exception)
                except Exception:  # noqa: BLE001 - never mask the real error
                    _log.exception("icsssl could not collect handshake facts")
                    facts = diagnosis.Facts(
                        role=self._ics_role, codes=codes, exception=exception
                    )
                self._finish(_Failure(codes, exception, facts))
            raise

    # -- recording what the handshake offers -------------------------------

    def set_connect_state(self) -> None:
        """Make this the client side, as pyOpenSSL does."""
        super().set_connect_state()
        self._ics_role = "client"

    def set_accept_state(self) -> None:
        """Make this the server side, as pyOpenSSL does."""
        super().set_accept_state()
        self._ics_role = "server"

    def set_tlsext_host_name(self, name: bytes) -> None:
        """Send *name* in SNI, as pyOpenSSL does, and keep it for the
        diagnosis."""
        super().set_tlsext_host_name(name)
        self._ics_server_name = name.decode("ascii", "replace")

    def set_alpn_protos(self, protos: list[bytes]) -> None:
        """Offer ALPN protocols, as pyOpenSSL does, and keep them for the
        diagnosis."""
        super().set_alpn_protos(protos)
        self._ics_alpn = tuple(protos)

    def do_handshake(self) -> None:
        """Run the handshake, as pyOpenSSL does.

        While the handshake is pending on a socket, the peer's first bytes
        are peeked at (``MSG_PEEK``) before OpenSSL reads them, so a
        failure can say what the peer sent.  A blocking client socket is
        driven non-blocking inside this call for that purpose; the call
        still blocks until the handshake ends.
        """
        sock = _pyopenssl.socket_of(self)
        if self._ics_finished or sock is None:
            return super().do_handshake()
        if sock.gettimeout() is not None or self._ics_role != "client":
            # Non-blocking: look at what has arrived.  Blocking server:
            # the client speaks first, so waiting for its first bytes is
            # what OpenSSL would do anyway.
            first = sock.gettimeout() is None and not self._ics_received
            self._peek_socket(wait=first)
            return super().do_handshake()
        # A kernel timeout (SO_RCVTIMEO, SO_SNDTIMEO) still ends the wait
        # with WantReadError or WantWriteError, as it would in pyOpenSSL.
        read_limit = _kernel_timeout(sock, _socket.SO_RCVTIMEO)
        write_limit = _kernel_timeout(sock, _socket.SO_SNDTIMEO)
        sock.setblocking(False)
        try:
            while True:
                self._peek_socket(wait=False)
                try:
                    return super().do_handshake()
                except _SSL.WantReadError:
                    ready, _, _ = select.select([sock], [], [], read_limit)
                    if not ready:
                        raise
                except _SSL.WantWriteError:
                    _, ready, _ = select.select([], [sock], [], write_limit)
                    if not ready:
                        raise
        finally:
            sock.setblocking(True)

    def _log_failure(self, failure: _Failure) -> None:
        peer = self._peer_address()
        if not failure.codes:
            _log.debug(
                "handshake with %s failed without an OpenSSL error: %r",
                peer,
                failure.exception,
            )
        for code in failure.codes:
            _log.debug(
                "handshake with %s failed: %s",
                peer,
                _pyopenssl.error_string(code),
            )

    def _peer_address(self) -> str:
        sock = _pyopenssl.socket_of(self)
        if sock is None:
            return "memory BIO peer"
        try:
            return str(sock.getpeername())
        except OSError:
            return "unknown peer"

    def set_verify_hostname(self, hostname: str) -> None:
        """Make certificate verification also check that the peer's
        certificate is for *hostname*, a DNS name or an IP address.

        pyOpenSSL verifies the chain only; this sets OpenSSL's
        ``X509_VERIFY_PARAM`` host (or IP) so a mismatch fails the
        handshake with verify error 62 (``X509_V_ERR_HOSTNAME_MISMATCH``)
        or 64 (``X509_V_ERR_IP_ADDRESS_MISMATCH``).  It has no effect
        unless verification is on (``Context.set_verify(VERIFY_PEER)``).

        :raises TypeError: if *hostname* is not a str.
        :raises ValueError: if it is empty or OpenSSL rejects it.
        """
        if not isinstance(hostname, str):
            raise TypeError(
                f"hostname must be a str, got {type(hostname).__name__}"
            )
        if not hostname:
            raise ValueError("hostname must not be empty")
        _pyopenssl.set_verify_host(self, hostname)
        self._ics_verify_host = hostname

    def handshake_timed_out(self, seconds: float) -> None:
        """Record that the peer did not finish the handshake within
        *seconds*, for callers that give up on a non-blocking handshake.

        The report becomes a failure (ErrCode 1) whose diagnosis tells a
        server that never answered a large post-quantum ClientHello (a
        middlebox suspect) from one that went silent later.  Nothing
        happens if the handshake has already ended.

        :raises ValueError: if *seconds* is not a positive number.
        """
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise TypeError(
                f"seconds must be a number, got {type(seconds).__name__}"
            )
        if not seconds > 0:
            raise ValueError(f"seconds must be above 0, got {seconds!r}")
        if self._ics_finished:
            return
        if not self._ics_received:
            self._peek_socket(wait=False)
        exception = TimeoutError(f"no handshake answer within {seconds:g} s")
        facts = self._collect_facts((), exception)
        self._finish(_Failure((), exception, facts))

    def set_handshake_done_callback(
        self, callback: Optional[HandshakeDoneCallback]
    ) -> None:
        """Set the function called once when each handshake ends.

        It is called as ``callback(connection, err_code)`` after a success
        (``err_code`` 0) and after a failure, before the failure's
        exception reaches the caller, as ICS's ``OnSslHandshakeDone``.  An
        exception it raises propagates to the caller of the pyOpenSSL
        method that ended the handshake.

        :param callback: the function, or ``None`` to remove it.
        """
        if callback is not None and not callable(callback):
            raise TypeError(
                "callback must be callable as callback(connection, "
                f"err_code) or None, got {type(callback).__name__}"
            )
        self._ics_callback = callback

    OnSslHandshakeDone = property(
        lambda self: self._ics_callback,
        set_handshake_done_callback,
        doc="ICS name of :meth:`set_handshake_done_callback`.",
    )

    # -- parent methods that need care -------------------------------------

    def shutdown(self) -> bool:
        """Send the close_notify alert, as pyOpenSSL does.

        Calling it before the handshake ended is not a handshake failure,
        so the handshake watch steps aside for this call.
        """
        watch = self.__dict__.pop("_raise_ssl_error", None)
        try:
            return super().shutdown()
        finally:
            if watch is not None and not self._ics_finished:
                self._raise_ssl_error = watch

    def renegotiate(self) -> bool:
        """Start a TLS 1.2 renegotiation, as pyOpenSSL does, and watch the
        new handshake: the report and the callback follow it."""
        started = super().renegotiate()
        if started:
            self._start_watching()
        return started

    def accept(self) -> tuple[Connection, Any]:
        """Accept a client on the listening socket and return an icsssl
        :class:`Connection` for it, in server mode."""
        listener = _pyopenssl.socket_of(self)
        if listener is None:
            raise TypeError(
                "accept() needs a Connection made with a listening socket, "
                "not a memory-BIO one"
            )
        client, address = listener.accept()
        connection = type(self)(self.get_context(), client)
        connection.set_accept_state()
        return connection, address

    # -- the report ---------------------------------------------------------

    @property
    def handshake_done(self) -> bool:
        """Whether the current handshake has ended, well or badly."""
        return self._ics_finished

    @property
    def handshake_report(self) -> Optional[HandshakeReport]:
        """The report of the last handshake, or ``None`` while pending."""
        if not self._ics_finished:
            return None
        report = self._ics_report
        if report is None:
            failure = self._ics_failure
            if failure is None:
                report = _success_report(self)
            else:
                failure = dataclasses.replace(
                    failure, facts=self._complete_facts(failure.facts)
                )
                self._ics_failure = failure
                report = _failure_report(failure)
            self._ics_report = report
        return report

    @property
    def handshake_details(self) -> dict[str, Any]:
        """The longer report: the short one plus the OpenSSL state at the
        end, the peer certificate, the verify result, ALPN, SNI and the
        peer's signature algorithm and key.

        Empty while the handshake is pending.  ``peer_signature`` needs
        one shared OpenSSL instance (Debian's python3-openssl); with the
        PyPI wheels it says it is not available.
        """
        report = self.handshake_report
        if report is None:
            return {}
        return _details(self, report)

    @property
    def handshake_pid(self) -> int:
        """The process id that ran the handshake, 0 while pending."""
        return self._ics_pid

    @property
    def handshake_exception(self) -> Optional[BaseException]:
        """The exception that failed the handshake, or ``None``."""
        failure = self._ics_failure
        return None if failure is None else failure.exception

    def _field(self, name: str, empty: Any) -> Any:
        report = self.handshake_report
        return empty if report is None else getattr(report, name)

    @property
    def handshake_error(self) -> int:
        """First packed OpenSSL code of the failed handshake, or 0."""
        return int(self._field("error", 0))

    @property
    def handshake_errors(self) -> tuple[int, ...]:
        """Every packed code queued when the handshake failed, oldest
        first."""
        return tuple(self._field("errors", ()))

    @property
    def handshake_err_code(self) -> int:
        """ICS's ``ErrCode``: 0 success, 1 closed unexpectedly, else the
        reason of :attr:`handshake_error`; 0 while pending."""
        if not self._ics_finished:
            return 0
        failure = self._ics_failure
        if failure is None:
            return 0
        first = failure.codes[0] if failure.codes else 0
        return messages.failure_err_code(first)

    @property
    def handshake_resp_msg(self) -> str:
        """One-line result, e.g. ``SSL Connected OK with TLSv1.3, ...``."""
        return str(self._field("message", ""))

    @property
    def cipher_desc(self) -> str:
        """``SSL_CIPHER_description`` of the negotiated cipher."""
        return str(self._field("cipher_description", ""))

    @property
    def key_exchange(self) -> str:
        """``Kx=`` field of the cipher description (``any`` in TLS 1.3)."""
        return str(self._field("key_exchange", ""))

    @property
    def key_auth(self) -> str:
        """``Au=`` field of the cipher description."""
        return str(self._field("authentication", ""))

    @property
    def encryption(self) -> str:
        """``Enc=`` field of the cipher description."""
        return str(self._field("encryption", ""))

    @property
    def mess_auth(self) -> str:
        """``Mac=`` field of the cipher description."""
        return str(self._field("mac", ""))

    @property
    def ssl_version(self) -> str:
        """Negotiated protocol, e.g. ``TLSv1.2``."""
        return str(self._field("version", ""))

    @property
    def ssl_cipher(self) -> str:
        """OpenSSL name of the negotiated cipher."""
        return str(self._field("cipher", ""))

    @property
    def secret_bits(self) -> int:
        """Secret bits of the negotiated cipher."""
        return int(self._field("secret_bits", 0))

    @property
    def total_bits(self) -> int:
        """Algorithm bits of the negotiated cipher."""
        return int(self._field("total_bits", 0))

    @property
    def group_name(self) -> str:
        """Key-exchange group (``X25519``), or ``""`` where unknown."""
        return str(self._field("group", ""))

    SslHandshakeErr = handshake_error
    SslHandshakeErrors = handshake_errors
    ErrCode = handshake_err_code
    SslHandshakeRespMsg = handshake_resp_msg
    SslCipherDesc = cipher_desc
    SslKeyExchange = key_exchange
    SslKeyAuth = key_auth
    SslEncryption = encryption
    SslMessAuth = mess_auth
    SslVersion = ssl_version
    SslCipher = ssl_cipher
    SslSecretBits = secret_bits
    SslTotalBits = total_bits
    SslGroupName = group_name
