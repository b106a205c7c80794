"""Splitting a batch of landed files for the parallel validate tasks. Stdlib only: the landing
sensor calls it in its own process, so the DAG needs no planning task of its own."""

from __future__ import annotations

import json
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


def batch_reason(
    files: int,
    now: float,
    *,
    changed_at: float,
    first_at: float,
    settle: float,
    max_settle: float,
    max_files: int,
) -> str:
    """Why ``files`` files (at least one) seen first at ``first_at`` and last changed at
    ``changed_at`` make a batch at ``now``: ``"full"`` (``max_files`` reached; 0: no cap),
    ``"quiet"`` (unchanged for ``settle`` seconds), ``"max_settle"`` (``max_settle`` seconds
    after the first, a steady trickle), or ``""`` (not yet). The one rule of both arrival
    modes, so a burst is one batch whether it is listed or notified."""
    now += 1e-6  # a wait cut to end at a deadline ends on it, rounding aside
    if max_files and files >= max_files:
        return "full"
    if now - changed_at >= settle:
        return "quiet"
    if now - first_at >= max_settle:
        return "max_settle"
    return ""


def chunk_key(task: int) -> str:
    """The XCom key of the chunk for validate task ``task`` (0-based)."""
    return f"chunk_{task}"


LARGE_KEY = "chunk_large"  # the XCom of the validate task for large files (heavy queue and pool)


def chunk_xcoms(
    files: list[dict[str, Any]], tasks: int, large_bytes: int | None = None
) -> dict[str, list[dict[str, Any]]]:
    """:func:`plan_chunks` as one XCom per validate task, every one of the ``tasks`` keys
    present (an empty list for a task with nothing to do): the validate tasks are fixed, one
    per key, so the landing trigger can end its task itself and hand the batch over without a
    worker (a mapped task would need the mapped length, which only a worker records).

    With ``large_bytes``, the files of at least that many bytes are kept out of the shares and
    go to :data:`LARGE_KEY` (always present then, an empty list when no file is that big), for
    the one validate task that runs on the heavy queue and pool; ``0`` counts no file as large
    (what a landing trigger serialized before the threshold existed passes). ``None``: no
    :data:`LARGE_KEY` at all.
    """
    large: list[dict[str, Any]] = []
    if large_bytes:
        large = sorted(
            (f for f in files if int(f.get("size", 0)) >= large_bytes), key=lambda f: f["key"]
        )
        files = [f for f in files if int(f.get("size", 0)) < large_bytes]
    chunks = plan_chunks(files, tasks)
    out = {chunk_key(i): chunks[i] if i < len(chunks) else [] for i in range(max(tasks, 1))}
    if large_bytes is not None:
        out[LARGE_KEY] = large
    return out


def chunk_of(value: list[dict[str, Any]] | str | None) -> list[dict[str, Any]]:
    """A validate task's chunk as its XCom arrives. Airflow 3.3's triggerer stores the XComs of
    a ``TaskSuccessEvent`` JSON-encoded once more than a task's own XComs (its ``xcom_push``
    serializes, then the JSON column encodes the string), so a task reads them back as JSON
    text: decoded here, a list passes through. None (a key an older trigger did not push): no
    files."""
    if isinstance(value, str):
        return json.loads(value)
    return value or []
