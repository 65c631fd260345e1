"""The ledger's invariants under random sequences of service calls, on a real SQLite database.

A Hypothesis state machine drives ``imagegate.tasks.service`` (submit, run, cancel, recover) and
``ledger.grant`` directly, keeps its own model of what every bucket should hold, and after
every step checks the database against the model and against the ledger's own invariants.
"""

from __future__ import annotations

import asyncio
import base64
import shutil
import tempfile
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sqlalchemy import func, select

from imagegate.accounts import store as accounts
from imagegate.accounts.store import Principal
from imagegate.billing import ledger
from imagegate.catalog import ActionName
from imagegate.catalog.contract import validate
from imagegate.clock import ManualClock
from imagegate.db.models import FreeCallUsage, LedgerEntry, Task
from imagegate.errors import ConflictError, InsufficientCreditsError
from imagegate.gateway import Gateway
from imagegate.limits import Tier
from imagegate.settings import Settings
from imagegate.tasks import recovery, runner, service
from imagegate.tasks.service import Submission
from tests.conftest import TEST_EPOCH, png_bytes

T = TypeVar("T")

UNLIMITED = Tier(
    name="unlimited",
    creates_per_minute=10**6,
    reads_per_minute=10**6,
    max_concurrent=10**6,
    paid_spend_threshold_micro=0,
)
SOURCE = "data:image/png;base64," + base64.b64encode(png_bytes(16, 16)).decode()


@dataclass(frozen=True)
class Kind:
    """One kind of call: its variant, its request body and its price (written out, not computed)."""

    model: str
    action: ActionName
    body: dict[str, Any]
    price: int

    @property
    def variant(self) -> str:
        return f"{self.model}-{self.action.variant_suffix}"


KINDS = [
    Kind("gpt-image-1.5", ActionName.TEXT_TO_IMAGE, {"aspect_ratio": "1:1", "quality": "medium"}, 40_000),
    Kind("gpt-image-1.5", ActionName.TEXT_TO_IMAGE, {"aspect_ratio": "1:1", "quality": "high"}, 220_000),
    Kind(
        "gpt-image-1.5",
        ActionName.EDIT_IMAGE,
        {"aspect_ratio": "1:1", "quality": "medium", "source_image_urls": [SOURCE]},
        40_000,
    ),
    Kind("gpt-image-2", ActionName.TEXT_TO_IMAGE, {"aspect_ratio": "1:1", "output_resolution": "1k"}, 60_000),
]
kinds = st.sampled_from(KINDS)


@dataclass
class Expected:
    """The model's view of one task."""

    kind: Kind
    free: bool
    charge: int
    bonus_part: int
    status: str = "pending"


def advance(gw: Gateway, seconds: float) -> None:
    assert isinstance(gw.clock, ManualClock)
    gw.clock.advance(seconds)


def open_gateway(data_dir: Path, loop: asyncio.AbstractEventLoop) -> Gateway:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "default_provider": "fake",
        "free_calls_per_variant": 1,
        "tiers": [UNLIMITED],
        "demo_account": False,
        "log_level": "warning",
    }
    return loop.run_until_complete(Gateway.open(Settings(**values), ManualClock(TEST_EPOCH)))


async def new_principal(gw: Gateway, name: str) -> Principal:
    async with gw.db.transaction() as session:
        account = await accounts.create_account(session, name)
        issued = await accounts.create_key(session, account, "machine")
    async with gw.db.sessions() as session:
        who = await accounts.authenticate(session, issued.key)
    assert who is not None
    return who


def submission(gw: Gateway, kind: Kind, prompt: str) -> Submission:
    model = gw.catalog.model(kind.model)
    params = validate(model, kind.action, {"prompt": prompt, **kind.body})
    return Submission(
        face="runapi",
        model=model,
        action=kind.action,
        params={k: v for k, v in params.items() if k != "source_image_urls"},
        source_urls=list(params.get("source_image_urls", [])),
    )


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.dir = Path(tempfile.mkdtemp(prefix="ledger-machine-"))
        self.gw = open_gateway(self.dir, self.loop)
        self.who = self.run(new_principal(self.gw, "machine"))
        # The model.
        self.paid = self.bonus = self.held = self.spent_paid = self.spent_bonus = 0
        self.granted = 0
        self.free_used: Counter[str] = Counter()
        self.tasks: dict[str, Expected] = {}
        self.pending: list[str] = []

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(work)

    def teardown(self) -> None:
        try:
            self.run(self.gw.close())
        finally:
            self.loop.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- model moves -----------------------------------------------------------------------------
    def _submit(self, kind: Kind, prompt: str) -> str | None:
        free = self.free_used[kind.variant] < 1
        accepted = free or kind.price <= self.paid + self.bonus
        queued: list[str] = []
        before = self.run(self._counts())
        try:
            result = self.run(
                service.submit(self.gw, self.who, submission(self.gw, kind, prompt), queued.append)
            )
        except InsufficientCreditsError:
            assert not accepted, f"402 with {self.paid + self.bonus} available for {kind.price}"
            assert self.run(self._counts()) == before, "a refused call changed the database"
            return None
        assert accepted, f"accepted a {kind.price} call with {self.paid + self.bonus} available"
        task = result.task
        assert not result.replayed
        assert queued == [task.id]
        assert task.free_call is free
        assert task.price_micro == kind.price
        assert task.charge_micro == (0 if free else kind.price)
        charge = task.charge_micro
        bonus_part = min(self.bonus, charge)
        self.bonus -= bonus_part
        self.paid -= charge - bonus_part
        self.held += charge
        if free:
            self.free_used[kind.variant] += 1
        self.tasks[task.id] = Expected(kind, free, charge, bonus_part)
        return task.id

    def _captured(self, task_id: str) -> None:
        expected = self.tasks[task_id]
        self.held -= expected.charge
        self.spent_bonus += expected.bonus_part
        self.spent_paid += expected.charge - expected.bonus_part
        expected.status = "completed"

    def _released(self, task_id: str, status: str) -> None:
        expected = self.tasks[task_id]
        self.held -= expected.charge
        self.bonus += expected.bonus_part
        self.paid += expected.charge - expected.bonus_part
        if expected.free:
            self.free_used[expected.kind.variant] -= 1
        expected.status = status

    def _status(self, task_id: str) -> str:
        async def read() -> str:
            async with self.gw.db.sessions() as session:
                task = await session.get(Task, task_id)
                assert task is not None
                return task.status

        return self.run(read())

    async def _counts(self) -> tuple[Any, ...]:
        async with self.gw.db.sessions() as session:
            tasks = await session.scalar(select(func.count()).select_from(Task))
            entries = await session.scalar(select(func.count()).select_from(LedgerEntry))
            used = tuple(await session.execute(select(FreeCallUsage.variant, FreeCallUsage.used)))
            totals = await ledger.totals(session, self.who.account_id)
        return tasks, entries, used, totals

    # -- rules -----------------------------------------------------------------------------------
    @rule(kind=kinds)
    def create(self, kind: Kind) -> None:
        task_id = self._submit(kind, "a lighthouse")
        if task_id is not None:
            self.pending.append(task_id)

    @precondition(lambda self: self.pending)
    @rule(data=st.data())
    def complete(self, data: st.DataObject) -> None:
        task_id = data.draw(st.sampled_from(self.pending))
        assert self.run(runner.run(self.gw, task_id)) is False
        assert self._status(task_id) == "completed"
        self.pending.remove(task_id)
        self._captured(task_id)

    @rule(kind=kinds)
    def fail(self, kind: Kind) -> None:
        task_id = self._submit(kind, "a lighthouse [fail]")
        if task_id is None:
            return
        assert self.run(runner.run(self.gw, task_id)) is False
        assert self._status(task_id) == "failed"
        self._released(task_id, "failed")

    @precondition(lambda self: self.pending)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        task_id = data.draw(st.sampled_from(self.pending))
        task = self.run(service.cancel(self.gw, self.who, task_id))
        assert task.status == "canceled"
        self.pending.remove(task_id)
        self._released(task_id, "canceled")

    @rule(cents=st.integers(min_value=1, max_value=300), bonus=st.booleans())
    def grant(self, cents: int, bonus: bool) -> None:
        amount = cents * 10_000

        async def work() -> ledger.Totals:
            async with self.gw.db.transaction() as session:
                return await ledger.grant(
                    session, self.who.account_id, amount, self.gw.now(), bonus=bonus, note="machine"
                )

        totals = self.run(work())
        self.granted += amount
        if bonus:
            self.bonus += amount
        else:
            self.paid += amount
        assert totals.balance_micro == self.paid + self.bonus

    @precondition(lambda self: self.pending)
    @rule()
    def expire(self) -> None:
        """Recovery long after the task timeout: every pending task fails and its hold goes back."""
        advance(self.gw, self.gw.settings.task_timeout_s * 10 + 3600)
        self.run(recovery.recover(self.gw))
        for task_id in self.pending:
            assert self._status(task_id) == "failed"
            self._released(task_id, "failed")
        self.pending.clear()

    @precondition(lambda self: any(t.status != "pending" for t in self.tasks.values()))
    @rule(data=st.data())
    def end_again(self, data: st.DataObject) -> None:
        """A second cancel or run of an ended task changes nothing."""
        ended = sorted(i for i, t in self.tasks.items() if t.status != "pending")
        task_id = data.draw(st.sampled_from(ended))
        before = self.run(self._counts())
        with pytest.raises(ConflictError):
            self.run(service.cancel(self.gw, self.who, task_id))
        assert self.run(runner.run(self.gw, task_id)) is False
        assert self.run(self._counts()) == before
        assert self._status(task_id) == self.tasks[task_id].status

    # -- invariants ------------------------------------------------------------------------------
    @invariant()
    def the_ledger_holds(self) -> None:
        self.run(self._check())

    async def _check(self) -> None:
        async with self.gw.db.sessions() as session:
            assert await ledger.check(session) == [], "stored totals drifted from the ledger"
            assert await ledger.violations(session) == []
            totals = await ledger.totals(session, self.who.account_id)
            assert (
                min(
                    totals.paid_micro,
                    totals.bonus_micro,
                    totals.held_micro,
                    totals.spent_paid_micro,
                    totals.spent_bonus_micro,
                )
                >= 0
            ), totals
            assert totals == ledger.Totals(
                self.paid, self.bonus, self.held, self.spent_paid, self.spent_bonus
            )

            tasks = {t.id: t for t in await session.scalars(select(Task))}
            assert set(tasks) == set(self.tasks)
            entries: dict[str, Counter[str]] = {}
            sums: Counter[str] = Counter()
            for entry in await session.scalars(select(LedgerEntry)):
                sums[entry.kind] += entry.amount_micro
                if entry.task_id is not None:
                    entries.setdefault(entry.task_id, Counter())[entry.kind] += 1
            for task_id, task in tasks.items():
                kinds = entries.get(task_id, Counter())
                assert kinds["hold"] == 1, (task_id, kinds)
                assert kinds["capture"] + kinds["release"] <= 1, (task_id, kinds)
                assert task.status == self.tasks[task_id].status
                if task.status in ("pending", "processing"):
                    assert task.hold_state == "held" and kinds["capture"] + kinds["release"] == 0
                elif task.status == "completed":
                    assert task.hold_state == "captured" and kinds["capture"] == 1, (task_id, kinds)
                    assert task.settled_at is not None and task.refunded_at is None
                else:
                    assert task.hold_state == "released" and kinds["release"] == 1, (task_id, kinds)
                    assert task.refunded_at is not None and task.settled_at is None
            charged = sum(
                t.charge_micro for t in tasks.values() if t.status == "completed" and not t.free_call
            )
            assert sums["capture"] == charged
            assert sums["grant"] == self.granted
            assert totals.balance_micro == sums["grant"] - sums["capture"] - totals.held_micro
            rows = await session.execute(select(FreeCallUsage.variant, FreeCallUsage.used))
            used = {variant: count for variant, count in rows}
            assert {v: n for v, n in used.items() if n} == {v: n for v, n in self.free_used.items() if n}
            assert all(n in (0, 1) for n in used.values())


LedgerMachine.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLedgerMachine = LedgerMachine.TestCase


# -- plain scenarios -----------------------------------------------------------------------------
@pytest.fixture
def machine_gateway(tmp_path: Path) -> Any:
    loop = asyncio.new_event_loop()
    gw = open_gateway(tmp_path, loop)
    try:
        yield gw, loop
    finally:
        loop.run_until_complete(gw.close())
        loop.close()


def test_a_hold_older_than_the_task_timeout_is_released(machine_gateway: Any) -> None:
    gw, loop = machine_gateway
    who = loop.run_until_complete(new_principal(gw, "old-hold"))

    async def scenario() -> None:
        async with gw.db.transaction() as session:
            await ledger.grant(session, who.account_id, 1_000_000, gw.now())
        kind = KINDS[0]
        free = await service.submit(gw, who, submission(gw, kind, "free"), lambda _: None)
        paid = await service.submit(gw, who, submission(gw, kind, "paid"), lambda _: None)
        assert free.task.free_call and not paid.task.free_call
        # Recovery before the deadline leaves them alone.
        await recovery.recover(gw)
        async with gw.db.sessions() as session:
            assert (await ledger.totals(session, who.account_id)).held_micro == 40_000
        advance(gw, gw.settings.task_timeout_s * gw.settings.max_attempts + 3600)
        await recovery.recover(gw)
        async with gw.db.sessions() as session:
            totals = await ledger.totals(session, who.account_id)
            assert totals == ledger.Totals(1_000_000, 0, 0, 0, 0)
            for submitted in (free, paid):
                task = await session.get(Task, submitted.task.id, populate_existing=True)
                assert task is not None
                assert (task.status, task.hold_state, task.error_code) == ("failed", "released", "timeout")
            used = await session.get(FreeCallUsage, (who.account_id, kind.variant), populate_existing=True)
            assert used is not None and used.used == 0
            assert await ledger.check(session) == []

    loop.run_until_complete(scenario())
