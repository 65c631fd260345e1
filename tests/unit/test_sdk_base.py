"""The SDK's non-I/O half: every server error becomes its SDK class, retry waits follow
Retry-After, and event frames parse into typed events."""

from __future__ import annotations

import json

import httpx
import pytest

from imagegate import errors as server
from imagegate.sdk import errors as sdk
from imagegate.sdk._base import BaseClient, Call
from imagegate.sdk.events import PartialImageEvent, ProgressEvent, StatusEvent, parse

SERVER_ERRORS = [cls for cls in vars(server).values()
                 if isinstance(cls, type) and issubclass(cls, server.GatewayError) and cls is not server.GatewayError]  # fmt: skip
SDK_NAMES = {"ServerError": "InternalServerError"}  # the one class named apart


@pytest.mark.parametrize("error", SERVER_ERRORS, ids=lambda cls: cls.__name__)
def test_each_server_error_arrives_as_its_sdk_class(error: type[server.GatewayError]) -> None:
    raised = error("it went wrong", param="prompt", headers={"Retry-After": "3"})
    got = sdk.from_response(raised.status_code, raised.headers, raised.body(), json.dumps(raised.body()))
    assert type(got).__name__ == SDK_NAMES.get(error.__name__, error.__name__)
    assert (got.status_code, got.code, got.param) == (raised.status_code, raised.code, "prompt")
    assert got.message == "it went wrong"
    if isinstance(got, sdk.RateLimitError):
        assert got.retry_after == 3


def test_an_answer_without_the_envelope_is_classed_by_status() -> None:
    got = sdk.from_response(503, {}, None, "<html>busy</html>")
    assert isinstance(got, sdk.ServiceUnavailableError) and got.code == "http_503"


def test_retry_wait_honours_retry_after_and_only_for_safe_requests() -> None:
    client = BaseClient(api_key="k", base_url="http://127.0.0.1:9", max_retries=2)
    read, create = Call("GET", "/api/v1/me"), Call("POST", "/x", idempotency_key="abc")
    upload = Call("POST", "/api/v1/files")
    limited = httpx.Response(429, headers={"Retry-After": "7"})
    assert client.retry_wait(read, 0, limited) == 7
    assert client.retry_wait(create, 1, limited) == 7
    assert client.retry_wait(read, 0, httpx.Response(503, headers={"retry-after-ms": "250"})) == 0.25
    backoff = client.retry_wait(read, 0, httpx.Response(502))
    assert backoff is not None and 0.375 <= backoff <= 0.5  # no Retry-After: jittered back-off
    assert client.retry_wait(read, 0, None) is not None  # no answer at all: retried too
    assert client.retry_wait(upload, 0, limited) is None  # a POST without a key: never
    assert client.retry_wait(read, 2, limited) is None  # out of retries
    assert client.retry_wait(read, 0, httpx.Response(400)) is None


def test_event_frames_parse_into_typed_events_and_junk_is_skipped() -> None:
    def wrap(body: dict[str, object]) -> object:
        raise AssertionError("not an end event")

    assert parse("status", '{"task_id": "t", "status": "processing"}', "3", wrap) == StatusEvent(
        task_id="t", event_id=3, status="processing"
    )
    assert parse("progress", '{"task_id": "t", "progress": 0.25}', "4", wrap) == ProgressEvent(
        task_id="t", event_id=4, progress=0.25
    )
    assert parse("partial_image", '{"task_id": "t", "index": 1, "url": "u"}', "", wrap) == PartialImageEvent(
        task_id="t", event_id=None, index=1, url="u"
    )
    for name, data in [("message", ""), ("status", "not json"), ("status", "[]"), ("progress", '{"task_id": "t"}'),
                       ("newer_kind", '{"task_id": "t"}')]:  # fmt: skip
        assert parse(name, data, "5", wrap) is None
