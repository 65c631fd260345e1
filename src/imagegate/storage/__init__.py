"""Bytes of outputs and transient inputs, and the signed URLs that serve them."""

from imagegate.storage.base import Storage, StorageNotFound, StorageUnavailable, open_storage
from imagegate.storage.signing import UrlSigner

__all__ = ["Storage", "StorageNotFound", "StorageUnavailable", "UrlSigner", "open_storage"]
