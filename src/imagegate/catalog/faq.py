"""The FAQ of a model page, every answer computed from what this deployment really does."""

from __future__ import annotations

from datetime import date

from imagegate.catalog.documents import (
    Deployment,
    after_shutdown_text,
    duration_text,
    join_words,
    line_url,
    line_variants,
    price_text,
    provider_notes,
    served_after_shutdown,
)
from imagegate.catalog.lifecycle import successor_chain
from imagegate.catalog.registry import Catalog
from imagegate.catalog.schema import ActionName, Line, ModelSpec


def _start_answer(catalog: Catalog, line: Line, models: list[ModelSpec], dep: Deployment) -> str:
    variants = line_variants(catalog, line.slug)
    live = [v for v in variants if not v.model.lifecycle.retired_on(dep.today)]
    if not live:
        # Every model here is retired: point at what serves the last of them, along the chain.
        last = max(models, key=lambda m: m.lifecycle.shutdown_date or date.min)
        served = served_after_shutdown(catalog, last, dep)
        if served is not None:
            return (
                f"Every model on this page is retired. Start with `{served.id}` "
                f"([its page]({line_url(dep, served.line)})); requests for the retired models still "
                "work, served by it at their own sizes and prices."
            )
        live = variants
    # Advise a model with a future first: a deprecated one only when nothing else is left.
    first = min(
        live,
        key=lambda v: (
            v.model.lifecycle.shutdown_date is not None,
            v.model.pricing.from_micro,
            v.action != ActionName.TEXT_TO_IMAGE,
        ),
    )
    text = f"Start with `{first.slug}` at {price_text(first.model.pricing.from_micro)} an image."
    if extra := _edit_only_fields(models):
        text += f" The image-to-image variants also take {join_words(extra)}."
    for model in models:
        if model.lifecycle.successor:
            state = "retired" if model.lifecycle.retired_on(dep.today) else "deprecated"
            # The end of the successor chain, not the next step (which may be deprecated too).
            use = successor_chain(catalog, model)[-1]
            text += f" `{model.id}` is {state}: for new work, use `{use.id}`."
    return text


def _edit_only_fields(models: list[ModelSpec]) -> list[str]:
    both = [m for m in models if {ActionName.TEXT_TO_IMAGE, ActionName.EDIT_IMAGE} <= set(m.actions)]
    names = [
        name
        for m in both
        for name in m.fields_for(ActionName.EDIT_IMAGE)
        if name not in m.fields_for(ActionName.TEXT_TO_IMAGE)
    ]
    return [f"`{name}`" for name in dict.fromkeys(names)]


def _free_answer(dep: Deployment) -> str:
    free = dep.free_calls_per_variant
    if free > 0:
        text = f"Yes: every account gets {free} free call{'s' if free != 1 else ''} on each variant."
        if dep.charges_credits:
            return text + " After that, each call is charged at the listed price."
        return text + " Billing is not enabled here, so calls beyond those are not charged either."
    if dep.charges_credits:
        return "No: this deployment gives no free calls. Every call is charged at the listed price."
    return "No: this deployment gives no free calls. Billing is not enabled either, so no call is charged."


def pricing_url(dep: Deployment) -> str:
    return f"{dep.base_url}/pricing.md"


def _limits_answer(dep: Deployment) -> str:
    text = dep.rate_limits or "No per-key rate limits are configured here."
    return f"{text} See the [pricing page]({pricing_url(dep)}) for current prices, free calls and limits."


def support_answer(dep: Deployment) -> str:
    """Where to report issues, from the operator's settings; never a made-up address."""
    ways = []
    if dep.support_url:
        ways.append(f"at <{dep.support_url}>")
    if dep.support_email:
        ways.append(f"by email to <{dep.support_email}>")
    if ways:
        return f"Report issues to this deployment's operator {join_words(ways, 'or')}."
    return (
        "This deployment's operator has not published a support contact: ask whoever gave you your API key."
    )


def faq_sections(catalog: Catalog, line: Line, models: list[ModelSpec], dep: Deployment) -> list[str]:
    stream = (
        "Yes: this deployment streams task progress as server-sent events from "
        f"`GET {dep.base_url}/api/v1/tasks/<id>/events` (status, progress, partial images, the end), "
        "and the OpenAI-compatible routes take `stream: true` with `partial_images`. Polling works as well."
        if dep.streaming
        else "Not yet: this deployment does not stream. Create a task, then poll "
        f"`GET {dep.base_url}/api/v1/tasks/<id>` until its status is `completed` or `failed` "
        "(the OpenAI-compatible routes wait for the image for you)."
    )
    failures = (
        "Failed generations are not charged: the price held when a task starts is released if it fails."
        if dep.charges_credits
        else "Nothing is charged on this deployment (billing is off), so failures cost nothing either."
    )
    stored = (
        "Generated outputs are stored and retrievable by task ID for "
        f"{duration_text(dep.output_retention_s)}; after that their URLs answer 410. Inputs are not "
        f"kept: uploaded files expire after {duration_text(dep.upload_retention_s)}, and source images "
        "are held only until their task ends."
    )
    commercial = " ".join(
        (f"Yes, `{m.id}` may be used commercially." if m.commercial_use else f"No, `{m.id}` may not.")
        + (f" {m.license_note}" if m.license_note else "")
        for m in models
    )
    faq = [
        ("Which variant should I start with?", _start_answer(catalog, line, models, dep)),
        ("Is there a free tier?", _free_answer(dep)),
        ("Do you stream results?", stream),
        ("How are failures billed?", failures),
        ("Are outputs cached?", stored),
        ("Can I use it commercially?", commercial),
        ("What about rate limits?", _limits_answer(dep)),
        ("Who renders the images here?", " ".join(provider_notes(catalog, models, dep))),
        ("Where can I report issues?", support_answer(dep)),
    ]
    ending = [m for m in models if m.lifecycle.shutdown_date is not None]
    if ending:
        after = " ".join(
            f"On and after {m.lifecycle.shutdown_date}, this deployment {after_shutdown_text(catalog, m, dep)}."
            for m in ending
        )
        faq.append(("What happens after the shutdown date?", after))
    return [f"### {question}\n\n{answer}" for question, answer in faq]
