"""The ``runapi`` kind: another gateway upstream that speaks RunAPI's task API.

Create with ``POST /api/v1/{service}/{action}`` (the task's contract parameters as JSON, edits'
sources as ``data:`` URLs), poll ``GET /api/v1/tasks/{id}`` with growing waits (``Retry-After``
wins), then download each output as it is. Statuses and errors are read the lenient way
RunAPI's own clients read them (see docs/providers.md).
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx

from imagegate.providers.base import (
    CONTENT_TYPES,
    Action,
    FinalImage,
    GeneratedImage,
    ImageRequest,
    Progress,
    ProviderError,
    ProviderEvent,
)
from imagegate.providers.config import ProviderConfig
from imagegate.providers.registry import register_kind
from imagegate.retry import is_retryable_status, parse_retry_after

log = logging.getLogger("imagegate.providers")

DEFAULT_BASE_URL = "https://runapi.ai"
_COMPLETED = frozenset({"completed", "complete", "succeeded", "success", "finished"})
_FAILED = frozenset(
    {"failed", "error", "canceled", "cancelled", "timeout", "generate_failed", "create_task_failed"}
)
# Upstream task error codes that mean the request itself was refused: passed on, not retried.
_FINAL_CODES = frozenset({"content_policy", "validation", "moderation_blocked"})
_POLL_GROWTH = 1.5


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            error = error.get("message")
        for value in (error, body.get("message"), body.get("detail")):
            if isinstance(value, str) and value:
                return value
    return f"HTTP {response.status_code}"


class RunApiProvider:
    placeholder = False

    def __init__(self, config: ProviderConfig) -> None:
        key = config.required_api_key()
        self.name = config.name
        self._key_env = config.api_key_env
        self._policy = config.retry_policy()
        self._poll_s = config.poll_interval_s
        base_url = (config.base_url or DEFAULT_BASE_URL).rstrip("/")
        self.label = f"RunAPI task API at {base_url}"
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {key}", "Accept": "application/json"},
            timeout=config.timeout_s,
        )

    def _check(self, response: httpx.Response) -> None:
        """The one place this kind's HTTP errors become ProviderErrors."""
        status = response.status_code
        if status < 400:
            return
        if status in (401, 403):
            log.error(
                "provider %s: upstream refused the key in $%s (HTTP %d)", self.name, self._key_env, status
            )
            raise ProviderError(
                f"the upstream refused this gateway's credentials (HTTP {status})", code="upstream_auth"
            )
        if status == 429:
            raise _Retry(ProviderError(_message(response), code="rate_limit", retryable=True), response)
        if is_retryable_status(status) or status == 402:  # 402: the upstream account ran dry
            raise _Retry(ProviderError(_message(response), code="upstream_error", retryable=True), response)
        raise ProviderError(_message(response), code="validation")

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request, retried by the policy on 429, 5xx, timeouts and connection errors."""
        retries = 0
        while True:
            retry_after: float | None = None
            try:
                response = await self._client.request(method, url, **kwargs)
                self._check(response)
                return response
            except _Retry as exc:
                error, retry_after = exc.error, parse_retry_after(exc.response.headers)
            except httpx.TimeoutException:
                error = ProviderError("the upstream did not answer in time", code="timeout", retryable=True)
            except httpx.TransportError:
                error = ProviderError("could not reach the upstream", code="upstream_error", retryable=True)
            if not self._policy.should_retry(retries):
                raise error
            await asyncio.sleep(self._policy.delay(retries, retry_after))
            retries += 1

    def _body(self, request: ImageRequest) -> dict[str, Any]:
        body = {k: v for k, v in request.extra.items() if v is not None and v != ""}
        body.update(model=request.model, prompt=request.prompt)
        if request.action is Action.EDIT:
            body["source_image_urls"] = [
                f"data:{s.content_type};base64,{base64.b64encode(s.data).decode()}" for s in request.sources
            ]
        return body

    async def run(self, request: ImageRequest) -> AsyncIterator[ProviderEvent]:
        action = "edit_image" if request.action is Action.EDIT else "text_to_image"
        created = await self._send("POST", f"/api/v1/{request.service}/{action}", json=self._body(request))
        task_id = self._json(created).get("id")
        if not isinstance(task_id, str):
            raise ProviderError("the upstream created no task id", retryable=True)
        yield Progress(0.05, f"{self.name} task {task_id}")
        task = await self._wait(task_id)
        urls = [image.get("url") for image in task.get("images") or [] if isinstance(image, dict)]
        if len(urls) != request.n or not all(isinstance(url, str) for url in urls):
            raise ProviderError(f"the upstream task gave {len(urls)} of {request.n} images", retryable=True)
        for index, url in enumerate(urls):
            # An output on S3 storage answers 307 to a presigned link on the bucket's host; httpx
            # drops this gateway's Authorization header when a redirect leaves the upstream's origin.
            response = await self._send("GET", str(url), follow_redirects=True)
            if response.status_code != 200:
                raise ProviderError(
                    f"the upstream's image link answered HTTP {response.status_code}", retryable=True
                )
            content_type = response.headers.get("content-type", CONTENT_TYPES[request.output_format])
            yield FinalImage(
                index,
                GeneratedImage(response.content, content_type.split(";")[0], request.width, request.height),
            )

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            raise ProviderError("the upstream answered something unreadable", retryable=True) from None
        if not isinstance(body, dict):
            raise ProviderError("the upstream answered something unreadable", retryable=True)
        return body

    async def _wait(self, task_id: str) -> dict[str, Any]:
        wait = self._poll_s
        while True:
            response = await self._send("GET", f"/api/v1/tasks/{task_id}")
            task = self._json(response)
            status = str(task.get("status") or task.get("state") or "").lower()
            if status in _COMPLETED:
                return task
            if status in _FAILED:
                code = str(task.get("error_code") or "upstream_error")
                message = str(task.get("error") or "the upstream task failed")
                if code in _FINAL_CODES:
                    raise ProviderError(
                        message, code="content_policy" if code == "moderation_blocked" else code
                    )
                raise ProviderError(message, code="upstream_error", retryable=True)
            retry_after = parse_retry_after(response.headers)
            await asyncio.sleep(min(retry_after, self._policy.cap_s) if retry_after is not None else wait)
            wait = min(wait * _POLL_GROWTH, max(self._poll_s, self._policy.cap_s))

    async def aclose(self) -> None:
        await self._client.aclose()


class _Retry(Exception):
    def __init__(self, error: ProviderError, response: httpx.Response) -> None:
        super().__init__(error.message)
        self.error = error
        self.response = response


@register_kind("runapi")
def _from_config(config: ProviderConfig) -> RunApiProvider:
    return RunApiProvider(config)


__all__ = ["RunApiProvider"]
