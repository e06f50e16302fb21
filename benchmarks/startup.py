"""Import time of ``icsssl`` and of ``OpenSSL.SSL`` in fresh interpreters.

Each sample is a new ``python -I`` process that times one import
statement with ``time.perf_counter``, so interpreter start-up, which is
the same for both, does not dilute the ratio.  ``-I`` keeps the current
directory and ``PYTHON*`` variables out of ``sys.path``, and the process
runs in an empty directory, so the installed icsssl is the one imported.
"""

from __future__ import annotations

import subprocess
import sys

_PROGRAM = """\
import time
start = time.perf_counter()
import {module}
print(time.perf_counter() - start)
"""

SUBPROCESS_TIMEOUT_SECONDS = 60


def import_seconds(module: str, directory: str) -> float:
    """Return how long ``import module`` took in a new interpreter."""
    completed = subprocess.run(
        [sys.executable, "-I", "-c", _PROGRAM.format(module=module)],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_SECONDS,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"import {module} failed in a new interpreter: "
            f"{completed.stderr.strip()[-500:]}"
        )
    return float(completed.stdout.strip())
