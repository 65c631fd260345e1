"""The embedded queue: an asyncio queue and a pool of worker coroutines in the server process.

Everything this process had ``processing`` when it died is orphaned, so start-up
recovery re-queues it (or fails it once out of attempts). A sweeper also catches
tasks whose lease ran out while the process lived, and deletes expired files.
"""

from __future__ import annotations

import asyncio
import logging

from imagegate.gateway import Gateway
from imagegate.tasks import service

log = logging.getLogger("imagegate.queue")

RETRY_DELAY_S = 1.0


class LocalQueue:
    def __init__(self, gw: Gateway, workers: int) -> None:
        self.gw = gw
        self.size = workers
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._running: dict[str, asyncio.Task[bool]] = {}
        self._idle = asyncio.Event()
        self._idle.set()

    def enqueue(self, task_id: str) -> None:
        self._idle.clear()
        self._queue.put_nowait(task_id)

    async def start(self) -> None:
        for task_id in await service.recover(self.gw, all_processing=True):
            self.enqueue(task_id)
        self._workers = [asyncio.create_task(self._work(), name=f"worker-{i}") for i in range(self.size)]
        self._workers.append(asyncio.create_task(self._sweep(), name="sweeper"))

    async def stop(self) -> None:
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers.clear()

    def cancel_running(self, task_id: str) -> bool:
        job = self._running.get(task_id)
        if job is None:
            return False
        job.cancel()
        return True

    async def drain(self) -> None:
        """Wait until everything queued so far has run (tests and benchmarks)."""
        await self._queue.join()

    async def _work(self) -> None:
        while True:
            task_id = await self._queue.get()
            job = asyncio.create_task(service.run(self.gw, task_id), name=f"task-{task_id}")
            self._running[task_id] = job
            try:
                retry = await job
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    job.cancel()
                    raise  # shutdown: recovery re-queues the task on the next start
                retry = False  # the job alone was canceled by a client
            except Exception:
                log.exception("worker crashed on task %s", task_id)
                retry = False
            finally:
                self._running.pop(task_id, None)
                self._queue.task_done()
            if retry:
                asyncio.get_running_loop().call_later(RETRY_DELAY_S, self.enqueue, task_id)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.gw.settings.sweep_interval_s)
            try:
                await service.sweep_expired(self.gw)
                for task_id in await service.recover(self.gw, all_processing=False):
                    if task_id not in self._running:
                        self.enqueue(task_id)
            except Exception:
                log.exception("sweep failed; trying again in %s s", self.gw.settings.sweep_interval_s)
