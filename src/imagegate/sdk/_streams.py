"""The one Server-Sent Events stream an operation may hold open, read with httpx-sse.

The clients answer an operation's :class:`Connect` and :class:`Receive` steps through these
(``SyncStream`` over ``httpx.Client``, ``AsyncStream`` over ``httpx.AsyncClient``); what a
stream's first answer means is decided in ``BaseClient.stream_answer``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterator
from typing import Self

import httpx
from httpx_sse import EventSource, ServerSentEvent

from imagegate.sdk._base import DROPPED, ENDED, BaseClient, Connect, Transient


class SyncStream:
    """The sync client's open event stream, read with httpx-sse; closed on reopen and exit."""

    def __init__(self, client: BaseClient, http: httpx.Client) -> None:
        self._client, self._http = client, http
        self._response: httpx.Response | None = None
        self._events: Iterator[ServerSentEvent] | None = None

    def open(self, connect: Connect) -> str | Transient:
        self.close()
        http = self._http
        try:
            response = http.send(http.build_request(**self._client.stream_args(connect)), stream=True)
        except httpx.TransportError as exc:
            return Transient(self._client.connection_error(exc))
        try:
            if not response.is_success:
                response.read()
            answer = self._client.stream_answer(response)
        except BaseException:
            response.close()
            raise
        if answer != "open":
            response.close()
            return answer
        self._response, self._events = response, EventSource(response).iter_sse()
        return answer

    def receive(self) -> ServerSentEvent | str:
        if self._events is None:
            return ENDED
        try:
            return next(self._events)
        except StopIteration:
            return ENDED
        except httpx.TransportError:
            return DROPPED

    def close(self) -> None:
        if self._response is not None:
            self._response.close()
        self._response = self._events = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncStream:
    """The async twin of :class:`SyncStream`."""

    def __init__(self, client: BaseClient, http: httpx.AsyncClient) -> None:
        self._client, self._http = client, http
        self._response: httpx.Response | None = None
        self._events: AsyncGenerator[ServerSentEvent, None] | None = None

    async def open(self, connect: Connect) -> str | Transient:
        await self.close()
        http = self._http
        try:
            request = http.build_request(**self._client.stream_args(connect))
            response = await http.send(request, stream=True)
        except httpx.TransportError as exc:
            return Transient(self._client.connection_error(exc))
        try:
            if not response.is_success:
                await response.aread()
            answer = self._client.stream_answer(response)
        except BaseException:
            await response.aclose()
            raise
        if answer != "open":
            await response.aclose()
            return answer
        self._response, self._events = response, EventSource(response).aiter_sse()
        return answer

    async def receive(self) -> ServerSentEvent | str:
        if self._events is None:
            return ENDED
        try:
            return await anext(self._events)
        except StopAsyncIteration:
            return ENDED
        except httpx.TransportError:
            return DROPPED

    async def close(self) -> None:
        if self._events is not None:
            await self._events.aclose()
        if self._response is not None:
            await self._response.aclose()
        self._response = self._events = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
