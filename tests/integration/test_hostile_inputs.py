"""Inputs a probe once answered with 500: each class now gets a 4xx in the usual envelope."""

from __future__ import annotations

import base64
import uuid

import httpx
import pytest

from tests.conftest import Gateway
from tests.integration.test_errors import assert_error, client

T2I = "/api/v1/gpt_image/text_to_image"


def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.fixture(scope="module")
def user(gateway: Gateway) -> httpx.Client:
    return client(gateway)


@pytest.fixture(scope="module")
def admin(gateway: Gateway) -> httpx.Client:
    return client(gateway, gateway.admin().headers["authorization"].removeprefix("Bearer "))


@pytest.mark.parametrize(
    "query",
    [
        "expires=1&sig=%C3%A9",  # non-ASCII signature: no key needed to reach it
        "expires=%C3%A9&sig=x",
        "expires=" + "9" * 5000 + "&sig=x",
    ],
)
def test_malformed_signed_link_parameters(gateway: Gateway, query: str) -> None:
    anonymous = client(gateway, authed=False)
    response = anonymous.get("/files/a/b.png?" + query)
    assert response.status_code in (400, 404), response.text
    assert_error(response, response.status_code, "validation" if response.status_code == 400 else "not_found")


@pytest.mark.parametrize("key", ["..%2F..", "%2Fetc%2Fpasswd", "a%00b.png", "a" * 5000, "x/" * 400 + "y"])
def test_storage_keys_storage_refuses_are_not_found(gateway: Gateway, key: str) -> None:
    anonymous = client(gateway, authed=False)
    response = anonymous.get(f"/files/{key}", params={"expires": 4_000_000_000, "sig": "x"})
    assert_error(response, 404, "not_found")


@pytest.mark.parametrize(
    "after",
    [
        "%C3%A9",
        "not base64!",
        _cursor("[1, 2]"),
        _cursor("{}"),
        _cursor('["x"]'),
        _cursor('["yesterday", "0f6c"]'),
        _cursor('["2026-01-01T00:00:00", "0f6c"]'),  # naive: no UTC offset
        _cursor('["0001-01-01T00:00:00+05:00", "0f6c"]'),  # before the supported range
        _cursor('["2026-01-01T00:00:00+00:00", ["nested"]]'),
        _cursor("[" * 5000),
        "A" * 10_000,
    ],
)
def test_cursors_that_decode_to_odd_values(user: httpx.Client, after: str) -> None:
    response = user.get("/api/v1/tasks", params={"after": after})
    assert_error(response, 400, "validation", param="after")


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ({"from": "0001-01-01"}, "from"),
        ({"to": "0001-01-01"}, "to"),
        ({"from": "9999-12-31", "to": "9999-12-31"}, "to"),
        ({"to": "9999-12-31"}, "to"),
        ({"from": "2026-13-01"}, "from"),
        ({"from": "2" * 5000}, "from"),
    ],
)
def test_dates_outside_the_supported_range(user: httpx.Client, query: dict[str, str], param: str) -> None:
    assert_error(user.get("/api/v1/me/usage", params=query), 400, "validation", param=param)


def test_dates_at_the_edges_of_the_range_are_answered(user: httpx.Client) -> None:
    response = user.get("/api/v1/me/usage", params={"from": "2999-12-01", "to": "2999-12-31"})
    assert response.status_code == 200, response.text
    assert response.json()["data"] == []


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b'{"prompt": "x", "n": ' + b"1" * 5000 + b"}", "digits"),
        (b'{"prompt": "x", "n": NaN}', "NaN"),
        (b'{"prompt": "x", "n": Infinity}', "Infinity"),
        (b'{"prompt": "x", "n": -Infinity}', "Infinity"),
        (b'{"prompt": "x", "n": 1e999}', "out of range"),
        (b'{"prompt": "x", "n": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nests deeper"),
        (b'{"prompt": "x", "n": ' + b"[" * 40 + b"]" * 40 + b"}", "nests deeper"),
        (b'{"prompt": "\\ud800"}', "surrogate"),
    ],
)
@pytest.mark.parametrize("path", [T2I, "/v1/images/generations", "/api/v1/price_quotes"])
def test_json_bodies_past_the_parser_limits(user: httpx.Client, path: str, raw: bytes, says: str) -> None:
    response = user.post(path, content=raw, headers={"Content-Type": "application/json"})
    assert says in assert_error(response, 400, "validation")["message"]


def test_a_real_body_with_floats_and_unicode_still_parses(user: httpx.Client) -> None:
    body = {"service": "gpt_image", "action": "text_to_image", "model": "gpt-image-1.5", "x": 1.5}
    response = user.post("/api/v1/price_quotes", json={**body, "prompt": "une baleine bleue 🐋"})
    assert response.status_code != 500
    assert "JSON" not in response.json().get("error", {}).get("message", "")


@pytest.mark.parametrize(
    ("usd", "says"),
    [
        ("1e999999999", "at most"),
        ("-1e999999999", "at most"),
        ("1e-999999999", "6 decimals"),
        ("1000000000.000001", "at most"),
        (True, "dollar amount"),
        ({"usd": 5}, "dollar amount"),
        ("5" * 100, "dollar amount"),
    ],
)
def test_admin_amounts_out_of_range(admin: httpx.Client, gateway: Gateway, usd: object, says: str) -> None:
    account = admin.post("/admin/accounts", json={"name": f"amounts-{uuid.uuid4().hex[:8]}"}).json()["id"]
    response = admin.post(f"/admin/accounts/{account}/credits", json={"usd": usd})
    assert says in assert_error(response, 400, "validation", param="usd")["message"]
    assert admin.get(f"/admin/accounts/{account}/credits").json()["balance_micro"] == 0
