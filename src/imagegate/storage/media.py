"""Checks on image bytes that reach us from users: type, size, decompression bombs."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image

from imagegate.errors import PayloadTooLargeError, UnsupportedMediaTypeError, ValidationError

ACCEPTED = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}
EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}


@dataclass(frozen=True)
class ImageInfo:
    content_type: str
    width: int
    height: int


def inspect_image(data: bytes, *, max_bytes: int, max_pixels: int, param: str = "image") -> ImageInfo:
    """Identify an image from its header without decoding it, refusing non-images and bombs.

    CPU-light (reads the header only); callers on the event loop may still prefer a thread.
    """
    if len(data) > max_bytes:
        raise PayloadTooLargeError(
            f"{param} is {len(data)} bytes; the limit is {max_bytes} bytes.", param=param
        )
    if not data:
        raise ValidationError(f"{param} is empty.", param=param)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                fmt, (width, height) = image.format, image.size
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise PayloadTooLargeError(f"{param} decodes to too many pixels.", param=param) from None
    except (OSError, ValueError, SyntaxError):
        raise UnsupportedMediaTypeError(
            f"{param} is not an image we can read (PNG, JPEG, WebP or GIF).", param=param
        ) from None
    if fmt not in ACCEPTED:
        raise UnsupportedMediaTypeError(f"{param} is {fmt}; send PNG, JPEG, WebP or GIF.", param=param)
    if width * height > max_pixels:
        raise PayloadTooLargeError(
            f"{param} is {width}x{height}; the limit is {max_pixels} pixels.", param=param
        )
    return ImageInfo(content_type=ACCEPTED[fmt], width=width, height=height)
