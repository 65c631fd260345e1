"""Catalog pages and documents, served without auth."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from imagegate.api.deps import BaseUrlDep, GatewayDep
from imagegate.catalog import pages
from imagegate.catalog.pages import Deployment
from imagegate.gateway import Gateway

router = APIRouter(tags=["catalog"])

MARKDOWN = "text/markdown; charset=utf-8"


def deployment(gw: Gateway, base: str) -> Deployment:
    settings = gw.settings
    return Deployment(
        base_url=base,
        today=gw.today(),
        provider_for=gw.provider_name,
        retired_models=settings.retired_models,
        output_retention_s=settings.output_retention_s,
        upload_retention_s=settings.upload_retention_s,
    )


def _markdown(text: str) -> PlainTextResponse:
    return PlainTextResponse(text, media_type=MARKDOWN)


@router.get("/models.md")
async def models_index(gw: GatewayDep, base: BaseUrlDep) -> PlainTextResponse:
    return _markdown(pages.index_markdown(gw.catalog, deployment(gw, base)))


@router.get("/models/{slug}.md")
async def model_page(slug: str, gw: GatewayDep, base: BaseUrlDep) -> PlainTextResponse:
    line = gw.catalog.page_line(slug)
    return _markdown(pages.line_markdown(gw.catalog, line, deployment(gw, base)))


@router.get("/models/{slug}/{variant}.md")
async def variant_page(slug: str, variant: str, gw: GatewayDep, base: BaseUrlDep) -> PlainTextResponse:
    line = gw.catalog.page_line(slug)
    found = gw.catalog.variant_by_slug(line.slug, variant)
    return _markdown(pages.variant_markdown(gw.catalog, found, deployment(gw, base)))


@router.get("/api/v1/models")
async def models_json(gw: GatewayDep, base: BaseUrlDep) -> dict[str, Any]:
    return pages.models_document(gw.catalog, deployment(gw, base))


@router.get("/v1/models")
async def openai_models(gw: GatewayDep, base: BaseUrlDep) -> dict[str, Any]:
    return pages.openai_models_document(gw.catalog, deployment(gw, base))


@router.get("/llms.txt")
async def llms_txt(gw: GatewayDep, base: BaseUrlDep) -> PlainTextResponse:
    return PlainTextResponse(pages.llms_txt(gw.catalog, deployment(gw, base)))
