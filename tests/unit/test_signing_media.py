"""Signed download links and the checks on image bytes users send (type, size, decompression bombs)."""

from __future__ import annotations

import io
import struct
import threading
import zlib
from pathlib import Path

import pytest
from PIL import Image

from imagegate.errors import PayloadTooLargeError, UnsupportedMediaTypeError, ValidationError
from imagegate.storage.media import inspect_image
from imagegate.storage.signing import FILES_PREFIX, UrlSigner, load_or_create_secret
from tests.conftest import png_bytes

SECRET = b"s" * 32
KEY = "outputs/3f1e9a6c-0000-4000-8000-000000000000/0.png"
EXPIRES = 1_900_000_000
LIMITS = {"max_bytes": 1024 * 1024, "max_pixels": 4_000_000}


def encoded(fmt: str, size: tuple[int, int] = (20, 10), mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, (10, 20, 30)).save(buffer, fmt)
    return buffer.getvalue()


def bomb_png(width: int, height: int) -> bytes:
    """A 1x1 PNG with its IHDR patched to claim width x height (and a matching CRC)."""
    data = bytearray(png_bytes(1, 1))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)


# ---------------------------------------------------------------- signing


def test_round_trip() -> None:
    signer = UrlSigner(SECRET)
    path = signer.path(KEY, EXPIRES)
    assert path.startswith(FILES_PREFIX + KEY + "?")
    assert signer.parse("https://gw.example" + path) == (KEY, EXPIRES)
    assert signer.parse("http://127.0.0.1:9999" + path) == (KEY, EXPIRES)  # whatever host it names
    sig = signer.signature(KEY, EXPIRES)
    assert signer.verify(KEY, EXPIRES, sig)
    assert not signer.verify(KEY, EXPIRES + 1, sig)
    assert not signer.verify(KEY.replace("0.png", "1.png"), EXPIRES, sig)
    assert "=" not in sig and "+" not in sig and "/" not in sig  # safe in a query string


def test_another_secret_does_not_verify() -> None:
    path = UrlSigner(SECRET).path(KEY, EXPIRES)
    assert UrlSigner(b"t" * 32).parse("https://gw.example" + path) is None


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/images/cat.png",
        "https://example.com/files/",
        f"https://example.com/files/{KEY}",
        f"https://example.com/files/{KEY}?expires={EXPIRES}",
        f"https://example.com/files/{KEY}?sig=abc",
        f"https://example.com/files/{KEY}?expires=soon&sig=abc",
        f"https://example.com/other/files/{KEY}?expires={EXPIRES}&sig=abc",
        "data:image/png;base64,AAAA",
        "",
    ],
)
def test_parse_of_foreign_urls(url: str) -> None:
    assert UrlSigner(SECRET).parse(url) is None


def test_parse_of_tampered_links() -> None:
    signer = UrlSigner(SECRET)
    base = "https://gw.example"
    good = base + signer.path(KEY, EXPIRES)
    sig = signer.signature(KEY, EXPIRES)
    assert signer.parse(good) is not None
    flipped = ("A" if sig[0] != "A" else "B") + sig[1:]
    assert signer.parse(good.replace(sig, flipped)) is None
    assert signer.parse(good.replace(f"expires={EXPIRES}", f"expires={EXPIRES + 3600}")) is None
    assert signer.parse(good.replace("0.png", "1.png")) is None
    assert signer.parse(good.replace("/outputs/", "/inputs/")) is None
    assert signer.parse(good.replace(sig, sig[:-1])) is None


def test_secret_is_created_once_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "signing.key"
    first = load_or_create_secret(path)
    assert len(first) >= 32
    assert path.exists()
    assert load_or_create_secret(path) == first
    assert load_or_create_secret(path) == first
    assert path.stat().st_mode & 0o077 == 0  # readable by the owner only
    # links signed before a "restart" still verify after it
    link = UrlSigner(first).path(KEY, EXPIRES)
    assert UrlSigner(load_or_create_secret(path)).parse("http://h" + link) == (KEY, EXPIRES)
    assert load_or_create_secret(tmp_path / "other.key") != first


def test_concurrent_first_starts_agree(tmp_path: Path) -> None:
    """Several processes starting at once on a fresh data directory must share one real secret.

    A starter that loses the O_EXCL race must not read the file before the winner has written it
    (an empty secret signs links anyone can forge, and the starters would disagree).
    """
    for round_ in range(20):
        path = tmp_path / f"round-{round_}" / "signing.key"
        path.parent.mkdir()
        results: list[bytes] = []
        barrier = threading.Barrier(8)

        def start(
            path: Path = path, results: list[bytes] = results, barrier: threading.Barrier = barrier
        ) -> None:
            barrier.wait()
            results.append(load_or_create_secret(path))

        threads = [threading.Thread(target=start) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(results) == 8
        assert all(len(secret) >= 32 for secret in results), f"round {round_}: an empty or short secret"
        assert len(set(results)) == 1, f"round {round_}: starters disagree"
        assert load_or_create_secret(path) == results[0]


# ---------------------------------------------------------------- inspect_image


@pytest.mark.parametrize(
    ("fmt", "mode", "mime"),
    [
        ("PNG", "RGB", "image/png"),
        ("PNG", "RGBA", "image/png"),
        ("JPEG", "RGB", "image/jpeg"),
        ("WEBP", "RGB", "image/webp"),
    ],
)
def test_accepts_common_formats(fmt: str, mode: str, mime: str) -> None:
    info = inspect_image(encoded(fmt, (20, 10), mode), **LIMITS)
    assert info.content_type == mime
    assert (info.width, info.height) == (20, 10)


@pytest.mark.parametrize(
    "data",
    [
        b"hello, this is plain text",
        b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        b"%PDF-1.4\n%...",
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 20,  # a PNG signature and nothing sensible after it
    ],
    ids=["text", "svg", "pdf", "truncated-png"],
)
def test_refuses_non_images(data: bytes) -> None:
    with pytest.raises(UnsupportedMediaTypeError) as info:
        inspect_image(data, param="file", **LIMITS)
    assert info.value.status_code == 415
    assert info.value.param == "file"


@pytest.mark.parametrize("fmt", ["BMP", "TIFF", "ICO", "GIF"])  # GIF: no provider reads it
def test_refuses_images_in_other_formats(fmt: str) -> None:
    with pytest.raises(UnsupportedMediaTypeError) as info:
        inspect_image(encoded(fmt, (16, 16)), **LIMITS)
    assert fmt in info.value.message or "PNG" in info.value.message


def test_refuses_empty() -> None:
    with pytest.raises(ValidationError):
        inspect_image(b"", **LIMITS)


def test_refuses_oversize_bytes() -> None:
    data = encoded("PNG", (64, 64))
    with pytest.raises(PayloadTooLargeError) as info:
        inspect_image(data, max_bytes=len(data) - 1, max_pixels=10**8, param="img")
    assert info.value.status_code == 413
    assert info.value.param == "img"
    assert inspect_image(data, max_bytes=len(data), max_pixels=10**8).content_type == "image/png"


def test_oversize_is_refused_before_parsing() -> None:
    with pytest.raises(PayloadTooLargeError):
        inspect_image(b"not an image at all" * 10, max_bytes=50, max_pixels=10**8)


@pytest.mark.parametrize("size", [(50_000, 50_000), (10_000, 10_000), (100_000, 1)])
def test_refuses_decompression_bombs(size: tuple[int, int]) -> None:
    bomb = bomb_png(*size)
    assert len(bomb) < 100
    with pytest.raises(PayloadTooLargeError) as info:
        inspect_image(bomb, max_bytes=10**6, max_pixels=50_000, param="src")
    assert info.value.status_code == 413
    assert info.value.param == "src"


def test_pixel_limit_below_pillows_own() -> None:
    # 3000x3000 is far under Pillow's bomb threshold: the gateway's own max_pixels must catch it
    bomb = bomb_png(3000, 3000)
    with pytest.raises(PayloadTooLargeError) as info:
        inspect_image(bomb, max_bytes=10**6, max_pixels=8_000_000)
    assert "3000x3000" in info.value.message
    assert inspect_image(bomb, max_bytes=10**6, max_pixels=9_000_000).width == 3000
