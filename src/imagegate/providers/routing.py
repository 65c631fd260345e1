"""Run a request along a route of providers: the first healthy one that succeeds answers.

A retryable failure (the upstream is down, slow or rate-limiting after its own retries)
counts against that provider's breaker and moves on to the next provider on the route; a
provider whose breaker is open is skipped without a call. A non-retryable failure (the
request itself was refused: content policy, validation, credentials) ends the run at once,
since another provider would refuse it too or hide a misconfiguration.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from imagegate.providers.base import (
    FinalImage,
    GeneratedImage,
    ImageRequest,
    Provider,
    ProviderError,
    ProviderEvent,
    Usage,
)
from imagegate.providers.registry import Providers

log = logging.getLogger("imagegate.providers")

OnEvent = Callable[[ProviderEvent], Awaitable[None]]  # progress and partial images, as they come


@dataclass(frozen=True)
class Routed:
    provider: str  # the provider that produced the images
    images: list[GeneratedImage]
    usage: Usage | None


class RouteFailed(ProviderError):
    """Every provider on the route failed or was skipped; ``provider`` is the last one tried."""

    def __init__(self, last: ProviderError, provider: str | None) -> None:
        super().__init__(last.message, code=last.code, retryable=last.retryable)
        self.provider = provider


async def _collect(
    provider: Provider, request: ImageRequest, on_event: OnEvent | None
) -> tuple[list[GeneratedImage], Usage | None]:
    finals: dict[int, GeneratedImage] = {}
    usage: Usage | None = None
    async for event in provider.run(request):
        if isinstance(event, FinalImage):
            finals[event.index] = event.image
        elif isinstance(event, Usage):
            usage = event
        elif on_event is not None:
            await on_event(event)
    if len(finals) != request.n:
        raise ProviderError(f"provider returned {len(finals)} of {request.n} images", code="upstream_error")
    return [finals[i] for i in sorted(finals)], usage


async def generate(
    providers: Providers, route: Sequence[str], request: ImageRequest, on_event: OnEvent | None = None
) -> Routed:
    last: ProviderError = ProviderError("the route names no provider", code="upstream_error")
    last_name: str | None = None
    for name in route:
        breaker = providers.breaker(name)
        if not breaker.allow():
            last = ProviderError(
                f"provider {name} is unavailable after repeated failures",
                code="upstream_error",
                retryable=True,
            )
            continue
        last_name = name
        try:
            async with providers.slot(name):
                images, usage = await _collect(providers.get(name), request, on_event)
        except ProviderError as exc:
            if not exc.retryable:
                breaker.success()  # the upstream answered: it is up, the request was refused
                raise RouteFailed(exc, name) from exc
            breaker.failure()
            log.warning("provider %s failed (%s); trying the next on the route", name, exc.code)
            last = exc
            continue
        except BaseException:
            breaker.release()  # canceled or a bug of ours: says nothing about the upstream
            raise
        breaker.success()
        return Routed(name, images, usage)
    raise RouteFailed(last, last_name)


__all__ = ["OnEvent", "RouteFailed", "Routed", "generate"]
