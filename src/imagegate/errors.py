"""Errors the gateway answers with, one envelope on every face.

GatewayError                      any error a client sees: status, stable code, message, param
├── AuthenticationError          401 authentication
├── PermissionDeniedError        403 permission
├── ValidationError              400 validation
├── NotFoundError                404 not_found
├── ConflictError                409 conflict
├── GoneError                    410 gone
├── ModelRetiredError            410 model_retired
├── PayloadTooLargeError         413 payload_too_large
├── UnsupportedMediaTypeError    415 unsupported_media_type
├── InsufficientCreditsError     402 insufficient_credits
├── RateLimitError               429 rate_limit
├── UpstreamError                502 upstream_error
├── ServiceUnavailableError      503 unavailable
├── GatewayTimeoutError          504 timeout
└── ServerError                  500 server
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    AUTHENTICATION = "authentication"  # missing, unknown or revoked key
    PERMISSION = "permission"  # a valid credential that may not do this
    VALIDATION = "validation"  # the request breaks the input contract
    NOT_FOUND = "not_found"  # no such route, model or task (or not the caller's)
    INSUFFICIENT_CREDITS = "insufficient_credits"  # balance below the price
    RATE_LIMIT = "rate_limit"  # over the key's or account's limit
    CONFLICT = "conflict"  # idempotency key reused with another body, or a state clash
    GONE = "gone"  # bytes no longer stored behind a link that has not expired
    EXPIRED = "expired"  # a link past its time: an output past retention, a partial image, an upload
    MODEL_RETIRED = "model_retired"  # model past its shutdown date, operator refuses successors
    PAYLOAD_TOO_LARGE = "payload_too_large"  # body or image over the configured limit
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"  # not an image we can read
    UPSTREAM_ERROR = "upstream_error"  # the provider failed
    TIMEOUT = "timeout"  # a synchronous call outlived its wait; the task goes on
    UNAVAILABLE = "unavailable"  # the server is stopping; the task goes on after its restart
    SERVER = "server"  # a bug on our side


_TYPES: dict[ErrorCode, str] = {
    ErrorCode.AUTHENTICATION: "authentication_error",
    ErrorCode.PERMISSION: "permission_error",
    ErrorCode.INSUFFICIENT_CREDITS: "billing_error",
    ErrorCode.RATE_LIMIT: "rate_limit_error",
    ErrorCode.UPSTREAM_ERROR: "upstream_error",
    ErrorCode.SERVER: "server_error",
}


class GatewayError(Exception):
    status_code: int = 500
    code: ErrorCode = ErrorCode.SERVER

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.headers = headers or {}
        self.extra = extra or {}

    @property
    def type(self) -> str:
        return _TYPES.get(self.code, "invalid_request_error")

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "message": self.message,
            "code": str(self.code),
            "type": self.type,
            "param": self.param,
        }
        error.update(self.extra)
        return {"error": error}


class AuthenticationError(GatewayError):
    status_code, code = 401, ErrorCode.AUTHENTICATION


class PermissionDeniedError(GatewayError):
    status_code, code = 403, ErrorCode.PERMISSION


class ValidationError(GatewayError):
    status_code, code = 400, ErrorCode.VALIDATION


class NotFoundError(GatewayError):
    status_code, code = 404, ErrorCode.NOT_FOUND


class ConflictError(GatewayError):
    status_code, code = 409, ErrorCode.CONFLICT


class GoneError(GatewayError):
    status_code, code = 410, ErrorCode.GONE


class ExpiredError(GoneError):
    code = ErrorCode.EXPIRED


class ModelRetiredError(GatewayError):
    status_code, code = 410, ErrorCode.MODEL_RETIRED


class PayloadTooLargeError(GatewayError):
    status_code, code = 413, ErrorCode.PAYLOAD_TOO_LARGE


class UnsupportedMediaTypeError(GatewayError):
    status_code, code = 415, ErrorCode.UNSUPPORTED_MEDIA_TYPE


class InsufficientCreditsError(GatewayError):
    status_code, code = 402, ErrorCode.INSUFFICIENT_CREDITS


class RateLimitError(GatewayError):
    status_code, code = 429, ErrorCode.RATE_LIMIT


class UpstreamError(GatewayError):
    status_code, code = 502, ErrorCode.UPSTREAM_ERROR


class ServiceUnavailableError(GatewayError):
    status_code, code = 503, ErrorCode.UNAVAILABLE


class GatewayTimeoutError(GatewayError):
    status_code, code = 504, ErrorCode.TIMEOUT


class ServerError(GatewayError):
    status_code, code = 500, ErrorCode.SERVER
