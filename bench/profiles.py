"""Create-and-complete on both profiles side by side: embedded (SQLite, memory, local files) and
scale (PostgreSQL, Redis, S3), with one and two ``imagegate serve`` processes on the same data.

Each client loops: create a gpt-image-1.5 task (offline provider) on one of the processes, poll
it until completed. Prints tasks/second and p50/p99 create-to-completed latency per cell, then the
scale/embedded ratios. The scale engines are the test suite's (tests/services.py: throw-away
PostgreSQL, Redis and SeaweedFS on 127.0.0.1, started here and stopped at the end).

    python bench/profiles.py [--tasks N] [--levels 1,10,100] [--processes 1,2]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
from tests.services import Services, install

from _server import WIDE_TIERS, percentile, running_server

BODY = {
    "model": "gpt-image-1.5",
    "prompt": "a red fox in fresh snow",
    "aspect_ratio": "1:1",
    "quality": "medium",
}
POLL_S = 0.02


async def send(client: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One request, sent again when the server had just closed the kept-alive connection."""
    for attempt in range(3):
        try:
            return await client.request(method, url, **kwargs)
        except (httpx.ReadError, httpx.RemoteProtocolError):
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def one_task(client: httpx.AsyncClient) -> float:
    start = time.perf_counter()
    headers = {"Idempotency-Key": str(uuid.uuid4())}  # a create sent again is the same task
    created = await send(client, "POST", "/api/v1/gpt_image/text_to_image", json=BODY, headers=headers)
    created.raise_for_status()
    task_id = created.json()["id"]
    while True:
        await asyncio.sleep(POLL_S)
        task = (await send(client, "GET", f"/api/v1/tasks/{task_id}")).json()
        if task["status"] == "completed":
            return time.perf_counter() - start
        if task["status"] not in ("pending", "processing"):
            raise RuntimeError(f"task ended {task['status']}: {task['error']}")


async def level(base_urls: list[str], key: str, clients: int, total: int) -> tuple[float, float, float]:
    """(tasks/s, p50 s, p99 s) for ``clients`` concurrent clients spread over the processes."""
    latencies: list[float] = []
    remaining = total
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with Clients(base_urls, headers, limits) as pool:

        async def worker(index: int) -> None:
            nonlocal remaining
            client = pool[index % len(pool)]
            while remaining > 0:
                remaining -= 1
                latencies.append(await one_task(client))

        started = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(clients)))
        elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, statistics.median(latencies), percentile(latencies, 0.99)


class Clients:
    """One AsyncClient per process."""

    def __init__(self, base_urls: list[str], headers: dict[str, str], limits: httpx.Limits) -> None:
        self.clients = [
            httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=120) for url in base_urls
        ]

    async def __aenter__(self) -> list[httpx.AsyncClient]:
        return self.clients

    async def __aexit__(self, *_: object) -> None:
        for client in self.clients:
            await client.aclose()


def run_profile(
    name: str, services: Services | None, processes: int, levels: list[int], tasks: int
) -> dict[int, tuple[float, float, float]]:
    with tempfile.TemporaryDirectory() as where, ExitStack() as stack:
        cwd = Path(where)
        env = {"IMAGEGATE_DEMO_GRANT_USD": "100000", "IMAGEGATE_TIERS": WIDE_TIERS}
        if services is not None:
            settings = services.settings_for(cwd / ".imagegate")
            env.update({f"IMAGEGATE_{k.upper()}": v for k, v in settings.items()})
        first = stack.enter_context(running_server(cwd=cwd, **env))
        servers = [first]
        for _ in range(processes - 1):
            servers.append(stack.enter_context(running_server(cwd=cwd, key=first.key, **env)))
        results = {}
        for clients in levels:
            results[clients] = asyncio.run(
                level([s.base_url for s in servers], first.key, clients, max(tasks, clients))
            )
            rate, p50, p99 = results[clients]
            print(
                f"{name:<9} {processes} proc {clients:>4} clients  {rate:7.2f} tasks/s  "
                f"p50 {p50 * 1000:7.1f} ms  p99 {p99 * 1000:7.1f} ms",
                flush=True,
            )
        return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=200, help="tasks per cell (at least the clients)")
    parser.add_argument("--levels", default="1,10,100")
    parser.add_argument("--processes", default="1,2")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    install()
    services = Services.start()
    try:
        for processes in (int(x) for x in args.processes.split(",")):
            embedded = run_profile("embedded", None, processes, levels, args.tasks)
            scale = run_profile("scale", services, processes, levels, args.tasks)
            for clients in levels:
                (e_rate, e_p50, _), (s_rate, s_p50, _) = embedded[clients], scale[clients]
                print(
                    f"ratio     {processes} proc {clients:>4} clients  scale/embedded throughput "
                    f"{s_rate / e_rate:5.2f}  p50 {s_p50 / e_p50:5.2f}",
                    flush=True,
                )
    finally:
        services.stop()


if __name__ == "__main__":
    main()
