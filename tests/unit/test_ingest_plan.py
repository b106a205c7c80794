"""The pure parts of ingest: chunking a batch for the parallel validate tasks, batch ids,
verdicts through XCom, and the id index behind the duplicate-id policy."""

from __future__ import annotations

import json

import pandas as pd

from retrain.batching import LARGE_KEY, chunk_of, chunk_xcoms, plan_chunks
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


def test_every_validate_task_gets_its_key_even_without_files() -> None:
    one = chunk_xcoms(files([7]), 3)
    assert list(one) == ["chunk_0", "chunk_1", "chunk_2"]
    assert [len(c) for c in one.values()] == [1, 0, 0]
    many = chunk_xcoms(files([100, 90, 10, 10]), 2)
    assert [c for c in many.values()] == plan_chunks(files([100, 90, 10, 10]), 2)
    assert list(chunk_xcoms(files([1]), 0)) == ["chunk_0"]


def test_large_files_go_to_the_heavy_task_and_the_rest_is_shared_as_before() -> None:
    batch = files([500, 90, 10, 700, 10])
    out = chunk_xcoms(batch, 2, large_bytes=500)
    assert list(out) == ["chunk_0", "chunk_1", LARGE_KEY]
    assert [f["key"] for f in out[LARGE_KEY]] == ["landing/f0.csv", "landing/f3.csv"]
    small = [f for f in batch if f["size"] < 500]
    assert [out["chunk_0"], out["chunk_1"]] == plan_chunks(small, 2)
    every = [f["key"] for chunk in out.values() for f in chunk]
    assert sorted(every) == sorted(f["key"] for f in batch), "each file in exactly one task"


def test_the_large_key_is_always_there_once_a_threshold_is_given() -> None:
    """The validate_large task reads its XCom in every run: an empty list when nothing is big,
    every key present even when all files are large; 0 (no file counts as large) too."""
    assert chunk_xcoms(files([1, 2]), 2, large_bytes=10)[LARGE_KEY] == []
    only_large = chunk_xcoms(files([20, 30]), 2, large_bytes=10)
    assert only_large["chunk_0"] == only_large["chunk_1"] == []
    assert len(only_large[LARGE_KEY]) == 2
    none_large = chunk_xcoms(files([20, 30]), 2, large_bytes=0)
    assert none_large[LARGE_KEY] == [] and sum(len(c) for c in none_large.values()) == 2
    assert LARGE_KEY not in chunk_xcoms(files([20]), 2), "without a threshold: the shares only"


def test_a_chunk_reads_back_whether_the_trigger_or_a_task_pushed_it() -> None:
    chunk = files([3, 4])
    assert chunk_of(chunk) == chunk  # pushed by a task
    assert chunk_of(json.dumps(chunk)) == chunk  # by the triggerer's TaskSuccessEvent
    assert chunk_of("[]") == []
    assert chunk_of(None) == []  # a key an older trigger did not push


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
