"""Create-and-complete throughput and latency with the offline provider.

Starts ``imagegate serve`` on the embedded defaults, then for 1, 10 and 100
concurrent clients each client loops: create a gpt-image-1.5 task, poll it until
completed. Prints tasks/second, p50/p99 create-to-completed latency and the
server's CPU time per task (independent of the load generator's own cost).

    python bench/create_and_complete.py [--tasks-per-level N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from _server import WIDE_TIERS, cpu_seconds, running_server

BODY = {
    "model": "gpt-image-1.5",
    "prompt": "a red fox in fresh snow",
    "aspect_ratio": "1:1",
    "quality": "medium",
}
POLL_S = 0.02


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def one_task(client: httpx.AsyncClient) -> float:
    start = time.perf_counter()
    created = await client.post("/api/v1/gpt_image/text_to_image", json=BODY)
    created.raise_for_status()
    task_id = created.json()["id"]
    while True:
        await asyncio.sleep(POLL_S)
        task = (await client.get(f"/api/v1/tasks/{task_id}")).json()
        if task["status"] == "completed":
            return time.perf_counter() - start
        if task["status"] != "pending" and task["status"] != "processing":
            raise RuntimeError(f"task ended {task['status']}: {task['error']}")


async def level(base_url: str, key: str, pid: int, clients: int, total: int) -> None:
    latencies: list[float] = []
    remaining = total
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits, timeout=120) as client:

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                latencies.append(await one_task(client))

        cpu_before = cpu_seconds(pid)
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(pid) - cpu_before
    print(
        f"{clients:>4} clients  {len(latencies):>4} tasks  {len(latencies) / elapsed:7.2f} tasks/s  "
        f"p50 {statistics.median(latencies) * 1000:7.1f} ms  p99 {percentile(latencies, 0.99) * 1000:7.1f} ms  "
        f"server CPU {cpu / len(latencies) * 1000:6.1f} ms/task"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=200, help="tasks per concurrency level (min: clients)")
    parser.add_argument("--levels", default="1,10,100")
    args = parser.parse_args()
    with running_server(IMAGEGATE_DEMO_GRANT_USD="1000", IMAGEGATE_TIERS=WIDE_TIERS) as server:
        print(
            f"imagegate at {server.base_url}, offline provider, 1024x1024 PNG, poll every {POLL_S * 1000:.0f} ms"
        )
        for clients in (int(x) for x in args.levels.split(",")):
            await level(server.base_url, server.key, server.pid, clients, max(args.tasks, clients))


if __name__ == "__main__":
    asyncio.run(main())
