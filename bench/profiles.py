"""Create-and-complete on both profiles side by side, with one and two worker processes.

- embedded (SQLite, in-memory limits, local files): ``imagegate serve`` runs the API and its
  in-process worker pool. It has no separate worker process (``imagegate worker`` needs the
  PostgreSQL job queue), so its "2 workers" row is what that profile does to add one: a second
  ``serve`` on the same data directory (API and pool; the clients are spread over both).
- scale (PostgreSQL, Redis, S3, IMAGEGATE_JOB_QUEUE=postgres): ``imagegate serve --no-worker``
  (``--api`` of them) plus 1 or 2 ``imagegate worker --queues offline --concurrency N``.

Each client loops: create a gpt-image-1.5 task (offline renderer, 1024x1024 PNG), poll it every
20 ms until completed. Prints tasks/s, p50/p99 create-to-completed latency and the gateway
processes' CPU per task for each cell, then the scale/embedded and 2-worker/1-worker ratios. The
scale engines are the test suite's (tests/services.py: throw-away PostgreSQL, Redis and
SeaweedFS on 127.0.0.1, started here and stopped at the end).

    python bench/profiles.py [--quick] [--tasks N] [--levels 1,10,100] [--workers 1,2]
                             [--concurrency 8] [--api 1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
from tests.services import Services, install

from _server import WIDE_TIERS, BenchServer, cpu_seconds, percentile, running_server, running_worker

BODY = {
    "model": "gpt-image-1.5",
    "prompt": "a red fox in fresh snow",
    "aspect_ratio": "1:1",
    "quality": "medium",
}
POLL_S = 0.02
ADMIN_TOKEN = "bench-admin-token"


@dataclass
class Cell:
    rate: float  # tasks/s
    p50: float  # s
    p99: float  # s
    # CPU ms per task by process group: API (embedded: API and its worker pool), workers, and the
    # scale engines (PostgreSQL: postmaster and every backend; Redis; SeaweedFS)
    cpu_ms: dict[str, float]


GROUPS = ("API", "workers", "PostgreSQL", "Redis", "S3")


def group_pids(api: list[int], workers: list[int], services: Services | None) -> list[list[int]]:
    """The PIDs of each of GROUPS now (PostgreSQL backends come and go)."""
    if services is None:
        return [api, workers, [], [], []]
    postgres = [services.postgres.pid] if services.postgres.pid else []
    postmaster = str(services.postgres.pid)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if stat.read_text().rsplit(")", 1)[1].split()[1] == postmaster:
                postgres.append(int(stat.parent.name))
        except (OSError, IndexError):
            continue  # ended meanwhile
    redis = [services.redis.pid] if services.redis.pid else []
    s3 = [services.s3.process.pid] if services.s3.process else []
    return [api, workers, postgres, redis, s3]


def cpu_of(pids: list[int]) -> dict[int, float]:
    seconds = {}
    for pid in pids:
        try:
            seconds[pid] = cpu_seconds(pid)
        except OSError:
            continue
    return seconds


async def send(client: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One request, sent again when the server had just closed the kept-alive connection."""
    for attempt in range(3):
        try:
            return await client.request(method, url, **kwargs)
        except (httpx.ReadError, httpx.RemoteProtocolError):
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def one_task(client: httpx.AsyncClient, key: str) -> float:
    start = time.perf_counter()
    auth = {"Authorization": f"Bearer {key}"}
    headers = {**auth, "Idempotency-Key": str(uuid.uuid4())}  # a create sent again is the same task
    created = await send(client, "POST", "/api/v1/gpt_image/text_to_image", json=BODY, headers=headers)
    created.raise_for_status()
    task_id = created.json()["id"]
    while True:
        await asyncio.sleep(POLL_S)
        task = (await send(client, "GET", f"/api/v1/tasks/{task_id}", headers=auth)).json()
        if task["status"] == "completed":
            return time.perf_counter() - start
        if task["status"] not in ("pending", "processing"):
            raise RuntimeError(f"task ended {task['status']}: {task['error']}")


async def level(
    base_urls: list[str], keys: list[str], clients: int, total: int
) -> tuple[float, float, float]:
    """(tasks/s, p50 s, p99 s) for ``clients`` concurrent clients spread over the API processes;
    client i uses ``keys[i % len(keys)]``."""
    latencies: list[float] = []
    remaining = total
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    pool = [httpx.AsyncClient(base_url=url, limits=limits, timeout=120) for url in base_urls]
    try:

        async def worker(index: int) -> None:
            nonlocal remaining
            client = pool[index % len(pool)]
            while remaining > 0:
                remaining -= 1
                latencies.append(await one_task(client, keys[index % len(keys)]))

        started = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(clients)))
        elapsed = time.perf_counter() - started
    finally:
        for client in pool:
            await client.aclose()
    return len(latencies) / elapsed, statistics.median(latencies), percentile(latencies, 0.99)


def new_accounts(base_url: str, count: int) -> list[str]:
    """API keys of ``count`` new funded accounts (made through the admin API)."""
    keys = []
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as admin:
        for n in range(count):
            account = admin.post("/admin/accounts", json={"name": f"bench-{n}"}).raise_for_status().json()
            admin.post(f"/admin/accounts/{account['id']}/credits", json={"usd": "1000"}).raise_for_status()
            keys.append(
                admin.post(f"/admin/accounts/{account['id']}/keys", json={}).raise_for_status().json()["key"]
            )
    return keys


def describe(profile: str, workers: int, concurrency: int, api: int) -> str:
    if profile == "embedded":
        return f"{workers} serve (API + pool of {concurrency})"
    return f"{api} serve --no-worker + {workers} worker x{concurrency}"


def run_profile(
    profile: str, services: Services | None, workers: int, args: argparse.Namespace, levels: list[int]
) -> dict[int, Cell]:
    with tempfile.TemporaryDirectory() as where, ExitStack() as stack:
        cwd = Path(where)
        env = {
            "IMAGEGATE_DEMO_GRANT_USD": "100000",
            "IMAGEGATE_TIERS": WIDE_TIERS,
            "IMAGEGATE_WORKERS": str(args.concurrency),
            "IMAGEGATE_DEFAULT_PROVIDER": args.provider,
            "IMAGEGATE_ADMIN_TOKEN": ADMIN_TOKEN,
        }
        if services is None:
            apis, serve_args = workers, ()
        else:
            settings = services.settings_for(cwd / ".imagegate")
            env.update({f"IMAGEGATE_{k.upper()}": v for k, v in settings.items()})
            env["IMAGEGATE_JOB_QUEUE"] = "postgres"
            apis, serve_args = args.api, ("--no-worker",)
        first = stack.enter_context(
            running_server(cwd=cwd, serve_args=serve_args, log=cwd / "api-0.log", **env)
        )
        servers = [first]
        for n in range(1, apis):
            log = cwd / f"api-{n}.log"
            servers.append(
                stack.enter_context(
                    running_server(cwd=cwd, key=first.key, serve_args=serve_args, log=log, **env)
                )
            )
        worker_pids = []
        if services is not None:
            for n in range(workers):
                log = cwd / f"worker-{n}.log"
                worker = running_worker(
                    cwd=cwd, queues=args.provider, concurrency=args.concurrency, log=log, **env
                )
                worker_pids.append(stack.enter_context(worker))
        try:
            return measure(profile, services, workers, args, levels, servers, worker_pids)
        except BaseException:
            for log in sorted(cwd.glob("*.log")):  # what the processes said, before they go
                print(f"--- {log.name}\n{log.read_text(errors='replace')[-6000:]}", file=sys.stderr)
            raise


def measure(
    profile: str,
    services: Services | None,
    workers: int,
    args: argparse.Namespace,
    levels: list[int],
    servers: list[BenchServer],
    worker_pids: list[int],
) -> dict[int, Cell]:
    api_pids = [server.pid for server in servers]
    first = servers[0]
    urls = [server.base_url for server in servers]
    keys = [first.key] if args.accounts == "one" else new_accounts(first.base_url, max(levels))
    asyncio.run(level(urls, keys, 2 * len(urls), 4 * len(urls)))  # warm: routes built, pools open
    label = describe(profile, workers, args.concurrency, args.api)
    results = {}
    for clients in levels:
        total = max(args.tasks, clients)
        before = [cpu_of(pids) for pids in group_pids(api_pids, worker_pids, services)]
        rate, p50, p99 = asyncio.run(level(urls, keys, clients, total))
        after = [cpu_of(pids) for pids in group_pids(api_pids, worker_pids, services)]
        # A process that began during the level counts from 0 (a new PostgreSQL backend); one
        # that ended is lost (few).
        cpu_ms = {
            name: sum(t - old.get(pid, 0.0) for pid, t in new.items()) / total * 1000
            for name, old, new in zip(GROUPS, before, after, strict=True)
        }
        results[clients] = Cell(rate, p50, p99, cpu_ms)
        print(
            f"{profile:<9} {label:<38} {clients:>4} clients  {rate:7.2f} tasks/s  "
            f"p50 {p50 * 1000:7.1f} ms  p99 {p99 * 1000:7.1f} ms  CPU ms/task "
            + " ".join(f"{name} {ms:.1f}" for name, ms in cpu_ms.items()),
            flush=True,
        )
    return results


def print_summary(
    results: dict[tuple[str, int], dict[int, Cell]],
    workers: list[int],
    levels: list[int],
    args: argparse.Namespace,
) -> None:
    accounts = "all clients on one account" if args.accounts == "one" else "an account per client"
    print(f"\nprovider {args.provider}, {accounts}, {args.tasks} tasks per cell (at least the clients)")
    print(
        "\n| profile | processes | clients | tasks/s | p50 ms | p99 ms | CPU ms/task: "
        + " / ".join(GROUPS)
        + " |"
    )
    print("|---|---|---|---|---|---|---|")
    for (profile, count), cells in results.items():
        for clients, c in cells.items():
            label = describe(profile, count, args.concurrency, args.api)
            print(
                f"| {profile} | {label} | {clients} | {c.rate:.2f} | {c.p50 * 1000:.0f} | "
                f"{c.p99 * 1000:.0f} | " + " / ".join(f"{c.cpu_ms[name]:.1f}" for name in GROUPS) + " |"
            )
    print("\nscale / embedded (tasks/s; p50)")
    print("| workers | " + " | ".join(f"{c} clients" for c in levels) + " |")
    print("|---|" + "---|" * len(levels))
    for count in workers:
        embedded, scale = results[("embedded", count)], results[("scale", count)]
        row = [
            f"{scale[c].rate / embedded[c].rate:.2f}; {scale[c].p50 / embedded[c].p50:.2f}" for c in levels
        ]
        print(f"| {count} | " + " | ".join(row) + " |")
    if 1 in workers and 2 in workers:
        print("\n2 workers / 1 worker (tasks/s; p50)")
        print("| profile | " + " | ".join(f"{c} clients" for c in levels) + " |")
        print("|---|" + "---|" * len(levels))
        for profile in ("embedded", "scale"):
            one, two = results[(profile, 1)], results[(profile, 2)]
            row = [f"{two[c].rate / one[c].rate:.2f}; {two[c].p50 / one[c].p50:.2f}" for c in levels]
            print(f"| {profile} | " + " | ".join(row) + " |")
    print(
        "\nembedded has no separate worker process (`imagegate worker` needs IMAGEGATE_JOB_QUEUE="
        "postgres): its 2-worker row is two `serve` processes (API + pool each) on one SQLite file.\n"
        f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs "
        "(PostgreSQL, Redis and SeaweedFS share them)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="60 tasks per cell: one to two minutes")
    parser.add_argument("--tasks", type=int, default=None, help="tasks per cell, at least the clients (200)")
    parser.add_argument("--levels", default="1,10,100")
    parser.add_argument("--workers", default="1,2", help="worker processes (embedded: serve processes)")
    parser.add_argument("--concurrency", type=int, default=8, help="tasks one worker process runs at once")
    parser.add_argument("--api", type=int, default=1, help="API processes on the scale profile")
    parser.add_argument(
        "--accounts",
        choices=("one", "each"),
        default="one",
        help="one: every client on the demo account (its balance row is one lock); each: an account per client",
    )
    parser.add_argument(
        "--provider",
        choices=("instant", "offline"),
        default="instant",
        help="instant: a fixed 2 MB PNG at once (the gateway's own cost); offline: the renderer (CPU-bound)",
    )
    args = parser.parse_args()
    args.tasks = args.tasks or (60 if args.quick else 200)
    levels = [int(x) for x in args.levels.split(",")]
    workers = [int(x) for x in args.workers.split(",")]
    install()
    services = Services.start()
    results: dict[tuple[str, int], dict[int, Cell]] = {}
    try:
        for count in workers:
            results[("embedded", count)] = run_profile("embedded", None, count, args, levels)
            results[("scale", count)] = run_profile("scale", services, count, args, levels)
    finally:
        services.stop()
    print_summary(results, workers, levels, args)


if __name__ == "__main__":
    main()
