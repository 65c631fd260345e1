"""An operator adds a model from TOML, routed to a second OpenAI-compatible upstream with the
first as its fallback; and the zero-configuration `openai` provider through `imagegate serve`."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from imagegate.providers.base import Action, ImageRequest, ProviderError, Retrying
from imagegate.providers.config import ProviderConfig
from imagegate.providers.openai_images import OpenAIProvider
from imagegate.providers.testing_upstream import OpenAIUpstream, fail
from tests.conftest import Gateway, start_gateway
from tests.profiles import Profile
from tests.serving import Start

KEY_ENV = "IMAGEGATE_TEST_OPERATOR_KEY"
CATALOG = """
[lines.house]
title = "House Image"
service = "house_image"
vendor = "Example Labs"
summary = "An image model served by a second OpenAI-compatible upstream."

[models."house-image-1"]
line = "house"
display_name = "House Image 1"
version = "1"
upstream_model = "vendor-x/image-large"
actions = ["text_to_image", "edit_image"]
like = "gpt-image-2"
route = ["second", "primary"]

[models."house-image-1".pricing]
by = "output_resolution"
matrix = { "1k" = 25_000, "2k" = 50_000, "4k" = 90_000 }

[models."house-image-1".token_prices]
text_in = 1_000_000
image_in = 2_000_000
image_out = 10_000_000
cached_text_in = 500_000
cached_image_in = 1_000_000
"""


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[OpenAIUpstream, OpenAIUpstream]]:
    os.environ[KEY_ENV] = "sk-test-operator"
    with OpenAIUpstream() as primary, OpenAIUpstream() as second:
        yield primary, second
    del os.environ[KEY_ENV]


@pytest.fixture(scope="module")
def gw(
    profile: Profile,
    upstreams: tuple[OpenAIUpstream, OpenAIUpstream],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Gateway]:
    root = tmp_path_factory.mktemp("operator")
    (root / "catalog.toml").write_text(CATALOG)
    providers = [
        {
            "name": name,
            "kind": "openai",
            "api_key_env": KEY_ENV,
            "base_url": upstream.base_url,
            "max_retries": 0,
        }
        for name, upstream in zip(("primary", "second"), upstreams, strict=True)
    ]
    gateway = start_gateway(
        root / "data",
        providers=providers,
        default_provider="primary",
        catalog_file=root / "catalog.toml",
        max_attempts=1,
        free_calls_per_variant=0,
    )
    yield gateway
    gateway.close()


def test_added_model_is_listed_and_served_by_its_own_upstream(
    gw: Gateway, upstreams: tuple[OpenAIUpstream, OpenAIUpstream]
) -> None:
    primary, second = upstreams
    primary.reset()
    second.reset()
    listed = httpx.get(f"{gw.base_url}/v1/models").json()
    assert "house-image-1" in [m["id"] for m in listed["data"]]
    assert "house-image-1" in httpx.get(f"{gw.base_url}/models.md").text
    page = httpx.get(f"{gw.base_url}/models/house-image-1.md").text
    assert 'served_by: "second"' in page  # the page says who serves it

    client = gw.user()
    created = client.post(
        "/api/v1/house_image/text_to_image", json={"model": "house-image-1", "prompt": "a fox"}
    )
    assert created.status_code == 200, created.text
    task = gw.wait(client, created.json()["id"])
    assert task["status"] == "completed" and task["provider"] == "second", task
    assert [r.fields["model"] for r in second.received] == ["vendor-x/image-large"]  # the catalog's name
    assert primary.received == []
    assert task["billing"]["settlement"]["amount_micro"] == 25_000

    # The OpenAI face, through the official SDK: the same route, the upstream's bytes relayed.
    key = gw.new_account()[1]
    with OpenAI(base_url=f"{gw.base_url}/v1", api_key=key, max_retries=0) as sdk:
        result = sdk.images.generate(model="house-image-1", prompt="a fox", size="1024x1024")
    assert result.data is not None and result.data[0].b64_json is not None
    assert base64.b64decode(result.data[0].b64_json) == second.sent[-1]


def test_added_model_falls_back_to_the_first_upstream(
    gw: Gateway, upstreams: tuple[OpenAIUpstream, OpenAIUpstream]
) -> None:
    primary, second = upstreams
    primary.reset()
    second.reset()
    second.script(fail(503))
    client = gw.user()
    created = client.post(
        "/api/v1/house_image/text_to_image", json={"model": "house-image-1", "prompt": "a fox"}
    )
    task = gw.wait(client, created.json()["id"])
    assert task["status"] == "completed" and task["provider"] == "primary", task
    assert [(a["provider"], a["error_code"]) for a in task["attempts"]] == [
        ("second", "upstream_error"),
        ("primary", None),
    ]
    assert [r.fields["model"] for r in primary.received] == ["vendor-x/image-large"]


async def test_connection_refused_is_retryable_and_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing listens on the port: each call is an attempt, then a retryable upstream_error."""
    monkeypatch.setenv(KEY_ENV, "sk-test-operator")
    config = ProviderConfig(
        name="down", kind="openai", api_key_env=KEY_ENV, base_url="http://127.0.0.1:9/v1",
        max_retries=2, retry_base_s=0.0, retry_cap_s=0.0,
    )  # fmt: skip
    provider = OpenAIProvider(config)
    request = ImageRequest(
        task_id="t", model="gpt-image-2", action=Action.GENERATE, prompt="x", width=64, height=64
    )
    retries: list[str] = []
    try:
        with pytest.raises(ProviderError) as failed:
            async for event in provider.run(request):
                if isinstance(event, Retrying):
                    retries.append(event.error_code)
    finally:
        await provider.aclose()
    assert failed.value.code == "upstream_error" and failed.value.retryable
    assert retries == ["upstream_error", "upstream_error"]


def test_serve_with_only_openai_api_key_routes_gpt_image_to_it(serve: Start, tmp_path: Path) -> None:
    """Zero configuration: OPENAI_API_KEY (and OPENAI_BASE_URL, as the openai package reads it)."""
    with OpenAIUpstream() as upstream:
        server = serve(tmp_path, OPENAI_API_KEY="sk-test-zero-config", OPENAI_BASE_URL=upstream.base_url)
        lines = [line.strip() for line in server.banner]
        assert f"gpt-image-2 served by openai (OpenAI Images API at {upstream.base_url}/)" in lines, lines
        assert server.demo_key is not None
        with OpenAI(base_url=f"{server.base_url}/v1", api_key=server.demo_key, max_retries=0) as sdk:
            result = sdk.images.generate(model="gpt-image-2", prompt="a fox", size="1024x1024")
        assert result.data is not None and result.data[0].b64_json is not None
        assert base64.b64decode(result.data[0].b64_json) == upstream.sent[0]
        (received,) = upstream.received
        assert received.headers["authorization"] == "Bearer sk-test-zero-config"
        page = httpx.get(f"{server.base_url}/models/gpt-image-2.md", timeout=10).text
        assert "passing each request on to OpenAI" in page
        # The README's call with a key, as written there, against this server.
        command = readme_openai_curl().replace("http://127.0.0.1:8000", server.base_url)
        command = command.replace("ig_…", server.demo_key).replace("python3", sys.executable)
        subprocess.run(["sh", "-c", command], cwd=tmp_path, check=True, timeout=60)
        assert (tmp_path / "fox.png").read_bytes() == upstream.sent[1]
        server.stop()


def readme_openai_curl() -> str:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    blocks = readme.split("```sh\n")[1:]
    (block,) = [b.split("```")[0] for b in blocks if "/v1/images/generations" in b]
    return block.replace("\\\n", " ")
