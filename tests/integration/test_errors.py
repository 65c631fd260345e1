"""Every error code over HTTP: status, the one envelope, and never a 500."""

from __future__ import annotations

import base64
import io
import os
import struct
import uuid
import zlib
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.conftest import ADMIN_TOKEN, T2I_15, Gateway, png_bytes

T2I_15_URL = "/api/v1/gpt_image/text_to_image"
EDIT_15_URL = "/api/v1/gpt_image/edit_image"
T2I_2_URL = "/api/v1/gpt_image_2/text_to_image"
EDIT_15 = {**T2I_15, "prompt": "make it pop"}


def _never_500(response: httpx.Response) -> None:
    assert response.status_code < 500, f"{response.request.method} {response.request.url} -> 500"


def client(gateway: Gateway, key: str | None = None, *, authed: bool = True) -> httpx.Client:
    """A client whose every response is checked for a 5xx."""
    if authed and key is None:
        key = gateway.new_account()[1]
    return gateway.client(key, event_hooks={"response": [_never_500]})


@pytest.fixture(scope="module")
def user(gateway: Gateway) -> httpx.Client:
    """One account for the whole module: none of these requests may create anything."""
    return client(gateway)


def task_ids(user: httpx.Client) -> list[str]:
    return [t["id"] for t in user.get("/api/v1/tasks", params={"limit": 100}).json()["data"]]


def assert_error(
    response: httpx.Response, status: int, code: str, *, param: Any = ..., type_: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert {"message", "code", "type", "param"} <= set(error), error
    assert isinstance(error["message"], str) and error["message"]
    assert error["code"] == code
    assert error["type"] == (type_ or "invalid_request_error")
    if param is not ...:
        assert error["param"] == param, error
    assert response.headers.get("X-Request-Id")
    return dict(error)


def random_png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)).save(
        buffer, "PNG", compress_level=0
    )
    return buffer.getvalue()


def bomb_png(width: int = 50_000, height: int = 50_000) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (CRC fixed up, so it parses)."""
    data = bytearray(png_bytes(1, 1))
    # signature (8) + IHDR length (4) + "IHDR" (4) -> width, height start at 16
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    ihdr = bytes(data[12:29])  # type + 13 bytes of data
    data[29:33] = struct.pack(">I", zlib.crc32(ihdr) & 0xFFFFFFFF)
    return bytes(data)


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


# ---------------------------------------------------------------- 401


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer ig_" + "x" * 43},
        {"Authorization": "Bearer not-even-a-key"},
        {"X-API-Key": "ig_" + "y" * 43},
    ],
    ids=["no-header", "basic-scheme", "empty-bearer", "unknown-key", "not-a-key", "unknown-x-api-key"],
)
def test_authentication_errors(gateway: Gateway, headers: dict[str, str]) -> None:
    anonymous = client(gateway, authed=False)
    for response in (
        anonymous.get("/api/v1/me", headers=headers),
        anonymous.post(T2I_15_URL, json=T2I_15, headers=headers),
        anonymous.get(f"/api/v1/tasks/{uuid.uuid4()}", headers=headers),
    ):
        assert_error(response, 401, "authentication", type_="authentication_error")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_revoked_key_is_refused(gateway: Gateway) -> None:
    _, key = gateway.new_account()
    user = client(gateway, key)
    assert user.get("/api/v1/me").status_code == 200
    prefix = user.get("/api/v1/me").json()["api_key"]["prefix"]
    revoked = client(gateway, ADMIN_TOKEN).post(f"/admin/keys/{prefix}/revoke")
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"]
    for response in (user.get("/api/v1/me"), user.post(T2I_15_URL, json=T2I_15)):
        assert_error(response, 401, "authentication", type_="authentication_error")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


# ---------------------------------------------------------------- 400: the body itself


@pytest.mark.parametrize(
    "content",
    [b'{"model": "gpt-image-1.5", "prompt": ', b"[1, 2, 3]", b"", b'"a string"', b"\xff\xfe{}"],
    ids=["malformed-json", "json-array", "empty-body", "json-string", "not-utf8"],
)
def test_body_that_is_not_a_json_object(user: httpx.Client, content: bytes) -> None:
    response = user.post(T2I_15_URL, content=content, headers={"Content-Type": "application/json"})
    assert_error(response, 400, "validation")


# ---------------------------------------------------------------- 400: the contract


@pytest.mark.parametrize(
    ("url", "body", "param", "message_has"),
    [
        (T2I_15_URL, {k: v for k, v in T2I_15.items() if k != "prompt"}, "prompt", "prompt is required"),
        (T2I_15_URL, {**T2I_15, "prompt": ""}, "prompt", "prompt"),
        (T2I_15_URL, {**T2I_15, "prompt": None}, "prompt", "prompt is required"),
        (T2I_15_URL, {**T2I_15, "prompt": "x" * 32001}, "prompt", "32000"),
        (T2I_15_URL, {**T2I_15, "aspect_ratio": "4:3"}, "aspect_ratio", "1:1, 2:3, 3:2"),
        (T2I_15_URL, {**T2I_15, "quality": 5}, "quality", "quality"),
        (T2I_15_URL, {**T2I_15, "quality": True}, "quality", "quality"),
        (T2I_15_URL, {**T2I_15, "prompt": ["a", "b"]}, "prompt", "prompt"),
        (T2I_15_URL, {**T2I_15, "n_images": 2}, "n_images", "n_images"),
        (T2I_15_URL, {**T2I_15, "model": "gpt-image-2"}, "model", "gpt-image-1.5"),
        (T2I_15_URL, {**T2I_15, "model": "dall-e-3"}, "model", "gpt-image-1.5"),
        (T2I_15_URL, {k: v for k, v in T2I_15.items() if k != "model"}, "model", "model"),
        (T2I_2_URL, {"model": "gpt-image-1.5", "prompt": "p"}, "model", "gpt-image-2"),
        (
            T2I_2_URL,
            {"model": "gpt-image-2", "prompt": "p", "aspect_ratio": "1:1", "output_resolution": "4k"},
            "output_resolution",
            "4k",
        ),
        (
            T2I_2_URL,
            {"model": "gpt-image-2", "prompt": "p", "output_resolution": "2k"},
            "output_resolution",
            "2k",
        ),
        (
            T2I_2_URL,
            {"model": "gpt-image-2", "prompt": "p", "aspect_ratio": "auto", "output_resolution": "4k"},
            "output_resolution",
            "4k",
        ),
        (T2I_2_URL, {"model": "gpt-image-2", "prompt": "p", "aspect_ratio": "7:5"}, "aspect_ratio", "21:9"),
        (EDIT_15_URL, EDIT_15, "source_image_urls", "source_image_urls is required"),
        (EDIT_15_URL, {**EDIT_15, "source_image_urls": []}, "source_image_urls", "source_image_urls"),
        (
            EDIT_15_URL,
            {**EDIT_15, "source_image_urls": [f"https://example.com/{i}.png" for i in range(17)]},
            "source_image_urls",
            "16",
        ),
        (
            EDIT_15_URL,
            {**EDIT_15, "source_image_urls": ["ftp://example.com/a.png"]},
            "source_image_urls",
            "source_image_urls[0]",
        ),
        (
            EDIT_15_URL,
            {**EDIT_15, "source_image_urls": ["https://example.com/a.png", "/relative/b.png"]},
            "source_image_urls",
            "source_image_urls[1]",
        ),
        (
            EDIT_15_URL,
            {**EDIT_15, "source_image_urls": "https://example.com/a.png"},
            "source_image_urls",
            None,
        ),
        (T2I_15_URL, {**T2I_15, "callback_url": "not a url"}, "callback_url", "callback_url"),
        (T2I_15_URL, {**T2I_15, "callback_url": "ftp://example.com/hook"}, "callback_url", "callback_url"),
    ],
    ids=[
        "missing-prompt",
        "empty-prompt",
        "null-prompt",
        "prompt-too-long",
        "bad-aspect-ratio",
        "quality-int",
        "quality-bool",
        "prompt-list",
        "unknown-field",
        "other-services-model",
        "unknown-model",
        "missing-model",
        "gpt-image-1.5-on-gpt_image_2",
        "rule-1x1-4k",
        "rule-auto-2k-default-aspect",
        "rule-auto-4k",
        "bad-aspect-gpt-image-2",
        "edit-without-sources",
        "edit-empty-sources",
        "edit-17-sources",
        "edit-ftp-source",
        "edit-relative-source",
        "edit-sources-not-array",
        "callback-not-url",
        "callback-ftp",
    ],
)
def test_contract_violations(
    user: httpx.Client, url: str, body: dict[str, Any], param: str, message_has: str | None
) -> None:
    before = task_ids(user)
    response = user.post(url, json=body)
    error = assert_error(response, 400, "validation", param=param)
    if message_has is not None:
        assert message_has in error["message"], error["message"]
    assert task_ids(user) == before  # nothing was created


def test_bad_enum_message_lists_allowed_values(user: httpx.Client) -> None:
    error = assert_error(
        user.post(T2I_15_URL, json={**T2I_15, "aspect_ratio": "16:9"}),
        400,
        "validation",
        param="aspect_ratio",
    )
    assert error["message"] == "aspect_ratio must be one of: 1:1, 2:3, 3:2"


def test_unknown_model_message_lists_allowed_models(user: httpx.Client) -> None:
    response = user.post("/api/v1/gpt_image_2_5/text_to_image", json={"model": "gpt-image-2", "prompt": "p"})
    error = assert_error(response, 400, "validation", param="model")
    assert "gpt-image-2.5-flare" in error["message"]
    assert "gpt-image-2.5-sunburst" in error["message"]


def test_prompt_of_exactly_32000_chars_is_accepted(gateway: Gateway) -> None:
    response = client(gateway).post(T2I_15_URL, json={**T2I_15, "prompt": "x" * 32000})
    assert response.status_code == 200, response.text


def test_unknown_list_status_and_bad_cursor(user: httpx.Client) -> None:
    assert_error(user.get("/api/v1/tasks", params={"status": "finished"}), 400, "validation", param="status")
    assert_error(user.get("/api/v1/tasks", params={"limit": 0}), 400, "validation", param="limit")
    assert_error(user.get("/api/v1/tasks", params={"limit": 101}), 400, "validation", param="limit")
    assert_error(user.get("/api/v1/tasks", params={"limit": "many"}), 400, "validation", param="limit")
    assert_error(user.get("/api/v1/tasks", params={"after": "garbage!"}), 400, "validation", param="after")


# ---------------------------------------------------------------- 404 and 405


def test_unknown_service(user: httpx.Client) -> None:
    response = user.post("/api/v1/nope/text_to_image", json=T2I_15)
    error = assert_error(response, 404, "not_found")
    assert "nope" in error["message"]


@pytest.mark.parametrize(
    "path",
    ["/nope", "/api/v2/tasks", "/api/v1/gpt_image/text_to_image/x/y", "/api/v1/gpt_image/paint_image"],
)
def test_unknown_route(user: httpx.Client, path: str) -> None:
    assert_error(user.get(path), 404, "not_found")


def test_unknown_action_is_not_found(user: httpx.Client) -> None:
    assert_error(user.post("/api/v1/gpt_image/paint_image", json=T2I_15), 404, "not_found")


@pytest.mark.parametrize(
    "task_id", ["not-a-uuid", "12345", "../../etc/passwd", "8FEEBF2A-FBFD-4A6D-A08E-BB708D1CA5EC"]
)
def test_malformed_task_id(user: httpx.Client, task_id: str) -> None:
    assert_error(user.get(f"/api/v1/tasks/{task_id}"), 404, "not_found")
    assert_error(user.post(f"/api/v1/tasks/{task_id}/cancel"), 404, "not_found")


def test_unknown_task_id(user: httpx.Client) -> None:
    task_id = str(uuid.uuid4())
    for response in (
        user.get(f"/api/v1/tasks/{task_id}"),
        user.get(f"/api/v1/gpt_image/{task_id}"),
        user.get(f"/api/v1/gpt_image/text_to_image/{task_id}"),
        user.post(f"/api/v1/tasks/{task_id}/cancel"),
    ):
        assert_error(response, 404, "not_found")


def test_wrong_method(user: httpx.Client) -> None:
    task_id = str(uuid.uuid4())
    for response in (
        user.delete(f"/api/v1/tasks/{task_id}"),
        user.put(T2I_15_URL, json=T2I_15),
    ):
        assert response.status_code == 405, response.text
        error = response.json()["error"]
        assert {"message", "code", "type", "param"} <= set(error)
        assert "method" in error["message"].lower()


def test_wrong_method_names_the_allowed_methods(user: httpx.Client) -> None:
    # RFC 9110 15.5.6: a 405 response MUST carry an Allow header.
    response = user.delete(f"/api/v1/tasks/{uuid.uuid4()}")
    assert response.status_code == 405
    assert "GET" in response.headers.get("Allow", "")


# ---------------------------------------------------------------- 413


def test_data_url_over_the_upload_limit(user: httpx.Client, gateway: Gateway) -> None:
    big = random_png(1024, 800)  # ~2.4 MiB of incompressible pixels
    assert len(big) > gateway.settings.max_upload_bytes
    before = task_ids(user)
    response = user.post(EDIT_15_URL, json={**EDIT_15, "source_image_urls": [data_url(big)]})
    assert_error(response, 413, "payload_too_large", param="source_image_urls[0]")
    assert task_ids(user) == before


def test_multipart_upload_over_the_limit(user: httpx.Client, gateway: Gateway) -> None:
    big = random_png(1024, 800)
    assert len(big) > gateway.settings.max_upload_bytes
    response = user.post("/api/v1/files", files={"file": ("big.png", big, "image/png")})
    assert_error(response, 413, "payload_too_large")


def test_json_body_far_over_the_limit(user: httpx.Client) -> None:
    huge = "A" * (6 * 1024 * 1024)
    response = user.post(
        EDIT_15_URL, json={**EDIT_15, "source_image_urls": [f"data:image/png;base64,{huge}"]}
    )
    assert_error(response, 413, "payload_too_large")


@pytest.mark.parametrize("size", [(50_000, 50_000), (10_000, 10_000)], ids=["2.5G-pixels", "100M-pixels"])
def test_decompression_bomb_is_413(user: httpx.Client, size: tuple[int, int]) -> None:
    bomb = bomb_png(*size)
    assert len(bomb) < 200
    assert struct.unpack(">II", bomb[16:24]) == size
    before = task_ids(user)
    edit = user.post(EDIT_15_URL, json={**EDIT_15, "source_image_urls": [data_url(bomb)]})
    assert_error(edit, 413, "payload_too_large", param="source_image_urls[0]")
    upload = user.post("/api/v1/files", files={"file": ("bomb.png", bomb, "image/png")})
    assert_error(upload, 413, "payload_too_large")
    as_json = user.post(
        "/api/v1/files", json={"source": {"type": "base64", "data": base64.b64encode(bomb).decode()}}
    )
    assert_error(as_json, 413, "payload_too_large")
    assert task_ids(user) == before


# ---------------------------------------------------------------- 415


def test_text_uploaded_as_an_image(user: httpx.Client) -> None:
    response = user.post("/api/v1/files", files={"file": ("notes.png", b"just some text\n", "image/png")})
    assert_error(response, 415, "unsupported_media_type")


def test_svg_and_bmp_are_not_accepted(user: httpx.Client) -> None:
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'
    assert_error(
        user.post("/api/v1/files", files={"file": ("a.svg", svg, "image/svg+xml")}),
        415,
        "unsupported_media_type",
    )
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buffer, "BMP")
    assert_error(
        user.post("/api/v1/files", files={"file": ("a.bmp", buffer.getvalue(), "image/bmp")}),
        415,
        "unsupported_media_type",
    )


def test_data_url_of_non_image_bytes(user: httpx.Client) -> None:
    text = data_url(b"%PDF-1.4 definitely not a picture", "image/png")
    before = task_ids(user)
    response = user.post(EDIT_15_URL, json={**EDIT_15, "source_image_urls": [text]})
    assert_error(response, 415, "unsupported_media_type", param="source_image_urls[0]")
    assert task_ids(user) == before


def test_data_url_that_is_not_base64(user: httpx.Client) -> None:
    for bad in ("data:image/png;base64,@@@not base64@@@", "data:image/png,rawbytes"):
        response = user.post(EDIT_15_URL, json={**EDIT_15, "source_image_urls": [bad]})
        assert_error(response, 400, "validation", param="source_image_urls[0]")


def test_multipart_body_to_a_json_route(user: httpx.Client) -> None:
    response = user.post(T2I_15_URL, data={"model": "gpt-image-1.5", "prompt": "p"}, files={"x": ("a", b"b")})
    assert_error(response, 415, "unsupported_media_type")


# ---------------------------------------------------------------- /api/v1/files bodies


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"source": "https://example.com/a.png"},
        {"source": {"type": "ftp", "url": "ftp://x"}},
        {"source": {"type": "url"}},
        {"source": {"type": "base64"}},
        {"source": {"type": "base64", "data": "***"}},
    ],
    ids=["no-source", "source-string", "bad-type", "url-missing", "data-missing", "data-not-base64"],
)
def test_files_json_validation(user: httpx.Client, body: dict[str, Any]) -> None:
    response = user.post("/api/v1/files", json=body)
    error = assert_error(response, 400, "validation")
    assert error["param"] and error["param"].startswith("source")


def test_files_multipart_without_file_field(user: httpx.Client) -> None:
    response = user.post("/api/v1/files", files={"image": ("a.png", png_bytes(4, 4), "image/png")})
    assert_error(response, 400, "validation", param="file")
