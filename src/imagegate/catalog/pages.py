"""The catalog as Markdown pages and llms.txt, written for one deployment.

Every sentence that states a fact about the service (prices, free calls, billing, retention,
rate limits, who renders the images, what happens after a shutdown date) is computed from the
catalog and the :class:`Deployment`, so a page never promises what this server does not do.
The JSON documents live in :mod:`imagegate.catalog.documents` and are re-exported here.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from imagegate.catalog.documents import (
    Deployment,
    after_shutdown_text,
    cents,
    endpoint_url,
    example_body,
    join_words,
    line_url,
    line_variants,
    matrix_text,
    models_document,
    openai_model_document,
    openai_models_document,
    price_text,
    provider_notes,
    rule_text,
    served_after_shutdown,
    status_text,
    variant_url,
)
from imagegate.catalog.faq import faq_sections
from imagegate.catalog.registry import Catalog
from imagegate.catalog.schema import ActionName, FieldSpec, Line, ModelSpec, Variant

__all__ = [
    "Deployment",
    "index_markdown",
    "line_markdown",
    "llms_txt",
    "models_document",
    "openai_model_document",
    "openai_models_document",
    "price_text",
    "variant_markdown",
]

_PROVIDER_LABELS = {  # by kind
    "offline": "offline (built-in renderer, placeholder images)",
    "fake": "fake (test provider, placeholder images)",
}


# -- small pieces --------------------------------------------------------------------------------
def _yaml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, date):
        value = value.isoformat()
    return json.dumps(str(value), ensure_ascii=False)


def _front_matter(items: dict[str, object]) -> str:
    rows = [f"{key}: {_yaml(value)}" for key, value in items.items() if value is not None]
    return "\n".join(["---", *rows, "---"])


def _lifecycle_keys(model: ModelSpec, dep: Deployment) -> dict[str, object]:
    life = model.lifecycle
    return {
        "deprecated": True if life.deprecated or life.shutdown_date is not None else None,
        "shutdown_date": life.shutdown_date,
        "successor": life.successor,
        "retired": True if life.retired_on(dep.today) else None,
    }


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _served_by(models: list[ModelSpec], dep: Deployment, *, labels: bool = True) -> str:
    names = dict.fromkeys(dep.provider_for(m) for m in models)
    return ", ".join(_PROVIDER_LABELS.get(dep.provider_kind(n), n) if labels else n for n in names)


def _curl(url: str, body: dict[str, Any]) -> str:
    payload = json.dumps(body, ensure_ascii=False).replace("'", "'\\''")
    auth = '  -H "Authorization: Bearer $IMAGEGATE_API_KEY" \\'
    return f"curl -X POST {url} \\\n{auth}\n  -H \"Content-Type: application/json\" \\\n  -d '{payload}'"


def _poll(dep: Deployment) -> str:
    return f'curl {dep.base_url}/api/v1/tasks/<id> \\\n  -H "Authorization: Bearer $IMAGEGATE_API_KEY"'


def _code(language: str, text: str) -> list[str]:
    return [f"```{language}", text, "```"]


def _lifecycle_notice(catalog: Catalog, model: ModelSpec, dep: Deployment) -> str | None:
    life = model.lifecycle
    if not life.deprecated and life.shutdown_date is None:
        return None
    name = f"{model.display_name} (`{model.id}`)"
    after = after_shutdown_text(catalog, model, dep)
    if life.shutdown_date is not None and life.retired_on(dep.today):
        return f"> **Retired.** {name} was shut down on {life.shutdown_date}. This deployment {after}."
    text = f"> **Deprecated.** {name} is deprecated"
    text += (
        f" and shuts down on {life.shutdown_date}." if life.shutdown_date else "; no shutdown date is set."
    )
    if life.successor:
        text += f" Its successor is `{life.successor}`."
    if life.shutdown_date is None:
        return text + " It is still served as asked; its responses carry a `Deprecation` header."
    return (
        f"{text} Until then it is served as asked; its responses carry `Deprecation` and `Sunset` "
        f"headers. From {life.shutdown_date} on, this deployment {after}."
    )


def _notices(catalog: Catalog, models: list[ModelSpec], dep: Deployment) -> list[str]:
    placeholder = [m for m in models if dep.placeholder(m)]
    out = [f"> **Placeholder images.** {note}" for note in provider_notes(catalog, placeholder, dep)]
    out += [notice for m in models if (notice := _lifecycle_notice(catalog, m, dep))]
    return out


def _billing_notes(models: list[ModelSpec], dep: Deployment) -> list[str]:
    notes = []
    if not dep.charges_credits:
        notes.append(
            "Billing is not enabled on this deployment: calls are not charged. The prices are the "
            "catalog's list prices, charged per image once billing is turned on."
        )
    unpublished = [f"`{m.id}`" for m in models if not m.prices_published]
    if unpublished:
        notes.append(
            f"RunAPI has published no price for {join_words(unpublished)}; the prices shown are the "
            "ones this deployment's catalog sets."
        )
    return notes


def _paragraphs(blocks: list[str]) -> list[str]:
    """Blocks separated by blank lines, each preceded by one."""
    return [part for block in blocks for part in ("", block)]


# -- pages ---------------------------------------------------------------------------------------
def index_markdown(catalog: Catalog, dep: Deployment) -> str:
    """``/models.md``: every line with its variants, prices, lifecycle and links."""
    variants = list(catalog.variants())
    models = list(catalog.models.values())
    url = f"{dep.base_url}/models.md"
    keys = {"title": "Image models: variants and prices | imagegate", "url": url, "canonical": url}
    counts = {"line_count": len(catalog.lines), "model_count": len(models), "variant_count": len(variants)}
    out = [
        _front_matter({**keys, "locale": "en", **counts}),
        "",
        "# Models",
        "",
        f"{len(catalog.lines)} model lines, {len(models)} models and {len(variants)} variants, all "
        f"behind one API key at {dep.base_url}. Each variant is one model and one action.",
        *_paragraphs(_billing_notes(models, dep)),
    ]
    for line in catalog.lines.values():
        line_models = catalog.models_of_line(line)
        if not line_models:
            continue
        low = price_text(min(m.pricing.from_micro for m in line_models))
        out += [
            "",
            f"## [{line.title}]({line_url(dep, line.slug)})",
            "",
            f"{line.summary} {line.vendor}, {line.modality}, from {low} an image; served by "
            f"{_served_by(line_models, dep)}.",
            "",
            "| Variant | Model | Pricing | Status | URL |",
            "|---|---|---|---|---|",
            *(
                f"| `{v.slug}` | {v.model.id} | {matrix_text(v.model)} | "
                f"{status_text(catalog, v.model, dep)} | {variant_url(dep, v)} |"
                for v in line_variants(catalog, line.slug)
            ),
            *_paragraphs(_notices(catalog, line_models, dep)),
        ]
    return "\n".join(out) + "\n"


def _line_front_matter(catalog: Catalog, line: Line, models: list[ModelSpec], dep: Deployment) -> str:
    keys: dict[str, object] = {
        "title": f"{line.title} API: variants, prices and code samples | imagegate",
        "url": line_url(dep, line.slug),
        "canonical": line_url(dep, line.slug),
        "locale": "en",
        "model": line.title,
        "provider": line.vendor,
        "modality": line.modality,
        "variant_count": len(line_variants(catalog, line.slug)),
        "price_from_cents": cents(min(m.pricing.from_micro for m in models)),
        "served_by": _served_by(models, dep, labels=False),
    }
    keys.update(_line_lifecycle_keys(catalog, models, dep))
    return _front_matter(keys)


def _line_lifecycle_keys(catalog: Catalog, models: list[ModelSpec], dep: Deployment) -> dict[str, object]:
    """Lifecycle keys for the whole line: set only when they hold for every model on it.

    A line whose every model has a shutdown date ends with its last one; its successor is
    where that model's requests go along the whole chain (gpt-image-1 -> 1.5 -> 2 is gpt-image-2).
    """
    if not all(m.lifecycle.shutdown_date is not None for m in models):
        lifecycles = [_lifecycle_keys(m, dep) for m in models]
        return {k: v for k, v in lifecycles[0].items() if all(o[k] == v for o in lifecycles)}
    last = max(models, key=lambda m: m.lifecycle.shutdown_date or date.min)
    successor = served_after_shutdown(catalog, last, dep)
    return {
        "deprecated": True,
        "shutdown_date": last.lifecycle.shutdown_date,
        "successor": successor.id if successor is not None else last.lifecycle.successor,
        "retired": True if all(m.lifecycle.retired_on(dep.today) for m in models) else None,
    }


def line_markdown(catalog: Catalog, line: Line, dep: Deployment) -> str:
    """``/models/{line}.md``: the seed page's shape, with facts true of this deployment."""
    models = catalog.models_of_line(line)
    variants = line_variants(catalog, line.slug)
    live = [m for m in models if not m.lifecycle.retired_on(dep.today)]
    model = (live or models)[0]
    action = ActionName.TEXT_TO_IMAGE if ActionName.TEXT_TO_IMAGE in model.actions else model.actions[0]
    example = catalog.variant(model, action)
    out = [
        _line_front_matter(catalog, line, models, dep),
        "",
        f"# {line.title}",
        "",
        line.summary,
        "",
        f"**Provider:** {line.vendor}",
        f"**Modality:** {line.modality.capitalize()}",
        f"**Catalog:** {len(variants)} variant{'s' if len(variants) != 1 else ''}",
        f"**Served by:** {_served_by(models, dep)}",
        *_paragraphs(_notices(catalog, models, dep)),
        "",
        "## Variants",
        "",
        "| Version | Variant | Pricing | Billing | URL | Price matrix |",
        "|---|---|---|---|---|---|",
        *(
            f"| {v.name} | `{v.slug}` | {price_text(v.model.pricing.from_micro)} | image | "
            f"{variant_url(dep, v)} | {v.model.pricing.by or 'flat'}: {matrix_text(v.model)} |"
            for v in variants
        ),
        *_paragraphs(_billing_notes(models, dep)),
        "",
        "## Install",
        "",
        "This gateway needs no SDK of its own. Its RunAPI-style routes take plain HTTP (curl below), and "
        f"its OpenAI-compatible routes under `{dep.base_url}/v1` work with the official OpenAI client:",
        "",
        *_code("sh", "pip install openai"),
        "",
        "## Quickstart",
        "",
        f"Create a task with `{model.id}` (its [{example.slug}]({variant_url(dep, example)}) variant):",
        *(
            ["", f"`{model.id}` is retired: this deployment {after_shutdown_text(catalog, model, dep)}."]
            if not live
            else []
        ),
        "",
        *_code("sh", _curl(endpoint_url(catalog, dep, example), example_body(model, action))),
        "",
        "The answer carries the task's `id`. Poll it until `status` is `completed` (or `failed`); a "
        "completed task lists its images under `images[].url`:",
        "",
        *_code("sh", _poll(dep)),
    ]
    out += [
        "",
        "## Context",
        "",
        f"{line.context or line.summary} Through this gateway every {line.title} variant shares one "
        "API key, one task API and per-image prices.",
        "",
        "## FAQ",
        *_paragraphs(faq_sections(catalog, line, models, dep)),
    ]
    return "\n".join(out) + "\n"


def _limits(spec: FieldSpec) -> str:
    parts = [", ".join(f"`{value}`" for value in spec.enum)] if spec.enum else []
    unit = " characters" if spec.type == "string" else ""
    if spec.min is not None and spec.max is not None:
        parts.append(f"{spec.min:g} to {spec.max:g}{unit}")
    elif spec.min is not None or spec.max is not None:
        parts.append(
            f"at least {spec.min:g}{unit}" if spec.min is not None else f"at most {spec.max:g}{unit}"
        )
    if spec.type == "array":
        if spec.max_items is not None:
            parts.append(f"{spec.min_items or 0} to {spec.max_items} items")
        elif spec.min_items is not None:
            parts.append(f"at least {spec.min_items} items")
        if spec.items == "image_url":
            parts.append("each an http(s) or data: URL")
    if spec.format == "url":
        parts.append("http(s) URL")
    return "; ".join(parts) or "—"


def _type(spec: FieldSpec) -> str:
    if spec.type != "array":
        return spec.type
    return "array of image URLs" if spec.items == "image_url" else "array of strings"


def _contract_table(model: ModelSpec, action: ActionName) -> list[str]:
    accepted = f" (also accepted: {', '.join(f'`{a}`' for a in model.aliases)})" if model.aliases else ""
    rows = [
        "| Field | Type | Required | Allowed values / limits | Default | Description |",
        "|---|---|---|---|---|---|",
        f"| `model` | string | yes | `{model.id}`{accepted} | — | The model to run. |",
    ]
    for name, spec in model.fields_for(action).items():
        default = "—" if spec.default is None else f"`{spec.default}`"
        rows.append(
            f"| `{name}` | {_type(spec)} | {'yes' if spec.required else 'no'} | {_cell(_limits(spec))} | "
            f"{default} | {_cell(spec.description)} |"
        )
    return rows


def _price_table(model: ModelSpec) -> list[str]:
    pricing = model.pricing
    rows = (
        [f"| `{value}` | {price_text(micro)} |" for value, micro in pricing.matrix.items()]
        if pricing.by
        else []
    )
    if pricing.base_micro is not None:
        rows.append(
            f"| {'any other value' if pricing.by else 'any call'} | {price_text(pricing.base_micro)} |"
        )
    return [f"| {pricing.by or 'Call'} | Price |", "|---|---|", *rows]


def _openai_call(dep: Deployment, variant: Variant) -> str:
    model, prompt = (
        variant.model.id,
        json.dumps(example_body(variant.model, variant.action).get("prompt", "...")),
    )
    lines = [
        "import os",
        "",
        "from openai import OpenAI",
        "",
        f'client = OpenAI(base_url="{dep.base_url}/v1", api_key=os.environ["IMAGEGATE_API_KEY"])',
    ]
    if variant.action is ActionName.EDIT_IMAGE:
        lines += [
            'with open("source.png", "rb") as image:',
            f'    result = client.images.edit(model="{model}", image=image, prompt={prompt})',
        ]
    else:
        lines.append(f'result = client.images.generate(model="{model}", prompt={prompt})')
    return "\n".join([*lines, "print(result.data[0])"])


def variant_markdown(catalog: Catalog, variant: Variant, dep: Deployment) -> str:
    """``/models/{line}/{variant}.md``: endpoint, input contract, price, lifecycle and examples."""
    model, action = variant.model, variant.action
    line = catalog.line_of(model)
    url, endpoint = variant_url(dep, variant), endpoint_url(catalog, dep, variant)
    keys: dict[str, object] = {
        "title": f"{variant.name} API: input contract, price and examples | imagegate",
        "url": url,
        "canonical": url,
        "locale": "en",
        "model": model.display_name,
        "model_id": model.id,
        "variant": variant.slug,
        "action": action.value,
        "line": line.slug,
        "provider": line.vendor,
        "modality": line.modality,
        "price_from_cents": cents(model.pricing.from_micro),
        "served_by": dep.provider_for(model),
        **_lifecycle_keys(model, dep),
    }
    openai_path = "edits" if action is ActionName.EDIT_IMAGE else "generations"
    free = dep.free_calls_per_variant
    out = [
        _front_matter(keys),
        "",
        f"# {model.display_name}: {action.label}",
        "",
        line.summary,
        "",
        f"**Model:** `{model.id}`",
        f"**Action:** `{action.value}`, {action.label.lower()}",
        f"**Line:** [{line.title}]({line_url(dep, line.slug)})",
        f"**Served by:** {_served_by([model], dep)}",
        *_paragraphs([f"> {note}" for note in provider_notes(catalog, [model], dep)]),
        *_paragraphs([n for n in [_lifecycle_notice(catalog, model, dep)] if n]),
        "",
        "## Endpoint",
        "",
        f"- `POST {endpoint}` creates a task.",
        f"- `GET {endpoint}/<id>` or `GET {dep.base_url}/api/v1/tasks/<id>` reads it back.",
        f'- OpenAI-compatible: `POST {dep.base_url}/v1/images/{openai_path}` with `"model": "{model.id}"`.',
        "",
        "## Input contract",
        "",
        *_contract_table(model, action),
    ]
    if model.rules:
        out += ["", "Rules across fields:", "", *(f"- {rule_text(model, rule)}" for rule in model.rules)]
    out += [
        "",
        "## Price",
        "",
        f"Per image, from {price_text(model.pricing.from_micro)}: {matrix_text(model)}.",
        "",
        *_price_table(model),
        *_paragraphs(_billing_notes([model], dep)),
        *_paragraphs([f"Each account gets {free} free calls on this variant."] if free else []),
        "",
        "## Lifecycle",
        "",
        f"Status: {status_text(catalog, model, dep)}.",
        "",
        "## Commercial use",
        "",
        ("Allowed." if model.commercial_use else "Not allowed.")
        + (f" {model.license_note}" if model.license_note else ""),
        "",
        "## Example",
        "",
        *_code("sh", _curl(endpoint, example_body(model, action))),
        "",
        "Then poll the task until its `status` is `completed` or `failed`:",
        "",
        *_code("sh", _poll(dep)),
        "",
        "## OpenAI-compatible call",
        "",
        *_code("python", _openai_call(dep, variant)),
    ]
    if model.openai_quality:
        pairs = ", ".join(f"`{a}` → `{b}`" for a, b in model.openai_quality.items())
        out += ["", f"OpenAI's `quality` maps onto this contract's `quality`: {pairs}."]
    return "\n".join(out) + "\n"


def llms_txt(catalog: Catalog, dep: Deployment) -> str:
    """``/llms.txt`` (llmstxt.org): what this server is, how to call it, links to every page."""
    base = dep.base_url
    out = [
        "# imagegate",
        "",
        f"> Self-hosted image-generation gateway at {base}: GPT Image models behind one API key, "
        "with RunAPI-style task routes and OpenAI-compatible routes under /v1.",
        "",
        f"How to call: `POST {base}/api/v1/{{service}}/{{action}}` with `Authorization: Bearer <key>` "
        "and a JSON body naming `model` answers with a task `id`. Poll "
        f"`GET {base}/api/v1/tasks/{{id}}` until `status` is `completed`, then read `images[].url`. "
        f"OpenAI clients can use `base_url={base}/v1` instead.",
    ]
    placeholder = [m for m in catalog.models.values() if dep.placeholder(m)]
    out += _paragraphs(provider_notes(catalog, placeholder, dep))
    out += ["", "## Models", "", f"- [All models]({base}/models.md): every line, variant and price"]
    out.append(f"- [Pricing]({base}/pricing.md): price matrices, free calls, usage tiers and their limits")
    for line in catalog.lines.values():
        if models := catalog.models_of_line(line):
            low = price_text(min(m.pricing.from_micro for m in models))
            out.append(f"- [{line.title}]({line_url(dep, line.slug)}): {line.summary} From {low} an image.")
    out += ["", "## Variants", ""]
    out += [
        f"- [{v.name}]({variant_url(dep, v)}): `POST {endpoint_url(catalog, dep, v)}`, "
        f"{matrix_text(v.model)}; {status_text(catalog, v.model, dep)}"
        for line in catalog.lines.values()
        for v in line_variants(catalog, line.slug)
    ]
    out += [
        "",
        "## Optional",
        "",
        f"- [Model catalog JSON]({base}/api/v1/models): input contracts, prices and lifecycle",
        f"- [OpenAI model list]({base}/v1/models): the same models in OpenAI's list shape",
    ]
    return "\n".join(out) + "\n"
