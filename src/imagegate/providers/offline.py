"""The offline provider: deterministic pictures drawn locally, with no weights and no network.

It is the gateway's default so that everything (billing, storage, streaming, the SDK surface)
works on a fresh install. The output is a real image a person can check at a glance: the colours
named in the prompt dominate it and the prompt itself is printed on it. The same request always
gives the same bytes, because every choice is seeded from a SHA-256 of the request's content.

Edits start from the first source, fitted to the output size, tint it towards the prompt's
colours, show further sources as thumbnails and add the caption; a mask limits every change to
its transparent region, a markup layer to the region its marks cover. Transparency is kept only
by formats that have it (PNG, WebP); for an edit it comes from the source's own alpha channel.

Every output format is made for real: an animated GIF of ``frame_count`` frames (``_animation``)
and an SVG vector drawing (``_svg``). ``complexity`` sets how many shapes and how much fine detail
a picture has.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import math
import random
import threading
from collections.abc import AsyncIterator
from contextlib import nullcontext
from dataclasses import dataclass

from PIL import Image, ImageOps, _imaging

from imagegate.providers import _animation, _svg
from imagegate.providers._drawing import hashed_palette, prompt_colours, render_edit, render_generate
from imagegate.providers.base import (
    CONTENT_TYPES,
    Action,
    FinalImage,
    GeneratedImage,
    ImageRequest,
    OutputFormat,
    PartialImage,
    Progress,
    ProviderError,
    ProviderEvent,
    SourceImage,
    Usage,
)
from imagegate.providers.config import ProviderConfig
from imagegate.providers.registry import register_kind

# Chosen by bench/offline_render.py. On these flat-shape pictures zlib levels 1-3 and 4-9 form two
# plateaus: level 4 (where lazy matching starts) costs ~3 ms more than level 1 at 1024x1024 but
# makes files ~30% smaller (2.3x smaller at 3840x2160); 5-9 only add time. PNG is lossless anyway.
PNG_COMPRESS_LEVEL = 4
MAX_SIDE = 8192
MAX_PIXELS = 4096 * 4096  # a guard against runaway memory, well above the catalog's sizes
SOURCE_MAX_PIXELS = 64_000_000
# PNG and WebP cannot be decoded at reduced size, so a large source is decoded in full and reduced
# at once. Those full decodes take turns, process-wide: an 8000x8000 RGB decode is 256 MB, and four
# tasks of sixteen such sources must not hold sixteen (or four) of them at the same time.
_BIG_DECODE_PIXELS = 4096 * 4096
_BIG_DECODES = threading.BoundedSemaphore(1)
_REDUCIBLE = frozenset({"L", "LA", "RGB", "RGBA", "I", "F", "I;16"})
# Pillow allocates pixels in blocks (16 MB by default). glibc serves a freed 16 MB block's
# successors from its heaps (its mmap threshold rises to 32 MB at most), and those heaps stay
# resident: four tasks of big sources left ~300 MB behind. Blocks above 32 MB are always mmap'd
# and go back to the OS when freed; small images are one block of their own size, as before.
_PILLOW_BLOCK_BYTES = 64 * 1024 * 1024
_imaging.set_block_size(_PILLOW_BLOCK_BYTES)
PARTIAL_SIDE = 384  # partial previews are small: they exist to show progress, cheaply

# GPT Image output tokens for one 1024x1024 image by quality; other sizes scale by area.
_TOKENS_1024 = {"low": 272, "medium": 1056, "high": 4160}
_QUALITY_ALIASES = {"auto": "medium", "standard": "medium", "hd": "high"}
_SHAPES = {"low": (4, 6), "medium": (6, 9), "high": (9, 14)}
# `complexity` -> (shape count multiplier, fine-detail dots); absent: the quality's shapes alone.
_COMPLEXITY = {"low": (0.5, 0), "medium": (1.0, 12), "high": (2.0, 80)}
MARKUP_MARGIN = 0.04  # the edited region reaches this fraction of the short side past the marks
INPUT_IMAGE_TOKENS = 1056  # per source image of an edit


@dataclass(frozen=True)
class _EditInputs:
    base: Image.Image  # first source fitted to the output size, RGB or RGBA
    extras: tuple[Image.Image, ...]  # the other sources, kept small for thumbnails
    mask: Image.Image | None  # "L", 0 where the edit may paint (from a mask or a markup layer)


def _quality(quality: str) -> str:
    quality = _QUALITY_ALIASES.get(quality, quality)
    return quality if quality in _TOKENS_1024 else "medium"


def estimate_usage(request: ImageRequest) -> Usage:
    """Rough GPT Image token counts, so that offline runs exercise token-based billing."""
    per_image = _TOKENS_1024[_quality(request.quality)] * request.width * request.height / 1024**2
    return Usage(
        input_text_tokens=math.ceil(len(request.prompt) / 4),
        input_image_tokens=INPUT_IMAGE_TOKENS * len(request.sources) if request.action == Action.EDIT else 0,
        output_image_tokens=round(per_image * request.n),
    )


def scene_seed(request: ImageRequest, index: int) -> int:
    """A seed from what the picture depends on. Not the task id (replays must match) and not the
    encoding (format, compression, background), so a PNG and a JPEG of a request show one scene."""
    digest = hashlib.sha256()
    for part in (request.prompt, request.model, str(request.action), str(request.width), str(request.height)):
        data = part.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "big") + data)  # length prefix: no ambiguous joins
    digest.update(_quality(request.quality).encode())
    for source in (*request.sources, *([request.mask] if request.mask else [])):
        digest.update(hashlib.sha256(source.data).digest())
    digest.update(b"mask" if request.mask else b"")
    digest.update(index.to_bytes(4, "big"))
    return int.from_bytes(digest.digest(), "big")


def encode_image(
    image: Image.Image, fmt: OutputFormat, compression: int, *, png_level: int = PNG_COMPRESS_LEVEL
) -> GeneratedImage:
    buf = io.BytesIO()
    quality = max(0, min(100, compression))
    if fmt == "png":
        image.save(buf, "PNG", compress_level=png_level, optimize=False)
    elif fmt == "jpeg":
        image.convert("RGB").save(buf, "JPEG", quality=quality)
    else:
        image.save(buf, "WEBP", quality=quality, method=4)
    return GeneratedImage(buf.getvalue(), CONTENT_TYPES[fmt], image.width, image.height)


def _partial(image: Image.Image, partial_index: int, total: int, fmt: OutputFormat) -> GeneratedImage:
    """A small, coarse preview: a mosaic that gets finer with each partial."""
    preview = image.copy()
    preview.thumbnail((PARTIAL_SIDE, PARTIAL_SIDE), Image.Resampling.BILINEAR)
    detail = ((partial_index + 1) / (total + 1)) ** 2
    cells = (max(2, round(preview.width * detail)), max(2, round(preview.height * detail)))
    mosaic = preview.resize(cells, Image.Resampling.BOX).resize(preview.size, Image.Resampling.NEAREST)
    buf = io.BytesIO()
    if fmt == "png":
        mosaic.save(buf, "PNG", compress_level=1)
    elif fmt == "jpeg":
        mosaic.convert("RGB").save(buf, "JPEG", quality=70)
    else:
        mosaic.save(buf, "WEBP", quality=60, method=0)
    return GeneratedImage(buf.getvalue(), CONTENT_TYPES[fmt], mosaic.width, mosaic.height)


def _reduced(image: Image.Image, side: int) -> Image.Image:
    """``image`` shrunk by a whole factor while both sides stay at least ``side`` (box filter: cheap,
    and what follows resamples again anyway). ``side`` covers either orientation of the target."""
    factor = min(image.width // side, image.height // side)
    if factor < 2:
        return image
    if image.mode not in _REDUCIBLE:
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    return image.reduce(factor)


def _open(source: SourceImage, what: str, size: tuple[int, int]) -> Image.Image:
    """Decode one upload no larger than needed to draw ``size``; anything Pillow cannot read is
    the caller's error, not ours."""
    try:
        opened = Image.open(io.BytesIO(source.data), formats=["PNG", "JPEG", "WEBP"])
        if opened.width * opened.height > SOURCE_MAX_PIXELS:
            raise ProviderError(f"{what} is too large to decode", code="validation")
        side = max(size)
        if opened.format == "JPEG":
            opened.draft("RGB", (side, side))  # libjpeg downscales while decoding: little memory
        big = opened.width * opened.height > _BIG_DECODE_PIXELS and opened.format != "JPEG"
        with _BIG_DECODES if big else nullcontext():
            opened.load()
            has_alpha = "A" in opened.getbands() or "transparency" in opened.info
            image = _reduced(opened, side)  # keeps a copy of info, EXIF orientation included
            if image is not opened:
                opened.close()  # free the full decode before the next one may start
        image = ImageOps.exif_transpose(image)
        return image.convert("RGBA" if has_alpha else "RGB")
    except ProviderError:
        raise
    except Exception as exc:  # decoders raise a zoo of types (OSError, SyntaxError, ValueError, ...)
        raise ProviderError(f"{what} is not a readable PNG, JPEG or WebP image", code="validation") from exc


def _decode_edit(request: ImageRequest, transparent: bool) -> _EditInputs:
    size = (request.width, request.height)
    first = _open(request.sources[0], "source image 1", size)
    base = ImageOps.fit(first, size, Image.Resampling.BILINEAR)
    if base.mode == "RGBA" and not transparent:
        flat = Image.new("RGB", size, (255, 255, 255))  # opaque output: transparent parts become white
        flat.paste(base, mask=base.getchannel("A"))
        base = flat
    thumb = (max(16, min(size) // 4),) * 2
    extras: list[Image.Image] = []
    for k, source in enumerate(request.sources[1:], start=2):
        extra = _open(source, f"source image {k}", (thumb[0] * 2, thumb[1] * 2))
        extra.thumbnail((thumb[0] * 2, thumb[1] * 2))
        extras.append(extra)
    mask: Image.Image | None = None
    if request.mask is not None:
        opened = _open(request.mask, "mask", size)
        if opened.mode != "RGBA":
            raise ProviderError("mask must be a PNG with an alpha channel", code="validation")
        mask = ImageOps.fit(opened.getchannel("A"), size, Image.Resampling.BILINEAR)
    elif request.markup is not None:
        mask = _markup_mask(_open(request.markup, "markup", size), size)
    return _EditInputs(base, tuple(extras), mask)


def _markup_mask(markup: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The region a markup layer's marks (its non-transparent pixels) cover, with a margin, as a
    mask: 0 (editable) inside, 255 (kept) elsewhere."""
    if markup.mode != "RGBA":
        raise ProviderError("markup must be a PNG with an alpha channel", code="validation")
    alpha = ImageOps.fit(markup.getchannel("A"), size, Image.Resampling.BILINEAR)
    marks = alpha.point(lambda v: 255 if v > 0 else 0).getbbox()
    if marks is None:
        raise ProviderError("markup has no marks on it", code="validation")
    pad = round(min(size) * MARKUP_MARGIN)
    x0, y0, x1, y1 = marks
    mask = Image.new("L", size, 255)
    mask.paste(0, (max(0, x0 - pad), max(0, y0 - pad), min(size[0], x1 + pad), min(size[1], y1 + pad)))
    return mask


def _validate(request: ImageRequest) -> None:
    w, h = request.width, request.height
    if not (0 < w <= MAX_SIDE and 0 < h <= MAX_SIDE and w * h <= MAX_PIXELS):
        raise ProviderError(f"unsupported size {w}x{h}", code="validation")
    if request.n < 1:
        raise ProviderError("n must be at least 1", code="validation")
    if request.output_format not in CONTENT_TYPES:
        raise ProviderError(f"unsupported output format {request.output_format!r}", code="validation")
    if request.action == Action.EDIT and not request.sources:
        raise ProviderError("an edit needs at least one source image", code="validation")


def _complexity(request: ImageRequest, shapes: int) -> tuple[int, int]:
    """(shapes, detail dots) for the request's ``complexity``; unchanged when it has none."""
    level = request.extra.get("complexity")
    if level not in _COMPLEXITY:
        return shapes, 0
    factor, detail = _COMPLEXITY[str(level)]
    return max(2, round(shapes * factor)), detail


def _editable(mask: Image.Image | None) -> tuple[int, int, int, int] | None:
    if mask is None:
        return None
    box = mask.point(lambda v: 255 if v < 128 else 0).getbbox()
    return None if box is None else (box[0], box[1], box[2], box[3])


class OfflineProvider:
    """Draws the request locally. CPU work runs in worker threads, one step at a time."""

    name = "offline"
    label = "offline renderer: placeholder pictures drawn locally"
    placeholder = True

    def __init__(self, *, png_compress_level: int = PNG_COMPRESS_LEVEL) -> None:
        self.png_compress_level = png_compress_level

    def render(self, request: ImageRequest, index: int, inputs: _EditInputs | None = None) -> Image.Image:
        """The picture for output ``index`` (before encoding). Blocking: call it from a thread."""
        rng = random.Random(scene_seed(request, index))
        named = prompt_colours(request.prompt)
        palette = named or hashed_palette(rng)
        shapes, detail = _complexity(request, rng.randint(*_SHAPES[_quality(request.quality)]))
        size = (request.width, request.height)
        if inputs is None:
            transparent = request.background == "transparent" and request.output_format in ("png", "webp")
            return render_generate(
                size, request.prompt, palette, rng, shapes=shapes, transparent=transparent, detail=detail
            )
        # a named colour is a request to recolour; otherwise a light tint just marks the image as edited
        tint = 0.35 if named else 0.15
        return render_edit(
            inputs.base,
            inputs.extras,
            inputs.mask,
            request.prompt,
            palette,
            rng,
            tint=tint,
            shapes=shapes // 2,
            detail=detail,
        )

    def render_svg(self, request: ImageRequest, index: int, inputs: _EditInputs | None = None) -> bytes:
        """The SVG document for output ``index``. Blocking: call it from a thread."""
        rng = random.Random(scene_seed(request, index))
        palette = prompt_colours(request.prompt) or hashed_palette(rng)
        shapes, detail = _complexity(request, rng.randint(*_SHAPES[_quality(request.quality)]))
        size = (request.width, request.height)
        if inputs is None:
            return _svg.render_svg(size, request.prompt, palette, rng, shapes=shapes, detail=detail)
        return _svg.render_svg(
            size,
            request.prompt,
            palette,
            rng,
            shapes=max(1, shapes // 2),
            detail=detail,
            source=inputs.base,
            editable=_editable(inputs.mask),
        )

    def render_gif(self, request: ImageRequest, index: int, inputs: _EditInputs | None = None) -> bytes:
        """The animated GIF for output ``index``. Blocking: call it from a thread."""
        still = self.render(request, index, inputs)
        palette = prompt_colours(request.prompt) or hashed_palette(random.Random(scene_seed(request, index)))
        count = int(request.extra.get("frame_count") or 9)
        duration = int(request.extra.get("frame_duration_ms") or 200)
        keep = None
        if inputs is not None and inputs.mask is not None:
            keep = (inputs.base, inputs.mask)
        area = _editable(inputs.mask) if inputs is not None else None
        images = _animation.frames(still, palette, count, area=area, keep=keep)
        return _animation.encode_gif(images, duration)

    async def _final(self, request: ImageRequest, index: int, inputs: _EditInputs | None) -> GeneratedImage:
        size = (request.width, request.height)
        if request.output_format == "svg":
            data = await asyncio.to_thread(self.render_svg, request, index, inputs)
            return GeneratedImage(data, CONTENT_TYPES["svg"], *size)
        data = await asyncio.to_thread(self.render_gif, request, index, inputs)
        return GeneratedImage(data, CONTENT_TYPES["gif"], *size)

    async def run(self, request: ImageRequest) -> AsyncIterator[ProviderEvent]:
        """Progress, then per output image ``partial_images`` previews and its FinalImage; Usage last."""
        _validate(request)
        n, fmt = request.n, request.output_format
        yield Progress(0.0, "rendering")
        inputs: _EditInputs | None = None
        if request.action == Action.EDIT:
            transparent = request.background == "transparent" and fmt in ("png", "webp")
            inputs = await asyncio.to_thread(_decode_edit, request, transparent)
        for index in range(n):
            if fmt in ("gif", "svg"):  # whole documents: no partial previews
                yield FinalImage(index=index, image=await self._final(request, index, inputs))
                yield Progress((index + 1) / n, f"image {index + 1} of {n} done")
                continue
            image = await asyncio.to_thread(self.render, request, index, inputs)
            for p in range(request.partial_images):
                partial = await asyncio.to_thread(_partial, image, p, request.partial_images, fmt)
                yield PartialImage(index=index, partial_index=p, image=partial)
            yield Progress((index + 0.5) / n, f"encoding image {index + 1} of {n}")
            final = await asyncio.to_thread(
                encode_image, image, fmt, request.output_compression, png_level=self.png_compress_level
            )
            yield FinalImage(index=index, image=final)
            yield Progress((index + 1) / n, f"image {index + 1} of {n} done")
        yield estimate_usage(request)

    async def aclose(self) -> None:
        return None


@register_kind("offline")
def _from_config(config: ProviderConfig) -> OfflineProvider:
    return OfflineProvider()
