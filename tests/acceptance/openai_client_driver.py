"""Drives the official ``openai`` package against a gateway; run by that package's own venv.

``python openai_client_driver.py '<json config>'`` prints one JSON object: every operation of
the Images and Models resources the package offers, each error class the gateway can cause,
sync and async, each with ``ok`` and what was seen. It imports nothing of imagegate's.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import sys
import traceback
import urllib.request
from collections.abc import Callable
from typing import Any

import openai
from openai import AsyncOpenAI, OpenAI

CONFIG: dict[str, Any] = json.loads(sys.argv[1])
RESULTS: dict[str, dict[str, Any]] = {}
MAGIC = {"png": b"\x89PNG", "jpeg": b"\xff\xd8\xff", "webp": b"RIFF", "gif": b"GIF89a", "svg": b"<?xml"}
LIVE = CONFIG["live_model"]


def op(name: str) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    def record(fn: Callable[[], Any]) -> Callable[[], Any]:
        try:
            RESULTS[name] = {"ok": True, "seen": fn()}
        except Exception as exc:  # a failed operation is a row of the report, not a crash
            RESULTS[name] = {
                "ok": False,
                "seen": f"{type(exc).__name__}: {exc}",
                "trace": traceback.format_exc(),
            }
        return fn

    return record


def check(condition: bool, what: str) -> None:
    if not condition:
        raise AssertionError(what)


def expect(error: type[openai.APIError], call: Callable[[], Any]) -> dict[str, Any]:
    try:
        call()
    except error as exc:
        return {"class": type(exc).__name__, "status": getattr(exc, "status_code", None), "code": exc.code}
    raise AssertionError(f"expected {error.__name__}")


def image_bytes(result: Any, index: int = 0) -> bytes:
    item = result.data[index]
    if item.b64_json:
        return base64.b64decode(item.b64_json)
    with urllib.request.urlopen(item.url, timeout=30) as answer:  # the package brings no httpx
        return answer.read()  # type: ignore[no-any-return]


def png_size(data: bytes) -> tuple[int, int]:
    check(data[:4] == MAGIC["png"], "a PNG")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


client = OpenAI(base_url=f"{CONFIG['base_url']}/v1", api_key=CONFIG["key"], max_retries=0)
png = base64.b64decode(CONFIG["png_b64"])
mask = base64.b64decode(CONFIG["mask_b64"])


@op("models.list")
def _() -> Any:
    ids = [m.id for m in client.models.list()]
    check(LIVE in ids and "gpt-image-2.6-flare" in ids, f"listed {ids}")
    return {"models": len(ids)}


@op("models.retrieve")
def _() -> Any:
    model = client.models.retrieve("gpt-image-2.6-sunburst")
    check(model.id == "gpt-image-2.6-sunburst" and model.object == "model", str(model))
    return {"id": model.id, "owned_by": model.owned_by}


@op("models.retrieve retired")
def _() -> Any:
    model = client.models.retrieve("gpt-image-1.5")
    extra = model.model_extra or {}
    check(extra.get("retired") is True and extra.get("served_by") == "gpt-image-2", f"extra {extra}")
    return {"served_by": extra["served_by"]}


for fmt in ("png", "jpeg", "webp", "gif", "svg"):

    @op(f"images.generate {fmt}")
    def _(fmt: str = fmt) -> Any:
        result = client.images.generate(model=LIVE, prompt=f"a red kite, {fmt}", output_format=fmt)  # type: ignore[arg-type]
        data = image_bytes(result)
        check(data.startswith(MAGIC[fmt]), f"{fmt} magic {data[:8]!r}")
        return {"bytes": len(data), "output_format": result.output_format}

    @op(f"images.edit {fmt}")
    def _(fmt: str = fmt) -> Any:
        result = client.images.edit(
            model=LIVE,
            image=("in.png", png, "image/png"),
            prompt=f"make it blue, {fmt}",
            output_format=fmt,  # type: ignore[arg-type]
        )
        data = image_bytes(result)
        check(data.startswith(MAGIC[fmt]), f"{fmt} magic {data[:8]!r}")
        return {"bytes": len(data)}


@op("images.generate n=2 size quality background")
def _() -> Any:
    result = client.images.generate(
        model=LIVE, prompt="two green apples", n=2, size="1536x1024", quality="low", background="opaque"
    )
    check(len(result.data) == 2, "two images")
    check(png_size(image_bytes(result, 1)) == (1536, 1024), "1536x1024")
    check(result.usage is not None and result.usage.total_tokens > 0, f"usage {result.usage}")
    return {"n": len(result.data), "size": result.size, "quality": result.quality}


@op("images.generate response_format=url")
def _() -> Any:
    result = client.images.generate(model=LIVE, prompt="a yellow star", response_format="url")
    check(bool(result.data[0].url), "a URL")
    return {"bytes": len(image_bytes(result))}


@op("images.edit images[] + mask")
def _() -> Any:
    result = client.images.edit(
        model=LIVE,
        image=[("a.png", png, "image/png"), ("b.png", png, "image/png")],
        mask=("mask.png", mask, "image/png"),
        prompt="paint the masked part white",
    )
    return {"bytes": len(image_bytes(result))}


@op("images.with_raw_response.generate")
def _() -> Any:
    raw = client.images.with_raw_response.generate(model=LIVE, prompt="a small boat")
    check(bool(raw.headers.get("x-imagegate-task-id")), "task id header")
    check(bool(raw.headers.get("x-request-id")), "request id header")
    return {"status": raw.status_code, "task": raw.headers["x-imagegate-task-id"]}


@op("images.create_variation")
def _() -> Any:
    # GPT Image has no variations; the gateway says so as OpenAI does for these models.
    return expect(
        openai.NotFoundError,
        lambda: client.images.create_variation(image=("in.png", png, "image/png"), model=LIVE),
    )


@op("images.generate stream=True partial_images=2")
def _() -> Any:
    kinds = [
        e.type for e in client.images.generate(model=LIVE, prompt="a comet", stream=True, partial_images=2)
    ]
    check(kinds == ["image_generation.partial_image"] * 2 + ["image_generation.completed"], f"events {kinds}")
    return {"events": kinds}


@op("images.edit stream=True partial_images=1")
def _() -> Any:
    events = list(
        client.images.edit(
            model=LIVE, image=("in.png", png, "image/png"), prompt="dusk", stream=True, partial_images=1
        )
    )
    kinds = [e.type for e in events]
    check(kinds == ["image_edit.partial_image", "image_edit.completed"], f"events {kinds}")
    final = base64.b64decode(events[-1].b64_json)  # type: ignore[union-attr]
    check(final.startswith(MAGIC["png"]) and events[-1].usage is not None, "a PNG with usage")  # type: ignore[union-attr]
    return {"events": kinds}


@op("retired cells")
def _() -> Any:
    seen = {}
    for size in ("1024x1024", "1536x1024", "1024x1536"):
        for quality in ("low", "medium", "high"):
            result = client.images.generate(
                model="gpt-image-1.5", prompt="a pier", size=size, quality=quality
            )  # type: ignore[arg-type]
            width, height = png_size(image_bytes(result))
            check(f"{width}x{height}" == size, f"{size} {quality}: {width}x{height}")
            seen[f"{size}/{quality}"] = f"{width}x{height}"
    return seen


@op("AuthenticationError")
def _() -> Any:
    bad = OpenAI(base_url=f"{CONFIG['base_url']}/v1", api_key="ig_not_a_key", max_retries=0)
    # The catalog (/v1/models) is public; anything that spends needs a valid key.
    return expect(openai.AuthenticationError, lambda: bad.images.generate(model=LIVE, prompt="x"))


@op("BadRequestError")
def _() -> Any:
    return expect(
        openai.BadRequestError,
        lambda: client.images.generate(model=LIVE, prompt="x", output_format="svg", n=2),
    )


@op("NotFoundError")
def _() -> Any:
    return expect(openai.NotFoundError, lambda: client.models.retrieve("no-such-model"))


@op("RateLimitError")
def _() -> Any:
    poor = OpenAI(base_url=f"{CONFIG['base_url']}/v1", api_key=CONFIG["poor_key"], max_retries=0)

    def hammer() -> None:
        for _ in range(CONFIG["poor_creates_per_minute"] + 1):
            poor.images.generate(model=LIVE, prompt="a dot", quality="low")

    return expect(openai.RateLimitError, hammer)


@op("APIStatusError 402")
def _() -> Any:
    broke = OpenAI(base_url=f"{CONFIG['base_url']}/v1", api_key=CONFIG["broke_key"], max_retries=0)
    seen = expect(openai.APIStatusError, lambda: broke.images.generate(model=LIVE, prompt="x"))
    check(seen["status"] == 402, f"status {seen}")
    return seen


@op("APIConnectionError")
def _() -> Any:
    gone = OpenAI(base_url=f"{CONFIG['closed_url']}/v1", api_key="x", max_retries=0, timeout=5)
    try:
        gone.models.list()
    except openai.APIConnectionError as exc:
        return {"class": type(exc).__name__}
    raise AssertionError("expected APIConnectionError")


@op("AsyncOpenAI generate + edit + models")
def _() -> Any:
    async def run() -> dict[str, Any]:
        async with AsyncOpenAI(
            base_url=f"{CONFIG['base_url']}/v1", api_key=CONFIG["key"], max_retries=0
        ) as aio:
            generated, edited = await asyncio.gather(
                aio.images.generate(model=LIVE, prompt="an orange moon"),
                aio.images.edit(model=LIVE, image=("in.png", io.BytesIO(png), "image/png"), prompt="night"),
            )
            model = await aio.models.retrieve(LIVE)
        check(image_bytes(generated)[:4] == MAGIC["png"] and image_bytes(edited)[:4] == MAGIC["png"], "PNGs")
        async with AsyncOpenAI(
            base_url=f"{CONFIG['base_url']}/v1", api_key=CONFIG["key"], max_retries=0
        ) as aio:
            stream = await aio.images.generate(model=LIVE, prompt="a kite", stream=True, partial_images=1)
            kinds = [event.type async for event in stream]
        check(kinds == ["image_generation.partial_image", "image_generation.completed"], f"async {kinds}")
        return {"model": model.id}

    return asyncio.run(run())


json.dump({"version": openai.__version__, "results": RESULTS}, sys.stdout)
