"""Start ``imagegate serve`` in a scratch directory for a benchmark, and stop it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IMAGEGATE = Path(sys.executable).parent / "imagegate"

# One tier with limits no benchmark reaches: benchmarks measure speed, not the limiter's refusals.
WIDE_TIERS = json.dumps(
    [
        {
            "name": "bench",
            "creates_per_minute": 1_000_000,
            "reads_per_minute": 1_000_000,
            "max_concurrent": 1_000_000,
            "paid_spend_threshold_micro": 0,
        }
    ]
)


def stop(proc: subprocess.Popen[Any], timeout_s: float = 15) -> None:
    """SIGTERM, then SIGKILL if the process has not exited after ``timeout_s``."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()


def _spawn(
    command: list[str], cwd: Path | str, env: dict[str, str], log: Path | None
) -> subprocess.Popen[str]:
    """An imagegate command with its stdout piped (start-up lines) and its stderr to ``log``."""
    return subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=log.open("ab") if log else subprocess.DEVNULL,
        text=True,
    )


@dataclass
class BenchServer:
    base_url: str
    key: str
    pid: int


@contextmanager
def running_server(
    *,
    cwd: Path | None = None,
    key: str = "",
    stop_s: float = 15,
    serve_args: tuple[str, ...] = (),
    log: Path | None = None,
    **env_overrides: str,
) -> Iterator[BenchServer]:
    """``imagegate serve`` in a scratch directory (or ``cwd``, to start again on the same data:
    then pass the ``key`` the first start printed). Stopped with SIGTERM, killed after ``stop_s``.
    Its stderr goes to ``log`` (else nowhere)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEGATE_")}
    env.update({"IMAGEGATE_LOG_LEVEL": "warning", **env_overrides})
    with tempfile.TemporaryDirectory() if cwd is None else nullcontext(str(cwd)) as where:
        proc = _spawn([str(IMAGEGATE), "serve", "--port", "0", *serve_args], where, env, log)
        try:
            base = ""
            deadline = time.monotonic() + 60
            assert proc.stdout is not None
            while not base and time.monotonic() < deadline:
                line = proc.stdout.readline()
                if not line:
                    raise RuntimeError("server exited during start-up")
                stripped = line.strip()
                if stripped.startswith("ig_"):
                    key = stripped
                if stripped.startswith("imagegate listening on "):
                    base = stripped.split()[3]
            yield BenchServer(base_url=base, key=key, pid=proc.pid)
        finally:
            stop(proc, stop_s)


@contextmanager
def running_worker(
    *, cwd: Path, queues: str, concurrency: int, log: Path | None = None, **env_overrides: str
) -> Iterator[int]:
    """``imagegate worker`` (the PostgreSQL job queue) on the settings in ``env_overrides``,
    started in ``cwd``; yields its PID once it says it is ready, stopped with SIGTERM. Its stderr
    goes to ``log`` (else nowhere)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEGATE_")}
    env.update({"IMAGEGATE_LOG_LEVEL": "warning", **env_overrides})
    command = [str(IMAGEGATE), "worker", "--queues", queues, "--concurrency", str(concurrency)]
    proc = _spawn(command, cwd, env, log)
    try:
        assert proc.stdout is not None
        while True:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"worker exited during start-up ({proc.wait()})")
            if line.startswith("imagegate worker ready"):
                break
        yield proc.pid
    finally:
        stop(proc)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (Linux)."""
    return sum(cpu_split(pid))


def cpu_split(pid: int) -> tuple[float, float]:
    """User and system (kernel) CPU time of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def rss_mib(pid: int) -> float:
    """Resident memory of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]
