"""Providers for tests and benchmarks: ``fake`` (steered by prompt markers) and ``instant``.

``instant`` answers every request at once with the same ~2 MB 1024x1024 PNG, made once per
process, so a benchmark measures the gateway's own cost rather than rendering.

The ``fake`` provider exercises failure and timing paths, steered by markers in the prompt.

Markers (any number, anywhere in the prompt; they are removed before the picture is drawn):

``[fail]``
    Emit one Progress event, then raise ``ProviderError("fake provider failed on request",
    code="upstream_error", retryable=False)``.
``[fail:CODE]``
    The same with ``code=CODE``, e.g. ``[fail:moderation_blocked]``.
``[stall:SECONDS]``
    Sleep that long (``asyncio.sleep``, fractions allowed) before producing anything else.
``[slow:SECONDS]``
    Like ``stall`` but emitting a Progress event every 0.1 s while waiting.

Waiting comes before failing, so ``[stall:1] [fail]`` fails after a second. Without a ``fail``
marker the request is handed to an :class:`OfflineProvider`, so the output is a real image.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import random
import re
import threading
from collections import deque
from collections.abc import AsyncIterator

from PIL import Image

from imagegate.providers.base import (
    FinalImage,
    GeneratedImage,
    ImageRequest,
    Progress,
    ProviderError,
    ProviderEvent,
)
from imagegate.providers.config import ProviderConfig
from imagegate.providers.offline import OfflineProvider, estimate_usage
from imagegate.providers.registry import register_kind

_MARKER = re.compile(r"\[(fail)(?::([A-Za-z0-9_.-]+))?\]|\[(stall|slow):(\d+(?:\.\d*)?|\.\d+)\]")
SLOW_TICK = 0.1  # seconds between Progress events under [slow:...]
RECORDED_REQUESTS = 100  # FakeProvider.requests keeps the latest this many: a long run stays bounded
INSTANT_SIDE = 1024
# Two thirds of the rows are random noise (incompressible), the rest black: at zlib level 1 the
# file is ~2.1 MB, the size of a real GPT Image 1024x1024 PNG, so byte-moving costs are realistic.
_INSTANT_NOISE_ROWS = INSTANT_SIDE * 2 // 3


@dataclasses.dataclass(frozen=True)
class Behaviour:
    """What the markers in a prompt ask for."""

    fail_code: str | None = None
    stall: float = 0.0
    slow: float = 0.0
    prompt: str = ""  # the prompt with the markers removed


def parse_markers(prompt: str) -> Behaviour:
    fail_code: str | None = None
    stall = slow = 0.0
    for match in _MARKER.finditer(prompt):
        if match.group(1):
            fail_code = match.group(2) or "upstream_error"
        elif match.group(3) == "stall":
            stall += float(match.group(4))
        else:
            slow += float(match.group(4))
    cleaned = " ".join(_MARKER.sub(" ", prompt).split())
    return Behaviour(fail_code=fail_code, stall=stall, slow=slow, prompt=cleaned)


class FakeProvider:
    """Offline pictures plus scripted failures and delays. ``requests`` holds the latest calls."""

    name = "fake"
    label = "fake test provider: offline pictures, failures on prompt markers"
    placeholder = True

    def __init__(self, delegate: OfflineProvider | None = None) -> None:
        self._delegate = delegate or OfflineProvider()
        self.requests: deque[ImageRequest] = deque(maxlen=RECORDED_REQUESTS)

    async def run(self, request: ImageRequest) -> AsyncIterator[ProviderEvent]:
        self.requests.append(request)
        behaviour = parse_markers(request.prompt)
        yield Progress(0.0, "fake provider started")
        if behaviour.stall > 0:
            await asyncio.sleep(behaviour.stall)
        if behaviour.slow > 0:
            loop = asyncio.get_running_loop()
            start = loop.time()
            deadline = start + behaviour.slow
            while (now := loop.time()) < deadline:
                await asyncio.sleep(min(SLOW_TICK, deadline - now))
                yield Progress(
                    0.5 * min(1.0, (loop.time() - start) / behaviour.slow), "fake provider working"
                )
        if behaviour.fail_code is not None:
            raise ProviderError("fake provider failed on request", code=behaviour.fail_code, retryable=False)
        async for event in self._delegate.run(dataclasses.replace(request, prompt=behaviour.prompt)):
            if behaviour.slow > 0 and isinstance(event, Progress):
                # the wait reported 0 .. 0.5; keep the fraction rising through the real work
                event = Progress(0.5 + 0.5 * event.fraction, event.message)
            yield event

    async def aclose(self) -> None:
        await self._delegate.aclose()


@register_kind("fake")
def _from_config(config: ProviderConfig) -> FakeProvider:
    return FakeProvider()


def make_instant_png() -> bytes:
    """The instant provider's picture: deterministic, ~2 MB. CPU work (~0.3 s): call it off the loop."""
    rng = random.Random(0)
    side = INSTANT_SIDE
    pixels = rng.randbytes(side * _INSTANT_NOISE_ROWS * 3) + bytes(side * (side - _INSTANT_NOISE_ROWS) * 3)
    buffer = io.BytesIO()
    Image.frombytes("RGB", (side, side), pixels).save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


_instant_png: bytes | None = None
_instant_lock = threading.Lock()  # a thread lock: the picture is made in a worker thread


def _shared_instant_png() -> bytes:
    global _instant_png
    with _instant_lock:
        if _instant_png is None:
            _instant_png = make_instant_png()
        return _instant_png


async def instant_png() -> bytes:
    """The picture, made on first use in a thread and shared by every call in the process."""
    return _instant_png if _instant_png is not None else await asyncio.to_thread(_shared_instant_png)


class InstantProvider:
    """The same PNG for every request (whatever size or format it asks for), with no work per call.

    For benchmarks of the gateway's hot path; the images say nothing about the prompt.
    """

    name = "instant"

    async def run(self, request: ImageRequest) -> AsyncIterator[ProviderEvent]:
        data = await instant_png()
        image = GeneratedImage(data=data, content_type="image/png", width=INSTANT_SIDE, height=INSTANT_SIDE)
        for index in range(request.n):
            yield FinalImage(index, image)
        yield estimate_usage(request)

    async def aclose(self) -> None:
        return None

    label = "instant test provider: one fixed PNG for every call, for benchmarks"
    placeholder = True


@register_kind("instant")
def _instant_from_config(config: ProviderConfig) -> InstantProvider:
    return InstantProvider()
