"""Client commands: talk to a running gateway through the SDK.

JSON and saved paths go to stdout; progress and errors to stderr (``--quiet`` keeps only
errors). Exit codes: 0 ok, 1 other errors (such as no connection), 2 authentication,
3 insufficient credits, 4 validation / not found / conflict, 5 timeout, 6 rate limit,
7 task failed or canceled.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from itertools import islice
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from imagegate.cli import profiles
from imagegate.cli.admin import admin_usage, app
from imagegate.sdk import (
    AuthenticationError,
    Client,
    ConflictError,
    ImagegateError,
    InsufficientCreditsError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    Task,
    TaskFailedError,
    TaskTimeoutError,
    ValidationError,
)
from imagegate.sdk.errors import GatewayTimeoutError
from imagegate.sdk.events import PartialImageEvent, ProgressEvent, StatusEvent, TaskEndEvent

CLIENT = "Client (talks to a running gateway)"
tasks_app = typer.Typer(help="Your tasks: list, show, wait, cancel.", no_args_is_help=True)
app.add_typer(tasks_app, name="tasks", rich_help_panel=CLIENT)

err = Console(stderr=True, highlight=False)
out = Console(highlight=False)
T = TypeVar("T")

EXIT_CODES: list[tuple[type[ImagegateError], int]] = [
    (AuthenticationError, 2),
    (PermissionDeniedError, 2),
    (InsufficientCreditsError, 3),
    (ValidationError, 4),
    (NotFoundError, 4),
    (ConflictError, 4),
    (TaskTimeoutError, 5),
    (GatewayTimeoutError, 5),
    (RateLimitError, 6),
    (TaskFailedError, 7),
]

Profile = Annotated[
    str | None, typer.Option("--profile", help="Profile from config.toml (IMAGEGATE_PROFILE).")
]
BaseUrl = Annotated[str | None, typer.Option("--base-url", help="Gateway URL (IMAGEGATE_BASE_URL).")]
ApiKey = Annotated[str | None, typer.Option("--api-key", help="API key (IMAGEGATE_API_KEY).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON to stdout.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")]
Timeout = Annotated[float, typer.Option(help="Seconds to wait for the task.")]


def exit_code(exc: ImagegateError) -> int:
    return next((code for cls, code in EXIT_CODES if isinstance(exc, cls)), 1)


@contextmanager
def _client(profile: str | None, base_url: str | None, api_key: str | None) -> Iterator[Client]:
    """An SDK client from options, environment and profile; SDK errors end the command with
    their documented exit code and a one-line message."""
    chosen = profiles.resolve(profile, base_url, api_key)
    try:
        with Client(api_key=chosen.api_key, base_url=chosen.base_url) as client:
            yield client
    except ImagegateError as exc:
        err.print(f"[red]error:[/red] {exc}")
        if isinstance(exc, AuthenticationError) and not chosen.api_key:
            err.print("no API key: run `imagegate login` or set IMAGEGATE_API_KEY")
        if isinstance(exc, RateLimitError) and exc.retry_after is not None:
            err.print(f"retry after {exc.retry_after:g} s")
        raise typer.Exit(exit_code(exc)) from None


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def _task_json(task: Task) -> dict[str, Any]:
    return task.model_dump(mode="json")


def _follow(client: Client, task: Task, timeout: float, quiet: bool) -> Task:
    """Follow the task to its end (``tasks.stream``), with a live progress bar on stderr:
    status, progress, partial previews received, time so far."""
    start = time.monotonic()
    bar = Progress(
        SpinnerColumn(),
        TextColumn("{task.description} [bold]{task.fields[status]}[/bold]"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("previews: {task.fields[previews]}"),
        TimeElapsedColumn(),
        console=err,
        disable=quiet,
    )
    with bar:
        row = bar.add_task(task.model, total=None, status=task.status, previews=0)
        previews = 0
        for event in client.tasks.stream(task.id, timeout=timeout):
            if isinstance(event, StatusEvent):
                bar.update(row, status=event.status)
            elif isinstance(event, ProgressEvent):
                bar.update(row, total=1.0, completed=event.progress)
            elif isinstance(event, PartialImageEvent):
                previews += 1
                bar.update(row, previews=previews)
            elif isinstance(event, TaskEndEvent):
                task = event.task
                done = 1.0 if task.status == "completed" else bar.tasks[0].completed
                bar.update(row, status=task.status, total=1.0, completed=done)
    if not quiet:
        err.print(f"{task.status} in {time.monotonic() - start:.1f} s")
    return task


def _finish(client: Client, task: Task, output: Path, fmt: str | None, wait: bool, **flags: Any) -> None:
    if not wait:
        _print_json(_task_json(task)) if flags["as_json"] else sys.stdout.write(task.id + "\n")
        return
    task = _follow(client, task, flags["timeout"], flags["quiet"])
    if task.status != "completed":
        if flags["as_json"]:
            _print_json(_task_json(task))
        task.raise_for_status()
    paths = task.save(output, format=fmt)
    if flags["as_json"]:
        _print_json({**_task_json(task), "saved": [str(path) for path in paths]})
    else:
        sys.stdout.write("".join(f"{path}\n" for path in paths))


def _params(aspect: str | None, quality: str | None, resolution: str | None) -> dict[str, Any]:
    given = {"aspect_ratio": aspect, "quality": quality, "output_resolution": resolution}
    return {k: v for k, v in given.items() if v is not None}


Output = Annotated[Path, typer.Option("--output", "-o", help="File, or directory, to save into.")]
Aspect = Annotated[str | None, typer.Option("--aspect", help="Aspect ratio, e.g. 1:1, 3:2.")]
Quality = Annotated[str | None, typer.Option("--quality", help="Quality (models priced by it).")]
Resolution = Annotated[str | None, typer.Option("--resolution", help="Output resolution: 1k, 2k, 4k.")]
Model = Annotated[str | None, typer.Option("--model", "-m", help="Model id or alias.")]


class SaveFormat(StrEnum):
    """What ``--format`` converts to (``Task.save``'s formats; a test keeps the two equal)."""

    png = "png"
    jpeg = "jpeg"
    webp = "webp"
    gif = "gif"


Format = Annotated[SaveFormat | None, typer.Option("--format", help="Save as png, jpeg, webp or gif.")]
NoWait = Annotated[bool, typer.Option("--no-wait", help="Print the task id and return.")]


@app.command(rich_help_panel=CLIENT)
def generate(
    prompt: Annotated[str, typer.Argument(help="What to draw.")],
    output: Output = Path("."),
    aspect: Aspect = None,
    quality: Quality = None,
    resolution: Resolution = None,
    model: Model = None,
    fmt: Format = None,
    no_wait: NoWait = False,
    timeout: Timeout = 300,
    as_json: AsJson = False,
    quiet: Quiet = False,
    profile: Profile = None,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Draw an image from a prompt and save it."""
    with _client(profile, base_url, api_key) as client:
        task = client.images.generate(
            prompt, model=model, extra=_params(aspect, quality, resolution), wait=False
        )
        _finish(client, task, output, fmt, not no_wait, as_json=as_json, quiet=quiet, timeout=timeout)


@app.command(rich_help_panel=CLIENT)
def edit(
    args: Annotated[list[str], typer.Argument(help="One or more images (files or URLs), then the prompt.")],
    output: Output = Path("."),
    mask: Annotated[Path | None, typer.Option(help="A mask image.")] = None,
    aspect: Aspect = None,
    quality: Quality = None,
    resolution: Resolution = None,
    model: Model = None,
    fmt: Format = None,
    no_wait: NoWait = False,
    timeout: Timeout = 300,
    as_json: AsJson = False,
    quiet: Quiet = False,
    profile: Profile = None,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Edit images by a prompt: imagegate edit photo.png "make it night" -o night.png"""
    if len(args) < 2:
        err.print(
            '[red]error:[/red] give at least one image and then the prompt: edit photo.png "make it night"'
        )
        raise typer.Exit(4)
    *images, prompt = args
    missing = [i for i in images if "://" not in i and not i.startswith("data:") and not Path(i).is_file()]
    if missing:
        err.print(f"[red]error:[/red] no such image file: {missing[0]}")
        raise typer.Exit(4)
    with _client(profile, base_url, api_key) as client:
        task = client.images.edit(
            prompt,
            images=images,
            mask=mask,
            model=model,
            extra=_params(aspect, quality, resolution),
            wait=False,
        )
        _finish(client, task, output, fmt, not no_wait, as_json=as_json, quiet=quiet, timeout=timeout)


@tasks_app.command("list")
def tasks_list(
    status: Annotated[str | None, typer.Option(help="Only tasks in this status.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many (newest first).")] = 20,
    as_json: AsJson = False,
    profile: Profile = None,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Your tasks, newest first."""
    with _client(profile, base_url, api_key) as client:
        tasks = list(islice(client.tasks.list(status=status, page_size=min(limit, 100)), limit))
    if as_json:
        _print_json([_task_json(t) for t in tasks])
        return
    table = Table("id", "status", "model", "created", "images")
    for t in tasks:
        table.add_row(t.id, t.status, t.model, t.created_at or "", str(len(t.images)))
    out.print(table)


def _one(work: Callable[[Client, str], Task], task_id: str, as_json: bool, *client_args: str | None) -> Task:
    with _client(*client_args) as client:
        task = work(client, task_id)
    if as_json:
        _print_json(_task_json(task))
    else:
        out.print(f"{task.id} {task.status} {task.model}")
        for image in task.images:
            out.print(f"  {image.width}x{image.height} {image.url}", soft_wrap=True)
        if task.error:
            out.print(f"  error ({task.error_code}): {task.error}")
    return task


TaskId = Annotated[str, typer.Argument(help="The task's id.")]


@tasks_app.command("show")
def tasks_show(
    task_id: TaskId,
    as_json: AsJson = False,
    profile: Profile = None,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
) -> None:
    """One task: status, images, error."""
    _one(lambda c, i: c.tasks.get(i), task_id, as_json, profile, base_url, api_key)


@tasks_app.command("wait")
def tasks_wait(
    task_id: TaskId,
    timeout: Timeout = 300,
    as_json: AsJson = False,
    quiet: Quiet = False,
    profile: Profile = None,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Wait for a task to end; exit 7 if it failed, 5 if it is still running at --timeout."""
    with _client(profile, base_url, api_key) as client:
        task = _follow(client, client.tasks.get(task_id), timeout, quiet)
        if as_json:
            _print_json(_task_json(task))
        else:
            sys.stdout.write(f"{task.id} {task.status}\n")
        task.raise_for_status()


@tasks_app.command("cancel")
def tasks_cancel(
    task_id: TaskId,
    as_json: AsJson = False,
    profile: Profile = None,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Cancel a pending or processing task (its hold is released)."""
    _one(lambda c, i: c.tasks.cancel(i), task_id, as_json, profile, base_url, api_key)


def _usd(micro: int) -> str:
    return f"${micro / 1_000_000:,.2f}" if micro % 10_000 == 0 else f"${micro / 1_000_000:,.6f}"


@app.command(rich_help_panel=CLIENT)
def balance(
    as_json: AsJson = False, profile: Profile = None, base_url: BaseUrl = None, api_key: ApiKey = None
) -> None:
    """Your credits, holds, spend and free calls left."""
    with _client(profile, base_url, api_key) as client:
        got = client.account.balance()
    if as_json:
        _print_json(got.model_dump(mode="json"))
        return
    out.print(
        f"balance {_usd(got.balance_micro)} (paid {_usd(got.paid_balance_micro)}, bonus {_usd(got.bonus_balance_micro)})"
    )
    out.print(
        f"held {_usd(got.held_micro)}, spent today {_usd(got.spent_micro_today)}, in all {_usd(got.spent_micro_total)}"
    )
    out.print(f"tier {got.tier}; free calls left: {sum(got.free_calls.left.values())}")


@app.command(rich_help_panel=CLIENT)
def usage(
    start: Annotated[str | None, typer.Option("--from", help="First day, YYYY-MM-DD (30 days back).")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last day, YYYY-MM-DD (today).")] = None,
    as_json: AsJson = False,
    profile: Profile = None,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
    admin: Annotated[
        bool,
        typer.Option(
            "--admin",
            help="Server administration: every account's calls, charges, upstream cost and margin, "
            "read from the database (IMAGEGATE_DATA_DIR / IMAGEGATE_DATABASE_URL), not over HTTP.",
        ),
    ] = False,
) -> None:
    """Calls and spend per day and model (--admin: margins of the whole gateway)."""
    if admin:
        admin_usage(start, end, as_json)
        return
    with _client(profile, base_url, api_key) as client:
        report = client.account.usage(start=start, end=end)
    if as_json:
        _print_json(report.model_dump(mode="json", by_alias=True))
        return
    table = Table(
        "date",
        "model",
        "calls",
        "completed",
        "failed",
        "free",
        "spend",
        title=f"{report.from_} to {report.to}",
    )
    for row in report.data:
        table.add_row(
            row.date, row.variant, str(row.calls), str(row.completed), str(row.failures),
            str(row.free_calls), _usd(row.spend_micro),
        )  # fmt: skip
    out.print(table)


@app.command(rich_help_panel=CLIENT)
def models(
    as_json: AsJson = False, profile: Profile = None, base_url: BaseUrl = None, api_key: ApiKey = None
) -> None:
    """Models this gateway serves: actions, prices and lifecycle."""
    with _client(profile, base_url, api_key) as client:
        listed = client.models.list()
    if as_json:
        _print_json([m.model_dump(mode="json") for m in listed])
        return
    table = Table("model", "action", "price per image", "lifecycle", "served by")
    for model in listed:
        for action in model.actions:
            price = action.get("price") or {}
            matrix = price.get("matrix_micro") or {}
            shown = ", ".join(f"{k} {_usd(v)}" for k, v in matrix.items()) or _usd(
                price.get("base_micro") or 0
            )
            lifecycle = str(model.lifecycle.get("status", ""))
            table.add_row(model.id, str(action.get("action")), shown, lifecycle, model.served_by or "")
    out.print(table)


@app.command(rich_help_panel=CLIENT)
def login(
    base_url: Annotated[str, typer.Option("--base-url", help="The gateway's URL.")] = "http://127.0.0.1:8000",
    api_key: Annotated[
        str, typer.Option("--api-key", prompt=True, hide_input=True, help="Your API key.")
    ] = "",
    profile: Profile = None,
) -> None:
    """Check a key against the gateway and keep it in a profile (config.toml, mode 0600)."""
    name = profile or profiles.DEFAULT_PROFILE
    with _client(None, base_url, api_key) as client:
        me = client.account.me()
    path = profiles.save(name, profiles.Profile(base_url=base_url, api_key=api_key))
    err.print(f"logged in to {base_url} as {me.name} (tier {me.tier.name}); profile {name!r} saved in {path}")


@app.command(rich_help_panel=CLIENT)
def mcp(profile: Profile = None, base_url: BaseUrl = None, api_key: ApiKey = None) -> None:
    """Serve the gateway to agents over MCP (stdio): models, prices, generate, edit, tasks, balance.
    (The gateway itself serves the same tools at /mcp over streamable HTTP.)"""
    from imagegate.mcp_server import for_stdio  # imported here: the other commands start faster

    chosen = profiles.resolve(profile, base_url, api_key)
    for_stdio(chosen.api_key, chosen.base_url).run("stdio")
