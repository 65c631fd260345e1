"""Prices from the catalog: per call, price schedules and quotes in RunAPI's shape."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from typing import Any, Literal

from imagegate.billing.money import micro_to_cents
from imagegate.catalog import ActionName, Catalog, ModelSpec
from imagegate.catalog.contract import check_rules, validate
from imagegate.catalog.lifecycle import serving_model
from imagegate.errors import ValidationError


def call_price_micro(model: ModelSpec, params: dict[str, Any], n: int = 1) -> int:
    """What one call costs: the requested variant's price per image, times the images asked for."""
    return model.pricing.price_micro(params) * n


Policy = Literal["successor", "refuse"]


def catalog_status(catalog: Catalog, model: ModelSpec, today: date | None, policy: Policy) -> str:
    """RunAPI's ``catalog_status`` with a retired state: ``active`` until the shutdown date,
    then ``retired`` (served by a successor) or ``retired_refused`` (answered with 410)."""
    if today is None or not model.lifecycle.retired_on(today):
        return "active"
    return "retired" if serving_model(catalog, model, today, policy) is not None else "retired_refused"


def _schedule_entry(
    catalog: Catalog, model: ModelSpec, action: ActionName, today: date | None, policy: Policy
) -> dict[str, Any]:
    pricing = model.pricing
    served = serving_model(catalog, model, today, policy) if today is not None else model
    return {
        "service": catalog.line_of(model).service,
        "action": action.value,
        "model": model.id,
        "pricing_status": "available",
        "catalog_status": catalog_status(catalog, model, today, policy),
        "prices_published": model.prices_published,
        "currency": "USD",
        "billing_unit": "call",
        "billing_strategy": "matrix" if pricing.by else "flat",
        "unit_price_cents": micro_to_cents(pricing.from_micro),
        "unit_price_micro": pricing.from_micro,
        "billing_config": {
            "key": pricing.by,
            "matrix": {value: micro_to_cents(micro) for value, micro in pricing.matrix.items()},
            "matrix_micro": dict(pricing.matrix),
        },
        "lifecycle": {
            "deprecated": model.lifecycle.deprecated,
            "shutdown_date": model.lifecycle.shutdown_date.isoformat()
            if model.lifecycle.shutdown_date
            else None,
            "successor": model.lifecycle.successor,
            "retired": today is not None and model.lifecycle.retired_on(today),
            "served_by": served.id if served is not None else None,
        },
    }


def schedules(
    catalog: Catalog,
    *,
    service: str | None = None,
    action: str | None = None,
    model: str | None = None,
    today: date | None = None,
    retired_models: Policy = "successor",
) -> list[dict[str, Any]]:
    """Price schedules; with ``today`` (the lifecycle date), retired models say so."""
    entries = []
    for variant in catalog.variants():
        entry = _schedule_entry(catalog, variant.model, variant.action, today, retired_models)
        if service and entry["service"] != service:
            continue
        if action and entry["action"] != action:
            continue
        if model and variant.model.id != model and model not in variant.model.aliases:
            continue
        entries.append(entry)
    return entries


def etag(document: Any) -> str:
    digest = hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:32]
    return f'"{digest}"'


def quote(catalog: Catalog, body: dict[str, Any]) -> dict[str, Any]:
    service, action_name = body.get("service"), body.get("action")
    if not isinstance(service, str) or not service:
        raise ValidationError("service is required", param="service")
    try:
        action = ActionName(str(action_name))
    except ValueError:
        raise ValidationError("action must be one of: text_to_image, edit_image", param="action") from None
    params = body.get("params") or {}
    if not isinstance(params, dict):
        raise ValidationError("params must be an object", param="params")
    model = catalog.model_for_service(service, body.get("model") or params.get("model"))
    # A quote needs only the fields that set the price: fill the rest so validation can run.
    probe = {k: v for k, v in params.items() if k != "model"}
    probe.setdefault("prompt", "quote")
    if action is ActionName.EDIT_IMAGE:
        probe.setdefault("source_image_urls", ["https://example.invalid/source.png"])
    for name, spec in model.fields_for(action).items():
        if spec.required and name not in probe and spec.enum:
            probe[name] = (
                spec.enum[0]
                if name != model.pricing.by
                else min(spec.enum, key=lambda value: model.pricing.matrix.get(value, 0))
            )
    # Rules bind only on what the caller chose: a quote for 4k alone is a price, not an error.
    checked = validate(model, action, probe, rules=False)
    check_rules(model, checked, given=set(params))
    micro = call_price_micro(model, checked)
    return {
        "service": service,
        "action": action.value,
        "model": model.id,
        "pricing_status": "available",
        "currency": "USD",
        "reservation_amount_cents": micro_to_cents(micro),
        "reservation_amount_micro": micro,
        "estimate_basis": f"{model.pricing.by}={checked.get(model.pricing.by)}"
        if model.pricing.by
        else "flat",
    }
