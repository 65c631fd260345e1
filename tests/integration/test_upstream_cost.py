"""Upstream usage and cost per task, and the operator's margin report (HTTP and CLI).

A real gateway whose `openai` provider calls the loopback OpenAI upstream; the upstream
answers OpenAI's usage object (50 text and 10 image tokens in, 1056 image tokens out).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from imagegate.billing.upstream_cost import task_cost_micro, token_cost_micro
from imagegate.catalog import load_catalog
from imagegate.providers.testing_upstream import OpenAIUpstream, moderation
from tests.conftest import ADMIN_TOKEN, TEST_EPOCH, Gateway, start_gateway
from tests.profiles import Profile, gateway_env

KEY_ENV = "IMAGEGATE_TEST_COST_KEY"
IMAGEGATE = Path(sys.executable).parent / "imagegate"
DAY = TEST_EPOCH.date().isoformat()
# 50 x $5 + 10 x $8 + 1056 x $30 per 1M tokens, in micro-dollars.
GPT_IMAGE_2_COST = (50 * 5_000_000 + 10 * 8_000_000 + 1056 * 30_000_000) // 1_000_000


@pytest.fixture(scope="module")
def upstream() -> Iterator[OpenAIUpstream]:
    os.environ[KEY_ENV] = "sk-test-cost"
    with OpenAIUpstream() as server:
        yield server
    del os.environ[KEY_ENV]


@pytest.fixture(scope="module")
def gw(
    profile: Profile, upstream: OpenAIUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    root = tmp_path_factory.mktemp("cost")
    catalog = root / "catalog.toml"
    # 2.5 flare is drawn offline here: its usage is made up and must cost nothing.
    catalog.write_text('[models."gpt-image-2.5-flare"]\nroute = ["offline"]\n')
    gateway = start_gateway(
        root / "data",
        providers=[
            {"name": "openai", "kind": "openai", "api_key_env": KEY_ENV, "base_url": upstream.base_url}
        ],
        default_provider="openai",
        catalog_file=catalog,
        catalog_date="2026-12-02",  # gpt-image-1.5 is retired: gpt-image-2 serves it
        max_attempts=1,
        free_calls_per_variant=0,
    )
    yield gateway
    gateway.close()


def run(gw: Gateway, client: httpx.Client, service: str, body: dict[str, Any]) -> dict[str, Any]:
    created = client.post(f"/api/v1/{service}/text_to_image", json=body)
    assert created.status_code == 200, created.text
    return gw.wait(client, created.json()["id"])


def test_cost_from_token_prices_is_integer_and_rounded() -> None:
    prices = load_catalog().token_prices("gpt-image-2")
    assert prices is not None
    usage = {"input_text_tokens": 50, "input_image_tokens": 10, "output_image_tokens": 1056}
    assert token_cost_micro(prices, usage) == GPT_IMAGE_2_COST == 32_010
    assert token_cost_micro(prices, {"input_text_tokens": 1}) == 5  # $5 per 1M: 5 micro-dollars
    assert token_cost_micro(prices, {"input_text_tokens": 3, "output_image_tokens": 0}) == 15
    assert token_cost_micro(prices, {"output_image_tokens": 1}) == 30
    one_five = load_catalog().token_prices("gpt-image-1.5")
    assert one_five is not None and token_cost_micro(one_five, {"output_image_tokens": 1056}) == 33_792
    assert task_cost_micro(prices, usage, placeholder=True) == 0
    assert task_cost_micro(None, usage, placeholder=False) == 0
    assert task_cost_micro(prices, None, placeholder=False) == 0


def test_usage_cost_and_margins(gw: Gateway, upstream: OpenAIUpstream, tmp_path: Path) -> None:
    upstream.reset()
    client = gw.user()
    done = run(gw, client, "gpt_image_2", {"model": "gpt-image-2", "prompt": "a fox", "aspect_ratio": "1:1"})
    assert done["status"] == "completed", done
    assert done["usage"]["input_text_tokens"] == 50 and done["usage"]["output_image_tokens"] == 1056
    assert "upstream_cost_micro" not in done and "upstream_cost_micro" not in done["usage"]  # operator's only

    upstream.script(moderation())
    refused = run(gw, client, "gpt_image_2", {"model": "gpt-image-2", "prompt": "no", "aspect_ratio": "1:1"})
    assert refused["status"] == "failed" and refused["error_code"] == "content_policy"

    retired = run(
        gw,
        client,
        "gpt_image",
        {"model": "gpt-image-1.5", "prompt": "a fox", "aspect_ratio": "1:1", "quality": "medium"},
    )
    assert retired["status"] == "completed" and retired["model_served"] == "gpt-image-2", retired
    # The upstream is asked for the model the catalog names for the successor.
    assert [r.fields["model"] for r in upstream.received] == ["gpt-image-2", "gpt-image-2", "gpt-image-2"]

    offline = run(gw, client, "gpt_image_2_5", {"model": "gpt-image-2.5-flare", "prompt": "a fox"})
    assert offline["status"] == "completed" and offline["provider"] == "offline", offline

    report = gw.admin().get("/admin/usage", params={"from": DAY, "to": DAY})
    assert report.status_code == 200, report.text
    rows = {row["model"]: row for row in report.json()["data"]}
    assert rows["gpt-image-2"] == {
        "date": DAY,
        "model": "gpt-image-2",
        "calls": 2,
        "completed": 1,
        "charged_micro": 60_000,
        "upstream_cost_micro": GPT_IMAGE_2_COST,
        "margin_micro": 60_000 - GPT_IMAGE_2_COST,
    }
    sold_as_retired = rows["gpt-image-1.5"]  # sold at 1.5's price, costed at gpt-image-2's tokens
    assert (sold_as_retired["charged_micro"], sold_as_retired["upstream_cost_micro"]) == (
        40_000,
        GPT_IMAGE_2_COST,
    )
    assert rows["gpt-image-2.5-flare"]["upstream_cost_micro"] == 0  # offline: no upstream cost
    assert rows["gpt-image-2.5-flare"]["margin_micro"] == rows["gpt-image-2.5-flare"]["charged_micro"] > 0
    totals = report.json()["totals"]
    assert totals["calls"] == 4 and totals["upstream_cost_micro"] == 2 * GPT_IMAGE_2_COST
    assert totals["margin_micro"] == totals["charged_micro"] - totals["upstream_cost_micro"]

    assert gw.client().get("/admin/usage").status_code == 401  # the admin token only
    assert gw.user().get("/admin/usage").status_code == 401

    # The admin CLI reads the same figures from the database.
    env = gateway_env(gw.settings.data_dir)
    cli = subprocess.run(
        [str(IMAGEGATE), "usage", "--admin", "--from", DAY, "--to", DAY, "--json"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["data"] == report.json()["data"]
    table = subprocess.run(
        [str(IMAGEGATE), "usage", "--admin", "--from", DAY, "--to", DAY],
        env={**env, "COLUMNS": "200"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert table.returncode == 0, table.stderr
    assert "gpt-image-1.5" in table.stdout and "$0.03201" in table.stdout


def test_admin_usage_refuses_a_bad_window(gw: Gateway) -> None:
    admin = gw.admin()
    assert admin.get("/admin/usage", params={"from": "2026-11-30", "to": "2026-11-01"}).status_code == 400
    assert admin.get("/admin/usage", params={"from": "yesterday"}).json()["error"]["param"] == "from"
    assert ADMIN_TOKEN  # the token the fixture's admin client sends
