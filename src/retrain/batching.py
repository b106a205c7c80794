"""Splitting a batch of landed files for the parallel validate tasks. Stdlib only: the landing
sensor calls it in its own process, so the DAG needs no planning task of its own."""

from __future__ import annotations

from typing import Any


def plan_chunks(files: list[dict[str, Any]], tasks: int) -> list[list[dict[str, Any]]]:
    """Split a batch into at most ``tasks`` chunks of about equal bytes (largest first)."""
    chunks: list[list[dict[str, Any]]] = [[] for _ in range(max(1, min(tasks, len(files))))]
    loads = [0] * len(chunks)
    for item in sorted(files, key=lambda f: (-int(f.get("size", 0)), f["key"])):
        i = loads.index(min(loads))
        chunks[i].append(item)
        loads[i] += int(item.get("size", 0)) or 1
    return [c for c in chunks if c]
