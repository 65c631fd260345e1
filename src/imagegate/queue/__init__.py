"""Hand task ids to workers and recover tasks whose worker was lost."""

from imagegate.queue.base import Queue
from imagegate.queue.local import LocalQueue

__all__ = ["LocalQueue", "Queue"]
