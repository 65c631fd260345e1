"""The official ``openai`` package, newest release, from its own venv against the gateway.

Driven by ``openai_client_driver.py``: every Images and Models operation, every output format
generated and edited, streamed with partial images (sync and async), the retired model's size cells after its shutdown date, and each error
class the gateway can cause. The venv is built once and cached under ``.venv-sdks/``.
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from imagegate.clock import ManualClock
from tests.acceptance.client_venvs import client_python, tiers_with_a_poor_one
from tests.conftest import Gateway, png_bytes, start_gateway

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("openai_client_driver.py")
# The newest release when the venv is built: clients in the wild upgrade, so the test does too.
PACKAGES = ("openai>=3.57",)
AFTER_SHUTDOWN = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)  # gpt-image-1.5 shut down on 2026-12-01
POOR_CREATES_PER_MINUTE = 2


@pytest.fixture(scope="session")
def openai_python() -> Path:
    return client_python("openai", PACKAGES, upgrade=True)


@pytest.fixture(scope="module")
def retired_day_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tiers = tiers_with_a_poor_one(POOR_CREATES_PER_MINUTE)
    gw = start_gateway(
        tmp_path_factory.mktemp("openai-client"),
        clock=ManualClock(AFTER_SHUTDOWN),
        free_calls_per_variant=0,
        tiers=tiers,
    )
    yield gw
    gw.close()


def _closed_port_url() -> str:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def _mask_png() -> bytes:
    layer = Image.new("RGBA", (48, 48), (0, 0, 0, 255))
    layer.paste((0, 0, 0, 0), (8, 8, 40, 40))  # transparent: the part to repaint
    buffer = io.BytesIO()
    layer.save(buffer, "PNG")
    return buffer.getvalue()


def test_openai_package(openai_python: Path, retired_day_gateway: Gateway) -> None:
    gw = retired_day_gateway
    _, key = gw.new_account(usd="500")
    _, poor_key = gw.new_account(usd="50", tier="free")
    _, broke_key = gw.new_account(usd=None)
    config: dict[str, Any] = {
        "base_url": gw.base_url,
        "key": key,
        "poor_key": poor_key,
        "broke_key": broke_key,
        "poor_creates_per_minute": POOR_CREATES_PER_MINUTE,
        "live_model": "gpt-image-2.6-flare",
        "png_b64": base64.b64encode(png_bytes(48, 48, (10, 200, 30))).decode(),
        "mask_b64": base64.b64encode(_mask_png()).decode(),
        "closed_url": _closed_port_url(),
    }
    run = subprocess.run(
        [str(openai_python), str(DRIVER), json.dumps(config)], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    results: dict[str, dict[str, Any]] = report["results"]
    table = "\n".join(f"{'pass' if r['ok'] else 'FAIL'}  {op}: {r['seen']}" for op, r in results.items())
    sys.stderr.write(f"\nopenai {report['version']}\n{table}\n")
    failed = {op: r.get("trace", r["seen"]) for op, r in results.items() if not r["ok"]}
    assert not failed, "\n".join(f"{op}:\n{trace}" for op, trace in failed.items())
    assert len(results) == 28, sorted(results)
