"""What a 1 GB multipart upload costs the gateway before it is refused.

Starts ``imagegate serve`` and streams a 1 GB ``file`` part (generated, never held in memory) to
``/api/v1/files`` and ``/v1/images/edits``, chunked and with a declared Content-Length. Prints
the seconds to the 413, the bytes the client got to send, the bytes the server process wrote
(``write_bytes`` in /proc/PID/io: disk, temp files included) and how much its data dir grew.

    python bench/upload_cap.py [--gb N]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from _server import running_server

BOUNDARY = "imagegate-bench"
CHUNK = b"\0" * (1 << 20)


def written_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise RuntimeError("no write_bytes")


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class Body:
    """One multipart part of ``size`` bytes, counting what the client actually sent."""

    def __init__(self, size: int) -> None:
        self.size, self.sent = size, 0
        self.head = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        self.tail = f"\r\n--{BOUNDARY}--\r\n".encode()

    def __len__(self) -> int:
        return len(self.head) + self.size + len(self.tail)

    def __iter__(self) -> Iterator[bytes]:
        yield self.head
        for _ in range(self.size // len(CHUNK)):
            self.sent += len(CHUNK)
            yield CHUNK
        yield self.tail


def attempt(base: str, key: str, path: str, size: int, declare: bool, pid: int, data_dir: Path) -> None:
    body = Body(size)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    if declare:
        headers["Content-Length"] = str(len(body))
    before_w, before_d = written_bytes(pid), tree_bytes(data_dir)
    start = time.perf_counter()
    try:
        response = httpx.post(base + path, content=iter(body), headers=headers, timeout=600)
        answer = f"{response.status_code} {response.json()['error']['code']}"
    except httpx.HTTPError as exc:
        answer = f"{type(exc).__name__}"
    seconds = time.perf_counter() - start
    time.sleep(0.5)  # let the server finish whatever it does after answering
    wrote = written_bytes(pid) - before_w
    grew = tree_bytes(data_dir) - before_d
    how = "Content-Length" if declare else "chunked"
    print(
        f"{path:<18} {how:<14} {answer:<22} {seconds * 1000:8.1f} ms  client sent {body.sent / 2**20:7.1f} MiB"
        f"  server wrote {wrote / 2**20:6.1f} MiB  data dir +{grew / 2**20:.1f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0)
    size = int(parser.parse_args().gb * 2**30) // len(CHUNK) * len(CHUNK)
    with running_server(IMAGEGATE_BILLING_ENABLED="false") as server:
        data_dir = Path(f"/proc/{server.pid}/cwd").resolve() / ".imagegate"
        print(f"{size / 2**30:.2f} GiB part; caps: 25 MiB per file, 64 MiB per request (defaults)")
        for path in ("/api/v1/files", "/v1/images/edits"):
            for declare in (False, True):
                attempt(server.base_url, server.key, path, size, declare, server.pid, data_dir)


if __name__ == "__main__":
    main()
