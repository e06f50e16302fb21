"""Handshake reports under 32 threads: no code leaks between connections.

Each thread runs 500 memory-BIO handshakes, client and server in the same
thread, mixing successes (TLS 1.2, TLS 1.3) with every failure that can be
made in memory.  Every connection's report must match its own scenario
(kind, ErrCode, library and reason of each code), its handshake-done
callback must run exactly once with that connection, and both OpenSSL
error queues of the thread must be empty after each scenario.

Codes are decoded with OpenSSL's own ``ERR_GET_LIB`` and
``ERR_GET_REASON`` macros (``support.library_of``/``reason_of``).
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from typing import Any, Callable, Optional

import pytest
from OpenSSL import SSL
from OpenSSL._util import lib as peer_lib

import icsssl
from icsssl import diagnosis
from support import (
    ALERT_HANDSHAKE_FAILURE,
    ALERT_UNKNOWN_CA,
    ERR_LIB_SSL,
    SSL_AD_REASON_OFFSET,
    SSL_R_CERTIFICATE_VERIFY_FAILED,
    SSL_R_HTTP_REQUEST,
    SSL_R_NO_SHARED_CIPHER,
    SSL_R_UNEXPECTED_EOF_WHILE_READING,
    SSL_R_UNSUPPORTED_PROTOCOL,
    SSL_R_WRONG_VERSION_NUMBER,
    handshake_in_memory,
    library_of,
    make_client_context,
    make_server_context,
    memory_pair,
    reason_of,
)

THREADS = 32
HANDSHAKES_PER_THREAD = 500

#: Maximum time for all threads together.  The full run took 15-26 s on
#: a 2-core machine, so this bound only turns a deadlock into a failure.
JOIN_TIMEOUT_SECONDS = 600.0

# RFC 8446 section 6: the alert a server sends for an unsupported version.
ALERT_PROTOCOL_VERSION = 70

GARBAGE = bytes(range(1, 64))  # no TLS record type, no HTTP method
PLAIN_GET = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"

#: Bytes of a ClientHello that reach the server before the client closes.
TRUNCATED_SIZE = 100


@dataclasses.dataclass(frozen=True)
class Expected:
    """What one side's report must contain.

    ``first`` is the (library, reason) of the first queued code, or None
    when the side must queue no code (a success).  Every code is compared
    with a single-thread run of the same scenario.
    """

    kind: str
    err_code: int
    first: Optional[tuple[int, int]]


OK = Expected(diagnosis.OK, 0, None)


def _ssl(reason: int) -> tuple[int, int]:
    return (ERR_LIB_SSL, reason)


def _alert(alert: int) -> tuple[int, int]:
    return (ERR_LIB_SSL, SSL_AD_REASON_OFFSET + alert)


@dataclasses.dataclass(frozen=True)
class Scenario:
    """A handshake and what the client and the server must report
    (None where that side is not run)."""

    name: str
    client: Optional[Expected]
    server: Optional[Expected]


SCENARIOS = (
    Scenario("tls12", OK, OK),
    Scenario("tls13", OK, OK),
    Scenario(
        "no_shared_cipher",
        Expected(
            diagnosis.PEER_HANDSHAKE_FAILURE,
            SSL_AD_REASON_OFFSET + ALERT_HANDSHAKE_FAILURE,
            _alert(ALERT_HANDSHAKE_FAILURE),
        ),
        Expected(
            diagnosis.NO_SHARED_CIPHER,
            SSL_R_NO_SHARED_CIPHER,
            _ssl(SSL_R_NO_SHARED_CIPHER),
        ),
    ),
    Scenario(
        "verify_failure",
        Expected(
            diagnosis.CERT_SELF_SIGNED,
            SSL_R_CERTIFICATE_VERIFY_FAILED,
            _ssl(SSL_R_CERTIFICATE_VERIFY_FAILED),
        ),
        Expected(
            diagnosis.PEER_UNKNOWN_CA,
            SSL_AD_REASON_OFFSET + ALERT_UNKNOWN_CA,
            _alert(ALERT_UNKNOWN_CA),
        ),
    ),
    Scenario(
        "plain_get",
        None,
        Expected(
            diagnosis.HTTP_REQUEST,
            SSL_R_HTTP_REQUEST,
            _ssl(SSL_R_HTTP_REQUEST),
        ),
    ),
    Scenario(
        "garbage",
        None,
        Expected(
            diagnosis.NOT_TLS,
            SSL_R_WRONG_VERSION_NUMBER,
            _ssl(SSL_R_WRONG_VERSION_NUMBER),
        ),
    ),
    Scenario(
        "truncated_hello",
        Expected(
            diagnosis.CLOSED_BEFORE_REPLY,
            1,
            _ssl(SSL_R_UNEXPECTED_EOF_WHILE_READING),
        ),
        Expected(
            diagnosis.CLOSED_BY_CLIENT,
            1,
            _ssl(SSL_R_UNEXPECTED_EOF_WHILE_READING),
        ),
    ),
    Scenario(
        "version_mismatch",
        Expected(
            diagnosis.PROTOCOL_VERSION_REJECTED,
            SSL_AD_REASON_OFFSET + ALERT_PROTOCOL_VERSION,
            _alert(ALERT_PROTOCOL_VERSION),
        ),
        Expected(
            diagnosis.UNSUPPORTED_PROTOCOL,
            SSL_R_UNSUPPORTED_PROTOCOL,
            _ssl(SSL_R_UNSUPPORTED_PROTOCOL),
        ),
    ),
)


class Recorder:
    """A handshake-done callback that records each call."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, int]] = []

    def __call__(self, connection: Any, err_code: int) -> None:
        self.calls.append((connection, err_code))


@dataclasses.dataclass(frozen=True)
class Observed:
    """One side's report, reduced to what must not vary between runs."""

    kind: str
    err_code: int
    codes: tuple[tuple[int, int], ...]
    version: str


def _observe(connection: icsssl.Connection) -> Observed:
    report = connection.handshake_report
    assert report is not None, "no report after the handshake"
    return Observed(
        report.kind,
        connection.ErrCode,
        tuple(
            (library_of(code), reason_of(code))
            for code in connection.SslHandshakeErrors
        ),
        report.version,
    )


class Contexts:
    """The contexts of every scenario, shared by all threads (pyOpenSSL
    contexts may be shared once configured)."""

    def __init__(self, cert_path: str, key_path: str) -> None:
        tls12 = SSL.TLS1_2_VERSION
        tls13 = SSL.TLS1_3_VERSION
        server = make_server_context(cert_path, key_path)
        self.pairs: dict[str, tuple[SSL.Context, SSL.Context]] = {
            "tls12": (
                make_client_context(tls12),
                make_server_context(cert_path, key_path, tls12),
            ),
            "tls13": (
                make_client_context(tls13),
                make_server_context(cert_path, key_path, tls13),
            ),
            "no_shared_cipher": (
                make_client_context(tls12, b"AES128-GCM-SHA256"),
                make_server_context(
                    cert_path, key_path, tls12, b"AES256-GCM-SHA384"
                ),
            ),
            "verify_failure": (make_client_context(verify=True), server),
            "plain_get": (make_client_context(), server),
            "garbage": (make_client_context(), server),
            "truncated_hello": (make_client_context(), server),
            "version_mismatch": (
                make_client_context(tls12),
                make_server_context(cert_path, key_path, tls13),
            ),
        }


def _server_only(server: icsssl.Connection, data: bytes) -> None:
    server.bio_write(data)
    try:
        server.do_handshake()
    except SSL.Error:
        return
    raise AssertionError("the server accepted non-TLS bytes")


def _truncated(client: icsssl.Connection, server: icsssl.Connection) -> None:
    try:
        client.do_handshake()
    except SSL.WantReadError:
        pass
    hello = client.bio_read(65536)
    server.bio_write(hello[:TRUNCATED_SIZE])
    for connection in (server, client):
        try:
            connection.do_handshake()
        except SSL.WantReadError:
            pass
        connection.bio_shutdown()
        try:
            connection.do_handshake()
        except SSL.Error:
            continue
        raise AssertionError("a handshake succeeded after EOF")


def run_scenario(
    scenario: Scenario, contexts: Contexts
) -> dict[str, Observed]:
    """Run *scenario* once and check what must hold in any thread:
    callbacks and empty error queues.  Return each side's report."""
    client_context, server_context = contexts.pairs[scenario.name]
    client, server = memory_pair(client_context, server_context)
    recorders = {"client": Recorder(), "server": Recorder()}
    client.set_handshake_done_callback(recorders["client"])
    server.set_handshake_done_callback(recorders["server"])
    if scenario.name == "plain_get":
        _server_only(server, PLAIN_GET)
    elif scenario.name == "garbage":
        _server_only(server, GARBAGE)
    elif scenario.name == "truncated_hello":
        _truncated(client, server)
    else:
        handshake_in_memory(client, server)
    observed = {}
    for side, connection in (("client", client), ("server", server)):
        expected = getattr(scenario, side)
        calls = recorders[side].calls
        if expected is None:
            assert calls == [], f"{side} callback ran without a handshake"
            continue
        assert len(calls) == 1, f"{side} callback ran {len(calls)} times"
        assert calls[0][0] is connection, f"{side} callback got another one"
        assert calls[0][1] == connection.ErrCode
        observed[side] = _observe(connection)
    check_queues_empty()
    return observed


def check_queues_empty() -> None:
    """Check this thread's error queue in both OpenSSL instances."""
    left_pyopenssl = int(peer_lib.ERR_peek_error())
    left_icsssl = int(icsssl.lib.ERR_peek_error())
    assert left_pyopenssl == 0, f"pyOpenSSL queue holds {left_pyopenssl:#x}"
    assert left_icsssl == 0, f"icsssl queue holds {left_icsssl:#x}"


def check_expected(scenario: Scenario, observed: dict[str, Observed]) -> None:
    """Check each side's report against the scenario's expectations."""
    for side in ("client", "server"):
        expected: Optional[Expected] = getattr(scenario, side)
        if expected is None:
            continue
        got = observed[side]
        assert got.kind == expected.kind, (scenario.name, side, got)
        assert got.err_code == expected.err_code, (scenario.name, side, got)
        if expected.first is None:
            assert got.codes == (), (scenario.name, side, got)
        else:
            assert got.codes, (scenario.name, side, got)
            assert got.codes[0] == expected.first, (scenario.name, side, got)
    if scenario.name in ("tls12", "tls13"):
        expected_version = "TLSv1.2" if scenario.name == "tls12" else "TLSv1.3"
        assert observed["client"].version == expected_version
        assert observed["server"].version == expected_version


@pytest.fixture(scope="module")
def contexts(self_signed) -> Contexts:
    return Contexts(self_signed.cert_path, self_signed.key_path)


@pytest.fixture(scope="module")
def baseline(contexts) -> dict[str, dict[str, Observed]]:
    """Each scenario's reports from one run in the main thread."""
    peer_lib.ERR_clear_error()
    icsssl.lib.ERR_clear_error()
    return {
        scenario.name: run_scenario(scenario, contexts)
        for scenario in SCENARIOS
    }


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_scenario_reports(scenario, baseline):
    check_expected(scenario, baseline[scenario.name])


def _worker(
    index: int,
    contexts: Contexts,
    baseline: dict[str, dict[str, Observed]],
    start: threading.Barrier,
    counts: list[int],
    failures: list[str],
    check: Callable[[Scenario, dict[str, Observed]], None],
) -> None:
    rng = random.Random(index)
    order = [
        SCENARIOS[i % len(SCENARIOS)] for i in range(HANDSHAKES_PER_THREAD)
    ]
    rng.shuffle(order)
    start.wait(timeout=JOIN_TIMEOUT_SECONDS)
    for number, scenario in enumerate(order):
        try:
            observed = run_scenario(scenario, contexts)
            check(scenario, observed)
            assert observed == baseline[scenario.name], (
                f"{scenario.name}: {observed} differs from the "
                f"single-thread run {baseline[scenario.name]}"
            )
        except Exception as error:
            failures.append(
                f"thread {index}, handshake {number} ({scenario.name}): "
                f"{type(error).__name__}: {error}"
            )
            peer_lib.ERR_clear_error()
            icsssl.lib.ERR_clear_error()
        counts[index] += 1


def run_threads(
    contexts: Contexts,
    baseline: dict[str, dict[str, Observed]],
    check: Callable[[Scenario, dict[str, Observed]], None] = check_expected,
) -> tuple[list[int], list[str], float]:
    """Run every thread's handshakes and return per-thread counts, failures
    and the elapsed seconds."""
    start = threading.Barrier(THREADS + 1)
    counts = [0] * THREADS
    failures: list[str] = []
    threads = [
        threading.Thread(
            target=_worker,
            args=(i, contexts, baseline, start, counts, failures, check),
            name=f"handshakes-{i}",
            daemon=True,
        )
        for i in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    start.wait(timeout=JOIN_TIMEOUT_SECONDS)
    began = time.monotonic()
    deadline = began + JOIN_TIMEOUT_SECONDS
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0))
    elapsed = time.monotonic() - began
    stuck = [thread.name for thread in threads if thread.is_alive()]
    assert not stuck, f"threads still running after {elapsed:.0f} s: {stuck}"
    return counts, failures, elapsed


def test_threads_keep_reports_apart(contexts, baseline):
    counts, failures, elapsed = run_threads(contexts, baseline)
    assert failures == [], (
        f"{len(failures)} of {sum(counts)} handshakes broke a rule in "
        f"{elapsed:.1f} s; first ones:\n" + "\n".join(failures[:20])
    )
    assert counts == [HANDSHAKES_PER_THREAD] * THREADS


def test_leak_would_be_caught(contexts, baseline):
    # The comparison can fail: a server report that carried a code of the
    # previous connection would differ from the single-thread run.
    scenario = SCENARIOS[2]
    observed = run_scenario(scenario, contexts)
    leaked = dataclasses.replace(
        observed["server"],
        codes=observed["server"].codes + ((ERR_LIB_SSL, SSL_R_HTTP_REQUEST),),
    )
    assert {"client": observed["client"], "server": leaked} != baseline[
        scenario.name
    ]
    with pytest.raises(AssertionError):
        check_expected(
            scenario,
            {
                "client": observed["client"],
                "server": dataclasses.replace(leaked, codes=leaked.codes[1:]),
            },
        )


@pytest.mark.parametrize("instance", ["pyOpenSSL", "icsssl"])
def test_queue_check_catches_leftover(instance):
    # The queue check can fail: a code left in either queue is seen.
    if instance == "pyOpenSSL":
        peer_lib.ERR_put_error(ERR_LIB_SSL, 0, SSL_R_HTTP_REQUEST, b"x.c", 1)
    else:
        icsssl.lib.icsssl_push_error(ERR_LIB_SSL, SSL_R_HTTP_REQUEST)
    try:
        with pytest.raises(AssertionError, match="queue holds"):
            check_queues_empty()
    finally:
        peer_lib.ERR_clear_error()
        icsssl.lib.ERR_clear_error()
