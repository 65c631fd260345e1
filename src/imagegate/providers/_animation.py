"""Animated GIF output of the offline renderer: the still picture with a sprite going round.

Every frame is the finished still (scene, caption, edit) with a ball in the palette's colours at
its own point of a loop, so consecutive frames always differ (the GIF encoder would merge equal
ones and the frame count would not be the one asked for) and the last frame leads back to the
first. In an edit the ball moves only inside the editable region.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

from PIL import Image, ImageDraw

from imagegate.providers._drawing import RGB, luma, shade

Box = tuple[int, int, int, int]


def frames(
    still: Image.Image,
    palette: Sequence[RGB],
    count: int,
    *,
    area: Box | None = None,
    keep: tuple[Image.Image, Image.Image] | None = None,
) -> list[Image.Image]:
    """``count`` RGB frames. ``area`` bounds the loop; ``keep`` is (source, mask) of an edit:
    where the mask is opaque the source shows, unchanged, in every frame."""
    x0, y0, x1, y1 = area or (0, 0, still.width, still.height)
    w, h = x1 - x0, y1 - y0
    cx, cy = x0 + w / 2, y0 + h * (0.4 if area is None else 0.5)  # clear of the bottom caption
    rx, ry = w * 0.3, h * (0.2 if area is None else 0.3)
    r = max(2.0, min(w, h) * 0.07)
    colour = palette[-1]
    edge = shade(colour, -0.5) if luma(colour) > 90 else shade(colour, 0.6)
    base = still.convert("RGB")
    out: list[Image.Image] = []
    for k in range(count):
        turn = 2 * math.pi * k / count
        x, y = cx + rx * math.cos(turn), cy + ry * math.sin(turn)
        frame = base.copy()
        ImageDraw.Draw(frame).ellipse(
            (x - r, y - r, x + r, y + r), fill=colour, outline=edge, width=max(2, round(r / 6))
        )
        if keep is not None:
            source, mask = keep
            frame = Image.composite(source.convert("RGB"), frame, mask)
        out.append(frame)
    return out


def encode_gif(images: list[Image.Image], duration_ms: int) -> bytes:
    """An endlessly looping GIF, ``duration_ms`` per frame (a multiple of 10: GIF counts in 1/100 s)."""
    buf = io.BytesIO()
    first, *rest = images
    first.save(
        buf,
        "GIF",
        save_all=True,
        append_images=rest,
        duration=duration_ms,
        loop=0,
        disposal=1,
        optimize=False,
    )
    return buf.getvalue()
