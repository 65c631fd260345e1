"""Accounts and keys: the admin HTTP routes and the ``imagegate`` command line."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from imagegate.settings import Settings
from tests.conftest import ADMIN_TOKEN, Gateway, start_gateway
from tests.profiles import database_cells, gateway_env

# On both profiles (tests/profiles.py): the HTTP routes and two CLI round trips; the CLI's
# argument errors and its settings table do not touch the engines.

IMAGEGATE = Path(sys.executable).parent / "imagegate"

ADMIN_ROUTES = [
    ("POST", "/admin/accounts", {"name": "someone"}),
    ("GET", "/admin/accounts", None),
    ("POST", "/admin/accounts/someone/keys", {"name": "k"}),
    ("GET", "/admin/accounts/someone/keys", None),
    ("POST", "/admin/keys/ig_abcdefghi/revoke", None),
]


def call(client: httpx.Client, method: str, path: str, body: Any) -> httpx.Response:
    return client.request(method, path, json=body) if body is not None else client.request(method, path)


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


# -- admin HTTP ----------------------------------------------------------------------------------
@pytest.fixture
def no_admin_gateway(tmp_path: Path) -> Iterator[Gateway]:
    gw = start_gateway(tmp_path, admin_token=None)
    try:
        yield gw
    finally:
        gw.close()


def test_admin_routes_do_not_exist_without_a_token(no_admin_gateway: Gateway) -> None:
    for client in (no_admin_gateway.client(), no_admin_gateway.client(ADMIN_TOKEN)):
        for method, path, body in ADMIN_ROUTES:
            response = call(client, method, path, body)
            assert response.status_code == 404, (method, path, response.text)
            assert response.json()["error"]["code"] == "not_found"


def test_admin_routes_refuse_a_wrong_token(gateway: Gateway) -> None:
    for client in (gateway.client("not-the-token"), gateway.client()):
        for method, path, body in ADMIN_ROUTES:
            response = call(client, method, path, body)
            assert response.status_code == 401, (method, path, response.text)
            assert response.json()["error"]["code"] == "authentication"
    assert not any(a["name"] == "someone" for a in gateway.admin().get("/admin/accounts").json()["data"])


def test_accounts_are_unique_by_name(gateway: Gateway) -> None:
    admin = gateway.admin()
    name = unique("acme")
    created = admin.post("/admin/accounts", json={"name": name})
    assert created.status_code == 201
    assert created.json()["name"] == name
    duplicate = admin.post("/admin/accounts", json={"name": name})
    assert duplicate.status_code == 409
    assert duplicate.json()["error"]["code"] == "conflict"
    listed = [a for a in admin.get("/admin/accounts").json()["data"] if a["name"] == name]
    assert [a["id"] for a in listed] == [created.json()["id"]]


def test_key_lifecycle(gateway: Gateway) -> None:
    admin = gateway.admin()
    name = unique("keys")
    account = admin.post("/admin/accounts", json={"name": name}).json()
    first = admin.post(f"/admin/accounts/{name}/keys", json={"name": "laptop"})
    second = admin.post(f"/admin/accounts/{account['id']}/keys", json={"name": "server"})
    assert first.status_code == second.status_code == 201
    key, other = first.json()["key"], second.json()["key"]
    prefix = first.json()["prefix"]
    assert key.startswith("ig_") and len(key) >= 35
    assert key.startswith(prefix) and len(prefix) < len(key)
    assert key != other

    listing = admin.get(f"/admin/accounts/{name}/keys")
    assert listing.status_code == 200
    assert sorted(k["prefix"] for k in listing.json()["data"]) == sorted([prefix, second.json()["prefix"]])
    for secret in (key, other):
        assert secret not in listing.text
        assert hashlib.sha256(secret.encode()).hexdigest() not in listing.text

    for secret in (key, other):
        me = gateway.client(secret).get("/api/v1/me")
        assert me.status_code == 200, me.text
    revoked = admin.post(f"/admin/keys/{prefix}/revoke")
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"]
    refused = gateway.client(key).get("/api/v1/me")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "authentication"
    assert gateway.client(other).get("/api/v1/me").status_code == 200
    after = {k["prefix"]: k for k in admin.get(f"/admin/accounts/{name}/keys").json()["data"]}
    assert after[prefix]["revoked_at"] and after[second.json()["prefix"]]["revoked_at"] is None


def test_unknown_account_and_key_are_404(gateway: Gateway) -> None:
    admin = gateway.admin()
    assert admin.post("/admin/accounts/no-such-account/keys", json={}).status_code == 404
    assert admin.get("/admin/accounts/no-such-account/keys").status_code == 404
    assert admin.post("/admin/keys/ig_notakey00/revoke").status_code == 404


def test_the_database_stores_only_a_hash_of_the_key(gateway: Gateway) -> None:
    _, key = gateway.new_account()
    assert gateway.client(key).get("/api/v1/me").status_code == 200
    cells = database_cells(gateway.settings.data_dir)
    assert hashlib.sha256(key.encode()).hexdigest() in cells
    assert not [cell for cell in cells if key in cell]


# -- CLI -----------------------------------------------------------------------------------------
def cli(data_dir: Path, *args: str, **env_vars: str) -> subprocess.CompletedProcess[str]:
    env = gateway_env(data_dir, **env_vars)
    return subprocess.run(
        [str(IMAGEGATE), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def cli_json(data_dir: Path, *args: str) -> Any:
    result = cli(data_dir, *args)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return json.loads(result.stdout)


def test_cli_accounts_and_keys(tmp_path: Path) -> None:
    data = tmp_path / "data"
    created = cli(data, "accounts", "create", "acme")
    assert created.returncode == 0, created.stderr
    assert "acme" in created.stdout

    issued = cli(data, "keys", "create", "acme", "--json", "--name", "ci")
    assert issued.returncode == 0, issued.stderr
    result = json.loads(issued.stdout)
    key, prefix = result["key"], result["prefix"]
    assert key.startswith("ig_") and len(key) >= 35 and key.startswith(prefix)

    listed = cli(data, "keys", "list", "acme")
    assert listed.returncode == 0, listed.stderr
    keys = json.loads(listed.stdout)
    assert [(k["prefix"], k["name"], k["revoked_at"]) for k in keys] == [(prefix, "ci", None)]
    assert key not in listed.stdout
    assert hashlib.sha256(key.encode()).hexdigest() not in listed.stdout

    assert not [cell for cell in database_cells(data) if key in cell]

    revoked = cli(data, "keys", "revoke", prefix)
    assert revoked.returncode == 0, revoked.stderr
    assert cli_json(data, "keys", "list", "acme")[0]["revoked_at"]


@pytest.mark.parametrize(
    "args", [("keys", "create", "nobody"), ("keys", "list", "nobody"), ("keys", "revoke", "ig_nothing00")]
)
def test_cli_errors_exit_1_with_a_message(tmp_path: Path, args: tuple[str, ...]) -> None:
    result = cli(tmp_path, *args)
    assert result.returncode == 1
    assert result.stdout == ""
    assert "error" in result.stderr and args[-1] in result.stderr


def test_cli_duplicate_account_exits_1(tmp_path: Path) -> None:
    assert cli(tmp_path, "accounts", "create", "twice").returncode == 0
    again = cli(tmp_path, "accounts", "create", "twice")
    assert again.returncode == 1
    assert "twice" in again.stderr


def test_cli_settings_lists_every_variable(tmp_path: Path) -> None:
    # an ordinary 80-column terminal (and what rich assumes when the output is piped)
    result = cli(tmp_path, "settings", COLUMNS="80")
    assert result.returncode == 0, result.stderr
    names = [f"IMAGEGATE_{name.upper()}" for name in Settings.model_fields]
    assert "IMAGEGATE_DATA_DIR" in names and "IMAGEGATE_RETIRED_MODELS" in names
    printed = set(re.findall(r"IMAGEGATE_[A-Z0-9_]+", result.stdout))
    missing = [name for name in names if name not in printed]
    assert not missing, f"not printed in full: {missing}\n{result.stdout}"


def test_a_cli_key_works_against_a_server_on_the_same_data_dir(tmp_path: Path) -> None:
    assert cli(tmp_path, "accounts", "create", "shop").returncode == 0
    keep = cli_json(tmp_path, "keys", "create", "shop", "--json")
    drop = cli_json(tmp_path, "keys", "create", "shop", "--json")
    assert cli(tmp_path, "keys", "revoke", drop["prefix"]).returncode == 0
    gw = start_gateway(tmp_path)
    try:
        me = gw.client(keep["key"]).get("/api/v1/me")
        assert me.status_code == 200, me.text
        assert me.json()["id"] == keep["account_id"]
        assert gw.client(drop["key"]).get("/api/v1/me").status_code == 401
        # and the server sees the account the CLI made
        names = [a["name"] for a in gw.admin().get("/admin/accounts").json()["data"]]
        assert names == ["shop"]
    finally:
        gw.close()
