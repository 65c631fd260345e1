"""Providers turn an ImageRequest into images; nothing else (no DB, billing or storage)."""

from imagegate.providers.base import (
    Action,
    FinalImage,
    GeneratedImage,
    ImageRequest,
    PartialImage,
    Progress,
    Provider,
    ProviderError,
    ProviderEvent,
    Retrying,
    SourceImage,
    Usage,
)

__all__ = [
    "Action",
    "FinalImage",
    "GeneratedImage",
    "ImageRequest",
    "PartialImage",
    "Progress",
    "Provider",
    "ProviderError",
    "ProviderEvent",
    "Retrying",
    "SourceImage",
    "Usage",
]
