"""A retired model keeps its contract when its successor serves it: sizes, price, quality.

gpt-image-1.5 shuts down on 2026-12-01. Every aspect x quality cell is asked on both faces of a
gateway before that date and of one after it: the pixels, the price and the quality must not move.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import pytest
from PIL import Image

from imagegate.clock import ManualClock
from tests.conftest import Gateway, start_gateway
from tests.profiles import Profile

T = TypeVar("T")
AFTER_SHUTDOWN = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
PROMPT = "a lighthouse at dawn"

# gpt-image-1.5's published contract: the size belongs to the aspect ratio, at any quality.
SIZES = {"1:1": (1024, 1024), "2:3": (1024, 1536), "3:2": (1536, 1024)}
PRICE_MICRO = {"medium": 40_000, "high": 220_000}
RUNAPI_CELLS = [(aspect, quality) for aspect in SIZES for quality in ("medium", "high")]
# The OpenAI face takes OpenAI's qualities; gpt-image-1.5 prices low and auto as medium.
OPENAI_CELLS = [(aspect, quality) for aspect in SIZES for quality in ("low", "medium", "high", "auto")]
OPENAI_PRICE = {"low": 40_000, "medium": 40_000, "high": 220_000, "auto": 40_000}


@pytest.fixture(scope="module")
def before(profile: Profile, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = start_gateway(tmp_path_factory.mktemp("before"))  # 2026-11-25: gpt-image-1.5 is live
    yield gw
    gw.close()


@pytest.fixture(scope="module")
def after(profile: Profile, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = start_gateway(tmp_path_factory.mktemp("after"), clock=ManualClock(AFTER_SHUTDOWN))
    yield gw
    gw.close()


def in_parallel(calls: list[Callable[[], T]]) -> list[T]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda call: call(), calls))


def size_text(aspect: str) -> str:
    width, height = SIZES[aspect]
    return f"{width}x{height}"


# -- the RunAPI face -------------------------------------------------------------------------------
def runapi_cell(gw: Gateway, user: httpx.Client, aspect: str, quality: str) -> tuple[dict[str, Any], bytes]:
    body = {"model": "gpt-image-1.5", "prompt": PROMPT, "aspect_ratio": aspect, "quality": quality}
    created = user.post("/api/v1/gpt_image/text_to_image", json=body)
    assert created.status_code == 200, created.text
    task = gw.wait(user, created.json()["id"])
    assert task["status"] == "completed", task
    download = user.get(task["images"][0]["url"])
    assert download.status_code == 200
    return task, download.content


def openai_image(user: httpx.Client, model: str, aspect: str, quality: str) -> dict[str, Any]:
    body = {"model": model, "prompt": PROMPT, "size": size_text(aspect), "quality": quality}
    response = user.post("/v1/images/generations", json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    answer["task_id"] = response.headers["X-Imagegate-Task-Id"]
    return answer


@pytest.mark.parametrize("which", ["before", "after"])
def test_runapi_face_keeps_every_cell(request: pytest.FixtureRequest, which: str) -> None:
    gw: Gateway = request.getfixturevalue(which)
    user = gw.user()
    results = in_parallel([lambda a=a, q=q: runapi_cell(gw, user, a, q) for a, q in RUNAPI_CELLS])
    for (aspect, quality), (task, data) in zip(RUNAPI_CELLS, results, strict=True):
        cell = f"{aspect} {quality}"
        assert task["model"] == "gpt-image-1.5", cell
        assert task["model_served"] == ("gpt-image-1.5" if which == "before" else "gpt-image-2"), cell
        assert (task["images"][0]["width"], task["images"][0]["height"]) == SIZES[aspect], cell
        assert Image.open(io.BytesIO(data)).size == SIZES[aspect], cell
        assert task["billing"]["list_price_micro"] == PRICE_MICRO[quality], cell
        assert task["billing"]["reservation"]["amount_micro"] in (0, PRICE_MICRO[quality]), cell
    if which == "after":
        # quality means gpt-image-2's quality: the image is the one gpt-image-2 draws for that
        # size and quality when asked directly (the renderer's scene depends on both).
        direct = in_parallel(
            [lambda a=a, q=q: openai_image(user, "gpt-image-2", a, q) for a, q in RUNAPI_CELLS]
        )
        for (aspect, quality), (_, data), answer in zip(RUNAPI_CELLS, results, direct, strict=True):
            assert base64.b64decode(answer["data"][0]["b64_json"]) == data, f"{aspect} {quality}"


# -- the OpenAI face -------------------------------------------------------------------------------
def test_openai_face_keeps_every_cell(before: Gateway, after: Gateway) -> None:
    old_user, new_user = before.user(), after.user()
    old = in_parallel(
        [lambda a=a, q=q: openai_image(old_user, "gpt-image-1.5", a, q) for a, q in OPENAI_CELLS]
    )
    new = in_parallel(
        [lambda a=a, q=q: openai_image(new_user, "gpt-image-1.5", a, q) for a, q in OPENAI_CELLS]
    )
    direct = in_parallel(
        [lambda a=a, q=q: openai_image(new_user, "gpt-image-2", a, q) for a, q in OPENAI_CELLS]
    )
    for (aspect, quality), was, now, two in zip(OPENAI_CELLS, old, new, direct, strict=True):
        cell = f"{aspect} {quality}"
        for answer in (was, now):
            assert answer["size"] == size_text(aspect), cell
            assert (
                Image.open(io.BytesIO(base64.b64decode(answer["data"][0]["b64_json"]))).size == SIZES[aspect]
            )
        assert now["quality"] == was["quality"], cell
        assert now["usage"]["output_tokens"] == was["usage"]["output_tokens"], cell  # same size, same quality
        assert now["data"] == two["data"], cell  # what gpt-image-2 draws at that size and quality
        old_task = old_user.get(f"/api/v1/tasks/{was['task_id']}").json()
        new_task = new_user.get(f"/api/v1/tasks/{now['task_id']}").json()
        assert (old_task["model_served"], new_task["model_served"]) == ("gpt-image-1.5", "gpt-image-2")
        assert old_task["billing"]["list_price_micro"] == OPENAI_PRICE[quality], cell
        assert new_task["billing"]["list_price_micro"] == OPENAI_PRICE[quality], cell


# -- names clients still send ----------------------------------------------------------------------
OLD_NAMES = ["gpt-image-1", "gpt-image-1-mini", "chatgpt-image-latest", "gpt-image-1.5-2025-12-16"]


@pytest.mark.parametrize(("which", "served"), [("before", {"gpt-image-1": "gpt-image-1.5"}), ("after", {})])
def test_old_names_resolve_by_the_lifecycle_on_both_faces(
    request: pytest.FixtureRequest, which: str, served: dict[str, str]
) -> None:
    gw: Gateway = request.getfixturevalue(which)
    user = gw.user()
    for name in OLD_NAMES:
        # Before 2026-12-01 gpt-image-1 (shut down 2026-10-23) goes to 1.5 and the rest are 1.5;
        # after it, the whole chain ends at gpt-image-2.
        expected = served.get(name, "gpt-image-1.5") if which == "before" else "gpt-image-2"
        body = {"model": name, "prompt": PROMPT, "aspect_ratio": "3:2", "quality": "high"}
        created = user.post("/api/v1/gpt_image/text_to_image", json=body)
        assert created.status_code == 200, (name, created.text)
        assert created.json()["model_served"] == expected, name
        task = gw.wait(user, created.json()["id"])
        assert (task["images"][0]["width"], task["images"][0]["height"]) == (1536, 1024), name
        openai_face = openai_image(user, name, "3:2", "high")
        assert openai_face["size"] == "1536x1024", name
        assert user.get(f"/api/v1/tasks/{openai_face['task_id']}").json()["model_served"] == expected


@pytest.mark.parametrize(
    ("name", "service"),
    [
        ("gpt-image-2-2026-04-21", "gpt_image_2"),
        ("gpt-image-2.5-flare-2026-09-08", "gpt_image_2_5"),
        ("gpt-image-2.5-sunburst-2026-09-08", "gpt_image_2_5"),
    ],
)
def test_dated_snapshots_of_live_models_are_accepted(after: Gateway, name: str, service: str) -> None:
    user = after.user()
    body = {"model": name, "prompt": PROMPT, "aspect_ratio": "16:9", "output_resolution": "1k"}
    created = user.post(f"/api/v1/{service}/text_to_image", json=body)
    assert created.status_code == 200, created.text
    assert created.json()["model_served"] == name.rsplit("-", 3)[0]
    assert openai_image(user, name, "3:2", "medium")["size"] == "1536x1024"


# -- gpt-image-2.6 ---------------------------------------------------------------------------------
@pytest.mark.parametrize("flavour", ["flare", "sunburst"])
def test_gpt_image_2_6_on_both_faces(before: Gateway, flavour: str) -> None:
    user = before.user()
    model = f"gpt-image-2.6-{flavour}"
    body = {"model": model, "prompt": PROMPT, "aspect_ratio": "16:9", "output_resolution": "2k"}
    created = user.post("/api/v1/gpt_image_2_6/text_to_image", json=body)
    assert created.status_code == 200, created.text
    task = before.wait(user, created.json()["id"])
    assert task["status"] == "completed", task
    assert (task["service"], task["model_served"]) == ("gpt_image_2_6", model)
    assert (task["images"][0]["width"], task["images"][0]["height"]) == (2048, 1152)
    assert task["billing"]["list_price_micro"] == 100_000  # 2.5's price until RunAPI publishes one
    wrong = user.post("/api/v1/gpt_image_2_5/text_to_image", json=body)  # not a 2.5 model
    assert wrong.status_code == 400 and wrong.json()["error"]["param"] == "model"
    assert openai_image(user, model, "2:3", "high")["size"] == "1024x1536"
    listed = {m["id"]: m for m in user.get("/v1/models").json()["data"]}
    assert listed[model]["created"] == int(datetime(2026, 11, 4, tzinfo=UTC).timestamp())
    schedules = user.get("/api/v1/price_schedules", params={"model": model}).json()["price_schedules"]
    assert {s["service"] for s in schedules} == {"gpt_image_2_6"}
    assert all(s["prices_published"] is False for s in schedules)
