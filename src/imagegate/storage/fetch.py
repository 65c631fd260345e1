"""Fetch a user-given URL without becoming a proxy into private networks.

Every hop is resolved first and refused if any address is not globally
routable (private, loopback, link-local, metadata, CGNAT...), unless the host
is on the operator's allow-list. The connection then goes to the checked
address itself (Host header and TLS SNI keep the name), so a DNS answer that
changes between check and connect cannot redirect us. Redirects are followed by
hand, each hop checked again; size and time are capped.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from imagegate.errors import PayloadTooLargeError, ValidationError

MAX_REDIRECTS = 3


class FetchError(ValidationError):
    """A source URL we would not or could not fetch."""


@dataclass(frozen=True)
class FetchPolicy:
    allow_hosts: frozenset[str]
    timeout_s: float
    max_bytes: int


def _blocked(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


async def _resolve(host: str, port: int) -> list[str]:
    try:
        ipaddress.ip_address(host)
        return [host]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise FetchError(f"cannot resolve host {host!r}") from None
    return sorted({str(info[4][0]) for info in infos})


async def _checked_target(url: str, policy: FetchPolicy, param: str) -> tuple[str, str, str]:
    """(url to connect to, Host header, SNI name) for one hop."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchError(f"{param}: only http(s) URLs can be fetched", param=param)
    host = parts.hostname
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = await _resolve(host, port)
    allowed = host in policy.allow_hosts or any(a in policy.allow_hosts for a in addresses)
    if not allowed and any(_blocked(a) for a in addresses):
        raise FetchError(f"{param}: {host} resolves to a private or reserved address", param=param)
    address = addresses[0]
    literal = f"[{address}]" if ":" in address else address
    netloc = f"{literal}:{parts.port}" if parts.port else literal
    target = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    host_header = parts.netloc.rpartition("@")[2]
    return target, host_header, host


async def fetch(url: str, policy: FetchPolicy, *, param: str = "url") -> tuple[bytes, str | None]:
    """The body and Content-Type of ``url``."""
    try:
        async with asyncio.timeout(policy.timeout_s):
            return await _fetch(url, policy, param)
    except TimeoutError:
        raise FetchError(f"{param}: fetching took longer than {policy.timeout_s:g} s", param=param) from None
    except httpx.HTTPError as exc:
        raise FetchError(f"{param}: fetch failed ({type(exc).__name__})", param=param) from None


async def _fetch(url: str, policy: FetchPolicy, param: str) -> tuple[bytes, str | None]:
    async with httpx.AsyncClient(follow_redirects=False, timeout=policy.timeout_s) as client:
        for _ in range(MAX_REDIRECTS + 1):
            target, host_header, sni = await _checked_target(url, policy, param)
            request = client.build_request(
                "GET", target, headers={"Host": host_header}, extensions={"sni_hostname": sni}
            )
            response = await client.send(request, stream=True)
            try:
                if response.is_redirect:
                    location = response.headers.get("location")
                    if not location:
                        raise FetchError(f"{param}: redirect without a Location", param=param)
                    url = urljoin(url, location)
                    continue
                if response.status_code != 200:
                    raise FetchError(f"{param}: the server answered {response.status_code}", param=param)
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > policy.max_bytes:
                    raise PayloadTooLargeError(f"{param}: larger than {policy.max_bytes} bytes", param=param)
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body.extend(chunk)
                    if len(body) > policy.max_bytes:
                        raise PayloadTooLargeError(
                            f"{param}: larger than {policy.max_bytes} bytes", param=param
                        )
                return bytes(body), response.headers.get("content-type")
            finally:
                await response.aclose()
    raise FetchError(f"{param}: more than {MAX_REDIRECTS} redirects", param=param)
