"""Principals by key, kept for a few seconds so hot routes authenticate without a statement.

What a cached principal could get wrong, and how long:
- a key revoked or a tier pinned in this process: never; the admin routes drop the account's
  entries at once (``forget_account``);
- paid spend that moves the tier, settled in this process: never; the settlement adds it to the
  cached principals of the account (``add_paid_spend``);
- any of these done by another process (the admin CLI, another replica): until the entry is
  older than ``ttl_s``, then the next request reads the database again.

Only keys that authenticated are kept (a flood of wrong keys cannot fill it), at most
``max_entries``, keyed by the key's hash (no secret is held).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from imagegate.accounts.store import Principal

MAX_ENTRIES = 10_000


class PrincipalCache:
    def __init__(
        self, ttl_s: float, max_entries: int = MAX_ENTRIES, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._monotonic = monotonic
        self._entries: dict[str, tuple[float, Principal]] = {}  # key hash -> (expires, principal)
        self._by_account: dict[str, set[str]] = {}  # account id -> its key hashes held here

    def get(self, key_hash: str) -> Principal | None:
        entry = self._entries.get(key_hash)
        if entry is None:
            return None
        if entry[0] <= self._monotonic():
            self._drop(key_hash)
            return None
        return entry[1]

    def put(self, key_hash: str, principal: Principal) -> None:
        if self.ttl_s <= 0:
            return
        if len(self._entries) >= self.max_entries and key_hash not in self._entries:
            self._drop(next(iter(self._entries)))  # insertion order: the one that expires first
        self._drop(key_hash)
        self._entries[key_hash] = (self._monotonic() + self.ttl_s, principal)
        self._by_account.setdefault(principal.account_id, set()).add(key_hash)

    def forget_account(self, account_id: str) -> None:
        """A key revoked, a tier pinned or anything else an admin changed about the account."""
        for key_hash in list(self._by_account.get(account_id, ())):
            self._drop(key_hash)

    def add_paid_spend(self, account_id: str, micro: int) -> None:
        """Paid spend settled in this process: the account's tier may have moved up."""
        if micro <= 0:
            return
        for key_hash in self._by_account.get(account_id, ()):
            expires, who = self._entries[key_hash]
            spent = dataclasses.replace(who, paid_spend_micro=who.paid_spend_micro + micro)
            self._entries[key_hash] = (expires, spent)

    def _drop(self, key_hash: str) -> None:
        entry = self._entries.pop(key_hash, None)
        if entry is not None:
            hashes = self._by_account[entry[1].account_id]
            hashes.discard(key_hash)
            if not hashes:
                del self._by_account[entry[1].account_id]
