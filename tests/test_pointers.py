"""No pointer of one OpenSSL instance reaches the other.

With the PyPI wheels (``icsssl.SHARED_OPENSSL`` is False) pyOpenSSL runs
on the OpenSSL inside cryptography and icsssl's module on the system one.
A full handshake, its report and ``handshake_details`` must then never
call ``_pyopenssl.shared_ssl_pointer``, never cast an address to a
pointer of icsssl's module, and never pass icsssl's module a pointer
whose address belongs to one of pyOpenSSL's objects.

With Debian's python3-openssl (one shared instance) the pointer path is
the one used, and it must give the cipher and group that pyOpenSSL's own
getters give.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import sys
from typing import Any, Callable, Optional

import pytest
from OpenSSL import SSL
from OpenSSL._util import ffi as peer_ffi
from OpenSSL._util import lib as peer_lib

import icsssl
from icsssl import _pyopenssl, ciphers
from support import (
    force_group_p256,
    handshake_in_memory,
    make_client_context,
    make_server_context,
    memory_pair,
)

separate_only = pytest.mark.skipif(
    icsssl.SHARED_OPENSSL,
    reason="pyOpenSSL and icsssl share one OpenSSL instance here",
)
shared_only = pytest.mark.skipif(
    not icsssl.SHARED_OPENSSL,
    reason="pyOpenSSL and icsssl run on separate OpenSSL instances here",
)

#: Every report property of icsssl.Connection, ICS names and aliases.
REPORT_PROPERTIES = (
    "SslHandshakeErr",
    "SslHandshakeErrors",
    "ErrCode",
    "SslHandshakeRespMsg",
    "SslCipherDesc",
    "SslKeyExchange",
    "SslKeyAuth",
    "SslEncryption",
    "SslMessAuth",
    "SslVersion",
    "SslCipher",
    "SslSecretBits",
    "SslTotalBits",
    "SslGroupName",
    "handshake_error",
    "handshake_errors",
    "handshake_err_code",
    "handshake_resp_msg",
    "cipher_desc",
    "key_exchange",
    "key_auth",
    "encryption",
    "mess_auth",
    "ssl_version",
    "ssl_cipher",
    "secret_bits",
    "total_bits",
    "group_name",
    "handshake_done",
    "handshake_pid",
    "handshake_exception",
    "handshake_report",
    "handshake_details",
)


def _icsssl_modules() -> list[Any]:
    """Import every icsssl submodule and return them all, except the cffi
    extension module itself.

    Importing first matters: a module imported later, while the spies are
    in place, would bind the spies for good.
    """
    for found in pkgutil.iter_modules(icsssl.__path__, "icsssl."):
        if found.name not in ("icsssl.__main__", "icsssl._openssl"):
            importlib.import_module(found.name)
    return [
        module
        for name, module in sorted(sys.modules.items())
        if name.startswith("icsssl.")
        and not name.startswith("icsssl._openssl")
        and module is not None
    ]


def _group_name_function() -> Callable[[Any], str]:
    """Return icsssl's private function that finds a connection's group,
    wherever the package keeps it."""
    for module in _icsssl_modules():
        function = getattr(module, "_group_name", None)
        if callable(function):
            return function
    raise AssertionError("no icsssl module defines _group_name")


class PointerCrossing(AssertionError):
    """Raised by the stand-in for ``shared_ssl_pointer``."""


class LibSpy:
    """Stands in for icsssl's cffi ``lib`` and records the address of every
    pointer passed to one of its functions."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.pointer_arguments: list[tuple[str, int]] = []

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._real, name)
        if not callable(value):
            return value

        def call(*args: Any) -> Any:
            for argument in args:
                address = _address(argument)
                if address is not None:
                    self.pointer_arguments.append((name, address))
            return value(*args)

        return call


class FfiSpy:
    """Stands in for icsssl's cffi ``ffi`` and records every integer cast
    to a pointer type."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.pointer_casts: list[tuple[str, int]] = []

    def cast(self, ctype: Any, value: Any) -> Any:
        result = self._real.cast(ctype, value)
        if (
            isinstance(value, int)
            and self._real.typeof(result).kind == "pointer"
        ):
            self.pointer_casts.append((str(ctype), value))
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def _address(value: Any) -> Optional[int]:
    if not isinstance(value, icsssl.ffi.CData):
        return None
    if icsssl.ffi.typeof(value).kind not in ("pointer", "array"):
        return None
    return int(icsssl.ffi.cast("uintptr_t", value))


@dataclasses.dataclass
class Spies:
    lib: LibSpy
    ffi: FfiSpy
    pointer_calls: list[Any]


@pytest.fixture
def spies(monkeypatch: pytest.MonkeyPatch) -> Spies:
    """Spy on icsssl's ``ffi`` and ``lib`` in every module that uses
    them, and on ``shared_ssl_pointer``, which passes through.  The cipher
    table is rebuilt under the spies."""
    real_lib = icsssl.lib
    real_ffi = icsssl.ffi
    lib_spy = LibSpy(real_lib)
    ffi_spy = FfiSpy(real_ffi)
    for module in _icsssl_modules():
        # The globals bound to icsssl's cffi module, in every submodule
        # that imported them.  The package's own names stay real.
        if getattr(module, "lib", None) is real_lib:
            monkeypatch.setattr(module, "lib", lib_spy)
        if getattr(module, "ffi", None) is real_ffi:
            monkeypatch.setattr(module, "ffi", ffi_spy)
    monkeypatch.setattr(ciphers, "_TABLE", ciphers._CipherTable())
    calls: list[Any] = []
    real = _pyopenssl.shared_ssl_pointer

    def recording(conn: Any) -> Any:
        calls.append(conn)
        return real(conn)

    monkeypatch.setattr(_pyopenssl, "shared_ssl_pointer", recording)
    return Spies(lib_spy, ffi_spy, calls)


def _forbid_pointer(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    calls: list[Any] = []

    def forbidden(conn: Any) -> Any:
        calls.append(conn)
        raise PointerCrossing(
            "shared_ssl_pointer was called with separate OpenSSL instances"
        )

    monkeypatch.setattr(_pyopenssl, "shared_ssl_pointer", forbidden)
    return calls


# -- scenarios ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    client_context: Callable[[], SSL.Context]
    server_context: Callable[[str, str], SSL.Context]
    succeeds: bool


def _server(version: Optional[int] = None, ciphers_: Optional[bytes] = None):
    def make(cert_path: str, key_path: str) -> SSL.Context:
        return make_server_context(cert_path, key_path, version, ciphers_)

    return make


def _p256_server(cert_path: str, key_path: str) -> SSL.Context:
    context = make_server_context(cert_path, key_path)
    force_group_p256(context)
    return context


SCENARIOS = (
    Scenario(
        "tls12",
        lambda: make_client_context(SSL.TLS1_2_VERSION),
        _server(SSL.TLS1_2_VERSION),
        True,
    ),
    Scenario(
        "tls13",
        lambda: make_client_context(SSL.TLS1_3_VERSION),
        _server(SSL.TLS1_3_VERSION),
        True,
    ),
    Scenario("tls13_p256", make_client_context, _p256_server, True),
    Scenario(
        "verify_failure",
        lambda: make_client_context(verify=True),
        _server(),
        False,
    ),
    Scenario(
        "no_shared_cipher",
        lambda: make_client_context(SSL.TLS1_2_VERSION, b"AES128-GCM-SHA256"),
        _server(SSL.TLS1_2_VERSION, b"AES256-GCM-SHA384"),
        False,
    ),
)


def _run(scenario: Scenario, self_signed: Any) -> tuple[Any, Any]:
    client, server = memory_pair(
        scenario.client_context(),
        scenario.server_context(self_signed.cert_path, self_signed.key_path),
    )
    outcome = handshake_in_memory(client, server)
    assert (outcome.client_error is None) is scenario.succeeds
    return client, server


def _read_everything(conn: icsssl.Connection) -> dict[str, Any]:
    values = {name: getattr(conn, name) for name in REPORT_PROPERTIES}
    values["as_dict"] = conn.handshake_report.as_dict()
    return values


def _pyopenssl_addresses(conn: SSL.Connection) -> dict[str, int]:
    """Return the addresses of pyOpenSSL's objects behind *conn*."""

    def address(pointer: Any) -> int:
        return int(peer_ffi.cast("uintptr_t", pointer))

    found = {
        "SSL": address(conn._ssl),
        "SSL_CTX": address(conn.get_context()._context),
        "SSL_SESSION": address(peer_lib.SSL_get_session(conn._ssl)),
        "SSL_CIPHER": address(peer_lib.SSL_get_current_cipher(conn._ssl)),
        "own X509": address(peer_lib.SSL_get_certificate(conn._ssl)),
    }
    peer = conn.get_peer_certificate()
    if peer is not None:
        found["peer X509"] = address(peer._x509)
    return {name: value for name, value in found.items() if value}


# -- separate instances --------------------------------------------------------


@separate_only
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_separate_report_uses_no_pointer(
    scenario, self_signed, spies, monkeypatch
):
    forbidden_calls = _forbid_pointer(monkeypatch)
    client, server = _run(scenario, self_signed)
    values = {
        side: _read_everything(c)
        for side, c in (("client", client), ("server", server))
    }

    assert forbidden_calls == []
    assert spies.ffi.pointer_casts == []
    if scenario.succeeds:
        # The spy is live: the cipher table was rebuilt through it.
        called = {function for function, _ in spies.lib.pointer_arguments}
        assert "SSL_CIPHER_description" in called

    foreign = {}
    for conn in (client, server):
        foreign.update(
            {
                address: name
                for name, address in _pyopenssl_addresses(conn).items()
            }
        )
    crossed = [
        (function, foreign[address])
        for function, address in spies.lib.pointer_arguments
        if address in foreign
    ]
    assert crossed == []
    if scenario.succeeds:
        for side in ("client", "server"):
            # The report still describes the cipher, by name lookup.
            assert values[side]["SslCipherDesc"]
            assert values[side]["SslCipher"] == client.get_cipher_name()
    peer_signature = values["client"]["handshake_details"].get(
        "peer_signature", ""
    )
    if scenario.succeeds:
        assert peer_signature.startswith("not available")


@separate_only
def test_separate_spy_catches_pointer_path(self_signed, monkeypatch):
    # The check can fail: were the instances taken as shared, the report
    # would ask for the SSL* and the stand-in would raise.
    forbidden_calls = _forbid_pointer(monkeypatch)
    monkeypatch.setattr(_pyopenssl, "SHARED", True)
    client, _server_connection = _run(SCENARIOS[1], self_signed)
    with pytest.raises(PointerCrossing):
        _ = client.handshake_report
    assert forbidden_calls == [client]


@separate_only
def test_separate_pointer_refused(self_signed):
    client, _server_connection = _run(SCENARIOS[0], self_signed)
    with pytest.raises(RuntimeError, match="separate OpenSSL instances"):
        _pyopenssl.shared_ssl_pointer(client)


# -- one shared instance -------------------------------------------------------


class _WithoutGroupGetter:
    """A connection's ``_ssl`` alone, so icsssl's ``_group_name`` must
    take the pointer path even where pyOpenSSL has ``get_group_name``."""

    def __init__(self, conn: SSL.Connection) -> None:
        self._ssl = conn._ssl


@shared_only
@pytest.mark.parametrize(
    "scenario", [s for s in SCENARIOS if s.succeeds], ids=lambda s: s.name
)
def test_shared_pointer_path_matches_pyopenssl(scenario, self_signed, spies):
    client, server = _run(scenario, self_signed)
    for conn in (client, server):
        del spies.pointer_calls[:]
        values = _read_everything(conn)
        assert conn in spies.pointer_calls
        ssl_address = int(peer_ffi.cast("uintptr_t", conn._ssl))
        assert ("SSL *", ssl_address) in spies.ffi.pointer_casts

        name = conn.get_cipher_name()
        assert values["SslCipher"] == name
        assert values["SslCipherDesc"].split()[0] == name
        assert values["SslSecretBits"] == conn.get_cipher_bits()
        assert values["SslVersion"] == conn.get_protocol_version_name()
        # The pointer path and the name lookup describe the same cipher.
        assert values["SslCipherDesc"] == (
            icsssl.cipher_description(name).description
        )
        pointer = _pyopenssl.shared_ssl_pointer(conn)
        cipher = icsssl.lib.SSL_get_current_cipher(pointer)
        assert ciphers.describe_pointer(cipher).name == name

        group = _group_name_function()(_WithoutGroupGetter(conn))
        assert group
        get_group_name = getattr(conn, "get_group_name", None)
        if get_group_name is not None:
            assert group == get_group_name()
            assert values["SslGroupName"] == get_group_name()
        else:
            assert values["SslGroupName"] == group
        if scenario.name == "tls13_p256":
            assert group == "secp256r1"
        signature = values["handshake_details"]["peer_signature"]
        if conn is client:
            assert signature and not signature.startswith("not available")


@shared_only
def test_shared_pointer_is_the_ssl(self_signed):
    client, _server_connection = _run(SCENARIOS[1], self_signed)
    pointer = _pyopenssl.shared_ssl_pointer(client)
    assert int(icsssl.ffi.cast("uintptr_t", pointer)) == int(
        peer_ffi.cast("uintptr_t", client._ssl)
    )
    version = icsssl.ffi.string(icsssl.lib.SSL_get_version(pointer)).decode()
    assert version == client.get_protocol_version_name()
