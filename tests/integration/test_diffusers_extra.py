"""Without the `imagegate[diffusers]` extra the gateway still starts, and says what to install."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.one_profile("a subprocess without the extra, no engine")

SCRIPT = """
import asyncio, json, sys

from imagegate.providers.base import Action, ImageRequest, ProviderError
from imagegate.providers.config import ProviderConfig
from imagegate.providers.registry import Providers

imported = {name: name in sys.modules for name in ("torch", "diffusers", "transformers")}
for name in ("torch", "diffusers", "transformers"):
    sys.modules[name] = None  # as if the extra were not installed
providers = Providers([ProviderConfig(name="sd", kind="diffusers", model_path=sys.argv[1])])
provider = providers.get("sd")


async def main():
    request = ImageRequest("t1", "sdxl", Action.GENERATE, "a fox", 64, 64)
    try:
        async for _ in provider.run(request):
            pass
    except ProviderError as exc:
        return exc.code, exc.message
    return None, None


code, message = asyncio.run(main())
print(json.dumps({"imported": imported, "label": provider.label, "code": code, "message": message}))
"""


def test_without_the_extra_the_provider_says_what_to_install(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=60, check=True
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["imported"] == {"torch": False, "diffusers": False, "transformers": False}  # lazy
    assert "pip install 'imagegate[diffusers]'" in result["label"]
    assert result["code"] == "model_unavailable"
    assert "pip install 'imagegate[diffusers]'" in result["message"]
    assert "the diffusers extra is missing" in done.stderr  # the operator's log line
