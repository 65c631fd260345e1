"""Webhook commands: the signing secret, a task's deliveries, and ``listen`` for local development.

``imagegate listen --forward URL`` holds one Server-Sent Events connection to the gateway
(``GET /api/v1/webhooks/listen``) and POSTs each of the account's task-end events to URL
with exactly the body and Standard Webhooks headers a real delivery carries, so a handler
verifying signatures with ``standardwebhooks`` works unchanged on a laptop with no public
URL. A dropped connection is resumed with ``Last-Event-ID``: no event is lost or repeated.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated, Any

import httpx
import typer
from httpx_sse import SSEError, connect_sse

from imagegate.cli import profiles
from imagegate.cli.admin import app
from imagegate.cli.client import CLIENT, ApiKey, AsJson, BaseUrl, Profile, Quiet, TaskId, _client, err, out
from imagegate.sdk._base import DEFAULT_BASE_URL

webhooks_app = typer.Typer(
    help="Your webhooks: signing secret, deliveries, redelivery.", no_args_is_help=True
)
app.add_typer(webhooks_app, name="webhooks", rich_help_panel=CLIENT)

LISTEN_PATH = "/api/v1/webhooks/listen"
READ_TIMEOUT_S = 60.0  # the gateway sends a heartbeat every 15 s
RECONNECT_FIRST_S = 0.5
RECONNECT_MAX_S = 15.0
FORWARD_TIMEOUT_S = 30.0


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


@webhooks_app.command("secret")
def secret(
    rotate: Annotated[
        bool, typer.Option("--rotate", help="Make a new secret (the old one signs too for a grace period).")
    ] = False,
    as_json: AsJson = False,
    profile: Profile = None,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Print the secret (whsec_...) that signs your account's webhooks."""
    with _client(profile, base_url, api_key) as client:
        shown = client.webhooks.rotate_secret() if rotate else client.webhooks.secret()
    if as_json:
        _print_json(shown.model_dump(mode="json"))
        return
    sys.stdout.write(shown.secret + "\n")
    if shown.previous_valid_until:
        err.print(f"the previous secret also signs until {shown.previous_valid_until}")


@webhooks_app.command("deliveries")
def deliveries(
    task_id: TaskId,
    as_json: AsJson = False,
    profile: Profile = None,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
) -> None:
    """A task's webhook deliveries and every attempt: status code, latency, error."""
    with _client(profile, base_url, api_key) as client:
        found = client.webhooks.deliveries(task_id)
    if as_json:
        _print_json([d.model_dump(mode="json") for d in found])
        return
    for d in found:
        out.print(f"{d.id} {d.type} {d.state} → {d.url}", soft_wrap=True)
        for a in d.attempts:
            answer = a.status_code if a.status_code is not None else "-"
            out.print(f"  #{a.number} {a.started_at} {answer} {a.latency_ms} ms {a.error or ''}".rstrip())
        if d.state == "pending" and d.next_attempt_at:
            out.print(f"  next attempt at {d.next_attempt_at}")


@webhooks_app.command("redeliver")
def redeliver(
    task_id: TaskId,
    as_json: AsJson = False,
    profile: Profile = None,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Send an ended task's webhook to its callback_url again (the same webhook-id)."""
    with _client(profile, base_url, api_key) as client:
        queued = client.webhooks.redeliver(task_id)
    if as_json:
        _print_json(queued.model_dump(mode="json"))
    else:
        sys.stdout.write(f"{queued.id} {queued.state}\n")


@app.command(rich_help_panel=CLIENT)
def listen(
    forward: Annotated[
        str,
        typer.Option(
            "--forward", "-f", help="Local URL to POST each event to, e.g. http://localhost:3000/hook."
        ),
    ],
    max_events: Annotated[
        int | None, typer.Option("--max-events", help="Stop after forwarding this many events.")
    ] = None,
    quiet: Quiet = False,
    profile: Profile = None,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Receive your account's task-end webhooks here, signed, without a public URL."""
    with _client(profile, base_url, api_key) as client:
        me = client.account.me()  # a wrong key ends here, with exit code 2
    chosen = profiles.resolve(profile, base_url, api_key)
    url = (chosen.base_url or DEFAULT_BASE_URL).rstrip("/") + LISTEN_PATH
    headers = {"Authorization": f"Bearer {chosen.api_key}"}
    forwarded, last_id, delay = 0, None, RECONNECT_FIRST_S
    timeout = httpx.Timeout(FORWARD_TIMEOUT_S, read=READ_TIMEOUT_S)
    with httpx.Client(timeout=timeout) as http:
        while True:
            try:
                sent = {**headers, **({"Last-Event-ID": last_id} if last_id else {})}
                with connect_sse(http, "GET", url, headers=sent) as source:
                    if source.response.status_code != 200:
                        source.response.read()
                        err.print(f"[red]error:[/red] the gateway answered {source.response.status_code}")
                        raise typer.Exit(4 if source.response.status_code == 404 else 1)
                    if not quiet:
                        err.print(
                            f"Ready! Forwarding {me.name}'s task events to {forward}, signed with the "
                            "secret `imagegate webhooks secret` prints (Ctrl-C to stop)"
                        )
                    delay = RECONNECT_FIRST_S
                    for sse in source.iter_sse():
                        last_id = sse.id or last_id
                        _forward(http, forward, sse.event, json.loads(sse.data))
                        forwarded += 1
                        if max_events is not None and forwarded >= max_events:
                            return
            except (httpx.TransportError, SSEError) as exc:
                err.print(f"connection lost ({type(exc).__name__}); reconnecting in {delay:g} s")
                time.sleep(delay)
                delay = min(RECONNECT_MAX_S, delay * 2)
            except KeyboardInterrupt:
                return


def _forward(http: httpx.Client, target: str, event: str, data: dict[str, Any]) -> None:
    """POST one event to the local URL as the gateway would have; one line says how it went."""
    started = time.monotonic()
    try:
        answer = http.post(target, content=data["body"].encode(), headers=data["headers"])
    except httpx.HTTPError as exc:
        err.print(f"{event} {data['webhook_id']} → {target} failed ({type(exc).__name__})")
        return
    ms = round((time.monotonic() - started) * 1000)
    sys.stdout.write(f"{event} {data['webhook_id']} → {answer.status_code} ({ms} ms)\n")
    sys.stdout.flush()
