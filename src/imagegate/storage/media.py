"""Checks on image bytes that reach us from users: type, size, decompression bombs, integrity.

Two levels: :func:`inspect_image` reads the header only (format and size, no decode);
:func:`validate_image` also proves the data is whole, so a damaged file is refused where it is
accepted instead of failing a task later. Both block: call them in a thread.
"""

from __future__ import annotations

import io
import threading
import warnings
from dataclasses import dataclass

from PIL import Image

from imagegate.errors import PayloadTooLargeError, UnsupportedMediaTypeError, ValidationError

# The input formats every provider can read (OpenAI's edits take these three; GIF is not one).
ACCEPTED = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
EXTENSIONS = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/webp": "webp",
    "image/gif": "gif",
    "image/svg+xml": "svg",
}
# Labels that declare nothing: a client or host that does not know the type.
_UNDECLARED = {"", "application/octet-stream", "binary/octet-stream", "image/*"}
_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "image/x-png": "image/png"}
# JPEG validation decodes at 1/8 scale (libjpeg's DCT scaling): the whole entropy stream is read,
# so a cut or corrupt file fails, at a fraction of the memory and time of a full decode.
_JPEG_DRAFT_SIDE = 512
# WebP has no reduced decode; full decodes of large inputs take turns to bound memory.
_FULL_DECODES = threading.BoundedSemaphore(2)


@dataclass(frozen=True)
class ImageInfo:
    content_type: str
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def _declared(content_type: str | None) -> str | None:
    """The media type a client claimed, normalised; None when it claimed nothing useful."""
    if content_type is None:
        return None
    base = content_type.split(";", 1)[0].strip().lower()
    base = _ALIASES.get(base, base)
    return None if base in _UNDECLARED else base


def inspect_image(
    data: bytes, *, max_bytes: int, max_pixels: int, param: str = "image", declared: str | None = None
) -> ImageInfo:
    """Identify an image from its header without decoding it, refusing non-images and bombs.

    ``declared`` is the type the sender claimed (a part's Content-Type, a data: URL's media
    type); bytes of another image type are refused rather than silently relabelled.
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
            f"{param} is not an image we can read (PNG, JPEG or WebP).", param=param
        ) from None
    if fmt not in ACCEPTED:
        raise UnsupportedMediaTypeError(f"{param} is {fmt}; send PNG, JPEG or WebP.", param=param)
    if width * height > max_pixels:
        raise PayloadTooLargeError(
            f"{param} is {width}x{height}; the limit is {max_pixels} pixels.", param=param
        )
    content_type = ACCEPTED[fmt]
    claimed = _declared(declared)
    if claimed is not None and claimed != content_type:
        raise ValidationError(f"{param} was sent as {claimed} but its bytes are {content_type}.", param=param)
    return ImageInfo(content_type=content_type, width=width, height=height)


def _check_whole(data: bytes, content_type: str) -> None:
    """Raise if the image data is cut short or corrupt; never holds a full-size decode of a
    PNG or JPEG."""
    if content_type == "image/png":
        with Image.open(io.BytesIO(data)) as image:
            image.verify()  # walks every chunk to IEND checking CRCs: cuts and damage both fail
    elif content_type == "image/jpeg":
        with Image.open(io.BytesIO(data)) as image:
            image.draft("RGB", (_JPEG_DRAFT_SIDE, _JPEG_DRAFT_SIDE))
            image.load()
    else:
        with _FULL_DECODES, Image.open(io.BytesIO(data)) as image:
            image.load()


def validate_image(
    data: bytes, *, max_bytes: int, max_pixels: int, param: str = "image", declared: str | None = None
) -> ImageInfo:
    """:func:`inspect_image`, then prove the data is whole. Blocking: run it in a thread."""
    info = inspect_image(data, max_bytes=max_bytes, max_pixels=max_pixels, param=param, declared=declared)
    try:
        _check_whole(data, info.content_type)
    except Exception:  # decoders raise a zoo of types (OSError, SyntaxError, ValueError, ...)
        raise ValidationError(
            f"{param} is a damaged or truncated {info.content_type} image.", param=param
        ) from None
    return info


def marks_something(data: bytes) -> bool:
    """Whether a markup layer (a PNG already checked by :func:`validate_image`) has both
    transparent pixels and drawn ones: a layer with no marks, or no see-through, marks nothing."""
    with Image.open(io.BytesIO(data)) as image:
        if "A" not in image.getbands() and "transparency" not in image.info:
            return False
        low, high = image.convert("RGBA").getchannel("A").getextrema()
    return low == 0 and high != 0
