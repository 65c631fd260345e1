"""The LiteLLM proxy for side-by-side benchmarks: installed into its own virtual environment.

``litellm[proxy]`` does not install as is (its ``proxy`` extra pins ``litellm-proxy`` and a
``litellm-enterprise`` post-release the package index lacks), but the proxy's code ships in the
``litellm`` wheel: we install that wheel plus the extra's other requirements, read from the
wheel's own metadata, with ``litellm-enterprise`` and ``litellm-proxy-extras`` at releases the index has. The environment
lives under a cache directory and is reused by later runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from packaging.requirements import Requirement

VERSION = "1.110.2"
# Pins of the extra the package index lacks, and what stands in for them.
REPLACE = {
    "litellm-enterprise": "litellm-enterprise==0.1.83",  # 0.1.83.post1 is not on the index
    "litellm-proxy-extras": "litellm-proxy-extras",  # the pinned post-release neither: the newest
}
SKIP = {"litellm-proxy"}  # the proxy's code is in the litellm wheel itself
CACHE = Path(os.environ.get("IMAGEGATE_BENCH_CACHE", Path.home() / ".cache" / "imagegate-bench"))


def proxy_requirements(wheel: Path) -> list[str]:
    """The ``proxy`` extra's requirements from the wheel's METADATA, markers resolved."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = archive.read(name).decode()
    wanted: list[str] = []
    for line in metadata.splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        req = Requirement(line.removeprefix("Requires-Dist:").strip())
        if req.marker is None or not req.marker.evaluate({"extra": "proxy"}):
            continue
        if not req.marker.evaluate({"extra": ""}) and req.name not in SKIP:
            extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
            wanted.append(REPLACE.get(req.name, f"{req.name}{extras}{req.specifier}"))
    return wanted


def litellm_venv(version: str = VERSION) -> Path:
    """The environment's directory, made on first use (minutes), reused after."""
    venv = CACHE / f"litellm-{version}"
    ready = venv / ".ready"
    if ready.exists():
        return venv
    wheels = CACHE / "wheels"
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run(
        [*pip[:-2], "download", "--quiet", "--no-deps", "-d", str(wheels), f"litellm=={version}"], check=True
    )
    wheel = next(wheels.glob(f"litellm-{version}-*.whl"))
    subprocess.run([*pip, str(wheel), *proxy_requirements(wheel)], check=True)
    ready.touch()
    return venv
