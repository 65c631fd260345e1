"""Typed shapes of the HTTP boundary: request bodies as documented, responses as sent.

Field names and values are exactly what clients have always seen; the SDK imports these.
Only pydantic is imported here: the server (``api.models`` re-exports this module) and the
SDK share these models, and the SDK must import without the server's dependencies.
Request bodies are still read leniently by ``deps.json_body`` (its error messages are part
of the contract), so the request models here only describe them for the OpenAPI document.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    """A response the gateway may grow fields on; clients must ignore unknown ones."""

    model_config = ConfigDict(extra="allow")


# --- errors -----------------------------------------------------------------------------


class ErrorDetail(_Open):
    message: str
    code: str = Field(description="Stable error code, e.g. validation, not_found, rate_limit.")
    type: str
    param: str | None = None


class ErrorEnvelope(BaseModel):
    error: ErrorDetail


_ERROR_TEXT = {
    400: "The request breaks the input contract.",
    401: "Missing, unknown or revoked API key.",
    402: "The balance is below the price.",
    404: "No such route, model, task or file (or not the caller's).",
    405: "Method not allowed on this route.",
    409: "An idempotency key reused with another body, or a state clash.",
    410: "An output past its retention, an expired link, or a retired model.",
    413: "A body or image over the configured limit.",
    415: "Not a body or image the gateway can read.",
    429: "Over the key's rate limit; see Retry-After.",
    502: "The provider failed.",
    503: "The server is stopping; the task goes on after its restart.",
    504: "A synchronous call outlived its wait; the task goes on.",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each status with the one error envelope."""
    return {status: {"model": ErrorEnvelope, "description": _ERROR_TEXT[status]} for status in statuses}


# --- request bodies (documentation only) ----------------------------------------------


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A model's JSON schema with its ``$defs`` inlined, for ``openapi_extra`` (where a
    ``#/$defs/...`` reference would resolve against the whole document, not the schema)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


def request_body(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    """``openapi_extra`` declaring a JSON request body read by ``deps.json_body``."""
    content = {"application/json": {"schema": inline_schema(model)}}
    return {"requestBody": {"required": required, "content": content}}


class TaskRequest(_Open):
    """A RunAPI task: the model's own parameters (see /models/{slug}.md) beside these."""

    model: str | None = Field(None, description="Model id or alias; the service's default if omitted.")
    prompt: str
    callback_url: str | None = None


class EditTaskRequest(TaskRequest):
    source_image_urls: list[str]


class SvgReasoning(BaseModel):
    model_config = ConfigDict(extra="forbid")
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None = None


class SvgAuthor(BaseModel):
    """Who authors SVG output (output_format svg only)."""

    model_config = ConfigDict(extra="forbid")
    model: str
    reasoning: SvgReasoning | None = None


_QUALITY = Literal["auto", "low", "medium", "high", "xhigh", "max"]
_FORMAT = Literal["png", "jpeg", "webp", "gif", "svg"]


class ImagesGenerationRequest(BaseModel):
    """openai 3.57's ``images.generate``; what a model does not take is a 400 naming it
    (see the model's page: xhigh/max from 2.5, complexity, gif and svg on 2.6)."""

    model_config = ConfigDict(extra="forbid")
    prompt: str
    model: str | None = None
    n: int | None = Field(None, ge=1, le=10)
    size: str | None = None
    quality: _QUALITY | None = None
    background: Literal["auto", "opaque", "transparent"] | None = None
    output_format: _FORMAT | None = None
    output_compression: int | None = Field(None, ge=0, le=100)
    moderation: Literal["auto", "low"] | None = None
    complexity: Literal["low", "medium", "high"] | None = None
    frame_count: int | None = Field(None, ge=2, le=16, description="GIF only; default 9.")
    frame_duration_ms: int | None = Field(None, ge=1, description="GIF only; default 200, rounded to 10 ms.")
    svg: SvgAuthor | None = None
    stream: bool | None = Field(
        None,
        description="true: answer OpenAI's image stream events as Server-Sent Events (not for gif, svg).",
    )
    partial_images: int | None = Field(
        None, ge=0, le=3, description="Previews sent before the image when streaming (0-3)."
    )
    response_format: Literal["b64_json", "url"] | None = None
    user: str | None = Field(None, description="Deprecated: use safety_identifier.")
    safety_identifier: str | None = Field(None, max_length=64)


EDITS_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image", "prompt"],
                    "properties": {
                        "image": {"type": "string", "format": "binary"},
                        "mask": {"type": "string", "format": "binary"},
                        "markup": {
                            "type": "string",
                            "format": "binary",
                            "description": "A transparent PNG the size of the first image; its marks "
                            "show where to edit. Not with mask.",
                        },
                        "prompt": {"type": "string"},
                        "model": {"type": "string"},
                        "n": {"type": "integer", "minimum": 1, "maximum": 10},
                        "size": {"type": "string"},
                        "quality": {"enum": ["auto", "low", "medium", "high", "xhigh", "max"]},
                        "background": {"enum": ["auto", "opaque", "transparent"]},
                        "output_format": {"enum": ["png", "jpeg", "webp", "gif", "svg"]},
                        "output_compression": {"type": "integer", "minimum": 0, "maximum": 100},
                        "moderation": {"enum": ["auto", "low"]},
                        "complexity": {"enum": ["low", "medium", "high"]},
                        "frame_count": {"type": "integer", "minimum": 2, "maximum": 16},
                        "frame_duration_ms": {"type": "integer", "minimum": 1},
                        "svg[model]": {"type": "string"},
                        "svg[reasoning][effort]": {
                            "enum": ["none", "minimal", "low", "medium", "high", "xhigh", "max"]
                        },
                        "input_fidelity": {"enum": ["low", "high"]},
                        "response_format": {"enum": ["b64_json", "url"]},
                        "stream": {"enum": ["true", "false"]},
                        "partial_images": {"type": "integer", "minimum": 0, "maximum": 3},
                        "user": {"type": "string"},
                        "safety_identifier": {"type": "string", "maxLength": 64},
                    },
                }
            }
        },
    }
}


class UrlSource(BaseModel):
    type: Literal["url"]
    url: str


class Base64Source(BaseModel):
    type: Literal["base64"]
    data: str = Field(description="Base64 bytes, or a data: URL.")


class FileUploadRequest(BaseModel):
    source: UrlSource | Base64Source
    file_name: str | None = None


FILES_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": inline_schema(FileUploadRequest)},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "file_name": {"type": "string"},
                    },
                }
            },
        },
    }
}


class PrepareUploadRequest(BaseModel):
    filename: str
    byte_size: int = Field(ge=1)
    checksum: str = Field(description="Base64 of the bytes' MD5 digest.")
    content_type: str | None = None


class SignedIdRequest(BaseModel):
    signed_id: str


class PriceQuoteRequest(_Open):
    service: str
    action: Literal["text_to_image", "edit_image"]
    model: str | None = None
    params: dict[str, Any] | None = None


class AccountRequest(BaseModel):
    name: str
    email: str | None = None


class AccountUpdate(BaseModel):
    email: str | None = Field(description="An e-mail address, or null to clear it.")


class KeyRequest(BaseModel):
    name: str | None = None


class GrantRequest(BaseModel):
    usd: str | float = Field(description="Dollars, like 5 or '0.25' (at most 6 decimals).")
    note: str | None = None
    bonus: bool = False


class TierRequest(BaseModel):
    tier: str | None = Field(description="A tier name, or null to follow paid spend.")


# --- responses ------------------------------------------------------------------------


class Health(BaseModel):
    status: str
    version: str


class TaskImage(BaseModel):
    url: str
    width: int
    height: int
    content_type: str


class Reservation(BaseModel):
    amount_cents: int
    amount_micro: int


class Settlement(BaseModel):
    charged_amount_cents: int
    amount_micro: int


class Refund(BaseModel):
    refunded_at: str | None


class TaskBilling(BaseModel):
    reservation: Reservation
    settlement: Settlement | None
    refund: Refund | None
    free_call: bool
    list_price_micro: int


class TaskUsage(_Open):
    """What a completed task cost and made, in the shape RunAPI's SDKs read (``TaskUsage``)."""

    cost: float = Field(description="USD charged, for display: cost_micro / 1,000,000.")
    cost_micro: int = Field(description="The same charge in micro-dollars; the exact figure.")
    generated_images: int
    input_text_tokens: int | None = None
    input_image_tokens: int | None = None
    output_image_tokens: int | None = None


class ProviderAttempt(BaseModel):
    provider: str
    started_at: str
    ended_at: str
    error_code: str | None = Field(description="Why this call failed; null: it produced the images.")


class TaskView(BaseModel):
    id: str
    object: Literal["task"] = "task"
    status: str
    service: str
    action: str
    model: str
    model_served: str | None
    variant: str | None
    provider: str | None
    images: list[TaskImage]
    error: str | None
    error_code: str | None
    client_request_id: str | None
    created_at: str | None
    started_at: str | None
    completed_at: str | None
    outputs_expire_at: str | None
    outputs_deleted: bool
    billing: TaskBilling
    usage: TaskUsage | None = Field(None, description="Set once the task has completed.")
    attempts: list[ProviderAttempt] = Field(
        default_factory=list, description="Every provider call made for the task, oldest first."
    )


class TaskCreated(BaseModel):
    id: str
    status: str
    model: str
    model_served: str | None
    billing: TaskBilling
    task_replayed: bool | None = Field(None, description="Present (true) when an idempotent replay.")


class TaskList(BaseModel):
    object: Literal["list"] = "list"
    data: list[TaskView]
    has_more: bool
    next_cursor: str | None


class AccountRef(BaseModel):
    id: str
    name: str


class KeyRef(BaseModel):
    id: str
    prefix: str


class TierView(BaseModel):
    name: str
    pinned: bool
    creates_per_minute: int
    reads_per_minute: int
    max_concurrent: int


class Me(BaseModel):
    id: str
    name: str
    email: str | None = Field(description="The account's e-mail address, if one is set.")
    account: AccountRef
    api_key: KeyRef
    tier: TierView


class FreeCalls(BaseModel):
    per_variant: int
    left: dict[str, int]


class Balance(BaseModel):
    balance_cents: int
    paid_balance_cents: int
    bonus_balance_cents: int
    held_cents: int
    spent_cents_today: int
    spent_cents_total: int
    balance_micro: int
    paid_balance_micro: int
    bonus_balance_micro: int
    held_micro: int
    spent_micro_today: int
    spent_micro_total: int
    paid_spent_micro_total: int
    tier: str
    free_calls: FreeCalls


class UsageRow(BaseModel):
    date: str
    variant: str
    calls: int
    completed: int
    failures: int
    free_calls: int
    spend_micro: int
    spend_cents: int


class UsageReport(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    object: Literal["list"] = "list"
    from_: str = Field(alias="from")
    to: str
    data: list[UsageRow]


class MarginRow(BaseModel):
    date: str
    model: str = Field(description="The model as sold (a retired one's calls keep its name).")
    calls: int
    completed: int
    charged_micro: int = Field(description="What the accounts were charged (captured holds).")
    upstream_cost_micro: int = Field(description="What the upstreams charged: tokens at catalog prices.")
    margin_micro: int = Field(description="charged_micro - upstream_cost_micro.")


class MarginReport(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    object: Literal["list"] = "list"
    from_: str = Field(alias="from")
    to: str
    data: list[MarginRow]
    totals: MarginRow = Field(description="The whole window; date is 'total', model '*'.")


class PriceSchedules(BaseModel):
    as_of: str
    price_schedules: list[dict[str, Any]]


class PriceQuoteAnswer(BaseModel):
    price_quote: dict[str, Any]


class FileObject(BaseModel):
    id: str
    object: Literal["file"] = "file"
    file_name: str | None
    url: str
    size_bytes: int
    mime_type: str
    created_at: str | None
    expires_at: str | None


class PreparedUpload(BaseModel):
    signed_id: str
    upload_url: str = Field(description="PUT the bytes here with exactly `headers` and no API key.")
    headers: dict[str, str]


class StoredFileView(BaseModel):
    """OpenAI's File object, as RunAPI's ``/v1/files`` serves it (times in unix seconds)."""

    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    expires_at: int | None
    filename: str
    purpose: str
    mime_type: str
    url: str = Field(description="A signed link to the bytes, valid until expires_at.")


class StoredFileList(BaseModel):
    object: Literal["list"] = "list"
    data: list[StoredFileView]
    first_id: str | None
    last_id: str | None
    has_more: bool


class DeletedFile(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool


class ImageData(BaseModel):
    url: str | None = None
    b64_json: str | None = None


class TokenDetails(BaseModel):
    image_tokens: int
    text_tokens: int


class ImagesUsage(BaseModel):
    input_tokens: int
    input_tokens_details: TokenDetails
    output_tokens: int
    output_tokens_details: TokenDetails
    total_tokens: int


class ImagesResponse(BaseModel):
    """OpenAI's ``ImagesResponse``: each ``data`` item has ``url`` or ``b64_json``."""

    created: int
    data: list[ImageData]
    background: str
    output_format: str
    quality: str
    size: str
    usage: ImagesUsage
    safety_identifier: str | None = Field(None, description="The effective one, when the request gave one.")


class AccountView(BaseModel):
    id: str
    object: Literal["account"] = "account"
    name: str
    email: str | None
    created_at: str | None


class PinnedAccount(AccountView):
    tier_pinned: str | None


class AccountList(BaseModel):
    object: Literal["list"] = "list"
    data: list[AccountView]


class KeyView(BaseModel):
    id: str
    object: Literal["api_key"] = "api_key"
    prefix: str
    name: str | None
    account_id: str
    created_at: str | None
    revoked_at: str | None


class IssuedKey(KeyView):
    key: str = Field(description="The secret, shown this once.")


class KeyList(BaseModel):
    object: Literal["list"] = "list"
    data: list[KeyView]


class Totals(BaseModel):
    balance_micro: int
    paid_micro: int
    bonus_micro: int
    held_micro: int
    spent_paid_micro: int
    spent_bonus_micro: int


class Grant(Totals):
    account_id: str
    granted_micro: int


class Credits(Totals):
    account_id: str
    tier_pinned: str | None


class Document(_Open):
    """A catalog document (models list); its shape is pinned by the catalog's own tests."""


class WebhookSecretView(BaseModel):
    object: Literal["webhook_secret"] = "webhook_secret"
    secret: str = Field(description="The account's signing secret, whsec_ and base64 (Standard Webhooks).")
    created_at: str | None
    previous_valid_until: str | None = Field(
        None, description="After a rotation: until when deliveries are signed with the old secret too."
    )


class WebhookAttemptView(BaseModel):
    number: int
    started_at: str | None
    status_code: int | None = Field(description="The receiver's answer; null when none came.")
    latency_ms: int
    error: str | None = Field(description="Why the attempt failed (non-2xx, timeout, refused target).")


class WebhookDeliveryView(BaseModel):
    id: str
    object: Literal["webhook_delivery"] = "webhook_delivery"
    task_id: str
    webhook_id: str = Field(description="The webhook-id header: the same for every delivery of one task end.")
    type: str
    url: str
    state: str = Field(description="pending, succeeded or failed (retried for the whole window).")
    next_attempt_at: str | None
    created_at: str | None
    finished_at: str | None
    attempts: list[WebhookAttemptView]


class WebhookDeliveryList(BaseModel):
    object: Literal["list"] = "list"
    data: list[WebhookDeliveryView]
