"""The plain generate's proxy: the environment's, read once, as the SDK's client honours it."""

from __future__ import annotations

import pytest

from imagegate.providers.openai_plain import env_proxy

URL = "https://api.example.test/v1/images/generations"


def test_the_environment_names_the_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert env_proxy(URL) is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.test:3128")
    assert env_proxy(URL) == "http://proxy.test:3128"
    assert env_proxy("http://api.example.test/v1/images/generations") is None  # no HTTP_PROXY
    monkeypatch.setenv("NO_PROXY", "example.test")
    assert env_proxy(URL) is None
