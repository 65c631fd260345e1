"""What the gateway adds to an image call, beside the upstream itself and the LiteLLM proxy.

One run, three paths to the same loopback upstream (bench/_image_upstream.py: a fixed 1024x1024
PNG, about 2 MB of JSON, answered at once or after a delay), alternating in every cell:

- ``direct``: ``POST /v1/images/generations`` straight to the upstream;
- ``imagegate``: the OpenAI face of ``imagegate serve``, its ``openai`` provider pointed at the
  upstream (it writes the task, the ledger and the stored output on the way);
- ``litellm``: the LiteLLM proxy (installed into its own environment under the cache directory,
  see bench/_litellm.py), offline, with its bundled cost map, one deployment on the upstream.

Cells: upstream delay 0 and 200 ms, 1 / 10 / 50 concurrent clients. Figures: requests/s, p50 and
p99 latency, what each adds to the direct path's p50/p99, and server CPU ms per request (utime +
stime of the server's process tree from /proc, so the load generator's own cost is not in it).

    python bench/gateway_vs_litellm.py [--quick] [--rounds N] [--no-litellm]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from _litellm import litellm_venv
from _server import WIDE_TIERS, percentile, running_server, stop

HERE = Path(__file__).parent
MODEL = "gpt-image-2"
UPSTREAM_KEY_ENV = "BENCH_UPSTREAM_KEY"
FULL = {1: 60, 10: 300, 50: 600}  # requests per cell, by client count
QUICK = {1: 25, 10: 100, 50: 200}
DELAYS_MS = (0, 200)
CLIENTS = (1, 10, 50)


@dataclass
class Target:
    name: str
    base_url: str  # ends in /v1
    pid: int
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Sample:
    per_s: float
    p50_ms: float
    p99_ms: float
    cpu_ms: float
    errors: int = 0  # calls that failed (a reset connection, a non-200 answer): not in the latencies


def tree_cpu_seconds(pid: int) -> float:
    """utime + stime of a process and all its descendants (LiteLLM may fork workers)."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry.name)] = fields
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        if current in stats:
            total += int(stats[current][11]) + int(stats[current][12])
        todo += children.get(current, [])
    return total / os.sysconf("SC_CLK_TCK")


# -- the servers ---------------------------------------------------------------------------------
def _wait_line(proc: subprocess.Popen[str], prefix: str, timeout_s: float = 60) -> str:
    deadline = time.monotonic() + timeout_s
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"process exited before printing {prefix!r}")
        if line.startswith(prefix):
            return line.strip()
    raise RuntimeError(f"no {prefix!r} line in {timeout_s} s")


@contextlib.contextmanager
def running_upstream() -> Iterator[Target]:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "_image_upstream.py")], stdout=subprocess.PIPE, text=True
    )
    try:
        base = _wait_line(proc, "listening on ").split()[-1]
        yield Target("direct", base, proc.pid, {"Authorization": "Bearer sk-bench"})
    finally:
        stop(proc)


@contextlib.contextmanager
def running_imagegate(upstream: Target) -> Iterator[Target]:
    provider = {
        "name": "upstream",
        "kind": "openai",
        "api_key_env": UPSTREAM_KEY_ENV,
        "base_url": upstream.base_url,
        "max_concurrent": 100,  # no cap of ours below the client counts: LiteLLM has none
        "timeout_s": 60,
    }
    with running_server(
        IMAGEGATE_PROVIDERS=json.dumps([provider]),
        IMAGEGATE_DEFAULT_PROVIDER="upstream",
        IMAGEGATE_WORKERS="64",
        IMAGEGATE_DEMO_GRANT_USD="1000000",
        IMAGEGATE_TIERS=WIDE_TIERS,
        **{UPSTREAM_KEY_ENV: "sk-bench"},
    ) as server:
        yield Target(
            "imagegate", server.base_url + "/v1", server.pid, {"Authorization": f"Bearer {server.key}"}
        )


@contextlib.contextmanager
def running_litellm(upstream: Target) -> Iterator[Target]:
    venv = litellm_venv()
    with tempfile.TemporaryDirectory() as scratch:
        # LiteLLM's bundled cost map knows gpt-image-1.5; the upstream answers any model name.
        config = (
            "model_list:\n"
            f"  - model_name: {MODEL}\n"
            "    litellm_params:\n"
            "      model: openai/gpt-image-1.5\n"
            f"      api_base: {upstream.base_url}\n"
            "      api_key: sk-bench\n"
        )
        (Path(scratch) / "config.yaml").write_text(config)
        with contextlib.closing(__import__("socket").socket()) as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        master = "sk-" + secrets.token_hex(32)  # it refuses to start without a strong one
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "LITELLM_"))},
            "LITELLM_MASTER_KEY": master,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LITELLM_OFFLINE_MODE": "true",
            "LITELLM_LOG": "ERROR",
        }
        proc = subprocess.Popen(
            [
                str(venv / "bin" / "litellm"),
                "--config",
                "config.yaml",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=scratch,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 180
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{base}/health/liveliness", timeout=2).status_code == 200:
                        break
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the LiteLLM proxy did not start")
                time.sleep(0.5)
            yield Target("litellm", base + "/v1", proc.pid, {"Authorization": f"Bearer {master}"})
        finally:
            stop(proc)


# -- the load ------------------------------------------------------------------------------------
def body(delay_ms: int) -> dict[str, str]:
    return {"model": MODEL, "prompt": f"a red fox in fresh snow [delay:{delay_ms}]", "size": "1024x1024"}


async def measure(target: Target, clients: int, total: int, delay_ms: int) -> Sample:
    """``total`` image calls shared by ``clients`` concurrent loops on one connection pool."""
    latencies: list[float] = []
    remaining = total
    payload = body(delay_ms)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(
        base_url=target.base_url, headers=target.headers, limits=limits, timeout=120
    ) as http:

        async def call() -> None:
            response = await http.post("/images/generations", json=payload)
            if response.status_code != 200 or b'"b64_json"' not in response.content[:200_000]:
                raise RuntimeError(f"{target.name}: HTTP {response.status_code} {response.text[:300]}")

        await asyncio.gather(*(call() for _ in range(clients)))  # connections open before the clock

        errors = 0

        async def loop() -> None:
            nonlocal remaining, errors
            while remaining > 0:
                remaining -= 1
                start = time.perf_counter()
                try:
                    await call()
                except (httpx.TransportError, RuntimeError) as exc:
                    errors += 1
                    print(f"  {target.name}: {exc!r}", file=sys.stderr, flush=True)
                    continue
                latencies.append(time.perf_counter() - start)

        cpu = tree_cpu_seconds(target.pid)
        started = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(clients)))
        elapsed = time.perf_counter() - started
        cpu = tree_cpu_seconds(target.pid) - cpu
    if not latencies:
        raise RuntimeError(f"{target.name}: every call failed")
    return Sample(
        per_s=len(latencies) / elapsed,  # answered calls only
        p50_ms=statistics.median(latencies) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        cpu_ms=cpu / total * 1000,
        errors=errors,
    )


def _median(samples: list[Sample]) -> Sample:
    fields = ("per_s", "p50_ms", "p99_ms", "cpu_ms")
    return Sample(
        *(statistics.median(getattr(s, f) for s in samples) for f in fields), sum(s.errors for s in samples)
    )


async def run(
    targets: list[Target], sizes: dict[int, int], rounds: int
) -> dict[tuple[int, int, str], Sample]:
    results: dict[tuple[int, int, str], list[Sample]] = {}
    for delay_ms in DELAYS_MS:
        for clients in CLIENTS:
            for round_no in range(rounds):
                order = targets if round_no % 2 == 0 else targets[::-1]  # A/B/C, then C/B/A
                for target in order:
                    sample = await measure(target, clients, sizes[clients], delay_ms)
                    results.setdefault((delay_ms, clients, target.name), []).append(sample)
                    print(
                        f"  delay {delay_ms:>3} ms, {clients:>2} clients, {target.name:<9} "
                        f"{sample.per_s:7.1f}/s p50 {sample.p50_ms:7.1f} ms p99 {sample.p99_ms:7.1f} ms "
                        f"cpu {sample.cpu_ms:6.1f} ms/req errors {sample.errors}",
                        file=sys.stderr,
                        flush=True,
                    )
    return {key: _median(samples) for key, samples in results.items()}


def report(results: dict[tuple[int, int, str], Sample], names: list[str]) -> None:
    print(
        "| upstream delay | clients | path | req/s | p50 ms | p99 ms | added p50 ms | added p99 ms "
        "| server CPU ms/req | failed calls |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for delay_ms in DELAYS_MS:
        for clients in CLIENTS:
            direct = results[(delay_ms, clients, "direct")]
            for name in names:
                s = results[(delay_ms, clients, name)]
                added = (
                    ("", "")
                    if name == "direct"
                    else (f"{s.p50_ms - direct.p50_ms:+.1f}", f"{s.p99_ms - direct.p99_ms:+.1f}")
                )
                print(
                    f"| {delay_ms} | {clients} | {name} | {s.per_s:.1f} | {s.p50_ms:.1f} | {s.p99_ms:.1f} "
                    f"| {added[0]} | {added[1]} | {s.cpu_ms:.1f} | {s.errors} |"
                )
    if "litellm" in names:
        print()
        for delay_ms in DELAYS_MS:
            ours, theirs = results[(delay_ms, 10, "imagegate")], results[(delay_ms, 10, "litellm")]
            print(
                f"delay {delay_ms} ms, 10 clients: imagegate/litellm req/s = {ours.per_s / theirs.per_s:.2f}x"
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer requests per cell (about a third)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per cell (default 3, quick 1)")
    parser.add_argument("--no-litellm", action="store_true", help="leave the LiteLLM proxy out")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    rounds = args.rounds or (1 if args.quick else 3)
    with contextlib.ExitStack() as stack:
        upstream = stack.enter_context(running_upstream())
        targets = [upstream, stack.enter_context(running_imagegate(upstream))]
        if not args.no_litellm:
            targets.append(stack.enter_context(running_litellm(upstream)))
        print(f"{len(targets)} paths up; {rounds} round(s) per cell", file=sys.stderr, flush=True)
        results = asyncio.run(run(targets, sizes, rounds))
    report(results, [t.name for t in targets])


if __name__ == "__main__":
    main()
