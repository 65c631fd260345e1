"""The `openai` provider against a loopback OpenAI Images API, through a real gateway.

Nothing of ours is patched: the gateway's provider settings point at the upstream, and the
upstream is scripted to fail, stall, rate-limit or answer garbage.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI
from PIL import Image

from imagegate.catalog import load_catalog
from imagegate.gateway import build_providers
from imagegate.providers.base import (
    Action,
    FinalImage,
    ImageRequest,
    PartialImage,
    ProviderError,
    SourceImage,
    Usage,
)
from imagegate.providers.config import ProviderConfig
from imagegate.providers.openai_images import OpenAIProvider
from imagegate.providers.testing_upstream import (
    GARBAGE,
    OpenAIUpstream,
    fail,
    moderation,
    rate_limit,
    stall,
    stream_moderation,
)
from tests.conftest import Gateway, make_settings, png_bytes, start_gateway
from tests.profiles import Profile

KEY_ENV = "IMAGEGATE_TEST_UPSTREAM_KEY"
SECRET = "sk-test-" + "x" * 24
T2I = {"model": "gpt-image-2", "prompt": "a red fox", "aspect_ratio": "1:1"}


@pytest.fixture(scope="module")
def upstream() -> Iterator[OpenAIUpstream]:
    os.environ[KEY_ENV] = SECRET  # the provider reads its key from the variable it names
    with OpenAIUpstream() as server:
        yield server
    del os.environ[KEY_ENV]


def provider(name: str, base_url: str, **overrides: Any) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "openai",
        "api_key_env": KEY_ENV,
        "base_url": base_url,
        "timeout_s": 1.0,
        "max_retries": 1,
        "retry_base_s": 0.01,
        "retry_cap_s": 0.05,
        **overrides,
    }


@pytest.fixture(scope="module")
def gw(
    profile: Profile, upstream: OpenAIUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    gateway = start_gateway(
        tmp_path_factory.mktemp("openai-provider"),
        providers=[provider("primary", upstream.base_url)],
        default_provider="primary",
        max_attempts=1,
        free_calls_per_variant=0,
    )
    yield gateway
    gateway.close()


@pytest.fixture
def fresh(upstream: OpenAIUpstream) -> OpenAIUpstream:
    upstream.reset()
    return upstream


def create(client: httpx.Client, body: dict[str, Any], action: str = "text_to_image") -> str:
    response = client.post(f"/api/v1/gpt_image_2/{action}", json=body)
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def balance_micro(client: httpx.Client) -> int:
    body = client.get("/api/v1/me/balance").json()
    assert body["held_micro"] == 0, body
    return int(body["balance_micro"])


def run_failing(gw: Gateway, upstream: OpenAIUpstream) -> dict[str, Any]:
    client = gw.user()
    before = balance_micro(client)
    task = gw.wait(client, create(client, T2I))
    assert task["status"] == "failed", task
    assert balance_micro(client) == before  # the hold was released: a failed task is free
    return task


def test_generate_passes_parameters_and_stores_the_upstream_bytes(gw: Gateway, fresh: OpenAIUpstream) -> None:
    client = gw.user()
    before = balance_micro(client)
    task = gw.wait(client, create(client, {**T2I, "aspect_ratio": "3:2"}))
    assert task["status"] == "completed", task
    assert task["provider"] == "primary"
    (received,) = fresh.received
    assert received.path == "/v1/images/generations"
    assert received.headers["authorization"] == f"Bearer {SECRET}"
    assert received.fields["model"] == "gpt-image-2"
    image = task["images"][0]
    assert received.fields["size"] == f"{image['width']}x{image['height']}"  # the catalog's size
    assert image["width"] > image["height"]
    assert received.fields["prompt"] == "a red fox"
    assert received.fields["n"] == 1
    stored = client.get(task["images"][0]["url"]).content
    assert stored == fresh.sent[0]  # byte for byte: decoded once, never re-encoded
    assert balance_micro(client) < before  # charged


def test_openai_face_edit_is_multipart_with_mask_and_usage(gw: Gateway, fresh: OpenAIUpstream) -> None:
    key = gw.new_account()[1]
    sources = [png_bytes(32, 32, (255, 0, 0)), png_bytes(32, 32, (0, 255, 0))]
    mask = png_bytes(32, 32, (0, 0, 0))
    with OpenAI(base_url=f"{gw.base_url}/v1", api_key=key, max_retries=0) as sdk:
        result = sdk.images.edit(
            model="gpt-image-2",
            prompt="make it blue",
            image=[("a.png", sources[0], "image/png"), ("b.png", sources[1], "image/png")],
            mask=("m.png", mask, "image/png"),
            size="1024x1024",
            output_format="webp",
            output_compression=70,
        )
    (received,) = fresh.received
    assert received.path == "/v1/images/edits"
    assert [f[2] for f in received.files if f[0].startswith("image")] == sources
    assert [f[2] for f in received.files if f[0] == "mask"] == [mask]
    assert received.fields["output_format"] == "webp"
    assert received.fields["output_compression"] == "70"
    assert result.data is not None and result.data[0].b64_json is not None
    assert base64.b64decode(result.data[0].b64_json) == fresh.sent[0]
    assert result.usage is not None
    assert result.usage.input_tokens_details.text_tokens == 50
    assert result.usage.input_tokens_details.image_tokens == 10
    assert result.usage.output_tokens == 1056


def test_the_openai_face_relays_the_upstreams_partial_images(gw: Gateway, fresh: OpenAIUpstream) -> None:
    """A streamed call asks the upstream for partial images and passes on what it sends."""
    key = gw.new_account()[1]
    with OpenAI(base_url=f"{gw.base_url}/v1", api_key=key, max_retries=0) as sdk:
        events = list(
            sdk.images.generate(
                model="gpt-image-2", prompt="a fox", size="1024x1024", stream=True, partial_images=2
            )
        )
    (received,) = fresh.received
    assert received.fields["stream"] is True and received.fields["partial_images"] == 2
    assert [e.type for e in events] == ["image_generation.partial_image"] * 2 + ["image_generation.completed"]
    for index, event in enumerate(events[:2]):
        picture = Image.open(io.BytesIO(base64.b64decode(event.b64_json))).convert("RGB")
        assert picture.getpixel((0, 0))[2] == 20 * index  # the upstream draws partial k in blue 20*k
    assert base64.b64decode(events[-1].b64_json) == fresh.sent[0]


async def test_streaming_turns_upstream_events_into_partial_images(fresh: OpenAIUpstream) -> None:
    """The provider on its own (over HTTP): upstream events become partial images and finals."""
    upstream_provider = OpenAIProvider(ProviderConfig.model_validate(provider("direct", fresh.base_url)))
    request = ImageRequest(
        task_id="t",
        model="gpt-image-2",
        action=Action.GENERATE,
        prompt="a fox",
        width=256,
        height=256,
        partial_images=2,
    )
    try:
        events = [event async for event in upstream_provider.run(request)]
    finally:
        await upstream_provider.aclose()
    (received,) = fresh.received
    assert received.fields["stream"] is True
    assert received.fields["partial_images"] == 2
    partials = [e for e in events if isinstance(e, PartialImage)]
    assert [p.partial_index for p in partials] == [0, 1]
    (final,) = [e for e in events if isinstance(e, FinalImage)]
    assert final.image.data == fresh.sent[0]
    assert Usage(50, 10, 1100) in events  # stream events carry output_tokens only, no details


@pytest.mark.parametrize(
    ("behaviour", "code"),
    [
        (moderation("Your request was rejected by the safety system."), "content_policy"),
        (fail(401, "Incorrect API key provided: sk-test-xxxx"), "upstream_auth"),
        (fail(403, "Forbidden"), "upstream_auth"),
        (fail(400, "Invalid size '7x7'"), "validation"),
    ],
)
def test_refusals_are_mapped_and_not_retried(
    gw: Gateway, fresh: OpenAIUpstream, behaviour: Any, code: str
) -> None:
    fresh.script(behaviour)
    task = run_failing(gw, fresh)
    assert task["error_code"] == code
    assert len(fresh.received) == 1  # a refusal is final
    if code in ("content_policy", "validation"):
        assert task["error"] == behaviour.message  # the upstream's own words
    else:
        assert "sk-" not in task["error"]  # the upstream's message may echo the key: never shown


@pytest.mark.parametrize(
    ("behaviours", "code"),
    [
        ((fail(500), fail(503)), "upstream_error"),
        ((rate_limit(0), rate_limit(0)), "rate_limit"),
        ((GARBAGE, GARBAGE), "upstream_error"),
        ((stall(3), stall(3)), "timeout"),
    ],
)
def test_transient_failures_are_retried_then_fail(
    gw: Gateway, fresh: OpenAIUpstream, behaviours: tuple[Any, ...], code: str
) -> None:
    fresh.script(*behaviours)
    task = run_failing(gw, fresh)
    assert task["error_code"] == code
    assert len(fresh.received) == 2  # the first call and its one retry


def test_retry_then_success(gw: Gateway, fresh: OpenAIUpstream) -> None:
    fresh.script(rate_limit(0))
    client = gw.user()
    task = gw.wait(client, create(client, T2I))
    assert task["status"] == "completed", task
    assert len(fresh.received) == 2
    assert client.get(task["images"][0]["url"]).content == fresh.sent[0]
    # Both calls are on the task: the rate-limited one, then the one that made the image.
    assert [(a["provider"], a["error_code"]) for a in task["attempts"]] == [
        ("primary", "rate_limit"),
        ("primary", None),
    ]
    assert all(a["started_at"] <= a["ended_at"] for a in task["attempts"])
    # The same attempts on RunAPI's service-scoped task read.
    scoped = client.get(f"/api/v1/gpt_image_2/{task['id']}").json()
    assert scoped["attempts"] == task["attempts"]


# ---------------------------------------------------------------- routes and the breaker


@pytest.fixture
def routed(upstream: OpenAIUpstream, tmp_path: Path) -> Iterator[Gateway]:
    catalog = tmp_path / "catalog.toml"
    catalog.write_text('[models."gpt-image-2"]\nroute = ["primary", "fake"]\n')
    upstream.reset()
    gateway = start_gateway(
        tmp_path / "data",
        providers=[provider("primary", upstream.base_url, max_retries=0)],
        catalog_file=catalog,
        breaker_failures=2,
        breaker_reset_s=60,
        max_attempts=1,
    )
    yield gateway
    gateway.close()


def test_fallback_along_the_route_and_the_breaker(routed: Gateway, upstream: OpenAIUpstream) -> None:
    client = routed.user()

    def served_by() -> str:
        task = routed.wait(client, create(client, T2I))
        assert task["status"] == "completed", task
        return str(task["provider"])

    upstream.script(fail(502), fail(502))
    first = routed.wait(client, create(client, T2I))
    assert first["provider"] == "fake"  # primary failed: the next on the route answered
    assert [(a["provider"], a["error_code"]) for a in first["attempts"]] == [
        ("primary", "upstream_error"),
        ("fake", None),
    ]
    assert served_by() == "fake"  # second consecutive failure: the breaker opens
    assert len(upstream.received) == 2
    skipped = routed.wait(client, create(client, T2I))
    assert len(upstream.received) == 2  # open: primary is not even called
    assert [a["provider"] for a in skipped["attempts"]] == ["fake"]  # and no attempt is made

    routed.clock.advance(61)  # half-open: one trial call goes through, and succeeds
    assert served_by() == "primary"
    assert served_by() == "primary"
    assert len(upstream.received) == 4


def test_a_refusal_does_not_fall_back(routed: Gateway, upstream: OpenAIUpstream) -> None:
    upstream.script(moderation())
    client = routed.user()
    task = routed.wait(client, create(client, T2I))
    assert task["status"] == "failed"
    assert task["error_code"] == "content_policy"
    assert task["provider"] == "primary"


def test_unknown_route_provider_stops_the_start(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.toml"
    catalog.write_text('[models."gpt-image-2"]\nroute = ["primary", "nowhere"]\n')
    settings = make_settings(
        tmp_path, catalog_file=catalog, providers=[provider("primary", "http://127.0.0.1:9")]
    )
    with pytest.raises(ValueError, match="unknown provider 'nowhere'"):
        build_providers(settings, load_catalog(catalog))


async def test_a_refusal_inside_the_stream_is_content_policy(fresh: OpenAIUpstream) -> None:
    """An output-stage block arrives as an `error` event after streaming began."""
    fresh.script(stream_moderation("The generated image was rejected."))
    upstream_provider = OpenAIProvider(ProviderConfig.model_validate(provider("direct", fresh.base_url)))
    request = ImageRequest(
        task_id="t",
        model="gpt-image-2",
        action=Action.GENERATE,
        prompt="a fox",
        width=64,
        height=64,
        partial_images=1,
    )
    events: list[object] = []
    try:
        with pytest.raises(ProviderError) as refused:
            async for event in upstream_provider.run(request):
                events.append(event)
    finally:
        await upstream_provider.aclose()
    assert (refused.value.code, refused.value.retryable) == ("content_policy", False)
    assert refused.value.message == "The generated image was rejected."
    assert len(fresh.received) == 1  # a refusal is not retried
    assert any(isinstance(e, PartialImage) for e in events)


@pytest.mark.parametrize(
    "behaviour",
    [
        moderation(),
        fail(401, "Incorrect API key provided: sk-test-xxxx"),
        fail(400, "Invalid size '7x7'"),
        fail(503),
        rate_limit(0),
        GARBAGE,
        stall(3),
    ],
)
async def test_the_plain_generate_maps_failures_as_the_sdk_does(
    fresh: OpenAIUpstream, behaviour: Any
) -> None:
    """A plain generate goes out without the SDK (openai_plain), an edit through it: the same
    upstream failure becomes the same error either way, and both send the SDK's headers."""
    config = ProviderConfig.model_validate(provider("direct", fresh.base_url, max_retries=0))
    source = png_bytes(64, 64)
    errors: list[tuple[str, str, bool]] = []
    for action in (Action.GENERATE, Action.EDIT):
        fresh.reset()
        fresh.script(behaviour)
        direct = OpenAIProvider(config)
        request = ImageRequest(
            task_id="t", model="gpt-image-2", action=action, prompt="a fox", width=64, height=64,
            sources=(SourceImage(source, "image/png"),) if action is Action.EDIT else (),
        )  # fmt: skip
        try:
            with pytest.raises(ProviderError) as failed:
                _ = [event async for event in direct.run(request)]
        finally:
            await direct.aclose()
        errors.append((failed.value.code, failed.value.message, failed.value.retryable))
        (received,) = fresh.received
        assert received.headers["authorization"] == f"Bearer {SECRET}"
        assert received.headers["user-agent"].startswith("AsyncOpenAI/Python")
    assert errors[0] == errors[1]
