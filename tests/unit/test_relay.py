"""The relay from the worker to the OpenAI face: only for a face waiting in this process, once
per task, bounded, key-checked, base64 out."""

from __future__ import annotations

from imagegate.db.models import Task
from imagegate.providers.base import GeneratedImage
from imagegate.storage.relay import Relay


def image(b64: str | None, data: bytes = b"bytes") -> GeneratedImage:
    return GeneratedImage(data, "image/png", 1, 1, b64=b64)


def test_taken_once_by_stored_key() -> None:
    relay = Relay()
    with relay.waiting("t1"):
        relay.keep("t1", [{"key": "outputs/t1/a-0.png"}], [image("Ynl0ZXM=")])
        assert relay.take("t1") == {"outputs/t1/a-0.png": "Ynl0ZXM="}
        assert relay.take("t1") == {}  # once: the face falls back to storage after that


def test_nothing_is_kept_for_a_task_no_face_here_waits_for() -> None:
    relay = Relay()  # `imagegate worker`, or a client that hung up before its task ended
    relay.keep("t0", [{"key": "k"}], [image("QQ==")])
    with relay.waiting("t0"):
        assert relay.take("t0") == {}


def test_what_the_face_left_untaken_goes_when_it_stops_waiting() -> None:
    relay = Relay()
    with relay.waiting("t6"), relay.waiting("t6"):  # the same task twice (an idempotent replay)
        relay.keep("t6", [{"key": "k"}], [image("QQ==")])
    with relay.waiting("t6"):
        assert relay.take("t6") == {}


def test_images_without_the_upstreams_base64_are_encoded_on_the_way_out() -> None:
    relay = Relay()
    with relay.waiting("t2"):
        relay.keep("t2", [{"key": "k0"}, {"key": "k1"}], [image("QQ=="), image(None, b"\x89PNG")])
        assert relay.take("t2") == {"k0": "QQ==", "k1": b"iVBORw=="}


def test_dropped_entries_are_gone() -> None:
    relay = Relay()
    with relay.waiting("t3"):
        relay.keep("t3", [{"key": "k"}], [image(None)])
        relay.drop("t3")
        assert relay.take("t3") == {}


def test_bounded_by_size_oldest_dropped() -> None:
    relay = Relay(max_bytes=20)  # each entry below is 5 bytes of image + 8 of base64
    with relay.waiting("old"), relay.waiting("new"), relay.waiting("again"):
        relay.keep("old", [{"key": "k-old"}], [image("A" * 8)])
        relay.keep("new", [{"key": "k-new"}], [image("B" * 8)])
        assert relay.take("old") == {}
        assert relay.take("new") == {"k-new": "B" * 8}
        relay.keep("again", [{"key": "k"}], [image("C" * 4)])
        assert relay.take("again") == {"k": "CCCC"}  # the count went back down on each take


def test_the_ended_task_rides_with_the_images_for_its_own_account_only() -> None:
    relay = Relay()
    with relay.waiting("t5"):
        relay.ended(Task(id="t5", account_id="acct"))  # no run held: nothing to attach it to
        assert relay.ended_task("t5", "acct") is None
        relay.keep("t5", [{"key": "k"}], [image("QQ==")])
        assert relay.ended_task("t5", "acct") is None  # kept, but the end has not committed yet
        ended = Task(id="t5", account_id="acct")
        relay.ended(ended)
        assert relay.ended_task("t5", "other") is None
        assert relay.ended_task("t5", "acct") is ended
        assert relay.take("t5") == {"k": "QQ=="}
        assert relay.ended_task("t5", "acct") is None  # gone with the images
