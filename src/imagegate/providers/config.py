"""One configured provider: what settings (environment JSON or ``[[providers]]`` in TOML) say.

Credentials are named, never given: ``api_key_env`` is the *name* of an environment variable,
read when the provider is built, so the secret never sits in settings, logs or docs.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from imagegate.retry import INITIAL_DELAY_S, MAX_DELAY_S, MAX_RETRIES, RetryPolicy


class ProviderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,31}$", description="Name routes and tasks use.")
    kind: str = Field(description="Implementation: openai, runapi, diffusers, offline or fake.")
    api_key_env: str | None = Field(None, description="Environment variable holding the API key.")
    base_url: str | None = Field(None, description="Upstream base URL; default: the kind's own.")
    timeout_s: float = Field(120.0, gt=0, description="Time limit for one upstream call.")
    max_concurrent: int = Field(8, ge=1, description="Upstream calls this provider makes at once.")
    max_retries: int = Field(MAX_RETRIES, ge=0, description="Retries of a retryable failure.")
    retry_base_s: float = Field(INITIAL_DELAY_S, ge=0, description="First back-off step.")
    retry_cap_s: float = Field(MAX_DELAY_S, ge=0, description="Longest wait, Retry-After included.")
    poll_interval_s: float = Field(2.0, gt=0, description="runapi: first wait between task polls.")
    model_path: str | None = Field(None, description="diffusers: local directory of a saved pipeline.")
    device: Literal["auto", "cuda", "mps", "cpu"] = Field("auto", description="diffusers: where to run.")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", description="diffusers: weight precision; auto is float16 on a GPU, float32 on the CPU."
    )
    preview_every: int = Field(10, ge=0, description="diffusers: a decoded preview every K steps; 0: none.")

    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) if self.api_key_env else None

    def required_api_key(self) -> str:
        """The key, or a start-up error naming the variable to set (never the value)."""
        key = self.api_key()
        if not key:
            raise ValueError(f"provider {self.name}: set the environment variable {self.api_key_env}")
        return key

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(max_retries=self.max_retries, base_s=self.retry_base_s, cap_s=self.retry_cap_s)


__all__ = ["ProviderConfig"]
