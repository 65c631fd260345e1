"""``stream: true`` on the OpenAI face, iterated by the ``openai`` package, sync and async.

The events must parse into the SDK's own types with every field; usage over the completed events
sums to the task's; a failure arrives as OpenAI's error event (the SDK raises APIError), never a
cut connection. The offline renderer's partial images are its drawing at stages: each is closer
to the final picture than the one before.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI, OpenAI
from openai.types import (
    ImageEditCompletedEvent,
    ImageEditPartialImageEvent,
    ImageGenCompletedEvent,
    ImageGenPartialImageEvent,
)
from PIL import Image, ImageChops, ImageStat

from tests.conftest import Gateway, png_bytes, start_gateway

FLARE = "gpt-image-2.6-flare"


@pytest.fixture(scope="module")
def key(gateway: Gateway) -> str:
    return gateway.new_account()[1]


@pytest.fixture
def client(gateway: Gateway, key: str) -> Iterator[OpenAI]:
    with OpenAI(base_url=f"{gateway.base_url}/v1", api_key=key) as sdk:
        yield sdk


def picture(b64: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    image.load()
    return image


def distance(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference per channel, at ``a``'s size."""
    diff = ImageChops.difference(a.convert("RGB"), b.convert("RGB").resize(a.size))
    return sum(ImageStat.Stat(diff).mean) / 3


def task_of(gateway: Gateway, key: str, task_id: str) -> dict[str, Any]:
    response = gateway.client(key).get(f"/api/v1/tasks/{task_id}")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def summed_usage(events: list[Any]) -> tuple[int, int, int]:
    usages = [event.usage for event in events]
    return (
        sum(u.input_tokens for u in usages),
        sum(u.output_tokens for u in usages),
        sum(u.total_tokens for u in usages),
    )


def test_generate_streams_partial_images_then_the_image(gateway: Gateway, key: str, client: OpenAI) -> None:
    stream = client.images.generate(
        model=FLARE, prompt="a red fox in fresh snow", size="512x512", stream=True, partial_images=2
    )
    with stream:
        events = list(stream)
        task_id = stream.response.headers["X-Imagegate-Task-Id"]
    assert [type(e) for e in events] == [
        ImageGenPartialImageEvent,
        ImageGenPartialImageEvent,
        ImageGenCompletedEvent,
    ]
    first, second, done = events
    assert isinstance(first, ImageGenPartialImageEvent) and isinstance(second, ImageGenPartialImageEvent)
    assert isinstance(done, ImageGenCompletedEvent)
    assert [first.partial_image_index, second.partial_image_index] == [0, 1]
    for event in events:
        assert (event.background, event.output_format, event.quality) == ("opaque", "png", "medium")
        assert event.size == "512x512" and event.created_at > 0
    final = picture(done.b64_json)
    assert (final.format, final.size) == ("PNG", (512, 512))
    previews = [picture(first.b64_json), picture(second.b64_json)]
    assert all(p.format == "PNG" for p in previews)
    # the drawing at stages: each preview is nearer the final picture than the one before
    assert distance(previews[1], final) < distance(previews[0], final)
    task = task_of(gateway, key, task_id)
    assert task["status"] == "completed"
    usage = task["usage"]
    assert done.usage.output_tokens == usage["output_image_tokens"]
    assert done.usage.input_tokens == usage["input_text_tokens"] + usage["input_image_tokens"]
    assert done.usage.input_tokens_details.text_tokens == usage["input_text_tokens"]
    assert done.usage.total_tokens == done.usage.input_tokens + done.usage.output_tokens


async def test_async_generate_of_several_images_splits_usage(gateway: Gateway, key: str) -> None:
    async with AsyncOpenAI(base_url=f"{gateway.base_url}/v1", api_key=key) as sdk:
        stream = await sdk.images.generate(
            model=FLARE, prompt="two green pears", size="256x256", n=2, stream=True, partial_images=1
        )
        events = [event async for event in stream]
        task_id = stream.response.headers["X-Imagegate-Task-Id"]
    # the previews as they are drawn, then each image once the task has stored them all
    assert [e.type for e in events] == [
        "image_generation.partial_image",
        "image_generation.partial_image",
        "image_generation.completed",
        "image_generation.completed",
    ]
    completed = [e for e in events if isinstance(e, ImageGenCompletedEvent)]
    assert len({e.b64_json for e in completed}) == 2
    usage = task_of(gateway, key, task_id)["usage"]
    text, image_in, output = (
        usage[k] for k in ("input_text_tokens", "input_image_tokens", "output_image_tokens")
    )
    assert summed_usage(completed) == (text + image_in, output, text + image_in + output)


def test_edit_streams_image_edit_events(client: OpenAI) -> None:
    stream = client.images.edit(
        model=FLARE,
        image=("a.png", png_bytes(64, 64, (0, 0, 255)), "image/png"),
        prompt="make it red",
        size="256x256",
        stream=True,
        partial_images=1,
        user="user-42",
    )
    events = list(stream)
    assert [type(e) for e in events] == [ImageEditPartialImageEvent, ImageEditCompletedEvent]
    done = events[-1]
    assert isinstance(done, ImageEditCompletedEvent)
    assert picture(done.b64_json).size == (256, 256)
    assert done.safety_identifier == "user-42"
    assert done.usage.input_tokens_details.image_tokens > 0  # the source image counts as input


async def test_async_edit_with_no_partial_images_is_one_event(gateway: Gateway, key: str) -> None:
    async with AsyncOpenAI(base_url=f"{gateway.base_url}/v1", api_key=key) as sdk:
        stream = await sdk.images.edit(
            model=FLARE,
            image=("a.png", png_bytes(), "image/png"),
            prompt="a blue square",
            size="256x256",
            output_format="webp",
            stream=True,
        )
        events = [event async for event in stream]
    assert [e.type for e in events] == ["image_edit.completed"]
    assert events[0].output_format == "webp"
    assert picture(events[0].b64_json).format == "WEBP"


def test_a_failure_mid_stream_is_an_error_event(gateway: Gateway, client: OpenAI) -> None:
    stream = client.images.generate(
        model=FLARE, prompt="[fail:moderation_blocked] a forbidden thing", stream=True, partial_images=2
    )
    with pytest.raises(openai.APIError) as caught:
        list(stream)
    error = caught.value
    assert not isinstance(error, openai.APIConnectionError), "the connection was not cut"
    assert isinstance(error.body, dict)
    assert error.body["task_error_code"] == "moderation_blocked"
    assert error.body["code"] == "upstream_error"


async def test_async_failure_mid_stream_is_an_error_event(gateway: Gateway, key: str) -> None:
    async with AsyncOpenAI(base_url=f"{gateway.base_url}/v1", api_key=key) as sdk:
        stream = await sdk.images.generate(model=FLARE, prompt="[fail] a broken thing", stream=True)
        with pytest.raises(openai.APIError) as caught:
            _ = [event async for event in stream]
    assert not isinstance(caught.value, openai.APIConnectionError)
    assert "failed" in caught.value.message


@pytest.mark.parametrize("fmt", ["gif", "svg"])
def test_gif_and_svg_refuse_streaming(client: OpenAI, fmt: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(model=FLARE, prompt="a cat", output_format=fmt, stream=True)  # type: ignore[arg-type]
    assert caught.value.param == "stream"
    assert f"{fmt.upper()} output does not support streaming" in caught.value.message


def test_stream_must_be_a_boolean(gateway: Gateway, key: str) -> None:
    response = gateway.client(key).post(
        "/v1/images/generations", json={"model": FLARE, "prompt": "a cat", "stream": "yes"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "stream"


def test_a_replayed_streaming_call_streams_the_original_task(gateway: Gateway, key: str) -> None:
    with OpenAI(base_url=f"{gateway.base_url}/v1", api_key=key) as sdk:
        first = sdk.images.generate(
            model=FLARE,
            prompt="one blue kite",
            size="256x256",
            stream=True,
            partial_images=1,
            extra_headers={"Idempotency-Key": "stream-replay-1"},
        )
        with first:
            original = list(first)
            task_id = first.response.headers["X-Imagegate-Task-Id"]
        again = sdk.images.generate(
            model=FLARE,
            prompt="one blue kite",
            size="256x256",
            stream=True,
            partial_images=1,
            extra_headers={"Idempotency-Key": "stream-replay-1"},
        )
        with again:
            replayed = list(again)
            assert again.response.headers["X-Imagegate-Task-Id"] == task_id
    assert [e.type for e in replayed] == [e.type for e in original]
    assert replayed[-1].b64_json == original[-1].b64_json


def test_heartbeats_during_a_slow_stream_do_not_trouble_the_sdk(tmp_path: Path) -> None:
    quick = start_gateway(tmp_path, sse_heartbeat_s=0.05)
    try:
        with OpenAI(base_url=f"{quick.base_url}/v1", api_key=quick.new_account()[1]) as sdk:
            stream = sdk.images.generate(
                model=FLARE,
                prompt="[slow:0.5] a patient heron",
                size="256x256",
                stream=True,
                partial_images=1,
            )
            with stream:
                raw = stream.response
                events = list(stream)
        assert [e.type for e in events] == ["image_generation.partial_image", "image_generation.completed"]
        assert raw.headers["content-type"].startswith("text/event-stream")
        body = {"model": FLARE, "prompt": "[slow:0.5] a heron", "size": "256x256", "stream": True}
        with quick.client(quick.new_account()[1]).stream(
            "POST", "/v1/images/generations", json=body
        ) as answer:
            lines = list(answer.iter_lines())
        assert any(line.startswith(":") for line in lines), "heartbeats were sent meanwhile"
        assert "event: image_generation.completed" in lines
    finally:
        quick.close()
