"""OpenAI Images vocabulary (size, quality) to a model's contract parameters and pixels."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from imagegate.catalog.openai_surface import check_quality
from imagegate.catalog.schema import ModelSpec, parse_size
from imagegate.errors import ValidationError

MAX_EDGE = 3840


def _parse_size(size: str) -> tuple[int, int]:
    try:
        width, height = parse_size(size)
    except ValueError:
        raise ValidationError("size must be 'auto' or WIDTHxHEIGHT, e.g. 1024x1024", param="size") from None
    return width, height


@lru_cache(maxsize=1024)  # a handful of sizes per model, asked on every OpenAI-face call
def _nearest_aspect(width: int, height: int, choices: tuple[str, ...]) -> str:
    target = width / height
    ratios = [c for c in choices if c != "auto"]
    return min(ratios, key=lambda c: abs(int(c.split(":")[0]) / int(c.split(":")[1]) - target))


def map_request(
    model: ModelSpec, size: str | None, quality: str | None
) -> tuple[dict[str, Any], tuple[int, int]]:
    """Contract parameters (for validation and price) and the exact pixels to render."""
    quality = quality or "auto"
    if not isinstance(quality, str):
        raise ValidationError("quality must be a string", param="quality")
    check_quality(model, quality)
    render = model.render
    params: dict[str, Any] = {}
    aspect_spec = model.fields.get(render.aspect_field)
    if render.resolution_field is None:
        # Fixed-size models (gpt-image-1.5): only the sizes in the table exist.
        sizes = {v: k for k, v in render.sizes.items()}
        chosen = size or "auto"
        if chosen == "auto":
            chosen = render.auto_size
        if chosen not in sizes:
            allowed = ", ".join(["auto", *sizes])
            raise ValidationError(f"size must be one of: {allowed} for {model.id}", param="size")
        params[render.aspect_field] = sizes[chosen]
        pixels = parse_size(chosen)
    elif size in (None, "auto"):
        params[render.aspect_field] = "auto"
        params[render.resolution_field] = min(render.long_edge, key=lambda k: render.long_edge[k])
        pixels = parse_size(render.auto_size)
    else:
        width, height = _parse_size(str(size))
        if width % 16 or height % 16 or not (16 <= width <= MAX_EDGE and 16 <= height <= MAX_EDGE):
            raise ValidationError(
                f"size: each side must be a multiple of 16 between 16 and {MAX_EDGE}", param="size"
            )
        if max(width, height) > 3 * min(width, height):
            raise ValidationError("size: the aspect ratio must be between 1:3 and 3:1", param="size")
        if render.max_pixels and width * height > render.max_pixels:
            raise ValidationError(f"size: at most {render.max_pixels} pixels", param="size")
        choices = aspect_spec.enum if aspect_spec and aspect_spec.enum else ["1:1"]
        params[render.aspect_field] = _nearest_aspect(width, height, tuple(choices))
        long_edge = max(width, height)
        tiers = sorted(render.long_edge.items(), key=lambda item: item[1])
        params[render.resolution_field] = next((k for k, edge in tiers if long_edge <= edge), tiers[-1][0])
        pixels = (width, height)
    if model.openai_quality is not None and "quality" in model.fields:
        if quality not in model.openai_quality:
            allowed = ", ".join(model.openai_quality)
            raise ValidationError(f"quality must be one of: {allowed} for {model.id}", param="quality")
        params["quality"] = model.openai_quality[quality]
    return params, pixels
