"""Credits and prices: balance, usage, price schedules and quotes."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from imagegate.api.deps import GatewayDep, JsonBody, PrincipalDep
from imagegate.api.models import (
    Balance,
    FreeCalls,
    PriceQuoteAnswer,
    PriceQuoteRequest,
    PriceSchedules,
    UsageReport,
    UsageRow,
    error_responses,
    request_body,
)
from imagegate.api.views import if_none_match, model_response
from imagegate.billing import free_calls, ledger, pricing
from imagegate.billing.money import micro_to_cents
from imagegate.dates import parse_day
from imagegate.errors import ValidationError
from imagegate.tasks import usage

router = APIRouter(prefix="/api/v1", tags=["billing"], responses=error_responses(400))

MAX_USAGE_DAYS = 366


@router.get("/me/balance", responses=error_responses(401))
async def balance(gw: GatewayDep, who: PrincipalDep) -> Balance:
    today = datetime.combine(gw.today(), time(), tzinfo=UTC)
    async with gw.db.sessions() as session:
        totals = await ledger.totals(session, who.account_id)
        spent_today = await ledger.spent_since(session, who.account_id, today)
        used = await free_calls.used(session, who.account_id)
    allowance = gw.settings.free_calls_per_variant
    spent_total = totals.spent_paid_micro + totals.spent_bonus_micro
    return Balance(
        balance_cents=micro_to_cents(totals.balance_micro),
        paid_balance_cents=micro_to_cents(totals.paid_micro),
        bonus_balance_cents=micro_to_cents(totals.bonus_micro),
        held_cents=micro_to_cents(totals.held_micro),
        spent_cents_today=micro_to_cents(spent_today),
        spent_cents_total=micro_to_cents(spent_total),
        balance_micro=totals.balance_micro,
        paid_balance_micro=totals.paid_micro,
        bonus_balance_micro=totals.bonus_micro,
        held_micro=totals.held_micro,
        spent_micro_today=spent_today,
        spent_micro_total=spent_total,
        paid_spent_micro_total=totals.spent_paid_micro,
        tier=gw.tier(who).name,
        free_calls=FreeCalls(
            per_variant=allowance,
            left={v.name: max(0, allowance - used.get(v.name, 0)) for v in gw.catalog.variants()},
        ),
    )


def _day(value: str | None, default: date, name: str) -> date:
    return default if value is None else parse_day(value, name)


@router.get("/me/usage", responses=error_responses(401))
async def usage_report(
    gw: GatewayDep,
    who: PrincipalDep,
    from_: Annotated[str | None, Query(alias="from")] = None,
    to: str | None = None,
) -> UsageReport:
    end = _day(to, gw.today(), "to")
    start = _day(from_, end - timedelta(days=29), "from")
    if start > end:
        raise ValidationError("from must not be after to", param="from")
    if (end - start).days >= MAX_USAGE_DAYS:
        raise ValidationError(f"at most {MAX_USAGE_DAYS} days per request", param="from")
    async with gw.db.sessions() as session:
        rows = await usage.daily(session, who.account_id, start, end)
    return UsageReport(from_=start.isoformat(), to=end.isoformat(), data=[UsageRow(**row) for row in rows])


@router.get(
    "/price_schedules",
    response_model=PriceSchedules,
    responses={304: {"description": "Not modified: the If-None-Match tag still holds."}},
)
async def price_schedules(
    request: Request,
    gw: GatewayDep,
    service: str | None = None,
    action: str | None = None,
    model: str | None = None,
) -> Response:
    entries = pricing.schedules(
        gw.catalog,
        service=service,
        action=action,
        model=model,
        today=gw.lifecycle_date(),
        retired_models=gw.settings.retired_models,
    )
    tag = pricing.etag(entries)
    if if_none_match(request.headers.get("if-none-match"), tag):
        return Response(status_code=304, headers={"ETag": tag})
    body = PriceSchedules(as_of=gw.now().isoformat().replace("+00:00", "Z"), price_schedules=entries)
    return model_response(body, {"ETag": tag})


@router.post(
    "/price_quotes", responses=error_responses(404, 413, 415), openapi_extra=request_body(PriceQuoteRequest)
)
async def price_quotes(gw: GatewayDep, body: JsonBody) -> PriceQuoteAnswer:
    quote = pricing.quote(gw.catalog, body)
    quote["as_of"] = gw.now().isoformat().replace("+00:00", "Z")
    return PriceQuoteAnswer(price_quote=quote)
