"""Run one benchmark workload for a while, for a profiler to watch.

    python benchmarks/workload.py handshakes-memory icsssl --version 1.3
    python benchmarks/workload.py rejected icsssl --cprofile
    py-spy record --native -f raw -o out.txt -- \\
        python benchmarks/workload.py handshakes-memory icsssl
    py-spy record --subprocesses -f raw -o out.txt -- \\
        python benchmarks/workload.py handshakes-loopback icsssl

The loopback workload runs the client in this process and the server in
a child process.

docs/benchmarks.md quotes profiles taken this way.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import drivers
import loopback
from certificates import CertificateFiles, write_certificates
from run import _finished_connections, _read_report

WORKLOADS = (
    "handshakes-memory",
    "handshakes-loopback",
    "rejected",
    "properties",
)
MAX_BATCHES = 1_000_000


def _step(
    workload: str, label: str, version: str, files: CertificateFiles
) -> tuple[Callable[[], None], Callable[[], None]]:
    """Return one batch of *workload* and a function that cleans up."""
    contender = drivers.CONTENDERS[label]
    if workload == "handshakes-memory":
        client_context = contender.client_context(files, version)
        server_context = contender.server_context(files)
        return (
            lambda: contender.handshake_in_memory(
                client_context, server_context
            ),
            lambda: None,
        )
    if workload == "rejected":
        context = contender.server_context(files)
        return lambda: contender.reject_http_requests(
            context, 100
        ), lambda: None
    if workload == "properties":
        connection = _finished_connections(files)["successful TLS 1.3 client"]
        _ = connection.handshake_report  # builds the report once
        return lambda: _read_report(connection), lambda: None
    # The server runs in its own process and this process is the client,
    # so a profiler attached to it sees the client side.
    link = loopback.Loopback(files, [label]).__enter__()
    client_context = contender.client_context(files, version)
    port = link.ports[label]
    return (
        lambda: contender.exchange(client_context, port, b"", 0),
        lambda: link.__exit__(None, None, None),
    )


def main() -> int:
    """Run the chosen workload and optionally print its cProfile."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("workload", choices=WORKLOADS)
    parser.add_argument("label", choices=sorted(drivers.CONTENDERS))
    parser.add_argument(
        "--version",
        choices=drivers.VERSIONS,
        default="1.3",
        help="TLS version of the handshakes (default 1.3)",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=15.0,
        help="how long to run the workload, in seconds (default 15)",
    )
    parser.add_argument(
        "--cprofile",
        action="store_true",
        help="run under cProfile and print the 30 functions with the "
        "most time of their own",
    )
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="icsssl-bench-") as directory:
        files = write_certificates(Path(directory))
        step, cleanup = _step(
            arguments.workload, arguments.label, arguments.version, files
        )
        try:
            profiler = cProfile.Profile() if arguments.cprofile else None
            if profiler is not None:
                profiler.enable()
            deadline = time.monotonic() + arguments.seconds
            batches = 0
            for batches in range(1, MAX_BATCHES + 1):
                step()
                if time.monotonic() > deadline:
                    break
            if profiler is not None:
                profiler.disable()
                pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
        finally:
            cleanup()
    print(f"{batches} batches of {arguments.workload} ({arguments.label})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
