"""Interleaved timing: every contender runs one batch per round.

The machine is shared, so a slow spell hits whichever contender runs in
it.  Running the contenders round by round, in an order that rotates
each round, spreads such spells over all of them, and a ratio taken
within one round compares batches that ran seconds apart.
"""

from __future__ import annotations

import gc
import time
from typing import Callable

Batch = Callable[[], float]


def interleave(
    batches: dict[str, Batch], rounds: int, warmup_rounds: int = 1
) -> dict[str, list[float]]:
    """Run every batch once per round and return each one's results.

    The first *warmup_rounds* rounds are run and dropped.  Round *r*
    starts with the contender at position ``r % len(batches)``.
    """
    labels = list(batches)
    samples: dict[str, list[float]] = {label: [] for label in labels}
    for round_number in range(warmup_rounds + rounds):
        shift = round_number % len(labels)
        for label in labels[shift:] + labels[:shift]:
            value = batches[label]()
            if round_number >= warmup_rounds:
                samples[label].append(value)
    return samples


def timed_rate(work: Callable[[], float], collect_garbage: bool) -> float:
    """Return the units *work* returns divided by the seconds it took.

    The cyclic garbage collector is run before timing.  During *work* it
    is off unless *collect_garbage* is true.  When on, it runs as it would
    in an application, and its cost is part of the figure.
    """
    gc.collect()
    was_enabled = gc.isenabled()
    if not collect_garbage:
        gc.disable()
    try:
        start = time.perf_counter()
        units = work()
        elapsed = time.perf_counter() - start
    finally:
        if was_enabled:
            gc.enable()
    return units / elapsed
