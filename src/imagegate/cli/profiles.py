"""Client profiles in ``$XDG_CONFIG_HOME/imagegate/config.toml`` (``~/.config`` by default).

    [profiles.default]
    base_url = "http://127.0.0.1:8000"
    api_key = "ig_..."

The file holds API keys, so it is written with mode 0600. What a command uses is, first
to last: its ``--base-url`` / ``--api-key`` options, ``IMAGEGATE_BASE_URL`` /
``IMAGEGATE_API_KEY``, then the profile (``--profile``, ``IMAGEGATE_PROFILE`` or ``default``).
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_PROFILE = "default"


@dataclass(frozen=True)
class Profile:
    base_url: str | None
    api_key: str | None


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "imagegate" / "config.toml"


def _read() -> dict[str, Any]:
    path = config_path()
    if not path.is_file():
        return {}
    with path.open("rb") as handle:
        return tomllib.load(handle)


def load(name: str | None) -> Profile:
    chosen = name or os.environ.get("IMAGEGATE_PROFILE") or DEFAULT_PROFILE
    entry = _read().get("profiles", {}).get(chosen, {})
    return Profile(base_url=entry.get("base_url"), api_key=entry.get("api_key"))


def resolve(name: str | None, base_url: str | None, api_key: str | None) -> Profile:
    """Options, then the environment, then the profile."""
    saved = load(name)
    return Profile(
        base_url=base_url or os.environ.get("IMAGEGATE_BASE_URL") or saved.base_url,
        api_key=api_key or os.environ.get("IMAGEGATE_API_KEY") or saved.api_key,
    )


def save(name: str, profile: Profile) -> Path:
    """Write (or replace) one profile, keeping the others; the file is private (0600)."""
    data = _read()
    profiles: dict[str, Any] = data.setdefault("profiles", {})
    profiles[name] = {k: v for k, v in vars(profile).items() if v is not None}
    lines: list[str] = []
    for profile_name, values in profiles.items():
        lines.append(f"[profiles.{json.dumps(profile_name)}]")
        # A JSON string is a valid TOML basic string for the text these hold.
        lines += [f"{key} = {json.dumps(str(value))}" for key, value in values.items()]
        lines.append("")
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines))
    path.chmod(0o600)  # an older file may have been made with looser bits
    return path
