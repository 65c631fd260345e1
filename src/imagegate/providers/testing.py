"""A provider for exercising failure and timing paths, steered by markers in the prompt.

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
import re
from collections.abc import AsyncIterator

from imagegate.providers.base import ImageRequest, Progress, ProviderError, ProviderEvent
from imagegate.providers.config import ProviderConfig
from imagegate.providers.offline import OfflineProvider
from imagegate.providers.registry import register_kind

_MARKER = re.compile(r"\[(fail)(?::([A-Za-z0-9_.-]+))?\]|\[(stall|slow):(\d+(?:\.\d*)?|\.\d+)\]")
SLOW_TICK = 0.1  # seconds between Progress events under [slow:...]


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
    """Offline pictures plus scripted failures and delays. ``requests`` records every call."""

    name = "fake"
    label = "fake test provider: offline pictures, failures on prompt markers"
    placeholder = True

    def __init__(self, delegate: OfflineProvider | None = None) -> None:
        self._delegate = delegate or OfflineProvider()
        self.requests: list[ImageRequest] = []

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
