"""The one interface every provider implements.

A provider turns an :class:`ImageRequest` into images and nothing else: it never
touches the database, billing or storage. It reports its work as a stream of
events so that progress and partial images can be forwarded as they happen.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, Protocol, runtime_checkable

OutputFormat = Literal["png", "jpeg", "webp", "gif", "svg"]
Background = Literal["auto", "opaque", "transparent"]

CONTENT_TYPES: dict[str, str] = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",  # animated: extra frame_count, frame_duration_ms
    "svg": "image/svg+xml",
}


class Action(StrEnum):
    GENERATE = "generate"  # text to image
    EDIT = "edit"  # image(s) plus prompt to image


@dataclass(frozen=True)
class SourceImage:
    data: bytes
    content_type: str
    width: int = 0  # from the header, when the gateway has read it (0: unknown)
    height: int = 0


@dataclass(frozen=True)
class ImageRequest:
    """What to draw. Sizes are already resolved by the catalog."""

    task_id: str
    model: str  # the upstream model id, e.g. "gpt-image-1.5"
    action: Action
    prompt: str
    width: int
    height: int
    n: int = 1
    quality: str = "medium"
    background: Background = "auto"
    output_format: OutputFormat = "png"
    output_compression: int = 100
    sources: tuple[SourceImage, ...] = ()
    mask: SourceImage | None = None
    markup: SourceImage | None = None  # a drawn layer marking where to edit (its opaque pixels)
    partial_images: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    service: str = ""  # the catalog line's RunAPI service slug, e.g. "gpt_image_2"


@dataclass(frozen=True)
class GeneratedImage:
    data: bytes  # stored exactly as produced: no re-encode downstream
    content_type: str
    width: int
    height: int
    # The upstream's own base64 of ``data``, when it sent one: relayed as is to a client that
    # wants base64, so the bytes are never encoded again (ASCII bytes, or a view of the answer
    # they were cut from, for a plain answer).
    b64: str | bytes | memoryview | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Progress:
    fraction: float  # 0.0 .. 1.0
    message: str = ""


@dataclass(frozen=True)
class PartialImage:
    index: int  # which output image (0 .. n-1)
    partial_index: int
    image: GeneratedImage


@dataclass(frozen=True)
class FinalImage:
    index: int
    image: GeneratedImage


@dataclass(frozen=True)
class Usage:
    input_text_tokens: int = 0
    input_image_tokens: int = 0
    output_image_tokens: int = 0


@dataclass(frozen=True)
class Retrying:
    """The provider's call failed in a way worth another try, and it tries again (after its
    back-off): the route records the failed call as one attempt."""

    error_code: str


ProviderEvent = Progress | PartialImage | FinalImage | Usage | Retrying


class ProviderError(Exception):
    """A generation that failed. ``retryable`` says whether another attempt may succeed."""

    def __init__(self, message: str, *, code: str = "upstream_error", retryable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.retryable = retryable


@runtime_checkable
class Provider(Protocol):
    name: str
    label: str  # who renders, in a few words, for the banner and the docs
    placeholder: bool  # True: the pictures are not the catalog model's (offline, fake)

    def run(self, request: ImageRequest) -> AsyncIterator[ProviderEvent]:
        """Yield progress, partial images, then exactly ``request.n`` FinalImage events."""
        ...

    async def aclose(self) -> None: ...
