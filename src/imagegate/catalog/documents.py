"""The catalog as one deployment serves it: the facts every page shares, and the JSON documents.

Pure functions of ``(catalog, deployment)``: no I/O, no web framework. The Markdown pages
(:mod:`imagegate.catalog.pages`) are written from the same facts, so the pages, ``/api/v1/models``
and ``/v1/models`` cannot disagree about a price, a contract or a shutdown date.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any, Literal

from imagegate.catalog.contract import validate
from imagegate.catalog.lifecycle import serving_model
from imagegate.catalog.registry import Catalog
from imagegate.catalog.schema import ActionName, FieldSpec, ModelSpec, Rule, Variant
from imagegate.errors import NotFoundError, ValidationError

PLACEHOLDER_PROVIDERS = ("offline", "fake")  # the built-in kinds whose pictures are placeholders
EXAMPLE_IMAGE_URL = "https://example.com/images/source.png"
EXAMPLE_CALLBACK_URL = "https://example.com/hooks/imagegate"
EXAMPLE_PROMPTS: dict[ActionName, str] = {
    ActionName.TEXT_TO_IMAGE: "A lighthouse on a rocky coast at dawn, soft watercolor",
    ActionName.EDIT_IMAGE: "Turn the sky into a warm sunset and keep everything else as it is",
}


@dataclass(frozen=True)
class Deployment:
    """What a catalog page needs to know about the server that shows it."""

    base_url: str  # e.g. "http://127.0.0.1:8000", no trailing slash
    today: date
    provider_for: Callable[[ModelSpec], str]  # "offline", "openai", "diffusers", "fake", ...
    retired_models: Literal["successor", "refuse"]
    free_calls_per_variant: int = 0  # 0: no free calls in this deployment
    charges_credits: bool = False  # False until billing is enabled: calls are not charged
    output_retention_s: int = 7 * 24 * 3600
    upload_retention_s: int = 3600
    rate_limits: str | None = None  # one line, or None when the deployment has none
    streaming: bool = False
    support_url: str | None = None  # where users report issues (the operator's settings)
    support_email: str | None = None
    # How each provider describes itself (the registry's answer in a server): its kind, which
    # chooses the words, and whether its pictures are placeholders. Defaults: name = kind.
    provider_kind: Callable[[str], str] = str
    is_placeholder: Callable[[str], bool] = lambda name: name in PLACEHOLDER_PROVIDERS

    def placeholder(self, model: ModelSpec) -> bool:
        """The model's pictures here are not its own (drawn offline, or canned)."""
        return self.is_placeholder(self.provider_for(model))


# -- money and time ------------------------------------------------------------------------------
def price_text(micro: int) -> str:
    """Micro-dollars as dollars with at least three decimals: 40_000 -> "$0.040", 45 -> "$0.000045"."""
    sign = "-" if micro < 0 else ""
    dollars, fraction = divmod(abs(micro), 1_000_000)
    digits = f"{fraction:06d}".rstrip("0").ljust(3, "0")
    return f"{sign}${dollars}.{digits}"


def cents(micro: int) -> int | float:
    """Micro-dollars as cents: an int when whole (40_000 -> 4), else a float (45_000 -> 4.5)."""
    return micro // 10_000 if micro % 10_000 == 0 else micro / 10_000


def duration_text(seconds: int) -> str:
    """The largest unit that divides exactly: 604800 -> "7 days", 3600 -> "1 hour"."""
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}" + ("" if count == 1 else "s")
    return f"{seconds} second" + ("" if seconds == 1 else "s")


def matrix_text(model: ModelSpec) -> str:
    """Every price of a model: "$0.040 (medium) / $0.220 (high)", or the flat price."""
    pricing = model.pricing
    if pricing.by is None or not pricing.matrix:
        return price_text(pricing.from_micro)
    text = " / ".join(f"{price_text(micro)} ({value})" for value, micro in pricing.matrix.items())
    if pricing.base_micro is not None:
        text += f" / {price_text(pricing.base_micro)} (other)"
    return text


# -- URLs ----------------------------------------------------------------------------------------
def line_url(dep: Deployment, line_slug: str) -> str:
    return f"{dep.base_url}/models/{line_slug}.md"


def variant_url(dep: Deployment, variant: Variant) -> str:
    return f"{dep.base_url}/models/{variant.model.line}/{variant.slug}.md"


def endpoint_url(catalog: Catalog, dep: Deployment, variant: Variant) -> str:
    service = catalog.line_of(variant.model).service
    return f"{dep.base_url}/api/v1/{service}/{variant.action.value}"


def line_variants(catalog: Catalog, line_slug: str) -> list[Variant]:
    return sorted((v for v in catalog.variants() if v.model.line == line_slug), key=lambda v: v.name)


# -- contracts -----------------------------------------------------------------------------------
def _cheapest(model: ModelSpec, values: list[str]) -> str:
    matrix = model.pricing.matrix
    priced = [v for v in values if v in matrix]
    return min(priced, key=lambda v: matrix[v]) if priced else values[0]


def _example_value(model: ModelSpec, action: ActionName, name: str, spec: FieldSpec) -> Any:
    if spec.enum:
        if name == model.pricing.by:
            return _cheapest(model, spec.enum)
        return spec.default if spec.default in spec.enum else spec.enum[0]
    if spec.default is not None:
        return spec.default
    if spec.type == "array":
        return [EXAMPLE_IMAGE_URL] * max(spec.min_items or 1, 1)
    if spec.type == "boolean":
        return False
    if spec.type in ("integer", "number"):
        return int(spec.min) if spec.min is not None else 1
    if spec.format == "url":
        return EXAMPLE_CALLBACK_URL
    if name == "prompt":
        return EXAMPLE_PROMPTS[action]
    return "x" * int(spec.min or 1)


def example_body(model: ModelSpec, action: ActionName) -> dict[str, Any]:
    """A request body valid against the model's contract: required fields plus the priced one."""
    fields = model.fields_for(action)
    wanted = [name for name, spec in fields.items() if spec.required or name == model.pricing.by]
    body: dict[str, Any] = {"model": model.id}
    body.update({name: _example_value(model, action, name, fields[name]) for name in wanted})
    try:
        validate(model, action, body)
    except ValidationError:  # the priced field clashes with a rule: required fields only
        body = {k: v for k, v in body.items() if k == "model" or fields[k].required}
    return body


def _number(value: float | None) -> int | float | None:
    return int(value) if value is not None and float(value).is_integer() else value


def _or(values: list[str]) -> str:
    return join_words([f"`{v}`" for v in values], "or")


def rule_text(model: ModelSpec, rule: Rule) -> str:
    """A cross-field rule in words, noting when a condition holds by default."""
    if rule.description:
        return rule.description
    conditions = []
    for name, values in rule.when.items():
        default = model.fields[name].default if name in model.fields else None
        note = " (its default when not given)" if default is not None and str(default) in values else ""
        conditions.append(f"`{name}` is {_or(values)}{note}")
    bans = [f"`{name}` may not be {_or(values)}" for name, values in rule.forbid.items()]
    return f"When {' and '.join(conditions)}, {'; '.join(bans)}."


def field_document(spec: FieldSpec) -> dict[str, Any]:
    return {
        "type": spec.type,
        "required": spec.required,
        "enum": list(spec.enum) if spec.enum is not None else None,
        "default": spec.default,
        "min": _number(spec.min),
        "max": _number(spec.max),
        "min_items": spec.min_items,
        "max_items": spec.max_items,
        "items": spec.items,
        "format": spec.format,
        "description": spec.description,
    }


# -- lifecycle -----------------------------------------------------------------------------------
def served_after_shutdown(catalog: Catalog, model: ModelSpec, dep: Deployment) -> ModelSpec | None:
    """The model this deployment serves in its place once it is retired, along the whole
    successor chain (judged on the later of today and its shutdown date), or None when refused."""
    life = model.lifecycle
    if life.successor is None:
        return None
    on = max(dep.today, life.shutdown_date) if life.shutdown_date is not None else dep.today
    served = serving_model(catalog, model, on, dep.retired_models)
    return None if served is None or served.id == model.id else served


def is_retired(model: ModelSpec, dep: Deployment) -> bool:
    return model.lifecycle.retired_on(dep.today)


_PROVIDER_WORDS = {  # by kind
    "offline": "with the built-in offline renderer: it returns placeholder images drawn locally, "
    "not images from {vendor}'s model",
    "fake": "with the `fake` test provider: canned test images, not images from {vendor}'s model",
    "diffusers": "with local diffusers weights on its own hardware, not with {vendor}'s hosted model",
}


def join_words(words: list[str], last: str = "and") -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + f" {last} " + words[-1]


def provider_note(catalog: Catalog, models: list[ModelSpec], dep: Deployment) -> str:
    """Who renders these models' images here, said plainly; the models share one provider."""
    name, vendor = dep.provider_for(models[0]), catalog.line_of(models[0]).vendor
    kind = dep.provider_kind(name)
    who = "This deployment serves " + join_words([f"{m.display_name} (`{m.id}`)" for m in models])
    if kind in _PROVIDER_WORDS:
        return f"{who} {_PROVIDER_WORDS[kind].format(vendor=vendor)}."
    if kind == "openai" and name == "openai":
        upstream = join_words([f"`{m.upstream_model}`" for m in models])
        return f"{who} by passing each request on to OpenAI's {upstream}."
    return f"{who} through its `{name}` provider."


def provider_notes(catalog: Catalog, models: list[ModelSpec], dep: Deployment) -> list[str]:
    """One :func:`provider_note` per provider serving some of the models."""
    groups: dict[str, list[ModelSpec]] = {}
    for model in models:
        groups.setdefault(dep.provider_for(model), []).append(model)
    return [provider_note(catalog, group, dep) for group in groups.values()]


def _translation(model: ModelSpec) -> str:
    parts = []
    for name, rule in model.lifecycle.translate.items():
        if rule.map and any(a != b for a, b in rule.map.items()):
            pairs = ", ".join(f"`{a}` → `{b}`" for a, b in rule.map.items())
            parts.append(f"`{name}` becomes `{rule.to}` ({pairs})")
        elif rule.to != name:
            parts.append(f"`{name}` becomes `{rule.to}`")
        else:
            parts.append(f"`{name}` is kept")
    return join_words(parts) if parts else ""


def after_shutdown_text(catalog: Catalog, model: ModelSpec, dep: Deployment) -> str:
    """What this deployment does with requests for the model once it is retired (present tense)."""
    successor = served_after_shutdown(catalog, model, dep)
    if successor is not None:
        link = f"[its page]({line_url(dep, successor.line)})"
        text = (
            f"keeps requests for `{model.id}` working: they are served by {successor.id} at the same "
            f"size and price (`{model.id}`'s sizes and price; {successor.id}: {link})"
        )
        mapping = _translation(model)
        if not mapping:
            return text
        if (
            all(rule.to == name for name, rule in model.lifecycle.translate.items())
            and "becomes" not in mapping
        ):
            return text + "; its parameters keep their meaning"
        return text + f"; their parameters are translated: {mapping}"
    text = f"refuses requests for `{model.id}` with HTTP 410 and the error code `model_retired`"
    if model.lifecycle.successor:
        text += f"; move to `{model.lifecycle.successor}`"
    return text


def status_text(catalog: Catalog, model: ModelSpec, dep: Deployment) -> str:
    """One short phrase: active, deprecated (with date and successor), or retired and what then."""
    life = model.lifecycle
    if life.shutdown_date is not None and life.retired_on(dep.today):
        successor = served_after_shutdown(catalog, model, dep)
        if successor is not None:
            return f"retired {life.shutdown_date}, served by `{successor.id}`"
        return f"retired {life.shutdown_date}, refused (410 `model_retired`)"
    if life.deprecated or life.shutdown_date is not None:
        parts = ["deprecated"]
        if life.shutdown_date:
            parts.append(f"shuts down {life.shutdown_date}")
        if life.successor:
            parts.append(f"successor `{life.successor}`")
        return ", ".join(parts)
    return "active"


def _created(model: ModelSpec) -> int:
    """Unix time of the model's release date, else of its dated snapshot alias
    (``<id>-YYYY-MM-DD``), or 0 when it has neither."""
    if model.released is not None:
        return int(datetime.combine(model.released, time(), tzinfo=UTC).timestamp())
    pattern = re.compile(rf"^{re.escape(model.id)}-(\d{{4}}-\d{{2}}-\d{{2}})$")
    for alias in model.aliases:
        match = pattern.match(alias)
        if match:
            day = date.fromisoformat(match.group(1))
            return int(datetime.combine(day, time(), tzinfo=UTC).timestamp())
    return 0


# -- JSON documents ------------------------------------------------------------------------------
def _action_document(catalog: Catalog, dep: Deployment, variant: Variant) -> dict[str, Any]:
    model, action = variant.model, variant.action
    pricing = model.pricing
    return {
        "action": action.value,
        "variant": variant.slug,
        "variant_name": variant.name,
        "method": "POST",
        "endpoint": endpoint_url(catalog, dep, variant),
        "page_url": variant_url(dep, variant),
        "price": {
            "by": pricing.by,
            "matrix_micro": dict(pricing.matrix),
            "base_micro": pricing.base_micro,
            "from_micro": pricing.from_micro,
            "from_cents": cents(pricing.from_micro),
            "currency": "USD",
            "per": "image",
            "published": model.prices_published,
            "charged": dep.charges_credits,
            "free_calls": dep.free_calls_per_variant,
        },
        "input_contract": {
            "fields": {name: field_document(spec) for name, spec in model.fields_for(action).items()},
            "rules": [
                {
                    "when": {name: list(values) for name, values in rule.when.items()},
                    "forbid": {name: list(values) for name, values in rule.forbid.items()},
                    "description": rule_text(model, rule),
                }
                for rule in model.rules
            ],
        },
    }


def model_document(catalog: Catalog, model: ModelSpec, dep: Deployment) -> dict[str, Any]:
    line = catalog.line_of(model)
    life = model.lifecycle
    retired = life.retired_on(dep.today)
    successor = served_after_shutdown(catalog, model, dep)
    return {
        "id": model.id,
        "line": line.slug,
        "service": line.service,
        "display_name": model.display_name,
        "vendor": line.vendor,
        "aliases": list(model.aliases),
        "served_by": dep.provider_for(model),
        "served_by_note": provider_note(catalog, [model], dep).replace("`", ""),
        "actions": [_action_document(catalog, dep, catalog.variant(model, a)) for a in model.actions],
        "lifecycle": {
            "deprecated": life.deprecated or life.shutdown_date is not None,
            "deprecated_since": life.deprecated_since.isoformat() if life.deprecated_since else None,
            "shutdown_date": life.shutdown_date.isoformat() if life.shutdown_date else None,
            "successor": life.successor,
            "retired": retired,
            "status": status_text(catalog, model, dep).replace("`", ""),
            "after_shutdown": "successor" if successor is not None else "refuse",
            "served_as": successor.id if retired and successor is not None else None,
        },
        "commercial_use": model.commercial_use,
        "license_note": model.license_note,
        "page_url": line_url(dep, line.slug),
    }


def models_document(catalog: Catalog, dep: Deployment) -> dict[str, Any]:
    """``GET /api/v1/models``: every model with its variants, prices, contracts and lifecycle."""
    return {"object": "list", "data": [model_document(catalog, m, dep) for m in catalog.models.values()]}


def openai_model_entry(catalog: Catalog, model: ModelSpec, dep: Deployment) -> dict[str, Any]:
    """One model in OpenAI's ``Model`` shape, with the lifecycle and what the OpenAI face takes."""
    life = model.lifecycle
    retired = is_retired(model, dep)
    successor = served_after_shutdown(catalog, model, dep) if retired else None
    return {
        "id": model.id,
        "object": "model",
        "created": _created(model),
        "owned_by": catalog.line_of(model).vendor.lower(),
        "deprecated": life.deprecated or life.shutdown_date is not None,
        "shutdown_date": life.shutdown_date.isoformat() if life.shutdown_date else None,
        "successor": life.successor,
        "retired": retired,
        # Who answers a request for this id today: itself, a successor, or nobody (410).
        "served_by": successor.id if successor else (None if retired else model.id),
    }


def openai_models_document(catalog: Catalog, dep: Deployment) -> dict[str, Any]:
    """``GET /v1/models`` in OpenAI's list shape: one entry per model id (aliases are not listed)."""
    return {"object": "list", "data": [openai_model_entry(catalog, m, dep) for m in catalog.models.values()]}


def openai_model_document(catalog: Catalog, name: str, dep: Deployment) -> dict[str, Any]:
    """``GET /v1/models/{id}``: any of a model's names; an alias answers as itself, saying whose."""
    model = catalog.find(name)
    if model is None:
        raise NotFoundError(f"The model {name!r} does not exist.", param="model")
    surface = model.openai
    entry = openai_model_entry(catalog, model, dep)
    entry.update(
        id=name,
        alias_of=None if name == model.id else model.id,
        image_parameters={
            "quality": surface.qualities,
            "output_format": surface.output_formats,
            "complexity": surface.complexity,
            "input_fidelity": surface.input_fidelity,
            "markup": surface.markup,
            "moderation": surface.moderation,
        },
    )
    return entry
