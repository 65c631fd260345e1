"""Hand task ids to workers and recover tasks orphaned by a crash."""

from imagegate.queue.local import LocalQueue

__all__ = ["LocalQueue"]
