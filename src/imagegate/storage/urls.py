"""The one parser for URLs a user gives the gateway (source images, redirects, callbacks).

``urlsplit`` alone is not enough: it raises on broken IPv6 brackets, its ``port``
raises on ``:abc`` or ``:99999``, and it accepts hosts httpx would then reject.
Here every such case is a ``ValidationError`` (400) naming the parameter.

Hosts come out normalized: lower case, IDNA-encoded, IP literals without
brackets, and the legacy IPv4 spellings that resolvers accept (``127.1``,
``0x7f.0.0.1``, ``2130706433``) turned into the dotted address they mean, so
an address check cannot be dodged by spelling.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from imagegate.errors import ValidationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_PORTS = {"http": 80, "https": 443}
_NAME = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*$")  # DNS names after IDNA encoding
_LEGACY_IPV4 = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}$")


@dataclass(frozen=True)
class HttpUrl:
    """An http(s) URL that parsed cleanly; what a connection to it needs."""

    scheme: str  # "http" | "https"
    host: str  # normalized name, or an IP address without brackets
    port: int  # the explicit port, else the scheme's default
    explicit_port: bool
    path: str  # path and query, at least "/"; the fragment is dropped

    @property
    def address(self) -> IPAddress | None:
        """The host as an IP address when it is one (no resolution)."""
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None

    @property
    def host_header(self) -> str:
        """The Host header (and the netloc of the URL as the server sees it); no user info."""
        literal = f"[{self.host}]" if ":" in self.host else self.host
        return f"{literal}:{self.port}" if self.explicit_port else literal

    def url(self) -> str:
        return urlunsplit((self.scheme, self.host_header, self.path, "", ""))

    def via(self, address: str) -> str:
        """This URL with the host replaced by ``address``: where to connect, already checked."""
        literal = f"[{address}]" if ":" in address else address
        netloc = f"{literal}:{self.port}" if self.explicit_port else literal
        return urlunsplit((self.scheme, netloc, self.path, "", ""))


def parse_http_url(value: str, param: str) -> HttpUrl:
    """``value`` as an http(s) URL, or a ValidationError naming ``param``."""
    if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in value):
        raise ValidationError(f"{param}: a URL may not contain spaces or control characters", param=param)
    try:
        parts = urlsplit(value)
    except ValueError:
        raise ValidationError(f"{param}: not a valid URL (broken IPv6 brackets?)", param=param) from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        shown = f"{scheme}:" if scheme else "no scheme"
        raise ValidationError(f"{param}: only http(s) URLs are accepted, not {shown}", param=param)
    hostport = parts.netloc.rpartition("@")[2]
    try:
        port = parts.port
    except ValueError:
        raise ValidationError(f"{param}: the port must be a number from 1 to 65535", param=param) from None
    if port == 0 or (port is None and hostport.endswith(":")):
        raise ValidationError(f"{param}: the port must be a number from 1 to 65535", param=param)
    raw_host = hostport.rsplit(":", 1)[0] if port is not None else hostport
    host = _host(raw_host, param)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return HttpUrl(
        scheme=scheme,
        host=host,
        port=port if port is not None else DEFAULT_PORTS[scheme],
        explicit_port=port is not None,
        path=path,
    )


def is_http_url(value: str) -> bool:
    try:
        parse_http_url(value, "url")
    except ValidationError:
        return False
    return True


def _host(raw: str, param: str) -> str:
    if raw.startswith("["):
        # urlsplit has already checked the brackets hold an IPv6 (or IPvFuture) address
        inner = raw[1:-1]
        try:
            ip = ipaddress.IPv6Address(inner)
        except ValueError:
            raise ValidationError(f"{param}: {raw} is not an IPv6 address", param=param) from None
        if ip.scope_id:
            raise ValidationError(f"{param}: IPv6 zone identifiers are not accepted", param=param)
        return str(ip)
    if not raw:
        raise ValidationError(f"{param}: the URL has no host", param=param)
    try:
        # one trailing dot (the absolute form) names the same host
        name = raw.lower().removesuffix(".").encode("idna").decode("ascii")
    except UnicodeError:
        raise ValidationError(f"{param}: {raw!r} is not a valid host name", param=param) from None
    if not _NAME.match(name) or len(name) > 253:
        raise ValidationError(f"{param}: {raw!r} is not a valid host name", param=param)
    if _LEGACY_IPV4.match(name):
        # What getaddrinfo would make of it; refused outright if it makes nothing.
        try:
            return str(ipaddress.IPv4Address(socket.inet_aton(name)))
        except OSError:
            raise ValidationError(f"{param}: {raw!r} is not a valid IPv4 address", param=param) from None
    return name


@dataclass(frozen=True)
class AllowEntry:
    """One ``fetch_allow_hosts`` entry: a host or address, optionally limited to one port."""

    host: str
    port: int | None = None

    def admits(self, host: str, port: int) -> bool:
        return self.host == host and (self.port is None or self.port == port)

    def __str__(self) -> str:
        literal = f"[{self.host}]" if ":" in self.host else self.host
        return literal if self.port is None else f"{literal}:{self.port}"


def parse_allow_entry(entry: str) -> AllowEntry:
    """``host``, ``host:port``, ``1.2.3.4``, ``::1``, ``[::1]`` or ``[::1]:8080``; ValueError if not."""
    text = entry.strip()
    try:
        return AllowEntry(str(ipaddress.IPv6Address(text)))  # a bare IPv6 address has no port
    except ValueError:
        pass
    if not text or any(ch in text for ch in "/?#@"):
        raise ValueError(f"fetch_allow_hosts entry {entry!r} must be host or host:port")
    try:
        parsed = parse_http_url(f"http://{text}/", "entry")
    except ValidationError as exc:
        reason = exc.message.removeprefix("entry: ")
        raise ValueError(f"fetch_allow_hosts entry {entry!r}: {reason}") from None
    return AllowEntry(parsed.host, parsed.port if parsed.explicit_port else None)
