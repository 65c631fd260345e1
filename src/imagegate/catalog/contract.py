"""Check a request body against a model's input contract and fill defaults.

Messages follow RunAPI's client-side vocabulary ("<field> is required",
"<field> must be one of: a, b", "<f> is not allowed when <k> is <v>").
"""

from __future__ import annotations

from typing import Any

from imagegate.catalog.schema import ActionName, FieldSpec, ModelSpec
from imagegate.errors import ValidationError
from imagegate.storage.urls import is_http_url as _is_http_url

_SCALARS: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


def _is_image_url(value: str) -> bool:
    return _is_http_url(value) or value.startswith("data:")


def _check_scalar(name: str, spec: FieldSpec, value: Any) -> None:
    kinds = _SCALARS[spec.type]
    if (isinstance(value, bool) and spec.type != "boolean") or not isinstance(value, kinds):
        raise ValidationError(f"{name} must be a {spec.type}", param=name)
    if spec.enum is not None and str(value) not in spec.enum:
        raise ValidationError(f"{name} must be one of: {', '.join(spec.enum)}", param=name)
    if isinstance(value, str):
        if spec.min is not None and len(value) < spec.min:
            if spec.min == 1:
                raise ValidationError(f"{name} must not be empty", param=name)
            raise ValidationError(f"{name} must be at least {int(spec.min)} characters", param=name)
        if spec.max is not None and len(value) > spec.max:
            raise ValidationError(f"{name} must be at most {int(spec.max)} characters", param=name)
        if spec.format == "url" and not _is_http_url(value):
            raise ValidationError(f"{name} must be an http(s) URL", param=name)
    elif isinstance(value, int | float):
        if spec.min is not None and value < spec.min:
            raise ValidationError(f"{name} must be at least {spec.min:g}", param=name)
        if spec.max is not None and value > spec.max:
            raise ValidationError(f"{name} must be at most {spec.max:g}", param=name)


def _check_array(name: str, spec: FieldSpec, value: Any) -> None:
    if not isinstance(value, list):
        raise ValidationError(f"{name} must be an array", param=name)
    if spec.min_items is not None and len(value) < spec.min_items:
        raise ValidationError(f"{name} must have at least {spec.min_items} item(s)", param=name)
    if spec.max_items is not None and len(value) > spec.max_items:
        raise ValidationError(f"{name} must have at most {spec.max_items} items", param=name)
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise ValidationError(f"{name}[{index}] must be a string", param=name)
        if spec.items == "image_url" and not _is_image_url(item):
            raise ValidationError(f"{name}[{index}] must be an http(s) URL or a data: URL", param=name)


def validate(
    model: ModelSpec,
    action: ActionName,
    body: dict[str, Any],
    *,
    skip: frozenset[str] = frozenset(),
    rules: bool = True,
) -> dict[str, Any]:
    """The request's contract parameters with defaults filled in; ``model`` is not among them.

    ``skip`` names fields another face supplies in its own way (multipart images).
    """
    fields = {k: v for k, v in model.fields_for(action).items() if k not in skip}
    # SDKs drop null or blank keys before sending; treat them the same way when others send them.
    given = {k: v for k, v in body.items() if k != "model" and v is not None and v != ""}
    unknown = sorted(set(given) - set(fields))
    if unknown:
        raise ValidationError(
            f"unknown field {unknown[0]!r}; {model.id} {action} takes: {', '.join(fields)}", param=unknown[0]
        )
    params: dict[str, Any] = {}
    for name, spec in fields.items():
        if name not in given:
            if spec.required:
                raise ValidationError(f"{name} is required", param=name)
            if spec.default is not None:
                params[name] = spec.default
            continue
        value = given[name]
        if spec.type == "array":
            _check_array(name, spec, value)
        else:
            _check_scalar(name, spec, value)
        params[name] = value
    if rules:
        check_rules(model, params)
    return params


def check_rules(model: ModelSpec, params: dict[str, Any], given: set[str] | None = None) -> None:
    """Cross-field rules; with ``given``, only rules whose conditions the caller set explicitly."""
    for rule in model.rules:
        if given is not None and not set(rule.when) <= given:
            continue
        if all(str(params.get(field)) in values for field, values in rule.when.items()):
            for field, forbidden in rule.forbid.items():
                value = params.get(field)
                if value is not None and str(value) in forbidden:
                    condition = " and ".join(f"{k} is {params.get(k)}" for k in rule.when)
                    message = rule.description or f"{field} {value} is not allowed when {condition}"
                    raise ValidationError(message, param=field)
