"""Separate processes on the scale profile: API replicas that only defer (``serve --no-worker``)
and ``imagegate worker`` processes that run the PostgreSQL job queue (procrastinate)."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from standardwebhooks import Webhook

from imagegate.db.migrate import alembic_config
from tests.acceptance.test_crash_safety import create, read
from tests.acceptance.test_serve import poll, terminal
from tests.profiles import SCALE, Profile, gateway_env
from tests.services import Services
from tests.serving import IMAGEGATE, Start

START_TIMEOUT_S = 30


@pytest.fixture
def scale_env(services: Services, tmp_path: Path) -> dict[str, str]:
    """The scale profile's settings for one data directory, with the job queue in PostgreSQL."""
    data_dir = tmp_path / ".imagegate"
    return {
        **Profile(SCALE, services).env(data_dir),
        "IMAGEGATE_DATA_DIR": str(data_dir),
        "IMAGEGATE_JOB_QUEUE": "postgres",
        "IMAGEGATE_DEFAULT_PROVIDER": "fake",
        "IMAGEGATE_LEASE_S": "2",
        "IMAGEGATE_SWEEP_INTERVAL_S": "0.3",
    }


Worker = subprocess.Popen[str]


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Any]:
    """Start ``imagegate worker`` processes (killed at teardown)."""
    started: list[Worker] = []

    def start(env: dict[str, str], *args: str) -> Worker:
        process = subprocess.Popen(
            [str(IMAGEGATE), "worker", *args],
            env=gateway_env(Path(env["IMAGEGATE_DATA_DIR"]), **env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        started.append(process)
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        seen: list[str] = []
        while True:
            line = lines.get(timeout=START_TIMEOUT_S)
            if line is None:
                raise AssertionError(f"worker exited: {''.join(seen)}")
            seen.append(line)
            if "imagegate worker ready" in line:
                return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=15)
        if process.stdout is not None:
            process.stdout.close()


def test_api_replicas_defer_and_a_killed_worker_leaves_the_task_to_another(
    serve: Start, workers: Any, scale_env: dict[str, str], tmp_path: Path
) -> None:
    first_api = serve(tmp_path, "--no-worker", **scale_env)
    key = first_api.demo_key
    assert key
    second_api = serve(tmp_path, "--no-worker", **scale_env)
    assert second_api.demo_key is None  # one demo account, made by the first
    doomed = workers(scale_env, "--queues", "fake", "--concurrency", "2")

    quick = create(second_api, key, "a quick one")
    assert poll(lambda: read(first_api, key, quick), terminal)["status"] == "completed"

    slow = create(first_api, key, "[stall:3] outlive your worker")
    poll(lambda: read(second_api, key, slow), lambda t: t["status"] == "processing")
    workers(scale_env)  # a second worker, for all queues
    doomed.kill()  # SIGKILL mid-task: its job stays `doing`, its lease runs out
    task = poll(lambda: read(second_api, key, slow), terminal, timeout=40)
    assert task["status"] == "completed", task
    assert task["billing"]["settlement"] is not None
    image = httpx.get(task["images"][0]["url"], timeout=30, follow_redirects=True)
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    check = subprocess.run(
        [str(IMAGEGATE), "ledger", "check"],
        env=gateway_env(Path(scale_env["IMAGEGATE_DATA_DIR"]), **scale_env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert check.returncode == 0 and "ledger clean" in check.stderr, check.stdout + check.stderr
    # procrastinate's own tables sit beside ours; the migrations still match the models
    command.check(alembic_config(scale_env["IMAGEGATE_DATABASE_URL"]))


def test_no_worker_needs_the_postgres_job_queue(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(IMAGEGATE), "serve", "--no-worker", "--port", "0"],
        env=gateway_env(tmp_path / ".imagegate"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "IMAGEGATE_JOB_QUEUE=postgres" in result.stderr


def jobs_of(database_url: str) -> list[tuple[str, str, str]]:
    import psycopg

    from imagegate.queue.jobs import libpq_url

    with psycopg.connect(libpq_url(database_url)) as conn:
        rows = conn.execute(
            "SELECT queue_name, queueing_lock, status::text FROM procrastinate_jobs"
        ).fetchall()
    return sorted((str(q), str(lock), str(status)) for q, lock, status in rows)


def test_a_job_commits_with_its_task_and_only_then(
    serve: Start, scale_env: dict[str, str], tmp_path: Path
) -> None:
    """No worker runs: the jobs wait. A created task has exactly one job on its provider's queue;
    a replayed Idempotency-Key and a refused creation (402) add none."""
    env = {**scale_env, "IMAGEGATE_FREE_CALLS_PER_VARIANT": "0", "IMAGEGATE_DEMO_GRANT_USD": "0.05"}
    api = serve(tmp_path, "--no-worker", **env)
    key = api.demo_key
    assert key
    body = {"model": "gpt-image-1.5", "prompt": "wait", "aspect_ratio": "1:1", "quality": "medium"}
    url = f"{api.base_url}/api/v1/gpt_image/text_to_image"
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": "once"}
    first = httpx.post(url, headers=headers, json=body, timeout=30)
    again = httpx.post(url, headers=headers, json=body, timeout=30)
    assert first.status_code == again.status_code == 200, first.text
    assert again.json()["id"] == first.json()["id"]
    refused = httpx.post(url, headers={"Authorization": f"Bearer {key}"}, json=body, timeout=30)
    assert refused.status_code == 402, refused.text  # $0.05 holds one $0.04 call, not two
    assert jobs_of(env["IMAGEGATE_DATABASE_URL"]) == [("fake", first.json()["id"], "todo")]


def test_a_stopped_worker_hands_its_task_back(
    serve: Start, workers: Any, scale_env: dict[str, str], tmp_path: Path
) -> None:
    """SIGTERM mid-task: the worker stops within its grace period and the task, handed back with
    its attempt unspent, is run by the next worker."""
    env = {**scale_env, "IMAGEGATE_MAX_ATTEMPTS": "1"}  # a spent attempt would fail the task
    api = serve(tmp_path, "--no-worker", **env)
    key = api.demo_key
    assert key
    leaving = workers(env)
    task_id = create(api, key, "[stall:20] longer than the grace period")
    poll(lambda: read(api, key, task_id), lambda t: t["status"] == "processing")
    leaving.send_signal(signal.SIGTERM)
    assert leaving.wait(timeout=20) == 0
    workers(env)
    task = poll(lambda: read(api, key, task_id), terminal, timeout=60)
    assert task["status"] == "completed", task


# -- events, cancels and webhooks across processes (the Redis bus) -------------------------------
def sse_events(response: httpx.Response) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(id, event, data) of each Server-Sent Event of a streamed response, comments skipped."""
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if not line:
            if "data" in fields:
                yield fields.get("id", ""), fields.get("event", "message"), json.loads(fields["data"])
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


class Hooks(ThreadingHTTPServer):
    """A webhook receiver on 127.0.0.1: keeps each POST's headers and body."""

    def __init__(self) -> None:
        self.received: queue.Queue[tuple[dict[str, str], bytes]] = queue.Queue()
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                hooks.received.put(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


def test_events_cancels_and_webhooks_cross_processes(
    serve: Start, workers: Any, scale_env: dict[str, str], tmp_path: Path
) -> None:
    """Two API replicas and one worker, all on one Redis: a task made through A streams its
    progress and previews from B (and A's own OpenAI-face stream); a long poll and an OpenAI-face
    call on A wake when the worker ends their tasks; the worker sends the webhook; a cancel on B
    stops the provider call on the worker (its only slot: the next task runs at once)."""
    hooks = Hooks()
    env = {
        **scale_env,
        "IMAGEGATE_LEASE_S": "120",  # no lease renewal (every 40 s) notices the cancel first
        "IMAGEGATE_FETCH_ALLOW_HOSTS": f"127.0.0.1:{hooks.server_address[1]}",
    }
    api_a = serve(tmp_path, "--no-worker", **env)
    key = api_a.demo_key
    assert key
    api_b = serve(tmp_path, "--no-worker", **env)
    workers(env, "--concurrency", "1")
    auth = {"Authorization": f"Bearer {key}"}

    # An OpenAI-face stream on A, of work done on the worker, watched from B too.
    streamed: list[str] = []

    def openai_stream() -> None:
        body = {
            "model": "gpt-image-1.5",
            "prompt": "[slow:1] a lighthouse",
            "stream": True,
            "partial_images": 2,
        }
        with httpx.stream(
            "POST", f"{api_a.base_url}/v1/images/generations", headers=auth, json=body, timeout=60
        ) as r:
            streamed.extend(kind for _, kind, _ in sse_events(r))

    reader = threading.Thread(target=openai_stream)
    reader.start()
    listed = poll(
        lambda: httpx.get(f"{api_b.base_url}/api/v1/tasks", headers=auth, timeout=30).json(),
        lambda b: bool(b["data"]),
    )
    task_id = listed["data"][0]["id"]
    with httpx.stream(
        "GET", f"{api_b.base_url}/api/v1/tasks/{task_id}/events", headers=auth, timeout=60
    ) as r:
        seen = list(sse_events(r))
    reader.join(60)
    kinds = [kind for _, kind, _ in seen]
    assert kinds[-1] == "completed" and seen[-1][2]["status"] == "completed", kinds
    assert "progress" in kinds and kinds.count("partial_image") == 2, kinds
    ids = [int(event_id) for event_id, _, _ in seen]
    assert ids == sorted(set(ids)), ids
    assert (
        streamed.count("image_generation.partial_image") == 2 and streamed[-1] == "image_generation.completed"
    )

    # A long poll on A wakes when the worker ends a task made through B; the worker sends its webhook.
    secret = httpx.get(f"{api_a.base_url}/api/v1/me/webhook_secret", headers=auth, timeout=30).json()[
        "secret"
    ]
    made = httpx.post(
        f"{api_b.base_url}/api/v1/gpt_image/text_to_image",
        headers=auth,
        json={
            "model": "gpt-image-1.5",
            "prompt": "a quick one",
            "aspect_ratio": "1:1",
            "quality": "medium",
            "callback_url": hooks.url,
        },
        timeout=30,
    )
    assert made.status_code == 200, made.text
    hooked = made.json()["id"]
    waited = httpx.get(f"{api_a.base_url}/api/v1/tasks/{hooked}?wait=30", headers=auth, timeout=60).json()
    assert waited["status"] == "completed", waited
    generated = httpx.post(  # an OpenAI-face call on A waits for the worker's end
        f"{api_a.base_url}/v1/images/generations",
        headers=auth,
        json={"model": "gpt-image-1.5", "prompt": "a waited one"},
        timeout=60,
    )
    assert generated.status_code == 200 and generated.json()["data"], generated.text
    headers, content = hooks.received.get(timeout=30)
    assert Webhook(secret).verify(content, headers)["data"]["id"] == hooked

    # A cancel on B stops the provider call on the worker.
    stalled = create(api_a, key, "[stall:100] never finished")
    poll(lambda: read(api_b, key, stalled), lambda t: t["status"] == "processing")
    canceled = httpx.post(f"{api_b.base_url}/api/v1/tasks/{stalled}/cancel", headers=auth, timeout=30)
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled", canceled.text
    after = create(api_a, key, "after the cancel")  # the worker's only slot is free again at once
    assert poll(lambda: read(api_b, key, after), terminal, timeout=30)["status"] == "completed"
    ended = read(api_a, key, stalled)
    assert ended["status"] == "canceled" and ended["billing"]["refund"]["refunded_at"], ended
    balance = httpx.get(f"{api_a.base_url}/api/v1/me/balance", headers=auth, timeout=30).json()
    assert balance["held_micro"] == 0, balance
    check = subprocess.run(
        [str(IMAGEGATE), "ledger", "check"],
        env=gateway_env(Path(env["IMAGEGATE_DATA_DIR"]), **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert check.returncode == 0 and "ledger clean" in check.stderr, check.stdout + check.stderr
    hooks.shutdown()
    hooks.server_close()
