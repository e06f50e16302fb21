"""Fuzz the handshake report, the tlswire parsers and the code decoders.

A server-side or client-side ``icsssl.Connection`` over memory BIOs gets
random bytes, non-TLS greetings and real flights (a ClientHello, a
server's reply, a client's second flight) that are truncated, bit-flipped,
given wrong record or handshake lengths, spliced or cut into pieces.
``fuzz_support.run_case`` checks every case.  Its docstring gives the rule
for a connection left waiting for bytes: EOF (``bio_shutdown``) ends every
case, and a prefix of a valid flight must stay pending until then.

``benchmarks/fuzz_long.py`` runs the same generators for a million inputs.
"""

from __future__ import annotations

import contextlib
import faulthandler
import io
import os
import random
from typing import Any, Iterator, Optional

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from OpenSSL import SSL, crypto

import fuzz_support as fs
import icsssl
from icsssl import diagnosis, legacy, tlswire

#: A test still running after this many seconds is taken as hung: the
#: process prints every thread's stack and exits.
HANG_LIMIT_SECONDS = 300

FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
FAST = settings(max_examples=400, deadline=None, database=None)


@pytest.fixture(autouse=True)
def hang_guard() -> Iterator[None]:
    faulthandler.dump_traceback_later(HANG_LIMIT_SECONDS, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Contexts of every profile and the real flights mutations start
    from."""
    cert_path, key_path = fs.write_certificate(
        str(tmp_path_factory.mktemp("fuzz"))
    )
    contexts = fs.make_contexts(cert_path, key_path)
    flights = fs.capture_flights(contexts)

    class World:
        pass

    world = World()
    world.cert_path = cert_path
    world.key_path = key_path
    world.contexts = contexts
    world.flights = flights
    world.donors = flights.donors()
    return world


def run(world: Any, case: fs.Case) -> fs.Outcome:
    return fs.run_case(case, world.contexts, world.flights, world.donors)


mutations = st.lists(
    st.builds(
        fs.Mutation,
        st.sampled_from(fs.OPERATIONS),
        st.integers(0, 1 << 16),
        st.integers(0, 1 << 24),
    ),
    min_size=1,
    max_size=fs.MAX_MUTATIONS,
).map(tuple)
chunks = st.lists(st.integers(1, 600), max_size=fs.MAX_CHUNKS - 1).map(tuple)
profiles = st.sampled_from(fs.PROFILES)
sides = st.sampled_from(("server", "client"))
record_like = st.builds(
    lambda kind, minor, body: bytes((kind, 3, minor)) + body,
    st.sampled_from((20, 21, 22, 23, 24)),
    st.integers(0, 4),
    st.binary(max_size=fs.MAX_RANDOM_BYTES),
)


# -- handshakes -----------------------------------------------------------


@FUZZ
@given(
    data=st.one_of(st.binary(max_size=fs.MAX_RANDOM_BYTES), record_like),
    target=sides,
    profile=profiles,
    pieces=chunks,
)
@example(data=b"", target="server", profile="default", pieces=())
@example(
    data=b"\x16\x03\x01\xff\xff", target="server", profile="tls12", pieces=(1,)
)
@example(
    data=b"\x16\x03\x03\x00\x00", target="client", profile="default", pieces=()
)
def test_random_bytes(world, data, target, profile, pieces):
    case = fs.Case(target, "random", profile, data, (), pieces)
    run(world, case)


@FUZZ
@given(
    start=st.sampled_from(fs.PLAINTEXT_STARTS),
    target=sides,
    changes=st.one_of(st.just(()), mutations),
    pieces=chunks,
)
def test_plaintext_starts(world, start, target, changes, pieces):
    case = fs.Case(target, "plaintext", "default", start, changes, pieces)
    run(world, case)


@FUZZ
@given(profile=profiles, changes=mutations, pieces=chunks)
def test_mutated_client_hello(world, profile, changes, pieces):
    case = fs.Case("server", "client_hello", profile, b"", changes, pieces)
    run(world, case)


@FUZZ
@given(profile=profiles, changes=mutations, pieces=chunks)
def test_replayed_server_flight(world, profile, changes, pieces):
    case = fs.Case("client", "server_flight", profile, b"", changes, pieces)
    run(world, case)


@FUZZ
@given(profile=profiles, changes=mutations, pieces=chunks)
def test_mutated_live_server_flight(world, profile, changes, pieces):
    case = fs.Case(
        "client", "live_server_flight", profile, b"", changes, pieces
    )
    run(world, case)


@FUZZ
@given(profile=profiles, changes=mutations, pieces=chunks)
def test_mutated_client_finish(world, profile, changes, pieces):
    case = fs.Case(
        "server", "live_client_finish", profile, b"", changes, pieces
    )
    run(world, case)


@FUZZ
@given(rng=st.randoms(use_true_random=False))
def test_long_run_generator(world, rng):
    # The generator of benchmarks/fuzz_long.py, under hypothesis.
    run(world, fs.random_case(rng))


@pytest.mark.parametrize("profile", fs.PROFILES)
def test_every_client_hello_prefix_pending(world, profile):
    hello = world.flights.client_hellos[profile]
    stages = set()
    for size in range(len(hello)):
        truncate = fs.Mutation("truncate", size, 0)
        outcome = run(
            world,
            fs.Case("server", "client_hello", profile, b"", (truncate,)),
        )
        assert outcome.prefix_of_valid_flight
        assert outcome.input_size == size
        assert outcome.err_code == 1
        stages.add(outcome.stage)
    assert stages == {"failed_at_eof"}


@FUZZ
@given(
    profile=st.sampled_from(fs.SUCCEEDING_PROFILES),
    source=st.sampled_from(("live_server_flight", "live_client_finish")),
    cut=st.integers(0, 1 << 16),
    pieces=chunks,
)
def test_live_flight_prefix_pending(world, profile, source, cut, pieces):
    target = "client" if source == "live_server_flight" else "server"
    truncate = fs.Mutation("truncate", cut, 0)
    outcome = run(
        world, fs.Case(target, source, profile, b"", (truncate,), pieces)
    )
    assert outcome.prefix_of_valid_flight
    if outcome.stage != "done":
        # A cut at the flight's full length leaves it whole.
        assert outcome.stage == "failed_at_eof"
        assert outcome.err_code == 1


@pytest.mark.parametrize("profile", fs.SUCCEEDING_PROFILES)
@pytest.mark.parametrize(
    "source", ["live_server_flight", "live_client_finish"]
)
def test_whole_live_flight_succeeds(world, profile, source):
    # The harness itself: unchanged flights complete the handshake (a
    # TLS 1.2 client still waits for the server's Finished).
    target = "client" if source == "live_server_flight" else "server"
    outcome = run(world, fs.Case(target, source, profile))
    if target == "client" and profile == "tls12":
        assert outcome.stage == "failed_at_eof"
    else:
        assert outcome.stage == "done"
        assert outcome.kind == diagnosis.OK


def test_run_case_catches_broken_err_code(world, monkeypatch):
    # The checks can fail: an ErrCode off by one is reported.
    original = icsssl.Connection.handshake_err_code

    def shifted(connection):
        value = original.fget(connection)
        return value + 1 if value else value

    monkeypatch.setattr(
        icsssl.Connection, "ErrCode", property(shifted), raising=True
    )
    case = fs.Case("server", "random", "default", b"\x00" * 16)
    with pytest.raises(fs.CheckFailed, match="ErrCode"):
        run(world, case)


def test_run_case_catches_pending_prefix_failure(world, monkeypatch):
    # The checks can fail: a server that rejects a valid prefix breaks
    # the pending rule.
    truncate = fs.Mutation("truncate", 100, 0)
    case = fs.Case("server", "client_hello", "default", b"", (truncate,))
    real_step = fs.step

    def failing_step(connection):
        result = real_step(connection)
        if isinstance(result, SSL.WantReadError):
            return SSL.Error([])
        return result

    monkeypatch.setattr(fs, "step", failing_step)
    with pytest.raises(fs.CheckFailed, match="prefix of a valid flight"):
        run(world, case)


# -- diagnosis of non-TLS bytes names the right peer -----------------------

#: (side, start) pairs whose diagnosis names the wrong peer: a server's
#: message reads "the server sent ...", a client's "the client sent ...".

#: (side, start) pairs left out, because OpenSSL releases give a client
#: different reasons for them: 3.0 reads OPTIONS as a wrong version number
#: and 4.0 as an HTTP request, and some 3.5 releases read POST as a record
#: overflow.
_REASON_VARIES = {("client", b"OPTIONS "), ("client", b"POST / H")}



def _plaintext_params() -> list[Any]:
    params = []
    for start in fs.PLAINTEXT_STARTS[:11]:
        for side in ("server", "client"):
            if (side, start[:8]) in _REASON_VARIES:
                continue
            params.append(
                pytest.param(side, start, id=f"{side}-{start[:8]!r}")
            )
    return params


@pytest.mark.parametrize("side, start", _plaintext_params())
def test_plaintext_kind_names_right_peer(world, side, start):
    outcome = run(world, fs.Case(side, "plaintext", "default", start))
    assert outcome.stage == "failed"
    assert not fs.role_mismatch(side, outcome.kind), outcome.kind


# -- a peer certificate cryptography cannot parse --------------------------


def _certificate_with_version(
    cert_path: str, version: int, folder: str
) -> str:
    """Write a copy of the certificate whose version field is *version*
    (X.509 v3 is 2), which OpenSSL loads and cryptography rejects."""
    with open(cert_path, "rb") as handle:
        certificate = crypto.load_certificate(
            crypto.FILETYPE_PEM, handle.read()
        )
    der = bytearray(crypto.dump_certificate(crypto.FILETYPE_ASN1, certificate))
    # TBSCertificate starts with version [0] EXPLICIT INTEGER 2.
    at = der.index(b"\xa0\x03\x02\x01\x02")
    der[at + 4] = version
    changed = crypto.load_certificate(crypto.FILETYPE_ASN1, bytes(der))
    path = os.path.join(folder, f"version-{version}.crt")
    with open(path, "wb") as handle:
        handle.write(crypto.dump_certificate(crypto.FILETYPE_PEM, changed))
    return path


def _odd_certificate_pair(
    world: Any, folder: str, verify: bool
) -> tuple[icsssl.Connection, icsssl.Connection, Optional[BaseException]]:
    """Run a handshake whose server certificate has version field 3,
    which OpenSSL accepts and cryptography rejects.

    Return the client, the server and the client's failure (or None).
    """
    odd_cert = _certificate_with_version(world.cert_path, 3, folder)
    # pyOpenSSL's own Context: icsssl.Context rejects this file (see
    # test_bad_arguments.py).
    server_context = SSL.Context(SSL.TLS_METHOD)
    server_context.use_certificate_file(odd_cert)
    server_context.use_privatekey_file(world.key_path)
    client_context = SSL.Context(SSL.TLS_METHOD)
    if verify:
        client_context.set_verify(
            SSL.VERIFY_PEER, lambda *args: bool(args[-1])
        )
    client = fs.new_client(client_context)
    server = fs.new_server(server_context)
    assert fs.peer_certificate_unparsable(client) is False
    server.bio_write(fs.client_hello(client))
    fs.step(server)
    client.bio_write(fs.drain(server))
    result = fs.step(client)
    server.bio_write(fs.drain(client))
    fs.step(server)
    assert fs.peer_certificate_unparsable(client)
    return client, server, result


@pytest.mark.parametrize("verify", [False, True], ids=["no-verify", "verify"])
def test_report_with_unparsable_peer_certificate(world, tmp_path, verify):
    # Found by test_mutated_live_server_flight: a bit flip in the version
    # field of the TLS 1.2 Certificate message made handshake_report and
    # handshake_details raise InvalidVersion.
    client, _server, result = _odd_certificate_pair(
        world, str(tmp_path), verify
    )
    assert (result is None) is (not verify)
    report = client.handshake_report
    assert report is not None
    assert report.succeeded is (not verify)
    assert client.SslHandshakeRespMsg
    assert isinstance(client.handshake_details, dict)


def test_report_with_unparsable_own_certificate(world, tmp_path):
    _client, server, result = _odd_certificate_pair(
        world, str(tmp_path), verify=True
    )
    assert isinstance(result, SSL.Error)
    assert server.handshake_done
    report = server.handshake_report
    assert report is not None
    assert report.succeeded is False
    assert server.ErrCode == fs.expected_err_code(server.SslHandshakeErr)
    assert server.SslHandshakeRespMsg
    assert isinstance(server.handshake_details, dict)


# -- tlswire parsers ------------------------------------------------------


def _check_parser_result(data: Any) -> None:
    """Call every tlswire parser on *data*: each returns, or raises
    TypeError or ValueError for an argument of the wrong type."""
    for parser in (
        tlswire.parse_client_hello,
        tlswire.handshake_messages,
        tlswire.record_alert,
        tlswire.server_hello_seen,
        tlswire.is_tls_record,
    ):
        with contextlib.suppress(TypeError, ValueError):
            parser(data)


@FAST
@given(data=st.binary(max_size=4096))
def test_parsers_random_bytes(data):
    fs.check_parsers(data)
    fs.check_parsers(bytes([22, 3, 1]) + data)
    fs.check_parsers(
        bytes([22, 3, 3, len(data) >> 8 & 0xFF, len(data) & 0xFF, 1]) + data
    )


@FAST
@given(profile=profiles, changes=mutations)
def test_parsers_mutated_client_hello(world, profile, changes):
    hello = world.flights.client_hellos[profile]
    data = fs.apply_mutations(hello, changes, world.donors)
    fs.check_parsers(data)
    fs.check_parsers(bytearray(data))
    parsed = tlswire.parse_client_hello(data)
    assert tlswire.parse_client_hello(memoryview(data)) == parsed


@pytest.mark.parametrize("profile", fs.PROFILES)
def test_parse_whole_client_hello(world, profile):
    hello = world.flights.client_hellos[profile]
    parsed = tlswire.parse_client_hello(hello)
    assert parsed is not None
    assert parsed.complete
    assert parsed.size == len(hello)
    assert parsed.server_name == "localhost"
    assert parsed.has_signature_algorithms
    assert parsed.offered_versions
    for size in range(len(hello)):
        prefix = tlswire.parse_client_hello(hello[:size])
        assert prefix is None or not prefix.complete


@FAST
@given(
    value=st.one_of(
        st.text(max_size=200),
        st.integers(),
        st.none(),
        st.floats(),
        st.lists(st.integers(-300, 300), max_size=64),
        st.binary(max_size=64).map(bytearray),
    )
)
@example(value=[22, 3, 1, 0, 4, 1, 0, 0, 0])
@example(value="\x16\x03\x01\x00\x04\x01\x00\x00\x00")
def test_parsers_other_types(value):
    _check_parser_result(value)


# -- code decoders --------------------------------------------------------


def _check_decoded(decoded: Any, code: int, layout: Any) -> None:
    assert decoded.code == code
    if layout == "3":
        assert decoded.library == int(icsssl.lib.ERR_GET_LIB(code))
        assert decoded.reason == int(icsssl.lib.ERR_GET_REASON(code))
        assert decoded.function == 0
    elif layout in legacy.LEGACY_VERSIONS:
        # OpenSSL 1.x err.h: ERR_GET_LIB is (l >> 24) & 0xFF,
        # ERR_GET_FUNC (l >> 12) & 0xFFF, ERR_GET_REASON l & 0xFFF.
        assert decoded.library == (code >> 24) & 0xFF
        assert decoded.function == (code >> 12) & 0xFFF
        assert decoded.reason == code & 0xFFF
    assert str(decoded)


@FAST
@given(
    code=st.one_of(
        st.integers(0, 0xFFFFFFFF),
        st.integers(),
        st.sampled_from((0, 0x0A00010B, 0x1408A10B, 0x80000068, 0xFFFFFFFF)),
    ),
    layout=st.one_of(st.none(), st.sampled_from(legacy.LAYOUTS)),
)
def test_decode_code_ints(code, layout):
    try:
        decoded = icsssl.decode_code(code, layout)
    except ValueError:
        # Out of range, or ambiguous or fitting no layout when inferred.
        assert layout is None or not 0 <= code <= 0xFFFFFFFF
        return
    assert 0 <= code <= 0xFFFFFFFF
    _check_decoded(decoded, code, layout or _layout_of(decoded))


def _layout_of(decoded: Any) -> str:
    return "3" if decoded.versions == ("3",) else decoded.versions[0]


@FAST
@given(
    text=st.one_of(
        st.text(max_size=120),
        st.from_regex(r"\A\s*(0[xX]|\$)?[0-9A-Fa-f]{1,12}\s*\Z"),
        st.from_regex(r"\Aerror:[0-9A-Fa-f]{1,9}(:[^:\n]{0,30}){0,4}\Z"),
    ),
    layout=st.one_of(
        st.none(),
        st.sampled_from(legacy.LAYOUTS),
        st.text(max_size=6),
        st.integers(),
    ),
)
def test_decode_code_strings(text, layout):
    try:
        decoded = icsssl.decode_code(text, layout)
    except (TypeError, ValueError):
        return
    assert 0 <= decoded.code <= 0xFFFFFFFF
    _check_decoded(decoded, decoded.code, layout or _layout_of(decoded))


@FAST
@given(
    value=st.one_of(
        st.none(),
        st.floats(),
        st.binary(max_size=12),
        st.booleans(),
        st.lists(st.integers(), max_size=3),
    )
)
def test_decode_code_other_types(value):
    with pytest.raises(TypeError):
        icsssl.decode_code(value)


@FAST
@given(argument=st.text(max_size=40))
def test_decode_command_exit_status(argument):
    output = io.StringIO()
    with (
        contextlib.redirect_stdout(output),
        contextlib.redirect_stderr(output),
    ):
        try:
            status = legacy.main(["--", argument])
        except SystemExit as exit_request:
            status = exit_request.code
    assert status in (0, 2)


@FAST
@given(code=st.integers(0, 0xFFFFFFFF))
def test_error_functions_on_any_code(code):
    # The decoders agree with OpenSSL's macros on every valid code.
    assert icsssl.ERR_GET_LIB(code) == int(icsssl.lib.ERR_GET_LIB(code))
    assert icsssl.ERR_GET_REASON(code) == int(icsssl.lib.ERR_GET_REASON(code))
    assert icsssl.error_string(code).startswith(f"error:{code:08X}:")
    record = icsssl.decode(code)
    assert record.library == int(icsssl.lib.ERR_GET_LIB(code))
    assert record.reason == int(icsssl.lib.ERR_GET_REASON(code))
    assert record.text.startswith(f"error:{code:08X}:")


def test_long_run_cases_are_reproducible():
    first = fs.random_case(random.Random("7:42"))
    again = fs.random_case(random.Random("7:42"))
    assert first == again
