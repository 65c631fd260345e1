"""The ``diffusers`` kind: a local model (Stable Diffusion, SDXL, ...) in this worker process.

The pipeline is loaded once per process from ``model_path`` (a directory ``save_pretrained``
wrote; never a hub: files only, ``HF_HUB_OFFLINE``), on first use, on the provider's own
threads. Text-to-image and image-to-image share its weights. A run happens on a *lane* (a
pipeline pair with its own scheduler); ``max_concurrent`` lanes exist (1 unless set), so a
pipeline is never used by two runs at once and extra tasks wait for a free lane.

The step-end callback reports progress every step and a decoded preview every
``preview_every`` steps (or ``partial_images`` of them, evenly spread, when the task asks), and
stops the run between steps once its task is canceled. torch is imported only then
(:mod:`imagegate.providers._diffusion`): without the ``imagegate[diffusers]`` extra this module
still imports, and a task routed here fails with ``model_unavailable`` saying what to install.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
import os
import secrets
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagegate.providers.base import (
    Action,
    FinalImage,
    GeneratedImage,
    ImageRequest,
    PartialImage,
    Progress,
    ProviderError,
    ProviderEvent,
    SourceImage,
)
from imagegate.providers.config import ProviderConfig
from imagegate.providers.offline import encode_image
from imagegate.providers.registry import register_kind

if TYPE_CHECKING:
    from imagegate.providers._diffusion import Lane

log = logging.getLogger("imagegate.providers")

DEFAULT_STEPS = 30  # when neither the request nor the catalog's field default names a count
FORMATS = ("png", "jpeg", "webp")
# The pipeline thread runs at most this many events ahead of the task reading them: it bounds the
# previews held in memory and how far a canceled run gets before it sees the cancel.
EVENTS_AHEAD = 8
_EXTRA_MODULES = ("torch", "diffusers", "transformers")
_INSTALL = "pip install 'imagegate[diffusers]'"


class Stopped(Exception):
    """Raised on the pipeline thread: the task was canceled, the run ends between two steps."""


@dataclass
class Job:
    """One run's settings, resolved from the request and the catalog's defaults."""

    task_id: str
    prompt: str
    negative_prompt: str | None
    width: int  # rounded to what the model takes
    height: int
    n: int
    steps: int
    guidance_scale: float | None  # None: the pipeline's own default
    strength: float | None  # image-to-image only; None: the pipeline's own default
    seed: int
    source: SourceImage | None  # image-to-image starts from it
    partials: int  # previews the task asked for (0: every ``every`` steps)
    every: int
    output_format: str
    output_compression: int
    stop: threading.Event = field(default_factory=threading.Event)
    steps_done: int = 0

    def preview_index(self, done: int, total: int) -> int | None:
        """Which preview (0, 1, ...) is due after step ``done`` of ``total``; None: none is."""
        every, limit = (
            (max(1, total // (self.partials + 1)), self.partials) if self.partials else (self.every, total)
        )
        if not every or done % every or done >= total:
            return None
        index = done // every - 1
        return index if index < limit else None


class _Handoff:
    """Events from the pipeline thread to the task's coroutine, with bounded lead (EVENTS_AHEAD)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, stop: threading.Event) -> None:
        self._loop = loop
        self._queue: asyncio.Queue[ProviderEvent | None] = asyncio.Queue()
        self._room = threading.Semaphore(EVENTS_AHEAD)
        self._stop = stop

    def put(self, event: Progress | PartialImage) -> None:  # pipeline thread
        self._room.acquire()
        if self._stop.is_set():
            raise Stopped()
        self._loop.call_soon_threadsafe(self._queue.put_nowait, event)

    def close(self) -> None:  # pipeline thread, once, last
        self._loop.call_soon_threadsafe(self._queue.put_nowait, None)

    async def get(self) -> ProviderEvent | None:
        event = await self._queue.get()
        if event is not None:
            self._room.release()
        return event

    def stop(self) -> None:
        self._stop.set()
        self._room.release()  # a thread waiting for room wakes up and sees the flag


def _number(value: Any, default: float | None) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def round_size(width: int, height: int, step: int) -> tuple[int, int]:
    """The nearest sides the model takes: multiples of ``step``, at least one step."""
    return max(step, round(width / step) * step), max(step, round(height / step) * step)


def extra_missing() -> str | None:
    """The first package of the extra that is not installed, or None."""
    for name in _EXTRA_MODULES:
        try:
            if importlib.util.find_spec(name) is None:
                return name
        except (ImportError, ValueError):
            return name
    return None


class DiffusersProvider:
    placeholder = False

    def __init__(self, config: ProviderConfig) -> None:
        if not config.model_path:
            raise ValueError(f"provider {config.name}: kind diffusers needs model_path (a local directory)")
        self.name = config.name
        self.path = Path(config.model_path).expanduser()
        self._config = config
        # One lane unless the operator asks for more: a second run on one GPU mostly competes.
        self.lanes = config.max_concurrent if "max_concurrent" in config.model_fields_set else 1
        self._executor = ThreadPoolExecutor(
            max_workers=self.lanes, thread_name_prefix=f"diffusers-{self.name}"
        )
        self._load_lock = asyncio.Lock()
        self._thread_lock = threading.Lock()
        self._loaded: list[Lane] | None = None
        self._free: asyncio.Queue[Lane] | None = None
        missing = extra_missing()
        state = f"; not installed: {_INSTALL}" if missing else ""
        if not missing and not self.path.is_dir():
            state = "; its directory is missing"
        self.label = f"diffusers pipeline in {self.path} ({config.device}, {config.dtype}{state})"
        if state:
            log.warning("provider %s: %s", self.name, self.label)

    # -- loading (once per process) ----------------------------------------------------------------
    def _load_blocking(self) -> list[Lane]:
        with self._thread_lock:
            if self._loaded is not None:
                return self._loaded
            # Before diffusers and transformers import huggingface_hub: no hub, no telemetry.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
            if (missing := extra_missing()) is None and not (self.path / "model_index.json").is_file():
                log.error(
                    "provider %s: no saved pipeline in %s (model_index.json missing)", self.name, self.path
                )
                raise ProviderError(
                    f"the files of this model are missing on this gateway (provider {self.name})",
                    code="model_unavailable",
                )
            try:
                if missing is not None:
                    raise ImportError(f"No module named {missing!r}")
                engine = importlib.import_module("imagegate.providers._diffusion")
            except ImportError as exc:
                log.error("provider %s: the diffusers extra is missing (%s): %s", self.name, exc, _INSTALL)
                raise ProviderError(
                    f"local models are not installed on this gateway ({_INSTALL})", code="model_unavailable"
                ) from None
            try:
                lanes: list[Lane] = engine.load(
                    self.path, self._config.device, self._config.dtype, self.lanes
                )
            except Exception:
                log.exception("provider %s: could not load the pipeline in %s", self.name, self.path)
                raise ProviderError(
                    f"the model could not be loaded on this gateway (provider {self.name})",
                    code="model_unavailable",
                ) from None
            self._loaded = lanes
            return lanes

    async def _lane(self) -> Lane:
        if self._free is None:
            async with self._load_lock:
                if self._free is None:
                    lanes = await asyncio.get_running_loop().run_in_executor(
                        self._executor, self._load_blocking
                    )
                    free: asyncio.Queue[Lane] = asyncio.Queue()
                    for lane in lanes:
                        free.put_nowait(lane)
                    self._free = free
        return await self._free.get()

    # -- one run -----------------------------------------------------------------------------------
    def _job(self, request: ImageRequest, size_step: int) -> Job:
        if request.action is Action.EDIT and not request.sources:
            raise ProviderError("an edit needs a source image", code="validation")
        if request.mask is not None or request.markup is not None:
            raise ProviderError(f"{request.model} takes no mask or markup", code="validation")
        if request.output_format not in FORMATS:
            raise ProviderError(f"{request.model} outputs png, jpeg or webp", code="validation")
        extra = request.extra
        asked = _number(extra.get("steps"), None)
        steps = DEFAULT_STEPS if asked is None else int(asked)
        if steps < 1:
            raise ProviderError("steps must be at least 1", code="validation")
        strength = _number(extra.get("strength"), None) if request.action is Action.EDIT else None
        if strength is not None and int(steps * strength) < 1:
            raise ProviderError("steps x strength must make at least one step", code="validation")
        seed = extra.get("seed")
        negative = extra.get("negative_prompt")
        width, height = round_size(request.width, request.height, size_step)
        return Job(
            task_id=request.task_id,
            prompt=request.prompt,
            negative_prompt=negative if isinstance(negative, str) and negative else None,
            width=width,
            height=height,
            n=request.n,
            steps=steps,
            guidance_scale=_number(extra.get("guidance_scale"), None),
            strength=strength,
            seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else secrets.randbelow(2**32),
            source=request.sources[0] if request.action is Action.EDIT else None,
            partials=request.partial_images,
            every=self._config.preview_every,
            output_format=request.output_format,
            output_compression=request.output_compression,
        )

    def _work(self, lane: Lane, job: Job, handoff: _Handoff) -> list[GeneratedImage] | None:
        """The run on a pipeline thread: the images, or None when it stopped for a cancel."""
        try:
            images = lane.run(job, handoff.put)
            fmt: Any = job.output_format
            return [encode_image(image, fmt, job.output_compression) for image in images]
        except Stopped:
            return None
        finally:
            handoff.close()

    def _stopped(self, task_id: str, step: int, why: str) -> None:
        log.info("provider %s: task %s stopped after step %d (%s)", self.name, task_id, step, why)

    async def run(self, request: ImageRequest) -> AsyncIterator[ProviderEvent]:
        yield Progress(0.0, f"waiting for {self.name}")
        try:
            lane = await self._lane()
        except asyncio.CancelledError:
            self._stopped(request.task_id, 0, "canceled while waiting for the pipeline")
            raise
        loop = asyncio.get_running_loop()
        try:
            job = self._job(request, lane.size_step())
        except BaseException:
            assert self._free is not None
            self._free.put_nowait(lane)
            raise
        handoff = _Handoff(loop, job.stop)
        future = loop.run_in_executor(self._executor, self._work, lane, job, handoff)
        # The lane is free when its thread is done, not when this coroutine is: never two runs on it.
        free = self._free
        assert free is not None
        future.add_done_callback(lambda _: free.put_nowait(lane))
        try:
            while (event := await handoff.get()) is not None:
                yield event
        except BaseException:  # canceled, timed out, or the reader stopped reading
            handoff.stop()
            await asyncio.wait({future})  # the pipeline ends its current step, then sees the flag
            self._stopped(job.task_id, job.steps_done, f"canceled; {job.steps} asked")
            if (error := future.exception()) is not None:  # it failed on its own meanwhile: moot
                log.info("provider %s: task %s also failed: %r", self.name, job.task_id, error)
            raise
        images = await future  # done: the thread closed the handoff last
        if images is None:  # unreachable: only the cancel above sets the flag
            raise ProviderError("the local model stopped", code="upstream_error", retryable=True)
        for index, image in enumerate(images):
            yield FinalImage(index, image)

    async def aclose(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


@register_kind("diffusers")
def _from_config(config: ProviderConfig) -> DiffusersProvider:
    return DiffusersProvider(config)


__all__ = ["DiffusersProvider", "Job", "Stopped", "extra_missing", "round_size"]
