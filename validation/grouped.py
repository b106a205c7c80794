"""Many small files through one GX run, with each file's verdict what a run on it alone gives.

A checkpoint run costs ~0.25 s on this machine however small the file (GX builds its metric
graph per run); 200 small files spent ~50 s there, a run over their 40k rows together ~0.7 s.
So ingest hands the files that fit in one chunk to :func:`validate_raw_group`, which validates
them together, group by group, and still decides per file:

- Files are grouped only with files whose raw view has the same columns *and dtypes*, so that
  concatenating them changes no value and no dtype: each row-wise expectation (values in a set,
  numeric text, ranges, timestamps, column presence and set) then holds for the concatenation
  iff it holds for every file, and GX's COMPLETE result names every failing row, hence its file.
- What needs a whole file (row count, ids unique within the file, a share of missing values)
  becomes one row per file of a summary table that the second checkpoint checks (see
  :func:`validation.context.get_grouped_raw_gate`); a failing row there names its file.
- A file named by either run, or every file of a group when a failure names no rows (a missing
  column, a check that raised), is validated alone with the whole raw suite, so its report is
  exactly the one it would have had alone. The others are checked again without them, so that
  the result they keep is a clean pass over exactly those files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from retrain.config import Config
from validation.context import (
    RAW_GROUP_FILES_CHECKPOINT,
    RAW_GROUP_ROWS_CHECKPOINT,
    FileMeasure,
    GroupedRawGate,
    get_grouped_raw_gate,
)
from validation.gates import (
    RAW_CHUNK_ROWS,
    GateResult,
    RawValidation,
    assembled_validation,
    gate_result,
    raw_file_view,
    run_checkpoint,
    run_raw_checkpoint,
    text_ids,
    validate_raw_file,
    validate_raw_view,
)

# Rows validated in one grouped run, at most one chunk of a large file so that memory stays
# bounded by the same figure (files of more rows are validated alone, chunk by chunk). Fewer:
# the grouped run lists the index of every failing row.
GROUP_ROWS = min(RAW_CHUNK_ROWS, 100_000)


@dataclass(frozen=True)
class _Suspects:
    files: frozenset[int]  # positions within the group
    all: bool = False  # a failure that names no rows: every file is validated alone


def validate_raw_group(
    frames: Sequence[pd.DataFrame], cfg: Config, *, run_name: str
) -> list[RawValidation]:
    """Validate each frame (one small landed file as :func:`retrain.tables.read_table` returns
    it) with the raw suite, as many as possible in one run. Files validated together share one
    :class:`GateResult` (a pass over all of them; its ``result["meta"]["files"]`` says how
    many) and list each other's positions in :attr:`RawValidation.group`."""
    gate = get_grouped_raw_gate(cfg)
    views = [raw_file_view(frame, cfg) for frame in frames] if len(frames) > 1 else []
    out: list[RawValidation | None] = [None] * len(frames)
    alone: list[int] = [] if views else list(range(len(frames)))
    for members in _groups(views):
        if len(members) == 1:
            alone.extend(members)
            continue
        passed = _validate_together(gate, cfg, [views[i] for i in members], run_name)
        if passed is None:
            alone.extend(members)
            continue
        together, result = passed
        group = tuple(members[j] for j in together)
        for i in group:
            out[i] = RawValidation(
                result=result,
                rows=len(frames[i]),
                ids=text_ids(frames[i], cfg.dataset.id_column),
                group=group,
            )
        kept = set(together)
        alone.extend(m for j, m in enumerate(members) if j not in kept)
    for i in sorted(alone):
        name = f"{run_name}-{i}"
        result = (
            validate_raw_view(views[i], cfg, run_name=name)
            if views
            else validate_raw_file(frames[i], cfg, run_name=name)
        )
        out[i] = RawValidation(
            result=result, rows=len(frames[i]), ids=text_ids(frames[i], cfg.dataset.id_column)
        )
    return [v for v in out if v is not None]


def _groups(views: Sequence[pd.DataFrame]) -> list[list[int]]:
    """Positions of views with the same columns and dtypes, in order, at most GROUP_ROWS rows
    per group. Empty views go alone: the summary table's shares are undefined for them."""
    by_schema: dict[tuple[tuple[str, str], ...], list[list[int]]] = {}
    filling: dict[tuple[tuple[str, str], ...], int] = {}  # rows in each schema's last group
    singles = []
    for i, view in enumerate(views):
        if len(view) == 0:
            singles.append([i])
            continue
        schema = tuple((str(c), str(view[c].dtype)) for c in view.columns)
        groups = by_schema.setdefault(schema, [[]])
        if groups[-1] and filling[schema] + len(view) > GROUP_ROWS:
            groups.append([])
            filling[schema] = 0
        groups[-1].append(i)
        filling[schema] = filling.get(schema, 0) + len(view)
    return [g for groups in by_schema.values() for g in groups] + singles


def _validate_together(
    gate: GroupedRawGate, cfg: Config, views: list[pd.DataFrame], run_name: str
) -> tuple[list[int], GateResult] | None:
    """The positions of the views that pass together and their shared result, or None when no
    two of them do (each is then validated alone)."""
    members = list(range(len(views)))
    while len(members) > 1:
        group = [views[j] for j in members]
        validations, suspects = _run_group(gate, cfg, group, run_name)
        if suspects.all:
            return None
        if not suspects.files:
            return members, _group_result(gate, cfg, validations, group)
        members = [m for j, m in enumerate(members) if j not in suspects.files]
    return None


def _run_group(
    gate: GroupedRawGate, cfg: Config, views: list[pd.DataFrame], run_name: str
) -> tuple[list[dict[str, Any]], _Suspects]:
    """Both checkpoints over the views; which views they found failing."""
    sizes = np.array([len(v) for v in views])
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    together = pd.concat(views, ignore_index=True)
    rows = run_raw_checkpoint(gate.context, RAW_GROUP_ROWS_CHECKPOINT, together, run_name)
    del together
    suspects = _failing(rows, lambda index: np.searchsorted(starts, index, side="right") - 1)
    if suspects.all:
        return [rows], suspects
    summary = pd.DataFrame([_measure(view, gate.measures) for view in views])
    files = run_checkpoint(gate.context, RAW_GROUP_FILES_CHECKPOINT, summary, run_name)
    named = _failing(files, np.asarray)
    return [rows, files], _Suspects(suspects.files | named.files, named.all)


def _failing(validation: dict[str, Any], file_of: Any) -> _Suspects:
    """The files a COMPLETE result names through its failing rows' index (``file_of`` maps row
    positions to file positions)."""
    files: set[int] = set()
    for item in validation["results"]:
        if item["success"]:
            continue
        index = (item.get("result") or {}).get("unexpected_index_list")
        if item.get("exception_info", {}).get("raised_exception") or not index:
            return _Suspects(frozenset(), all=True)
        files.update(int(f) for f in np.unique(file_of(np.asarray(index, dtype=np.int64))))
    if not validation["success"] and not files:
        return _Suspects(frozenset(), all=True)
    return _Suspects(frozenset(files))


def _measure(view: pd.DataFrame, measures: tuple[FileMeasure, ...]) -> dict[str, float]:
    """One file's row of the summary table (a column the file lacks is left missing: its
    ExpectColumnToExist fails in the row-wise run, which sends the whole group alone)."""
    row: dict[str, float] = {}
    for m in measures:
        if m.kind == "rows":
            row[m.column] = len(view)
        elif m.source not in view.columns:
            row[m.column] = np.nan
        elif m.kind == "duplicates":
            values = view[m.source]
            row[m.column] = int(values[values.notna()].duplicated(keep=False).sum())
        else:  # present: GX's (rows - missing) / rows, compared with ``mostly`` by >=
            row[m.column] = (len(view) - int(view[m.source].isna().sum())) / len(view)
    return row


def _group_result(
    gate: GroupedRawGate, cfg: Config, validations: list[dict[str, Any]], views: list
) -> GateResult:
    """One passing GateResult over the group: both runs' expectations, with the COMPLETE lists
    (empty on a pass) left out."""
    results = [
        {**item, "result": _summary_fields(item.get("result") or {})}
        for validation in validations
        for item in validation["results"]
    ]
    meta = {k: v for k, v in (validations[0].get("meta") or {}).items() if "batch" not in k}
    meta = {**meta, "files": len(views), "rows": int(sum(len(v) for v in views))}
    validation = assembled_validation(gate.suite, results, meta)
    return gate_result(validation, cfg.dataset.column_names)


def _summary_fields(result: dict[str, Any]) -> dict[str, Any]:
    dropped = ("unexpected_list", "unexpected_index_list", "unexpected_index_query")
    return {k: v for k, v in result.items() if k not in dropped}
