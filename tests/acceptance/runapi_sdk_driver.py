"""Drives one of RunAPI's Python SDKs against a gateway; run by the SDKs' own interpreter.

``python runapi_sdk_driver.py '<json config>'`` prints one JSON object: every operation the
SDK offers, each with ``ok`` and what was seen. It imports nothing of imagegate's: the SDK
talks to the gateway over HTTP exactly as it talks to runapi.ai.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import json
import sys
import tempfile
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from runapi import core
from runapi.core import PollingOptions, RequestOptions

CONFIG: dict[str, Any] = json.loads(sys.argv[1])
RESULTS: dict[str, dict[str, Any]] = {}
STATE: dict[str, Any] = {}


def op(name: str) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    def record(fn: Callable[[], Any]) -> Callable[[], Any]:
        try:
            seen = fn()
            RESULTS[name] = {"ok": True, "seen": seen}
        except Exception as exc:  # a failed operation is a row of the report, not a crash
            RESULTS[name] = {
                "ok": False,
                "seen": f"{type(exc).__name__}: {exc}",
                "trace": traceback.format_exc(),
            }
        return fn

    return record


def expect(error: type[Exception], call: Callable[[], Any]) -> dict[str, Any]:
    try:
        call()
    except error as exc:
        return {
            "class": type(exc).__name__,
            "code": getattr(exc, "code", None),
            "status": getattr(exc, "status", None),
            "message": str(exc),
        }
    raise AssertionError(f"expected {error.__name__}")


def check(condition: bool, what: str) -> None:
    if not condition:
        raise AssertionError(what)


package = importlib.import_module(CONFIG["package"])
Client = getattr(package, CONFIG["client"])
base_url, model, service = CONFIG["base_url"], CONFIG["model"], CONFIG["service"]
extra: dict[str, Any] = CONFIG["params"]
client = Client(api_key=CONFIG["key"], base_url=base_url)
poor = Client(api_key=CONFIG["poor_key"], base_url=base_url)
own = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {CONFIG['key']}"}, timeout=30)
work = Path(tempfile.mkdtemp())
png = work / "input.png"
png.write_bytes(base64.b64decode(CONFIG["png_b64"]))


def params(prompt: str, **more: Any) -> dict[str, Any]:
    return {"model": model, "prompt": prompt, **extra, **more}


@op("account.info")
def _() -> Any:
    info = client.account.info()
    check(info.email == CONFIG["email"], f"email {info.email!r}")
    check(info.account.id == info.id, "account.id")
    return {"email": info.email, "name": info.name}


@op("account.balance")
def _() -> Any:
    balance = client.account.balance()
    check(isinstance(balance.balance_cents, int) and balance.balance_cents > 0, "balance_cents")
    return {"balance_cents": balance.balance_cents}


@op("pricing.list_schedules")
def _() -> Any:
    listed = client.pricing.list_schedules(service=service)
    check(len(listed.price_schedules) > 0, "no schedules")
    return {"schedules": len(listed.price_schedules), "first": listed.price_schedules[0].action}


@op("pricing.create_quote")
def _() -> Any:
    quote = client.pricing.create_quote(
        service, "text_to_image", model, {k: v for k, v in params("q").items() if k != "model"}
    )
    check(quote.price_quote.reservation_amount_cents > 0, "reservation")
    return {"reservation_amount_cents": quote.price_quote.reservation_amount_cents}


@op("text_to_image.run")
def _() -> Any:
    done = client.text_to_image.run(**params("a lighthouse at dawn"))
    check(done.status == "completed" and len(done.images) == 1, "completed with one image")
    check(isinstance(done.usage, core.TaskUsage), "usage typed")
    check(done.usage.cost > 0 and done.usage.generated_images == 1, f"usage {done.usage}")
    check(done.runapi_task_id == done.id, "X-RunAPI-Task-Id")
    image = httpx.get(done.images[0].url, timeout=30)
    check(image.status_code == 200 and image.content[:4] == b"\x89PNG", "output downloads")
    STATE["output_url"] = done.images[0].url
    return {"id": done.id, "cost": done.usage.cost, "generated_images": done.usage.generated_images}


@op("text_to_image.create+get")
def _() -> Any:
    created = client.text_to_image.create(**params("a quiet harbour"))
    check(created.status in ("pending", "processing"), created.status)
    read = client.text_to_image.get(created.id)
    check(read.id == created.id, "same task")
    return {"create": created.status, "get": read.status}


def _put_again(uploaded: Any) -> None:
    # The prepared URL is single use: replaying the PUT is refused.
    data = png.read_bytes()
    checksum = base64.b64encode(hashlib.md5(data).digest()).decode()
    prepared = client._http.request(
        "post",
        "/api/v1/files/prepare",
        body={"filename": "x.png", "byte_size": len(data), "checksum": checksum},
    )
    client._http.upload(prepared["upload_url"], prepared["headers"], data)
    client._http.upload(prepared["upload_url"], prepared["headers"], data)


@op("files.create(file=path)")
def _() -> Any:
    uploaded = client.files.create(file=str(png))
    check(uploaded.size_bytes == png.stat().st_size and uploaded.mime_type == "image/png", "size/type")
    check(httpx.get(uploaded.url, timeout=30).content == png.read_bytes(), "same bytes back")
    STATE["uploaded_url"], STATE["ids"] = uploaded.url, [uploaded.id]
    again = expect(core.ConflictError, lambda: _put_again(uploaded))
    return {"file_name": uploaded.file_name, "second_put": again["status"]}


@op("files.create(source=own output url)")
def _() -> Any:
    copied = client.files.create(source=STATE["output_url"], file_name="copy.png")
    check(copied.mime_type == "image/png" and copied.file_name == "copy.png", "copied")
    STATE["ids"].append(copied.id)
    return {"size_bytes": copied.size_bytes}


@op("files.create(source=own file url)")
def _() -> Any:
    copied = client.files.create(source=STATE["uploaded_url"])
    check(copied.size_bytes == png.stat().st_size, "same size")
    return {"size_bytes": copied.size_bytes}


@op("files.create(source=foreign url)")
def _() -> Any:
    fetched = client.files.create(source=CONFIG["foreign_url"])
    check(fetched.size_bytes == png.stat().st_size, "fetched")
    return {"size_bytes": fetched.size_bytes}


@op("files.create(source=base64)")
def _() -> Any:
    decoded = client.files.create(source=CONFIG["png_b64"], file_name="b64.png")
    check(decoded.size_bytes == png.stat().st_size, "decoded")
    return {"size_bytes": decoded.size_bytes}


@op("files.list")
def _() -> Any:
    listed = client.files.list()
    ids = [item.id for item in listed.data]
    check(all(i in ids for i in STATE["ids"]), "uploads listed")
    first = client.files.list(limit=1, order="asc")
    check(len(first.data) == 1 and first.has_more, "paged")
    return {"listed": len(ids)}


@op("files.create_file/retrieve/content/delete_file")
def _() -> Any:
    made = client.files.create_file(str(png))
    check(made.purpose == "user_data" and made.bytes == png.stat().st_size, "created")
    check(client.files.retrieve(made.id).id == made.id, "retrieved")
    check(client.files.content(made.id) == png.read_bytes(), "content")
    check(client.files.delete_file(made.id).deleted is True, "deleted")
    gone = expect(core.NotFoundError, lambda: client.files.retrieve(made.id))
    return {"after_delete": gone["status"]}


@op("edit_image.run")
def _() -> Any:
    done = client.edit_image.run(**params("paint it red", source_image_urls=[STATE["uploaded_url"]]))
    check(done.status == "completed" and len(done.images) == 1, "edited")
    return {"id": done.id, "cost": done.usage.cost}


@op("uploads (404)")
def _() -> Any:
    missing = expect(
        core.NotFoundError, lambda: client.uploads.create(bytes=10, filename="a.png", mime_type="image/png")
    )
    check("/api/v1/files" in missing["message"], missing["message"])
    return missing


@op("TaskTimeoutError")
def _() -> Any:
    stalled = client.text_to_image.create(**params("[stall:60] a slow one"))
    STATE["stalled"] = stalled.id
    fast = PollingOptions(poll_interval=0.1, max_wait=0.5)  # type: ignore[arg-type]
    return expect(
        core.TaskTimeoutError,
        lambda: client.text_to_image._poll_until_complete(lambda: client.text_to_image.get(stalled.id), fast),
    )


@op("canceled task reads as failed")
def _() -> Any:
    task_id = STATE["stalled"]
    canceled = own.post(f"/api/v1/tasks/{task_id}/cancel")
    check(canceled.status_code == 200 and canceled.json()["status"] == "canceled", canceled.text)
    read = client.text_to_image.get(task_id)  # the SDK validates status against its four
    check(read.status == "failed" and read.error_code == "canceled", f"{read.status} {read['error_code']}")
    failed = expect(
        core.TaskFailedError,
        lambda: client.text_to_image._poll_until_complete(lambda: client.text_to_image.get(task_id)),
    )
    check("canceled" in failed["message"], failed["message"])
    return {"status": read.status, "error_code": read.error_code, "sdk": failed["message"]}


@op("TaskFailedError")
def _() -> Any:
    return expect(core.TaskFailedError, lambda: client.text_to_image.run(**params("[fail] doomed")))


@op("AuthenticationError")
def _() -> Any:
    stranger = Client(api_key="ig_" + "x" * 43, base_url=base_url)
    return expect(core.AuthenticationError, stranger.account.info)


@op("NotFoundError")
def _() -> Any:
    return expect(core.NotFoundError, lambda: client.text_to_image.get(str(uuid.uuid4())))


@op("ValidationError")
def _() -> Any:
    return expect(
        core.ValidationError, lambda: client.text_to_image.create(**params("bad", aspect_ratio="7:1"))
    )


@op("ConflictError (Idempotency-Key)")
def _() -> Any:
    key = RequestOptions(headers={"Idempotency-Key": str(uuid.uuid4())})
    first = client.text_to_image.create(key, **params("once"))
    replay = client.text_to_image.create(key, **params("once"))
    check(replay.id == first.id and replay.task_replayed is True, "replayed")
    return expect(core.ConflictError, lambda: client.text_to_image.create(key, **params("twice")))


@op("InsufficientCreditsError")
def _() -> Any:
    return expect(core.InsufficientCreditsError, lambda: poor.text_to_image.create(**params("unpaid")))


@op("RateLimitError")
def _() -> Any:
    # The poor account's tier allows a few creations a minute; each meets 402 until the limit.
    for _ in range(CONFIG["poor_creates_per_minute"] + 1):
        try:
            poor.text_to_image.create(**params("unpaid"))
        except core.InsufficientCreditsError:
            continue
        except core.RateLimitError as exc:
            check(bool(exc.retry_after and exc.retry_after > 0), "retry_after")
            return {"class": type(exc).__name__, "status": exc.status, "retry_after": exc.retry_after}
    raise AssertionError("no RateLimitError")


@op("NetworkError")
def _() -> Any:
    offline = Client(api_key=CONFIG["key"], base_url=CONFIG["closed_url"])
    return expect(core.NetworkError, lambda: offline.account.info(RequestOptions(max_retries=0)))


print(json.dumps(RESULTS))
