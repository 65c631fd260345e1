"""Dependencies shared by routes: the gateway, the caller, the base URL, the JSON body."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from imagegate import safejson
from imagegate.accounts.keys import hash_key
from imagegate.accounts.store import Principal, authenticate
from imagegate.errors import (
    AuthenticationError,
    PayloadTooLargeError,
    RateLimitError,
    UnsupportedMediaTypeError,
    ValidationError,
)
from imagegate.gateway import Gateway
from imagegate.limits import Decision

MAX_JSON_BYTES_EXTRA = 1024 * 1024  # room beyond one image for the rest of a JSON body


async def gateway(request: Request) -> Gateway:  # async: a sync dependency costs a thread-pool trip
    gw: Gateway = request.app.state.gateway
    return gw


GatewayDep = Annotated[Gateway, Depends(gateway)]


# Base URLs by what they are made of: Starlette builds one per request through URL parsing,
# a cost the poll feels. Bounded: the Host header is the client's to choose.
_BASES: dict[tuple[Any, ...], str] = {}
MAX_BASES = 256


async def base_url(request: Request) -> str:
    gw: Gateway = request.app.state.gateway
    if gw.settings.public_url:
        return gw.settings.public_url.rstrip("/")
    scope = request.scope
    host = next((value for name, value in scope["headers"] if name == b"host"), None)
    key = (scope.get("scheme"), host, scope.get("server"), scope.get("root_path"))
    found = _BASES.get(key)
    if found is None:
        if len(_BASES) >= MAX_BASES:
            _BASES.clear()
        found = _BASES[key] = str(request.base_url).rstrip("/")
    return found


BaseUrlDep = Annotated[str, Depends(base_url)]


def bearer(request: Request) -> str | None:
    """The API key sent: ``Authorization: Bearer KEY`` or ``X-Api-Key``."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return None
    return request.headers.get("x-api-key")


async def _authenticate(request: Request, gw: Gateway, *, cached: bool) -> Principal:
    token = bearer(request)
    challenge = {"WWW-Authenticate": "Bearer"}
    if token is None:
        raise AuthenticationError("Missing API key: send 'Authorization: Bearer <key>'.", headers=challenge)
    digest = hash_key(token)
    who = gw.principals.get(digest) if cached else None
    if who is None:
        async with gw.db.sessions() as session:
            who = await authenticate(session, token)
        if who is None:
            raise AuthenticationError("Invalid or revoked API key.", headers=challenge)
        gw.principals.put(digest, who)
    return who


async def principal(request: Request, gw: GatewayDep) -> Principal:
    """The caller, read from the database: for routes that show the account (``/me``)."""
    return await _authenticate(request, gw, cached=False)


PrincipalDep = Annotated[Principal, Depends(principal)]


async def json_body(request: Request, gw: GatewayDep) -> dict[str, Any]:
    """The body as a JSON object, with clear errors for every way it can be wrong."""
    limit = gw.settings.max_upload_bytes * 2 + MAX_JSON_BYTES_EXTRA  # base64 inflates by 4/3
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"The request body is larger than {limit} bytes.")
    content_type = request.headers.get("content-type", "")
    # Lenient on purpose: `curl -d` labels JSON as form data. Only multipart is certainly not JSON.
    if content_type.startswith("multipart/"):
        raise UnsupportedMediaTypeError("Send the body as JSON (Content-Type: application/json).")
    raw = bytearray()
    async for chunk in request.stream():
        raw.extend(chunk)
        if len(raw) > limit:
            raise PayloadTooLargeError(f"The request body is larger than {limit} bytes.")
    if not raw:
        raise ValidationError("The request body is empty; send a JSON object.")
    body = safejson.loads(raw)
    if not isinstance(body, dict):
        raise ValidationError("The request body must be a JSON object.")
    return body


JsonBody = Annotated[dict[str, Any], Depends(json_body)]


async def check_rate(request: Request, gw: Gateway, who: Principal, create: bool) -> Decision:
    """Count the request against the caller's tier; a 429 when over it."""
    tier = gw.tier(who)
    decision = await (gw.limiter.hit_create if create else gw.limiter.hit_read)(who.key_id, tier)
    # The error handler and the routes both add these, so every answer of a limited route has them.
    request.state.rate_headers = decision.headers()
    if not decision.allowed:
        per = "task creations" if create else "task reads"
        raise RateLimitError(
            f"Rate limit reached: {decision.limit} {per} per {gw.settings.rate_window_s} s on the {tier.name} "
            f"tier. Retry after {decision.retry_after_s} s.",
            headers=decision.headers(),
            extra={"limit": "create" if create else "read", "tier": tier.name},
        )
    return decision


# The task routes' callers: the principal from the cache when it holds the key (accounts/cache.py),
# as one dependency each, not a tree of them (FastAPI's cost grows with every node it solves).
async def limit_create(request: Request) -> Principal:
    gw: Gateway = request.app.state.gateway
    who = await _authenticate(request, gw, cached=True)
    if gw.settings.rate_limits_enabled:
        await check_rate(request, gw, who, create=True)
    return who


async def limit_read(request: Request) -> Principal:
    gw: Gateway = request.app.state.gateway
    who = await _authenticate(request, gw, cached=True)
    if gw.settings.rate_limits_enabled:
        await check_rate(request, gw, who, create=False)
    return who


CreatorDep = Annotated[Principal, Depends(limit_create)]
ReaderDep = Annotated[Principal, Depends(limit_read)]


def rate_headers(request: Request) -> dict[str, str]:
    headers: dict[str, str] = getattr(request.state, "rate_headers", {})
    return headers
