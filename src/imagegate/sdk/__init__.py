"""The Python SDK: ``Client`` and ``AsyncClient`` over the gateway's HTTP API.

Needs only httpx, httpx-sse and pydantic (Pillow only to convert formats when saving); it imports none
of the server's modules beyond the shared models (``imagegate.schemas``), the error codes
and the retry policy.
"""

from imagegate.sdk.client import AsyncClient, Client
from imagegate.sdk.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    ConflictError,
    ExpiredError,
    GatewayTimeoutError,
    GoneError,
    ImagegateError,
    InsufficientCreditsError,
    InternalServerError,
    ModelRetiredError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
    TaskFailedError,
    TaskTimeoutError,
    UnsupportedMediaTypeError,
    UpstreamError,
    ValidationError,
)
from imagegate.sdk.events import PartialImageEvent, ProgressEvent, StatusEvent, TaskEndEvent, TaskEvent
from imagegate.sdk.tasks import AsyncTask, Model, Task

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncClient",
    "AsyncTask",
    "AuthenticationError",
    "Client",
    "ConflictError",
    "ExpiredError",
    "GatewayTimeoutError",
    "GoneError",
    "ImagegateError",
    "InsufficientCreditsError",
    "InternalServerError",
    "Model",
    "ModelRetiredError",
    "NotFoundError",
    "PartialImageEvent",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "ProgressEvent",
    "RateLimitError",
    "ServiceUnavailableError",
    "StatusEvent",
    "Task",
    "TaskEndEvent",
    "TaskEvent",
    "TaskFailedError",
    "TaskTimeoutError",
    "UnsupportedMediaTypeError",
    "UpstreamError",
    "ValidationError",
]
