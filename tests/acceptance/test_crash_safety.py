"""Crash safety with real processes: two servers on one database, graceful stops, file modes."""

from __future__ import annotations

import signal
import stat
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.acceptance.test_serve import poll, terminal
from tests.profiles import gateway_env, stored_keys
from tests.serving import IMAGEGATE, Server, Start

FAKE = {"IMAGEGATE_DEFAULT_PROVIDER": "fake"}


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def create(server: Server, key: str, prompt: str) -> str:
    response = httpx.post(
        f"{server.base_url}/api/v1/gpt_image/text_to_image",
        headers=auth(key),
        json={"model": "gpt-image-1.5", "prompt": prompt, "aspect_ratio": "1:1", "quality": "medium"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def read(server: Server, key: str, task_id: str) -> dict[str, Any]:
    response = httpx.get(f"{server.base_url}/api/v1/tasks/{task_id}", headers=auth(key), timeout=30)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def outputs_on_disk(data_dir: Path, task_id: str) -> list[str]:
    return stored_keys(data_dir, f"outputs/{task_id}")


def ledger_check(data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = gateway_env(data_dir)
    return subprocess.run(
        [str(IMAGEGATE), "ledger", "check"], env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.scale
def test_two_servers_on_one_database_run_each_task_once(serve: Start, tmp_path: Path) -> None:
    first = serve(tmp_path, **FAKE)
    key = first.demo_key
    assert key
    early = [create(first, key, f"[stall:2] early {i}") for i in range(3)]
    poll(lambda: {"s": [read(first, key, t)["status"] for t in early]}, lambda b: "pending" not in b["s"])
    # A second process on the same file starts while the first is running those tasks: its
    # start-up recovery must leave them alone (their leases are alive).
    second = serve(tmp_path, **FAKE)
    late = [create(second, key, f"[stall:0.5] late {i}") for i in range(3)]
    data_dir = tmp_path / ".imagegate"
    for task_id in early + late:
        task = poll(lambda t=task_id: read(second, key, t), terminal)
        assert task["status"] == "completed", task
        for server in (first, second):
            image = read(server, key, task_id)["images"][0]["url"]
            assert httpx.get(image, timeout=30, follow_redirects=True).status_code == 200
        assert len(outputs_on_disk(data_dir, task_id)) == 1, outputs_on_disk(data_dir, task_id)
    check = ledger_check(data_dir)
    assert check.returncode == 0, check.stdout + check.stderr


def sync_call(server: Server, key: str, prompt: str, answers: list[httpx.Response]) -> threading.Thread:
    def call() -> None:
        answers.append(
            httpx.post(
                f"{server.base_url}/v1/images/generations",
                headers=auth(key),
                json={"model": "gpt-image-1.5", "prompt": prompt, "size": "1024x1024", "quality": "medium"},
                timeout=60,
            )
        )

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    return thread


def processing(server: Server, key: str) -> list[str]:
    listed = httpx.get(f"{server.base_url}/api/v1/tasks", headers=auth(key), timeout=30).json()["data"]
    return [t["id"] for t in listed if t["status"] == "processing"]


def stop(server: Server) -> float:
    started = time.monotonic()
    server.process.send_signal(signal.SIGINT)
    server.process.wait(timeout=30)
    return time.monotonic() - started


@pytest.mark.scale
def test_a_graceful_stop_hands_tasks_back_without_spending_attempts(serve: Start, tmp_path: Path) -> None:
    env = {**FAKE, "IMAGEGATE_MAX_ATTEMPTS": "1"}  # a spent attempt would fail the task
    server = serve(tmp_path, **env)
    key = server.demo_key
    assert key
    task_id = create(server, key, "[stall:4] keep going")
    answers: list[httpx.Response] = []
    caller = sync_call(server, key, "[stall:4] waiting caller", answers)
    poll(lambda: {"n": len(processing(server, key))}, lambda b: b["n"] == 2)

    assert stop(server) < 10
    caller.join(timeout=30)
    # uvicorn re-raises the signal once shut down, hence 130 rather than 0
    assert "Application shutdown complete" in "".join(server.stderr), "".join(server.stderr)
    (answer,) = answers
    assert answer.status_code == 503, answer.text
    error = answer.json()["error"]
    assert error["code"] == "unavailable"
    sync_task = answer.json()["error"]["task_id"]

    # A second restart while the first task runs again.
    server = serve(tmp_path, **env)
    poll(lambda: {"ids": processing(server, key)}, lambda b: task_id in b["ids"])
    assert stop(server) < 10

    server = serve(tmp_path, **env)
    for ended in (task_id, sync_task):
        task = poll(lambda t=ended: read(server, key, t), terminal)
        assert task["status"] == "completed", task
        assert task["billing"]["settlement"] is not None


def test_the_database_and_signing_key_are_owner_only(serve: Start, tmp_path: Path) -> None:
    serve(tmp_path)
    data_dir = tmp_path / ".imagegate"
    for name in ("imagegate.db", "signing.key"):
        mode = stat.S_IMODE((data_dir / name).stat().st_mode)
        assert mode == 0o600, (name, oct(mode))


@pytest.mark.scale
def test_a_replica_killed_mid_task_leaves_it_to_the_other(serve: Start, tmp_path: Path) -> None:
    """Two API processes on one database: a task made on A is read on B; A dies by SIGKILL while
    running it; B takes it over once A's lease runs out and completes it; the ledger is clean."""
    env = {**FAKE, "IMAGEGATE_LEASE_S": "1", "IMAGEGATE_SWEEP_INTERVAL_S": "0.2"}
    first = serve(tmp_path, **env)
    key = first.demo_key
    assert key
    second = serve(tmp_path, **env)
    task_id = create(first, key, "[stall:3] outlive your worker")
    poll(lambda: read(second, key, task_id), lambda t: t["status"] == "processing")
    first.kill()
    task = poll(lambda: read(second, key, task_id), terminal, timeout=30)
    assert task["status"] == "completed", task
    assert task["billing"]["settlement"] is not None
    image = httpx.get(task["images"][0]["url"], timeout=30, follow_redirects=True)
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    data_dir = tmp_path / ".imagegate"
    assert len(outputs_on_disk(data_dir, task_id)) == 1  # the dead run left no bytes behind
    check = ledger_check(data_dir)
    assert check.returncode == 0, check.stdout + check.stderr
