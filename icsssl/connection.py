"""``icsssl.Connection``: pyOpenSSL's Connection with ICS's handshake report.

How the codes are caught
------------------------

Every pyOpenSSL call that can run the handshake (``do_handshake``,
``send``, ``sendall``, ``recv``, ``recv_into``, ``read``, ``write``) ends in
``Connection._raise_ssl_error(ssl, result)``, which turns a failure into an
exception and drains OpenSSL's error queue into strings.  While a handshake
is pending, each connection shadows that method with an instance attribute
(see :func:`_watch`), which reads the packed codes first and then calls
pyOpenSSL's method unchanged.  Once the handshake has succeeded or failed
the attribute is deleted, so reads and writes after the handshake cost
exactly what they cost in pyOpenSSL.

A positive result from any of those calls means the handshake completed:
``SSL_do_handshake`` returns 1 only then, and ``SSL_read``/``SSL_write``
move application data only after it.

What the diagnosis needs besides the codes
------------------------------------------

While the handshake is pending, ``bio_write`` of a memory-BIO connection
is shadowed the same way to keep the peer's first bytes, and
``do_handshake`` on a socket peeks (``MSG_PEEK``) at the peer's first
bytes before OpenSSL reads them.  The rest of the facts
are gathered when the report is first read (:mod:`icsssl._facts`).

The shadows are small functions holding a weak reference to their
connection, so a connection is freed as soon as it is dropped, as a plain
pyOpenSSL one is, instead of waiting for the cyclic garbage collector.

There are two exceptions to "nothing after the handshake".  A TLS 1.3
client keeps the watch until it first reads application data (or for
:data:`MAX_WATCHED_CALLS` calls), because the server's verdict on the
client's certificate arrives after ``do_handshake`` returned.  In a child
process after ``fork()`` every finished connection is watched the same
way, to name a record that fails its MAC because two processes share one
TLS state.
"""

from __future__ import annotations

import copy
import errno
import os
import select
import socket as _socket
import struct
import sys
import weakref
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Optional

from OpenSSL import SSL as _SSL

from icsssl import _pyopenssl, messages

if TYPE_CHECKING:
    from icsssl.diagnosis import Facts
    from icsssl.report import HandshakeReport

HandshakeDoneCallback = Callable[["Connection", int], None]

#: How many bytes of each direction's start are kept for the diagnosis.
MAX_CAPTURED_BYTES = 4096

#: How many calls of a TLS 1.3 client after its handshake are watched for
#: a late rejection of its certificate, at most.  The server's verdict
#: comes one round trip after the client's Finished.
MAX_WATCHED_CALLS = 16

_PARENT_RAISE = _SSL.Connection._raise_ssl_error
_WOULD_BLOCK = (_SSL.WantReadError, _SSL.WantWriteError)
_NOT_FAILURES = (*_WOULD_BLOCK, _SSL.WantX509LookupError)
_TLS1_3_VERSION = 0x0304


class _Failure(NamedTuple):
    """The facts kept when a handshake fails.  The rest is gathered when
    the report is read (:func:`icsssl._facts.build`)."""

    codes: tuple[int, ...]
    exception: BaseException
    errno: int
    state: str
    handshake_pid: int
    current_pid: int
    after_handshake: bool


# The process id, kept up to date across fork() so that no handshake pays
# a getpid() system call.
_PID = os.getpid()


def _update_pid() -> None:
    global _PID
    _PID = os.getpid()


def _detached(exception: BaseException) -> BaseException:
    """Return a copy of *exception* without its traceback.

    The traceback's frames refer to the connection, so keeping the
    original would make the connection part of a reference cycle.
    """
    try:
        duplicate = copy.copy(exception)
    except Exception:  # noqa: BLE001 - an exception type that cannot copy
        return exception
    duplicate.__traceback__ = None
    duplicate.__context__ = None
    duplicate.__cause__ = None
    return duplicate


def _errno_of(exception: BaseException) -> int:
    if isinstance(exception, _SSL.SysCallError) and exception.args:
        first = exception.args[0]
        if isinstance(first, int) and first > 0:
            return first
    return 0


# Alerts by which a server rejects a client's certificate, or its absence
# (RFC 8446 section 6.2), as reasons of ERR_LIB_SSL.
_LATE_REJECTION_REASONS = frozenset(
    1000 + alert for alert in (40, 42, 43, 44, 45, 46, 48, 49, 116)
)
# A record failing its integrity check here, or at the peer (alert 20).
_BAD_MAC_REASONS = frozenset({281, 147, 1020})


def _ssl_reasons(codes: tuple[int, ...]) -> set[int]:
    return {
        code & 0x7FFFFF
        for code in codes
        if not code & 0x80000000 and (code >> 23) & 0xFF == 20
    }


def _is_late_rejection(
    codes: tuple[int, ...], exception: BaseException, connection: Any
) -> bool:
    """Return whether the first failing read or write of a TLS 1.3 client
    is the server rejecting the handshake."""
    if isinstance(exception, _SSL.ZeroReturnError):
        return False  # a clean close_notify
    if _ssl_reasons(codes) & _LATE_REJECTION_REASONS:
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


def _readable_without_error(sock: Any, wait: bool) -> bool:
    """Return whether *sock* has bytes to peek at and no pending error.

    A recv() would report a pending error such as ECONNRESET, and Linux
    reports it only once, so OpenSSL would then see a plain EOF; poll()
    shows the error without clearing it.  With *wait*, block until the
    socket is readable or failed, as OpenSSL's own read would.
    """
    if not hasattr(select, "poll"):
        return False
    try:
        if sock.fileno() < 0:
            return False  # closed: OpenSSL reports EBADF itself
        poller = select.poll()
        poller.register(sock, select.POLLIN | select.POLLERR | select.POLLHUP)
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
    return float(seconds + microseconds / 1e6)


def _watch(connection: Connection, method: Callable[..., Any]) -> Any:
    """Return *method* bound to *connection* through a weak reference."""
    reference = weakref.ref(connection)

    def call(*args: Any) -> Any:
        return method(reference(), *args)

    return call


def _after_fork_in_child() -> None:
    # In a child process after fork() each connection whose handshake
    # succeeded is watched until it reads data, so that a record failing
    # its MAC because parent and child share the TLS state is reported as
    # such.
    _update_pid()
    for connection in _pyopenssl.live_connections():
        if (
            isinstance(connection, Connection)
            and connection._ics_finished
            and connection._ics_failure is None
        ):
            connection._watch_first_exchange(forked=True)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


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

    # Defaults as class attributes: a connection sets only what changes,
    # which keeps the cost of creating one close to pyOpenSSL's.
    _ics_callback: Optional[HandshakeDoneCallback] = None
    _ics_role = ""
    _ics_server_name: Optional[str] = None
    _ics_verify_host: Optional[str] = None
    _ics_alpn: tuple[bytes, ...] = ()
    _ics_failure: Optional[_Failure] = None
    _ics_facts: Optional[Facts] = None
    _ics_finished = False
    _ics_report: Optional[HandshakeReport] = None
    _ics_pid = 0
    _ics_received = b""
    _ics_received_any = False
    _ics_received_tail = b""
    _ics_sent = b""
    _ics_after_handshake = False
    _ics_state: Any = None
    _ics_watched_calls = 0

    _PER_HANDSHAKE = (
        "_ics_failure",
        "_ics_facts",
        "_ics_finished",
        "_ics_report",
        "_ics_pid",
        "_ics_received",
        "_ics_received_any",
        "_ics_received_tail",
        "_ics_sent",
        "_ics_after_handshake",
        "_ics_state",
        "_ics_watched_calls",
    )

    def __init__(
        self, context: _SSL.Context, socket: Any | None = None
    ) -> None:
        super().__init__(context, socket)
        self._watch_new_handshake(socket is None)

    # -- handshake tracking -------------------------------------------------

    def _start_watching(self) -> None:
        """Forget the last handshake's report and watch a new one."""
        state = self.__dict__
        for name in self._PER_HANDSHAKE:
            state.pop(name, None)
        self._stop_watching()
        self._watch_new_handshake(_pyopenssl.socket_of(self) is None)

    def _watch_new_handshake(self, memory_bio: bool) -> None:
        # Each shadow is an instance attribute, so a connection pays for
        # it only while its handshake is pending; see the module docstring.
        self._shadow("_raise_ssl_error", Connection._watch_handshake)
        if memory_bio:
            # Only what the peer sent is kept: this side's own ClientHello
            # can be rebuilt when a diagnosis needs it, and a shadow of
            # bio_read would sit in every empty read that raises
            # WantReadError before the first flight.
            self._shadow("bio_write", Connection._capture_bio_write)
        else:
            self._shadow("do_handshake", Connection._peeking_handshake)

    def _shadow(self, name: str, method: Callable[..., Any]) -> None:
        """Shadow the method *name* on this connection alone with
        *method*, held through a weak reference (see :func:`_watch`)."""
        self.__dict__[name] = _watch(self, method)

    _SHADOWS = (
        "_raise_ssl_error",
        "bio_write",
        "bio_read",
        "do_handshake",
        "recv",
        "recv_into",
        "read",
    )

    def _stop_watching(self) -> None:
        state = self.__dict__
        for name in self._SHADOWS:
            state.pop(name, None)

    def _capture_bio_write(self, buf: Any) -> int:
        # The peer's first flight is enough; later writes go straight to
        # pyOpenSSL.
        data = bytes(buf)
        if data:
            self._ics_received = data[:MAX_CAPTURED_BYTES]
            self._ics_received_any = True
            self.__dict__.pop("bio_write", None)
        return _SSL.Connection.bio_write(self, data)

    def _peek_socket(self, wait: bool) -> None:
        """Keep the peer's first bytes, read from the socket without
        taking them from OpenSSL."""
        if self._ics_received:
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
        if data:
            self._ics_received = data
            self._ics_received_any = True

    def _peek_unread_tail(self) -> None:
        """Keep what the peer sent after the record header OpenSSL read,
        when its first bytes went unseen.

        OpenSSL reads a record's 5-byte header before checking it, so on a
        rejected header the rest of the peer's bytes are still unread.
        """
        sock = _pyopenssl.socket_of(self)
        if sock is None or not _readable_without_error(sock, wait=False):
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
        if result > 0:
            _PARENT_RAISE(self, ssl, result)
            self._finish(None)
            return
        state = _pyopenssl.state_if_queue_empty(self)
        if state is not None:
            # WantRead/WantWrite, or a failure without an OpenSSL code
            # (a close, a Python callback's exception).  OpenSSL reports
            # the state "error" once a handshake failed, so the state it
            # stopped in is kept from the last step that went well.
            self._ics_state = state
            try:
                _PARENT_RAISE(self, ssl, result)
            except _NOT_FAILURES:
                raise
            except BaseException as exception:
                self._fail((), exception)
                raise
            return
        codes = _pyopenssl.take_errors()
        try:
            _PARENT_RAISE(self, ssl, result)
        except BaseException as exception:
            self._fail(codes, exception)
            raise
        # SSL_get_error returned SSL_ERROR_NONE for a result <= 0: nothing
        # to report, and the handshake goes on.

    def _fail(self, codes: tuple[int, ...], exception: BaseException) -> None:
        """Record a failed handshake; its callback exception, if any,
        propagates chained to *exception*."""
        if not self._ics_received and not self._ics_received_tail:
            self._peek_unread_tail()
        state = _pyopenssl.state_string(self)
        last = _pyopenssl.decode_state(self._ics_state)
        if last and last != state:
            state = f"{state} (after: {last})"
        failure = _Failure(
            codes=codes,
            exception=_detached(exception),
            errno=_errno_of(exception),
            state=state,
            handshake_pid=self._ics_pid or _PID,
            current_pid=_PID,
            after_handshake=self._ics_after_handshake,
        )
        self._finish(failure)

    def _finish(self, failure: Optional[_Failure]) -> None:
        self._stop_watching()
        self._ics_failure = failure
        self._ics_finished = True
        if self._ics_report is not None:
            del self._ics_report
        if self._ics_facts is not None:
            del self._ics_facts
        if not self._ics_after_handshake:
            self._ics_pid = _PID
        if failure is None:
            if self._ics_role == "client":
                self._watch_first_exchange()
        else:
            logging = sys.modules.get("logging")
            # If the application never imported logging, no handler is
            # configured, so a debug record would go nowhere.
            if logging is not None and logging.getLogger(
                "icsssl"
            ).isEnabledFor(logging.DEBUG):
                self._log_failure(failure, logging.getLogger("icsssl"))
        callback = self._ics_callback
        if callback is not None:
            callback(self, self.handshake_err_code)

    def _log_failure(self, failure: _Failure, log: Any) -> None:
        peer = self._peer_address()
        if not failure.codes:
            log.debug(
                "handshake with %s failed without an OpenSSL error: %r",
                peer,
                failure.exception,
            )
        for code in failure.codes:
            log.debug(
                "handshake with %s failed: %s",
                peer,
                _pyopenssl.error_string(code),
            )

    def _peer_address(self) -> str:
        sock = _pyopenssl.socket_of(self)
        if sock is None:
            return "memory BIO peer"
        try:
            peer = sock.getpeername()
        except OSError:
            return "unknown peer"
        if isinstance(peer, tuple) and len(peer) >= 2:
            host = f"[{peer[0]}]" if ":" in str(peer[0]) else peer[0]
            return f"{host}:{peer[1]}"
        return str(peer)

    # -- TLS 1.3: the server's verdict on our certificate comes late -------
    #
    # A TLS 1.3 client finishes its handshake before the server has read
    # the client's certificate, so a rejection (an alert, a reset or an
    # EOF, depending on timing) reaches the first read or write after it.
    # Until the first application data is read, such a failure is still
    # reported as this handshake's.

    def _watch_first_exchange(self, forked: bool = False) -> None:
        if not forked and _pyopenssl.protocol_version(self) != _TLS1_3_VERSION:
            return
        self._shadow("_raise_ssl_error", Connection._watch_after_handshake)
        self._shadow("recv", Connection._recv_watched)
        self._shadow("recv_into", Connection._recv_into_watched)
        self.__dict__["read"] = self.__dict__["recv"]

    def _recv_watched(self, bufsiz: int, flags: Optional[int] = None) -> bytes:
        data = _SSL.Connection.recv(self, bufsiz, flags)
        if data:
            self._stop_watching()
        return data

    def _recv_into_watched(
        self,
        buffer: Any,
        nbytes: Optional[int] = None,
        flags: Optional[int] = None,
    ) -> int:
        count = _SSL.Connection.recv_into(self, buffer, nbytes, flags)
        if count:
            self._stop_watching()
        return count

    def _watch_after_handshake(self, ssl: Any, result: int) -> None:
        if result > 0:
            _PARENT_RAISE(self, ssl, result)
            self._ics_watched_calls += 1
            if self._ics_watched_calls >= MAX_WATCHED_CALLS:
                self._stop_watching()
            return
        if _pyopenssl.queue_is_empty():
            codes: tuple[int, ...] = ()
        else:
            codes = _pyopenssl.take_errors()
        try:
            _PARENT_RAISE(self, ssl, result)
        except _NOT_FAILURES:
            raise
        except BaseException as exception:
            self._stop_watching()
            forked = self._ics_pid != _PID and bool(
                _ssl_reasons(codes) & _BAD_MAC_REASONS
            )
            if forked or _is_late_rejection(codes, exception, self):
                self._ics_after_handshake = True
                self._fail(codes, exception)
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

    def _peeking_handshake(self) -> None:
        """Run ``do_handshake`` on a socket, peeking (``MSG_PEEK``) at the
        peer's first bytes before OpenSSL reads them, so that a failure's
        message can quote what the peer sent.

        A blocking client socket is driven non-blocking inside this call
        until those bytes are seen; the call still blocks until the
        handshake ends.
        """
        sock = _pyopenssl.socket_of(self)
        if self._ics_finished or self._ics_received:
            self.__dict__.pop("do_handshake", None)
            return super().do_handshake()
        if sock.gettimeout() is not None or self._ics_role != "client":
            # Non-blocking: look at what has arrived.  Blocking server:
            # the client speaks first, so waiting for its first bytes is
            # what OpenSSL would do anyway.
            self._peek_socket(wait=sock.gettimeout() is None)
            return super().do_handshake()
        self._handshake_blocking_client(sock)
        return None

    def _handshake_blocking_client(self, sock: Any) -> None:
        # A kernel timeout (SO_RCVTIMEO, SO_SNDTIMEO) still ends the wait
        # with WantReadError or WantWriteError, as it would in pyOpenSSL.
        try:
            read_limit = _kernel_timeout(sock, _socket.SO_RCVTIMEO)
            write_limit = _kernel_timeout(sock, _socket.SO_SNDTIMEO)
            sock.setblocking(False)
        except OSError:
            # A closed socket: let OpenSSL report it as pyOpenSSL would.
            super().do_handshake()
            return
        try:
            while True:
                self._peek_socket(wait=False)
                if self._ics_received or self._ics_finished:
                    break
                try:
                    super().do_handshake()
                    return
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
        if not self._ics_finished:
            super().do_handshake()

    def handshake_timed_out(self, seconds: float) -> None:
        """Record that the peer did not finish the handshake within
        *seconds*, for callers that give up on a non-blocking handshake.

        The report becomes a failure (ErrCode 1).  Its diagnosis
        separates a server that sent nothing back after a large
        post-quantum ClientHello (a middlebox suspect) from one that went
        silent later.  Nothing
        happens if the handshake has already ended.

        :raises TypeError: if *seconds* is not a number.
        :raises ValueError: if *seconds* is not above 0.
        """
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise TypeError(
                f"seconds must be a number, got {type(seconds).__name__}"
            )
        if not seconds > 0:
            raise ValueError(f"seconds must be above 0, got {seconds!r}")
        if self._ics_finished:
            return
        self._peek_socket(wait=False)
        self._fail(
            (), TimeoutError(f"handshake timed out after {seconds:g} s")
        )

    def set_verify_hostname(self, hostname: str) -> None:
        """Make certificate verification also check that the peer's
        certificate is for *hostname*, a DNS name or an IP address.

        pyOpenSSL verifies the chain only.  This sets OpenSSL's
        ``X509_VERIFY_PARAM`` host (or IP), so a mismatch fails the
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

    def set_handshake_done_callback(
        self, callback: Optional[HandshakeDoneCallback]
    ) -> None:
        """Set the function called when each handshake ends.

        It is called as ``callback(connection, err_code)`` after a success
        (``err_code`` 0) and after a failure, before the failure's
        exception reaches the caller, as ICS's ``OnSslHandshakeDone``.  An
        exception it raises propagates to the caller of the pyOpenSSL
        method that ended the handshake.  A TLS 1.3 client whose
        certificate the server rejects after the handshake is reported
        twice: 0 when its handshake ends, then the rejection's code.

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
                self.__dict__["_raise_ssl_error"] = watch

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
        report = self._ics_report
        if report is not None or not self._ics_finished:
            return report
        from icsssl import report as reports

        failure = self._ics_failure
        if failure is None:
            report = reports.success_report(self)
        else:
            report = reports.failure_report(failure.codes, self._facts())
        self._ics_report = report
        return report

    def _facts(self) -> Facts:
        facts = self._ics_facts
        if facts is None:
            from icsssl import _facts

            assert self._ics_failure is not None
            facts = _facts.build(self, self._ics_failure)
            self._ics_facts = facts
        return facts

    @property
    def handshake_details(self) -> dict[str, Any]:
        """The longer report: the short one plus the OpenSSL state at the
        end, the peer certificate, the verify result, ALPN, SNI and the
        peer's signature algorithm and key.

        Empty while the handshake is pending.  ``peer_signature`` needs
        one shared OpenSSL instance (Debian's python3-openssl); with the
        PyPI wheels it reports that it is not available.
        """
        report = self.handshake_report
        if report is None:
            return {}
        from icsssl import report as reports

        facts = self._facts() if self._ics_failure is not None else None
        return reports.details(self, report, facts)

    @property
    def handshake_pid(self) -> int:
        """The process id that ran the handshake, 0 while pending."""
        return self._ics_pid

    @property
    def handshake_exception(self) -> Optional[BaseException]:
        """The exception that failed the handshake (a copy without its
        traceback), or ``None``."""
        failure = self._ics_failure
        return None if failure is None else failure.exception

    @property
    def handshake_error(self) -> int:
        """First packed OpenSSL code of the failed handshake, or 0."""
        failure = self._ics_failure
        if failure is None or not failure.codes:
            return 0
        return failure.codes[0]

    @property
    def handshake_errors(self) -> tuple[int, ...]:
        """Every packed code queued when the handshake failed, oldest
        first."""
        failure = self._ics_failure
        return () if failure is None else failure.codes

    @property
    def handshake_err_code(self) -> int:
        """ICS's ``ErrCode``: 0 success, 1 closed unexpectedly, else the
        reason of :attr:`handshake_error`; 0 while pending."""
        report = self._ics_report
        if report is not None:
            return report.err_code
        failure = self._ics_failure
        if failure is None:
            return 0
        return messages.failure_err_code(
            failure.codes[0] if failure.codes else 0
        )

    @property
    def handshake_resp_msg(self) -> str:
        """One-line result, e.g. ``SSL Connected OK with TLSv1.3, ...``."""
        report = self._ics_report or self.handshake_report
        return "" if report is None else report.message

    @property
    def cipher_desc(self) -> str:
        """``SSL_CIPHER_description`` of the negotiated cipher."""
        report = self._ics_report or self.handshake_report
        return "" if report is None else report.cipher_description

    @property
    def key_exchange(self) -> str:
        """``Kx=`` field of the cipher description (``any`` in TLS 1.3)."""
        report = self._ics_report or self.handshake_report
        return "" if report is None else report.key_exchange

    @property
    def key_auth(self) -> str:
        """``Au=`` field of the cipher description."""
        report = self._ics_report or self.handshake_report
        return "" if report is None else report.authentication

    @property
    def encryption(self) -> str:
        """``Enc=`` field of the cipher description."""
        report = self._ics_report or self.handshake_report
        return "" if report is None else report.encryption

    @property
    def mess_auth(self) -> str:
        """``Mac=`` field of the cipher description."""
        report = self._ics_report or self.handshake_report
        return "" if report is None else report.mac

    @property
    def ssl_version(self) -> str:
        """Negotiated protocol, e.g. ``TLSv1.2``."""
        report = self._ics_report or self.handshake_report
        return "" if report is None else report.version

    @property
    def ssl_cipher(self) -> str:
        """OpenSSL name of the negotiated cipher."""
        report = self._ics_report or self.handshake_report
        return "" if report is None else report.cipher

    @property
    def secret_bits(self) -> int:
        """Secret bits of the negotiated cipher."""
        report = self._ics_report or self.handshake_report
        return 0 if report is None else report.secret_bits

    @property
    def total_bits(self) -> int:
        """Algorithm bits of the negotiated cipher."""
        report = self._ics_report or self.handshake_report
        return 0 if report is None else report.total_bits

    @property
    def group_name(self) -> str:
        """Key-exchange group (``X25519``), or ``""`` where unknown."""
        report = self._ics_report or self.handshake_report
        return "" if report is None else report.group

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
