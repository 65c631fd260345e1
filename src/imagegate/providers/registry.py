"""Provider names to instances, built from settings.

A kind (``openai``, ``runapi``, ``diffusers``, ``offline``, ``fake``) registers a factory with
:func:`register_kind` when its module is imported; built-in kinds' modules are imported on
first use, so a deployment that never calls OpenAI never imports its SDK. ``offline`` and
``fake`` are always there. With no providers configured and ``OPENAI_API_KEY`` set, an
``openai`` provider is added (the SDK honours ``OPENAI_BASE_URL``) and becomes the default.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import time
from collections.abc import Callable, Sequence

from imagegate.providers.base import Provider
from imagegate.providers.breaker import CircuitBreaker
from imagegate.providers.config import ProviderConfig

ProviderFactory = Callable[[ProviderConfig], Provider]

_KINDS: dict[str, ProviderFactory] = {}
_BUILTIN_MODULES = {
    "offline": "imagegate.providers.offline",
    "fake": "imagegate.providers.testing",
    "instant": "imagegate.providers.testing",
    "openai": "imagegate.providers.openai_images",
    "runapi": "imagegate.providers.runapi",
    "diffusers": "imagegate.providers.diffusers",
}
ALWAYS = (
    ProviderConfig(name="offline", kind="offline"),
    ProviderConfig(name="fake", kind="fake"),
    ProviderConfig(name="instant", kind="instant"),
)


def register_kind(kind: str) -> Callable[[ProviderFactory], ProviderFactory]:
    def register(factory: ProviderFactory) -> ProviderFactory:
        _KINDS[kind] = factory
        return factory

    return register


def kind_factory(kind: str) -> ProviderFactory:
    if kind not in _KINDS and kind in _BUILTIN_MODULES:
        importlib.import_module(_BUILTIN_MODULES[kind])
    try:
        return _KINDS[kind]
    except KeyError:
        known = ", ".join(sorted({*_KINDS, *_BUILTIN_MODULES}))
        raise ValueError(f"unknown provider kind {kind!r} (available: {known})") from None


def implicit_openai(env: dict[str, str] | None = None) -> ProviderConfig | None:
    """The zero-configuration ``openai`` provider, when ``OPENAI_API_KEY`` is set."""
    env = dict(os.environ) if env is None else env
    if not env.get("OPENAI_API_KEY"):
        return None
    return ProviderConfig(name="openai", kind="openai", api_key_env="OPENAI_API_KEY")


class Providers:
    """Every provider this gateway may call, its breaker and its concurrency slots."""

    def __init__(
        self,
        configs: Sequence[ProviderConfig] = (),
        *,
        default: str | None = None,
        breaker_failures: int = 5,
        breaker_reset_s: float = 30.0,
        now: Callable[[], float] = time.time,
    ) -> None:
        named = {config.name: config for config in configs}
        if len(named) != len(configs):
            raise ValueError("two providers have the same name")
        if not configs and (openai := implicit_openai()) is not None:
            named[openai.name] = openai
        for config in ALWAYS:
            named.setdefault(config.name, config)
        for config in named.values():
            kind_factory(config.kind)  # an unknown kind stops the start, not the first task
        self.configs = named
        self.now = now  # the gateway's clock: breakers and the attempts' times
        self.default = default or ("openai" if "openai" in named else "offline")
        self.check_names([self.default])
        self._instances: dict[str, Provider] = {}
        self._breakers = {name: CircuitBreaker(breaker_failures, breaker_reset_s, now) for name in named}
        self._slots = {name: asyncio.Semaphore(config.max_concurrent) for name, config in named.items()}

    def check_names(self, names: Sequence[str]) -> None:
        unknown = [name for name in names if name not in self.configs]
        if unknown:
            raise ValueError(
                f"unknown provider {unknown[0]!r} (configured: {', '.join(sorted(self.configs))})"
            )

    def get(self, name: str) -> Provider:
        if name not in self._instances:
            self.check_names([name])
            config = self.configs[name]
            self._instances[name] = kind_factory(config.kind)(config)
        return self._instances[name]

    def breaker(self, name: str) -> CircuitBreaker:
        self.check_names([name])
        return self._breakers[name]

    def slot(self, name: str) -> asyncio.Semaphore:
        """At most ``max_concurrent`` calls to this provider at once."""
        self.check_names([name])
        return self._slots[name]

    async def aclose(self) -> None:
        for provider in self._instances.values():
            await provider.aclose()
        self._instances.clear()


__all__ = ["ALWAYS", "ProviderFactory", "Providers", "implicit_openai", "kind_factory", "register_kind"]
