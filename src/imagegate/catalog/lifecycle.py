"""Keep clients working across a model's retirement.

Before the shutdown date a deprecated model is served as asked, with
``Deprecation``/``Sunset`` headers. After it, work goes to the successor with the
parameters translated as the catalog says, or is refused with 410, by the
operator's choice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from email.utils import format_datetime
from typing import Any, Literal

from imagegate.catalog.contract import check_rules
from imagegate.catalog.registry import Catalog
from imagegate.catalog.schema import ModelSpec
from imagegate.errors import ModelRetiredError


@dataclass(frozen=True)
class Served:
    model: ModelSpec  # what actually runs
    params: dict[str, Any]  # contract parameters in the served model's vocabulary


def translate(source: ModelSpec, target: ModelSpec, params: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    rules = source.lifecycle.translate
    for name, value in params.items():
        if name in rules:
            rule = rules[name]
            out[rule.to] = rule.map.get(str(value), value) if rule.map else value
        elif name in target.fields:
            out[name] = value
    for name, spec in target.fields.items():
        if name not in out and spec.default is not None:
            out[name] = spec.default
    return out


def resolve(
    catalog: Catalog,
    model: ModelSpec,
    params: dict[str, Any],
    today: date,
    policy: Literal["successor", "refuse"],
) -> Served:
    """Follow the successor chain from a retired model to one that is still served."""
    current, current_params = model, params
    seen = {model.id}
    while current.lifecycle.retired_on(today):
        successor = current.lifecycle.successor
        if policy == "refuse" or successor is None:
            hint = f"; use {successor}" if successor else ""
            raise ModelRetiredError(
                f"{current.id} was retired on {current.lifecycle.shutdown_date}{hint}.",
                param="model",
                extra={"successor": successor},
            )
        target = catalog.model(successor)
        if target.id in seen:
            break
        seen.add(target.id)
        current_params = translate(current, target, current_params)
        check_rules(target, current_params)
        current = target
    return Served(model=current, params=current_params)


def deprecation_headers(model: ModelSpec, base_url: str) -> dict[str, str]:
    """RFC 9745 Deprecation, RFC 8594 Sunset, and a Link to the successor's page."""
    life = model.lifecycle
    if not life.deprecated and life.shutdown_date is None:
        return {}
    headers: dict[str, str] = {}
    if life.deprecated_since is not None:
        since = datetime.combine(life.deprecated_since, time(), tzinfo=UTC)
        headers["Deprecation"] = f"@{int(since.timestamp())}"
    else:
        headers["Deprecation"] = "true"
    if life.shutdown_date is not None:
        sunset = datetime.combine(life.shutdown_date, time(), tzinfo=UTC)
        headers["Sunset"] = format_datetime(sunset, usegmt=True)
    if life.successor is not None:
        headers["Link"] = f'<{base_url}/models/{life.successor}.md>; rel="successor-version"'
    return headers
