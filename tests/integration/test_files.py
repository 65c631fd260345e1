"""Input uploads (POST /api/v1/files), signed download links, and source URLs that must not be fetched."""

from __future__ import annotations

import base64
import io
import uuid
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from PIL import Image

from tests.conftest import T2I_15, Gateway, ImageHost, png_bytes

EDIT_URL = "/api/v1/gpt_image/edit_image"


def edit_body(urls: list[str]) -> dict[str, Any]:
    return {**T2I_15, "prompt": "turn it into a watercolour", "source_image_urls": urls}


def jpeg_bytes(width: int = 40, height: int = 30) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, "JPEG")
    return buffer.getvalue()


def parse_time(value: str) -> datetime:
    assert value.endswith("Z"), value
    return datetime.fromisoformat(value)


def check_file(response: httpx.Response, data: bytes, mime: str) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["object"] == "file"
    assert body["size_bytes"] == len(data)
    assert body["mime_type"] == mime
    lifetime = parse_time(body["expires_at"]) - parse_time(body["created_at"])
    assert timedelta(minutes=59) <= lifetime <= timedelta(minutes=61)
    # the link needs no key and gives back the very same bytes
    download = httpx.get(body["url"], timeout=30, follow_redirects=True)
    assert download.status_code == 200, download.text
    assert download.content == data
    assert download.headers["content-type"].startswith(mime)
    return body


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def user(gateway: Gateway) -> httpx.Client:
    """One account for the module (making one per test is most of the cost of these tests)."""
    return gateway.user()


# ---------------------------------------------------------------- the three ways in


def test_multipart_upload_with_file_name(user: httpx.Client) -> None:
    data = png_bytes(24, 16, (10, 200, 10))
    response = user.post(
        "/api/v1/files",
        files={"file": ("original.png", data, "image/png")},
        data={"file_name": "holiday.png"},
    )
    body = check_file(response, data, "image/png")
    assert body["file_name"] == "holiday.png"


def test_multipart_upload_defaults_to_the_part_name(user: httpx.Client) -> None:
    data = jpeg_bytes()
    body = check_file(
        user.post("/api/v1/files", files={"file": ("snap.jpg", data, "image/jpeg")}), data, "image/jpeg"
    )
    assert body["file_name"] == "snap.jpg"


def test_multipart_type_comes_from_the_bytes_not_the_label(user: httpx.Client) -> None:
    data = jpeg_bytes()
    response = user.post("/api/v1/files", files={"file": ("photo.bin", data, "application/octet-stream")})
    check_file(response, data, "image/jpeg")
    # a label that names another image type is a mistake worth telling the client about
    lying = user.post("/api/v1/files", files={"file": ("lies.png", data, "image/png")})
    assert lying.status_code == 400, lying.text
    assert lying.json()["error"]["param"] == "file"


def test_json_plain_base64(user: httpx.Client) -> None:
    data = png_bytes(16, 16)
    response = user.post(
        "/api/v1/files", json={"source": {"type": "base64", "data": b64(data)}, "file_name": "a.png"}
    )
    body = check_file(response, data, "image/png")
    assert body["file_name"] == "a.png"


def test_json_base64_data_url(user: httpx.Client) -> None:
    data = png_bytes(16, 8)
    response = user.post(
        "/api/v1/files", json={"source": {"type": "base64", "data": f"data:image/png;base64,{b64(data)}"}}
    )
    check_file(response, data, "image/png")


def test_json_url_from_an_image_host(user: httpx.Client, image_host: ImageHost) -> None:
    data = png_bytes(20, 20, (250, 250, 0))
    url = image_host.serve(f"/{uuid.uuid4().hex}.png", data)
    check_file(user.post("/api/v1/files", json={"source": {"type": "url", "url": url}}), data, "image/png")


def test_json_url_that_redirects_to_a_private_address_is_refused(
    user: httpx.Client, image_host: ImageHost
) -> None:
    url = image_host.redirect(f"/{uuid.uuid4().hex}", "http://169.254.169.254/latest/meta-data")
    response = user.post("/api/v1/files", json={"source": {"type": "url", "url": url}})
    assert response.status_code == 400, response.text
    assert "private or reserved" in response.json()["error"]["message"]


def test_upload_link_works_as_a_source_image(gateway: Gateway, user: httpx.Client) -> None:
    data = png_bytes(32, 32, (0, 0, 255))
    upload = user.post("/api/v1/files", files={"file": ("src.png", data, "image/png")})
    assert upload.status_code == 200, upload.text
    created = user.post(EDIT_URL, json=edit_body([upload.json()["url"]]))
    assert created.status_code == 200, created.text
    task = gateway.wait(user, created.json()["id"])
    assert task["status"] == "completed", task
    image = httpx.get(task["images"][0]["url"], timeout=30, follow_redirects=True)
    assert Image.open(io.BytesIO(image.content)).size == (1024, 1024)
    # the upload is not consumed by the task: it stays downloadable for its hour
    assert httpx.get(upload.json()["url"], timeout=30, follow_redirects=True).content == data


def test_uploads_are_not_listed_as_tasks(gateway: Gateway) -> None:
    user = gateway.user()
    user.post("/api/v1/files", json={"source": {"type": "base64", "data": b64(png_bytes(8, 8))}})
    assert user.get("/api/v1/tasks").json()["data"] == []


def test_upload_needs_a_key(gateway: Gateway) -> None:
    response = gateway.client().post(
        "/api/v1/files", json={"source": {"type": "base64", "data": b64(png_bytes())}}
    )
    assert response.status_code == 401


# ---------------------------------------------------------------- signed links


@pytest.fixture
def uploaded(user: httpx.Client) -> tuple[str, bytes]:
    data = png_bytes(12, 12, (1, 2, 3))
    response = user.post("/api/v1/files", json={"source": {"type": "base64", "data": b64(data)}})
    assert response.status_code == 200, response.text
    return response.json()["url"], data


def replace_query(url: str, **values: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(values)
    return parts._replace(query="&".join(f"{k}={v}" for k, v in query.items())).geturl()


def flip(text: str) -> str:
    return ("B" if text[0] != "B" else "C") + text[1:]


def test_tampered_signature_is_not_found(uploaded: tuple[str, bytes]) -> None:
    url, _ = uploaded
    sig = parse_qs(urlsplit(url).query)["sig"][0]
    response = httpx.get(replace_query(url, sig=flip(sig)), timeout=30, follow_redirects=True)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    missing = httpx.get(url.split("&sig=")[0], timeout=30, follow_redirects=True)
    assert missing.status_code in (400, 404)
    assert missing.status_code != 200


def test_tampered_expiry_is_not_found(uploaded: tuple[str, bytes]) -> None:
    url, _ = uploaded
    expires = int(parse_qs(urlsplit(url).query)["expires"][0])
    response = httpx.get(replace_query(url, expires=str(expires + 86400)), timeout=30, follow_redirects=True)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_tampered_key_is_not_found(uploaded: tuple[str, bytes]) -> None:
    url, _ = uploaded
    parts = urlsplit(url)
    other = parts._replace(path=parts.path.replace("inputs/", "outputs/")).geturl()
    assert other != url
    assert httpx.get(other, timeout=30, follow_redirects=True).status_code == 404


def test_expired_but_signed_link_is_gone(gateway: Gateway, uploaded: tuple[str, bytes]) -> None:
    url, _ = uploaded
    key = urlsplit(url).path.removeprefix("/files/")
    signer = gateway.core.signer
    past = int(gateway.clock.timestamp()) - 60
    response = httpx.get(gateway.base_url + signer.path(key, past), timeout=30, follow_redirects=True)
    assert response.status_code == 410, response.text
    error = response.json()["error"]
    assert error["code"] == "expired"
    assert error["type"] == "invalid_request_error"
    # the same signer's link for the future still works: the test signer is the server's
    assert (
        httpx.get(
            gateway.base_url + signer.path(key, past + 7200), timeout=30, follow_redirects=True
        ).status_code
        == 200
    )


def test_expired_gateway_link_is_refused_as_a_source(gateway: Gateway, user: httpx.Client) -> None:
    upload = user.post("/api/v1/files", json={"source": {"type": "base64", "data": b64(png_bytes(8, 8))}})
    key = urlsplit(upload.json()["url"]).path.removeprefix("/files/")
    signer = gateway.core.signer
    stale = gateway.base_url + signer.path(key, int(gateway.clock.timestamp()) - 60)
    response = user.post(EDIT_URL, json=edit_body([stale]))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "source_image_urls[0]"


# ---------------------------------------------------------------- foreign source URLs that fail


@pytest.mark.parametrize(
    "target", ["http://10.0.0.1/x", "http://169.254.169.254/latest/meta-data", "http://[::1]/x"]
)
def test_redirect_to_a_private_address_fails_the_task(
    gateway: Gateway, user: httpx.Client, image_host: ImageHost, target: str
) -> None:
    start = image_host.redirect(f"/{uuid.uuid4().hex}", target)  # the first hop is on the allow-list
    created = user.post(EDIT_URL, json=edit_body([start]))
    assert created.status_code == 200, created.text
    task = gateway.wait(user, created.json()["id"])
    assert task["status"] == "failed"
    assert task["images"] == []
    assert "source_image_urls[0]" in task["error"]
    assert "private or reserved address" in task["error"]
    assert task["error_code"] == "validation"


def test_foreign_404_fails_the_task_naming_the_status(
    gateway: Gateway, user: httpx.Client, image_host: ImageHost
) -> None:
    missing = image_host.serve(f"/{uuid.uuid4().hex}.png", b"no such picture", "text/plain", status=404)
    created = user.post(EDIT_URL, json=edit_body([missing]))
    assert created.status_code == 200, created.text
    task = gateway.wait(user, created.json()["id"])
    assert task["status"] == "failed"
    assert "404" in task["error"]
    assert task["images"] == []


def test_foreign_url_serving_text_fails_the_task(
    gateway: Gateway, user: httpx.Client, image_host: ImageHost
) -> None:
    text = image_host.serve(f"/{uuid.uuid4().hex}.png", b"<html>not an image</html>", "text/html")
    task = gateway.wait(user, user.post(EDIT_URL, json=edit_body([text])).json()["id"])
    assert task["status"] == "failed"
    assert task["error_code"] == "unsupported_media_type"


def test_one_bad_source_among_good_ones_fails_the_task(
    gateway: Gateway, user: httpx.Client, image_host: ImageHost
) -> None:
    good = image_host.serve(f"/{uuid.uuid4().hex}.png", png_bytes(16, 16))
    bad = image_host.redirect(f"/{uuid.uuid4().hex}", "http://10.0.0.1/x")
    task = gateway.wait(user, user.post(EDIT_URL, json=edit_body([good, bad])).json()["id"])
    assert task["status"] == "failed"
    assert "source_image_urls[1]" in task["error"]
