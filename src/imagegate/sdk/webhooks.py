"""``client.webhooks``: the account's signing secret and a task's webhook deliveries."""

from __future__ import annotations

from typing import TYPE_CHECKING

from imagegate.schemas import WebhookDeliveryList, WebhookDeliveryView, WebhookSecretView
from imagegate.sdk._base import Call, Op

if TYPE_CHECKING:
    from imagegate.sdk.client import AsyncClient, Client


def secret() -> Op[WebhookSecretView]:
    return WebhookSecretView.model_validate((yield Call("GET", "/api/v1/me/webhook_secret")))


def rotate_secret() -> Op[WebhookSecretView]:
    return WebhookSecretView.model_validate((yield Call("POST", "/api/v1/me/webhook_secret/rotate")))


def deliveries(task_id: str) -> Op[list[WebhookDeliveryView]]:
    body = yield Call("GET", f"/api/v1/tasks/{task_id}/deliveries")
    return WebhookDeliveryList.model_validate(body).data


def redeliver(task_id: str) -> Op[WebhookDeliveryView]:
    return WebhookDeliveryView.model_validate((yield Call("POST", f"/api/v1/tasks/{task_id}/deliveries")))


class Webhooks:
    def __init__(self, client: Client) -> None:
        self._client = client

    def secret(self) -> WebhookSecretView:
        """The secret that signs this account's webhooks (``whsec_...``)."""
        return self._client.run(secret())

    def rotate_secret(self) -> WebhookSecretView:
        """A new secret; the old one keeps signing alongside it for the server's grace period."""
        return self._client.run(rotate_secret())

    def deliveries(self, task_id: str) -> list[WebhookDeliveryView]:
        """The task's webhook deliveries, each with its attempts."""
        return self._client.run(deliveries(task_id))

    def redeliver(self, task_id: str) -> WebhookDeliveryView:
        """Send the ended task's webhook to its callback_url again."""
        return self._client.run(redeliver(task_id))


class AsyncWebhooks:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def secret(self) -> WebhookSecretView:
        return await self._client.run(secret())

    async def rotate_secret(self) -> WebhookSecretView:
        return await self._client.run(rotate_secret())

    async def deliveries(self, task_id: str) -> list[WebhookDeliveryView]:
        return await self._client.run(deliveries(task_id))

    async def redeliver(self, task_id: str) -> WebhookDeliveryView:
        return await self._client.run(redeliver(task_id))
