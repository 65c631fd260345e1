"""The instant provider answers at once with one shared ~2 MB PNG; the fake provider's record is bounded."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

from imagegate.providers.base import Action, FinalImage, ImageRequest, Provider, ProviderEvent, Usage
from imagegate.providers.config import ProviderConfig
from imagegate.providers.registry import kind_factory
from imagegate.providers.testing import RECORDED_REQUESTS, FakeProvider, InstantProvider


def make_request(prompt: str = "a lighthouse", **overrides: Any) -> ImageRequest:
    fields: dict[str, Any] = {
        "task_id": "task-1",
        "model": "gpt-image-1.5",
        "action": Action.GENERATE,
        "prompt": prompt,
        "width": 1024,
        "height": 1024,
    }
    fields.update(overrides)
    return ImageRequest(**fields)


async def collect(provider: Provider, request: ImageRequest) -> list[ProviderEvent]:
    return [event async for event in provider.run(request)]


async def test_one_final_image_then_usage() -> None:
    provider = kind_factory("instant")(ProviderConfig(name="instant", kind="instant"))
    assert isinstance(provider, Provider) and provider.name == "instant"
    events = await collect(provider, make_request())
    assert [type(e) for e in events] == [FinalImage, Usage]
    final = events[0]
    assert isinstance(final, FinalImage) and final.index == 0
    assert final.image.content_type == "image/png"
    assert 1_800_000 < len(final.image.data) < 2_600_000  # the size of a real 1024x1024 output
    with Image.open(io.BytesIO(final.image.data)) as decoded:
        assert (decoded.format, decoded.size) == ("PNG", (1024, 1024))
    assert (final.image.width, final.image.height) == (1024, 1024)
    usage = events[1]
    assert isinstance(usage, Usage) and usage.output_image_tokens > 0
    await provider.aclose()


async def test_every_call_shares_the_same_bytes() -> None:
    first = await collect(InstantProvider(), make_request("one"))
    second = await collect(InstantProvider(), make_request("two", n=3))
    images = [e.image.data for e in first + second if isinstance(e, FinalImage)]
    assert len(images) == 4
    assert all(image is images[0] for image in images)  # made once per process, not per call
    assert [e.index for e in second if isinstance(e, FinalImage)] == [0, 1, 2]


async def test_fake_provider_keeps_only_the_latest_requests() -> None:
    provider = FakeProvider()
    total = RECORDED_REQUESTS + 20
    for number in range(total):
        await collect(provider, make_request(f"call {number}", width=16, height=16))
    assert len(provider.requests) == RECORDED_REQUESTS
    assert provider.requests[0].prompt == "call 20"
    assert provider.requests[-1].prompt == f"call {total - 1}"
    await provider.aclose()
