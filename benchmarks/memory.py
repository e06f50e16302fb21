"""Resident memory (RSS) growth over many handshakes.

Each soak runs in a new process (``spawn``), so the benchmarks before it
leave no allocations behind.  The process first warms up (caches, the
cipher table, the allocator's arenas), runs the garbage collector and
reads its RSS.  It then runs the handshakes with the collector on, as an
application would, and reads its RSS after every tenth of them and once
more after a final collection.  RSS comes from ``VmRSS`` in
``/proc/self/status`` (Linux).
"""

from __future__ import annotations

import gc
import multiprocessing
import time
from multiprocessing.connection import Connection as Pipe
from typing import Any

import drivers
from certificates import CertificateFiles
from OpenSSL import SSL

#: How many RSS readings a soak takes besides the first and last.
READINGS = 10
SOAK_TIMEOUT_SECONDS = 300


def rss_kib() -> int:
    """Return this process's resident set size in KiB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS line in /proc/self/status")


def _settled_rss_kib() -> int:
    gc.collect()
    return rss_kib()


def _soak_main(
    label: str,
    kind: str,
    count: int,
    warmup: int,
    files: CertificateFiles,
    pipe: Pipe,
) -> None:
    contender = drivers.CONTENDERS[label]
    server_context = contender.server_context(files)
    client_context = contender.client_context(files, "1.3")
    # icsssl's soak also builds each report, as an application that logs
    # SslHandshakeRespMsg would.
    read_report = label == "icsssl"

    def run(handshakes: int) -> None:
        for _ in range(handshakes):
            if kind == "failed":
                server = contender.connection_class(server_context, None)
                server.set_accept_state()
                server.bio_write(drivers.HTTP_REQUEST)
                try:
                    server.do_handshake()
                except SSL.Error:
                    pass
                else:
                    raise RuntimeError("a plain HTTP request was accepted")
                if read_report:
                    _ = server.SslHandshakeRespMsg
                continue
            client, server = contender.handshake_in_memory(
                client_context, server_context
            )
            if read_report:
                _ = client.SslHandshakeRespMsg
                _ = server.SslHandshakeRespMsg

    run(warmup)
    baseline = _settled_rss_kib()
    readings = [(0, baseline)]
    step = max(1, count // READINGS)
    done = 0
    start = time.perf_counter()
    for _ in range(READINGS + 1):
        if done >= count:
            break
        batch = min(step, count - done)
        run(batch)
        done += batch
        readings.append((done, rss_kib()))
    elapsed = time.perf_counter() - start
    final = _settled_rss_kib()
    pipe.send(
        {
            "label": label,
            "kind": kind,
            "count": done,
            "warmup": warmup,
            "baseline_kib": baseline,
            "final_kib": final,
            "growth_kib": final - baseline,
            "peak_growth_kib": max(final, *(kib for _, kib in readings))
            - baseline,
            "readings": readings,
            "seconds": elapsed,
        }
    )


def soak(
    label: str, kind: str, count: int, warmup: int, files: CertificateFiles
) -> dict[str, Any]:
    """Run *count* handshakes of *kind* with *label* in a new process
    and return its RSS readings.

    A ``"failed"`` handshake is a plain HTTP request fed to a server.  A
    ``"successful"`` one is a TLS 1.3 client and server on memory BIOs.
    """
    spawn = multiprocessing.get_context("spawn")
    parent_end, child_end = spawn.Pipe()
    process = spawn.Process(
        target=_soak_main,
        args=(label, kind, count, warmup, files, child_end),
        name=f"benchmark soak ({label}, {kind})",
        daemon=True,
    )
    process.start()
    try:
        if not parent_end.poll(SOAK_TIMEOUT_SECONDS):
            raise TimeoutError(
                f"{label} {kind} soak took over {SOAK_TIMEOUT_SECONDS} s"
            )
        result: dict[str, Any] = parent_end.recv()
    except EOFError as error:
        raise RuntimeError(
            f"{label} {kind} soak process died with exit code "
            f"{process.exitcode}"
        ) from error
    finally:
        process.join(timeout=10)
        if process.is_alive():
            process.terminate()
    return result
