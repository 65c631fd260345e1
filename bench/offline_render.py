"""Render + encode timings for the offline provider (a script, not a test).

    .venv/bin/python bench/offline_render.py [--runs 30]

Each case renders ``runs`` different prompts (so one lucky picture cannot skew it) and times
drawing plus encoding, the work one FinalImage costs. It prints median and p90 milliseconds and
the median output size, then PNG compress_level / optimize choices on the same pictures, a smooth
gradient for contrast, and the whole async ``run()`` path including the thread hops.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import time
from collections.abc import Callable

from PIL import Image

from imagegate.providers.base import Action, FinalImage, ImageRequest, OutputFormat
from imagegate.providers.offline import PNG_COMPRESS_LEVEL, OfflineProvider, encode_image

PROMPTS = [
    "a red square",
    "a serene mountain lake at dawn, mist over the water, pine trees",
    "blue and gold art deco poster of a train",
    "a cute robot mascot waving, flat vector style",
    "portrait of an old sailor with a grey beard, dramatic lighting",
    "an isometric city block at night with neon signs in pink and cyan",
]


def request(
    prompt: str, width: int, height: int, fmt: OutputFormat = "png", compression: int = 100
) -> ImageRequest:
    return ImageRequest(
        task_id="bench",
        model="offline",
        action=Action.GENERATE,
        prompt=prompt,
        width=width,
        height=height,
        output_format=fmt,
        output_compression=compression,
    )


def measure(runs: int, work: Callable[[int], int]) -> tuple[float, float, int]:
    """(median ms, p90 ms, median bytes) of ``work(i)``, which returns the output size."""
    work(0)  # warm-up: font loading, codec initialisation
    times: list[float] = []
    sizes: list[int] = []
    for i in range(runs):
        start = time.perf_counter()
        sizes.append(work(i))
        times.append((time.perf_counter() - start) * 1000)
    p90 = statistics.quantiles(times, n=10)[-1] if len(times) > 1 else times[0]
    return statistics.median(times), p90, int(statistics.median(sizes))


def row(label: str, result: tuple[float, float, int]) -> None:
    median, p90, size = result
    print(f"{label:<46} median {median:7.1f} ms   p90 {p90:7.1f} ms   {size / 1024:8.1f} KiB")


def render_encode(
    provider: OfflineProvider, width: int, height: int, fmt: OutputFormat, compression: int = 100
) -> Callable[[int], int]:
    def work(i: int) -> int:
        req = request(f"{PROMPTS[i % len(PROMPTS)]} #{i}", width, height, fmt, compression)
        image = provider.render(req, 0)
        return len(encode_image(image, fmt, compression, png_level=provider.png_compress_level).data)

    return work


def png_only(images: list[Image.Image], level: int, optimize: bool = False) -> Callable[[int], int]:
    def work(i: int) -> int:
        buf = io.BytesIO()
        images[i % len(images)].save(buf, "PNG", compress_level=level, optimize=optimize)
        return buf.tell()

    return work


def photo_like(size: int) -> Image.Image:
    """Smooth gradients plus sensor-like noise: what a photo-style renderer would hand the encoder."""
    ramp = Image.linear_gradient("L").resize((size, size), Image.Resampling.BICUBIC)
    radial = Image.radial_gradient("L").resize((size, size), Image.Resampling.BICUBIC)
    smooth = Image.merge("RGB", (ramp, radial, ramp.rotate(90)))
    noise = Image.merge("RGB", [Image.effect_noise((size, size), 6 + k) for k in range(3)])
    return Image.blend(smooth, noise, 0.08)


async def full_run(provider: OfflineProvider, runs: int) -> tuple[float, float, int]:
    times: list[float] = []
    sizes: list[int] = []
    for i in range(runs + 1):
        start = time.perf_counter()
        async for event in provider.run(request(f"{PROMPTS[i % len(PROMPTS)]} run {i}", 1024, 1024)):
            if isinstance(event, FinalImage):
                sizes.append(len(event.image.data))
        if i:  # the first run is warm-up
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), statistics.quantiles(times, n=10)[-1], int(statistics.median(sizes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    runs = parser.parse_args().runs
    provider = OfflineProvider()
    print(f"render + encode, {runs} prompts each (PNG compress_level={PNG_COMPRESS_LEVEL})")
    row("1024x1024 png", measure(runs, render_encode(provider, 1024, 1024, "png")))
    row("1024x1536 png", measure(runs, render_encode(provider, 1024, 1536, "png")))
    row("1536x1024 png", measure(runs, render_encode(provider, 1536, 1024, "png")))
    row("2048x2048 png", measure(runs, render_encode(provider, 2048, 2048, "png")))
    row("3840x2160 png", measure(runs, render_encode(provider, 3840, 2160, "png")))
    row("1024x1024 jpeg q100 (API default)", measure(runs, render_encode(provider, 1024, 1024, "jpeg")))
    row("1024x1024 jpeg q85", measure(runs, render_encode(provider, 1024, 1024, "jpeg", 85)))
    row("1024x1024 webp q100", measure(runs, render_encode(provider, 1024, 1024, "webp")))
    row("1024x1024 webp q85", measure(runs, render_encode(provider, 1024, 1024, "webp", 85)))
    row(
        "1024x1024 render only",
        measure(runs, lambda i: provider.render(request(PROMPTS[i % len(PROMPTS)], 1024, 1024), 0).width),
    )

    print("\nrender + encode, png by compress_level")
    for level in (1, 3, 4, 6):
        at_level = OfflineProvider(png_compress_level=level)
        row(
            f"1024x1024 png compress_level={level}", measure(runs, render_encode(at_level, 1024, 1024, "png"))
        )
        big = render_encode(at_level, 3840, 2160, "png")
        row(f"3840x2160 png compress_level={level}", measure(max(5, runs // 3), big))

    print("\nPNG encode only, 1024x1024 offline pictures (optimize=False unless noted)")
    images = [provider.render(request(f"{p} #{i}", 1024, 1024), 0) for i, p in enumerate(PROMPTS * 2)]
    for level in (0, 1, 2, 3, 4, 6, 9):
        row(f"compress_level={level}", measure(runs, png_only(images, level)))
    row("compress_level=6 optimize=True", measure(max(5, runs // 3), png_only(images, 6, optimize=True)))

    print("\nPNG encode only, 1024x1024 photo-like gradient with noise (for contrast)")
    photo = [photo_like(1024)]
    for level in (1, 3, 6):
        row(f"compress_level={level}", measure(max(5, runs // 3), png_only(photo, level)))

    print("\nwhole OfflineProvider.run(), 1024x1024 png, including thread hops")
    row("run()", asyncio.run(full_run(provider, runs)))


if __name__ == "__main__":
    main()
