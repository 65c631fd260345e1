"""The offline provider as a user sees it: real, deterministic images that follow the request."""

from __future__ import annotations

import dataclasses
import io
from typing import Any

import pytest
from PIL import Image, ImageStat

from imagegate.providers.base import (
    Action,
    FinalImage,
    ImageRequest,
    PartialImage,
    Progress,
    Provider,
    ProviderError,
    ProviderEvent,
    SourceImage,
    Usage,
)
from imagegate.providers.offline import OfflineProvider

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def make_request(**overrides: Any) -> ImageRequest:
    fields: dict[str, Any] = {
        "task_id": "task-1",
        "model": "gpt-image-1.5",
        "action": Action.GENERATE,
        "prompt": "a lighthouse on a cliff at dusk",
        "width": 512,
        "height": 512,
    }
    fields.update(overrides)
    return ImageRequest(**fields)


async def collect(request: ImageRequest) -> list[ProviderEvent]:
    provider = OfflineProvider()
    try:
        return [event async for event in provider.run(request)]
    finally:
        await provider.aclose()


async def finals(request: ImageRequest) -> list[bytes]:
    return [e.image.data for e in await collect(request) if isinstance(e, FinalImage)]


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt)
    return buf.getvalue()


def solid(colour: tuple[int, int, int], size: tuple[int, int] = (300, 200)) -> SourceImage:
    return SourceImage(encode(Image.new("RGB", size, colour)), "image/png")


def distance(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    return float(sum((x - y) ** 2 for x, y in zip(a, b, strict=True)) ** 0.5)


def share(image: Image.Image, test: Any) -> float:
    """Fraction of pixels for which ``test(r, g, b)`` holds, on a small copy."""
    raw = image.convert("RGB").resize((128, 128), Image.Resampling.NEAREST).tobytes()
    pixels = [raw[i : i + 3] for i in range(0, len(raw), 3)]
    return sum(1 for p in pixels if test(*p)) / len(pixels)


def test_satisfies_the_provider_protocol() -> None:
    provider = OfflineProvider()
    assert isinstance(provider, Provider)
    assert provider.name == "offline"


async def test_png_output_is_a_decodable_png_of_the_requested_size() -> None:
    (data,) = await finals(make_request())
    assert data.startswith(PNG_SIGNATURE)
    image = decode(data)
    assert image.format == "PNG"
    assert image.size == (512, 512)


@pytest.mark.parametrize(
    ("width", "height"), [(1024, 1024), (1024, 1536), (1536, 1024), (2048, 2048), (1280, 3840), (3840, 2160)]
)
async def test_exact_size(width: int, height: int) -> None:
    events = await collect(make_request(width=width, height=height))
    (final,) = [e for e in events if isinstance(e, FinalImage)]
    assert (final.image.width, final.image.height) == (width, height)
    assert decode(final.image.data).size == (width, height)


async def test_same_request_gives_same_bytes_whatever_the_task_id() -> None:
    first = await finals(make_request(task_id="a"))
    second = await finals(make_request(task_id="b"))
    assert first == second


async def test_different_prompts_give_different_images() -> None:
    a = await finals(make_request(prompt="a cat"))
    b = await finals(make_request(prompt="a dog"))
    assert a != b


async def test_named_colour_dominates() -> None:
    (data,) = await finals(make_request(prompt="a red square"))
    assert share(decode(data), lambda r, g, b: r > 150 and g < 100 and b < 100) > 0.6


async def test_several_named_colours_all_appear() -> None:
    (data,) = await finals(make_request(prompt="blue and yellow stripes"))
    image = decode(data)
    assert share(image, lambda r, g, b: b > 150 and r < 100 and g < 100) > 0.05
    assert share(image, lambda r, g, b: r > 150 and g > 150 and b < 100) > 0.05


async def test_long_prompt_is_truncated_not_fatal() -> None:
    (data,) = await finals(make_request(prompt="an extremely detailed prompt " * 1100))  # ~32k chars
    assert decode(data).size == (512, 512)


async def test_unwrappable_and_odd_text_renders() -> None:
    (data,) = await finals(make_request(prompt="x" * 32000 + "\x00\ud800 \u732b \U0001f600"))
    assert decode(data).size == (512, 512)


async def test_transparent_background_has_transparent_pixels() -> None:
    (data,) = await finals(make_request(background="transparent"))
    image = decode(data)
    assert image.mode == "RGBA"
    assert image.getchannel("A").getextrema()[0] == 0


async def test_opaque_by_default() -> None:
    (data,) = await finals(make_request())
    image = decode(data)
    assert image.mode == "RGB"


async def test_jpeg_output_and_compression() -> None:
    events = await collect(make_request(output_format="jpeg", output_compression=95))
    (final,) = [e for e in events if isinstance(e, FinalImage)]
    assert final.image.content_type == "image/jpeg"
    assert final.image.data.startswith(b"\xff\xd8\xff")
    assert decode(final.image.data).format == "JPEG"
    (smaller,) = await finals(make_request(output_format="jpeg", output_compression=20))
    assert len(smaller) < len(final.image.data)


async def test_transparent_jpeg_falls_back_to_opaque() -> None:
    (data,) = await finals(make_request(output_format="jpeg", background="transparent"))
    assert decode(data).mode == "RGB"


async def test_webp_output_keeps_transparency() -> None:
    events = await collect(make_request(output_format="webp", background="transparent"))
    (final,) = [e for e in events if isinstance(e, FinalImage)]
    assert final.image.content_type == "image/webp"
    assert final.image.data[:4] == b"RIFF" and final.image.data[8:12] == b"WEBP"
    image = decode(final.image.data)
    assert image.size == (512, 512)
    assert image.mode == "RGBA"
    assert image.getchannel("A").getextrema()[0] == 0


async def test_n_images_are_indexed_and_distinct() -> None:
    events = await collect(make_request(n=3))
    images = [e for e in events if isinstance(e, FinalImage)]
    assert [e.index for e in images] == [0, 1, 2]
    assert len({e.image.data for e in images}) == 3


async def test_partial_images_come_before_the_final() -> None:
    events = await collect(make_request(partial_images=3))
    kinds = [type(e) for e in events]
    partials = [e for e in events if isinstance(e, PartialImage)]
    assert [p.partial_index for p in partials] == [0, 1, 2]
    assert all(p.index == 0 for p in partials)
    assert max(i for i, k in enumerate(kinds) if k is PartialImage) < kinds.index(FinalImage)
    for p in partials:
        assert decode(p.image.data).size == (p.image.width, p.image.height)
    assert len({p.image.data for p in partials}) == 3  # progressively more detailed


async def test_progress_and_usage_events() -> None:
    events = await collect(make_request(width=1024, height=1024, prompt="x" * 400))
    fractions = [e.fraction for e in events if isinstance(e, Progress)]
    assert len(fractions) >= 2
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    (usage,) = [e for e in events if isinstance(e, Usage)]
    assert usage == Usage(input_text_tokens=100, input_image_tokens=0, output_image_tokens=1056)


async def test_usage_scales_with_quality_size_and_count() -> None:
    events = await collect(make_request(width=1024, height=1536, quality="high", n=2))
    (usage,) = [e for e in events if isinstance(e, Usage)]
    assert usage.output_image_tokens == 2 * 6240


def edit_request(*sources: SourceImage, **overrides: Any) -> ImageRequest:
    fields: dict[str, Any] = {"prompt": "make it look nicer", **overrides}
    return make_request(action=Action.EDIT, sources=sources, **fields)


async def test_edit_output_derives_from_the_source() -> None:
    blue, yellow = (0, 0, 255), (255, 255, 0)
    for source, other in ((blue, yellow), (yellow, blue)):
        (data,) = await finals(edit_request(solid(source)))
        mean = tuple(ImageStat.Stat(decode(data).convert("RGB")).mean)
        assert distance(mean, source) * 3 < distance(mean, other)


async def test_edit_with_named_colour_tints_towards_it() -> None:
    grey = solid((128, 128, 128))
    (plain,) = await finals(edit_request(grey))
    (tinted,) = await finals(edit_request(grey, prompt="make it red"))
    r_plain, g_plain, _ = ImageStat.Stat(decode(plain).convert("RGB")).mean
    r_red, g_red, _ = ImageStat.Stat(decode(tinted).convert("RGB")).mean
    assert r_red - g_red > r_plain - g_plain + 20


async def test_edit_accepts_jpeg_and_webp_sources_and_extra_sources() -> None:
    photo = SourceImage(encode(Image.new("RGB", (640, 480), (0, 128, 0)), "JPEG"), "image/jpeg")
    sticker = SourceImage(encode(Image.new("RGBA", (64, 64), (255, 0, 0, 255)), "WEBP"), "image/webp")
    events = await collect(edit_request(photo, sticker, width=1024, height=1536))
    (final,) = [e for e in events if isinstance(e, FinalImage)]
    assert decode(final.image.data).size == (1024, 1536)
    (usage,) = [e for e in events if isinstance(e, Usage)]
    assert usage.input_image_tokens == 2 * 1056


async def test_mask_limits_the_edit_to_its_transparent_region() -> None:
    source = Image.new("RGB", (512, 512), (0, 0, 255))
    mask = Image.new("RGBA", (512, 512), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 256, 512))  # left half transparent: may be edited
    request = edit_request(
        SourceImage(encode(source), "image/png"),
        mask=SourceImage(encode(mask), "image/png"),
        prompt="a yellow sun",
    )
    (data,) = await finals(request)
    out = decode(data).convert("RGB")
    kept = out.crop((300, 0, 512, 512))
    assert kept.getcolors() == [(212 * 512, (0, 0, 255))]
    changed = out.crop((0, 0, 220, 512))
    assert distance(tuple(ImageStat.Stat(changed).mean), (0, 0, 255)) > 50


async def test_undecodable_source_is_a_validation_error() -> None:
    with pytest.raises(ProviderError) as info:
        await collect(edit_request(SourceImage(b"definitely not an image", "image/png")))
    assert info.value.code == "validation"


async def test_truncated_source_is_a_validation_error() -> None:
    data = encode(Image.new("RGB", (200, 200), (9, 9, 9)))
    with pytest.raises(ProviderError) as info:
        await collect(edit_request(SourceImage(data[: len(data) // 2], "image/png")))
    assert info.value.code == "validation"


async def test_mask_without_alpha_is_a_validation_error() -> None:
    mask = SourceImage(encode(Image.new("RGB", (300, 200), (0, 0, 0)), "JPEG"), "image/jpeg")
    with pytest.raises(ProviderError) as info:
        await collect(edit_request(solid((1, 2, 3)), mask=mask))
    assert info.value.code == "validation"


async def test_edit_without_sources_is_a_validation_error() -> None:
    with pytest.raises(ProviderError) as info:
        await collect(make_request(action=Action.EDIT))
    assert info.value.code == "validation"


async def test_edit_is_deterministic() -> None:
    request = edit_request(solid((10, 200, 30)), solid((200, 10, 30)))
    assert await finals(request) == await finals(dataclasses.replace(request, task_id="other"))
