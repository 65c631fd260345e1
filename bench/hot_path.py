"""imagegate's hot path against the floor (bench/floor.py): what the gateway adds to a task.

imagegate runs as ``imagegate serve`` in a scratch directory with the ``instant`` provider (one
shared ~2 MB PNG, no rendering), billing and rate limits on, tiers no client reaches. The floor
does the same task's minimum work on SQLite under the same uvicorn. Every cell runs on both, in
alternating order (A/B, then B/A), for 3 rounds; tables show the median of the rounds, the ratio
imagegate/floor of the medians and each round's own ratio.

Cells: create + run + complete + GET until completed, at 1 / 10 / 100 concurrent clients, polling
every 20 ms, and backing off as RunAPI's SDKs do (here 0.25 s doubling to 2 s, to stay short);
the same with an account holding 50,000 tasks of history (rows inserted straight into the
scratch database before the server starts); a loop of GETs of one completed task; create only
(imagegate: the fake provider stalling, so nothing runs; the floor: a pending row); the OpenAI
face at 1 client; create only again on a server whose account holds the 50,000 tasks (the
create's cost must not grow with history). Server CPU is utime + stime of the server process
from /proc, read before and after each cell, so the load generator's own cost is not in it; for
the task cells and the OpenAI face its kernel share (stime: page cache, sockets) is shown apart.

Then: imagegate on 2 cores against itself pinned to one core and against two processes on the
same database (10 clients, 20 ms polling; a second core or process must never make it slower);
resident memory of the create-only servers with 1,000 tasks in flight, then with 1,000 OpenAI
face calls waiting on stalled tasks as well, and the server CPU those waiting calls burn; and
memory growth over 10,000 completed tasks (2,000 with --quick).

    python bench/hot_path.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from _server import WIDE_TIERS, cpu_seconds, cpu_split, percentile, rss_mib, running_server, stop

ROUNDS = 3
HISTORY = 50_000
CREATE = "/api/v1/gpt_image/text_to_image"
BODY = {
    "model": "gpt-image-1.5",
    "prompt": "a red fox in fresh snow",
    "aspect_ratio": "1:1",
    "quality": "medium",
}
STALLED = {
    **BODY,
    "prompt": "[stall:600] a red fox",
}  # imagegate's fake provider waits; the floor stays pending
STALLED_PROMPT = {"prompt": STALLED["prompt"]}
OPENAI_BODY = {"model": "gpt-image-1.5", "prompt": "a red fox in fresh snow", "size": "1024x1024"}
IMAGEGATE_ENV = {
    "IMAGEGATE_DEFAULT_PROVIDER": "instant",
    "IMAGEGATE_DEMO_GRANT_USD": "1000000",  # billing on, credits no run exhausts
    "IMAGEGATE_TIERS": WIDE_TIERS,  # rate limits on, at limits no run reaches
}
# Operations per cell (tasks by client count): bounded loops, sized for ~5 minutes (or ~1-2) on
# 2 cores. /proc counts CPU in 10 ms ticks, so the cheap cells (GET, create only, the OpenAI face)
# need hundreds.
FULL = {
    "poll": {1: 30, 10: 100, 100: 300},
    "backoff": {1: 12, 10: 40, 100: 200},
    "gets": 1000,
    "creates": 400,
    "openai": 300,
    "growth": 10_000,
    "cores": 100,
}
QUICK = {
    "poll": {1: 10, 10: 30, 100: 100},
    "backoff": {1: 4, 10: 20, 100: 100},
    "gets": 300,
    "creates": 150,
    "openai": 100,
    "growth": 2000,
    "cores": 40,
}
WAIT_PROBE_S = 5.0  # how long the CPU of 1,000 waiting OpenAI calls is watched
IN_FLIGHT = 1000


@dataclass
class Target:
    name: str
    base_url: str
    key: str
    pid: int
    more: tuple[tuple[str, int], ...] = ()  # further processes serving the same data: (url, pid)

    @property
    def pids(self) -> list[int]:
        return [self.pid, *(pid for _, pid in self.more)]

    @property
    def urls(self) -> list[str]:
        return [self.base_url, *(url for url, _ in self.more)]


@dataclass
class Sample:
    per_s: float  # completed operations per second of wall time
    p50_ms: float
    p99_ms: float
    cpu_ms: float  # server CPU per operation
    kernel_ms: float  # of which in the kernel (system time: page cache, sockets)


# -- the clients ---------------------------------------------------------------------------------
def fixed_polling(_: int) -> float:
    return 0.02


def backoff_polling(attempt: int) -> float:
    return min(2.0, 0.25 * 2**attempt)


def client_for(target: Target, clients: int, base_url: str = "") -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    headers = {"Authorization": f"Bearer {target.key}"}
    return httpx.AsyncClient(
        base_url=base_url or target.base_url, headers=headers, limits=limits, timeout=120
    )


def server_cpu(target: Target) -> float:
    return sum(cpu_seconds(pid) for pid in target.pids)


def server_kernel_cpu(target: Target) -> float:
    return sum(cpu_split(pid)[1] for pid in target.pids)


RETRIED: list[str] = []  # GETs sent again after a dropped keep-alive connection, reported at the end


async def get_again(http: httpx.AsyncClient, path: str) -> httpx.Response:
    """A GET, sent once more if the connection drops under it (as SDKs do: a server may close an
    idle keep-alive connection just as the client reuses it)."""
    try:
        return await http.get(path)
    except (httpx.ReadError, httpx.RemoteProtocolError) as exc:
        RETRIED.append(f"{http.base_url}: {type(exc).__name__}")
        return await http.get(path)


async def create_and_wait(http: httpx.AsyncClient, delay: Callable[[int], float]) -> None:
    created = await http.post(CREATE, json=BODY)
    created.raise_for_status()
    task_id = created.json()["id"]
    for attempt in range(1000):
        await asyncio.sleep(delay(attempt))
        task = (await get_again(http, f"/api/v1/tasks/{task_id}")).json()
        if task["status"] == "completed":
            return
        if task["status"] not in ("pending", "processing"):
            raise RuntimeError(f"task ended {task['status']}: {task.get('error')}")
    raise RuntimeError(f"task {task_id} never completed")


async def measure(
    target: Target, clients: int, total: int, operation: Callable[[httpx.AsyncClient], Awaitable[None]]
) -> Sample:
    """``total`` operations shared by ``clients`` concurrent loops, spread over the target's
    processes (one connection pool each)."""
    latencies: list[float] = []
    remaining = total
    async with contextlib.AsyncExitStack() as stack:
        pools = [await stack.enter_async_context(client_for(target, clients, url)) for url in target.urls]
        for http in pools:
            await operation(http)  # opens a connection before the clock starts

        async def loop(http: httpx.AsyncClient) -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                start = time.perf_counter()
                await operation(http)
                latencies.append(time.perf_counter() - start)

        cpu, kernel = server_cpu(target), server_kernel_cpu(target)
        started = time.perf_counter()
        await asyncio.gather(*(loop(pools[n % len(pools)]) for n in range(clients)))
        elapsed = time.perf_counter() - started
        cpu, kernel = server_cpu(target) - cpu, server_kernel_cpu(target) - kernel
    return Sample(
        per_s=total / elapsed,
        p50_ms=statistics.median(latencies) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        cpu_ms=cpu / total * 1000,
        kernel_ms=kernel / total * 1000,
    )


# -- the servers ---------------------------------------------------------------------------------
def seed_history(data_dir: Path, count: int) -> None:
    """Clone the account's one completed task ``count`` times, spread over the past 30 days.

    Straight SQL on the scratch database while no server runs: through the API it would take
    longer than the whole benchmark. Cloning a real row keeps every column as the gateway wrote it.
    """
    db = sqlite3.connect(data_dir / "imagegate.db")
    db.row_factory = sqlite3.Row
    template = dict(db.execute("SELECT * FROM tasks WHERE status = 'completed' LIMIT 1").fetchone())
    start = datetime.fromisoformat(str(template["created_at"])) - timedelta(days=30)
    columns = list(template)
    rows = (
        tuple(
            {
                **template,
                "id": str(uuid.uuid4()),
                "created_at": (stamp := (start + timedelta(seconds=n * 50)).isoformat(sep=" ")),
                "started_at": stamp,
                "completed_at": stamp,
                "client_request_id": None,
                "idempotency_key": None,
            }[c]
            for c in columns
        )
        for n in range(count)
    )
    with db:
        db.executemany(
            f"INSERT INTO tasks ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", rows
        )
    db.close()


@contextlib.contextmanager
def imagegate_with_history(count: int, **env: str) -> Iterator[Target]:
    """Start once to create the account and one task, stop, seed ``count`` tasks, start again."""
    with tempfile.TemporaryDirectory() as scratch:
        with running_server(cwd=Path(scratch), **IMAGEGATE_ENV) as first:
            _one_task(first.base_url, first.key)
        seed_history(Path(scratch) / ".imagegate", count)
        with running_server(cwd=Path(scratch), key=first.key, **{**IMAGEGATE_ENV, **env}) as server:
            yield Target("imagegate", server.base_url, first.key, server.pid)


@contextlib.contextmanager
def imagegate_twice() -> Iterator[Target]:
    """Two ``imagegate serve`` processes on one data directory (and database)."""
    with (
        tempfile.TemporaryDirectory() as scratch,
        running_server(cwd=Path(scratch), stop_s=3, **IMAGEGATE_ENV) as first,
        running_server(cwd=Path(scratch), key=first.key, stop_s=3, **IMAGEGATE_ENV) as second,
    ):
        yield Target("imagegate", first.base_url, first.key, first.pid, ((second.base_url, second.pid),))


def pin(pid: int, cores: set[int]) -> None:
    """Every thread of the process onto ``cores``."""
    for thread in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(thread.name), cores)


def _one_task(base_url: str, key: str) -> None:
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
        task_id = http.post(CREATE, json=BODY).raise_for_status().json()["id"]
        for _ in range(500):
            time.sleep(0.02)
            if http.get(f"/api/v1/tasks/{task_id}").json()["status"] == "completed":
                return
    raise RuntimeError("the seeding task did not complete")


@contextlib.contextmanager
def running_imagegate(**env: str) -> Iterator[Target]:
    with running_server(stop_s=3, **{**IMAGEGATE_ENV, **env}) as server:
        yield Target("imagegate", server.base_url, server.key, server.pid)


@contextlib.contextmanager
def running_floor(history: int = 0) -> Iterator[Target]:
    key = f"floor_{uuid.uuid4().hex}"
    with tempfile.TemporaryDirectory() as scratch:
        command = [sys.executable, str(Path(__file__).parent / "floor.py"), "--dir", scratch, "--key", key]
        command += ["--history", str(history)]
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line.startswith("floor listening on "):
                raise RuntimeError(f"floor did not start: {line!r}")
            yield Target("floor", line.split()[3], key, proc.pid)
        finally:
            stop(proc, 10)


# -- cells, rounds and tables --------------------------------------------------------------------
@dataclass
class Cell:
    label: str
    pair: tuple[Target, Target]  # imagegate, floor
    clients: int
    total: int
    operation: Callable[[Target], Callable[[httpx.AsyncClient], Awaitable[None]]]
    samples: dict[str, list[Sample]]


def cell(
    label: str,
    pair: tuple[Target, Target],
    clients: int,
    total: int,
    operation: Callable[[Target], Callable[[httpx.AsyncClient], Awaitable[None]]],
) -> Cell:
    return Cell(label, pair, clients, max(total, clients), operation, {"imagegate": [], "floor": []})


async def run_rounds(cells: list[Cell]) -> None:
    for round_number in range(ROUNDS):
        for index, current in enumerate(cells):
            pair = current.pair if (round_number + index) % 2 == 0 else current.pair[::-1]
            for target in pair:
                sample = await measure(target, current.clients, current.total, current.operation(target))
                current.samples[target.name].append(sample)
        print(f"  round {round_number + 1}/{ROUNDS} done", file=sys.stderr, flush=True)


def table(title: str, cells: list[Cell], field: str, unit: str) -> None:
    rounds = " ".join(f"{f'r{n + 1}':>6}" for n in range(ROUNDS))
    print(f"\n{title} ({unit})")
    print(f"{'cell':<30} {'imagegate':>10} {'floor':>10} {'ratio':>7}   per-round ratio {rounds}")
    for current in cells:
        ours = [getattr(s, field) for s in current.samples["imagegate"]]
        floor = [getattr(s, field) for s in current.samples["floor"]]
        per_round = " ".join(f"{_ratio(a, b):>6.2f}" for a, b in zip(ours, floor, strict=True))
        mine, theirs = statistics.median(ours), statistics.median(floor)
        print(
            f"{current.label:<30} {mine:>10.2f} {theirs:>10.2f} {_ratio(mine, theirs):>7.2f}"
            f"   {'':>15} {per_round}"
        )


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("inf")


def tasks_op(
    delay: Callable[[int], float],
) -> Callable[[Target], Callable[[httpx.AsyncClient], Awaitable[None]]]:
    return lambda _target: lambda http: create_and_wait(http, delay)


def get_op(task_ids: dict[str, str]) -> Callable[[Target], Callable[[httpx.AsyncClient], Awaitable[None]]]:
    def for_target(target: Target) -> Callable[[httpx.AsyncClient], Awaitable[None]]:
        async def get(http: httpx.AsyncClient) -> None:
            (await http.get(f"/api/v1/tasks/{task_ids[target.name]}")).raise_for_status()

        return get

    return for_target


def post_op(
    path: str, body: dict[str, Any]
) -> Callable[[Target], Callable[[httpx.AsyncClient], Awaitable[None]]]:
    async def post(http: httpx.AsyncClient) -> None:
        (await http.post(path, json=body)).raise_for_status()

    return lambda _target: post


async def completed_task(target: Target) -> str:
    async with client_for(target, 1) as http:
        task_id = str((await http.post(CREATE, json=BODY)).raise_for_status().json()["id"])
        for _ in range(500):
            await asyncio.sleep(0.02)
            if (await http.get(f"/api/v1/tasks/{task_id}")).json()["status"] == "completed":
                return task_id
    raise RuntimeError(f"{target.name}: task {task_id} did not complete")


async def fill_in_flight(target: Target, count: int) -> None:
    async with client_for(target, 10) as http:
        for start in range(0, count, 10):
            batch = [http.post(CREATE, json=STALLED) for _ in range(min(10, count - start))]
            for response in await asyncio.gather(*batch):
                response.raise_for_status()


async def waiting_calls(target: Target, count: int) -> tuple[float, float]:
    """Server CPU (ms per second) and RSS (MiB) while ``count`` OpenAI face calls wait on
    stalled tasks."""
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    headers = {"Authorization": f"Bearer {target.key}"}
    async with httpx.AsyncClient(
        base_url=target.base_url, headers=headers, limits=limits, timeout=600
    ) as http:
        calls = [
            asyncio.create_task(http.post("/v1/images/generations", json={**OPENAI_BODY, **STALLED_PROMPT}))
            for _ in range(count)
        ]
        await asyncio.sleep(3 + count / 200)  # all sent, their tasks created, the calls waiting
        quiet = 0
        for _ in range(60):  # and then until the server's CPU has been quiet for 2 s running
            cpu = server_cpu(target)
            await asyncio.sleep(1)
            quiet = quiet + 1 if server_cpu(target) - cpu < 0.05 else 0
            if quiet == 2:
                break
        cpu = server_cpu(target)
        await asyncio.sleep(WAIT_PROBE_S)
        burned = (server_cpu(target) - cpu) / WAIT_PROBE_S * 1000
        rss = rss_mib(target.pid)
        assert not any(call.done() for call in calls), "a waiting call ended early"
        for call in calls:
            call.cancel()
        await asyncio.gather(*calls, return_exceptions=True)
    return burned, rss


async def cores_and_processes(main: Target, twice: Target, total: int) -> None:
    """The same cell on 2 cores, pinned to one core, and as two processes: alternating, 3 rounds."""
    everything = set(range(os.cpu_count() or 1))
    results: dict[str, list[Sample]] = {"2 cores, 1 process": [], "1 core, 1 process": [], "2 processes": []}
    for round_number in range(ROUNDS):
        order = list(results)
        order = order[round_number % 3 :] + order[: round_number % 3]
        for label in order:
            target = twice if label == "2 processes" else main
            if label.startswith("1 core"):
                pin(main.pid, {0})
            try:
                sample = await measure(target, 10, total, tasks_op(fixed_polling)(target))
            finally:
                pin(main.pid, everything)
            results[label].append(sample)
    base = [s.per_s for s in results["2 cores, 1 process"]]
    print("\nimagegate, 10 clients, poll 20 ms: a second core, a second process (tasks/s; ratio to 2 cores)")
    rounds = " ".join(f"{f'r{n + 1}':>6}" for n in range(ROUNDS))
    print(f"{'':<30} {'tasks/s':>10} {'CPU ms':>10} {'ratio':>7}   per-round ratio {rounds}")
    for label, samples in results.items():
        per_s = [s.per_s for s in samples]
        per_round = " ".join(f"{_ratio(a, b):>6.2f}" for a, b in zip(per_s, base, strict=True))
        mine = statistics.median(per_s)
        cpu = statistics.median(s.cpu_ms for s in samples)
        print(
            f"{label:<30} {mine:>10.2f} {cpu:>10.2f} {_ratio(mine, statistics.median(base)):>7.2f}"
            f"   {'':>15} {per_round}"
        )


async def growth(pair: tuple[Target, Target], total: int) -> None:
    print(f"\nserver memory growth over {total} completed tasks (RSS, MiB; 10 clients, poll 20 ms)")
    print(f"{'':<30} {'before':>10} {'after':>10} {'growth':>10}")
    for target in pair:
        before = rss_mib(target.pid)
        await measure(target, 10, total, tasks_op(fixed_polling)(target))
        after = rss_mib(target.pid)
        print(f"{target.name:<30} {before:>10.1f} {after:>10.1f} {after - before:>10.1f}")


async def bench(sizes: dict[str, Any]) -> None:
    stack = contextlib.ExitStack()
    with stack:
        started = time.perf_counter()
        main = (stack.enter_context(running_imagegate()), stack.enter_context(running_floor()))
        history = (
            stack.enter_context(imagegate_with_history(HISTORY)),
            stack.enter_context(running_floor(HISTORY)),
        )
        # create only: nothing runs (the fake provider stalls), so the create path's cost stands alone
        stalled = {"IMAGEGATE_DEFAULT_PROVIDER": "fake", "IMAGEGATE_WORKERS": "1"}
        creates = (stack.enter_context(running_imagegate(**stalled)), stack.enter_context(running_floor()))
        history_creates = (
            stack.enter_context(imagegate_with_history(HISTORY, **stalled)),
            stack.enter_context(running_floor(HISTORY)),
        )
        twice = stack.enter_context(imagegate_twice())
        rss_idle = {t.name: rss_mib(t.pid) for t in creates}
        print(f"servers up in {time.perf_counter() - started:.1f} s; warming up", file=sys.stderr, flush=True)
        for target in (*main, *history, twice):
            await measure(target, 2, 4, tasks_op(fixed_polling)(target))  # warm code paths and the PNG
        task_ids = {t.name: await completed_task(t) for t in main}

        tasks = [
            cell(f"poll 20 ms, {n:>3} clients", main, n, sizes["poll"][n], tasks_op(fixed_polling))
            for n in (1, 10, 100)
        ] + [
            cell(f"back-off, {n:>3} clients", main, n, sizes["backoff"][n], tasks_op(backoff_polling))
            for n in (1, 10, 100)
        ]
        history_cells = [
            cell(f"50k history, poll, {n:>3} cl.", history, n, sizes["poll"][n], tasks_op(fixed_polling))
            for n in (1, 10, 100)
        ]
        gets = [
            cell(f"GET one task, {n:>2} clients", main, n, sizes["gets"], get_op(task_ids)) for n in (1, 10)
        ]
        create_only = [
            cell(f"create only, {n:>2} clients", creates, n, sizes["creates"], post_op(CREATE, STALLED))
            for n in (1, 10)
        ] + [
            cell(
                f"create, 50k history, {n:>2} cl.",
                history_creates,
                n,
                sizes["creates"],
                post_op(CREATE, STALLED),
            )
            for n in (1, 10)
        ]
        openai = [
            cell(
                "OpenAI face, 1 client",
                main,
                1,
                sizes["openai"],
                post_op("/v1/images/generations", OPENAI_BODY),
            )
        ]
        await run_rounds(tasks + history_cells + gets + create_only + openai)

        print(
            f"\nimagegate (instant provider, billing + limits on) vs floor; {ROUNDS} rounds, A/B alternating"
        )
        table("create + run + complete + GET, throughput", tasks + history_cells, "per_s", "tasks/s")
        table("create-to-completed latency p50", tasks + history_cells, "p50_ms", "ms")
        table("create-to-completed latency p99", tasks + history_cells, "p99_ms", "ms")
        table("server CPU per task", tasks + history_cells, "cpu_ms", "ms")
        table("server CPU per task, of which in the kernel", tasks + history_cells, "kernel_ms", "ms")
        table("GET of one completed task: server CPU", gets, "cpu_ms", "ms/GET")
        table("GET of one completed task: latency p50", gets, "p50_ms", "ms")
        table("create only: server CPU", create_only, "cpu_ms", "ms/create")
        table("create only: latency p50", create_only, "p50_ms", "ms")
        table("OpenAI face, ~2 MB b64 answer: server CPU", openai, "cpu_ms", "ms/request")
        table(
            "OpenAI face: of that CPU, in the kernel (the output file, the socket)",
            openai,
            "kernel_ms",
            "ms/request",
        )
        table("OpenAI face, ~2 MB b64 answer: latency p50", openai, "p50_ms", "ms")

        await cores_and_processes(main[0], twice, sizes["cores"])

        made = ROUNDS * sum(c.total + 1 for c in create_only[:2]) + 1  # +1: each measure's opening call
        for target in creates:
            await fill_in_flight(target, max(0, IN_FLIGHT - made))
        print(f"\nserver memory (RSS, MiB), create-only servers: idle, then {IN_FLIGHT} tasks in flight")
        print(f"{'':<30} {'imagegate':>10} {'floor':>10} {'ratio':>7}")
        rss_full = {t.name: rss_mib(t.pid) for t in creates}
        for label, values in (("idle", rss_idle), (f"{IN_FLIGHT} in flight", rss_full)):
            ours, floor = values["imagegate"], values["floor"]
            print(f"{label:<30} {ours:>10.1f} {floor:>10.1f} {_ratio(ours, floor):>7.2f}")
        burned, rss = await waiting_calls(creates[0], IN_FLIGHT)
        print(
            f"imagegate, + {IN_FLIGHT} OpenAI calls waiting: {rss:.1f} MiB RSS; "
            f"server CPU while they wait {burned:.1f} ms/s"
        )

        await growth(main, sizes["growth"])
        if RETRIED:
            print(f"\nGETs sent again after a dropped connection: {len(RETRIED)} ({sorted(set(RETRIED))})")
        print(f"\nwall time {time.perf_counter() - started:.0f} s on {os.cpu_count()} CPUs", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="fewer tasks per cell: about a minute")
    args = parser.parse_args()
    asyncio.run(bench(QUICK if args.quick else FULL))


if __name__ == "__main__":
    main()
