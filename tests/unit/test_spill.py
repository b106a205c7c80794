"""Hash partitions on local disk: every row lands once, equal values share a partition, and a
partition reads back in the order its rows were added."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from retrain import spill

SCHEMA = pa.schema([("id", pa.large_string()), ("n", pa.int64())])


def table(ids: list[str | None], start: int = 0) -> pa.Table:
    return pa.table(
        {"id": pa.array(ids, pa.large_string()), "n": pa.array(range(start, start + len(ids)))}
    )


def test_parts_for_keeps_partitions_near_their_size() -> None:
    assert spill.parts_for(0) == spill.parts_for(-3) == 1
    assert spill.parts_for(spill.PART_ROWS) == 1
    assert spill.parts_for(spill.PART_ROWS + 1) == 2
    assert spill.parts_for(10, part_rows=3) == 4


def test_every_row_lands_once_and_equal_values_share_a_partition(tmp_path: Path) -> None:
    ids = [f"id-{i % 700}" for i in range(2000)]  # each value 2 or 3 times, in different chunks
    with spill.Spill(tmp_path, 7, SCHEMA, "id") as parts:
        for start in range(0, len(ids), 300):
            parts.add(table(ids[start : start + 300], start))
    read = [parts.read(p) for p in range(7)]
    assert sum(t.num_rows for t in read) == len(ids) == sum(parts.rows)
    assert sorted(n for t in read for n in t["n"].to_pylist()) == list(range(len(ids)))
    home: dict[str, int] = {}
    for part, t in enumerate(read):
        for value in t["id"].to_pylist():
            assert home.setdefault(value, part) == part, f"{value} in two partitions"
        assert t["n"].to_pylist() == sorted(t["n"].to_pylist()), "rows keep their order"
    assert len(set(home.values())) == 7, "the hash spreads values over every partition"
    assert [t.num_rows for t in parts] == [t.num_rows for t in read if t.num_rows]


def test_two_spills_agree_on_every_value(tmp_path: Path) -> None:
    values = pa.array([f"v{i}" for i in range(500)], pa.large_string())
    assert np.array_equal(spill.buckets(values, 9), spill.buckets(values.cast(pa.string()), 9))
    first, second = (
        spill.Spill(tmp_path / "a", 9, SCHEMA, "id"),
        spill.Spill(tmp_path / "b", 9, SCHEMA, "id"),
    )
    first.add(table([f"v{i}" for i in range(500)]))
    second.add(table([f"v{i}" for i in reversed(range(500))]))
    for part in range(9):
        assert set(first.read(part)["id"].to_pylist()) == set(second.read(part)["id"].to_pylist())


def test_one_partition_empty_ones_and_missing_values(tmp_path: Path) -> None:
    with spill.Spill(tmp_path / "one", 1, SCHEMA, "id") as one:
        one.add(table(["b", "a"]))
        one.add(table([]))
        one.add(table(["c"], 2))
    assert one.read(0)["id"].to_pylist() == ["b", "a", "c"]
    many = spill.Spill(tmp_path / "many", 50, SCHEMA, "id")
    many.add(table(["x", None, None]))
    (home,) = {int(p) for p in spill.buckets(pa.array([None, None], pa.large_string()), 50)}
    assert many.read(home)["id"].to_pylist().count(None) == 2, "missing values share a partition"
    empty = [p for p in range(50) if not many.rows[p]]
    assert many.read(empty[0]).num_rows == 0 and many.read(empty[0]).schema == SCHEMA
    assert len(list(many)) == sum(1 for r in many.rows if r)
    with pytest.raises(ValueError, match="parts must be >= 1"):
        spill.Spill(tmp_path / "none", 0, SCHEMA, "id")
