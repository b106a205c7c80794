"""The pure parts of ingest: chunking a batch for the parallel validate tasks, batch ids,
verdicts through XCom, and the id check behind the duplicate-id policy (on local files)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from retrain import id_overlap, spill
from retrain.batching import LARGE_KEY, chunk_of, chunk_xcoms, plan_chunks
from retrain.id_overlap import BatchOverlap, IdFile, IdOverlap, IdWriter, check, iter_ids
from retrain.steps.ingest import batch_id_for
from retrain.steps.validate import FileVerdict

PROJECT_ROOT = Path(__file__).resolve().parents[2]


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


def id_file(directory: Path, sha: str, ids: list) -> IdFile:
    directory.mkdir(parents=True, exist_ok=True)
    with IdWriter(directory / f"{sha}.parquet") as w:
        w.add(pd.Series(ids))
    return IdFile.open(sha, directory / f"{sha}.parquet")


def test_the_check_names_overlaps_and_the_files_that_brought_them(tmp_path: Path) -> None:
    history = [id_file(tmp_path, "sha1", ["a", "b", "c"]), id_file(tmp_path, "sha2", [1, 2])]
    new = [id_file(tmp_path, "new", ["b", "c", "2", "z"]), id_file(tmp_path, "other", ["q"])]
    found = check(history, new, tmp_path / "spill")
    hit = found.overlap("new")
    assert hit.count == 3 and hit.earlier == ("sha1", "sha2"), "numeric ids compare as text"
    assert hit.examples == ("2", "b", "c")
    assert found.overlap("other") == IdOverlap(0, ())
    assert not any(f.path.exists() for f in history + new), "each file goes once spilled"


def test_nothing_is_read_when_there_is_nothing_to_compare(tmp_path: Path) -> None:
    alone = id_file(tmp_path, "only", ["a", "b"])
    assert check([], [alone], tmp_path / "spill") == BatchOverlap()
    assert check([id_file(tmp_path, "h", [])], [alone], tmp_path / "spill").parts == 0
    assert check([alone], [], tmp_path / "spill").parts == 0
    assert alone.path.exists() and not (tmp_path / "spill").exists()


# history: h1 = 0..99, h2 = 100..149 (and 0..4 again, as an upsert would leave them)
HISTORY = {"h1": range(100), "h2": [*range(100, 150), *range(5)]}
# the batch, in key order: overlapping the history, nothing, an earlier file of the batch, both,
# and an id repeated within a file and in two files of the batch
BATCH = {
    "f1-history": [*range(3), *range(95, 105), *range(1000, 1050)],
    "f2-fresh": range(2000, 2080),
    "f3-batch": [*range(2070, 2090), *range(3000, 3030)],
    "f4-both": [*range(140, 146), *range(2000, 2004), *range(3000, 3002), *range(4000, 4020)],
    "f5-repeats": [5000, 5000, 4000, *range(6000, 6010)],
}


def decide(policy: str, tmp: Path) -> list[tuple[IdOverlap, bool]]:
    """The route's decisions over the check's answer: one file after another in key order,
    accepted unless its ids overlap and the policy rejects it."""
    history = [id_file(tmp, sha, [f"c{i}" for i in ids]) for sha, ids in HISTORY.items()]
    batch = [id_file(tmp, sha, [f"c{i}" for i in ids]) for sha, ids in BATCH.items()]
    found = check(history, batch, tmp / "spill")
    taken: list[str] = []
    out = []
    for sha in BATCH:
        overlap = found.overlap(sha, taken)
        accepted = policy == "upsert" or not overlap.count
        if accepted:
            taken.append(sha)
        out.append((overlap, accepted))
    return out


@pytest.mark.parametrize("policy", ["reject", "upsert"])
def test_many_partitions_give_the_one_partition_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, policy: str
) -> None:
    one = decide(policy, tmp_path / "one")
    monkeypatch.setattr(spill, "PART_ROWS", 7)
    many = decide(policy, tmp_path / "many")
    assert many == one
    counts = {sha: (o.count, accepted) for sha, (o, accepted) in zip(BATCH, one, strict=True)}
    if policy == "reject":
        assert counts == {
            "f1-history": (13, False),
            "f2-fresh": (0, True),
            "f3-batch": (10, False),  # 2070..2079, from f2
            "f4-both": (10, False),  # 6 from the history, 4 from f2 (f3 was rejected)
            "f5-repeats": (0, True),  # f4 (with 4000) was rejected
        }
        assert one[3][0].earlier == ("h2", "f2-fresh")
    else:
        assert counts == {
            "f1-history": (13, True),
            "f2-fresh": (0, True),
            "f3-batch": (10, True),
            "f4-both": (12, True),  # 6 history, 4 from f2, 2 from f3: each id once
            "f5-repeats": (1, True),  # 4000, from f4
        }
        assert one[3][0].earlier == ("h2", "f2-fresh", "f3-batch")
        assert one[3][0].examples == ("c140", "c141", "c142", "c143", "c144")
    # 0..2 are in h1 and h2: named by the first file that has them (h2 by 100..104)
    assert one[0][0].earlier == ("h1", "h2") and one[0][0].examples[:3] == ("c0", "c1", "c100")


def test_id_files_are_read_a_row_group_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(id_overlap, "ID_ROW_GROUP", 1000)
    with IdWriter(tmp_path / "ids.parquet") as w:
        w.add(pd.Series(range(1500)))
        w.add(pa.array([str(i) for i in range(1500, 2500)]))
    meta = pq.ParquetFile(tmp_path / "ids.parquet").metadata
    assert [meta.row_group(g).num_rows for g in range(meta.num_row_groups)] == [1000, 500, 1000]
    chunks = list(iter_ids(tmp_path / "ids.parquet"))
    assert max(len(c) for c in chunks) <= 1000 and sum(len(c) for c in chunks) == 2500
    other = pa.table({"id": pa.array(["7", None, "7"]).dictionary_encode(), "x": [1, 2, 3]})
    pq.write_table(other, tmp_path / "other.parquet")
    (ids,) = iter_ids(tmp_path / "other.parquet")
    assert ids.type == pa.large_string() and ids.to_pylist() == ["7", "7"], "no missing id"
    pq.write_table(pa.table({"customer_id": ["a"]}), tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match="needs a column 'id'"):
        IdFile.open("bad", tmp_path / "bad.parquet")


def test_only_heavy_files_are_read_under_a_marker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(id_overlap, "MARK_ROWS", 10)
    read_under_marker: list[str] = []

    @contextlib.contextmanager
    def marker(sha: str) -> Iterator[None]:
        read_under_marker.append(sha)
        yield

    small, big = id_file(tmp_path, "small", ["a"]), id_file(tmp_path, "big", range(11))
    check([], [small, big], tmp_path / "spill", reading=marker)
    assert read_under_marker == ["big"]


def test_the_partitioned_check_holds_one_partition_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing bigger than a partition (or a row group) is ever in memory: every read of a
    partition stays near PART_ROWS, however many ids there are."""
    monkeypatch.setattr(spill, "PART_ROWS", 500)
    largest = []
    read = spill.Spill.read
    monkeypatch.setattr(spill.Spill, "read", lambda s, p: largest.append(read(s, p)) or largest[-1])
    history = [id_file(tmp_path, f"h{n}", range(n * 4000, n * 4000 + 4000)) for n in range(3)]
    batch = [id_file(tmp_path, "new", range(11_000, 15_000))]
    found = check(history, batch, tmp_path / "spill")
    assert found.parts == 32 and found.overlap("new").count == 1000
    assert max(t.num_rows for t in largest) < 2 * 500


MEASURE = """
import shutil, sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from retrain import spill
from retrain.id_overlap import IdFile, check

data, work = Path(sys.argv[1]), Path(sys.argv[2])
spill.PART_ROWS = 200_000
for name in ("h", "b"):
    shutil.copy(data / f"{name}.parquet", work / f"{name}.parquet")
files = [IdFile.open(name, work / f"{name}.parquet") for name in ("h", "b")]
count = check(files[:1], files[1:], work / "spill").overlap("b").count
partitioned = pa.default_memory_pool().max_memory()
known, new = (pq.read_table(data / f"{name}.parquet")["id"] for name in ("h", "b"))
assert pc.sum(pc.is_in(new, value_set=known)).as_py() == count == 1000
print(partitioned, pa.default_memory_pool().max_memory())
"""


def test_the_partitioned_check_peaks_well_below_the_whole_check(tmp_path: Path) -> None:
    """Arrow's own peak (every Arrow allocation, none of the allocator's slack), in a process
    of its own: 1M history ids against a 1M-id file, in partitions of 200k ids, then all at
    once as the old check did."""
    n = 1_000_000
    for name, start in (("h", 0), ("b", n - 1000)):
        with IdWriter(tmp_path / f"{name}.parquet") as w:
            for off in range(start, start + n, 250_000):
                numbers = pa.array(np.arange(off, off + 250_000)).cast(pa.string())
                w.add(pc.binary_join_element_wise("customer-", numbers, ""))
    (tmp_path / "work").mkdir()
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(tmp_path), str(tmp_path / "work")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    partitioned, whole = (int(x) for x in done.stdout.split())  # ~30 MB and ~90 MB
    assert partitioned < 48 << 20, f"{partitioned >> 20} MB"
    assert partitioned * 2 < whole, (partitioned >> 20, whole >> 20)
