"""The whole request surface of the official ``openai`` package against a real gateway.

Every output format, generated and edited; each parameter accepted where the model takes it and
a 400 naming it where not; ``client.models.retrieve``. The offline renderer (behind the fake
provider) makes every format for real, so the GIF's frames and the SVG's XML are read back.
"""

from __future__ import annotations

import base64
import io
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI
from PIL import Image, ImageFilter, ImageStat

from imagegate.db.models import Task
from imagegate.providers.base import ImageRequest
from imagegate.providers.testing import FakeProvider
from tests.conftest import Gateway, png_bytes, start_gateway
from tests.profiles import Profile

# The newest `openai` on PyPI when this was written (`pip index versions openai`): the surface
# under test is this release's. An older install would not send the parameters at all.
OPENAI_LATEST = (3, 57, 0)
SVG = "{http://www.w3.org/2000/svg}"
FLARE, SUNBURST = "gpt-image-2.6-flare", "gpt-image-2.6-sunburst"
MAGIC = {
    "png": b"\x89PNG",
    "jpeg": b"\xff\xd8\xff",
    "webp": b"RIFF",
    "gif": b"GIF89a",
    "svg": b"<?xml",
}


@pytest.fixture(scope="module")
def gw(profile: Profile, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gateway = start_gateway(tmp_path_factory.mktemp("surface"))
    yield gateway
    gateway.close()


@pytest.fixture(scope="module")
def client(gw: Gateway) -> Iterator[OpenAI]:
    with OpenAI(base_url=f"{gw.base_url}/v1", api_key=gw.new_account(usd="500")[1], max_retries=0) as sdk:
        yield sdk


def raw_bytes(result: Any) -> bytes:
    assert result.data and result.data[0].b64_json
    return base64.b64decode(result.data[0].b64_json)


def refused(call: Any, **kwargs: Any) -> openai.BadRequestError:
    with pytest.raises(openai.BadRequestError) as caught:
        call(**kwargs)
    assert caught.value.status_code == 400
    assert caught.value.code == "validation"
    return caught.value


def task_of(gw: Gateway, raw: Any) -> Task:
    task_id = raw.headers["X-Imagegate-Task-Id"]

    async def read(core: Any, _: Any) -> Task:
        async with core.db.sessions() as session:
            task = await session.get(Task, task_id)
            assert task is not None
            return task  # type: ignore[no-any-return]

    return gw.thread.call(read)


def provider_request(gw: Gateway, task_id: str) -> ImageRequest:
    """What the provider was handed for a task: the options a real upstream would be sent."""
    fake = gw.thread.call(lambda core, _: _async(core.providers.get("fake")))
    assert isinstance(fake, FakeProvider)
    return next(r for r in reversed(fake.requests) if r.task_id == task_id)


async def _async(value: Any) -> Any:
    return value


def markup_png(size: int, box: tuple[int, int, int, int]) -> bytes:
    """A transparent layer with a red stroke drawn over ``box``."""
    layer = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    layer.paste((255, 0, 0, 255), box)
    buffer = io.BytesIO()
    layer.save(buffer, "PNG")
    return buffer.getvalue()


def colours(image: Image.Image) -> set[Any]:
    return {colour for _, colour in image.getcolors(maxcolors=1 << 20) or []}


def svg_root(data: bytes) -> ET.Element:
    root = ET.fromstring(data)  # valid XML, or this raises
    assert root.tag == f"{SVG}svg"
    return root


def shapes_in(root: ET.Element) -> int:
    return sum(1 for el in root.iter() if el.tag in {f"{SVG}{t}" for t in ("circle", "rect", "polygon")})


def test_the_installed_sdk_is_the_latest_release() -> None:
    version = tuple(int(part) for part in openai.__version__.split(".")[:3])
    assert version >= OPENAI_LATEST, f"openai {openai.__version__} predates the surface under test"


# -- every format, generated and edited ----------------------------------------------------------
@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp", "gif", "svg"])
def test_generate_every_format(client: OpenAI, fmt: str) -> None:
    result = client.images.generate(
        model=FLARE,
        prompt="a red kite over a blue sea",
        size="256x256",
        output_format=fmt,  # type: ignore[arg-type]
    )
    data = raw_bytes(result)
    assert data.startswith(MAGIC[fmt])
    assert (result.output_format, result.size, result.quality) == (fmt, "256x256", "medium")
    if fmt == "svg":
        root = svg_root(data)
        assert (root.get("width"), root.get("height")) == ("256", "256")
    else:
        image = Image.open(io.BytesIO(data))
        assert image.size == (256, 256)
        assert image.format == {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "gif": "GIF"}[fmt]


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp", "gif", "svg"])
def test_edit_every_format(client: OpenAI, fmt: str) -> None:
    result = client.images.edit(
        model=SUNBURST,
        image=("a.png", png_bytes(64, 64, (0, 0, 255)), "image/png"),
        prompt="add a yellow sun",
        size="256x256",
        output_format=fmt,  # type: ignore[arg-type]
    )
    data = raw_bytes(result)
    assert data.startswith(MAGIC[fmt])
    assert (result.output_format, result.size) == (fmt, "256x256")
    if fmt == "svg":
        root = svg_root(data)
        assert root.find(f"{SVG}image") is not None, "an edit's SVG draws over its source"
    else:
        assert Image.open(io.BytesIO(data)).size == (256, 256)


# -- GIF ----------------------------------------------------------------------------------------
def read_gif(data: bytes) -> tuple[int, list[int], list[bytes]]:
    gif = Image.open(io.BytesIO(data))
    durations, frames = [], []
    for k in range(gif.n_frames):
        gif.seek(k)
        durations.append(gif.info["duration"])
        frames.append(gif.convert("RGB").tobytes())
    return gif.n_frames, durations, frames


def test_gif_has_the_requested_frames_and_delays(client: OpenAI) -> None:
    result = client.images.generate(
        model=FLARE,
        prompt="a green ball bouncing",
        size="128x128",
        output_format="gif",
        frame_count=5,
        frame_duration_ms=123,  # rounded to 10 ms
    )
    count, durations, frames = read_gif(raw_bytes(result))
    assert count == 5
    assert durations == [120] * 5
    assert len(set(frames)) == 5, "an animation: every frame differs"


def test_gif_defaults_to_nine_frames_of_200_ms(client: OpenAI) -> None:
    result = client.images.generate(model=SUNBURST, prompt="a pink moon", size="128x128", output_format="gif")
    count, durations, _ = read_gif(raw_bytes(result))
    assert (count, set(durations)) == (9, {200})


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"output_compression": 50}, "output_compression"),
        ({"partial_images": 1}, "partial_images"),
        ({"stream": True}, "stream"),
        ({"frame_count": 17}, "frame_count"),
        ({"frame_count": 1}, "frame_count"),
        ({"frame_duration_ms": 0}, "frame_duration_ms"),
        ({"size": "1536x1024"}, "size"),  # over the GIF size limit
        ({"background": "transparent"}, "background"),
    ],
)
def test_gif_refusals(client: OpenAI, extra: dict[str, Any], param: str) -> None:
    body = {"model": FLARE, "prompt": "a cat", "output_format": "gif", "size": "128x128", **extra}
    assert refused(client.images.generate, **body).param == param


def test_gif_edits_refuse_a_mask(client: OpenAI) -> None:
    mask = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    buffer = io.BytesIO()
    mask.save(buffer, "PNG")
    error = refused(
        client.images.edit,
        model=FLARE,
        image=("a.png", png_bytes(64, 64), "image/png"),
        mask=("m.png", buffer.getvalue(), "image/png"),
        prompt="a cat",
        output_format="gif",
    )
    assert error.param == "mask"


def test_frame_options_need_gif(client: OpenAI) -> None:
    for name, value in (("frame_count", 4), ("frame_duration_ms", 100)):
        error = refused(client.images.generate, model=FLARE, prompt="a cat", **{name: value})
        assert error.param == name


# -- SVG ----------------------------------------------------------------------------------------
def test_svg_is_a_vector_drawing_of_the_prompt(client: OpenAI) -> None:
    prompt = "a red circle & a blue <square> on green grass"
    result = client.images.generate(
        model=FLARE,
        prompt=prompt,
        size="512x256",
        output_format="svg",
        svg={"model": "gpt-5", "reasoning": {"effort": "low"}},
    )
    root = svg_root(raw_bytes(result))
    assert root.get("viewBox") == "0 0 512 256"
    text = root.find(f".//{SVG}text")
    assert text is not None
    assert " ".join("".join(text.itertext()).split()) == prompt  # escaped, and back intact
    fills = {el.get("fill") for el in root.iter()}
    assert {"#ff0000", "#0000ff", "#008000"} <= fills, "the named colours are drawn"
    assert shapes_in(root) >= 6


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 2}, "n"),
        ({"output_compression": 80}, "output_compression"),
        ({"stream": True}, "stream"),
        ({"partial_images": 2}, "partial_images"),
        ({"svg": {"model": ""}}, "svg"),
        ({"svg": {"model": "gpt-5", "reasoning": {"effort": "huge"}}}, "svg"),
    ],
)
def test_svg_refusals(client: OpenAI, extra: dict[str, Any], param: str) -> None:
    body = {"model": FLARE, "prompt": "a cat", "output_format": "svg", **extra}
    assert refused(client.images.generate, **body).param == param


def test_svg_options_need_svg_output(client: OpenAI) -> None:
    error = refused(client.images.generate, model=FLARE, prompt="a cat", svg={"model": "gpt-5"})
    assert error.param == "svg"


def test_svg_edit_takes_its_author_as_form_fields(gw: Gateway, client: OpenAI) -> None:
    raw = client.images.with_raw_response.edit(
        model=SUNBURST,
        image=("a.png", png_bytes(64, 64), "image/png"),
        prompt="a tiny purple star",
        output_format="svg",
        svg={"model": "gpt-5", "reasoning": {"effort": "high"}},
    )
    svg_root(raw_bytes(raw.parse()))
    assert task_of(gw, raw).params["svg"] == {"model": "gpt-5", "reasoning": {"effort": "high"}}


# -- complexity, quality --------------------------------------------------------------------------
def test_complexity_draws_more_at_high_than_low(client: OpenAI) -> None:
    def svg_shapes(level: str) -> int:
        result = client.images.generate(
            model=FLARE,
            prompt="a busy orange market",
            output_format="svg",
            complexity=level,  # type: ignore[arg-type]
        )
        return shapes_in(svg_root(raw_bytes(result)))

    def edge_energy(level: str) -> float:
        result = client.images.generate(
            model=FLARE,
            prompt="a busy orange market",
            size="256x256",
            complexity=level,  # type: ignore[arg-type]
        )
        image = Image.open(io.BytesIO(raw_bytes(result))).convert("L").filter(ImageFilter.FIND_EDGES)
        return float(ImageStat.Stat(image).mean[0])

    assert svg_shapes("high") > 2 * svg_shapes("low")
    assert edge_energy("high") > 1.5 * edge_energy("low")


@pytest.mark.parametrize("model", ["gpt-image-2", "gpt-image-2.5-flare", "gpt-image-1.5"])
def test_complexity_is_2_6_only(client: OpenAI, model: str) -> None:
    assert (
        refused(client.images.generate, model=model, prompt="a cat", complexity="high").param == "complexity"
    )


@pytest.mark.parametrize("model", ["gpt-image-2.5-sunburst", "gpt-image-2.5-flare", FLARE, SUNBURST])
@pytest.mark.parametrize("quality", ["xhigh", "max"])
def test_top_qualities_on_2_5_and_2_6(client: OpenAI, model: str, quality: str) -> None:
    result = client.images.generate(model=model, prompt="a fern", size="128x128", quality=quality)  # type: ignore[arg-type]
    assert result.quality == quality


@pytest.mark.parametrize("model", ["gpt-image-2", "gpt-image-1.5"])
@pytest.mark.parametrize("quality", ["xhigh", "max", "hd", "standard"])
def test_top_qualities_refused_before_2_5(client: OpenAI, model: str, quality: str) -> None:
    assert refused(client.images.generate, model=model, prompt="a fern", quality=quality).param == "quality"


@pytest.mark.parametrize("model", ["gpt-image-2", "gpt-image-2.5-flare", "gpt-image-1.5"])
@pytest.mark.parametrize("fmt", ["gif", "svg"])
def test_gif_and_svg_are_2_6_only(client: OpenAI, model: str, fmt: str) -> None:
    error = refused(client.images.generate, model=model, prompt="a cat", output_format=fmt)
    assert error.param == "output_format"


def test_style_is_refused_naming_it(client: OpenAI) -> None:
    assert refused(client.images.generate, model=FLARE, prompt="a cat", style="vivid").param == "style"


# -- moderation, input_fidelity, safety identifier: carried to the provider -----------------------
def test_moderation_reaches_the_provider(gw: Gateway, client: OpenAI) -> None:
    raw = client.images.with_raw_response.generate(
        model="gpt-image-2", prompt="a calm lake", size="128x128", moderation="low"
    )
    task = task_of(gw, raw)
    assert task.params["moderation"] == "low"
    assert provider_request(gw, task.id).extra["moderation"] == "low"
    assert refused(client.images.generate, model=FLARE, prompt="x", moderation="high").param == "moderation"  # type: ignore[arg-type]


def test_input_fidelity_on_gpt_image_1_5_edits_only(gw: Gateway, client: OpenAI) -> None:
    image = ("a.png", png_bytes(64, 64), "image/png")
    raw = client.images.with_raw_response.edit(
        model="gpt-image-1.5", image=image, prompt="keep the face", input_fidelity="high"
    )
    task = task_of(gw, raw)
    assert task.params["input_fidelity"] == "high"
    assert provider_request(gw, task.id).extra["input_fidelity"] == "high"
    for model in ("gpt-image-2", FLARE):
        error = refused(client.images.edit, model=model, image=image, prompt="x", input_fidelity="high")
        assert error.param == "input_fidelity"
    error = refused(
        client.images.generate, model="gpt-image-1.5", prompt="x", extra_body={"input_fidelity": "high"}
    )
    assert error.param == "input_fidelity"


def test_safety_identifier_is_stored_and_echoed(gw: Gateway, client: OpenAI) -> None:
    raw = client.images.with_raw_response.generate(
        model=FLARE, prompt="a kite", size="128x128", safety_identifier="hash-abc", user="old-user"
    )
    assert raw.parse().safety_identifier == "hash-abc"  # takes precedence over user
    task = task_of(gw, raw)
    assert task.params["safety_identifier"] == "hash-abc"
    assert provider_request(gw, task.id).extra["safety_identifier"] == "hash-abc"
    legacy = client.images.with_raw_response.generate(
        model=FLARE, prompt="a kite", size="128x128", user="u-1"
    )
    assert legacy.parse().safety_identifier == "u-1"
    assert task_of(gw, legacy).params["safety_identifier"] == "u-1"
    error = refused(client.images.generate, model=FLARE, prompt="x", safety_identifier="s" * 65)
    assert error.param == "safety_identifier"


# -- markup -------------------------------------------------------------------------------------
def test_markup_puts_the_edit_where_it_is_marked(gw: Gateway, client: OpenAI) -> None:
    raw = client.images.with_raw_response.edit(
        model=SUNBURST,
        image=("a.png", png_bytes(256, 256, (0, 0, 255)), "image/png"),
        markup=("m.png", markup_png(256, (16, 16, 96, 96)), "image/png"),
        prompt="paint it bright yellow",
        size="256x256",
    )
    image = Image.open(io.BytesIO(raw_bytes(raw.parse()))).convert("RGB")
    marked = image.crop((24, 24, 88, 88))
    unmarked = image.crop((140, 140, 256, 256))
    assert colours(unmarked) == {(0, 0, 255)}, "outside the marks the source is kept exactly"
    assert (0, 0, 255) not in colours(marked), "inside the marks the edit shows"
    assert any(ref.get("role") == "markup" for ref in task_of(gw, raw).inputs)


@pytest.mark.parametrize(
    ("model", "layer", "with_mask", "why"),
    [
        ("gpt-image-2", markup_png(64, (0, 0, 8, 8)), False, "not supported by gpt-image-2"),
        (FLARE, markup_png(32, (0, 0, 8, 8)), False, "same dimensions"),
        (FLARE, markup_png(64, (0, 0, 64, 64)), False, "transparent"),  # nothing see-through
        (FLARE, markup_png(64, (0, 0, 8, 8)), True, "mask"),
    ],
)
def test_markup_refusals(client: OpenAI, model: str, layer: bytes, with_mask: bool, why: str) -> None:
    extra: dict[str, Any] = (
        {"mask": ("k.png", markup_png(64, (0, 0, 8, 8)), "image/png")} if with_mask else {}
    )
    error = refused(
        client.images.edit,
        model=model,
        image=("a.png", png_bytes(64, 64), "image/png"),
        markup=("m.png", layer, "image/png"),
        prompt="x",
        **extra,
    )
    assert error.param == "markup"
    assert isinstance(error.body, dict) and why in error.body["message"]


# -- downloads and models -----------------------------------------------------------------------
@pytest.mark.parametrize(("fmt", "media"), [("gif", "image/gif"), ("svg", "image/svg+xml")])
def test_download_route_serves_gif_and_svg(client: OpenAI, fmt: str, media: str) -> None:
    result = client.images.generate(
        model=FLARE,
        prompt="a fox",
        size="128x128",
        output_format=fmt,
        response_format="url",  # type: ignore[arg-type]
    )
    assert result.data and result.data[0].url
    download = httpx.get(result.data[0].url, timeout=30, follow_redirects=True)
    assert download.status_code == 200
    assert download.headers["content-type"].split(";")[0] == media
    assert download.content.startswith(MAGIC[fmt])


def test_models_retrieve(client: OpenAI) -> None:
    model = client.models.retrieve(FLARE)
    assert (model.id, model.object, model.owned_by) == (FLARE, "model", "openai")
    extra = model.to_dict()
    assert "svg" in extra["image_parameters"]["output_format"]
    old = client.models.retrieve("gpt-image-1.5")
    assert old.shutdown_date == "2026-12-01"
    alias = client.models.retrieve("gpt-image-2-2026-04-21")
    assert alias.id == "gpt-image-2-2026-04-21" and alias.to_dict()["alias_of"] == "gpt-image-2"


def test_models_retrieve_unknown_is_a_404(client: OpenAI, tmp_path: Path) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("dall-e-9")
    error = caught.value
    assert error.status_code == 404
    assert isinstance(error.body, dict) and "dall-e-9" in error.body["message"]
    assert error.response.json() == {"error": error.body}
