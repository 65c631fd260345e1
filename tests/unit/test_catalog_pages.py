"""Catalog pages and documents: what a reader of /models.md, a model page or /v1/models sees."""

from __future__ import annotations

import ast
import json
import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

import imagegate.catalog.documents as documents_module
import imagegate.catalog.pages as pages_module
from imagegate.catalog import registry
from imagegate.catalog.contract import validate
from imagegate.catalog.pages import (
    Deployment,
    index_markdown,
    line_markdown,
    llms_txt,
    models_document,
    openai_models_document,
    price_text,
    variant_markdown,
)
from imagegate.catalog.registry import Catalog, load_catalog
from imagegate.catalog.schema import ActionName

BASE = "http://127.0.0.1:8123"
BEFORE_SHUTDOWN = date(2026, 6, 1)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def make_dep(provider: str = "offline", **overrides: Any) -> Deployment:
    fields: dict[str, Any] = {
        "base_url": BASE,
        "today": BEFORE_SHUTDOWN,
        "provider_for": lambda model: provider,
        "retired_models": "successor",
    }
    fields.update(overrides)
    return Deployment(**fields)


# -- helpers that read the Markdown the way a client would ---------------------------------------
def front_matter(page: str) -> dict[str, Any]:
    assert page.startswith("---\n")
    block = page.split("---\n", 2)[1]
    out: dict[str, Any] = {}
    for row in block.strip().splitlines():
        key, _, value = row.partition(": ")
        out[key] = json.loads(value)  # quoted strings, numbers and true/false are all JSON here
    return out


def section(page: str, title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", page, re.M | re.S)
    assert match, f"no section {title!r}"
    return match.group(1)


def faq_answer(page: str, question: str) -> str:
    match = re.search(rf"^### {re.escape(question)}\n\n(.*?)(?=\n\n### |\n*\Z)", page, re.M | re.S)
    assert match, f"no FAQ entry {question!r}"
    return match.group(1)


def table_rows(text: str) -> list[list[str]]:
    rows = [line for line in text.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]


def curl_calls(text: str) -> list[tuple[str, dict[str, Any]]]:
    """(URL, JSON body) of every POST curl in the text."""
    found = re.findall(r"curl -X POST (\S+) \\\n.*?-d '(.*?)'\n", text, re.S)
    return [(url, json.loads(body)) for url, body in found]


def links(text: str) -> set[str]:
    return set(re.findall(r"\]\((http[^)\s]+)\)", text))


def assert_valid_call(catalog: Catalog, url: str, body: dict[str, Any]) -> None:
    """The body passes the contract of the model it names on the route it is sent to."""
    assert url.startswith(f"{BASE}/api/v1/")
    service, action = url.removeprefix(f"{BASE}/api/v1/").split("/")
    model = catalog.model_for_service(service, body["model"])
    validate(model, ActionName(action), body)


# -- the line page -------------------------------------------------------------------------------
def test_line_page_front_matter_follows_the_seed(catalog: Catalog) -> None:
    page = line_markdown(catalog, catalog.lines["gpt-image"], make_dep())
    meta = front_matter(page)
    assert meta["title"].endswith("| imagegate")
    assert meta["url"] == meta["canonical"] == f"{BASE}/models/gpt-image.md"
    assert meta["locale"] == "en"
    assert meta["model"] == "GPT Image"
    assert meta["provider"] == "OpenAI"
    assert meta["modality"] == "image"
    assert meta["variant_count"] == 4  # gpt-image-1.5's two, and gpt-image-1's that clients still send
    assert meta["price_from_cents"] == 4
    assert meta["served_by"] == "offline"
    assert meta["deprecated"] is True
    assert meta["shutdown_date"] == "2026-12-01"
    assert meta["successor"] == "gpt-image-2"
    assert "\n# GPT Image\n" in page


def test_front_matter_is_yaml(catalog: Catalog) -> None:
    yaml = pytest.importorskip("yaml")
    page = line_markdown(catalog, catalog.lines["gpt-image"], make_dep())
    assert yaml.safe_load(page.split("---\n", 2)[1]) == front_matter(page)


def test_active_line_has_no_lifecycle_keys(catalog: Catalog) -> None:
    meta = front_matter(line_markdown(catalog, catalog.lines["gpt-image-2"], make_dep()))
    assert meta["price_from_cents"] == 6
    assert not {"deprecated", "shutdown_date", "successor"} & set(meta)


def test_variants_table_lists_both_variants_at_four_cents(catalog: Catalog) -> None:
    page = line_markdown(catalog, catalog.lines["gpt-image"], make_dep())
    table = section(page, "Variants")
    header = next(line for line in table.splitlines() if line.startswith("|"))
    assert header.startswith("| Version | Variant | Pricing | Billing | URL |")
    rows = {row[1].strip("`"): row for row in table_rows(table)}
    assert set(rows) == {"1.5-text-to-image", "1.5-image-to-image", "1-text-to-image", "1-image-to-image"}
    for slug, row in rows.items():
        assert row[0] == f"gpt-image-{slug}"
        assert row[2] == "$0.040"
        assert row[4] == f"{BASE}/models/gpt-image/{slug}.md"
        assert "$0.040 (medium)" in row[5] and "$0.220 (high)" in row[5]


@pytest.mark.parametrize("line_slug", ["gpt-image", "gpt-image-2", "gpt-image-2-5"])
def test_quickstart_curl_is_valid_for_this_server(catalog: Catalog, line_slug: str) -> None:
    page = line_markdown(catalog, catalog.lines[line_slug], make_dep())
    quickstart = section(page, "Quickstart")
    [(url, body)] = curl_calls(quickstart)
    service = catalog.lines[line_slug].service
    assert url == f"{BASE}/api/v1/{service}/text_to_image"
    assert_valid_call(catalog, url, body)
    assert '-H "Authorization: Bearer $IMAGEGATE_API_KEY"' in quickstart
    assert f"curl {BASE}/api/v1/tasks/<id>" in quickstart
    assert f"{BASE}/v1" in section(page, "Install") and "pip install openai" in page


def test_gpt_image_quickstart_fills_every_required_field(catalog: Catalog) -> None:
    page = line_markdown(catalog, catalog.lines["gpt-image"], make_dep())
    [(_, body)] = curl_calls(section(page, "Quickstart"))
    assert body["model"] == "gpt-image-1.5"
    assert body["aspect_ratio"] in ("1:1", "2:3", "3:2")
    assert body["quality"] == "medium"
    assert body["prompt"]


def test_offline_deployment_says_so_plainly(catalog: Catalog) -> None:
    page = line_markdown(catalog, catalog.lines["gpt-image"], make_dep("offline"))
    assert "built-in offline renderer" in page
    assert "placeholder images" in page
    assert "not images from OpenAI's model" in page
    assert "offline renderer" in faq_answer(page, "Who renders the images here?")
    variant = catalog.variant_by_slug("gpt-image", "1.5-text-to-image")
    assert "built-in offline renderer" in variant_markdown(catalog, variant, make_dep("offline"))
    assert "offline renderer" in llms_txt(catalog, make_dep("offline"))


def test_upstream_deployment_does_not_claim_placeholders(catalog: Catalog) -> None:
    page = line_markdown(catalog, catalog.lines["gpt-image"], make_dep("openai"))
    assert "offline" not in page and "placeholder" not in page
    assert "OpenAI's `gpt-image-1.5`" in faq_answer(page, "Who renders the images here?")
    assert front_matter(page)["served_by"] == "openai"
    assert "offline" not in llms_txt(catalog, make_dep("openai"))


def test_free_tier_answer_follows_the_deployment(catalog: Catalog) -> None:
    line = catalog.lines["gpt-image"]
    none = faq_answer(
        line_markdown(catalog, line, make_dep(free_calls_per_variant=0)), "Is there a free tier?"
    )
    three = faq_answer(
        line_markdown(catalog, line, make_dep(free_calls_per_variant=3)), "Is there a free tier?"
    )
    assert none.startswith("No")
    assert three.startswith("Yes") and "3 free calls" in three
    assert none != three


def test_billing_answers_follow_the_deployment(catalog: Catalog) -> None:
    line = catalog.lines["gpt-image"]
    off = line_markdown(catalog, line, make_dep(charges_credits=False))
    on = line_markdown(catalog, line, make_dep(charges_credits=True))
    assert "not charged" in section(off, "Variants")
    assert "Billing is not enabled" not in on
    assert "billing is off" in faq_answer(off, "How are failures billed?")
    assert "Failed generations are not charged" in faq_answer(on, "How are failures billed?")


def test_other_faq_answers_follow_the_deployment(catalog: Catalog) -> None:
    line = catalog.lines["gpt-image"]
    plain = line_markdown(catalog, line, make_dep())
    assert "No per-key rate limits" in faq_answer(plain, "What about rate limits?")
    assert faq_answer(plain, "Do you stream results?").startswith("No")
    assert "7 days" in faq_answer(plain, "Are outputs cached?")
    assert "1 hour" in faq_answer(plain, "Are outputs cached?")
    custom = line_markdown(
        catalog,
        line,
        make_dep(
            rate_limits="60 requests a minute per key.",
            streaming=True,
            output_retention_s=2 * 86_400,
            upload_retention_s=1_800,
        ),
    )
    limits = faq_answer(custom, "What about rate limits?")
    assert limits.startswith("60 requests a minute per key. See the [pricing page]")
    assert f"{BASE}/pricing.md" in links(limits)
    assert faq_answer(custom, "Do you stream results?").startswith("Yes")
    stored = faq_answer(custom, "Are outputs cached?")
    assert "retrievable by task ID for 2 days" in stored and "30 minutes" in stored
    assert "may be used commercially" in faq_answer(custom, "Can I use it commercially?")


# -- lifecycle -----------------------------------------------------------------------------------
def test_deprecated_model_shows_shutdown_and_successor(catalog: Catalog) -> None:
    dep = make_dep()
    page = line_markdown(catalog, catalog.lines["gpt-image"], dep)
    assert "**Deprecated.**" in page
    assert "shuts down on 2026-12-01" in page
    assert "successor is `gpt-image-2`" in page
    assert f"{BASE}/models/gpt-image-2.md" in links(page)
    # what the successor is sent: the same sizes and price, quality as a quality
    assert "served by gpt-image-2 at the same size and price" in page
    assert "`quality` becomes `output_resolution`" not in page
    variant = catalog.variant_by_slug("gpt-image", "1.5-text-to-image")
    meta = front_matter(variant_markdown(catalog, variant, dep))
    assert (meta["shutdown_date"], meta["successor"], meta["deprecated"]) == (
        "2026-12-01",
        "gpt-image-2",
        True,
    )


def test_refuse_policy_is_announced_before_the_shutdown(catalog: Catalog) -> None:
    page = line_markdown(catalog, catalog.lines["gpt-image"], make_dep(retired_models="refuse"))
    after = faq_answer(page, "What happens after the shutdown date?")
    assert "410" in after and "model_retired" in after


@pytest.fixture
def retired_catalog(tmp_path: Path) -> Catalog:
    override = tmp_path / "catalog.toml"
    override.write_text(
        '[models."gpt-image-1.5".lifecycle]\nshutdown_date = "2026-01-15"\n'
        '[models."gpt-image-1".lifecycle]\nshutdown_date = "2026-01-15"\n',
        encoding="utf-8",
    )
    return load_catalog(override)


def test_retired_model_with_refuse_policy_says_410(retired_catalog: Catalog) -> None:
    dep = make_dep(retired_models="refuse")
    page = line_markdown(retired_catalog, retired_catalog.lines["gpt-image"], dep)
    assert "**Retired.**" in page and "shut down on 2026-01-15" in page
    assert "HTTP 410" in page and "`model_retired`" in page
    assert front_matter(page)["retired"] is True
    assert "410" in section(page, "Quickstart")
    model = next(m for m in models_document(retired_catalog, dep)["data"] if m["id"] == "gpt-image-1.5")
    assert model["lifecycle"]["retired"] is True
    assert model["lifecycle"]["after_shutdown"] == "refuse"
    index = index_markdown(retired_catalog, dep)
    assert "retired 2026-01-15, refused (410 `model_retired`)" in index


def test_retired_model_with_successor_policy_is_served_by_the_successor(retired_catalog: Catalog) -> None:
    dep = make_dep(retired_models="successor")
    page = line_markdown(retired_catalog, retired_catalog.lines["gpt-image"], dep)
    assert "**Retired.**" in page
    assert (
        "served by gpt-image-2 at the same size and price" in page
        and "`gpt-image-1.5`'s sizes and price" in page
    )
    assert "model_retired" not in page
    model = next(m for m in models_document(retired_catalog, dep)["data"] if m["id"] == "gpt-image-1.5")
    assert model["lifecycle"]["served_as"] == "gpt-image-2"
    # Still not retired for a deployment whose clock is before the date.
    early = line_markdown(
        retired_catalog, retired_catalog.lines["gpt-image"], make_dep(today=date(2026, 1, 14))
    )
    assert "**Retired.**" not in early and "**Deprecated.**" in early


def test_operator_price_override_reaches_every_view(tmp_path: Path) -> None:
    override = tmp_path / "prices.toml"
    override.write_text('[models."gpt-image-2".pricing]\nmatrix = { "1k" = 50_000 }\n', encoding="utf-8")
    catalog = load_catalog(override)
    dep = make_dep()
    page = line_markdown(catalog, catalog.lines["gpt-image-2"], dep)
    assert front_matter(page)["price_from_cents"] == 5
    assert "$0.050 (1k) / $0.100 (2k) / $0.160 (4k)" in page
    model = next(m for m in models_document(catalog, dep)["data"] if m["id"] == "gpt-image-2")
    price = model["actions"][0]["price"]
    assert price["matrix_micro"] == {"1k": 50_000, "2k": 100_000, "4k": 160_000}
    assert (price["from_micro"], price["from_cents"]) == (50_000, 5)


# -- a hand-built catalog: flat price, no commercial use, text-to-image only ---------------------
def small_catalog() -> Catalog:
    return registry.build(
        {
            "lines": {
                "sketch": {
                    "title": "Sketch",
                    "service": "sketch",
                    "vendor": "Acme",
                    "summary": "Pencil sketches.",
                }
            },
            "models": {
                "sketch-1": {
                    "line": "sketch",
                    "display_name": "Sketch 1",
                    "version": "1",
                    "upstream_model": "sketch-1",
                    "actions": ["text_to_image"],
                    "commercial_use": False,
                    "license_note": "Research use only.",
                    "pricing": {"base_micro": 12_500},
                    "render": {"sizes": {"1:1": "512x512"}},
                    "fields": {
                        "prompt": {"type": "string", "required": True, "min": 1, "max": 500},
                        "steps": {"type": "integer", "required": True, "min": 4, "max": 50},
                        "aspect_ratio": {"type": "string", "enum": ["1:1"], "default": "1:1"},
                    },
                }
            },
        }
    )


def test_hand_built_catalog_renders_truthfully() -> None:
    catalog = small_catalog()
    dep = make_dep("diffusers")
    page = line_markdown(catalog, catalog.lines["sketch"], dep)
    meta = front_matter(page)
    assert meta["price_from_cents"] == 1.25 and meta["variant_count"] == 1
    assert "image-to-image" not in faq_answer(page, "Which variant should I start with?")
    assert "may not" in faq_answer(page, "Can I use it commercially?")
    assert "Research use only." in page
    assert "diffusers" in faq_answer(page, "Who renders the images here?")
    variant = catalog.variant_by_slug("sketch", "1-text-to-image")
    vpage = variant_markdown(catalog, variant, dep)
    assert "Not allowed. Research use only." in section(vpage, "Commercial use")
    assert "| any call | $0.0125 |" in section(vpage, "Price")
    [(url, body)] = curl_calls(section(vpage, "Example"))
    assert_valid_call(catalog, url, body)
    assert body["steps"] == 4


# -- variant pages -------------------------------------------------------------------------------
def test_every_variant_page_has_a_valid_curl_and_its_contract(catalog: Catalog) -> None:
    dep = make_dep()
    for variant in catalog.variants():
        page = variant_markdown(catalog, variant, dep)
        meta = front_matter(page)
        assert meta["url"] == f"{BASE}/models/{variant.model.line}/{variant.slug}.md"
        service = catalog.line_of(variant.model).service
        endpoint = f"{BASE}/api/v1/{service}/{variant.action.value}"
        assert f"`POST {endpoint}`" in page and f"`GET {endpoint}/<id>`" in page
        [(url, body)] = curl_calls(section(page, "Example"))
        assert url == endpoint
        assert_valid_call(catalog, url, body)
        contract = table_rows(section(page, "Input contract"))
        assert [row[0].strip("`") for row in contract] == ["model", *variant.model.fields_for(variant.action)]
        call = section(page, "OpenAI-compatible call")
        verb = "edit" if variant.action is ActionName.EDIT_IMAGE else "generate"
        assert f'client.images.{verb}(model="{variant.model.id}"' in call
        assert f'base_url="{BASE}/v1"' in call


def test_edit_variant_page_shows_source_images_and_rules(catalog: Catalog) -> None:
    dep = make_dep()
    page = variant_markdown(catalog, catalog.variant_by_slug("gpt-image-2", "2-image-to-image"), dep)
    [(_, body)] = curl_calls(page)
    assert body["source_image_urls"][0].startswith("https://")
    rows = {row[0].strip("`"): row for row in table_rows(section(page, "Input contract"))}
    assert rows["source_image_urls"][2] == "yes" and "1 to 16 items" in rows["source_image_urls"][3]
    assert rows["output_resolution"][4] == "`1k`"
    assert "When `aspect_ratio` is `1:1`, `output_resolution` may not be `4k`." in page
    assert "| `4k` | $0.160 |" in section(page, "Price")


# -- JSON documents ------------------------------------------------------------------------------
def test_models_document_has_every_variant_and_price(catalog: Catalog) -> None:
    doc = models_document(catalog, make_dep())
    json.dumps(doc)  # JSON-able as is
    assert doc["object"] == "list"
    by_id = {m["id"]: m for m in doc["data"]}
    assert set(by_id) == set(catalog.models)
    variants = {(m["id"], a["action"]): a for m in doc["data"] for a in m["actions"]}
    assert set(variants) == {(v.model.id, v.action.value) for v in catalog.variants()}
    for action in ("text_to_image", "edit_image"):
        assert variants[("gpt-image-1.5", action)]["price"]["matrix_micro"] == {
            "medium": 40_000,
            "high": 220_000,
        }
        assert variants[("gpt-image-2", action)]["price"]["matrix_micro"] == {
            "1k": 60_000,
            "2k": 100_000,
            "4k": 160_000,
        }
    first = variants[("gpt-image-1.5", "text_to_image")]
    assert first["price"]["from_micro"] == 40_000 and first["price"]["from_cents"] == 4
    assert first["endpoint"] == f"{BASE}/api/v1/gpt_image/text_to_image"
    assert first["variant"] == "1.5-text-to-image" and first["variant_name"] == "gpt-image-1.5-text-to-image"
    fields = first["input_contract"]["fields"]
    assert fields["quality"]["enum"] == ["medium", "high"] and fields["quality"]["required"] is True
    assert "source_image_urls" not in fields
    assert (
        variants[("gpt-image-1.5", "edit_image")]["input_contract"]["fields"]["source_image_urls"][
            "max_items"
        ]
        == 16
    )
    assert len(variants[("gpt-image-2", "text_to_image")]["input_contract"]["rules"]) == 2
    old = by_id["gpt-image-1.5"]
    assert old["lifecycle"]["shutdown_date"] == "2026-12-01" and old["lifecycle"]["retired"] is False
    assert old["served_by"] == "offline" and old["page_url"] == f"{BASE}/models/gpt-image.md"
    assert "gpt-image-1.5-2025-12-16" in old["aliases"]


def test_openai_models_document(catalog: Catalog) -> None:
    doc = openai_models_document(catalog, make_dep())
    assert doc["object"] == "list"
    by_id = {m["id"]: m for m in doc["data"]}
    assert list(by_id) == list(catalog.models)  # one entry per model id, no aliases
    old = by_id["gpt-image-1.5"]
    assert old["object"] == "model" and old["owned_by"] == "openai"
    assert old["deprecated"] is True and old["shutdown_date"] == "2026-12-01"
    assert old["successor"] == "gpt-image-2"
    assert old["created"] == int(datetime(2025, 12, 16, tzinfo=UTC).timestamp())
    assert by_id["gpt-image-2"]["shutdown_date"] is None and by_id["gpt-image-2"]["deprecated"] is False
    assert all(isinstance(m["created"], int) for m in doc["data"])


# -- index and llms.txt --------------------------------------------------------------------------
def test_index_links_every_line_and_variant(catalog: Catalog) -> None:
    index = index_markdown(catalog, make_dep())
    assert front_matter(index)["variant_count"] == len(list(catalog.variants()))
    for line in catalog.lines.values():
        assert f"{BASE}/models/{line.slug}.md" in links(index)
    for variant in catalog.variants():
        assert f"{BASE}/models/{variant.model.line}/{variant.slug}.md" in index
    assert "from $0.040" in index
    assert "deprecated, shuts down 2026-12-01, successor `gpt-image-2`" in index


def test_llms_txt_links_every_page(catalog: Catalog) -> None:
    text = llms_txt(catalog, make_dep())
    assert text.startswith("# imagegate\n\n> ")
    found = links(text)
    for line in catalog.lines.values():
        assert f"{BASE}/models/{line.slug}.md" in found
    for variant in catalog.variants():
        assert f"{BASE}/models/{variant.model.line}/{variant.slug}.md" in found
    assert f"{BASE}/models.md" in found
    assert f"POST {BASE}/api/v1/" in text and f"{BASE}/api/v1/tasks/" in text


# -- helpers and purity --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("micro", "text"),
    [(40_000, "$0.040"), (220_000, "$0.220"), (0, "$0.000"), (12_500, "$0.0125"), (1_500_000, "$1.500")],
)
def test_price_text(micro: int, text: str) -> None:
    assert price_text(micro) == text


def test_modules_are_pure() -> None:
    for module in (pages_module, documents_module):
        tree = ast.parse(Path(str(module.__file__)).read_text(encoding="utf-8"))
        imported = {
            alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        } | {
            node.module.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module
        }
        assert not imported & {"fastapi", "starlette", "httpx", "sqlalchemy", "os", "pathlib"}
