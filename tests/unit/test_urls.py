"""The user-URL parser, the address judgement and the allow-list setting."""

from __future__ import annotations

import ipaddress

import pydantic
import pytest

from imagegate.settings import Settings
from imagegate.storage.addresses import refused
from imagegate.storage.urls import AllowEntry, parse_allow_entry, parse_http_url


@pytest.mark.parametrize(
    ("url", "host", "port", "host_header"),
    [
        ("HTTPS://Example.COM/a.png?x=1#frag", "example.com", 443, "example.com"),
        ("http://example.com.:8080", "example.com", 8080, "example.com:8080"),
        ("http://user:pw@[2606:4700::1]:81/", "2606:4700::1", 81, "[2606:4700::1]:81"),
        ("http://bücher.example/", "xn--bcher-kva.example", 80, "xn--bcher-kva.example"),
        ("http://0x7f.1/", "127.0.0.1", 80, "127.0.0.1"),
        ("http://3232235777/", "192.168.1.1", 80, "192.168.1.1"),
    ],
)
def test_hosts_come_out_normalized(url: str, host: str, port: int, host_header: str) -> None:
    parsed = parse_http_url(url, "p")
    assert (parsed.host, parsed.port, parsed.host_header) == (host, port, host_header)


def test_connect_url_keeps_path_and_query_and_drops_the_fragment() -> None:
    parsed = parse_http_url("http://images.test:8080/a/b.png?size=2#top", "p")
    assert parsed.via("10.9.8.7") == "http://10.9.8.7:8080/a/b.png?size=2"
    assert parsed.via("2606:4700::1") == "http://[2606:4700::1]:8080/a/b.png?size=2"


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "2606:4700::1111",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",  # NAT64 of a public address: how IPv6-only networks reach IPv4 hosts
        "2002:808:808::1",  # 6to4 of a public address
    ],
)
def test_public_destinations_are_reachable(address: str) -> None:
    assert not refused(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("127.0.0.1", AllowEntry("127.0.0.1")),
        ("127.0.0.1:8080", AllowEntry("127.0.0.1", 8080)),
        ("Images.Internal", AllowEntry("images.internal")),
        ("images.internal:443", AllowEntry("images.internal", 443)),
        ("::1", AllowEntry("::1")),
        ("[::1]", AllowEntry("::1")),
        ("[::1]:8080", AllowEntry("::1", 8080)),
    ],
)
def test_allow_entries(entry: str, expected: AllowEntry) -> None:
    assert parse_allow_entry(entry) == expected


@pytest.mark.parametrize(
    "entry", ["host:abc", "host:99999", "[::1", "http://host", "a/b", "u@host", "", ":80"]
)
def test_malformed_allow_entries_are_refused(entry: str) -> None:
    with pytest.raises(ValueError, match="fetch_allow_hosts entry"):
        parse_allow_entry(entry)


def test_allow_hosts_setting_takes_the_comma_separated_form() -> None:
    settings = Settings(fetch_allow_hosts=" 127.0.0.1, [::1]:8080,Images.Internal:443 ,")  # type: ignore[arg-type]
    assert settings.fetch_allow_hosts == ["127.0.0.1", "[::1]:8080", "images.internal:443"]


def test_allow_hosts_setting_still_takes_a_json_list() -> None:
    settings = Settings(fetch_allow_hosts='["127.0.0.1", "::1"]')  # type: ignore[arg-type]
    assert settings.fetch_allow_hosts == ["127.0.0.1", "[::1]"]  # the canonical spelling


def test_a_malformed_allow_entry_is_a_settings_error() -> None:
    with pytest.raises(pydantic.ValidationError, match="host:abc"):
        Settings(fetch_allow_hosts="127.0.0.1,host:abc")  # type: ignore[arg-type]
