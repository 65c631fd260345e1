"""The catalog over HTTP: Markdown pages, JSON documents, and operator overrides."""

from __future__ import annotations

import io
import json
import re
import shlex
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.conftest import Gateway, start_gateway

MARKDOWN = "text/markdown"

RETIRE_15 = """
[models."gpt-image-1.5".lifecycle]
shutdown_date = "2026-01-01"
"""

PRICE_AND_NEW_MODEL = """
[models."gpt-image-1.5".pricing]
matrix = { medium = 50000, high = 300000 }

[models."gpt-image-2-mini"]
like = "gpt-image-2"
line = "gpt-image-2"
display_name = "GPT Image 2 Mini"
version = "2-mini"
upstream_model = "gpt-image-2-mini"
actions = ["text_to_image", "edit_image"]
"""


@pytest.fixture(scope="module")
def anonymous(gateway: Gateway) -> httpx.Client:
    return gateway.client()


def front_matter(text: str) -> dict[str, Any]:
    """The YAML front matter of a page: flat ``key: value`` lines with JSON-style scalars."""
    assert text.startswith("---\n"), text[:200]
    block = text[4 : text.index("\n---\n", 4)]
    values: dict[str, Any] = {}
    for row in block.splitlines():
        key, _, raw = row.partition(": ")
        values[key] = json.loads(raw)
    return values


def section(text: str, heading: str) -> str:
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def markdown(client: httpx.Client, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(MARKDOWN)
    return response.text


def quickstart_request(page: str) -> tuple[str, dict[str, Any]]:
    """The URL and JSON body of the quickstart's curl command, as a reader would copy them."""
    block = re.search(r"```sh\n(curl -X POST .*?)\n```", section(page, "Quickstart"), re.S)
    assert block, "the quickstart has a curl command"
    argv = shlex.split(block.group(1).replace("\\\n", " "))
    assert argv[:3] == ["curl", "-X", "POST"]
    return argv[3], json.loads(argv[argv.index("-d") + 1])


Starter = Callable[..., Gateway]


@pytest.fixture
def start_with_catalog(tmp_path: Path) -> Iterator[Starter]:
    """Start a gateway whose catalog override file holds the given TOML (closed at teardown)."""
    started: list[Gateway] = []

    def start(toml: str, **settings: Any) -> Gateway:
        path = tmp_path / "catalog.toml"
        path.write_text(toml, encoding="utf-8")
        gw = start_gateway(tmp_path / "data", catalog_file=path, **settings)
        started.append(gw)
        return gw

    yield start
    for gw in started:
        gw.close()


# -- pages ---------------------------------------------------------------------------------------
def test_models_index(gateway: Gateway, anonymous: httpx.Client) -> None:
    text = markdown(anonymous, "/models.md")
    meta = front_matter(text)
    assert meta["url"] == f"{gateway.base_url}/models.md"
    assert meta["model_count"] == 7
    for line in ("gpt-image", "gpt-image-2", "gpt-image-2-5", "gpt-image-2-6"):
        assert f"]({gateway.base_url}/models/{line}.md)" in text
    assert "`1.5-text-to-image`" in text
    assert "`2.5-sunburst-image-to-image`" in text


def test_line_page(gateway: Gateway, anonymous: httpx.Client) -> None:
    text = markdown(anonymous, "/models/gpt-image.md")
    meta = front_matter(text)
    assert meta["price_from_cents"] == 4
    assert meta["canonical"] == f"{gateway.base_url}/models/gpt-image.md"
    assert meta["shutdown_date"] == "2026-12-01"
    assert meta["successor"] == "gpt-image-2"
    variants = section(text, "Variants")
    rows = [row for row in variants.splitlines() if row.startswith("| ") and "`" in row]
    slugs = {re.search(r"`([^`]+)`", row).group(1) for row in rows}  # type: ignore[union-attr]
    # gpt-image-1 (retired 2026-10-23, still accepted) is listed with its status
    assert slugs == {"1.5-text-to-image", "1.5-image-to-image", "1-text-to-image", "1-image-to-image"}
    assert f"{gateway.base_url}/models/gpt-image/1.5-text-to-image.md" in variants
    assert "$0.040" in variants
    url, body = quickstart_request(text)
    assert url == f"{gateway.base_url}/api/v1/gpt_image/text_to_image"
    assert body["model"] == "gpt-image-1.5"


def test_a_model_id_shows_its_line_page(anonymous: httpx.Client) -> None:
    assert markdown(anonymous, "/models/gpt-image-1.5.md") == markdown(anonymous, "/models/gpt-image.md")


def test_variant_page_lists_the_input_contract(gateway: Gateway, anonymous: httpx.Client) -> None:
    text = markdown(anonymous, "/models/gpt-image/1.5-text-to-image.md")
    meta = front_matter(text)
    assert meta["model_id"] == "gpt-image-1.5"
    assert meta["variant"] == "1.5-text-to-image"
    contract = section(text, "Input contract")
    fields = re.findall(r"^\| `([a-z_]+)` \|", contract, re.M)
    assert {"model", "prompt", "aspect_ratio", "quality"} <= set(fields)
    assert "source_image_urls" not in fields  # edit-only
    quality = next(row for row in contract.splitlines() if row.startswith("| `quality`"))
    assert "`medium`, `high`" in quality and "| yes |" in quality
    assert f"POST {gateway.base_url}/api/v1/gpt_image/text_to_image" in text


def test_gpt_image_2_variant_page(anonymous: httpx.Client) -> None:
    text = markdown(anonymous, "/models/gpt-image-2/2-image-to-image.md")
    meta = front_matter(text)
    assert meta["model_id"] == "gpt-image-2"
    assert meta["price_from_cents"] == 6
    fields = re.findall(r"^\| `([a-z_]+)` \|", section(text, "Input contract"), re.M)
    assert {"prompt", "aspect_ratio", "output_resolution", "source_image_urls"} <= set(fields)
    assert "Rules across fields" in text


@pytest.mark.parametrize(
    "path", ["/models/no-such-model.md", "/models/gpt-image/9-text-to-image.md", "/models/x/y/z.md"]
)
def test_unknown_page_is_a_404_envelope(anonymous: httpx.Client, path: str) -> None:
    response = anonymous.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == "not_found"
    assert error["message"]


def test_models_json(gateway: Gateway, anonymous: httpx.Client) -> None:
    response = anonymous.get("/api/v1/models")
    assert response.status_code == 200
    models = {m["id"]: m for m in response.json()["data"]}
    assert set(models) == {
        "gpt-image-1",
        "gpt-image-1.5",
        "gpt-image-2",
        "gpt-image-2.5-flare",
        "gpt-image-2.5-sunburst",
        "gpt-image-2.6-flare",
        "gpt-image-2.6-sunburst",
    }
    for model in models.values():
        assert model["actions"], model["id"]
        for action in model["actions"]:
            assert "prompt" in action["input_contract"]["fields"]
            assert action["price"]["currency"] == "USD"
            assert all(isinstance(v, int) for v in action["price"]["matrix_micro"].values())
            assert action["endpoint"].startswith(f"{gateway.base_url}/api/v1/{model['service']}/")
    t2i = models["gpt-image-1.5"]["actions"][0]
    assert t2i["action"] == "text_to_image"
    assert t2i["price"]["matrix_micro"] == {"medium": 40_000, "high": 220_000}
    assert t2i["price"]["from_micro"] == 40_000
    assert t2i["input_contract"]["fields"]["aspect_ratio"]["enum"] == ["1:1", "2:3", "3:2"]
    edit = models["gpt-image-2"]["actions"][1]
    assert edit["input_contract"]["fields"]["source_image_urls"]["max_items"] == 16
    assert models["gpt-image-2"]["actions"][0]["input_contract"]["rules"]
    assert models["gpt-image-1.5"]["lifecycle"]["shutdown_date"] == "2026-12-01"


def test_openai_models_list(anonymous: httpx.Client) -> None:
    response = anonymous.get("/v1/models")
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    models = {m["id"]: m for m in body["data"]}
    assert models["gpt-image-1.5"]["object"] == "model"
    assert models["gpt-image-1.5"]["shutdown_date"] == "2026-12-01"
    assert models["gpt-image-2"]["shutdown_date"] is None


def test_llms_txt(gateway: Gateway, anonymous: httpx.Client) -> None:
    response = anonymous.get("/llms.txt")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert text.startswith("# imagegate")
    assert f"{gateway.base_url}/models.md" in text
    assert f"{gateway.base_url}/models/gpt-image-2/2-text-to-image.md" in text
    assert f"{gateway.base_url}/api/v1/models" in text


def test_the_quickstart_works(gateway: Gateway, anonymous: httpx.Client) -> None:
    url, body = quickstart_request(markdown(anonymous, "/models/gpt-image.md"))
    user = gateway.user()
    created = user.post(url, json=body)
    assert created.status_code == 200, created.text
    task = gateway.wait(user, created.json()["id"])
    assert task["status"] == "completed", task
    assert task["model"] == body["model"]
    assert len(task["images"]) == 1


# -- operator overrides --------------------------------------------------------------------------
RETIRED_REQUEST = {"model": "gpt-image-1.5", "prompt": "a harbour", "aspect_ratio": "3:2", "quality": "high"}


def test_a_retired_model_is_served_by_its_successor(start_with_catalog: Starter, tmp_path: Path) -> None:
    overridden = start_with_catalog(RETIRE_15)
    user = overridden.user()
    created = user.post("/api/v1/gpt_image/text_to_image", json=RETIRED_REQUEST)
    assert created.status_code == 200, created.text
    assert created.json()["model"] == "gpt-image-1.5"
    assert created.json()["model_served"] == "gpt-image-2"
    task = overridden.wait(user, created.json()["id"])
    assert task["status"] == "completed", task
    assert (task["model"], task["model_served"]) == ("gpt-image-1.5", "gpt-image-2")

    # gpt-image-1.5's contract holds: 3:2 is 1536x1024 at any quality (not gpt-image-2's 2k size)
    expected = (1536, 1024)
    image = task["images"][0]
    assert (image["width"], image["height"]) == expected
    download = overridden.client().get(image["url"])
    assert download.status_code == 200
    assert Image.open(io.BytesIO(download.content)).size == expected

    page = markdown(overridden.client(), "/models/gpt-image.md")
    assert front_matter(page)["retired"] is True
    assert "**Retired.**" in page
    assert "was shut down on 2026-01-01" in page
    models = {m["id"]: m for m in overridden.client().get("/api/v1/models").json()["data"]}
    assert models["gpt-image-1.5"]["lifecycle"]["retired"] is True
    assert models["gpt-image-1.5"]["lifecycle"]["served_as"] == "gpt-image-2"


def test_a_retired_model_is_refused_when_the_operator_says_so(start_with_catalog: Starter) -> None:
    overridden = start_with_catalog(RETIRE_15, retired_models="refuse")
    user = overridden.user()
    response = user.post("/api/v1/gpt_image/text_to_image", json=RETIRED_REQUEST)
    assert response.status_code == 410
    error = response.json()["error"]
    assert error["code"] == "model_retired"
    assert error["successor"] == "gpt-image-2"
    assert "gpt-image-2" in error["message"]
    openai_face = user.post("/v1/images/generations", json={"model": "gpt-image-1.5", "prompt": "a harbour"})
    assert openai_face.status_code == 410
    assert openai_face.json()["error"]["code"] == "model_retired"
    assert user.get("/api/v1/tasks").json()["data"] == []  # nothing was queued

    page = markdown(overridden.client(), "/models/gpt-image.md")
    assert "HTTP 410" in page and "`model_retired`" in page


def test_an_operator_price_override_shows_everywhere(start_with_catalog: Starter) -> None:
    overridden = start_with_catalog(PRICE_AND_NEW_MODEL)
    anonymous = overridden.client()
    page = markdown(anonymous, "/models/gpt-image.md")
    assert front_matter(page)["price_from_cents"] == 5
    assert "$0.050" in section(page, "Variants")
    assert "$0.300" in section(page, "Variants")
    assert "$0.040" not in page
    assert "$0.050" in markdown(anonymous, "/models/gpt-image/1.5-text-to-image.md")
    models = {m["id"]: m for m in anonymous.get("/api/v1/models").json()["data"]}
    price = models["gpt-image-1.5"]["actions"][0]["price"]
    assert price["matrix_micro"] == {"medium": 50_000, "high": 300_000}
    assert price["from_micro"] == 50_000


def test_an_operator_can_add_a_model(start_with_catalog: Starter) -> None:
    overridden = start_with_catalog(PRICE_AND_NEW_MODEL)
    anonymous = overridden.client()
    listed = [m["id"] for m in anonymous.get("/v1/models").json()["data"]]
    assert "gpt-image-2-mini" in listed
    page = markdown(anonymous, "/models/gpt-image-2/2-mini-text-to-image.md")
    assert front_matter(page)["model_id"] == "gpt-image-2-mini"
    assert "`2-mini-text-to-image`" in markdown(anonymous, "/models/gpt-image-2.md")

    user = overridden.user()
    created = user.post(
        "/api/v1/gpt_image_2/text_to_image",
        json={
            "model": "gpt-image-2-mini",
            "prompt": "a kite",
            "aspect_ratio": "16:9",
            "output_resolution": "1k",
        },
    )
    assert created.status_code == 200, created.text
    task = overridden.wait(user, created.json()["id"])
    assert task["status"] == "completed", task
    assert task["model_served"] == "gpt-image-2-mini"
    assert task["variant"] == "gpt-image-2-mini-text-to-image"
    assert (task["images"][0]["width"], task["images"][0]["height"]) == (1024, 576)
