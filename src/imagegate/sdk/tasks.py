"""Typed results: a task (the server's ``TaskView``) that can save its images, and a model."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, PrivateAttr

from imagegate.schemas import TaskView
from imagegate.sdk.errors import TaskFailedError

if TYPE_CHECKING:
    from imagegate.sdk.client import AsyncClient, Client

TERMINAL = frozenset({"completed", "failed", "canceled"})
_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}
_PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "jpg": "JPEG", "webp": "WEBP", "gif": "GIF"}
SAVE_FORMATS = ("png", "jpeg", "webp", "gif")  # what save(format=...) converts to


class TaskBase(TaskView):
    """A task as the gateway reports it, with the SDK's conveniences."""

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    def raise_for_status(self) -> None:
        """Raise :class:`TaskFailedError` if the task ended failed or canceled."""
        if self.status in ("failed", "canceled"):
            raise TaskFailedError(self)

    def targets(self, dest: str | Path, fmt: str | None = None) -> list[Path]:
        """Where :meth:`save` writes each image: into ``dest`` when it is a directory (or
        ends with a slash), else at ``dest`` (``stem-N.ext`` when there are several)."""
        dest_text = str(dest)
        path = Path(dest)
        exts = [fmt or _EXTENSIONS.get(image.content_type, "bin") for image in self.images]
        if dest_text.endswith(("/", "\\")) or path.is_dir():
            return [path / f"{self.id}-{i}.{ext}" for i, ext in enumerate(exts)]
        if len(exts) == 1:
            return [path]
        suffix = path.suffix
        return [path.with_name(f"{path.stem}-{i}{suffix or '.' + ext}") for i, ext in enumerate(exts)]


def write_image(data: bytes, target: Path, fmt: str | None) -> Path:
    """Write the bytes as given, or converted to ``fmt`` (png, jpeg, webp, gif) with Pillow,
    which only this conversion needs."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if fmt is not None:
        pil_format = _PIL_FORMATS.get(fmt.lower())
        if pil_format is None:
            raise ValueError(f"format must be one of: {', '.join(SAVE_FORMATS)} (not {fmt!r})")
        try:
            from PIL import Image
        except ImportError:  # pragma: no cover - depends on the environment
            raise ImportError("converting formats needs Pillow: pip install pillow") from None
        with Image.open(io.BytesIO(data)) as image:
            if image.format != pil_format:
                converted = image.convert("RGB") if pil_format == "JPEG" else image
                buffer = io.BytesIO()
                converted.save(buffer, pil_format)
                data = buffer.getvalue()
    target.write_bytes(data)
    return target


class Task(TaskBase):
    """A task read through :class:`Client`."""

    _client: Client | None = PrivateAttr(None)

    def save(self, dest: str | Path = ".", *, format: str | None = None) -> list[Path]:
        """Download every image to ``dest`` (a directory or a file path); the paths written."""
        assert self._client is not None, "a Task made by hand has no client to download with"
        self.raise_for_status()
        return [
            write_image(self._client.download(image.url), target, format)
            for image, target in zip(self.images, self.targets(dest, format), strict=True)
        ]


class AsyncTask(TaskBase):
    """A task read through :class:`AsyncClient`; ``save`` is awaited."""

    _client: AsyncClient | None = PrivateAttr(None)

    async def save(self, dest: str | Path = ".", *, format: str | None = None) -> list[Path]:
        """Download every image to ``dest`` (a directory or a file path); the paths written."""
        assert self._client is not None, "a Task made by hand has no client to download with"
        self.raise_for_status()
        return [
            write_image(await self._client.download(image.url), target, format)
            for image, target in zip(self.images, self.targets(dest, format), strict=True)
        ]


class Model(BaseModel):
    """One entry of ``GET /api/v1/models``; the gateway may add fields, kept as extras."""

    model_config = ConfigDict(extra="allow")
    id: str
    service: str
    display_name: str
    aliases: list[str] = []
    served_by: str | None = None
    lifecycle: dict[str, Any] = {}
    actions: list[dict[str, Any]] = []
    page_url: str | None = None

    def action(self, name: str) -> dict[str, Any] | None:
        return next((a for a in self.actions if a.get("action") == name), None)

    def matches(self, name: str) -> bool:
        return name == self.id or name in self.aliases
