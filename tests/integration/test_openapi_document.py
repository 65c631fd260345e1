"""/openapi.json tells the truth: bodies, every error status with the envelope, content types."""

from __future__ import annotations

from typing import Any

import pytest

from imagegate.api.models import ErrorEnvelope
from tests.conftest import Gateway

pytestmark = pytest.mark.one_profile("the document is built from the routes alone, no engine is read")

JSON_BODIES = [
    ("post", "/api/v1/{service_slug}/text_to_image"),
    ("post", "/api/v1/{service_slug}/edit_image"),
    ("post", "/v1/images/generations"),
    ("post", "/api/v1/price_quotes"),
    ("post", "/api/v1/files"),
    ("post", "/admin/accounts"),
    ("post", "/admin/accounts/{account}/credits"),
    ("put", "/admin/accounts/{account}/tier"),
]


@pytest.fixture(scope="module")
def document(gateway: Gateway) -> dict[str, Any]:
    response = gateway.client().get("/openapi.json")
    assert response.status_code == 200
    return dict(response.json())


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, p, op) for p, ops in document["paths"].items() for m, op in ops.items()]


@pytest.mark.parametrize(("method", "path"), JSON_BODIES)
def test_json_bodies_are_declared(document: dict[str, Any], method: str, path: str) -> None:
    body = document["paths"][path][method]["requestBody"]
    assert "application/json" in body["content"]
    assert body["content"]["application/json"]["schema"]["type"] == "object"


def test_uploads_declare_multipart(document: dict[str, Any]) -> None:
    for path in ("/v1/images/edits", "/api/v1/files"):
        schema = document["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
        assert any(p.get("format") == "binary" for p in schema["properties"].values())


def test_errors_are_the_envelope_and_never_fastapis_422(document: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert document["components"]["schemas"]["ErrorEnvelope"]["required"] == ["error"]
    for method, path, operation in _operations(document):
        assert "422" not in operation["responses"], (method, path)
        for status, response in operation["responses"].items():
            if status[0] in "45":
                assert response["content"] == {
                    "application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}
                }, (method, path, status)


def test_every_status_the_task_routes_answer_is_declared(document: dict[str, Any]) -> None:
    create = document["paths"]["/api/v1/{service_slug}/text_to_image"]["post"]["responses"]
    assert {"200", "400", "401", "402", "404", "409", "410", "413", "415", "429"} <= set(create)
    assert create["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TaskCreated"
    }
    read = document["paths"]["/api/v1/tasks/{task_id}"]["get"]["responses"]
    assert read["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/TaskView"}


def test_markdown_pages_are_text_markdown(document: dict[str, Any], gateway: Gateway) -> None:
    for path in ("/models.md", "/models/{slug}.md", "/models/{slug}/{variant}.md"):
        assert set(document["paths"][path]["get"]["responses"]["200"]["content"]) == {"text/markdown"}
    served = gateway.client().get("/models.md")
    assert served.headers["content-type"] == "text/markdown; charset=utf-8"


def test_the_envelope_model_matches_what_errors_look_like(gateway: Gateway) -> None:
    response = gateway.client().get("/api/v1/me")
    assert response.status_code == 401
    ErrorEnvelope.model_validate(response.json())
