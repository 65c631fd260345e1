"""What billing and rate limits cost on the create path.

Two servers side by side in one run: the default one, and one with
IMAGEGATE_BILLING_ENABLED=false and IMAGEGATE_RATE_LIMITS_ENABLED=false. Tasks use
the fake provider with a long stall, so no rendering competes with the create path;
the tiers are raised so no limit is hit. Prints create (POST until 200) latency
p50/p99 and the server CPU per create, at 1 and 10 concurrent clients.

    python bench/create_path.py [--creates N]
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
    "prompt": "[stall:600] a red fox",
    "aspect_ratio": "1:1",
    "quality": "medium",
}
COMMON = {
    "IMAGEGATE_DEFAULT_PROVIDER": "fake",
    "IMAGEGATE_DEMO_GRANT_USD": "1000",
    "IMAGEGATE_TIERS": WIDE_TIERS,
    "IMAGEGATE_WORKERS": "2",
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(base_url: str, key: str, pid: int, clients: int, total: int) -> tuple[list[float], float]:
    latencies: list[float] = []
    remaining = total
    async with httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60
    ) as http:
        # Warm up connections and code paths.
        for _ in range(5):
            (await http.post("/api/v1/gpt_image/text_to_image", json=BODY)).raise_for_status()

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                start = time.perf_counter()
                response = await http.post("/api/v1/gpt_image/text_to_image", json=BODY)
                latencies.append(time.perf_counter() - start)
                response.raise_for_status()

        cpu = cpu_seconds(pid)
        await asyncio.gather(*(worker() for _ in range(clients)))
        cpu = cpu_seconds(pid) - cpu
    return latencies, cpu / total


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--creates", type=int, default=400)
    args = parser.parse_args()
    profiles = {
        "billing+limits on ": {},
        "billing+limits off": {
            "IMAGEGATE_BILLING_ENABLED": "false",
            "IMAGEGATE_RATE_LIMITS_ENABLED": "false",
        },
    }
    results: dict[tuple[str, int], tuple[float, float, float]] = {}
    for name, extra in profiles.items():
        with running_server(**COMMON, **extra) as server:
            for clients in (1, 10):
                latencies, cpu = await measure(server.base_url, server.key, server.pid, clients, args.creates)
                results[name, clients] = (statistics.median(latencies), percentile(latencies, 0.99), cpu)
    print(f"create latency, {args.creates} creates per cell (SQLite, fake provider stalled, no rendering)")
    for clients in (1, 10):
        for name in profiles:
            p50, p99, cpu = results[name, clients]
            print(
                f"{clients:>3} clients  {name}  p50 {p50 * 1000:6.2f} ms  p99 {p99 * 1000:6.2f} ms  "
                f"server CPU {cpu * 1000:5.2f} ms/create"
            )
        on, off = results[next(iter(profiles)), clients], results[list(profiles)[1], clients]
        print(f"{clients:>3} clients  on/off ratio  p50 {on[0] / off[0]:.2f}x  CPU {on[2] / off[2]:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
