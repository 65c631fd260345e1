"""Recovery mechanisms on a real database: orphaned input bytes, lease take-over, races."""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import timedelta
from pathlib import Path

import httpx

from imagegate.accounts import store as accounts
from imagegate.clock import ManualClock
from imagegate.gateway import Gateway as Core
from imagegate.settings import Settings
from imagegate.storage.local import LocalStorage
from imagegate.tasks import inputs, recovery, runner, store
from imagegate.tasks.inputs import Upload
from tests import profiles
from tests.conftest import T2I_15, TEST_EPOCH, Gateway, png_bytes, start_gateway


def core(data_dir: Path, **values: object) -> Core:
    values = {**profiles.current().settings(data_dir), **values}
    settings = Settings(data_dir=data_dir, demo_account=False, log_level="warning", **values)  # type: ignore[arg-type]
    return asyncio.run(Core.open(settings, ManualClock(TEST_EPOCH)))


def test_input_bytes_of_a_create_cut_off_by_a_crash_are_swept(tmp_path: Path) -> None:
    async def scenario() -> None:
        settings = Settings(data_dir=tmp_path, demo_account=False, **profiles.current().settings(tmp_path))
        gw = await Core.open(settings, ManualClock(TEST_EPOCH))
        try:
            async with gw.db.transaction() as session:
                account = await accounts.create_account(session, "crash")
            upload = Upload(data=png_bytes(8, 8), content_type="image/png")
            # What submit does before the task's own transaction; the "crash" comes right after.
            (record,) = await inputs.hold(
                gw, account.id, [upload], task_id=str(uuid.uuid4()), ttl=timedelta(minutes=30)
            )
            assert await gw.storage.exists(record.key)
            await recovery.sweep_expired(gw)
            assert await gw.storage.exists(record.key)  # not yet expired
            assert isinstance(gw.clock, ManualClock)
            gw.clock.advance(31 * 60)
            await recovery.sweep_expired(gw)
            assert not await gw.storage.exists(record.key)
        finally:
            await gw.close()

    asyncio.run(scenario())


def test_a_task_whose_lease_ran_out_is_taken_over_once_and_the_late_run_loses(tmp_path: Path) -> None:
    """Two workers on one task: the first stalls past its lease, the second takes the task over.
    Only the second may end it; the first's late result changes nothing and leaves no bytes."""

    async def scenario() -> None:
        gw = await Core.open(
            Settings(
                data_dir=tmp_path,
                demo_account=False,
                default_provider="fake",
                lease_s=60,
                **profiles.current().settings(tmp_path),
            ),
            ManualClock(TEST_EPOCH),
        )
        try:
            async with gw.db.transaction() as session:
                account = await accounts.create_account(session, "lease")
                issued = await accounts.create_key(session, account, "k")
            async with gw.db.sessions() as session:
                who = await accounts.authenticate(session, issued.key)
            assert who is not None
            from tests.unit.test_ledger_machine import KINDS, submission

            sub = submission(gw, KINDS[0], "[stall:1] contested")
            from imagegate.tasks import service

            submitted = await service.submit(gw, who, sub, lambda _: None)
            task_id = submitted.task.id
            first = asyncio.create_task(runner.run(gw, task_id))
            await asyncio.sleep(0.3)  # the first run has claimed the task and is stalling
            assert isinstance(gw.clock, ManualClock)
            gw.clock.advance(120)  # its lease (60 s) has run out as far as the database knows
            assert task_id in await recovery.recover(gw)
            second = await runner.run(gw, task_id)
            assert second is False
            await first
            async with gw.db.sessions() as session:
                task = await store.get_for_account(session, who.account_id, task_id)
            assert task.status == "completed"
            assert task.attempts == 2
            keys = [image["key"] for image in task.images]
            assert len(keys) == 1 and await gw.storage.exists(keys[0])
            if isinstance(gw.storage, LocalStorage):  # a directory to list (the interface has no listing)
                stored = sorted(p.name for p in (tmp_path / "files" / "outputs" / task_id).glob("*"))
                assert stored == [keys[0].rsplit("/", 1)[1]]  # the late run deleted only its own bytes
        finally:
            await gw.close()

    asyncio.run(scenario())


def test_racing_duplicates_without_billing_or_limits_make_one_task(tmp_path: Path) -> None:
    """No balance lock serializes these creates: the unique claim alone must hold."""
    gw: Gateway = start_gateway(tmp_path, billing_enabled=False, rate_limits_enabled=False)
    try:
        _, api_key = gw.new_account()
        key = f"race-{uuid.uuid4()}"
        clients = [gw.client(api_key) for _ in range(8)]
        barrier = threading.Barrier(len(clients))
        answers: list[httpx.Response] = []

        def fire(client: httpx.Client, prompt: str) -> None:
            barrier.wait()
            answers.append(
                client.post(
                    "/api/v1/gpt_image/text_to_image",
                    json={**T2I_15, "prompt": prompt},
                    headers={"Idempotency-Key": key},
                )
            )

        # Half send one body, half another: one task, the same body replays, the other is 409.
        threads = [
            threading.Thread(target=fire, args=(c, "first" if i % 2 else "second"))
            for i, c in enumerate(clients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        codes = sorted(r.status_code for r in answers)
        assert set(codes) <= {200, 409} and codes.count(200) == 4, [r.text for r in answers]
        ids = {r.json()["id"] for r in answers if r.status_code == 200}
        assert len(ids) == 1
        listed = clients[0].get("/api/v1/tasks").json()["data"]
        assert [t["id"] for t in listed] == list(ids)
    finally:
        gw.close()
