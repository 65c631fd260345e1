"""The base64 relay from the worker to the OpenAI face: once per task, bounded, key-checked."""

from __future__ import annotations

from imagegate.providers.base import GeneratedImage
from imagegate.storage.relay import B64Relay


def image(b64: str | None) -> GeneratedImage:
    return GeneratedImage(b"bytes", "image/png", 1, 1, b64=b64)


def test_taken_once_by_stored_key() -> None:
    relay = B64Relay()
    relay.keep("t1", [{"key": "outputs/t1/a-0.png"}], [image("Ynl0ZXM=")])
    assert relay.take("t1") == {"outputs/t1/a-0.png": "Ynl0ZXM="}
    assert relay.take("t1") == {}  # once: the face falls back to storage after that


def test_nothing_kept_unless_every_image_came_as_base64() -> None:
    relay = B64Relay()
    relay.keep("t2", [{"key": "k0"}, {"key": "k1"}], [image("QQ=="), image(None)])
    assert relay.take("t2") == {}


def test_bounded_by_size_oldest_dropped() -> None:
    relay = B64Relay(max_chars=10)
    relay.keep("old", [{"key": "k-old"}], [image("A" * 8)])
    relay.keep("new", [{"key": "k-new"}], [image("B" * 8)])
    assert relay.take("old") == {}
    assert relay.take("new") == {"k-new": "B" * 8}
    relay.keep("again", [{"key": "k"}], [image("C" * 4)])
    assert relay.take("again") == {"k": "CCCC"}  # the count went back down on each take
