"""The OpenAI Images request surface (openai 3.57) checked against what a model takes.

A parameter the model does not take, or one the chosen output format rules out, is a 400 that
names it: nothing a client sends is silently dropped. What passes is either a render setting
(format, compression, quality) or an option carried on the task's params for the provider
(``moderation``, ``complexity``, GIF frames, ``svg``, the safety identifier).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from imagegate.catalog.schema import ActionName, ModelSpec
from imagegate.errors import ValidationError

FORMATS = ("png", "jpeg", "webp", "gif", "svg")
ENUMS: dict[str, tuple[str, ...]] = {
    "background": ("auto", "opaque", "transparent"),
    "output_format": FORMATS,
    "moderation": ("auto", "low"),
    "response_format": ("b64_json", "url"),
    "input_fidelity": ("high", "low"),
    "complexity": ("low", "medium", "high"),
}
SVG_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
FRAME_COUNT = (2, 16, 9)  # low, high, default
FRAME_DURATION_DEFAULT_MS = 200
FRAME_DURATION_MAX_MS = 655_350  # GIF stores centiseconds in 16 bits
SAFETY_ID_MAX = 64
USER_MAX = 256
# What each vector/animated format cannot do, as OpenAI refuses it.
_REFUSES: dict[str, dict[str, str]] = {
    "gif": {
        "stream": "GIF output does not support streaming",
        "partial_images": "GIF output does not support partial images",
        "mask": "GIF output does not support masks",
        "output_compression": "GIF output does not support output_compression",
    },
    "svg": {
        "stream": "SVG output does not support streaming",
        "partial_images": "SVG output does not support partial images",
        "output_compression": "SVG output does not support output_compression",
    },
}


def given(params: dict[str, Any], name: str) -> bool:
    """SDKs drop null or blank keys; others sending them mean the same: not given."""
    value = params.get(name)
    return value is not None and value != ""


def integer(value: Any, name: str, low: int, high: int, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
        if isinstance(value, float | bool) or str(number) != str(value).strip():
            raise ValueError
    except (TypeError, ValueError):
        raise ValidationError(f"{name} must be an integer", param=name) from None
    if not low <= number <= high:
        raise ValidationError(f"{name} must be between {low} and {high}", param=name)
    return number


def enum(params: dict[str, Any], name: str, default: str) -> str:
    if not given(params, name):
        return default
    value = params[name]
    if value not in ENUMS[name]:
        raise ValidationError(f"{name} must be one of: {', '.join(ENUMS[name])}", param=name)
    return str(value)


def _string(params: dict[str, Any], name: str, limit: int) -> str | None:
    if not given(params, name):
        return None
    value = params[name]
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be a string", param=name)
    if len(value) > limit:
        raise ValidationError(f"{name} must be at most {limit} characters", param=name)
    return value


def _unsupported(model: ModelSpec, name: str, detail: str = "") -> ValidationError:
    return ValidationError(f"{name} is not supported by {model.id}{detail}.", param=name)


def check_quality(model: ModelSpec, quality: str) -> None:
    if quality in ("standard", "hd"):
        raise ValidationError(
            f"quality {quality!r} was a DALL·E setting; use one of: {', '.join(model.openai.qualities)}",
            param="quality",
        )
    if quality not in model.openai.qualities:
        raise ValidationError(
            f"quality must be one of: {', '.join(model.openai.qualities)} for {model.id}", param="quality"
        )


def _svg(model: ModelSpec, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValidationError("svg must be an object like {model, reasoning: {effort}}", param="svg")
    unknown = sorted(set(value) - {"model", "reasoning"})
    if unknown:
        raise ValidationError(f"svg takes model and reasoning, not {unknown[0]!r}", param="svg")
    author = value.get("model")
    if not isinstance(author, str) or not author.strip() or len(author) > 128:
        raise ValidationError("svg.model must name the model that authors the SVG", param="svg")
    out: dict[str, Any] = {"model": author}
    reasoning = value.get("reasoning")
    if reasoning is not None:
        if not isinstance(reasoning, dict) or set(reasoning) - {"effort"}:
            raise ValidationError("svg.reasoning must be an object like {effort}", param="svg")
        effort = reasoning.get("effort")
        if effort is not None and effort not in SVG_EFFORTS:
            raise ValidationError(
                f"svg.reasoning.effort must be one of: {', '.join(SVG_EFFORTS)}", param="svg"
            )
        out["reasoning"] = {"effort": effort}
    return out


def frame_duration(value: Any) -> int:
    """Milliseconds per frame, rounded to the nearest 10 (GIF's unit) and capped as GIF stores it."""
    ms = integer(value, "frame_duration_ms", 1, 2**31 - 1, FRAME_DURATION_DEFAULT_MS)
    return min(FRAME_DURATION_MAX_MS, max(10, (ms + 5) // 10 * 10))


@dataclass
class Surface:
    """The request's OpenAI-only settings, checked."""

    n: int
    quality: str  # as served and echoed: auto is the model's medium
    background: str
    output_format: str
    output_compression: int
    options: dict[str, Any] = field(default_factory=dict)  # carried on the task's params
    safety_identifier: str | None = None


def check(model: ModelSpec, action: ActionName, params: dict[str, Any], *, size: tuple[int, int]) -> Surface:
    """Every OpenAI parameter beyond prompt, model and size, for ``model`` and ``action``."""
    surface = model.openai
    options: dict[str, Any] = {}
    fmt = enum(params, "output_format", "png")
    if fmt not in surface.output_formats:
        raise ValidationError(
            f"output_format {fmt!r} is not supported by {model.id}; it takes: "
            f"{', '.join(surface.output_formats)}",
            param="output_format",
        )
    for name, message in _REFUSES.get(fmt, {}).items():
        if name == "stream" and params.get(name) in (None, False, "false", "False", ""):
            continue
        if name != "stream" and not given(params, name):
            continue
        raise ValidationError(f"{message}.", param=name)
    background = enum(params, "background", "auto")
    if background == "transparent" and fmt not in ("png", "webp"):
        raise ValidationError("background 'transparent' needs output_format png or webp", param="background")
    n = integer(params.get("n"), "n", 1, 10, 1)
    if fmt == "svg" and n != 1:
        raise ValidationError("SVG output needs n=1.", param="n")
    compression = integer(params.get("output_compression"), "output_compression", 0, 100, 100)
    integer(params.get("partial_images"), "partial_images", 0, 3, 0)
    quality = str(params.get("quality") or "auto")
    check_quality(model, quality)
    if given(params, "moderation"):
        if not surface.moderation:
            raise _unsupported(model, "moderation")
        options["moderation"] = enum(params, "moderation", "auto")
    if given(params, "input_fidelity"):
        if action is not ActionName.EDIT_IMAGE:
            raise ValidationError("input_fidelity applies to edits only.", param="input_fidelity")
        if not surface.input_fidelity:
            raise _unsupported(model, "input_fidelity", "; omit it")
        options["input_fidelity"] = enum(params, "input_fidelity", "low")
    if given(params, "complexity"):
        if not surface.complexity:
            raise _unsupported(model, "complexity")
        options["complexity"] = enum(params, "complexity", "medium")
    for name in ("frame_count", "frame_duration_ms"):
        if given(params, name) and fmt != "gif":
            raise ValidationError(f"{name} is only supported with output_format gif.", param=name)
    if fmt == "gif":
        if max(size) > surface.gif_max_edge:
            raise ValidationError(
                f"size: GIF frames of {model.id} are at most {surface.gif_max_edge} pixels on the long edge",
                param="size",
            )
        low, high, default = FRAME_COUNT
        options["frame_count"] = integer(params.get("frame_count"), "frame_count", low, high, default)
        options["frame_duration_ms"] = frame_duration(params.get("frame_duration_ms"))
    if given(params, "svg"):
        if fmt != "svg":
            raise ValidationError("svg is only supported with output_format svg.", param="svg")
        options["svg"] = _svg(model, params["svg"])
    if given(params, "style"):
        raise ValidationError(
            "style was a DALL·E parameter; GPT Image models take the style from the prompt.", param="style"
        )
    # A non-empty safety_identifier takes precedence over the deprecated user.
    safety = _string(params, "safety_identifier", SAFETY_ID_MAX) or _string(params, "user", USER_MAX)
    if safety is not None:
        options["safety_identifier"] = safety
    return Surface(
        n=n,
        quality="medium" if quality == "auto" else quality,
        background=background,
        output_format=fmt,
        output_compression=compression,
        options=options,
        safety_identifier=safety,
    )


def nested_form_fields(fields: dict[str, str], name: str) -> dict[str, Any] | None:
    """``svg[model]``/``svg[reasoning][effort]`` form fields (how SDKs send an object in
    multipart) as one nested object; None when there are none."""
    prefix = f"{name}["
    found: dict[str, Any] = {}
    for key, value in fields.items():
        if not key.startswith(prefix):
            continue
        path = key[len(name) :]
        parts = path.strip("[]").split("][")
        if not path.endswith("]") or not all(parts):
            raise ValidationError(f"malformed form field {key!r}", param=name)
        node = found
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValidationError(f"malformed form field {key!r}", param=name)
            node = child
        node[parts[-1]] = value
    return found or None
