"""The input contract, model lifecycle (retirement to a successor), sizes, and the OpenAI size mapping."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from imagegate.catalog import ActionName, load_catalog
from imagegate.catalog.contract import validate
from imagegate.catalog.lifecycle import deprecation_headers, resolve, serving_model, translate
from imagegate.catalog.openai_compat import map_request
from imagegate.catalog.registry import Catalog
from imagegate.catalog.schema import TokenPrices
from imagegate.errors import ModelRetiredError, NotFoundError, ValidationError

T2I = ActionName.TEXT_TO_IMAGE
EDIT = ActionName.EDIT_IMAGE
SHUTDOWN = date(2026, 12, 1)
BEFORE = date(2026, 11, 30)
AFTER = date(2026, 12, 2)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def refused(model: Any, action: ActionName, body: dict[str, Any]) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        validate(model, action, body)
    return info.value


# ---------------------------------------------------------------- validate: defaults


def test_gpt_image_2_defaults(catalog: Catalog) -> None:
    params = validate(catalog.model("gpt-image-2"), T2I, {"model": "gpt-image-2", "prompt": "a boat"})
    assert params == {"prompt": "a boat", "aspect_ratio": "auto", "output_resolution": "1k"}


def test_gpt_image_2_5_inherits_the_contract(catalog: Catalog) -> None:
    params = validate(catalog.model("gpt-image-2.5-sunburst"), T2I, {"prompt": "a boat"})
    assert params == {"prompt": "a boat", "aspect_ratio": "auto", "output_resolution": "1k"}
    with pytest.raises(ValidationError):
        validate(
            catalog.model("gpt-image-2.5-flare"),
            T2I,
            {"prompt": "p", "aspect_ratio": "1:1", "output_resolution": "4k"},
        )


def test_given_values_are_kept(catalog: Catalog) -> None:
    body = {
        "prompt": "p",
        "aspect_ratio": "21:9",
        "output_resolution": "4k",
        "callback_url": "https://example.com/h",
    }
    assert validate(catalog.model("gpt-image-2"), T2I, body) == body


def test_null_and_empty_fields_count_as_absent(catalog: Catalog) -> None:
    body = {"model": None, "prompt": "p", "aspect_ratio": None, "output_resolution": "", "callback_url": ""}
    params = validate(catalog.model("gpt-image-2"), T2I, body)
    assert params == {"prompt": "p", "aspect_ratio": "auto", "output_resolution": "1k"}


def test_null_unknown_field_is_ignored(catalog: Catalog) -> None:
    params = validate(
        catalog.model("gpt-image-1.5"),
        T2I,
        {"prompt": "p", "aspect_ratio": "1:1", "quality": "high", "seed": None},
    )
    assert params == {"prompt": "p", "aspect_ratio": "1:1", "quality": "high"}


def test_edit_only_fields(catalog: Catalog) -> None:
    model = catalog.model("gpt-image-1.5")
    body = {"prompt": "p", "aspect_ratio": "1:1", "quality": "medium"}
    sources = ["https://example.com/a.png", "data:image/png;base64,AAAA"]
    assert validate(model, EDIT, {**body, "source_image_urls": sources})["source_image_urls"] == sources
    error = refused(model, T2I, {**body, "source_image_urls": sources})  # not part of text_to_image
    assert error.param == "source_image_urls"
    assert "unknown field" in error.message


# ---------------------------------------------------------------- validate: each message form


@pytest.mark.parametrize(
    ("model_id", "action", "body", "param", "message"),
    [
        ("gpt-image-1.5", T2I, {"aspect_ratio": "1:1", "quality": "high"}, "prompt", "prompt is required"),
        (
            "gpt-image-1.5",
            T2I,
            {"prompt": "p", "quality": "high"},
            "aspect_ratio",
            "aspect_ratio is required",
        ),
        (
            "gpt-image-1.5",
            T2I,
            {"prompt": "p", "aspect_ratio": "4:3", "quality": "high"},
            "aspect_ratio",
            "aspect_ratio must be one of: 1:1, 2:3, 3:2",
        ),
        (
            "gpt-image-1.5",
            T2I,
            {"prompt": "p", "aspect_ratio": "1:1", "quality": "low"},
            "quality",
            "quality must be one of: medium, high",
        ),
        (
            "gpt-image-1.5",
            T2I,
            {"prompt": 7, "aspect_ratio": "1:1", "quality": "high"},
            "prompt",
            "prompt must be a string",
        ),
        (
            "gpt-image-1.5",
            T2I,
            {"prompt": True, "aspect_ratio": "1:1", "quality": "high"},
            "prompt",
            "prompt must be a string",
        ),
        (
            "gpt-image-1.5",
            T2I,
            {"prompt": "x" * 32001, "aspect_ratio": "1:1", "quality": "high"},
            "prompt",
            "prompt must be at most 32000 characters",
        ),
        ("gpt-image-2", T2I, {"prompt": "p", "style": "vivid"}, "style", None),
        (
            "gpt-image-2",
            T2I,
            {"prompt": "p", "aspect_ratio": "1:1", "output_resolution": "4k"},
            "output_resolution",
            "output_resolution 4k is not allowed when aspect_ratio is 1:1",
        ),
        (
            "gpt-image-2",
            T2I,
            {"prompt": "p", "output_resolution": "2k"},
            "output_resolution",
            "output_resolution 2k is not allowed when aspect_ratio is auto",
        ),
        (
            "gpt-image-2",
            T2I,
            {"prompt": "p", "callback_url": "mailto:x@y.z"},
            "callback_url",
            "callback_url must be an http(s) URL",
        ),
        ("gpt-image-2", EDIT, {"prompt": "p"}, "source_image_urls", "source_image_urls is required"),
        (
            "gpt-image-2",
            EDIT,
            {"prompt": "p", "source_image_urls": "https://example.com/a.png"},
            "source_image_urls",
            "source_image_urls must be an array",
        ),
        (
            "gpt-image-2",
            EDIT,
            {"prompt": "p", "source_image_urls": []},
            "source_image_urls",
            None,
        ),
        (
            "gpt-image-2",
            EDIT,
            {"prompt": "p", "source_image_urls": ["https://example.com/a.png"] * 17},
            "source_image_urls",
            "source_image_urls must have at most 16 items",
        ),
        (
            "gpt-image-2",
            EDIT,
            {"prompt": "p", "source_image_urls": ["https://example.com/a.png", 3]},
            "source_image_urls",
            "source_image_urls[1] must be a string",
        ),
        (
            "gpt-image-2",
            EDIT,
            {"prompt": "p", "source_image_urls": ["file:///etc/passwd"]},
            "source_image_urls",
            "source_image_urls[0] must be an http(s) URL or a data: URL",
        ),
    ],
)
def test_error_messages(
    catalog: Catalog, model_id: str, action: ActionName, body: dict[str, Any], param: str, message: str | None
) -> None:
    error = refused(catalog.model(model_id), action, body)
    assert error.param == param
    assert error.status_code == 400
    if message is not None:
        assert error.message == message
    else:
        assert param in error.message


def test_unknown_field_message_lists_the_accepted_fields(catalog: Catalog) -> None:
    error = refused(catalog.model("gpt-image-2"), T2I, {"prompt": "p", "size": "1024x1024"})
    assert error.message.startswith("unknown field 'size'")
    for name in ("prompt", "aspect_ratio", "output_resolution"):
        assert name in error.message


def test_empty_string_prompt_is_missing_not_empty(catalog: Catalog) -> None:
    error = refused(catalog.model("gpt-image-2"), T2I, {"prompt": ""})
    assert error.message == "prompt is required"


def test_model_for_service(catalog: Catalog) -> None:
    assert catalog.model_for_service("gpt_image", "gpt-image-1.5-text-to-image").id == "gpt-image-1.5"
    assert catalog.model_for_service("gpt_image_2_5", "gpt-image-2.5-flare").id == "gpt-image-2.5-flare"
    with pytest.raises(ValidationError) as info:
        catalog.model_for_service("gpt_image_2_5", "gpt-image-2")
    assert info.value.message == "model must be one of: gpt-image-2.5-flare, gpt-image-2.5-sunburst"
    with pytest.raises(ValidationError, match="model is required"):
        catalog.model_for_service("gpt_image", None)
    with pytest.raises(NotFoundError):
        catalog.model_for_service("nope", "gpt-image-2")


# ---------------------------------------------------------------- lifecycle


def old_request(**overrides: Any) -> dict[str, Any]:
    return {"prompt": "a castle", "aspect_ratio": "2:3", "quality": "high", **overrides}


def test_retired_model_goes_to_its_successor(catalog: Catalog) -> None:
    served = resolve(catalog, catalog.model("gpt-image-1.5"), old_request(), AFTER, "successor")
    assert served.model.id == "gpt-image-2"
    # 2:3 keeps gpt-image-1.5's 1024x1536 (not gpt-image-2's 2k 1360x2048), and quality stays a quality.
    assert served.params == {"prompt": "a castle", "aspect_ratio": "2:3", "output_resolution": "2k"}
    assert served.size == (1024, 1536)
    assert served.quality == "high"


def test_retired_on_the_shutdown_date_itself(catalog: Catalog) -> None:
    served = resolve(
        catalog, catalog.model("gpt-image-1.5"), old_request(quality="medium"), SHUTDOWN, "successor"
    )
    assert served.model.id == "gpt-image-2"
    assert (served.size, served.quality) == ((1024, 1536), "medium")


@pytest.mark.parametrize("quality", ["medium", "high"])
@pytest.mark.parametrize(
    ("aspect", "size"), [("1:1", (1024, 1024)), ("2:3", (1024, 1536)), ("3:2", (1536, 1024))]
)
def test_every_cell_keeps_its_size_and_quality(
    catalog: Catalog, aspect: str, quality: str, size: tuple[int, int]
) -> None:
    old = catalog.model("gpt-image-1.5")
    params = old_request(aspect_ratio=aspect, quality=quality)
    before = resolve(catalog, old, params, BEFORE, "successor")
    after = resolve(catalog, old, params, AFTER, "successor")
    assert (before.model.id, after.model.id) == ("gpt-image-1.5", "gpt-image-2")
    assert before.size == after.size == size
    assert before.quality == after.quality == quality
    validate(after.model, T2I, after.params)  # what the successor is sent is a valid request for it


def test_successor_params_pass_its_rules(catalog: Catalog) -> None:
    served = resolve(
        catalog, catalog.model("gpt-image-1.5"), old_request(aspect_ratio="1:1"), AFTER, "successor"
    )
    assert served.params == {"prompt": "a castle", "aspect_ratio": "1:1", "output_resolution": "1k"}
    validate(served.model, T2I, served.params)  # what it is served with is a valid request for it


def test_the_whole_successor_chain_is_followed(catalog: Catalog) -> None:
    old = catalog.model("gpt-image-1")
    params = old_request(aspect_ratio="3:2", quality="high")
    on_1_5 = resolve(catalog, old, params, BEFORE, "successor")  # gpt-image-1 retired 2026-10-23
    assert on_1_5.model.id == "gpt-image-1.5"
    assert on_1_5.params == params
    on_2 = resolve(catalog, old, params, AFTER, "successor")  # and 1.5 after 2026-12-01
    assert on_2.model.id == "gpt-image-2"
    assert (on_2.size, on_2.quality) == ((1536, 1024), "high")
    assert serving_model(catalog, old, AFTER, "successor") == catalog.model("gpt-image-2")
    assert serving_model(catalog, old, BEFORE, "successor") == catalog.model("gpt-image-1.5")
    assert serving_model(catalog, old, AFTER, "refuse") is None
    assert serving_model(catalog, old, date(2026, 10, 22), "refuse") == old


@pytest.mark.parametrize(
    ("name", "model_id"),
    [
        ("gpt-image-1", "gpt-image-1"),
        ("gpt-image-1-mini", "gpt-image-1.5"),
        ("chatgpt-image-latest", "gpt-image-1.5"),
        ("gpt-image-1.5-2025-12-16", "gpt-image-1.5"),
        ("gpt-image-2-2026-04-21", "gpt-image-2"),
        ("gpt-image-2.5-flare-2026-09-08", "gpt-image-2.5-flare"),
        ("gpt-image-2.5-sunburst-2026-09-08", "gpt-image-2.5-sunburst"),
    ],
)
def test_names_clients_still_send_resolve_by_the_lifecycle(
    catalog: Catalog, name: str, model_id: str
) -> None:
    model = catalog.model(name)
    assert model.id == model_id
    served = serving_model(catalog, model, AFTER, "successor")
    assert served is not None
    expected = "gpt-image-2" if model_id.startswith("gpt-image-1") else model_id
    assert served.id == expected


def test_gpt_image_2_6_takes_2_5s_contract_and_prices(catalog: Catalog) -> None:
    for flavour in ("flare", "sunburst"):
        new, old = catalog.model(f"gpt-image-2.6-{flavour}"), catalog.model(f"gpt-image-2.5-{flavour}")
        assert catalog.line_of(new).service == "gpt_image_2_6"
        assert new.pricing == old.pricing and new.fields == old.fields and new.rules == old.rules
        assert new.prices_published is False
        assert new.released == date(2026, 11, 4)
    assert catalog.model_for_service("gpt_image_2_6", "gpt-image-2.6-flare").id == "gpt-image-2.6-flare"
    with pytest.raises(ValidationError):
        catalog.model_for_service("gpt_image_2_6", "gpt-image-2.5-flare")


@pytest.mark.parametrize(
    "name", ["gpt-image-2", "gpt-image-2.5-flare", "gpt-image-2.5-sunburst", "gpt-image-2.6-sunburst"]
)
def test_token_prices_of_the_2_x_line(catalog: Catalog, name: str) -> None:
    prices = catalog.token_prices(name)
    assert prices == TokenPrices(
        text_in=5_000_000,
        image_in=8_000_000,
        image_out=30_000_000,
        cached_text_in=1_250_000,
        cached_image_in=2_000_000,
    )


def test_older_models_keep_their_own_token_prices(catalog: Catalog) -> None:
    older = catalog.token_prices("gpt-image-1.5")
    assert older is not None and (older.text_in, older.image_in, older.image_out) == (
        5_000_000,
        8_000_000,
        32_000_000,
    )
    with pytest.raises(NotFoundError):
        catalog.token_prices("dall-e-9")


def test_an_operator_can_set_token_prices(tmp_path: Path) -> None:
    override = tmp_path / "catalog.toml"
    override.write_text('[models."gpt-image-2".token_prices]\nimage_out = 40_000_000\n', encoding="utf-8")
    catalog = load_catalog(override)
    prices = catalog.token_prices("gpt-image-2-2026-04-21")
    assert prices is not None and prices.image_out == 40_000_000 and prices.text_in == 5_000_000


def test_refuse_policy_raises_with_the_successor(catalog: Catalog) -> None:
    with pytest.raises(ModelRetiredError) as info:
        resolve(catalog, catalog.model("gpt-image-1.5"), old_request(), AFTER, "refuse")
    error = info.value
    assert error.status_code == 410
    assert error.param == "model"
    assert error.body()["error"]["successor"] == "gpt-image-2"
    assert error.body()["error"]["code"] == "model_retired"
    assert "gpt-image-2" in error.message
    assert "2026-12-01" in error.message


@pytest.mark.parametrize("policy", ["successor", "refuse"])
def test_before_the_date_the_model_is_served_as_is(catalog: Catalog, policy: Any) -> None:
    params = old_request()
    served = resolve(catalog, catalog.model("gpt-image-1.5"), params, BEFORE, policy)
    assert served.model.id == "gpt-image-1.5"
    assert served.params == params


def test_current_models_are_never_rerouted(catalog: Catalog) -> None:
    params = {"prompt": "p", "aspect_ratio": "16:9", "output_resolution": "4k"}
    served = resolve(catalog, catalog.model("gpt-image-2"), params, date(2099, 1, 1), "refuse")
    assert served.model.id == "gpt-image-2"
    assert served.params == params


def test_translate_maps_fields_and_fills_defaults(catalog: Catalog) -> None:
    old, new = catalog.model("gpt-image-1.5"), catalog.model("gpt-image-2")
    # quality is a render setting for gpt-image-2 (its RunAPI contract has no such field);
    # the resolution class follows the pixels the old contract promised.
    assert translate(old, new, {"prompt": "p", "aspect_ratio": "3:2", "quality": "medium"}, (1536, 1024)) == (
        {"prompt": "p", "aspect_ratio": "3:2", "output_resolution": "2k"},
        {"quality": "medium"},
    )
    assert translate(old, new, {"prompt": "p", "quality": "high"}) == (
        {"prompt": "p", "aspect_ratio": "auto", "output_resolution": "1k"},
        {"quality": "high"},
    )


def test_deprecation_headers(catalog: Catalog) -> None:
    headers = deprecation_headers(catalog.model("gpt-image-1.5"), "https://gw.example")
    assert headers["Deprecation"]
    assert headers["Sunset"] == "Tue, 01 Dec 2026 00:00:00 GMT"
    assert headers["Link"] == '<https://gw.example/models/gpt-image-2.md>; rel="successor-version"'
    assert deprecation_headers(catalog.model("gpt-image-2"), "https://gw.example") == {}


# ---------------------------------------------------------------- sizes


@pytest.mark.parametrize(
    ("aspect", "resolution", "size"),
    [
        ("auto", "1k", (1024, 1024)),
        ("1:1", "2k", (2048, 2048)),
        ("16:9", "2k", (2048, 1152)),
        ("9:16", "1k", (576, 1024)),
        ("3:2", "1k", (1024, 672)),
        ("2:3", "2k", (1360, 2048)),
        ("16:9", "4k", (3840, 2160)),
        ("3:1", "1k", (1024, 336)),
    ],
)
def test_size_for(catalog: Catalog, aspect: str, resolution: str, size: tuple[int, int]) -> None:
    render = catalog.model("gpt-image-2").render
    assert render.size_for({"aspect_ratio": aspect, "output_resolution": resolution}) == size


@pytest.mark.parametrize("aspect", ["21:9", "9:21", "4:3", "5:4", "1:1", "2:1", "1:3"])
def test_4k_sizes_respect_the_pixel_cap(catalog: Catalog, aspect: str) -> None:
    render = catalog.model("gpt-image-2").render
    width, height = render.size_for({"aspect_ratio": aspect, "output_resolution": "4k"})
    assert width * height <= 8_294_400
    assert width % 16 == 0 and height % 16 == 0
    a, b = (int(x) for x in aspect.split(":"))
    assert abs(width / height - a / b) < 0.05  # the shape asked for
    assert max(width, height) > 2048  # still bigger than 2k


def test_21_9_at_4k(catalog: Catalog) -> None:
    render = catalog.model("gpt-image-2").render
    assert render.size_for({"aspect_ratio": "21:9", "output_resolution": "4k"}) == (3840, 1632)


def test_fixed_sizes_of_gpt_image_1_5(catalog: Catalog) -> None:
    render = catalog.model("gpt-image-1.5").render
    assert render.size_for({"aspect_ratio": "1:1"}) == (1024, 1024)
    assert render.size_for({"aspect_ratio": "2:3"}) == (1024, 1536)
    assert render.size_for({"aspect_ratio": "3:2"}) == (1536, 1024)


# ---------------------------------------------------------------- OpenAI size mapping


@pytest.mark.parametrize(
    ("size", "quality", "params", "pixels"),
    [
        (None, None, {"aspect_ratio": "1:1", "quality": "medium"}, (1024, 1024)),
        ("auto", "high", {"aspect_ratio": "1:1", "quality": "high"}, (1024, 1024)),
        ("1024x1536", "low", {"aspect_ratio": "2:3", "quality": "medium"}, (1024, 1536)),
        ("1536x1024", "auto", {"aspect_ratio": "3:2", "quality": "medium"}, (1536, 1024)),
    ],
)
def test_map_request_gpt_image_1_5(
    catalog: Catalog, size: str | None, quality: str | None, params: dict[str, Any], pixels: tuple[int, int]
) -> None:
    assert map_request(catalog.model("gpt-image-1.5"), size, quality) == (params, pixels)


@pytest.mark.parametrize("size", ["1792x1024", "512x512", "2048x2048", "big"])
def test_map_request_gpt_image_1_5_refuses_other_sizes(catalog: Catalog, size: str) -> None:
    with pytest.raises(ValidationError) as info:
        map_request(catalog.model("gpt-image-1.5"), size, None)
    assert info.value.param == "size"
    assert "1024x1536" in info.value.message


def test_map_request_gpt_image_1_5_refuses_unknown_quality(catalog: Catalog) -> None:
    with pytest.raises(ValidationError) as info:
        map_request(catalog.model("gpt-image-1.5"), "1024x1024", "ultra")
    assert info.value.param == "quality"


@pytest.mark.parametrize(
    ("size", "params", "pixels"),
    [
        (None, {"aspect_ratio": "auto", "output_resolution": "1k"}, (1024, 1024)),
        ("auto", {"aspect_ratio": "auto", "output_resolution": "1k"}, (1024, 1024)),
        ("1024x1024", {"aspect_ratio": "1:1", "output_resolution": "1k"}, (1024, 1024)),
        ("1920x1088", {"aspect_ratio": "16:9", "output_resolution": "2k"}, (1920, 1088)),
        ("1008x1792", {"aspect_ratio": "9:16", "output_resolution": "2k"}, (1008, 1792)),
        ("3840x2160", {"aspect_ratio": "16:9", "output_resolution": "4k"}, (3840, 2160)),
        ("1536x512", {"aspect_ratio": "3:1", "output_resolution": "2k"}, (1536, 512)),
        ("640x480", {"aspect_ratio": "4:3", "output_resolution": "1k"}, (640, 480)),
        ("2064x880", {"aspect_ratio": "21:9", "output_resolution": "4k"}, (2064, 880)),
    ],
)
def test_map_request_gpt_image_2_free_sizes(
    catalog: Catalog, size: str | None, params: dict[str, Any], pixels: tuple[int, int]
) -> None:
    got_params, got_pixels = map_request(catalog.model("gpt-image-2"), size, "high")
    assert got_params == params
    assert got_pixels == pixels
    validate(catalog.model("gpt-image-2"), T2I, {"prompt": "p", **got_params})  # a valid contract request


@pytest.mark.parametrize(
    ("size", "message_has"),
    [
        ("1000x1000", "multiple of 16"),
        ("3856x1024", "multiple of 16"),
        ("1600x512", "3:1"),
        ("3840x3840", "8294400"),
        ("wide", "WIDTHxHEIGHT"),
        ("0x0", "multiple of 16"),
    ],
)
def test_map_request_gpt_image_2_refuses(catalog: Catalog, size: str, message_has: str) -> None:
    with pytest.raises(ValidationError) as info:
        map_request(catalog.model("gpt-image-2"), size, None)
    assert info.value.param == "size"
    assert message_has in info.value.message


def test_map_request_refuses_unknown_quality_everywhere(catalog: Catalog) -> None:
    with pytest.raises(ValidationError) as info:
        map_request(catalog.model("gpt-image-2"), "1024x1024", "ultra")
    assert info.value.param == "quality"
