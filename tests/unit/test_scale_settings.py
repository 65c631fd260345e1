"""Settings of the scale profile: database URLs, S3 options and their AWS fallbacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagegate.settings import Settings, async_database_url
from imagegate.storage import open_storage
from imagegate.storage.base import S3Options
from imagegate.storage.s3 import S3Storage


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("postgresql://u:p@db:5432/ig", "postgresql+psycopg://u:p@db:5432/ig"),
        ("postgres://u@db/ig", "postgresql+psycopg://u@db/ig"),
        ("postgresql+psycopg://u@db/ig", "postgresql+psycopg://u@db/ig"),
        ("sqlite+aiosqlite:////tmp/x.db", "sqlite+aiosqlite:////tmp/x.db"),
    ],
)
def test_postgresql_urls_get_psycopg(given: str, used: str, tmp_path: Path) -> None:
    assert async_database_url(given) == used
    assert Settings(data_dir=tmp_path, database_url=given).resolved_database_url == used


def test_s3_options_fall_back_to_the_aws_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-3")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-env")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-from-env")
    resolved = S3Options(access_key_id="from-settings").resolved()
    assert resolved == S3Options("http://127.0.0.1:9000", "eu-west-3", "from-settings", "secret-from-env")


def test_s3_storage_urls(tmp_path: Path) -> None:
    storage = open_storage("s3://bucket/some/prefix/", S3Options("http://127.0.0.1:9", "us-east-1", "a", "b"))
    assert isinstance(storage, S3Storage)
    assert (storage.bucket, storage.prefix) == ("bucket", "some/prefix")
    assert storage.local_path("outputs/x.png") is None
    with pytest.raises(ValueError, match="names no bucket"):
        open_storage("s3:///prefix", S3Options())
    with pytest.raises(ValueError, match="s3://"):
        open_storage("gs://bucket/prefix")
