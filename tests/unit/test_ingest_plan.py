"""The pure parts of ingest: chunking a batch for the parallel validate tasks, batch ids,
verdicts through XCom, and the id index behind the duplicate-id policy."""

from __future__ import annotations

import json

import pandas as pd

from retrain.batching import plan_chunks
from retrain.ledger import IdIndex
from retrain.steps.ingest import batch_id_for
from retrain.steps.validate import FileVerdict


def files(sizes: list[int]) -> list[dict]:
    return [{"key": f"landing/f{i}.csv", "etag": "e", "size": s} for i, s in enumerate(sizes)]


def test_chunks_cover_every_file_once_and_balance_bytes() -> None:
    batch = files([100, 90, 10, 10, 10, 80, 5])
    chunks = plan_chunks(batch, 2)
    assert sorted(f["key"] for c in chunks for f in c) == sorted(f["key"] for f in batch)
    loads = [sum(f["size"] for f in c) for c in chunks]
    assert len(chunks) == 2 and max(loads) - min(loads) <= 100


def test_no_more_chunks_than_files_and_at_least_one() -> None:
    assert len(plan_chunks(files([1]), 4)) == 1
    assert len(plan_chunks(files([1, 2, 3]), 0)) == 1


def test_batch_id_is_stable_per_run() -> None:
    assert batch_id_for("run-1") == batch_id_for("run-1") != batch_id_for("run-2")


def test_a_verdict_survives_xcom() -> None:
    v = FileVerdict("landing/a.csv", "e", 3, "t", "oid", "quarantine", "bad", "a.csv", "sha", 2)
    v = FileVerdict(**{**v.as_dict(), "failed": ({"expectation_type": "x", "column": None},)})
    assert FileVerdict.of(json.loads(json.dumps(v.as_dict()))) == v


def test_id_index_names_overlaps_and_the_files_that_brought_them() -> None:
    index = IdIndex()
    assert index.overlap(pd.Series(["a"])).count == 0
    index.add(pd.Series(["a", "b", "c"]), "sha1")
    index.add(pd.Series([1, 2]), "sha2")  # numeric ids compare as text
    hit = index.overlap(pd.Series(["b", "c", "2", "z"]))
    assert hit.count == 3 and set(hit.earlier) == {"sha1", "sha2"}
    assert set(hit.examples) == {"b", "c", "2"}
