"""The ledger and its running totals. Functions take the write transaction (``db.writer.Tx``;
``SessionTx`` wraps a session) or the session first, and never commit.

Entries never change once written. Kinds and their effect on the totals:

    grant    paid += amount - bonus; bonus += bonus          (admin top-up)
    hold     paid -= ...; bonus -= ...; held += amount       (task created)
    capture  held -= amount; spent += amount                 (task completed)
    release  held -= amount; paid/bonus += back              (task failed, canceled or expired)

Holds take the bonus bucket first. A task's hold, capture and release are unique per
task (a constraint), and a task's ``hold_state`` moves held -> captured | released by
a conditional UPDATE, so no hold ends twice.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Select,
    String,
    Update,
    bindparam,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from imagegate.db.models import Balance, Base, LedgerEntry, Task
from imagegate.db.writer import SessionTx, Tx
from imagegate.errors import InsufficientCreditsError, ValidationError


class LedgerKind(StrEnum):
    GRANT = "grant"  # credits added by an admin
    HOLD = "hold"  # a task's price reserved at creation
    CAPTURE = "capture"  # the hold becomes spend: the task completed
    RELEASE = "release"  # the hold goes back: the task failed, was canceled or expired


class HoldState(StrEnum):
    HELD = "held"  # reserved, task not ended
    CAPTURED = "captured"  # charged
    RELEASED = "released"  # returned
    NONE = "none"  # task from before billing


@dataclass(frozen=True)
class Totals:
    paid_micro: int
    bonus_micro: int
    held_micro: int
    spent_paid_micro: int
    spent_bonus_micro: int

    @property
    def balance_micro(self) -> int:
        return self.paid_micro + self.bonus_micro


_BALANCES = Base.metadata.tables["balances"]


@functools.cache
def _make_balance(dialect: str) -> Any:
    upsert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    return upsert(_BALANCES).on_conflict_do_nothing()


async def ensure_balance(tx: Tx, account_id: str) -> None:
    """The account's balance row, made if missing; two replicas making it at once both succeed."""
    await tx.run(_make_balance(tx.dialect), {"account_id": account_id})


_ENTRIES = Base.metadata.tables["ledger_entries"]
_TOTALS = (
    _BALANCES.c.paid_micro,
    _BALANCES.c.bonus_micro,
    _BALANCES.c.held_micro,
    _BALANCES.c.spent_paid_micro,
    _BALANCES.c.spent_bonus_micro,
)
# Hot statements are built once, with bind parameters: building and cache-keying a statement
# per call cost more than running it.
LOCKED_ACCOUNT = "locked_account"  # the bind parameter naming the account in lock statements


def locked_account() -> BindParameter[str]:
    """The account being locked, for ``lock_statement``'s ``also`` expressions."""
    return bindparam(LOCKED_ACCOUNT, type_=String)


@dataclass(frozen=True)
class LockStatement:
    """A lock of the balance row that reads more under it (see ``lock_statement``)."""

    combined: Update  # one UPDATE ... RETURNING the totals and the ``also`` values
    plain: Update  # the UPDATE ... RETURNING the totals alone
    also: Select[Any] | None  # the ``also`` values, read after the lock


def lock_statement(*also: ColumnElement[Any]) -> LockStatement:
    """The lock's statements, reading ``also`` too (scalar subqueries read under the lock);
    build them once, at import, and pass them to ``lock``."""
    plain = (
        update(_BALANCES)
        .where(_BALANCES.c.account_id == locked_account())
        .values(version=_BALANCES.c.version + 1)
        .returning(*_TOTALS)
    )
    return LockStatement(plain.returning(*also), plain, select(*also) if also else None)


_LOCK = lock_statement()
_INSERT_ENTRY = insert(_ENTRIES)


@dataclass(frozen=True)
class Locked:
    """An account's balance row, taken for the rest of the transaction, as it stood then."""

    account_id: str
    totals: Totals
    also: tuple[Any, ...]  # the values of the statement's ``also`` expressions, in order


async def lock(tx: Tx, account_id: str, statement: LockStatement = _LOCK, **parameters: Any) -> Locked:
    """Take the account's balance row for the rest of the transaction, and read it.

    The UPDATE comes first on purpose: on SQLite it takes the write lock before any read
    (no read-then-upgrade deadlock); on PostgreSQL it row-locks, so concurrent creations for
    one account queue here and each sees the previous one's hold. A ``statement`` from
    ``lock_statement`` reads more (the creation's concurrency count and free calls);
    ``parameters`` bind what those name. On SQLite, which has one writer at a time, that is
    the same statement (one instead of three); on PostgreSQL a second one, because the
    subqueries of an UPDATE that waited for the row see the data as it was before the wait.
    """
    values = {LOCKED_ACCOUNT: account_id, **parameters}
    inline = statement.also is None or tx.dialect == "sqlite"
    chosen = statement.combined if inline else statement.plain
    row = await tx.first(chosen, values)
    if row is None:
        await ensure_balance(tx, account_id)
        row = await tx.first(chosen, values)
        assert row is not None
    also = tuple(row[5:])
    if not inline and statement.also is not None:
        found = await tx.first(statement.also, values)
        assert found is not None
        also = tuple(found)
    return Locked(account_id, Totals(*(int(v) for v in row[:5])), also)


@functools.cache
def _move_statement(names: tuple[str, ...]) -> Update:
    columns = _BALANCES.c
    return (
        update(_BALANCES)
        .where(columns.account_id == bindparam("moved_account"))
        .values({name: columns[name] + bindparam(f"add_{name}") for name in names})
    )


async def _move(tx: Tx, account_id: str, **deltas: int) -> None:
    """Add ``deltas`` to the account's running totals (one UPDATE, no read)."""
    if any(deltas.values()):
        values = {f"add_{name}": delta for name, delta in deltas.items()}
        await tx.run(_move_statement(tuple(deltas)), {"moved_account": account_id, **values})


async def _record(
    tx: Tx,
    account_id: str,
    kind: LedgerKind,
    amount: int,
    bonus: int,
    now: datetime,
    task_id: str | None,
    note: str | None = None,
) -> None:
    await tx.run(
        _INSERT_ENTRY,
        {
            "account_id": account_id,
            "kind": kind.value,
            "amount_micro": amount,
            "bonus_micro": bonus,
            "task_id": task_id,
            "note": note,
            "created_at": now,
        },
    )


async def totals(session: AsyncSession, account_id: str) -> Totals:
    row = (await session.execute(select(*_TOTALS).where(_BALANCES.c.account_id == account_id))).first()
    if row is None:
        return Totals(0, 0, 0, 0, 0)
    return Totals(*(int(v) for v in row))


async def grant(
    session: AsyncSession,
    account_id: str,
    amount_micro: int,
    now: datetime,
    *,
    bonus: bool = False,
    note: str | None = None,
) -> Totals:
    if amount_micro <= 0:
        raise ValidationError("a grant must be a positive amount", param="usd")
    tx = SessionTx(session)
    await lock(tx, account_id)
    bonus_part = amount_micro if bonus else 0
    await _move(tx, account_id, paid_micro=amount_micro - bonus_part, bonus_micro=bonus_part)
    await _record(tx, account_id, LedgerKind.GRANT, amount_micro, bonus_part, now, None, note)
    return await totals(session, account_id)


def hold_parts(locked: Locked, price: int) -> int:
    """The bonus part of a hold of ``price`` on a locked balance, or raise 402."""
    available = locked.totals.balance_micro
    if price > available:
        raise InsufficientCreditsError(
            f"This call costs {price} micro-dollars; the balance is {available}. Add credits to continue.",
            extra={"price_micro": price, "balance_micro": available},
        )
    return min(locked.totals.bonus_micro, price)  # the bonus bucket goes first


async def hold(tx: Tx, locked: Locked, task_id: str, price: int, now: datetime) -> int:
    """Reserve ``price`` on a locked balance, or raise 402 (nothing written). The bonus part."""
    bonus_part = hold_parts(locked, price)
    await _move(
        tx, locked.account_id, bonus_micro=-bonus_part, paid_micro=bonus_part - price, held_micro=price
    )
    await _record(tx, locked.account_id, LedgerKind.HOLD, price, bonus_part, now, task_id)
    return bonus_part


@functools.cache
def _end_hold_statement(to: HoldState) -> Update:
    tasks = Base.metadata.tables["tasks"]
    return (
        update(tasks)
        .where(tasks.c.id == bindparam("ended_task"), tasks.c.hold_state == HoldState.HELD.value)
        .values(
            hold_state=to.value,
            settled_at=bindparam("at") if to is HoldState.CAPTURED else None,
            refunded_at=bindparam("at") if to is HoldState.RELEASED else None,
        )
    )


async def _end_hold(tx: Tx, task: Task, to: HoldState, now: datetime) -> bool:
    """Move the hold held -> ``to`` once (a conditional UPDATE), then record it. False if it had ended.

    The totals move by deltas in one UPDATE of the balance row (it takes the row lock too),
    so no read of the row is needed.
    """
    if await tx.run(_end_hold_statement(to), {"ended_task": task.id, "at": now}) != 1:
        return False
    # What the UPDATE wrote, on the caller's object too (as loaded: not a change to flush).
    set_committed_value(task, "hold_state", to.value)
    set_committed_value(task, "settled_at", now if to is HoldState.CAPTURED else None)
    set_committed_value(task, "refunded_at", now if to is HoldState.RELEASED else None)
    price, bonus_part = task.charge_micro, task.hold_bonus_micro
    if to is HoldState.CAPTURED:  # the money is spent
        await _move(
            tx,
            task.account_id,
            held_micro=-price,
            spent_bonus_micro=bonus_part,
            spent_paid_micro=price - bonus_part,
        )
        kind = LedgerKind.CAPTURE
    else:  # the money goes back to the buckets it came from
        await _move(
            tx, task.account_id, held_micro=-price, bonus_micro=bonus_part, paid_micro=price - bonus_part
        )
        kind = LedgerKind.RELEASE
    await _record(tx, task.account_id, kind, price, bonus_part, now, task.id)
    return True


async def capture(tx: Tx, task: Task, now: datetime) -> bool:
    """Charge a completed task's hold. False if the hold had already ended."""
    return await _end_hold(tx, task, HoldState.CAPTURED, now)


async def release(tx: Tx, task: Task, now: datetime) -> bool:
    """Give a failed, canceled or expired task's hold back. False if it had already ended."""
    return await _end_hold(tx, task, HoldState.RELEASED, now)


@dataclass(frozen=True)
class Drift:
    account_id: str
    stored: Totals
    rebuilt: Totals


async def rebuild(session: AsyncSession, account_id: str) -> Totals:
    """The totals recomputed from the ledger alone."""
    rows = await session.execute(
        select(LedgerEntry.kind, func.sum(LedgerEntry.amount_micro), func.sum(LedgerEntry.bonus_micro))
        .where(LedgerEntry.account_id == account_id)
        .group_by(LedgerEntry.kind)
    )
    sums = {kind: (int(amount or 0), int(bonus or 0)) for kind, amount, bonus in rows}
    grant_a, grant_b = sums.get(LedgerKind.GRANT, (0, 0))
    hold_a, hold_b = sums.get(LedgerKind.HOLD, (0, 0))
    cap_a, cap_b = sums.get(LedgerKind.CAPTURE, (0, 0))
    rel_a, rel_b = sums.get(LedgerKind.RELEASE, (0, 0))
    return Totals(
        paid_micro=(grant_a - grant_b) - (hold_a - hold_b) + (rel_a - rel_b),
        bonus_micro=grant_b - hold_b + rel_b,
        held_micro=hold_a - cap_a - rel_a,
        spent_paid_micro=cap_a - cap_b,
        spent_bonus_micro=cap_b,
    )


async def check(session: AsyncSession, *, repair: bool = False) -> list[Drift]:
    """Every account whose stored totals differ from its ledger (rebuilt when ``repair``)."""
    drifts: list[Drift] = []
    for balance in list(await session.scalars(select(Balance))):
        rebuilt = await rebuild(session, balance.account_id)
        stored = await totals(session, balance.account_id)
        if stored != rebuilt:
            drifts.append(Drift(balance.account_id, stored, rebuilt))
            if repair:
                balance.paid_micro = rebuilt.paid_micro
                balance.bonus_micro = rebuilt.bonus_micro
                balance.held_micro = rebuilt.held_micro
                balance.spent_paid_micro = rebuilt.spent_paid_micro
                balance.spent_bonus_micro = rebuilt.spent_bonus_micro
    return drifts


async def spent_since(session: AsyncSession, account_id: str, since: datetime) -> int:
    total = await session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.amount_micro), 0)).where(
            LedgerEntry.account_id == account_id,
            LedgerEntry.kind == LedgerKind.CAPTURE,
            LedgerEntry.created_at >= since,
        )
    )
    return int(total or 0)


async def violations(session: AsyncSession) -> list[str]:
    """Broken promises between tasks and the ledger, in words (empty when all hold)."""
    from imagegate.tasks.status import ACTIVE, TaskStatus

    problems: list[str] = []
    checks = [
        (
            Task.status.in_(ACTIVE) & (Task.hold_state.notin_([HoldState.HELD, HoldState.NONE])),
            "active but its hold ended",
        ),
        (
            Task.status.notin_(ACTIVE) & (Task.hold_state == HoldState.HELD),
            "ended but its hold is still held",
        ),
        (
            (Task.hold_state == HoldState.CAPTURED) & (Task.status != TaskStatus.COMPLETED),
            "charged but not completed",
        ),
        (
            (Task.hold_state == HoldState.RELEASED) & (Task.status == TaskStatus.COMPLETED),
            "completed but refunded",
        ),
    ]
    for condition, words in checks:
        for task_id in await session.scalars(select(Task.id).where(condition).limit(20)):
            problems.append(f"task {task_id}: {words}")
    # Each task's hold, and at most one ending, recorded in the ledger with the task's amount.
    entries = await session.execute(
        select(LedgerEntry.task_id, LedgerEntry.kind, LedgerEntry.amount_micro).where(
            LedgerEntry.task_id.is_not(None)
        )
    )
    by_task: dict[str, dict[str, int]] = {}
    for entry_task, kind, amount in entries:
        by_task.setdefault(str(entry_task), {})[kind] = amount
    rows = await session.execute(
        select(Task.id, Task.hold_state, Task.charge_micro).where(Task.hold_state != HoldState.NONE)
    )
    for task_id, state, charge in rows:
        kinds = by_task.get(task_id, {})
        if kinds.get(LedgerKind.HOLD) != charge:
            problems.append(f"task {task_id}: hold entry missing or not {charge}")
        if LedgerKind.CAPTURE in kinds and LedgerKind.RELEASE in kinds:
            problems.append(f"task {task_id}: both captured and released")
        expected = {HoldState.CAPTURED: LedgerKind.CAPTURE, HoldState.RELEASED: LedgerKind.RELEASE}.get(
            HoldState(state)
        )
        if expected is not None and kinds.get(expected) != charge:
            problems.append(f"task {task_id}: {state} without a matching {expected} entry")
    return problems
