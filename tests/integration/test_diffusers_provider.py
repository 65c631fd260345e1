"""The `diffusers` provider for real, on the CPU: a tiny Stable Diffusion pipeline with random
weights, built from configs and saved to a directory, served through a real gateway.

The model draws noise, but every part runs as it does for SDXL on a GPU: loading from a local
directory, text-to-image and image-to-image on shared weights, the step callback (progress,
decoded previews, cancel), seeds, and the operator catalog entry that routes to the provider.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from imagegate.gateway import Gateway as Core
from imagegate.providers.base import (
    Action,
    FinalImage,
    ImageRequest,
    PartialImage,
    Progress,
    ProviderEvent,
    SourceImage,
)
from imagegate.providers.config import ProviderConfig
from imagegate.providers.diffusers import EVENTS_AHEAD, DiffusersProvider
from imagegate.queue import Queue
from tests.conftest import Gateway, png_bytes, start_gateway
from tests.profiles import Profile

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")
transformers = pytest.importorskip("transformers")

CATALOG = """
[lines.tiny-sd]
title = "Tiny SD"
service = "tiny_sd"
vendor = "Local"
summary = "A tiny Stable Diffusion pipeline on this gateway's own CPU."

[models."tiny-sd"]
line = "tiny-sd"
display_name = "Tiny SD"
version = "1"
upstream_model = "tiny-sd"
actions = ["text_to_image", "edit_image"]
route = ["local-sd"]
pricing = { base_micro = 2_000 }
render = { sizes = { "1:1" = "64x64", "3:2" = "96x64" }, auto_size = "64x64" }
openai = { qualities = ["auto"], output_formats = ["png"], moderation = false }

[models."tiny-sd".fields]
prompt = { type = "string", required = true, min = 1, max = 2000 }
aspect_ratio = { type = "string", default = "1:1", enum = ["1:1", "3:2"] }
steps = { type = "integer", default = 3, min = 1, max = 500 }
guidance_scale = { type = "number", default = 4.0, min = 0, max = 20 }
seed = { type = "integer", min = 0, max = 4_294_967_295 }
strength = { type = "number", default = 0.7, min = 0.1, max = 1, actions = ["edit_image"] }
source_image_urls = { type = "array", items = "image_url", min_items = 1, max_items = 1, required = true, actions = ["edit_image"] }

[models."gone-sd"]
line = "tiny-sd"
display_name = "Gone SD"
version = "gone"
upstream_model = "gone-sd"
actions = ["text_to_image"]
route = ["gone-sd"]
like = "tiny-sd"
"""


def _byte_symbols() -> list[str]:
    """CLIP's byte-level BPE alphabet: one printable character for each byte."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    rest = [b for b in range(256) if b not in printable]
    return [chr(b) for b in printable] + [chr(256 + k) for k in range(len(rest))]


def build_tiny_sd(directory: Path) -> None:
    """A Stable Diffusion pipeline of a few thousand random weights, saved as diffusers saves one."""
    symbols = _byte_symbols()
    vocab = {token: i for i, token in enumerate([*symbols, *(s + "</w>" for s in symbols)])}
    vocab.update({"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1})
    words = directory.parent / "tokenizer-files"
    words.mkdir()
    (words / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (words / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")  # no merges: one token a byte
    tokenizer = transformers.CLIPTokenizer.from_pretrained(str(words), model_max_length=16)
    torch.manual_seed(0)
    text_encoder = transformers.CLIPTextModel(
        transformers.CLIPTextConfig(
            vocab_size=len(vocab),
            bos_token_id=vocab["<|startoftext|>"],
            eos_token_id=vocab["<|endoftext|>"],
            pad_token_id=vocab["<|endoftext|>"],
            hidden_size=16,
            intermediate_size=32,
            num_attention_heads=2,
            num_hidden_layers=1,
            max_position_embeddings=16,
            projection_dim=16,
        )
    )
    unet = diffusers.UNet2DConditionModel(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16,
        attention_head_dim=2,
        norm_num_groups=4,
    )
    vae = diffusers.AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(8, 16),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=32,
    )
    scheduler = diffusers.DDIMScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False, steps_offset=1
    )
    pipeline = diffusers.StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipeline.save_pretrained(str(directory))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # One torch thread: on a few shared cores OpenMP's spinning threads make this model ~30x slower.
    torch.set_num_threads(1)
    directory = tmp_path_factory.mktemp("tiny-sd") / "pipeline"
    build_tiny_sd(directory)
    return directory


@pytest.fixture(scope="module")
def gw(profile: Profile, model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    data = tmp_path_factory.mktemp("diffusers-gateway")
    catalog = data / "catalog.toml"
    catalog.write_text(CATALOG, encoding="utf-8")
    providers = [
        {
            "name": "local-sd",
            "kind": "diffusers",
            "model_path": str(model_dir),
            "device": "cpu",
            "preview_every": 2,
        },
        {"name": "gone-sd", "kind": "diffusers", "model_path": str(data / "no-such-model")},
    ]
    gateway = start_gateway(
        data, catalog_file=catalog, providers=providers, max_attempts=1, free_calls_per_variant=0
    )
    yield gateway
    gateway.close()


def balance(client: httpx.Client) -> tuple[int, int]:
    body = client.get("/api/v1/me/balance").json()
    return int(body["balance_micro"]), int(body["held_micro"])


def create(client: httpx.Client, body: dict[str, Any], action: str = "text_to_image") -> str:
    response = client.post(f"/api/v1/tiny_sd/{action}", json=body)
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def request(prompt: str = "a red fox", **extra: Any) -> ImageRequest:
    action = Action.EDIT if "sources" in extra else Action.GENERATE
    sources = extra.pop("sources", ())
    partials = extra.pop("partial_images", 0)
    n = extra.pop("n", 1)
    return ImageRequest(
        task_id=f"t-{prompt}",
        model="tiny-sd",
        action=action,
        prompt=prompt,
        width=64,
        height=64,
        n=n,
        sources=sources,
        partial_images=partials,
        extra={"steps": 4, "guidance_scale": 4.0, **extra},
    )


def collect(gw: Gateway, req: ImageRequest) -> list[ProviderEvent]:
    """Every event the gateway's own `local-sd` provider yields for ``req``, on the server's loop."""

    async def work(core: Core, _: Queue) -> list[ProviderEvent]:
        return [event async for event in core.providers.get("local-sd").run(req)]

    return gw.thread.call(work)


def test_the_operator_model_is_listed(gw: Gateway) -> None:
    client = gw.user()
    listed = client.get("/v1/models").json()
    assert "tiny-sd" in {model["id"] for model in listed["data"]}
    page = client.get("/models/tiny-sd.md")
    assert page.status_code == 200, page.text
    assert "Tiny SD" in page.text


def test_text_to_image_through_the_runapi_face(gw: Gateway) -> None:
    client = gw.user()
    before, _ = balance(client)
    task = gw.wait(client, create(client, {"model": "tiny-sd", "prompt": "a red fox", "aspect_ratio": "3:2"}))
    assert task["status"] == "completed", task
    assert task["provider"] == "local-sd"
    (image,) = task["images"]
    data = client.get(image["url"]).content
    with Image.open(io.BytesIO(data)) as picture:
        assert (picture.format, picture.size) == ("PNG", (96, 64))
    assert balance(client) == (before - 2_000, 0)


def test_image_to_image_through_the_openai_face(gw: Gateway) -> None:
    client = gw.user()
    response = client.post(
        "/v1/images/edits",
        data={"model": "tiny-sd", "prompt": "the same fox, in blue", "size": "64x64"},
        files={"image": ("fox.png", png_bytes(80, 80, (200, 60, 20)), "image/png")},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    (item,) = response.json()["data"]
    with Image.open(io.BytesIO(base64.b64decode(item["b64_json"]))) as picture:
        assert (picture.format, picture.size) == ("PNG", (64, 64))


def test_progress_and_previews_reach_the_event_stream(gw: Gateway) -> None:
    events = collect(gw, request(steps=6, partial_images=2))
    fractions = [event.fraction for event in events if isinstance(event, Progress)]
    assert (
        fractions == sorted(fractions) and fractions[-1] == 1.0 and len(fractions) == 7
    )  # 0, then a step each
    partials = [event for event in events if isinstance(event, PartialImage)]
    assert [p.partial_index for p in partials] == [0, 1]
    assert partials[0].image.content_type == "image/png"
    (final,) = [event for event in events if isinstance(event, FinalImage)]
    assert events[-1] is final and (final.image.width, final.image.height) == (64, 64)
    # Image to image runs steps x strength steps on the same weights; `preview_every` (2) applies.
    edit = collect(gw, request(sources=(_source(),), strength=1.0))
    assert [e.partial_index for e in edit if isinstance(e, PartialImage)] == [0]  # after step 2 of 4


def _source() -> SourceImage:
    return SourceImage(png_bytes(64, 64, (10, 200, 30)), "image/png", 64, 64)


def test_a_seed_repeats_the_picture(gw: Gateway) -> None:
    def final(seed: int) -> bytes:
        (image,) = [e.image.data for e in collect(gw, request(seed=seed)) if isinstance(e, FinalImage)]
        return image

    assert final(7) == final(7)
    assert final(7) != final(8)


def test_cancel_stops_the_pipeline_between_steps(gw: Gateway, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="imagegate.providers")
    steps = 4 * EVENTS_AHEAD

    async def cancel_after_first_step(core: Core, _: Queue) -> None:
        provider = core.providers.get("local-sd")
        assert isinstance(provider, DiffusersProvider)
        seen = asyncio.Event()

        async def consume() -> None:
            async with contextlib.aclosing(provider.run(request("a slow fox", steps=steps))) as events:
                async for event in events:
                    if isinstance(event, Progress) and event.fraction > 0:
                        seen.set()
                        await asyncio.sleep(3600)  # read no more: the pipeline must stop for the cancel

        reader = asyncio.create_task(consume())
        await seen.wait()
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader  # returns once the pipeline thread has stopped

    gw.thread.call(cancel_after_first_step)
    (stopped,) = [r.getMessage() for r in caplog.records if "a slow fox stopped after step" in r.getMessage()]
    done = int(stopped.split("after step ")[1].split()[0])
    assert done <= EVENTS_AHEAD + 2 < steps  # the reader held the events back: the lead is bounded
    # the lane is free again
    assert any(isinstance(e, FinalImage) for e in collect(gw, request("after the cancel", steps=1)))


def test_a_canceled_task_frees_the_pipeline(gw: Gateway, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="imagegate.providers")
    client = gw.user()
    assert (
        gw.wait(client, create(client, {"model": "tiny-sd", "prompt": "a warm-up fox"}))["status"]
        == "completed"
    )
    before, _ = balance(client)
    task_id = create(client, {"model": "tiny-sd", "prompt": "an endless fox", "steps": 500})
    deadline = time.monotonic() + 30
    while (status := client.get(f"/api/v1/tasks/{task_id}").json()["status"]) == "pending":
        assert time.monotonic() < deadline, "no worker took the task"  # then it runs 500 steps
    assert status == "processing"
    canceled = client.post(f"/api/v1/tasks/{task_id}/cancel")
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled", canceled.text
    # One lane: the next task runs only once the canceled run has left the pipeline.
    assert (
        gw.wait(client, create(client, {"model": "tiny-sd", "prompt": "a quick fox"}))["status"]
        == "completed"
    )
    (stopped,) = [r.getMessage() for r in caplog.records if f"{task_id} stopped after step" in r.getMessage()]
    assert int(stopped.split("after step ")[1].split()[0]) < 500
    assert balance(client) == (before - 2_000, 0)  # the canceled task cost nothing


def test_a_missing_model_directory_fails_the_task_and_releases_the_hold(gw: Gateway) -> None:
    client = gw.user()
    before, _ = balance(client)
    task = gw.wait(client, create(client, {"model": "gone-sd", "prompt": "a red fox"}))
    assert task["status"] == "failed", task
    assert task["error_code"] == "model_unavailable"
    assert "missing" in task["error"] and "no-such-model" not in task["error"]  # no server paths to clients
    assert balance(client) == (before, 0)


async def test_two_lanes_share_the_weights_and_keep_their_seeds(model_dir: Path) -> None:
    config = ProviderConfig(
        name="two", kind="diffusers", model_path=str(model_dir), device="cpu", max_concurrent=2
    )
    provider = DiffusersProvider(config)

    async def final(seed: int, n: int = 1) -> list[bytes]:
        events = [event async for event in provider.run(request(f"fox {seed}", seed=seed, n=n))]
        return [event.image.data for event in events if isinstance(event, FinalImage)]

    try:
        together = await asyncio.gather(final(1), final(2))  # one on each lane, at the same time
        assert together == [await final(1), await final(2)]
        first, second = await final(3, n=2)  # n images: seeds 3 and 4
        assert first != second
    finally:
        await provider.aclose()
