"""Objects in an S3-compatible bucket (``s3://bucket/prefix``), through obstore.

obstore over aiobotocore, measured against SeaweedFS on loopback (2 MB objects): reads 3.0 vs
5.2 ms, 30 concurrent writes 0.31 vs 0.57 s, presigning 0.1 vs 0.25 ms, import 2 vs 171 ms,
+15 MB with no dependencies vs +49 MB. Downloads never pass through the gateway: its signed
``/files/`` link answers with a redirect to a presigned GET (``presigned_get``).
"""

from __future__ import annotations

import contextlib
import re
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import obstore
from obstore.exceptions import NotFoundError
from obstore.store import S3Store

from imagegate.storage.base import S3Options, StorageNotFound, StorageUnavailable
from imagegate.storage.local import valid_key

if TYPE_CHECKING:
    from obstore.store import ClientConfig

MAX_PRESIGN = timedelta(days=7)  # SigV4's limit
CHECK_TIMEOUT = "10s"  # the start-up check: fail in seconds, not after obstore's 3 minutes of retries
_S3_CODE = re.compile(r"<Code>([A-Za-z]+)</Code>")
_STATUS = re.compile(r"status code: (\d{3})")
_REASONS = {
    "NoSuchBucket": "the bucket does not exist",
    "InvalidAccessKeyId": "the access key is not known to the store",
    "SignatureDoesNotMatch": "the secret key does not match the access key",
    "AccessDenied": "the credentials may not list this bucket",
    "AllAccessDisabled": "the credentials may not list this bucket",
    "RequestTimeTooSkewed": "this host's clock is more than 15 minutes off the store's",
}


def _reason(exc: Exception) -> str:
    """Why the store refused, from the S3 error code or the HTTP failure: never the raw error text,
    which quotes request details."""
    text = str(exc)
    code = _S3_CODE.search(text)
    if code:
        return f"{_REASONS.get(code.group(1), 'the store refused the request')} ({code.group(1)})"
    status = _STATUS.search(text)
    if status:
        return f"the store answered HTTP {status.group(1)}"
    if "error sending request" in text or "timed out" in text.lower():
        return "cannot connect to the endpoint"
    return f"the request failed ({type(exc).__name__})"


class S3Storage:
    def __init__(self, url: str, options: S3Options) -> None:
        parts = urlsplit(url)
        if not parts.netloc:
            raise ValueError(f"storage URL {url!r} names no bucket (s3://bucket/prefix)")
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        opts = options.resolved()
        endpoint = urlsplit(opts.endpoint_url or "")
        # Named in errors; userinfo dropped, should an endpoint URL carry any.
        self.endpoint = (
            f"{endpoint.scheme}://{endpoint.hostname}{f':{endpoint.port}' if endpoint.port else ''}"
            if endpoint.hostname
            else f"AWS S3 ({opts.region or 'us-east-1'})"
        )
        config: dict[str, str] = {"region": opts.region or "us-east-1"}
        if opts.access_key_id and opts.secret_access_key:
            config["access_key_id"] = opts.access_key_id
            config["secret_access_key"] = opts.secret_access_key
        client_options: ClientConfig = {}
        if opts.endpoint_url:
            # A self-hosted endpoint (MinIO, SeaweedFS): path-style addressing, plain HTTP allowed.
            config["endpoint"] = opts.endpoint_url
            client_options["allow_http"] = opts.endpoint_url.startswith("http://")
        self._kwargs: dict[str, Any] = {
            "prefix": self.prefix or None,
            "virtual_hosted_style_request": not opts.endpoint_url,
            **config,
        }
        self._client_options = client_options
        self.store = S3Store(self.bucket, client_options=client_options, **self._kwargs)

    async def check(self) -> None:
        """List the top level of the prefix (a few entries: its folders): the bucket exists and
        the credentials may read it. Raises StorageUnavailable naming the bucket and endpoint,
        never a credential."""
        probe = S3Store(
            self.bucket,
            client_options={
                **self._client_options,
                "timeout": CHECK_TIMEOUT,
                "connect_timeout": CHECK_TIMEOUT,
            },
            retry_config={"max_retries": 2, "retry_timeout": timedelta(seconds=10)},
            **self._kwargs,
        )
        try:
            await obstore.list_with_delimiter_async(probe)
        except Exception as exc:  # obstore raises its own classes and OSError subclasses
            where = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
            raise StorageUnavailable(f"storage {where} at {self.endpoint}: {_reason(exc)}") from None

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
