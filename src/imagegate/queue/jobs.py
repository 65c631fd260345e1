"""The PostgreSQL job queue (procrastinate): API processes defer, ``imagegate worker`` runs.

``IMAGEGATE_JOB_QUEUE=postgres`` (the scale profile). Each task is one job, ``run_task``,
deferred after the task's commit with ``queueing_lock`` = the task id, on the queue named by
its provider's kind (``openai``, ``runapi``, ``offline``...), so GPU workers can take only
``diffusers``. Runs are idempotent (``runner.run`` claims the task by a lease), so a job run
twice is harmless. Workers also run the maintenance the embedded sweeper does, on every
worker, every ``sweep_interval_s``: retention, recovery of tasks whose lease ran out (jobs
deferred again) and the retry of jobs a killed worker left ``doing`` (procrastinate leaves them
so until asked).

Webhooks go out from workers too, as procrastinate periodic jobs on the ``maintenance`` queue
(every worker takes it, whatever its ``--queues``): ``deliver_due`` every ``webhook_poll_s``
(at least a second: cron's step) and the sweep of old deliveries every ``sweep_interval_s``.
Procrastinate defers each tick once however many workers run, and a queueing lock keeps at
most one of each waiting; ``deliver_due`` takes each attempt by a lease, so two runs at once
never send one twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

import procrastinate
from procrastinate.exceptions import AlreadyEnqueued
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from imagegate.db.models import Task
from imagegate.gateway import Gateway
from imagegate.tasks import recovery, runner
from imagegate.webhooks import delivery as webhooks

log = logging.getLogger("imagegate.queue")

RUN_TASK = "imagegate.run_task"
DELIVER_WEBHOOKS = "imagegate.deliver_webhooks"
SWEEP_WEBHOOKS = "imagegate.sweep_webhooks"
MAINTENANCE = "maintenance"  # the queue of the periodic jobs: every worker takes it
SCHEMA_LOCK = 0x1A6E6A7F  # beside the migrations' lock: one process applies procrastinate's schema
RETRY_DELAY_S = 1
WORKER_POOL = 10  # procrastinate's connections in a worker process (docs/deploy.md)
STOP_GRACE_S = 5.0  # how long stop() waits for runs to hand their tasks back


def every(seconds: float) -> str:
    """A cron line (procrastinate's, with a sixth column for seconds) firing about that often."""
    if seconds < 60:
        return f"* * * * * */{max(1, round(seconds))}"
    return f"*/{min(59, max(1, round(seconds / 60)))} * * * *"


def libpq_url(database_url: str) -> str:
    """The SQLAlchemy URL as psycopg's own conninfo (no ``+psycopg`` driver suffix)."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class JobQueue:
    def __init__(
        self, gw: Gateway, *, work: bool, queues: Iterable[str] | None = None, concurrency: int = 4
    ) -> None:
        if gw.db.engine.dialect.name != "postgresql":
            raise ValueError("IMAGEGATE_JOB_QUEUE=postgres needs a PostgreSQL IMAGEGATE_DATABASE_URL")
        self.gw = gw
        self.work = work
        self.queues = list(queues) if queues else None
        self.concurrency = concurrency
        # Its pool's default is 4 connections, one held by the worker's LISTEN: with 8 runs at
        # once, fetches, finishes and heartbeats queued for the other 3. API processes only
        # defer on their own sessions' connections.
        connector = procrastinate.PsycopgConnector(
            conninfo=libpq_url(gw.settings.resolved_database_url),
            min_size=2,
            max_size=WORKER_POOL if work else 2,
        )
        self.app = procrastinate.App(connector=connector)
        self.app.task(name=RUN_TASK, pass_context=False)(self._run_task)
        settings = gw.settings
        for name, seconds, job in (
            (DELIVER_WEBHOOKS, settings.webhook_poll_s, self._deliver_webhooks),
            (SWEEP_WEBHOOKS, settings.sweep_interval_s, self._sweep_webhooks),
        ):
            task = self.app.task(name=name, queue=MAINTENANCE, queueing_lock=name, pass_context=False)(job)
            self.app.periodic(cron=every(seconds))(task)
        self._loops: list[asyncio.Task[None]] = []
        self._running: dict[str, asyncio.Task[bool]] = {}
        gw.defer_in_transaction = self.defer_in

    # -- deferring (every process) -------------------------------------------------------------
    def enqueue(self, task_id: str) -> None:
        """Nothing: ``submit`` deferred the job already, in the task's transaction (defer_in)."""

    def _options(self, task_id: str, provider: str | None) -> dict[str, Any]:
        config = self.gw.providers.configs.get(provider or "")
        return {"queueing_lock": task_id, "queue": config.kind if config else "default"}

    async def defer_in(self, session: AsyncSession, task_id: str, provider: str) -> None:
        """Defer on the session's own psycopg connection (procrastinate's external-connection
        mode): the job row commits or rolls back with the task row."""
        raw = await (await session.connection()).get_raw_connection()
        options = self._options(task_id, provider)
        deferrer = self.app.configure_task(RUN_TASK, **options, connection=raw.driver_connection)
        await deferrer.defer_async(task_id=task_id)

    async def _defer(self, task_id: str, delay_s: int = 0) -> None:
        """A job for an existing task (recovery, retries): at least once, a lost one is made again."""
        try:
            async with self.gw.db.sessions() as session:
                provider = await session.scalar(select(Task.provider).where(Task.id == task_id))
            options = self._options(task_id, provider)
            if delay_s:
                options["schedule_in"] = {"seconds": delay_s}
            await self.app.configure_task(RUN_TASK, **options).defer_async(task_id=task_id)
        except AlreadyEnqueued:
            pass  # a job for this task is waiting already
        except Exception:
            log.exception("could not defer task %s; recovery will", task_id)

    # -- running (imagegate worker) ------------------------------------------------------------
    async def _run_task(self, task_id: str) -> None:
        run = asyncio.create_task(runner.run(self.gw, task_id), name=f"task-{task_id}")
        self._running[task_id] = run
        try:
            retry = await run
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                run.cancel()
                raise
            return  # stop() handed the task back; a worker's recovery defers it again
        finally:
            self._running.pop(task_id, None)
        if retry:  # handed back for a retry
            await self._defer(task_id, RETRY_DELAY_S)

    async def _deliver_webhooks(self, timestamp: int) -> None:
        while await webhooks.deliver_due(self.gw) >= webhooks.BATCH:
            pass  # a full batch: more may be due

    async def _sweep_webhooks(self, timestamp: int) -> None:
        await webhooks.sweep(self.gw)

    async def start(self) -> None:
        await self.app.open_async()
        await self._ensure_schema()
        if not self.work:
            return
        lease = self.gw.settings.lease_s
        only: dict[str, Any] = {"queues": [*self.queues, MAINTENANCE]} if self.queues else {}
        self._loops = [
            asyncio.create_task(
                self.app.run_worker_async(
                    **only,
                    concurrency=self.concurrency,
                    install_signal_handlers=False,
                    update_heartbeat_interval=max(0.2, lease / 3),
                    stalled_worker_timeout=lease,
                    shutdown_graceful_timeout=5,
                    delete_jobs="successful",
                ),
                name="procrastinate-worker",
            ),
            asyncio.create_task(self._maintain(), name="maintenance"),
        ]

    async def _ensure_schema(self) -> None:
        async with self.gw.db.transaction() as session:
            await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK})
            present = await session.scalar(text("SELECT to_regclass('procrastinate_jobs') IS NOT NULL"))
            if not present:
                # On psycopg itself, no parameters: the schema's '%' signs are not placeholders.
                raw = await (await session.connection()).get_raw_connection()
                await raw.driver_connection.execute(self.app.schema_manager.get_schema())  # type: ignore[union-attr]

    async def _maintain(self) -> None:
        interval = self.gw.settings.sweep_interval_s
        while True:
            await asyncio.sleep(interval)
            try:
                await recovery.sweep_expired(self.gw)
                for task_id in await recovery.recover(self.gw):
                    await self._defer(task_id)
                stalled = await self.app.job_manager.get_stalled_jobs(
                    seconds_since_heartbeat=self.gw.settings.lease_s
                )
                for job in stalled:
                    await self.app.job_manager.retry_job(job)
            except Exception:
                log.exception("maintenance failed; trying again in %s s", interval)

    async def stop(self) -> None:
        """Stop taking jobs; runs in flight hand their tasks back, attempt unspent (as LocalQueue)."""
        runs = list(self._running.values())
        for run in runs:
            run.cancel()
        if runs:
            await asyncio.wait(runs, timeout=STOP_GRACE_S)
        for loop in self._loops:
            loop.cancel()  # the worker lets running jobs finish up to shutdown_graceful_timeout
        await asyncio.gather(*self._loops, return_exceptions=True)
        self._loops.clear()
        self.gw.defer_in_transaction = None
        with contextlib.suppress(Exception):
            await self.app.close_async()

    async def drain(self) -> None:
        """Nothing to wait for here: jobs are rows, run by worker processes."""

    def cancel_running(self, task_id: str) -> bool:
        """Stop the run if it is in this process; one on another host finds the task ended when
        it tries to end it."""
        run = self._running.get(task_id)
        if run is None:
            return False
        run.cancel()
        return True


__all__ = ["JobQueue"]
