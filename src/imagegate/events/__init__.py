"""The events bus: task status, progress, partial images and ends for SSE, waiters and cancel."""

from imagegate.events.base import Bus, BusClosed, Event, EventKind, Subscription
from imagegate.events.local import LocalBus

__all__ = ["Bus", "BusClosed", "Event", "EventKind", "LocalBus", "Subscription"]
