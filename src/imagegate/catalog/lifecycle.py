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
    """How a request is carried out: by which model, with what, at which size and quality.

    A retired model keeps its contract when its successor serves it: ``size`` comes from the
    requested model's contract, and ``quality`` is its quality in the serving model's terms.
    """

    model: ModelSpec  # what actually runs
    params: dict[str, Any]  # contract parameters in the served model's vocabulary
    size: tuple[int, int]  # pixels, as the requested model's contract defines them
    quality: str | None = None  # render quality for the served model; None: its default


def _resolution_for(target: ModelSpec, size: tuple[int, int]) -> str | None:
    """The smallest resolution class of ``target`` whose long edge covers ``size``."""
    tiers = sorted(target.render.long_edge.items(), key=lambda item: item[1])
    if not tiers:
        return None
    return next((name for name, edge in tiers if max(size) <= edge), tiers[-1][0])


def translate(
    source: ModelSpec, target: ModelSpec, params: dict[str, Any], size: tuple[int, int] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``params`` of ``source`` as ``target`` takes them: (contract parameters, render settings).

    A translated name that is not a field of the target's contract (``quality`` for
    gpt-image-2, whose RunAPI contract has none) is a render setting, not a parameter.
    """
    out: dict[str, Any] = {}
    render: dict[str, Any] = {}
    rules = source.lifecycle.translate
    for name, value in params.items():
        if name in rules:
            rule = rules[name]
            mapped = rule.map.get(str(value), value) if rule.map else value
            (out if rule.to in target.fields else render)[rule.to] = mapped
        elif name in target.fields or name not in source.fields:
            # Not the contract's to translate (OpenAI-face options such as moderation): carried on.
            out[name] = value
    field = target.render.resolution_field
    if size is not None and field is not None and field in target.fields and field not in out:
        # The resolution class follows the pixels the source's contract promised.
        out[field] = _resolution_for(target, size)
    for name, spec in target.fields.items():
        if name not in out and spec.default is not None:
            out[name] = spec.default
    return out, render


def successor_chain(catalog: Catalog, model: ModelSpec) -> list[ModelSpec]:
    """The model and every successor after it, in order (the catalog refuses loops)."""
    chain = [model]
    while (successor := chain[-1].lifecycle.successor) is not None:
        chain.append(catalog.model(successor))
    return chain


def serving_model(
    catalog: Catalog, model: ModelSpec, on: date, policy: Literal["successor", "refuse"]
) -> ModelSpec | None:
    """The model that serves requests for ``model`` on ``on``: itself while live, else the first
    live successor along the whole chain; None when such requests are refused with 410."""
    for current in successor_chain(catalog, model):
        if not current.lifecycle.retired_on(on):
            return current
        if policy == "refuse":
            return None
    return None


def resolve(
    catalog: Catalog,
    model: ModelSpec,
    params: dict[str, Any],
    today: date,
    policy: Literal["successor", "refuse"],
) -> Served:
    """Follow the successor chain from a retired model to one that is still served."""
    size = model.render.size_for(params)
    quality = params.get("quality")
    current, current_params = model, params
    while current.lifecycle.retired_on(today):
        successor = current.lifecycle.successor
        if policy == "refuse" or successor is None:
            hint = f"; use {successor}" if successor else ""
            raise ModelRetiredError(
                f"{current.id} was retired on {current.lifecycle.shutdown_date}{hint}.",
                param="model",
                extra={"successor": successor},
            )
        target = catalog.model(successor)  # the catalog refuses successor loops when it loads
        current_params, render = translate(current, target, current_params, size)
        quality = render.get("quality", current_params.get("quality", quality))
        check_rules(target, current_params)
        current = target
    return Served(
        model=current, params=current_params, size=size, quality=None if quality is None else str(quality)
    )


_DEPRECATION: dict[tuple[int, str], tuple[ModelSpec, dict[str, str]]] = {}


def deprecation_headers(model: ModelSpec, base_url: str) -> dict[str, str]:
    """RFC 9745 Deprecation, RFC 8594 Sunset, and a Link to the successor's page (made once per
    model and base URL: every answer about a task of that model carries them)."""
    found = _DEPRECATION.get((id(model), base_url))
    if found is not None and found[0] is model:
        return found[1]
    headers = _deprecation_headers(model, base_url)
    if len(_DEPRECATION) >= 1024:
        _DEPRECATION.clear()
    _DEPRECATION[id(model), base_url] = (model, headers)
    return headers


def _deprecation_headers(model: ModelSpec, base_url: str) -> dict[str, str]:
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
