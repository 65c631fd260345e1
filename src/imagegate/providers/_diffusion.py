"""The torch side of the ``diffusers`` kind: load a pipeline from a local directory, run one job.

Imported only when a ``diffusers`` provider loads its pipeline, so the gateway runs without torch.
The caller sets ``HF_HUB_OFFLINE`` first. Everything here is blocking and runs on the provider's own threads, never on the event loop.
"""

from __future__ import annotations

import copy
import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import diffusers
import torch
import transformers
from PIL import Image, ImageOps

from imagegate.providers.base import PartialImage, Progress, ProviderError, SourceImage
from imagegate.providers.diffusers import Job, Stopped
from imagegate.providers.offline import PARTIAL_SIDE, encode_image

Emit = Callable[[Progress | PartialImage], None]

diffusers.utils.logging.disable_progress_bar()
transformers.utils.logging.disable_progress_bar()


def pick_device(device: str) -> str:
    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(dtype: str, device: str) -> torch.dtype:
    if dtype == "auto":
        return torch.float32 if device == "cpu" else torch.float16
    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]


@dataclass
class Lane:
    """One pipeline pair (text-to-image, image-to-image) that one job at a time may use. Lanes
    share the weights; each has its own scheduler, the part of a pipeline a run changes."""

    text2image: Any
    image2image: Any
    preview_vae: Any  # a float32 copy when the pipeline's VAE cannot decode in float16

    def size_step(self) -> int:
        """Sides are multiples of this: every UNet level halves the latents (SD checks 8 itself)."""
        levels = len(self.text2image.unet.config.block_out_channels)
        return max(8, int(self.text2image.vae_scale_factor) << (levels - 1))

    def run(self, job: Job, emit: Emit) -> list[Image.Image]:
        init = None if job.source is None else fit_source(job.source, (job.width, job.height))
        pipe = self.text2image if init is None else self.image2image
        # Noise drawn on the CPU: a seed starts from the same latents on every device.
        generators = [torch.Generator("cpu").manual_seed((job.seed + i) % 2**64) for i in range(job.n)]
        kwargs: dict[str, Any] = {
            "prompt": job.prompt,
            "negative_prompt": job.negative_prompt,
            "num_inference_steps": job.steps,
            "num_images_per_prompt": job.n,
            "generator": generators,
            "output_type": "pil",
            "callback_on_step_end": self._callback(job, emit),
        }
        if job.guidance_scale is not None:
            kwargs["guidance_scale"] = job.guidance_scale
        if init is None:
            kwargs.update(width=job.width, height=job.height)
        else:
            kwargs.update(image=init, strength=job.strength)
        try:
            images: list[Image.Image] = pipe(**kwargs).images
        except torch.OutOfMemoryError:
            raise ProviderError("the model ran out of device memory", retryable=True) from None
        except ValueError as exc:  # diffusers' checks of its inputs (steps, sizes, strength)
            raise ProviderError(str(exc), code="validation") from None
        return images

    def _callback(self, job: Job, emit: Emit) -> Callable[..., dict[str, Any]]:
        def on_step_end(pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            job.steps_done = done = step + 1
            if job.stop.is_set():
                raise Stopped()
            total = max(1, int(pipe.num_timesteps))
            emit(Progress(done / total, f"step {done} of {total}"))
            partial = job.preview_index(done, total)
            if partial is not None:
                for index, image in enumerate(self._preview(pipe, tensors["latents"])):
                    preview = encode_image(image, "png", 100, png_level=1)
                    emit(PartialImage(index, partial, preview))
            return tensors

        return on_step_end

    def _preview(self, pipe: Any, latents: Any) -> list[Image.Image]:
        """The current latents decoded at a reduced size: a preview costs a fraction of the final
        decode (the VAE's cost grows with the pixels)."""
        vae = self.preview_vae or pipe.vae
        factor = math.ceil(max(latents.shape[-2:]) * pipe.vae_scale_factor / PARTIAL_SIDE)
        if factor > 1:
            size = (math.ceil(latents.shape[-2] / factor), math.ceil(latents.shape[-1] / factor))
            latents = torch.nn.functional.interpolate(latents, size=size, mode="area")
        latents = latents.to(vae.dtype) / vae.config.scaling_factor
        if getattr(vae.config, "shift_factor", None):
            latents = latents + vae.config.shift_factor
        decoded = vae.decode(latents, return_dict=False)[0]
        images: list[Image.Image] = pipe.image_processor.postprocess(decoded.float(), output_type="pil")
        return images


def fit_source(source: SourceImage, size: tuple[int, int]) -> Image.Image:
    """The first source image, decoded and cropped to the output size (what img2img starts from)."""
    try:
        with Image.open(io.BytesIO(source.data), formats=["PNG", "JPEG", "WEBP"]) as opened:
            image = ImageOps.exif_transpose(opened).convert("RGB")
    except Exception as exc:  # decoders raise a zoo of types
        raise ProviderError(
            "source image 1 is not a readable PNG, JPEG or WebP image", code="validation"
        ) from exc
    return ImageOps.fit(image, size, Image.Resampling.LANCZOS)


def load(path: Path, device: str, dtype: str, lanes: int) -> list[Lane]:
    """``lanes`` pipeline pairs over one copy of the weights at ``path`` (no hub, no download)."""
    where = pick_device(device)
    precision = pick_dtype(dtype, where)
    base = diffusers.AutoPipelineForText2Image.from_pretrained(
        str(path), dtype=precision, local_files_only=True
    ).to(where)
    preview_vae = None
    if precision == torch.float16 and getattr(base.vae.config, "force_upcast", False):
        preview_vae = copy.deepcopy(base.vae).to(torch.float32)  # SDXL's VAE overflows in float16
    result = []
    for index in range(lanes):
        text2image = base
        if index:
            text2image = diffusers.AutoPipelineForText2Image.from_pipe(
                base, scheduler=copy.deepcopy(base.scheduler)
            )
        text2image.set_progress_bar_config(disable=True)
        image2image = diffusers.AutoPipelineForImage2Image.from_pipe(text2image)
        image2image.set_progress_bar_config(disable=True)
        result.append(Lane(text2image, image2image, preview_vae))
    return result


__all__ = ["Lane", "Stopped", "load", "pick_device", "pick_dtype"]
