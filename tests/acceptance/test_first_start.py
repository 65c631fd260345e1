"""The first five minutes: a busy port keeps the demo key, admin commands do not make stray
databases, and the README's client lines work against a fresh `imagegate serve`."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

from PIL import Image

from tests.serving import IMAGEGATE, Start


def imagegate(cwd: Path, *args: str, **env_vars: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEGATE_")}
    env.update(env_vars)
    return subprocess.run(
        [str(IMAGEGATE), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_busy_port_says_so_and_keeps_the_demo_key_for_the_next_start(tmp_path: Path, serve: Start) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        refused = imagegate(tmp_path, "serve", "--host", "127.0.0.1", "--port", str(port))
    assert refused.returncode != 0
    assert f"port {port} is in use; try --port {port + 1}" in refused.stderr
    assert "Traceback" not in refused.stderr + refused.stdout
    assert "ig_" not in refused.stdout  # no key was made and shown to nobody
    server = serve(tmp_path)
    assert server.demo_key is not None


def test_admin_commands_outside_a_data_directory_refuse_to_create_one(tmp_path: Path) -> None:
    refused = imagegate(tmp_path, "credits", "grant", "demo", "5")
    assert refused.returncode == 1
    assert str(tmp_path / ".imagegate") in refused.stderr.replace("\n", "")
    assert "IMAGEGATE_DATA_DIR" in refused.stderr and "imagegate init" in refused.stderr
    assert not (tmp_path / ".imagegate").exists()
    assert imagegate(tmp_path, "init").returncode == 0
    assert imagegate(tmp_path, "accounts", "list").stdout.strip() == "[]"


def test_readme_client_lines_after_serve(tmp_path: Path, serve: Start) -> None:
    server = serve(tmp_path)
    assert server.demo_key is not None
    client_env = {"IMAGEGATE_BASE_URL": server.base_url, "IMAGEGATE_API_KEY": server.demo_key,
                  "XDG_CONFIG_HOME": str(tmp_path / "config")}  # fmt: skip
    made = imagegate(
        tmp_path, "generate", "a red fox in snow", "-o", "fox.png", "--aspect", "3:2", **client_env
    )
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == "fox.png"
    with Image.open(tmp_path / "fox.png") as image:
        assert image.width > image.height  # 3:2 at the default model's 1k
    assert "balance" in imagegate(tmp_path, "balance", **client_env).stdout
