"""The Python SDK against a real gateway on 127.0.0.1: both twins, errors, retries."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from imagegate import (
    APIConnectionError,
    AsyncClient,
    AuthenticationError,
    Client,
    ConflictError,
    InsufficientCreditsError,
    NotFoundError,
    RateLimitError,
    TaskFailedError,
    TaskTimeoutError,
    ValidationError,
)
from imagegate.sdk.errors import PayloadTooLargeError, ServiceUnavailableError, UnsupportedMediaTypeError
from tests.conftest import Gateway, png_bytes


@pytest.fixture
def client(gateway: Gateway) -> Iterator[Client]:
    with Client(api_key=gateway.new_account()[1], base_url=gateway.base_url) as sdk:
        yield sdk


def test_generate_waits_and_saves_the_image(client: Client, tmp_path: Path) -> None:
    task = client.images.generate(
        "a red fox in snow", model="gpt-image-1.5", aspect_ratio="3:2", quality="high"
    )
    assert task.status == "completed" and task.model == "gpt-image-1.5"
    (path,) = task.save(tmp_path / "fox.png")
    with Image.open(path) as image:
        assert (image.format, image.size) == ("PNG", (1536, 1024))
    (converted,) = task.save(tmp_path, format="webp")
    assert converted.parent == tmp_path and converted.suffix == ".webp"
    with Image.open(converted) as image:
        assert image.format == "WEBP"


def test_defaults_configuration_from_the_environment(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMAGEGATE_API_KEY", gateway.new_account()[1])
    monkeypatch.setenv("IMAGEGATE_BASE_URL", gateway.base_url + "/")
    with Client() as sdk:
        task = sdk.images.generate("a lighthouse")  # the default model and its own defaults
        assert task.model == "gpt-image-2" and len(task.images) == 1
        assert sdk.account.me().tier.name == "tier2"


def test_no_wait_returns_the_pending_task_and_tasks_wait_finishes_it(client: Client) -> None:
    task = client.images.generate("a calm sea", model="gpt-image-2", wait=False)
    assert task.status in ("pending", "processing") or task.done
    done = client.tasks.wait(task.id, timeout=30)
    assert done.status == "completed" and done.id == task.id
    assert client.tasks.get(task.id).images == done.images


def test_edit_uploads_local_inputs_of_every_kind(client: Client, tmp_path: Path) -> None:
    source = tmp_path / "photo.png"
    source.write_bytes(png_bytes(80, 60))
    pil_image = Image.new("RGB", (32, 32), (10, 200, 10))
    task = client.images.edit(
        "make it night", images=[source, png_bytes(), pil_image], model="gpt-image-1.5",
        aspect_ratio="1:1", quality="medium",
    )  # fmt: skip
    assert task.status == "completed" and task.action == "edit_image"
    uploaded = client.files.upload(source)
    again = client.images.edit("and snow", images=uploaded.url, aspect_ratio="1:1")  # a URL goes as it is
    assert again.status == "completed"


def test_failed_task_raises_with_the_task(client: Client) -> None:
    with pytest.raises(TaskFailedError) as caught:
        client.images.generate("[fail] a broken fox")
    assert caught.value.task.status == "failed" and caught.value.code == "upstream_error"
    task = client.tasks.get(caught.value.task.id)
    with pytest.raises(TaskFailedError):
        task.raise_for_status()


def test_wait_timeout_leaves_the_task_running_and_cancel_ends_it(client: Client) -> None:
    with pytest.raises(TaskTimeoutError) as caught:
        client.images.generate("[stall:60] a slow fox", timeout=0.3)
    assert caught.value.task.status in ("pending", "processing")
    canceled = client.tasks.cancel(caught.value.task.id)
    assert canceled.status == "canceled"
    with pytest.raises(ConflictError):
        client.tasks.cancel(canceled.id)


def test_list_pages_through_every_task(client: Client) -> None:
    ids = {client.images.generate(f"fox {i}", wait=False).id for i in range(5)}
    listed = [task.id for task in client.tasks.list(page_size=2)]
    assert set(listed) == ids and len(listed) == 5


def test_account_and_models(client: Client) -> None:
    client.images.generate("a fox", model="gpt-image-1.5", aspect_ratio="1:1", quality="medium")
    balance = client.account.balance()
    assert balance.balance_micro == 100_000_000  # a free call
    (row,) = client.account.usage().data
    assert (row.variant, row.calls, row.free_calls) == ("gpt-image-1.5-text-to-image", 1, 1)
    ids = [m.id for m in client.models.list()]
    assert "gpt-image-2" in ids
    assert client.models.retrieve("gpt-image-1.5-2025-12-16").id == "gpt-image-1.5"  # an alias
    with pytest.raises(NotFoundError):
        client.models.retrieve("dall-e-9")


def test_errors_mirror_the_gateway_codes(gateway: Gateway) -> None:
    with Client(api_key="ig_nope", base_url=gateway.base_url) as bad:
        with pytest.raises(AuthenticationError) as caught:
            bad.account.balance()
        assert caught.value.status_code == 401 and caught.value.code == "authentication"
    with Client(api_key=gateway.new_account(usd=None, tier=None)[1], base_url=gateway.base_url) as poor:
        for _ in range(3):  # the free calls
            poor.images.generate("a fox", model="gpt-image-1.5", aspect_ratio="1:1", quality="medium")
        with pytest.raises(InsufficientCreditsError):
            poor.images.generate("a fox", model="gpt-image-1.5", aspect_ratio="1:1", quality="medium")
        with pytest.raises(ValidationError) as invalid:
            poor.images.generate("a fox", aspect_ratio="7:1")
        assert invalid.value.param == "aspect_ratio"
        with pytest.raises(NotFoundError):
            poor.tasks.get("00000000-0000-0000-0000-000000000000")


def test_uploads_and_limits_raise_their_classes(gateway: Gateway) -> None:
    with Client(api_key=gateway.new_account(tier=None)[1], base_url=gateway.base_url, max_retries=0) as free:
        gif = io.BytesIO()
        Image.new("RGB", (8, 8)).save(gif, "GIF")
        with pytest.raises(UnsupportedMediaTypeError):
            free.files.upload(gif.getvalue(), file_name="a.gif")
        with pytest.raises(PayloadTooLargeError):
            free.files.upload(png_bytes() + b"\0" * gateway.settings.max_upload_bytes)
        stalled = free.images.generate("[stall:60] one at a time", wait=False)
        with pytest.raises(RateLimitError) as limited:  # the free tier runs one task at a time
            free.images.generate("a fox", wait=False)
        assert limited.value.status_code == 429 and limited.value.retry_after is not None
        free.tasks.cancel(stalled.id)


def test_same_idempotency_key_gives_the_same_task(client: Client) -> None:
    first = client.images.generate("a fox", idempotency_key="fox-1", wait=False)
    second = client.images.generate("a fox", idempotency_key="fox-1", wait=False)
    assert first.id == second.id


async def test_async_twin_does_the_same(gateway: Gateway, tmp_path: Path) -> None:
    async with AsyncClient(api_key=gateway.new_account()[1], base_url=gateway.base_url) as sdk:
        task = await sdk.images.generate(
            "a red fox", model="gpt-image-1.5", aspect_ratio="2:3", quality="medium"
        )
        (path,) = await task.save(tmp_path)
        with Image.open(path) as image:
            assert image.size == (1024, 1536)
        buffer = io.BytesIO()
        Image.new("RGB", (20, 20)).save(buffer, "PNG")
        edited = await sdk.images.edit("night", images=[buffer.getvalue()])
        assert edited.status == "completed"
        uploaded = await sdk.files.upload(path)
        with pytest.raises(ValidationError) as no_mask:  # uploaded and passed on; no model takes one yet
            await sdk.images.edit("snow", images=uploaded.url, mask=buffer.getvalue())
        assert no_mask.value.param == "mask_url"
        again = await sdk.images.edit("snow", images=uploaded.url, model="gpt-image-1.5", aspect_ratio="1:1",
                                      quality="medium")  # fmt: skip
        assert (await sdk.tasks.get(again.id)).images == again.images
        listed = [t.id async for t in sdk.tasks.list(page_size=1)]
        assert listed == [again.id, edited.id, task.id]
        assert (await sdk.account.balance()).tier == "tier2"
        assert (await sdk.account.me()).tier.name == "tier2"
        assert sum(row.calls for row in (await sdk.account.usage()).data) == 3
        assert any(m.id == "gpt-image-2" for m in await sdk.models.list())
        assert (await sdk.models.retrieve("gpt-image-1.5-2025-12-16")).id == "gpt-image-1.5"
        with pytest.raises(NotFoundError):
            await sdk.models.retrieve("dall-e-9")
        with pytest.raises(TaskFailedError):
            await sdk.images.generate("[fail] no")
        pending = await sdk.images.generate("[stall:60] wait", wait=False)
        with pytest.raises(TaskTimeoutError):
            await sdk.tasks.wait(pending.id, timeout=0.2)
        assert (await sdk.tasks.cancel(pending.id)).status == "canceled"


# --- retries, against a stand-in that answers what a test scripts ------------------------


CATALOG = (
    b'{"object": "list", "data": [{"id": "m", "service": "svc", "display_name": "M",'
    b' "actions": [{"action": "text_to_image"}]}]}'
)


@dataclass
class Scripted:
    """A loopback HTTP server answering each request with the next scripted (status, headers)."""

    answers: list[tuple[int, dict[str, str]]]
    seen: list[tuple[str, str, str | None]] = field(default_factory=list)
    base_url: str = ""


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    state = Scripted(answers=[])

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            state.seen.append((self.command, self.path, self.headers.get("Idempotency-Key")))
            status, headers = state.answers.pop(0) if state.answers else (200, {})
            body = b'{"error": {"message": "busy", "code": "unavailable", "type": "x", "param": null}}'
            if status == 429:
                body = (
                    b'{"error": {"message": "slow down", "code": "rate_limit", "type": "x", "param": null}}'
                )
            if status == 200:
                body = CATALOG
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


def test_reads_retry_5xx_and_429_honouring_retry_after(scripted: Scripted) -> None:
    scripted.answers = [(503, {"Retry-After": "0"}), (429, {"Retry-After": "0"})]
    with Client(api_key="k", base_url=scripted.base_url) as sdk:
        assert [m.id for m in sdk.models.list()] == ["m"]
    assert [s[0] for s in scripted.seen] == ["GET", "GET", "GET"]


def test_retries_end_with_the_mirrored_error(scripted: Scripted) -> None:
    scripted.answers = [(429, {"Retry-After": "7"})]
    sdk = Client(api_key="k", base_url=scripted.base_url, max_retries=0)
    with sdk, pytest.raises(RateLimitError) as caught:
        sdk.models.list()
    assert caught.value.retry_after == 7


def test_creations_retry_with_one_idempotency_key(scripted: Scripted) -> None:
    scripted.answers = [(200, {}), (503, {"Retry-After": "0"}), (503, {"Retry-After": "0"}), (503, {})]
    sdk = Client(api_key="k", base_url=scripted.base_url, max_retries=2)
    with sdk, pytest.raises(ServiceUnavailableError):
        sdk.images.generate("a fox", model="m")
    posts = [s for s in scripted.seen if s[0] == "POST"]
    assert [p[1] for p in posts] == ["/api/v1/svc/text_to_image"] * 3
    assert len({p[2] for p in posts}) == 1 and posts[0][2]


def test_a_post_without_a_key_is_never_retried(scripted: Scripted) -> None:
    scripted.answers = [(503, {"Retry-After": "0"}), (200, {})]
    with Client(api_key="k", base_url=scripted.base_url) as sdk, pytest.raises(ServiceUnavailableError):
        sdk.files.upload(png_bytes())
    assert [s[0] for s in scripted.seen] == ["POST"]


def test_an_unreachable_gateway_is_a_connection_error() -> None:
    with (
        Client(base_url="http://127.0.0.1:9", max_retries=0) as sdk,
        pytest.raises(APIConnectionError) as caught,
    ):
        sdk.account.me()
    assert "127.0.0.1:9" in str(caught.value)


# --- an answer lost on the way back: the retry finds the first task ---------------------


@dataclass
class Proxy:
    """A loopback relay to the gateway that loses the answer to the first task creation: the
    gateway made the task, the client sees the connection close."""

    base_url: str = ""
    lose_next_create: bool = True
    create_keys: list[str | None] = field(default_factory=list)


@pytest.fixture
def proxy(gateway: Gateway) -> Iterator[Proxy]:
    state = Proxy()
    upstream = httpx.Client(base_url=gateway.base_url, timeout=60)
    skip = {"host", "content-length", "connection", "accept-encoding"}

    class Handler(BaseHTTPRequestHandler):
        def _relay(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
            answer = upstream.request(self.command, self.path, content=body, headers=headers)
            if self.command == "POST" and self.path.endswith("/text_to_image"):
                state.create_keys.append(self.headers.get("Idempotency-Key"))
                if state.lose_next_create:
                    state.lose_next_create = False
                    self.close_connection = True
                    return  # no answer at all
            self.send_response(answer.status_code)
            for name, value in answer.headers.items():
                if name.lower() not in {
                    "content-encoding",
                    "transfer-encoding",
                    "content-length",
                    "connection",
                }:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.content)))
            self.end_headers()
            self.wfile.write(answer.content)

        do_GET = do_POST = _relay

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()
    upstream.close()


def test_an_idempotent_retry_after_a_lost_answer_is_charged_once(gateway: Gateway, proxy: Proxy) -> None:
    params: dict[str, Any] = {"model": "gpt-image-1.5", "aspect_ratio": "1:1", "quality": "medium"}
    with Client(api_key=gateway.new_account()[1], base_url=gateway.base_url) as direct:
        for _ in range(3):  # the free calls, so the next one is paid
            direct.images.generate("a fox", **params)
        with Client(api_key=direct.api_key, base_url=proxy.base_url) as relayed:
            task = relayed.images.generate("a fox through a flaky network", **params)
        assert task.status == "completed"
        assert len(proxy.create_keys) == 2 and proxy.create_keys[0] == proxy.create_keys[1]
        assert sum(1 for t in direct.tasks.list() if t.id == task.id) == 1
        assert len(list(direct.tasks.list())) == 4  # three free calls and one task, not two
        assert direct.account.balance().balance_micro == 100_000_000 - 40_000  # charged once
