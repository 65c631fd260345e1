"""Memory and time of an edit with sixteen 8000x8000 sources, one request and four at once.

Starts ``imagegate serve`` on the offline provider and sends ``/v1/images/edits`` with 16 black
8000x8000 PNGs (~3 MB of request). With the default ``max_request_pixels`` the gateway refuses
it (413); ``--budget 0`` lifts the budget so the renderer has to serve it. Prints the server's
idle, peak and after RSS (sampled from /proc every 10 ms) and seconds per phase.

    python bench/many_sources.py [--budget PIXELS]
"""

from __future__ import annotations

import argparse
import io
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from _server import WIDE_TIERS, running_server

SOURCES = 16
SIDE = 8000
SETTLE_S = 3.0  # after a phase, let freed memory go back before reading "after"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


class PeakSampler:
    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            time.sleep(0.01)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def png(side: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (side, side)).save(buffer, "PNG")
    return buffer.getvalue()


def edit(base: str, key: str, images: list[bytes]) -> httpx.Response:
    files = [("image[]", (f"{i}.png", data, "image/png")) for i, data in enumerate(images)]
    data = {"prompt": "a dark night, lit in blue", "size": "1024x1024", "response_format": "url"}
    return httpx.post(
        f"{base}/v1/images/edits",
        files=files,
        data=data,
        headers={"Authorization": f"Bearer {key}"},
        timeout=600,
    )


def phase(name: str, pid: int, idle: float, call: Callable[[], list[httpx.Response]]) -> None:
    start = time.perf_counter()
    with PeakSampler(pid) as sampler:
        statuses = [r.status_code for r in call()]
    seconds = time.perf_counter() - start
    time.sleep(SETTLE_S)
    after = rss_mb(pid)
    print(
        f"{name:<22} statuses {statuses}  {seconds:6.2f} s  peak {sampler.peak:6.0f} MB "
        f"(+{sampler.peak - idle:.0f})  after {after:6.0f} MB (+{after - idle:.0f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=None, help="max_request_pixels; 0: no budget")
    budget = parser.parse_args().budget
    env = {"IMAGEGATE_TIERS": WIDE_TIERS, "IMAGEGATE_BILLING_ENABLED": "false"}
    if budget is not None:
        env["IMAGEGATE_MAX_REQUEST_PIXELS"] = str(budget or 10**12)
    big = [png(SIDE)] * SOURCES
    shown = env.get("IMAGEGATE_MAX_REQUEST_PIXELS", "default")
    print(f"{SOURCES} black {SIDE}x{SIDE} PNGs, {sum(map(len, big)) / 1e6:.1f} MB; budget {shown}")
    with running_server(**env) as server:
        warm = edit(server.base_url, server.key, [png(256)])  # imports and first-use costs
        assert warm.status_code == 200, warm.text
        time.sleep(1.0)
        idle = rss_mb(server.pid)
        print(f"idle RSS {idle:.0f} MB")
        phase("one request", server.pid, idle, lambda: [edit(server.base_url, server.key, big)])
        with ThreadPoolExecutor(4) as pool:
            phase(
                "four at once",
                server.pid,
                idle,
                lambda: list(pool.map(lambda _: edit(server.base_url, server.key, big), range(4))),
            )
        refused = edit(server.base_url, server.key, big)
        if refused.status_code != 200:
            print(f"answer: {refused.status_code} {refused.json()['error']['message']}")


if __name__ == "__main__":
    main()
