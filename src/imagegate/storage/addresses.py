"""Which IP addresses a request made on a user's behalf may reach.

Refused: anything not globally routable (private, loopback, link-local, CGNAT,
documentation, reserved, the cloud metadata address) and multicast. An IPv6
address that carries an IPv4 one (IPv4-mapped, NAT64 ``64:ff9b::/96``, 6to4
``2002::/16``) is judged by the address it carries, because that is where the
packets end up. Forms whose destination we cannot judge (IPv4-compatible
``::/96``, local NAT64 ``64:ff9b:1::/48``, Teredo, site-local ``fec0::/10``)
are refused; Python's own ``is_global`` table is not trusted for these, as it
differs between versions.
"""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_REFUSED_V6 = (
    ipaddress.IPv6Network("::/96"),  # IPv4-compatible (deprecated), also :: and ::1
    ipaddress.IPv6Network("64:ff9b:1::/48"),  # local-use NAT64 (RFC 8215)
    ipaddress.IPv6Network("2001::/32"),  # Teredo
    ipaddress.IPv6Network("fec0::/10"),  # site-local (deprecated, still routed by some)
)


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address delivers to, for the forms that carry one."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def refused(ip: IPAddress) -> bool:
    """True when ``ip`` is not a public unicast destination."""
    if isinstance(ip, ipaddress.IPv6Address):
        carried = embedded_ipv4(ip)
        if carried is not None:
            return refused(carried)
        if any(ip in network for network in _REFUSED_V6):
            return True
    return not ip.is_global or ip.is_multicast
