"""build_ffi.py: the build stops with one clear line without the headers."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

BUILD_SCRIPT = pathlib.Path(__file__).resolve().parent.parent / "build_ffi.py"


@pytest.mark.skipif(
    not BUILD_SCRIPT.exists(), reason="build_ffi.py is not in this tree"
)
def test_missing_headers_name_the_package(tmp_path: pathlib.Path) -> None:
    # -nostdinc hides /usr/include, as on a machine without libssl-dev.
    environment = dict(os.environ, CPPFLAGS="-nostdinc")
    completed = subprocess.run(
        [sys.executable, str(BUILD_SCRIPT)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=environment,
        check=False,
    )
    assert completed.returncode != 0
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "openssl/ssl.h" in lines[0]
    assert "libssl-dev" in lines[0]
    assert "openssl-devel" in lines[0]
