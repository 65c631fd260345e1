"""On and after a shutdown date every surface says the same; the pricing page and support FAQ.

gpt-image-1.5 shuts down on 2026-12-01 (the date itself counts) and gpt-image-1 went on
2026-10-23 to gpt-image-1.5, so after 2026-12-01 it resolves along the chain to gpt-image-2.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from imagegate.clock import ManualClock
from imagegate.limits.tiers import Tier
from tests.conftest import Gateway, start_gateway
from tests.profiles import Profile

ON_THE_DAY = datetime(2026, 12, 1, 0, 0, 5, tzinfo=UTC)
THE_DAY_BEFORE = datetime(2026, 11, 30, 23, 50, tzinfo=UTC)


@pytest.fixture(scope="module")
def on_the_day(profile: Profile, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = start_gateway(tmp_path_factory.mktemp("on-the-day"), clock=ManualClock(ON_THE_DAY))
    yield gw
    gw.close()


@pytest.fixture(scope="module")
def day_before(profile: Profile, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = start_gateway(tmp_path_factory.mktemp("day-before"), clock=ManualClock(THE_DAY_BEFORE))
    yield gw
    gw.close()


def front_matter(text: str) -> dict[str, Any]:
    block = text[4 : text.index("\n---\n", 4)]
    return {k: json.loads(v) for k, _, v in (row.partition(": ") for row in block.splitlines())}


def faq_answer(page: str, question: str) -> str:
    match = re.search(rf"^### {re.escape(question)}\n\n(.*?)(?=\n\n### |\n\n## |\n*\Z)", page, re.M | re.S)
    assert match, f"no FAQ entry {question!r}"
    return match.group(1)


def page(client: httpx.Client, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/markdown")
    return response.text


def by_id(client: httpx.Client, path: str) -> dict[str, dict[str, Any]]:
    return {m["id"]: m for m in client.get(path).json()["data"]}


def schedule_statuses(client: httpx.Client, model: str) -> set[str]:
    entries = client.get("/api/v1/price_schedules", params={"model": model}).json()["price_schedules"]
    assert entries, model
    return {entry["catalog_status"] for entry in entries}


# -- every surface, on the day and the day before --------------------------------------------------
def test_on_the_shutdown_date_every_surface_says_retired(on_the_day: Gateway) -> None:
    anonymous = on_the_day.client()
    line = page(anonymous, "/models/gpt-image.md")
    assert front_matter(line)["retired"] is True
    assert "**Retired.** GPT Image 1.5 (`gpt-image-1.5`) was shut down on 2026-12-01" in line
    after = faq_answer(line, "What happens after the shutdown date?")
    assert (
        "requests for `gpt-image-1.5` working: they are served by gpt-image-2 at the same size and price"
        in after
    )
    assert f"gpt-image-2: [its page]({on_the_day.base_url}/models/gpt-image-2.md)" in after
    # gpt-image-1 follows the chain past the retired gpt-image-1.5
    assert (
        "requests for `gpt-image-1` working: they are served by gpt-image-2 at the same size and price"
        in after
    )
    assert "Start with `gpt-image-2`" in faq_answer(line, "Which variant should I start with?")
    variant = page(anonymous, "/models/gpt-image/1.5-text-to-image.md")
    assert front_matter(variant)["retired"] is True
    index = page(anonymous, "/models.md")
    assert (
        "| gpt-image-1.5 | $0.040 (medium) / $0.220 (high) | retired 2026-12-01, served by `gpt-image-2` |"
        in index
    )
    assert (
        "| gpt-image-1 | $0.040 (medium) / $0.220 (high) | retired 2026-10-23, served by `gpt-image-2` |"
        in index
    )

    openai_list = by_id(anonymous, "/v1/models")
    for name in ("gpt-image-1.5", "gpt-image-1"):
        assert (openai_list[name]["retired"], openai_list[name]["served_by"]) == (True, "gpt-image-2")
    assert (openai_list["gpt-image-2"]["retired"], openai_list["gpt-image-2"]["served_by"]) == (
        False,
        "gpt-image-2",
    )

    documents = by_id(anonymous, "/api/v1/models")
    for name in ("gpt-image-1.5", "gpt-image-1"):
        assert documents[name]["lifecycle"]["retired"] is True
        assert documents[name]["lifecycle"]["served_as"] == "gpt-image-2"

    assert schedule_statuses(anonymous, "gpt-image-1.5") == {"retired"}
    assert schedule_statuses(anonymous, "gpt-image-1") == {"retired"}
    assert schedule_statuses(anonymous, "gpt-image-2") == {"active"}
    entry = anonymous.get("/api/v1/price_schedules", params={"model": "gpt-image-1.5"}).json()
    # It keeps its own price while gpt-image-2 serves it.
    assert entry["price_schedules"][0]["billing_config"]["matrix_micro"] == {
        "medium": 40_000,
        "high": 220_000,
    }
    assert entry["price_schedules"][0]["lifecycle"]["served_by"] == "gpt-image-2"

    user = on_the_day.user()
    created = user.post(
        "/api/v1/gpt_image/text_to_image",
        json={"model": "gpt-image-1.5", "prompt": "a pier", "aspect_ratio": "1:1", "quality": "medium"},
    )
    assert created.json()["model_served"] == "gpt-image-2"


def test_the_day_before_every_surface_says_deprecated(day_before: Gateway) -> None:
    anonymous = day_before.client()
    line = page(anonymous, "/models/gpt-image.md")
    assert "retired" not in front_matter(line)
    assert "**Deprecated.** GPT Image 1.5 (`gpt-image-1.5`)" in line
    after = faq_answer(line, "What happens after the shutdown date?")
    assert "On and after 2026-12-01, this deployment keeps requests for `gpt-image-1.5` working" in after
    openai_list = by_id(anonymous, "/v1/models")
    assert (openai_list["gpt-image-1.5"]["retired"], openai_list["gpt-image-1.5"]["served_by"]) == (
        False,
        "gpt-image-1.5",
    )
    assert openai_list["gpt-image-1"]["served_by"] == "gpt-image-1.5"  # one step of the chain so far
    assert by_id(anonymous, "/api/v1/models")["gpt-image-1.5"]["lifecycle"]["retired"] is False
    assert schedule_statuses(anonymous, "gpt-image-1.5") == {"active"}
    assert schedule_statuses(anonymous, "gpt-image-1") == {"retired"}


def test_with_the_refuse_policy_retired_means_refused_everywhere(tmp_path: Path) -> None:
    gw = start_gateway(tmp_path, clock=ManualClock(ON_THE_DAY), retired_models="refuse")
    try:
        anonymous = gw.client()
        assert by_id(anonymous, "/v1/models")["gpt-image-1.5"]["served_by"] is None
        assert schedule_statuses(anonymous, "gpt-image-1.5") == {"retired_refused"}
        assert "HTTP 410" in faq_answer(
            page(anonymous, "/models/gpt-image.md"), "What happens after the shutdown date?"
        )
        user = gw.user()
        refused = user.post(
            "/api/v1/gpt_image/text_to_image",
            json={"model": "gpt-image-1", "prompt": "a pier", "aspect_ratio": "1:1", "quality": "medium"},
        )
        assert refused.status_code == 410
        assert refused.json()["error"]["code"] == "model_retired"
    finally:
        gw.close()


# -- the pricing page and the operator's support contact -------------------------------------------
TIERS = [
    Tier(
        name="starter",
        creates_per_minute=7,
        reads_per_minute=70,
        max_concurrent=2,
        paid_spend_threshold_micro=0,
    ),
    Tier(
        name="pro",
        creates_per_minute=90,
        reads_per_minute=900,
        max_concurrent=9,
        paid_spend_threshold_micro=25_000_000,
    ),
]


@pytest.fixture(scope="module")
def operated(profile: Profile, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = start_gateway(
        tmp_path_factory.mktemp("operated"),
        tiers=TIERS,
        free_calls_per_variant=2,
        support_url="https://support.example.com/imagegate",
        support_email="help@example.com",
    )
    yield gw
    gw.close()


def test_pricing_json_is_computed_from_the_settings(operated: Gateway) -> None:
    body = operated.client().get("/pricing.json").json()
    assert body["url"] == f"{operated.base_url}/pricing.md"
    assert body["free_calls_per_variant"] == 2 and body["charged"] is True
    tiers = {t["name"]: t for t in body["rate_limits"]["tiers"]}
    assert tiers["pro"] == {
        "name": "pro",
        "creates_per_window": 90,
        "reads_per_window": 900,
        "max_concurrent": 9,
        "paid_spend_threshold_micro": 25_000_000,
    }
    models = {m["id"]: m for m in body["models"]}
    assert set(models) == set(by_id(operated.client(), "/v1/models"))  # every model
    assert models["gpt-image-1.5"]["matrix_micro"] == {"medium": 40_000, "high": 220_000}
    assert models["gpt-image-2"]["matrix_micro"] == {"1k": 60_000, "2k": 100_000, "4k": 160_000}
    assert models["gpt-image-2.6-flare"]["published"] is False
    assert models["gpt-image-2"]["published"] is True


def test_pricing_page_shows_prices_free_calls_and_tiers(operated: Gateway) -> None:
    text = page(operated.client(), "/pricing.md")
    assert front_matter(text)["url"] == f"{operated.base_url}/pricing.md"
    assert "| `gpt-image-1.5` | `gpt_image` | quality: `medium` $0.040, `high` $0.220 |" in text
    assert "| `gpt-image-2.6-sunburst` | `gpt_image_2_6` |" in text
    assert re.search(r"no price for [^\n]*`gpt-image-2\.6-flare`", text)
    assert "Every account gets 2 free calls on each variant" in text
    assert "| starter | 7 | 70 | 2 | $0 |" in text
    assert "| pro | 90 | 900 | 9 | $25 |" in text


def test_model_pages_link_the_pricing_page_and_name_the_operators_support(operated: Gateway) -> None:
    anonymous = operated.client()
    line = page(anonymous, "/models/gpt-image-2.md")
    limits = faq_answer(line, "What about rate limits?")
    assert "starter: 7 task creations per minute" in limits
    [link] = re.findall(r"\[pricing page\]\(([^)]+)\)", limits)
    assert anonymous.get(link).status_code == 200
    assert f"[Pricing]({link})" in anonymous.get("/llms.txt").text
    support = faq_answer(line, "Where can I report issues?")
    assert "<https://support.example.com/imagegate>" in support and "<help@example.com>" in support


def test_without_a_support_setting_the_faq_says_so(day_before: Gateway) -> None:
    support = faq_answer(page(day_before.client(), "/models/gpt-image-2.md"), "Where can I report issues?")
    assert "has not published a support contact" in support
    assert "github" not in support.lower() and "@" not in support  # no placeholder address
