"""Benchmark icsssl against pyOpenSSL and stdlib ``ssl``.

    python benchmarks/run.py            # quick run, under a minute
    python benchmarks/run.py --full     # the figures docs/benchmarks.md records
    python benchmarks/run.py --json results.json

Contenders run round by round, interleaved, and the table shows medians
and the median of the per-round ratios icsssl ÷ pyOpenSSL, because the
machine may be shared and absolute times drift.  All traffic stays on
127.0.0.1.  See benchmarks/README.md for what each figure measures.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import cffi
import cryptography
import drivers
import loopback
import memory
import OpenSSL
import rounds
import startup
from certificates import CertificateFiles, write_certificates
from OpenSSL import SSL
from results import (
    ICSSSL,
    PYOPENSSL,
    STDLIB,
    Figure,
    Target,
    format_text_table,
)

import icsssl

CHUNK_BYTES = 64 * 1024
AT_LEAST_99 = Target("ratio", 0.99, at_least=True)
AT_LEAST_97 = Target("ratio", 0.97, at_least=True)

REPORT_PROPERTIES = (
    "SslHandshakeRespMsg",
    "SslCipherDesc",
    "SslEncryption",
    "SslKeyExchange",
    "SslKeyAuth",
    "SslMessAuth",
    "SslVersion",
    "SslCipher",
    "SslSecretBits",
    "SslTotalBits",
    "SslGroupName",
    "ErrCode",
    "SslHandshakeErr",
)

GROUPS = (
    "handshakes-memory",
    "handshakes-loopback",
    "bulk",
    "rejected",
    "properties",
    "import",
    "rss",
)


@dataclasses.dataclass(frozen=True)
class Settings:
    """How much work each figure does.  The full run does more, to
    narrow the medians."""

    rounds: int
    handshakes_memory: int
    handshakes_loopback: int
    bulk_memory_chunks: int
    bulk_loopback_chunks: int
    rejections: int
    property_reads: int
    imports: int
    rss_failed: int
    rss_successful: int
    rss_warmup_failed: int
    rss_warmup_successful: int
    noise_check: bool


QUICK = Settings(
    rounds=9,
    handshakes_memory=80,
    handshakes_loopback=60,
    bulk_memory_chunks=256,
    bulk_loopback_chunks=512,
    rejections=1000,
    property_reads=20_000,
    imports=9,
    rss_failed=5_000,
    rss_successful=1_000,
    rss_warmup_failed=1_000,
    rss_warmup_successful=200,
    noise_check=False,
)

FULL = Settings(
    rounds=31,
    handshakes_memory=200,
    handshakes_loopback=150,
    bulk_memory_chunks=1024,
    bulk_loopback_chunks=2048,
    rejections=3000,
    property_reads=100_000,
    imports=41,
    rss_failed=20_000,
    rss_successful=20_000,
    rss_warmup_failed=2_000,
    rss_warmup_successful=1_000,
    noise_check=True,
)


def _load_average() -> float:
    return os.getloadavg()[0]


def _section(title: str) -> None:
    print(f"-- {title} (load average {_load_average():.2f})", flush=True)


# -- handshakes -------------------------------------------------------------


def handshake_figures_memory(
    files: CertificateFiles, settings: Settings, negotiated: dict[str, Any]
) -> list[Figure]:
    """Full handshakes per second, client and server on memory BIOs in
    one thread, for each TLS version."""
    labels = [ICSSSL, PYOPENSSL, STDLIB]
    if settings.noise_check:
        labels.append(drivers.PYOPENSSL_AGAIN.label)
    figures = []
    for version in drivers.VERSIONS:
        _section(f"handshakes, memory BIO, TLS {version}")
        batches = {}
        for label in labels:
            contender = drivers.CONTENDERS[label]
            server_context = contender.server_context(files)
            client_context = contender.client_context(files, version)
            client, _ = contender.handshake_in_memory(
                client_context, server_context
            )
            found = contender.negotiated(client)
            drivers.check_protocol(label, found, version)
            negotiated[f"{label}, TLS {version}"] = found
            batches[label] = _handshake_batch(
                contender, client_context, server_context, settings
            )
        samples = rounds.interleave(batches, settings.rounds)
        figures.extend(
            _with_noise_check(
                f"handshakes/s, memory BIO, TLS {version}", "1/s", samples
            )
        )
    return figures


def _with_noise_check(
    name: str, unit: str, samples: dict[str, list[float]]
) -> list[Figure]:
    """Return the figure, followed by its A/A noise check when the
    samples include the second pyOpenSSL copy."""
    noise = samples.pop(drivers.PYOPENSSL_AGAIN.label, None)
    figures = [Figure(name, unit, samples, AT_LEAST_99)]
    if noise is not None:
        figures.append(
            Figure(
                "  noise check (A/A): pyOpenSSL ÷ pyOpenSSL, same rounds",
                unit,
                {ICSSSL: noise, PYOPENSSL: samples[PYOPENSSL]},
                note="the same code under two labels, interleaved like the "
                "contenders; the icsssl column shows the second copy",
            )
        )
    return figures


def _handshake_batch(
    contender: Any,
    client_context: Any,
    server_context: Any,
    settings: Settings,
) -> rounds.Batch:
    count = settings.handshakes_memory

    def work() -> float:
        for _ in range(count):
            contender.handshake_in_memory(client_context, server_context)
        return count

    # The collector stays on because icsssl connections that end in
    # reference cycles are freed only by it, and that is part of their
    # cost.
    return lambda: rounds.timed_rate(work, collect_garbage=True)


def loopback_figures(
    files: CertificateFiles, settings: Settings
) -> list[Figure]:
    """Handshakes per second and bulk MB/s over loopback TCP, client and
    server in two processes."""
    labels = [ICSSSL, PYOPENSSL, STDLIB]
    figures = []
    with loopback.Loopback(files, labels) as link:
        for version in drivers.VERSIONS:
            _section(f"handshakes, loopback sockets, TLS {version}")
            count = settings.handshakes_loopback

            def handshake_batch(
                label: str, version: str = version, count: int = count
            ) -> rounds.Batch:
                return lambda: count / link.run_batch(label, version, count)

            samples = rounds.interleave(
                {label: handshake_batch(label) for label in labels},
                settings.rounds,
            )
            figures.append(
                Figure(
                    f"handshakes/s, loopback, 2 processes, TLS {version}",
                    "1/s",
                    samples,
                    AT_LEAST_99,
                )
            )

        _section("bulk, loopback sockets, TLS 1.3")
        chunks = settings.bulk_loopback_chunks
        megabytes = chunks * CHUNK_BYTES / 1e6

        def bulk_batch(label: str) -> rounds.Batch:
            return lambda: (
                megabytes
                / link.run_batch(label, "1.3", 1, CHUNK_BYTES, chunks)
            )

        samples = rounds.interleave(
            {label: bulk_batch(label) for label in labels}, settings.rounds
        )
        figures.append(
            Figure(
                "MB/s, loopback, TLS 1.3, client writes 64 KiB "
                "(incl. 1 handshake)",
                "MB/s",
                samples,
                AT_LEAST_99,
            )
        )
    for label, report in link.server_reports.items():
        if report.get("errors") or "stop_error" in report:
            print(f"   server {label}: {report}", flush=True)
    figures[-1].extra["server_reports"] = link.server_reports
    return figures


# -- bulk on memory BIOs ----------------------------------------------------


def bulk_figures_memory(
    files: CertificateFiles, settings: Settings
) -> list[Figure]:
    """MB/s of 64 KiB writes between a connected client and server on
    memory BIOs."""
    cases = (
        ("1.2", "client"),
        ("1.3", "client"),
        ("1.3", "server"),
    )
    chunk = b"\x5a" * CHUNK_BYTES
    chunks = settings.bulk_memory_chunks
    megabytes = chunks * CHUNK_BYTES / 1e6
    figures = []
    for version, writer_side in cases:
        _section(f"bulk, memory BIO, TLS {version}, {writer_side} writes")
        labels = [ICSSSL, PYOPENSSL, STDLIB]
        if settings.noise_check:
            labels.append(drivers.PYOPENSSL_AGAIN.label)
        batches = {}
        for label in labels:
            contender = drivers.CONTENDERS[label]
            client, server = contender.handshake_in_memory(
                contender.client_context(files, version),
                contender.server_context(files),
            )
            writer, reader = (
                (client, server)
                if writer_side == "client"
                else (server, client)
            )
            batches[label] = _bulk_batch(
                contender, writer, reader, chunk, chunks, megabytes
            )
        samples = rounds.interleave(batches, settings.rounds)
        figures.extend(
            _with_noise_check(
                f"MB/s, memory BIO, TLS {version}, {writer_side} writes "
                "64 KiB",
                "MB/s",
                samples,
            )
        )
    return figures


def _bulk_batch(
    contender: Any,
    writer: Any,
    reader: Any,
    chunk: bytes,
    chunks: int,
    megabytes: float,
) -> rounds.Batch:
    def work() -> float:
        contender.transfer_in_memory(writer, reader, chunk, chunks)
        return megabytes

    return lambda: rounds.timed_rate(work, collect_garbage=False)


# -- rejected handshakes ----------------------------------------------------


def rejection_figure(files: CertificateFiles, settings: Settings) -> Figure:
    """Failed handshakes per second at a server fed a plain HTTP request
    on a memory BIO."""
    _section("rejected handshakes, plain HTTP request, memory BIO")
    count = settings.rejections
    batches = {}
    for label in (ICSSSL, PYOPENSSL):
        contender = drivers.CONTENDERS[label]
        context = contender.server_context(files)
        batches[label] = _rejection_batch(contender, context, count)
    samples = rounds.interleave(batches, settings.rounds)
    return Figure(
        "rejected handshakes/s, plain HTTP request, memory BIO",
        "1/s",
        samples,
        AT_LEAST_97,
    )


def _rejection_batch(contender: Any, context: Any, count: int) -> rounds.Batch:
    def work() -> float:
        failures = contender.reject_http_requests(context, count)
        if failures != count:
            raise RuntimeError(
                f"{contender.label}: {count - failures} of {count} plain "
                "HTTP requests did not fail the handshake"
            )
        return failures

    # As for handshakes, the collector stays on because only it frees a
    # failed icsssl connection.
    return lambda: rounds.timed_rate(work, collect_garbage=True)


# -- report properties ------------------------------------------------------


def _read_report(connection: icsssl.Connection) -> None:
    # Plain attribute reads, as application code would write them.
    _ = connection.SslHandshakeRespMsg
    _ = connection.SslCipherDesc
    _ = connection.SslEncryption
    _ = connection.SslKeyExchange
    _ = connection.SslKeyAuth
    _ = connection.SslMessAuth
    _ = connection.SslVersion
    _ = connection.SslCipher
    _ = connection.SslSecretBits
    _ = connection.SslTotalBits
    _ = connection.SslGroupName
    _ = connection.ErrCode
    _ = connection.SslHandshakeErr


def _finished_connections(files: CertificateFiles) -> dict[str, Any]:
    contender = drivers.ICSSSL
    server_context = contender.server_context(files)
    client, _ = contender.handshake_in_memory(
        contender.client_context(files, "1.3"), server_context
    )
    failed = contender.connection_class(server_context, None)
    failed.set_accept_state()
    failed.bio_write(drivers.HTTP_REQUEST)
    try:
        failed.do_handshake()
    except SSL.Error:
        pass
    else:
        raise RuntimeError("icsssl accepted a plain HTTP request")
    return {
        "successful TLS 1.3 client": client,
        "failed server (plain HTTP)": failed,
    }


def _first_read_microseconds(
    files: CertificateFiles, samples: int
) -> dict[str, float]:
    """Return the median µs of the first property read, which builds the
    report, for each kind of finished connection."""
    timings: dict[str, list[float]] = {}
    for _ in range(samples):
        for case, connection in _finished_connections(files).items():
            start = time.perf_counter()
            _ = connection.SslHandshakeRespMsg
            elapsed = time.perf_counter() - start
            timings.setdefault(case, []).append(elapsed * 1e6)
    return {
        case: statistics.median(values) for case, values in timings.items()
    }


def property_figures(
    files: CertificateFiles, settings: Settings
) -> list[Figure]:
    """Microseconds to read all report properties of a finished icsssl
    connection once the report has been built."""
    _section("report properties")
    reads = settings.property_reads
    connections = _finished_connections(files)
    for connection in connections.values():
        if connection.handshake_report is None:
            raise RuntimeError("a finished connection has no report")

    def batch(connection: Any) -> rounds.Batch:
        def work() -> float:
            for _ in range(reads):
                _read_report(connection)
            return reads

        return lambda: 1e6 / rounds.timed_rate(work, collect_garbage=False)

    samples = rounds.interleave(
        {case: batch(connection) for case, connection in connections.items()},
        settings.rounds,
    )
    first_reads = _first_read_microseconds(files, 31)
    figures = []
    for case, values in samples.items():
        figure = Figure(
            f"µs to read the {len(REPORT_PROPERTIES)} report properties, "
            f"{case}",
            "µs",
            {ICSSSL: values},
            Target("value", 1.5, at_least=False),
            ratio_of=None,
        )
        figure.extra["first_read_us"] = first_reads[case]
        figures.append(figure)
    return figures


# -- import -----------------------------------------------------------------


def import_figure(settings: Settings) -> Figure:
    """Milliseconds to ``import icsssl`` and ``import OpenSSL.SSL``, each
    in a new interpreter."""
    _section("import time, new interpreter each")
    directory = tempfile.mkdtemp(prefix="icsssl-bench-import-")
    try:
        batches = {
            ICSSSL: lambda: 1e3 * startup.import_seconds("icsssl", directory),
            PYOPENSSL: lambda: (
                1e3 * startup.import_seconds("OpenSSL.SSL", directory)
            ),
        }
        samples = rounds.interleave(batches, settings.imports, warmup_rounds=2)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return Figure(
        "import ms: icsssl vs OpenSSL.SSL, new interpreter",
        "ms",
        samples,
        Target("ratio", 1.15, at_least=False),
    )


# -- resident memory --------------------------------------------------------


def rss_figures(files: CertificateFiles, settings: Settings) -> list[Figure]:
    """RSS growth over many failed and successful handshakes."""
    cases = (
        ("failed", settings.rss_failed, settings.rss_warmup_failed),
        (
            "successful",
            settings.rss_successful,
            settings.rss_warmup_successful,
        ),
    )
    figures = []
    for kind, count, warmup in cases:
        _section(f"RSS over {count:,} {kind} handshakes")
        samples = {}
        soaks = {}
        for label in (ICSSSL, PYOPENSSL):
            result = memory.soak(label, kind, count, warmup, files)
            soaks[label] = result
            # The peak is what the process held at its worst; the growth
            # after a final collection is in the JSON as growth_kib.
            samples[label] = [result["peak_growth_kib"] / 1024]
        scenario = (
            "plain HTTP request, server"
            if kind == "failed"
            else "TLS 1.3, client and server"
        )
        figure = Figure(
            f"peak RSS growth MiB, {count:,} {kind} handshakes ({scenario})",
            "MiB",
            samples,
            Target("value", 1.0, at_least=False),
            ratio_of=None,
        )
        figure.extra["soaks"] = soaks
        figures.append(figure)
    return figures


# -- the run ----------------------------------------------------------------


def _machine() -> dict[str, Any]:
    cpu = ""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        cpu = platform.processor()
    memory_kib = 0
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            for line in info:
                if line.startswith("MemTotal:"):
                    memory_kib = int(line.split()[1])
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "platform": platform.platform(),
    }


def _source_state() -> dict[str, Any]:
    """Return the checkout's commit and whether icsssl/ has uncommitted
    changes, because the figures describe the code as it was run."""
    checkout = Path(__file__).resolve().parent.parent

    def git(*arguments: str) -> str:
        try:
            completed = subprocess.run(
                ["git", "-C", str(checkout), *arguments],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            )
        except (OSError, subprocess.SubprocessError):
            return ""
        return completed.stdout.strip()

    return {
        "commit": git("rev-parse", "HEAD"),
        "icsssl_changes": git("status", "--porcelain", "--", "icsssl"),
    }


def _versions() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "icsssl": icsssl.__version__,
        "pyopenssl": OpenSSL.__version__,
        "cryptography": cryptography.__version__,
        "cffi": cffi.__version__,
        "pyopenssl_openssl": icsssl.pyopenssl_openssl_version(),
        "icsssl_openssl": icsssl.openssl_version(),
        "stdlib_ssl_openssl": ssl.OPENSSL_VERSION,
        "shared_openssl": icsssl.SHARED_OPENSSL,
    }


def _parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark icsssl against pyOpenSSL and stdlib ssl, "
        "interleaved round by round, and print medians and ratios."
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help="run the longer measurement recorded in docs/benchmarks.md "
        "(about 4 minutes on 2 vCPUs) instead of the quick one",
    )
    parser.add_argument(
        "--json",
        metavar="FILE",
        type=Path,
        help="also write every sample and summary to FILE as JSON",
    )
    parser.add_argument(
        "--only",
        metavar="GROUP",
        action="append",
        choices=GROUPS,
        help="run only this group of figures (repeatable): "
        + ", ".join(GROUPS),
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks and print the table; return the exit status."""
    arguments = _parse_arguments(argv)
    settings = FULL if arguments.full else QUICK
    groups = arguments.only or list(GROUPS)
    started = time.time()
    load_before = os.getloadavg()
    print(
        f"icsssl benchmarks, {'full' if arguments.full else 'quick'} run, "
        f"{settings.rounds} interleaved rounds",
        flush=True,
    )
    negotiated: dict[str, Any] = {}
    figures: list[Figure] = []
    directory = Path(tempfile.mkdtemp(prefix="icsssl-bench-"))
    try:
        files = write_certificates(directory)
        steps: dict[str, Callable[[], Any]] = {
            "handshakes-memory": lambda: handshake_figures_memory(
                files, settings, negotiated
            ),
            "handshakes-loopback": lambda: loopback_figures(files, settings),
            "bulk": lambda: bulk_figures_memory(files, settings),
            "rejected": lambda: [rejection_figure(files, settings)],
            "properties": lambda: property_figures(files, settings),
            "import": lambda: [import_figure(settings)],
            "rss": lambda: rss_figures(files, settings),
        }
        for group in GROUPS:
            if group in groups:
                figures.extend(steps[group]())
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    seconds = time.time() - started
    load_after = os.getloadavg()

    print()
    print(format_text_table(figures))
    print(
        f"\n{seconds:.0f} s; load average (1, 5, 15 min) "
        f"{' '.join(f'{x:.2f}' for x in load_before)} before, "
        f"{' '.join(f'{x:.2f}' for x in load_after)} after; ratio = median "
        "of per-round icsssl ÷ pyOpenSSL, [IQR] its interquartile range"
    )
    if arguments.json:
        document = {
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "mode": "full" if arguments.full else "quick",
            "settings": dataclasses.asdict(settings),
            "started": time.strftime(
                "%Y-%m-%dT%H:%M:%S%z", time.localtime(started)
            ),
            "seconds": seconds,
            "load_average_before": load_before,
            "load_average_after": load_after,
            "machine": _machine(),
            "source": _source_state(),
            "versions": _versions(),
            "negotiated": negotiated,
            "figures": [figure.as_dict() for figure in figures],
        }
        arguments.json.write_text(json.dumps(document, indent=2) + "\n")
        print(f"wrote {arguments.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
