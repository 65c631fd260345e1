"""HTTP: the RunAPI face, the OpenAI face, catalog pages, files, admin."""

from imagegate.api.app import create_app

__all__ = ["create_app"]
