"""Provider names to instances; the catalog names a provider per model or takes the default."""

from __future__ import annotations

from imagegate.providers.base import Provider


def build_provider(name: str) -> Provider:
    if name == "offline":
        from imagegate.providers.offline import OfflineProvider

        return OfflineProvider()
    if name == "fake":
        from imagegate.providers.testing import FakeProvider

        return FakeProvider()
    if name == "instant":
        from imagegate.providers.testing import InstantProvider

        return InstantProvider()
    raise ValueError(f"unknown provider {name!r} (available: offline, fake, instant)")


class Providers:
    def __init__(self) -> None:
        self._instances: dict[str, Provider] = {}

    def get(self, name: str) -> Provider:
        if name not in self._instances:
            self._instances[name] = build_provider(name)
        return self._instances[name]

    async def aclose(self) -> None:
        for provider in self._instances.values():
            await provider.aclose()
        self._instances.clear()
