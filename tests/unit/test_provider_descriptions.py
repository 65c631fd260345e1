"""Pages follow what each provider says of itself (its kind, whether it draws placeholders),
not its name: an operator's offline provider called "drafts" is still flagged."""

from __future__ import annotations

from datetime import date

from imagegate.catalog import load_catalog
from imagegate.catalog.pages import Deployment, line_markdown


def deployment(name: str, kind: str, placeholder: bool) -> Deployment:
    return Deployment(
        base_url="http://127.0.0.1:8000",
        today=date(2026, 11, 25),
        provider_for=lambda model: name,
        retired_models="successor",
        provider_kind=lambda provider: kind,
        is_placeholder=lambda provider: placeholder,
    )


def test_a_renamed_offline_provider_is_still_a_placeholder() -> None:
    catalog = load_catalog()
    line = catalog.lines["gpt-image-2"]
    page = line_markdown(catalog, line, deployment("drafts", "offline", True))
    assert "**Placeholder images.**" in page
    assert "built-in offline renderer" in page


def test_a_real_upstream_under_any_name_is_not_flagged() -> None:
    catalog = load_catalog()
    line = catalog.lines["gpt-image-2"]
    page = line_markdown(catalog, line, deployment("openai-main", "openai", False))
    assert "Placeholder images" not in page
    assert 'served_by: "openai-main"' in page
