"""Hand the upstream's own base64 from the worker to the OpenAI face waiting in this process.

An OpenAI-compatible upstream sends images as base64; the worker decodes them once to store
the bytes, and an OpenAI face call that wants ``b64_json`` would then read the bytes back and
encode them again. Instead the worker leaves the upstream's strings here, keyed by the stored
object's key, and the face takes them: the answer carries the upstream's base64 as it came.

Only a process-local shortcut: a face in another process, an entry evicted by the size bound
or an image the upstream sent as bytes finds nothing, and the face reads storage as before.
The keys make it safe: a stale entry (a run that lost its task) names keys the task lacks.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from imagegate.providers.base import GeneratedImage

MAX_CHARS = 128 * 1024 * 1024  # ~50 answers of 2 MB waiting at once; older ones are dropped


class B64Relay:
    def __init__(self, max_chars: int = MAX_CHARS) -> None:
        self.max_chars = max_chars
        self._entries: OrderedDict[str, dict[str, str | bytes | memoryview]] = OrderedDict()
        self._chars = 0

    def keep(self, task_id: str, stored: Sequence[dict[str, Any]], images: Sequence[GeneratedImage]) -> None:
        """Leave a finished run's base64 (when every image has one) for the face to take."""
        encoded = {item["key"]: image.b64 for item, image in zip(stored, images, strict=True) if image.b64}
        if not encoded or len(encoded) != len(images):
            return
        self.drop(task_id)
        self._entries[task_id] = encoded
        self._chars += sum(map(len, encoded.values()))
        while self._chars > self.max_chars and self._entries:
            _, evicted = self._entries.popitem(last=False)
            self._chars -= sum(map(len, evicted.values()))

    def take(self, task_id: str) -> dict[str, str | bytes | memoryview]:
        """The stored key -> base64 of the task's images, once; empty when there is none."""
        entry = self._entries.pop(task_id, None)
        if entry is None:
            return {}
        self._chars -= sum(map(len, entry.values()))
        return entry

    def drop(self, task_id: str) -> None:
        self.take(task_id)


__all__ = ["B64Relay"]
