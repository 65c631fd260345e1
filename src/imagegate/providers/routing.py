"""Run a request along a route of providers: the first healthy one that succeeds answers.

A retryable failure (the upstream is down, slow or rate-limiting after its own retries)
counts against that provider's breaker and moves on to the next provider on the route; a
provider whose breaker is open is skipped without a call. A non-retryable failure (the
request itself was refused: content policy, validation, credentials) ends the run at once,
since another provider would refuse it too or hide a misconfiguration.

Every call is written down as an attempt ``{provider, started_at, ended_at, error_code}``
(error_code None: it produced the images) in a list the caller owns, so the attempts made
before a timeout or a cancel are kept too. A provider's own retry (a :class:`Retrying` event)
ends one attempt and starts the next; an attempt's time includes the back-off before it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from imagegate.providers.base import (
    FinalImage,
    GeneratedImage,
    ImageRequest,
    Provider,
    ProviderError,
    ProviderEvent,
    Retrying,
    Usage,
)
from imagegate.providers.registry import Providers

log = logging.getLogger("imagegate.providers")
CANCELED = "canceled"  # the error_code of a call cut off from outside (a timeout, a stop)

Attempts = list[dict[str, Any]]

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


class _Log:
    """The attempts of one provider on the route, written into the caller's list."""

    def __init__(self, attempts: Attempts, provider: str, now: Callable[[], float]) -> None:
        self._attempts, self._provider, self._now = attempts, provider, now
        self._started = self._stamp()

    def _stamp(self) -> str:
        return datetime.fromtimestamp(self._now(), UTC).isoformat().replace("+00:00", "Z")

    def end(self, error_code: str | None) -> None:
        ended = self._stamp()
        self._attempts.append(
            {
                "provider": self._provider,
                "started_at": self._started,
                "ended_at": ended,
                "error_code": error_code,
            }
        )
        self._started = ended


async def _collect(
    provider: Provider, request: ImageRequest, attempt: _Log, on_event: OnEvent | None
) -> tuple[list[GeneratedImage], Usage | None]:
    finals: dict[int, GeneratedImage] = {}
    usage: Usage | None = None
    async for event in provider.run(request):
        if isinstance(event, FinalImage):
            finals[event.index] = event.image
        elif isinstance(event, Usage):
            usage = event
        elif isinstance(event, Retrying):
            attempt.end(event.error_code)
        elif on_event is not None:
            await on_event(event)
    if len(finals) != request.n:
        raise ProviderError(f"provider returned {len(finals)} of {request.n} images", code="upstream_error")
    return [finals[i] for i in sorted(finals)], usage


async def generate(
    providers: Providers,
    route: Sequence[str],
    request: ImageRequest,
    attempts: Attempts | None = None,
    on_event: OnEvent | None = None,
) -> Routed:
    """The first success along ``route``; each call is appended to ``attempts`` as it ends,
    progress and partial images go to ``on_event`` as they come."""
    attempts = [] if attempts is None else attempts
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
        attempt = _Log(attempts, name, providers.now)
        try:
            async with providers.slot(name):
                images, usage = await _collect(providers.get(name), request, attempt, on_event)
        except ProviderError as exc:
            attempt.end(exc.code)
            if not exc.retryable:
                breaker.success()  # the upstream answered: it is up, the request was refused
                raise RouteFailed(exc, name) from exc
            breaker.failure()
            log.warning("provider %s failed (%s); trying the next on the route", name, exc.code)
            last = exc
            continue
        except BaseException:
            attempt.end(CANCELED)
            breaker.release()  # canceled or a bug of ours: says nothing about the upstream
            raise
        attempt.end(None)
        breaker.success()
        return Routed(name, images, usage)
    raise RouteFailed(last, last_name)


__all__ = ["CANCELED", "Attempts", "OnEvent", "RouteFailed", "Routed", "generate"]
