"""The OpenAI face, driven by the official ``openai`` SDK against a real gateway."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai import AsyncOpenAI, OpenAI
from PIL import Image

from tests.conftest import Gateway, png_bytes, start_gateway


@pytest.fixture(scope="module")
def key(gateway: Gateway) -> str:
    return gateway.new_account()[1]


@pytest.fixture
def client(gateway: Gateway, key: str) -> Iterator[OpenAI]:
    with OpenAI(base_url=f"{gateway.base_url}/v1", api_key=key) as sdk:
        yield sdk


def decode(b64: str | None) -> Image.Image:
    assert b64, "expected b64_json in the response"
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    image.load()
    return image


def rgba_mask(width: int, height: int) -> bytes:
    """A PNG mask: transparent (editable) left half, opaque right half."""
    mask = Image.new("RGBA", (width, height), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, width // 2, height))
    buffer = io.BytesIO()
    mask.save(buffer, "PNG")
    return buffer.getvalue()


# -- generations ---------------------------------------------------------------------------------
def test_generate_returns_the_requested_size_and_metadata(client: OpenAI) -> None:
    result = client.images.generate(
        model="gpt-image-1.5", prompt="a red fox in fresh snow", size="1024x1536", quality="high"
    )
    assert result.data is not None and len(result.data) == 1
    image = decode(result.data[0].b64_json)
    assert image.format == "PNG"
    assert image.size == (1024, 1536)
    assert result.size == "1024x1536"
    assert result.quality == "high"
    assert result.output_format == "png"
    assert result.background == "opaque"
    assert result.usage is not None and result.usage.total_tokens > 0
    assert result.usage.output_tokens > 0


def test_generate_n_gives_distinct_images(client: OpenAI) -> None:
    result = client.images.generate(model="gpt-image-1.5", prompt="three green apples", n=3)
    assert result.data is not None and len(result.data) == 3
    payloads = [item.b64_json for item in result.data]
    assert len(set(payloads)) == 3
    assert all(decode(p).size == (1024, 1024) for p in payloads)


def test_generate_jpeg_with_compression(client: OpenAI) -> None:
    result = client.images.generate(
        model="gpt-image-1.5", prompt="a yellow sun", output_format="jpeg", output_compression=50
    )
    assert result.data is not None
    raw = base64.b64decode(result.data[0].b64_json or "")
    assert raw[:3] == b"\xff\xd8\xff"
    assert Image.open(io.BytesIO(raw)).format == "JPEG"
    assert result.output_format == "jpeg"


def test_generate_transparent_background(client: OpenAI) -> None:
    result = client.images.generate(
        model="gpt-image-1.5", prompt="a purple balloon", background="transparent", output_format="png"
    )
    assert result.data is not None
    image = decode(result.data[0].b64_json)
    assert image.format == "PNG"
    assert "A" in image.getbands()
    low, _high = image.getchannel("A").getextrema()
    assert low == 0, "a transparent background has fully transparent pixels"
    assert result.background == "transparent"


def test_gpt_image_2_renders_a_free_size_exactly(client: OpenAI) -> None:
    result = client.images.generate(model="gpt-image-2", prompt="a wide orange desert", size="1536x864")
    assert result.data is not None
    assert decode(result.data[0].b64_json).size == (1536, 864)
    assert result.size == "1536x864"


def test_default_model_is_used_when_none_is_given(gateway: Gateway, key: str, client: OpenAI) -> None:
    raw = client.images.with_raw_response.generate(prompt="a plain white cube")
    result = raw.parse()
    assert result.data is not None
    assert decode(result.data[0].b64_json).size == (1024, 1024)
    task_id = raw.headers["X-Imagegate-Task-Id"]
    task = gateway.client(key).get(f"/api/v1/tasks/{task_id}").json()
    assert task["model"] == gateway.settings.openai_default_model == "gpt-image-2"


def test_response_format_url_downloads_without_auth(client: OpenAI) -> None:
    result = client.images.generate(model="gpt-image-1.5", prompt="a black cat", response_format="url")
    assert result.data is not None
    url = result.data[0].url
    assert url and result.data[0].b64_json is None
    download = httpx.get(url, timeout=30, follow_redirects=True)  # no Authorization header
    assert download.status_code == 200
    assert Image.open(io.BytesIO(download.content)).size == (1024, 1024)


# -- edits ---------------------------------------------------------------------------------------
def test_edit_with_several_images(client: OpenAI) -> None:
    result = client.images.edit(
        model="gpt-image-1.5",
        image=[
            ("a.png", png_bytes(64, 64, (255, 0, 0)), "image/png"),
            ("b.png", png_bytes(48, 48, (0, 255, 0)), "image/png"),
        ],
        prompt="put them side by side",
    )
    assert result.data is not None and len(result.data) == 1
    assert decode(result.data[0].b64_json).size == (1024, 1024)
    single = client.images.edit(
        model="gpt-image-1.5",
        image=("a.png", png_bytes(64, 64, (255, 0, 0)), "image/png"),
        prompt="put them side by side",
    )
    # both uploads reached the model: two source images cost twice the input image tokens of one
    assert result.usage is not None and single.usage is not None
    assert single.usage.input_tokens_details.image_tokens > 0
    assert (
        result.usage.input_tokens_details.image_tokens == 2 * single.usage.input_tokens_details.image_tokens
    )


def test_edit_with_one_image(client: OpenAI) -> None:
    result = client.images.edit(
        model="gpt-image-1.5",
        image=("a.png", png_bytes(), "image/png"),
        prompt="make it red",
        size="1536x1024",
    )
    assert result.data is not None
    assert decode(result.data[0].b64_json).size == (1536, 1024)


def test_edit_with_a_mask(client: OpenAI) -> None:
    result = client.images.edit(
        model="gpt-image-1.5",
        image=("a.png", png_bytes(64, 64), "image/png"),
        mask=("mask.png", rgba_mask(64, 64), "image/png"),
        prompt="paint the left half red",
    )
    assert result.data is not None
    assert decode(result.data[0].b64_json).size == (1024, 1024)


def test_edit_with_a_mask_of_the_wrong_size_is_refused(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.edit(
            model="gpt-image-1.5",
            image=("a.png", png_bytes(64, 64), "image/png"),
            mask=("mask.png", rgba_mask(32, 32), "image/png"),
            prompt="paint the left half red",
        )
    assert caught.value.code == "validation"
    assert caught.value.param == "mask"


# -- errors --------------------------------------------------------------------------------------
def test_bad_key_is_an_authentication_error(gateway: Gateway) -> None:
    sdk = OpenAI(base_url=f"{gateway.base_url}/v1", api_key="ig_" + "x" * 43, max_retries=0)
    with sdk, pytest.raises(openai.AuthenticationError) as caught:
        sdk.images.generate(model="gpt-image-1.5", prompt="a cat")
    assert caught.value.status_code == 401
    assert caught.value.code == "authentication"
    assert caught.value.response.headers["WWW-Authenticate"] == "Bearer"


def test_unknown_model_is_a_validation_error(client: OpenAI) -> None:
    # docs/api.md: an unknown model is `validation` (400), like every other bad parameter.
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(model="dall-e-9", prompt="a cat")
    error = caught.value
    assert error.code == "validation"
    assert error.param == "model"
    assert isinstance(error.body, dict) and "dall-e-9" in error.body["message"]
    assert error.response.json() == {"error": error.body}


def test_size_not_offered_by_the_model(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(model="gpt-image-1.5", prompt="a cat", size="512x512")
    assert caught.value.code == "validation"
    assert caught.value.param == "size"
    assert isinstance(caught.value.body, dict) and "1024x1536" in caught.value.body["message"]


def test_too_many_images(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(model="gpt-image-1.5", prompt="a cat", n=11)
    assert caught.value.param == "n"


def test_provider_failure_is_a_502(gateway: Gateway, key: str) -> None:
    sdk = OpenAI(base_url=f"{gateway.base_url}/v1", api_key=key, max_retries=0)
    with sdk, pytest.raises(openai.APIStatusError) as caught:
        sdk.images.generate(model="gpt-image-1.5", prompt="[fail] a cat")
    error = caught.value
    assert error.status_code == 502
    assert error.code == "upstream_error"
    assert isinstance(error.body, dict)
    # The failed call is still a task on the account, and the error names it.
    task = gateway.client(key).get(f"/api/v1/tasks/{error.body['task_id']}").json()
    assert task["status"] == "failed"
    assert task["error_code"] == "upstream_error"


def test_a_slow_call_times_out_but_the_task_goes_on(tmp_path: Path) -> None:
    gw = start_gateway(tmp_path, sync_timeout_s=0.3)
    try:
        key = gw.new_account()[1]
        sdk = OpenAI(base_url=f"{gw.base_url}/v1", api_key=key, max_retries=0)
        with sdk, pytest.raises(openai.APIStatusError) as caught:
            sdk.images.generate(model="gpt-image-1.5", prompt="[stall:1] a slow snail")
        error = caught.value
        assert error.status_code == 504
        assert error.code == "timeout"
        assert isinstance(error.body, dict)
        task = gw.wait(gw.client(key), error.body["task_id"])
        assert task["status"] == "completed"
    finally:
        gw.close()


# -- tasks and models ----------------------------------------------------------------------------
def test_each_call_is_a_task_on_the_account(gateway: Gateway) -> None:
    key = gateway.new_account()[1]
    with OpenAI(base_url=f"{gateway.base_url}/v1", api_key=key) as sdk:
        raw = sdk.images.with_raw_response.generate(model="gpt-image-1.5", prompt="a blue whale")
    assert raw.status_code == 200
    assert raw.parse().data
    task_id = raw.headers["X-Imagegate-Task-Id"]
    listing = gateway.client(key).get("/api/v1/tasks")
    assert listing.status_code == 200
    tasks = listing.json()["data"]
    assert [t["id"] for t in tasks] == [task_id]
    task = tasks[0]
    assert task["status"] == "completed"
    assert task["model"] == "gpt-image-1.5"
    assert task["service"] == "gpt_image"
    assert task["action"] == "text_to_image"
    assert len(task["images"]) == 1
    assert (task["images"][0]["width"], task["images"][0]["height"]) == (1024, 1024)
    # gpt-image-1.5 is deprecated: its responses say so, and point at the successor's page
    assert raw.headers["Deprecation"]
    assert raw.headers["Sunset"] == "Tue, 01 Dec 2026 00:00:00 GMT"
    link = raw.headers["Link"]
    assert link == f'<{gateway.base_url}/models/gpt-image-2.md>; rel="successor-version"'
    assert gateway.client().get(link[1 : link.index(">")]).status_code == 200


def test_models_list_shows_the_shutdown_date(client: OpenAI) -> None:
    models = {model.id: model for model in client.models.list()}
    assert {"gpt-image-1.5", "gpt-image-2"} <= set(models)
    old = models["gpt-image-1.5"]
    assert old.shutdown_date == "2026-12-01"
    assert old.to_dict()["shutdown_date"] == "2026-12-01"
    assert old.to_dict()["successor"] == "gpt-image-2"
    assert models["gpt-image-2"].shutdown_date is None


async def test_async_client_generates(gateway: Gateway, key: str) -> None:
    async with AsyncOpenAI(base_url=f"{gateway.base_url}/v1", api_key=key) as sdk:
        result = await sdk.images.generate(model="gpt-image-2", prompt="a green leaf", size="1024x1536")
    assert result.data is not None
    assert decode(result.data[0].b64_json).size == (1024, 1536)
