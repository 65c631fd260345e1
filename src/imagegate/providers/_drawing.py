"""Drawing helpers for the offline renderer: palettes, flat-shape scenes and the prompt panel.

Everything here is deterministic: randomness comes only from the ``random.Random`` passed in.
Pictures are built from flat bands and shapes rather than smooth gradients because flat areas
make the PNG encoder (the dominant cost) several times faster and the files smaller.
"""

from __future__ import annotations

import colorsys
import itertools
import math
import random
import re
from collections.abc import Iterator, Sequence

from PIL import Image, ImageColor, ImageDraw, ImageFont, ImageOps, ImageStat

RGB = tuple[int, int, int]
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

BLACK: RGB = (0, 0, 0)
WHITE: RGB = (255, 255, 255)
ELLIPSIS = "\u2026"

# Colour words looked up in Pillow's CSS table; chosen because people use them as colours.
# fmt: off
_CSS_WORDS = frozenset({
    "red", "orange", "yellow", "green", "blue", "purple", "violet", "pink", "brown", "black", "white",
    "gray", "grey", "cyan", "teal", "magenta", "gold", "silver", "navy", "maroon", "olive", "lime",
    "indigo", "turquoise", "beige", "crimson", "coral", "salmon", "lavender", "ivory", "khaki", "tan",
    "aqua", "fuchsia", "chartreuse", "plum", "orchid", "tomato", "chocolate",
})
# fmt: on
# Words that are not CSS names, or whose CSS value would surprise (CSS "azure" is nearly white).
_EXTRA: dict[str, RGB] = {
    "scarlet": (255, 36, 0),
    "amber": (255, 191, 0),
    "emerald": (80, 200, 120),
    "burgundy": (128, 0, 32),
    "mint": (62, 180, 137),
    "peach": (255, 203, 164),
    "charcoal": (54, 69, 79),
    "cream": (255, 253, 208),
    "rose": (255, 0, 127),
    "ruby": (224, 17, 95),
    "sapphire": (15, 82, 186),
    "cobalt": (0, 71, 171),
    "azure": (0, 127, 255),
    "jade": (0, 168, 107),
    "rust": (183, 65, 14),
    "mustard": (225, 173, 1),
    "lilac": (200, 162, 200),
}
_ALIASES = {
    "reddish": "red",
    "bluish": "blue",
    "blueish": "blue",
    "greenish": "green",
    "yellowish": "yellow",
    "pinkish": "pink",
    "purplish": "purple",
    "golden": "gold",
    "grayish": "gray",
    "greyish": "grey",
}
_DARKER = frozenset({"dark", "deep"})
_LIGHTER = frozenset({"light", "pale", "pastel"})
_WORD = re.compile(r"[a-z]+")
_TOKEN = re.compile(r"\S+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def mix(a: RGB, b: RGB, t: float) -> RGB:
    """``a`` moved a fraction ``t`` of the way towards ``b``."""
    return (round(a[0] + (b[0] - a[0]) * t), round(a[1] + (b[1] - a[1]) * t), round(a[2] + (b[2] - a[2]) * t))


def shade(colour: RGB, t: float) -> RGB:
    """Lighter for ``t > 0``, darker for ``t < 0``, keeping the hue."""
    return mix(colour, WHITE, t) if t >= 0 else mix(colour, BLACK, -t)


def luma(colour: RGB) -> float:
    return 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]


def _css(name: str) -> RGB:
    r, g, b = ImageColor.getrgb(name)[:3]
    return (r, g, b)


def _lookup(word: str) -> RGB | None:
    word = _ALIASES.get(word, word)
    if word in _EXTRA:
        return _EXTRA[word]
    return _css(word) if word in _CSS_WORDS else None


def prompt_colours(prompt: str, limit: int = 6) -> list[RGB]:
    """Colours named in the prompt, in order of first mention ("sky blue" and "dark red" understood)."""
    words = _WORD.findall(prompt.lower())
    found: list[RGB] = []
    for i, word in enumerate(words):
        colour = _lookup(word)
        if colour is None:
            continue
        prev = words[i - 1] if i else ""
        if prev and prev + word in ImageColor.colormap:
            colour = _css(prev + word)
        elif prev in _DARKER:
            colour = shade(colour, -0.4)
        elif prev in _LIGHTER:
            colour = shade(colour, 0.45)
        if colour not in found:
            found.append(colour)
            if len(found) == limit:
                break
    return found


def hashed_palette(rng: random.Random) -> list[RGB]:
    """A harmonious palette (analogous, triadic, complementary or split) from the seed."""
    hue = rng.random()
    scheme = rng.choice(
        ((0.0, 0.07, -0.07, 0.5), (0.0, 1 / 3, 2 / 3), (0.0, 0.5, 0.08), (0.0, 0.1, 0.2, 0.3))
    )
    palette: list[RGB] = []
    for offset in scheme:
        r, g, b = colorsys.hsv_to_rgb((hue + offset) % 1.0, rng.uniform(0.45, 0.85), rng.uniform(0.6, 0.95))
        palette.append((round(r * 255), round(g * 255), round(b * 255)))
    return palette


def band_colours(palette: Sequence[RGB], count: int) -> list[RGB]:
    """A stepped gradient through the palette; a single colour alternates light/dark around its hue."""
    if len(palette) == 1:
        return [shade(palette[0], (0.0, 0.14, 0.0, -0.14)[j % 4]) for j in range(count)]
    out: list[RGB] = []
    for j in range(count):
        pos = j / (count - 1) * (len(palette) - 1)
        lo = int(pos)
        hi = min(lo + 1, len(palette) - 1)
        out.append(mix(palette[lo], palette[hi], pos - lo))
    return out


def draw_backdrop(
    draw: ImageDraw.ImageDraw, size: tuple[int, int], colours: Sequence[RGB], rng: random.Random
) -> None:
    """Fill the whole canvas with flat bands: horizontal, vertical, diagonal or concentric rings."""
    w, h = size
    count = len(colours)
    kind = rng.randrange(4)
    if kind == 0 or kind == 1:
        span = h if kind == 0 else w
        for j, colour in enumerate(colours):
            a, b = span * j // count, span * (j + 1) // count
            draw.rectangle((0, a, w, b) if kind == 0 else (a, 0, b, h), fill=colour)
    elif kind == 2:
        flip = rng.random() < 0.5  # which diagonal
        step = (w + h) / count
        for j, colour in enumerate(colours):
            s0, s1 = j * step, (j + 1) * step + 1
            pts = [(s0, 0.0), (s1, 0.0), (s1 - h, float(h)), (s0 - h, float(h))]
            draw.polygon([(w - x, y) if flip else (x, y) for x, y in pts], fill=colour)
    else:
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        radius = max(cx, w - cx) + max(cy, h - cy)  # covers the far corner
        for j, colour in enumerate(colours):
            r = radius * (count - j) / count
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)


def draw_shapes(
    draw: ImageDraw.ImageDraw,
    size: tuple[int, int],
    palette: Sequence[RGB],
    rng: random.Random,
    count: int,
    *,
    filled: bool = True,
) -> None:
    """Circles, boxes, triangles and rings in palette shades, each with a contrasting edge."""
    w, h = size
    short = min(w, h)
    line = max(2, short // 160)
    for _ in range(count):
        colour = shade(rng.choice(palette), rng.choice((-0.25, 0.0, 0.0, 0.2)))
        edge = shade(colour, -0.45) if luma(colour) > 90 else shade(colour, 0.5)
        r = rng.uniform(0.08, 0.24) * short
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        aspect = rng.uniform(0.6, 1.6)
        box = (cx - r * aspect, cy - r, cx + r * aspect, cy + r)
        fill = colour if filled else None
        kind = rng.randrange(5)
        if kind == 0:
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill, outline=edge, width=line)
        elif kind == 1:
            draw.rectangle(box, fill=fill, outline=edge, width=line)
        elif kind == 2:
            draw.rounded_rectangle(box, radius=r * 0.3, fill=fill, outline=edge, width=line)
        elif kind == 3:
            turn = rng.uniform(0, 6.3)
            pts = [
                (cx + r * math.cos(turn + k * 2.094), cy + r * math.sin(turn + k * 2.094)) for k in range(3)
            ]
            draw.polygon(pts, fill=fill, outline=edge, width=line)
        else:
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=colour, width=max(line * 3, round(r / 4)))


def draw_detail(
    draw: ImageDraw.ImageDraw, size: tuple[int, int], palette: Sequence[RGB], rng: random.Random, count: int
) -> None:
    """Fine detail: small dots in light and dark palette shades, as a busier picture has."""
    w, h = size
    short = min(w, h)
    for _ in range(count):
        colour = shade(rng.choice(palette), rng.choice((-0.4, 0.4)))
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), max(1.0, rng.uniform(0.004, 0.012) * short)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)


def _wrapped(text: str, font: Font, max_width: float, max_chars: int) -> Iterator[str]:
    """Greedy word wrap, lazily, so only the lines actually shown are ever measured."""
    current = ""
    for match in _TOKEN.finditer(text):
        word = match.group()
        candidate = f"{current} {word}" if current else word
        # the character cap skips measuring a candidate that cannot possibly fit (a 32k-char "word")
        if len(candidate) <= max_chars and font.getlength(candidate) <= max_width:
            current = candidate
            continue
        if current:
            yield current
        while len(word) > max_chars or font.getlength(word) > max_width:
            lo, hi = 1, min(len(word), max_chars)  # longest prefix that fits, at least one character
            while lo < hi:
                mid = (lo + hi + 1) // 2
                lo, hi = (mid, hi) if font.getlength(word[:mid]) <= max_width else (lo, mid - 1)
            yield word[:lo]
            word = word[lo:]
        current = word
    if current:
        yield current


def wrap_text(text: str, font: Font, max_width: float, max_lines: int) -> list[str]:
    """At most ``max_lines`` lines no wider than ``max_width``; an ellipsis marks cut-off text."""
    # control characters and lone surrogates would crash or garble the text layout
    text = _CONTROL.sub(" ", text).encode("utf-8", "replace").decode("utf-8")
    max_chars = int(max_width / max(1.0, font.getlength("."))) + 1
    lines = list(itertools.islice(_wrapped(text, font, max_width, max_chars), max_lines + 1))
    if len(lines) <= max_lines:
        return lines
    last = lines[max_lines - 1]
    while last and font.getlength(last + ELLIPSIS) > max_width:
        last = last[:-1]
    return [*lines[: max_lines - 1], last.rstrip() + ELLIPSIS]


def mean_luma(image: Image.Image) -> float:
    small = image.convert("RGB").reduce(max(1, min(image.size) // 64))
    return float(ImageStat.Stat(small.convert("L")).mean[0])


def draw_prompt_panel(
    image: Image.Image, prompt: str, accent: RGB, area: tuple[int, int, int, int] | None = None
) -> None:
    """The prompt, wrapped, on an opaque panel that contrasts with the picture: at the bottom of
    the image, or in the middle of ``area`` (the widest part of a round region)."""
    ax, ay, ax1, ay1 = area or (0, 0, image.width, image.height)
    w, h = ax1 - ax, ay1 - ay
    short = min(w, h)
    size = max(12, round(short / 22))
    font = ImageFont.load_default(size=size)  # loaded per call: FreeType faces are not thread-safe
    margin, pad = max(4, round(short * 0.04)), max(4, round(size * 0.6))
    top, bottom = font.getbbox("Hgjy|")[1::2]
    gap = max(2, size // 4)
    line_h = round(bottom - top) + gap
    max_width = w - 2 * (margin + pad)
    max_lines = int((h * 0.4 - 2 * pad + gap) // line_h)
    if max_width < size or max_lines < 1:
        return  # too small an image to carry legible text
    lines = wrap_text(prompt, font, max_width, max_lines)
    if not lines:
        return
    panel_w = max(font.getlength(line) for line in lines) + 2 * pad
    panel_h = len(lines) * line_h - gap + 2 * pad
    x0 = ax + (w - panel_w) / 2
    y0 = ay1 - margin - panel_h if area is None else ay + (h - panel_h) / 2
    dark = mean_luma(image) > 110
    panel, ink = ((18, 18, 24), (250, 250, 250)) if dark else ((250, 250, 246), (20, 20, 24))
    draw = ImageDraw.Draw(image)
    border = max(2, size // 10)
    draw.rounded_rectangle(
        (x0, y0, x0 + panel_w, y0 + panel_h), radius=pad, fill=panel, outline=accent, width=border
    )
    for k, line in enumerate(lines):
        draw.text((x0 + pad, y0 + pad + k * line_h - top), line, font=font, fill=ink)


def render_generate(
    size: tuple[int, int],
    prompt: str,
    palette: Sequence[RGB],
    rng: random.Random,
    *,
    shapes: int,
    transparent: bool,
    detail: int = 0,
) -> Image.Image:
    """A text-to-image picture: banded backdrop (or none when transparent), shapes, prompt panel."""
    image = Image.new("RGBA", size, (0, 0, 0, 0)) if transparent else Image.new("RGB", size, palette[0])
    draw = ImageDraw.Draw(image)
    if not transparent:
        draw_backdrop(draw, size, band_colours(palette, rng.randint(6, 12)), rng)
    draw_shapes(draw, size, palette, rng, shapes)
    if detail:
        draw_detail(draw, size, palette, rng, detail)
    draw_prompt_panel(image, prompt, palette[0])
    return image


def render_edit(
    base: Image.Image,
    extras: Sequence[Image.Image],
    mask: Image.Image | None,
    prompt: str,
    palette: Sequence[RGB],
    rng: random.Random,
    *,
    tint: float,
    shapes: int,
    detail: int = 0,
) -> Image.Image:
    """The source (already fitted to the output size) tinted, outlined and captioned.

    ``mask`` is an "L" image, 0 where the edit may paint: elsewhere the source is kept exactly.
    """
    size = base.size
    layer = Image.new("RGB", size)
    draw_backdrop(ImageDraw.Draw(layer), size, band_colours(palette, rng.randint(6, 12)), rng)
    image = Image.blend(base.convert("RGB"), layer, tint)
    if base.mode == "RGBA":
        image.putalpha(base.getchannel("A"))
    draw = ImageDraw.Draw(image)
    draw_shapes(draw, size, palette, rng, shapes, filled=False)  # outlines keep the source visible
    if detail:
        draw_detail(draw, size, palette, rng, detail)
    thumb = round(min(size) * 0.2)
    margin = max(4, round(min(size) * 0.04))
    for k, extra in enumerate(extras):
        y = margin + k * (thumb + margin)
        if y + thumb > size[1] * 0.55:
            break  # keep clear of the prompt panel
        x = size[0] - margin - thumb
        image.paste(ImageOps.fit(extra.convert(image.mode), (thumb, thumb)), (x, y))
        draw.rectangle((x, y, x + thumb - 1, y + thumb - 1), outline=palette[0], width=max(2, thumb // 40))
    if mask is None:
        draw_prompt_panel(image, prompt, palette[0])
        return image
    # caption inside the editable region, or the mask would hide it
    editable = mask.point(lambda v: 255 if v < 128 else 0).getbbox()
    if editable is not None:
        draw_prompt_panel(image, prompt, palette[0], editable)
    return Image.composite(base, image, mask)
