"""Polling made cheap: Retry-After on unfinished tasks, ETag and 304, and a long poll."""

from __future__ import annotations

from tests.conftest import T2I_15, Gateway

CREATE = "/api/v1/gpt_image/text_to_image"


def test_a_long_poll_answers_when_the_task_ends(gateway: Gateway) -> None:
    user = gateway.user()
    task_id = user.post(CREATE, json={**T2I_15, "prompt": "a lighthouse [stall:1]"}).json()["id"]
    waiting = user.get(f"/api/v1/tasks/{task_id}", params={"wait": 30})
    assert waiting.status_code == 200, waiting.text
    assert waiting.json()["status"] == "completed"
    assert "Retry-After" not in waiting.headers


def test_an_unfinished_task_suggests_when_to_poll_again(gateway: Gateway) -> None:
    user = gateway.user()
    task_id = user.post(CREATE, json={**T2I_15, "prompt": "a lighthouse [stall:30]"}).json()["id"]
    read = user.get(f"/api/v1/tasks/{task_id}")
    assert read.json()["status"] in ("pending", "processing")
    assert read.headers["Retry-After"] == "2"
    short = user.get(f"/api/v1/tasks/{task_id}", params={"wait": 0.2})
    assert short.status_code == 200 and short.json()["status"] in ("pending", "processing")
    assert user.post(f"/api/v1/tasks/{task_id}/cancel").status_code == 200


def test_an_unchanged_task_answers_304(gateway: Gateway) -> None:
    user = gateway.user()
    task = gateway.wait(user, user.post(CREATE, json=T2I_15).json()["id"])
    first = user.get(f"/api/v1/tasks/{task['id']}")
    tag = first.headers["ETag"]
    again = user.get(f"/api/v1/tasks/{task['id']}", headers={"If-None-Match": tag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["ETag"] == tag
    # the service-scoped view is another representation: its own tag
    scoped = user.get(f"/api/v1/gpt_image/{task['id']}", headers={"If-None-Match": tag})
    assert scoped.status_code == 200
    assert user.get(f"/api/v1/tasks/{task['id']}", headers={"If-None-Match": '"other"'}).status_code == 200


def test_a_changed_task_has_a_new_tag(gateway: Gateway) -> None:
    user = gateway.user()
    task_id = user.post(CREATE, json={**T2I_15, "prompt": "a lighthouse [stall:30]"}).json()["id"]
    before = user.get(f"/api/v1/tasks/{task_id}").headers["ETag"]
    assert user.post(f"/api/v1/tasks/{task_id}/cancel").status_code == 200
    after = user.get(f"/api/v1/tasks/{task_id}", headers={"If-None-Match": before})
    assert after.status_code == 200 and after.json()["status"] == "canceled"
    assert after.headers["ETag"] != before
