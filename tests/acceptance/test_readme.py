"""The README's client examples, pasted as a newcomer would after ``make serve``: every
``imagegate`` line of its shell block and its Python block, run against ``imagegate serve``."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from PIL import Image

from tests.serving import IMAGEGATE, Start

README = Path(__file__).resolve().parents[2] / "README.md"


def client_blocks() -> tuple[list[str], str]:
    """The shell lines and the Python code under "The Python client and the command line"."""
    section = README.read_text().split("### The Python client and the command line", 1)[1]
    shell = re.search(r"```sh\n(.*?)```", section, re.S)
    python = re.search(r"```python\n(.*?)```", section, re.S)
    assert shell and python, "the README lost its client examples"
    lines = [line.split("#", 1)[0].strip() for line in shell.group(1).splitlines()]
    return [line for line in lines if line.startswith("imagegate ")], python.group(1)


def test_readme_shell_and_python_examples_work_after_serve(tmp_path: Path, serve: Start) -> None:
    server = serve(tmp_path)
    assert server.demo_key is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEGATE_")}
    env.update(IMAGEGATE_API_KEY=server.demo_key, IMAGEGATE_BASE_URL=server.base_url,
               XDG_CONFIG_HOME=str(tmp_path / "config"), COLUMNS="200")  # fmt: skip
    shell, python = client_blocks()
    assert shell[0].startswith("imagegate generate")
    for line in shell:
        args = shlex.split(line)
        done = subprocess.run([str(IMAGEGATE), *args[1:]], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=120, check=False)  # fmt: skip
        assert done.returncode == 0, f"{line}: {done.stderr}"
    for name in ("fox.png", "night.png"):
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG"
    ran = subprocess.run([sys.executable, "-c", python], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120, check=False)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert "fox.png" in ran.stdout.splitlines()[0]
