"""Every outbound request the gateway makes for a user goes through here.

``get`` fetches a source image; ``post`` delivers a webhook. Both:

1. parse the URL with the one user-URL parser (``storage.urls``): bad URLs are a 400;
2. resolve the host and judge *every* address it resolves to (``storage.addresses``),
   unless the operator's allow-list admits the host or the address: one refused
   address refuses the request, so a name answering [private, public] cannot win;
3. connect to a checked address itself (Host header and TLS SNI keep the name), so a
   DNS answer that changes between check and connect cannot move us;
4. cap time (one deadline for the whole request, redirects included) and size.

``get`` follows redirects by hand, each hop parsed and checked again as in 1-3;
``post`` follows none (a webhook's redirect is its answer) and reads at most a
small response body.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import httpx

from imagegate.errors import PayloadTooLargeError, ValidationError
from imagegate.storage.addresses import IPAddress, refused
from imagegate.storage.urls import AllowEntry, HttpUrl, parse_allow_entry, parse_http_url

MAX_REDIRECTS = 3
USER_AGENT = "imagegate"
POST_BODY_CAP = 64 * 1024  # a webhook's answer is only looked at for its status
_REDIRECTS = frozenset({301, 302, 303, 307, 308})

Resolver = Callable[[str, int], Awaitable[list[str]]]


class GuardError(ValidationError):
    """A user URL we would not or could not reach (400, naming the parameter)."""


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to, in the resolver's order of preference."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class Policy:
    """What a request for a user may reach, and how long and how much it may read."""

    allow: tuple[AllowEntry, ...] = ()
    timeout_s: float = 15.0
    max_bytes: int = 25 * 1024 * 1024
    max_redirects: int = MAX_REDIRECTS
    resolver: Resolver = field(default=system_resolver, compare=False)

    @classmethod
    def from_hosts(cls, hosts: Iterable[str], *, timeout_s: float, max_bytes: int) -> Policy:
        """A policy whose allow-list is ``fetch_allow_hosts`` entries (``host`` or ``host:port``)."""
        allow = tuple(parse_allow_entry(host) for host in hosts)
        return cls(allow=allow, timeout_s=timeout_s, max_bytes=max_bytes)

    def admits(self, url: HttpUrl, ip: IPAddress) -> bool:
        """May ``ip``, one address of ``url``'s host, be reached?"""
        address = str(ip)
        if any(entry.admits(url.host, url.port) or entry.admits(address, url.port) for entry in self.allow):
            return True
        return not refused(ip)


def precheck(url: str, policy: Policy, param: str) -> HttpUrl:
    """What can be judged without DNS, for refusing a request before anything is created:
    the URL parses, and an address written literally in it is one we may reach."""
    parsed = parse_http_url(url, param)
    ip = parsed.address
    if ip is not None and not policy.admits(parsed, ip):
        raise GuardError(f"{param}: {parsed.host} is a private or reserved address", param=param)
    return parsed


async def precheck_resolving(url: str, policy: Policy, param: str) -> HttpUrl:
    """``precheck``, and a named host's current addresses judged too (a webhook target given
    at creation: ``localhost`` is refused then, not at each delivery). A name that does not
    resolve now is let through: DNS may be late, and every request is checked again anyway."""
    parsed = precheck(url, policy, param)
    if parsed.address is None:
        for address in await policy.resolver(parsed.host, parsed.port):
            if not policy.admits(parsed, ipaddress.ip_address(address)):
                message = f"{param}: {parsed.host} resolves to a private or reserved address"
                raise GuardError(message, param=param)
    return parsed


async def checked_addresses(url: HttpUrl, policy: Policy, param: str) -> list[str]:
    """All addresses of ``url``'s host, each one admitted by ``policy``, or a GuardError."""
    literal = url.address
    addresses = [url.host] if literal is not None else await policy.resolver(url.host, url.port)
    if not addresses:
        raise GuardError(f"{param}: cannot resolve host {url.host!r}", param=param)
    for address in addresses:
        ip = ipaddress.ip_address(address)
        if not policy.admits(url, ip):
            if literal is not None:
                raise GuardError(f"{param}: {url.host} is a private or reserved address", param=param)
            raise GuardError(f"{param}: {url.host} resolves to a private or reserved address", param=param)
    return addresses


@dataclass(frozen=True)
class Response:
    url: str  # the URL that answered (after redirects), with the host as the user named it
    status_code: int
    headers: httpx.Headers
    content: bytes
    truncated: bool = False  # the body was longer than the cap and was cut (POST only)

    @property
    def content_type(self) -> str | None:
        value: str | None = self.headers.get("content-type")
        return value


async def get(url: str, policy: Policy, *, param: str = "url") -> Response:
    """GET ``url``; redirects followed (each hop checked); only a 200 answer is returned."""
    target = parse_http_url(url, param)

    async def work(conn: _Connection) -> Response:
        return await _get(conn, target, policy, param)

    return await _within_limits(policy, param, "fetch", work)


async def post(
    url: str, content: bytes, headers: Mapping[str, str], policy: Policy, *, param: str = "url"
) -> Response:
    """POST ``content`` to ``url`` and return its answer, whatever the status; no redirects."""
    target = parse_http_url(url, param)

    async def work(conn: _Connection) -> Response:
        response = await _send(conn, "POST", target, policy, param, content=content, headers=headers)
        try:
            body, truncated = await _read(response, min(POST_BODY_CAP, policy.max_bytes), param, cut=True)
        finally:
            await response.aclose()
        return Response(target.url(), response.status_code, response.headers, body, truncated)

    return await _within_limits(policy, param, "request", work)


async def _within_limits(
    policy: Policy, param: str, verb: str, work: Callable[[_Connection], Awaitable[Response]]
) -> Response:
    try:
        async with asyncio.timeout(policy.timeout_s):
            async with httpx.AsyncHTTPTransport() as transport:
                return await work(_Connection(transport, httpx.Timeout(policy.timeout_s)))
    except (TimeoutError, httpx.TimeoutException):
        message = f"{param}: no complete answer within {policy.timeout_s:g} s"
        raise GuardError(message, param=param) from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise GuardError(f"{param}: {verb} failed ({type(exc).__name__})", param=param) from None


async def _get(conn: _Connection, target: HttpUrl, policy: Policy, param: str) -> Response:
    for _ in range(policy.max_redirects + 1):
        response = await _send(conn, "GET", target, policy, param)
        try:
            if response.status_code in _REDIRECTS:
                target = _next_hop(target, response.headers.get("location"), param)
                continue
            if response.status_code != 200:
                raise GuardError(f"{param}: the server answered {response.status_code}", param=param)
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > policy.max_bytes:
                raise PayloadTooLargeError(f"{param}: larger than {policy.max_bytes} bytes", param=param)
            body, _ = await _read(response, policy.max_bytes, param, cut=False)
        finally:
            await response.aclose()
        return Response(target.url(), response.status_code, response.headers, body)
    raise GuardError(f"{param}: more than {policy.max_redirects} redirects", param=param)


def _next_hop(current: HttpUrl, location: str | None, param: str) -> HttpUrl:
    if not location:
        raise GuardError(f"{param}: redirect without a Location", param=param)
    try:
        joined = urljoin(current.url(), location)
    except ValueError:
        raise GuardError(f"{param}: the server redirected to an unparsable Location", param=param) from None
    try:
        return parse_http_url(joined, param)
    except ValidationError as exc:
        reason = exc.message.removeprefix(f"{param}: ")
        raise GuardError(f"{param}: redirect not followed: {reason}", param=param) from None


@dataclass(frozen=True)
class _Connection:
    """A bare transport: no client-level proxies from the environment (they would connect for us,
    unchecked), no cookies, and no redirect handling, which would parse Locations itself."""

    transport: httpx.AsyncHTTPTransport
    timeout: httpx.Timeout

    async def send(self, request: httpx.Request) -> httpx.Response:
        request.extensions["timeout"] = self.timeout.as_dict()
        response = await self.transport.handle_async_request(request)
        response.request = request
        return response


async def _send(
    conn: _Connection,
    method: str,
    target: HttpUrl,
    policy: Policy,
    param: str,
    *,
    content: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    """Send to the first checked address that accepts a connection."""
    addresses = await checked_addresses(target, policy, param)
    sent = {"User-Agent": USER_AGENT}
    sent.update({k: v for k, v in (headers or {}).items() if k.lower() != "host"})
    sent["Host"] = target.host_header
    # SNI carries a name, never an address; for an IP literal the URL's own host is right.
    extensions: dict[str, Any] = {"sni_hostname": target.host} if target.address is None else {}
    failure: httpx.ConnectError | None = None
    for address in addresses:
        request = httpx.Request(
            method, target.via(address), headers=sent, content=content, extensions=dict(extensions)
        )
        try:
            return await conn.send(request)
        except httpx.ConnectError as exc:
            failure = exc
    assert failure is not None  # addresses is never empty
    raise failure


async def _read(response: httpx.Response, limit: int, param: str, *, cut: bool) -> tuple[bytes, bool]:
    """The body, at most ``limit`` bytes: cut there (``cut``) or refused with a 413."""
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body.extend(chunk)
        if len(body) > limit:
            if cut:
                return bytes(body[:limit]), True
            raise PayloadTooLargeError(f"{param}: larger than {limit} bytes", param=param)
    return bytes(body), False
