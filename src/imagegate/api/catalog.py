"""Catalog pages and documents, served without auth."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from imagegate.api.deps import BaseUrlDep, GatewayDep
from imagegate.api.models import Document, error_responses
from imagegate.catalog import pages, pricing_page
from imagegate.catalog.pages import Deployment
from imagegate.catalog.pricing_page import PricingFacts, TierLimits
from imagegate.gateway import Gateway

router = APIRouter(tags=["catalog"])


class MarkdownResponse(PlainTextResponse):
    media_type = "text/markdown"  # Starlette adds the charset; the document says text/markdown


def deployment(gw: Gateway, base: str) -> Deployment:
    settings = gw.settings
    return Deployment(
        base_url=base,
        today=gw.lifecycle_date(),
        provider_for=gw.provider_name,
        provider_kind=lambda name: gw.providers.configs[name].kind,
        is_placeholder=lambda name: gw.providers.get(name).placeholder,
        retired_models=settings.retired_models,
        output_retention_s=settings.output_retention_s,
        upload_retention_s=settings.upload_retention_s,
        free_calls_per_variant=settings.free_calls_per_variant if settings.billing_enabled else 0,
        charges_credits=settings.billing_enabled,
        rate_limits=rate_limits_text(gw) if settings.rate_limits_enabled else None,
        streaming=True,  # the task event stream and the OpenAI face's stream: true
        support_url=settings.support_url,
        support_email=settings.support_email,
    )


def pricing_facts(gw: Gateway) -> PricingFacts:
    settings = gw.settings
    return PricingFacts(
        tiers=[
            TierLimits(
                name=t.name,
                creates_per_minute=t.creates_per_minute,
                reads_per_minute=t.reads_per_minute,
                max_concurrent=t.max_concurrent,
                paid_spend_threshold_micro=t.paid_spend_threshold_micro,
            )
            for t in settings.tiers
        ],
        rate_limits_enabled=settings.rate_limits_enabled,
        rate_window_s=settings.rate_window_s,
    )


def rate_limits_text(gw: Gateway) -> str:
    window = gw.settings.rate_window_s
    per = "minute" if window == 60 else f"{window} s"
    tiers = "; ".join(
        f"{t.name}: {t.creates_per_minute} task creations per {per} per key, {t.max_concurrent} running at once"
        + (
            f" (from ${t.paid_spend_threshold_micro / 1_000_000:g} paid spend)"
            if t.paid_spend_threshold_micro
            else ""
        )
        for t in sorted(gw.settings.tiers, key=lambda t: t.paid_spend_threshold_micro)
    )
    return f"Per-key limits by usage tier, moving up with paid spend. {tiers}."


def _markdown(text: str) -> PlainTextResponse:
    return MarkdownResponse(text)


_PAGE_ERRORS = error_responses(404)


@router.get("/models.md", response_class=MarkdownResponse)
async def models_index(gw: GatewayDep, base: BaseUrlDep) -> PlainTextResponse:
    return _markdown(pages.index_markdown(gw.catalog, deployment(gw, base)))


@router.get("/models/{slug}.md", response_class=MarkdownResponse, responses=_PAGE_ERRORS)
async def model_page(slug: str, gw: GatewayDep, base: BaseUrlDep) -> PlainTextResponse:
    line = gw.catalog.page_line(slug)
    return _markdown(pages.line_markdown(gw.catalog, line, deployment(gw, base)))


@router.get("/models/{slug}/{variant}.md", response_class=MarkdownResponse, responses=_PAGE_ERRORS)
async def variant_page(slug: str, variant: str, gw: GatewayDep, base: BaseUrlDep) -> PlainTextResponse:
    line = gw.catalog.page_line(slug)
    found = gw.catalog.variant_by_slug(line.slug, variant)
    return _markdown(pages.variant_markdown(gw.catalog, found, deployment(gw, base)))


@router.get("/api/v1/models", response_model=Document)
async def models_json(gw: GatewayDep, base: BaseUrlDep) -> Response:
    return JSONResponse(pages.models_document(gw.catalog, deployment(gw, base)))


@router.get("/v1/models", response_model=Document)
async def openai_models(gw: GatewayDep, base: BaseUrlDep) -> Response:
    return JSONResponse(pages.openai_models_document(gw.catalog, deployment(gw, base)))


@router.get("/v1/models/{model_id:path}", response_model=Document, responses=error_responses(404))
async def openai_model(model_id: str, gw: GatewayDep, base: BaseUrlDep) -> Response:
    """``client.models.retrieve``: one model by any of its names; 404 in the error envelope."""
    return JSONResponse(pages.openai_model_document(gw.catalog, model_id, deployment(gw, base)))


@router.get("/pricing.md", response_class=MarkdownResponse)
async def pricing_markdown(gw: GatewayDep, base: BaseUrlDep) -> PlainTextResponse:
    return _markdown(pricing_page.pricing_markdown(gw.catalog, deployment(gw, base), pricing_facts(gw)))


@router.get("/pricing.json", response_model=Document)
async def pricing_json(gw: GatewayDep, base: BaseUrlDep) -> Response:
    return JSONResponse(pricing_page.pricing_document(gw.catalog, deployment(gw, base), pricing_facts(gw)))


@router.get("/llms.txt", response_class=PlainTextResponse)
async def llms_txt(gw: GatewayDep, base: BaseUrlDep) -> PlainTextResponse:
    return PlainTextResponse(pages.llms_txt(gw.catalog, deployment(gw, base)))
