"""The public API is deliberate: the names ``imagegate`` and ``imagegate.sdk`` export."""

from __future__ import annotations

import imagegate
import imagegate.sdk


def test_top_level_exports_are_the_client_its_errors_and_results() -> None:
    assert sorted(imagegate.__all__) == [
        "APIConnectionError",
        "APIStatusError",
        "APITimeoutError",
        "AsyncClient",
        "AsyncTask",
        "AuthenticationError",
        "Client",
        "ConflictError",
        "ExpiredError",
        "GoneError",
        "ImagegateError",
        "InsufficientCreditsError",
        "Model",
        "NotFoundError",
        "RateLimitError",
        "Task",
        "TaskFailedError",
        "TaskTimeoutError",
        "ValidationError",
        "__version__",
    ]
    for name in imagegate.__all__:
        assert getattr(imagegate, name) is not None


def test_sdk_exports_the_clients_every_error_class_results_and_events() -> None:
    assert sorted(imagegate.sdk.__all__) == [
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


def test_every_sdk_export_exists_and_the_top_level_is_a_subset() -> None:
    public = {name for name in dir(imagegate.sdk) if not name.startswith("_")}
    assert set(imagegate.sdk.__all__) <= public
    assert set(imagegate.__all__) - {"__version__"} <= set(imagegate.sdk.__all__)


def test_every_server_error_code_has_an_sdk_class() -> None:
    from imagegate.errors import ErrorCode
    from imagegate.sdk.errors import BY_CODE

    assert set(BY_CODE) == set(ErrorCode)
