"""``imagegate serve`` as a subprocess, the way a user starts it: the ``serve`` fixture."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import profiles

IMAGEGATE = Path(sys.executable).parent / "imagegate"
CURL = "/usr/bin/curl"
LISTENING = re.compile(r"imagegate listening on (\S+)")
START_TIMEOUT_S = 30


@dataclass
class Server:
    process: subprocess.Popen[str]
    base_url: str
    banner: list[str]  # stdout lines up to and including the "listening" line
    stderr: list[str] = field(default_factory=list)
    readers: list[threading.Thread] = field(default_factory=list)

    @property
    def demo_key(self) -> str | None:
        keys = [line.strip() for line in self.banner if re.fullmatch(r"\s+ig_\S+", line)]
        return keys[0] if keys else None

    def curl_lines(self) -> list[str]:
        return [line.strip() for line in self.banner if line.strip().startswith("curl ")]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=15)


def _pump(stream: Any, sink: queue.Queue[str | None] | list[str]) -> None:
    for line in stream:
        if isinstance(sink, list):
            sink.append(line)
        else:
            sink.put(line)
    if not isinstance(sink, list):
        sink.put(None)


Start = Callable[..., Server]


@pytest.fixture
def serve() -> Iterator[Start]:
    """Start ``imagegate serve --port 0`` (killed at teardown) with only the given IMAGEGATE_ vars
    and those of the current profile (its database, Redis, bucket: tests/profiles.py)."""
    started: list[Server] = []

    def start(cwd: Path, *args: str, **env_vars: str) -> Server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEGATE_")}
        data_dir = Path(env_vars.get("IMAGEGATE_DATA_DIR", cwd / ".imagegate"))
        env.update(profiles.current().env(data_dir))
        env.update(env_vars)
        process = subprocess.Popen(
            [str(IMAGEGATE), "serve", "--port", "0", *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        stdout: queue.Queue[str | None] = queue.Queue()
        server = Server(process=process, base_url="", banner=[])
        started.append(server)
        server.readers = [
            threading.Thread(target=_pump, args=(process.stdout, stdout), daemon=True),
            threading.Thread(target=_pump, args=(process.stderr, server.stderr), daemon=True),
        ]
        for reader in server.readers:
            reader.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                line = stdout.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no 'listening' line; stderr: {''.join(server.stderr)}") from None
            if line is None:
                raise AssertionError(f"server exited early; stderr: {''.join(server.stderr)}")
            server.banner.append(line.rstrip("\n"))
            match = LISTENING.search(line)
            if match:
                server.base_url = match.group(1)
                break
        # keep draining stdout so the server never blocks on a full pipe
        drain = threading.Thread(target=lambda: [None for _ in iter(stdout.get, None)], daemon=True)
        drain.start()
        server.readers.append(drain)
        wait_healthy(server)
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
        server.process.wait(timeout=15)
        for reader in server.readers:
            reader.join(timeout=15)
        for stream in (server.process.stdout, server.process.stderr):
            if stream is not None:
                stream.close()


def wait_healthy(server: Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            if httpx.get(f"{server.base_url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if server.process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"server not healthy; stderr: {''.join(server.stderr)}")
        time.sleep(0.05)
