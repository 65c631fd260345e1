"""API key format: ``ig_`` + 43 url-safe characters (256 random bits)."""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "ig_"
VISIBLE_CHARS = 12  # "ig_" plus 9 characters: enough to tell keys apart, useless to an attacker


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def visible_prefix(key: str) -> str:
    return key[:VISIBLE_CHARS]


def looks_like_key(value: str) -> bool:
    return value.startswith(KEY_PREFIX) and 32 <= len(value) <= 200
