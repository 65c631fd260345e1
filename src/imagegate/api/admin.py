"""Admin routes, on only when IMAGEGATE_ADMIN_TOKEN is set."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from imagegate.accounts import store
from imagegate.api.deps import GatewayDep, json_body
from imagegate.api.models import (
    AccountList,
    AccountRequest,
    AccountUpdate,
    AccountView,
    Credits,
    Grant,
    GrantRequest,
    IssuedKey,
    KeyList,
    KeyRequest,
    KeyView,
    MarginReport,
    MarginRow,
    PinnedAccount,
    TierRequest,
    error_responses,
    request_body,
)
from imagegate.billing import ledger
from imagegate.billing.money import usd_to_micro
from imagegate.dates import parse_day
from imagegate.db.models import Account, ApiKey
from imagegate.errors import AuthenticationError, NotFoundError, ValidationError
from imagegate.tasks import usage
from imagegate.tasks.views import iso


async def require_admin(request: Request, gw: GatewayDep) -> None:
    token = gw.settings.admin_token
    if not token:
        raise NotFoundError("No such route (admin routes are off: IMAGEGATE_ADMIN_TOKEN is not set).")
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise AuthenticationError("Admin routes need 'Authorization: Bearer <admin token>'.")


router = APIRouter(
    prefix="/admin",
    tags=["admin"],
    dependencies=[Depends(require_admin)],
    responses=error_responses(400, 401, 404),
)


def account_view(account: Account) -> AccountView:
    return AccountView(
        id=account.id, name=account.name, email=account.email, created_at=iso(account.created_at)
    )


def key_view(key: ApiKey) -> KeyView:
    return KeyView(
        id=key.id,
        prefix=key.prefix,
        name=key.name,
        account_id=key.account_id,
        created_at=iso(key.created_at),
        revoked_at=iso(key.revoked_at),
    )


Body = Annotated[dict[str, Any], Depends(json_body)]


@router.post(
    "/accounts",
    status_code=201,
    responses=error_responses(409),  # the name is taken
    openapi_extra=request_body(AccountRequest),
)
async def create_account(gw: GatewayDep, body: Body) -> AccountView:
    name = body.get("name")
    if not isinstance(name, str):
        raise ValidationError("name is required", param="name")
    async with gw.db.transaction() as session:
        account = await store.create_account(session, name, _email(body))
    return account_view(account)


def _email(body: dict[str, Any]) -> str | None:
    email = body.get("email")
    if email is not None and not isinstance(email, str):
        raise ValidationError("email must be a string or null", param="email")
    return email


@router.patch("/accounts/{account}", openapi_extra=request_body(AccountUpdate))
async def update_account(account: str, gw: GatewayDep, body: Body) -> AccountView:
    """Change what is set in the body: ``{"email": "a@b.example"}`` (null clears it)."""
    if "email" not in body:
        raise ValidationError("Nothing to update: send email (a string, or null to clear it).")
    async with gw.db.transaction() as session:
        target = await store.get_account(session, account)
        store.set_email(target, _email(body))
    gw.principals.forget_account(target.id)
    return account_view(target)


@router.get("/accounts")
async def list_accounts(gw: GatewayDep) -> AccountList:
    async with gw.db.sessions() as session:
        accounts = await store.list_accounts(session)
    return AccountList(data=[account_view(a) for a in accounts])


@router.post(
    "/accounts/{account}/keys", status_code=201, openapi_extra=request_body(KeyRequest, required=False)
)
async def create_key(account: str, gw: GatewayDep, request: Request) -> IssuedKey:
    name = None
    if request.headers.get("content-length", "0") != "0":
        body = await json_body(request, gw)
        name = body.get("name") if isinstance(body.get("name"), str) else None
    async with gw.db.transaction() as session:
        issued = await store.create_key(session, await store.get_account(session, account), name)
    return IssuedKey(**key_view(issued.record).model_dump(), key=issued.key)


@router.get("/accounts/{account}/keys")
async def list_keys(account: str, gw: GatewayDep) -> KeyList:
    async with gw.db.sessions() as session:
        keys = await store.list_keys(session, await store.get_account(session, account))
    return KeyList(data=[key_view(k) for k in keys])


@router.post("/keys/{prefix}/revoke")
async def revoke_key(prefix: str, gw: GatewayDep) -> KeyView:
    async with gw.db.transaction() as session:
        key = await store.revoke_key(session, prefix)
    gw.principals.forget_account(key.account_id)
    return key_view(key)


@router.post("/accounts/{account}/credits", status_code=201, openapi_extra=request_body(GrantRequest))
async def grant_credits(account: str, gw: GatewayDep, body: Body) -> Grant:
    """Add credits: ``{"usd": "5", "note": "...", "bonus": false}``."""
    if "usd" not in body:
        raise ValidationError("usd is required", param="usd")
    amount = usd_to_micro(body["usd"])
    note = body.get("note") if isinstance(body.get("note"), str) else None
    bonus = body.get("bonus", False)
    if not isinstance(bonus, bool):
        raise ValidationError("bonus must be true or false", param="bonus")
    async with gw.db.transaction() as session:
        target = await store.get_account(session, account)
        totals = await ledger.grant(session, target.id, amount, gw.now(), bonus=bonus, note=note)
    return Grant(account_id=target.id, granted_micro=amount, **totals_view(totals))


@router.get("/accounts/{account}/credits")
async def show_credits(account: str, gw: GatewayDep) -> Credits:
    async with gw.db.sessions() as session:
        target = await store.get_account(session, account)
        totals = await ledger.totals(session, target.id)
    return Credits(account_id=target.id, tier_pinned=target.tier_pinned, **totals_view(totals))


@router.put("/accounts/{account}/tier", openapi_extra=request_body(TierRequest))
async def pin_tier(account: str, gw: GatewayDep, body: Body) -> PinnedAccount:
    """Pin a tier (``{"tier": "tier2"}``) or unpin it (``{"tier": null}``)."""
    if "tier" not in body:
        raise ValidationError("tier is required: a tier name, or null to follow paid spend", param="tier")
    tier = body["tier"]
    if tier is not None and not isinstance(tier, str):
        raise ValidationError("tier must be a tier name or null", param="tier")
    async with gw.db.transaction() as session:
        target = await store.get_account(session, account)
        await store.pin_tier(session, target, tier, [t.name for t in gw.settings.tiers])
    gw.principals.forget_account(target.id)
    return PinnedAccount(**account_view(target).model_dump(), tier_pinned=target.tier_pinned)


@router.get("/usage")
async def usage_margins(
    gw: GatewayDep,
    from_: Annotated[str | None, Query(alias="from", description="First day, YYYY-MM-DD.")] = None,
    to: Annotated[str | None, Query(description="Last day, YYYY-MM-DD (today).")] = None,
) -> MarginReport:
    """Per day and model, all accounts: calls, price charged, upstream cost and the margin."""
    start, end = usage.report_window(
        gw.today(), parse_day(from_, "from") if from_ else None, parse_day(to, "to") if to else None
    )
    async with gw.db.sessions() as session:
        rows = await usage.margins(session, start, end)
    return MarginReport(
        from_=start.isoformat(),
        to=end.isoformat(),
        data=[MarginRow(**row) for row in rows],
        totals=MarginRow(**usage.margin_totals(rows)),
    )


def totals_view(totals: ledger.Totals) -> dict[str, int]:
    return {
        "balance_micro": totals.balance_micro,
        "paid_micro": totals.paid_micro,
        "bonus_micro": totals.bonus_micro,
        "held_micro": totals.held_micro,
        "spent_paid_micro": totals.spent_paid_micro,
        "spent_bonus_micro": totals.spent_bonus_micro,
    }
