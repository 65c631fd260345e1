"""glibc's thresholds are raised for the server process, unless the operator set their own."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

_CALL = "from imagegate.heap import keep_freed_buffers; print(keep_freed_buffers())"


def _run(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    done = subprocess.run([sys.executable, "-c", _CALL], env={**clean, **env}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_thresholds_raised_on_glibc() -> None:
    assert _run() == "True"


def test_operator_malloc_settings_win() -> None:
    assert _run(MALLOC_ARENA_MAX="2") == "False"
