"""What the sync and async clients share: configuration, request building, answers, retries.

Every operation is written once, in :mod:`imagegate.sdk._ops`, as a generator that yields
steps and returns its result: :class:`Call` (an HTTP request to make), :class:`Sleep`,
:class:`Connect` / :class:`Receive` (open an event stream, read its next event) and
:class:`Emit` (hand an event to the caller). The two clients only differ in how they carry a
step out (``httpx.Client`` and ``time.sleep``, or ``httpx.AsyncClient`` and ``asyncio.sleep``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from imagegate import __version__
from imagegate.retry import MAX_RETRIES, RETRY_STATUSES, retry_delay, should_retry
from imagegate.sdk.errors import APIConnectionError, APITimeoutError, ImagegateError, from_response
from imagegate.sdk.tasks import Model

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT_S = 60.0
T = TypeVar("T")


@dataclass(frozen=True)
class Call:
    """One HTTP request. ``path`` is relative to the base URL unless it is absolute."""

    method: str
    path: str
    json: Any = None
    params: dict[str, Any] | None = None
    files: dict[str, tuple[str, bytes, str]] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    idempotency_key: str | None = None
    raw: bool = False  # the answer's bytes, not JSON
    auth: bool = True  # False for signed download links: the key stays on the gateway
    timeout: float | None = None  # the read timeout, when longer than the client's (long polls)


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Connect:
    """Open a Server-Sent Events stream (closing any the operation had open). The answer:
    ``"open"``, ``"missing"`` when the route answers 404, or a :class:`Transient` failure;
    any other error is raised."""

    call: Call
    read_timeout: float  # a silent stream is given up after this long (heartbeats keep it alive)


@dataclass(frozen=True)
class Transient:
    """Opening a stream failed in a way worth trying again (no connection, 429, 5xx)."""

    error: ImagegateError
    status: int | None = None
    headers: Mapping[str, str] | None = None


class Receive:
    """Read the open stream's next event: an ``httpx_sse.ServerSentEvent``, or :data:`ENDED`
    (the server closed it) or :data:`DROPPED` (the connection broke or fell silent)."""


ENDED = "ended"
DROPPED = "dropped"


@dataclass(frozen=True)
class Emit:
    """Hand ``event`` to whoever iterates the operation (ignored when it is simply run)."""

    event: Any


Step = Call | Sleep | Connect | Receive | Emit
Op = Generator[Step, Any, T]


def new_idempotency_key() -> str:
    return f"sdk-{uuid.uuid4()}"


class BaseClient:
    """Configuration and the non-I/O half of sending a :class:`Call`."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        max_retries: int = MAX_RETRIES,
    ) -> None:
        self.api_key = api_key if api_key is not None else os.environ.get("IMAGEGATE_API_KEY")
        self.base_url = (base_url or os.environ.get("IMAGEGATE_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.models_cache: list[Model] | None = None
        self.has_events: bool | None = None  # whether the gateway serves task event streams

    def request_args(self, call: Call) -> dict[str, Any]:
        """Keyword arguments for ``httpx.Client.build_request``."""
        headers = {"User-Agent": f"imagegate-python/{__version__}", **call.headers}
        if call.auth and self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        if call.idempotency_key is not None:
            headers["Idempotency-Key"] = call.idempotency_key
        url = call.path if "://" in call.path else self.base_url + call.path
        params = {k: v for k, v in (call.params or {}).items() if v is not None}
        args: dict[str, Any] = {
            "method": call.method,
            "url": url,
            "json": call.json,
            "params": params or None,  # an empty mapping would drop a signed URL's own query
            "files": call.files,
            "headers": headers,
        }
        if call.timeout is not None:
            args["timeout"] = httpx.Timeout(self.timeout, read=max(self.timeout, call.timeout))
        return args

    def stream_args(self, connect: Connect) -> dict[str, Any]:
        args = self.request_args(connect.call)
        args["headers"] = {**args["headers"], "Accept": "text/event-stream", "Cache-Control": "no-store"}
        args["timeout"] = httpx.Timeout(self.timeout, read=connect.read_timeout)
        return args

    def stream_answer(self, response: httpx.Response) -> str | Transient:
        """How a stream's first answer reads (an error's body already read): ``"open"``,
        ``"missing"`` (404, or not an event stream: poll instead), or a :class:`Transient`
        failure; any other error is raised as the mirrored class."""
        if response.is_success:
            kind = response.headers.get("content-type", "").partition(";")[0].strip()
            return "open" if kind == "text/event-stream" else "missing"
        if response.status_code == 404:
            return "missing"
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        error = from_response(response.status_code, response.headers, body, response.text)
        if response.status_code in RETRY_STATUSES:
            return Transient(error, response.status_code, response.headers)
        raise error

    def retry_wait(self, call: Call, attempt: int, response: httpx.Response | None) -> float | None:
        """Seconds to wait before trying ``call`` again, or None to give up now.

        Only reads and creations carrying an Idempotency-Key are repeated: the gateway
        answers a repeated key with the first task, never a second one. A POST without a key
        is never retried, since the first may have been created before the connection broke.
        """
        if call.method != "GET" and call.idempotency_key is None:
            return None
        status = response.status_code if response is not None else None
        if not should_retry(status, attempt=attempt, max_retries=self.max_retries):
            return None
        return retry_delay(attempt, response.headers if response is not None else None)

    def answer(self, call: Call, response: httpx.Response) -> Any:
        """The result of a finished call: JSON (or bytes), or the mirrored error raised."""
        if response.is_success:
            if call.raw:
                return response.content
            return response.json() if response.content else None
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        raise from_response(response.status_code, response.headers, body, response.text)

    def connection_error(self, exc: httpx.TransportError) -> ImagegateError:
        if isinstance(exc, httpx.TimeoutException):
            return APITimeoutError(f"no answer from {self.base_url} within {self.timeout:g} s")
        return APIConnectionError(f"cannot reach the gateway at {self.base_url}: {exc}")
