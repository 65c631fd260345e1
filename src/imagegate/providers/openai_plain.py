"""The plain generate (JSON in, JSON out, no stream) sent straight over aiohttp.

The SDK builds each request through its options, URL, header and auth layers and then an
httpx request that its aiohttp transport translates again: ~0.6 ms of CPU per call, half of
what a 2 MB answer costs to receive. This path sends the same request (the SDK's own headers
and base URL, read once from the client) as prepared bytes. Edits and streams stay on the SDK.

Transport errors are let through (aiohttp's, or ``TimeoutError``) and an error answer comes
back as it is: ``openai_images`` maps both, in the same place as the SDK's errors.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import openai
import orjson


class PlainGenerate:
    def __init__(self, client: openai.AsyncOpenAI, timeout_s: float) -> None:
        self.url = f"{client.base_url}images/generations"  # the SDK's base URL ends in "/"
        merged = {**client.default_headers, **client.auth_headers}
        self.headers = {k: v for k, v in merged.items() if isinstance(v, str)}  # less the SDK's Omit
        self.timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout_s, sock_read=timeout_s)
        self.proxy = env_proxy(self.url)
        self._session: aiohttp.ClientSession | None = None

    async def post(self, params: dict[str, Any]) -> tuple[int, Mapping[str, str], bytes]:
        """The upstream's status, headers and whole body."""
        if self._session is None:  # made on first use: a session belongs to the running loop
            # No connection cap here: the provider's max_concurrent caps its calls.
            connector = aiohttp.TCPConnector(limit=0)
            self._session = aiohttp.ClientSession(connector=connector)
        body = orjson.dumps(params)
        async with self._session.post(
            self.url, data=body, headers=self.headers, timeout=self.timeout, proxy=self.proxy
        ) as answer:
            return answer.status, answer.headers, await answer.read()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def env_proxy(url: str) -> str | None:
    """The proxy the environment names for this URL (``HTTPS_PROXY``, ``NO_PROXY``...), as the
    SDK's client honours them: read once, not on every call as aiohttp's ``trust_env`` does."""
    parts = urlsplit(url)
    if parts.hostname is None or urllib.request.proxy_bypass(parts.netloc):
        return None
    return urllib.request.getproxies_environment().get(parts.scheme)


__all__ = ["PlainGenerate"]
