"""Reading a plain Images API answer: the b64 strings cut out by position, the rest parsed."""

from __future__ import annotations

import json

import orjson

from imagegate.providers.openai_images import _cut_images

B64 = "iVBORw0KGgo+/=="


def _answer(*items: dict[str, object], prompt: str = "a fox") -> bytes:
    return json.dumps(
        {"created": 1, "data": list(items), "usage": {"output_tokens": 5}, "p": prompt}
    ).encode()


def test_each_string_is_cut_and_the_rest_parsed() -> None:
    body, strings = _cut_images(_answer({"b64_json": B64}, {"b64_json": B64[::-1], "revised_prompt": "x"}))
    assert [bytes(s) for s in strings] == [B64.encode(), B64[::-1].encode()]
    assert body["data"] == [{"b64_json": ""}, {"b64_json": "", "revised_prompt": "x"}]
    assert body["usage"] == {"output_tokens": 5}


def test_whitespace_around_the_colon_is_json() -> None:
    assert [bytes(s) for s in _cut_images(b'{"data": [ {"b64_json"  :\n "QUJD"} ]}')[1]] == [b"QUJD"]


def test_an_escaped_slash_takes_the_full_parse() -> None:
    raw = b'{"data": [{"b64_json": "QU\\/J"}]}'
    assert _cut_images(raw) == (orjson.loads(raw), [])


def test_the_key_quoted_inside_another_string_is_not_cut() -> None:
    raw = _answer({"b64_json": B64}, prompt='say "b64_json": "no"')
    body, strings = _cut_images(raw)
    assert [bytes(s) for s in strings] == [B64.encode()]
    assert body["p"] == 'say "b64_json": "no"'


def test_a_key_outside_the_data_items_takes_the_full_parse() -> None:
    raw = b'{"data": [], "extra": {"b64_json": "QUJD"}}'
    assert _cut_images(raw) == (orjson.loads(raw), [])


def test_a_non_string_value_takes_the_full_parse() -> None:
    raw = b'{"data": [{"b64_json": null, "url": "http://x"}]}'
    assert _cut_images(raw) == (orjson.loads(raw), [])
