"""Fixtures: real gateway servers on 127.0.0.1, accounts and keys made through the admin API."""

from __future__ import annotations

import asyncio
import io
import os
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from PIL import Image

from imagegate.api import create_app
from imagegate.api.app import GatewayServer
from imagegate.billing import ledger
from imagegate.clock import Clock, ManualClock
from imagegate.gateway import Gateway as Core
from imagegate.queue import Queue
from imagegate.settings import Settings
from imagegate.tasks import recovery
from tests import profiles
from tests.profiles import EMBEDDED, SCALE, Profile
from tests.services import Services
from tests.serving import serve

__all__ = ["serve"]  # a fixture: `imagegate serve` as a subprocess

T = TypeVar("T")
ADMIN_TOKEN = "test-admin-token"
# Every in-process gateway lives on this calendar, whatever the real date: gpt-image-1.5 is
# still live (it shuts down 2026-12-01). Retirement tests move the clock or the dates on purpose.
# A developer's own OpenAI credentials must never route a test to the real upstream (zero
# configuration routes GPT Image to `openai` when they are set); tests that want it set them.
for _name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
    os.environ.pop(_name, None)
# pytest-xdist gives its processes COLUMNS=80 and LINES=24, and a rich Console made at import
# would keep them: the CLI tests set the width they want per call.
for _name in ("COLUMNS", "LINES"):
    os.environ.pop(_name, None)
TEST_EPOCH = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--profile",
        choices=("both", EMBEDDED, SCALE),
        default="both",
        help="which profile tests marked `scale` run on (both: each of them once)",
    )


INTEGRATION = Path(__file__).parent / "integration"


def runs_on_both(definition: pytest.Item | pytest.Function) -> bool:
    """The integration suite runs on both profiles, as do tests elsewhere marked ``scale``; a module
    marked ``one_profile`` (with its reason) is about one engine or none and runs once."""
    if definition.get_closest_marker("one_profile") is not None:
        return False
    return definition.path.is_relative_to(INTEGRATION) or definition.get_closest_marker("scale") is not None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """See ``runs_on_both`` and tests/profiles.py."""
    if not runs_on_both(metafunc.definition):
        return
    chosen = metafunc.config.getoption("--profile")
    names = [EMBEDDED, SCALE] if chosen == "both" else [chosen]
    # Embedded is the parameter None: the same cached profile as the tests that run once.
    values = [None if name == EMBEDDED else name for name in names]
    metafunc.parametrize("profile", values, ids=names, indirect=True, scope="session")


def _profile_of(item: pytest.Item) -> str:
    callspec = getattr(item, "callspec", None)
    return SCALE if callspec is not None and callspec.params.get("profile") == SCALE else EMBEDDED


def pytest_itemcollected(item: pytest.Item) -> None:
    """Under pytest-xdist's ``--dist loadgroup`` (``make test``), a module's tests on one profile
    are one group: its module-scoped gateways start once, in one worker."""
    if item.config.getoption("dist", "no") == "loadgroup":
        module = item.nodeid.split("::", 1)[0]
        item.add_marker(pytest.mark.xdist_group(f"{module}@{_profile_of(item)}"))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """One profile after the other, so each process starts the shared gateway once per profile."""
    items.sort(key=lambda item: _profile_of(item) == SCALE)


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    """PostgreSQL, Redis and S3 servers, started the first time a scale-profile test needs them."""
    started = Services.start()
    yield started
    started.stop()


@pytest.fixture(scope="session", autouse=True)
def profile(request: pytest.FixtureRequest) -> Iterator[Profile]:
    """The profile the running test's gateways are on; a fixture that starts a gateway in a
    module marked ``scale`` must request it, so it is made again for each profile."""
    if getattr(request, "param", None) == SCALE:
        chosen = Profile(SCALE, request.getfixturevalue("services"))
    else:
        chosen = Profile(EMBEDDED)
    profiles.use(chosen)
    yield chosen
    profiles.use(Profile(EMBEDDED))


_live: dict[int, tuple[str, str]] = {}  # id(gateway) -> (profile name, test file that started it)


def _test_file() -> str:
    """The file of the test being set up or run (module fixtures start inside its setup)."""
    return os.environ.get("PYTEST_CURRENT_TEST", "").split("::", 1)[0]


@pytest.fixture(autouse=True)
def _gateways_match_profile(profile: Profile) -> None:
    """Fail loudly when a gateway of the other profile started in this file is still in use (a
    fixture that starts one did not request ``profile``), instead of testing the wrong engines."""
    here = _test_file()
    stale = [name for name, where in _live.values() if where == here and name != profile.name]
    assert not stale, f"a gateway of the {stale[0]} profile is still live: request `profile` in its fixture"


class ServerThread:
    """A real uvicorn server on a free loopback port, in a thread with its own event loop."""

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self.settings = settings
        self.app = create_app(settings, clock=clock)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        self.server = GatewayServer(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def call(self, work: Callable[[Core, Queue], Awaitable[T]], timeout: float = 60) -> T:
        """Run ``work(gateway, queue)`` on the server's own event loop and return its result."""
        loop = self.server.loop
        assert loop is not None
        state = self.app.state
        return asyncio.run_coroutine_threadsafe(work(state.gateway, state.queue), loop).result(timeout)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@dataclass
class Gateway:
    """A running gateway and helpers to talk to it."""

    base_url: str
    settings: Settings
    thread: ServerThread
    clock: ManualClock
    clients: list[httpx.Client] = field(default_factory=list)

    @property
    def core(self) -> Core:
        """The gateway object inside the server (its signer, storage, database)."""
        core: Core = self.thread.app.state.gateway
        return core

    def client(self, key: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        kwargs.setdefault("follow_redirects", True)  # downloads on S3 are redirects to the bucket
        client = httpx.Client(base_url=self.base_url, headers=headers, timeout=30, **kwargs)
        self.clients.append(client)
        return client

    def admin(self) -> httpx.Client:
        return self.client(ADMIN_TOKEN)

    def new_account(
        self, name: str | None = None, *, usd: str | None = "100", tier: str | None = "tier2"
    ) -> tuple[str, str]:
        """(account id, API key) of a fresh account: by default funded and pinned to tier2, so
        tests that are not about billing or limits never meet them. ``usd=None, tier=None``
        gives an account as a new user gets it."""
        admin = self.admin()
        response = admin.post("/admin/accounts", json={"name": name or f"acct-{uuid.uuid4().hex[:10]}"})
        assert response.status_code == 201, response.text
        account_id = response.json()["id"]
        if usd is not None:
            granted = admin.post(f"/admin/accounts/{account_id}/credits", json={"usd": usd, "note": "test"})
            assert granted.status_code == 201, granted.text
        if tier is not None:
            pinned = admin.put(f"/admin/accounts/{account_id}/tier", json={"tier": tier})
            assert pinned.status_code == 200, pinned.text
        key = admin.post(f"/admin/accounts/{account_id}/keys", json={"name": "test"})
        assert key.status_code == 201, key.text
        return account_id, key.json()["key"]

    def user(self) -> httpx.Client:
        return self.client(self.new_account()[1])

    def wait(self, client: httpx.Client, task_id: str, timeout: float = 30) -> dict[str, Any]:
        """Poll a task until it reaches a terminal status."""
        deadline = time.monotonic() + timeout
        while True:
            body = client.get(f"/api/v1/tasks/{task_id}").json()
            if body["status"] in ("completed", "failed", "canceled"):
                return body
            if time.monotonic() > deadline:
                raise AssertionError(f"task {task_id} still {body['status']} after {timeout} s")
            time.sleep(0.05)

    def drain(self) -> None:
        """Return once every task queued so far has run (the worker pool's drain mode)."""
        self.thread.call(lambda _, queue: queue.drain())

    def sweep(self) -> int:
        """One retention pass now, as the sweeper makes it: the count of deleted objects."""
        return self.thread.call(lambda core, _: recovery.sweep_expired(core))

    def close(self) -> None:
        _live.pop(id(self), None)
        for client in self.clients:
            client.close()
        self.thread.stop()


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Test settings for a gateway with this data directory, on the current profile's engines."""
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "admin_token": ADMIN_TOKEN,
        "default_provider": "fake",  # behaves like offline, fails or stalls on prompt markers
        "fetch_allow_hosts": ["127.0.0.1"],
        "demo_account": False,
        "max_upload_bytes": 2 * 1024 * 1024,
        "log_level": "warning",
        **profiles.current().settings(data_dir),
    }
    values.update(overrides)
    return Settings(**values)


def start_gateway(data_dir: Path, *, clock: ManualClock | None = None, **overrides: Any) -> Gateway:
    settings = make_settings(data_dir, **overrides)
    clock = clock or ManualClock(TEST_EPOCH)
    thread = ServerThread(settings, clock)
    gw = Gateway(base_url=thread.start(), settings=settings, thread=thread, clock=clock)
    _live[id(gw)] = (profiles.current().name, _test_file())
    return gw


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory, profile: Profile) -> Iterator[Gateway]:
    """One shared gateway for tests that do not need special settings."""
    # Room for the stalled tasks tests leave running, so none waits for a slot behind them.
    gw = start_gateway(tmp_path_factory.mktemp("gateway"), workers=32)
    yield gw
    # After every test that used it: its ledger still balances, whatever those tests did.
    drifts, violations = gw.thread.call(_ledger_problems)
    gw.close()
    assert not drifts and not violations, f"shared gateway's ledger: {drifts} {violations}"


async def _ledger_problems(core: Core, _: Queue) -> tuple[list[ledger.Drift], list[str]]:
    async with core.db.transaction() as session:
        return await ledger.check(session), await ledger.violations(session)


@pytest.fixture
def user(gateway: Gateway) -> httpx.Client:
    """A client authenticated as a brand-new account."""
    return gateway.user()


def png_bytes(width: int = 64, height: int = 64, color: tuple[int, int, int] = (0, 0, 255)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, "PNG")
    return buffer.getvalue()


T2I_15 = {"model": "gpt-image-1.5", "prompt": "a blue whale", "aspect_ratio": "1:1", "quality": "medium"}


class _ImageHandler(BaseHTTPRequestHandler):
    """Routes of the loopback image host that source-image tests fetch from."""

    routes: dict[str, tuple[int, dict[str, str], bytes]] = {}

    def do_GET(self) -> None:
        status, headers, body = self.routes.get(self.path, (404, {}, b"not found"))
        if self.path.startswith("/slow"):
            time.sleep(3)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class ImageHost:
    base_url: str
    routes: dict[str, tuple[int, dict[str, str], bytes]]

    def serve(self, path: str, body: bytes, content_type: str = "image/png", status: int = 200) -> str:
        self.routes[path] = (status, {"Content-Type": content_type}, body)
        return self.base_url + path

    def redirect(self, path: str, location: str) -> str:
        self.routes[path] = (302, {"Location": location}, b"")
        return self.base_url + path


@pytest.fixture(scope="session")
def image_host() -> Iterator[ImageHost]:
    """A plain HTTP server on 127.0.0.1 standing in for a user's image host."""
    routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
    handler = type("Handler", (_ImageHandler,), {"routes": routes})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield ImageHost(base_url=f"http://127.0.0.1:{server.server_address[1]}", routes=routes)
    server.shutdown()
    server.server_close()
