from __future__ import annotations

import hashlib
from dataclasses import FrozenInstanceError
from pathlib import Path

import pandas as pd
import pytest
from botocore.exceptions import ReadTimeoutError

from retrain.storage import (
    Downloaded,
    ObjectNotFound,
    PreconditionFailed,
    S3Storage,
    StorageError,
)

pytestmark = pytest.mark.integration


def content_type(storage: S3Storage, key: str) -> str:
    return storage.client.head_object(Bucket=storage.bucket, Key=key)["ContentType"]


def test_bytes_round_trip_and_etag(storage: S3Storage) -> None:
    etag = storage.put_bytes("landing/a.csv", b"x,y\n1,2\n")
    assert storage.get_bytes("landing/a.csv") == b"x,y\n1,2\n"
    assert storage.head_etag("landing/a.csv") == etag
    assert storage.exists("landing/a.csv")
    assert content_type(storage, "landing/a.csv").startswith("text/csv")


def test_missing_key_is_not_found(storage: S3Storage) -> None:
    assert storage.head_etag("nope") is None
    assert not storage.exists("nope")
    with pytest.raises(ObjectNotFound, match="nope") as info:
        storage.get_bytes("nope")
    assert isinstance(info.value, FileNotFoundError)
    storage.delete("nope")  # deleting a missing key is fine


def test_other_errors_carry_the_key(storage_factory) -> None:
    missing_bucket = storage_factory()  # never created
    with pytest.raises(StorageError, match=r"raw/file\.csv") as info:
        missing_bucket.get_bytes("raw/file.csv")
    assert not isinstance(info.value, ObjectNotFound)


def test_ensure_bucket_is_idempotent(storage_factory) -> None:
    store = storage_factory()
    store.ensure_bucket()
    store.ensure_bucket()
    store.put_bytes("k", b"1")
    assert store.get_bytes("k") == b"1"


def test_json_round_trip(storage: S3Storage) -> None:
    obj = {"b": [1, 2.5, None], "a": "ünïcode", "nested": {"ok": True}}
    storage.put_json("models/x.json", obj)
    assert storage.get_json("models/x.json") == obj
    assert content_type(storage, "models/x.json") == "application/json"
    data, etag = storage.get_json_with_etag("models/x.json")
    assert data == obj and etag == storage.head_etag("models/x.json")


def test_parquet_round_trip(storage: S3Storage) -> None:
    df = pd.DataFrame(
        {
            "id": ["a", "b", "c"],
            "n": [1, 2, 3],
            "x": [0.5, None, 2.0],
            "t": pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-03"]),
        }
    )
    storage.write_parquet("features/f.parquet", df)
    pd.testing.assert_frame_equal(storage.read_parquet("features/f.parquet"), df)


def test_list_objects_paginates_and_filters(storage: S3Storage) -> None:
    keys = [f"raw/{i:03d}.csv" for i in range(25)]
    for key in reversed(keys):
        storage.put_bytes(key, b"1")
    storage.put_bytes("rawish.csv", b"1")
    storage.put_bytes("landing/z.csv", b"22")
    calls: list[str] = []
    storage.client.meta.events.register(
        "before-call.s3.ListObjectsV2", lambda **kw: calls.append("page")
    )

    listed = storage.list_objects("raw/", page_size=7)

    assert [o.key for o in listed] == keys
    assert len(calls) == 4  # 7 + 7 + 7 + 4: continuation tokens were followed
    assert all(o.size == 1 and o.etag.strip('"') for o in listed)
    assert [o.key for o in storage.list_objects("landing/")] == ["landing/z.csv"]
    assert storage.list_objects("nothing/") == []


def test_if_none_match_refuses_overwrite(storage: S3Storage) -> None:
    storage.put_bytes("p.json", b"first", if_none_match=True)
    with pytest.raises(PreconditionFailed):
        storage.put_bytes("p.json", b"second", if_none_match=True)
    with pytest.raises(PreconditionFailed):
        storage.put_json("p.json", {"x": 1}, if_none_match=True)
    assert storage.get_bytes("p.json") == b"first"


def test_if_match_is_compare_and_swap(storage: S3Storage) -> None:
    etag1 = storage.put_bytes("p.json", b"v1")
    etag2 = storage.put_bytes("p.json", b"v2", if_match=etag1)
    assert etag2 != etag1
    with pytest.raises(PreconditionFailed):
        storage.put_bytes("p.json", b"v3", if_match=etag1)  # stale
    assert storage.get_bytes("p.json") == b"v2"
    with pytest.raises(PreconditionFailed):
        storage.put_bytes("gone.json", b"v1", if_match=etag1)  # S3 says 404 here
    assert not storage.exists("gone.json")
    with pytest.raises(ValueError):
        storage.put_bytes("p.json", b"v4", if_none_match=True, if_match=etag2)


def test_move_copies_then_deletes(storage: S3Storage) -> None:
    storage.put_bytes("landing/a.csv", b"a,b\n1,2\n")
    storage.move("landing/a.csv", "raw/a.csv")
    assert not storage.exists("landing/a.csv")
    assert storage.get_bytes("raw/a.csv") == b"a,b\n1,2\n"
    assert content_type(storage, "raw/a.csv").startswith("text/csv")  # metadata kept


def test_move_is_idempotent(storage: S3Storage) -> None:
    storage.put_bytes("landing/a.csv", b"data")
    storage.move("landing/a.csv", "raw/a.csv")
    storage.move("landing/a.csv", "raw/a.csv")  # retry after success: no-op
    assert storage.get_bytes("raw/a.csv") == b"data"
    assert not storage.exists("landing/a.csv")


def test_move_after_crash_between_copy_and_delete(storage: S3Storage) -> None:
    storage.put_bytes("landing/a.csv", b"new")
    storage.put_bytes("raw/a.csv", b"new")  # copy happened, delete did not
    storage.move("landing/a.csv", "raw/a.csv")
    assert not storage.exists("landing/a.csv")
    assert storage.get_bytes("raw/a.csv") == b"new"


def test_move_missing_source_and_destination(storage: S3Storage) -> None:
    with pytest.raises(ObjectNotFound, match=r"landing/none\.csv"):
        storage.move("landing/none.csv", "raw/none.csv")
    assert not storage.exists("raw/none.csv")


def test_upload_dir_sets_content_types(storage: S3Storage, tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "index.html").write_text("<h1>hi</h1>")
    (tmp_path / "sub" / "style.css").write_text("h1{}")
    (tmp_path / "sub" / "data.json").write_text("{}")
    (tmp_path / "blob.unknownext").write_bytes(b"\x00")

    assert storage.upload_dir(tmp_path, "reports/gx") == 4

    assert content_type(storage, "reports/gx/index.html") == "text/html; charset=utf-8"
    assert content_type(storage, "reports/gx/sub/style.css").startswith("text/css")
    assert content_type(storage, "reports/gx/sub/data.json") == "application/json"
    assert content_type(storage, "reports/gx/blob.unknownext") == "application/octet-stream"
    assert storage.get_bytes("reports/gx/index.html") == b"<h1>hi</h1>"


def test_open_streams_the_body_in_chunks_and_answers_304_to_its_etag(storage: S3Storage) -> None:
    body = bytes(range(256)) * 1000  # 256 kB
    storage.put_bytes("reports/big.html", body)
    opened = storage.open("reports/big.html")
    assert opened.size == len(body) and opened.content_type.startswith("text/html")
    chunks = list(opened.chunks(64 * 1024))
    assert len(chunks) == 4 and b"".join(chunks) == body
    same = storage.open("reports/big.html", if_none_match=opened.etag)
    assert same.body is None and list(same.chunks()) == []
    other = storage.open("reports/big.html", if_none_match='"stale"')
    assert b"".join(other.chunks()) == body
    with pytest.raises(ObjectNotFound):
        storage.open("reports/missing.html")


def test_download_streams_to_disk_and_says_what_it_wrote(storage: S3Storage, tmp_path) -> None:
    body = bytes(range(256)) * 10_000 + b"tail"  # ~2.4 chunks of _COPY_CHUNK
    etag = storage.put_bytes("landing/big.csv", body)
    got = storage.download("landing/big.csv", tmp_path / "copy.tmp")
    assert (tmp_path / "copy.tmp").read_bytes() == body
    assert got == Downloaded(etag, hashlib.sha256(body).hexdigest(), len(body))
    again = storage.download("landing/big.csv", tmp_path / "again.tmp", if_match=etag)
    assert again == got
    with pytest.raises(FrozenInstanceError):
        got.size = 0  # type: ignore[misc]


def test_download_if_match_refuses_a_changed_object(storage: S3Storage, tmp_path) -> None:
    stale = storage.put_bytes("landing/a.csv", b"v1")
    storage.put_bytes("landing/a.csv", b"v2")
    target = tmp_path / "a.tmp"
    with pytest.raises(PreconditionFailed, match=r"landing/a\.csv"):
        storage.download("landing/a.csv", target, if_match=stale)
    assert not target.exists()
    storage.delete("landing/a.csv")
    with pytest.raises(ObjectNotFound):
        storage.download("landing/a.csv", target, if_match=stale)
    assert not target.exists()


def test_a_download_that_fails_midway_leaves_no_file(
    storage: S3Storage, tmp_path, monkeypatch
) -> None:
    storage.put_bytes("landing/a.csv", b"x" * 3_000_000)

    class Broken:
        def __init__(self, body) -> None:
            self.body = body

        def iter_chunks(self, size):
            yield self.body.read(size)
            raise ReadTimeoutError(endpoint_url="s3")

        def close(self) -> None:
            self.body.close()

    real = storage.client.get_object

    def get_object(**kwargs):
        resp = real(**kwargs)
        return {**resp, "Body": Broken(resp["Body"])}  # the connection drops after one chunk

    monkeypatch.setattr(storage.client, "get_object", get_object)
    with pytest.raises(StorageError, match=r"get .*landing/a\.csv"):
        storage.download("landing/a.csv", tmp_path / "a.tmp")
    assert not (tmp_path / "a.tmp").exists()
