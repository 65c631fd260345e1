"""The SDK imports and works with only its own dependencies (httpx, httpx-sse, pydantic) installed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Gateway

SRC = Path(__file__).resolve().parents[2] / "src"

SCRIPT = """
import importlib.util, os, sys
from imagegate import AsyncClient, Client, TaskFailedError

for name in ("fastapi", "sqlalchemy", "PIL", "uvicorn", "typer", "mcp", "rich"):
    assert importlib.util.find_spec(name) is None, name + " is importable"
with Client() as client:
    task = client.images.generate("a fox from a bare venv", model="gpt-image-1.5", aspect_ratio="1:1", quality="medium")
    (path,) = task.save(sys.argv[1])
    assert path.read_bytes().startswith(bytes([0x89]) + b"PNG"), path
    pending = client.images.generate("a second fox", wait=False)
    kinds = [type(event).__name__ for event in client.tasks.stream(pending.id)]
    assert kinds[-1] == "TaskEndEvent", kinds
    try:
        client.images.generate("[fail] nope")
    except TaskFailedError as exc:
        print("failed as expected:", exc.code)
server_modules = sorted(m for m in sys.modules if m.startswith(("imagegate.api", "imagegate.db", "imagegate.tasks")))
assert not server_modules, server_modules
print("ok", path.name)
"""


@pytest.mark.slow
def test_sdk_in_a_fresh_venv_without_the_server_dependencies(gateway: Gateway, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "httpx", "httpx-sse", "pydantic"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if installed.returncode != 0:
        pytest.skip(f"cannot install httpx, httpx-sse and pydantic here: {installed.stderr[-500:]}")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(SRC),
        "IMAGEGATE_API_KEY": gateway.new_account()[1],
        "IMAGEGATE_BASE_URL": gateway.base_url,
    }
    ran = subprocess.run(
        [str(python), "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, env=env, timeout=120
    )
    assert ran.returncode == 0, ran.stderr
    assert "failed as expected: upstream_error" in ran.stdout
    assert ran.stdout.strip().endswith(".png")
