"""Time memory-BIO handshakes of pyOpenSSL against icsssl with one part of
icsssl's handshake watch removed at a time, to see what each part costs.

    python benchmarks/hook_cost.py [1.2|1.3]

Each variant runs 150 handshake pairs a round, interleaved with the
others, for 9 rounds with the garbage collector off; the table shows the
median time per pair and its ratio to pyOpenSSL.
"""

from __future__ import annotations

import gc
import pathlib
import statistics
import sys
import tempfile
import time
from typing import Any

from OpenSSL import SSL

import drivers
import icsssl
from certificates import write_certificates
from icsssl import connection as icsssl_connection

ROUNDS = 9
PAIRS_PER_ROUND = 150


class EmptySubclass(SSL.Connection):
    """pyOpenSSL's Connection under another class: the noise check."""


class ShadowOnly(SSL.Connection):
    """Only a shadow of _raise_ssl_error that calls pyOpenSSL."""

    def __init__(self, context: Any, socket: Any = None) -> None:
        super().__init__(context, socket)
        self._raise_ssl_error = icsssl_connection._watch(
            self, ShadowOnly._shadow
        )

    def _shadow(self, ssl: Any, result: int) -> None:
        SSL.Connection._raise_ssl_error(self, ssl, result)
        if result > 0:
            self.__dict__.pop("_raise_ssl_error", None)


class WithoutFinish(icsssl.Connection):
    """icsssl without the work _finish does after a success."""

    def _finish(self, failure: Any) -> None:
        self._stop_watching()
        self._ics_finished = True


class WithoutLateWatch(icsssl.Connection):
    """icsssl without the TLS 1.3 post-handshake watch."""

    def _watch_first_exchange(self, forked: bool = False) -> None:
        pass


class WithoutCapture(icsssl.Connection):
    """icsssl without the memory-BIO capture shadows."""

    def _watch_new_handshake(self, memory_bio: bool) -> None:
        super()._watch_new_handshake(False)
        self.__dict__.pop("do_handshake", None)


VARIANTS = {
    "pyOpenSSL": SSL.Connection,
    "empty subclass": EmptySubclass,
    "shadow only": ShadowOnly,
    "icsssl without _finish": WithoutFinish,
    "icsssl without late watch": WithoutLateWatch,
    "icsssl without capture": WithoutCapture,
    "icsssl": icsssl.Connection,
}


def main() -> int:
    version = sys.argv[1] if len(sys.argv) > 1 else "1.2"
    folder = pathlib.Path(tempfile.mkdtemp(prefix="icsssl-hook-cost-"))
    files = write_certificates(folder)
    contenders = {
        name: drivers.PyOpenSSLContender(name, connection, SSL.Context)
        for name, connection in VARIANTS.items()
    }
    contexts = {
        name: (
            contender.server_context(files),
            contender.client_context(files, version),
        )
        for name, contender in contenders.items()
    }
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(ROUNDS):
        for name, contender in contenders.items():
            server_context, client_context = contexts[name]
            gc.collect()
            gc.disable()
            start = time.perf_counter()
            for _ in range(PAIRS_PER_ROUND):
                contender.handshake_in_memory(client_context, server_context)
            elapsed = time.perf_counter() - start
            gc.enable()
            times[name].append(elapsed / PAIRS_PER_ROUND)
    baseline = statistics.median(times["pyOpenSSL"])
    print(f"TLS {version}, memory BIO, {ROUNDS} rounds x {PAIRS_PER_ROUND}")
    for name in VARIANTS:
        median = statistics.median(times[name])
        print(f"{name:<28} {median * 1e6:8.1f} us  {baseline / median:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
