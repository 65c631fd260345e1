"""The RunAPI face: ``/api/v1/{service}/{action}`` task routes, tasks, account."""

from __future__ import annotations

import asyncio
import hashlib
import re
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from imagegate.api.deps import (
    BaseUrlDep,
    CreatorDep,
    GatewayDep,
    JsonBody,
    PrincipalDep,
    ReaderDep,
    base_url,
    json_body,
    limit_create,
    limit_read,
    rate_headers,
)
from imagegate.api.models import (
    AccountRef,
    EditTaskRequest,
    KeyRef,
    Me,
    TaskCreated,
    TaskList,
    TaskRequest,
    TaskView,
    TierView,
    error_responses,
    request_body,
)
from imagegate.api.views import if_none_match, model_response, task_headers
from imagegate.catalog import ActionName
from imagegate.catalog.contract import validate
from imagegate.db.models import Task
from imagegate.errors import NotFoundError, ValidationError
from imagegate.events import BusClosed
from imagegate.gateway import Gateway
from imagegate.tasks import idempotency, inputs, service, store, waiting
from imagegate.tasks.service import Submission
from imagegate.tasks.status import TaskStatus
from imagegate.tasks.views import as_runapi, billing_view, task_view

router = APIRouter(prefix="/api/v1", tags=["runapi"], responses=error_responses(400, 401, 404, 429))
# The task read every poller calls, included ahead of every other router: routes are matched in
# order, and behind the catalog, files, OpenAI and admin routes matching it cost more than serving it.
polled = APIRouter(prefix="/api/v1", tags=["runapi"], responses=error_responses(400, 401, 404, 429))
_CREATE_ERRORS = error_responses(402, 409, 410, 413, 415, 502)

_UUID = re.compile(r"^[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$")
_PRINTABLE = re.compile(r"^[\x20-\x7e]{1,512}$")

ClientRequestId = Annotated[str | None, Header(alias="X-Client-Request-Id")]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]


def check_client_request_id(value: str | None) -> str | None:
    if value is not None and not _PRINTABLE.match(value):
        raise ValidationError(
            "X-Client-Request-Id must be 1-512 printable ASCII characters", param="X-Client-Request-Id"
        )
    return value


def _answer(
    request: Request,
    gw: Gateway,
    task: Task,
    base: str,
    body: BaseModel,
    *,
    exclude_unset: bool = False,
    extra: dict[str, str] | None = None,
) -> Response:
    headers = {**rate_headers(request), **task_headers(gw, task, base), **(extra or {})}
    return model_response(body, headers, exclude_unset=exclude_unset)


async def _create(
    request: Request,
    gw: Gateway,
    who: Any,
    base: str,
    body: dict[str, Any],
    service_slug: str,
    action: ActionName,
    client_request_id: str | None,
    idempotency_key: str | None,
) -> Response:
    model = gw.catalog.model_for_service(service_slug, body.get("model"))
    if action not in model.actions:
        raise NotFoundError(f"{model.id} has no {action} action.")
    params = validate(model, action, body)
    submission = Submission(
        face="runapi",
        model=model,
        action=action,
        params={k: v for k, v in params.items() if k not in ("source_image_urls", "callback_url")},
        source_urls=list(params.get("source_image_urls", [])),
        callback_url=await inputs.check_callback_url(gw, params.get("callback_url")),
        client_request_id=check_client_request_id(client_request_id),
        idempotency_key=idempotency.check_key(idempotency_key),
        fingerprint={"face": "runapi", "service": service_slug, "action": action.value, "body": body},
    )
    result = await service.submit(gw, who, submission, request.app.state.queue.enqueue)
    task = result.task
    answer = TaskCreated(
        id=task.id,
        status=task.status,
        model=task.model,
        model_served=task.model_served,
        billing=billing_view(task),
    )
    if result.replayed:  # present only on a replay, as clients have always seen it
        answer.task_replayed = True
    return _answer(request, gw, task, base, as_runapi(answer), exclude_unset=True)


@router.post(
    "/{service_slug}/text_to_image",
    response_model=TaskCreated,
    responses=_CREATE_ERRORS,
    openapi_extra=request_body(TaskRequest),
)
async def text_to_image(
    request: Request,
    service_slug: str,
    client_request_id: ClientRequestId = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    # The hot create: its dependencies called here, in the order they were declared, rather
    # than declared (FastAPI's cost per declared dependency node adds up on every call).
    gw: Gateway = request.app.state.gateway
    who = await limit_create(request)
    base = await base_url(request)
    body = await json_body(request, gw)
    return await _create(
        request,
        gw,
        who,
        base,
        body,
        service_slug,
        ActionName.TEXT_TO_IMAGE,
        client_request_id,
        idempotency_key,
    )


@router.post(
    "/{service_slug}/edit_image",
    response_model=TaskCreated,
    responses=_CREATE_ERRORS,
    openapi_extra=request_body(EditTaskRequest),
)
async def edit_image(
    request: Request,
    service_slug: str,
    gw: GatewayDep,
    who: CreatorDep,
    base: BaseUrlDep,
    body: JsonBody,
    client_request_id: ClientRequestId = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    return await _create(
        request, gw, who, base, body, service_slug, ActionName.EDIT_IMAGE, client_request_id, idempotency_key
    )


def task_id_of(value: str) -> str:
    value = value.lower()  # UUIDs are case-insensitive; ours are stored in lower case
    if not _UUID.match(value):
        raise NotFoundError(f"No task {value!r}.", param="id")
    return value


POLL_AFTER_S = "2"  # Retry-After suggested to pollers of a task that has not ended
MAX_WAIT_S = 60.0


def _etag(task: Task) -> str:
    """Changes whenever anything a reader sees changes: status, settlement, outputs' deletion."""
    stamps = (task.status, task.hold_state, task.completed_at, task.outputs_deleted_at, task.started_at)
    return 'W/"' + hashlib.sha256(repr((task.id, stamps)).encode()).hexdigest()[:20] + '"'


async def _load(gw: Gateway, account_id: str, task_id: str, wait_s: float) -> Task:
    """The task; with ``wait_s``, held until it ends or the wait runs out (a long poll that
    wakes on the end event, so a waiting reader costs nothing while it waits)."""
    task = await store.read_view_for_account(gw.db, account_id, task_id)
    if wait_s <= 0 or TaskStatus(task.status).terminal:
        return task
    try:
        # The bus replays the task's history: an end between the read and here is heard too.
        async with gw.bus.subscribe(task_id) as events, asyncio.timeout(wait_s):
            while True:
                item = await waiting.next_event(gw, events, account_id, task_id)
                if isinstance(item, Task) or item.kind.terminal:
                    break
    except (TimeoutError, BusClosed):
        pass  # answer with the task as it stands
    return await store.read_view_for_account(gw.db, account_id, task_id)


async def _read(
    request: Request,
    gw: Gateway,
    who: Any,
    base: str,
    task_id: str,
    service_slug: str | None = None,
    action: str | None = None,
    wait_s: float = 0.0,
) -> Response:
    task = await _load(gw, who.account_id, task_id_of(task_id), wait_s)
    if (service_slug is not None and task.service != service_slug) or (
        action is not None and task.action != action
    ):
        where = "/".join(part for part in (service_slug, action) if part)
        raise NotFoundError(f"No task {task_id!r} under {where}.", param="id")
    tag = _etag(task)
    extra = {"ETag": tag} if service_slug is None else {"ETag": tag + "-r"}
    if not TaskStatus(task.status).terminal:
        extra["Retry-After"] = POLL_AFTER_S
    if if_none_match(request.headers.get("if-none-match"), extra["ETag"]):
        return Response(status_code=304, headers={**rate_headers(request), **extra})
    view = task_view(gw, task, base)
    # The ETag and Retry-After go in with the rest: one header list built, not patched after.
    return _answer(request, gw, task, base, view if service_slug is None else as_runapi(view), extra=extra)


async def read_task(request: Request, gw: Gateway, who: Any, base: str, task_id: str) -> Response:
    """``GET /api/v1/tasks/{id}`` once its caller is known (also served by api/polled.py)."""
    return await _read(request, gw, who, base, task_id)


@router.get("/tasks", response_model=TaskList)
async def list_tasks(
    request: Request,
    gw: GatewayDep,
    who: ReaderDep,
    base: BaseUrlDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: str | None = None,
    status: TaskStatus | None = None,
) -> Response:
    async with gw.db.sessions() as session:
        tasks, has_more = await store.list_for_account(
            session, who.account_id, limit=limit, after=after, status=status
        )
    body = TaskList(
        data=[task_view(gw, task, base) for task in tasks],
        has_more=has_more,
        next_cursor=store.encode_cursor(tasks[-1]) if has_more and tasks else None,
    )
    return model_response(body, rate_headers(request))


@polled.get(
    "/tasks/{task_id}",
    response_model=TaskView,
    responses={304: {"description": "Unchanged since the ETag sent in If-None-Match."}},
)
async def get_task(
    request: Request,
    task_id: str,
    wait: Annotated[
        float, Query(ge=0, le=MAX_WAIT_S, description="Seconds to hold the answer until the task ends.")
    ] = 0.0,
) -> Response:
    # The route every poller calls: the same dependencies, called here rather than declared,
    # because FastAPI's cost per declared dependency is larger than the whole read.
    who = await limit_read(request)
    return await _read(request, request.app.state.gateway, who, await base_url(request), task_id, wait_s=wait)


@router.post("/tasks/{task_id}/cancel", response_model=TaskView, responses=error_responses(409))
async def cancel_task(
    request: Request, task_id: str, gw: GatewayDep, who: PrincipalDep, base: BaseUrlDep
) -> Response:
    task = await service.cancel(gw, who, task_id_of(task_id))
    return _answer(request, gw, task, base, task_view(gw, task, base))


@router.get("/me")
async def me(gw: GatewayDep, who: PrincipalDep) -> Me:
    tier = gw.tier(who)
    return Me(
        id=who.account_id,
        name=who.account_name,
        email=who.account_email,
        account=AccountRef(id=who.account_id, name=who.account_name),
        api_key=KeyRef(id=who.key_id, prefix=who.key_prefix),
        tier=TierView(
            name=tier.name,
            pinned=who.tier_pinned is not None,
            creates_per_minute=tier.creates_per_minute,
            reads_per_minute=tier.reads_per_minute,
            max_concurrent=tier.max_concurrent,
        ),
    )


@router.get("/{service_slug}/{action}/{task_id}", response_model=TaskView)
async def get_task_by_action(
    request: Request,
    service_slug: str,
    action: str,
    task_id: str,
    gw: GatewayDep,
    who: ReaderDep,
    base: BaseUrlDep,
) -> Response:
    if action not in set(ActionName):
        raise NotFoundError(f"No action {action!r}.", param="action")
    return await _read(request, gw, who, base, task_id, service_slug, action)


@router.get("/{service_slug}/{task_id}", response_model=TaskView)
async def get_task_by_service(
    request: Request, service_slug: str, task_id: str, gw: GatewayDep, who: ReaderDep, base: BaseUrlDep
) -> Response:
    return await _read(request, gw, who, base, task_id, service_slug)


@router.post("/{service_slug}/{action}", include_in_schema=False)
async def unknown_action(service_slug: str, action: str, gw: GatewayDep) -> None:
    gw.catalog.line_for_service(service_slug)  # an unknown service is named as such
    raise NotFoundError(f"No action {action!r}; actions are text_to_image and edit_image.", param="action")
