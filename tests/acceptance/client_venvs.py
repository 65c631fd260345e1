"""Virtual environments for clients nobody here wrote (RunAPI's SDKs, the ``openai`` package):
built once from the package index under ``.venv-sdks/`` and reused; a package that cannot be
installed fails the test loudly, nothing is skipped."""

from __future__ import annotations

import fcntl
import hashlib
import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def client_python(name: str, packages: tuple[str, ...], *, upgrade: bool = False) -> Path:
    """The interpreter of a venv holding ``packages`` (named by them, so a new pin builds anew)."""
    digest = hashlib.sha256("\n".join(packages).encode()).hexdigest()[:12]
    home = ROOT / ".venv-sdks" / f"{name}-{digest}"
    python = home / "bin" / "python"
    ready = home / ".installed"
    if ready.exists():
        return python
    home.parent.mkdir(exist_ok=True)
    # Test processes (pytest-xdist workers) may want the same venv at once: one builds, the others wait.
    with (home.parent / f"{home.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not ready.exists():
            _build(home, packages, upgrade=upgrade)
    return python


def _build(home: Path, packages: tuple[str, ...], *, upgrade: bool) -> None:
    python = home / "bin" / "python"
    venv.EnvBuilder(with_pip=True, clear=True).create(home)
    command = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    pip = subprocess.run(
        [*command, *(["--upgrade"] if upgrade else []), *packages],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if pip.returncode != 0:
        pytest.fail(
            f"{', '.join(packages)} could not be installed from the package index:\n{pip.stdout}\n{pip.stderr}",
            pytrace=False,
        )
    (home / ".installed").write_text("\n".join(packages) + "\n")


def tiers_with_a_poor_one(creates_per_minute: int) -> list[dict[str, object]]:
    """A ``free`` tier whose create limit a client's test can reach, and a roomy ``tier2``."""
    return [
        {
            "name": "free",
            "creates_per_minute": creates_per_minute,
            "reads_per_minute": 600,
            "max_concurrent": 2,
            "paid_spend_threshold_micro": 0,
        },
        {
            "name": "tier2",
            "creates_per_minute": 6000,
            "reads_per_minute": 60000,
            "max_concurrent": 50,
            "paid_spend_threshold_micro": 10**12,
        },
    ]
