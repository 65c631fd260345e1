"""The fake provider: prompt markers script failures and delays; otherwise it draws like offline."""

from __future__ import annotations

import time
from typing import Any

import pytest

from imagegate.providers.base import (
    Action,
    FinalImage,
    ImageRequest,
    Progress,
    Provider,
    ProviderError,
    ProviderEvent,
)
from imagegate.providers.offline import OfflineProvider
from imagegate.providers.testing import FakeProvider, parse_markers


def make_request(prompt: str, **overrides: Any) -> ImageRequest:
    fields: dict[str, Any] = {
        "task_id": "task-1",
        "model": "fake-model",
        "action": Action.GENERATE,
        "prompt": prompt,
        "width": 256,
        "height": 256,
    }
    fields.update(overrides)
    return ImageRequest(**fields)


async def collect(
    provider: Provider, request: ImageRequest, seen: list[ProviderEvent] | None = None
) -> list[ProviderEvent]:
    events = seen if seen is not None else []
    async for event in provider.run(request):
        events.append(event)
    return events


def test_satisfies_the_provider_protocol() -> None:
    provider = FakeProvider()
    assert isinstance(provider, Provider)
    assert provider.name == "fake"


async def test_plain_prompt_produces_real_images() -> None:
    events = await collect(FakeProvider(), make_request("a green field", n=2))
    finals = [e for e in events if isinstance(e, FinalImage)]
    assert [f.index for f in finals] == [0, 1]
    assert all(f.image.data.startswith(b"\x89PNG") for f in finals)


async def test_fail_raises_upstream_error_after_progress() -> None:
    seen: list[ProviderEvent] = []
    with pytest.raises(ProviderError) as info:
        await collect(FakeProvider(), make_request("draw a cat [fail]"), seen)
    assert info.value.code == "upstream_error"
    assert info.value.retryable is False
    assert info.value.message == "fake provider failed on request"
    assert seen and all(isinstance(e, Progress) for e in seen)


async def test_fail_with_code() -> None:
    with pytest.raises(ProviderError) as info:
        await collect(FakeProvider(), make_request("[fail:moderation_blocked] something"))
    assert info.value.code == "moderation_blocked"


async def test_stall_delays_the_output() -> None:
    start = time.perf_counter()
    events = await collect(FakeProvider(), make_request("slow one [stall:0.2]"))
    assert time.perf_counter() - start >= 0.2
    assert any(isinstance(e, FinalImage) for e in events)


async def test_slow_reports_progress_while_waiting() -> None:
    events = await collect(FakeProvider(), make_request("[slow:0.35] a boat"))
    first_image = next(i for i, e in enumerate(events) if isinstance(e, FinalImage))
    waiting = [
        e for e in events[:first_image] if isinstance(e, Progress) and e.message == "fake provider working"
    ]
    assert len(waiting) >= 3  # one every 0.1 s
    fractions = [e.fraction for e in events if isinstance(e, Progress)]
    assert fractions == sorted(fractions)


async def test_stall_then_fail() -> None:
    start = time.perf_counter()
    with pytest.raises(ProviderError):
        await collect(FakeProvider(), make_request("[stall:0.1][fail]"))
    assert time.perf_counter() - start >= 0.1


async def test_markers_are_removed_before_drawing() -> None:
    fake = await collect(FakeProvider(), make_request("a red square [stall:0.01]"))
    offline = await collect(OfflineProvider(), make_request("a red square"))
    fake_images = [e.image.data for e in fake if isinstance(e, FinalImage)]
    offline_images = [e.image.data for e in offline if isinstance(e, FinalImage)]
    assert fake_images == offline_images


async def test_requests_are_recorded() -> None:
    provider = FakeProvider()
    await collect(provider, make_request("one"))
    await collect(provider, make_request("two"))
    assert [r.prompt for r in provider.requests] == ["one", "two"]
    await provider.aclose()


def test_parse_markers() -> None:
    behaviour = parse_markers("x [stall:1.5] y [slow:.5] [fail:rate_limit] [stall:oops]")
    assert behaviour.stall == 1.5
    assert behaviour.slow == 0.5
    assert behaviour.fail_code == "rate_limit"
    assert behaviour.prompt == "x y [stall:oops]"
