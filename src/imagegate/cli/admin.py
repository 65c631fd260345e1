"""Server administration: serve the gateway and administer it on the database directly.

These commands hold the ``typer`` app; the client commands (``cli.client``) join it under
their own heading in ``--help``. JSON goes to stdout, messages to stderr. Exit codes: 0 ok,
1 error, 2 usage.
"""

from __future__ import annotations

import asyncio
import errno
import json
import socket
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from imagegate.accounts import store
from imagegate.billing import ledger
from imagegate.billing.money import micro_to_usd, usd_to_micro
from imagegate.db.migrate import upgrade
from imagegate.db.models import utcnow
from imagegate.db.session import Database
from imagegate.errors import GatewayError
from imagegate.gateway import check_storage, describe_routes
from imagegate.settings import Settings, settings_table
from imagegate.storage import StorageUnavailable

app = typer.Typer(help="Self-hostable image-generation API gateway.", no_args_is_help=True)
accounts_app = typer.Typer(help="Accounts.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys (shown once, stored hashed).", no_args_is_help=True)
credits_app = typer.Typer(help="Credits: grants and balances.", no_args_is_help=True)
ledger_app = typer.Typer(help="The credits ledger.", no_args_is_help=True)
ADMIN = "Server administration"  # the --help heading of these commands
app.add_typer(accounts_app, name="accounts", rich_help_panel=ADMIN)
app.add_typer(keys_app, name="keys", rich_help_panel=ADMIN)
app.add_typer(credits_app, name="credits", rich_help_panel=ADMIN)
app.add_typer(ledger_app, name="ledger", rich_help_panel=ADMIN)

out = Console()
err = Console(stderr=True)
T = TypeVar("T")

DEMO_ACCOUNT = "demo"


def _check_database(settings: Settings, *, create: bool) -> None:
    """Refuse to make a new, empty database by accident (an admin command run in the wrong
    directory would otherwise grant credits into a database nobody serves). ``serve`` and
    ``init`` create one; so does an explicitly chosen IMAGEGATE_DATA_DIR, saying so."""
    if settings.database_url:  # PostgreSQL, or a SQLite file named explicitly
        return
    database = settings.data_dir.resolve() / "imagegate.db"
    if database.exists():
        return
    explicit = "data_dir" in settings.model_fields_set
    if not (create or explicit):
        err.print(
            f"[red]error:[/red] no imagegate database in {settings.data_dir.resolve()} "
            "(the data directory; IMAGEGATE_DATA_DIR chooses another).\n"
            "Run this where `imagegate serve` keeps its data, set IMAGEGATE_DATA_DIR to that "
            "directory, or create a new one here with `imagegate init`.",
            highlight=False,
        )
        raise typer.Exit(1)
    if not create:
        err.print(f"creating a new database in {settings.data_dir.resolve()}", highlight=False)


def _with_session(
    settings: Settings, work: Callable[[AsyncSession], Awaitable[T]], *, create: bool = False
) -> T:
    _check_database(settings, create=create)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url)

    async def main() -> T:
        db = Database(settings.resolved_database_url)
        try:
            async with db.transaction() as session:
                return await work(session)
        finally:
            await db.dispose()

    try:
        return asyncio.run(main())
    except GatewayError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def _ensure_demo(settings: Settings) -> Callable[[AsyncSession], Awaitable[str | None]]:
    async def work(session: AsyncSession) -> str | None:
        """On the very first start (no accounts yet): a demo account that never meets a limit."""
        if await store.list_accounts(session):
            return None
        account = await store.create_account(session, DEMO_ACCOUNT)
        # The top tier (tier2 by default), so a newcomer trying the demo never meets a limit.
        top = max(settings.tiers, key=lambda t: t.paid_spend_threshold_micro).name
        await store.pin_tier(session, account, top, [t.name for t in settings.tiers])
        grant = usd_to_micro(settings.demo_grant_usd, "IMAGEGATE_DEMO_GRANT_USD")
        if grant > 0:
            await ledger.grant(session, account.id, grant, utcnow(), bonus=True, note="demo account")
        issued = await store.create_key(session, account, "demo")
        return issued.key

    return work


def _banner(base: str, key: str) -> str:
    # A live model (the README's example): a retired one would work, but teaches the old name.
    body = '{"model": "gpt-image-2", "prompt": "a red fox in fresh snow", "aspect_ratio": "1:1", "output_resolution": "1k"}'
    return (
        f"\nA demo account was created. Its API key, shown only this once:\n\n    {key}\n\n"
        "Try it (creates a task, then read it back with its id):\n\n"
        f"    curl -s {base}/api/v1/gpt_image_2/text_to_image -H 'Authorization: Bearer {key}' "
        f"-H 'Content-Type: application/json' -d '{body}'\n\n"
        f"    curl -s {base}/api/v1/tasks/TASK_ID -H 'Authorization: Bearer {key}'\n"
    )


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            err.print(f"port {port} is in use; try --port {port + 1}", highlight=False)
        else:
            err.print(f"[red]error:[/red] cannot listen on {host}:{port}: {exc.strerror}", highlight=False)
        raise typer.Exit(1) from None
    sock.listen(2048)  # connections made right after the banner queue until uvicorn accepts them
    return sock


@app.command(rich_help_panel=ADMIN)
def init() -> None:
    """Create the data directory and an empty database (IMAGEGATE_DATA_DIR, ./.imagegate)."""
    settings = Settings()

    async def work(session: AsyncSession) -> None:
        return None

    _with_session(settings, work, create=True)
    err.print(f"database ready in {settings.data_dir.resolve()}", highlight=False)


@app.command(rich_help_panel=ADMIN)
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (IMAGEGATE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port; 0 picks a free one (IMAGEGATE_PORT).")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker pool size (IMAGEGATE_WORKERS).")] = None,
    no_worker: Annotated[
        bool,
        typer.Option(
            "--no-worker", help="API only: tasks go to `imagegate worker` processes (job queue postgres)."
        ),
    ] = False,
) -> None:
    """Start the gateway on the embedded defaults: SQLite, local files, offline renderer."""
    import uvicorn

    from imagegate.api import create_app
    from imagegate.api.app import GatewayServer
    from imagegate.heap import keep_freed_buffers

    keep_freed_buffers()  # megabytes per image call, reused rather than faulted in again

    overrides: dict[str, Any] = {
        k: v for k, v in {"host": host, "port": port, "workers": workers}.items() if v is not None
    }
    settings = Settings(**overrides)
    if no_worker and settings.job_queue != "postgres":
        err.print("[red]error:[/red] --no-worker needs IMAGEGATE_JOB_QUEUE=postgres (workers run elsewhere)")
        raise typer.Exit(1)
    try:
        routes = asyncio.run(describe_routes(settings))
        asyncio.run(check_storage(settings))
    except (ValueError, StorageUnavailable) as exc:  # a provider, route or store that cannot work
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None
    # Bind before the demo account is made: a busy port must not spend the once-shown key.
    sock = _bind(settings.host, settings.port)
    demo_key = _with_session(settings, _ensure_demo(settings), create=True) if settings.demo_account else None
    family = sock.family
    bound_port = sock.getsockname()[1]
    shown_host = f"[{settings.host}]" if family == socket.AF_INET6 else settings.host
    base = settings.public_url or f"http://{shown_host}:{bound_port}"
    if demo_key:
        out.print(_banner(base, demo_key), highlight=False, soft_wrap=True)
    for line in routes:
        out.print(line, highlight=False, soft_wrap=True)
    out.print(f"imagegate listening on {base} (data in {settings.data_dir.resolve()})", highlight=False)
    sys.stdout.flush()
    app = create_app(settings, run_workers=not no_worker)
    config = uvicorn.Config(app, log_level=settings.log_level, access_log=False)
    GatewayServer(config).run(sockets=[sock])


@app.command(rich_help_panel=ADMIN)
def worker(
    queues: Annotated[
        str | None, typer.Option(help="Comma-separated provider kinds to take tasks of (default: all).")
    ] = None,
    concurrency: Annotated[int | None, typer.Option(help="Tasks run at once (IMAGEGATE_WORKERS).")] = None,
) -> None:
    """Run tasks from the PostgreSQL job queue (IMAGEGATE_JOB_QUEUE=postgres) until SIGINT/SIGTERM."""
    import signal

    from imagegate.gateway import Gateway
    from imagegate.heap import keep_freed_buffers
    from imagegate.queue.jobs import JobQueue

    keep_freed_buffers()
    overrides: dict[str, Any] = {"workers": concurrency} if concurrency else {}
    settings = Settings(**overrides)
    if settings.job_queue != "postgres":
        err.print("[red]error:[/red] `imagegate worker` needs IMAGEGATE_JOB_QUEUE=postgres")
        raise typer.Exit(1)
    names = [name.strip() for name in queues.split(",") if name.strip()] if queues else None

    async def work() -> None:
        gw = await Gateway.open(settings)
        queue = JobQueue(gw, work=True, queues=names, concurrency=settings.workers)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await queue.start()
            out.print(f"imagegate worker ready (queues: {', '.join(names or ['all'])})", highlight=False)
            sys.stdout.flush()
            await stop.wait()
        finally:
            await queue.stop()
            await gw.close()

    try:
        asyncio.run(work())
    except StorageUnavailable as exc:  # checked by Gateway.open before any job is taken
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None


@app.command("settings", rich_help_panel=ADMIN)
def show_settings(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print the table of docs/configuration.md.")
    ] = False,
) -> None:
    """Every setting: environment variable, default, meaning."""
    rows = settings_table()
    if markdown:
        lines = ["| variable | default | meaning |", "|---|---|---|"]
        lines += [
            f"| `{n}` | {f'`{d}`' if d and len(d) < 60 else ('see below' if d else '')} | {m} |"
            for n, d, m in rows
        ]
        sys.stdout.write("\n".join(lines) + "\n")
    elif as_json:
        _print_json([{"variable": n, "default": d, "meaning": m} for n, d, m in rows])
    elif not sys.stdout.isatty():
        sys.stdout.write("".join(f"{n}\t{d}\t{m}\n" for n, d, m in rows))
    else:
        table = Table("variable", "default", "meaning")
        for row in rows:
            table.add_row(*row)
        out.print(table)


Email = Annotated[str | None, typer.Option("--email", help="E-mail address ('' clears it).")]


@accounts_app.command("create")
def accounts_create(
    name: str,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    email: Email = None,
) -> None:
    """Create an account."""

    async def work(session: AsyncSession) -> dict[str, Any]:
        account = await store.create_account(session, name, email)
        return {"id": account.id, "name": account.name, "email": account.email}

    result = _with_session(Settings(), work)
    if as_json:
        _print_json(result)
    else:
        out.print(f"account {result['name']} created: {result['id']}", highlight=False)


@accounts_app.command("update")
def accounts_update(
    account: Annotated[str, typer.Argument(help="Account name or id.")], email: Email
) -> None:
    """Change an account's e-mail address."""

    async def work(session: AsyncSession) -> dict[str, Any]:
        target = await store.get_account(session, account)
        store.set_email(target, email)
        return {"id": target.id, "name": target.name, "email": target.email}

    _print_json(_with_session(Settings(), work))


@accounts_app.command("list")
def accounts_list() -> None:
    """List accounts."""

    async def work(session: AsyncSession) -> list[dict[str, Any]]:
        return [{"id": a.id, "name": a.name} for a in await store.list_accounts(session)]

    _print_json(_with_session(Settings(), work))


@keys_app.command("create")
def keys_create(
    account: Annotated[str, typer.Argument(help="Account name or id.")],
    name: Annotated[str | None, typer.Option(help="A label for the key.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create an API key; the key is printed once and never again."""

    async def work(session: AsyncSession) -> dict[str, Any]:
        issued = await store.create_key(session, await store.get_account(session, account), name)
        return {"key": issued.key, "prefix": issued.record.prefix, "account_id": issued.record.account_id}

    result = _with_session(Settings(), work)
    if as_json:
        _print_json(result)
    else:
        err.print("Store this key now: it is not shown again.")
        sys.stdout.write(result["key"] + "\n")


@keys_app.command("list")
def keys_list(account: Annotated[str, typer.Argument(help="Account name or id.")]) -> None:
    """List an account's keys (prefixes only)."""

    async def work(session: AsyncSession) -> list[dict[str, Any]]:
        keys = await store.list_keys(session, await store.get_account(session, account))
        return [
            {
                "prefix": k.prefix,
                "name": k.name,
                "created_at": k.created_at.isoformat(),
                "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
            }
            for k in keys
        ]

    _print_json(_with_session(Settings(), work))


@keys_app.command("revoke")
def keys_revoke(prefix: str) -> None:
    """Revoke a key by its visible prefix."""

    async def work(session: AsyncSession) -> str:
        return (await store.revoke_key(session, prefix)).prefix

    err.print(f"revoked {_with_session(Settings(), work)}")


@accounts_app.command("tier")
def accounts_tier(
    account: Annotated[str, typer.Argument(help="Account name or id.")],
    tier: Annotated[str, typer.Argument(help="Tier name to pin, or 'auto' to follow paid spend.")],
) -> None:
    """Pin an account to a usage tier (or 'auto')."""
    settings = Settings()

    async def work(session: AsyncSession) -> str | None:
        target = await store.get_account(session, account)
        pinned = None if tier == "auto" else tier
        await store.pin_tier(session, target, pinned, [t.name for t in settings.tiers])
        return pinned

    pinned = _with_session(settings, work)
    err.print(f"{account}: tier {'follows paid spend' if pinned is None else pinned}")


def _totals_json(account_id: str, totals: ledger.Totals) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "balance_usd": micro_to_usd(totals.balance_micro),
        "balance_micro": totals.balance_micro,
        "paid_micro": totals.paid_micro,
        "bonus_micro": totals.bonus_micro,
        "held_micro": totals.held_micro,
        "spent_paid_micro": totals.spent_paid_micro,
        "spent_bonus_micro": totals.spent_bonus_micro,
    }


@credits_app.command("grant")
def credits_grant(
    account: Annotated[str, typer.Argument(help="Account name or id.")],
    usd: Annotated[str, typer.Argument(help="Amount in dollars, e.g. 5 or 0.25.")],
    note: Annotated[str | None, typer.Option(help="Why (kept in the ledger).")] = None,
    bonus: Annotated[bool, typer.Option(help="Promotional credit (does not count as paid spend).")] = False,
) -> None:
    """Add credits to an account."""

    async def work(session: AsyncSession) -> dict[str, Any]:
        target = await store.get_account(session, account)
        amount = usd_to_micro(usd)
        return _totals_json(
            target.id, await ledger.grant(session, target.id, amount, utcnow(), bonus=bonus, note=note)
        )

    _print_json(_with_session(Settings(), work))


@credits_app.command("show")
def credits_show(account: Annotated[str, typer.Argument(help="Account name or id.")]) -> None:
    """An account's balance, holds and spend."""

    async def work(session: AsyncSession) -> dict[str, Any]:
        target = await store.get_account(session, account)
        return _totals_json(target.id, await ledger.totals(session, target.id))

    _print_json(_with_session(Settings(), work))


@ledger_app.command("check")
def ledger_check(
    repair: Annotated[bool, typer.Option(help="Rewrite drifted totals from the ledger.")] = False,
) -> None:
    """Rebuild every balance from the ledger; exit 1 if any stored total drifted."""

    async def work(session: AsyncSession) -> tuple[list[ledger.Drift], list[str]]:
        return await ledger.check(session, repair=repair), await ledger.violations(session)

    drifts, problems = _with_session(Settings(), work)
    for drift in drifts:
        err.print(f"[red]drift[/red] {drift.account_id}: stored {drift.stored} != ledger {drift.rebuilt}")
    for problem in problems:
        err.print(f"[red]violation[/red] {problem}")
    if drifts or problems:
        err.print(
            f"{len(drifts)} account(s) drifted"
            + (" (repaired)" if repair else "")
            + f", {len(problems)} violation(s)"
        )
        raise typer.Exit(1)
    err.print("ledger clean: every balance equals the sum of its ledger, every hold ended once")


def admin_usage(start: str | None, end: str | None, as_json: bool) -> None:
    """``imagegate usage --admin``: every account's calls, charges, upstream cost and margin per
    day and model, read from the database (the same figures as ``GET /admin/usage``)."""
    from imagegate.dates import parse_day
    from imagegate.tasks import usage

    def window() -> tuple[Any, Any]:
        return usage.report_window(
            utcnow().date(),
            parse_day(start, "--from") if start else None,
            parse_day(end, "--to") if end else None,
        )

    try:
        first, last = window()
    except GatewayError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from None

    async def work(session: AsyncSession) -> list[dict[str, Any]]:
        return await usage.margins(session, first, last)

    rows = _with_session(Settings(), work)
    totals = usage.margin_totals(rows)
    if as_json:
        _print_json(
            {
                "object": "list",
                "from": first.isoformat(),
                "to": last.isoformat(),
                "data": rows,
                "totals": totals,
            }
        )
        return
    table = Table(
        "date", "model", "calls", "completed", "charged", "upstream cost", "margin",
        title=f"{first.isoformat()} to {last.isoformat()}, all accounts",
    )  # fmt: skip
    for row in [*rows, totals]:
        table.add_row(
            row["date"], row["model"], str(row["calls"]), str(row["completed"]),
            micro_to_usd(row["charged_micro"]), micro_to_usd(row["upstream_cost_micro"]),
            micro_to_usd(row["margin_micro"]),
        )  # fmt: skip
    out.print(table)
