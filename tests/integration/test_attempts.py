"""`attempts` on a task: kept across the worker's own retries, and cut off by the task's timeout."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagegate.providers.testing_upstream import OpenAIUpstream, fail
from tests.conftest import T2I_15, start_gateway

KEY_ENV = "IMAGEGATE_TEST_ATTEMPTS_KEY"


@pytest.fixture
def upstream() -> Iterator[OpenAIUpstream]:
    os.environ[KEY_ENV] = "sk-test-attempts"
    with OpenAIUpstream() as server:
        yield server
    del os.environ[KEY_ENV]


def test_a_second_run_keeps_the_first_runs_attempts(upstream: OpenAIUpstream, tmp_path: Path) -> None:
    provider = {"name": "primary", "kind": "openai", "api_key_env": KEY_ENV, "base_url": upstream.base_url}
    gw = start_gateway(
        tmp_path, providers=[{**provider, "max_retries": 0}], default_provider="primary", max_attempts=2
    )
    try:
        upstream.script(fail(503))  # the whole route fails once: the task goes back to the queue
        client = gw.user()
        created = client.post("/api/v1/gpt_image/text_to_image", json=T2I_15)
        task = gw.wait(client, created.json()["id"])
        assert task["status"] == "completed", task
        assert [(a["provider"], a["error_code"]) for a in task["attempts"]] == [
            ("primary", "upstream_error"),
            ("primary", None),
        ]
    finally:
        gw.close()


def test_a_call_cut_off_by_the_task_timeout_reads_timeout(tmp_path: Path) -> None:
    gw = start_gateway(tmp_path, task_timeout_s=0.3, max_attempts=1)
    try:
        client = gw.user()
        created = client.post(
            "/api/v1/gpt_image/text_to_image", json={**T2I_15, "prompt": "a whale [stall:30]"}
        )
        task = gw.wait(client, created.json()["id"])
        assert (task["status"], task["error_code"]) == ("failed", "timeout"), task
        assert [(a["provider"], a["error_code"]) for a in task["attempts"]] == [("fake", "timeout")]
    finally:
        gw.close()
