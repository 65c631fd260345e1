"""The OpenAPI document as the contract: what the gateway really answers, nothing else.

FastAPI documents a 422 with its own error shape on every route with parameters; the
gateway answers bad input with 400 and the one envelope (``api/errors.py``), declared on
the routes. This drops the 422s and the unused shapes, once, when the document is built.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

_FASTAPI_SHAPES = ("HTTPValidationError", "ValidationError")
_ENVELOPE = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}
_ANY_ROUTE = {
    "400": {"description": "A query, header or path parameter breaks the contract.", "content": _ENVELOPE},
    "404": {"description": "No such route.", "content": _ENVELOPE},
}


def build(app: FastAPI) -> dict[str, Any]:
    document = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
    for path in document.get("paths", {}).values():
        for operation in path.values():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            # Any route can meet a parameter it refuses or a path that matches nothing.
            for status in ("400", "404"):
                responses.setdefault(status, dict(_ANY_ROUTE[status]))
            for status, response in responses.items():
                if status[0] in "45":  # errors are the JSON envelope, whatever the route's own type
                    response["content"] = _ENVELOPE
    schemas = document.get("components", {}).get("schemas", {})
    for name in _FASTAPI_SHAPES:
        schemas.pop(name, None)
    return document


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
