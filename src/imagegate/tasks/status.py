"""Task statuses: the seed's vocabulary, so RunAPI clients work unchanged."""

from __future__ import annotations

from enum import StrEnum


class TaskStatus(StrEnum):
    PENDING = "pending"  # accepted, waiting for a worker
    PROCESSING = "processing"  # a worker holds it
    COMPLETED = "completed"  # images stored; terminal
    FAILED = "failed"  # the provider or an input failed; terminal, never charged
    CANCELED = "canceled"  # the client gave up on it; terminal

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELED})
ACTIVE = (TaskStatus.PENDING.value, TaskStatus.PROCESSING.value)
