"""Typed shape of the catalog data file: lines (pages), models, fields, prices, lifecycle."""

from __future__ import annotations

import math
from datetime import date
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ActionName(StrEnum):
    TEXT_TO_IMAGE = "text_to_image"  # prompt only
    EDIT_IMAGE = "edit_image"  # prompt plus source images

    @property
    def variant_suffix(self) -> str:
        # RunAPI names the edit variants "image-to-image" on its pages.
        return "text-to-image" if self is ActionName.TEXT_TO_IMAGE else "image-to-image"

    @property
    def label(self) -> str:
        return "Text to image" if self is ActionName.TEXT_TO_IMAGE else "Image to image (edit)"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldSpec(_Strict):
    type: Literal["string", "integer", "number", "boolean", "array"]
    required: bool = False
    enum: list[str] | None = None
    default: Any = None
    min: float | None = None  # strings: characters; numbers: value
    max: float | None = None
    min_items: int | None = None
    max_items: int | None = None
    items: Literal["string", "image_url"] | None = None
    format: Literal["url"] | None = None
    actions: list[ActionName] | None = None  # None: every action
    description: str = ""

    def applies_to(self, action: ActionName) -> bool:
        return self.actions is None or action in self.actions


class Rule(_Strict):
    when: dict[str, list[str]]
    forbid: dict[str, list[str]]
    description: str | None = None


class Translation(_Strict):
    to: str
    map: dict[str, str] | None = None


class Lifecycle(_Strict):
    deprecated: bool = False
    deprecated_since: date | None = None
    shutdown_date: date | None = None
    successor: str | None = None
    translate: dict[str, Translation] = Field(default_factory=dict)

    def retired_on(self, today: date) -> bool:
        return self.shutdown_date is not None and today >= self.shutdown_date


class Pricing(_Strict):
    by: str | None = None  # the request field whose value picks the price
    matrix: dict[str, int] = Field(default_factory=dict)  # micro-dollars per image
    base_micro: int | None = None  # when `by` is absent or its value is not in the matrix

    def price_micro(self, params: dict[str, Any]) -> int:
        if self.by is not None:
            value = params.get(self.by)
            if value is not None and str(value) in self.matrix:
                return self.matrix[str(value)]
        if self.base_micro is not None:
            return self.base_micro
        return min(self.matrix.values())

    @property
    def from_micro(self) -> int:
        values = list(self.matrix.values()) + ([self.base_micro] if self.base_micro is not None else [])
        return min(values)


class Render(_Strict):
    """How contract parameters become pixel dimensions."""

    aspect_field: str = "aspect_ratio"
    sizes: dict[str, str] = Field(default_factory=dict)  # aspect ratio -> "WxH"
    resolution_field: str | None = None
    long_edge: dict[str, int] = Field(default_factory=dict)
    auto_size: str = "1024x1024"
    max_pixels: int | None = None

    def size_for(self, params: dict[str, Any]) -> tuple[int, int]:
        aspect = str(params.get(self.aspect_field) or "auto")
        if aspect in self.sizes:
            return parse_size(self.sizes[aspect])
        if aspect == "auto" or self.resolution_field is None:
            return parse_size(self.auto_size)
        a, b = (int(part) for part in aspect.split(":"))
        long = self.long_edge[str(params.get(self.resolution_field))]
        w, h = (long, long * b / a) if a >= b else (long * a / b, long)
        if self.max_pixels and w * h > self.max_pixels:
            scale = math.sqrt(self.max_pixels / (w * h))
            w, h = w * scale, h * scale
        return _multiple_of_16(w), _multiple_of_16(h)


def _multiple_of_16(value: float) -> int:
    return max(16, int(value // 16) * 16)


def parse_size(text: str) -> tuple[int, int]:
    w, _, h = text.partition("x")
    return int(w), int(h)


class TokenPrices(_Strict):
    """Upstream token prices in micro-dollars per 1M tokens: what the vendor charges us.

    Data for cost accounting; users pay the per-image :class:`Pricing`.
    """

    text_in: int = Field(ge=0)
    image_in: int = Field(ge=0)
    image_out: int = Field(ge=0)
    cached_text_in: int = Field(ge=0)
    cached_image_in: int = Field(ge=0)


class OpenAISurface(_Strict):
    """What a model takes on the OpenAI face beyond its contract: a parameter a model does not
    take is refused naming it (400), never dropped."""

    qualities: list[str] = Field(default_factory=lambda: ["auto", "low", "medium", "high"])
    output_formats: list[str] = Field(default_factory=lambda: ["png", "jpeg", "webp"])
    complexity: bool = False  # `complexity` low | medium | high
    input_fidelity: bool = False  # edits' `input_fidelity` high | low
    markup: bool = False  # edits' `markup` layer
    moderation: bool = True
    gif_max_edge: int = 1024  # GIF frames are small: the long edge may not pass this


class Line(_Strict):
    """A model line: one page, one RunAPI service slug."""

    slug: str
    title: str
    service: str
    vendor: str
    modality: str = "image"
    summary: str
    context: str = ""


class ModelSpec(_Strict):
    id: str
    line: str
    display_name: str
    version: str
    upstream_model: str
    provider: str | None = None  # None: the deployment's default provider
    route: list[str] = Field(default_factory=list)  # providers to try in order; empty: [provider]
    aliases: list[str] = Field(default_factory=list)
    actions: list[ActionName]
    commercial_use: bool = True
    license_note: str | None = None
    prices_published: bool = True  # False: RunAPI has published no price; ours is the catalog's default
    released: date | None = None
    token_prices: TokenPrices | None = None
    openai_quality: dict[str, str] | None = None  # OpenAI `quality` -> this contract's `quality`
    openai: OpenAISurface = Field(default_factory=OpenAISurface)
    lifecycle: Lifecycle = Field(default_factory=Lifecycle)
    pricing: Pricing
    render: Render
    fields: dict[str, FieldSpec]
    rules: list[Rule] = Field(default_factory=list)

    def fields_for(self, action: ActionName) -> dict[str, FieldSpec]:
        return {name: spec for name, spec in self.fields.items() if spec.applies_to(action)}


class Variant(_Strict):
    """A model and an action: the unit that has a page, a price and free calls."""

    model: ModelSpec
    action: ActionName

    @property
    def slug(self) -> str:
        return f"{self.model.version}-{self.action.variant_suffix}"

    @property
    def name(self) -> str:
        return f"{self.model.id}-{self.action.variant_suffix}"
