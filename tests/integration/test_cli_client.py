"""The client commands against a real gateway: in process (typer's runner) and once as a
subprocess. Profiles live under a temporary XDG_CONFIG_HOME."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner, Result

from imagegate.cli import app
from imagegate.cli.client import SaveFormat
from imagegate.sdk.tasks import SAVE_FORMATS
from tests.conftest import Gateway, png_bytes
from tests.integration.test_sdk_stream import TASK_ID, EventServer, events  # noqa: F401 (a fixture)

IMAGEGATE = Path(sys.executable).parent / "imagegate"


@pytest.fixture
def env(gateway: Gateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A fresh account's key and the gateway's URL, as a user's environment would hold them
    (in a temporary working directory, where ``-o`` defaults to)."""
    monkeypatch.chdir(tmp_path)
    return {
        "IMAGEGATE_API_KEY": gateway.new_account()[1],
        "IMAGEGATE_BASE_URL": gateway.base_url,
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "IMAGEGATE_PROFILE": "",
        "COLUMNS": "200",  # tables unwrapped
    }


def run(env: dict[str, str], *args: str) -> Result:
    return CliRunner(env=env).invoke(app, list(args))


def test_generate_saves_the_image_and_prints_its_path(env: dict[str, str], tmp_path: Path) -> None:
    target = tmp_path / "fox.png"
    result = run(env, "generate", "a red fox in snow", "-o", str(target), "--aspect", "3:2", "--quality", "high",
                 "--model", "gpt-image-1.5")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(target)
    assert "completed in" in result.stderr
    with Image.open(target) as image:
        assert (image.format, image.size) == ("PNG", (1536, 1024))


def test_generate_converts_format_and_json_names_the_saved_file(env: dict[str, str], tmp_path: Path) -> None:
    result = run(env, "generate", "a fox", "-o", str(tmp_path), "--format", "jpeg", "--json", "--quiet")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["status"] == "completed" and result.stderr == ""
    (saved,) = body["saved"]
    with Image.open(saved) as image:
        assert image.format == "JPEG"


def test_format_gif_and_an_unknown_format(env: dict[str, str], tmp_path: Path) -> None:
    saved = run(env, "generate", "a fox", "-o", str(tmp_path / "fox.gif"), "--format", "gif", "-q")
    assert saved.exit_code == 0, saved.output
    with Image.open(tmp_path / "fox.gif") as image:
        assert image.format == "GIF"
    refused = run(env, "generate", "a fox", "--format", "bmp")
    assert refused.exit_code == 2 and "bmp" in refused.stderr  # a usage error, before any task
    assert tuple(SaveFormat) == SAVE_FORMATS


def test_no_wait_prints_the_id_and_tasks_commands_follow_it(env: dict[str, str]) -> None:
    created = run(env, "generate", "a fox", "--no-wait")
    assert created.exit_code == 0, created.output
    task_id = created.stdout.strip()
    waited = run(env, "tasks", "wait", task_id, "--json", "-q")
    assert waited.exit_code == 0 and json.loads(waited.stdout)["status"] == "completed"
    shown = run(env, "tasks", "show", task_id)
    assert f"{task_id} completed" in shown.stdout and "1024x1024" in shown.stdout
    listed = run(env, "tasks", "list", "--json")
    assert [t["id"] for t in json.loads(listed.stdout)] == [task_id]


def test_edit_takes_images_then_the_prompt(env: dict[str, str], tmp_path: Path) -> None:
    first, second = tmp_path / "photo.png", tmp_path / "more.png"
    first.write_bytes(png_bytes(40, 40))
    second.write_bytes(png_bytes(30, 30, (255, 0, 0)))
    result = run(env, "edit", str(first), str(second), "make it night", "-o", str(tmp_path / "night.png"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "night.png").is_file()
    missing = run(env, "edit", str(tmp_path / "nope.png"), "make it night")
    assert missing.exit_code == 4 and "no such image file" in missing.stderr
    masked = run(env, "edit", str(first), "make it night", "--mask", str(second))
    assert masked.exit_code == 4 and "mask_url" in masked.stderr  # uploaded, sent; no model takes one yet


def test_exit_codes_follow_the_error(gateway: Gateway, env: dict[str, str]) -> None:
    failed = run(env, "generate", "[fail] a fox")
    assert failed.exit_code == 7 and "failed" in failed.stderr
    slow = run(env, "generate", "[stall:60] a fox", "--timeout", "0.3", "-q")
    assert slow.exit_code == 5 and "still" in slow.stderr
    invalid = run(env, "generate", "a fox", "--aspect", "7:1")
    assert invalid.exit_code == 4 and "aspect_ratio" in invalid.stderr
    assert run(env, "tasks", "show", "00000000-0000-0000-0000-000000000000").exit_code == 4
    assert run({**env, "IMAGEGATE_API_KEY": "ig_wrong"}, "balance").exit_code == 2
    poor = {**env, "IMAGEGATE_API_KEY": gateway.new_account(usd=None, tier=None)[1]}
    for _ in range(3):
        assert run(poor, "generate", "a fox", "--no-wait").exit_code == 0  # the free calls
    broke = run(poor, "generate", "a fox", "--no-wait")
    assert broke.exit_code == 3 and "insufficient_credits" in broke.stderr


def test_cancel_a_running_task(env: dict[str, str]) -> None:
    task_id = run(env, "generate", "[stall:60] a fox", "--no-wait").stdout.strip()
    canceled = run(env, "tasks", "cancel", task_id, "--json")
    assert canceled.exit_code == 0 and json.loads(canceled.stdout)["status"] == "canceled"
    assert run(env, "tasks", "cancel", task_id).exit_code == 4  # already ended: a conflict
    assert run(env, "tasks", "wait", task_id, "-q").exit_code == 7


def test_balance_usage_and_models(env: dict[str, str], tmp_path: Path) -> None:
    assert run(env, "generate", "a fox", "--model", "gpt-image-1.5", "--aspect", "1:1", "--quality", "medium",
               "-q", "-o", str(tmp_path)).exit_code == 0  # fmt: skip
    balance = run(env, "balance")
    assert "balance $100.00" in balance.stdout and "tier tier2" in balance.stdout
    usage = json.loads(run(env, "usage", "--json").stdout)
    assert [(r["variant"], r["calls"]) for r in usage["data"]] == [("gpt-image-1.5-text-to-image", 1)]
    table = run(env, "usage", "--from", "2026-11-01", "--to", "2026-11-25")
    assert "2026-11-25 │ gpt-image-1.5-text-to-image │ 1 " in table.stdout
    models = run(env, "models")
    assert "gpt-image-2" in models.stdout and "$0.04" in models.stdout and "deprecated" in models.stdout


def test_login_keeps_a_private_profile_used_later(gateway: Gateway, tmp_path: Path) -> None:
    key = gateway.new_account()[1]
    bare = {"XDG_CONFIG_HOME": str(tmp_path / "cfg"), "IMAGEGATE_API_KEY": "", "IMAGEGATE_BASE_URL": ""}
    refused = run(bare, "login", "--base-url", gateway.base_url, "--api-key", "ig_wrong")
    assert refused.exit_code == 2
    assert not (tmp_path / "cfg" / "imagegate" / "config.toml").exists()
    logged = run(bare, "login", "--base-url", gateway.base_url, "--api-key", key, "--profile", "work")
    assert logged.exit_code == 0, logged.output
    config = tmp_path / "cfg" / "imagegate" / "config.toml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert run(bare, "balance").exit_code != 0  # the default profile is still empty
    assert run(bare, "--help").exit_code == 0
    assert run(bare, "balance", "--profile", "work").exit_code == 0
    assert run({**bare, "IMAGEGATE_PROFILE": "work"}, "balance").exit_code == 0
    overridden = run({**bare, "IMAGEGATE_PROFILE": "work", "IMAGEGATE_API_KEY": "ig_env"}, "balance")
    assert overridden.exit_code == 2  # the environment wins over the profile


def test_help_groups_admin_and_client_commands(env: dict[str, str]) -> None:
    text = run({**env, "COLUMNS": "120"}, "--help").stdout
    admin, client = text.index("Server administration"), text.index("Client")
    assert admin < text.index("serve") < client < text.index("generate")


def test_generate_as_a_subprocess(env: dict[str, str], tmp_path: Path) -> None:
    full = {**os.environ, **env}
    done = subprocess.run(
        [str(IMAGEGATE), "generate", "a fox", "-o", str(tmp_path / "fox.webp"), "--format", "webp"],
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(tmp_path / "fox.webp")
    with Image.open(tmp_path / "fox.webp") as image:
        assert image.format == "WEBP"


def test_progress_follows_the_event_stream(events: EventServer, tmp_path: Path) -> None:  # noqa: F811
    env = {"IMAGEGATE_API_KEY": "k", "IMAGEGATE_BASE_URL": events.base_url, "IMAGEGATE_PROFILE": "",
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "COLUMNS": "200"}  # fmt: skip
    shown = run(env, "tasks", "wait", TASK_ID)
    assert shown.exit_code == 0, shown.output
    assert shown.stdout == f"{TASK_ID} completed\n"
    assert "gpt-image-2 completed" in shown.stderr and "previews: 1" in shown.stderr
    assert "100%" in shown.stderr and "completed in" in shown.stderr
    quiet = run(env, "tasks", "wait", TASK_ID, "--quiet", "--json")
    assert quiet.stderr == "" and json.loads(quiet.stdout)["status"] == "completed"
