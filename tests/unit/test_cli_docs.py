"""docs/cli.md names every command and every exit code the client commands use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from imagegate.cli import app
from imagegate.cli.client import EXIT_CODES

DOC = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()


def test_every_command_is_documented() -> None:
    group: Any = typer.main.get_command(app)  # a group (typer's own click, so duck-typed)
    names = []
    for name, command in group.commands.items():
        names.append(name)
        names += [f"{name} {sub}" for sub in getattr(command, "commands", {})]
    assert "generate" in names and "tasks wait" in names
    missing = [name for name in names if f"`{name}" not in DOC and f"imagegate {name}" not in DOC]
    assert not missing, f"commands missing from docs/cli.md: {missing}"


def test_every_exit_code_is_documented() -> None:
    for _, code in EXIT_CODES:
        assert f"| {code} |" in DOC
