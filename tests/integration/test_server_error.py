"""A 500, if one still happens: the envelope, Connection: close, and one traceback in the logs."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from imagegate.clock import ManualClock
from tests.conftest import TEST_EPOCH, ServerThread, make_settings


class _Tracebacks(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.records.append(record)


@pytest.fixture
def broken(tmp_path: Path) -> Iterator[tuple[str, _Tracebacks]]:
    """A gateway whose app has one extra, test-only route that always raises."""
    thread = ServerThread(make_settings(tmp_path), ManualClock(TEST_EPOCH))

    async def boom() -> None:
        raise RuntimeError("a bug on purpose")

    thread.app.add_api_route("/_test/boom", boom, methods=["GET"])
    seen = _Tracebacks()
    # uvicorn's loggers do not propagate to the root, so listen on each that could log it.
    loggers = [logging.getLogger(name) for name in ("imagegate", "uvicorn", "uvicorn.error")]
    for logger in loggers:
        logger.addHandler(seen)
    base = thread.start()
    try:
        yield base, seen
    finally:
        thread.stop()
        for logger in loggers:
            logger.removeHandler(seen)


def test_unexpected_exception_answers_the_envelope_and_closes(broken: tuple[str, _Tracebacks]) -> None:
    base, seen = broken
    with httpx.Client(base_url=base) as client:
        response = client.get("/_test/boom")
        assert response.status_code == 500
        assert response.headers["connection"] == "close"
        error = response.json()["error"]
        assert error["code"] == "server" and error["type"] == "server_error"
        request_id = response.headers["x-request-id"]
        assert request_id in error["message"]
        # The same client goes on working: it was told to open a new connection.
        assert client.get("/healthz").status_code == 200
    assert len(seen.records) == 1, [r.getMessage() for r in seen.records]
    assert request_id in seen.records[0].getMessage()
    assert "a bug on purpose" in str(seen.records[0].exc_info[1] if seen.records[0].exc_info else "")
