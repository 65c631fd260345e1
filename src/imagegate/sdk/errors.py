"""Errors the SDK raises: one class per gateway error code, plus the client's own.

ImagegateError                     anything this SDK raises
├── APIConnectionError            no answer: refused, reset, DNS, timed out
│   └── APITimeoutError           the HTTP timeout passed
├── APIStatusError                the gateway answered an error envelope (status, code, param)
│   ├── ValidationError           400 validation
│   ├── AuthenticationError       401 authentication
│   ├── InsufficientCreditsError  402 insufficient_credits
│   ├── PermissionDeniedError     403 permission
│   ├── NotFoundError             404 not_found
│   ├── ConflictError             409 conflict
│   ├── GoneError                 410 gone
│   │   └── ExpiredError          410 expired (a link or output past its retention)
│   │   └── ModelRetiredError     410 model_retired
│   ├── PayloadTooLargeError      413 payload_too_large
│   ├── UnsupportedMediaTypeError 415 unsupported_media_type
│   ├── RateLimitError            429 rate_limit (retry_after)
│   ├── InternalServerError       500 server
│   ├── UpstreamError             502 upstream_error
│   ├── ServiceUnavailableError   503 unavailable
│   └── GatewayTimeoutError       504 timeout
├── TaskFailedError               a task ended failed or canceled (task)
└── TaskTimeoutError              a task was still running when the wait ended (task)

The codes are the server's own (:class:`imagegate.errors.ErrorCode`), so a client can switch
on ``exc.code`` or on the class, whichever reads better.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from imagegate.errors import ErrorCode
from imagegate.retry import parse_retry_after

if TYPE_CHECKING:
    from imagegate.sdk.tasks import TaskBase


class ImagegateError(Exception):
    """Base of every error the SDK raises."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class APIConnectionError(ImagegateError):
    """The gateway could not be reached, or the connection broke before an answer."""


class APITimeoutError(APIConnectionError):
    """No answer within the client's HTTP timeout."""


class APIStatusError(ImagegateError):
    """The gateway answered with an error envelope."""

    status_code: int = 0

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        code: str,
        param: str | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.param = param
        self.body = body
        self.headers: dict[str, str] = dict(headers or {})
        self.request_id = self.headers.get("x-request-id")

    def __str__(self) -> str:
        where = f" (param {self.param})" if self.param else ""
        return f"{self.status_code} {self.code}: {self.message}{where}"


class ValidationError(APIStatusError):
    pass


class AuthenticationError(APIStatusError):
    pass


class InsufficientCreditsError(APIStatusError):
    pass


class PermissionDeniedError(APIStatusError):
    pass


class NotFoundError(APIStatusError):
    pass


class ConflictError(APIStatusError):
    pass


class GoneError(APIStatusError):
    pass


class ExpiredError(GoneError):
    pass


class ModelRetiredError(GoneError):
    pass


class PayloadTooLargeError(APIStatusError):
    pass


class UnsupportedMediaTypeError(APIStatusError):
    pass


class RateLimitError(APIStatusError):
    """Over the key's rate limit; ``retry_after`` is the server's hint in seconds, if any."""

    @property
    def retry_after(self) -> float | None:
        return parse_retry_after(self.headers)


class InternalServerError(APIStatusError):
    pass


class UpstreamError(APIStatusError):
    pass


class ServiceUnavailableError(APIStatusError):
    pass


class GatewayTimeoutError(APIStatusError):
    pass


class TaskFailedError(ImagegateError):
    """A task ended without images: ``task.status`` is failed or canceled."""

    def __init__(self, task: TaskBase) -> None:
        detail = f": {task.error}" if task.error else ""
        code = f" ({task.error_code})" if task.error_code else ""
        super().__init__(f"task {task.id} {task.status}{code}{detail}")
        self.task = task
        self.code = task.error_code


class TaskTimeoutError(ImagegateError):
    """The wait ended while the task was still pending or processing; it goes on."""

    def __init__(self, task: TaskBase, timeout: float) -> None:
        super().__init__(f"task {task.id} still {task.status} after {timeout:g} s")
        self.task = task
        self.timeout = timeout


BY_CODE: dict[str, type[APIStatusError]] = {
    ErrorCode.VALIDATION: ValidationError,
    ErrorCode.AUTHENTICATION: AuthenticationError,
    ErrorCode.INSUFFICIENT_CREDITS: InsufficientCreditsError,
    ErrorCode.PERMISSION: PermissionDeniedError,
    ErrorCode.NOT_FOUND: NotFoundError,
    ErrorCode.CONFLICT: ConflictError,
    ErrorCode.GONE: GoneError,
    ErrorCode.EXPIRED: ExpiredError,
    ErrorCode.MODEL_RETIRED: ModelRetiredError,
    ErrorCode.PAYLOAD_TOO_LARGE: PayloadTooLargeError,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: UnsupportedMediaTypeError,
    ErrorCode.RATE_LIMIT: RateLimitError,
    ErrorCode.SERVER: InternalServerError,
    ErrorCode.UPSTREAM_ERROR: UpstreamError,
    ErrorCode.UNAVAILABLE: ServiceUnavailableError,
    ErrorCode.TIMEOUT: GatewayTimeoutError,
}

# For answers without our envelope (a proxy in front of the gateway, say).
BY_STATUS: dict[int, type[APIStatusError]] = {
    400: ValidationError,
    401: AuthenticationError,
    402: InsufficientCreditsError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    410: GoneError,
    413: PayloadTooLargeError,
    415: UnsupportedMediaTypeError,
    422: ValidationError,
    429: RateLimitError,
    500: InternalServerError,
    502: UpstreamError,
    503: ServiceUnavailableError,
    504: GatewayTimeoutError,
}


def from_response(status_code: int, headers: Mapping[str, str], body: Any, text: str) -> APIStatusError:
    """The error for a non-2xx answer: by the envelope's code, else by status."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        code: str = error["code"]
        message = str(error.get("message") or code)
        param = error.get("param") if isinstance(error.get("param"), str) else None
    else:
        code, message, param = f"http_{status_code}", (text.strip()[:500] or f"HTTP {status_code}"), None
    cls = BY_CODE.get(code) or BY_STATUS.get(status_code) or APIStatusError
    return cls(message, status_code=status_code, code=code, param=param, body=body, headers=headers)
