"""Each folder of ``src/imagegate/`` is one part of the design: no import cycles between parts.

Module-level imports only: a function-level import is a deliberate, local exception (the CLI
starting the server, say) and says so where it stands.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import imagegate

ROOT = Path(imagegate.__file__).parent


def _part_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for path in ROOT.rglob("*.py"):
        part = path.relative_to(ROOT).parts[0].removesuffix(".py")
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            for module in modules:
                names = module.split(".")
                if names[0] == "imagegate" and len(names) > 1 and names[1] != part:
                    graph[part].add(names[1])
    return graph


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    stack = [start]
    while stack:
        for nxt in graph.get(stack.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def test_no_import_cycles_between_parts() -> None:
    graph = _part_graph()
    assert {"api", "tasks", "billing", "providers", "storage", "webhooks"} <= set(graph)
    cycles = sorted({tuple(sorted((a, b))) for a in graph for b in graph[a] if a in _reachable(graph, b)})
    assert cycles == [], f"parts that import each other (directly or around a loop): {cycles}"
