"""Long fuzz run of icsssl's handshake report, without hypothesis.

Runs the generator of ``tests/fuzz_support.py`` (the one
``tests/test_fuzz.py`` runs under hypothesis) for ``--iterations`` inputs,
each drawn from ``random.Random(f"{seed}:{index}")`` so that any input can
be run again alone with ``--replay INDEX``.  Every input ends within
``MAX_CHUNKS + 1`` ``do_handshake`` calls (see fuzz_support's docstring);
each also feeds its bytes to the tlswire parsers and a random code to
``icsssl.decode_code``.

With ``--workers N`` the indices are shared among N processes.  The parent
prints progress, and stops the run when a worker reports nothing for
``--stall-seconds`` (a hang), naming the index that worker was running.

``--engine atheris`` hands the inputs to atheris (libFuzzer with coverage
of icsssl's Python modules) in this process instead, for ``--iterations``
runs or ``--seconds``.

Usage::

    python benchmarks/fuzz_long.py --iterations 1000000 --workers 2
    python benchmarks/fuzz_long.py --replay 123456 --seed 1
    python benchmarks/fuzz_long.py --engine atheris --iterations 100000
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import importlib
import multiprocessing
import os
import queue
import random
import resource
import sys
import tempfile
import time
from typing import Any, Optional

TESTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests")

#: Cases between two progress messages of a worker.
REPORT_EVERY_CASES = 500

#: Cases between two progress reports of the atheris engine.
ATHERIS_REPORT_EVERY_CASES = 10_000

#: Maximum failure reports kept and printed.
MAX_FAILURES_KEPT = 50

#: icsssl modules atheris instruments for coverage.
INSTRUMENTED_MODULES = (
    "icsssl.connection",
    "icsssl.diagnosis",
    "icsssl.tlswire",
    "icsssl.legacy",
)

#: Layouts handed to decode_code, None meaning "infer".
DECODE_LAYOUTS = (None, "1.0.2", "1.1.1", "3")


def _import_support() -> Any:
    if TESTS not in sys.path:
        sys.path.insert(0, TESTS)
    import fuzz_support

    return fuzz_support


class Harness:
    """Contexts and captured flights of one process."""

    def __init__(self) -> None:
        self.fs = _import_support()
        self._folder = tempfile.TemporaryDirectory(prefix="icsssl-fuzz-")
        cert_path, key_path = self.fs.write_certificate(self._folder.name)
        self.contexts = self.fs.make_contexts(cert_path, key_path)
        self.flights = self.fs.capture_flights(self.contexts)
        self.donors = self.flights.donors()

    def run(self, case: Any, rng: Optional[random.Random]) -> Any:
        outcome = self.fs.run_case(
            case, self.contexts, self.flights, self.donors
        )
        if rng is not None:
            self.fs.check_decode_code(
                rng.getrandbits(32), rng.choice(DECODE_LAYOUTS)
            )
            text = rng.randbytes(rng.randrange(12)).hex()
            self.fs.check_decode_code(rng.choice(("", "0x", "error:")) + text)
        return outcome


def case_for(fs: Any, seed: int, index: int) -> tuple[Any, random.Random]:
    rng = random.Random(f"{seed}:{index}")
    return fs.random_case(rng), rng


def _outcome_key(case: Any, outcome: Any) -> str:
    return f"{case.target:6} {outcome.stage:32} {outcome.kind}"


@dataclasses.dataclass
class Tally:
    """Counts of one worker since its last message, or of the whole run."""

    done: int = 0
    counts: collections.Counter[str] = dataclasses.field(
        default_factory=collections.Counter
    )
    failures: list[str] = dataclasses.field(default_factory=list)
    slowest_seconds: float = 0.0
    slowest_index: int = -1
    max_rss_mib: float = 0.0

    def add(self, other: Tally) -> None:
        """Add a worker's message to this tally."""
        self.done += other.done
        self.counts.update(other.counts)
        room = MAX_FAILURES_KEPT - len(self.failures)
        self.failures.extend(other.failures[: max(room, 0)])
        if other.slowest_seconds > self.slowest_seconds:
            self.slowest_seconds = other.slowest_seconds
            self.slowest_index = other.slowest_index


def _run_one(harness: Harness, seed: int, index: int, tally: Tally) -> None:
    fs = harness.fs
    case, rng = case_for(fs, seed, index)
    began = time.perf_counter()
    try:
        outcome = harness.run(case, rng)
    except Exception as error:  # noqa: BLE001 - every failure is reported
        tally.counts["FAILURE"] += 1
        tally.failures.append(
            f"index {index}: {fs.describe_failure(case, error)}"
        )
    else:
        tally.counts[_outcome_key(case, outcome)] += 1
        if outcome.role_mismatch:
            tally.counts[
                f"role mismatch: {case.target} got {outcome.kind}"
            ] += 1
    spent = time.perf_counter() - began
    if spent > tally.slowest_seconds:
        tally.slowest_seconds = spent
        tally.slowest_index = index
    tally.done += 1


def worker_main(
    worker: int,
    arguments: argparse.Namespace,
    messages: Any,
    current: Any,
    stop: Any,
) -> None:
    """Run indices worker, worker + workers, ... and send a
    :class:`Tally` to the parent through *messages* every
    :data:`REPORT_EVERY_CASES` cases or 5 seconds."""
    harness = Harness()
    tally = Tally()
    last_report = time.monotonic()
    indices = range(worker, arguments.iterations, arguments.workers)
    for index in indices:
        if stop.is_set():
            break
        current[worker] = index
        _run_one(harness, arguments.seed, index, tally)

        now = time.monotonic()
        if tally.done >= REPORT_EVERY_CASES or now - last_report > 5:
            tally.max_rss_mib = _max_rss_mib()
            messages.put(("progress", worker, tally))
            tally = Tally()
            last_report = now
    tally.max_rss_mib = _max_rss_mib()
    messages.put(("progress", worker, tally))
    messages.put(("finished", worker, None))


def _max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _start_workers(
    arguments: argparse.Namespace,
) -> tuple[list[Any], Any, Any, Any]:
    context = multiprocessing.get_context("fork")
    messages = context.Queue()
    current = context.Array("q", [-1] * arguments.workers)
    stop = context.Event()
    processes = [
        context.Process(
            target=worker_main,
            args=(worker, arguments, messages, current, stop),
            name=f"fuzz-worker-{worker}",
            daemon=True,
        )
        for worker in range(arguments.workers)
    ]
    for process in processes:
        process.start()
    return processes, messages, current, stop


def _find_hang(
    arguments: argparse.Namespace,
    processes: list[Any],
    finished: set[int],
    last_seen: dict[int, float],
    current: Any,
) -> Optional[str]:
    """Return why a worker is stuck or dead, or None."""
    now = time.monotonic()
    for worker, process in enumerate(processes):
        if worker in finished:
            continue
        if not process.is_alive() and process.exitcode not in (0, None):
            return (
                f"worker {worker} died with exit code {process.exitcode} "
                f"while running index {current[worker]}"
            )
        if now - last_seen[worker] > arguments.stall_seconds:
            return (
                f"worker {worker} sent nothing for {arguments.stall_seconds} "
                f"s while running index {current[worker]}"
            )
    return None


def run_random(arguments: argparse.Namespace) -> int:
    """Run the seeded generator in worker processes and return the exit
    status: 0 when no input broke a rule, 1 otherwise."""
    began = time.monotonic()
    processes, messages, current, stop = _start_workers(arguments)
    total = Tally()
    rss: dict[int, float] = {}
    last_seen = {worker: began for worker in range(arguments.workers)}
    finished: set[int] = set()
    last_print = began
    hang: Optional[str] = None

    while len(finished) < arguments.workers:
        if arguments.seconds and time.monotonic() - began > arguments.seconds:
            stop.set()
        try:
            kind, worker, tally = messages.get(timeout=1.0)
        except queue.Empty:
            pass
        else:
            last_seen[worker] = time.monotonic()
            if kind == "finished":
                finished.add(worker)
            else:
                total.add(tally)
                rss[worker] = tally.max_rss_mib

        hang = _find_hang(arguments, processes, finished, last_seen, current)
        if hang:
            break
        now = time.monotonic()
        if now - last_print >= arguments.progress_seconds:
            last_print = now
            _print_progress(now - began, total, rss)

    stop.set()
    for process in processes:
        process.join(timeout=10)
        if process.is_alive():
            process.terminate()
    _print_summary(arguments, time.monotonic() - began, total, rss)
    if hang:
        print(f"HANG: {hang}")
        print(
            f"replay: python {sys.argv[0]} --seed {arguments.seed} "
            "--replay INDEX"
        )
        return 1
    return 1 if total.counts["FAILURE"] else 0


def _print_progress(
    elapsed: float, total: Tally, rss: dict[int, float]
) -> None:
    sizes = ", ".join(f"{value:.0f}" for value in rss.values()) or "-"
    print(
        f"[{elapsed:7.0f} s] {total.done:,} inputs, "
        f"{total.done / elapsed:,.0f}/s, {total.counts['FAILURE']} failures, "
        f"worker max RSS {sizes} MiB",
        flush=True,
    )


def _print_summary(
    arguments: argparse.Namespace,
    elapsed: float,
    total: Tally,
    rss: dict[int, float],
) -> None:
    print()
    print(
        f"seed {arguments.seed}, {arguments.workers} worker(s): "
        f"{total.done:,} inputs in {elapsed:.1f} s, "
        f"{total.done / max(elapsed, 1e-9):,.0f} inputs/s"
    )
    print(
        f"slowest input: {total.slowest_seconds * 1000:.1f} ms "
        f"(index {total.slowest_index})"
    )
    sizes = ", ".join(f"{value:.0f} MiB" for value in rss.values())
    print(f"worker max RSS: {sizes}")

    by_count = sorted(total.counts.items(), key=lambda item: -item[1])
    print("outcomes (target, stage, kind):")
    for key, count in by_count:
        if not key.startswith(("FAILURE", "role mismatch")):
            print(f"  {count:>10,}  {key}")
    mismatches = [item for item in by_count if item[0].startswith("role")]
    if mismatches:
        print("diagnoses naming the wrong peer (a known bug, not failures):")
        for key, count in mismatches:
            print(f"  {count:>10,}  {key}")

    print(f"failures: {total.counts['FAILURE']}")
    for failure in total.failures[:20]:
        print("-" * 72)
        print(failure)


def replay(arguments: argparse.Namespace) -> int:
    """Run one index and print its case and outcome."""
    harness = Harness()
    case, rng = case_for(harness.fs, arguments.seed, arguments.replay)
    print(case)
    outcome = harness.run(case, rng)
    print(outcome)
    return 0


def case_from_provider(fs: Any, provider: Any) -> Any:
    """Build a case from an atheris ``FuzzedDataProvider``, drawing the
    same fields as ``fuzz_support.random_case``."""
    target = provider.PickValueInList(["server", "client"])
    source = provider.PickValueInList(list(fs.SOURCES))
    if source in ("client_hello", "live_client_finish"):
        target = "server"
    elif source in ("server_flight", "live_server_flight"):
        target = "client"
    profile = provider.PickValueInList(list(fs.PROFILES))
    mutations = tuple(
        fs.Mutation(
            provider.PickValueInList(list(fs.OPERATIONS)),
            provider.ConsumeIntInRange(0, 1 << 16),
            provider.ConsumeIntInRange(0, 1 << 24),
        )
        for _ in range(provider.ConsumeIntInRange(0, fs.MAX_MUTATIONS))
    )
    chunks = tuple(
        provider.ConsumeIntInRange(1, 600)
        for _ in range(provider.ConsumeIntInRange(0, fs.MAX_CHUNKS - 1))
    )
    payload = b""
    if source == "plaintext":
        payload = provider.PickValueInList(list(fs.PLAINTEXT_STARTS))
    elif source == "random":
        payload = provider.ConsumeBytes(fs.MAX_RANDOM_BYTES)
    return fs.Case(target, source, profile, payload, mutations, chunks)


def run_atheris(arguments: argparse.Namespace) -> int:
    """Hand the inputs to atheris, which runs until ``--iterations`` runs or
    ``--seconds`` and then exits the process itself.

    A rule broken or an exception raised ends the run: atheris prints the
    traceback and writes the input to a ``crash-*`` file.
    """
    import atheris

    # Coverage of icsssl's Python modules guides atheris.  The OpenSSL
    # builds here carry no coverage instrumentation.
    with atheris.instrument_imports(include=["icsssl"]):
        for module in INSTRUMENTED_MODULES:
            importlib.import_module(module)
    harness = Harness()
    fs = harness.fs
    tally = Tally()
    began = time.monotonic()

    def test_one_input(data: bytes) -> None:
        provider = atheris.FuzzedDataProvider(data)
        case = case_from_provider(fs, provider)
        outcome = harness.run(case, None)
        fs.check_decode_code(provider.ConsumeIntInRange(0, 0xFFFFFFFF))
        tally.counts[_outcome_key(case, outcome)] += 1
        tally.done += 1
        if tally.done % ATHERIS_REPORT_EVERY_CASES == 0:
            _print_progress(time.monotonic() - began, tally, {})
            for key, count in tally.counts.most_common():
                print(f"  {count:>10,}  {key}", flush=True)

    flags = [
        sys.argv[0],
        f"-runs={arguments.iterations}",
        f"-seed={arguments.seed}",
    ]
    if arguments.seconds:
        flags.append(f"-max_total_time={int(arguments.seconds)}")
    atheris.Setup(flags, test_one_input)
    atheris.Fuzz()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--iterations",
        type=int,
        default=1_000_000,
        help="inputs to run (default 1,000,000)",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=0,
        help="stop after this many seconds (default: no limit)",
    )
    parser.add_argument(
        "--seed", type=int, default=1, help="seed of the generator (default 1)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes for the random engine (default 1)",
    )
    parser.add_argument(
        "--engine",
        choices=("random", "atheris"),
        default="random",
        help="input source (default random)",
    )
    parser.add_argument(
        "--replay",
        type=int,
        default=None,
        metavar="INDEX",
        help="run the input of this index alone and print it",
    )
    parser.add_argument(
        "--progress-seconds",
        type=float,
        default=30,
        help="seconds between progress lines (default 30)",
    )
    parser.add_argument(
        "--stall-seconds",
        type=float,
        default=120,
        help="a worker silent this long is reported as hung (default 120)",
    )

    arguments = parser.parse_args()
    if arguments.iterations < 1 or arguments.workers < 1:
        parser.error("--iterations and --workers must be at least 1")
    if arguments.replay is not None:
        return replay(arguments)
    if arguments.engine == "atheris":
        return run_atheris(arguments)
    return run_random(arguments)


if __name__ == "__main__":
    sys.exit(main())
