"""Load the catalog (built-in data file plus an operator's override file) and look things up."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

from imagegate.catalog.schema import ActionName, Line, ModelSpec, TokenPrices, Variant
from imagegate.errors import NotFoundError, ValidationError

# Keys a model inherits from the model named by its `like`.
_INHERITED = ("fields", "rules", "pricing", "render", "openai_quality", "openai", "token_prices")


class CatalogError(ValueError):
    """The catalog data (built-in or an operator's file) is inconsistent."""


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class Catalog:
    def __init__(self, lines: dict[str, Line], models: dict[str, ModelSpec]) -> None:
        self.lines = lines
        self.models = models
        self._by_service = {line.service: line for line in lines.values()}
        self._names: dict[str, ModelSpec] = {}
        for model in models.values():
            for name in (model.id, *model.aliases):
                if name in self._names:
                    raise CatalogError(f"model name {name!r} is used twice")
                self._names[name] = model
        self._check()

    def _check(self) -> None:
        for model in self.models.values():
            if model.line not in self.lines:
                raise CatalogError(f"model {model.id} names unknown line {model.line!r}")
            successor = model.lifecycle.successor
            if successor is not None and successor not in self.models:
                raise CatalogError(f"model {model.id} names unknown successor {successor!r}")
            if not model.pricing.matrix and model.pricing.base_micro is None:
                raise CatalogError(
                    f"model {model.id} has no price: give pricing.matrix or pricing.base_micro"
                )
            chain, current = [model.id], model
            while current.lifecycle.successor is not None:
                current = self.models[current.lifecycle.successor]
                if current.id in chain:
                    raise CatalogError(f"successor loop: {' -> '.join([*chain, current.id])}")
                chain.append(current.id)

    # -- lookups ---------------------------------------------------------------------------------
    def line_for_service(self, service: str) -> Line:
        try:
            return self._by_service[service]
        except KeyError:
            raise NotFoundError(f"Unknown service {service!r}.", param="service") from None

    def models_of_line(self, line: Line) -> list[ModelSpec]:
        return [m for m in self.models.values() if m.line == line.slug]

    def line_of(self, model: ModelSpec) -> Line:
        return self.lines[model.line]

    def find(self, name: str) -> ModelSpec | None:
        return self._names.get(name)

    def model(self, name: str) -> ModelSpec:
        model = self.find(name)
        if model is None:
            raise NotFoundError(f"The model {name!r} does not exist.", param="model")
        return model

    def model_for_service(self, service: str, name: object) -> ModelSpec:
        """The model a RunAPI-face request names, checked against the route's service."""
        line = self.line_for_service(service)
        allowed = self.models_of_line(line)
        if name is None or name == "":
            raise ValidationError("model is required", param="model")
        model = self.find(name) if isinstance(name, str) else None
        if model is None or model.line != line.slug:
            choices = ", ".join(m.id for m in allowed)
            raise ValidationError(f"model must be one of: {choices}", param="model")
        return model

    def variants(self) -> Iterator[Variant]:
        for model in self.models.values():
            for action in model.actions:
                yield Variant(model=model, action=action)

    def variant(self, model: ModelSpec, action: ActionName) -> Variant:
        if action not in model.actions:
            raise NotFoundError(f"{model.id} has no {action} action.", param="action")
        return Variant(model=model, action=action)

    def variant_by_slug(self, line_slug: str, slug: str) -> Variant:
        for variant in self.variants():
            if variant.model.line == line_slug and variant.slug == slug:
                return variant
        raise NotFoundError(f"No variant {slug!r} of {line_slug!r}.")

    def page_line(self, slug: str) -> Line:
        """A page slug: a line slug, or any model name (which shows its line's page)."""
        if slug in self.lines:
            return self.lines[slug]
        model = self.find(slug)
        if model is not None:
            return self.lines[model.line]
        raise NotFoundError(f"No model page {slug!r}.")

    def is_retired(self, model: ModelSpec, today: date) -> bool:
        return model.lifecycle.retired_on(today)

    def token_prices(self, name: str) -> TokenPrices | None:
        """The upstream token prices of a model (any of its names), None when the catalog has none."""
        return self.model(name).token_prices


def _builtin_data() -> dict[str, Any]:
    data: dict[str, Any] = {}
    for entry in sorted(resources.files("imagegate.catalog").joinpath("data").iterdir(), key=str):
        if entry.name.endswith(".toml"):
            data = _deep_merge(data, tomllib.loads(entry.read_text(encoding="utf-8")))
    return data


def _inherit(raw_models: dict[str, dict[str, Any]], model_id: str) -> dict[str, Any]:
    """A model's raw entry with what it takes from its ``like`` chain (2.6 is like 2.5 is like 2)."""
    resolved = dict(raw_models[model_id])
    seen = {model_id}
    like = resolved.pop("like", None)
    while like is not None:
        if like not in raw_models:
            raise CatalogError(f"model {model_id} is like unknown model {like!r}")
        if like in seen:
            raise CatalogError(f"model {model_id}: `like` loops through {like!r}")
        seen.add(like)
        for key in _INHERITED:
            if key in raw_models[like] and key not in resolved:
                resolved[key] = raw_models[like][key]
        like = raw_models[like].get("like")
    return resolved


def build(data: dict[str, Any]) -> Catalog:
    lines = {slug: Line(slug=slug, **raw) for slug, raw in data.get("lines", {}).items()}
    raw_models: dict[str, dict[str, Any]] = data.get("models", {})
    models: dict[str, ModelSpec] = {}
    for model_id in raw_models:
        resolved = _inherit(raw_models, model_id)
        try:
            models[model_id] = ModelSpec(id=model_id, **resolved)
        except ValueError as exc:
            raise CatalogError(f"model {model_id}: {exc}") from exc
    return Catalog(lines, models)


def load_catalog(override_file: Path | None = None) -> Catalog:
    data = _builtin_data()
    if override_file is not None:
        with override_file.open("rb") as handle:
            data = _deep_merge(data, tomllib.load(handle))
    return build(data)
