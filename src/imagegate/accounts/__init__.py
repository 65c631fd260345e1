"""Accounts and their API keys (shown once, stored as SHA-256 with a visible prefix)."""
