"""The docs cover what the code offers: every setting and every public route."""

from __future__ import annotations

import re
from pathlib import Path

from imagegate.api import create_app
from imagegate.settings import settings_table

DOCS = Path(__file__).parents[2] / "docs"
_PARAM = re.compile(r"\{[^}]+\}")


def test_every_setting_is_documented() -> None:
    text = (DOCS / "configuration.md").read_text()
    missing = [name for name, _, _ in settings_table() if f"`{name}`" not in text]
    assert not missing, f"settings missing from docs/configuration.md: {missing}"


def test_every_route_is_documented() -> None:
    text = _PARAM.sub("{}", (DOCS / "api.md").read_text())
    paths = create_app().openapi()["paths"]
    missing = [path for path in paths if path != "/healthz" and _PARAM.sub("{}", path) not in text]
    assert not missing, f"routes missing from docs/api.md: {missing}"
