"""Objects in an S3-compatible bucket (``s3://bucket/prefix``), through obstore.

obstore over aiobotocore, measured against SeaweedFS on loopback (2 MB objects): reads 3.0 vs
5.2 ms, 30 concurrent writes 0.31 vs 0.57 s, presigning 0.1 vs 0.25 ms, import 2 vs 171 ms,
+15 MB with no dependencies vs +49 MB. Downloads never pass through the gateway: its signed
``/files/`` link answers with a redirect to a presigned GET (``presigned_get``).
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import obstore
from obstore.exceptions import NotFoundError
from obstore.store import S3Store

from imagegate.storage.base import S3Options, StorageNotFound
from imagegate.storage.local import valid_key

MAX_PRESIGN = timedelta(days=7)  # SigV4's limit


class S3Storage:
    def __init__(self, url: str, options: S3Options) -> None:
        parts = urlsplit(url)
        if not parts.netloc:
            raise ValueError(f"storage URL {url!r} names no bucket (s3://bucket/prefix)")
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        opts = options.resolved()
        config: dict[str, str] = {"region": opts.region or "us-east-1"}
        if opts.access_key_id and opts.secret_access_key:
            config["access_key_id"] = opts.access_key_id
            config["secret_access_key"] = opts.secret_access_key
        client_options: dict[str, bool] = {}
        if opts.endpoint_url:
            # A self-hosted endpoint (MinIO, SeaweedFS): path-style addressing, plain HTTP allowed.
            config["endpoint"] = opts.endpoint_url
            client_options["allow_http"] = opts.endpoint_url.startswith("http://")
        self.store = S3Store(
            self.bucket,
            prefix=self.prefix or None,
            virtual_hosted_style_request=not opts.endpoint_url,
            client_options=client_options,  # type: ignore[arg-type]
            **config,  # type: ignore[arg-type]
        )

    @staticmethod
    def _path(key: str) -> str:
        if not valid_key(key):  # a signed URL echoes keys back: refuse anything we never made
            raise StorageNotFound(key)
        return key

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await obstore.put_async(self.store, self._path(key), data, attributes={"Content-Type": content_type})

    async def get(self, key: str) -> bytes:
        try:
            result = await obstore.get_async(self.store, self._path(key))
            return bytes(await result.bytes_async())
        except (NotFoundError, FileNotFoundError):
            raise StorageNotFound(key) from None

    async def delete(self, key: str) -> None:
        with contextlib.suppress(NotFoundError, FileNotFoundError):
            await obstore.delete_async(self.store, self._path(key))

    async def exists(self, key: str) -> bool:
        try:
            await obstore.head_async(self.store, self._path(key))
        except (NotFoundError, FileNotFoundError):
            return False
        return True

    def local_path(self, key: str) -> Path | None:
        return None

    async def presigned_get(self, key: str, expires_in: timedelta) -> str | None:
        """A URL that downloads the object straight from the bucket until ``expires_in`` passes."""
        expires_in = min(max(expires_in, timedelta(seconds=1)), MAX_PRESIGN)
        return await obstore.sign_async(self.store, "GET", self._path(key), expires_in)
