"""The OpenAI face: synchronous ``/v1/images/generations`` and ``/v1/images/edits``.

Each call is a task on the account like any other; the route waits for it and
answers in OpenAI's ``ImagesResponse`` shape, so the official SDK works unchanged. With
``stream: true`` it answers OpenAI's image stream events instead (``openai_stream``).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from typing import Any

import pybase64
from fastapi import APIRouter, Request
from fastapi.responses import Response
from sse_starlette import EventSourceResponse
from starlette.types import Receive, Scope, Send

from imagegate.api import openai_stream
from imagegate.api.deps import BaseUrlDep, CreatorDep, GatewayDep, json_body, rate_headers
from imagegate.api.models import (
    EDITS_BODY,
    ImageData,
    ImagesGenerationRequest,
    ImagesResponse,
    ImagesUsage,
    TokenDetails,
    error_responses,
    request_body,
)
from imagegate.api.runapi import check_client_request_id
from imagegate.api.uploads import Form, Limits, read_form
from imagegate.api.views import model_response, task_headers
from imagegate.catalog import ActionName, ModelSpec, openai_surface
from imagegate.catalog.contract import validate
from imagegate.catalog.openai_compat import map_request
from imagegate.db.models import Task
from imagegate.errors import (
    GatewayError,
    GatewayTimeoutError,
    ServerError,
    ServiceUnavailableError,
    UpstreamError,
    ValidationError,
)
from imagegate.events import BusClosed
from imagegate.gateway import Gateway
from imagegate.storage.media import marks_something
from imagegate.tasks import idempotency, service, waiting
from imagegate.tasks.inputs import Upload, check_pixel_budget, check_upload
from imagegate.tasks.service import Submission
from imagegate.tasks.status import TaskStatus
from imagegate.tasks.views import image_url

router = APIRouter(
    prefix="/v1/images",
    tags=["openai"],
    responses=error_responses(400, 401, 402, 404, 409, 410, 413, 415, 429, 502, 503, 504),
)

MAX_EDIT_IMAGES = 16
MASK_MAX_BYTES = 4 * 1024 * 1024
_KNOWN = {
    "model", "prompt", "n", "size", "quality", "background", "output_format", "output_compression",
    "moderation", "response_format", "stream", "partial_images", "user", "safety_identifier",
    "input_fidelity", "image", "image[]", "mask", "markup", "complexity", "frame_count",
    "frame_duration_ms", "svg", "style",
}  # fmt: skip


def _submission(gw: Gateway, params: dict[str, Any], action: ActionName) -> Submission:
    unknown = sorted(set(params) - _KNOWN)
    if unknown:
        raise ValidationError(f"Unknown parameter: '{unknown[0]}'.", param=unknown[0])
    name = params.get("model") or gw.settings.openai_default_model
    if not isinstance(name, str):
        raise ValidationError("model must be a string", param="model")
    found = gw.catalog.find(name)
    if found is None:
        choices = ", ".join(gw.catalog.models)
        raise ValidationError(f"The model {name!r} does not exist; use one of: {choices}", param="model")
    model: ModelSpec = found
    if action not in model.actions:
        raise ValidationError(f"{model.id} cannot edit images.", param="model")
    prompt = params.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise ValidationError("prompt is required", param="prompt")
    size = params.get("size")
    contract, pixels = map_request(
        model, str(size) if size not in (None, "") else None, params.get("quality") or None
    )
    try:
        checked = validate(
            model, action, {"prompt": prompt, **contract}, skip=frozenset({"source_image_urls"})
        )
    except ValidationError as exc:
        if exc.param in contract:
            raise ValidationError(
                f"size {size or 'auto'} is not available for {model.id}.", param="size"
            ) from None
        raise
    surface = openai_surface.check(model, action, params, size=pixels)
    partials = openai_surface.integer(params.get("partial_images"), "partial_images", 0, 3, 0)
    return Submission(
        face="openai",
        model=model,
        action=action,
        # The OpenAI-only options ride on the task's params, for the provider to pass upstream.
        params={**checked, **surface.options},
        n=surface.n,
        size=pixels,
        quality=surface.quality,
        background=surface.background,
        output_format=surface.output_format,
        output_compression=surface.output_compression,
        partial_images=partials if _streaming(params) else 0,  # previews only for a stream
    )


def _streaming(params: dict[str, Any]) -> bool:
    """``stream`` as JSON (a boolean) or a form field ("true"/"false") sends it."""
    value = params.get("stream")
    if value in (None, False, "false", "False", ""):
        return False
    if value in (True, "true", "True"):
        return True
    raise ValidationError("stream must be a boolean", param="stream")


def _failure(task: Task) -> GatewayError:
    message = task.error or "The generation failed."
    code = task.error_code or "upstream_error"
    error: GatewayError
    if code == "validation":
        error = ValidationError(message)
    elif code == "server":
        error = ServerError(message)
    else:
        error = UpstreamError(message)
    error.extra = {"task_id": task.id, "task_error_code": code}
    return error


async def _wait(gw: Gateway, task_id: str, account_id: str) -> Task:
    """The task once it has ended: woken by its end event (a quiet wait reads it once a lease)."""
    try:
        async with gw.bus.subscribe(task_id) as events, asyncio.timeout(gw.settings.sync_timeout_s):
            while True:
                item = await waiting.next_event(gw, events, account_id, task_id)
                if isinstance(item, Task):
                    return item
                if item.kind.terminal:
                    ended = gw.relay.ended_task(task_id, account_id)  # when this process ran it
                    return ended if ended is not None else await waiting.read(gw, account_id, task_id)
    except BusClosed:
        raise ServiceUnavailableError(
            f"The server is restarting; the task goes on. Poll GET /api/v1/tasks/{task_id}.",
            headers={"Retry-After": "5"},
            extra={"task_id": task_id},
        ) from None
    except TimeoutError:
        raise GatewayTimeoutError(
            f"The image is still being made; poll GET /api/v1/tasks/{task_id}.",
            extra={"task_id": task_id},
        ) from None


async def _respond(gw: Gateway, task: Task, sub: Submission, base: str, response_format: str) -> Response:
    # base64 of the images, when this process ran the task (links need none: left to go with the wait)
    relayed = gw.relay.take(task.id) if response_format != "url" else {}
    if task.status != TaskStatus.COMPLETED:
        raise _failure(task)
    data: list[ImageData] = []
    encoded: list[bytes | memoryview] = []
    nonce = secrets.token_hex(8)
    for index, image in enumerate(task.images):
        if response_format == "url":
            data.append(ImageData(url=image_url(gw, base, task, image["key"])))
        elif (b64 := relayed.get(image["key"])) is not None:
            # the upstream's own (validated when decoded) or the worker's bytes encoded
            encoded.append(b64.encode("ascii") if isinstance(b64, str) else b64)
            data.append(ImageData(b64_json=_slot(nonce, index)))
        else:
            raw = await gw.storage.get(image["key"])
            encoded.append(pybase64.b64encode(raw))  # SIMD: ~0.1 ms for 2 MB, no thread hop
            data.append(ImageData(b64_json=_slot(nonce, index)))
    usage = task.usage or {}
    text_tokens = int(usage.get("input_text_tokens", 0))
    image_in = int(usage.get("input_image_tokens", 0))
    output_tokens = int(usage.get("output_image_tokens", 0))
    first = task.images[0]
    safety = sub.params.get("safety_identifier")
    body = ImagesResponse(
        created=int(task.created_at.timestamp()),
        data=data,
        background="transparent" if sub.background == "transparent" else "opaque",
        output_format=sub.output_format,
        quality=sub.quality,
        size=f"{first['width']}x{first['height']}",
        usage=ImagesUsage(
            input_tokens=text_tokens + image_in,
            input_tokens_details=TokenDetails(image_tokens=image_in, text_tokens=text_tokens),
            output_tokens=output_tokens,
            output_tokens_details=TokenDetails(image_tokens=output_tokens, text_tokens=0),
            total_tokens=text_tokens + image_in + output_tokens,
        ),
    )
    if safety is not None:
        body.safety_identifier = str(safety)  # set only when given: exclude_unset leaves it out otherwise
    # exclude_unset: each data item carries url or b64_json, never a null for the other.
    if not encoded:
        return model_response(body, task_headers(gw, task, base), exclude_unset=True)
    # Megabytes of base64 are spliced into the serialized small body rather than escaped and
    # copied by the JSON encoder (base64's alphabet needs no escaping in a JSON string).
    # The parts go out one after the other, so the megabytes are never joined into one copy.
    parts: list[bytes | memoryview] = []
    rest = body.model_dump_json(by_alias=True, exclude_unset=True).encode()
    for index, chunk in enumerate(encoded):
        before, _, rest = rest.partition(_slot(nonce, index).encode())
        parts += [before, chunk]
    return _Parts([*parts, rest], headers=task_headers(gw, task, base))


class _Parts(Response):
    """A JSON body sent as consecutive parts; its length is theirs together."""

    media_type = "application/json"

    def __init__(self, parts: list[bytes | memoryview], headers: dict[str, str]) -> None:
        super().__init__(headers={**headers, "content-length": str(sum(map(len, parts)))})
        self.parts = parts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        last = len(self.parts) - 1
        for index, part in enumerate(self.parts):
            await send({"type": "http.response.body", "body": part, "more_body": index < last})


def _slot(nonce: str, index: int) -> str:
    """A stand-in no client value can equal (a fresh nonce per answer), replaced after dumping."""
    return f"b64-slot-{nonce}-{index}"


async def _run(
    request: Request,
    gw: Gateway,
    who: Any,
    sub: Submission,
    base: str,
    params: dict[str, Any],
) -> Response:
    response_format = openai_surface.enum(params, "response_format", "b64_json")
    sub.idempotency_key = idempotency.check_key(request.headers.get("idempotency-key"))
    sub.client_request_id = check_client_request_id(request.headers.get("x-client-request-id"))
    stream = _streaming(params)
    result = await service.submit(gw, who, sub, request.app.state.queue.enqueue)
    if stream:
        prefix = "image_edit" if sub.action is ActionName.EDIT_IMAGE else "image_generation"
        events = openai_stream.stream(gw, result.task.id, who.account_id, sub, prefix, _failure)
        headers = {**rate_headers(request), **task_headers(gw, result.task, base)}
        return EventSourceResponse(events, ping=gw.settings.sse_heartbeat_s, headers=headers)
    with gw.relay.waiting(result.task.id):  # a run ending in this process hands its images over
        done = await _wait(gw, result.task.id, who.account_id)
        response = await _respond(gw, done, sub, base, response_format)
    response.headers.update(rate_headers(request))
    return response


# With ``stream: true`` the answer is Server-Sent Events in OpenAI's image stream event shapes.
_STREAMED: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The images; with `stream: true`, OpenAI's image stream events as Server-Sent Events.",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


@router.post(
    "/generations",
    response_model=ImagesResponse,
    responses=_STREAMED,
    openapi_extra=request_body(ImagesGenerationRequest),
)
async def generations(request: Request, gw: GatewayDep, who: CreatorDep, base: BaseUrlDep) -> Response:
    params = await json_body(request, gw)
    sub = _submission(gw, params, ActionName.TEXT_TO_IMAGE)
    sub.fingerprint = {"face": "openai", "action": "generations", "body": params}
    return await _run(request, gw, who, sub, base, params)


async def _layer(gw: Gateway, form: Form, first: Upload, name: str) -> Upload | None:
    """A ``mask`` or ``markup`` part: a PNG of the first image's size, under 4 MB."""
    parts = form.files_named(name)
    if not parts:
        return None
    if len(parts) > 1:
        raise ValidationError(f"send one {name}", param=name)
    if len(parts[0].data) > MASK_MAX_BYTES:
        raise ValidationError(f"{name} must be smaller than 4 MB", param=name)
    layer = await check_upload(gw, parts[0].data, name, declared=parts[0].content_type)
    if layer.content_type != "image/png":
        raise ValidationError(f"{name} must be a PNG with an alpha channel", param=name)
    if (layer.width, layer.height) != (first.width, first.height):
        raise ValidationError(f"{name} must have the same dimensions as the first image", param=name)
    return layer


async def _markup(gw: Gateway, form: Form, first: Upload, model: ModelSpec) -> Upload | None:
    if not form.files_named("markup"):
        return None
    if not model.openai.markup:
        raise ValidationError(f"markup is not supported by {model.id}.", param="markup")
    if form.files_named("mask"):
        raise ValidationError("markup cannot be combined with mask.", param="markup")
    markup = await _layer(gw, form, first, "markup")
    assert markup is not None
    if not await asyncio.to_thread(marks_something, markup.data):
        raise ValidationError(
            "markup must be a transparent PNG with the marks drawn on it (some pixels transparent, some not)",
            param="markup",
        )
    return markup


@router.post("/edits", response_model=ImagesResponse, responses=_STREAMED, openapi_extra=EDITS_BODY)
async def edits(request: Request, gw: GatewayDep, who: CreatorDep, base: BaseUrlDep) -> Response:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ValidationError("Send edits as multipart/form-data with image and prompt fields.")
    form = await read_form(request, Limits.of(gw, max_files=MAX_EDIT_IMAGES + 2))
    fields: dict[str, Any] = {k: v for k, v in form.fields if not k.startswith("svg[")}
    svg = openai_surface.nested_form_fields(dict(form.fields), "svg")
    if svg is not None:
        fields["svg"] = svg
    parts = form.files_named("image", "image[]")
    if not parts:
        raise ValidationError("image is required", param="image")
    if len(parts) > MAX_EDIT_IMAGES:
        raise ValidationError(f"at most {MAX_EDIT_IMAGES} images", param="image")
    layers = {name: True for name in ("mask", "markup") if form.files_named(name)}
    sub = _submission(gw, {**fields, "image": True, **layers}, ActionName.EDIT_IMAGE)
    uploads: list[Upload] = []
    for i, part in enumerate(parts):
        uploads.append(
            await check_upload(gw, part.data, f"image[{i}]", part.filename, declared=part.content_type)
        )
        check_pixel_budget(gw, uploads, "image")  # before decoding more than the budget
    sub.uploads = uploads
    sub.markup = await _markup(gw, form, uploads[0], sub.model)
    sub.mask = await _layer(gw, form, uploads[0], "mask")
    layered = [layer for layer in (sub.mask, sub.markup) if layer is not None]
    sub.fingerprint = {
        "face": "openai",
        "action": "edits",
        "fields": sorted((k, str(v)) for k, v in fields.items()),
        "images": [hashlib.sha256(u.data).hexdigest() for u in (*uploads, *layered)],
    }
    check_pixel_budget(gw, [*uploads, *layered], "image")
    return await _run(request, gw, who, sub, base, fields)
