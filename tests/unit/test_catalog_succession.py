"""Pages follow the whole successor chain; 2.6 pages say its prices are unpublished."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from imagegate.catalog.pages import (
    Deployment,
    index_markdown,
    line_markdown,
    models_document,
    openai_models_document,
)
from imagegate.catalog.pricing_page import PricingFacts, TierLimits, pricing_document
from imagegate.catalog.registry import Catalog, load_catalog

BASE = "http://127.0.0.1:8123"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def dep(today: date, **overrides: Any) -> Deployment:
    fields: dict[str, Any] = {
        "base_url": BASE,
        "today": today,
        "provider_for": lambda model: "offline",
        "retired_models": "successor",
    }
    fields.update(overrides)
    return Deployment(**fields)


@pytest.mark.parametrize(
    ("today", "served"),
    [(date(2026, 10, 22), None), (date(2026, 11, 30), "gpt-image-1.5"), (date(2026, 12, 1), "gpt-image-2")],
)
def test_gpt_image_1_is_served_along_the_chain(catalog: Catalog, today: date, served: str | None) -> None:
    listed = {m["id"]: m for m in openai_models_document(catalog, dep(today))["data"]}
    assert listed["gpt-image-1"]["retired"] is (served is not None)
    assert listed["gpt-image-1"]["served_by"] == (served or "gpt-image-1")
    index = index_markdown(catalog, dep(today))
    if served is not None:
        assert f"retired 2026-10-23, served by `{served}`" in index
    document = {m["id"]: m for m in models_document(catalog, dep(today))["data"]}
    assert document["gpt-image-1"]["lifecycle"]["served_as"] == served


def test_the_line_successor_is_the_end_of_the_chain(catalog: Catalog) -> None:
    page = line_markdown(catalog, catalog.lines["gpt-image"], dep(date(2026, 11, 1)))
    # gpt-image-1 is retired, gpt-image-1.5 not yet: the line as a whole ends in gpt-image-2
    assert '\nsuccessor: "gpt-image-2"\n' in page and "\nretired:" not in page
    assert "`gpt-image-1` is retired: for new work, use `gpt-image-2`." in page


def test_2_6_pages_mark_the_price_unpublished(catalog: Catalog) -> None:
    page = line_markdown(catalog, catalog.lines["gpt-image-2-6"], dep(date(2026, 11, 25)))
    assert "RunAPI has published no price for `gpt-image-2.6-flare` and `gpt-image-2.6-sunburst`" in page
    assert "/api/v1/gpt_image_2_6/text_to_image" in page
    assert "$0.060 (1k) / $0.100 (2k) / $0.160 (4k)" in page  # 2.5's defaults


def test_pricing_document_is_computed_from_the_facts_given(catalog: Catalog) -> None:
    facts = PricingFacts(
        tiers=[TierLimits("b", 9, 90, 3, 10_000_000), TierLimits("a", 1, 10, 1, 0)],
        rate_limits_enabled=True,
        rate_window_s=30,
    )
    body = pricing_document(catalog, dep(date(2026, 12, 1), free_calls_per_variant=4), facts)
    assert [t["name"] for t in body["rate_limits"]["tiers"]] == ["a", "b"]  # by the spend that moves up
    assert body["rate_limits"]["window_s"] == 30
    assert body["free_calls_per_variant"] == 4
    models = {m["id"]: m for m in body["models"]}
    assert (
        models["gpt-image-1.5"]["retired"] is True and models["gpt-image-1.5"]["served_by"] == "gpt-image-2"
    )
    assert models["gpt-image-1.5"]["matrix_micro"] == {"medium": 40_000, "high": 220_000}
