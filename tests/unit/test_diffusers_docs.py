"""The SDXL example in docs/providers.md is a working provider entry and catalog file."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from imagegate.catalog import load_catalog
from imagegate.catalog.schema import ActionName
from imagegate.providers.config import ProviderConfig
from imagegate.providers.diffusers import round_size

DOC = Path(__file__).parents[2] / "docs" / "providers.md"


def test_the_sdxl_example_configures_a_provider_and_a_model(tmp_path: Path) -> None:
    section = DOC.read_text().split("## The `diffusers` kind", 1)[1].split("\n## ", 1)[0]
    settings_file, catalog_file = re.findall(r"```toml\n(.*?)```", section, re.S)
    (provider,) = (ProviderConfig(**entry) for entry in tomllib.loads(settings_file)["providers"])
    assert (provider.kind, provider.device, provider.dtype) == ("diffusers", "cuda", "float16")
    (tmp_path / "catalog.toml").write_text(catalog_file)
    catalog = load_catalog(tmp_path / "catalog.toml")
    model = catalog.model("sdxl-base-1.0")
    assert model.route == [provider.name]
    assert model.actions == [ActionName.TEXT_TO_IMAGE, ActionName.EDIT_IMAGE]
    for size in model.render.sizes.values():  # SDXL's sizes need no rounding
        width, height = (int(side) for side in size.split("x"))
        assert round_size(width, height, 64) == (width, height)


def test_sizes_round_to_the_nearest_multiple() -> None:
    assert round_size(1000, 1530, 64) == (1024, 1536)
    assert round_size(10, 10, 64) == (64, 64)
