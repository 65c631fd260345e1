"""Standard Webhooks headers for a body, signed by the ``standardwebhooks`` package."""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime
from math import floor

from standardwebhooks.webhooks import Webhook


def headers(
    secrets: Iterable[str], message_id: str, body: bytes, *, at: float | None = None
) -> dict[str, str]:
    """``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` (one ``v1,`` signature per
    secret, space-separated, so either verifies during a rotation).

    The timestamp is the real wall clock at sending, not the gateway's clock: receivers judge
    it against their own clocks (Standard Webhooks allows five minutes either way)."""
    stamp = datetime.fromtimestamp(floor(time.time() if at is None else at), UTC)
    signatures = " ".join(Webhook(secret).sign(message_id, stamp, body) for secret in secrets)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(stamp.timestamp())),
        "webhook-signature": signatures,
        "content-type": "application/json",
    }


__all__ = ["headers"]
