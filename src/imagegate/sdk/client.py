"""``Client`` and ``AsyncClient``: the same operations (``_ops``), driven over httpx.

client = Client()  # IMAGEGATE_API_KEY, IMAGEGATE_BASE_URL
task = client.images.generate("a red fox in snow", aspect_ratio="3:2")
task.save("fox.png")
"""

from __future__ import annotations

import asyncio
import builtins
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Iterator
from contextlib import aclosing
from datetime import date
from functools import cached_property
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from imagegate.retry import MAX_RETRIES
from imagegate.schemas import Balance, FileObject, Me, UsageReport
from imagegate.sdk import _ops
from imagegate.sdk._base import DEFAULT_TIMEOUT_S, BaseClient, Call, Connect, Emit, Op, Sleep, Step
from imagegate.sdk._ops import DEFAULT_WAIT_S, OMIT, ImageInput, given
from imagegate.sdk._streams import AsyncStream, SyncStream
from imagegate.sdk.events import TaskEvent
from imagegate.sdk.tasks import AsyncTask, Model, Task
from imagegate.sdk.webhooks import AsyncWebhooks, Webhooks

T = TypeVar("T")


class Client(BaseClient):
    """A synchronous client. Use it as a context manager, or call :meth:`close`."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        max_retries: int = MAX_RETRIES,
        http_client: httpx.Client | None = None,
    ) -> None:
        super().__init__(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries)
        self._http = http_client or httpx.Client(timeout=timeout)

    def run(self, op: Op[T]) -> T:
        """Carry an operation's steps out, in order, until it returns (events it emits are dropped)."""
        with SyncStream(self, self._http) as stream:
            try:
                step = next(op)
                while True:
                    step = op.send(None if isinstance(step, Emit) else self._perform(step, stream))
            except StopIteration as stop:
                result: T = stop.value
                return result
            finally:
                op.close()

    def iterate(self, op: Op[Any]) -> Iterator[Any]:
        """Carry an operation out, yielding the events it emits."""
        with SyncStream(self, self._http) as stream:
            try:
                step = next(op)
                while True:
                    if isinstance(step, Emit):
                        yield step.event
                        step = op.send(None)
                    else:
                        step = op.send(self._perform(step, stream))
            except StopIteration:
                return
            finally:
                op.close()

    def _perform(self, step: Step, stream: SyncStream) -> Any:
        if isinstance(step, Call):
            return self._send(step)
        if isinstance(step, Sleep):
            time.sleep(step.seconds)
            return None
        if isinstance(step, Connect):
            return stream.open(step)
        return stream.receive()

    def _send(self, call: Call) -> Any:
        attempt = 0
        while True:
            try:  # a download follows: on S3 storage an output's link answers 307 to the bucket
                response = self._http.send(
                    self._http.build_request(**self.request_args(call)), follow_redirects=call.raw
                )
            except httpx.TransportError as exc:
                delay = self.retry_wait(call, attempt, None)
                if delay is None:
                    raise self.connection_error(exc) from exc
            else:
                delay = None if response.is_success else self.retry_wait(call, attempt, response)
                if delay is None:
                    return self.answer(call, response)
            time.sleep(delay)
            attempt += 1

    def task(self, body: dict[str, Any]) -> Task:
        task = Task.model_validate(body)
        task._client = self
        return task

    def download(self, url: str) -> bytes:
        return self.run(_ops.download(url))

    @cached_property
    def images(self) -> Images:
        return Images(self)

    @cached_property
    def tasks(self) -> Tasks:
        return Tasks(self)

    @cached_property
    def files(self) -> Files:
        return Files(self)

    @cached_property
    def account(self) -> Account:
        return Account(self)

    @cached_property
    def models(self) -> Models:
        return Models(self)

    @cached_property
    def webhooks(self) -> Webhooks:
        return Webhooks(self)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(BaseClient):
    """The asynchronous twin of :class:`Client`: the same resources, awaited."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        max_retries: int = MAX_RETRIES,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries)
        self._http = http_client or httpx.AsyncClient(timeout=timeout)

    async def run(self, op: Op[T]) -> T:
        async with AsyncStream(self, self._http) as stream:
            try:
                step = next(op)
                while True:
                    step = op.send(None if isinstance(step, Emit) else await self._perform(step, stream))
            except StopIteration as stop:
                result: T = stop.value
                return result
            finally:
                op.close()

    async def iterate(self, op: Op[Any]) -> AsyncGenerator[Any, None]:
        async with AsyncStream(self, self._http) as stream:
            try:
                step = next(op)
                while True:
                    if isinstance(step, Emit):
                        yield step.event
                        step = op.send(None)
                    else:
                        step = op.send(await self._perform(step, stream))
            except StopIteration:
                return
            finally:
                op.close()

    async def _perform(self, step: Step, stream: AsyncStream) -> Any:
        if isinstance(step, Call):
            return await self._send(step)
        if isinstance(step, Sleep):
            await asyncio.sleep(step.seconds)
            return None
        if isinstance(step, Connect):
            return await stream.open(step)
        return await stream.receive()

    async def _send(self, call: Call) -> Any:
        attempt = 0
        while True:
            try:
                response = await self._http.send(
                    self._http.build_request(**self.request_args(call)), follow_redirects=call.raw
                )
            except httpx.TransportError as exc:
                delay = self.retry_wait(call, attempt, None)
                if delay is None:
                    raise self.connection_error(exc) from exc
            else:
                delay = None if response.is_success else self.retry_wait(call, attempt, response)
                if delay is None:
                    return self.answer(call, response)
            await asyncio.sleep(delay)
            attempt += 1

    def task(self, body: dict[str, Any]) -> AsyncTask:
        task = AsyncTask.model_validate(body)
        task._client = self
        return task

    async def download(self, url: str) -> bytes:
        return await self.run(_ops.download(url))

    @cached_property
    def images(self) -> AsyncImages:
        return AsyncImages(self)

    @cached_property
    def tasks(self) -> AsyncTasks:
        return AsyncTasks(self)

    @cached_property
    def files(self) -> AsyncFiles:
        return AsyncFiles(self)

    @cached_property
    def account(self) -> AsyncAccount:
        return AsyncAccount(self)

    @cached_property
    def models(self) -> AsyncModels:
        return AsyncModels(self)

    @cached_property
    def webhooks(self) -> AsyncWebhooks:
        return AsyncWebhooks(self)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


# --- resources: thin twins over the shared operations -----------------------------------


class Images:
    def __init__(self, client: Client) -> None:
        self._client = client

    def generate(
        self,
        prompt: str,
        *,
        model: str | None = None,
        aspect_ratio: str = OMIT,
        quality: str = OMIT,
        output_resolution: str = OMIT,
        callback_url: str = OMIT,
        extra: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        client_request_id: str | None = None,
        wait: bool = True,
        timeout: float = DEFAULT_WAIT_S,
    ) -> Task:
        """Create a text-to-image task; with ``wait`` (the default) return it finished, or
        raise TaskFailedError / TaskTimeoutError. Parameters left out take the model's
        defaults; ``extra`` carries any other field the model's contract lists."""
        body = {"prompt": prompt, "model": model, **(extra or {})}
        body.update(given(aspect_ratio=aspect_ratio, quality=quality))
        body.update(given(output_resolution=output_resolution, callback_url=callback_url))
        op = _ops.create_task(
            self._client,
            "text_to_image",
            {k: v for k, v in body.items() if v is not None},
            self._client.task,
            idempotency_key=idempotency_key,
            client_request_id=client_request_id,
            wait=wait,
            timeout=timeout,
        )
        return self._client.run(op)

    def edit(
        self,
        prompt: str,
        *,
        images: Iterable[ImageInput] | ImageInput,
        mask: ImageInput | None = None,
        model: str | None = None,
        aspect_ratio: str = OMIT,
        quality: str = OMIT,
        output_resolution: str = OMIT,
        callback_url: str = OMIT,
        extra: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        client_request_id: str | None = None,
        wait: bool = True,
        timeout: float = DEFAULT_WAIT_S,
    ) -> Task:
        """Edit images (paths, bytes, URLs or PIL images; local ones are uploaded first)."""
        urls, mask_url = self._client.run(_ops.image_urls(_as_list(images), mask))
        params = given(aspect_ratio=aspect_ratio, quality=quality, output_resolution=output_resolution)
        params.update(given(callback_url=callback_url), **(extra or {}))
        op = _ops.create_task(
            self._client,
            "edit_image",
            _ops.edit_body(prompt, urls, mask_url, model, params),
            self._client.task,
            idempotency_key=idempotency_key,
            client_request_id=client_request_id,
            wait=wait,
            timeout=timeout,
        )
        return self._client.run(op)


class AsyncImages:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def generate(
        self,
        prompt: str,
        *,
        model: str | None = None,
        aspect_ratio: str = OMIT,
        quality: str = OMIT,
        output_resolution: str = OMIT,
        callback_url: str = OMIT,
        extra: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        client_request_id: str | None = None,
        wait: bool = True,
        timeout: float = DEFAULT_WAIT_S,  # noqa: ASYNC109 - how long the task may take, the twin of the sync API
    ) -> AsyncTask:
        """See :meth:`Images.generate`."""
        body = {"prompt": prompt, "model": model, **(extra or {})}
        body.update(given(aspect_ratio=aspect_ratio, quality=quality))
        body.update(given(output_resolution=output_resolution, callback_url=callback_url))
        op = _ops.create_task(
            self._client,
            "text_to_image",
            {k: v for k, v in body.items() if v is not None},
            self._client.task,
            idempotency_key=idempotency_key,
            client_request_id=client_request_id,
            wait=wait,
            timeout=timeout,
        )
        return await self._client.run(op)

    async def edit(
        self,
        prompt: str,
        *,
        images: Iterable[ImageInput] | ImageInput,
        mask: ImageInput | None = None,
        model: str | None = None,
        aspect_ratio: str = OMIT,
        quality: str = OMIT,
        output_resolution: str = OMIT,
        callback_url: str = OMIT,
        extra: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        client_request_id: str | None = None,
        wait: bool = True,
        timeout: float = DEFAULT_WAIT_S,  # noqa: ASYNC109 - how long the task may take, the twin of the sync API
    ) -> AsyncTask:
        """See :meth:`Images.edit`."""
        urls, mask_url = await self._client.run(_ops.image_urls(_as_list(images), mask))
        params = given(aspect_ratio=aspect_ratio, quality=quality, output_resolution=output_resolution)
        params.update(given(callback_url=callback_url), **(extra or {}))
        op = _ops.create_task(
            self._client,
            "edit_image",
            _ops.edit_body(prompt, urls, mask_url, model, params),
            self._client.task,
            idempotency_key=idempotency_key,
            client_request_id=client_request_id,
            wait=wait,
            timeout=timeout,
        )
        return await self._client.run(op)


def _as_list(images: Iterable[ImageInput] | ImageInput) -> list[ImageInput]:
    if isinstance(images, str | bytes | bytearray) or not isinstance(images, Iterable):
        return [images]
    return list(images)


class Tasks:
    def __init__(self, client: Client) -> None:
        self._client = client

    def get(self, task_id: str) -> Task:
        return self._client.run(_ops.get_task(task_id, self._client.task))

    def cancel(self, task_id: str) -> Task:
        return self._client.run(_ops.cancel_task(task_id, self._client.task))

    def wait(self, task_id: str, *, timeout: float = DEFAULT_WAIT_S) -> Task:
        """The task once completed, failed or canceled (check with ``raise_for_status``)."""
        return self._client.run(_ops.wait_task(self._client, task_id, self._client.task, timeout=timeout))

    def stream(self, task_id: str, *, timeout: float = DEFAULT_WAIT_S) -> Iterator[TaskEvent]:
        """The task's events as they happen (status, progress, partial images), ending with a
        :class:`TaskEndEvent` that carries the whole task; TaskTimeoutError after ``timeout``.
        Server-Sent Events when the gateway has them, long polls otherwise."""
        op = _ops.stream_task(self._client, task_id, self._client.task, timeout=timeout)
        yield from self._client.iterate(op)

    def list(self, *, status: str | None = None, page_size: int = 20) -> Iterator[Task]:
        """Every task of the account, newest first, fetching pages as iteration needs them."""
        after: str | None = None
        while True:
            page = self._client.run(_ops.task_page(status, page_size, after))
            yield from (_ops.to_task(self._client.task, view) for view in page.data)
            if not page.has_more or page.next_cursor is None:
                return
            after = page.next_cursor


class AsyncTasks:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def get(self, task_id: str) -> AsyncTask:
        return await self._client.run(_ops.get_task(task_id, self._client.task))

    async def cancel(self, task_id: str) -> AsyncTask:
        return await self._client.run(_ops.cancel_task(task_id, self._client.task))

    async def wait(
        self,
        task_id: str,
        *,
        timeout: float = DEFAULT_WAIT_S,  # noqa: ASYNC109 - the task's deadline
    ) -> AsyncTask:
        return await self._client.run(
            _ops.wait_task(self._client, task_id, self._client.task, timeout=timeout)
        )

    async def stream(
        self,
        task_id: str,
        *,
        timeout: float = DEFAULT_WAIT_S,  # noqa: ASYNC109 - the task's deadline
    ) -> AsyncGenerator[TaskEvent, None]:
        """See :meth:`Tasks.stream`."""
        op = _ops.stream_task(self._client, task_id, self._client.task, timeout=timeout)
        async with aclosing(self._client.iterate(op)) as events:  # closed, stream and all, on break
            async for event in events:
                yield event

    async def list(self, *, status: str | None = None, page_size: int = 20) -> AsyncIterator[AsyncTask]:
        after: str | None = None
        while True:
            page = await self._client.run(_ops.task_page(status, page_size, after))
            for view in page.data:
                yield _ops.to_task(self._client.task, view)
            if not page.has_more or page.next_cursor is None:
                return
            after = page.next_cursor


class Files:
    def __init__(self, client: Client) -> None:
        self._client = client

    def upload(self, file: ImageInput, *, file_name: str | None = None) -> FileObject:
        """Upload an image (path, bytes or PIL image) for later edits; its signed URL."""
        return self._client.run(_ops.upload(file, file_name))


class AsyncFiles:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def upload(self, file: ImageInput, *, file_name: str | None = None) -> FileObject:
        return await self._client.run(_ops.upload(file, file_name))


class Account:
    def __init__(self, client: Client) -> None:
        self._client = client

    def me(self) -> Me:
        return self._client.run(_ops.me())

    def balance(self) -> Balance:
        return self._client.run(_ops.balance())

    def usage(self, *, start: date | str | None = None, end: date | str | None = None) -> UsageReport:
        """Calls and spend per day and variant (the last 30 days by default)."""
        return self._client.run(_ops.usage(start, end))


class AsyncAccount:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def me(self) -> Me:
        return await self._client.run(_ops.me())

    async def balance(self) -> Balance:
        return await self._client.run(_ops.balance())

    async def usage(self, *, start: date | str | None = None, end: date | str | None = None) -> UsageReport:
        return await self._client.run(_ops.usage(start, end))


class Models:
    def __init__(self, client: Client) -> None:
        self._client = client

    def list(self) -> builtins.list[Model]:
        return self._client.run(_ops.list_models(self._client))

    def retrieve(self, name: str) -> Model:
        """A model by id or alias; NotFoundError if the catalog has none by that name."""
        return self._client.run(_ops.retrieve_model(self._client, name))


class AsyncModels:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def list(self) -> builtins.list[Model]:
        return await self._client.run(_ops.list_models(self._client))

    async def retrieve(self, name: str) -> Model:
        return await self._client.run(_ops.retrieve_model(self._client, name))
