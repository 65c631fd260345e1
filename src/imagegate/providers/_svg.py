"""SVG output of the offline renderer: a vector drawing of the prompt, built as an XML tree.

The tree is made with ElementTree, so every attribute and the prompt text are escaped; characters
XML 1.0 cannot carry (controls, lone surrogates) are replaced first. The drawing follows the raster
renderer's scene: banded backdrop, palette shapes (more of them, and fine detail, at higher
complexity), and the prompt in a ``<text>`` element on a panel. An edit embeds the (reduced)
source as an ``<image>`` and draws only inside the region the mask or markup leaves editable.
"""

from __future__ import annotations

import base64
import io
import math
import random
import re
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from PIL import Image

from imagegate.providers._drawing import RGB, band_colours, luma, mean_luma, shade

SVG_NS = "http://www.w3.org/2000/svg"
EMBED_SIDE = 512  # an edit's source is embedded at most this large: the SVG stays small
TEXT_LINES = 8
_NOT_XML = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

Box = tuple[int, int, int, int]


def xml_text(text: str) -> str:
    return _NOT_XML.sub(" ", text)


def _hex(colour: RGB) -> str:
    return "#{:02x}{:02x}{:02x}".format(*colour)


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _el(parent: ET.Element, tag: str, attrs: dict[str, str]) -> ET.Element:
    return ET.SubElement(parent, tag, attrs)


def _backdrop(svg: ET.Element, size: tuple[int, int], colours: Sequence[RGB]) -> None:
    w, h = size
    count = len(colours)
    for j, colour in enumerate(colours):
        y0, y1 = h * j // count, h * (j + 1) // count
        box = {"x": "0", "y": str(y0), "width": str(w), "height": str(y1 - y0 + 1)}
        _el(svg, "rect", {**box, "fill": _hex(colour)})


def _shapes(
    group: ET.Element, area: Box, palette: Sequence[RGB], rng: random.Random, count: int, detail: int
) -> None:
    x0, y0, x1, y1 = area
    w, h = x1 - x0, y1 - y0
    short = max(1, min(w, h))
    line = _num(max(2.0, short / 160))
    for _ in range(count):
        colour = shade(rng.choice(palette), rng.choice((-0.25, 0.0, 0.0, 0.2)))
        edge = _hex(shade(colour, -0.45) if luma(colour) > 90 else shade(colour, 0.5))
        r = rng.uniform(0.08, 0.24) * short
        cx, cy = x0 + rng.uniform(0, w), y0 + rng.uniform(0, h)
        style = {"fill": _hex(colour), "stroke": edge, "stroke-width": line}
        kind = rng.randrange(4)
        if kind == 0:
            _el(group, "circle", {"cx": _num(cx), "cy": _num(cy), "r": _num(r), **style})
        elif kind == 1:
            aspect = rng.uniform(0.6, 1.6)
            box = {
                "x": _num(cx - r * aspect),
                "y": _num(cy - r),
                "width": _num(2 * r * aspect),
                "height": _num(2 * r),
                "rx": _num(r * 0.3 * rng.randrange(2)),
            }
            _el(group, "rect", {**box, **style})
        elif kind == 2:
            turn = rng.uniform(0, 6.3)
            points = " ".join(
                f"{_num(cx + r * math.cos(turn + k * 2.094))},{_num(cy + r * math.sin(turn + k * 2.094))}"
                for k in range(3)
            )
            _el(group, "polygon", {"points": points, **style})
        else:
            ring = {"fill": "none", "stroke": _hex(colour), "stroke-width": _num(max(6.0, r / 4))}
            _el(group, "circle", {"cx": _num(cx), "cy": _num(cy), "r": _num(r), **ring})
    for _ in range(detail):  # fine detail: small dots, as a busier picture has
        dot = _hex(shade(rng.choice(palette), rng.choice((-0.4, 0.4))))
        cx, cy, r = x0 + rng.uniform(0, w), y0 + rng.uniform(0, h), rng.uniform(0.004, 0.012) * short
        _el(group, "circle", {"cx": _num(cx), "cy": _num(cy), "r": _num(r), "fill": dot})


def _caption(svg: ET.Element, prompt: str, accent: RGB, area: Box, dark_picture: bool) -> None:
    x0, y0, x1, y1 = area
    w, h = x1 - x0, y1 - y0
    font = max(10, round(min(w, h) / 22))
    chars = max(8, int((w * 0.84) / (font * 0.55)))
    lines = textwrap.wrap(" ".join(prompt.split()), chars)[:TEXT_LINES] or [""]
    if len(lines) == TEXT_LINES:
        lines[-1] = lines[-1][: max(1, chars - 1)] + "\u2026"
    line_h = font * 1.25
    pad = font * 0.6
    panel_h = len(lines) * line_h + 2 * pad
    panel_w = min(w * 0.92, max(len(line) for line in lines) * font * 0.55 + 2 * pad)
    px, py = x0 + (w - panel_w) / 2, y1 - panel_h - min(w, h) * 0.04
    panel, ink = ("#121218", "#fafafa") if dark_picture else ("#fafaf6", "#141418")
    box = {"x": _num(px), "y": _num(py), "width": _num(panel_w), "height": _num(panel_h), "rx": _num(pad)}
    border = {"fill": panel, "stroke": _hex(accent), "stroke-width": _num(max(2.0, font / 10))}
    _el(svg, "rect", {**box, **border})
    font_attrs = {"fill": ink, "font-family": "sans-serif", "font-size": str(font)}
    text = _el(svg, "text", {"x": _num(px + pad), "y": _num(py + pad + font), **font_attrs})
    for k, line in enumerate(lines):
        span = _el(text, "tspan", {"x": _num(px + pad), "dy": "0" if k == 0 else _num(line_h)})
        span.text = line if k == len(lines) - 1 else line + " "  # the text reads back whole


def _embedded(source: Image.Image) -> str:
    small = source.copy()
    small.thumbnail((EMBED_SIDE, EMBED_SIDE))
    buf = io.BytesIO()
    small.save(buf, "PNG", compress_level=4)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def render_svg(
    size: tuple[int, int],
    prompt: str,
    palette: Sequence[RGB],
    rng: random.Random,
    *,
    shapes: int,
    detail: int,
    source: Image.Image | None = None,
    editable: Box | None = None,
) -> bytes:
    """The SVG document (UTF-8). ``source`` is an edit's first image, fitted to ``size``;
    ``editable`` the box the edit may draw in (the whole canvas when None)."""
    w, h = size
    prompt = xml_text(prompt)
    svg = ET.Element("svg", xmlns=SVG_NS, width=str(w), height=str(h), viewBox=f"0 0 {w} {h}", version="1.1")
    ET.SubElement(svg, "title").text = prompt[:200]
    if source is None:
        _backdrop(svg, size, band_colours(palette, rng.randint(6, 12)))
        dark = luma(palette[0]) > 110
    else:
        ET.SubElement(
            svg, "image", href=_embedded(source), x="0", y="0", width=str(w), height=str(h),
            preserveAspectRatio="none",
        )  # fmt: skip
        dark = mean_luma(source) > 110
    area: Box = editable or (0, 0, w, h)
    group = ET.SubElement(svg, "g", id="scene")
    if editable is not None:
        defs = ET.SubElement(svg, "defs")
        clip = ET.SubElement(defs, "clipPath", id="editable")
        x0, y0, x1, y1 = editable
        ET.SubElement(clip, "rect", x=str(x0), y=str(y0), width=str(x1 - x0), height=str(y1 - y0))
        group.set("clip-path", "url(#editable)")
    _shapes(group, area, palette, rng, shapes, detail)
    _caption(svg, prompt, palette[0], area, dark)
    document: bytes = ET.tostring(svg, encoding="utf-8", xml_declaration=True)
    return document
