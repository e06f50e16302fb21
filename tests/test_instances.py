"""Which OpenSSL instance each binding runs on, and the error queues.

``icsssl.SHARED_OPENSSL`` is checked against three independent facts:
the two version lines, the dynamic linking of cryptography's binding and
a push/peek experiment on the two error queues.
"""

from __future__ import annotations

import errno
import glob
import importlib.util
import json
import os
import subprocess
import sys
from typing import Optional

import OpenSSL.SSL
import pytest
from OpenSSL._util import ffi as peer_ffi
from OpenSSL._util import lib as peer_lib

import icsssl
from icsssl import _pyopenssl
from support import IO_TIMEOUT, pack_code

ERR_LIB_USER = 128


def _linked_libcrypto(shared_object: str) -> Optional[str]:
    """Return the resolved path of the libcrypto *shared_object* links,
    according to ldd, or None."""
    output = subprocess.run(
        ["ldd", shared_object],
        capture_output=True,
        text=True,
        timeout=IO_TIMEOUT,
        check=True,
    ).stdout
    for line in output.splitlines():
        name, arrow, rest = line.strip().partition(" => ")
        if name.startswith("libcrypto") and arrow:
            return os.path.realpath(rest.split()[0])
    return None


def _icsssl_extension() -> str:
    package = importlib.util.find_spec("icsssl")
    assert package is not None and package.submodule_search_locations
    found = glob.glob(
        os.path.join(package.submodule_search_locations[0], "_openssl*.so")
    )
    assert len(found) == 1, f"expected one icsssl/_openssl*.so, found {found}"
    return found[0]


def _cryptography_bindings() -> list[str]:
    package = importlib.util.find_spec("cryptography")
    assert package is not None and package.submodule_search_locations
    folder = os.path.join(
        package.submodule_search_locations[0], "hazmat", "bindings"
    )
    return sorted(glob.glob(os.path.join(folder, "*.so")))


def _clear_both_queues() -> None:
    peer_lib.ERR_clear_error()
    icsssl.lib.ERR_clear_error()


def test_shared_flag_matches_linking():
    ours = _linked_libcrypto(_icsssl_extension())
    assert ours is not None, "icsssl's module links no libcrypto"
    bindings = _cryptography_bindings()
    assert bindings, "cryptography has no compiled binding"
    linked = {path: _linked_libcrypto(path) for path in bindings}
    # The PyPI wheel links OpenSSL statically (no libcrypto in ldd), while
    # Debian's python3-cryptography links the system libcrypto.so.3.
    expected_shared = ours in linked.values()
    assert icsssl.SHARED_OPENSSL is expected_shared, (
        f"icsssl links {ours}; cryptography's bindings link {linked}"
    )


def test_shared_flag_matches_ci_expectation():
    # CI names the configuration it set up: "separate" (PyPI wheels) or
    # "shared" (Debian's python3-openssl).
    expected = os.environ.get("ICSSSL_EXPECT_INSTANCES")
    if expected is None:
        pytest.skip("ICSSSL_EXPECT_INSTANCES is not set")
    assert expected in ("separate", "shared"), expected
    assert icsssl.SHARED_OPENSSL is (expected == "shared")


def test_shared_flag_matches_versions():
    ours = icsssl.ffi.string(
        icsssl.lib.OpenSSL_version(icsssl.lib.OPENSSL_VERSION)
    ).decode()
    pyopenssl = OpenSSL.SSL.OpenSSL_version(OpenSSL.SSL.OPENSSL_VERSION).decode()
    if icsssl.SHARED_OPENSSL:
        assert ours == pyopenssl
    if ours != pyopenssl:
        assert icsssl.SHARED_OPENSSL is False
    assert icsssl.openssl_version() == ours
    assert icsssl.pyopenssl_openssl_version() == pyopenssl


def test_shared_flag_matches_push_peek():
    _clear_both_queues()
    try:
        peer_lib.ERR_put_error(ERR_LIB_USER, 0, 0x2A1, peer_ffi.NULL, 0)
        seen_by_icsssl = int(icsssl.lib.ERR_peek_last_error())
        _clear_both_queues()
        icsssl.lib.icsssl_push_error(ERR_LIB_USER, 0x2A2)
        seen_by_pyopenssl = int(peer_lib.ERR_peek_error())
    finally:
        _clear_both_queues()
    icsssl_sees_pyopenssl = seen_by_icsssl == pack_code(ERR_LIB_USER, 0x2A1)
    pyopenssl_sees_icsssl = seen_by_pyopenssl == pack_code(ERR_LIB_USER, 0x2A2)
    assert icsssl_sees_pyopenssl == pyopenssl_sees_icsssl
    assert icsssl.SHARED_OPENSSL is icsssl_sees_pyopenssl
    assert int(peer_lib.ERR_peek_error()) == 0
    assert int(icsssl.lib.ERR_peek_error()) == 0


# Run in a fresh interpreter: queue one error in each instance (the
# system libcrypto that icsssl's module links is reached by ctypes before
# icsssl is imported), import icsssl, then drain both queues.
_IMPORT_SCRIPT = r"""
import ctypes, json, sys
from OpenSSL._util import ffi as peer_ffi, lib as peer_lib

libcrypto_path, pyopenssl_reason, icsssl_reason, errno_value = sys.argv[1:5]
ours = ctypes.CDLL(libcrypto_path)
ours.ERR_get_error.restype = ctypes.c_ulong
peer_lib.ERR_clear_error()
ours.ERR_clear_error()
peer_lib.ERR_put_error(128, 0, int(pyopenssl_reason), peer_ffi.NULL, 0)
peer_lib.ERR_put_error(2, 0, int(errno_value), peer_ffi.NULL, 0)
ours.ERR_new()
ours.ERR_set_error(ctypes.c_int(128), ctypes.c_int(int(icsssl_reason)), None)

import icsssl

def drain(get_error):
    codes = []
    for _ in range(64):
        code = int(get_error())
        if code == 0:
            break
        codes.append(code)
    return codes

print(json.dumps({
    "pyopenssl": drain(peer_lib.ERR_get_error),
    "icsssl": drain(ours.ERR_get_error),
    "shared": icsssl.SHARED_OPENSSL,
}))
"""


def test_import_leaves_queues_untouched():
    libcrypto_path = _linked_libcrypto(_icsssl_extension())
    assert libcrypto_path is not None
    package_parent = os.path.dirname(os.path.dirname(icsssl.__file__))
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(
        [package_parent, environment.get("PYTHONPATH", "")]
    )
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            _IMPORT_SCRIPT,
            libcrypto_path,
            str(0x1A1),
            str(0x1A2),
            str(errno.ECONNRESET),
        ],
        capture_output=True,
        text=True,
        timeout=IO_TIMEOUT * 3,
        env=environment,
        # The checkout would shadow the installed package if it were the
        # working directory of "python -c".
        cwd=package_parent,
    )
    assert completed.returncode == 0, completed.stderr
    queues = json.loads(completed.stdout)
    pyopenssl_codes = [
        pack_code(ERR_LIB_USER, 0x1A1),
        0x80000000 | errno.ECONNRESET,
    ]
    icsssl_codes = [pack_code(ERR_LIB_USER, 0x1A2)]
    assert queues["shared"] is icsssl.SHARED_OPENSSL
    if icsssl.SHARED_OPENSSL:
        # One queue: both bindings' get_error read the same codes in order.
        assert queues["pyopenssl"] == pyopenssl_codes + icsssl_codes
        assert queues["icsssl"] == []
    else:
        assert queues["pyopenssl"] == pyopenssl_codes
        assert queues["icsssl"] == icsssl_codes


def _drain_pyopenssl() -> list[int]:
    codes = []
    for _ in range(64):
        code = int(peer_lib.ERR_get_error())
        if code == 0:
            break
        codes.append(code)
    return codes


def test_take_errors_requeues_codes():
    queued = [
        # (library, reason) for ERR_put_error; ERR_LIB_SYS (2) packs as a
        # system error with bit 31 set.
        (20, 134),
        (20, 0x40100),  # ERR_R_MALLOC_FAILURE carries the fatal flag bit
        (2, errno.ECONNRESET),
        (ERR_LIB_USER, 0x1A3),
    ]
    expected = [
        pack_code(20, 134),
        pack_code(20, 0x40100),
        0x80000000 | errno.ECONNRESET,
        pack_code(ERR_LIB_USER, 0x1A3),
    ]
    peer_lib.ERR_clear_error()
    try:
        for library, reason in queued:
            peer_lib.ERR_put_error(library, 0, reason, peer_ffi.NULL, 0)
        peer_ffi.errno = errno.EPIPE
        returned_codes = _pyopenssl.take_errors()
        errno_after = peer_ffi.errno
        remaining = _drain_pyopenssl()
    finally:
        peer_lib.ERR_clear_error()
    assert list(returned_codes) == expected
    assert remaining == expected
    assert errno_after == errno.EPIPE


def test_take_errors_on_empty_queue():
    peer_lib.ERR_clear_error()
    assert _pyopenssl.take_errors() == ()
    assert int(peer_lib.ERR_peek_error()) == 0


def test_shared_pointer_only_when_shared(self_signed):
    from support import handshake_in_memory, make_client_context, memory_pair
    from support import make_server_context

    client, server = memory_pair(
        make_client_context(),
        make_server_context(self_signed.cert_path, self_signed.key_path),
        OpenSSL.SSL.Connection,
    )
    outcome = handshake_in_memory(client, server)
    assert outcome.client_error is None
    if not icsssl.SHARED_OPENSSL:
        with pytest.raises(RuntimeError, match="separate OpenSSL instances"):
            _pyopenssl.shared_ssl_pointer(client)
        return
    pointer = _pyopenssl.shared_ssl_pointer(client)
    version = icsssl.ffi.string(icsssl.lib.SSL_get_version(pointer)).decode()
    assert version == client.get_protocol_version_name()
