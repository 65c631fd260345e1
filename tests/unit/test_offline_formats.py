"""The offline renderer's GIF and SVG output, without a gateway: what a client decodes."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from typing import Any

from PIL import Image

from imagegate.providers.base import Action, FinalImage, ImageRequest, SourceImage
from imagegate.providers.offline import OfflineProvider
from tests.conftest import png_bytes


def request(**overrides: Any) -> ImageRequest:
    fields: dict[str, Any] = {
        "task_id": "t",
        "model": "gpt-image-2.6-flare",
        "action": Action.GENERATE,
        "prompt": "a teal whale",
        "width": 128,
        "height": 96,
    }
    fields.update(overrides)
    return ImageRequest(**fields)


async def final(req: ImageRequest) -> FinalImage:
    events = [e async for e in OfflineProvider().run(req)]
    finals = [e for e in events if isinstance(e, FinalImage)]
    assert len(finals) == req.n
    return finals[0]


async def test_svg_survives_characters_xml_cannot_carry() -> None:
    prompt = "bell\x07 nul\x00 tab\tend " + "long " * 400
    out = await final(request(prompt=prompt, output_format="svg"))
    assert out.image.content_type == "image/svg+xml"
    root = ET.fromstring(out.image.data)
    text = "".join(root.find("{http://www.w3.org/2000/svg}text").itertext())  # type: ignore[union-attr]
    assert text.startswith("bell nul tab end long long")
    assert text.endswith("\u2026"), "a long prompt is cut, visibly"


async def test_gif_edit_with_markup_changes_only_the_marked_region_in_every_frame() -> None:
    layer = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    layer.paste((255, 255, 255, 255), (40, 40, 60, 60))  # bottom-right marks
    buffer = io.BytesIO()
    layer.save(buffer, "PNG")
    req = request(
        action=Action.EDIT,
        width=128,
        height=128,
        output_format="gif",
        sources=(SourceImage(png_bytes(64, 64, (255, 0, 0)), "image/png"),),
        markup=SourceImage(buffer.getvalue(), "image/png"),
        extra={"frame_count": 4, "frame_duration_ms": 50},
    )
    gif = Image.open(io.BytesIO((await final(req)).image.data))
    assert gif.n_frames == 4
    for k in range(4):
        gif.seek(k)
        assert gif.info["duration"] == 50
        frame = gif.convert("RGB")
        kept = {c for _, c in frame.crop((0, 0, 60, 60)).getcolors(1 << 16) or []}
        assert kept == {(255, 0, 0)}, f"frame {k} changed the unmarked source"
        moved = {c for _, c in frame.crop((84, 84, 116, 116)).getcolors(1 << 16) or []}
        assert moved != {(255, 0, 0)}, f"frame {k} shows no edit where it was marked"
