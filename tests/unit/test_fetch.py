"""Fetching user-given URLs: private addresses refused before connecting, redirects, size and time caps."""

from __future__ import annotations

import time
import uuid

import pytest

from imagegate.errors import PayloadTooLargeError, ValidationError
from imagegate.storage.fetch import MAX_REDIRECTS, FetchError, FetchPolicy, fetch
from tests.conftest import ImageHost, png_bytes

CLOSED = FetchPolicy(allow_hosts=frozenset(), timeout_s=2, max_bytes=1024 * 1024)
LOOPBACK = FetchPolicy(allow_hosts=frozenset({"127.0.0.1"}), timeout_s=2, max_bytes=1024 * 1024)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://127.0.0.1:8080/image.png",
        "http://127.1.2.3/",
        "http://localhost/",
        "http://10.1.2.3/",
        "http://172.16.0.1/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:10.0.0.1]/",
        "http://[fe80::1]/",
        "http://[fd00::1]/",
        "http://100.64.0.1/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "https://user:pass@10.0.0.1/",
    ],
)
async def test_private_and_reserved_addresses_are_refused(url: str) -> None:
    started = time.monotonic()
    with pytest.raises(FetchError) as info:
        await fetch(url, CLOSED, param="source_image_urls[0]")
    # refused by the address check, not by a failed connection or the time limit
    assert "private or reserved address" in info.value.message
    assert info.value.param == "source_image_urls[0]"
    assert info.value.status_code == 400
    assert time.monotonic() - started < 1


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/a.png",
        "file:///etc/passwd",
        "gopher://127.0.0.1/",
        "http:///nohost",
        "example.com/a.png",
    ],
)
async def test_only_http_urls_are_fetched(url: str) -> None:
    with pytest.raises(FetchError) as info:
        await fetch(url, CLOSED, param="p")
    assert "only http(s)" in info.value.message


async def test_fetch_error_is_a_validation_error() -> None:
    with pytest.raises(ValidationError):
        await fetch("http://10.0.0.1/", CLOSED)


async def test_allow_list_lets_the_image_host_through(image_host: ImageHost) -> None:
    data = png_bytes(10, 10)
    url = image_host.serve(f"/{uuid.uuid4().hex}.png", data)
    body, content_type = await fetch(url, LOOPBACK)
    assert body == data
    assert content_type == "image/png"
    with pytest.raises(FetchError, match="private or reserved"):
        await fetch(url, CLOSED)  # the same URL without the allow-list


async def test_body_over_the_limit(image_host: ImageHost) -> None:
    url = image_host.serve(f"/{uuid.uuid4().hex}.bin", b"x" * 5000, "application/octet-stream")
    with pytest.raises(PayloadTooLargeError) as info:
        await fetch(
            url, FetchPolicy(allow_hosts=frozenset({"127.0.0.1"}), timeout_s=2, max_bytes=4999), param="p"
        )
    assert info.value.status_code == 413
    assert info.value.param == "p"
    body, _ = await fetch(url, FetchPolicy(allow_hosts=frozenset({"127.0.0.1"}), timeout_s=2, max_bytes=5000))
    assert len(body) == 5000


def redirect_chain(image_host: ImageHost, hops: int) -> tuple[str, bytes]:
    """A URL that redirects ``hops`` times (relative and absolute Locations) before the image."""
    data = png_bytes(6, 6)
    name = uuid.uuid4().hex
    target = image_host.serve(f"/{name}-final.png", data)
    for hop in range(hops, 0, -1):
        location = target if hop % 2 else target.removeprefix(image_host.base_url)
        target = image_host.redirect(f"/{name}-hop{hop}", location)
    return target, data


async def test_redirects_up_to_the_limit_are_followed(image_host: ImageHost) -> None:
    url, data = redirect_chain(image_host, MAX_REDIRECTS)
    assert MAX_REDIRECTS == 3
    body, _ = await fetch(url, LOOPBACK)
    assert body == data


async def test_too_many_redirects(image_host: ImageHost) -> None:
    url, _ = redirect_chain(image_host, MAX_REDIRECTS + 1)
    with pytest.raises(FetchError) as info:
        await fetch(url, LOOPBACK, param="p")
    assert "redirects" in info.value.message


async def test_redirect_loop_ends(image_host: ImageHost) -> None:
    name = uuid.uuid4().hex
    image_host.redirect(f"/{name}-a", f"/{name}-b")
    url = image_host.redirect(f"/{name}-b", f"/{name}-a")
    with pytest.raises(FetchError, match="redirects"):
        await fetch(url, LOOPBACK)


@pytest.mark.parametrize(
    "target",
    ["http://10.0.0.1/x", "http://169.254.169.254/latest/meta-data", "http://[::1]/", "ftp://example.com/"],
)
async def test_each_redirect_hop_is_checked(image_host: ImageHost, target: str) -> None:
    url = image_host.redirect(f"/{uuid.uuid4().hex}", target)
    with pytest.raises(FetchError) as info:
        await fetch(url, LOOPBACK, param="p")
    assert "private or reserved" in info.value.message or "only http(s)" in info.value.message


async def test_non_200_answer_names_the_status(image_host: ImageHost) -> None:
    url = image_host.serve(f"/{uuid.uuid4().hex}", b"gone", "text/plain", status=404)
    with pytest.raises(FetchError) as info:
        await fetch(url, LOOPBACK, param="p")
    assert "404" in info.value.message


async def test_slow_host_hits_the_time_limit(image_host: ImageHost) -> None:
    url = image_host.serve(f"/slow-{uuid.uuid4().hex}.png", png_bytes(4, 4))  # the handler sleeps 3 s
    started = time.monotonic()
    with pytest.raises(FetchError) as info:
        await fetch(
            url, FetchPolicy(allow_hosts=frozenset({"127.0.0.1"}), timeout_s=1, max_bytes=1024), param="p"
        )
    elapsed = time.monotonic() - started
    assert "longer than 1 s" in info.value.message
    assert 0.9 <= elapsed < 2.5


async def test_connection_refused_is_a_clean_error() -> None:
    # a loopback port nothing listens on (allow-listed, so the connection is actually tried)
    with pytest.raises(FetchError) as info:
        await fetch("http://127.0.0.1:1/", LOOPBACK, param="p")
    assert "fetch failed" in info.value.message
