"""``/pricing.md`` and ``/pricing.json``: prices, free calls and usage tiers of one deployment.

The model pages' FAQ points here ("See the pricing page"). The JSON document is the source;
the Markdown page is written from it, so the two never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from imagegate.catalog.documents import (
    Deployment,
    cents,
    is_retired,
    join_words,
    price_text,
    served_after_shutdown,
    status_text,
)
from imagegate.catalog.registry import Catalog
from imagegate.catalog.schema import ModelSpec


@dataclass(frozen=True)
class TierLimits:
    """One usage tier as the deployment's settings define it."""

    name: str
    creates_per_minute: int
    reads_per_minute: int
    max_concurrent: int
    paid_spend_threshold_micro: int  # paid spend that moves an account up to this tier


@dataclass(frozen=True)
class PricingFacts:
    """What the pricing page needs beyond the catalog and the :class:`Deployment`."""

    tiers: list[TierLimits]
    rate_limits_enabled: bool
    rate_window_s: int = 60


def page_url(dep: Deployment) -> str:
    return f"{dep.base_url}/pricing.md"


def _model_entry(catalog: Catalog, model: ModelSpec, dep: Deployment) -> dict[str, Any]:
    pricing = model.pricing
    retired = is_retired(model, dep)
    served = served_after_shutdown(catalog, model, dep) if retired else model
    return {
        "id": model.id,
        "display_name": model.display_name,
        "service": catalog.line_of(model).service,
        "actions": [action.value for action in model.actions],
        "by": pricing.by,
        "matrix_micro": dict(pricing.matrix),
        "base_micro": pricing.base_micro,
        "from_micro": pricing.from_micro,
        "from_cents": cents(pricing.from_micro),
        "per": "image",
        "published": model.prices_published,
        "status": status_text(catalog, model, dep).replace("`", ""),
        "retired": retired,
        "served_by": served.id if served is not None else None,
    }


def pricing_document(catalog: Catalog, dep: Deployment, facts: PricingFacts) -> dict[str, Any]:
    """``GET /pricing.json``."""
    tiers = sorted(facts.tiers, key=lambda t: t.paid_spend_threshold_micro)
    return {
        "object": "pricing",
        "url": page_url(dep),
        "currency": "USD",
        "as_of": dep.today.isoformat(),
        "charged": dep.charges_credits,
        "free_calls_per_variant": dep.free_calls_per_variant,
        "models": [_model_entry(catalog, m, dep) for m in catalog.models.values()],
        "rate_limits": {
            "enabled": facts.rate_limits_enabled,
            "window_s": facts.rate_window_s,
            "tiers": [
                {
                    "name": t.name,
                    "creates_per_window": t.creates_per_minute,
                    "reads_per_window": t.reads_per_minute,
                    "max_concurrent": t.max_concurrent,
                    "paid_spend_threshold_micro": t.paid_spend_threshold_micro,
                }
                for t in tiers
            ],
        },
    }


def _matrix_cell(entry: dict[str, Any]) -> str:
    if entry["by"] is None or not entry["matrix_micro"]:
        return price_text(entry["from_micro"])
    cells = [f"`{value}` {price_text(micro)}" for value, micro in entry["matrix_micro"].items()]
    if entry["base_micro"] is not None:
        cells.append(f"other {price_text(entry['base_micro'])}")
    return f"{entry['by']}: " + ", ".join(cells)


def _dollars(micro: int) -> str:
    """A spend threshold: 5_000_000 -> "$5", 2_500_000 -> "$2.5"."""
    dollars, fraction = divmod(micro, 1_000_000)
    return f"${dollars}" + (f".{fraction:06d}".rstrip("0") if fraction else "")


def _window(seconds: int) -> str:
    return "minute" if seconds == 60 else f"{seconds} s"


def pricing_markdown(catalog: Catalog, dep: Deployment, facts: PricingFacts) -> str:
    """``GET /pricing.md``: the same facts as :func:`pricing_document`, for people."""
    doc = pricing_document(catalog, dep, facts)
    url = doc["url"]
    out = [
        "---",
        'title: "Pricing: models, free calls and usage tiers | imagegate"',
        f'url: "{url}"',
        f'canonical: "{url}"',
        'locale: "en"',
        "---",
        "",
        "# Pricing",
        "",
        "Prices are per image, in US dollars, and a failed generation is never charged.",
    ]
    if not dep.charges_credits:
        out += ["", "Billing is not enabled on this deployment: no call is charged. These are list prices."]
    out += ["", "## Models", "", "| Model | Service | Prices | Status |", "|---|---|---|---|"]
    out += [f"| `{e['id']}` | `{e['service']}` | {_matrix_cell(e)} | {e['status']} |" for e in doc["models"]]
    unpublished = [f"`{e['id']}`" for e in doc["models"] if not e["published"]]
    if unpublished:
        out += [
            "",
            f"RunAPI has published no price for {join_words(unpublished)}: those prices are the defaults "
            "this deployment's catalog sets.",
        ]
    retired = [e for e in doc["models"] if e["retired"] and e["served_by"]]
    if retired:
        out += [
            "",
            " ".join(
                f"`{e['id']}` is retired and served by {e['served_by']} at the same size and price."
                for e in retired
            ),
        ]
    out += ["", "## Free calls", ""]
    free = dep.free_calls_per_variant
    if free > 0:
        out.append(
            f"Every account gets {free} free call{'s' if free != 1 else ''} on each variant "
            "(a model and an action) before any call is charged."
        )
    else:
        out.append("This deployment gives no free calls.")
    out += ["", "## Usage tiers and rate limits", ""]
    limits = doc["rate_limits"]
    per = _window(limits["window_s"])
    if not limits["enabled"]:
        out.append("No per-key rate limits are enforced on this deployment.")
    else:
        out += [
            "Limits apply per API key (running tasks per account). An account moves up a tier once its "
            "paid spend reaches the tier's threshold.",
            "",
            f"| Tier | Task creations per {per} | Task reads per {per} | Running at once | From paid spend |",
            "|---|---|---|---|---|",
            *(
                f"| {t['name']} | {t['creates_per_window']} | {t['reads_per_window']} | "
                f"{t['max_concurrent']} | {_dollars(t['paid_spend_threshold_micro'])} |"
                for t in limits["tiers"]
            ),
        ]
    return "\n".join(out) + "\n"
