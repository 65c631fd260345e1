"""RunAPI's three Python SDKs, unchanged, against the gateway on 127.0.0.1.

Each SDK runs from its own virtual environment (built once and cached under ``.venv-sdks/``),
driven by ``runapi_sdk_driver.py``: every resource and error class the packages offer,
generate and edit, uploads, and a canceled task. A package missing from the index fails
the test loudly: nothing here is skipped.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.acceptance.client_venvs import client_python, tiers_with_a_poor_one
from tests.conftest import ADMIN_TOKEN, Gateway, ImageHost, png_bytes, start_gateway

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("runapi_sdk_driver.py")
# Pinned to the releases whose sources were read for the gateway's RunAPI face.
SDK_PACKAGES = (
    "runapi-core==0.10.1",
    "runapi-gpt-image==0.3.0",
    "runapi-gpt-image-2==0.4.0",
    "runapi-gpt-image-2-5==0.3.0",
)
CLIENTS = {
    "gpt-image": (
        "runapi.gpt_image",
        "GptImageClient",
        "gpt_image",
        "gpt-image-1.5",
        {"aspect_ratio": "1:1", "quality": "medium"},
    ),
    "gpt-image-2": (
        "runapi.gpt_image_2",
        "GptImage2Client",
        "gpt_image_2",
        "gpt-image-2",
        {"aspect_ratio": "1:1"},
    ),
    "gpt-image-2.5": (
        "runapi.gpt_image_2_5",
        "GptImage25Client",
        "gpt_image_2_5",
        "gpt-image-2.5-flare",
        {"aspect_ratio": "1:1"},
    ),
}
POOR_CREATES_PER_MINUTE = 3


@pytest.fixture(scope="session")
def sdk_python() -> Path:
    """The interpreter of a venv holding the RunAPI SDKs, built on first use and then reused."""
    return client_python("runapi", SDK_PACKAGES)


@pytest.fixture(scope="module")
def sdk_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    # No free calls, so every completed task carries a real cost; a tier whose limit a test can reach.
    tiers = tiers_with_a_poor_one(POOR_CREATES_PER_MINUTE)
    gw = start_gateway(tmp_path_factory.mktemp("sdks"), free_calls_per_variant=0, tiers=tiers)
    yield gw
    gw.close()


def _closed_port_url() -> str:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize("name", sorted(CLIENTS))
def test_runapi_sdk(name: str, sdk_python: Path, sdk_gateway: Gateway, image_host: ImageHost) -> None:
    package, client, service, model, params = CLIENTS[name]
    account_id, key = sdk_gateway.new_account()
    email = f"{name}@example.test"
    admin = httpx.Client(base_url=sdk_gateway.base_url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    with admin:
        assert admin.patch(f"/admin/accounts/{account_id}", json={"email": email}).status_code == 200
    _, poor_key = sdk_gateway.new_account(usd=None, tier="free")
    png = png_bytes(48, 48, (10, 200, 30))
    config: dict[str, Any] = {
        "package": package,
        "client": client,
        "service": service,
        "model": model,
        "params": params,
        "base_url": sdk_gateway.base_url,
        "key": key,
        "poor_key": poor_key,
        "poor_creates_per_minute": POOR_CREATES_PER_MINUTE,
        "email": email,
        "png_b64": base64.b64encode(png).decode(),
        "foreign_url": image_host.serve(f"/sdk-{name}.png", png),
        "closed_url": _closed_port_url(),
    }
    run = subprocess.run(
        [str(sdk_python), str(DRIVER), json.dumps(config)], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    results: dict[str, dict[str, Any]] = json.loads(run.stdout)
    table = "\n".join(f"{'pass' if r['ok'] else 'FAIL'}  {op}: {r['seen']}" for op, r in results.items())
    sys.stderr.write(f"\n{name}\n{table}\n")
    failed = {op: r.get("trace", r["seen"]) for op, r in results.items() if not r["ok"]}
    assert not failed, "\n".join(f"{op}:\n{trace}" for op, trace in failed.items())
    assert len(results) == 25, sorted(results)
