"""``imagegate``: the command line. Server administration (``admin``) and the client
commands (``client``, over the SDK) share one app, grouped apart in ``--help``."""

from imagegate.cli import client as _client  # noqa: F401  (registers the client commands)
from imagegate.cli import webhooks as _webhooks  # noqa: F401  (registers webhooks and listen)
from imagegate.cli.admin import app

__all__ = ["app"]
