"""One gateway process holding 1,000 open task event streams and 1,000 in-flight tasks.

Figures: the server's RSS with everything open (and its peak while events flow), and the
latency of an event from ``bus.publish`` in the server to its arrival at an SSE client.

The server is a child process running the real app on uvicorn (fake provider, every task held
in ``processing`` by a ``[stall]`` marker, one worker per task). Inside it, a driver publishes
progress events for every task on the gateway's own bus at a steady rate, noting when each was
published; the client process, reading the 1,000 streams over HTTP, notes when each arrived.
Both use CLOCK_MONOTONIC (``time.monotonic``), which Linux shares between processes.

    python bench/sse_streams.py [--tasks 1000] [--rounds 5] [--rate 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from httpx_sse import aconnect_sse

sys.path.insert(0, str(Path(__file__).parent))
from _server import cpu_seconds

ADMIN = "bench-admin-token"


# -- the server process ------------------------------------------------------------------------
def serve(data_dir: Path, tasks: int) -> None:
    import uvicorn

    from imagegate.api import create_app
    from imagegate.api.app import GatewayServer
    from imagegate.events import EventKind
    from imagegate.settings import Settings

    settings = Settings(
        data_dir=data_dir,
        admin_token=ADMIN,
        default_provider="fake",
        providers=[{"name": "fake", "kind": "fake", "max_concurrent": tasks}],
        workers=tasks,
        demo_account=False,
        billing_enabled=False,
        rate_limits_enabled=False,
        lease_s=float(os.environ.get("BENCH_LEASE_S", "30")),
        log_level="warning",
    )
    app = create_app(settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", backlog=4096)
    server = GatewayServer(config)

    async def drive() -> None:
        while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
            await asyncio.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        print(f"READY http://127.0.0.1:{port}", flush=True)
        line = await asyncio.to_thread(sys.stdin.readline)  # {"ids": [...], "rounds": R, "rate": N}
        order = json.loads(line)
        bus = app.state.gateway.bus
        gap = 1.0 / order["rate"]
        published: list[tuple[str, int, float]] = []
        start = time.monotonic()
        k = 0
        for r in range(order["rounds"]):
            for task_id in order["ids"]:
                k += 1
                delay = start + k * gap - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                at = time.monotonic()
                event = await bus.publish(
                    task_id, EventKind.PROGRESS, {"task_id": task_id, "progress": r / 100}
                )
                published.append((task_id, event.id, at))
        (data_dir / "published.json").write_text(json.dumps(published))
        print("PUBLISHED", flush=True)

    async def main() -> None:
        driver = asyncio.create_task(drive())
        await server.serve()
        driver.cancel()

    asyncio.run(main())


# -- the client process -------------------------------------------------------------------------
def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def follow(
    client: httpx.AsyncClient, task_id: str, arrived: dict[tuple[str, int], float], opened: asyncio.Event
) -> None:
    """Read one task's stream; on a dropped connection, resume after the last id seen (as clients do)."""
    last: str | None = None
    while True:
        headers = {"Last-Event-ID": last} if last else {}
        try:
            async with aconnect_sse(
                client, "GET", f"/api/v1/tasks/{task_id}/events", headers=headers
            ) as source:
                source.response.raise_for_status()
                async for event in source.aiter_sse():
                    now = time.monotonic()
                    if event.event == "progress":
                        arrived[(task_id, int(event.id))] = now
                        opened.set()
                    if event.id:
                        last = event.id
            return
        except httpx.TransportError:
            RECONNECTS.append(task_id)


RECONNECTS: list[str] = []
CLIENT_CPU_MS: list[float] = []  # the load generator's own CPU per event (it shares the machine)


async def bench(
    base: str, pid: int, server: subprocess.Popen[str], tasks: int, rounds: int, rate: int
) -> None:
    limits = httpx.Limits(max_connections=tasks + 10, max_keepalive_connections=tasks + 10)
    async with httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(60, read=None), limits=limits) as admin:
        admin.headers["Authorization"] = f"Bearer {ADMIN}"
        account = (await admin.post("/admin/accounts", json={"name": "bench"})).json()["id"]
        key = (await admin.post(f"/admin/accounts/{account}/keys", json={"name": "bench"})).json()["key"]
    rss_idle = rss_mb(pid)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(
        base_url=base, headers=headers, timeout=httpx.Timeout(60, read=None), limits=limits
    ) as client:
        body = {
            "model": "gpt-image-1.5",
            "prompt": "[stall:3600] a bench task",
            "aspect_ratio": "1:1",
            "quality": "medium",
        }
        gate = asyncio.Semaphore(50)

        async def create() -> str:
            async with gate:
                response = await client.post("/api/v1/gpt_image/text_to_image", json=body)
                if response.status_code != 200:
                    raise RuntimeError(response.text)
                return str(response.json()["id"])

        t0 = time.monotonic()
        ids = await asyncio.gather(*(create() for _ in range(tasks)))
        created_s = time.monotonic() - t0
        arrived: dict[tuple[str, int], float] = {}
        opened = [asyncio.Event() for _ in ids]
        t0 = time.monotonic()
        streams = [
            asyncio.create_task(follow(client, i, arrived, o)) for i, o in zip(ids, opened, strict=True)
        ]
        # every stream has replayed its task's first progress: all 1,000 are open and live
        await asyncio.wait_for(asyncio.gather(*(o.wait() for o in opened)), 120)
        opened_s = time.monotonic() - t0
        idle_cpu, idle_at = cpu_seconds(pid), time.monotonic()
        await asyncio.sleep(10)  # the quiet cost of the open tasks and streams, over a renewal cycle
        idle_rate = (cpu_seconds(pid) - idle_cpu) / (time.monotonic() - idle_at)
        rss_open = rss_mb(pid)
        baseline = len(arrived)
        assert server.stdin is not None
        cpu_before, cpu_at = cpu_seconds(pid), time.monotonic()
        mine_before = cpu_seconds(os.getpid())
        server.stdin.write(json.dumps({"ids": ids, "rounds": rounds, "rate": rate}) + "\n")
        server.stdin.flush()
        peak = rss_open
        expected = baseline + tasks * rounds
        deadline = time.monotonic() + rounds * tasks / rate + 60
        while len(arrived) < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            peak = max(peak, rss_mb(pid))
        busy = cpu_seconds(pid) - cpu_before - idle_rate * (time.monotonic() - cpu_at)
        cpu_per_event_ms = busy / (tasks * rounds) * 1000
        CLIENT_CPU_MS.append((cpu_seconds(os.getpid()) - mine_before) / (tasks * rounds) * 1000)
        for stream in streams:
            stream.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
    return_report(ids, arrived, created_s, opened_s, rss_idle, rss_open, peak, tasks, rounds, rate)
    print(
        f"server CPU: {idle_rate * 100:.1f}% of a core with everything open and quiet; "
        f"{cpu_per_event_ms:.3f} ms per event delivered beyond that (publish, encode, send); "
        f"the client spent {CLIENT_CPU_MS[0]:.3f} ms per event reading them"
    )


DATA: dict[str, Path] = {}


def return_report(
    ids: list[str],
    arrived: dict[tuple[str, int], float],
    created_s: float,
    opened_s: float,
    rss_idle: float,
    rss_open: float,
    peak: float,
    tasks: int,
    rounds: int,
    rate: int,
) -> None:
    published_file = DATA["dir"] / "published.json"
    deadline = time.monotonic() + 30
    while not published_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    published: list[tuple[str, int, float]] = [tuple(p) for p in json.loads(published_file.read_text())]  # type: ignore[misc]
    latencies = [(arrived[(t, i)] - at) * 1000 for t, i, at in published if (t, i) in arrived]
    lost = len(published) - len(latencies)
    print(
        f"tasks in flight: {tasks} (created in {created_s:.1f} s); streams open: {tasks} (in {opened_s:.1f} s)"
    )
    print(
        f"server RSS: {rss_idle:.0f} MB before, {rss_open:.0f} MB with every task and stream open, peak {peak:.0f} MB"
    )
    print(
        f"events: {len(published)} published at {rate}/s over {rounds} rounds; {lost} not received; "
        f"{len(RECONNECTS)} reconnections"
    )
    if latencies:
        print(
            "publish -> client latency: "
            f"p50 {percentile(latencies, 0.5):.1f} ms, p99 {percentile(latencies, 0.99):.1f} ms, "
            f"max {max(latencies):.1f} ms, mean {statistics.fmean(latencies):.1f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rate", type=int, default=1000, help="events published per second")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve, args.tasks)
        return
    with tempfile.TemporaryDirectory() as where:
        DATA["dir"] = Path(where)
        env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEGATE_")}
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", where, "--tasks", str(args.tasks)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            assert server.stdout is not None
            line = server.stdout.readline()
            if not line.startswith("READY "):
                raise RuntimeError(f"server did not start: {line!r}")
            base = line.split()[1]
            asyncio.run(bench(base, server.pid, server, args.tasks, args.rounds, args.rate))
        finally:
            server.kill()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
