"""The store is checked at start (the real S3 server of tests/services.py): a bucket that does not
exist or refused credentials stop `serve` and `worker` with a clear error naming the bucket and
endpoint, never a credential, instead of failing the first task."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from imagegate.storage import StorageUnavailable
from imagegate.storage.base import S3Options
from imagegate.storage.s3 import S3Storage
from tests.services import S3_ACCESS_KEY, S3_BUCKET, S3_REGION, S3_SECRET_KEY, Services, free_port
from tests.serving import IMAGEGATE

pytestmark = pytest.mark.one_profile("the S3 store's start-up check, on the suite's S3 server")


def scale_env(services: Services, data_dir: Path, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEGATE_")}
    env.update({f"IMAGEGATE_{k.upper()}": v for k, v in services.settings_for(data_dir).items()})
    env.update(IMAGEGATE_DATA_DIR=str(data_dir), IMAGEGATE_LOG_LEVEL="warning", **overrides)
    return env


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(IMAGEGATE), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_serve_refuses_to_start_on_a_bucket_that_does_not_exist(services: Services, tmp_path: Path) -> None:
    env = scale_env(services, tmp_path, IMAGEGATE_STORAGE_URL="s3://no-such-bucket/outputs")
    result = run_cli(["serve", "--port", "0"], env)
    assert result.returncode == 1, result.stderr
    assert "listening" not in result.stdout  # stopped before binding, no demo key spent
    error = " ".join(result.stderr.split())
    assert "s3://no-such-bucket/outputs" in error and services.s3.endpoint in error, error
    assert "the bucket does not exist (NoSuchBucket)" in error, error
    assert S3_SECRET_KEY not in result.stderr and "Traceback" not in result.stderr


def test_a_worker_refuses_to_start_with_a_wrong_secret_key(services: Services, tmp_path: Path) -> None:
    env = scale_env(
        services,
        tmp_path,
        IMAGEGATE_JOB_QUEUE="postgres",
        IMAGEGATE_S3_SECRET_ACCESS_KEY="not-the-secret",
    )
    result = run_cli(["worker", "--concurrency", "1"], env)
    assert result.returncode == 1, result.stderr
    error = " ".join(result.stderr.split())
    assert f"s3://{S3_BUCKET}/" in error and "SignatureDoesNotMatch" in error, error
    assert "not-the-secret" not in result.stderr and S3_SECRET_KEY not in result.stderr
    assert "Traceback" not in result.stderr


def check(bucket: str, endpoint: str, access_key: str = S3_ACCESS_KEY) -> None:
    options = S3Options(
        endpoint_url=endpoint, region=S3_REGION, access_key_id=access_key, secret_access_key=S3_SECRET_KEY
    )
    asyncio.run(S3Storage(f"s3://{bucket}/prefix", options).check())


def test_the_check_names_what_is_wrong_and_passes_a_good_store(services: Services) -> None:
    check(S3_BUCKET, services.s3.endpoint)  # the bucket exists, the key may list it
    with pytest.raises(StorageUnavailable, match=r"access key is not known .*\(InvalidAccessKeyId\)"):
        check(S3_BUCKET, services.s3.endpoint, access_key="nobody")
    closed = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(StorageUnavailable, match=f"s3://{S3_BUCKET}/prefix at {closed}: cannot connect"):
        check(S3_BUCKET, closed)
