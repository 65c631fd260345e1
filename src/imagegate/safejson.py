"""The one JSON parser for untrusted text: request bodies and cursors.

``json.loads`` alone answers some inputs with exceptions no caller expects: integers of
thousands of digits (``ValueError`` past Python's 4300-digit guard), ``NaN``/``Infinity``
and ``1e999`` (floats that break integer maths later), nesting deep enough to raise
``RecursionError``, and lone surrogates (``"\\ud800"``) that no database can store. Each
becomes a ``ValidationError`` here, so every caller gets a 400 with a clear message.
"""

from __future__ import annotations

import math
from json import JSONDecodeError, JSONDecoder, detect_encoding
from typing import Any

from imagegate.errors import ValidationError

MAX_DEPTH = 32  # real bodies nest 3 or 4 levels; this leaves room and stops runaway recursion
MAX_NUMBER_CHARS = 40  # a 64-bit integer is 20 digits; a float in full is under 25 characters


class JsonLimitError(ValidationError):
    """Valid JSON that the gateway will not take (too deep, a number too long...)."""


def _int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise JsonLimitError(f"A number in the JSON has more than {MAX_NUMBER_CHARS} digits.")
    return int(text)


def _float(text: str) -> float:
    value = float(text) if len(text) <= MAX_NUMBER_CHARS else math.inf
    if not math.isfinite(value):
        raise JsonLimitError(f"The number {text[:MAX_NUMBER_CHARS]} in the JSON is out of range.")
    return value


def _constant(text: str) -> Any:
    raise JsonLimitError(f"{text} is not a JSON number; send a finite number.")


_DECODER = JSONDecoder(parse_int=_int, parse_float=_float, parse_constant=_constant)


def _check(value: Any) -> None:
    """Depth and string checks in one iterative walk (no recursion to overflow)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    raise JsonLimitError("A string in the JSON holds an unpaired surrogate.") from None
        elif isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise JsonLimitError(f"The JSON nests deeper than {MAX_DEPTH} levels.")
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)


def loads(raw: bytes | bytearray | str) -> Any:
    """Parse JSON, raising ``ValidationError`` for anything that is not valid, bounded JSON.

    Messages name no parameter: callers re-raise with their own wording when they need to.
    """
    try:
        # As json.loads does: UTF-8, 16 or 32, a UTF-8 byte order mark allowed.
        text = raw.decode(detect_encoding(raw)) if isinstance(raw, bytes | bytearray) else raw
        value = _DECODER.decode(text)
    except (JSONDecodeError, UnicodeDecodeError):
        raise ValidationError("The request body is not valid JSON.") from None
    except RecursionError:
        raise JsonLimitError(f"The JSON nests deeper than {MAX_DEPTH} levels.") from None
    _check(value)
    return value
