"""The quick start, as a user does it: ``imagegate serve`` in a fresh directory, then curl."""

from __future__ import annotations

import io
import json
import shlex
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from tests.serving import CURL, Server, Start


def run_curl(command_line: str) -> dict[str, Any]:
    argv = shlex.split(command_line)
    assert argv[0] == "curl"
    result = subprocess.run([CURL, *argv[1:]], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def poll(
    fetch: Callable[[], dict[str, Any]], until: Callable[[dict[str, Any]], bool], timeout: float = 30
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = fetch()
        if until(body):
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting; last: {body}")
        time.sleep(0.05)


def terminal(task: dict[str, Any]) -> bool:
    return task["status"] in ("completed", "failed", "canceled")


# -- the quick start -----------------------------------------------------------------------------
def test_quick_start(serve: Start, tmp_path: Path) -> None:
    server = serve(tmp_path)
    assert server.base_url.startswith("http://127.0.0.1:")
    key = server.demo_key
    assert key and key.startswith("ig_"), server.banner
    create_line, read_line = server.curl_lines()
    assert server.base_url in create_line and key in create_line
    assert "TASK_ID" in read_line

    created = run_curl(create_line)
    assert created["status"] in ("pending", "processing", "completed"), created
    task_id = created["id"]
    task = poll(lambda: run_curl(read_line.replace("TASK_ID", task_id)), terminal)
    assert task["status"] == "completed", task
    assert task["id"] == task_id

    download = httpx.get(task["images"][0]["url"], timeout=30)
    assert download.status_code == 200
    image = Image.open(io.BytesIO(download.content))
    assert image.format == "PNG"
    assert image.size == (1024, 1024)
    image.load()

    data = tmp_path / ".imagegate"
    assert (data / "imagegate.db").is_file()
    stored = [p.name for p in data.rglob(f"{task_id}/*")]
    assert len(stored) == 1 and stored[0].endswith("-0.png"), stored  # one run's key, image 0
    server.stop()
    assert server.process.returncode is not None

    again = serve(tmp_path)
    assert again.demo_key is None, again.banner
    assert not [line for line in again.banner if "ig_" in line or "demo" in line.lower()]
    me = httpx.get(f"{again.base_url}/api/v1/me", headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert me.status_code == 200
    assert me.json()["name"] == "demo"
    listed = httpx.get(
        f"{again.base_url}/api/v1/tasks", headers={"Authorization": f"Bearer {key}"}, timeout=10
    )
    assert [t["id"] for t in listed.json()["data"]] == [task_id]


def test_data_dir_setting_moves_the_data(serve: Start, tmp_path: Path) -> None:
    cwd, elsewhere = tmp_path / "cwd", tmp_path / "elsewhere"
    cwd.mkdir()
    server = serve(cwd, IMAGEGATE_DATA_DIR=str(elsewhere))
    assert server.demo_key
    created = run_curl(server.curl_lines()[0])
    task = poll(lambda: run_curl(server.curl_lines()[1].replace("TASK_ID", created["id"])), terminal)
    assert task["status"] == "completed"
    assert (elsewhere / "imagegate.db").is_file()
    assert [p.name[-6:] for p in elsewhere.rglob(f"{created['id']}/*")] == ["-0.png"]
    assert not (cwd / ".imagegate").exists()
    assert list(cwd.iterdir()) == []


# -- restart recovery ----------------------------------------------------------------------------
def crash_while_processing(serve: Start, cwd: Path, **env: str) -> tuple[Server, str, str]:
    """Start, create a stalling task, SIGKILL the server while it runs it, start again.

    A short lease, so the new process may take the task over soon after the kill."""
    env = {
        "IMAGEGATE_DEFAULT_PROVIDER": "fake",
        "IMAGEGATE_LEASE_S": "1",
        "IMAGEGATE_SWEEP_INTERVAL_S": "0.2",
        **env,
    }
    server = serve(cwd, **env)
    key = server.demo_key
    assert key
    auth = {"Authorization": f"Bearer {key}"}
    created = httpx.post(
        f"{server.base_url}/api/v1/gpt_image/text_to_image",
        headers=auth,
        json={
            "model": "gpt-image-1.5",
            "prompt": "[stall:4] recover me",
            "aspect_ratio": "1:1",
            "quality": "medium",
        },
        timeout=10,
    )
    assert created.status_code == 200, created.text
    task_id = created.json()["id"]
    task_url = f"{server.base_url}/api/v1/tasks/{task_id}"
    poll(lambda: httpx.get(task_url, headers=auth, timeout=10).json(), lambda t: t["status"] == "processing")
    server.kill()
    assert server.process.returncode == -signal.SIGKILL
    return serve(cwd, **env), key, task_id


def test_a_task_cut_off_by_a_crash_is_run_again(serve: Start, tmp_path: Path) -> None:
    server, key, task_id = crash_while_processing(serve, tmp_path)
    auth = {"Authorization": f"Bearer {key}"}
    url = f"{server.base_url}/api/v1/tasks/{task_id}"
    task = poll(lambda: httpx.get(url, headers=auth, timeout=10).json(), terminal, timeout=20)
    assert task["status"] == "completed", task
    assert task["error_code"] is None
    assert (task["images"][0]["width"], task["images"][0]["height"]) == (1024, 1024)
    assert httpx.get(task["images"][0]["url"], timeout=10).status_code == 200


def test_a_task_out_of_attempts_fails_as_worker_lost(serve: Start, tmp_path: Path) -> None:
    server, key, task_id = crash_while_processing(serve, tmp_path, IMAGEGATE_MAX_ATTEMPTS="1")
    auth = {"Authorization": f"Bearer {key}"}
    url = f"{server.base_url}/api/v1/tasks/{task_id}"
    task = poll(lambda: httpx.get(url, headers=auth, timeout=10).json(), terminal, timeout=20)
    assert task["status"] == "failed", task
    assert task["error_code"] == "worker_lost"
    assert task["images"] == []
