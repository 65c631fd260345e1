"""Credits: an append-only ledger of grants, holds, captures and releases, plus free calls.

Money is integer micro-dollars everywhere (1 USD = 1_000_000).
"""
